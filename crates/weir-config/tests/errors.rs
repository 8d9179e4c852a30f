//! Every kind of config error, with its exact path and message.

use serde_json::{Value, json};

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/// JSON pointer to the first listener's connection manager.
const HCM: &str = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config";
/// Its path in error messages.
const HCM_PATH: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
/// JSON pointer to the first route.
const ROUTE: &str = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/route_config/virtual_hosts/0/routes/0";
/// Its path in error messages.
const ROUTE_PATH: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0]";
const VHOSTS_PATH: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts";

fn router() -> Value {
    json!({"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}})
}

fn endpoint(port: u16) -> Value {
    json!({"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}})
}

/// A valid config: one listener, one virtual host with one route, two clusters.
fn valid() -> Value {
    json!({
        "static_resources": {
            "listeners": [{
                "name": "l0",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
                "filter_chains": [{
                    "filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": HCM_TYPE,
                            "stat_prefix": "http",
                            "route_config": {
                                "virtual_hosts": [{
                                    "name": "vh",
                                    "domains": ["example.com"],
                                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "a"}}]
                                }]
                            },
                            "http_filters": [router()]
                        }
                    }]
                }]
            }],
            "clusters": [
                {"name": "a", "load_assignment": {"cluster_name": "a", "endpoints": [{"lb_endpoints": [endpoint(8081)]}]}},
                {"name": "b", "load_assignment": {"cluster_name": "b", "endpoints": [{"lb_endpoints": [endpoint(8082)]}]}}
            ]
        }
    })
}

/// Sets the value at a JSON pointer (creating the last key of an object if needed).
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match target {
        Value::Object(map) => {
            map.insert(key.replace("~1", "/"), value);
        }
        Value::Array(items) => {
            let i: usize = key.parse().unwrap();
            if i == items.len() {
                items.push(value);
            } else {
                items[i] = value;
            }
        }
        _ => panic!("{parent} is not a container"),
    }
}

fn remove(doc: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    doc.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap()
        .remove(key)
        .unwrap();
}

/// The errors, one string each as `Display` shows them.
fn errors_of(text: &str) -> Vec<String> {
    match weir_config::parse(text) {
        Ok(_) => panic!("config should not parse:\n{text}"),
        Err(e) => {
            let lines: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
            assert_eq!(e.to_string(), lines.join("\n"));
            lines
        }
    }
}

fn errors(doc: &Value) -> Vec<String> {
    errors_of(&doc.to_string())
}

/// Asserts that changing `pointer` to `value` gives exactly `expected`.
#[track_caller]
fn check(pointer: &str, value: Value, expected: &[&str]) {
    let mut doc = valid();
    set(&mut doc, pointer, value);
    assert_eq!(errors(&doc), expected);
}

#[test]
fn the_base_config_is_valid() {
    weir_config::parse(&valid().to_string()).unwrap();
}

#[test]
fn unsupported_lb_policy() {
    check(
        "/static_resources/clusters/1/lb_policy",
        json!("CLUSTER_PROVIDED"),
        &[
            "static_resources.clusters[1].lb_policy: lb_policy CLUSTER_PROVIDED is only for an ORIGINAL_DST cluster",
        ],
    );
    check(
        "/static_resources/clusters/1/lb_policy",
        json!("FASTEST"),
        &[
            "static_resources.clusters[1].lb_policy: `FASTEST` is not a valid lb_policy; expected one of ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV, CLUSTER_PROVIDED, LOAD_BALANCING_POLICY_CONFIG",
        ],
    );
}

#[test]
fn circuit_breakers() {
    let c = "static_resources.clusters[1].circuit_breakers";
    check(
        "/static_resources/clusters/1/circuit_breakers",
        json!({"thresholds": [{"priority": "LOW", "max_connections": -1,
            "retry_budget": {"budget_percent": {"value": 150}}}],
            "per_host_thresholds": [{"max_requests": 3}]}),
        &[
            &format!(
                "{c}.thresholds[0].priority: `LOW` is not a valid routing priority; expected one of DEFAULT, HIGH"
            ),
            &format!("{c}.thresholds[0].max_connections: must not be negative"),
            &format!(
                "{c}.thresholds[0].retry_budget.budget_percent.value: budget_percent must be a number in 0..=100"
            ),
            &format!(
                "{c}.per_host_thresholds[0].max_requests: only max_connections applies per host (Envoy refuses the others too)"
            ),
        ],
    );
}

#[test]
fn outlier_detection_and_panic_threshold() {
    let c = "static_resources.clusters[1]";
    check(
        "/static_resources/clusters/1/outlier_detection",
        json!({"interval": "0s", "enforcing_success_rate": 101, "monitors": []}),
        &[
            &format!(
                "{c}.outlier_detection.enforcing_success_rate: enforcing_success_rate must be at most 100"
            ),
            &format!("{c}.outlier_detection.interval: interval must be greater than 0s"),
            &format!(
                "{c}.outlier_detection.monitors: this Envoy field is not supported by weir yet"
            ),
        ],
    );
    check(
        "/static_resources/clusters/1/outlier_detection",
        json!({"base_ejection_time": "400s"}),
        &[&format!(
            "{c}.outlier_detection.max_ejection_time: max_ejection_time cannot be smaller than base_ejection_time"
        )],
    );
    check(
        "/static_resources/clusters/1/common_lb_config",
        json!({"healthy_panic_threshold": {"value": 120}, "zone_aware_lb_config": {}}),
        &[
            &format!(
                "{c}.common_lb_config.healthy_panic_threshold.value: healthy_panic_threshold must be in 0..=100"
            ),
            &format!(
                "{c}.common_lb_config.zone_aware_lb_config: this Envoy field is not supported by weir yet"
            ),
        ],
    );
}

