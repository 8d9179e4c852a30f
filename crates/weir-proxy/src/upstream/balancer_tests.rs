//! Priorities, degraded and draining hosts, and locality weights, picked in memory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use weir_config::{EndpointHealth, LbPolicy, LoadSpread, Locality, Placement};

use crate::upstream::host_set::{ClusterHosts, HEALTH_OUTLIER, HostSlots, HostSpec};

/// A host at 10.0.<priority>.<n>:80 in `zone` (weight `lw` for the zone).
fn host(priority: u32, n: u8, zone: &str, lw: Option<u32>, health: EndpointHealth) -> HostSpec {
    let address = format!("10.0.{priority}.{n}:80").parse().unwrap();
    HostSpec {
        eds_health: health,
        placement: Arc::new(Placement {
            priority,
            locality: Locality {
                zone: zone.into(),
                ..Locality::default()
            },
            locality_weight: lw,
        }),
        ..HostSpec::plain(address, 1)
    }
}

fn healthy(priority: u32, n: u8) -> HostSpec {
    host(priority, n, "", None, EndpointHealth::Healthy)
}

fn slots(hosts: &ClusterHosts, policy: LbPolicy, spread: LoadSpread) -> HostSlots {
    HostSlots::new(hosts.current(0), policy, spread, 50.0, 0)
}

/// Where `n` picks went, by address.
fn spread_of(slots: &mut HostSlots, n: usize, seed: u64) -> HashMap<SocketAddr, usize> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut seen = HashMap::new();
    for _ in 0..n {
        let id = slots.pick(None, &mut rng, None).expect("a host");
        *seen.entry(slots.address(id).unwrap()).or_default() += 1;
    }
    seen
}

fn at(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn priority_one_takes_load_only_as_priority_zero_loses_health() {
    let hosts = ClusterHosts::new(vec![vec![healthy(0, 1), healthy(0, 2), healthy(1, 1)]], 1);
    let mut s = slots(&hosts, LbPolicy::RoundRobin, LoadSpread::default());
    let seen = spread_of(&mut s, 100, 1);
    assert_eq!(seen.get(&at("10.0.1.1:80")), None, "{seen:?}");
    assert!(!s.in_panic());
    // One of the two level-0 hosts fails: 50 % × 1.4 = 70 % stays at level 0.
    let id = hosts.current(0).hosts[0].id;
    hosts.set_health(0, id, HEALTH_OUTLIER, true);
    s.apply(hosts.current(0));
    let seen = spread_of(&mut s, 2000, 2);
    assert_eq!(
        seen.get(&at("10.0.0.1:80")),
        None,
        "the failed host: {seen:?}"
    );
    let p1 = seen[&at("10.0.1.1:80")];
    assert!((500..700).contains(&p1), "about 30 % to level 1: {seen:?}");
}

#[test]
fn degraded_hosts_take_only_what_healthy_ones_cannot() {
    let degraded = host(0, 2, "", None, EndpointHealth::Degraded);
    let hosts = ClusterHosts::new(vec![vec![healthy(0, 1), degraded, healthy(0, 3)]], 1);
    let mut s = slots(&hosts, LbPolicy::RoundRobin, LoadSpread::default());
    // 2 of 3 healthy: 93 % healthy, 7 % degraded.
    let seen = spread_of(&mut s, 3000, 3);
    let d = seen[&at("10.0.0.2:80")];
    assert!((120..300).contains(&d), "about 7 % degraded: {seen:?}");
}

#[test]
fn draining_hosts_count_for_nothing_and_get_nothing() {
    let draining = host(0, 2, "", None, EndpointHealth::Draining);
    let hosts = ClusterHosts::new(vec![vec![healthy(0, 1), draining, healthy(1, 1)]], 1);
    let mut s = slots(&hosts, LbPolicy::RoundRobin, LoadSpread::default());
    // Level 0 is one healthy host of one counted: fully available.
    let seen = spread_of(&mut s, 200, 4);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[&at("10.0.0.1:80")], 200);
}

#[test]
fn every_level_short_is_total_panic_by_host_count() {
    let sick = |p, n| host(p, n, "", None, EndpointHealth::Unhealthy);
    let hosts = ClusterHosts::new(
        vec![vec![sick(0, 1), sick(0, 2), sick(0, 3), sick(1, 1)]],
        1,
    );
    let mut s = slots(&hosts, LbPolicy::RoundRobin, LoadSpread::default());
    let seen = spread_of(&mut s, 4000, 5);
    assert!(s.in_panic());
    assert_eq!(seen.len(), 4, "every host, health ignored: {seen:?}");
    let p1 = seen[&at("10.0.1.1:80")];
    assert!((850..1150).contains(&p1), "a quarter to level 1: {seen:?}");
}

