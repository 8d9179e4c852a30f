//! The HTTP filters before the router (fault, buffer, health_check) and `typed_per_filter_config`:
//! every accepted field read into the model, every error with its exact path and message.
//! (Which of these Envoy 1.40 accepts was checked with `envoy --mode validate`; where weir is
//! stricter, the test says so.)

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use weir_config::*;

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
const BUFFER: &str = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer";
const BUFFER_PER_ROUTE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute";
const HEALTH_CHECK: &str =
    "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck";
const FILTER_CONFIG: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";

/// The connection manager's path in error messages.
const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

fn filters_path(i: usize) -> String {
    format!("{HCM}.http_filters[{i}]")
}

fn rc_path() -> String {
    format!("{HCM}.route_config")
}

fn vh_path() -> String {
    format!("{HCM}.route_config.virtual_hosts[0]")
}

fn route_path() -> String {
    format!("{HCM}.route_config.virtual_hosts[0].routes[0]")
}

fn router() -> Value {
    json!({"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}})
}

fn endpoint(port: u16) -> Value {
    json!({"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}})
}

fn fault(config: Value) -> Value {
    let mut typed = json!({"@type": FAULT});
    typed
        .as_object_mut()
        .unwrap()
        .extend(config.as_object().unwrap().clone());
    json!({"name": "fault", "typed_config": typed})
}

fn buffer(max: Value) -> Value {
    json!({"name": "buffer", "typed_config": {"@type": BUFFER, "max_request_bytes": max}})
}

fn health_check(config: Value) -> Value {
    let mut typed = json!({"@type": HEALTH_CHECK});
    typed
        .as_object_mut()
        .unwrap()
        .extend(config.as_object().unwrap().clone());
    json!({"name": "hc", "typed_config": typed})
}

/// A valid config whose `http_filters` are `filters` then the router, and whose route config,
/// virtual host and route get `typed_per_filter_config` from `rc`, `vh` and `route` when given.
fn config(filters: &[Value], rc: Option<Value>, vh: Option<Value>, route: Option<Value>) -> Value {
    let mut route_v = json!({"match": {"prefix": "/"}, "route": {"cluster": "a"}});
    if let Some(t) = route {
        route_v["typed_per_filter_config"] = t;
    }
    let mut vh_v = json!({"name": "vh", "domains": ["*"], "routes": [route_v]});
    if let Some(t) = vh {
        vh_v["typed_per_filter_config"] = t;
    }
    let mut rc_v = json!({"virtual_hosts": [vh_v]});
    if let Some(t) = rc {
        rc_v["typed_per_filter_config"] = t;
    }
    let mut http_filters: Vec<Value> = filters.to_vec();
    http_filters.push(router());
    json!({
        "static_resources": {
            "listeners": [{
                "name": "l0",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": HCM_TYPE,
                        "stat_prefix": "http",
                        "route_config": rc_v,
                        "http_filters": http_filters
                    }
                }]}]
            }],
            "clusters": [
                {"name": "a", "load_assignment": {"cluster_name": "a", "endpoints": [{"lb_endpoints": [endpoint(8081)]}]}},
                {"name": "b", "load_assignment": {"cluster_name": "b", "endpoints": [{"lb_endpoints": [endpoint(8082)]}]}}
            ]
        }
    })
}

fn with_filters(filters: &[Value]) -> Value {
    config(filters, None, None, None)
}

fn parse_ok(doc: &Value) -> Bootstrap {
    support::parse_ok(&doc.to_string())
}

#[track_caller]
fn errors(doc: &Value) -> Vec<String> {
    support::parse_errors(&doc.to_string())
}

/// Asserts `doc` fails with exactly one error, `path: message`.
#[track_caller]
fn check(doc: &Value, path: &str, message: &str) {
    assert_eq!(errors(doc), [format!("{path}: {message}")]);
}

fn hcm(b: &Bootstrap) -> &HttpConnectionManager {
    b.listeners[0].filter_chains[0]
        .http_connection_manager
        .as_ref()
        .unwrap()
}

/// The filters before the router, as (name, disabled, config).
fn filters(b: &Bootstrap) -> Vec<(String, bool, FilterConfig)> {
    let list = &hcm(b).http_filters;
    assert!(matches!(list.last(), Some(HttpFilter::Router { .. })));
    list[..list.len() - 1]
        .iter()
        .map(|f| match f {
            HttpFilter::Filter {
                name,
                disabled,
                config,
            } => (name.clone(), *disabled, config.clone()),
            HttpFilter::Router { .. } => panic!("two routers"),
        })
        .collect()
}

