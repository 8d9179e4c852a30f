//! The filter chain in memory: heads, bodies and ends in, verdicts out, no worker.

use std::time::Duration;

use bytes::Bytes;
use weir_config::{
    AbortKind, BufferConfig, DelayKind, FaultAbort, FaultConfig, FaultDelay, FilterConfig,
    Fraction, HeaderMatchRule, HeaderMatcher, HealthCheckConfig, HttpFilter as FilterEntry,
    RouteConfiguration, StringMatchKind, StringMatcher,
};
use weir_http1::{Headers, RequestHead, ResponseHead, Version};

use super::{Decoded, EncodeEnv, FilterChainSpec, FilterEnv, StreamFilters};
use crate::router::route_table::RouteTable;
use crate::runtime::Runtime;
use crate::stats::FaultStats;

const ALL: Fraction = Fraction {
    per_million: 1_000_000,
    denominator: 100,
};

fn head(method: &str, path: &str, headers: &[(&'static str, &'static str)]) -> RequestHead {
    let mut h = Headers::new();
    h.append("host", "a");
    for &(n, v) in headers {
        h.append(n, v);
    }
    RequestHead {
        method: Bytes::copy_from_slice(method.as_bytes()),
        target: Bytes::copy_from_slice(path.as_bytes()),
        version: Version::Http11,
        headers: h,
    }
}

/// A world for the filters: one cluster `backend` with `hosts` hosts, all healthy.
struct World {
    rng: fastrand::Rng,
    stats: FaultStats,
    failed: bool,
    clusters: Vec<(String, usize, usize)>,
    runtime: Runtime,
}

impl World {
    fn new() -> World {
        World {
            rng: fastrand::Rng::with_seed(3),
            stats: FaultStats::default(),
            failed: false,
            clusters: vec![("backend".into(), 2, 2)],
            runtime: Runtime::default(),
        }
    }

    fn env(&mut self) -> FilterEnv<'_> {
        FilterEnv {
            rng: &mut self.rng,
            route_cluster: Some("backend"),
            health_check_failed: self.failed,
            clusters: &self.clusters,
            fault_stats: &self.stats,
            authority: b"a",
            scheme: b"http",
            runtime: &self.runtime,
        }
    }
}

fn chain(configs: Vec<FilterConfig>) -> StreamFilters {
    let entries: Vec<FilterEntry> = configs
        .into_iter()
        .enumerate()
        .map(|(i, config)| FilterEntry::Filter {
            name: format!("f{i}"),
            disabled: false,
            config,
        })
        .collect();
    let spec = FilterChainSpec::new(&entries);
    spec.instantiate(&RouteTable::new(RouteConfiguration::default()), None)
}

fn fault(delay: Option<FaultDelay>, abort: Option<FaultAbort>) -> FilterConfig {
    FilterConfig::Fault(FaultConfig {
        delay,
        abort,
        ..FaultConfig::default()
    })
}

fn abort(kind: AbortKind, percentage: Fraction) -> Option<FaultAbort> {
    Some(FaultAbort { kind, percentage })
}

fn delay(kind: DelayKind) -> Option<FaultDelay> {
    Some(FaultDelay {
        kind,
        percentage: ALL,
    })
}

fn status(decoded: &Decoded) -> Option<u16> {
    match decoded {
        Decoded::Reply(reply) => Some(reply.status),
        _ => None,
    }
}

#[test]
fn a_fault_delay_holds_the_request_then_lets_it_go() {
    let mut w = World::new();
    let mut filters = chain(vec![fault(
        delay(DelayKind::Fixed(Duration::from_secs(5))),
        None,
    )]);
    let mut h = head("GET", "/", &[]);
    let decoded = filters.decode_headers(&mut h, true, &mut w.env());
    assert!(
        matches!(decoded, Decoded::Held { wake_after: Some(d) } if d == Duration::from_secs(5))
    );
    assert_eq!(w.stats.delays_injected.get(), 1);
    assert_eq!(w.stats.active_faults.get(), 1);
    assert!(matches!(
        filters.on_wake(&mut h, &mut w.env()),
        Decoded::ToRouter
    ));
    filters.on_destroy(&w.stats);
    assert_eq!(
        w.stats.active_faults.get(),
        0,
        "the stream gives its fault back"
    );
}

