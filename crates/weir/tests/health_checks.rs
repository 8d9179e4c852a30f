//! Active health checking over real sockets, weir and Envoy 1.40 given the same config and the
//! same origins: a host whose `/healthz` fails stays out until it passes, comes in after
//! `healthy_threshold` passes, leaves at once on a bad status, and the event log and stats say
//! so. And an origin's `x-envoy-immediate-health-check-fail` fails its host at once.

mod differential_support;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use differential_support::{Envoy, envoy_or_skip, envoy_ports};
use support::{Client, Origin, Reply, TempFile, Weir, endpoint_line, get, proxy_config};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Two origins behind one cluster with an HTTP health check every 50 ms.
fn config(a: SocketAddr, b: SocketAddr, log: &str) -> String {
    let endpoint = endpoint_line;
    proxy_config(a)
        .replace(&endpoint(a), &format!("{}{}", endpoint(a), endpoint(b)))
        .replace(
            "    lb_policy: ROUND_ROBIN\n",
            &format!(
                "    lb_policy: ROUND_ROBIN\n    health_checks:\n    - {{ timeout: 1s, interval: 0.05s, no_traffic_interval: 0.05s, unhealthy_threshold: 2, healthy_threshold: 2, event_log_path: {log}, http_health_check: {{ path: /healthz }} }}\n"
            ),
        )
}

/// An origin whose `/healthz` answers 200 while `up` holds, else 503; `/drain` answers with
/// `x-envoy-immediate-health-check-fail`; anything else says `name`.
fn origin(name: &'static str, up: Arc<AtomicBool>) -> Origin {
    Origin::start(move |req| {
        if req.target() == "/healthz" {
            let status = if up.load(Ordering::Relaxed) { 200 } else { 503 };
            return Ok(Reply::text(status, ""));
        }
        let mut reply = Reply::text(200, name);
        if req.target() == "/drain" {
            reply
                .headers
                .push(("x-envoy-immediate-health-check-fail".into(), "true".into()));
        }
        Ok(reply)
    })
}

fn flags(admin: SocketAddr, host: SocketAddr) -> String {
    let body = get(admin, "/clusters").expect("/clusters").text();
    let prefix = format!("origin::{host}::health_flags::");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {body}"))
        .to_owned()
}

fn wait_flags(admin: SocketAddr, host: SocketAddr, want: &str) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let now = flags(admin, host);
        if now == want || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What one proxy did: the flags at each step, who answered while one host was out, and
/// the event log's events for the failing host.
#[derive(Debug, PartialEq)]
struct Outcome {
    steps: Vec<(String, String)>,
    answers: Vec<String>,
    events: Vec<String>,
}

fn run(
    addr: SocketAddr,
    admin: SocketAddr,
    a: SocketAddr,
    b: SocketAddr,
    up: &AtomicBool,
    log: &TempFile,
) -> Outcome {
    let mut steps = Vec::new();
    let mut step =
        |what: &str, host, want| steps.push((what.to_owned(), wait_flags(admin, host, want)));
    step("a passes its first check", a, "healthy");
    step("b fails its first", b, "/failed_active_hc");
    let mut client = Client::connect(addr).expect("connect");
    client.set_read_timeout(TIMEOUT).expect("timeout");
    let answers = (0..4)
        .map(|_| client.get("/").expect("response").text().trim().to_owned())
        .collect();
    up.store(true, Ordering::Relaxed);
    step("b passes twice", b, "healthy");
    up.store(false, Ordering::Relaxed);
    step("b answers 503: out at once", b, "/failed_active_hc");
    let port = format!("\"port_value\":{}", b.port());
    // Envoy writes its log out every 20 ms here: wait for the third event of b.
    let deadline = Instant::now() + TIMEOUT;
    let mut events = String::new();
    while Instant::now() < deadline {
        events = std::fs::read_to_string(log.path()).unwrap_or_default();
        if events.lines().filter(|l| l.contains(&port)).count() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let events = events
        .lines()
        .filter(|l| l.contains(&port))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            let kind = [
                "health_check_failure_event",
                "add_healthy_event",
                "eject_unhealthy_event",
            ]
            .into_iter()
            .find(|k| v.get(k).is_some())
            .unwrap_or("other");
            format!("{kind} {}", v[kind])
        })
        .collect();
    Outcome {
        steps,
        answers,
        events,
    }
}