fn only_fault(b: &Bootstrap) -> FaultConfig {
    match &filters(b)[..] {
        [(_, _, FilterConfig::Fault(f))] => f.clone(),
        other => panic!("{other:?}"),
    }
}

/// A share out of 100 (the default denominator).
fn percent(per_million: u32) -> Fraction {
    Fraction {
        per_million,
        denominator: 100,
    }
}

/// A share with another denominator.
fn fraction(per_million: u32, denominator: u32) -> Fraction {
    Fraction {
        per_million,
        denominator,
    }
}

#[test]
fn fault_with_every_field() {
    let doc = with_filters(&[fault(json!({
        "delay": {"fixed_delay": "1.5s", "percentage": {"numerator": 25, "denominator": "TEN_THOUSAND"}},
        "abort": {"http_status": 503, "percentage": {"numerator": 10}},
        "upstream_cluster": "b",
        "headers": [{"name": "X-Fault", "string_match": {"exact": "yes"}}],
        "downstream_nodes": ["n1", "n2"],
        "max_active_faults": 7,
        "delay_percent_runtime": "k1",
        "abort_percent_runtime": "k2",
        "delay_duration_runtime": "k3",
        "abort_http_status_runtime": "k4",
        "max_active_faults_runtime": "k5",
        "response_rate_limit_percent_runtime": "k6",
        "abort_grpc_status_runtime": "k7",
        "disable_downstream_cluster_stats": true
    }))]);
    let b = parse_ok(&doc);
    let (name, disabled, _) = &filters(&b)[0];
    assert_eq!((name.as_str(), *disabled), ("fault", false));
    let f = only_fault(&b);
    assert_eq!(
        f.delay,
        Some(FaultDelay {
            kind: DelayKind::Fixed(Duration::from_millis(1500)),
            percentage: fraction(2_500, 10_000),
        })
    );
    assert_eq!(
        f.abort,
        Some(FaultAbort {
            kind: AbortKind::Http(503),
            percentage: percent(100_000),
        })
    );
    assert_eq!(f.upstream_cluster.as_deref(), Some("b"));
    assert_eq!(f.headers.len(), 1);
    assert_eq!(f.headers[0].name, "x-fault");
    assert!(matches!(
        &f.headers[0].rule,
        HeaderMatchRule::String(StringMatcher { kind: StringMatchKind::Exact(v), .. }) if v == "yes"
    ));
    assert_eq!(f.downstream_nodes, ["n1", "n2"]);
    assert_eq!(f.max_active_faults, Some(7));
    let keys = &f.runtime;
    assert_eq!(
        [
            &keys.delay_percent,
            &keys.abort_percent,
            &keys.delay_duration,
            &keys.abort_http_status,
            &keys.max_active_faults,
        ],
        ["k1", "k2", "k3", "k4", "k5"]
    );
}

#[test]
fn fault_header_controlled_and_grpc() {
    let b = parse_ok(&with_filters(&[fault(json!({
        "delay": {"header_delay": {}},
        "abort": {"header_abort": {}, "percentage": {"numerator": 3, "denominator": "MILLION"}}
    }))]));
    let f = only_fault(&b);
    assert_eq!(f.delay.unwrap().kind, DelayKind::Header);
    assert_eq!(
        f.abort,
        Some(FaultAbort {
            kind: AbortKind::Header,
            percentage: fraction(3, 1_000_000),
        })
    );
    assert_eq!(f.upstream_cluster, None);
    assert!(f.headers.is_empty() && f.downstream_nodes.is_empty());
    assert_eq!(f.max_active_faults, None);
    assert_eq!(f.runtime.abort_percent, "fault.http.abort.abort_percent");

    let b = parse_ok(&with_filters(&[fault(
        json!({"abort": {"grpc_status": 14}, "upstream_cluster": ""}),
    )]));
    let f = only_fault(&b);
    assert_eq!(f.abort.unwrap().kind, AbortKind::Grpc(14));
    // proto3: an empty string is "not set".
    assert_eq!(f.upstream_cluster, None);
    assert!(f.delay.is_none());
}

