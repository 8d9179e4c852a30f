//! Outlier detection over real sockets, weir and Envoy 1.40 given the same config and the same
//! traffic: an origin that answers 503 is ejected after `consecutive_5xx` of them in a row,
//! takes no more requests while ejected, shows `/failed_outlier_check` in `/clusters`, and
//! comes back after `base_ejection_time`.

mod differential_support;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use differential_support::{Envoy, envoy_or_skip, envoy_ports};
use support::{Client, Origin, Reply, Weir, endpoint_line, get, proxy_config};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Two origins, round robin, ejection after three 5xx in a row for one second.
fn config(good: SocketAddr, bad: SocketAddr) -> String {
    let endpoint = endpoint_line;
    proxy_config(good)
        .replace(&endpoint(good), &format!("{}{}", endpoint(good), endpoint(bad)))
        .replace(
            "    lb_policy: ROUND_ROBIN\n",
            "    lb_policy: ROUND_ROBIN\n    outlier_detection: { consecutive_5xx: 3, interval: 0.5s, base_ejection_time: 1s, max_ejection_percent: 50 }\n",
        )
}

/// What one proxy did.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// 503s seen before the ejection.
    failures_before: usize,
    /// Statuses of the requests sent while the bad origin was out.
    while_ejected: Vec<u16>,
    /// The bad origin's `health_flags` then, and after its ejection time.
    flags: (String, String),
    /// Counters and gauges after it came back.
    stats: Vec<(String, i64)>,
}

fn stat(admin: SocketAddr, name: &str) -> Option<i64> {
    let body = get(admin, "/stats").ok()?.text();
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("cluster.origin.{name}: ")))
        .and_then(|v| v.trim().parse().ok())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn health_flags(admin: SocketAddr, bad: SocketAddr) -> String {
    let body = get(admin, "/clusters").expect("/clusters").text();
    let prefix = format!("origin::{bad}::health_flags::");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {body}"))
        .to_owned()
}

fn run(addr: SocketAddr, admin: SocketAddr, bad: SocketAddr) -> Outcome {
    let mut client = Client::connect(addr).expect("connect");
    client.set_read_timeout(TIMEOUT).expect("timeout");
    let mut failures_before = 0;
    for _ in 0..20 {
        let status = client.get("/").expect("response").status();
        failures_before += usize::from(status == 503);
        if failures_before == 3 {
            break;
        }
    }
    wait_for("the ejection", || {
        stat(admin, "outlier_detection.ejections_active") == Some(1)
    });
    // Envoy's admin sees an ejection a moment before its worker does.
    std::thread::sleep(Duration::from_millis(50));
    let ejected = health_flags(admin, bad);
    let while_ejected = (0..6)
        .map(|_| client.get("/").expect("response").status())
        .collect();
    wait_for("the return", || {
        stat(admin, "outlier_detection.ejections_active") == Some(0)
    });
    let back = health_flags(admin, bad);
    let names = [
        "outlier_detection.ejections_enforced_total",
        "outlier_detection.ejections_enforced_consecutive_5xx",
        "outlier_detection.ejections_detected_consecutive_5xx",
        "outlier_detection.ejections_overflow",
        "outlier_detection.ejections_total",
        "outlier_detection.ejections_consecutive_5xx",
        "membership_healthy",
        "membership_total",
    ];
    let stats = names
        .iter()
        .map(|n| (n.to_string(), stat(admin, n).unwrap_or(-1)))
        .collect();
    Outcome {
        failures_before,
        while_ejected,
        flags: (ejected, back),
        stats,
    }
}

