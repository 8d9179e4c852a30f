//! Every `lb_policy` over real sockets, with origins on 127.0.0.1 that say who they are:
//! ring hash and Maglev keep a key on one host (header, query parameter and cookie policies,
//! a cookie made up and set when missing, its form checked against Envoy's), least request
//! keeps away from a host that holds its requests, random follows the weights.

mod differential_support;
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use differential_support::{Envoy, envoy_or_skip, envoy_ports};
use support::{Client, Origin, Reply, Weir, proxy_config};

/// `proxy_config` with its cluster's endpoints `origins` (weights `weights`), `lb_policy`
/// `policy` (and any `*_lb_config` lines in `lb_config`), and the catch-all route's
/// `hash_policy` YAML flow sequence `hash`.
fn lb_config(
    origins: &[SocketAddr],
    weights: &[u32],
    policy: &str,
    lb_config: &str,
    hash: &str,
) -> String {
    let base = proxy_config(origins[0]);
    let endpoints: String = origins
        .iter()
        .zip(weights)
        .map(|(o, w)| {
            format!(
                "        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n          load_balancing_weight: {w}\n",
                o.port()
            )
        })
        .collect();
    let first = format!(
        "        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n",
        origins[0].port()
    );
    base.replace(&first, &endpoints)
        .replace(
            "    lb_policy: ROUND_ROBIN\n",
            &format!("    lb_policy: {policy}\n{lb_config}"),
        )
        .replace(
            "route: { cluster: origin, timeout: 14s }",
            &format!("route: {{ cluster: origin, timeout: 14s, hash_policy: {hash} }}"),
        )
}

/// `n` origins answering their own index.
fn origins(n: usize) -> Vec<SocketAddr> {
    (0..n)
        .map(|i| Origin::start(move |_| Ok(Reply::text(200, i.to_string()))).addr)
        .collect()
}

/// Which origin answered `request` (a whole request head), on a new connection.
fn served(weir: &Weir, request: &str) -> (String, Option<String>) {
    let mut c = Client::connect(weir.addr()).expect("connect");
    c.send(request.as_bytes()).expect("send");
    let r = c.read_response().expect("response");
    assert_eq!(r.status(), 200, "{}", r.text());
    (r.text(), r.head.header("set-cookie").map(str::to_owned))
}

/// For keys `0..20` sent by `request(key)`, the origin each went to, asked three times: a
/// key always goes to the same origin, and the keys reach at least two origins.
fn assert_sticky(weir: &Weir, request: impl Fn(usize) -> String) {
    let mut placed: HashMap<usize, String> = HashMap::new();
    for round in 0..3 {
        for key in 0..20 {
            let (origin, _) = served(weir, &request(key));
            let first = placed.entry(key).or_insert_with(|| origin.clone());
            assert_eq!(*first, origin, "key {key} moved in round {round}");
        }
    }
    let used: std::collections::HashSet<_> = placed.values().collect();
    assert!(used.len() >= 2, "20 keys all on one origin: {placed:?}");
}

#[test]
fn ring_hash_keeps_a_header_on_one_host() {
    let weir = Weir::start(
        &lb_config(
            &origins(3),
            &[1, 1, 1],
            "RING_HASH",
            "    ring_hash_lb_config: { minimum_ring_size: 256 }\n",
            "[ { header: { header_name: x-user } } ]",
        ),
        &["--concurrency", "2", "--flow-trace", "all"],
    );
    assert_sticky(&weir, |key| {
        format!("GET / HTTP/1.1\r\nhost: a\r\nx-user: user-{key}\r\n\r\n")
    });
    // The flow trace says which policy chose the host, and by which hash.
    let flows = support::get(weir.admin, "/flows?limit=1")
        .expect("/flows")
        .text();
    assert!(
        flows.contains("load balancer (ring_hash) chose 127.0.0.1:"),
        "{flows}"
    );
    assert!(flows.contains(": request hash "), "{flows}");
}

