//! Circuit breakers over real sockets, weir and Envoy 1.40 given the same config and the same
//! traffic: a request past `max_connections` waits for the busy connection, one past
//! `max_pending_requests` is refused 503 `UO` with `x-envoy-overloaded`, a retry past
//! `max_retries` is not made (the origin's 503 is the answer, flagged `UO`), and the counters
//! and gauges say so under Envoy's names.

mod differential_support;
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use differential_support::{Envoy, envoy_or_skip, envoy_ports};
use support::{Client, Origin, Reply, TempFile, Weir, get, proxy_config};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The config: `proxy_config` with the breakers, a retry policy on `/fail`, and an access log
/// of status and flags at `log`.
fn config(origin: SocketAddr, log: &str) -> String {
    proxy_config(origin)
        .replace(
            "              - match: { prefix: / }\n",
            "              - match: { prefix: /fail }\n                route: { cluster: origin, retry_policy: { retry_on: 5xx, num_retries: 2 } }\n              - match: { prefix: / }\n",
        )
        .replace(
            "          http_filters:\n",
            &format!(
                "          access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {log}\n              log_format: {{ text_format_source: {{ inline_string: \"%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS%\\n\" }} }}\n          http_filters:\n"
            ),
        )
        .replace(
            "    lb_policy: ROUND_ROBIN\n",
            "    lb_policy: ROUND_ROBIN\n    circuit_breakers:\n      thresholds:\n      - { max_connections: 1, max_pending_requests: 1, max_retries: 0, track_remaining: true }\n",
        )
}

/// What one proxy did with the scenario's traffic.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Per request: path, status, `x-envoy-overloaded`, body.
    responses: Vec<(String, u16, Option<String>, String)>,
    /// The counters and gauges that tell the story.
    stats: Vec<(String, i64)>,
    /// Access log lines, sorted (requests end in an order the scenario does not fix).
    log: Vec<String>,
}

const STATS: &[&str] = &[
    "upstream_cx_total",
    "upstream_cx_overflow",
    "upstream_rq_pending_overflow",
    "upstream_rq_retry_overflow",
    "upstream_rq_pending_total",
    "upstream_rq_pending_active",
    "circuit_breakers.default.cx_open",
    "circuit_breakers.default.remaining_cx",
    "circuit_breakers.default.remaining_pending",
    "circuit_breakers.default.rq_pending_open",
    "circuit_breakers.high.cx_open",
];

