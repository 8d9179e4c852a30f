//! The `x-envoy-*` request headers through which an internal request steers the router (Envoy's
//! `RetryStateImpl` and `FilterUtility::finalTimeout`): retry conditions, retries, timeouts.
//!
//! Only an internal request can carry them: the connection manager removes them from every
//! other one (`http/headers.rs`). The router reads them, removes them (the origin never sees
//! them), and the stream uses what they say instead of the route's values. A value that does
//! not parse is ignored, as in Envoy; so is a condition name weir does not know.

use std::time::Duration;

use weir_config::{RetryOn, RetryPolicy};
use weir_http1::Headers;

use crate::http::headers::is_envoy_header;

/// What an internal request's headers change for its stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Overrides {
    /// `x-envoy-upstream-rq-timeout-ms`: the route timeout (`Some(None)`: 0, no timeout).
    pub(crate) timeout: Option<Option<Duration>>,
    /// The retry policy as the headers leave it, when they change the route's (or give one
    /// to a route without).
    pub(crate) policy: Option<RetryPolicy>,
    /// `x-envoy-upstream-rq-timeout-alt-response`: a route timeout is answered 204, not 504.
    pub(crate) timeout_alt_response: bool,
}

/// Every header this module reads or drops. `x-envoy-retriable-header-names` (the
/// `retriable-headers` condition), `x-envoy-hedge-on-per-try-timeout` (hedging) and
/// `x-envoy-upstream-alt-stat-name` (alternative stats) name things weir does not have: they
/// are removed, as Envoy's router removes them, and do nothing.
const CONSUMED: [&str; 10] = [
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-retriable-status-codes",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-retriable-header-names",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-upstream-alt-stat-name",
];

/// Reads and removes the headers; `route` is the route's own retry policy.
pub(crate) fn take(headers: &mut Headers, route: Option<&RetryPolicy>) -> Overrides {
    let text = |headers: &Headers, name: &str| {
        headers
            .get(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(|s| s.trim().to_owned())
    };
    let number = |headers: &Headers, name: &str| text(headers, name)?.parse::<u64>().ok();
    let retry_on = text(headers, "x-envoy-retry-on").map(|s| RetryOn::parse(&s, false).0);
    let grpc_on = text(headers, "x-envoy-retry-grpc-on").map(|s| RetryOn::parse(&s, true).0);
    let max_retries = number(headers, "x-envoy-max-retries").and_then(|n| u32::try_from(n).ok());
    let codes: Vec<u16> = text(headers, "x-envoy-retriable-status-codes")
        .map(|s| {
            s.split(',')
                .filter_map(|c| c.trim().parse::<u16>().ok())
                .filter(|c| (100..=599).contains(c))
                .collect()
        })
        .unwrap_or_default();
    let per_try = number(headers, "x-envoy-upstream-rq-per-try-timeout-ms");
    let timeout = number(headers, "x-envoy-upstream-rq-timeout-ms")
        .map(|ms| (ms > 0).then(|| Duration::from_millis(ms)));
    let timeout_alt_response = headers.contains("x-envoy-upstream-rq-timeout-alt-response");
    for name in CONSUMED {
        headers.remove(name);
    }

    let changes = retry_on.is_some_and(|on| !on.is_empty())
        || grpc_on.is_some_and(|on| !on.is_empty())
        || max_retries.is_some()
        || !codes.is_empty()
        || per_try.is_some();
    let policy = changes.then(|| {
        let mut policy = route.cloned().unwrap_or_else(RetryPolicy::envoy_default);
        for on in [retry_on, grpc_on].into_iter().flatten() {
            policy.retry_on = policy.retry_on.with(on);
        }
        if let Some(n) = max_retries {
            policy.num_retries = n;
        }
        policy.retriable_status_codes.extend(codes);
        if let Some(ms) = per_try {
            policy.per_try_timeout = (ms > 0).then(|| Duration::from_millis(ms));
        }
        policy
    });
    Overrides {
        timeout,
        policy,
        timeout_alt_response,
    }
}

/// Whether any header [`take`] reads is there: the common case, none, costs one pass that
/// compares a prefix.
pub(crate) fn any(headers: &Headers) -> bool {
    headers.iter().any(|h| {
        is_envoy_header(&h.name)
            && CONSUMED
                .iter()
                .any(|n| h.name.eq_ignore_ascii_case(n.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&'static str, &'static str)]) -> Headers {
        let mut h = Headers::new();
        for (name, value) in list {
            h.append(*name, bytes::Bytes::from_static(value.as_bytes()));
        }
        h
    }

    #[test]
    fn headers_give_a_route_without_a_policy_one_and_are_removed() {
        let mut h = headers(&[
            ("x-envoy-retry-on", "5xx, bogus"),
            ("x-envoy-retry-grpc-on", "unavailable"),
            ("x-envoy-max-retries", "3"),
            ("x-envoy-upstream-rq-timeout-ms", "250"),
            ("x-envoy-upstream-rq-per-try-timeout-ms", "100"),
            ("x-envoy-hedge-on-per-try-timeout", "true"),
            ("x-envoy-force-trace", "1"),
        ]);
        assert!(any(&h));
        let o = take(&mut h, None);
        let policy = o.policy.expect("a policy");
        assert!(policy.retry_on.any(RetryOn::FIVE_XX));
        assert!(policy.retry_on.covers_grpc_status(14));
        assert_eq!(policy.num_retries, 3);
        assert_eq!(policy.per_try_timeout, Some(Duration::from_millis(100)));
        assert_eq!(policy.base_interval, Duration::from_millis(25));
        assert_eq!(o.timeout, Some(Some(Duration::from_millis(250))));
        assert!(!o.timeout_alt_response);
        // What the router does not read stays for the origin.
        let left: Vec<&[u8]> = h.iter().map(|h| &h.name[..]).collect();
        assert_eq!(left, [&b"x-envoy-force-trace"[..]]);
        assert!(!any(&h));
    }

    #[test]
    fn headers_add_to_the_routes_policy() {
        let route = RetryPolicy {
            retry_on: RetryOn::RETRIABLE_STATUS_CODES,
            num_retries: 2,
            per_try_timeout: Some(Duration::from_secs(1)),
            retriable_status_codes: vec![409],
            base_interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(50),
            avoid_previous_hosts: true,
            host_selection_max_attempts: 3,
            previous_priorities: None,
        };
        let mut h = headers(&[
            ("x-envoy-retriable-status-codes", "418, 999, x"),
            ("x-envoy-upstream-rq-timeout-ms", "0"),
            ("x-envoy-upstream-rq-timeout-alt-response", ""),
        ]);
        let o = take(&mut h, Some(&route));
        let policy = o.policy.expect("changed");
        assert_eq!(policy.retriable_status_codes, [409, 418]);
        assert_eq!(
            (policy.num_retries, policy.base_interval),
            (2, Duration::from_millis(10))
        );
        assert_eq!(o.timeout, Some(None), "0 turns the timeout off");
        assert!(o.timeout_alt_response);
        assert!(h.is_empty());
    }

    #[test]
    fn values_that_do_not_parse_change_nothing() {
        let mut h = headers(&[
            ("x-envoy-max-retries", "x"),
            ("x-envoy-upstream-rq-timeout-ms", "-1"),
            ("x-envoy-retry-on", "nothing-known"),
        ]);
        assert_eq!(take(&mut h, None), Overrides::default());
        assert!(h.is_empty());
    }
}
