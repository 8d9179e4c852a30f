//! Rebuilding request flows from syscall records, without I/O: records in, `weir-flow` flows
//! out, so the same code serves the live tracer and the tests.
//!
//! What the kernel shows is sockets, not requests; the links are inferred:
//! - A **downstream** socket is one the process accepted (or, from `/proc`, one on the port of
//!   one of its listeners); an **upstream** socket one it connected. Each downstream read that
//!   starts with a request line opens a flow, as does any read once the previous response has
//!   started; the request line gives its method and target.
//! - An **upstream** connection is bound to a request when it is connected, or when a request
//!   is written to it while it is idle (a pooled connection reused). The request is the waiting
//!   one whose request line the write carries; when none does (a proxy that rewrites the
//!   target), the one whose downstream read the same thread handled earlier **in the same wake
//!   round**, first in first out within the round: event loops read a request and forward it
//!   before they sleep again (HAProxy reads every ready socket first, then processes them).
//!   A connection bound at connect whose first write names another request takes it (and
//!   swaps with its connection). So does an idle one: Envoy's pool hands a waiting request
//!   the first connection ready, not the one its read made it open, and that connection
//!   keeps its connect for the request it will carry. A request whose upstream closes before
//!   any response waits to be bound again (a retry).
//! - Upstream reads and writes go to the bound request; downstream writes to the oldest request
//!   on the connection still being answered.
//! - Wake rounds: from `epoll_wait` returning to the thread's next call; a flow gets the rounds
//!   in which one of its events happened.
//!
//! A flow is finished when the next request on its connection starts or the connection
//! closes; it is handed out once the round it finished in has ended, so that round is in it.
//! A flow quiet for [`IDLE_NS`] once its response has started, and every flow left at the end
//! or when its process exits, is handed out at once.
//!
//! 1xx interim responses are not the response (a 100 Continue's request body follows); after a
//! 101 the connection is a tunnel whose bytes all belong to that exchange. Non-TCP sockets
//! (UDP for DNS lookups) are never linked, even when connected.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};

use weir_flow::{Closer, Event, EventKind, Flow, Lane, Phase, ReadResult, ShortText};

use crate::procfs::{Snapshot, SocketKind};
use crate::record::{Record, Sys, sockaddr};

mod bytes;
mod flows;
mod sockets;

/// How long a flow whose response has started may stay quiet before it is handed out.
pub const IDLE_NS: u64 = 1_000_000_000;

/// Events a connection keeps for its next flow.
const PENDING_MAX: usize = 64;

/// The methods a request line may start with (RFC 9110's, and PATCH).
const METHODS: [&[u8]; 9] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH",
];

const EAGAIN: i64 = 11;
const EINPROGRESS: i64 = 115;
const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;
const SOCK_STREAM: u64 = 1;
const EPOLL_CTL_ADD: u64 = 1;
const EPOLL_CTL_DEL: u64 = 2;
const EPOLL_CTL_MOD: u64 = 3;
const EPOLLIN: u32 = 0x1;
const EPOLLOUT: u32 = 0x4;
const EPOLLERR: u32 = 0x8;
const EPOLLHUP: u32 = 0x10;
const EPOLLRDHUP: u32 = 0x2000;
const EPOLLET: u32 = 1 << 31;

/// Counts of what the correlator saw and could not place.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Records consumed.
    pub records: u64,
    /// Flows handed out.
    pub flows: u64,
    /// Upstream writes that no waiting request could be linked to.
    pub unlinked_writes: u64,
}

/// A traced thread, seen as a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    /// Its number in the flows (`worker=`), in the order threads were first seen.
    pub index: u16,
    /// The process.
    pub tgid: u32,
    /// The thread.
    pub tid: u32,
}

