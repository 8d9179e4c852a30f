//! The resolver against the scripted DNS server (`dns_server`), and the system configuration
//! for `localhost`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use super::dns_server::{DnsServer, Failure};
use super::*;

const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const V4_B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

/// Options asking only `server`; every wait is bounded by the 2 s query timeout.
fn options(server: &DnsServer) -> ResolverOptions {
    ResolverOptions {
        servers: vec![server.addr()],
        no_default_search_domain: true,
        query_timeout: Some(Duration::from_secs(2)),
        query_tries: Some(1),
        ..ResolverOptions::default()
    }
}

fn resolver(server: &DnsServer) -> Resolver {
    Resolver::new(&options(server)).expect("resolver")
}

fn addresses(result: Result<Resolved, ResolveError>) -> Vec<IpAddr> {
    result.expect("resolved").addresses
}

#[test]
fn a_records_in_answer_order_with_their_ttl() {
    let server = DnsServer::start();
    server.answer("backend.test", &[V4, V4_B], 30);
    let resolved = resolver(&server).resolve("backend.test", LookupFamily::V4Only);
    let resolved = resolved.expect("resolved");
    assert_eq!(resolved.addresses, [V4, V4_B]);
    assert_eq!(resolved.ttl, Duration::from_secs(30));
}

#[test]
fn aaaa_records() {
    let server = DnsServer::start();
    server.answer("six.test", &[V6], 40);
    let resolved = resolver(&server).resolve("six.test", LookupFamily::V6Only);
    let resolved = resolved.expect("resolved");
    assert_eq!(resolved.addresses, [V6]);
    assert_eq!(resolved.ttl, Duration::from_secs(40));
}

#[test]
fn each_family_prefers_and_falls_back_as_envoy() {
    let server = DnsServer::start();
    server.answer("both.test", &[V6, V4], 60);
    server.answer("four.test", &[V4], 60);
    server.answer("six.test", &[V6], 60);
    let mut resolver = resolver(&server);
    let mut resolve = |name: &str, family| resolver.resolve(name, family);

    assert_eq!(addresses(resolve("both.test", LookupFamily::Auto)), [V6]);
    assert_eq!(addresses(resolve("four.test", LookupFamily::Auto)), [V4]);
    assert_eq!(
        addresses(resolve("both.test", LookupFamily::V4Preferred)),
        [V4]
    );
    assert_eq!(
        addresses(resolve("six.test", LookupFamily::V4Preferred)),
        [V6]
    );
    assert_eq!(addresses(resolve("both.test", LookupFamily::All)), [V4, V6]);
    assert_eq!(addresses(resolve("six.test", LookupFamily::All)), [V6]);
    assert_eq!(addresses(resolve("both.test", LookupFamily::V4Only)), [V4]);
    assert_eq!(addresses(resolve("both.test", LookupFamily::V6Only)), [V6]);
    assert!(matches!(
        resolve("six.test", LookupFamily::V4Only),
        Err(ResolveError::NotFound)
    ));
    assert!(matches!(
        resolve("four.test", LookupFamily::V6Only),
        Err(ResolveError::NotFound)
    ));
}

#[test]
fn every_resolve_asks_the_server_and_sees_changes() {
    let server = DnsServer::start();
    server.answer("moving.test", &[V4], 300);
    let mut resolver = resolver(&server);
    assert_eq!(
        addresses(resolver.resolve("moving.test", LookupFamily::V4Only)),
        [V4]
    );
    server.answer("moving.test", &[V4_B], 5);
    let resolved = resolver.resolve("moving.test", LookupFamily::V4Only);
    let resolved = resolved.expect("resolved");
    assert_eq!(resolved.addresses, [V4_B]);
    assert_eq!(resolved.ttl, Duration::from_secs(5));
    assert!(server.queries("moving.test") >= 2);
}

#[test]
fn nxdomain_is_not_found() {
    let server = DnsServer::start();
    server.fail("gone.test", Failure::NxDomain);
    let mut resolver = resolver(&server);
    for name in ["gone.test", "never-scripted.test"] {
        for family in [LookupFamily::Auto, LookupFamily::All] {
            let result = resolver.resolve(name, family);
            assert!(
                matches!(result, Err(ResolveError::NotFound)),
                "{name}: {result:?}"
            );
        }
    }
    assert!(
        server.queries("gone.test") >= 4,
        "AUTO and ALL each ask AAAA and A"
    );
}

