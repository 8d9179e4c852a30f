//! Envoy's `retry_policy`: which failures and statuses are tried again, how many times, with a
//! timeout per attempt; a request whose body is gone is never replayed; without a policy only
//! an idempotent request that lost the keep-alive race is retried.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use support::{Config, Origin, Reply, refusing_address, response};

/// A catch-all route to cluster `backend` with this `retry_policy` (YAML flow mapping).
fn with_policy(config: Config, policy: &str) -> Config {
    config.routes(&format!(
        "virtual_hosts:\n  - name: all\n    domains: [\"*\"]\n    routes:\n      - match: {{ prefix: / }}\n        route: {{ cluster: backend, retry_policy: {policy} }}\n"
    ))
}

/// An origin that answers the first `failures` requests with `first` and the rest with 200
/// and the request's body.
fn failing_first(failures: usize, first: impl Fn() -> Reply + Send + Sync + 'static) -> Origin {
    let seen = Arc::new(AtomicUsize::new(0));
    Origin::start(move |req| {
        if seen.fetch_add(1, SeqCst) < failures {
            first()
        } else {
            Reply::Send(response(200, &[], &req.body))
        }
    })
}

#[test]
fn a_5xx_is_retried_and_the_retry_answers() {
    let origin = failing_first(1, || Reply::Send(response(503, &[], b"busy")));
    let config = Config::new().cluster("backend", &[origin.addr()]);
    let proxy = with_policy(config, "{ retry_on: 5xx, num_retries: 2 }").start();
    let resp = proxy
        .client()
        .request("POST /r HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "hello", "the body is replayed");
    assert_eq!(origin.request_count(), 2);
    assert_eq!(proxy.stat("upstream_rq_retry"), 1);
    assert_eq!(proxy.stat("upstream_rq_retry_success"), 1);
    assert_eq!(proxy.stat("upstream_rq_503"), 1);
    assert_eq!(proxy.stat("upstream_rq_200"), 1);
}

#[test]
fn retries_stop_at_num_retries_and_the_last_response_goes_out() {
    let origin = Origin::start(|_| Reply::Send(response(503, &[], b"still busy")));
    let config = Config::new().cluster("backend", &[origin.addr()]);
    let proxy = with_policy(config, "{ retry_on: gateway-error, num_retries: 2 }").start();
    let resp = proxy.client().get("/r");
    assert_eq!(resp.status, 503);
    assert_eq!(resp.text(), "still busy");
    assert_eq!(origin.request_count(), 3, "the first try and two retries");
    assert_eq!(proxy.stat("upstream_rq_retry"), 2);
    assert_eq!(proxy.stat("upstream_rq_retry_limit_exceeded"), 1);
    assert_eq!(proxy.stat("upstream_rq_retry_success"), 0);
}

#[test]
fn statuses_outside_the_policy_are_not_retried() {
    let origin = Origin::start(|_| Reply::Send(response(500, &[], b"oops")));
    let config = Config::new().cluster("backend", &[origin.addr()]);
    // gateway-error covers 502, 503 and 504 only; retriable-status-codes names 409.
    let policy =
        "{ retry_on: \"gateway-error,retriable-status-codes\", retriable_status_codes: [409] }";
    let proxy = with_policy(config, policy).start();
    assert_eq!(proxy.client().get("/r").status, 500);
    assert_eq!(origin.request_count(), 1);
    assert_eq!(proxy.stat("upstream_rq_retry"), 0);
}

#[test]
fn retriable_status_codes_are_retried() {
    let origin = failing_first(1, || Reply::Send(response(409, &[], b"conflict")));
    let config = Config::new().cluster("backend", &[origin.addr()]);
    let policy = "{ retry_on: retriable-status-codes, retriable_status_codes: [409] }";
    let proxy = with_policy(config, policy).start();
    assert_eq!(proxy.client().get("/r").status, 200);
    assert_eq!(origin.request_count(), 2);
}

#[test]
fn a_connect_failure_is_retried_on_the_next_host() {
    let (_reserved, dead_addr) = refusing_address();
    let origin = Origin::ok("alive");
    // Round robin starts with the first host: the dead one.
    let config = Config::new().cluster("backend", &[dead_addr, origin.addr()]);
    let proxy = with_policy(config, "{ retry_on: connect-failure }").start();
    let resp = proxy.client().get("/r");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "alive");
    assert_eq!(proxy.stat("upstream_cx_connect_fail"), 1);
    assert_eq!(proxy.stat("upstream_rq_retry"), 1);
}

