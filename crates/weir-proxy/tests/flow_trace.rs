//! The flow recorder tells the truth: with `flow_trace: All` and one worker, known requests
//! produce exactly the events the data path went through, with the real socket fds, the real
//! byte counts, and the seed's four phases in order; the modes record what they say.
//!
//! The fds are checked against the kernel: the server runs in this process, so its accepted
//! and connected sockets are in `/proc/self/fd`, found through their inodes in
//! `/proc/net/tcp` by their port pairs.

mod support;

use support::*;
use weir_config::FlowTraceMode;
use weir_flow::{Event, EventKind, Flow, Lane, Phase, ReadResult};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Waits (≤ 5 s) until the server holds at least `n` flows; returns up to 100, newest first.
fn flows_at_least(proxy: &Proxy, n: usize) -> Vec<Flow> {
    let mut flows = Vec::new();
    let ok = eventually(5_000, || {
        flows = proxy.server().flows(100);
        flows.len() >= n
    });
    assert!(
        ok,
        "expected at least {n} flows, the recorder has {}:\n{}",
        flows.len(),
        text(&flows)
    );
    flows
}

/// The seed's sectioned text of some flows (for failure messages and the renderer test).
fn text(flows: &[Flow]) -> String {
    let mut out = String::new();
    weir_flow::render::text(flows, &mut out);
    out
}

/// `lane:name` of every event not on the worker's lane.
fn names(events: &[&Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{}:{}", e.lane.name(), e.kind.name()))
        .collect()
}

fn socket_events(flow: &Flow) -> Vec<&Event> {
    flow.events
        .iter()
        .filter(|e| e.lane != Lane::Worker)
        .collect()
}

/// A readiness event that reports the socket writable and not readable.
fn writable_only(e: &Event) -> bool {
    matches!(
        e.kind,
        EventKind::Ready {
            readable: false,
            writable: true,
            ..
        }
    )
}

/// The inode of the TCP socket (IPv4 or IPv6 table) whose local port is `local` and remote
/// port is `remote`.
fn socket_inode(local: u16, remote: u16) -> Option<u64> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 {
                continue;
            }
            let port = |addr: &str| {
                addr.rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            };
            if port(fields[1]) == Some(local) && port(fields[2]) == Some(remote) {
                return fields[9].parse().ok().filter(|&inode| inode != 0);
            }
        }
    }
    None
}

/// This process's fd for the TCP socket from local port `local` to remote port `remote`.
fn socket_fd(local: u16, remote: u16) -> i32 {
    let inode = socket_inode(local, remote)
        .unwrap_or_else(|| panic!("no socket {local} -> {remote} in /proc/net/tcp"));
    let link = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd") {
        let Ok(entry) = entry else { continue };
        if std::fs::read_link(entry.path()).is_ok_and(|l| l.to_string_lossy() == link) {
            return entry
                .file_name()
                .to_string_lossy()
                .parse()
                .expect("fd number");
        }
    }
    panic!("socket {local} -> {remote} (inode {inode}) is not open in this process");
}

/// The worker's `epoll_ctl` count (one worker).
fn epoll_ctls(proxy: &Proxy) -> u64 {
    proxy.stat("syscalls.epoll_ctl")
}

fn request(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: test\r\n{extra}\r\n")
}

/// Checks one expected event: its lane and name, then `check` on its fields.
struct Expect {
    lane: Lane,
    name: &'static str,
    check: Box<dyn Fn(&Event) -> bool>,
    what: String,
}

fn ev(lane: Lane, name: &'static str) -> Expect {
    Expect {
        lane,
        name,
        check: Box::new(|_| true),
        what: String::new(),
    }
}