/// The rules the scripted server cannot show (it fails a name for both families at once).
#[test]
fn lookups_combine_as_envoy() {
    let found = |address: IpAddr, secs: u64| {
        Answer::Addresses(Resolved {
            addresses: vec![address],
            ttl: Duration::from_secs(secs),
        })
    };
    let failed = || Answer::Failed("AAAA x.test: request timed out".to_owned());

    let both = combine(vec![found(V4, 30), found(V6, 10)]).expect("resolved");
    assert_eq!(both.addresses, [V4, V6]);
    assert_eq!(both.ttl, Duration::from_secs(10), "the smallest TTL");
    // A failed family does not hide the other's addresses...
    let one = combine(vec![failed(), found(V4, 30)]).expect("resolved");
    assert_eq!(one.addresses, [V4]);
    // ...but with no address at all, a failure wins over "no records".
    match combine(vec![failed(), Answer::NoRecords]) {
        Err(ResolveError::Failed(reason)) => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(matches!(
        combine(vec![Answer::NoRecords, Answer::NoRecords]),
        Err(ResolveError::NotFound)
    ));
}

#[test]
fn servfail_fails_after_every_try() {
    let server = DnsServer::start();
    server.fail("broken.test", Failure::ServFail);
    let mut resolver = Resolver::new(&ResolverOptions {
        query_tries: Some(3),
        ..options(&server)
    })
    .expect("resolver");
    match resolver.resolve("broken.test", LookupFamily::V4Only) {
        Err(ResolveError::Failed(reason)) => {
            assert!(reason.contains("broken.test"), "{reason}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(server.queries("broken.test") >= 3, "query_tries: 3");
}

#[test]
fn silent_server_fails_within_the_query_timeout() {
    let server = DnsServer::start();
    server.fail("slow.test", Failure::Silent);
    let mut resolver = Resolver::new(&ResolverOptions {
        query_timeout: Some(Duration::from_millis(300)),
        ..options(&server)
    })
    .expect("resolver");
    let started = Instant::now();
    let result = resolver.resolve("slow.test", LookupFamily::V4Only);
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(ResolveError::Failed(_))), "{result:?}");
    assert!(
        elapsed >= Duration::from_millis(250),
        "gave up early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "ignored the timeout: {elapsed:?}"
    );
    assert!(server.queries("slow.test") >= 1);
}

#[test]
fn over_tcp() {
    let server = DnsServer::start();
    server.answer("tcp.test", &[V4], 10);
    let mut resolver = Resolver::new(&ResolverOptions {
        use_tcp: true,
        ..options(&server)
    })
    .expect("resolver");
    assert_eq!(
        addresses(resolver.resolve("tcp.test", LookupFamily::V4Only)),
        [V4]
    );
}

#[test]
fn ip_literals_resolve_to_themselves_without_dns() {
    let server = DnsServer::start();
    let mut resolver = resolver(&server);
    let resolved = resolver.resolve("192.0.2.1", LookupFamily::Auto);
    let resolved = resolved.expect("resolved");
    assert_eq!(resolved.addresses, [V4]);
    assert_eq!(resolved.ttl, Duration::from_secs(86_400));
    assert_eq!(
        addresses(resolver.resolve("2001:db8::1", LookupFamily::All)),
        [V6]
    );
    assert!(matches!(
        resolver.resolve("2001:db8::1", LookupFamily::V4Only),
        Err(ResolveError::NotFound)
    ));
    assert_eq!(
        server.queries("192.0.2.1") + server.queries("2001:db8::1"),
        0
    );
}

#[test]
fn localhost_through_the_system_configuration() {
    let mut resolver = Resolver::new(&ResolverOptions::default()).expect("system resolver");
    assert_eq!(
        addresses(resolver.resolve("localhost", LookupFamily::V4Only)),
        [IpAddr::V4(Ipv4Addr::LOCALHOST)]
    );
    for family in [LookupFamily::Auto, LookupFamily::All] {
        let found = addresses(resolver.resolve("localhost", family));
        assert!(
            !found.is_empty() && found.iter().all(IpAddr::is_loopback),
            "{found:?}"
        );
    }
}