#[test]
fn a_reset_before_the_response_is_retried() {
    let origin = failing_first(1, || Reply::Reset);
    let config = Config::new().cluster("backend", &[origin.addr()]);
    let proxy = with_policy(config, "{ retry_on: reset }").start();
    assert_eq!(proxy.client().get("/r").status, 200);
    assert_eq!(origin.request_count(), 2);
    assert_eq!(proxy.stat("upstream_rq_retry"), 1);
}

#[test]
fn per_try_timeout_abandons_a_slow_attempt_and_retries() {
    let origin = failing_first(1, || Reply::Stall);
    let config = Config::new().cluster("backend", &[origin.addr()]);
    let proxy = with_policy(
        config,
        "{ retry_on: 5xx, num_retries: 1, per_try_timeout: 0.2s }",
    )
    .start();
    let resp = proxy.client().get("/r");
    assert_eq!(resp.status, 200);
    assert_eq!(proxy.stat("upstream_rq_per_try_timeout"), 1);
    assert_eq!(proxy.stat("upstream_rq_retry"), 1);
}

#[test]
fn per_try_timeout_without_retries_left_is_a_504() {
    let origin = Origin::start(|_| Reply::Stall);
    let config = Config::new().cluster("backend", &[origin.addr()]);
    let proxy = with_policy(
        config,
        "{ retry_on: connect-failure, per_try_timeout: 0.2s }",
    )
    .start();
    let resp = proxy.client().get("/r");
    assert_eq!(resp.status, 504);
    assert_eq!(proxy.stat("upstream_rq_per_try_timeout"), 1);
    assert_eq!(proxy.stat("upstream_rq_retry"), 0);
}

