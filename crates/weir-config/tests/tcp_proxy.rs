//! `envoy.filters.network.tcp_proxy`: what loads, and every error, each naming its field.

mod support;

use std::time::Duration;

use support::{parse_errors, parse_ok};

/// A config whose one chain's filter is the TCP proxy with `fields` (JSON object members).
fn config(fields: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config: {{ "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", {fields} }}
  clusters:
  - name: a
    load_assignment:
      cluster_name: a
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8001 }} }} }}
  - name: b
    load_assignment:
      cluster_name: b
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 8002 }} }} }}
"#
    )
}

const CTX: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

#[test]
fn a_cluster_and_its_defaults() {
    let b = parse_ok(&config(r#""stat_prefix": "pass", "cluster": "b""#));
    let chain = &b.listeners[0].filter_chains[0];
    assert!(chain.http_connection_manager.is_none());
    let proxy = chain.tcp_proxy.as_ref().expect("a TCP proxy");
    assert_eq!(proxy.stat_prefix, "pass");
    assert_eq!(proxy.clusters, vec![(1, 1)]);
    assert_eq!(proxy.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(proxy.max_connect_attempts, 1);
}

#[test]
fn weighted_clusters_idle_timeout_and_attempts() {
    let b = parse_ok(&config(
        r#""stat_prefix": "pass", "weighted_clusters": { "clusters": [{ "name": "a", "weight": 3 }, { "name": "b", "weight": 1 }] }, "idle_timeout": "0s", "max_connect_attempts": 4"#,
    ));
    let proxy = b.listeners[0].filter_chains[0].tcp_proxy.as_ref().unwrap();
    assert_eq!(proxy.clusters, vec![(0, 3), (1, 1)]);
    assert_eq!(proxy.idle_timeout, None);
    assert_eq!(proxy.max_connect_attempts, 4);
}

#[test]
fn every_error_names_its_field() {
    let cases = [
        (
            r#""cluster": "a""#.to_owned(),
            format!("{CTX}.stat_prefix: `stat_prefix` is required"),
        ),
        (
            r#""stat_prefix": "p""#.to_owned(),
            format!("{CTX}: a TCP proxy needs `cluster` or `weighted_clusters`"),
        ),
        (
            r#""stat_prefix": "p", "cluster": "nope""#.to_owned(),
            format!("{CTX}.cluster: unknown cluster `nope` (static_resources.clusters has: a, b)"),
        ),
        (
            r#""stat_prefix": "p", "cluster": "a", "weighted_clusters": { "clusters": [{ "name": "a", "weight": 1 }] }"#.to_owned(),
            format!("{CTX}.weighted_clusters: give `cluster` or `weighted_clusters`, not both"),
        ),
        (
            r#""stat_prefix": "p", "weighted_clusters": { "clusters": [{ "name": "a", "weight": 0 }] }"#.to_owned(),
            format!("{CTX}.weighted_clusters.clusters[0].weight: weight must be at least 1"),
        ),
        (
            r#""stat_prefix": "p", "cluster": "a", "max_connect_attempts": 0"#.to_owned(),
            format!("{CTX}.max_connect_attempts: max_connect_attempts must be at least 1"),
        ),
        (
            r#""stat_prefix": "p", "cluster": "a", "access_log_options": {}"#.to_owned(),
            format!("{CTX}.access_log_options: this Envoy field is not supported by weir yet"),
        ),
        (
            r#""stat_prefix": "p", "cluster": "a", "hash_policy": []"#.to_owned(),
            format!("{CTX}.hash_policy: this Envoy field is not supported by weir yet"),
        ),
    ];
    for (fields, expected) in cases {
        assert_eq!(parse_errors(&config(&fields)), [expected], "{fields}");
    }
}
