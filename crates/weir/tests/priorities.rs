//! Priorities, localities and `health_status` over real sockets, weir and Envoy 1.40 given
//! the same config and traffic: failover to priority 1 when priority 0 has no healthy host
//! (an `UNHEALTHY` and a `DRAINING` endpoint), a degraded-only cluster still served, a retry
//! under `previous_priorities` going to the next priority (and without it, back to the same
//! one), locality weights splitting round robin, and `/clusters` and the membership gauges
//! saying the same.

mod differential_support;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use differential_support::{Envoy, envoy_or_skip, envoy_ports};
use support::{Client, Origin, Reply, Weir, get, proxy_config};

const TIMEOUT: Duration = Duration::from_secs(10);

fn endpoint(a: SocketAddr, health: &str) -> String {
    let health = match health {
        "" => String::new(),
        h => format!(", health_status: {h}"),
    };
    format!(
        "        - {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}{health} }}\n",
        a.port()
    )
}

fn cluster(name: &str, extra: &str, localities: &[(&str, Vec<String>)]) -> String {
    let mut out = format!(
        "  - name: {name}\n    type: STATIC\n    connect_timeout: 2s\n    lb_policy: ROUND_ROBIN\n{extra}    load_assignment:\n      cluster_name: {name}\n      endpoints:\n"
    );
    for (head, endpoints) in localities {
        out.push_str(&format!("      - {head}\n        lb_endpoints:\n"));
        for e in endpoints {
            out.push_str(e);
        }
    }
    out
}

const PREVIOUS_PRIORITIES: &str = "retry_priority: { name: envoy.retry_priorities.previous_priorities, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig, update_frequency: 1 } }";

/// Origins: a, b, c, d answer 200 with their name; e answers 503.
fn config(o: &[SocketAddr; 5]) -> String {
    let [a, b, c, d, e] = *o;
    let route = |prefix: &str, action: &str| {
        format!(
            "              - match: {{ prefix: {prefix} }}\n                route: {{ {action} }}\n"
        )
    };
    let routes = [
        route("/failover", "cluster: failover"),
        route("/degraded", "cluster: degraded"),
        route(
            "/retry-next",
            &format!("cluster: retry, retry_policy: {{ retry_on: 5xx, num_retries: 1, {PREVIOUS_PRIORITIES} }}"),
        ),
        route(
            "/retry-same",
            "cluster: retry, retry_policy: { retry_on: 5xx, num_retries: 1 }",
        ),
        route("/zones", "cluster: zones"),
    ]
    .concat();
    let base = proxy_config(a)
        .replace("cluster: origin, timeout: 14s", "cluster: zones")
        .replace(
            "              - match: { path: /local }\n",
            &format!("{routes}              - match: {{ path: /local }}\n"),
        );
    let (head, _) = base.split_once("  clusters:\n").expect("clusters");
    let clusters = [
        cluster(
            "failover",
            "",
            &[
                (
                    "priority: 0\n        locality: { region: r1, zone: z1, sub_zone: s1 }",
                    vec![endpoint(a, "UNHEALTHY"), endpoint(b, "DRAINING")],
                ),
                (
                    "priority: 1\n        locality: { region: r1, zone: z2 }",
                    vec![endpoint(c, ""), endpoint(d, "HEALTHY")],
                ),
            ],
        ),
        cluster(
            "degraded",
            "",
            &[("priority: 0", vec![endpoint(c, "DEGRADED")])],
        ),
        cluster(
            "retry",
            "",
            &[
                ("priority: 0", vec![endpoint(e, "")]),
                ("priority: 1", vec![endpoint(c, "")]),
            ],
        ),
        cluster(
            "zones",
            "    common_lb_config: { locality_weighted_lb_config: {} }\n",
            &[
                (
                    "locality: { zone: z1 }\n        load_balancing_weight: 1",
                    vec![endpoint(a, "")],
                ),
                (
                    "locality: { zone: z2 }\n        load_balancing_weight: 3",
                    vec![endpoint(b, "")],
                ),
            ],
        ),
    ];
    format!("{head}  clusters:\n{}", clusters.concat())
}

