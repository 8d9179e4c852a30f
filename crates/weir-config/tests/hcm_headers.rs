//! The connection manager's `server_name`, `server_header_transformation`,
//! `preserve_external_request_id` and `http_protocol_options` (HTTP/1.0), and the router's
//! `suppress_envoy_headers`: read into the model, with errors naming their paths.

use serde_json::{Value, json};
use weir_config::*;

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

/// A valid config whose connection manager gets the fields of `hcm` and whose router's
/// typed_config gets those of `router`.
fn config(hcm: Value, router: Value) -> Value {
    let mut router_config = json!({"@type": ROUTER_TYPE});
    router_config
        .as_object_mut()
        .unwrap()
        .extend(router.as_object().unwrap().clone());
    let mut typed = json!({
        "@type": HCM_TYPE,
        "stat_prefix": "http",
        "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "a"}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": router_config}]
    });
    typed
        .as_object_mut()
        .unwrap()
        .extend(hcm.as_object().unwrap().clone());
    json!({"static_resources": {
        "listeners": [{
            "name": "l0",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": typed
            }]}]
        }],
        "clusters": [{"name": "a", "load_assignment": {"cluster_name": "a", "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": {"socket_address":
                {"address": "127.0.0.1", "port_value": 8081}}}}]}]}}]
    }})
}

fn parse_ok(doc: &Value) -> HttpConnectionManager {
    match parse(&doc.to_string()) {
        Ok(b) => b.listeners[0].filter_chains[0]
            .http_connection_manager
            .as_ref()
            .unwrap()
            .clone(),
        Err(e) => panic!("config should parse:\n{e}\n{doc:#}"),
    }
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

fn suppress(hcm: &HttpConnectionManager) -> bool {
    match hcm.http_filters.last() {
        Some(HttpFilter::Router {
            suppress_envoy_headers,
            ..
        }) => *suppress_envoy_headers,
        other => panic!("the last filter is not the router: {other:?}"),
    }
}

#[test]
fn defaults_are_overwrite_with_weirs_own_name() {
    let hcm = parse_ok(&config(json!({}), json!({})));
    assert_eq!(hcm.server_name, "weir");
    assert_eq!(hcm.server_name, DEFAULT_SERVER_NAME);
    assert_eq!(
        hcm.server_header_transformation,
        ServerHeaderTransformation::Overwrite
    );
    assert!(!suppress(&hcm));
    assert!(!hcm.preserve_external_request_id);
    // An empty name is the default one, as in Envoy.
    let hcm = parse_ok(&config(json!({"server_name": ""}), json!({})));
    assert_eq!(hcm.server_name, "weir");
}

#[test]
fn every_transformation_and_a_server_name_are_read() {
    for (name, want) in [
        ("OVERWRITE", ServerHeaderTransformation::Overwrite),
        (
            "APPEND_IF_ABSENT",
            ServerHeaderTransformation::AppendIfAbsent,
        ),
        ("pass_through", ServerHeaderTransformation::PassThrough),
    ] {
        let hcm = parse_ok(&config(
            json!({"server_name": "edge-1", "server_header_transformation": name}),
            json!({}),
        ));
        assert_eq!(hcm.server_header_transformation, want, "{name}");
        assert_eq!(hcm.server_name, "edge-1");
    }
    // proto3 JSON allows the enum's number, and camelCase keys.
    let hcm = parse_ok(&config(json!({"serverHeaderTransformation": 2}), json!({})));
    assert_eq!(
        hcm.server_header_transformation,
        ServerHeaderTransformation::PassThrough
    );
}

#[test]
fn bad_values_are_errors_naming_their_paths() {
    check(
        &config(
            json!({"server_header_transformation": "REPLACE"}),
            json!({}),
        ),
        &format!("{HCM}.server_header_transformation"),
        "`REPLACE` is not a valid server_header_transformation; expected one of OVERWRITE, \
         APPEND_IF_ABSENT, PASS_THROUGH",
    );
    check(
        &config(json!({"server_name": "a\r\nb"}), json!({})),
        &format!("{HCM}.server_name"),
        "`server_name` must be a valid header value (no CR, LF or NUL)",
    );
    check(
        &config(json!({"server_name": 7}), json!({})),
        &format!("{HCM}.server_name"),
        "expected a string, found the number 7 (quote it in YAML)",
    );
    check(
        &config(json!({}), json!({"suppress_envoy_headers": "yes"})),
        &format!("{HCM}.http_filters[0].typed_config.suppress_envoy_headers"),
        "expected true or false, found the string \"yes\"",
    );
}

#[test]
fn preserve_external_request_id_is_read() {
    let hcm = parse_ok(&config(
        json!({"preserve_external_request_id": true}),
        json!({}),
    ));
    assert!(hcm.preserve_external_request_id);
    check(
        &config(json!({"preserve_external_request_id": 1}), json!({})),
        &format!("{HCM}.preserve_external_request_id"),
        "expected true or false, found the number 1",
    );
}

#[test]
fn http_protocol_options_for_http10() {
    let hcm = parse_ok(&config(json!({}), json!({})));
    assert!(!hcm.accept_http_10);
    assert_eq!(hcm.default_host_for_http_10, None);
    let hcm = parse_ok(&config(
        json!({"http_protocol_options": {"accept_http_10": true, "default_host_for_http_10": "d.test"}}),
        json!({}),
    ));
    assert!(hcm.accept_http_10);
    assert_eq!(hcm.default_host_for_http_10.as_deref(), Some("d.test"));
    check(
        &config(
            json!({"http_protocol_options": {"enable_trailers": true}}),
            json!({}),
        ),
        &format!("{HCM}.http_protocol_options.enable_trailers"),
        "this Envoy field is not supported by weir yet",
    );
    check(
        &config(
            json!({"http_protocol_options": {"accept_http_10": "yes"}}),
            json!({}),
        ),
        &format!("{HCM}.http_protocol_options.accept_http_10"),
        "expected true or false, found the string \"yes\"",
    );
}

#[test]
fn the_router_reads_suppress_envoy_headers() {
    let hcm = parse_ok(&config(json!({}), json!({"suppress_envoy_headers": true})));
    assert!(suppress(&hcm));
    let hcm = parse_ok(&config(json!({}), json!({"suppress_envoy_headers": false})));
    assert!(!suppress(&hcm));
}