/// The state of one traced thread's event loop.
#[derive(Default)]
struct Thread {
    worker: u16,
    /// The current wake round (0 before the first `epoll_wait` returned).
    round: u64,
    /// When the current round began (`epoll_wait` returned), `None` while it waits.
    round_start: Option<u64>,
    waited_ns: u64,
    ready: u32,
    /// What got an event this round: each gets the round's wake event.
    touched: Vec<Target>,
    /// Flows finished this round: handed out when it ends.
    finishing: Vec<u64>,
    /// Requests read and not yet bound to an upstream connection, with the round they were
    /// last read in, oldest first.
    unlinked: VecDeque<(u64, u64)>,
}

/// Where an event goes: a flow, or a connection's events waiting for its next flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Flow(u64),
    Pending(u64),
}

struct Conn {
    lane: Lane,
    fd: i32,
    /// When and by which thread the socket was created (accept, socket, connect), to tell a
    /// late `close` of the fd's previous socket from one of this one.
    born_ns: u64,
    born_tid: u32,
    /// Downstream: its requests in order; the first is the one being answered.
    flows: VecDeque<u64>,
    /// Upstream: the request it serves.
    bound: Option<u64>,
    /// Upstream: requests it served before (the next one reuses it).
    served: u32,
    /// Upstream: bytes of the bound request have been written.
    sent: bool,
    /// Events before the connection's next flow (accept, registration, an idle read…).
    pending: Vec<Event>,
    /// Upstream: a connect is in progress and not yet seen to complete.
    connecting: bool,
    read_eof: bool,
    failed: bool,
    /// Downstream: a 101 switched protocols; its bytes are one exchange from then on.
    tunnel: bool,
    /// Downstream: the listener's address; upstream: the peer's.
    addr: Option<SocketAddr>,
}

struct Building {
    flow: Flow,
    tid: u32,
    downstream: u64,
    linked: bool,
    /// The upstream's response started (bytes past any 1xx interim response).
    upstream_answered: bool,
    /// The final response started downstream (a 1xx interim response does not count).
    answered: bool,
    /// The wake round of its last downstream write.
    written_round: u64,
    last_ns: u64,
    ports: Vec<u16>,
}

/// Records in, flows out.
pub struct Correlator {
    epoch: Option<u64>,
    last_ns: u64,
    ports: Vec<u16>,
    threads: HashMap<u32, Thread>,
    workers: Vec<Worker>,
    /// Open sockets of interest, by (process, fd).
    fds: HashMap<(u32, i32), u64>,
    conns: HashMap<u64, Conn>,
    listeners: HashMap<(u32, i32), SocketAddr>,
    /// Sockets that are not TCP (UDP for DNS, unix): never a flow's, even once connected.
    other: HashSet<(u32, i32)>,
    /// (process, epoll fd, data) → fd, learned from epoll_ctl and /proc: data is per epoll
    /// instance (weir's workers each have one, and their tokens repeat).
    epoll_fd: HashMap<(u32, i32, u64), i32>,
    /// (process, fd) → its registrations (epoll fd, data), to forget them when it goes.
    registrations: HashMap<(u32, i32), Vec<(i32, u64)>>,
    /// (process, fd) → the registered event mask.
    interest: HashMap<(u32, i32), u32>,
    flows: HashMap<u64, Building>,
    done: Vec<Flow>,
    next_conn: u64,
    next_flow: u64,
    counts: Counts,
}

impl Correlator {
    /// A correlator for processes whose state before tracing is `snapshot`. With `ports`
    /// non-empty, only flows whose listener or upstream port is one of them are handed out.
    pub fn new(snapshot: &Snapshot, ports: Vec<u16>) -> Correlator {
        let mut c = Correlator {
            epoch: None,
            last_ns: 0,
            ports,
            threads: HashMap::new(),
            workers: Vec::new(),
            fds: HashMap::new(),
            conns: HashMap::new(),
            listeners: HashMap::new(),
            other: HashSet::new(),
            epoll_fd: HashMap::new(),
            registrations: HashMap::new(),
            interest: HashMap::new(),
            flows: HashMap::new(),
            done: Vec::new(),
            next_conn: 1,
            next_flow: 1,
            counts: Counts::default(),
        };
        for s in &snapshot.sockets {
            match s.kind {
                SocketKind::Listener(addr) => {
                    c.listeners.insert((s.tgid, s.fd), addr);
                }
                SocketKind::Downstream(local) => {
                    c.open(s.tgid, s.fd, Lane::Downstream, 0, 0, Some(local));
                }
                SocketKind::Upstream(peer) => {
                    let id = c.open(s.tgid, s.fd, Lane::Upstream, 0, 0, Some(peer));
                    // A pooled connection from before: its next request reuses it.
                    if let Some(conn) = c.conns.get_mut(&id) {
                        conn.served = 1;
                    }
                }
            }
        }
        for e in &snapshot.epoll {
            c.register(e.tgid, e.epfd, e.fd, e.data);
            c.interest.insert((e.tgid, e.fd), e.events);
        }
        c
    }

