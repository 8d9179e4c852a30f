use super::*;
use weir_flow::{Lane, Phase};

/// Builds records for one process, with a clock that advances 1 µs per syscall.
struct Script {
    c: Correlator,
    now: u64,
}

const PID: u32 = 100;
const LISTENER: i32 = 3;
const EPFD: i32 = 4;

fn sockaddr_v4(port: u16) -> Vec<u8> {
    let mut a = vec![2, 0];
    a.extend_from_slice(&port.to_be_bytes());
    a.extend_from_slice(&[127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    a
}

impl Script {
    fn new(ports: Vec<u16>) -> Script {
        let snapshot = Snapshot {
            sockets: vec![crate::procfs::KnownSocket {
                tgid: PID,
                fd: LISTENER,
                kind: SocketKind::Listener("127.0.0.1:8080".parse().unwrap()),
            }],
            epoll: Vec::new(),
        };
        Script {
            c: Correlator::new(&snapshot, ports),
            now: 1_000,
        }
    }

    fn sys(&mut self, tid: u32, sys: Sys, fd: i32, ret: i64, a: [u64; 3], data: &[u8]) {
        self.now += 1_000;
        let r = Record {
            enter_ns: self.now - 500,
            exit_ns: self.now,
            tgid: PID,
            tid,
            ret,
            sys,
            fd,
            a,
            data,
        };
        self.c.push(&r);
    }

    /// The thread wakes with `ready` fds (their epoll data is the fd, as HAProxy's).
    fn wake(&mut self, tid: u32, ready: &[(i32, u32)]) {
        let mut data = Vec::new();
        for &(fd, mask) in ready {
            data.extend_from_slice(&mask.to_le_bytes());
            data.extend_from_slice(&(fd as u64).to_le_bytes());
        }
        self.sys(tid, Sys::Wait, EPFD, 0, [0; 3], &[]);
        self.sys(
            tid,
            Sys::EpollWait,
            EPFD,
            ready.len() as i64,
            [64, 0, 0],
            &data,
        );
    }

    fn accept(&mut self, tid: u32, fd: i32) {
        self.sys(
            tid,
            Sys::Accept4,
            LISTENER,
            fd.into(),
            [0; 3],
            &sockaddr_v4(5555),
        );
        let mut ev = Vec::new();
        ev.extend_from_slice(&(fd as u64).to_le_bytes());
        self.sys(
            tid,
            Sys::EpollCtl,
            EPFD,
            0,
            [1, fd as u64, 0x8000_0001],
            &ev,
        );
    }

    fn read(&mut self, tid: u32, fd: i32, data: &[u8]) {
        self.sys(
            tid,
            Sys::Recvfrom,
            fd,
            data.len() as i64,
            [16384, 0, 0],
            data,
        );
    }

    fn write(&mut self, tid: u32, fd: i32, data: &[u8]) {
        self.sys(
            tid,
            Sys::Sendto,
            fd,
            data.len() as i64,
            [data.len() as u64, 0, 0],
            data,
        );
    }

    fn connect(&mut self, tid: u32, fd: i32, port: u16, ret: i64) {
        self.sys(tid, Sys::Socket, -1, fd.into(), [2, 1, 0], &[]);
        let mut ev = Vec::new();
        ev.extend_from_slice(&(fd as u64).to_le_bytes());
        self.sys(
            tid,
            Sys::EpollCtl,
            EPFD,
            0,
            [1, fd as u64, 0x8000_0005],
            &ev,
        );
        self.sys(tid, Sys::Connect, fd, ret, [0; 3], &sockaddr_v4(port));
    }

    fn close(&mut self, tid: u32, fd: i32) {
        self.sys(tid, Sys::Close, fd, 0, [0; 3], &[]);
    }

    fn flows(&mut self) -> Vec<Flow> {
        self.c.finish();
        self.c.take_flows()
    }
}

/// (lane, fd, bytes) of a flow's reads and writes that moved bytes.
fn io(flow: &Flow) -> Vec<(Lane, i32, char, i64)> {
    flow.events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Read {
                result: ReadResult::Bytes(n),
                ..
            } => Some((e.lane, e.fd, 'r', i64::from(n))),
            EventKind::Write { written, .. } if written > 0 => Some((e.lane, e.fd, 'w', written)),
            _ => None,
        })
        .collect()
}

