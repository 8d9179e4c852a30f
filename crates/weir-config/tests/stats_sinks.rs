//! `stats_sinks` (statsd and DogStatsD over UDP) and `stats_flush_interval`: every supported
//! shape, Envoy's defaults, and each error with its path.

mod support;

use std::time::Duration;

use support::{parse_errors, parse_ok};
use weir_config::{StatsSink, StatsSinkKind};

const STATSD: &str = "type.googleapis.com/envoy.config.metrics.v3.StatsdSink";
const DOG: &str = "type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink";

/// A bootstrap with one sink of type `url` whose typed_config also holds `fields` (a YAML
/// flow mapping's inside), and `extra` top-level lines.
fn config(url: &str, fields: &str, extra: &str) -> String {
    format!(
        "static_resources: {{}}\n\
         stats_sinks:\n\
         - name: sink\n  \
           typed_config: {{ \"@type\": {url}, {fields} }}\n\
         {extra}"
    )
}

const UDP: &str = "address: { socket_address: { address: 127.0.0.1, port_value: 8125 } }";

#[test]
fn no_sinks_and_the_default_flush_interval() {
    let b = parse_ok("static_resources: {}\n");
    assert!(b.stats_sinks.is_empty());
    assert_eq!(b.stats_flush_interval, Duration::from_secs(5));
}

#[test]
fn a_statsd_sink_with_envoys_default_prefix() {
    let b = parse_ok(&config(STATSD, UDP, "stats_flush_interval: 0.25s\n"));
    assert_eq!(
        b.stats_sinks,
        [StatsSink {
            kind: StatsSinkKind::Statsd,
            address: "127.0.0.1:8125".parse().unwrap(),
            prefix: "envoy".into(),
            max_bytes_per_datagram: None,
        }]
    );
    assert_eq!(b.stats_flush_interval, Duration::from_millis(250));
    // An empty prefix is Envoy's default too.
    let b = parse_ok(&config(STATSD, &format!("{UDP}, prefix: ''"), ""));
    assert_eq!(b.stats_sinks[0].prefix, "envoy");
}

#[test]
fn a_dog_statsd_sink_with_its_fields() {
    let fields = "address: { socket_address: { address: '::1', port_value: 9125, protocol: UDP } }, \
                  prefix: edge, max_bytes_per_datagram: 512";
    let b = parse_ok(&config(DOG, fields, ""));
    assert_eq!(
        b.stats_sinks,
        [StatsSink {
            kind: StatsSinkKind::DogStatsd,
            address: "[::1]:9125".parse().unwrap(),
            prefix: "edge".into(),
            max_bytes_per_datagram: Some(512),
        }]
    );
}

#[test]
fn errors_name_their_paths() {
    let cases: &[(String, &str)] = &[
        (
            config(STATSD, "tcp_cluster_name: stats", ""),
            "stats_sinks[0].typed_config.tcp_cluster_name: statsd over TCP (tcp_cluster_name) is not supported yet: use `address` (UDP)",
        ),
        (
            config(STATSD, &format!("{UDP}, tcp_cluster_name: stats"), ""),
            "stats_sinks[0].typed_config.tcp_cluster_name: only one of `address` and `tcp_cluster_name` may be set",
        ),
        (
            config(STATSD, "prefix: x", ""),
            "stats_sinks[0].typed_config.address: `address` is required",
        ),
        (
            config(
                DOG,
                "address: { socket_address: { address: localhost, port_value: 8125 } }",
                "",
            ),
            "stats_sinks[0].typed_config.address.socket_address.address: `localhost` is not an IP address: a stats sink needs an IP literal",
        ),
        (
            config(DOG, &format!("{UDP}, max_bytes_per_datagram: 0"), ""),
            "stats_sinks[0].typed_config.max_bytes_per_datagram: max_bytes_per_datagram must be greater than 0",
        ),
        (
            config(STATSD, &format!("{UDP}, max_bytes_per_datagram: 512"), ""),
            "stats_sinks[0].typed_config.max_bytes_per_datagram: unknown field (fields weir supports here: @type, address, tcp_cluster_name, prefix)",
        ),
        (
            config(
                "type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig",
                "",
                "",
            ),
            "stats_sinks[0].typed_config.@type: stats sink type `type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig` is not supported yet (weir supports type.googleapis.com/envoy.config.metrics.v3.StatsdSink or type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink)",
        ),
        (
            config(STATSD, UDP, "stats_flush_interval: 300s\n"),
            "stats_flush_interval: stats_flush_interval must be at least 1ms and less than 300s",
        ),
        (
            config(STATSD, UDP, "stats_flush_interval: 0s\n"),
            "stats_flush_interval: stats_flush_interval must be at least 1ms and less than 300s",
        ),
        (
            config(STATSD, UDP, "stats_flush_on_admin: true\n"),
            "stats_flush_on_admin: this Envoy field is not supported by weir yet",
        ),
        (
            config(
                STATSD,
                UDP,
                "stats_config: { use_all_default_tags: false }\n",
            ),
            "stats_config: this Envoy field is not supported by weir yet",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_errors(text), [*expected], "{text}");
    }
}

#[test]
fn a_sink_needs_a_typed_config() {
    assert_eq!(
        parse_errors("stats_sinks: [{ name: envoy.stat_sinks.statsd }]\n"),
        [
            "stats_sinks[0].typed_config: `typed_config` is required: weir picks the sink by its @type (type.googleapis.com/envoy.config.metrics.v3.StatsdSink or type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink)"
        ]
    );
}