#[test]
fn a_failing_origin_is_ejected_and_returns_as_in_envoy() {
    let good = Origin::start(|_| Ok(Reply::text(200, "good")));
    let bad = Origin::start(|_| Ok(Reply::text(503, "bad")));
    let weir = Weir::start(&config(good.addr, bad.addr), &["--concurrency", "1"]);
    let ours = run(weir.addr(), weir.admin, bad.addr);
    assert_eq!(ours.failures_before, 3);
    assert_eq!(ours.while_ejected, [200; 6], "the bad origin takes nothing");
    assert_eq!(ours.flags.0, "/failed_outlier_check");
    assert_eq!(ours.flags.1, "healthy");
    let value = |n: &str| ours.stats.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
    assert_eq!(
        value("outlier_detection.ejections_enforced_consecutive_5xx"),
        Some(1)
    );
    assert_eq!(value("membership_healthy"), Some(2));

    let Some(envoy_bin) = envoy_or_skip() else {
        return;
    };
    drop(weir);
    let (envoy_config, port, admin) = envoy_ports(&config(good.addr, bad.addr));
    let _envoy = Envoy::start(&envoy_bin, "od.yaml", &envoy_config, Some(admin), port);
    let local = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let envoys = run(local(port), local(admin), bad.addr);
    assert_eq!(ours, envoys, "weir and Envoy differ");
}

/// Under load from four clients, one origin starts failing and later recovers: with a retry
/// policy that avoids the host already tried (and room for four retries at once in the
/// cluster's circuit breaker), every request is answered 200; the failing host
/// is ejected, and takes requests again once its ejection is over.
#[test]
fn a_host_going_bad_under_load_costs_no_request_and_comes_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let failing = Arc::new(AtomicBool::new(false));
    let good = Origin::start(|_| Ok(Reply::text(200, "good")));
    let flaky_state = failing.clone();
    let served_by_flaky = Arc::new(AtomicU64::new(0));
    let flaky_count = served_by_flaky.clone();
    let flaky = Origin::start(move |_| {
        if flaky_state.load(Ordering::Relaxed) {
            return Ok(Reply::text(503, "down"));
        }
        flaky_count.fetch_add(1, Ordering::Relaxed);
        Ok(Reply::text(200, "flaky"))
    });
    // Envoy's default breaker allows 3 retries at once; four clients may need four.
    let text = config(good.addr, flaky.addr)
        .replace("base_ejection_time: 1s", "base_ejection_time: 0.3s")
        .replace(
            "    outlier_detection:",
            "    circuit_breakers: { thresholds: [ { max_retries: 100 } ] }\n    outlier_detection:",
        )
        .replace(
            "route: { cluster: origin, timeout: 14s }",
            "route: { cluster: origin, timeout: 14s, retry_policy: { retry_on: 5xx, num_retries: 2, retry_host_predicate: [ { name: envoy.retry_host_predicates.previous_hosts, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate } } ] } }",
        );
    let weir = Weir::start(&text, &["--concurrency", "2"]);
    let run_load = |n: usize| -> Vec<u16> {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let addr = weir.addr();
                std::thread::spawn(move || {
                    let mut client = Client::connect(addr).expect("connect");
                    client.set_read_timeout(TIMEOUT).expect("timeout");
                    (0..n)
                        .map(|_| client.get("/").expect("response").status())
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("client"))
            .collect()
    };
    assert!(run_load(25).iter().all(|&s| s == 200));
    failing.store(true, Ordering::Relaxed);
    let during = run_load(50);
    assert!(
        during.iter().all(|&s| s == 200),
        "a request was lost: {during:?}"
    );
    assert_eq!(
        stat(
            weir.admin,
            "outlier_detection.ejections_enforced_consecutive_5xx"
        )
        .map(|n| n >= 1),
        Some(true)
    );
    failing.store(false, Ordering::Relaxed);
    wait_for("the return", || {
        stat(weir.admin, "outlier_detection.ejections_active") == Some(0)
    });
    let before = served_by_flaky.load(Ordering::Relaxed);
    assert!(run_load(25).iter().all(|&s| s == 200));
    assert!(
        served_by_flaky.load(Ordering::Relaxed) > before,
        "the recovered host takes requests again"
    );
}
