//! Reloads that add, remove and replace clusters over real sockets: keep-alive clients under
//! load lose no request while a cluster comes and goes and another is replaced ten times
//! (counts go on under each name), and a `STRICT_DNS` cluster a reload adds gets its first
//! answer before the reload returns, follows later answers with a refresh thread of its own,
//! and that thread ends once a later reload has removed the cluster. A thousand replacements
//! under load leave memory where it was: a replaced cluster's number is given again.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::dns::DnsServer;
use support::{Client, Origin, Reply, Weir, get, proxy_config};

fn reload(weir: &Weir, config: &str) -> String {
    std::fs::write(weir.config_path(), config).expect("rewrite");
    let (status, applied) = weir.admin_post("/reload");
    assert_eq!(status, 200, "{applied}");
    applied
}

/// `text` with a route `/other` to cluster `other`, and that cluster (`cluster`: its
/// `type` and endpoint address lines, indented 4).
fn with_other(text: &str, cluster: &str) -> String {
    let route =
        "              - match: { prefix: /other }\n                route: { cluster: other }\n";
    text.replacen(
        "              - match: { prefix: / }\n",
        &format!("{route}              - match: {{ prefix: / }}\n"),
        1,
    ) + &format!(
        "  - name: other\n    connect_timeout: 1s\n{cluster}    load_assignment:\n      cluster_name: other\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: OTHER_HOST, port_value: OTHER_PORT }} }} }}\n"
    )
}

/// [`with_other`] with a `STATIC` cluster at `other`.
fn with_static_other(text: &str, other: SocketAddr) -> String {
    with_other(text, "    type: STATIC\n")
        .replace("OTHER_HOST", &other.ip().to_string())
        .replace("OTHER_PORT", &other.port().to_string())
}

/// Four keep-alive clients (three on `/`, one on `/other`) send requests while ten reloads
/// add cluster `other` with its route and then remove it while replacing `origin` (a new
/// connect timeout): not one request fails, `/other` is served by both clusters in turn, and
/// each cluster's request count is the number of answers it gave, across its replacements.
#[test]
fn clusters_added_removed_and_replaced_under_load_fail_no_request() {
    let origin = Origin::start(|_| Ok(Reply::text(200, "a")));
    let other = Origin::start(|_| Ok(Reply::text(200, "b")));
    let base = proxy_config(origin.addr);
    let versions = [
        base.replace("connect_timeout: 2s", "connect_timeout: 3s"),
        with_static_other(&base, other.addr),
    ];
    let weir = Weir::start(&base, &["--concurrency", "2"]);
    let stop = AtomicBool::new(false);
    let (addr, deadline) = (weir.addr(), Instant::now() + Duration::from_secs(30));
    let results = std::thread::scope(|scope| {
        let clients: Vec<_> = ["/", "/", "/", "/other"]
            .into_iter()
            .map(|path| {
                let stop = &stop;
                scope.spawn(move || {
                    let (mut answers, mut failed) = ([0u64; 2], Vec::new());
                    let mut client = Client::connect(addr).expect("connect");
                    // Bounded: 3,000 requests or 30 s at most.
                    for _ in 0..3_000 {
                        if stop.load(Ordering::Acquire) || Instant::now() > deadline {
                            break;
                        }
                        match client.get(path) {
                            Ok(r) if r.status() == 200 => {
                                answers[usize::from(r.text() == "b")] += 1;
                                if r.head.connection_has("close") {
                                    client = Client::connect(addr).expect("reconnect");
                                }
                            }
                            other => {
                                failed.push(format!("{:?}", other.map(|r| (r.status(), r.text()))));
                                client = Client::connect(addr).expect("reconnect");
                            }
                        }
                    }
                    (answers, failed)
                })
            })
            .collect();
        for round in 0..10 {
            std::thread::sleep(Duration::from_millis(60));
            reload(&weir, &versions[round % 2]);
        }
        std::thread::sleep(Duration::from_millis(60));
        stop.store(true, Ordering::Release);
        clients
            .into_iter()
            .map(|c| c.join().expect("client"))
            .collect::<Vec<_>>()
    });
    let mut answers = [0u64; 2];
    for (client, failed) in &results {
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        answers[0] += client[0];
        answers[1] += client[1];
    }
    let other_client = results[3].0;
    assert!(
        other_client[0] > 0 && other_client[1] > 0,
        "{other_client:?}"
    );
    // The last reload added `other` again.
    assert_eq!(weir.stat("cluster.origin.upstream_rq_total"), answers[0]);
    assert_eq!(weir.stat("cluster.other.upstream_rq_total"), answers[1]);
    assert_eq!(weir.stat("cluster_manager.active_clusters"), 2);
    assert_eq!(weir.stat("server.config_reload_total"), 10);
}

/// The threads of `weir` named `name`.
fn threads_named(weir: &Weir, name: &str) -> usize {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", weir.pid())).expect("tasks");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == name)
        .count()
}