/// What one proxy did.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Per path, how many answers of each status and body.
    served: Vec<(String, BTreeMap<String, usize>)>,
    /// `/clusters` lines about health and place, sorted.
    hosts: Vec<String>,
    /// Membership gauges and retry counters.
    stats: Vec<(String, i64)>,
}

fn run(addr: SocketAddr, admin: SocketAddr) -> Outcome {
    let mut client = Client::connect(addr).expect("connect");
    client.set_read_timeout(TIMEOUT).expect("timeout");
    let served = [
        ("/failover", 12),
        ("/degraded", 4),
        ("/retry-next", 6),
        ("/retry-same", 3),
        ("/zones", 40),
    ]
    .iter()
    .map(|&(path, n)| {
        let mut seen = BTreeMap::new();
        for _ in 0..n {
            let r = client.get(path).expect("response");
            *seen
                .entry(format!("{} {}", r.status(), r.text().trim()))
                .or_default() += 1;
        }
        (path.to_owned(), seen)
    })
    .collect();
    let clusters = get(admin, "/clusters").expect("/clusters").text();
    let mut hosts: Vec<String> = clusters
        .lines()
        .filter(|l| {
            ["health_flags", "region", "zone", "sub_zone", "priority"]
                .iter()
                .any(|f| l.contains(&format!("::{f}::")))
        })
        .map(str::to_owned)
        .collect();
    hosts.sort();
    let all = get(admin, "/stats").expect("/stats").text();
    let mut stats = Vec::new();
    for c in ["failover", "degraded", "retry", "zones"] {
        for n in [
            "membership_total",
            "membership_healthy",
            "membership_degraded",
            "membership_excluded",
            "upstream_rq_retry",
        ] {
            let name = format!("cluster.{c}.{n}");
            let v = all
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(-1);
            stats.push((name, v));
        }
    }
    Outcome {
        served,
        hosts,
        stats,
    }
}

#[test]
fn priorities_localities_and_health_status_as_in_envoy() {
    let origin = |name: &'static str, status| {
        Origin::start(move |_| Ok(Reply::text(status, format!("{name}\n"))))
    };
    let origins = [
        origin("a", 200),
        origin("b", 200),
        origin("c", 200),
        origin("d", 200),
        origin("e", 503),
    ];
    let addrs = [0, 1, 2, 3, 4].map(|i| origins[i].addr);
    let text = config(&addrs);
    let weir = Weir::start(&text, &["--concurrency", "1"]);
    let ours = run(weir.addr(), weir.admin);
    let served = |path: &str| {
        let (_, seen) = ours.served.iter().find(|(p, _)| p == path).unwrap();
        seen.clone()
    };
    let counts = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    assert_eq!(served("/failover"), counts(&[("200 c", 6), ("200 d", 6)]));
    assert_eq!(served("/degraded"), counts(&[("200 c", 4)]));
    assert_eq!(served("/retry-next"), counts(&[("200 c", 6)]));
    assert_eq!(served("/retry-same"), counts(&[("503 e", 3)]));
    assert_eq!(served("/zones"), counts(&[("200 a", 10), ("200 b", 30)]));
    let a = addrs[0];
    assert!(
        ours.hosts
            .contains(&format!("failover::{a}::health_flags::/failed_eds_health")),
        "{:?}",
        ours.hosts
    );

    let Some(envoy_bin) = envoy_or_skip() else {
        return;
    };
    drop(weir);
    let (envoy_config, port, admin) = envoy_ports(&text);
    let _envoy = Envoy::start(
        &envoy_bin,
        "priorities.yaml",
        &envoy_config,
        Some(admin),
        port,
    );
    let local = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let envoys = run(local(port), local(admin));
    assert_eq!(ours, envoys, "weir and Envoy differ");
}