    /// The threads seen so far.
    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// What was consumed and what could not be placed.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Flows finished since the last call, oldest first.
    pub fn take_flows(&mut self) -> Vec<Flow> {
        std::mem::take(&mut self.done)
    }

    /// Hands out flows whose response started and that have been quiet for [`IDLE_NS`] at
    /// `now_ns` (the records' clock).
    pub fn tick(&mut self, now_ns: u64) {
        let quiet: Vec<u64> = self
            .flows
            .iter()
            .filter(|(_, b)| b.answered && now_ns.saturating_sub(b.last_ns) > IDLE_NS)
            .map(|(id, _)| *id)
            .collect();
        for id in quiet {
            self.emit(id);
        }
    }

    /// The time of the last record consumed.
    pub fn last_ns(&self) -> u64 {
        self.last_ns
    }

    /// The kernel lost records: every flow open now may miss events, and says so.
    pub fn records_lost(&mut self) {
        for b in self.flows.values_mut() {
            b.flow.truncated = true;
        }
    }

    /// Process `tgid` exited: its connections end and its flows are handed out.
    pub fn exited(&mut self, tgid: u32) {
        let mut fds: Vec<i32> = self
            .fds
            .keys()
            .filter(|(t, _)| *t == tgid)
            .map(|(_, fd)| *fd)
            .collect();
        fds.sort_unstable();
        for fd in fds {
            self.retire(tgid, fd);
        }
        self.listeners.retain(|(t, _), _| *t != tgid);
        self.interest.retain(|(t, _), _| *t != tgid);
        self.other.retain(|(t, _)| *t != tgid);
        self.epoll_fd.retain(|(t, _, _), _| *t != tgid);
        self.registrations.retain(|(t, _), _| *t != tgid);
        let threads: Vec<u32> = self
            .workers
            .iter()
            .filter(|w| w.tgid == tgid)
            .map(|w| w.tid)
            .collect();
        for tid in threads {
            if let Some(thread) = self.threads.remove(&tid) {
                for flow in thread.finishing {
                    self.emit(flow);
                }
            }
        }
        let gone: Vec<u64> = self
            .flows
            .iter()
            .filter(|(_, b)| !self.threads.contains_key(&b.tid))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.emit(id);
        }
    }

    /// Hands out every flow still open (the trace ends).
    pub fn finish(&mut self) {
        let mut open: Vec<u64> = self.flows.keys().copied().collect();
        open.sort_unstable();
        for id in open {
            self.emit(id);
        }
    }

    /// Consumes one record.
    pub fn push(&mut self, r: &Record<'_>) {
        self.counts.records += 1;
        let epoch = *self.epoch.get_or_insert(r.enter_ns);
        self.last_ns = self.last_ns.max(r.exit_ns);
        let at = r.exit_ns.saturating_sub(epoch);
        self.thread(r.tgid, r.tid);
        match r.sys {
            Sys::Wait => self.round_ends(r.tid, r.enter_ns.saturating_sub(epoch)),
            s if s.is_epoll_wait() => self.round_begins(r, epoch),
            Sys::Accept | Sys::Accept4 => self.accepted(r, at),
            Sys::Socket => self.socket(r),
            Sys::Connect => self.connect(r, at),
            Sys::EpollCtl => self.epoll_ctl(r, at),
            s if s.is_read() => self.read(r, at),
            s if s.is_write() => self.write(r, at),
            Sys::Close => self.close(r, at),
            Sys::Fork => self.fork(r),
            // Recorded for --raw only.
            _ => {}
        }
    }

    fn thread(&mut self, tgid: u32, tid: u32) -> &mut Thread {
        let workers = &mut self.workers;
        self.threads.entry(tid).or_insert_with(|| {
            // Past 65,535 threads the last number is shared.
            let index = u16::try_from(workers.len()).unwrap_or(u16::MAX);
            workers.push(Worker { index, tgid, tid });
            Thread {
                worker: index,
                ..Thread::default()
            }
        })
    }

    /// `fd` is registered with epoll instance `epfd` under `data`.
    fn register(&mut self, tgid: u32, epfd: i32, fd: i32, data: u64) {
        let regs = self.registrations.entry((tgid, fd)).or_default();
        if let Some(i) = regs.iter().position(|&(e, _)| e == epfd) {
            let (_, old) = regs.remove(i);
            self.epoll_fd.remove(&(tgid, epfd, old));
        }
        regs.push((epfd, data));
        self.epoll_fd.insert((tgid, epfd, data), fd);
    }

    /// `fd` left epoll instance `epfd` (`None`: every instance, as when it is closed).
    fn unregister(&mut self, tgid: u32, fd: i32, epfd: Option<i32>) {
        let Some(regs) = self.registrations.get_mut(&(tgid, fd)) else {
            return;
        };
        let epoll_fd = &mut self.epoll_fd;
        regs.retain(|&(e, data)| {
            let gone = epfd.is_none_or(|x| x == e);
            if gone {
                epoll_fd.remove(&(tgid, e, data));
            }
            !gone
        });
        if regs.is_empty() {
            self.registrations.remove(&(tgid, fd));
        }
    }

    fn open(
        &mut self,
        tgid: u32,
        fd: i32,
        lane: Lane,
        born_ns: u64,
        born_tid: u32,
        addr: Option<SocketAddr>,
    ) -> u64 {
        self.retire(tgid, fd);
        let id = self.next_conn;
        self.next_conn += 1;
        self.fds.insert((tgid, fd), id);
        self.conns.insert(
            id,
            Conn {
                lane,
                fd,
                born_ns,
                born_tid,
                flows: VecDeque::new(),
                bound: None,
                served: 0,
                sent: false,
                pending: Vec::new(),
                connecting: false,
                read_eof: false,
                failed: false,
                tunnel: false,
                addr,
            },
        );
        id
    }

    /// The fd now names something else: whatever it named is gone (its close was not seen).
    fn retire(&mut self, tgid: u32, fd: i32) {
        self.listeners.remove(&(tgid, fd));
        self.interest.remove(&(tgid, fd));
        self.other.remove(&(tgid, fd));
        self.unregister(tgid, fd, None);
        if let Some(id) = self.fds.remove(&(tgid, fd)) {
            self.end_conn(id);
        }
    }

    fn end_conn(&mut self, id: u64) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        for flow in conn.flows {
            self.finishing(flow);
        }
        if let Some(flow) = conn.bound {
            self.unbound(flow);
        }
    }

    /// An upstream connection let go of `flow`: if no response came, the request waits for
    /// another connection (a retry).
    fn unbound(&mut self, flow: u64) {
        let Some(b) = self.flows.get_mut(&flow) else {
            return;
        };
        if !b.upstream_answered && !b.answered {
            b.linked = false;
            let tid = b.tid;
            let thread = self
                .threads
                .get_mut(&tid)
                .expect("a flow's thread is known");
            let round = thread.round;
            thread.unlinked.retain(|&(_, f)| f != flow);
            thread.unlinked.push_front((round, flow));
        }
    }

    // Wake rounds ------------------------------------------------------------------------

    fn round_begins(&mut self, r: &Record<'_>, epoch: u64) {
        let exit = r.exit_ns.saturating_sub(epoch);
        {
            let thread = self.threads.get_mut(&r.tid).expect("registered above");
            thread.round += 1;
            thread.round_start = Some(exit);
            thread.waited_ns = r.exit_ns.saturating_sub(r.enter_ns);
            thread.ready = r.ret.max(0) as u32;
        }
        for (mask, data) in r.ready_events() {
            let Some(&fd) = self.epoll_fd.get(&(r.tgid, r.fd, data)) else {
                continue;
            };
            let Some(&conn) = self.fds.get(&(r.tgid, fd)) else {
                continue;
            };
            let readable = mask & EPOLLIN != 0;
            let kind = EventKind::Ready {
                readable,
                writable: mask & EPOLLOUT != 0,
                hup: mask & (EPOLLHUP | EPOLLRDHUP) != 0,
                error: mask & EPOLLERR != 0,
            };
            let target = self.target(conn, if readable { Dir::In } else { Dir::Out });
            // A writable edge with nothing to write yet (a new socket's first) is no part of
            // writing a response: it belongs with reading the request, as weir records it.
            let nothing_to_write = !readable
                && self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.lane == Lane::Downstream)
                && match target {
                    Target::Flow(f) => self.flows.get(&f).is_some_and(|b| !b.answered),
                    Target::Pending(_) => true,
                };
            self.event(r.tid, conn, target, exit, kind);
            if nothing_to_write {
                self.rephase(target, conn, Phase::DownstreamReadRequest);
            }
        }
    }

    fn round_ends(&mut self, tid: u32, at: u64) {
        let Some(thread) = self.threads.get_mut(&tid) else {
            return;
        };
        let Some(start) = thread.round_start.take() else {
            return;
        };
        let kind = EventKind::WakeRound {
            round: thread.round,
            ready: thread.ready,
            waited_ns: thread.waited_ns,
            ran_ns: at.saturating_sub(start),
        };
        let worker = thread.worker;
        let touched = std::mem::take(&mut thread.touched);
        let finishing = std::mem::take(&mut thread.finishing);
        for target in touched {
            let stream = match target {
                Target::Flow(f) => f,
                Target::Pending(_) => 0,
            };
            let event = Event::new(at, worker, Lane::Worker, -1, 0, stream, kind.clone());
            match target {
                Target::Flow(f) => {
                    if let Some(b) = self.flows.get_mut(&f) {
                        b.flow.events.push(event);
                    }
                }
                Target::Pending(c) => {
                    if let Some(conn) = self.conns.get_mut(&c) {
                        conn.pending.push(event);
                    }
                }
            }
        }
        for flow in finishing {
            self.emit(flow);
        }
    }
}