#[test]
fn a_dns_cluster_added_by_a_reload_follows_its_answers_and_its_thread_ends_with_it() {
    const NAME: &str = "other.weir.test";
    let a = Origin::start_at("127.0.0.2:0".parse().unwrap(), |_| {
        Ok(Reply::text(200, "a"))
    });
    let port = a.addr.port();
    let _b = Origin::start_at(SocketAddr::new("127.0.0.3".parse().unwrap(), port), |_| {
        Ok(Reply::text(200, "b"))
    });
    let local = Origin::start(|_| Ok(Reply::text(200, "origin")));
    let dns = DnsServer::start();
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    dns.answer(NAME, &[ip("127.0.0.2")], 30);
    let base = proxy_config(local.addr);
    let weir = Weir::start(&base, &["--concurrency", "1", "--drain-time-s", "1"]);
    assert_eq!(threads_named(&weir, "weir:dns"), 0, "no DNS cluster yet");

    let cluster = format!(
        "    type: STRICT_DNS\n    dns_refresh_rate: 0.1s\n    dns_lookup_family: V4_ONLY\n    dns_resolvers: [ {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} ]\n",
        dns.addr().port()
    );
    let added = with_other(&base, &cluster)
        .replace("OTHER_HOST", NAME)
        .replace("OTHER_PORT", &port.to_string());
    let applied = reload(&weir, &added);
    assert!(applied.contains("cluster other added"), "{applied}");
    // Its first answer came in before the reload returned.
    let served = |path| get(weir.addr(), path).expect("a response").text();
    assert_eq!(served("/other"), "a");
    assert_eq!(threads_named(&weir, "weir:dns"), 1);
    dns.answer(NAME, &[ip("127.0.0.3")], 30);
    let until = Instant::now() + Duration::from_secs(10);
    while served("/other") != "b" {
        assert!(Instant::now() < until, "the new answer was never followed");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Removed: its route goes, and once its drain time is over and another reload runs,
    // its refresh thread is stopped.
    let applied = reload(&weir, &base);
    assert!(applied.contains("cluster other removed"), "{applied}");
    assert_eq!(served("/other"), "origin");
    let versions = [
        base.replace("connect_timeout: 2s", "connect_timeout: 3s"),
        base,
    ];
    let until = Instant::now() + Duration::from_secs(10);
    for round in 0.. {
        std::thread::sleep(Duration::from_millis(200));
        reload(&weir, &versions[round % 2]);
        if threads_named(&weir, "weir:dns") == 0 {
            break;
        }
        assert!(Instant::now() < until, "the refresh thread still runs");
    }
    let queries = dns.queries(NAME);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        dns.queries(NAME),
        queries,
        "a removed cluster is asked about no more"
    );
}

/// A thousand reloads that each replace the cluster a keep-alive client's requests go to,
/// with no drain time: what a replaced cluster leaves behind (its number's state and stats
/// on each worker) is given to a later one once nothing reaches it, so memory levels off,
/// and the cluster's request count is the number of its answers. Without a drain time, a
/// request whose route was chosen just before a reload can meet its cluster removed: it is
/// answered 503 `NC` (the other tests use a drain time, and see no failure).
#[test]
fn a_thousand_cluster_replacements_under_load_keep_memory_level() {
    let origin = Origin::start(|_| Ok(Reply::text(200, "ok")));
    let base = proxy_config(origin.addr);
    let versions = [
        base.replace("connect_timeout: 2s", "connect_timeout: 3s"),
        base.clone(),
    ];
    let weir = Weir::start(&base, &["--concurrency", "2", "--drain-time-s", "0"]);
    let stop = AtomicBool::new(false);
    let addr = weir.addr();
    let rss = |weir: &Weir| weir.proc_status_kib("VmRSS");
    let (warm, after, (served, no_cluster)) = std::thread::scope(|scope| {
        // Counts move between numbers as they are released: a reader never sees one go back.
        scope.spawn(|| {
            let mut last = 0;
            // Bounded: 500 reads at most.
            for _ in 0..500 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let now = weir.stat("cluster.origin.upstream_rq_total");
                assert!(now >= last, "upstream_rq_total went from {last} to {now}");
                last = now;
            }
        });
        let client = scope.spawn(|| {
            let (mut served, mut no_cluster) = (0u64, 0u64);
            let mut client = Client::connect(addr).expect("connect");
            // Bounded: 100,000 requests at most; the reloads end it sooner.
            for _ in 0..100_000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let r = client.get("/").expect("a response");
                match r.status() {
                    200 => served += 1,
                    503 if r.text().is_empty() => no_cluster += 1,
                    other => panic!("{other}: {}", r.text()),
                }
            }
            (served, no_cluster)
        });
        let mut warm = 0;
        for round in 1..=1_000 {
            reload(&weir, &versions[round % 2]);
            if round == 100 {
                warm = rss(&weir);
            }
        }
        let after = rss(&weir);
        stop.store(true, Ordering::Release);
        (warm, after, client.join().expect("client"))
    });
    eprintln!(
        "RSS: {warm} KiB after 100 cluster replacements, {after} KiB after 1,000; {served} requests served, {no_cluster} answered NC"
    );
    assert_eq!(weir.stat("cluster.origin.upstream_rq_total"), served);
    assert_eq!(weir.stat("http.ingress.no_cluster"), no_cluster);
    assert!(
        after <= warm + 4 * 1024,
        "RSS {warm} KiB after 100 cluster replacements, {after} KiB after 1,000"
    );
}