impl Expect {
    fn with(mut self, what: impl Into<String>, check: impl Fn(&Event) -> bool + 'static) -> Self {
        self.what = what.into();
        self.check = Box::new(check);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// A request on a fresh upstream connection
// ---------------------------------------------------------------------------------------------

/// A first request: the exact sequence, the real fds, the exact byte counts, the phases in
/// the seed's order, wake rounds, and the text renderer's view of it.
#[test]
fn a_first_request_records_exactly_what_happened() {
    let origin = Origin::ok("hello, flows\n");
    let proxy = Config::forward_all(&[origin.addr()]).start_traced(FlowTraceMode::All);
    let mut client = proxy.client();
    let sent = request("/first?x=1", "user-agent: flow-test\r\n");
    let resp = client.request(&sent);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hello, flows\n");

    let flows = flows_at_least(&proxy, 1);
    assert_eq!(flows.len(), 1, "one request, one flow:\n{}", text(&flows));
    let flow = &flows[0];
    let dump = text(&flows);
    assert_eq!(flow.method.as_str(), "GET");
    assert_eq!(flow.path.as_str(), "/first?x=1");
    assert_eq!(flow.status, 200);
    assert!(!flow.truncated);
    assert_eq!(flow.worker, 0);

    // What the other ends saw, counted on their raw sockets (the origin counts what it sent
    // once `write` returned, which may be after the proxy has forwarded it).
    let reply = response(200, &[], b"hello, flows\n");
    assert!(eventually(5_000, || origin.bytes_sent() == reply.len()));
    let origin_received = origin.bytes_received() as i64;
    let origin_sent = origin.bytes_sent() as u32;
    let client_received = resp.raw.len() as i64;
    assert_eq!(origin.accepted(), 1);
    let upstream_local = origin.peers()[0];
    let client_addr = client.local_addr();
    let ds_fd = socket_fd(proxy.addr.port(), client_addr.port());
    let up_fd = socket_fd(upstream_local.port(), origin.addr().port());
    eprintln!("downstream fd {ds_fd}, upstream fd {up_fd}");

    // On a loaded machine the proxy may accept before the request's bytes arrive: epoll then
    // reports the new socket writable only, before the readable edge. That extra event is
    // tolerated here (and only here); `a_writable_edge_before_the_request_…` shows that it
    // is classified in the wrong phase.
    let mut events = socket_events(flow);
    let early_edge = events.len() > 3
        && events[3].lane == Lane::Downstream
        && writable_only(events[3])
        && matches!(events[2].kind, EventKind::Registered { .. });
    let early_edge = early_edge.then(|| {
        eprintln!("note: the proxy accepted before the request arrived (writable-only edge)");
        events.remove(3).clone()
    });

    let host = origin.addr();
    let proxy_addr = proxy.addr;
    let path_sent = sent.len() as u32;
    use Lane::{Downstream as D, Upstream as U};
    let expected = vec![
        ev(D, "accept").with("peer = the client, local = the listener", move |e| {
            e.kind
                == EventKind::Accept {
                    peer: client_addr,
                    local: proxy_addr,
                }
        }),
        ev(D, "filter_chain"),
        ev(D, "registered").with("readable, writable, edge-triggered", |e| {
            e.kind
                == EventKind::Registered {
                    readable: true,
                    writable: true,
                    edge_triggered: true,
                }
        }),
        ev(D, "ready").with("readable", |e| {
            matches!(e.kind, EventKind::Ready { readable: true, .. })
        }),
        ev(D, "read").with(format!("{path_sent} bytes: the request"), move |e| {
            matches!(e.kind, EventKind::Read { result: ReadResult::Bytes(n), .. } if n == path_sent)
        }),
        ev(D, "request_head").with("GET /first?x=1", |e| match &e.kind {
            EventKind::RequestHead { method, path, .. } => {
                method.as_str() == "GET" && path.as_str() == "/first?x=1"
            }
            _ => false,
        }),
        ev(D, "route_matched").with("cluster backend", |e| {
            matches!(&e.kind, EventKind::RouteMatched { vhost, cluster, .. } if &**vhost == "all" && &**cluster == "backend")
        }),
        ev(D, "pool_created").with(format!("for {host}"), move |e| {
            matches!(&e.kind, EventKind::PoolCreated { cluster, host: h } if &**cluster == "backend" && *h == host)
        }),
        ev(D, "host_chosen").with(format!("{host}"), move |e| {
            matches!(&e.kind, EventKind::HostChosen { cluster, host: h, policy: "round_robin", .. } if &**cluster == "backend" && *h == host)
        }),
        ev(U, "connect_started").with(format!("to {host}"), move |e| {
            e.kind == EventKind::ConnectStarted { host }
        }),
        ev(U, "registered").with("readable, writable, edge-triggered", |e| {
            e.kind
                == EventKind::Registered {
                    readable: true,
                    writable: true,
                    edge_triggered: true,
                }
        }),
        ev(D, "request_complete"),
        ev(D, "read_paused").with("syscall=false", |e| {
            e.kind == EventKind::ReadPaused { syscall: false }
        }),
        ev(U, "ready").with("writable (the connect finished)", |e| {
            matches!(e.kind, EventKind::Ready { writable: true, .. })
        }),
        ev(U, "connected"),
        ev(U, "stream_attached").with("reused=false", |e| {
            e.kind == EventKind::StreamAttached { reused: false }
        }),
        ev(U, "write").with(
            format!("written == asked == {origin_received} (what the origin received)"),
            move |e| {
                matches!(e.kind, EventKind::Write { asked, written }
                    if i64::from(asked) == origin_received && written == origin_received)
            },
        ),
        ev(U, "ready").with("readable", |e| {
            matches!(e.kind, EventKind::Ready { readable: true, .. })
        }),
        ev(U, "read").with(
            format!("{origin_sent} bytes (what the origin sent)"),
            move |e| {
                matches!(e.kind, EventKind::Read { result: ReadResult::Bytes(n), .. } if n == origin_sent)
            },
        ),
        ev(U, "response_head").with("status 200", |e| {
            e.kind == EventKind::ResponseHead { status: 200 }
        }),
        ev(U, "response_complete"),
        ev(D, "read_resumed").with("syscall=false", |e| {
            e.kind == EventKind::ReadResumed { syscall: false }
        }),
        ev(D, "write").with(
            format!("written == asked == {client_received} (what the client received)"),
            move |e| {
                matches!(e.kind, EventKind::Write { asked, written }
                    if i64::from(asked) == client_received && written == client_received)
            },
        ),
    ];
    let want: Vec<String> = expected
        .iter()
        .map(|x| format!("{}:{}", x.lane.name(), x.name))
        .collect();
    assert_eq!(
        names(&events),
        want,
        "the non-worker events, in order (left: recorded, right: expected)\n{dump}"
    );
    for (i, (e, x)) in events.iter().zip(&expected).enumerate() {
        assert!(
            (x.check)(e),
            "event {i} ({}:{}) should be {}; it is {:?}\n{dump}",
            x.lane.name(),
            x.name,
            x.what,
            e.kind
        );
    }

    // The real sockets, the connection ids, the stream id.
    for e in &events {
        match e.lane {
            Lane::Downstream => {
                assert_eq!(e.fd, ds_fd, "downstream fd of {:?}", e.kind);
                assert_eq!(e.conn, flow.downstream, "downstream conn of {:?}", e.kind);
            }
            Lane::Upstream => {
                assert_eq!(e.fd, up_fd, "upstream fd of {:?}", e.kind);
                assert_ne!(e.conn, flow.downstream);
                assert_eq!(e.stream, flow.stream, "upstream events carry the stream");
            }
            Lane::Worker => unreachable!(),
        }
        assert_eq!(e.worker, 0);
    }
    let up_conns: Vec<u64> = events
        .iter()
        .filter(|e| e.lane == Lane::Upstream)
        .map(|e| e.conn)
        .collect();
    assert!(
        up_conns.windows(2).all(|w| w[0] == w[1]),
        "one upstream conn"
    );
    let head = events
        .iter()
        .find(|e| e.kind.name() == "request_head")
        .expect("head");
    assert_eq!(head.stream, flow.stream, "the head is the flow's stream");

    // The seed's four events, in order: phases never go back.
    let phases: Vec<Phase> = events.iter().map(|e| e.phase.expect("a phase")).collect();
    for (i, w) in phases.windows(2).enumerate() {
        assert!(
            w[0] <= w[1],
            "phase goes back from {:?} ({}) to {:?} ({})\n{dump}",
            w[0],
            events[i].kind.name(),
            w[1],
            events[i + 1].kind.name()
        );
    }
    let mut seen = phases.clone();
    seen.dedup();
    assert_eq!(seen, Phase::ALL, "all four phases, in order");

    // Time order, and the worker's wake rounds.
    assert!(flow.events.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(flow.start, flow.events[0].at);
    // The flow's span is its sockets' events; the round that finished it may end later.
    let last_socket = flow.events.iter().rev().find(|e| e.lane != Lane::Worker);
    assert_eq!(flow.end, last_socket.expect("socket events").at);
    let rounds: Vec<&Event> = flow
        .events
        .iter()
        .filter(|e| e.lane == Lane::Worker)
        .collect();
    assert!(!rounds.is_empty(), "wake rounds are in the flow\n{dump}");
    for r in &rounds {
        assert!(
            matches!(r.kind, EventKind::WakeRound { .. }),
            "{:?}",
            r.kind
        );
        assert_eq!((r.fd, r.conn, r.stream, r.phase), (-1, 0, 0, None));
    }
    let numbers: Vec<u64> = rounds
        .iter()
        .map(|r| match r.kind {
            EventKind::WakeRound { round, .. } => round,
            _ => 0,
        })
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "rounds {numbers:?}"
    );

    // The text renderer: the four headings in order, the real fds.
    let mut clean = flow.clone();
    if let Some(edge) = &early_edge {
        clean.events.retain(|e| e != edge);
    }
    let rendered = text(std::slice::from_ref(&clean));
    let mut from = 0;
    for phase in Phase::ALL {
        let heading = format!("#### {}", phase.title());
        let at = rendered[from..]
            .find(&heading)
            .unwrap_or_else(|| panic!("`{heading}` after byte {from} of\n{rendered}"));
        from += at + heading.len();
    }
    assert!(
        rendered.starts_with("======== Flow worker=0: GET /first?x=1 -> 200 in "),
        "{rendered}"
    );
    assert!(
        rendered.contains(&format!("(downstream d1 fd={ds_fd}; ")),
        "{rendered}"
    );
    assert!(
        rendered.contains(&format!("upstream u1 fd={up_fd}")),
        "{rendered}"
    );
    assert!(
        rendered.contains(&format!(
            "accept downstream socket, FD={ds_fd}, from {client_addr}"
        )),
        "{rendered}"
    );
    assert!(
        rendered.contains(&format!("on upstream FD={up_fd}")),
        "{rendered}"
    );
    assert!(
        rendered.contains(&format!(
            "write request to FD={up_fd} ({origin_received} bytes)"
        )),
        "{rendered}"
    );
    assert!(
        rendered.contains(&format!(
            "write response to FD={ds_fd} ({client_received} bytes)"
        )),
        "{rendered}"
    );
    assert!(rendered.contains("WAKE-ROUND:END Summary"), "{rendered}");
}

// ---------------------------------------------------------------------------------------------
// A second request: pooled upstream, no epoll_ctl
// ---------------------------------------------------------------------------------------------

/// The second request on a keep-alive client goes out on the pooled upstream connection: no
/// accept, no connect, no new pool, `stream_attached{reused:true}`, and pausing and resuming
/// the downstream costs no `epoll_ctl` (the worker's counter does not move).
#[test]
fn a_pooled_request_attaches_without_connecting_or_epoll_ctl() {
    let origin = Origin::ok("pooled\n");
    let proxy = Config::forward_all(&[origin.addr()]).start_traced(FlowTraceMode::All);
    let mut client = proxy.client();
    assert_eq!(client.get("/one").status, 200);
    flows_at_least(&proxy, 1);

    let ctl_before = epoll_ctls(&proxy);
    let reused_before = proxy.stat("upstream_rq_reused");
    let sent = request("/two", "");
    let resp = client.request(&sent);
    assert_eq!(resp.status, 200);
    let flows = flows_at_least(&proxy, 2);
    let ctl_after = epoll_ctls(&proxy);
    let dump = text(&flows[..1]);
    assert_eq!(
        ctl_after, ctl_before,
        "no epoll_ctl for a keep-alive request on a pooled connection"
    );
    assert_eq!(proxy.stat("upstream_rq_reused"), reused_before + 1);
    assert_eq!(origin.accepted(), 1, "one upstream connection");

    let flow = &flows[0];
    assert_eq!(flow.path.as_str(), "/two");
    assert_eq!(flow.status, 200);
    assert_eq!(
        flow.downstream, flows[1].downstream,
        "same client connection"
    );
    assert_ne!(flow.stream, flows[1].stream);
    let events = socket_events(flow);
    let has = |name: &str| events.iter().any(|e| e.kind.name() == name);
    for absent in ["accept", "connect_started", "connected", "pool_created"] {
        assert!(!has(absent), "a pooled request has no `{absent}`\n{dump}");
    }
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Registered { .. })),
        "nothing is registered with epoll\n{dump}"
    );
    let attached: Vec<&&Event> = events
        .iter()
        .filter(|e| e.kind.name() == "stream_attached")
        .collect();
    assert_eq!(attached.len(), 1, "{dump}");
    assert_eq!(attached[0].kind, EventKind::StreamAttached { reused: true });
    assert_eq!(attached[0].lane, Lane::Upstream);

    let paused: Vec<&EventKind> = events
        .iter()
        .filter(|e| e.kind.name() == "read_paused")
        .map(|e| &e.kind)
        .collect();
    let resumed: Vec<&EventKind> = events
        .iter()
        .filter(|e| e.kind.name() == "read_resumed")
        .map(|e| &e.kind)
        .collect();
    assert_eq!(
        paused,
        [&EventKind::ReadPaused { syscall: false }],
        "{dump}"
    );
    assert_eq!(
        resumed,
        [&EventKind::ReadResumed { syscall: false }],
        "{dump}"
    );

    // The same sockets as the first request.
    let first = &flows[1];
    let fd_of = |flow: &Flow, lane: Lane| {
        flow.events
            .iter()
            .find(|e| e.lane == lane)
            .map(|e| e.fd)
            .expect("an event on the lane")
    };
    assert_eq!(
        fd_of(flow, Lane::Downstream),
        fd_of(first, Lane::Downstream)
    );
    assert_eq!(fd_of(flow, Lane::Upstream), fd_of(first, Lane::Upstream));
    assert_eq!(
        fd_of(flow, Lane::Downstream),
        socket_fd(proxy.addr.port(), client.local_addr().port())
    );

    // Its own request's bytes, the response's bytes, in the right order.
    let request_read = events
        .iter()
        .position(|e| {
            matches!(e.kind, EventKind::Read { result: ReadResult::Bytes(n), .. } if n as usize == sent.len())
        })
        .unwrap_or_else(|| panic!("a read of {} bytes\n{dump}", sent.len()));
    let head = events
        .iter()
        .position(|e| e.kind.name() == "request_head")
        .expect("request_head");
    let write_up = events
        .iter()
        .position(|e| e.lane == Lane::Upstream && e.kind.name() == "write")
        .expect("upstream write");
    let response_head = events
        .iter()
        .position(|e| e.kind == EventKind::ResponseHead { status: 200 })
        .expect("response_head");
    let write_down = events
        .iter()
        .rposition(|e| e.lane == Lane::Downstream && e.kind.name() == "write")
        .expect("downstream write");
    assert!(request_read < head && head < write_up && write_up < response_head);
    assert!(response_head < write_down);
    assert!(
        matches!(events[write_down].kind, EventKind::Write { asked, written }
            if asked as usize == resp.raw.len() && written as usize == resp.raw.len()),
        "{dump}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind.name() == "request_head")
            .count(),
        1,
        "only this request's head\n{dump}"
    );
}