#[test]
fn health_checks_keep_failing_hosts_out_as_envoy_does() {
    let up_a = Arc::new(AtomicBool::new(true));
    let up_b = Arc::new(AtomicBool::new(false));
    let a = origin("a", up_a.clone());
    let b = origin("b", up_b.clone());
    let log = TempFile::new("hc-weir.log", "");
    let text = config(a.addr, b.addr, &log.path().display().to_string());
    let weir = Weir::start(&text, &["--concurrency", "1"]);
    let ours = run(weir.addr(), weir.admin, a.addr, b.addr, &up_b, &log);
    let steps: Vec<&str> = ours.steps.iter().map(|(_, f)| f.as_str()).collect();
    assert_eq!(
        steps,
        [
            "healthy",
            "/failed_active_hc",
            "healthy",
            "/failed_active_hc"
        ],
        "{ours:?}"
    );
    assert_eq!(ours.answers, ["a", "a", "a", "a"], "b is out");

    // An origin draining (its proxy's /healthcheck/fail) is out at once.
    let mut client = Client::connect(weir.addr()).expect("connect");
    assert_eq!(client.get("/drain").expect("response").text().trim(), "a");
    assert_eq!(flags(weir.admin, a.addr), "/failed_active_hc");
    let passive = get(weir.admin, "/stats?filter=health_check.passive_failure")
        .expect("stats")
        .text();
    assert!(
        passive.contains("cluster.origin.health_check.passive_failure: 1"),
        "{passive}"
    );
    assert_eq!(
        wait_flags(weir.admin, a.addr, "healthy"),
        "healthy",
        "back after two passes"
    );

    let Some(envoy_bin) = envoy_or_skip() else {
        return;
    };
    drop(weir);
    up_b.store(false, Ordering::Relaxed);
    let envoy_log = TempFile::new("hc-envoy.log", "");
    let (envoy_config, port, admin) = envoy_ports(&config(
        a.addr,
        b.addr,
        &envoy_log.path().display().to_string(),
    ));
    let args = ["--file-flush-interval-msec", "20"];
    let _envoy = Envoy::start_with(
        &envoy_bin,
        "hc.yaml",
        &envoy_config,
        Some(admin),
        port,
        &args,
    );
    let local = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let envoys = run(local(port), local(admin), a.addr, b.addr, &up_b, &envoy_log);
    assert_eq!(ours, envoys, "weir and Envoy differ");
}