/// Least request's trace names the hosts it drew and their loads.
#[test]
fn the_trace_shows_least_requests_candidates() {
    let origins = origins(2);
    let weir = Weir::start(
        &lb_config(&origins, &[1, 1], "LEAST_REQUEST", "", "[]"),
        &["--concurrency", "1", "--flow-trace", "all"],
    );
    served(&weir, "GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    let flows = support::get(weir.admin, "/flows?limit=1")
        .expect("/flows")
        .text();
    assert!(
        flows.contains("load balancer (least_request) chose 127.0.0.1:")
            && flows.contains(": fewest active requests of 127.0.0.1:")
            && flows.contains(" (0 active), 127.0.0.1:"),
        "{flows}"
    );
}

#[test]
fn maglev_keeps_a_query_parameter_on_one_host() {
    let weir = Weir::start(
        &lb_config(
            &origins(3),
            &[1, 2, 1],
            "MAGLEV",
            "    maglev_lb_config: { table_size: 1021 }\n",
            "[ { query_parameter: { name: id }, terminal: true }, { connection_properties: { source_ip: true } } ]",
        ),
        &["--concurrency", "2"],
    );
    assert_sticky(&weir, |key| {
        format!("GET /p?id={key} HTTP/1.1\r\nhost: a\r\n\r\n")
    });
}

/// The made-up cookie: set when missing (in Envoy's form), then the key it carries is sticky.
#[test]
fn a_cookie_policy_with_a_ttl_sets_the_cookie_as_envoy_does() {
    let hash = "[ { cookie: { name: sticky, ttl: 60s, path: / } } ]";
    let config = |origins: &[SocketAddr]| lb_config(origins, &[1, 1, 1], "RING_HASH", "", hash);
    let weir = Weir::start(&config(&origins(3)), &["--concurrency", "1"]);
    let (_, set) = served(&weir, "GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    let set = set.expect("a set-cookie");
    let shape = |s: &str| {
        let value = s.split('"').nth(1).unwrap_or_default().to_owned();
        (s.replacen(&value, "VALUE", 1), value)
    };
    let (form, value) = shape(&set);
    assert_eq!(form, "sticky=\"VALUE\"; Max-Age=60; Path=/; HttpOnly");
    assert!(
        value.len() == 16 && value.bytes().all(|b| b.is_ascii_hexdigit()),
        "{value}"
    );
    // With the cookie, no new one, and the same origin every time.
    assert_sticky(&weir, |key| {
        format!("GET / HTTP/1.1\r\nhost: a\r\ncookie: sticky=\"{key:016x}\"\r\n\r\n")
    });
    let (_, again) = served(
        &weir,
        &format!("GET / HTTP/1.1\r\nhost: a\r\ncookie: sticky={value}\r\n\r\n"),
    );
    assert_eq!(again, None);

    // Envoy 1.40 with the same config sets the same form.
    let Some(envoy_bin) = envoy_or_skip() else {
        return;
    };
    let (envoy_config, port, admin) = envoy_ports(&config(&origins(3)));
    let _envoy = Envoy::start_with(&envoy_bin, "lb.yaml", &envoy_config, Some(admin), port, &[]);
    let mut c = Client::connect(SocketAddr::from(([127, 0, 0, 1], port))).expect("envoy");
    c.send(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").expect("send");
    let r = c.read_response().expect("envoy response");
    let envoy_set = r.head.header("set-cookie").expect("Envoy sets the cookie");
    assert_eq!(shape(envoy_set).0, form);
}

/// One origin holds every request until the test ends; least request (five choices) sends
/// almost everything to the other, where round robin would split evenly.
#[test]
fn least_request_keeps_away_from_a_busy_host() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release = Arc::new(Mutex::new(release_rx));
    let slow = Origin::start(move |_| {
        let _ = release
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10));
        Ok(Reply::text(200, "slow"))
    });
    let fast = Origin::start(|_| Ok(Reply::text(200, "fast")));
    let weir = Weir::start(
        &lb_config(
            &[slow.addr, fast.addr],
            &[1, 1],
            "LEAST_REQUEST",
            "    least_request_lb_config: { choice_count: 5 }\n",
            "[]",
        ),
        &["--concurrency", "1"],
    );
    let started = |o: &Origin| o.stats.started.load(Ordering::Relaxed);
    let mut waiting = Vec::new();
    for i in 0..40 {
        let addr = weir.addr();
        waiting.push(std::thread::spawn(move || {
            let mut c = Client::connect(addr).expect("connect");
            c.get("/").map(|r| r.text()).unwrap_or_default()
        }));
        // Each request reaches an origin before the next is sent, so the busy count is seen.
        let deadline = Instant::now() + Duration::from_secs(10);
        while started(&slow) + started(&fast) < i + 1 {
            assert!(Instant::now() < deadline, "request {i} reached no origin");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let to_slow = started(&slow);
    drop(release_tx);
    for w in waiting {
        let _ = w.join();
    }
    // Five draws all on the slow host: (1/2)^5 of the time.
    assert!(to_slow <= 8, "{to_slow} of 40 went to the busy host");
}

#[test]
fn random_follows_the_weights() {
    let weir = Weir::start(
        &lb_config(&origins(2), &[1, 3], "RANDOM", "", "[]"),
        &["--concurrency", "1"],
    );
    let mut client = Client::connect(weir.addr()).expect("connect");
    let heavy = (0..400)
        .filter(|_| client.get("/").expect("get").text() == "1")
        .count();
    assert!(
        (240..=360).contains(&heavy),
        "{heavy} of 400 on the weight-3 host"
    );
}

/// `previous_hosts`: a retry goes to another host. Ring hash keeps a key on one host, so
/// without the predicate the retry of a key whose host fails meets the same failure.
#[test]
fn a_retry_avoids_the_previous_host() {
    let bad = Origin::start(|_| Ok(Reply::text(503, "bad")));
    let good = Origin::start(|_| Ok(Reply::text(200, "good")));
    let run = |predicate: &str| {
        let config = lb_config(
            &[bad.addr, good.addr],
            &[1, 1],
            "RING_HASH",
            "",
            "[ { header: { header_name: x-user } } ]",
        )
        .replace(
            "route: { cluster: origin, timeout: 14s,",
            &format!("route: {{ cluster: origin, timeout: 14s, retry_policy: {{ retry_on: 5xx, num_retries: 1{predicate} }},"),
        );
        let weir = Weir::start(&config, &["--concurrency", "1"]);
        (0..20)
            .map(|key| {
                let mut c = Client::connect(weir.addr()).expect("connect");
                c.send(format!("GET / HTTP/1.1\r\nhost: a\r\nx-user: {key}\r\n\r\n").as_bytes())
                    .expect("send");
                c.read_response().expect("response").status()
            })
            .collect::<Vec<u16>>()
    };
    let without = run("");
    assert!(
        without.contains(&503),
        "some keys live on the failing host: {without:?}"
    );
    let with = run(
        ", retry_host_predicate: [ { name: envoy.retry_host_predicates.previous_hosts, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate } } ], host_selection_retry_max_attempts: 10",
    );
    assert!(with.iter().all(|&s| s == 200), "{with:?}");
}