#[derive(Clone, Copy)]
enum Dir {
    In,
    Out,
}

/// An event like the flow's last one (same time, worker, lane, fd, conn), of another kind.
fn with_kind(events: &[Event], kind: EventKind) -> Event {
    let last = events
        .last()
        .expect("called after pushing the event it follows");
    Event::new(
        last.at,
        last.worker,
        last.lane,
        last.fd,
        last.conn,
        last.stream,
        kind,
    )
}

/// `METHOD SP target …`: the method and target of a request line at the start of `data`.
pub fn request_line(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let sp = data.iter().position(|&b| b == b' ')?;
    let method = &data[..sp];
    if !METHODS.contains(&method) {
        return None;
    }
    let rest = &data[sp + 1..];
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(rest.len());
    let target = &rest[..end];
    (!target.is_empty()).then_some((method, target))
}

/// Whether `b`'s request line is `head` (both cut as a flow keeps them).
fn carries(b: &Building, (method, path): (&[u8], &[u8])) -> bool {
    b.flow.method == ShortText::new(method) && b.flow.path == ShortText::new(path)
}

/// A 1xx status: an interim response, the final one still to come (101 ends HTTP).
fn interim(status: u16) -> bool {
    (100..200).contains(&status)
}

/// `HTTP/1.x NNN`: the status of a status line at the start of `data`.
pub fn status_line(data: &[u8]) -> Option<u16> {
    let rest = data.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