#[test]
fn fault_percentages() {
    let abort = |percentage: Value| {
        let doc = with_filters(&[fault(
            json!({"abort": {"http_status": 500, "percentage": percentage}}),
        )]);
        only_fault(&parse_ok(&doc)).abort.unwrap().percentage
    };
    assert_eq!(abort(json!({"numerator": 100})), percent(1_000_000));
    assert_eq!(abort(json!({"numerator": 1})), percent(10_000));
    assert_eq!(abort(json!({})), percent(0));
    // Enum numbers and string numerators, as proto3 JSON allows.
    assert_eq!(
        abort(json!({"numerator": "5", "denominator": 1})),
        fraction(500, 10_000)
    );
    assert_eq!(
        abort(json!({"numerator": 7, "denominator": 2})),
        fraction(7, 1_000_000)
    );
    // More than the denominator: capped at 100 %, as Envoy caps it.
    assert_eq!(abort(json!({"numerator": 200})), percent(1_000_000));
    assert_eq!(
        abort(json!({"numerator": u32::MAX, "denominator": "HUNDRED"})),
        percent(1_000_000)
    );
    // Absent: Envoy's default FractionalPercent, 0 % (Envoy 1.40 answers 200, not the 503).
    let b = parse_ok(&with_filters(&[fault(
        json!({"abort": {"http_status": 503}, "delay": {"fixed_delay": "1s"}}),
    )]));
    let f = only_fault(&b);
    assert_eq!(f.abort.unwrap().percentage, percent(0));
    assert_eq!(f.delay.unwrap().percentage, percent(0));
}

#[test]
fn fault_status_range() {
    for status in [200, 599] {
        let b = parse_ok(&with_filters(&[fault(
            json!({"abort": {"http_status": status}}),
        )]));
        assert_eq!(only_fault(&b).abort.unwrap().kind, AbortKind::Http(status));
    }
    let abort = format!("{}.typed_config.abort", filters_path(0));
    for status in [0, 199, 600, 70_000] {
        check(
            &with_filters(&[fault(json!({"abort": {"http_status": status}}))]),
            &format!("{abort}.http_status"),
            &format!("http_status {status} is out of range (200..=599)"),
        );
    }
}

#[test]
fn fault_errors() {
    let tc = format!("{}.typed_config", filters_path(0));
    let cases: &[(Value, &str, &str)] = &[
        (
            json!({"abort": {"percentage": {"numerator": 1}}}),
            "abort",
            "an abort needs one of `http_status`, `grpc_status`, `header_abort`",
        ),
        (
            json!({"abort": {"http_status": 503, "grpc_status": 2}}),
            "abort.grpc_status",
            "only one of `http_status`, `grpc_status`, `header_abort` may be set",
        ),
        (
            json!({"abort": {"header_abort": {"x": 1}}}),
            "abort.header_abort.x",
            "unknown field (fields weir supports here: none)",
        ),
        (
            json!({"delay": {}}),
            "delay",
            "a delay needs one of `fixed_delay`, `header_delay`",
        ),
        (
            json!({"delay": {"fixed_delay": "1s", "header_delay": {}}}),
            "delay.header_delay",
            "only one of `fixed_delay`, `header_delay` may be set",
        ),
        (
            json!({"delay": {"fixed_delay": "0s"}}),
            "delay.fixed_delay",
            "fixed_delay must be greater than 0s",
        ),
        (
            json!({"delay": {"fixed_delay": "1s", "type": "FIXED"}}),
            "delay.type",
            "unknown field (fields weir supports here: fixed_delay, header_delay, percentage)",
        ),
        (
            json!({"delay": {"fixed_delay": "1s", "percentage": {"numerator": 1, "denominator": "BILLION"}}}),
            "delay.percentage.denominator",
            "`BILLION` is not a valid denominator; expected one of HUNDRED, TEN_THOUSAND, MILLION",
        ),
        (
            json!({"delay": {"fixed_delay": "1s", "percentage": {"numerator": -1}}}),
            "delay.percentage.numerator",
            "must not be negative",
        ),
        (
            json!({"response_rate_limit": {"fixed_limit": {"limit_kbps": 1}}}),
            "response_rate_limit",
            "`response_rate_limit` is not supported yet",
        ),
        (
            json!({"filter_metadata": {"a": 1}}),
            "filter_metadata",
            "`filter_metadata` is not supported yet",
        ),
        (
            json!({"upstream_cluster": "nope"}),
            "upstream_cluster",
            "unknown cluster `nope` (static_resources.clusters has: a, b)",
        ),
        (
            json!({"headers": [{"name": "x", "exact_match": "a", "prefix_match": "b"}]}),
            "headers[0].prefix_match",
            "a header matcher takes only one rule, found exact_match, prefix_match",
        ),
        (
            json!({"downstream_nodes": ["a", 1]}),
            "downstream_nodes[1]",
            "expected a string, found the number 1 (quote it in YAML)",
        ),
        (
            json!({"max_active_faults": -1}),
            "max_active_faults",
            "must not be negative",
        ),
        (
            json!({"abort_percent_runtime": 5}),
            "abort_percent_runtime",
            "expected a string, found the number 5 (quote it in YAML)",
        ),
        (
            json!({"disable_downstream_cluster_stats": "yes"}),
            "disable_downstream_cluster_stats",
            "expected true or false, found the string \"yes\"",
        ),
    ];
    for (config, field, message) in cases {
        check(
            &with_filters(&[fault(config.clone())]),
            &format!("{tc}.{field}"),
            message,
        );
    }
    let e = errors(&with_filters(&[fault(json!({"abrot": {}}))]));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(&format!("{tc}.abrot: unknown field; did you mean `abort`?")),
        "{e:?}"
    );
}