fn by_path<'a>(flows: &'a [Flow], path: &str) -> &'a Flow {
    flows
        .iter()
        .find(|f| f.path.as_str() == path)
        .unwrap_or_else(|| panic!("no flow for {path}"))
}

#[test]
fn one_request_through_a_new_upstream_connection() {
    use Lane::{Downstream as D, Upstream as U};
    let mut s = Script::new(vec![]);
    s.wake(1, &[(LISTENER, 1)]);
    s.accept(1, 10);
    s.wake(1, &[(10, 1)]);
    s.read(1, 10, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    s.connect(1, 11, 9000, -EINPROGRESS);
    s.wake(1, &[(11, 4)]);
    s.write(
        1,
        11,
        b"GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1\r\n\r\n",
    );
    s.wake(1, &[(11, 1)]);
    s.read(1, 11, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    s.write(
        1,
        10,
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nServer: p\r\n\r\n",
    );
    s.wake(1, &[]);
    let flows = s.flows();
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert_eq!(
        (f.method.as_str(), f.path.as_str(), f.status),
        ("GET", "/a", 201)
    );
    assert_eq!(
        io(f),
        vec![
            (D, 10, 'r', 28),
            (U, 11, 'w', 48),
            (U, 11, 'r', 43),
            (D, 10, 'w', 54)
        ]
    );
    // The four phases, in order, and the accept and the connect belong to the first.
    let phases: Vec<Phase> = f.events.iter().filter_map(|e| e.phase).collect();
    let mut seen = phases.clone();
    seen.dedup();
    assert_eq!(seen, Phase::ALL.to_vec());
    let kinds: Vec<&str> = f.events.iter().map(|e| e.kind.name()).collect();
    for k in [
        "accept",
        "connect_started",
        "connected",
        "wake_round",
        "response_head",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
}

#[test]
fn requests_read_in_one_round_are_linked_first_in_first_out() {
    // HAProxy's shape: every ready socket is read, then each request is forwarded.
    let mut s = Script::new(vec![]);
    s.wake(1, &[(LISTENER, 1)]);
    s.accept(1, 10);
    s.accept(1, 12);
    s.wake(1, &[(10, 1), (12, 1)]);
    s.read(1, 10, b"GET /first HTTP/1.1\r\n\r\n");
    s.read(1, 12, b"GET /second HTTP/1.1\r\n\r\n");
    s.connect(1, 20, 9000, -EINPROGRESS);
    s.connect(1, 21, 9000, -EINPROGRESS);
    s.wake(1, &[(21, 4), (20, 4)]);
    s.write(1, 21, &[b'x'; 21]);
    s.write(1, 20, &[b'x'; 20]);
    s.wake(1, &[(20, 1), (21, 1)]);
    s.read(1, 20, &[b'a'; 200]);
    s.read(1, 21, &[b'b'; 210]);
    s.write(1, 12, &[b'B'; 212]);
    s.write(1, 10, &[b'A'; 202]);
    s.wake(1, &[]);
    let flows = s.flows();
    let first = io(by_path(&flows, "/first"));
    let second = io(by_path(&flows, "/second"));
    assert_eq!(
        first.iter().map(|x| x.3).collect::<Vec<_>>(),
        [23, 20, 200, 202]
    );
    assert_eq!(
        second.iter().map(|x| x.3).collect::<Vec<_>>(),
        [24, 21, 210, 212]
    );
}

/// Two clients' requests, /first on fd 10 and /second on fd 12, read in one round.
fn first_and_second_read_in_one_round() -> Script {
    let mut s = Script::new(vec![]);
    s.accept(1, 10);
    s.accept(1, 12);
    s.wake(1, &[(10, 1), (12, 1)]);
    s.read(1, 10, b"GET /first HTTP/1.1\r\n\r\n");
    s.read(1, 12, b"GET /second HTTP/1.1\r\n\r\n");
    s
}

/// The origin answers on fds 20 (200 bytes) and 21 (210), and each answer goes back to
/// the client whose request that connection carried.
fn answer_on_20_and_21(mut s: Script) -> Vec<Flow> {
    s.wake(1, &[(20, 1), (21, 1)]);
    s.read(1, 20, &[b'a'; 200]);
    s.read(1, 21, &[b'b'; 210]);
    s.write(1, 12, &[b'A'; 202]);
    s.write(1, 10, &[b'B'; 212]);
    s.wake(1, &[]);
    s.flows()
}

/// Two requests read in one round, forwarded on connections bound at connect in the
/// other order: each connection's first write names its request, and they swap.
#[test]
fn connections_that_write_each_others_requests_swap() {
    let mut s = first_and_second_read_in_one_round();
    s.connect(1, 20, 9000, -EINPROGRESS);
    s.connect(1, 21, 9000, -EINPROGRESS);
    s.wake(1, &[(20, 4), (21, 4)]);
    s.write(1, 20, b"GET /second HTTP/1.1\r\n\r\n");
    s.write(1, 21, b"GET /first HTTP/1.1\r\n\r\n");
    let flows = answer_on_20_and_21(s);
    assert_eq!(
        io(by_path(&flows, "/first")),
        [
            (Lane::Downstream, 10, 'r', 23),
            (Lane::Upstream, 21, 'w', 23),
            (Lane::Upstream, 21, 'r', 210),
            (Lane::Downstream, 10, 'w', 212)
        ]
    );
    assert_eq!(
        io(by_path(&flows, "/second")),
        [
            (Lane::Downstream, 12, 'r', 24),
            (Lane::Upstream, 20, 'w', 24),
            (Lane::Upstream, 20, 'r', 200),
            (Lane::Downstream, 12, 'w', 202)
        ]
    );
    let connects = |f: &Flow| {
        f.events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::ConnectStarted { .. }))
            .map(|e| e.fd)
            .collect::<Vec<_>>()
    };
    assert_eq!(connects(by_path(&flows, "/first")), [21]);
    assert_eq!(connects(by_path(&flows, "/second")), [20]);
}

/// A connection bound at connect to the oldest request writes a later one's: the oldest
/// waits again, for the next connection.
#[test]
fn a_connection_that_writes_a_waiting_request_takes_it() {
    let mut s = first_and_second_read_in_one_round();
    s.connect(1, 20, 9000, 0);
    s.write(1, 20, b"GET /second HTTP/1.1\r\n\r\n");
    s.connect(1, 21, 9000, 0);
    s.write(1, 21, b"GET /first HTTP/1.1\r\n\r\n");
    let flows = answer_on_20_and_21(s);
    let upstream = |f: &Flow| {
        io(f)
            .into_iter()
            .filter(|x| x.0 == Lane::Upstream)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        upstream(by_path(&flows, "/first")),
        [
            (Lane::Upstream, 21, 'w', 23),
            (Lane::Upstream, 21, 'r', 210)
        ]
    );
    assert_eq!(
        upstream(by_path(&flows, "/second")),
        [
            (Lane::Upstream, 20, 'w', 24),
            (Lane::Upstream, 20, 'r', 200)
        ]
    );
}

/// A pooled connection's write is linked to the request it names, not the oldest.
#[test]
fn a_pooled_write_is_linked_to_the_request_it_names() {
    let mut s = Script::new(vec![]);
    s.accept(1, 10);
    s.wake(1, &[(10, 1)]);
    s.read(1, 10, b"GET /one HTTP/1.1\r\n\r\n");
    s.connect(1, 20, 9000, 0);
    s.write(1, 20, b"GET /one HTTP/1.1\r\n\r\n");
    s.wake(1, &[(20, 1)]);
    s.read(1, 20, b"HTTP/1.1 200 OK\r\n\r\n");
    s.write(1, 10, b"HTTP/1.1 200 OK\r\n\r\n");
    s.accept(1, 12);
    s.wake(1, &[(10, 1), (12, 1)]);
    s.read(1, 10, b"GET /two HTTP/1.1\r\n\r\n");
    s.read(1, 12, b"GET /three HTTP/1.1\r\n\r\n");
    s.write(1, 20, b"GET /three HTTP/1.1\r\n\r\n");
    s.wake(1, &[(20, 1)]);
    s.read(1, 20, &[b'c'; 300]);
    s.write(1, 12, &[b'C'; 303]);
    s.wake(1, &[]);
    let flows = s.flows();
    assert_eq!(
        io(by_path(&flows, "/three")),
        [
            (Lane::Downstream, 12, 'r', 23),
            (Lane::Upstream, 20, 'w', 23),
            (Lane::Upstream, 20, 'r', 300),
            (Lane::Downstream, 12, 'w', 303)
        ]
    );
}

/// One syscall of a recorded Envoy 1.40 run: `n` bytes moved, of which the record keeps the
/// first 64, a request line for `/gt/K/ppp…` (`k`) or a status line (`None`).
fn envoy_io(s: &mut Script, sys: Sys, fd: i32, k: Option<u32>, n: i64) {
    let mut data = match k {
        Some(k) => format!("GET /gt/{k}/").into_bytes(),
        None => b"HTTP/1.1 200 OK\r\n".to_vec(),
    };
    data.resize(64, b'p');
    let asked = if sys.is_read() { 131_072 } else { n as u64 };
    s.sys(1, sys, fd, n, [asked, 0, 0], &data);
}

/// Envoy's pool gives each waiting request the first connection that is ready, not the one
/// its read made it open. Recorded (fds and byte counts of one run; the responses written
/// in later rounds): /gt/53 opens 128 and /gt/5 opens 129; 128 connects first and carries
/// /gt/5; then 95, idle again after /gt/0, carries /gt/53, which the tracer had moved to
/// 129. 95's write takes /gt/53 from 129, which has written nothing and keeps its connect
/// for the request it will carry.
#[test]
fn an_idle_connection_takes_the_request_it_names_from_one_still_connecting() {
    use Lane::{Downstream as D, Upstream as U};
    use Sys::{Readv, Sendto, Writev};
    let mut s = Script::new(vec![]);
    for fd in [23, 77, 37] {
        s.accept(1, fd);
    }
    s.wake(1, &[(23, 1)]);
    envoy_io(&mut s, Readv, 23, Some(0), 200);
    s.connect(1, 95, 9000, -EINPROGRESS);
    s.wake(1, &[(95, 4)]);
    envoy_io(&mut s, Sendto, 95, Some(0), 277);
    s.wake(1, &[(95, 1)]);
    envoy_io(&mut s, Readv, 95, None, 10_095);
    s.wake(1, &[(77, 1), (37, 1)]);
    envoy_io(&mut s, Readv, 77, Some(53), 306);
    s.connect(1, 128, 9000, -EINPROGRESS);
    envoy_io(&mut s, Readv, 37, Some(5), 210);
    s.connect(1, 129, 9000, -EINPROGRESS);
    s.wake(1, &[]);
    envoy_io(&mut s, Writev, 23, None, 10_147);
    s.wake(1, &[(128, 4)]);
    envoy_io(&mut s, Sendto, 128, Some(5), 287);
    s.wake(1, &[]);
    envoy_io(&mut s, Sendto, 95, Some(53), 383);
    s.wake(1, &[(95, 1), (128, 1), (129, 4)]);
    envoy_io(&mut s, Readv, 95, None, 10_466);
    envoy_io(&mut s, Readv, 128, None, 10_130);
    s.wake(1, &[]);
    envoy_io(&mut s, Writev, 77, None, 10_518);
    envoy_io(&mut s, Writev, 37, None, 10_182);
    s.wake(1, &[]);
    let flows = s.flows();
    let gt = |k: u32| {
        let prefix = format!("/gt/{k}/");
        flows
            .iter()
            .find(|f| f.path.as_str().starts_with(&prefix))
            .unwrap_or_else(|| panic!("no flow for {prefix}"))
    };
    assert_eq!(
        io(gt(0)),
        [
            (D, 23, 'r', 200),
            (U, 95, 'w', 277),
            (U, 95, 'r', 10_095),
            (D, 23, 'w', 10_147)
        ]
    );
    assert_eq!(
        io(gt(53)),
        [
            (D, 77, 'r', 306),
            (U, 95, 'w', 383),
            (U, 95, 'r', 10_466),
            (D, 77, 'w', 10_518)
        ]
    );
    assert_eq!(
        io(gt(5)),
        [
            (D, 37, 'r', 210),
            (U, 128, 'w', 287),
            (U, 128, 'r', 10_130),
            (D, 37, 'w', 10_182)
        ]
    );
    let connects = |f: &Flow| {
        f.events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::ConnectStarted { .. }))
            .map(|e| e.fd)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        [connects(gt(0)), connects(gt(53)), connects(gt(5))],
        [vec![95], vec![], vec![128]]
    );
    assert!(
        gt(53)
            .events
            .iter()
            .any(|e| e.kind == EventKind::StreamAttached { reused: true })
    );
    assert_eq!(s.c.counts().unlinked_writes, 0);
}