// ---------------------------------------------------------------------------------------------
// A local reply
// ---------------------------------------------------------------------------------------------

/// A `direct_response` route answers without an upstream: the flow has `local_reply` and the
/// downstream write, and nothing on an upstream lane.
#[test]
fn a_local_reply_has_no_upstream_lane() {
    let origin = Origin::ok("unused\n");
    let routes = r#"
        virtual_hosts:
          - name: all
            domains: ["*"]
            routes:
              - match: { path: /teapot }
                direct_response: { status: 418, body: { inline_string: "short and stout\n" } }
              - match: { prefix: / }
                route: { cluster: backend }
    "#;
    let proxy = Config::new()
        .cluster("backend", &[origin.addr()])
        .routes(routes)
        .start_traced(FlowTraceMode::All);
    let mut client = proxy.client();
    let resp = client.get("/teapot");
    assert_eq!(resp.status, 418);
    let flows = flows_at_least(&proxy, 1);
    let flow = &flows[0];
    let dump = text(&flows);
    assert_eq!(flow.status, 418);
    assert_eq!(flow.path.as_str(), "/teapot");
    assert_eq!(origin.accepted(), 0);

    assert!(
        !flow.events.iter().any(|e| e.lane == Lane::Upstream),
        "no upstream lane\n{dump}"
    );
    let events = socket_events(flow);
    let local = events
        .iter()
        .position(|e| e.kind.name() == "local_reply")
        .unwrap_or_else(|| panic!("local_reply\n{dump}"));
    assert!(
        matches!(
            events[local].kind,
            EventKind::LocalReply {
                status: 418,
                flag: ""
            }
        ),
        "{:?}",
        events[local].kind
    );
    let write = events
        .iter()
        .rposition(|e| e.lane == Lane::Downstream && e.kind.name() == "write")
        .unwrap_or_else(|| panic!("a downstream write\n{dump}"));
    assert!(local < write);
    assert!(
        matches!(events[write].kind, EventKind::Write { asked, written }
            if asked as usize == resp.raw.len() && written as usize == resp.raw.len()),
        "{:?} vs {} bytes received",
        events[write].kind,
        resp.raw.len()
    );
    for absent in [
        "pool_created",
        "host_chosen",
        "connect_started",
        "stream_attached",
    ] {
        assert!(
            !events.iter().any(|e| e.kind.name() == absent),
            "no `{absent}`\n{dump}"
        );
    }
    let ds_fd = socket_fd(proxy.addr.port(), client.local_addr().port());
    assert!(events.iter().all(|e| e.fd == ds_fd), "{dump}");
}