#[test]
fn buffer_filter() {
    let b = parse_ok(&with_filters(&[buffer(json!(65536))]));
    let f = filters(&b);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].0.as_str(), f[0].1), ("buffer", false));
    assert!(matches!(
        f[0].2,
        FilterConfig::Buffer(BufferConfig {
            max_request_bytes: 65536
        })
    ));

    let tc = format!("{}.typed_config", filters_path(0));
    check(
        &with_filters(&[buffer(json!(0))]),
        &format!("{tc}.max_request_bytes"),
        "max_request_bytes must be greater than 0",
    );
    check(
        &with_filters(&[json!({"name": "buffer", "typed_config": {"@type": BUFFER}})]),
        &format!("{tc}.max_request_bytes"),
        "`max_request_bytes` is required",
    );
    check(
        &with_filters(&[buffer(json!(4_294_967_296_u64))]),
        &format!("{tc}.max_request_bytes"),
        "4294967296 is too large (maximum 4294967295)",
    );
}

#[test]
fn health_check_filter() {
    let b = parse_ok(&with_filters(&[health_check(json!({
        "pass_through_mode": false,
        "headers": [{"name": ":path", "string_match": {"exact": "/healthz"}}],
        "cluster_min_healthy_percentages": {"a": {"value": 50}, "b": {"value": "12.5"}}
    }))]));
    let (_, _, FilterConfig::HealthCheck(hc)) = &filters(&b)[0] else {
        panic!()
    };
    assert!(!hc.pass_through_mode);
    assert_eq!(hc.headers[0].name, ":path");
    assert_eq!(
        hc.cluster_min_healthy_percentages,
        [("a".to_owned(), 50.0), ("b".to_owned(), 12.5)]
    );

    let b = parse_ok(&with_filters(&[health_check(
        json!({"pass_through_mode": true, "cluster_min_healthy_percentages": {"a": {}}}),
    )]));
    let (_, _, FilterConfig::HealthCheck(hc)) = &filters(&b)[0] else {
        panic!()
    };
    assert!(hc.pass_through_mode && hc.headers.is_empty());
    assert_eq!(hc.cluster_min_healthy_percentages, [("a".to_owned(), 0.0)]);
}

