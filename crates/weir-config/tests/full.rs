//! A config that uses every field weir supports, and a minimal one that shows every default.

mod support;

use support::parse_ok;

use std::net::SocketAddr;
use std::time::Duration;

use weir_config::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const EVERYTHING: &str = r#"
node:
  id: node-1
  cluster: edge
admin:
  access_log_path: /dev/null
  address:
    socket_address: { address: "::1", port_value: "9901", protocol: TCP }
static_resources:
  listeners:
    - name: main
      address:
        socket_address: { address: 0.0.0.0, port_value: 8080 }
      per_connection_buffer_limit_bytes: 65536
      filter_chains:
        - name: public
          filter_chain_match: { destination_port: 8080 }
          filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: public
                codec_type: HTTP1
                max_request_headers_kb: 96
                common_http_protocol_options:
                  idle_timeout: 120s
                  max_headers_count: 50
                stream_idle_timeout: 30s
                request_timeout: 1.5s
                use_remote_address: true
                xff_num_trusted_hops: 2
                generate_request_id: false
                route_config:
                  name: rc
                  max_direct_response_body_size_bytes: 16
                  request_headers_to_add:
                    - header: { key: X-RC, value: "rc 100%%" }
                  request_headers_to_remove: [X-Remove-Me]
                  response_headers_to_add:
                    - header: { key: x-rc-resp, value: "1" }
                      append: false
                  response_headers_to_remove: [x-powered-by]
                  virtual_hosts:
                    - name: vh
                      domains: ["Example.COM", "*.example.com", "*-api.example.org", "www.*", "app-*", "*"]
                      request_headers_to_add:
                        - header: { key: x-vh, value: vh }
                          append_action: ADD_IF_ABSENT
                      request_headers_to_remove: [x-vh-remove]
                      response_headers_to_add:
                        - header: { key: x-vh-resp, value: vh }
                          append_action: OVERWRITE_IF_EXISTS
                        - header: { key: x-empty }
                        - header: { key: x-kept-empty, value: "" }
                          keep_empty_value: true
                      response_headers_to_remove: [x-vh-resp-remove]
                      routes:
                        - name: prefix
                          match:
                            prefix: /api/
                            case_sensitive: false
                            headers:
                              - name: X-Exact
                                string_match: { exact: yes, ignore_case: true }
                              - name: x-prefix
                                string_match: { prefix: pre }
                              - name: x-suffix
                                string_match: { suffix: suf }
                              - name: x-contains
                                string_match: { contains: con }
                              - name: x-regex
                                string_match: { safe_regex: { regex: "[a-z]+" } }
                              - name: x-legacy-exact
                                exact_match: ""
                              - name: x-legacy-prefix
                                prefix_match: p
                              - name: x-legacy-suffix
                                suffix_match: s
                              - name: x-legacy-contains
                                contains_match: c
                              - name: x-legacy-regex
                                safe_regex_match: { google_re2: {}, regex: "v[0-9]" }
                              - name: x-absent
                                present_match: false
                              - name: x-present
                              - name: ":method"
                                string_match: { exact: GET }
                                invert_match: true
                          route:
                            cluster: one
                            timeout: 0s
                            prefix_rewrite: /
                            host_rewrite_literal: upstream.internal
                          request_headers_to_add:
                            - header: { key: x-route, value: r }
                              append_action: OVERWRITE_IF_EXISTS_OR_ADD
                          request_headers_to_remove: [x-route-remove]
                          response_headers_to_add:
                            - header: { key: x-route-resp, value: r }
                              append: true
                          response_headers_to_remove: [x-route-resp-remove]
                        - match: { path: /exact }
                          route:
                            weighted_clusters:
                              total_weight: 100
                              clusters:
                                - { name: one, weight: 25 }
                                - { name: two, weight: 75 }
                            timeout: { seconds: 2, nanos: 500000000 }
                        - match:
                            safe_regex: { google_re2: {}, regex: "/items/[0-9]+" }
                          direct_response:
                            status: 204
                        - match: { prefix: /text }
                          direct_response:
                            status: 503
                            body: { inline_string: "down" }
                        - match: { prefix: /bytes }
                          direct_response:
                            status: 200
                            body: { inline_bytes: "AAEC/w==" }
                        - match: { prefix: /redirect-all }
                          redirect:
                            scheme_redirect: HTTP
                            host_redirect: other.example.com
                            port_redirect: 8443
                            path_redirect: /new
                            response_code: PERMANENT_REDIRECT
                            strip_query: true
                        - match: { prefix: /redirect-https }
                          redirect:
                            https_redirect: true
                            prefix_rewrite: /secure/
                            response_code: 3
                http_filters:
                  - name: my-router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
      default_filter_chain:
        filters:
          - name: envoy.filters.network.http_connection_manager
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: fallback
              route_config:
                virtual_hosts:
                  - name: all
                    domains: ["*"]
              http_filters:
                - name: envoy.filters.http.router
                  typed_config:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: one
      type: STATIC
      connect_timeout: 0.25s
      lb_policy: ROUND_ROBIN
      per_connection_buffer_limit_bytes: 4096
      load_assignment:
        cluster_name: one
        endpoints:
          - priority: 0
            lb_endpoints:
              - endpoint:
                  address: { socket_address: { address: 10.0.0.1, port_value: 80 } }
                load_balancing_weight: 3
          - lb_endpoints:
              - endpoint:
                  address: { socket_address: { address: "fd00::2", port_value: 81 } }
    - name: two
      load_assignment:
        cluster_name: two
