//! DNS clusters over real sockets: `STRICT_DNS` and `LOGICAL_DNS` clusters resolved by a
//! scripted DNS server the test runs on 127.0.0.1, whose answers change while requests flow;
//! origins on other loopback addresses (127.0.0.2, 127.0.0.3) tell which host served.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use support::dns::{DnsServer, Failure};
use support::{Origin, Reply, Weir, get, proxy_config};

const NAME: &str = "backend.weir.test";
/// Bounds every wait for the proxy to follow a new answer.
const FOLLOW: Duration = Duration::from_secs(10);

/// Two origins on one port, at 127.0.0.2 and 127.0.0.3, answering `a` and `b`.
fn origins() -> (u16, [IpAddr; 2]) {
    let a = Origin::start_at("127.0.0.2:0".parse().unwrap(), |_| {
        Ok(Reply::text(200, "a"))
    });
    let port = a.addr.port();
    Origin::start_at(SocketAddr::new("127.0.0.3".parse().unwrap(), port), |_| {
        Ok(Reply::text(200, "b"))
    });
    (
        port,
        ["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()],
    )
}

/// `proxy_config`, with its cluster made a DNS cluster of `kind` on `NAME` (or `name`) asking
/// `dns`, refreshed every 100 ms.
fn dns_config(kind: &str, name: &str, port: u16, dns: Option<SocketAddr>) -> String {
    let static_config = proxy_config(SocketAddr::from(([127, 0, 0, 1], port)));
    let resolvers = match dns {
        Some(dns) => format!(
            "\n    dns_resolvers: [ {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} ]",
            dns.port()
        ),
        None => String::new(),
    };
    static_config
        .replace(
            "    type: STATIC\n",
            &format!(
                "    type: {kind}\n    dns_refresh_rate: 0.1s\n    dns_lookup_family: V4_ONLY{resolvers}\n"
            ),
        )
        .replace(
            &format!("address: 127.0.0.1, port_value: {port} }}"),
            &format!("address: {name}, port_value: {port} }}"),
        )
}

/// GET / through weir: the body (which origin served), or the status when it is not 200.
fn served_by(weir: &Weir) -> String {
    match get(weir.addr(), "/") {
        Ok(r) if r.status() == 200 => r.text(),
        Ok(r) => format!("status {}", r.status()),
        Err(e) => format!("error {e}"),
    }
}

/// Requests until one is served by `wanted`; every one must succeed on the way.
fn until_served_by(weir: &Weir, wanted: &str) {
    let deadline = Instant::now() + FOLLOW;
    loop {
        let got = served_by(weir);
        assert!(got == "a" || got == "b", "a request failed: {got}");
        if got == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "never served by {wanted}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn clusters_text(weir: &Weir) -> String {
    get(weir.admin, "/clusters").expect("/clusters").text()
}

#[test]
fn strict_dns_follows_the_answers_without_failing_a_request() {
    let (port, [a, b]) = origins();
    let dns = DnsServer::start();
    dns.answer(NAME, &[a], 30);
    let weir = Weir::start(
        &dns_config("STRICT_DNS", NAME, port, Some(dns.addr())),
        &["--concurrency", "2"],
    );
    // The first answer is in before the listeners take traffic.
    assert_eq!(served_by(&weir), "a");
    let clusters = clusters_text(&weir);
    assert!(
        clusters.contains(&format!("origin::127.0.0.2:{port}::hostname::{NAME}")),
        "{clusters}"
    );

    dns.answer(NAME, &[b], 30);
    until_served_by(&weir, "b");
    // Once b serves, a is gone from the set: 20 more requests, all b.
    for _ in 0..20 {
        assert_eq!(served_by(&weir), "b");
    }
    let clusters = clusters_text(&weir);
    assert!(!clusters.contains("127.0.0.2:"), "{clusters}");

    // Both: round robin reaches each.
    dns.answer(NAME, &[a, b], 30);
    until_served_by(&weir, "a");
    until_served_by(&weir, "b");
    let stats = get(weir.admin, "/stats").expect("/stats").text();
    assert!(
        stats.contains("cluster.origin.membership_total: 2"),
        "{stats}"
    );
}

/// Four keep-alive clients send requests while the answer flips between the two origins ten
/// times: not one request fails, and both origins serve.
#[test]
fn answers_changing_under_load_fail_no_request() {
    let (port, [a, b]) = origins();
    let dns = DnsServer::start();
    dns.answer(NAME, &[a], 30);
    let weir = Weir::start(
        &dns_config("STRICT_DNS", NAME, port, Some(dns.addr())),
        &["--concurrency", "2"],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (addr, stop) = (weir.addr(), stop.clone());
            std::thread::spawn(move || {
                let mut client = support::Client::connect(addr).expect("connect");
                let (mut served, mut failed) = ([0u32; 2], Vec::new());
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline
                {
                    match client.get("/") {
                        Ok(r) if r.text() == "a" => served[0] += 1,
                        Ok(r) if r.text() == "b" => served[1] += 1,
                        Ok(r) => failed.push(format!("status {}", r.status())),
                        Err(e) => failed.push(format!("error {e}")),
                    }
                }
                (served, failed)
            })
        })
        .collect();
    for flip in 0..10 {
        let next = if flip % 2 == 0 { b } else { a };
        dns.answer(NAME, &[next], 30);
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = [0u32; 2];
    for c in clients {
        let (served, failed) = c.join().expect("client");
        assert!(failed.is_empty(), "{failed:?}");
        total[0] += served[0];
        total[1] += served[1];
    }
    assert!(total[0] > 0 && total[1] > 0, "{total:?}");
}

#[test]
fn a_failed_lookup_keeps_the_last_hosts() {
    let (port, [a, _]) = origins();
    let dns = DnsServer::start();
    dns.answer(NAME, &[a], 30);
    let weir = Weir::start(
        &dns_config("STRICT_DNS", NAME, port, Some(dns.addr())),
        &["--concurrency", "1"],
    );
    assert_eq!(served_by(&weir), "a");
    for failure in [Failure::ServFail, Failure::NxDomain] {
        dns.fail(NAME, failure);
        let asked = dns.queries(NAME);
        let deadline = Instant::now() + FOLLOW;
        // Looked up again (and failed) at least twice, serving from the last answer meanwhile.
        while dns.queries(NAME) < asked + 2 {
            assert_eq!(served_by(&weir), "a", "{failure:?}");
            assert!(Instant::now() < deadline, "no lookup after {failure:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(served_by(&weir), "a");
    }
}

#[test]
fn logical_dns_is_one_host_at_the_first_address() {
    let (port, [a, b]) = origins();
    let dns = DnsServer::start();
    dns.answer(NAME, &[a, b], 30);
    let weir = Weir::start(
        &dns_config("LOGICAL_DNS", NAME, port, Some(dns.addr())),
        &["--concurrency", "1"],
    );
    for _ in 0..6 {
        assert_eq!(served_by(&weir), "a");
    }
    let clusters = clusters_text(&weir);
    assert!(!clusters.contains("127.0.0.3:"), "one host: {clusters}");

    // The first address changes: new connections go to b. (The pooled connection to a may
    // serve on, as Envoy's logical host keeps its connections: close it by asking a's origin
    // for nothing more: wait for b on a fresh connection.)
    dns.answer(NAME, &[b, a], 30);
    let deadline = Instant::now() + FOLLOW;
    while !clusters_text(&weir).contains(&format!("origin::127.0.0.3:{port}::cx_active")) {
        assert!(Instant::now() < deadline, "the logical host never moved");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn localhost_resolves_through_the_system_resolver() {
    let origin = Origin::start(|_| Ok(Reply::text(200, "a")));
    let weir = Weir::start(
        &dns_config("STRICT_DNS", "localhost", origin.addr.port(), None),
        &["--concurrency", "1"],
    );
    assert_eq!(served_by(&weir), "a");
}

/// Envoy's newer form: `cluster_type` naming the DNS cluster extension, its resolver given as
/// c-ares' typed config.
#[test]
fn the_dns_cluster_extension_with_a_cares_resolver() {
    let (port, [a, b]) = origins();
    let dns = DnsServer::start();
    dns.answer(NAME, &[b], 30);
    let config = dns_config("STRICT_DNS", NAME, port, None).replace(
        "    type: STRICT_DNS\n    dns_refresh_rate: 0.1s\n    dns_lookup_family: V4_ONLY\n",
        &format!(
            r#"    cluster_type:
      name: envoy.clusters.dns
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster
        dns_refresh_rate: 0.1s
        dns_lookup_family: V4_ONLY
        typed_dns_resolver_config:
          name: envoy.network.dns_resolver.cares
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig
            resolvers: [ {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} ]
            query_timeout_seconds: 1
            query_tries: 2
"#,
            dns.addr().port()
        ),
    );
    assert!(config.contains("cluster_type"), "{config}");
    let weir = Weir::start(&config, &["--concurrency", "1"]);
    assert_eq!(served_by(&weir), "b");
    dns.answer(NAME, &[a], 30);
    until_served_by(&weir, "a");
}
