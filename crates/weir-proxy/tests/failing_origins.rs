//! A scripted origin misbehaves once, in every way the issue lists; for each, weir's answer
//! (status and Envoy's flag, or how a started response is cut), that the connection the origin
//! spoiled is never pooled again, and that another client on the same worker is served
//! meanwhile and afterwards.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use support::{Config, Origin, Proxy, Reply, eventually, refusing_address, response};
use weir_config::FlowTraceMode;
use weir_flow::EventKind;

/// What the client must see.
#[derive(Debug)]
enum Outcome {
    /// A local reply with this status and flag.
    Local(u16, &'static str),
    /// The response started (this status) and was cut: fewer body bytes than announced, or no
    /// last chunk, and the connection closed.
    Cut(u16),
    /// A clean response with exactly this body (what was wrong was not forwarded).
    Clean(u16, &'static [u8]),
}

/// The flag of the first local reply weir recorded.
fn local_reply_flag(proxy: &Proxy) -> Option<(u16, &'static str)> {
    proxy.server().flows(100).iter().find_map(|f| {
        f.events.iter().find_map(|e| match e.kind {
            EventKind::LocalReply { status, flag } => Some((status, flag)),
            _ => None,
        })
    })
}

/// Runs one scripted misbehaviour: the origin answers its first request with `bad`, every
/// later one with 200 `ok`.
fn scripted(name: &str, bad: impl Fn() -> Reply + Send + Sync + 'static, want: Outcome) {
    let seen = Arc::new(AtomicUsize::new(0));
    let origin = Origin::start(move |_| {
        if seen.fetch_add(1, SeqCst) == 0 {
            bad()
        } else {
            Reply::Send(response(200, &[], b"ok"))
        }
    });
    check(name, origin.addr(), Some(&origin), want);
}

fn check(name: &str, origin_addr: SocketAddr, origin: Option<&Origin>, want: Outcome) {
    let healthy = Origin::ok("healthy");
    let proxy = Config::new()
        .cluster("backend", &[origin_addr])
        .cluster("other", &[healthy.addr()])
        .routes(
            "virtual_hosts:\n  - name: all\n    domains: [\"*\"]\n    routes:\n      - match: { prefix: /other }\n        route: { cluster: other }\n      - match: { prefix: / }\n        route: { cluster: backend, timeout: 0.5s }\n",
        )
        .start_traced(FlowTraceMode::All);
    // Another client on the same (only) worker, before, during and after.
    let mut bystander = proxy.client();
    assert_eq!(bystander.get("/other/1").status, 200, "{name}");
    let mut client = proxy.client();
    client.send("GET /bad HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(bystander.get("/other/2").status, 200, "{name}: bystander");
    let resp = client.read_response(false);
    match want {
        Outcome::Local(status, flag) => {
            assert_eq!(resp.status, status, "{name}: {}", resp.text());
            assert!(
                eventually(2000, || local_reply_flag(&proxy) == Some((status, flag))),
                "{name}: flag {:?}",
                local_reply_flag(&proxy)
            );
        }
        Outcome::Cut(status) => {
            assert_eq!(resp.status, status, "{name}");
            assert!(!resp.complete, "{name}: the body was cut, not completed");
            client.expect_closed();
        }
        Outcome::Clean(status, body) => {
            assert_eq!(resp.status, status, "{name}");
            assert_eq!(resp.body, body, "{name}");
        }
    }
    assert_eq!(
        bystander.get("/other/3").status,
        200,
        "{name}: bystander after"
    );
    if let Some(origin) = origin {
        // The next request to the origin works, on a connection of its own.
        let mut next = proxy.client();
        let again = next.get("/again");
        assert_eq!(again.status, 200, "{name}: {}", again.text());
        assert_eq!(
            origin.accepted(),
            2,
            "{name}: the spoiled connection was not pooled"
        );
    }
}

#[test]
fn refusing_is_503_uf() {
    let (_reserved, addr) = refusing_address();
    check("refuses", addr, None, Outcome::Local(503, "UF"));
}

#[test]
fn accepting_and_resetting_is_503_ur() {
    scripted("accept, reset", || Reply::Reset, Outcome::Local(503, "UR"));
}

#[test]
fn resetting_inside_the_headers_is_503_ur() {
    scripted(
        "reset inside the head",
        || Reply::SendReset(b"HTTP/1.1 200 OK\r\nContent-Le".to_vec()),
        Outcome::Local(503, "UR"),
    );
}

#[test]
fn half_closing_without_answering_is_503_uc() {
    scripted("half-close", || Reply::Close, Outcome::Local(503, "UC"));
}

#[test]
fn a_partial_body_then_close_is_cut() {
    scripted(
        "partial body, close",
        || Reply::SendClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..".to_vec()),
        Outcome::Cut(200),
    );
}

#[test]
fn more_body_than_content_length_is_not_forwarded() {
    scripted(
        "body past content-length",
        || Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA BYTES".to_vec()),
        Outcome::Clean(200, b"hello"),
    );
}

#[test]
fn content_length_with_transfer_encoding_is_502_upe() {
    scripted(
        "CL and TE",
        || {
            Reply::Send(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                    .to_vec(),
            )
        },
        Outcome::Local(502, "UPE"),
    );
}

#[test]
fn a_body_on_204_is_dropped() {
    scripted(
        "body on 204",
        || Reply::Send(b"HTTP/1.1 204 No Content\r\n\r\nsmuggled".to_vec()),
        Outcome::Clean(204, b""),
    );
}

#[test]
fn a_body_on_304_is_dropped() {
    scripted(
        "body on 304",
        || Reply::Send(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 8\r\n\r\nsmuggled".to_vec()),
        Outcome::Clean(304, b""),
    );
}

#[test]
fn garbage_is_502_upe() {
    scripted(
        "garbage",
        || Reply::Send(b"\x00\x01garbage\r\n\r\n".to_vec()),
        Outcome::Local(502, "UPE"),
    );
}

#[test]
fn stalling_is_504_ut() {
    scripted("stall", || Reply::Stall, Outcome::Local(504, "UT"));
}
