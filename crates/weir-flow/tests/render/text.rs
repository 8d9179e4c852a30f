//! `render::text`: the seed's sections, in order, with the right sockets and byte counts.

use weir_flow::render;

use crate::fixtures;

fn text_of(flows: &[weir_flow::Flow]) -> String {
    let mut out = String::new();
    render::text(flows, &mut out);
    out
}

/// The `#### ` headings, in order.
fn headings(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("#### ")).collect()
}

/// The index of the first heading at or after `from` that starts with `prefix` and contains
/// every one of `words`.
fn find(headings: &[&str], from: usize, prefix: &str, words: &[&str]) -> usize {
    headings
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, h)| h.starts_with(prefix) && words.iter().all(|w| h.contains(w)))
        .map(|(i, _)| i)
        .unwrap_or_else(|| {
            panic!("no heading {prefix:?} with {words:?} after #{from} in {headings:#?}")
        })
}

#[test]
fn fresh_connection_crosses_the_four_events_in_order() {
    let text = text_of(&[fixtures::fresh()]);
    let h = headings(&text);
    let accept = find(
        &h,
        0,
        "#### Downstream Read Request: ",
        &["accept downstream socket, FD=41"],
    );
    let read = find(
        &h,
        accept,
        "#### Downstream Read Request: ",
        &["read HTTP request GET /index.html", "89 bytes"],
    );
    let complete = find(
        &h,
        read,
        "#### Downstream Read Request: ",
        &[
            "request complete",
            "stop reading the downstream (no syscall)",
        ],
    );
    let connect = find(
        &h,
        complete,
        "#### Downstream Read Request: ",
        &["connect", "FD=44"],
    );
    let write = find(
        &h,
        connect,
        "#### Upstream Write Request: ",
        &["connected", "write request to FD=44 (262 bytes)"],
    );
    let response = find(
        &h,
        write,
        "#### Upstream Read Response: ",
        &["read HTTP response 200", "4511 bytes"],
    );
    let resumed = find(
        &h,
        response,
        "#### Upstream Read Response: ",
        &["response complete", "resume reading the downstream"],
    );
    find(
        &h,
        resumed,
        "#### Downstream Write Response: ",
        &["write response to FD=41 (4631 bytes)"],
    );
    // Every heading is one of the four titles.
    for heading in &h {
        let title = heading[5..].split(':').next().unwrap();
        assert!(
            weir_flow::Phase::ALL.iter().any(|p| p.title() == title),
            "{heading}"
        );
    }
}

#[test]
fn event_lines_read_like_the_seed() {
    let text = text_of(&[fixtures::fresh()]);
    for expected in [
        "***** elapsed=0.000µs: worker=0, fd=41, conn=d1: accept peer=10.0.0.1:58708 local=10.0.0.2:8080",
        "***** elapsed=4.000µs: worker=0, fd=41, conn=d1: register events=EPOLLIN|EPOLLOUT|EPOLLET",
        "***** elapsed=251.000µs: worker=0, fd=41, conn=d1: read asked=65536 ret=89",
        "***** elapsed=252.000µs: worker=0, fd=41, conn=d1: read asked=65536 ret=EAGAIN",
        "***** elapsed=254.000µs: worker=0, fd=41, conn=d1: read_paused syscall=false",
        "***** elapsed=261.000µs: worker=0, fd=44, conn=u1: register events=EPOLLIN|EPOLLOUT|EPOLLET",
        "***** elapsed=400.000µs: worker=0, fd=44, conn=u1: ready events=EPOLLOUT",
        "***** elapsed=404.000µs: worker=0, fd=44, conn=u1: writev asked=262 ret=262",
        "***** elapsed=5401.000µs: worker=0, fd=44, conn=u1: read asked=65536 ret=4511",
        "***** elapsed=5407.000µs: worker=0, fd=41, conn=d1: writev asked=4631 ret=4631",
    ] {
        assert!(
            text.lines().any(|l| l == expected),
            "missing line {expected:?} in\n{text}"
        );
    }
}

#[test]
fn wake_rounds_print_the_seed_summary_block() {
    let text = text_of(&[fixtures::fresh()]);
    assert_eq!(
        text.matches("******* WAKE-ROUND:END Summary *******")
            .count(),
        4
    );
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("******* WAKE-ROUND"))
        .unwrap();
    assert_eq!(
        lines[at + 1],
        "***** elapsed=31.400µs: worker=0: epoll_wait"
    );
    assert_eq!(
        lines[at + 2],
        "ran=33.000µs ready_fds=1 waited=1004.000µs round=1"
    );
    assert_eq!(lines[at + 3], "***************************");
}

#[test]
fn header_names_the_request_and_its_sockets() {
    let text = text_of(&fixtures::both());
    let headers: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("======== Flow "))
        .collect();
    // Newest first, as given.
    assert_eq!(headers.len(), 2);
    assert_eq!(
        headers[0],
        "======== Flow worker=0: GET /api/items?page=2 -> 404 in 910.000µs \
         (downstream d1 fd=41; upstream u1 fd=44; 19 events)"
    );
    assert!(
        headers[1].starts_with("======== Flow worker=0: GET /index.html -> 200 in 5430.000µs (")
    );
}