#[test]
fn a_body_that_arrives_during_a_delay_is_held_for_the_router() {
    let mut w = World::new();
    let mut filters = chain(vec![fault(
        delay(DelayKind::Fixed(Duration::from_millis(50))),
        None,
    )]);
    let mut h = head("POST", "/", &[("content-length", "6")]);
    assert!(matches!(
        filters.decode_headers(&mut h, false, &mut w.env()),
        Decoded::Held { .. }
    ));
    let held = filters.decode_data(Bytes::from_static(b"abc"), false, &mut h, &mut w.env());
    assert!(matches!(held, Decoded::Held { wake_after: None }));
    filters.decode_data(Bytes::from_static(b"def"), true, &mut h, &mut w.env());
    assert_eq!(filters.held_len(), 6);
    assert!(matches!(
        filters.on_wake(&mut h, &mut w.env()),
        Decoded::ToRouter
    ));
    let (body, ended) = filters.take_held();
    assert_eq!(body.concat(), b"abcdef");
    assert!(ended);
}

#[test]
fn a_fault_abort_answers_with_its_status() {
    let mut w = World::new();
    let mut filters = chain(vec![fault(None, abort(AbortKind::Http(503), ALL))]);
    let decoded = filters.decode_headers(&mut head("GET", "/", &[]), true, &mut w.env());
    let Decoded::Reply(reply) = decoded else {
        panic!("{decoded:?}")
    };
    assert_eq!(
        (reply.status, &reply.body[..]),
        (503, &b"fault filter abort"[..])
    );
    assert_eq!(reply.flag.map(|f| f.letters()), Some("FI"));
    assert_eq!(w.stats.aborts_injected.get(), 1);
}

const NONE: Fraction = Fraction {
    per_million: 0,
    denominator: 100,
};

#[test]
fn the_runtime_overrides_an_aborts_share_and_status() {
    let mut w = World::new();
    let mut filters = chain(vec![fault(None, abort(AbortKind::Http(503), NONE))]);
    let decoded = filters.decode_headers(&mut head("GET", "/", &[]), true, &mut w.env());
    assert_eq!(status(&decoded), None, "0 % as configured");
    w.runtime = Runtime::of(&[
        ("fault.http.abort.abort_percent", "100"),
        ("fault.http.abort.http_status", "418"),
    ]);
    let mut filters = chain(vec![fault(None, abort(AbortKind::Http(503), NONE))]);
    let decoded = filters.decode_headers(&mut head("GET", "/", &[]), true, &mut w.env());
    assert_eq!(status(&decoded), Some(418));
}

#[test]
fn a_downstream_cluster_reads_its_own_keys_and_otherwise_the_configured_values() {
    let mut w = World::new();
    w.runtime = Runtime::of(&[
        ("fault.http.abort.abort_percent", "100"),
        ("fault.http.edge.abort.abort_percent", "0"),
        ("fault.http.mobile.abort.http_status", "429"),
    ]);
    let mut run = |cluster: &'static str| {
        let mut filters = chain(vec![fault(None, abort(AbortKind::Http(503), ALL))]);
        let h = &mut head(
            "GET",
            "/",
            &[("x-envoy-downstream-service-cluster", cluster)],
        );
        status(&filters.decode_headers(h, true, &mut w.env()))
    };
    assert_eq!(run("edge"), None, "its own key: 0 %");
    assert_eq!(run("mobile"), Some(429), "configured 100 %, its own status");
}