"#;

#[test]
fn every_supported_field() {
    let b = parse_ok(EVERYTHING);
    assert_eq!(b.node.id, "node-1");
    assert_eq!(b.node.cluster, "edge");
    assert_eq!(b.admin.as_ref().unwrap().address, addr("[::1]:9901"));

    let l = &b.listeners[0];
    assert_eq!(l.name, "main");
    assert_eq!(l.address, addr("0.0.0.0:8080"));
    assert_eq!(l.per_connection_buffer_limit_bytes, 65536);
    let chain = &l.filter_chains[0];
    assert_eq!(chain.name, "public");
    assert_eq!(chain.filter_chain_match.destination_port, Some(8080));
    let default = l.default_filter_chain.as_ref().unwrap();
    assert_eq!(default.name, "main/default");
    assert_eq!(default.filter_chain_match, FilterChainMatch::default());
    assert!(
        default
            .http_connection_manager
            .as_ref()
            .unwrap()
            .route_config
            .virtual_hosts[0]
            .routes
            .is_empty()
    );

    let hcm = &chain.http_connection_manager.as_ref().unwrap();
    assert_eq!(hcm.stat_prefix, "public");
    assert_eq!(hcm.codec_type, CodecType::Http1);
    assert_eq!(hcm.max_request_headers_bytes, 96 * 1024);
    assert_eq!(hcm.max_headers_count, 50);
    assert_eq!(hcm.idle_timeout, Some(Duration::from_secs(120)));
    assert_eq!(hcm.stream_idle_timeout, Some(Duration::from_secs(30)));
    assert_eq!(hcm.request_timeout, Some(Duration::from_millis(1500)));
    assert!(hcm.use_remote_address);
    assert_eq!(hcm.xff_num_trusted_hops, 2);
    assert!(!hcm.generate_request_id);
    assert!(
        matches!(&hcm.http_filters[..], [HttpFilter::Router { name, .. }] if name == "my-router"),
        "{:?}",
        hcm.http_filters
    );

    let rc = &hcm.route_config;
    assert_eq!(rc.name, "rc");
    assert_eq!(
        rc.headers.request_add,
        [HeaderValueOption {
            key: "x-rc".into(),
            value: "rc 100%".into(),
            append_action: AppendAction::AppendIfExistsOrAdd,
        }]
    );
    assert_eq!(rc.headers.request_remove, ["x-remove-me"]);
    assert_eq!(
        rc.headers.response_add[0].append_action,
        AppendAction::OverwriteIfExistsOrAdd
    );
    assert_eq!(rc.headers.response_remove, ["x-powered-by"]);

    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.name, "vh");
    assert_eq!(
        vh.domains,
        [
            DomainMatcher::Exact("example.com".into()),
            DomainMatcher::Suffix(".example.com".into()),
            DomainMatcher::Suffix("-api.example.org".into()),
            DomainMatcher::Prefix("www.".into()),
            DomainMatcher::Prefix("app-".into()),
            DomainMatcher::Any,
        ]
    );
    assert_eq!(
        vh.headers.request_add[0].append_action,
        AppendAction::AddIfAbsent
    );
    assert_eq!(vh.headers.request_remove, ["x-vh-remove"]);
    // `x-empty` has no value and no keep_empty_value: Envoy skips it, so it is not in the model.
    let keys: Vec<_> = vh
        .headers
        .response_add
        .iter()
        .map(|h| h.key.as_str())
        .collect();
    assert_eq!(keys, ["x-vh-resp", "x-kept-empty"]);
    assert_eq!(
        vh.headers.response_add[0].append_action,
        AppendAction::OverwriteIfExists
    );
    assert_eq!(vh.headers.response_remove, ["x-vh-resp-remove"]);

    let r = &vh.routes[0];
    assert_eq!(r.name, "prefix");
    assert!(matches!(&r.matcher.path, PathMatch::Prefix(p) if p == "/api/"));
    assert!(!r.matcher.case_sensitive);
    let h = &r.matcher.headers;
    assert_eq!(h.len(), 13);
    assert_eq!(h[0].name, "x-exact");
    assert!(
        matches!(&h[0].rule, HeaderMatchRule::String(StringMatcher { kind: StringMatchKind::Exact(s), ignore_case: true }) if s == "yes")
    );
    assert!(
        matches!(&h[1].rule, HeaderMatchRule::String(StringMatcher { kind: StringMatchKind::Prefix(s), ignore_case: false }) if s == "pre")
    );
    assert!(
        matches!(&h[2].rule, HeaderMatchRule::String(StringMatcher { kind: StringMatchKind::Suffix(s), .. }) if s == "suf")
    );
    assert!(
        matches!(&h[3].rule, HeaderMatchRule::String(StringMatcher { kind: StringMatchKind::Contains(s), .. }) if s == "con")
    );
    match &h[4].rule {
        HeaderMatchRule::String(StringMatcher {
            kind: StringMatchKind::Regex(r),
            ..
        }) => {
            assert_eq!(r.source, "[a-z]+");
            assert!(r.compiled.is_match("abc"));
            assert!(!r.compiled.is_match("abc1"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&h[5].rule, HeaderMatchRule::String(StringMatcher { kind: StringMatchKind::Exact(s), .. }) if s.is_empty())
    );
    assert!(
        matches!(&h[6].rule, HeaderMatchRule::String(StringMatcher { kind: StringMatchKind::Prefix(s), .. }) if s == "p")
    );
    assert!(
        matches!(&h[7].rule, HeaderMatchRule::String(StringMatcher { kind: StringMatchKind::Suffix(s), .. }) if s == "s")
    );
    assert!(
        matches!(&h[8].rule, HeaderMatchRule::String(StringMatcher { kind: StringMatchKind::Contains(s), .. }) if s == "c")
    );
    assert!(
        matches!(&h[9].rule, HeaderMatchRule::String(StringMatcher { kind: StringMatchKind::Regex(r), .. }) if r.source == "v[0-9]")
    );
    assert!(matches!(h[10].rule, HeaderMatchRule::Present(false)));
    assert!(matches!(h[11].rule, HeaderMatchRule::Present(true)));
    assert_eq!(h[12].name, ":method");
    assert!(h[12].invert_match);
    match &r.action {
        RouteAction::Forward(f) => {
            assert!(matches!(f.target, ClusterTarget::Cluster(0)));
            assert_eq!(f.timeout, None);
            assert_eq!(f.prefix_rewrite.as_deref(), Some("/"));
            assert_eq!(f.host_rewrite_literal.as_deref(), Some("upstream.internal"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        r.headers.request_add[0].append_action,
        AppendAction::OverwriteIfExistsOrAdd
    );
    assert_eq!(r.headers.request_remove, ["x-route-remove"]);
    assert_eq!(
        r.headers.response_add[0].append_action,
        AppendAction::AppendIfExistsOrAdd
    );
    assert_eq!(r.headers.response_remove, ["x-route-resp-remove"]);

    match &vh.routes[1].action {
        RouteAction::Forward(f) => {
            assert!(matches!(&f.target, ClusterTarget::Weighted(w) if w == &[(0, 25), (1, 75)]));
            assert_eq!(f.timeout, Some(Duration::from_millis(2500)));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&vh.routes[1].matcher.path, PathMatch::Exact(p) if p == "/exact"));
    match &vh.routes[2].matcher.path {
        PathMatch::Regex(r) => assert!(r.compiled.is_match("/items/42")),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&vh.routes[2].action, RouteAction::DirectResponse { status: 204, body } if body.is_empty())
    );
    assert!(
        matches!(&vh.routes[3].action, RouteAction::DirectResponse { status: 503, body } if body == b"down")
    );
    assert!(
        matches!(&vh.routes[4].action, RouteAction::DirectResponse { status: 200, body } if body == &[0, 1, 2, 255])
    );
    match &vh.routes[5].action {
        RouteAction::Redirect(r) => {
            assert_eq!(r.scheme.as_deref(), Some("http"));
            assert_eq!(r.host.as_deref(), Some("other.example.com"));
            assert_eq!(r.port, Some(8443));
            assert_eq!(r.path, Some(RedirectPath::Path("/new".into())));
            assert_eq!(r.status, 308);
            assert!(r.strip_query);
        }
        other => panic!("{other:?}"),
    }
    match &vh.routes[6].action {
        RouteAction::Redirect(r) => {
            assert_eq!(r.scheme.as_deref(), Some("https"));
            assert_eq!(r.host, None);
            assert_eq!(r.port, None);
            assert_eq!(r.path, Some(RedirectPath::PrefixRewrite("/secure/".into())));
            assert_eq!(r.status, 307);
            assert!(!r.strip_query);
        }
        other => panic!("{other:?}"),
    }

    let c = &b.clusters[0];
    assert_eq!(c.name, "one");
    assert_eq!(c.connect_timeout, Duration::from_millis(250));
    assert_eq!(c.lb_policy, LbPolicy::RoundRobin);
    assert_eq!(c.per_connection_buffer_limit_bytes, 4096);
    assert_eq!(
        c.endpoints,
        [
            Endpoint {
                address: addr("10.0.0.1:80"),
                weight: 3,
                hostname: None,
                placement: Placement::unplaced(),
                health: EndpointHealth::Healthy,
            },
            Endpoint {
                address: addr("[fd00::2]:81"),
                weight: 1,
                hostname: None,
                placement: Placement::unplaced(),
                health: EndpointHealth::Healthy,
            },
        ]
    );
    assert!(b.clusters[1].endpoints.is_empty());
}

const MINIMAL: &str = r#"
static_resources:
  listeners:
    - address:
        socket_address: { address: 127.0.0.1, port_value: 10000 }
      filter_chains:
        - filters:
            - name: hcm
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: s
                route_config:
                  virtual_hosts:
                    - name: v
                      domains: ["*"]
                      routes:
                        - match: { prefix: / }
                          route: { cluster: c }
                        - match: { prefix: /r }
                          redirect: {}
                          request_headers_to_add:
                            - header: { key: x, value: y }
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: c
      load_assignment:
        cluster_name: c
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address: { socket_address: { address: 127.0.0.1, port_value: 8081 } }
"#;

#[test]
fn defaults_are_envoys() {
    let b = parse_ok(MINIMAL);
    assert_eq!(b.node.id, "");
    assert_eq!(b.node.cluster, "");
    assert!(b.admin.is_none());

    let l = &b.listeners[0];
    assert_eq!(l.name, "127.0.0.1_10000");
    assert_eq!(l.per_connection_buffer_limit_bytes, 1024 * 1024);
    assert!(l.default_filter_chain.is_none());
    let chain = &l.filter_chains[0];
    assert_eq!(chain.name, "127.0.0.1_10000/0");
    assert_eq!(chain.filter_chain_match, FilterChainMatch::default());
    assert!(l.listener_filters.is_empty());
    assert_eq!(
        l.listener_filters_timeout,
        ListenerFiltersTimeout::default()
    );

    let hcm = &chain.http_connection_manager.as_ref().unwrap();
    assert_eq!(hcm.codec_type, CodecType::Auto);
    assert_eq!(hcm.max_request_headers_bytes, 60 * 1024);
    assert_eq!(hcm.max_headers_count, 100);
    assert_eq!(hcm.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(hcm.stream_idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(hcm.request_timeout, None);
    assert!(!hcm.use_remote_address);
    assert_eq!(hcm.xff_num_trusted_hops, 0);
    assert!(hcm.generate_request_id);

    let rc = &hcm.route_config;
    assert_eq!(rc.name, "");
    let route = &rc.virtual_hosts[0].routes[0];
    assert_eq!(route.name, "");
    assert!(route.matcher.case_sensitive);
    assert!(route.matcher.headers.is_empty());
    match &route.action {
        RouteAction::Forward(f) => {
            assert_eq!(f.timeout, Some(Duration::from_secs(15)));
            assert_eq!(f.prefix_rewrite, None);
            assert_eq!(f.host_rewrite_literal, None);
        }
        other => panic!("{other:?}"),
    }
    let redirect = &rc.virtual_hosts[0].routes[1];
    match &redirect.action {
        RouteAction::Redirect(r) => {
            assert_eq!(r.status, 301);
            assert_eq!(r.scheme, None);
            assert_eq!(r.path, None);
            assert!(!r.strip_query);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        redirect.headers.request_add[0].append_action,
        AppendAction::AppendIfExistsOrAdd
    );

    let c = &b.clusters[0];
    assert_eq!(c.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.lb_policy, LbPolicy::RoundRobin);
    assert_eq!(c.per_connection_buffer_limit_bytes, 1024 * 1024);
    assert_eq!(c.endpoints[0].weight, 1);
    let defaults = &c.circuit_breakers;
    for t in &defaults.thresholds {
        let limits = (t.max_connections, t.max_pending_requests, t.max_requests);
        assert_eq!((limits, t.max_retries), ((1024, 1024, 1024), 3));
        assert_eq!((t.max_connection_pools, &t.retry_budget), (None, &None));
        assert!(!t.track_remaining);
    }
    assert_eq!(defaults.per_host_max_connections, [None, None]);
    assert_eq!(c.outlier_detection, None);
    assert_eq!(c.healthy_panic_threshold, 50.0);
}

#[test]
fn outlier_detection_defaults_are_envoys() {
    let text = MINIMAL.replace(
        "- name: c\n",
        "- name: c
      outlier_detection: { consecutive_5xx: 3, base_ejection_time: 10s, split_external_local_origin_errors: true }
      common_lb_config: { healthy_panic_threshold: { value: 0 } }
",
    );
    let b = parse_ok(&text);
    let c = &b.clusters[0];
    let od = c.outlier_detection.as_ref().unwrap();
    assert_eq!((od.consecutive_5xx, od.consecutive_gateway_failure), (3, 5));
    assert_eq!(od.base_ejection_time, Duration::from_secs(10));
    assert_eq!(od.interval, Duration::from_secs(10));
    assert_eq!(od.max_ejection_time, Duration::from_secs(300));
    assert_eq!(
        (od.max_ejection_percent, od.success_rate_stdev_factor),
        (10, 1900)
    );
    assert_eq!(
        (
            od.enforcing_consecutive_5xx,
            od.enforcing_consecutive_gateway_failure
        ),
        (100, 0)
    );
    assert!(od.split_external_local_origin_errors);
    assert_eq!(c.healthy_panic_threshold, 0.0);
}

#[test]
fn circuit_breakers_take_the_first_entry_of_each_priority() {
    let text = MINIMAL.replace(
        "- name: c\n",
        "- name: c
      circuit_breakers:
        thresholds:
        - { max_connections: 1, maxPendingRequests: 2, track_remaining: true }
        - { max_connections: 5 }
        - { priority: HIGH, max_requests: 7, max_connection_pools: 3, retry_budget: {} }
        per_host_thresholds:
        - { priority: HIGH, max_connections: 9 }
",
    );
    let b = parse_ok(&text);
    let cb = &b.clusters[0].circuit_breakers;
    let [default, high] = &cb.thresholds;
    assert_eq!(
        (default.max_connections, default.max_pending_requests),
        (1, 2)
    );
    assert_eq!((default.max_requests, default.max_retries), (1024, 3));
    assert!(default.track_remaining);
    assert_eq!((high.max_requests, high.max_connection_pools), (7, Some(3)));
    let budget = high.retry_budget.as_ref().unwrap();
    assert_eq!(
        (budget.budget_percent, budget.min_retry_concurrency),
        (20.0, 3)
    );
    assert_eq!(cb.per_host_max_connections, [None, Some(9)]);
}

#[test]
fn camel_case_numbers_as_strings_and_enum_numbers() {
    let text = MINIMAL
        .replace(
            "stat_prefix: s",
            "statPrefix: s\n                codecType: 1\n                xffNumTrustedHops: \"3\"",
        )
        .replace("port_value: 8081", "portValue: \"8081\"")
        .replace(
            "- name: c\n",
            "- name: c\n      lbPolicy: 0\n      connectTimeout: 1.000340s\n",
        );
    let b = parse_ok(&text);
    let hcm = &b.listeners[0].filter_chains[0]
        .http_connection_manager
        .as_ref()
        .unwrap();
    assert_eq!(hcm.stat_prefix, "s");
    assert_eq!(hcm.codec_type, CodecType::Http1);
    assert_eq!(hcm.xff_num_trusted_hops, 3);
    assert_eq!(b.clusters[0].endpoints[0].address.port(), 8081);
    assert_eq!(b.clusters[0].connect_timeout, Duration::new(1, 340_000));
}

#[test]
fn clusters_may_be_defined_after_routes_use_them_and_be_empty() {
    let text = MINIMAL.replace("  clusters:\n", "  clusters:\n    - name: empty\n");
    let b = parse_ok(&text);
    assert_eq!(b.clusters[0].name, "empty");
    assert!(b.clusters[0].endpoints.is_empty());
    let route = &b.listeners[0].filter_chains[0]
        .http_connection_manager
        .as_ref()
        .unwrap()
        .route_config
        .virtual_hosts[0]
        .routes[0];
    // Routes refer to clusters by index into `clusters`.
    assert!(
        matches!(&route.action, RouteAction::Forward(f) if matches!(f.target, ClusterTarget::Cluster(1)))
    );
}

#[test]
fn empty_bootstrap_sections_are_allowed() {
    let b = parse_ok("node: { id: x }\n");
    assert!(b.listeners.is_empty());
    assert!(b.clusters.is_empty());
    let b = parse_ok("{\"static_resources\": {}}");
    assert!(b.listeners.is_empty());
}