#[test]
fn a_pooled_connection_is_reused_by_the_next_request() {
    let mut s = Script::new(vec![]);
    s.accept(1, 10);
    s.wake(1, &[(10, 1)]);
    s.read(1, 10, b"GET /one HTTP/1.1\r\n\r\n");
    s.connect(1, 11, 9000, 0);
    s.write(1, 11, &[b'x'; 30]);
    s.wake(1, &[(11, 1)]);
    s.read(1, 11, b"HTTP/1.1 200 OK\r\n\r\n");
    s.write(1, 10, b"HTTP/1.1 200 OK\r\n\r\n");
    s.wake(1, &[(10, 1)]);
    s.read(1, 10, b"GET /two HTTP/1.1\r\n\r\n");
    s.write(1, 11, &[b'y'; 31]);
    s.wake(1, &[(11, 1)]);
    s.read(1, 11, b"HTTP/1.1 404 Not Found\r\n\r\n");
    s.write(1, 10, b"HTTP/1.1 404 Not Found\r\n\r\n");
    s.wake(1, &[]);
    let flows = s.flows();
    assert_eq!(flows.len(), 2);
    let two = by_path(&flows, "/two");
    assert_eq!(two.status, 404);
    assert_eq!(
        io(two).iter().map(|x| x.3).collect::<Vec<_>>(),
        [21, 31, 26, 26]
    );
    assert!(
        two.events
            .iter()
            .any(|e| e.kind == EventKind::StreamAttached { reused: true })
    );
    assert_eq!(by_path(&flows, "/one").status, 200);
}