#[test]
fn health_checks() {
    let c = "static_resources.clusters[1].health_checks";
    check(
        "/static_resources/clusters/1/health_checks",
        json!([{"timeout": "1s", "interval": "0s", "healthy_threshold": 1,
            "http_health_check": {"path": "/h", "expected_statuses": [{"start": 300, "end": 200}]},
            "grpc_health_check": {}}]),
        &[
            &format!("{c}[0].interval: interval must be greater than 0s"),
            &format!("{c}[0].unhealthy_threshold: `unhealthy_threshold` is required"),
            &format!(
                "{c}[0].http_health_check.expected_statuses[0]: expected_statuses entries must be a range [start, end) of statuses within 100..=600, start below end"
            ),
            &format!("{c}[0].grpc_health_check: this Envoy field is not supported by weir yet"),
        ],
    );
    let tcp = json!({"timeout": "1s", "interval": "1s", "healthy_threshold": 1, "unhealthy_threshold": 1,
        "tcp_health_check": {"send": {"text": "zz"}}});
    check(
        "/static_resources/clusters/1/health_checks",
        json!([tcp.clone(), tcp]),
        &[
            &format!("{c}[1]: one health check per cluster (Envoy supports no more)"),
            &format!("{c}[0].tcp_health_check.send.text: text must be hex digits, two per byte"),
            &format!("{c}[1].tcp_health_check.send.text: text must be hex digits, two per byte"),
        ],
    );
}

#[test]
fn original_dst_clusters() {
    let c = "static_resources.clusters[1]";
    check(
        "/static_resources/clusters/1/type",
        json!("ORIGINAL_DST"),
        &[
            &format!("{c}.lb_policy: an ORIGINAL_DST cluster needs lb_policy CLUSTER_PROVIDED"),
            &format!(
                "{c}.load_assignment: an ORIGINAL_DST cluster has no endpoints (its hosts are the requests' destinations)"
            ),
        ],
    );
    check(
        "/static_resources/clusters/1/lb_policy",
        json!("CLUSTER_PROVIDED"),
        &[&format!(
            "{c}.lb_policy: lb_policy CLUSTER_PROVIDED is only for an ORIGINAL_DST cluster"
        )],
    );
    check(
        "/static_resources/clusters/1/original_dst_lb_config",
        json!({"upstream_port_override": 70000, "metadata_key": {}}),
        &[
            &format!(
                "{c}.original_dst_lb_config.upstream_port_override: upstream_port_override must be a port (1..=65535)"
            ),
            &format!(
                "{c}.original_dst_lb_config.metadata_key: this Envoy field is not supported by weir yet"
            ),
        ],
    );
}