#[test]
fn reused_connection_writes_without_connecting() {
    let text = text_of(&[fixtures::reused()]);
    assert!(!text.contains("connect_started"), "{text}");
    let h = headings(&text);
    let route = find(
        &h,
        0,
        "#### Downstream Read Request: ",
        &["route api in virtual host local -> cluster backend"],
    );
    // Taking a pooled connection is part of routing (Envoy attaches it in decodeHeaders);
    // the write follows when the upstream is written.
    let pooled = find(
        &h,
        route,
        "#### Downstream Read Request: ",
        &["pooled connection FD=44 (no connect)"],
    );
    find(
        &h,
        pooled,
        "#### Upstream Write Request: ",
        &["write request to FD=44 (280 bytes)"],
    );
}

#[test]
fn truncated_and_unanswered_flows_say_so() {
    let mut flow = fixtures::fresh();
    flow.truncated = true;
    flow.status = 0;
    let text = text_of(&[flow]);
    let header = text.lines().next().unwrap();
    assert!(header.contains("-> no response"), "{header}");
    assert!(header.contains("TRUNCATED"), "{header}");
}

#[test]
fn failures_read_plainly() {
    let text = text_of(&[fixtures::refused()]);
    let h = headings(&text);
    let connect = find(
        &h,
        0,
        "#### Downstream Read Request: ",
        &["start non-blocking connect to 10.0.0.3:80 on upstream FD=44"],
    );
    let hup = find(
        &h,
        connect,
        "#### Upstream Read Response: ",
        &["FD=44 readable, writable, hung up, in error"],
    );
    let close = find(
        &h,
        hup,
        "#### Upstream Read Response: ",
        &["close FD=44 (socket error)"],
    );
    let reply = find(
        &h,
        close,
        "#### Downstream Read Request: ",
        &["local reply 503 (UF)"],
    );
    let partial = find(
        &h,
        reply,
        "#### Downstream Write Response: ",
        &["write response to FD=41 (120 of 300 bytes: partial"],
    );
    let failed = find(
        &h,
        partial,
        "#### Downstream Write Response: ",
        &["FD=41 writable: write response to FD=41 failed (EPIPE)"],
    );
    find(
        &h,
        failed,
        "#### Downstream Read Request: ",
        &["read from FD=41 failed (ECONNRESET)"],
    );
    for expected in [
        "***** elapsed=62.000µs: worker=0, fd=41, conn=d1: local_reply status=503 flag=UF",
        "***** elapsed=63.000µs: worker=0, fd=41, conn=d1: writev asked=300 ret=120 (partial)",
        "***** elapsed=81.000µs: worker=0, fd=41, conn=d1: writev asked=180 ret=EPIPE",
        "***** elapsed=82.000µs: worker=0, fd=41, conn=d1: read asked=65536 ret=ECONNRESET",
        "***** elapsed=83.000µs: worker=0, fd=41, conn=d1: close by=error",
    ] {
        assert!(
            text.lines().any(|l| l == expected),
            "missing line {expected:?} in\n{text}"
        );
    }
}

/// A flow late in a long run: process-unique ids grow with uptime, and a retry's second
/// upstream connection reuses the first one's fd number.
fn late_retry() -> weir_flow::Flow {
    const BIG: u64 = 7_000_000_000;
    let mut flow = fixtures::fresh();
    flow.stream += BIG;
    flow.downstream += BIG;
    let retry_at = flow
        .events
        .iter()
        .position(|e| e.lane == weir_flow::Lane::Upstream)
        .unwrap();
    for (i, e) in flow.events.iter_mut().enumerate() {
        e.stream += BIG;
        if e.conn != 0 {
            e.conn += BIG;
        }
        // From the first upstream event on, the upstream is a second connection on fd 44.
        if i > retry_at + 2 && e.lane == weir_flow::Lane::Upstream {
            e.conn += 1;
        }
    }
    flow
}

#[test]
fn one_time_unit_and_short_connection_names() {
    let text = text_of(&[late_retry()]);
    let header = text.lines().next().unwrap();
    assert_eq!(
        header,
        "======== Flow worker=0: GET /index.html -> 200 in 5430.000µs \
         (downstream d1 fd=41; upstream u1 fd=44, u2 fd=44; 30 events)",
        "{text}"
    );
    // The process-unique ids appear nowhere.
    for id in ["7000000003", "7000000004", "7000000005", "7000000007"] {
        assert!(!text.contains(id), "{id} in\n{text}");
    }
    assert!(text.contains(", fd=44, conn=u2: "), "{text}");
    // Every time is in µs: the header, each `elapsed=`, the wake rounds' `ran=`/`waited=`.
    let mut times = 0;
    for line in text.lines() {
        for (key, rest) in [" in ", "elapsed=", "ran=", "waited="]
            .iter()
            .flat_map(|k| line.split(k).skip(1).map(move |r| (*k, r)))
        {
            let value: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            if value.is_empty() {
                continue;
            }
            times += 1;
            assert!(
                rest[value.len()..].starts_with("µs") && value.contains('.'),
                "`{key}{rest}` is not in µs with three decimals: {line}"
            );
        }
    }
    assert!(times > 20, "{times} times found in\n{text}");
}