#[test]
fn a_connect_retry_relinks_the_waiting_request() {
    let mut s = Script::new(vec![]);
    s.accept(1, 10);
    s.wake(1, &[(10, 1)]);
    s.read(1, 10, b"GET /retry HTTP/1.1\r\n\r\n");
    s.connect(1, 11, 9000, -EINPROGRESS);
    s.wake(1, &[(11, 0x18)]);
    s.close(1, 11);
    // A later round, after a timer: the retry.
    s.wake(1, &[]);
    s.connect(1, 11, 9001, 0);
    s.write(1, 11, &[b'x'; 40]);
    s.wake(1, &[(11, 1)]);
    s.read(1, 11, b"HTTP/1.1 200 OK\r\n\r\n");
    s.write(1, 10, b"HTTP/1.1 200 OK\r\n\r\n");
    s.wake(1, &[]);
    let flows = s.flows();
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    let hosts: Vec<u16> = f
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::ConnectStarted { host } => Some(host.port()),
            _ => None,
        })
        .collect();
    assert_eq!(hosts, [9000, 9001]);
    assert_eq!(
        io(f).iter().map(|x| x.3).collect::<Vec<_>>(),
        [23, 40, 19, 19]
    );
    assert_eq!(s.c.counts().unlinked_writes, 0);
}

