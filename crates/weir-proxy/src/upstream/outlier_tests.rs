//! The detector on a virtual clock: runs of failures, the sweep, the caps, the rates.

use super::*;
use crate::upstream::host_set::HostSpec;

fn cluster(n: usize) -> ClusterHosts {
    let specs = (0..n)
        .map(|i| HostSpec::plain(format!("10.0.0.{}:80", i + 1).parse().unwrap(), 1))
        .collect();
    ClusterHosts::new(vec![specs], 1)
}

fn host(hosts: &ClusterHosts, i: usize) -> Arc<Host> {
    hosts.current(0).hosts[i].clone()
}

/// Feeds `outcome` `n` times to host `i`, ejecting as a worker would.
fn feed(d: &Detector, hosts: &ClusterHosts, i: usize, outcome: Outcome, n: u32, now: Instant) {
    for _ in 0..n {
        let h = host(hosts, i);
        for kind in h.outlier.record(outcome, &d.config).into_iter().flatten() {
            d.on_consecutive(hosts, &h, kind, now);
        }
    }
}

#[test]
fn consecutive_5xx_eject_and_the_sweep_returns_the_host_after_its_time() {
    let hosts = cluster(2);
    let t0 = Instant::now();
    let d = Detector::new(OutlierDetection::default(), 0, t0);
    feed(&d, &hosts, 0, Outcome::Status(500), 4, t0);
    feed(&d, &hosts, 0, Outcome::Status(200), 1, t0);
    feed(&d, &hosts, 0, Outcome::Status(500), 4, t0);
    assert!(host(&hosts, 0).healthy(), "a success broke the run");
    feed(&d, &hosts, 0, Outcome::Status(503), 1, t0);
    assert!(!host(&hosts, 0).healthy(), "five in a row");
    assert_eq!(d.stats.ejections_active.load(Relaxed), 1);
    let sweep = |secs| d.sweep(&hosts, t0 + Duration::from_secs(secs));
    assert!(!sweep(20), "30 s not over");
    assert!(sweep(30));
    assert!(host(&hosts, 0).healthy());
    // Ejected again at once: the second ejection lasts twice as long.
    feed(
        &d,
        &hosts,
        0,
        Outcome::ConnectFailed,
        5,
        t0 + Duration::from_secs(31),
    );
    assert!(
        !host(&hosts, 0).healthy(),
        "connect failures are 5xx unsplit"
    );
    assert!(!sweep(80));
    assert!(sweep(91));
}

#[test]
fn max_ejection_percent_keeps_hosts_in() {
    let hosts = cluster(4);
    let t0 = Instant::now();
    let config = OutlierDetection {
        max_ejection_percent: 30,
        ..OutlierDetection::default()
    };
    let d = Detector::new(config, 0, t0);
    feed(&d, &hosts, 0, Outcome::Status(500), 5, t0);
    feed(&d, &hosts, 1, Outcome::Status(500), 5, t0);
    feed(&d, &hosts, 2, Outcome::Status(500), 5, t0);
    let healthy = hosts
        .current(0)
        .hosts
        .iter()
        .filter(|h| h.healthy())
        .count();
    assert_eq!(healthy, 2, "25 % ejected allows one more, 50 % none");
    assert_eq!(d.stats.ejections_overflow.load(Relaxed), 1);
}

#[test]
fn gateway_failures_are_detected_but_not_enforced_by_default() {
    let hosts = cluster(2);
    let t0 = Instant::now();
    let config = OutlierDetection {
        consecutive_5xx: 100,
        ..OutlierDetection::default()
    };
    let d = Detector::new(config, 0, t0);
    feed(&d, &hosts, 0, Outcome::Status(502), 5, t0);
    assert!(host(&hosts, 0).healthy());
    let detected = Ejection::ConsecutiveGatewayFailure as usize;
    assert_eq!(d.stats.detected[detected].load(Relaxed), 1);
    assert_eq!(d.stats.enforced[detected].load(Relaxed), 0);
}

#[test]
fn a_low_success_rate_is_ejected_at_the_sweep() {
    let hosts = cluster(5);
    let t0 = Instant::now();
    let config = OutlierDetection {
        consecutive_5xx: 1000,
        ..OutlierDetection::default()
    };
    let d = Detector::new(config, 0, t0);
    for i in 0..4 {
        feed(&d, &hosts, i, Outcome::Status(200), 100, t0);
    }
    // Host 4: half fail. Mean 90, deviation 20: below 90 − 1.9 × 20 = 52 is out.
    for _ in 0..50 {
        feed(&d, &hosts, 4, Outcome::Status(500), 1, t0);
        feed(&d, &hosts, 4, Outcome::Status(200), 1, t0);
    }
    assert!(host(&hosts, 4).healthy());
    assert!(d.sweep(&hosts, t0 + Duration::from_secs(10)));
    assert!(!host(&hosts, 4).healthy());
    assert_eq!(d.success_rate(host(&hosts, 0).id, false), 100.0);
    assert_eq!(d.success_rate(host(&hosts, 4).id, false), 50.0);
    d.sweep(&hosts, t0 + Duration::from_secs(20));
    assert_eq!(
        d.success_rate(host(&hosts, 0).id, false),
        -1.0,
        "no requests since"
    );
    assert_eq!(
        d.stats.enforced[Ejection::SuccessRate as usize].load(Relaxed),
        1
    );
}

#[test]
fn failure_percentage_ejects_when_enforced() {
    let hosts = cluster(5);
    let t0 = Instant::now();
    let config = OutlierDetection {
        consecutive_5xx: 1000,
        enforcing_failure_percentage: 100,
        enforcing_success_rate: 0,
        ..OutlierDetection::default()
    };
    let d = Detector::new(config, 0, t0);
    for i in 0..4 {
        feed(&d, &hosts, i, Outcome::Status(200), 50, t0);
    }
    feed(&d, &hosts, 4, Outcome::Status(500), 45, t0);
    feed(&d, &hosts, 4, Outcome::Status(200), 5, t0);
    d.sweep(&hosts, t0 + Duration::from_secs(10));
    assert!(!host(&hosts, 4).healthy(), "90 % ≥ 85 %");
    assert_eq!(d.success_rate(host(&hosts, 4).id, false), 10.0);
    assert_eq!(d.success_rate(host(&hosts, 0).id, false), 100.0);
}

#[test]
fn split_errors_count_connect_failures_apart() {
    let hosts = cluster(2);
    let t0 = Instant::now();
    let config = OutlierDetection {
        split_external_local_origin_errors: true,
        consecutive_local_origin_failure: 3,
        ..OutlierDetection::default()
    };
    let d = Detector::new(config, 0, t0);
    feed(&d, &hosts, 0, Outcome::Status(500), 4, t0);
    feed(&d, &hosts, 0, Outcome::ConnectFailed, 2, t0);
    feed(&d, &hosts, 0, Outcome::Connected, 1, t0);
    feed(&d, &hosts, 0, Outcome::Timeout, 2, t0);
    assert!(host(&hosts, 0).healthy(), "neither run is complete");
    feed(&d, &hosts, 0, Outcome::ConnectFailed, 1, t0);
    assert!(!host(&hosts, 0).healthy());
    let kind = Ejection::ConsecutiveLocalOriginFailure as usize;
    assert_eq!(d.stats.enforced[kind].load(Relaxed), 1);
}
