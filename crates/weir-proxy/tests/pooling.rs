//! Upstream connections and hosts: keep-alive reuse from the per-worker pool, round robin and
//! weights, pooled connections the origin closed, and spreading connections over workers.

mod support;

use support::{Client, Config, Origin, Reply, eventually, response, sleep_ms};

#[test]
fn fifty_requests_on_one_connection_use_one_upstream_connection() {
    let origin = Origin::ok("pooled");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    for i in 0..50 {
        let resp = client.get(&format!("/r/{i}"));
        assert_eq!(resp.status, 200, "request {i}");
        assert_eq!(resp.body, b"pooled");
        assert!(resp.keep_alive);
    }
    assert_eq!(
        origin.accepted(),
        1,
        "the origin accepted exactly one connection"
    );
    let requests = origin.requests();
    assert_eq!(requests.len(), 50);
    for (i, req) in requests.iter().enumerate() {
        assert_eq!(req.target, format!("/r/{i}"), "in order");
        assert_eq!((req.conn, req.index_on_conn), (0, i));
    }
    assert_eq!(proxy.stat("downstream_cx_total"), 1);
    assert_eq!(proxy.stat("downstream_rq_total"), 50);
    assert_eq!(proxy.stat("upstream_cx_total"), 1);
    assert_eq!(proxy.stat("upstream_rq_total"), 50);
    assert_eq!(proxy.stat("upstream_rq_reused"), 49);
    assert_eq!(proxy.stat("upstream_rq_retry"), 0);
    assert!(
        eventually(2000, || proxy.class(2) == 50),
        "2xx: {}",
        proxy.class(2)
    );
}

#[test]
fn the_pool_outlives_client_connections() {
    let origin = Origin::ok("pooled");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    for _ in 0..5 {
        let mut client = proxy.client();
        assert_eq!(client.get("/").status, 200);
        assert_eq!(client.get("/").status, 200);
    }
    assert_eq!(origin.accepted(), 1);
    assert_eq!(proxy.stat("downstream_cx_total"), 5);
    assert_eq!(proxy.stat("upstream_rq_reused"), 9);
}

#[test]
fn round_robin_alternates_between_two_origins() {
    let a = Origin::ok("a");
    let b = Origin::ok("b");
    let proxy = Config::forward_all(&[a.addr(), b.addr()]).start();
    let mut client = proxy.client();
    let bodies: Vec<String> = (0..20).map(|_| client.get("/").text()).collect();
    for pair in bodies.windows(2) {
        assert_ne!(pair[0], pair[1], "hosts alternate: {bodies:?}");
    }
    assert_eq!(a.request_count(), 10);
    assert_eq!(b.request_count(), 10);
    // Each origin's connection is pooled and reused.
    assert_eq!(a.accepted(), 1);
    assert_eq!(b.accepted(), 1);
}

#[test]
fn weights_three_to_one() {
    let heavy = Origin::ok("heavy");
    let light = Origin::ok("light");
    let proxy = Config::new()
        .cluster_with(
            "backend",
            &[(heavy.addr(), 3), (light.addr(), 1)],
            "connect_timeout: 1s",
        )
        .route_all_to("backend")
        .start();
    let mut client = proxy.client();
    let bodies: Vec<String> = (0..40).map(|_| client.get("/").text()).collect();
    assert_eq!(heavy.request_count(), 30, "{bodies:?}");
    assert_eq!(light.request_count(), 10, "{bodies:?}");
    // Smooth weighted round robin: every window of 4 holds exactly one `light`.
    for window in bodies.chunks(4) {
        assert_eq!(
            window.iter().filter(|b| *b == "light").count(),
            1,
            "{bodies:?}"
        );
    }
}

#[test]
fn origin_connection_close_is_not_pooled() {
    let origin =
        Origin::start(|_| Reply::SendClose(response(200, &[("connection", "close")], b"once")));
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    for _ in 0..5 {
        let resp = client.get("/");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"once");
        // The origin's `connection: close` is hop-by-hop: the client connection stays open.
        assert!(resp.keep_alive);
    }
    assert_eq!(origin.accepted(), 5);
    assert_eq!(proxy.stat("upstream_rq_reused"), 0);
    assert_eq!(proxy.stat("upstream_rq_retry"), 0);
}