#[test]
fn health_check_errors() {
    let tc = format!("{}.typed_config", filters_path(0));
    let cases: &[(Value, &str, &str)] = &[
        (
            json!({}),
            "pass_through_mode",
            "`pass_through_mode` is required",
        ),
        (
            json!({"pass_through_mode": "no"}),
            "pass_through_mode",
            "expected true or false, found the string \"no\"",
        ),
        // Envoy: "cache_time_ms must not be set when path_through_mode is disabled".
        (
            json!({"pass_through_mode": false, "cache_time": "1s"}),
            "cache_time",
            "cache_time may only be set with pass_through_mode: true (Envoy rejects it otherwise)",
        ),
        (
            json!({"pass_through_mode": true, "cache_time": "1s"}),
            "cache_time",
            "`cache_time` is not supported yet",
        ),
        // Envoy accepts an unknown cluster here (and fails the check at run time); weir says so
        // at load, as it does for every cluster a config names.
        (
            json!({"pass_through_mode": false, "cluster_min_healthy_percentages": {"zz": {"value": 1}}}),
            "cluster_min_healthy_percentages.zz",
            "unknown cluster `zz` (static_resources.clusters has: a, b)",
        ),
        (
            json!({"pass_through_mode": false, "cluster_min_healthy_percentages": {"a": {"value": 100.5}}}),
            "cluster_min_healthy_percentages.a.value",
            "100.5 is out of range (0..=100)",
        ),
        (
            json!({"pass_through_mode": false, "cluster_min_healthy_percentages": {"a": {"value": -1}}}),
            "cluster_min_healthy_percentages.a.value",
            "-1 is out of range (0..=100)",
        ),
        (
            json!({"pass_through_mode": false, "cluster_min_healthy_percentages": {"a": {"value": true}}}),
            "cluster_min_healthy_percentages.a.value",
            "expected a number, found `true`",
        ),
        (
            json!({"pass_through_mode": false, "cluster_min_healthy_percentages": ["a"]}),
            "cluster_min_healthy_percentages",
            "expected a map from cluster name to {value: percent}, found a list",
        ),
        (
            json!({"pass_through_mode": false, "headers": [{"name": ":path", "string_match": {}}]}),
            "headers[0].string_match",
            "a string matcher needs one of `exact`, `prefix`, `suffix`, `contains` or `safe_regex`",
        ),
    ];
    for (config, field, message) in cases {
        check(
            &with_filters(&[health_check(config.clone())]),
            &format!("{tc}.{field}"),
            message,
        );
    }
}

#[test]
fn filter_entry_fields() {
    let mut disabled = fault(json!({"abort": {"http_status": 503}}));
    disabled["disabled"] = json!(true);
    let mut optional = buffer(json!(10));
    optional["is_optional"] = json!(true);
    let mut both = health_check(json!({"pass_through_mode": true}));
    both["disabled"] = json!(false);
    both["is_optional"] = json!(false);
    let b = parse_ok(&with_filters(&[disabled, optional, both]));
    let got: Vec<(String, bool)> = filters(&b).into_iter().map(|(n, d, _)| (n, d)).collect();
    assert_eq!(
        got,
        [
            ("fault".to_owned(), true),
            ("buffer".to_owned(), false),
            ("hc".to_owned(), false)
        ]
    );

    let mut bad = buffer(json!(10));
    bad["disabled"] = json!("yes");
    check(
        &with_filters(&[bad]),
        &format!("{}.disabled", filters_path(0)),
        "expected true or false, found the string \"yes\"",
    );
    let mut bad = buffer(json!(10));
    bad["is_optional"] = json!(1);
    check(
        &with_filters(&[bad]),
        &format!("{}.is_optional", filters_path(0)),
        "expected true or false, found the number 1",
    );
    let mut bad = buffer(json!(10));
    bad["config_discovery"] = json!({});
    check(
        &with_filters(&[bad]),
        &format!("{}.config_discovery", filters_path(0)),
        "this Envoy field is not supported by weir yet",
    );
}

#[test]
fn router_placement_with_filters() {
    // Envoy: "the last (terminal) filter (envoy.filters.http.router) in the chain cannot be
    // disabled by default".
    let mut doc = with_filters(&[]);
    doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
        [0]["disabled"] = json!(true);
    check(
        &doc,
        &format!("{}.disabled", filters_path(0)),
        "the router (the last, terminal filter) cannot be disabled",
    );
    // The router's own `is_optional` and `disabled: false` are accepted; a bad one is not.
    let mut doc = with_filters(&[]);
    let entry = &mut doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"][0];
    entry["is_optional"] = json!(true);
    entry["disabled"] = json!(false);
    parse_ok(&doc);
    doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
        [0]["is_optional"] = json!("yes");
    check(
        &doc,
        &format!("{}.is_optional", filters_path(0)),
        "expected true or false, found the string \"yes\"",
    );
    // A filter after the router.
    let mut doc = with_filters(&[]);
    doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"]
        .as_array_mut()
        .unwrap()
        .push(buffer(json!(10)));
    check(
        &doc,
        &filters_path(0),
        "the router must be the last HTTP filter",
    );
    // Two filters of one name are accepted, as Envoy accepts them.
    let b = parse_ok(&with_filters(&[buffer(json!(1)), buffer(json!(2))]));
    assert_eq!(filters(&b).len(), 2);
}

