//! Review: realistic Envoy configs and odd inputs.

mod support;

use support::{parse_errors as errs, parse_ok as ok};

use std::net::SocketAddr;
use std::time::Duration;

use weir_config::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Envoy's front-proxy sandbox shape: two clusters, `typed_config` everywhere.
const FRONT_PROXY: &str = r#"
static_resources:
  listeners:
  - address:
      socket_address:
        address: 0.0.0.0
        port_value: 8080
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          codec_type: AUTO
          stat_prefix: ingress_http
          route_config:
            name: local_route
            virtual_hosts:
            - name: backend
              domains:
              - "*"
              routes:
              - match:
                  prefix: "/service/1"
                route:
                  cluster: service1
              - match:
                  prefix: "/service/2"
                route:
                  cluster: service2
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: service1
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: service1
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address:
                address: 10.0.0.1
                port_value: 8000
  - name: service2
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: service2
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address:
                address: 10.0.0.2
                port_value: 8000
admin:
  address:
    socket_address:
      address: 0.0.0.0
      port_value: 8001
"#;

#[test]
fn front_proxy_defaults() {
    let b = ok(FRONT_PROXY);
    assert_eq!(b.admin.unwrap().address, addr("0.0.0.0:8001"));
    let l = &b.listeners[0];
    assert_eq!(l.name, "0.0.0.0_8080");
    assert_eq!(l.per_connection_buffer_limit_bytes, 1024 * 1024);
    let hcm = &l.filter_chains[0].http_connection_manager.as_ref().unwrap();
    assert_eq!(hcm.codec_type, CodecType::Auto);
    assert_eq!(hcm.max_request_headers_bytes, 60 * 1024);
    assert_eq!(hcm.max_headers_count, 100);
    assert_eq!(hcm.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(hcm.stream_idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(hcm.request_timeout, None);
    assert!(hcm.generate_request_id);
    assert!(!hcm.use_remote_address);
    let vh = &hcm.route_config.virtual_hosts[0];
    assert_eq!(vh.domains, vec![DomainMatcher::Any]);
    for (i, r) in vh.routes.iter().enumerate() {
        let RouteAction::Forward(f) = &r.action else {
            panic!()
        };
        assert_eq!(f.timeout, Some(Duration::from_secs(15)));
        assert!(matches!(f.target, ClusterTarget::Cluster(c) if c == i));
    }
    assert_eq!(b.clusters[0].connect_timeout, Duration::from_secs(5));
    assert_eq!(b.clusters[1].connect_timeout, Duration::from_millis(250));
    assert_eq!(b.clusters[0].per_connection_buffer_limit_bytes, 1024 * 1024);
    assert_eq!(
        b.clusters[1].endpoints,
        vec![Endpoint {
            address: addr("10.0.0.2:8000"),
            weight: 1,
            hostname: None,
            placement: Placement::unplaced(),
            health: EndpointHealth::Healthy,
        }]
    );
}

/// The same shape in proto3 JSON: lowerCamelCase keys, uint32s as strings, enums as numbers,
/// `{seconds, nanos}` durations, weighted endpoints over two localities.
const JSON_CAMEL: &str = r#"{
  "node": {"id": "n1", "cluster": "c1"},
  "staticResources": {
    "listeners": [{
      "name": "ingress",
      "address": {"socketAddress": {"address": "::", "portValue": "10000"}},
      "perConnectionBufferLimitBytes": 32768,
      "filterChains": [{
        "filters": [{
          "name": "envoy.filters.network.http_connection_manager",
          "typedConfig": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "statPrefix": "ingress_http",
            "codecType": 1,
            "maxRequestHeadersKb": "80",
            "commonHttpProtocolOptions": {"idleTimeout": {"seconds": "90", "nanos": 500000000}},
            "streamIdleTimeout": {"seconds": 0},
            "requestTimeout": "2.000500s",
            "useRemoteAddress": true,
            "xffNumTrustedHops": 1,
            "generateRequestId": false,
            "routeConfig": {
              "virtualHosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [{
                  "match": {"prefix": "/"},
                  "route": {"cluster": "web", "timeout": {"seconds": 3, "nanos": 250000000}}
                }]
              }]
            },
            "httpFilters": [{
              "name": "envoy.filters.http.router",
              "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
            }]
          }
        }]
      }]
    }],
    "clusters": [{
      "name": "web",
      "type": 0,
      "connectTimeout": {"seconds": 1},
      "lbPolicy": "ROUND_ROBIN",
      "loadAssignment": {
        "clusterName": "web",
        "endpoints": [
          {"lbEndpoints": [
            {"endpoint": {"address": {"socketAddress": {"address": "10.1.0.1", "portValue": 80}}}, "loadBalancingWeight": 3},
            {"endpoint": {"address": {"socketAddress": {"address": "10.1.0.2", "portValue": 80}}}, "loadBalancingWeight": "2"}
          ]},
          {"priority": 0, "lbEndpoints": [
            {"endpoint": {"address": {"socketAddress": {"address": "fd00::3", "portValue": 8080}}}}
          ]}
        ]
      }
    }]
  }
}"#;

