//! `retry_policy` (`config.route.v3.RetryPolicy`) on a route or a virtual host.

use std::time::Duration;

use crate::model::{RetryOn, RetryPolicy};
use crate::reader::{Cx, Field, Obj};

/// `RetryPolicy` fields weir does not support yet.
const RETRY_POLICY_ENVOY: &[&str] = &[
    "retry_options_predicates",
    "rate_limited_retry_back_off",
    "retriable_headers",
    "retriable_request_headers",
    "per_try_idle_timeout",
    "refresh_cluster_on_retry",
];

/// Reads a `retry_policy`.
pub(crate) fn retry_policy(cx: &mut Cx, f: &Field<'_>) -> Option<RetryPolicy> {
    let mut o = Obj::new(cx, f, RETRY_POLICY_ENVOY)?;
    let retry_on = match o.get(cx, "retry_on") {
        Some(r) => r.string(cx).and_then(|s| conditions(cx, &r.path, &s)),
        None => Some(RetryOn::default()),
    };
    let default = RetryPolicy::envoy_default();
    let num_retries = match o.get(cx, "num_retries") {
        Some(n) => n.u32(cx),
        None => Some(default.num_retries),
    };
    let per_try_timeout = match o.get(cx, "per_try_timeout") {
        Some(t) => t.duration(cx).map(|d| (!d.is_zero()).then_some(d)),
        None => Some(None),
    };
    let mut codes = Some(Vec::new());
    for item in o.list(cx, "retriable_status_codes") {
        match (item.u32(cx), &mut codes) {
            (Some(code @ 100..=599), Some(list)) => list.push(code as u16),
            (Some(code), _) => {
                cx.error(
                    &item.path,
                    format!("{code} is not an HTTP status (100..=599)"),
                );
                codes = None;
            }
            (None, _) => codes = None,
        }
    }
    let mut avoid_previous_hosts = Some(false);
    for p in o.list(cx, "retry_host_predicate") {
        match host_predicate(cx, &p) {
            Some(()) => avoid_previous_hosts = avoid_previous_hosts.map(|_| true),
            None => avoid_previous_hosts = None,
        }
    }
    let previous_priorities = match o.get(cx, "retry_priority") {
        Some(p) => retry_priority(cx, &p).map(Some),
        None => Some(None),
    };
    let host_selection_max_attempts = match o.get(cx, "host_selection_retry_max_attempts") {
        Some(n) => n.u32(cx),
        None => Some(default.host_selection_max_attempts),
    };
    let back_off = match o.get(cx, "retry_back_off") {
        Some(b) => back_off(cx, &b),
        None => Some((default.base_interval, default.max_interval)),
    };
    o.finish(cx);
    // A policy no condition enables is kept, as Envoy keeps it: an internal request's
    // `x-envoy-retry-on` can enable conditions, and `x-envoy-max-retries` then counts from it.
    let (base_interval, max_interval) = back_off?;
    Some(RetryPolicy {
        retry_on: retry_on?,
        num_retries: num_retries?,
        per_try_timeout: per_try_timeout?,
        retriable_status_codes: codes?,
        base_interval,
        max_interval,
        avoid_previous_hosts: avoid_previous_hosts?,
        host_selection_max_attempts: host_selection_max_attempts?,
        previous_priorities: previous_priorities?,
    })
}

const PREVIOUS_PRIORITIES: &str = "envoy.retry_priorities.previous_priorities";
const PREVIOUS_PRIORITIES_TYPE: &str = "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig";

/// `retry_priority`: only `previous_priorities`, with its `update_frequency` (required, > 0).
fn retry_priority(cx: &mut Cx, f: &Field<'_>) -> Option<u32> {
    let typed = retry_extension(
        cx,
        f,
        "retry priority",
        PREVIOUS_PRIORITIES,
        PREVIOUS_PRIORITIES_TYPE,
    )?;
    let Some(typed) = typed else {
        cx.error(
            &f.path,
            "previous_priorities needs its typed_config (update_frequency)",
        );
        return None;
    };
    let mut to = Obj::new(cx, &typed, &[])?;
    to.get(cx, "@type");
    let frequency = to
        .required(cx, "update_frequency")
        .and_then(|u| match u.u32(cx) {
            Some(0) => {
                cx.error(&u.path, "update_frequency must be above 0");
                None
            }
            n => n,
        });
    let ok = to.finish(cx);
    frequency.filter(|_| ok)
}