fn filter_config(v: Value) -> Value {
    let mut t = json!({"@type": FILTER_CONFIG});
    t.as_object_mut()
        .unwrap()
        .extend(v.as_object().unwrap().clone());
    t
}

/// The three filters, the fault one disabled in `http_filters`.
fn three() -> Vec<Value> {
    let mut f = fault(json!({"abort": {"http_status": 503, "percentage": {"numerator": 100}}}));
    f["disabled"] = json!(true);
    vec![
        f,
        buffer(json!(1024)),
        health_check(json!({"pass_through_mode": false})),
    ]
}

fn kinds(list: &[PerFilterConfig]) -> Vec<(String, String)> {
    list.iter()
        .map(|p| {
            let kind = match &p.config {
                PerFilter::Disabled => "disabled".to_owned(),
                PerFilter::Enabled => "enabled".to_owned(),
                PerFilter::Fault(f) => format!("fault {:?}", f.abort.map(|a| a.kind)),
                PerFilter::Buffer(b) => format!("buffer {}", b.max_request_bytes),
            };
            (p.filter.clone(), kind)
        })
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

#[test]
fn per_filter_configs_at_every_level() {
    let doc = config(
        &three(),
        Some(json!({
            "fault": {"@type": FAULT, "abort": {"http_status": 502}},
            "buffer": filter_config(json!({"disabled": true}))
        })),
        Some(json!({
            "fault": filter_config(json!({"config": {}})),
            "buffer": {"@type": BUFFER_PER_ROUTE, "buffer": {"max_request_bytes": 7}},
            "hc": filter_config(json!({"disabled": true, "is_optional": true}))
        })),
        Some(json!({
            "fault": filter_config(json!({"config": {"@type": FAULT, "abort": {"grpc_status": 4}}, "is_optional": false, "disabled": false})),
            "buffer": {"@type": BUFFER_PER_ROUTE, "disabled": true},
            // A key that names no filter: Envoy accepts it (the route config could serve
            // another connection manager), so weir does too.
            "envoy.filters.http.lua": filter_config(json!({"disabled": true})),
            "other": {"@type": FAULT}
        })),
    );
    let b = parse_ok(&doc);
    let rc = &hcm(&b).route_config;
    assert_eq!(
        kinds(&rc.per_filter),
        [
            pair("buffer", "disabled"),
            pair("fault", "fault Some(Http(502))")
        ]
    );
    let vh = &rc.virtual_hosts[0];
    assert_eq!(
        kinds(&vh.per_filter),
        [
            pair("buffer", "buffer 7"),
            pair("fault", "enabled"),
            pair("hc", "disabled")
        ]
    );
    assert_eq!(
        kinds(&vh.routes[0].per_filter),
        [
            pair("buffer", "disabled"),
            pair("envoy.filters.http.lua", "disabled"),
            pair("fault", "fault Some(Grpc(4))"),
            pair("other", "fault None"),
        ]
    );
    // Without typed_per_filter_config: nothing.
    let b = parse_ok(&with_filters(&three()));
    let rc = &hcm(&b).route_config;
    assert!(rc.per_filter.is_empty() && rc.virtual_hosts[0].per_filter.is_empty());
    assert!(rc.virtual_hosts[0].routes[0].per_filter.is_empty());
}

#[test]
fn a_disabled_filter_config_ignores_its_config() {
    // Envoy does not even read `config` when `disabled` is true.
    let doc = config(
        &three(),
        None,
        None,
        Some(
            json!({"fault": filter_config(json!({"disabled": true, "config": {"@type": FAULT, "abort": {"http_status": 1}}}))}),
        ),
    );
    let b = parse_ok(&doc);
    assert_eq!(
        kinds(&hcm(&b).route_config.virtual_hosts[0].routes[0].per_filter),
        [pair("fault", "disabled")]
    );
}

#[test]
fn per_filter_config_errors() {
    let route = route_path();
    let tpfc = format!("{route}.typed_per_filter_config");
    let cases: Vec<(Value, String, String)> = vec![
        (
            json!(["fault"]),
            tpfc.clone(),
            "expected a map from filter name to config, found a list".to_owned(),
        ),
        (
            json!({"fault": {"abort": {"http_status": 503}}}),
            format!("{tpfc}.fault.@type"),
            "`@type` is required: weir picks the filter by its type".to_owned(),
        ),
        // Envoy: "Empty route/virtual host per filter configuration for fault filter".
        (
            json!({"fault": filter_config(json!({}))}),
            format!("{tpfc}.fault.config"),
            "`config` is required unless `disabled` is true (`config: {}` enables a filter that is disabled in http_filters)".to_owned(),
        ),
        (
            json!({"fault": filter_config(json!({"disabled": false}))}),
            format!("{tpfc}.fault.config"),
            "`config` is required unless `disabled` is true (`config: {}` enables a filter that is disabled in http_filters)".to_owned(),
        ),
        (
            json!({"fault": filter_config(json!({"disabled": "no"}))}),
            format!("{tpfc}.fault.disabled"),
            "expected true or false, found the string \"no\"".to_owned(),
        ),
        (
            json!({"fault": filter_config(json!({"disabled": true, "is_optional": 0}))}),
            format!("{tpfc}.fault.is_optional"),
            "expected true or false, found the number 0".to_owned(),
        ),
        (
            json!({"fault": filter_config(json!({"config": filter_config(json!({"disabled": true}))}))}),
            format!("{tpfc}.fault.config.@type"),
            "a FilterConfig's `config` is the filter's own per-route config, not another FilterConfig".to_owned(),
        ),
        // Envoy accepts a per-route config of another filter's type (and ignores it at run
        // time); weir says so.
        (
            json!({"fault": {"@type": BUFFER_PER_ROUTE, "disabled": true}}),
            format!("{tpfc}.fault.@type"),
            "`fault` is the fault filter in http_filters, which does not take a envoy.extensions.filters.http.buffer.v3.BufferPerRoute config".to_owned(),
        ),
        (
            json!({"buffer": filter_config(json!({"config": {"@type": FAULT}}))}),
            format!("{tpfc}.buffer.config.@type"),
            "`buffer` is the buffer filter in http_filters, which does not take a envoy.extensions.filters.http.fault.v3.HTTPFault config".to_owned(),
        ),
        // Envoy: "Unable to unpack as envoy.extensions.filters.http.buffer.v3.BufferPerRoute".
        (
            json!({"buffer": {"@type": BUFFER, "max_request_bytes": 5}}),
            format!("{tpfc}.buffer.@type"),
            format!("the buffer filter's per-route config is {BUFFER_PER_ROUTE}"),
        ),
        // Envoy: "The filter hc doesn't support virtual host or route specific configurations".
        (
            json!({"hc": {"@type": HEALTH_CHECK, "pass_through_mode": true}}),
            format!("{tpfc}.hc.@type"),
            format!("the health_check filter takes no per-route config (a {FILTER_CONFIG} can still disable it)"),
        ),
        (
            json!({"envoy.filters.http.router": {"@type": ROUTER_TYPE}}),
            format!("{tpfc}.envoy.filters.http.router.@type"),
            format!("the router takes no per-route config (a {FILTER_CONFIG} can still disable it)"),
        ),
        // Envoy accepts this one; weir has no meaning for a route without its router.
        (
            json!({"envoy.filters.http.router": filter_config(json!({"disabled": true}))}),
            format!("{tpfc}.envoy.filters.http.router.disabled"),
            "the router cannot be disabled".to_owned(),
        ),
        (
            json!({"fault": {"@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute"}}),
            format!("{tpfc}.fault.@type"),
            format!("per-route config type `type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute` is not supported yet (weir supports {FILTER_CONFIG}, {FAULT} and {BUFFER_PER_ROUTE})"),
        ),
        // is_optional makes Envoy skip a type it does not know; weir does not skip silently.
        (
            json!({"fault": filter_config(json!({"is_optional": true, "config": {"@type": "type.googleapis.com/google.protobuf.Struct"}}))}),
            format!("{tpfc}.fault.config.@type"),
            format!("per-route config type `type.googleapis.com/google.protobuf.Struct` is not supported yet (weir supports {FILTER_CONFIG}, {FAULT} and {BUFFER_PER_ROUTE})"),
        ),
        // Envoy: "BufferPerRouteValidationError.Disabled: value must equal true".
        (
            json!({"buffer": {"@type": BUFFER_PER_ROUTE, "disabled": false}}),
            format!("{tpfc}.buffer.disabled"),
            "`disabled` must be true (to override the config, use `buffer`)".to_owned(),
        ),
        (
            json!({"buffer": {"@type": BUFFER_PER_ROUTE}}),
            format!("{tpfc}.buffer"),
            "BufferPerRoute needs one of `disabled`, `buffer`".to_owned(),
        ),
        (
            json!({"buffer": {"@type": BUFFER_PER_ROUTE, "disabled": true, "buffer": {"max_request_bytes": 1}}}),
            format!("{tpfc}.buffer.buffer"),
            "only one of `disabled`, `buffer` may be set".to_owned(),
        ),
        (
            json!({"buffer": {"@type": BUFFER_PER_ROUTE, "buffer": {}}}),
            format!("{tpfc}.buffer.buffer.max_request_bytes"),
            "`max_request_bytes` is required".to_owned(),
        ),
        (
            json!({"buffer": {"@type": BUFFER_PER_ROUTE, "buffer": {"@type": BUFFER, "max_request_bytes": 1}}}),
            format!("{tpfc}.buffer.buffer.@type"),
            "unknown field (fields weir supports here: max_request_bytes)".to_owned(),
        ),
        (
            json!({"fault": {"@type": FAULT, "abort": {"http_status": 700}}}),
            format!("{tpfc}.fault.abort.http_status"),
            "http_status 700 is out of range (200..=599)".to_owned(),
        ),
        (
            json!({"fault": {"@type": FAULT, "upstream_cluster": "zz"}}),
            format!("{tpfc}.fault.upstream_cluster"),
            "unknown cluster `zz` (static_resources.clusters has: a, b)".to_owned(),
        ),
    ];
    for (per_filter, path, message) in cases {
        check(
            &config(&three(), None, None, Some(per_filter.clone())),
            &path,
            &message,
        );
    }
    // The same checks at the other two levels.
    let bad = json!({"fault": filter_config(json!({}))});
    check(
        &config(&three(), None, Some(bad.clone()), None),
        &format!("{}.typed_per_filter_config.fault.config", vh_path()),
        "`config` is required unless `disabled` is true (`config: {}` enables a filter that is disabled in http_filters)",
    );
    check(
        &config(&three(), Some(bad), None, None),
        &format!("{}.typed_per_filter_config.fault.config", rc_path()),
        "`config` is required unless `disabled` is true (`config: {}` enables a filter that is disabled in http_filters)",
    );
    // Weighted clusters' typed_per_filter_config is still refused.
    let mut doc = config(&three(), None, None, None);
    doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
        ["virtual_hosts"][0]["routes"][0]["route"] = json!({"weighted_clusters": {"clusters": [
        {"name": "a", "weight": 1, "typed_per_filter_config": {}}
    ]}});
    check(
        &doc,
        &format!("{route}.route.weighted_clusters.clusters[0].typed_per_filter_config"),
        "typed_per_filter_config is supported on routes, virtual hosts and route_config, not here yet",
    );
}

#[test]
fn written_in_yaml() {
    let yaml = format!(
        r#"
static_resources:
  clusters:
    - name: app
      load_assignment:
        cluster_name: app
        endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8081 }} }} }} }}] }}]
  listeners:
    - address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
      filter_chains:
        - filters:
            - name: hcm
              typed_config:
                "@type": {HCM_TYPE}
                stat_prefix: s
                route_config:
                  virtual_hosts:
                    - name: vh
                      domains: ["*"]
                      routes:
                        - match: {{ prefix: / }}
                          route: {{ cluster: app }}
                          typed_per_filter_config:
                            envoy.filters.http.fault:
                              "@type": {FILTER_CONFIG}
                              disabled: true
                http_filters:
                  - name: envoy.filters.http.fault
                    typed_config:
                      "@type": {FAULT}
                      delay:
                        fixed_delay: {{ seconds: 2 }}
                        percentage: {{ numerator: 50 }}
                  - name: envoy.filters.http.router
                    typed_config: {{ "@type": {ROUTER_TYPE} }}
"#
    );
    let b = match parse(&yaml) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let f = only_fault(&b);
    assert_eq!(
        f.delay,
        Some(FaultDelay {
            kind: DelayKind::Fixed(Duration::from_secs(2)),
            percentage: percent(500_000),
        })
    );
    assert_eq!(
        kinds(&hcm(&b).route_config.virtual_hosts[0].routes[0].per_filter),
        [pair("envoy.filters.http.fault", "disabled")]
    );
}
