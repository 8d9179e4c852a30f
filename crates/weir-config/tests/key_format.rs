//! `header_key_format` on the connection manager and on clusters (through
//! `typed_extension_protocol_options` or the deprecated `http_protocol_options`), and a
//! listener's `traffic_direction`: read into the model, with errors naming their paths.

use serde_json::{Value, json};
use weir_config::*;

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const PRESERVE_TYPE: &str = "type.googleapis.com/envoy.extensions.http.header_formatters.preserve_case.v3.PreserveCaseFormatterConfig";
const OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
const CLUSTER: &str = "static_resources.clusters[0]";

/// A valid config with `hcm`'s fields in the connection manager, `cluster`'s in the cluster
/// and `listener`'s in the listener.
fn config(hcm: Value, cluster: Value, listener: Value) -> Value {
    let mut typed = json!({
        "@type": HCM_TYPE,
        "stat_prefix": "http",
        "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "a"}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router",
                          "typed_config": {"@type": ROUTER_TYPE}}]
    });
    typed
        .as_object_mut()
        .unwrap()
        .extend(hcm.as_object().unwrap().clone());
    let mut l = json!({
        "name": "l0",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": typed
        }]}]
    });
    l.as_object_mut()
        .unwrap()
        .extend(listener.as_object().unwrap().clone());
    let mut c = json!({"name": "a", "load_assignment": {"cluster_name": "a", "endpoints": [
        {"lb_endpoints": [{"endpoint": {"address": {"socket_address":
            {"address": "127.0.0.1", "port_value": 8081}}}}]}]}});
    c.as_object_mut()
        .unwrap()
        .extend(cluster.as_object().unwrap().clone());
    json!({"static_resources": {"listeners": [l], "clusters": [c]}})
}

fn parse_ok(doc: &Value) -> Bootstrap {
    parse(&doc.to_string()).unwrap_or_else(|e| panic!("config should parse:\n{e}\n{doc:#}"))
}

fn hcm_format(doc: &Value) -> HeaderKeyFormat {
    let b = parse_ok(doc);
    let hcm = b.listeners[0].filter_chains[0]
        .http_connection_manager
        .as_ref();
    hcm.unwrap().header_key_format
}

fn cluster_format(doc: &Value) -> HeaderKeyFormat {
    parse_ok(doc).clusters[0].header_key_format
}

#[track_caller]
fn check(doc: &Value, path: &str, message: &str) {
    match parse(&doc.to_string()) {
        Ok(_) => panic!("config should not parse:\n{doc:#}"),
        Err(e) => {
            let found: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
            assert_eq!(found, [format!("{path}: {message}")]);
        }
    }
}

fn preserve(config: Value) -> Value {
    let mut typed = json!({"@type": PRESERVE_TYPE});
    typed
        .as_object_mut()
        .unwrap()
        .extend(config.as_object().unwrap().clone());
    json!({"stateful_formatter": {
        "name": "envoy.http.stateful_header_formatters.preserve_case",
        "typed_config": typed
    }})
}

/// Cluster fields setting `format` through `typed_extension_protocol_options`.
fn typed_options(format: Value) -> Value {
    json!({"typed_extension_protocol_options": {OPTIONS: {
        "@type": format!("type.googleapis.com/{OPTIONS}"),
        "explicit_http_config": {"http_protocol_options": {"header_key_format": format}}
    }}})
}

#[test]
fn the_connection_manager_reads_both_formats() {
    let none = json!({});
    assert_eq!(
        hcm_format(&config(json!({}), json!({}), json!({}))),
        HeaderKeyFormat::Lower
    );
    let proper = json!({"http_protocol_options": {"header_key_format": {"proper_case_words": {}}}});
    assert_eq!(
        hcm_format(&config(proper, none.clone(), none.clone())),
        HeaderKeyFormat::ProperCase
    );
    let hcm = json!({"http_protocol_options": {"header_key_format": preserve(json!({}))}});
    assert_eq!(
        hcm_format(&config(hcm, none.clone(), none.clone())),
        HeaderKeyFormat::PreserveCase {
            forward_reason_phrase: false,
            proper_case_envoy_headers: false
        }
    );
    let hcm = json!({"http_protocol_options": {"header_key_format": preserve(json!({
        "forward_reason_phrase": true, "formatter_type_on_envoy_headers": "PROPER_CASE"}))}});
    assert_eq!(
        hcm_format(&config(hcm, none.clone(), none)),
        HeaderKeyFormat::PreserveCase {
            forward_reason_phrase: true,
            proper_case_envoy_headers: true
        }
    );
}