#[test]
fn a_late_close_from_another_thread_does_not_close_the_reused_fd() {
    let mut s = Script::new(vec![]);
    s.accept(1, 10);
    s.wake(1, &[(10, 1)]);
    s.read(1, 10, b"GET /old HTTP/1.1\r\n\r\n");
    s.write(1, 10, b"HTTP/1.1 200 OK\r\n\r\n");
    // Thread 2 accepts fd 10 again while thread 1's close of it is still being recorded.
    s.now += 10_000;
    let close_began = s.now - 5_000;
    s.accept(2, 10);
    s.c.push(&Record {
        enter_ns: close_began,
        exit_ns: s.now + 1,
        tgid: PID,
        tid: 1,
        ret: 0,
        sys: Sys::Close,
        fd: 10,
        a: [0; 3],
        data: &[],
    });
    s.wake(2, &[(10, 1)]);
    s.read(2, 10, b"GET /new HTTP/1.1\r\n\r\n");
    s.write(2, 10, b"HTTP/1.1 204 No Content\r\n\r\n");
    let flows = s.flows();
    let new = by_path(&flows, "/new");
    assert_eq!(new.status, 204);
    assert!(
        !new.events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Close { .. }))
    );
}

#[test]
fn local_replies_are_marked_and_not_linked_to_a_later_upstream() {
    let mut s = Script::new(vec![]);
    s.accept(1, 10);
    s.wake(1, &[(10, 1)]);
    s.read(1, 10, b"GET /missing HTTP/1.1\r\n\r\n");
    s.write(1, 10, b"HTTP/1.1 404 Not Found\r\n\r\n");
    s.accept(1, 12);
    s.wake(1, &[(12, 1)]);
    s.read(1, 12, b"GET /proxied HTTP/1.1\r\n\r\n");
    s.connect(1, 13, 9000, 0);
    s.write(1, 13, &[b'x'; 50]);
    let flows = s.flows();
    let missing = by_path(&flows, "/missing");
    assert!(
        missing
            .events
            .iter()
            .any(|e| matches!(e.kind, EventKind::LocalReply { status: 404, .. }))
    );
    assert!(missing.events.iter().all(|e| e.lane != Lane::Upstream));
    assert_eq!(io(by_path(&flows, "/proxied")).len(), 2);
}

