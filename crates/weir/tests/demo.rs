//! `weir demo --requests N --port 0`: two in-process origins, a burst through the proxy, a report.

mod support;

use std::time::Duration;

use support::run_weir;

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
}
