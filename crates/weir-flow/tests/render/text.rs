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
        "***** elapsed=0: worker=0, fd=41, conn=3: accept peer=10.0.0.1:58708 local=10.0.0.2:8080",
        "***** elapsed=4000: worker=0, fd=41, conn=3: register events=EPOLLIN|EPOLLOUT|EPOLLET",
        "***** elapsed=251000: worker=0, fd=41, conn=3: read asked=65536 ret=89",
        "***** elapsed=252000: worker=0, fd=41, conn=3: read asked=65536 ret=EAGAIN",
        "***** elapsed=254000: worker=0, fd=41, conn=3: read_paused syscall=false",
        "***** elapsed=261000: worker=0, fd=44, conn=4: register events=EPOLLIN|EPOLLOUT|EPOLLET",
        "***** elapsed=400000: worker=0, fd=44, conn=4: ready events=EPOLLOUT",
        "***** elapsed=404000: worker=0, fd=44, conn=4: writev asked=262 ret=262",
        "***** elapsed=5401000: worker=0, fd=44, conn=4: read asked=65536 ret=4511",
        "***** elapsed=5407000: worker=0, fd=41, conn=3: writev asked=4631 ret=4631",
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
    assert_eq!(lines[at + 1], "***** elapsed=31400: worker=0: epoll_wait");
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
        "======== Flow stream=8 worker=0: GET /api/items?page=2 -> 404 in 910.000µs \
         (downstream fd=41 conn=3; upstream fd=44 conn=4; 19 events)"
    );
    assert!(
        headers[1]
            .starts_with("======== Flow stream=7 worker=0: GET /index.html -> 200 in 5.430ms (")
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
        "***** elapsed=62000: worker=0, fd=41, conn=3: local_reply status=503 flag=UF",
        "***** elapsed=63000: worker=0, fd=41, conn=3: writev asked=300 ret=120 (partial)",
        "***** elapsed=81000: worker=0, fd=41, conn=3: writev asked=180 ret=EPIPE",
        "***** elapsed=82000: worker=0, fd=41, conn=3: read asked=65536 ret=ECONNRESET",
        "***** elapsed=83000: worker=0, fd=41, conn=3: close by=error",
    ] {
        assert!(
            text.lines().any(|l| l == expected),
            "missing line {expected:?} in\n{text}"
        );
    }
}