#[test]
fn the_port_filter_keeps_flows_of_the_listener_or_upstream_port() {
    let mut s = Script::new(vec![9001]);
    s.accept(1, 10);
    s.wake(1, &[(10, 1)]);
    s.read(1, 10, b"GET /a HTTP/1.1\r\n\r\n");
    s.connect(1, 11, 9000, 0);
    s.write(1, 11, b"x");
    s.accept(1, 12);
    s.wake(1, &[(12, 1)]);
    s.read(1, 12, b"GET /b HTTP/1.1\r\n\r\n");
    s.connect(1, 13, 9001, 0);
    s.write(1, 13, b"x");
    let flows = s.flows();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].path.as_str(), "/b");
    let mut s = Script::new(vec![8080]);
    s.accept(1, 10);
    s.read(1, 10, b"GET /listener HTTP/1.1\r\n\r\n");
    assert_eq!(s.flows().len(), 1);
}

#[test]
fn epoll_data_is_per_instance() {
    // Two workers, each with its own epoll instance, register their connections under
    // the same data (weir's tokens repeat across workers).
    let mut s = Script::new(vec![]);
    for (tid, epfd, fd) in [(1, 4, 10), (2, 5, 20)] {
        s.sys(
            tid,
            Sys::Accept4,
            LISTENER,
            fd.into(),
            [0; 3],
            &sockaddr_v4(5555),
        );
        s.sys(
            tid,
            Sys::EpollCtl,
            epfd,
            0,
            [1, fd as u64, 1],
            &7u64.to_le_bytes(),
        );
    }
    let mut ready = 1u32.to_le_bytes().to_vec();
    ready.extend_from_slice(&7u64.to_le_bytes());
    for (tid, epfd, fd) in [(1, 4, 10), (2, 5, 20)] {
        s.sys(tid, Sys::EpollWait, epfd, 1, [64, 0, 0], &ready);
        s.read(tid, fd, format!("GET /{fd} HTTP/1.1\r\n\r\n").as_bytes());
    }
    for flow in s.flows() {
        let fd: i32 = flow.path.as_str()[1..].parse().unwrap();
        let ready: Vec<i32> = flow
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Ready { .. }))
            .map(|e| e.fd)
            .collect();
        assert_eq!(ready, [fd], "{}", flow.path.as_str());
    }
}