// ---------------------------------------------------------------------------------------------
// Modes
// ---------------------------------------------------------------------------------------------

/// Header mode keeps exactly the requests carrying `x-weir-trace: 1`, on a keep-alive
/// connection and on a fresh one, and each kept flow holds only its own request.
#[test]
fn header_mode_records_only_marked_requests() {
    let origin = Origin::ok("ok\n");
    let proxy = Config::forward_all(&[origin.addr()]).start_traced(FlowTraceMode::Header);
    let mut client = proxy.client();
    for (path, extra) in [
        ("/plain", ""),
        ("/marked-1", "x-weir-trace: 1\r\n"),
        ("/zero", "x-weir-trace: 0\r\n"),
        ("/marked-2", "x-weir-trace: 1\r\n"),
        ("/plain-again", ""),
    ] {
        assert_eq!(client.request(request(path, extra)).status, 200, "{path}");
    }
    let mut other = proxy.client();
    assert_eq!(
        other
            .request(request("/marked-3", "x-weir-trace: 1\r\n"))
            .status,
        200
    );
    assert_eq!(other.get("/plain-3").status, 200);
    assert_eq!(origin.request_count(), 7);

    let flows = flows_at_least(&proxy, 3);
    let paths: Vec<&str> = flows.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/marked-3", "/marked-2", "/marked-1"],
        "{}",
        text(&flows)
    );
    for flow in &flows {
        let heads: Vec<String> = flow
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::RequestHead { path, .. } => Some(path.as_str().to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(
            heads,
            [flow.path.as_str()],
            "{}",
            text(std::slice::from_ref(flow))
        );
        assert_eq!(flow.status, 200);
        assert!(
            flow.events
                .iter()
                .any(|e| e.lane == Lane::Upstream && e.kind.name() == "write"),
            "{}",
            text(std::slice::from_ref(flow))
        );
    }
    // The fresh connection's flow starts at its accept.
    assert_eq!(
        socket_events(&flows[0])[0].kind.name(),
        "accept",
        "{}",
        text(&flows[..1])
    );
}