#[test]
fn json_camel_case_and_object_durations() {
    let b = ok(JSON_CAMEL);
    assert_eq!(b.node.id, "n1");
    let l = &b.listeners[0];
    assert_eq!(l.address, addr("[::]:10000"));
    assert_eq!(l.per_connection_buffer_limit_bytes, 32768);
    let hcm = &l.filter_chains[0].http_connection_manager.as_ref().unwrap();
    assert_eq!(hcm.codec_type, CodecType::Http1);
    assert_eq!(hcm.max_request_headers_bytes, 80 * 1024);
    assert_eq!(hcm.max_headers_count, 100);
    assert_eq!(hcm.idle_timeout, Some(Duration::new(90, 500_000_000)));
    assert_eq!(hcm.stream_idle_timeout, None);
    assert_eq!(hcm.request_timeout, Some(Duration::new(2, 500_000)));
    assert!(hcm.use_remote_address);
    assert_eq!(hcm.xff_num_trusted_hops, 1);
    assert!(!hcm.generate_request_id);
    let RouteAction::Forward(f) = &hcm.route_config.virtual_hosts[0].routes[0].action else {
        panic!()
    };
    assert_eq!(f.timeout, Some(Duration::from_millis(3250)));
    let c = &b.clusters[0];
    assert_eq!(c.connect_timeout, Duration::from_secs(1));
    assert_eq!(
        c.endpoints,
        vec![
            Endpoint {
                address: addr("10.1.0.1:80"),
                weight: 3,
                hostname: None,
                placement: Placement::unplaced(),
                health: EndpointHealth::Healthy,
            },
            Endpoint {
                address: addr("10.1.0.2:80"),
                weight: 2,
                hostname: None,
                placement: Placement::unplaced(),
                health: EndpointHealth::Healthy,
            },
            Endpoint {
                address: addr("[fd00::3]:8080"),
                weight: 1,
                hostname: None,
                placement: Placement::unplaced(),
                health: EndpointHealth::Healthy,
            },
        ]
    );
}