#[test]
fn a_udp_lookup_does_not_take_the_waiting_request() {
    let mut s = Script::new(vec![]);
    s.accept(1, 10);
    s.wake(1, &[(10, 1)]);
    s.read(1, 10, b"GET /resolved HTTP/1.1\r\n\r\n");
    // DNS first: socket(AF_INET, SOCK_DGRAM), connect, send, receive.
    s.sys(1, Sys::Socket, -1, 11, [2, 2, 0], &[]);
    s.sys(1, Sys::Connect, 11, 0, [0; 3], &sockaddr_v4(53));
    s.write(1, 11, &[b'q'; 30]);
    s.connect(1, 12, 9000, 0);
    s.write(1, 12, &[b'x'; 40]);
    s.read(1, 12, b"HTTP/1.1 200 OK\r\n\r\n");
    s.write(1, 10, b"HTTP/1.1 200 OK\r\n\r\n");
    let flows = s.flows();
    assert_eq!(flows.len(), 1);
    assert!(flows[0].events.iter().all(|e| e.fd != 11));
    assert_eq!(
        io(&flows[0]).iter().map(|x| x.3).collect::<Vec<_>>(),
        [26, 40, 19, 19]
    );
    assert_eq!(s.c.counts().unlinked_writes, 0);
}

#[test]
fn a_100_continue_is_not_the_response() {
    let mut s = Script::new(vec![]);
    s.accept(1, 10);
    s.wake(1, &[(10, 1)]);
    s.read(1, 10, b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
    s.connect(1, 11, 9000, 0);
    s.write(1, 11, &[b'h'; 60]);
    s.wake(1, &[(11, 1)]);
    s.read(1, 11, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write(1, 10, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.wake(1, &[(10, 1)]);
    s.read(1, 10, &[b'b'; 500]);
    s.write(1, 11, &[b'b'; 500]);
    s.wake(1, &[(11, 1)]);
    s.read(1, 11, b"HTTP/1.1 201 Created\r\n\r\n");
    s.write(1, 10, b"HTTP/1.1 201 Created\r\n\r\n");
    let flows = s.flows();
    assert_eq!(flows.len(), 1, "{flows:#?}");
    assert_eq!((flows[0].path.as_str(), flows[0].status), ("/up", 201));
    assert_eq!(
        io(&flows[0]).iter().map(|x| x.3).collect::<Vec<_>>(),
        [43, 60, 25, 25, 500, 500, 24, 24]
    );
}

#[test]
fn an_exited_process_hands_out_its_flows() {
    let mut s = Script::new(vec![]);
    s.accept(1, 10);
    s.wake(1, &[(10, 1)]);
    s.read(1, 10, b"GET /cut HTTP/1.1\r\n\r\n");
    s.c.exited(PID);
    let flows = s.c.take_flows();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].path.as_str(), "/cut");
    // A later process with the same fd numbers starts clean.
    s.accept(3, 10);
    s.read(3, 10, b"GET /next HTTP/1.1\r\n\r\n");
    assert_eq!(s.flows().len(), 1);
}

#[test]
fn request_and_status_lines() {
    assert_eq!(
        request_line(b"GET /x?y HTTP/1.1\r\n"),
        Some((&b"GET"[..], &b"/x?y"[..]))
    );
    assert_eq!(
        request_line(b"POST /cut-short"),
        Some((&b"POST"[..], &b"/cut-short"[..]))
    );
    assert_eq!(request_line(b"get / HTTP/1.1"), None);
    assert_eq!(request_line(b"OK then, more body"), None);
    assert_eq!(request_line(b"\x16\x03\x01 binary"), None);
    assert_eq!(status_line(b"HTTP/1.1 503 Service Unavailable"), Some(503));
    assert_eq!(status_line(b"HTTP/1.0 200"), Some(200));
    assert_eq!(status_line(b"HTTP/2 200"), None);
}
