//! `stats_sinks` compared with Envoy 1.40's: the same config (a statsd and a DogStatsD sink on
//! loopback UDP, one cluster, a flush every 200 ms) on both, the same requests, then the lines
//! each sent. For every stat both have, the line's form (type, tags) must be the same, and the
//! counters the requests moved must add up to the same totals.

mod differential_support;
mod support;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use differential_support::{EchoOrigin, Envoy, envoy_or_skip, free_port};
use support::{Weir, get};

const REQUESTS: u64 = 4;

fn config(
    (admin, listener): (u16, u16),
    origin: SocketAddr,
    statsd: SocketAddr,
    dog: SocketAddr,
) -> String {
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
stats_flush_interval: 0.2s
stats_sinks:
- name: envoy.stat_sinks.statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.StatsdSink
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {statsd_port}, protocol: UDP }} }}
- name: envoy.stat_sinks.dog_statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {dog_port}, protocol: UDP }} }}
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                route: {{ cluster: backend }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {origin_port} }} }} }}
"#,
        statsd_port = statsd.port(),
        dog_port = dog.port(),
        origin_port = origin.port(),
    )
}

/// A sink: a UDP socket on loopback.
fn sink() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a sink");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let addr = socket.local_addr().expect("addr");
    (socket, addr)
}

/// The lines `socket` received for `wait`, one per statsd line.
fn lines(socket: &UdpSocket, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            out.extend(
                text.split('\n')
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    out
}

/// Per stat name: its form (what follows the value: `|c`, `|g`, `|ms`, and tags), and the sum
/// of its values.
fn by_name(lines: &[String]) -> BTreeMap<String, (String, f64)> {
    let mut out: BTreeMap<String, (String, f64)> = BTreeMap::new();
    for line in lines {
        let Some((name, rest)) = line.split_once(':') else {
            panic!("not a statsd line: {line:?}");
        };
        let (value, form) = rest.split_once('|').expect("a type");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line:?}"));
        // A DogStatsD line's tags are part of its identity.
        let key = match form.split_once("|#") {
            Some((_, tags)) => format!("{name}|#{tags}"),
            None => name.to_owned(),
        };
        let entry = out.entry(key).or_insert((form.to_owned(), 0.0));
        assert_eq!(entry.0, form, "one stat, two forms: {line:?}");
        entry.1 += value;
    }
    out
}

/// Runs the requests and collects what both sinks got, for one proxy.
fn run(
    listener: SocketAddr,
    sinks: &[(UdpSocket, SocketAddr); 2],
) -> [BTreeMap<String, (String, f64)>; 2] {
    for _ in 0..REQUESTS {
        let response = get(listener, "/").expect("a response");
        assert_eq!(response.status(), 200);
    }
    // Five flushes' worth after the requests: every delta has been sent.
    let wait = Duration::from_millis(1200);
    let statsd = lines(&sinks[0].0, wait);
    let dog = lines(&sinks[1].0, Duration::from_millis(300));
    [by_name(&statsd), by_name(&dog)]
}

#[test]
fn stats_sinks_send_what_envoy_sends() {
    let Some(bin) = envoy_or_skip() else {
        return;
    };
    let origin = EchoOrigin::start("backend");
    let envoy_sinks = [sink(), sink()];
    let port = free_port();
    let admin = free_port();
    let text = config(
        (admin, port),
        origin.addr,
        envoy_sinks[0].1,
        envoy_sinks[1].1,
    );
    let _envoy = Envoy::start(&bin, "stats_sinks.yaml", &text, Some(admin), port);
    let envoy = run(([127, 0, 0, 1], port).into(), &envoy_sinks);

    let weir_sinks = [sink(), sink()];
    let text = config((0, 0), origin.addr, weir_sinks[0].1, weir_sinks[1].1);
    let weir = Weir::start(&text, &["--concurrency", "1"]);
    let ours = run(weir.addr(), &weir_sinks);

    for (sink, (envoy, ours)) in ["statsd", "dog_statsd"].iter().zip(envoy.iter().zip(&ours)) {
        let shared: Vec<&String> = envoy.keys().filter(|k| ours.contains_key(*k)).collect();
        assert!(
            shared.len() >= 20,
            "{sink}: only {} stats in common",
            shared.len()
        );
        for name in &shared {
            assert_eq!(envoy[*name].0, ours[*name].0, "{sink}: the form of {name}");
        }
        // The counters the requests moved, summed over every flush. (Not connection counts:
        // starting Envoy, the test probes its listener.) DogStatsD names carry no tag values.
        let counters: &[&str] = if *sink == "statsd" {
            &[
                "envoy.http.ingress.downstream_rq_total",
                "envoy.http.ingress.downstream_rq_completed",
                "envoy.cluster.backend.upstream_rq_total",
                "envoy.cluster.backend.upstream_cx_total",
                "envoy.cluster.backend.upstream_rq_200",
            ]
        } else {
            &[
                "envoy.http.downstream_rq_total",
                "envoy.http.downstream_rq_completed",
                "envoy.cluster.upstream_rq_total",
                "envoy.cluster.upstream_cx_total",
                "envoy.cluster.upstream_rq",
            ]
        };
        for counter in counters {
            let total = |map: &BTreeMap<String, (String, f64)>| -> f64 {
                map.iter()
                    .filter(|(k, (form, _))| form.starts_with('c') && name_matches(k, counter))
                    .map(|(_, (_, v))| v)
                    .sum()
            };
            assert!(total(envoy) >= 1.0, "{sink}: Envoy sent no {counter}");
            assert_eq!(total(envoy), total(ours), "{sink}: {counter}");
        }
    }
}

/// Whether a received stat is `name` of the test's connection manager or cluster (not the
/// admin's): a DogStatsD line names them in its tags.
fn name_matches(key: &str, name: &str) -> bool {
    match key.split_once("|#") {
        Some((stat, tags)) => {
            stat == name && (tags.contains(":ingress") || tags.contains(":backend"))
        }
        None => key == name,
    }
}