#[test]
fn lb_configs() {
    let c = "static_resources.clusters[1]";
    check(
        "/static_resources/clusters/1/maglev_lb_config",
        json!({"table_size": 65536}),
        &[&format!(
            "{c}.maglev_lb_config.table_size: table_size must be a prime number no larger than 5000011"
        )],
    );
    check(
        "/static_resources/clusters/1/ring_hash_lb_config",
        json!({"minimum_ring_size": 4096, "maximum_ring_size": 1024, "hash_function": "MURMUR_HASH_2"}),
        &[&format!(
            "{c}.ring_hash_lb_config.hash_function: MURMUR_HASH_2 is not supported yet"
        )],
    );
    check(
        "/static_resources/clusters/1/ring_hash_lb_config",
        json!({"minimum_ring_size": 4096, "maximum_ring_size": 1024}),
        &[&format!(
            "{c}.ring_hash_lb_config.maximum_ring_size: maximum_ring_size must be at least minimum_ring_size"
        )],
    );
    check(
        "/static_resources/clusters/1/least_request_lb_config",
        json!({"choice_count": 1, "active_request_bias": {"default_value": -1}}),
        &[
            &format!("{c}.least_request_lb_config.choice_count: choice_count must be at least 2"),
            &format!(
                "{c}.least_request_lb_config.active_request_bias.default_value: active_request_bias must be a number ≥ 0"
            ),
        ],
    );
    // The typed form: the first policy weir supports is used.
    let mut doc = valid();
    set(
        &mut doc,
        "/static_resources/clusters/1/load_balancing_policy",
        json!({"policies": [
            {"typed_extension_config": {"name": "x", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin"}}},
            {"typed_extension_config": {"name": "envoy.load_balancing_policies.maglev", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.maglev.v3.Maglev", "table_size": 1021}}}
        ]}),
    );
    let bootstrap = weir_config::parse(&doc.to_string()).expect("load_balancing_policy");
    assert_eq!(
        bootstrap.clusters[1].lb_policy,
        weir_config::LbPolicy::Maglev { table_size: 1021 }
    );
    check(
        "/static_resources/clusters/1/load_balancing_policy",
        json!({"policies": [{"typed_extension_config": {"name": "x", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality"}}}]}),
        &[&format!(
            "{c}.load_balancing_policy.policies: no policy weir supports (round_robin, least_request, random, ring_hash, maglev: `envoy.extensions.load_balancing_policies.*.v3`)"
        )],
    );
    let route = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/route_config/virtual_hosts/0/routes/0/route";
    let mut doc = valid();
    set(
        &mut doc,
        "/static_resources/clusters/1/lb_policy",
        json!("RING_HASH"),
    );
    set(
        &mut doc,
        &format!("{route}/hash_policy"),
        json!([{"header": {"header_name": "X-User"}, "terminal": true}, {"cookie": {"name": "s", "ttl": "10s"}}, {"connection_properties": {"source_ip": true}}, {"query_parameter": {"name": "id"}}]),
    );
    weir_config::parse(&doc.to_string()).expect("every hash policy weir supports");
    check(
        &format!("{route}/hash_policy"),
        json!([{"header": {"header_name": "a"}, "cookie": {"name": "b"}}, {"filter_state": {"key": "k"}}]),
        &[
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.hash_policy[0]: a hash policy has exactly one of header, cookie, connection_properties, query_parameter and filter_state",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.hash_policy[1].filter_state: this Envoy field is not supported by weir yet",
        ],
    );
}

#[test]
fn unknown_field_is_a_typo_with_a_suggestion() {
    check(
        "/static_resources/listeners/0/nmae",
        json!("x"),
        &[
            "static_resources.listeners[0].nmae: unknown field; did you mean `name`? (fields weir supports here: name, address, filter_chains, default_filter_chain, per_connection_buffer_limit_bytes, listener_filters, listener_filters_timeout, continue_on_listener_filters_timeout, traffic_direction, drain_type)",
        ],
    );
    check(
        &format!("{HCM}/stat_prefx"),
        json!("x"),
        &[&format!(
            "{HCM_PATH}.stat_prefx: unknown field; did you mean `stat_prefix`? (fields weir supports here: @type, stat_prefix, codec_type, route_config, http_filters, max_request_headers_kb, common_http_protocol_options, stream_idle_timeout, request_timeout, request_headers_timeout, use_remote_address, xff_num_trusted_hops, generate_request_id, access_log, upgrade_configs, server_name, server_header_transformation, preserve_external_request_id, http_protocol_options, internal_address_config, always_set_request_id_in_response)"
        )],
    );
    check(
        "/static_resources/listeners/0/zzz",
        json!(1),
        &[
            "static_resources.listeners[0].zzz: unknown field (fields weir supports here: name, address, filter_chains, default_filter_chain, per_connection_buffer_limit_bytes, listener_filters, listener_filters_timeout, continue_on_listener_filters_timeout, traffic_direction, drain_type)",
        ],
    );
}

#[test]
fn envoy_field_not_supported_yet() {
    check(
        "/static_resources/listeners/0/freebind",
        json!(true),
        &["static_resources.listeners[0].freebind: this Envoy field is not supported by weir yet"],
    );
    check(
        "/static_resources/clusters/0/transport_socket_matches",
        json!([]),
        &[
            "static_resources.clusters[0].transport_socket_matches: transport_socket_matches is not supported by weir yet: give the cluster one transport_socket",
        ],
    );
    check(
        "/dynamic_resources",
        json!({}),
        &["dynamic_resources: xDS (dynamic_resources) is not supported by weir yet"],
    );
    check(
        &format!("{ROUTE}/route/retry_policy"),
        json!({"retry_on": "5xx", "retry_host_predicate": [{"name": "envoy.retry_host_predicates.omit_canary_hosts"}], "retry_options_predicates": []}),
        &[
            &format!(
                "{ROUTE_PATH}.route.retry_policy.retry_host_predicate[0]: retry host predicate `envoy.retry_host_predicates.omit_canary_hosts` is not supported yet (weir supports envoy.retry_host_predicates.previous_hosts)"
            ),
            &format!(
                "{ROUTE_PATH}.route.retry_policy.retry_options_predicates: this Envoy field is not supported by weir yet"
            ),
        ],
    );
    check(
        &format!("{ROUTE}/route/retry_policy"),
        json!({"retry_on": "5xx,refused-stream,unavailable"}),
        &[&format!(
            "{ROUTE_PATH}.route.retry_policy.retry_on: retry_on `refused-stream` is not supported by weir yet (supported: 5xx, gateway-error, reset, connect-failure, retriable-status-codes, retriable-4xx, cancelled, deadline-exceeded, resource-exhausted, internal, unavailable)"
        )],
    );
    check(
        "/overload_manager",
        json!({"resource_monitors": [{"name": "heap", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig"}}]}),
        &[
            "overload_manager.resource_monitors[0].typed_config.@type: resource monitor `type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig` is not supported yet (weir supports type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig)",
        ],
    );
}

#[test]
fn missing_required_fields() {
    let mut doc = valid();
    remove(&mut doc, &format!("{HCM}/stat_prefix"));
    assert_eq!(
        errors(&doc),
        [format!("{HCM_PATH}.stat_prefix: `stat_prefix` is required")]
    );

    let mut doc = valid();
    remove(&mut doc, "/static_resources/clusters/0/name");
    assert_eq!(
        errors(&doc),
        [
            format!(
                "{ROUTE_PATH}.route.cluster: unknown cluster `a` (static_resources.clusters has: b)"
            ),
            "static_resources.clusters[0].name: `name` is required".to_owned(),
        ]
    );

    let mut doc = valid();
    remove(&mut doc, "/static_resources/listeners/0/address");
    assert_eq!(
        errors(&doc),
        ["static_resources.listeners[0].address: `address` is required"]
    );

    let mut doc = valid();
    remove(&mut doc, &format!("{ROUTE}/match"));
    assert_eq!(
        errors(&doc),
        [format!("{ROUTE_PATH}.match: `match` is required")]
    );

    let mut doc = valid();
    remove(&mut doc, &format!("{ROUTE}/route"));
    assert_eq!(
        errors(&doc),
        [format!(
            "{ROUTE_PATH}: a route needs one of `route`, `redirect` or `direct_response`"
        )]
    );

    check(
        &format!("{HCM}/route_config/virtual_hosts/0/domains"),
        json!([]),
        &[&format!(
            "{VHOSTS_PATH}[0].domains: `domains` needs at least one domain (use \"*\" to match any)"
        )],
    );
}

#[test]
fn bad_durations() {
    let at = "/static_resources/clusters/0/connect_timeout";
    let path = "static_resources.clusters[0].connect_timeout";
    check(
        at,
        json!("5"),
        &[&format!(
            "{path}: invalid duration \"5\": expected seconds with an `s` suffix, such as \"5s\" or \"0.25s\""
        )],
    );
    check(
        at,
        json!("250ms"),
        &[&format!(
            "{path}: invalid duration \"250ms\": expected seconds with an `s` suffix, such as \"5s\" or \"0.25s\""
        )],
    );
    check(
        at,
        json!("-1s"),
        &[&format!(
            "{path}: invalid duration \"-1s\": durations must not be negative"
        )],
    );
    check(
        at,
        json!(5),
        &[&format!(
            "{path}: expected a duration such as \"5s\" or \"0.25s\", found the number 5"
        )],
    );
    check(
        at,
        json!("0s"),
        &[&format!("{path}: connect_timeout must be greater than 0s")],
    );
    check(
        at,
        json!({"seconds": 1, "nanos": 1_000_000_000}),
        &[&format!("{path}.nanos: nanos must be in 0..=999999999")],
    );
    check(
        at,
        json!({"secs": 1}),
        &[&format!(
            "{path}.secs: unknown field (fields weir supports here: seconds, nanos)"
        )],
    );
    check(
        &format!("{ROUTE}/route/timeout"),
        json!("1.0000000001s"),
        &[&format!(
            "{ROUTE_PATH}.route.timeout: invalid duration \"1.0000000001s\": at most nine fractional digits (nanoseconds)"
        )],
    );
}

#[test]
fn unknown_cluster_reference() {
    check(
        &format!("{ROUTE}/route/cluster"),
        json!("nope"),
        &[&format!(
            "{ROUTE_PATH}.route.cluster: unknown cluster `nope` (static_resources.clusters has: a, b)"
        )],
    );
    check(
        &format!("{ROUTE}/route"),
        json!({"weighted_clusters": {"clusters": [{"name": "a", "weight": 1}, {"name": "c", "weight": 1}]}}),
        &[&format!(
            "{ROUTE_PATH}.route.weighted_clusters.clusters[1].name: unknown cluster `c` (static_resources.clusters has: a, b)"
        )],
    );
}

#[test]
fn weighted_cluster_rules() {
    let at = format!("{ROUTE}/route");
    let path = format!("{ROUTE_PATH}.route.weighted_clusters");
    check(
        &at,
        json!({"weighted_clusters": {"clusters": [{"name": "a", "weight": 1}], "total_weight": 2}}),
        &[&format!(
            "{path}.total_weight: total_weight is 2 but the weights add up to 1"
        )],
    );
    check(
        &at,
        json!({"weighted_clusters": {"clusters": [{"name": "a", "weight": 0}]}}),
        &[&format!(
            "{path}.clusters: the weights must add up to more than 0"
        )],
    );
    check(
        &at,
        json!({"weighted_clusters": {"clusters": [{"name": "a"}]}}),
        &[&format!("{path}.clusters[0].weight: `weight` is required")],
    );
    check(
        &at,
        json!({"weighted_clusters": {"clusters": []}}),
        &[&format!(
            "{path}.clusters: `clusters` needs at least one cluster"
        )],
    );
    check(
        &at,
        json!({"cluster": "a", "weighted_clusters": {"clusters": [{"name": "a", "weight": 1}]}}),
        &[&format!(
            "{path}: only one of `cluster` and `weighted_clusters` may be set"
        )],
    );
}

#[test]
fn duplicate_domains() {
    let mut doc = valid();
    set(
        &mut doc,
        &format!("{HCM}/route_config/virtual_hosts/1"),
        json!({"name": "other", "domains": ["*", "Example.com"], "routes": []}),
    );
    assert_eq!(
        errors(&doc),
        [format!(
            "{VHOSTS_PATH}[1].domains[1]: domain `Example.com` is already used by virtual_hosts[0]; each domain may appear in only one virtual host"
        )]
    );
    check(
        &format!("{HCM}/route_config/virtual_hosts/1"),
        json!({"name": "vh", "domains": ["*"]}),
        &[&format!(
            "{VHOSTS_PATH}[1].name: duplicate virtual host name `vh` (also the name of virtual_hosts[0])"
        )],
    );
    check(
        &format!("{HCM}/route_config/virtual_hosts/0/domains"),
        json!(["*", "a.*.com", "*"]),
        &[
            &format!(
                "{VHOSTS_PATH}[0].domains[1]: `a.*.com`: a `*` wildcard is only allowed at the start or the end of a domain"
            ),
            &format!(
                "{VHOSTS_PATH}[0].domains[2]: domain `*` is already used by virtual_hosts[0]; each domain may appear in only one virtual host"
            ),
        ],
    );
}

#[test]
fn router_placement() {
    let cors = json!({"name": "envoy.filters.http.cors", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}});
    check(
        &format!("{HCM}/http_filters"),
        json!([router(), router()]),
        &[&format!(
            "{HCM_PATH}.http_filters[1]: the router may appear only once"
        )],
    );
    check(
        &format!("{HCM}/http_filters"),
        json!([cors]),
        &[&format!(
            "{HCM_PATH}.http_filters[0].typed_config.@type: HTTP filter type `type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors` is not supported yet (weir supports the router and, before it, the fault, buffer and health_check filters)"
        )],
    );
    check(
        &format!("{HCM}/http_filters/0/typed_config/dynamic_stats"),
        json!(false),
        &[&format!(
            "{HCM_PATH}.http_filters[0].typed_config.dynamic_stats: this Envoy field is not supported by weir yet"
        )],
    );
    check(
        &format!("{HCM}/http_filters/0"),
        json!({"name": "envoy.filters.http.router"}),
        &[&format!(
            "{HCM_PATH}.http_filters[0].typed_config: `typed_config` is required: weir picks the filter by its @type (the router's is {ROUTER_TYPE})"
        )],
    );
}

#[test]
fn router_not_last() {
    // Written in YAML, as Envoy users write it.
    let yaml = format!(
        r#"
static_resources:
  listeners:
    - address: {{ socket_address: {{ address: 127.0.0.1, port_value: 1 }} }}
      filter_chains:
        - filters:
            - name: hcm
              typed_config:
                "@type": {HCM_TYPE}
                stat_prefix: s
                route_config: {{}}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {{ "@type": {ROUTER_TYPE} }}
                  - name: envoy.filters.http.lua
                    typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua }}
"#
    );
    assert_eq!(
        errors_of(&yaml),
        [
            format!(
                "{HCM_PATH}.http_filters[1].typed_config.@type: HTTP filter type `type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua` is not supported yet (weir supports the router and, before it, the fault, buffer and health_check filters)"
            ),
            format!("{HCM_PATH}.http_filters[0]: the router must be the last HTTP filter"),
        ]
    );
}

#[test]
fn network_filter_type() {
    check(
        &format!("{HCM}/@type"),
        json!("type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy"),
        &[&format!(
            "{HCM_PATH}.@type: network filter type `type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy` is not supported yet (weir supports {HCM_TYPE} and type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy)"
        )],
    );
    check(
        "/static_resources/listeners/0/filter_chains/0/filters/0",
        json!({"name": "envoy.filters.network.http_connection_manager"}),
        &[&format!(
            "{HCM_PATH}: `typed_config` is required: weir picks the filter by its @type ({HCM_TYPE} or type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy)"
        )],
    );
    let mut doc = valid();
    remove(&mut doc, &format!("{HCM}/@type"));
    assert_eq!(
        errors(&doc),
        [format!(
            "{HCM_PATH}.@type: `@type` is required: weir picks the filter by its type"
        )]
    );
}

#[test]
fn codec_and_rds() {
    check(
        &format!("{HCM}/codec_type"),
        json!("HTTP2"),
        &[&format!(
            "{HCM_PATH}.codec_type: HTTP2 is not supported yet"
        )],
    );
    let mut doc = valid();
    remove(&mut doc, &format!("{HCM}/route_config"));
    set(
        &mut doc,
        &format!("{HCM}/rds"),
        json!({"route_config_name": "r"}),
    );
    assert_eq!(
        errors(&doc),
        [format!(
            "{HCM_PATH}.rds: RDS is not supported yet: use an inline route_config"
        )]
    );
    let mut doc = valid();
    remove(&mut doc, &format!("{HCM}/route_config"));
    assert_eq!(
        errors(&doc),
        [format!(
            "{HCM_PATH}.route_config: `route_config` is required"
        )]
    );
    check(
        &format!("{HCM}/max_request_headers_kb"),
        json!(8193),
        &[&format!(
            "{HCM_PATH}.max_request_headers_kb: max_request_headers_kb must be in 1..=8192"
        )],
    );
}

#[test]
fn header_mutations() {
    let at = format!("{ROUTE}/request_headers_to_add");
    let path = format!("{ROUTE_PATH}.request_headers_to_add");
    check(
        &at,
        json!([{"header": {"key": "x-client", "value": "%DOWNSTREAM_REMOTE_ADDRESS%"}}]),
        &[&format!(
            "{path}[0].header.value: command operators in header values are not supported yet (write `%%` for a literal `%`)"
        )],
    );
    check(
        &at,
        json!([{"header": {"key": "x", "value": "y"}, "append": true, "append_action": "ADD_IF_ABSENT"}]),
        &[&format!(
            "{path}[0].append_action: `append` and `append_action` cannot both be set (`append` is deprecated)"
        )],
    );
    check(
        &at,
        json!([{"header": {"key": ":path", "value": "/"}}]),
        &[&format!(
            "{path}[0].header.key: :-prefixed headers may not be modified"
        )],
    );
    check(
        &at,
        json!([{"header": {"key": "Host", "value": "h"}}]),
        &[&format!(
            "{path}[0].header.key: `host` may not be modified (use the route's host_rewrite_literal)"
        )],
    );
    check(
        &at,
        json!([{"header": {"key": "transfer-encoding", "value": "chunked"}}]),
        &[&format!(
            "{path}[0].header.key: `transfer-encoding` is a hop-by-hop or framing header: weir manages it and config may not add it"
        )],
    );
    check(
        &at,
        json!([{"header": {"key": "bad header", "value": "v"}}]),
        &[&format!(
            "{path}[0].header.key: `bad header` is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"
        )],
    );
    check(
        &at,
        json!([{"header": {"key": "x", "value": "a\r\nb"}}]),
        &[&format!(
            "{path}[0].header.value: must not contain control characters (such as CR, LF or NUL)"
        )],
    );
    check(
        &at,
        json!([{"header": {"key": "x", "value": "v"}, "append_action": "PREPEND"}]),
        &[&format!(
            "{path}[0].append_action: `PREPEND` is not a valid append_action; expected one of APPEND_IF_EXISTS_OR_ADD, ADD_IF_ABSENT, OVERWRITE_IF_EXISTS_OR_ADD, OVERWRITE_IF_EXISTS"
        )],
    );
    check(
        &format!("{ROUTE}/response_headers_to_remove"),
        json!([":status", "host", "content-length"]),
        &[
            &format!(
                "{ROUTE_PATH}.response_headers_to_remove[0]: :-prefixed headers may not be removed"
            ),
            &format!("{ROUTE_PATH}.response_headers_to_remove[1]: `host` may not be removed"),
            &format!(
                "{ROUTE_PATH}.response_headers_to_remove[2]: `content-length` frames the message: weir manages it and config may not remove it"
            ),
        ],
    );
}

#[test]
fn addresses_and_ports() {
    let at = "/static_resources/clusters/0/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address";
    let path = "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address";
    check(
        at,
        json!({"address": "backend.local", "port_value": 80}),
        &[&format!(
            "{path}.address: `backend.local` is not an IP address: STATIC clusters need IP literals (a name needs `type: STRICT_DNS` or `LOGICAL_DNS`)"
        )],
    );
    check(
        at,
        json!({"address": "127.0.0.1", "port_value": 70000}),
        &[&format!(
            "{path}.port_value: port 70000 is out of range (0..=65535)"
        )],
    );
    check(
        at,
        json!({"address": "127.0.0.1"}),
        &[&format!(
            "{path}.port_value: an upstream endpoint needs a port_value in 1..=65535"
        )],
    );
    check(
        at,
        json!({"address": "127.0.0.1", "port_value": "80x"}),
        &[&format!(
            "{path}.port_value: expected a whole number, found the string \"80x\""
        )],
    );
    check(
        at,
        json!({"address": "127.0.0.1", "port_value": -1}),
        &[&format!("{path}.port_value: must not be negative")],
    );
    check(
        "/static_resources/listeners/0/address/socket_address/address",
        json!("localhost"),
        &[
            "static_resources.listeners[0].address.socket_address.address: `localhost` is not an IP address: weir binds IP literals only",
        ],
    );
    check(
        "/static_resources/listeners/0/address/socket_address/protocol",
        json!("UDP"),
        &[
            "static_resources.listeners[0].address.socket_address.protocol: UDP is not supported yet",
        ],
    );
    check(
        "/static_resources/listeners/0/address",
        json!({"pipe": {"path": "/tmp/s"}}),
        &[
            "static_resources.listeners[0].address.pipe: unix domain socket addresses (pipe) are not supported yet",
        ],
    );
    check(
        "/static_resources/clusters/0/type",
        json!("EDS"),
        &["static_resources.clusters[0].type: EDS is not supported yet"],
    );
    // The hostnames of a cluster whose type was refused are not reported again.
    let mut doc = valid();
    set(&mut doc, "/static_resources/clusters/0/type", json!("EDS"));
    set(&mut doc, &format!("{at}/address"), json!("backend.local"));
    assert_eq!(
        errors(&doc),
        ["static_resources.clusters[0].type: EDS is not supported yet"]
    );
}

#[test]
fn dns_clusters() {
    let at = "/static_resources/clusters/0/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/address";
    let cluster = "static_resources.clusters[0]";
    for kind in ["STRICT_DNS", "LOGICAL_DNS"] {
        let mut doc = valid();
        set(&mut doc, "/static_resources/clusters/0/type", json!(kind));
        set(&mut doc, at, json!("backend.local"));
        set(
            &mut doc,
            "/static_resources/clusters/0/dns_refresh_rate",
            json!("2s"),
        );
        set(
            &mut doc,
            "/static_resources/clusters/0/dns_lookup_family",
            json!("V4_ONLY"),
        );
        let bootstrap = weir_config::parse(&doc.to_string()).expect(kind);
        assert!(matches!(
            bootstrap.clusters[0].discovery,
            weir_config::Discovery::Dns(_)
        ));
    }
    let mut doc = valid();
    set(
        &mut doc,
        "/static_resources/clusters/0/type",
        json!("LOGICAL_DNS"),
    );
    let endpoints = "/static_resources/clusters/0/load_assignment/endpoints/0/lb_endpoints";
    let one = doc.pointer(&format!("{endpoints}/0")).unwrap().clone();
    set(&mut doc, &format!("{endpoints}/1"), one);
    assert_eq!(
        errors(&doc),
        [format!(
            "{cluster}.load_assignment: a LOGICAL_DNS cluster needs exactly one lb_endpoint (it is one logical host)"
        )]
    );
    let mut doc = valid();
    set(
        &mut doc,
        "/static_resources/clusters/0/type",
        json!("STRICT_DNS"),
    );
    set(
        &mut doc,
        "/static_resources/clusters/0/dns_failure_refresh_rate",
        json!({"base_interval": "5s", "max_interval": "1s"}),
    );
    set(
        &mut doc,
        "/static_resources/clusters/0/dns_lookup_family",
        json!("V5_ONLY"),
    );
    set(
        &mut doc,
        "/static_resources/clusters/0/typed_dns_resolver_config",
        json!({"name": "x", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.network.dns_resolver.apple.v3.AppleDnsResolverConfig"}}),
    );
    assert_eq!(
        errors(&doc),
        [
            format!(
                "{cluster}.dns_lookup_family: `V5_ONLY` is not a valid dns_lookup_family; expected one of AUTO, V4_ONLY, V6_ONLY, V4_PREFERRED, ALL"
            ),
            format!(
                "{cluster}.dns_failure_refresh_rate.max_interval: max_interval must be at least base_interval"
            ),
            format!(
                "{cluster}.typed_dns_resolver_config.typed_config: DNS resolver type `type.googleapis.com/envoy.extensions.network.dns_resolver.apple.v3.AppleDnsResolverConfig` is not supported (weir supports c-ares' `CaresDnsResolverConfig` and `GetAddrInfoDnsResolverConfig`)"
            ),
        ]
    );
    // Envoy's newer form: `cluster_type` with the DnsCluster extension (its own numbering).
    let mut doc = valid();
    set(&mut doc, at, json!("backend.local"));
    set(
        &mut doc,
        "/static_resources/clusters/0/cluster_type",
        json!({"name": "envoy.clusters.dns", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster",
            "dns_refresh_rate": "3s", "dns_lookup_family": 2, "all_addresses_in_single_endpoint": true}}),
    );
    let bootstrap = weir_config::parse(&doc.to_string()).expect("cluster_type");
    match &bootstrap.clusters[0].discovery {
        weir_config::Discovery::Dns(d) => {
            assert!(d.logical);
            assert_eq!(d.lookup_family, weir_config::DnsLookupFamily::V4Only);
            assert_eq!(d.refresh_rate, std::time::Duration::from_secs(3));
        }
        other => panic!("{other:?}"),
    }
    set(
        &mut doc,
        "/static_resources/clusters/0/type",
        json!("STRICT_DNS"),
    );
    set(
        &mut doc,
        "/static_resources/clusters/0/cluster_type/typed_config/@type",
        json!("type.googleapis.com/envoy.extensions.clusters.redis.v3.RedisClusterConfig"),
    );
    assert_eq!(
        errors(&doc),
        [format!(
            "{cluster}.cluster_type: only one of `type` and `cluster_type` may be set"
        )]
    );
    remove(&mut doc, "/static_resources/clusters/0/type");
    assert_eq!(
        errors(&doc),
        [format!(
            "{cluster}.cluster_type.typed_config: cluster_type `type.googleapis.com/envoy.extensions.clusters.redis.v3.RedisClusterConfig` is not supported yet (weir supports envoy.clusters.dns: `type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster`)"
        )]
    );
    // An unsupported c-ares field is named.
    let mut doc = valid();
    set(
        &mut doc,
        "/static_resources/clusters/0/type",
        json!("STRICT_DNS"),
    );
    set(
        &mut doc,
        "/static_resources/clusters/0/typed_dns_resolver_config",
        json!({"name": "envoy.network.dns_resolver.cares", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
            "resolvers": [{"socket_address": {"address": "127.0.0.53", "port_value": 53}}],
            "query_timeout_seconds": 2,
            "rotate_nameservers": true}}),
    );
    assert_eq!(
        errors(&doc),
        [format!(
            "{cluster}.typed_dns_resolver_config.typed_config.rotate_nameservers: this Envoy field is not supported by weir yet"
        )]
    );
}

#[test]
fn duplicates_across_listeners_and_clusters() {
    let mut doc = valid();
    let listener = doc
        .pointer("/static_resources/listeners/0")
        .unwrap()
        .clone();
    set(&mut doc, "/static_resources/listeners/1", listener);
    set(
        &mut doc,
        "/static_resources/clusters/2",
        json!({"name": "a"}),
    );
    assert_eq!(
        errors(&doc),
        [
            "static_resources.listeners[1].name: duplicate listener name `l0` (also the name of listeners[0])",
            "static_resources.listeners[1].address: 127.0.0.1:10000 is also the address of listeners[0]",
            "static_resources.clusters[2].name: duplicate cluster name `a` (also the name of clusters[0])",
        ]
    );
}

#[test]
fn filter_chain_rules() {
    let mut doc = valid();
    let chain = doc
        .pointer("/static_resources/listeners/0/filter_chains/0")
        .unwrap()
        .clone();
    set(
        &mut doc,
        "/static_resources/listeners/0/filter_chains/1",
        chain,
    );
    assert_eq!(
        errors(&doc),
        [
            "static_resources.listeners[0].filter_chains[1]: matches the same connections as filter_chains[0] (no filter_chain_match); use default_filter_chain for a fallback"
        ]
    );

    let mut doc = valid();
    let mut chain = doc
        .pointer("/static_resources/listeners/0/filter_chains/0")
        .unwrap()
        .clone();
    chain["filter_chain_match"] = json!({"destination_port": 80});
    set(
        &mut doc,
        "/static_resources/listeners/0/filter_chains/0",
        chain.clone(),
    );
    set(
        &mut doc,
        "/static_resources/listeners/0/filter_chains/1",
        chain,
    );
    assert_eq!(
        errors(&doc),
        [
            "static_resources.listeners[0].filter_chains[1].filter_chain_match: matches the same connections as filter_chains[0]; use default_filter_chain for a fallback"
        ]
    );

    let mut doc = valid();
    let mut chain = doc
        .pointer("/static_resources/listeners/0/filter_chains/0")
        .unwrap()
        .clone();
    chain["name"] = json!("same");
    set(
        &mut doc,
        "/static_resources/listeners/0/filter_chains/0",
        chain.clone(),
    );
    chain["filter_chain_match"] = json!({"destination_port": 81});
    set(
        &mut doc,
        "/static_resources/listeners/0/filter_chains/1",
        chain.clone(),
    );
    chain.as_object_mut().unwrap().remove("name");
    set(
        &mut doc,
        "/static_resources/listeners/0/default_filter_chain",
        chain,
    );
    assert_eq!(
        errors(&doc),
        [
            // Checks across chains run once the listener has been read.
            "static_resources.listeners[0].default_filter_chain.filter_chain_match: default_filter_chain takes no filter_chain_match: it is used when no other chain matches",
            "static_resources.listeners[0].filter_chains[1].name: duplicate filter chain name `same` (also the name of filter_chains[0])",
        ]
    );

    check(
        "/static_resources/listeners/0/filter_chains",
        json!([]),
        &[
            "static_resources.listeners[0].filter_chains: a listener needs at least one filter chain in `filter_chains` or a `default_filter_chain`",
        ],
    );
    check(
        "/static_resources/listeners/0/filter_chains/0/filter_chain_match",
        json!({"address_suffix": "a", "suffix_len": 1}),
        &[
            "static_resources.listeners[0].filter_chains[0].filter_chain_match.address_suffix: this Envoy field is not supported by weir yet",
            "static_resources.listeners[0].filter_chains[0].filter_chain_match.suffix_len: this Envoy field is not supported by weir yet",
        ],
    );
}

#[test]
fn route_matching_rules() {
    check(
        &format!("{ROUTE}/match"),
        json!({"prefix": "/", "path": "/x"}),
        &[&format!(
            "{ROUTE_PATH}.match.path: only one of `prefix`, `path`, `safe_regex` and `connect_matcher` may be set"
        )],
    );
    check(
        &format!("{ROUTE}/match"),
        json!({"safe_regex": {"regex": "a(b"}}),
        &[&format!(
            "{ROUTE_PATH}.match.safe_regex.regex: invalid regex `a(b`: unclosed group"
        )],
    );
    check(
        &format!("{ROUTE}/match"),
        json!({"prefix": "/", "headers": [{"name": "x", "exact_match": "a", "prefix_match": "b"}]}),
        &[&format!(
            "{ROUTE_PATH}.match.headers[0].prefix_match: a header matcher takes only one rule, found exact_match, prefix_match"
        )],
    );
    check(
        &format!("{ROUTE}/match"),
        json!({"prefix": "/", "headers": [{"name": "x", "string_match": {"safe_regex": {"regex": "a"}, "ignore_case": true}}]}),
        &[&format!(
            "{ROUTE_PATH}.match.headers[0].string_match.ignore_case: ignore_case has no effect with safe_regex; use (?i) in the regex"
        )],
    );
    check(
        &format!("{ROUTE}/match"),
        json!({"prefix": "/", "headers": [{"name": ":status", "present_match": true}]}),
        &[&format!(
            "{ROUTE_PATH}.match.headers[0].name: `:status` is not a pseudo-header weir can match (use one of :authority, :method, :path, :scheme)"
        )],
    );
    check(
        &format!("{ROUTE}/match"),
        json!({"prefix": "/", "query_parameters": []}),
        &[&format!(
            "{ROUTE_PATH}.match.query_parameters: this Envoy field is not supported by weir yet"
        )],
    );
}

#[test]
fn route_actions() {
    check(
        &format!("{ROUTE}/direct_response"),
        json!({"status": 600}),
        &[&format!(
            "{ROUTE_PATH}.direct_response: only one of `route`, `redirect` and `direct_response` may be set"
        )],
    );
    let mut doc = valid();
    remove(&mut doc, &format!("{ROUTE}/route"));
    set(
        &mut doc,
        &format!("{ROUTE}/direct_response"),
        json!({"status": 600}),
    );
    assert_eq!(
        errors(&doc),
        [format!(
            "{ROUTE_PATH}.direct_response.status: status 600 is out of range (a final status, 200..=599)"
        )]
    );
    let mut doc = valid();
    remove(&mut doc, &format!("{ROUTE}/route"));
    set(
        &mut doc,
        &format!("{ROUTE}/direct_response"),
        json!({"status": 101}),
    );
    assert_eq!(
        errors(&doc),
        [format!(
            "{ROUTE_PATH}.direct_response.status: status 101 is out of range (a final status, 200..=599)"
        )]
    );
    let mut doc = valid();
    remove(&mut doc, &format!("{ROUTE}/route"));
    set(
        &mut doc,
        &format!("{ROUTE}/direct_response"),
        json!({"status": 200, "body": {"inline_string": "x".repeat(5000)}}),
    );
    assert_eq!(
        errors(&doc),
        [format!(
            "{ROUTE_PATH}.direct_response.body: the body is 5000 bytes; the maximum is 4096 (route_config.max_direct_response_body_size_bytes)"
        )]
    );
    let mut doc = valid();
    remove(&mut doc, &format!("{ROUTE}/route"));
    set(
        &mut doc,
        &format!("{ROUTE}/direct_response"),
        json!({"status": 200, "body": {"inline_bytes": "!!"}}),
    );
    assert_eq!(
        errors(&doc),
        [format!(
            "{ROUTE_PATH}.direct_response.body.inline_bytes: inline_bytes must be base64"
        )]
    );
    let mut doc = valid();
    remove(&mut doc, &format!("{ROUTE}/route"));
    set(
        &mut doc,
        &format!("{ROUTE}/redirect"),
        json!({"path_redirect": "/a", "prefix_rewrite": "/b", "response_code": "GONE"}),
    );
    assert_eq!(
        errors(&doc),
        [
            format!(
                "{ROUTE_PATH}.redirect.prefix_rewrite: only one of `path_redirect` and `prefix_rewrite` may be set"
            ),
            format!(
                "{ROUTE_PATH}.redirect.response_code: `GONE` is not a valid response_code; expected one of MOVED_PERMANENTLY, FOUND, SEE_OTHER, TEMPORARY_REDIRECT, PERMANENT_REDIRECT"
            ),
        ]
    );
}

#[test]
fn admin_rules() {
    check(
        "/admin",
        json!({"access_log_path": "/tmp/admin.log", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}}),
        &["admin.access_log_path: admin access logs are not supported yet"],
    );
    check(
        "/admin",
        json!({"address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}}}),
        &["admin.address: 127.0.0.1:10000 is also the address of listener `l0`"],
    );
}

#[test]
fn wrong_types() {
    check(
        "/static_resources/listeners",
        json!({}),
        &["static_resources.listeners: expected a list, found an object"],
    );
    check(
        &format!("{HCM}/use_remote_address"),
        json!("true"),
        &[&format!(
            "{HCM_PATH}.use_remote_address: expected true or false, found the string \"true\""
        )],
    );
    check(
        &format!("{HCM}/stat_prefix"),
        json!(5),
        &[&format!(
            "{HCM_PATH}.stat_prefix: expected a string, found the number 5 (quote it in YAML)"
        )],
    );
    check(
        "/static_resources/clusters/0/per_connection_buffer_limit_bytes",
        json!(1.5),
        &[
            "static_resources.clusters[0].per_connection_buffer_limit_bytes: expected a whole number, found 1.5",
        ],
    );
    check(
        "/static_resources/clusters/0/per_connection_buffer_limit_bytes",
        json!(5_000_000_000u64),
        &[
            "static_resources.clusters[0].per_connection_buffer_limit_bytes: 5000000000 is too large (maximum 4294967295)",
        ],
    );
}

#[test]
fn many_errors_are_collected_in_document_order() {
    let mut doc = valid();
    set(
        &mut doc,
        "/static_resources/listeners/0/address/socket_address/port_value",
        json!(99999),
    );
    remove(&mut doc, &format!("{HCM}/stat_prefix"));
    set(
        &mut doc,
        &format!("{ROUTE}/route/cluster"),
        json!("missing"),
    );
    set(&mut doc, &format!("{ROUTE}/route/timeout"), json!("soon"));
    set(
        &mut doc,
        "/static_resources/clusters/1/lb_policy",
        json!("CLUSTER_PROVIDED"),
    );
    set(
        &mut doc,
        "/static_resources/clusters/1/colour",
        json!("blue"),
    );
    assert_eq!(
        errors(&doc),
        [
            "static_resources.listeners[0].address.socket_address.port_value: port 99999 is out of range (0..=65535)".to_owned(),
            format!("{HCM_PATH}.stat_prefix: `stat_prefix` is required"),
            format!("{ROUTE_PATH}.route.cluster: unknown cluster `missing` (static_resources.clusters has: a, b)"),
            format!("{ROUTE_PATH}.route.timeout: invalid duration \"soon\": expected seconds with an `s` suffix, such as \"5s\" or \"0.25s\""),
            "static_resources.clusters[1].lb_policy: lb_policy CLUSTER_PROVIDED is only for an ORIGINAL_DST cluster".to_owned(),
            "static_resources.clusters[1].colour: unknown field (fields weir supports here: name, type, cluster_type, connect_timeout, lb_policy, least_request_lb_config, ring_hash_lb_config, maglev_lb_config, round_robin_lb_config, load_balancing_policy, load_assignment, per_connection_buffer_limit_bytes, http_protocol_options, upstream_http_protocol_options, typed_extension_protocol_options, transport_socket, cleanup_interval, original_dst_lb_config, circuit_breakers, outlier_detection, health_checks, common_lb_config, dns_lookup_family, dns_refresh_rate, dns_failure_refresh_rate, respect_dns_ttl, dns_jitter, dns_resolvers, use_tcp_for_dns_lookups, dns_resolution_config, typed_dns_resolver_config)".to_owned(),
        ]
    );
}

#[test]
fn whole_document_errors() {
    assert_eq!(errors_of(""), ["the config is empty"]);
    assert_eq!(
        errors_of("- a\n- b\n"),
        ["expected an object (a mapping), found a list"]
    );
    let e = errors_of("static_resources:\n  listeners: [\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("invalid YAML: "), "{e:?}");
    let e = errors_of("{\"node\": }");
    assert!(e[0].starts_with("invalid JSON: "), "{e:?}");
}

#[test]
fn load_reports_unreadable_files() {
    let e = weir_config::load(std::path::Path::new("/nonexistent/weir.yaml")).unwrap_err();
    assert_eq!(e.errors.len(), 1);
    assert!(e.errors[0].path.is_empty());
    assert!(
        e.to_string()
            .starts_with("cannot read /nonexistent/weir.yaml: "),
        "{e}"
    );
}

#[test]
fn camel_case_duplicates_are_errors() {
    let mut doc = valid();
    set(&mut doc, &format!("{HCM}/statPrefix"), json!("x"));
    assert_eq!(
        errors(&doc),
        [format!(
            "{HCM_PATH}.statPrefix: `stat_prefix` is given twice (as `stat_prefix` and `statPrefix`)"
        )]
    );
}