/// A TCP server on 127.0.0.1 that answers every read with `reply`, on each connection.
fn responder(reply: &'static [u8]) -> SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut socket = socket;
                let _ = socket.set_read_timeout(Some(TIMEOUT));
                let mut buf = [0u8; 64];
                while let Ok(n) = socket.read(&mut buf) {
                    if n == 0 || socket.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// TCP checks: `send` goes out, every `receive` block must come back; a host that answers
/// something else, or nothing within the timeout, stays out.
#[test]
fn tcp_checks_match_payloads_and_time_out() {
    let good = responder(b"..PO..NG..");
    let wrong = responder(b"NOPE");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let endpoint = endpoint_line;
    let text = proxy_config(good)
        .replace(
            &endpoint(good),
            &format!("{}{}{}", endpoint(good), endpoint(wrong), endpoint(silent_addr)),
        )
        .replace(
            "    lb_policy: ROUND_ROBIN\n",
            "    lb_policy: ROUND_ROBIN\n    health_checks:\n    - { timeout: 0.2s, interval: 0.05s, no_traffic_interval: 0.05s, unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: { send: { text: \"50494e47\" }, receive: [ { text: \"504f\" }, { text: \"4e47\" } ] } }\n",
        );
    let weir = Weir::start(&text, &["--concurrency", "1"]);
    assert_eq!(wait_flags(weir.admin, good, "healthy"), "healthy");
    // Long enough for the silent host's check to time out a few times.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(flags(weir.admin, wrong), "/failed_active_hc");
    assert_eq!(flags(weir.admin, silent_addr), "/failed_active_hc");
    let stats = get(weir.admin, "/stats?filter=health_check")
        .expect("stats")
        .text();
    let value = |name: &str| -> u64 {
        let key = format!("cluster.origin.health_check.{name}: ");
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {stats}"))
    };
    assert_eq!(value("healthy"), 1);
    assert!(
        value("network_failure") >= 2,
        "the silent host's timeouts: {stats}"
    );
    assert!(value("attempt") >= value("success") + value("failure") - 1);
    drop(silent);
}

/// With the flow trace on, every probe is a flow of the health checker's own: its connect,
/// write, read, the answer's status and the verdict, in `/flows` beside the requests' flows.
#[test]
fn probes_are_flows_of_their_own() {
    let up = Arc::new(AtomicBool::new(true));
    let a = origin("a", up.clone());
    let down = Arc::new(AtomicBool::new(false));
    let b = origin("b", down);
    let log = TempFile::new("hc-flows.log", "");
    let weir = Weir::start(
        &config(a.addr, b.addr, &log.path().display().to_string()),
        &["--flow-trace", "all", "--concurrency", "1"],
    );
    let deadline = Instant::now() + TIMEOUT;
    let (healthy, failed) = loop {
        let body = get(weir.admin, "/flows?format=json&limit=200")
            .expect("/flows")
            .text();
        // JSON lines: a flow's header, then its events.
        let mut flows: Vec<serde_json::Value> = Vec::new();
        for line in body.lines() {
            let Ok(mut v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["event"] == "flow" {
                v["events"] = serde_json::json!([]);
                flows.push(v);
            } else if let Some(events) = flows.last_mut().and_then(|f| f["events"].as_array_mut()) {
                events.push(v);
            }
        }
        let probes: Vec<&serde_json::Value> =
            flows.iter().filter(|f| f["worker"] == 65535).collect();
        let of = |host: SocketAddr, verdict: &str| {
            probes.iter().find(|f| {
                let events = f["events"].as_array().cloned().unwrap_or_default();
                let started = events
                    .iter()
                    .any(|e| e["event"] == "health_check" && e["host"] == host.to_string());
                let judged = events
                    .iter()
                    .any(|e| e["event"] == "health_check_result" && e["verdict"] == verdict);
                started && judged
            })
        };
        if let (Some(h), Some(f)) = (of(a.addr, "healthy"), of(b.addr, "unhealthy")) {
            break ((*h).clone(), (*f).clone());
        }
        assert!(Instant::now() < deadline, "no probe flows in {body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(healthy["method"], "GET");
    assert_eq!(healthy["path"], "/healthz");
    assert_eq!(healthy["status"], 200);
    assert_eq!(failed["status"], 503);
    let names: Vec<&str> = healthy["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    for want in [
        "health_check",
        "write",
        "read",
        "response_head",
        "health_check_result",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let text = get(weir.admin, "/flows?limit=200").expect("/flows").text();
    assert!(
        text.contains("======== Flow worker=health: GET /healthz -> 200"),
        "{text}"
    );
}

/// An origin whose passing check answers with `x-envoy-degraded` is degraded
/// (`/degraded_active_hc`): alone in its cluster it still takes the traffic, and the gauges
/// say so, in weir as in Envoy 1.40.
#[test]
fn a_degraded_answer_makes_a_degraded_host_as_in_envoy() {
    let origin = Origin::start(|req| {
        let mut reply = Reply::text(200, "ok");
        if req.target() == "/healthz" {
            reply.headers.push(("x-envoy-degraded".into(), "".into()));
        }
        Ok(reply)
    });
    let log = TempFile::new("hc-degraded.log", "");
    let endpoint = endpoint_line(origin.addr);
    let text = config(origin.addr, origin.addr, &log.path().display().to_string())
        .replace(&endpoint.repeat(2), &endpoint);
    let run = |addr: SocketAddr, admin: SocketAddr| {
        let flags = wait_flags(admin, origin.addr, "/degraded_active_hc");
        let mut client = Client::connect(addr).expect("connect");
        client.set_read_timeout(TIMEOUT).expect("timeout");
        let answer = client.get("/").expect("response").status();
        let stats = get(admin, "/stats").expect("/stats").text();
        let gauges: Vec<String> = stats
            .lines()
            .filter(|l| {
                [
                    "membership_degraded",
                    "membership_healthy",
                    "health_check.degraded",
                    "health_check.healthy",
                ]
                .iter()
                .any(|n| l.starts_with(&format!("cluster.origin.{n}:")))
            })
            .map(str::to_owned)
            .collect();
        (flags, answer, gauges)
    };
    let weir = Weir::start(&text, &["--concurrency", "1"]);
    let ours = run(weir.addr(), weir.admin);
    assert_eq!(ours.0, "/degraded_active_hc");
    assert_eq!(ours.1, 200);
    assert!(
        ours.2
            .contains(&"cluster.origin.membership_degraded: 1".to_owned()),
        "{:?}",
        ours.2
    );

    let Some(envoy_bin) = envoy_or_skip() else {
        return;
    };
    drop(weir);
    let (envoy_config, port, admin) = envoy_ports(&text);
    let _envoy = Envoy::start(
        &envoy_bin,
        "hc-degraded.yaml",
        &envoy_config,
        Some(admin),
        port,
    );
    let local = |p| SocketAddr::from(([127, 0, 0, 1], p));
    assert_eq!(
        ours,
        run(local(port), local(admin)),
        "weir and Envoy differ"
    );
}

/// Two weirs: the downstream one checks the upstream one's `/healthz`, which the upstream
/// weir's health check filter answers. `POST /healthcheck/fail` on the upstream weir takes it
/// out of the downstream weir's cluster (its checks answer 503, its traffic carries
/// `x-envoy-immediate-health-check-fail`); `/healthcheck/ok` brings it back.
#[test]
fn healthcheck_fail_on_a_weir_upstream_is_seen_by_a_weir_downstream() {
    let origin = Origin::start(|_| Ok(Reply::text(200, "origin")));
    let filter = [
        "          http_filters:",
        "          - name: envoy.filters.http.health_check",
        "            typed_config:",
        "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck",
        "              pass_through_mode: false",
        "              headers: [ { name: \":path\", string_match: { exact: /healthz } } ]",
        "          - name: envoy.filters.http.router\n",
    ]
    .join("\n");
    let upstream_text = proxy_config(origin.addr).replace(
        "          http_filters:\n          - name: envoy.filters.http.router\n",
        &filter,
    );
    assert!(upstream_text.contains("health_check.v3"), "{upstream_text}");
    let upstream = Weir::start(&upstream_text, &["--concurrency", "1"]);
    let log = TempFile::new("hc-two-weirs.log", "");
    let endpoint = endpoint_line;
    let u = upstream.addr();
    let text = config(u, u, &log.path().display().to_string())
        .replace(&endpoint(u).repeat(2), &endpoint(u));
    let downstream = Weir::start(&text, &["--concurrency", "1"]);
    assert_eq!(wait_flags(downstream.admin, u, "healthy"), "healthy");
    let mut client = Client::connect(downstream.addr()).expect("connect");
    client.set_read_timeout(TIMEOUT).expect("timeout");
    assert_eq!(client.get("/").expect("response").text().trim(), "origin");

    let post = |weir: &Weir, path: &str| {
        let mut admin = Client::connect(weir.admin).expect("admin");
        let request = format!("POST {path} HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\n\r\n");
        admin.send(request.as_bytes()).expect("POST");
        admin.read_response().expect("response").status()
    };
    assert_eq!(post(&upstream, "/healthcheck/fail"), 200);
    assert_eq!(
        wait_flags(downstream.admin, u, "/failed_active_hc"),
        "/failed_active_hc"
    );
    assert_eq!(post(&upstream, "/healthcheck/ok"), 200);
    assert_eq!(wait_flags(downstream.admin, u, "healthy"), "healthy");
    assert_eq!(client.get("/").expect("response").text().trim(), "origin");
}