/// The retry buffer is the listener's `per_connection_buffer_limit_bytes` (1 MiB by default),
/// as in Envoy: a 200 KiB body is replayed under the default…
#[test]
fn a_body_within_the_listener_buffer_limit_is_replayed() {
    let origin = failing_first(1, || Reply::Send(response(503, &[], b"busy")));
    let config = Config::new().cluster("backend", &[origin.addr()]);
    let proxy = with_policy(config, "{ retry_on: 5xx, num_retries: 3 }").start();
    let body = "x".repeat(200 * 1024);
    let resp = proxy.client().request(format!(
        "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), body.len(), "the whole body is replayed");
    assert_eq!(origin.request_count(), 2);
    assert_eq!(proxy.stat("upstream_rq_retry"), 1);
}

/// …and not when the listener's limit is 64 KiB.
#[test]
fn a_request_whose_body_outgrew_the_retry_buffer_is_not_replayed() {
    let origin = failing_first(1, || Reply::Send(response(503, &[], b"busy")));
    let config = Config::new().cluster("backend", &[origin.addr()]);
    let proxy = with_policy(config, "{ retry_on: 5xx, num_retries: 3 }")
        .start_with_listener_limit(64 * 1024);
    let body = "x".repeat(200 * 1024);
    let resp = proxy.client().request(format!(
        "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(
        resp.status, 503,
        "the body streamed past the retry buffer is gone"
    );
    assert_eq!(origin.request_count(), 1);
    assert_eq!(proxy.stat("upstream_rq_retry"), 0);
}

#[test]
fn a_virtual_host_policy_applies_to_its_routes() {
    let origin = failing_first(1, || Reply::Send(response(502, &[], b"bad gateway")));
    let proxy = Config::new()
        .cluster("backend", &[origin.addr()])
        .routes(
            "virtual_hosts:\n  - name: all\n    domains: [\"*\"]\n    retry_policy: { retry_on: gateway-error }\n    routes:\n      - match: { prefix: / }\n        route: { cluster: backend }\n",
        )
        .start();
    assert_eq!(proxy.client().get("/r").status, 200);
    assert_eq!(proxy.stat("upstream_rq_retry"), 1);
}

#[test]
fn without_a_policy_nothing_is_retried() {
    let origin = failing_first(1, || Reply::Send(response(503, &[], b"busy")));
    let proxy = Config::forward_all(&[origin.addr()]).start();
    assert_eq!(proxy.client().get("/r").status, 503);
    assert_eq!(origin.request_count(), 1);
}

#[test]
fn unsupported_retry_settings_are_config_errors() {
    for (policy, want) in [
        (
            "{ retry_on: refused-stream }",
            "retry_on `refused-stream` is not supported by weir yet",
        ),
        (
            "{ retry_on: 5xx, retry_priority: { name: x } }",
            "retry priority `x` is not supported yet",
        ),
        (
            "{ retriable_status_codes: [700] }",
            "700 is not an HTTP status",
        ),
        (
            "{ retry_back_off: { base_interval: 0s } }",
            "base_interval must be greater than zero",
        ),
        (
            "{ retry_back_off: { base_interval: 1s, max_interval: 0.5s } }",
            "max_interval must not be less than base_interval",
        ),
    ] {
        let yaml = with_policy(Config::new().cluster("backend", &[]), policy).yaml();
        let errors = weir_config::parse(&yaml).expect_err(policy).to_string();
        assert!(errors.contains(want), "{policy}: {errors}");
        assert!(
            errors.contains("retry_policy"),
            "the error names the path: {errors}"
        );
    }
}

/// An origin that resets the connection instead of answering its second request: for the
/// proxy, a reused pooled connection that failed before any response byte (the keep-alive
/// race, made deterministic).
fn resets_second_request() -> Origin {
    let seen = Arc::new(AtomicUsize::new(0));
    Origin::start(move |req| {
        if seen.fetch_add(1, SeqCst) == 1 {
            Reply::Reset
        } else {
            Reply::Send(response(200, &[], &req.body))
        }
    })
}

#[test]
fn keep_alive_race_retries_an_idempotent_request_without_a_policy() {
    let origin = resets_second_request();
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    assert_eq!(client.get("/first").status, 200);
    let resp = client.request("PUT /second HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(resp.status, 200, "retried on a fresh connection");
    assert_eq!(resp.text(), "abc");
    assert_eq!(proxy.stat("upstream_rq_retry"), 1);
}

#[test]
fn keep_alive_race_never_replays_a_post_without_a_policy() {
    let origin = resets_second_request();
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    assert_eq!(client.get("/first").status, 200);
    let resp = client.request("POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(
        resp.status, 503,
        "a POST may have had effects: not replayed"
    );
    assert_eq!(proxy.stat("upstream_rq_retry"), 0);
    assert_eq!(origin.request_count(), 2);
}

#[test]
fn per_try_timeout_bounds_the_wait_for_a_response_not_its_transfer() {
    // The head comes at once, the body over 0.6 s: longer than the per-try timeout.
    let origin = Origin::start(|_| Reply::Trickle {
        pieces: vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n".to_vec(),
            b"ab".to_vec(),
            b"cd".to_vec(),
            b"ef".to_vec(),
        ],
        gap: std::time::Duration::from_millis(200),
    });
    let config = Config::new().cluster("backend", &[origin.addr()]);
    let proxy = with_policy(config, "{ retry_on: 5xx, per_try_timeout: 0.3s }").start();
    let resp = proxy.client().get("/slow-body");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "abcdef");
    assert_eq!(proxy.stat("upstream_rq_per_try_timeout"), 0);
}

#[test]
fn under_a_policy_the_keep_alive_race_is_retried_only_if_the_policy_says_so() {
    let origin = resets_second_request();
    let config = Config::new().cluster("backend", &[origin.addr()]);
    // The policy retries one status, not resets: a POST that met a dead pooled connection
    // is answered, not replayed.
    let policy = "{ retry_on: retriable-status-codes, retriable_status_codes: [409] }";
    let proxy = with_policy(config, policy).start();
    let mut client = proxy.client();
    assert_eq!(client.get("/first").status, 200);
    let resp = client.request("POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(resp.status, 503);
    assert_eq!(proxy.stat("upstream_rq_retry"), 0);
}