/// Sampled 1-in-3 over 9 requests keeps exactly 3 (the 1st, 4th and 7th).
#[test]
fn sampled_mode_records_one_in_n() {
    let origin = Origin::ok("ok\n");
    let proxy =
        Config::forward_all(&[origin.addr()]).start_traced(FlowTraceMode::Sampled { one_in: 3 });
    let mut client = proxy.client();
    for i in 1..=6 {
        assert_eq!(client.get(&format!("/s{i}")).status, 200);
    }
    for i in 7..=9 {
        // Fresh connections count the same way.
        assert_eq!(proxy.client().get(&format!("/s{i}")).status, 200);
    }
    assert_eq!(origin.request_count(), 9);
    let flows = flows_at_least(&proxy, 3);
    let paths: Vec<&str> = flows.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["/s7", "/s4", "/s1"], "{}", text(&flows));
}

/// Off records nothing, and costs no wake-round bookkeeping either.
#[test]
fn off_records_nothing() {
    let origin = Origin::ok("ok\n");
    let proxy = Config::forward_all(&[origin.addr()]).start_traced(FlowTraceMode::Off);
    let mut client = proxy.client();
    for i in 0..4 {
        let extra = if i % 2 == 0 {
            "x-weir-trace: 1\r\n"
        } else {
            ""
        };
        assert_eq!(
            client.request(request(&format!("/o{i}"), extra)).status,
            200
        );
    }
    assert_eq!(proxy.client().get("/fresh").status, 200);
    assert_eq!(origin.request_count(), 5);
    assert!(proxy.server().flows(100).is_empty());
    assert_eq!(proxy.stat("downstream_rq_total"), 5);
}

