//! `weir trace --pid PID` against ground truth. An in-test origin sits behind a proxy (nginx
//! with a new upstream connection per request, nginx with a keep-alive pool, HAProxy, Envoy,
//! weir);
//! the tracer attaches to the proxy, 64 keep-alive clients send 1280 requests whose lengths
//! (and their responses' lengths) name them, and each flow the tracer prints must carry its
//! own request's bytes on all four sides (see `trace_support`).
//!
//! The `*_untraced` tests run the same load without the tracer and check what the checker
//! relies on: every response arrives whole, and each proxy changes heads by a constant amount.
//!
//! Without the means to trace (not root, no BPF, no tracefs) `weir trace` exits 2 saying it
//! cannot trace, and the traced tests print `skipped: …` and pass, unless `WEIR_REQUIRE_BPF=1`.
//! Without nginx or HAProxy installed, their tests skip the same way unless
//! `WEIR_REQUIRE_PROXIES=1`; without Envoy, unless `WEIR_REQUIRE_ENVOY=1`. These tests load the machine, so they run one at a time.

mod support;
mod trace_support;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use support::{Weir, proxy_config};
use trace_support::{
    Attach, GtOrigin, Load, Proxy, ProxyKind, REQUESTS, Tracer, body_len, request, request_len,
    response_len, run_load, target_k, verify,
};
use weir_flow::{Event, EventKind, Flow, Lane, ReadResult, ShortText};

/// Serializes the tests of this file: each one runs 64 clients and a proxy.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Set to 1 when the machine must be able to trace (CI, as root): a tracer that cannot fails.
const REQUIRE_BPF: &str = "WEIR_REQUIRE_BPF";
/// Set to 1 when nginx and HAProxy must be installed.
const REQUIRE_PROXIES: &str = "WEIR_REQUIRE_PROXIES";

/// What must be set to 1 for a missing `kind` to fail its test instead of skipping.
fn requirement(kind: ProxyKind) -> &'static str {
    match kind {
        ProxyKind::Envoy => support::REQUIRE_ENVOY,
        _ => REQUIRE_PROXIES,
    }
}

/// Skips the test (printing why) unless `requirement` is set to 1, when it fails instead.
fn skip(requirement: &str, reason: &str) {
    if std::env::var(requirement).is_ok_and(|v| v == "1") {
        panic!("{requirement}=1, but {reason}");
    }
    println!("skipped: {reason}");
}

/// The one key of a "value → count" map, if it has exactly one.
fn only_key<K: Copy>(counts: &BTreeMap<K, u64>) -> Option<K> {
    match counts.keys().collect::<Vec<_>>()[..] {
        [k] => Some(*k),
        _ => None,
    }
}