#[test]
fn the_runtime_sets_a_delays_duration_and_the_active_fault_limit() {
    let mut w = World::new();
    w.runtime = Runtime::of(&[("fault.http.delay.fixed_duration_ms", "250")]);
    let mut filters = chain(vec![fault(
        delay(DelayKind::Fixed(Duration::from_secs(5))),
        None,
    )]);
    let decoded = filters.decode_headers(&mut head("GET", "/", &[]), true, &mut w.env());
    assert!(
        matches!(decoded, Decoded::Held { wake_after: Some(d) } if d == Duration::from_millis(250)),
        "{decoded:?}"
    );
    w.runtime = Runtime::of(&[("fault.http.max_active_faults", "1")]);
    let mut second = chain(vec![fault(None, abort(AbortKind::Http(503), ALL))]);
    let decoded = second.decode_headers(&mut head("GET", "/", &[]), true, &mut w.env());
    assert_eq!(status(&decoded), None, "one fault is active already");
    assert_eq!(w.stats.faults_overflow.get(), 1);
}

#[test]
fn a_delay_can_be_followed_by_an_abort() {
    let mut w = World::new();
    let mut filters = chain(vec![fault(
        delay(DelayKind::Fixed(Duration::from_secs(1))),
        abort(AbortKind::Http(500), ALL),
    )]);
    let mut h = head("GET", "/", &[]);
    assert!(matches!(
        filters.decode_headers(&mut h, true, &mut w.env()),
        Decoded::Held { .. }
    ));
    assert_eq!(status(&filters.on_wake(&mut h, &mut w.env())), Some(500));
    assert_eq!(
        w.stats.active_faults.get(),
        1,
        "one active fault per request, whatever it got"
    );
}

#[test]
fn header_controlled_faults_read_the_request() {
    let mut w = World::new();
    let config = fault(delay(DelayKind::Header), abort(AbortKind::Header, ALL));
    let mut filters = chain(vec![config.clone()]);
    let plain = filters.decode_headers(&mut head("GET", "/", &[]), true, &mut w.env());
    assert!(matches!(plain, Decoded::ToRouter), "no header, no fault");

    let mut filters = chain(vec![config.clone()]);
    let mut h = head("GET", "/", &[("x-envoy-fault-abort-request", "451")]);
    assert_eq!(
        status(&filters.decode_headers(&mut h, true, &mut w.env())),
        Some(451)
    );

    let mut filters = chain(vec![config]);
    let mut h = head("GET", "/", &[("x-envoy-fault-delay-request", "250")]);
    let decoded = filters.decode_headers(&mut h, true, &mut w.env());
    assert!(
        matches!(decoded, Decoded::Held { wake_after: Some(d) } if d == Duration::from_millis(250))
    );
}

#[test]
fn the_percentage_header_lowers_a_header_fault_share_only() {
    let mut w = World::new();
    let config = fault(None, abort(AbortKind::Header, ALL));
    let mut aborted = 0;
    for _ in 0..1000 {
        let mut filters = chain(vec![config.clone()]);
        let mut h = head(
            "GET",
            "/",
            &[
                ("x-envoy-fault-abort-request", "503"),
                ("x-envoy-fault-abort-request-percentage", "10"),
            ],
        );
        if status(&filters.decode_headers(&mut h, true, &mut w.env())).is_some() {
            aborted += 1;
        }
    }
    // 10 % of 1000 with a fixed seed: a binomial draw, never near 0 or 1000.
    assert!((50..150).contains(&aborted), "{aborted} aborted");

    let none = Fraction {
        per_million: 0,
        denominator: 100,
    };
    let mut filters = chain(vec![fault(None, abort(AbortKind::Header, none))]);
    let mut h = head(
        "GET",
        "/",
        &[
            ("x-envoy-fault-abort-request", "503"),
            ("x-envoy-fault-abort-request-percentage", "100"),
        ],
    );
    assert!(
        matches!(
            filters.decode_headers(&mut h, true, &mut w.env()),
            Decoded::ToRouter
        ),
        "a header never raises the share"
    );

    // A fixed fault ignores the header (Envoy reads it for header-controlled faults only).
    let mut filters = chain(vec![fault(None, abort(AbortKind::Http(503), ALL))]);
    let mut h = head(
        "GET",
        "/",
        &[("x-envoy-fault-abort-request-percentage", "0")],
    );
    assert_eq!(
        status(&filters.decode_headers(&mut h, true, &mut w.env())),
        Some(503)
    );
}