#[test]
fn a_cluster_reads_its_format_from_typed_options_or_the_deprecated_field() {
    let none = json!({});
    assert_eq!(
        cluster_format(&config(none.clone(), none.clone(), none.clone())),
        HeaderKeyFormat::Lower
    );
    let deprecated =
        json!({"http_protocol_options": {"header_key_format": {"proper_case_words": {}}}});
    assert_eq!(
        cluster_format(&config(none.clone(), deprecated.clone(), none.clone())),
        HeaderKeyFormat::ProperCase
    );
    let typed = typed_options(preserve(json!({"forward_reason_phrase": true})));
    let want = HeaderKeyFormat::PreserveCase {
        forward_reason_phrase: true,
        proper_case_envoy_headers: false,
    };
    assert_eq!(
        cluster_format(&config(none.clone(), typed.clone(), none.clone())),
        want
    );
    // Both: the typed options win, as in Envoy.
    let mut both = typed;
    both.as_object_mut()
        .unwrap()
        .extend(deprecated.as_object().unwrap().clone());
    assert_eq!(cluster_format(&config(none.clone(), both, none)), want);
}

#[test]
fn what_weir_does_not_do_is_an_error_at_its_path() {
    let none = json!({});
    let hkf = format!("{HCM}.http_protocol_options.header_key_format");
    check(
        &config(
            json!({"http_protocol_options": {"header_key_format": {}}}),
            none.clone(),
            none.clone(),
        ),
        &hkf,
        "`header_key_format` needs `proper_case_words` or `stateful_formatter` (as in Envoy)",
    );
    let other = json!({"stateful_formatter": {"name": "x", "typed_config": {"@type": "type.googleapis.com/x.Other"}}});
    check(
        &config(
            json!({"http_protocol_options": {"header_key_format": other}}),
            none.clone(),
            none.clone(),
        ),
        &format!("{hkf}.stateful_formatter.typed_config.@type"),
        &format!(
            "header formatter `type.googleapis.com/x.Other` is not supported (weir supports {PRESERVE_TYPE})"
        ),
    );
    let bad = preserve(json!({"formatter_type_on_envoy_headers": "LOUD"}));
    let e = parse(
        &config(
            json!({"http_protocol_options": {"header_key_format": bad}}),
            none.clone(),
            none.clone(),
        )
        .to_string(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "{hkf}.stateful_formatter.typed_config.formatter_type_on_envoy_headers"
        )),
        "{e}"
    );
    check(
        &config(
            none.clone(),
            json!({"http_protocol_options": {"enable_trailers": true}}),
            none.clone(),
        ),
        &format!("{CLUSTER}.http_protocol_options.enable_trailers"),
        "this Envoy field is not supported by weir yet",
    );
    let mut typed = typed_options(json!({"proper_case_words": {}}));
    typed["typed_extension_protocol_options"][OPTIONS]["common_http_protocol_options"] = json!({});
    check(
        &config(none.clone(), typed, none.clone()),
        &format!(
            "{CLUSTER}.typed_extension_protocol_options.{OPTIONS}.common_http_protocol_options"
        ),
        "this Envoy field is not supported by weir yet",
    );
    let mut h2 = typed_options(json!({"proper_case_words": {}}));
    h2["typed_extension_protocol_options"][OPTIONS]["explicit_http_config"] =
        json!({"http2_protocol_options": {}});
    check(
        &config(none.clone(), h2, none.clone()),
        &format!(
            "{CLUSTER}.typed_extension_protocol_options.{OPTIONS}.explicit_http_config.http2_protocol_options"
        ),
        "this Envoy field is not supported by weir yet",
    );
    let tcp = json!({"typed_extension_protocol_options": {"envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions": {}}});
    check(
        &config(none.clone(), tcp, none),
        &format!(
            "{CLUSTER}.typed_extension_protocol_options.envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions"
        ),
        &format!(
            "protocol options `envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions` are not supported by weir yet (weir reads {OPTIONS})"
        ),
    );
}

#[test]
fn a_listener_reads_its_traffic_direction() {
    let none = json!({});
    let direction =
        |l: Value| parse_ok(&config(none.clone(), none.clone(), l)).listeners[0].traffic_direction;
    assert_eq!(direction(json!({})), TrafficDirection::Unspecified);
    assert_eq!(
        direction(json!({"traffic_direction": "INBOUND"})),
        TrafficDirection::Inbound
    );
    assert_eq!(
        direction(json!({"traffic_direction": "OUTBOUND"})),
        TrafficDirection::Outbound
    );
    assert_eq!(
        direction(json!({"traffic_direction": "UNSPECIFIED"})),
        TrafficDirection::Unspecified
    );
    let e =
        parse(&config(none.clone(), none, json!({"traffic_direction": "SIDEWAYS"})).to_string())
            .unwrap_err();
    assert!(
        e.to_string()
            .contains("static_resources.listeners[0].traffic_direction"),
        "{e}"
    );
}