/// Routing features from Envoy's route docs: wildcard domains, header matchers, redirects,
/// direct responses, weighted clusters, header mutations.
const ROUTING: &str = r#"
static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            name: routes
            virtual_hosts:
            - name: wildcard_sub
              domains: ["*.example.com"]
              routes:
              - match:
                  prefix: /api
                  headers:
                  - name: X-Canary
                    string_match: {exact: "yes", ignore_case: true}
                  - name: user-agent
                    string_match: {safe_regex: {regex: ".*Mobile.*"}}
                    invert_match: true
                route:
                  weighted_clusters:
                    clusters:
                    - {name: v1, weight: 90}
                    - {name: v2, weight: 10}
              - match: {prefix: /api}
                route: {cluster: v1, prefix_rewrite: /v1/api, host_rewrite_literal: api.internal}
            - name: wildcard_tld
              domains: ["example.*", "Example.COM:8080"]
              routes:
              - match: {path: /old}
                redirect: {path_redirect: /new, response_code: PERMANENT_REDIRECT, strip_query: true}
              - match: {prefix: /}
                redirect: {https_redirect: true, host_redirect: www.example.com, port_redirect: 8443}
            - name: fallback
              domains: ["*"]
              request_headers_to_add:
              - header: {key: x-vh, value: fallback}
                append_action: OVERWRITE_IF_EXISTS_OR_ADD
              routes:
              - match: {safe_regex: {regex: "/health(z)?"}}
                direct_response: {status: 200, body: {inline_string: "ok"}}
              - match: {prefix: "/"}
                direct_response: {status: 404, body: {inline_bytes: "bm90IGZvdW5k"}}
                response_headers_to_add:
                - header: {key: cache-control, value: no-store}
                  append: false
  clusters:
  - name: v1
    load_assignment:
      cluster_name: v1
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9001}}}}]}]
  - name: v2
    load_assignment:
      cluster_name: v2
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9002}}}}]}]
"#;

#[test]
fn routing_features() {
    let b = ok(ROUTING);
    let rc = &b.listeners[0].filter_chains[0]
        .http_connection_manager
        .as_ref()
        .unwrap()
        .route_config;
    assert_eq!(rc.name, "routes");
    let [sub, tld, fallback] = &rc.virtual_hosts[..] else {
        panic!()
    };
    assert_eq!(
        sub.domains,
        vec![DomainMatcher::Suffix(".example.com".into())]
    );
    assert_eq!(
        tld.domains,
        vec![
            DomainMatcher::Prefix("example.".into()),
            DomainMatcher::Exact("example.com:8080".into())
        ]
    );
    assert_eq!(fallback.domains, vec![DomainMatcher::Any]);

    let m = &sub.routes[0].matcher;
    assert!(matches!(&m.path, PathMatch::Prefix(p) if p == "/api"));
    assert_eq!(m.headers[0].name, "x-canary");
    assert!(matches!(
        &m.headers[0].rule,
        HeaderMatchRule::String(StringMatcher { kind: StringMatchKind::Exact(v), ignore_case: true }) if v == "yes"
    ));
    assert!(m.headers[1].invert_match);
    let HeaderMatchRule::String(StringMatcher {
        kind: StringMatchKind::Regex(r),
        ..
    }) = &m.headers[1].rule
    else {
        panic!()
    };
    assert!(r.compiled.is_match("Foo Mobile Bar"));
    assert!(!r.compiled.is_match("Desktop"));
    let RouteAction::Forward(f) = &sub.routes[0].action else {
        panic!()
    };
    assert!(matches!(&f.target, ClusterTarget::Weighted(w) if w == &vec![(0, 90), (1, 10)]));
    let RouteAction::Forward(f) = &sub.routes[1].action else {
        panic!()
    };
    assert!(matches!(f.target, ClusterTarget::Cluster(0)));
    assert_eq!(f.prefix_rewrite.as_deref(), Some("/v1/api"));
    assert_eq!(f.host_rewrite_literal.as_deref(), Some("api.internal"));

    let RouteAction::Redirect(r) = &tld.routes[0].action else {
        panic!()
    };
    assert_eq!(r.path, Some(RedirectPath::Path("/new".into())));
    assert_eq!(r.status, 308);
    assert!(r.strip_query);
    assert_eq!(r.scheme, None);
    let RouteAction::Redirect(r) = &tld.routes[1].action else {
        panic!()
    };
    assert_eq!(r.scheme.as_deref(), Some("https"));
    assert_eq!(r.host.as_deref(), Some("www.example.com"));
    assert_eq!(r.port, Some(8443));
    assert_eq!(r.status, 301);

    assert_eq!(
        fallback.headers.request_add,
        vec![HeaderValueOption {
            key: "x-vh".into(),
            value: "fallback".into(),
            append_action: AppendAction::OverwriteIfExistsOrAdd
        }]
    );
    let PathMatch::Regex(r) = &fallback.routes[0].matcher.path else {
        panic!()
    };
    assert!(r.compiled.is_match("/healthz") && !r.compiled.is_match("/healthzz"));
    assert!(matches!(
        &fallback.routes[0].action,
        RouteAction::DirectResponse { status: 200, body } if body == b"ok"
    ));
    assert!(matches!(
        &fallback.routes[1].action,
        RouteAction::DirectResponse { status: 404, body } if body == b"not found"
    ));
    assert_eq!(
        fallback.routes[1].headers.response_add[0].append_action,
        AppendAction::OverwriteIfExistsOrAdd
    );
}