#[test]
fn a_delay_without_an_abort_stops_counting_when_it_ends() {
    let mut w = World::new();
    let mut filters = chain(vec![fault(
        delay(DelayKind::Fixed(Duration::from_secs(1))),
        None,
    )]);
    let mut h = head("GET", "/", &[]);
    filters.decode_headers(&mut h, true, &mut w.env());
    assert_eq!(w.stats.active_faults.get(), 1);
    assert!(matches!(
        filters.on_wake(&mut h, &mut w.env()),
        Decoded::ToRouter
    ));
    assert_eq!(
        w.stats.active_faults.get(),
        0,
        "the request goes on: no longer an active fault"
    );
    filters.on_destroy(&w.stats);
    assert_eq!(w.stats.active_faults.get(), 0, "not given back twice");
}

#[test]
fn faults_overflow_counts_only_faults_that_would_be_injected() {
    let mut w = World::new();
    let config = FilterConfig::Fault(FaultConfig {
        delay: delay(DelayKind::Fixed(Duration::from_secs(1))),
        max_active_faults: Some(1),
        upstream_cluster: Some("backend".into()),
        ..FaultConfig::default()
    });
    let mut first = chain(vec![config.clone()]);
    first.decode_headers(&mut head("GET", "/", &[]), true, &mut w.env());
    // Another cluster's request is no fault candidate: no overflow for it.
    let mut other = chain(vec![config]);
    let mut env = w.env();
    env.route_cluster = Some("other");
    other.decode_headers(&mut head("GET", "/", &[]), true, &mut env);
    assert_eq!(w.stats.faults_overflow.get(), 0);
}

#[test]
fn max_active_faults_lets_requests_through_past_it() {
    let mut w = World::new();
    let config = FilterConfig::Fault(FaultConfig {
        delay: delay(DelayKind::Fixed(Duration::from_secs(1))),
        max_active_faults: Some(1),
        ..FaultConfig::default()
    });
    let mut first = chain(vec![config.clone()]);
    let mut second = chain(vec![config]);
    assert!(matches!(
        first.decode_headers(&mut head("GET", "/", &[]), true, &mut w.env()),
        Decoded::Held { .. }
    ));
    assert!(matches!(
        second.decode_headers(&mut head("GET", "/", &[]), true, &mut w.env()),
        Decoded::ToRouter
    ));
    assert_eq!(w.stats.faults_overflow.get(), 1);
}

#[test]
fn a_fault_for_another_cluster_does_not_apply() {
    let mut w = World::new();
    let config = FilterConfig::Fault(FaultConfig {
        abort: abort(AbortKind::Http(503), ALL),
        upstream_cluster: Some("other".into()),
        ..FaultConfig::default()
    });
    let mut filters = chain(vec![config]);
    let decoded = filters.decode_headers(&mut head("GET", "/", &[]), true, &mut w.env());
    assert!(matches!(decoded, Decoded::ToRouter));
}