/// Without `flow_trace` in the options or the config, nothing is recorded.
#[test]
fn the_default_records_nothing() {
    let origin = Origin::ok("ok\n");
    let proxy = Config::forward_all(&[origin.addr()]).start();
    assert_eq!(proxy.client().get("/x").status, 200);
    assert!(proxy.server().flows(100).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Regressions: bugs these tests found in the recorder, now fixed
// ---------------------------------------------------------------------------------------------

/// Regression (recorder.rs): a flow was assembled in the
/// middle of the wake round that writes its response, before that round's `wake_round` event
/// exists, so the round is missing from its flow; the event then falls in the *next* request's
/// span on the same connection, which therefore starts with a wake round that ended before
/// that request arrived, and its `start` (hence its duration, the `min_duration_ms` filter and
/// the page's "slower than") includes the client's idle time between the two requests.
#[test]

fn wake_rounds_belong_to_the_flow_they_ran_for() {
    let origin = Origin::ok("ok\n");
    let proxy = Config::forward_all(&[origin.addr()]).start_traced(FlowTraceMode::All);
    let mut client = proxy.client();
    assert_eq!(client.get("/one").status, 200);
    flows_at_least(&proxy, 1);
    // Idle between the requests: not part of the second request.
    sleep_ms(300);
    assert_eq!(client.get("/two").status, 200);
    let flows = flows_at_least(&proxy, 2);
    for flow in &flows {
        let dump = text(std::slice::from_ref(flow));
        let sockets = socket_events(flow);
        let (first, last) = (sockets[0].at, sockets.last().expect("events").at);
        let rounds: Vec<(u64, u64)> = flow
            .events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::WakeRound { ran_ns, .. } => Some((e.at.saturating_sub(ran_ns), e.at)),
                _ => None,
            })
            .collect();
        for (from, to) in &rounds {
            assert!(
                *to >= first && *from <= last,
                "a wake round ({from}..{to}) outside the flow's events ({first}..{last})\n{dump}"
            );
        }
        for e in &sockets {
            assert!(
                rounds.iter().any(|(from, to)| *from <= e.at && e.at <= *to),
                "{} at {} is in no wake round of its flow\n{dump}",
                e.kind.name(),
                e.at
            );
        }
        assert_eq!(
            flow.start, first,
            "the flow starts with its first socket event\n{dump}"
        );
    }
}