/// The origin closes each keep-alive connection 50 ms after its response, without saying so.
/// While the client pauses, the proxy sees the FIN of the idle pooled connection and drops it.
#[test]
fn pooled_connection_closed_by_origin_while_idle_is_not_used() {
    let origin = Origin::start(|_| {
        Reply::SendCloseAfter(
            response(200, &[], b"ok"),
            std::time::Duration::from_millis(50),
        )
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    for i in 0..5 {
        let resp = client.get(&format!("/{i}"));
        assert_eq!(resp.status, 200, "request {i}");
        assert_eq!(resp.body, b"ok");
        // The origin closes 50 ms later; the proxy notices while the connection idles.
        assert!(
            eventually(3000, || proxy.stat("upstream_cx_active") == 0),
            "the closed idle connection left the pool"
        );
        sleep_ms(50);
    }
    assert_eq!(origin.request_count(), 5);
    assert_eq!(origin.accepted(), 5);
    assert_eq!(proxy.stat("upstream_rq_reused"), 0);
    assert_eq!(proxy.stat("upstream_rq_retry"), 0);
    assert_eq!(proxy.class(5), 0);
}

/// The same origin, but the next request follows at once: it may go out on the pooled
/// connection before its FIN arrives. Either the close is seen first or the request is
/// retried once on a fresh connection; the client never sees the race.
#[test]
fn stale_pooled_connection_race_is_retried() {
    let origin = Origin::start(|_| {
        Reply::SendCloseAfter(
            response(200, &[], b"ok"),
            std::time::Duration::from_millis(50),
        )
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    for i in 0..10 {
        let resp = client.get(&format!("/{i}"));
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        assert_eq!(resp.body, b"ok");
    }
    assert!(
        eventually(2000, || proxy.class(2) == 10),
        "2xx: {}",
        proxy.class(2)
    );
    assert_eq!(proxy.class(5), 0, "no failure reached a client");
    assert_eq!(proxy.stat("upstream_cx_connect_fail"), 0);
    // Every request reached the origin exactly once as a complete request.
    let targets: Vec<String> = origin.requests().into_iter().map(|r| r.target).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("/{i}")).collect();
    assert_eq!(targets, expected);
    // Each retry is one request that went out on a stale connection.
    let retries = proxy.stat("upstream_rq_retry");
    assert!(
        retries <= 9,
        "at most one retry per reused request: {retries}"
    );
    assert_eq!(proxy.stat("upstream_rq_total"), 10 + retries);
}

#[test]
fn concurrency_two_spreads_connections_over_both_workers() {
    let origin = Origin::ok("spread");
    let proxy = Config::forward_all(&[origin.addr()]).start_with(2);
    // Open all connections first so the kernel spreads them (SO_REUSEPORT hashes the 4-tuple).
    let mut clients: Vec<Client> = (0..40).map(|_| proxy.client()).collect();
    for client in &mut clients {
        client.send("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    }
    for client in &mut clients {
        let resp = client.read_response(false);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"spread");
    }
    let stats = proxy.server().worker_stats();
    assert_eq!(stats.len(), 2);
    let per_worker: Vec<u64> = stats
        .iter()
        .map(|s| s.http[0].stats.downstream_rq_total.get())
        .collect();
    assert_eq!(per_worker.iter().sum::<u64>(), 40);
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "both workers served requests: {per_worker:?}"
    );
    // Pools are per worker: at most one upstream connection per worker is needed when
    // requests are sequential per worker, but concurrent ones may open more.
    assert!(origin.accepted() >= 2);
}

#[test]
fn concurrent_requests_open_connections_then_reuse_them() {
    let origin = Origin::start(|req| {
        Reply::after_ms(100, Reply::Send(response(200, &[], req.target.as_bytes())))
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut clients: Vec<Client> = (0..10).map(|_| proxy.client()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.send(format!("GET /c{i} HTTP/1.1\r\nHost: a\r\n\r\n"));
    }
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(client.read_response(false).text(), format!("/c{i}"));
    }
    // Ten requests in flight at once need ten connections on one worker…
    assert_eq!(origin.accepted(), 10);
    // …and afterwards all ten are in the pool.
    assert_eq!(proxy.stat("upstream_cx_active"), 10);
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(client.get(&format!("/again{i}")).status, 200);
    }
    assert_eq!(origin.accepted(), 10);
    assert_eq!(proxy.stat("upstream_rq_reused"), 10);
}

/// The stale-connection retry replays the request body too.
#[test]
fn stale_pooled_connection_retry_replays_the_body() {
    let origin = Origin::start(|req| {
        Reply::SendCloseAfter(
            response(200, &[], &req.body),
            std::time::Duration::from_millis(50),
        )
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    for i in 0..6 {
        let body = format!("body number {i} ").repeat(100 * (i + 1));
        let resp = client.request(format!(
            "PUT /p{i} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.text(), body);
    }
    let requests = origin.requests();
    assert_eq!(requests.len(), 6);
    for (i, req) in requests.iter().enumerate() {
        assert_eq!(req.target, format!("/p{i}"));
        assert_eq!(
            req.body,
            format!("body number {i} ").repeat(100 * (i + 1)).as_bytes()
        );
    }
    assert_eq!(proxy.class(5), 0);
}