#[test]
fn the_buffer_filter_holds_the_body_and_sizes_it() {
    let mut w = World::new();
    let buffer = FilterConfig::Buffer(BufferConfig {
        max_request_bytes: 10,
    });
    let mut filters = chain(vec![buffer.clone()]);
    let mut h = head("POST", "/", &[]);
    assert!(matches!(
        filters.decode_headers(&mut h, false, &mut w.env()),
        Decoded::Held { wake_after: None }
    ));
    assert!(matches!(
        filters.decode_data(Bytes::from_static(b"1234"), false, &mut h, &mut w.env()),
        Decoded::Held { .. }
    ));
    let decoded = filters.decode_data(Bytes::from_static(b"56"), true, &mut h, &mut w.env());
    assert!(matches!(decoded, Decoded::ToRouter));
    assert_eq!(
        h.headers.get("content-length").map(|v| &v[..]),
        Some(&b"6"[..])
    );
    assert_eq!(
        filters.take_held(),
        (
            vec![Bytes::from_static(b"1234"), Bytes::from_static(b"56")],
            true
        )
    );

    let mut filters = chain(vec![buffer]);
    let mut h = head("POST", "/", &[]);
    filters.decode_headers(&mut h, false, &mut w.env());
    let decoded = filters.decode_data(
        Bytes::from_static(b"12345678901"),
        false,
        &mut h,
        &mut w.env(),
    );
    assert_eq!(status(&decoded), Some(413));
    assert!(
        filters.hold_limit(4) >= 11,
        "reading goes on past the listener limit to the max"
    );
}

fn matcher(path: &str) -> HeaderMatcher {
    HeaderMatcher {
        name: ":path".into(),
        rule: HeaderMatchRule::String(StringMatcher {
            kind: StringMatchKind::Exact(path.into()),
            ignore_case: false,
        }),
        invert_match: false,
    }
}

fn health(pass_through: bool, mins: Vec<(String, f64)>) -> FilterConfig {
    FilterConfig::HealthCheck(HealthCheckConfig {
        pass_through_mode: pass_through,
        headers: vec![matcher("/healthz")],
        cluster_min_healthy_percentages: mins,
    })
}

fn encoded(filters: &mut StreamFilters, failed: bool) -> ResponseHead {
    let mut head = ResponseHead {
        version: Version::Http11,
        status: 200,
        reason: Bytes::new(),
        headers: Headers::new(),
    };
    let env = EncodeEnv {
        health_check_failed: failed,
        local_cluster: "front",
    };
    filters.encode_headers(&mut head, &env);
    head
}

#[test]
fn health_checks_are_answered_and_name_this_cluster() {
    let mut w = World::new();
    let mut filters = chain(vec![health(false, vec![])]);
    let decoded = filters.decode_headers(&mut head("GET", "/healthz", &[]), true, &mut w.env());
    assert_eq!(status(&decoded), Some(200));
    let head = encoded(&mut filters, false);
    assert_eq!(
        head.headers
            .get("x-envoy-upstream-healthchecked-cluster")
            .map(|v| &v[..]),
        Some(&b"front"[..])
    );

    let mut other = chain(vec![health(false, vec![])]);
    let decoded = other.decode_headers(&mut self::head("GET", "/", &[]), true, &mut w.env());
    assert!(matches!(decoded, Decoded::ToRouter), "other requests pass");
}

#[test]
fn a_failed_health_check_is_503_lh_and_marks_other_responses() {
    let mut w = World::new();
    w.failed = true;
    for pass_through in [false, true] {
        let mut filters = chain(vec![health(pass_through, vec![])]);
        let decoded = filters.decode_headers(&mut head("GET", "/healthz", &[]), true, &mut w.env());
        let Decoded::Reply(reply) = decoded else {
            panic!("{decoded:?}")
        };
        assert_eq!(reply.status, 503);
        assert_eq!(reply.flag.map(|f| f.letters()), Some("LH"));
    }
    let mut filters = chain(vec![health(false, vec![])]);
    filters.decode_headers(&mut head("GET", "/", &[]), true, &mut w.env());
    let head = encoded(&mut filters, true);
    assert_eq!(
        head.headers
            .get("x-envoy-immediate-health-check-fail")
            .map(|v| &v[..]),
        Some(&b"true"[..])
    );
}

#[test]
fn pass_through_health_checks_go_to_the_origin() {
    let mut w = World::new();
    let mut filters = chain(vec![health(true, vec![])]);
    let decoded = filters.decode_headers(&mut head("GET", "/healthz", &[]), true, &mut w.env());
    assert!(matches!(decoded, Decoded::ToRouter));
}