#[test]
fn a_retry_leaves_the_tried_priority_out() {
    let hosts = ClusterHosts::new(vec![vec![healthy(0, 1), healthy(1, 1), healthy(2, 1)]], 1);
    let mut s = slots(&hosts, LbPolicy::RoundRobin, LoadSpread::default());
    let mut rng = fastrand::Rng::with_seed(6);
    let skip_zero = |p: u32| p == 0;
    let skip_both = |p: u32| p < 2;
    let skip_all = |_: u32| true;
    for _ in 0..50 {
        let id = s.pick(None, &mut rng, Some(&skip_zero)).unwrap();
        assert_eq!(s.address(id), Some(at("10.0.1.1:80")));
        let id = s.pick(None, &mut rng, Some(&skip_both)).unwrap();
        assert_eq!(s.address(id), Some(at("10.0.2.1:80")));
        // Every level tried: the usual load.
        let id = s.pick(None, &mut rng, Some(&skip_all)).unwrap();
        assert_eq!(s.address(id), Some(at("10.0.0.1:80")));
    }
}

#[test]
fn locality_weights_split_round_robin_exactly() {
    let weighted = LoadSpread {
        locality_weighted: true,
        ..LoadSpread::default()
    };
    let h = EndpointHealth::Healthy;
    let hosts = ClusterHosts::new(
        vec![vec![
            host(0, 1, "a", Some(1), h),
            host(0, 2, "b", Some(3), h),
            host(0, 3, "b", Some(3), h),
            host(0, 4, "c", None, h),
        ]],
        1,
    );
    let mut s = slots(&hosts, LbPolicy::RoundRobin, weighted);
    let seen = spread_of(&mut s, 400, 7);
    assert_eq!(seen[&at("10.0.0.1:80")], 100);
    assert_eq!(seen[&at("10.0.0.2:80")], 150);
    assert_eq!(seen[&at("10.0.0.3:80")], 150);
    assert_eq!(seen.get(&at("10.0.0.4:80")), None, "no weight, no load");
    // A locality losing half its hosts loses weight (50 % × 1.4 = 70 % of 3).
    let id = hosts.current(0).hosts[1].id;
    hosts.set_health(0, id, HEALTH_OUTLIER, true);
    s.apply(hosts.current(0));
    let seen = spread_of(&mut s, 310, 8);
    assert_eq!(seen[&at("10.0.0.1:80")], 100, "{seen:?}");
    assert_eq!(seen[&at("10.0.0.3:80")], 210, "{seen:?}");
}

#[test]
fn hashing_under_locality_weights_leaves_weightless_localities_out() {
    let weighted = LoadSpread {
        locality_weighted: true,
        ..LoadSpread::default()
    };
    let h = EndpointHealth::Healthy;
    let hosts = ClusterHosts::new(
        vec![vec![host(0, 1, "a", Some(1), h), host(0, 2, "c", None, h)]],
        1,
    );
    let policy = LbPolicy::Maglev { table_size: 65537 };
    let mut s = slots(&hosts, policy, weighted);
    let mut rng = fastrand::Rng::with_seed(9);
    for key in 0..200u64 {
        let id = s.pick(
            Some(key.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            &mut rng,
            None,
        );
        assert_eq!(s.address(id.unwrap()), Some(at("10.0.0.1:80")));
    }
}

#[test]
fn one_level_without_degraded_hosts_needs_no_draw() {
    let hosts = ClusterHosts::new(vec![vec![healthy(0, 1), healthy(0, 2)]], 1);
    let s = slots(&hosts, LbPolicy::RoundRobin, LoadSpread::default());
    let explain = s.explain_pick(None).1;
    assert_eq!(explain, "next in rotation (equal weights)");
}

#[test]
fn a_level_in_panic_serves_its_degraded_share_from_all_its_hosts() {
    // Level 0: 1 healthy, 1 degraded, 8 unhealthy of 10 (20 %: panic); level 1: 5 of 10.
    // Availability 14 + 14 and 70: level 0 gets a degraded share, which its panic serves
    // from all of its hosts rather than from an empty degraded list.
    let mut specs = vec![
        healthy(0, 1),
        host(0, 2, "", None, EndpointHealth::Degraded),
    ];
    specs.extend((3..11).map(|n| host(0, n, "", None, EndpointHealth::Unhealthy)));
    specs.extend((1..6).map(|n| healthy(1, n)));
    specs.extend((6..11).map(|n| host(1, n, "", None, EndpointHealth::Unhealthy)));
    let hosts = ClusterHosts::new(vec![specs], 1);
    let mut s = slots(&hosts, LbPolicy::RoundRobin, LoadSpread::default());
    let mut rng = fastrand::Rng::with_seed(10);
    for _ in 0..2000 {
        assert!(
            s.pick(None, &mut rng, None).is_some(),
            "a pick found no host"
        );
    }
}

#[test]
fn hashing_keeps_degraded_hosts_off_the_ring() {
    let degraded = host(0, 2, "", None, EndpointHealth::Degraded);
    let hosts = ClusterHosts::new(vec![vec![healthy(0, 1), degraded]], 1);
    let policy = LbPolicy::RingHash {
        minimum_ring_size: 1024,
        maximum_ring_size: 8 * 1024 * 1024,
    };
    let mut s = slots(&hosts, policy, LoadSpread::default());
    let mut rng = fastrand::Rng::with_seed(11);
    for key in 0..300u64 {
        let id = s.pick(
            Some(key.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            &mut rng,
            None,
        );
        assert_eq!(s.address(id.unwrap()), Some(at("10.0.0.1:80")));
    }
}