/// Regression (`Phase::of` + the readiness event site): every downstream readiness that is not
/// readable was put in Downstream Write Response, even a new connection's first writable edge, which epoll
/// reports before the request has arrived (the proxy accepted before the client's bytes):
/// the flow then goes Downstream Read Request → Downstream Write Response → Downstream Read
/// Request, and the text shows a `#### Downstream Write Response` heading before the request
/// is read. Reproduced deterministically by waiting for that edge before sending.
#[test]

fn a_writable_edge_before_the_request_is_not_a_write_response_phase() {
    let origin = Origin::ok("ok\n");
    let proxy = Config::forward_all(&[origin.addr()]).start_traced(FlowTraceMode::All);
    let stats = proxy.server().worker_stats()[0].clone();
    // The worker is idle; connecting wakes it once to accept, and once more for the new
    // socket's writable edge. Only then does the request leave. (Each round the loop
    // finishes records one `loop_duration_us` value.)
    let rounds = || stats.dispatcher.loop_duration_us.count();
    let round = rounds();
    let mut client = proxy.client();
    assert!(eventually(5_000, || rounds() >= round + 2));
    assert_eq!(proxy.stat("downstream_cx_total"), 1);
    assert_eq!(client.get("/late").status, 200);
    let flows = flows_at_least(&proxy, 1);
    let dump = text(&flows);
    let events = socket_events(&flows[0]);
    assert!(
        events
            .iter()
            .any(|e| e.lane == Lane::Downstream && writable_only(e)),
        "the writable-only edge was recorded\n{dump}"
    );
    let phases: Vec<Phase> = events.iter().filter_map(|e| e.phase).collect();
    assert!(
        phases.windows(2).all(|w| w[0] <= w[1]),
        "phases go back: {phases:?}\n{dump}"
    );
}