/// Fails the test if any request of the load failed.
fn assert_load_ok(kind: ProxyKind, load: &Load) {
    assert!(
        load.failures.is_empty(),
        "{kind}: {} of {} requests failed:\n{}",
        load.failures.len(),
        load.sent.len(),
        load.failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The load through each proxy, without the tracer
// ---------------------------------------------------------------------------------------------

/// Runs the load through `kind` and checks every response, the origin's counts, and that the
/// two constants the checker infers really are constant for this proxy.
fn untraced(kind: ProxyKind) {
    let _serial = serial();
    let origin = GtOrigin::start();
    let proxy = match Proxy::start(kind, origin.addr) {
        Ok(proxy) => proxy,
        Err(reason) => return skip(requirement(kind), &reason),
    };
    let load = run_load(proxy.addr());
    assert_load_ok(kind, &load);
    assert_eq!(load.sent.len(), REQUESTS as usize, "{kind}");
    assert_eq!(origin.responses(), u64::from(REQUESTS), "{kind}");
    assert_eq!(
        origin.rejected(),
        0,
        "{kind}: the origin got unknown targets"
    );
    let request_overheads = origin.request_overheads();
    assert!(
        only_key(&request_overheads).is_some(),
        "{kind}: forwarded requests differ from the client's by varying amounts \
         (bytes → requests): {request_overheads:?}"
    );
    assert!(
        only_key(&load.response_heads).is_some(),
        "{kind}: response heads of varying lengths (bytes → responses): {:?}",
        load.response_heads
    );
    if kind.reuses_upstream_connections() {
        assert!(
            origin.connections() < origin.responses(),
            "{kind}: no upstream connection was reused ({} connections, {} responses)",
            origin.connections(),
            origin.responses()
        );
    } else {
        assert_eq!(
            origin.connections(),
            origin.responses(),
            "{kind}: one upstream connection per request"
        );
    }
    println!(
        "{kind}: {} requests in {:?}; {} upstream connections; request overhead {:?}, \
         response head {:?}",
        load.sent.len(),
        load.elapsed,
        origin.connections(),
        request_overheads,
        load.response_heads
    );
}

#[test]
fn nginx_per_request_untraced() {
    untraced(ProxyKind::NginxPerRequest);
}

#[test]
fn nginx_pool_untraced() {
    untraced(ProxyKind::NginxPool);
}

#[test]
fn haproxy_untraced() {
    untraced(ProxyKind::Haproxy);
}

#[test]
fn weir_untraced() {
    untraced(ProxyKind::Weir);
}

#[test]
fn envoy_untraced() {
    untraced(ProxyKind::Envoy);
}

// ---------------------------------------------------------------------------------------------
// The load through each proxy, traced
// ---------------------------------------------------------------------------------------------

/// Runs the load through `kind` under `weir trace` and requires at least `min_percent` % of
/// the requests to come back as correctly linked flows, with the proxy's constants the checker
/// inferred equal to the ones the origin and the client measured.
///
/// With `warm`, the same load runs once before the tracer attaches, so the proxy's pool holds
/// upstream connections the tracer never saw opened: it must know them from `/proc`.
fn traced(kind: ProxyKind, min_percent: usize, warm: bool) {
    let _serial = serial();
    let origin = GtOrigin::start();
    let proxy = match Proxy::start(kind, origin.addr) {
        Ok(proxy) => proxy,
        Err(reason) => return skip(requirement(kind), &reason),
    };
    if warm {
        assert_load_ok(kind, &run_load(proxy.addr()));
    }
    let tracer = match Tracer::attach(proxy.pid()) {
        Attach::Tracing(tracer) => tracer,
        Attach::Cannot(reason) => {
            return skip(REQUIRE_BPF, &format!("weir trace cannot trace: {reason}"));
        }
    };
    let load = run_load(proxy.addr());
    let trace = tracer.stop();
    let report = verify(&trace.stdout, &load.sent);
    println!(
        "{kind} under weir trace ({:?} of load): {report}",
        load.elapsed
    );
    assert_load_ok(kind, &load);
    assert!(
        report.meets(min_percent),
        "{kind}: want ≥ {min_percent} % of the requests correctly linked: {report}"
    );
    let request_overhead = only_key(&origin.request_overheads());
    let response_head = only_key(&load.response_heads).and_then(|n| i64::try_from(n).ok());
    assert_eq!(
        (report.request_overhead, report.response_overhead),
        (request_overhead, response_head),
        "{kind}: the traced constants (request overhead, response head) differ from the \
         measured ones: {report}"
    );
}

#[test]
fn nginx_per_request_traced() {
    traced(ProxyKind::NginxPerRequest, 100, false);
}

#[test]
fn nginx_pool_traced() {
    traced(ProxyKind::NginxPool, 100, false);
}

#[test]
fn haproxy_traced() {
    traced(ProxyKind::Haproxy, 99, false);
}

#[test]
fn weir_traced() {
    traced(ProxyKind::Weir, 100, false);
}

/// Envoy's pool sends a waiting request on the first connection ready, often not the one its
/// read made it open: the tracer follows the request line each write carries.
#[test]
fn envoy_traced() {
    traced(ProxyKind::Envoy, 100, false);
}

#[test]
fn nginx_pool_traced_after_warm_up() {
    traced(ProxyKind::NginxPool, 100, true);
}

#[test]
fn weir_traced_after_warm_up() {
    traced(ProxyKind::Weir, 100, true);
}

/// The "done when": nginx's flows in the seed's sectioned text, one per request, each
/// through the four phases and the wake rounds.
#[test]
fn nginx_flows_in_the_seeds_text() {
    let _serial = serial();
    let origin = GtOrigin::start();
    let proxy = match Proxy::start(ProxyKind::NginxPerRequest, origin.addr) {
        Ok(proxy) => proxy,
        Err(reason) => return skip(REQUIRE_PROXIES, &reason),
    };
    let tracer = match Tracer::attach_as(proxy.pid(), "text") {
        Attach::Tracing(tracer) => tracer,
        Attach::Cannot(reason) => {
            return skip(REQUIRE_BPF, &format!("weir trace cannot trace: {reason}"));
        }
    };
    let load = run_load(proxy.addr());
    let text = tracer.stop().stdout;
    assert_load_ok(ProxyKind::NginxPerRequest, &load);
    let flows: Vec<&str> = text.split("======== Flow ").skip(1).collect();
    assert_eq!(flows.len(), load.sent.len(), "one flow per request");
    // Each client's first request on its keep-alive connection carries the accept.
    let accepts = text
        .matches("#### Downstream Read Request: accept downstream socket")
        .count();
    assert_eq!(
        accepts,
        trace_support::CLIENTS as usize,
        "one accept per client"
    );
    for flow in flows {
        assert!(
            flow.contains(": GET /gt/") && flow.contains(" -> 200 in "),
            "{flow}"
        );
        for heading in [
            "#### Downstream Read Request: FD=",
            "start non-blocking connect to 127.0.0.1:",
            "#### Upstream Write Request: FD=",
            "#### Upstream Read Response: FD=",
            "#### Downstream Write Response: write response to FD=",
            "******* WAKE-ROUND:END Summary *******",
        ] {
            assert!(flow.contains(heading), "no `{heading}` in:\n{flow}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Refusals: one line that says what is wrong, exit status 2
// ---------------------------------------------------------------------------------------------

/// Runs `weir trace ARGS` and returns its exit code and stderr.
fn trace_refusal(args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["trace"];
    all.extend_from_slice(args);
    let ran = support::run_weir(&all, support::TIMEOUT);
    (ran.code(), ran.stderr)
}

#[test]
fn refuses_init_itself_and_missing_processes() {
    let (code, err) = trace_refusal(&["--pid", "1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot trace: refusing to trace PID 1"),
        "{err}"
    );
    // PIDs above the kernel's limit (4194304) never exist.
    let (code, err) = trace_refusal(&["--pid", "4194305"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot trace: no process with PID 4194305"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

/// Not root: says so and how to fix it, before loading anything. Run as `nobody` through
/// util-linux's setpriv, so it needs root to set up (CI has it).
#[test]
fn refuses_without_root() {
    let me = std::process::id().to_string();
    let ran = support::run_program(
        "/usr/bin/setpriv",
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            support::weir_bin(),
            "trace",
            "--pid",
            &me,
        ],
        support::TIMEOUT,
    );
    if ran.stderr.contains("setpriv:") {
        // Not root here (or no setpriv): nothing to drop.
        return skip(
            REQUIRE_BPF,
            &format!("cannot run as nobody: {}", ran.stderr.trim()),
        );
    }
    assert_eq!(ran.code(), Some(2), "{ran}");
    assert!(
        ran.stderr
            .contains("cannot trace: loading eBPF programs needs root")
            && ran.stderr.contains("sudo"),
        "{ran}"
    );
}

// ---------------------------------------------------------------------------------------------
// Two witnesses: weir's own flow recorder and the kernel's view of the same requests
// ---------------------------------------------------------------------------------------------

/// A flow's socket I/O as both views must tell it: for every readiness report, read and
/// write syscall, in order, its phase, lane, fd and result (bytes, would-block, EOF, or the
/// errno).
fn io_signature(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e["event"].as_str(),
                Some("read" | "write" | "ready" | "wake_round")
            )
        })
        .map(|e| {
            let result = match e["event"].as_str() {
                Some("read") => e["result"].to_string(),
                Some("write") => e["written"].to_string(),
                Some("wake_round") => format!("ready={}", e["ready"]),
                _ => format!("in={} out={}", e["readable"], e["writable"]),
            };
            format!(
                "{} {} fd={} {} {result}",
                e["phase"].as_str().unwrap_or("-"),
                e["lane"].as_str().unwrap_or("-"),
                e["fd"],
                e["event"].as_str().unwrap_or("-"),
            )
        })
        .collect()
}

/// JSON lines grouped by flow, keyed by the k of the flow's request target.
fn flows_by_k(json_lines: &str) -> BTreeMap<u32, Vec<Vec<serde_json::Value>>> {
    let mut flows: BTreeMap<u32, Vec<Vec<serde_json::Value>>> = BTreeMap::new();
    let mut current: Option<&mut Vec<serde_json::Value>> = None;
    for line in json_lines.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        if value["event"] == "flow" {
            current = match value["path"].as_str().and_then(target_k) {
                Some(k) => {
                    let list = flows.entry(k).or_default();
                    list.push(Vec::new());
                    list.last_mut()
                }
                None => None,
            };
        } else if let Some(events) = current.as_mut() {
            events.push(value);
        }
    }
    flows
}

/// weir records its own flows (`flow_trace: ALL`) while `weir trace` watches it from the
/// kernel: for every request, the two views agree on each readiness report's and each read and
/// write syscall's fd, byte count and phase, in order.
#[test]
fn weir_own_trace_agrees_with_the_kernel_view() {
    let _serial = serial();
    let origin = GtOrigin::start();
    let config = format!(
        "{}weir:\n  flow_trace:\n    mode: ALL\n    flows_kept: 4096\n",
        proxy_config(origin.addr)
    );
    let weir = Weir::start(&config, &["--concurrency", "2"]);
    let tracer = match Tracer::attach(weir.pid()) {
        Attach::Tracing(tracer) => tracer,
        Attach::Cannot(reason) => {
            return skip(REQUIRE_BPF, &format!("weir trace cannot trace: {reason}"));
        }
    };
    let load = run_load(weir.addr());
    let trace = tracer.stop();
    assert_load_ok(ProxyKind::Weir, &load);
    let own = support::get(weir.admin, "/flows?format=json&limit=10000").expect("GET /flows");
    assert_eq!(own.status(), 200, "GET /flows: {}", own.text());
    let own = flows_by_k(&own.text());
    let kernel = flows_by_k(&trace.stdout);
    let mut disagreements = Vec::new();
    for &k in &load.sent {
        let (Some([mine]), Some([seen])) = (
            own.get(&k).map(Vec::as_slice),
            kernel.get(&k).map(Vec::as_slice),
        ) else {
            disagreements.push(format!(
                "k={k}: weir kept {} flows, the tracer printed {}",
                own.get(&k).map_or(0, Vec::len),
                kernel.get(&k).map_or(0, Vec::len)
            ));
            continue;
        };
        let (mine, seen) = (io_signature(mine), io_signature(seen));
        if mine.len() < 4 {
            disagreements.push(format!(
                "k={k}: fewer syscalls than the four sides: {mine:?}"
            ));
        } else if mine != seen {
            disagreements.push(format!(
                "k={k}:\n  weir's own: {mine:?}\n  the kernel: {seen:?}"
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} requests disagree; the first:\n{}",
        disagreements.len(),
        load.sent.len(),
        disagreements
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The checker itself, on flows rendered by weir-flow's own JSON-lines renderer
// ---------------------------------------------------------------------------------------------

/// What the synthetic proxy adds to a request head, and its response head's length.
const REQUEST_OVERHEAD: usize = 60;
const RESPONSE_HEAD: usize = 150;

/// Request k's flow through a proxy that adds `REQUEST_OVERHEAD` bytes to the request and
/// sends a `RESPONSE_HEAD`-byte response head, as a correct tracer would print it, except that
/// its upstream reads return `upstream_read` bytes. Every side's bytes are split over two
/// syscalls, among events that carry no bytes (would-block, EOF, a failed write, a wake round).
fn flow(k: u32, upstream_read: usize) -> Flow {
    let event = |lane, fd, conn, kind| Event::new(0, 0, lane, fd, conn, u64::from(k), kind);
    let bytes = |n: usize| ReadResult::Bytes(u32::try_from(n).expect("small"));
    let len = |n: usize| u32::try_from(n).expect("small");
    let (down, up) = ((Lane::Downstream, 5), (Lane::Upstream, 6));
    let sent = request_len(k);
    let forwarded = sent + REQUEST_OVERHEAD;
    let answered = body_len(k) + RESPONSE_HEAD;
    let target = request(k)
        .split_whitespace()
        .nth(1)
        .expect("target")
        .to_string();
    Flow {
        stream: u64::from(k),
        worker: 0,
        downstream: 1,
        start: 0,
        end: 1,
        status: 200,
        method: ShortText::new(b"GET"),
        path: ShortText::new(target.as_bytes()),
        truncated: false,
        events: vec![
            event(
                Lane::Worker,
                -1,
                0,
                EventKind::WakeRound {
                    round: 1,
                    ready: 1,
                    waited_ns: 0,
                    ran_ns: 0,
                },
            ),
            event(
                down.0,
                down.1,
                1,
                EventKind::Read {
                    asked: 1024,
                    result: bytes(sent / 2),
                },
            ),
            event(
                down.0,
                down.1,
                1,
                EventKind::Read {
                    asked: 8192,
                    result: bytes(sent - sent / 2),
                },
            ),
            event(
                down.0,
                down.1,
                1,
                EventKind::Read {
                    asked: 8192,
                    result: ReadResult::WouldBlock,
                },
            ),
            event(
                up.0,
                up.1,
                2,
                EventKind::Write {
                    asked: len(forwarded),
                    written: -11,
                },
            ),
            event(
                up.0,
                up.1,
                2,
                EventKind::Write {
                    asked: len(forwarded),
                    written: 10,
                },
            ),
            event(
                up.0,
                up.1,
                2,
                EventKind::Write {
                    asked: len(forwarded - 10),
                    written: i64::from(len(forwarded - 10)),
                },
            ),
            event(
                up.0,
                up.1,
                2,
                EventKind::Read {
                    asked: 4096,
                    result: bytes(upstream_read / 2),
                },
            ),
            event(
                up.0,
                up.1,
                2,
                EventKind::Read {
                    asked: 65536,
                    result: bytes(upstream_read - upstream_read / 2),
                },
            ),
            event(
                up.0,
                up.1,
                2,
                EventKind::Read {
                    asked: 65536,
                    result: ReadResult::Eof,
                },
            ),
            event(
                down.0,
                down.1,
                1,
                EventKind::Write {
                    asked: len(answered),
                    written: i64::from(len(answered)),
                },
            ),
        ],
    }
}

fn render(flows: &[Flow]) -> String {
    let mut out = String::new();
    weir_flow::render::json_lines(flows, &mut out);
    out
}

#[test]
fn checker_links_good_flows_and_rejects_a_swapped_upstream_read() {
    let good = verify(
        &render(&[flow(1, response_len(1)), flow(2, response_len(2))]),
        &[1, 2],
    );
    assert_eq!(good.linked, 2, "{good}");
    assert!(good.meets(100), "{good}");
    assert_eq!(good.request_overhead, Some(REQUEST_OVERHEAD as i64));
    assert_eq!(good.response_overhead, Some(RESPONSE_HEAD as i64));

    // k=2's flow has k=1's upstream read, as if the tracer had followed the wrong upstream
    // connection.
    let swapped = verify(
        &render(&[flow(1, response_len(1)), flow(2, response_len(1))]),
        &[1, 2],
    );
    assert_eq!(swapped.linked, 1, "{swapped}");
    assert_eq!(swapped.mislinked, [2], "{swapped}");
    assert!(!swapped.meets(99), "{swapped}");
    assert!(
        swapped.examples.iter().any(|e| e.starts_with("k=2 ")),
        "{swapped}"
    );
}

#[test]
fn checker_reports_missing_duplicated_unattributed_and_malformed() {
    let elsewhere = Flow {
        path: ShortText::new(b"/favicon.ico"),
        ..flow(4, response_len(4))
    };
    let mut lines = render(&[
        flow(1, response_len(1)),
        flow(1, response_len(1)),
        flow(3, response_len(3)),
        elsewhere,
    ]);
    lines.push_str("not json\n");
    let report = verify(&lines, &[1, 2, 3]);
    assert_eq!(report.requests, 3, "{report}");
    assert_eq!(report.flows, 4, "{report}");
    assert_eq!(report.linked, 1, "{report}");
    assert_eq!(report.missing, [2], "{report}");
    assert_eq!(report.duplicated, [1], "{report}");
    assert!(report.mislinked.is_empty(), "{report}");
    assert_eq!(report.unattributed, 1, "{report}");
    assert_eq!(report.malformed, 1, "{report}");
    assert!(!report.meets(0), "malformed lines fail the check: {report}");

    let orphan = format!("{}{}", lines.lines().nth(1).expect("an event line"), "\n");
    let report = verify(&orphan, &[]);
    assert_eq!(report.malformed, 1, "an event before any header: {report}");
}