const PREVIOUS_HOSTS: &str = "envoy.retry_host_predicates.previous_hosts";
const PREVIOUS_HOSTS_TYPE: &str =
    "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate";

/// One `retry_host_predicate[]`: only `previous_hosts` (by name or by its config's type).
fn host_predicate(cx: &mut Cx, f: &Field<'_>) -> Option<()> {
    let typed = retry_extension(
        cx,
        f,
        "retry host predicate",
        PREVIOUS_HOSTS,
        PREVIOUS_HOSTS_TYPE,
    )?;
    if let Some(t) = &typed {
        let mut to = Obj::new(cx, t, &[])?;
        to.get(cx, "@type");
        to.finish(cx);
    }
    Some(())
}

/// A retry extension (`name` and an optional `typed_config`) that must be the one weir
/// supports, named `name` or typed `url`: its `typed_config`, or an error saying what it is
/// and what weir supports.
fn retry_extension<'v>(
    cx: &mut Cx,
    f: &Field<'v>,
    what: &str,
    name: &str,
    url: &str,
) -> Option<Option<Field<'v>>> {
    let mut o = Obj::new(cx, f, &[])?;
    let given = o.string(cx, "name");
    let typed = o.get(cx, "typed_config");
    o.finish(cx);
    let given_url = (typed.as_ref())
        .and_then(|t| t.value.get("@type"))
        .and_then(|v| v.as_str());
    if given_url == Some(url) || (given_url.is_none() && given.as_deref() == Some(name)) {
        return Some(typed);
    }
    let given = given_url.or(given.as_deref()).unwrap_or("");
    cx.error(
        &f.path,
        format!("{what} `{given}` is not supported yet (weir supports {name})"),
    );
    None
}

/// `retry_on`: a comma-separated list of Envoy's HTTP and gRPC conditions.
fn conditions(cx: &mut Cx, path: &str, list: &str) -> Option<RetryOn> {
    let (http, rest) = RetryOn::parse(list, false);
    let rest = rest.join(",");
    let (grpc, unknown) = RetryOn::parse(&rest, true);
    for name in &unknown {
        let known: Vec<&str> = RetryOn::HTTP_NAMES
            .iter()
            .map(|(n, _)| *n)
            .chain(RetryOn::GRPC_NAMES.iter().map(|(n, ..)| *n))
            .collect();
        cx.error(
            path,
            format!(
                "retry_on `{name}` is not supported by weir yet (supported: {})",
                known.join(", ")
            ),
        );
    }
    unknown.is_empty().then_some(http.with(grpc))
}

/// `retry_back_off`: `base_interval` (required, > 0) and `max_interval` (default 10 × base,
/// not below it), as Envoy checks them.
fn back_off(cx: &mut Cx, f: &Field<'_>) -> Option<(Duration, Duration)> {
    let mut o = Obj::new(cx, f, &[])?;
    let base = o.required(cx, "base_interval").and_then(|b| {
        let d = b.duration(cx)?;
        if d.is_zero() {
            cx.error(&b.path, "base_interval must be greater than zero");
            return None;
        }
        Some(d)
    });
    let max = o
        .get(cx, "max_interval")
        .map(|m| (m.duration(cx), m.path.clone()));
    o.finish(cx);
    let base = base?;
    match max {
        None => Some((base, base * 10)),
        Some((Some(max), path)) if max < base => {
            cx.error(&path, "max_interval must not be less than base_interval");
            None
        }
        Some((max, _)) => Some((base, max?)),
    }
}
