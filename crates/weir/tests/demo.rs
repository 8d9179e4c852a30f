//! `weir demo --requests N --port 0`: two in-process origins, a burst through the proxy, a report.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{run_weir, wait_child, weir_bin};

#[test]
fn demo_sends_200_requests_and_reports() {
    let ran = run_weir(
        &["demo", "--requests", "200", "--port", "0"],
        Duration::from_secs(15),
    );
    assert_eq!(ran.code(), Some(0), "{ran}");
    let out = &ran.stdout;
    assert!(
        out.lines().any(|l| l.trim() == "status 200: 200"),
        "no `status 200: 200` line\n{ran}"
    );
    assert!(
        !out.lines()
            .any(|l| l.trim().starts_with("status ") && !l.contains("status 200:")),
        "a non-200 status was reported\n{ran}"
    );
    assert!(!out.contains("client connections that failed"), "{ran}");

    // Both origins served a share, and the shares add up.
    let served = |origin: &str| -> u64 {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("served by {origin}: ")))
            .unwrap_or_else(|| panic!("no `served by {origin}` line\n{ran}"))
            .parse()
            .expect("a count")
    };
    let (a, b) = (served("origin-a"), served("origin-b"));
    assert!(
        a > 0 && b > 0,
        "both origins must serve requests: a={a} b={b}\n{ran}"
    );
    assert_eq!(a + b, 200, "{ran}");

    // The syscall line: a positive per-request figure.
    let per_request: f64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("syscalls made by weir's workers: "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no syscalls-per-request line\n{ran}"))
        .parse()
        .expect("a number");
    assert!(per_request > 0.0, "{ran}");
    assert!(
        out.contains(" per request (epoll_wait "),
        "syscall line lacks its breakdown\n{ran}"
    );

    // The flow of a request that opened an upstream connection, in the seed's sections.
    assert!(
        out.contains("one request's flow through the seed's four events"),
        "{ran}"
    );
    assert!(
        out.contains("start non-blocking connect to 127.0.0.1:"),
        "{ran}"
    );
    assert!(out.contains("#### Downstream Write Response: "), "{ran}");

    // One request over the TLS listener, with its certificate made at start.
    assert!(
        out.lines().any(|l| l
            .trim()
            .starts_with("over TLS: GET /healthz on https://localhost:")
            && l.contains(": HTTP/1.1 200 OK (TLSv1.3, TLS_")),
        "no TLS line\n{ran}"
    );
}

/// Serving (no `--requests`), the demo lists requests to try; its `curl --cacert … https://…`
/// line works as printed.
#[test]
fn serving_demo_prints_a_curl_line_that_works_over_tls() {
    use std::io::BufRead;
    let mut child = Command::new(weir_bin())
        .args(["demo", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn weir");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut curl_line = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while let Ok(line) =
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        if line.trim().starts_with("curl --cacert ") {
            curl_line = Some(line);
        } else if line.contains("serving until Ctrl-C") {
            break;
        }
    }
    let line = curl_line.expect("a curl --cacert line");
    let command = line.split('#').next().unwrap_or_default();
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let ran = support::run_program(
        "curl",
        &[&["-sS"][..], &args].concat(),
        Duration::from_secs(15),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(ran.code(), Some(0), "{line}\n{ran}");
    assert!(ran.stdout.contains("origin-"), "{ran}");
}

/// With --requests the proxy stops after the burst: nothing invites the reader to visit it.
#[test]
fn demo_with_requests_gives_no_instructions_for_a_stopped_proxy() {
    let ran = run_weir(
        &["demo", "--requests", "20", "--port", "0"],
        Duration::from_secs(15),
    );
    assert_eq!(ran.code(), Some(0), "{ran}");
    for stale in ["curl", "/flows/view", "admin on", "try:", "serving until"] {
        assert!(!ran.stdout.contains(stale), "`{stale}` printed\n{ran}");
    }
    assert!(
        ran.stdout.contains("the proxy has stopped (--requests)"),
        "{ran}"
    );
}

/// `weir demo --requests 10 | head -1`: the reader is gone before weir writes; weir ends
/// quietly with status 0, no panic.
#[test]
fn demo_into_a_closed_pipe_ends_quietly() {
    let mut child = Command::new(weir_bin())
        .args(["demo", "--requests", "10", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weir");
    // Close the read end at once: weir's first line comes after its proxy starts.
    drop(child.stdout.take());
    let mut stderr = child.stderr.take().expect("stderr");
    let status = wait_child(&mut child, Duration::from_secs(15)).expect("weir demo ended");
    let mut err = String::new();
    stderr.read_to_string(&mut err).expect("stderr");
    assert!(!err.contains("panicked"), "{status}\n{err}");
    assert!(!err.contains("Broken pipe"), "{status}\n{err}");
    assert_eq!(status.code(), Some(0), "{err}");
}