/// `cluster.origin.<name>` from the proxy's admin, or `None`.
fn stat(admin: SocketAddr, name: &str) -> Option<i64> {
    let full = format!("cluster.origin.{name}");
    let body = get(admin, "/stats").ok()?.text();
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{full}: ")))
        .and_then(|v| v.trim().parse().ok())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The scenario against a proxy at `addr` (admin `admin`) whose origin holds `/hold`
/// requests until `release` says so.
fn run(addr: SocketAddr, admin: SocketAddr, release: &mpsc::Sender<()>, log: &TempFile) -> Outcome {
    let send = |path: &str| {
        let mut c = Client::connect(addr).expect("connect");
        c.set_read_timeout(TIMEOUT).expect("timeout");
        c.send(format!("GET {path} HTTP/1.1\r\nhost: a\r\n\r\n").as_bytes())
            .expect("send");
        c
    };
    let mut first = send("/hold/1");
    wait_for("the first on its connection", || {
        stat(admin, "upstream_rq_active") == Some(1)
    });
    let mut second = send("/hold/2");
    wait_for("the second to wait", || {
        stat(admin, "upstream_rq_pending_active") == Some(1)
    });
    let mut third = send("/third");
    let mut responses = Vec::new();
    let mut note = |path: &str, c: &mut Client| {
        let r = c.read_response().expect("response");
        let overloaded = r.head.header("x-envoy-overloaded").map(str::to_owned);
        responses.push((path.to_owned(), r.status(), overloaded, r.text()));
    };
    note("/third", &mut third);
    let stats_while_waiting: Vec<(String, i64)> = STATS
        .iter()
        .map(|s| (format!("{s} (while waiting)"), stat(admin, s).unwrap_or(-1)))
        .collect();
    release.send(()).expect("release");
    note("/hold/1", &mut first);
    release.send(()).expect("release");
    note("/hold/2", &mut second);
    let mut fail = send("/fail");
    note("/fail", &mut fail);
    let mut stats = stats_while_waiting;
    wait_for("the streams to end", || {
        stat(admin, "upstream_rq_pending_active") == Some(0)
    });
    stats.extend(
        STATS
            .iter()
            .map(|s| (s.to_string(), stat(admin, s).unwrap_or(-1))),
    );
    let mut lines = Vec::new();
    wait_for("four access log lines", || {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        lines = text.lines().map(str::to_owned).collect();
        lines.len() >= 4
    });
    lines.sort();
    Outcome {
        responses,
        stats,
        log: lines,
    }
}

/// An origin that holds `/hold/*` until released (one release per request), answers `/fail`
/// 503, and anything else 200.
fn origin() -> (Origin, mpsc::Sender<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let origin = Origin::start(move |req| {
        if req.target().starts_with("/hold") {
            let _ = rx.lock().expect("release").recv_timeout(TIMEOUT);
        }
        if req.target().starts_with("/fail") {
            return Ok(Reply::text(503, "busy"));
        }
        Ok(Reply::text(200, "ok"))
    });
    (origin, tx)
}

#[test]
fn breakers_refuse_and_queue_as_envoys_do() {
    let (origin, release) = origin();
    let log = TempFile::new("breakers.log", "");
    let path = log.path().display().to_string();
    // One worker, as the Envoy beside it: each worker has its own pools.
    let args = ["--concurrency", "1", "--file-flush-interval-msec", "20"];
    let weir = Weir::start(&config(origin.addr, &path), &args);
    let ours = run(weir.addr(), weir.admin, &release, &log);

    let expected_responses = [
        (
            "/third",
            503,
            Some("true"),
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
        ),
        ("/hold/1", 200, None, "ok"),
        ("/hold/2", 200, None, "ok"),
        ("/fail", 503, None, "busy"),
    ];
    let got: Vec<(&str, u16, Option<&str>, &str)> = ours
        .responses
        .iter()
        .map(|(p, s, o, b)| (p.as_str(), *s, o.as_deref(), b.trim_end()))
        .collect();
    assert_eq!(got, expected_responses);
    let value = |name: &str| {
        ours.stats
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{name} in {:?}", ours.stats))
    };
    assert_eq!(value("upstream_rq_pending_active (while waiting)"), 1);
    assert_eq!(value("circuit_breakers.default.cx_open (while waiting)"), 1);
    assert_eq!(value("upstream_cx_total"), 1, "one connection served all");
    assert_eq!(value("upstream_cx_overflow"), 1);
    assert_eq!(value("upstream_rq_pending_overflow"), 1);
    assert_eq!(value("upstream_rq_retry_overflow"), 1);
    assert_eq!(
        ours.log,
        [
            "/fail 503 UO",
            "/hold/1 200 -",
            "/hold/2 200 -",
            "/third 503 UO"
        ]
    );

    let Some(envoy_bin) = envoy_or_skip() else {
        return;
    };
    drop(weir);
    let envoy_log = TempFile::new("breakers-envoy.log", "");
    let (envoy_config, port, admin) = envoy_ports(&config(
        origin.addr,
        &envoy_log.path().display().to_string(),
    ));
    let args = ["--file-flush-interval-msec", "20"];
    let _envoy = Envoy::start_with(
        &envoy_bin,
        "cb.yaml",
        &envoy_config,
        Some(admin),
        port,
        &args,
    );
    let local = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let envoys = run(local(port), local(admin), &release, &envoy_log);
    assert_eq!(ours, envoys, "weir and Envoy differ");
}