/// YAML anchors, aliases and merge keys (`<<`) are resolved before weir reads the tree; an
/// explicit key overrides a merged one.
#[test]
fn yaml_anchors_and_merge_keys() {
    let b = ok(r#"
static_resources:
  clusters:
  - &base
    name: a
    connect_timeout: 1s
    load_assignment:
      cluster_name: a
      endpoints: [{lb_endpoints: [{endpoint: &ep {address: {socket_address: {address: 127.0.0.1, port_value: 80}}}}, {endpoint: *ep}]}]
  - <<: *base
    name: b
    connect_timeout: 2s
"#);
    assert_eq!(b.clusters[1].name, "b");
    assert_eq!(b.clusters[1].connect_timeout, Duration::from_secs(2));
    assert_eq!(b.clusters[1].endpoints.len(), 2);
}

/// Odd input is an error, never a panic.
#[test]
fn odd_input_is_an_error() {
    let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let deep_json = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let laughs = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
    for text in [
        deep.as_str(),
        deep_json.as_str(),
        laughs,
        "node: {id: a}\n---\nnode: {id: b}\n",
        "admin: {address: {socket_address: {address: 127.0.0.1, port_value: .nan}}}\n",
        "admin: {address: {socket_address: {address: 127.0.0.1, port_value: .inf}}}\n",
        "{\"admin\": {\"address\": {\"socket_address\": {\"port_value\": 1e400}}}}",
        "node: {[a]: b}\n",
        "",
    ] {
        assert!(!errs(text).is_empty());
    }
}

/// A number too big for u64 used to be reported as 18446744073709551615 (the saturated cast),
/// a number that is nowhere in the file; now it is shown as parsed.
#[test]
fn huge_numbers_are_reported_as_parsed() {
    for (text, shown) in [
        (
            "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 99999999999999999999999999999}}}\n",
            "1e+29 is too large",
        ),
        (
            "{\"admin\": {\"address\": {\"socket_address\": {\"address\": \"127.0.0.1\", \"port_value\": 18446744073709551616}}}}",
            "1.8446744073709552e+19 is too large",
        ),
    ] {
        let e = errs(text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("admin.address.socket_address.port_value: "),
            "{e:?}"
        );
        assert!(!e[0].contains("18446744073709551615"), "{e:?}");
        assert!(e[0].contains(shown), "{e:?}");
    }
}

/// An unknown key of a few megabytes made the typo suggester build a key-length × field-length
/// table for every supported field: 700 MB and 19 s (debug) for a 3 MB key in the HCM. A key
/// that long cannot be within the suggester's edit-distance limit of any field name anyway.
#[test]
/// A huge unknown key is reported like any other. (The did-you-mean suggester once built a
/// key-length × name-length table per supported name: 19 s and 700 MB for this key. Speed is
/// for benchmarks, so this test checks only the answer.)
fn a_huge_unknown_key_is_reported() {
    let key = "b".repeat(3 << 20);
    let text = FRONT_PROXY.replace(
        "          stat_prefix: ingress_http\n",
        &format!("          stat_prefix: ingress_http\n          ? {key}\n          : 1\n"),
    );
    let e = errs(&text);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].contains("unknown field"),
        "{}",
        &e[0][e[0].len() - 200..]
    );
}