#[test]
fn cluster_min_healthy_percentages_read_the_clusters() {
    let mut w = World::new();
    w.clusters = vec![("backend".into(), 4, 1), ("empty".into(), 0, 0)];
    let cases = [
        (vec![("backend".to_string(), 25.0)], 200),
        (vec![("backend".to_string(), 50.0)], 503),
        (vec![("missing".to_string(), 0.0)], 503),
        (vec![("empty".to_string(), 0.0)], 200),
        (vec![("empty".to_string(), 1.0)], 503),
    ];
    for (mins, want) in cases {
        let mut filters = chain(vec![health(false, mins.clone())]);
        let decoded = filters.decode_headers(&mut head("GET", "/healthz", &[]), true, &mut w.env());
        assert_eq!(status(&decoded), Some(want), "{mins:?}");
    }
}

#[test]
fn a_health_check_with_a_body_is_answered_at_its_end_and_its_body_dropped() {
    let mut w = World::new();
    let mut filters = chain(vec![health(false, vec![])]);
    let mut h = head("POST", "/healthz", &[("content-length", "3")]);
    assert!(matches!(
        filters.decode_headers(&mut h, false, &mut w.env()),
        Decoded::Held { .. }
    ));
    filters.decode_data(Bytes::from_static(b"ab"), false, &mut h, &mut w.env());
    assert_eq!(filters.held_len(), 0, "not kept");
    assert_eq!(
        status(&filters.decode_data(Bytes::from_static(b"c"), true, &mut h, &mut w.env())),
        Some(200)
    );
}

#[test]
fn filters_run_in_order_and_the_body_follows_the_head() {
    let mut w = World::new();
    let mut filters = chain(vec![
        FilterConfig::Buffer(BufferConfig {
            max_request_bytes: 100,
        }),
        fault(delay(DelayKind::Fixed(Duration::from_secs(2))), None),
    ]);
    let mut h = head("POST", "/", &[]);
    assert!(matches!(
        filters.decode_headers(&mut h, false, &mut w.env()),
        Decoded::Held { wake_after: None }
    ));
    assert_eq!(
        w.stats.delays_injected.get(),
        0,
        "the fault filter has not seen the head yet"
    );
    let decoded = filters.decode_data(Bytes::from_static(b"body"), true, &mut h, &mut w.env());
    assert!(
        matches!(
            decoded,
            Decoded::Held {
                wake_after: Some(_)
            }
        ),
        "buffered, then delayed"
    );
    assert!(!filters.routed());
    assert!(matches!(
        filters.on_wake(&mut h, &mut w.env()),
        Decoded::ToRouter
    ));
    assert!(filters.routed());
    assert_eq!(
        filters.take_held(),
        (vec![Bytes::from_static(b"body")], true)
    );
}

/// A body that arrived whole while an earlier filter held the request reaches the next filter
/// when it gets the head, even one that waits for the body (Envoy hands it the buffered data).
#[test]
fn a_body_held_by_a_delay_reaches_the_buffer_filter_after_it() {
    let mut w = World::new();
    let mut filters = chain(vec![
        fault(delay(DelayKind::Fixed(Duration::from_secs(1))), None),
        FilterConfig::Buffer(BufferConfig {
            max_request_bytes: 1000,
        }),
    ]);
    let mut h = head("POST", "/", &[("content-length", "5")]);
    assert!(matches!(
        filters.decode_headers(&mut h, false, &mut w.env()),
        Decoded::Held {
            wake_after: Some(_)
        }
    ));
    filters.decode_data(Bytes::from_static(b"hello"), true, &mut h, &mut w.env());
    assert!(
        matches!(filters.on_wake(&mut h, &mut w.env()), Decoded::ToRouter),
        "the buffer filter sees the whole body at once and lets it go"
    );
    assert_eq!(
        filters.take_held(),
        (vec![Bytes::from_static(b"hello")], true)
    );
}
