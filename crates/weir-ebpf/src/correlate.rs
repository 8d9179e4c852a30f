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
//!   swaps with its connection). A request whose upstream closes before any response waits to
//!   be bound again (a retry).
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

    // Sockets ------------------------------------------------------------------------------

    fn accepted(&mut self, r: &Record<'_>, at: u64) {
        if r.ret < 0 {
            return;
        }
        // A listener made after tracing began (`socket`, then `listen`, which is not traced).
        if !self.listeners.contains_key(&(r.tgid, r.fd))
            && let Some(id) = self.fds.remove(&(r.tgid, r.fd))
        {
            self.end_conn(id);
        }
        let local = self.listeners.get(&(r.tgid, r.fd)).copied();
        let id = self.open(
            r.tgid,
            r.ret as i32,
            Lane::Downstream,
            r.exit_ns,
            r.tid,
            local,
        );
        let unspecified = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0);
        let kind = EventKind::Accept {
            peer: sockaddr(r.data).unwrap_or(unspecified),
            local: local.unwrap_or(unspecified),
        };
        self.event(r.tid, id, Target::Pending(id), at, kind);
    }

    fn socket(&mut self, r: &Record<'_>) {
        if r.ret < 0 {
            return;
        }
        let fd = r.ret as i32;
        if matches!(r.a[0], AF_INET | AF_INET6) && r.a[1] & 0xf == SOCK_STREAM {
            self.open(r.tgid, fd, Lane::Upstream, r.exit_ns, r.tid, None);
        } else {
            self.retire(r.tgid, fd);
            self.other.insert((r.tgid, fd));
        }
    }

    fn connect(&mut self, r: &Record<'_>, at: u64) {
        let peer = sockaddr(r.data);
        let Some(peer) = peer else { return };
        if self.other.contains(&(r.tgid, r.fd)) {
            return; // a UDP socket (a DNS lookup) is no upstream
        }
        let id = match self.fds.get(&(r.tgid, r.fd)) {
            Some(&id)
                if self
                    .conns
                    .get(&id)
                    .is_some_and(|c| c.lane == Lane::Upstream) =>
            {
                id
            }
            _ => self.open(r.tgid, r.fd, Lane::Upstream, r.exit_ns, r.tid, None),
        };
        let failed = r.ret < 0 && r.ret != -EINPROGRESS;
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.addr = Some(peer);
            conn.connecting = r.ret == -EINPROGRESS;
            conn.failed |= failed;
        }
        self.bind(r.tid, id, None);
        let target = self.target(id, Dir::Out);
        self.event(
            r.tid,
            id,
            target,
            at,
            EventKind::ConnectStarted { host: peer },
        );
        if r.ret == 0 {
            self.connected(r.tid, id, at);
        }
    }

    /// The upstream connect completed: seen writable, or written to.
    fn connected(&mut self, tid: u32, id: u64, at: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.connecting = false;
        let target = self.target(id, Dir::Out);
        self.event(tid, id, target, at, EventKind::Connected);
        self.event(
            tid,
            id,
            target,
            at,
            EventKind::StreamAttached { reused: false },
        );
    }

    fn epoll_ctl(&mut self, r: &Record<'_>, at: u64) {
        if r.ret < 0 {
            return;
        }
        let fd = r.a[1] as i32;
        let mask = r.a[2] as u32;
        let key = (r.tgid, fd);
        let conn = self.fds.get(&key).copied();
        match r.a[0] {
            EPOLL_CTL_ADD | EPOLL_CTL_MOD => {
                if let Some(data) = r.epoll_data() {
                    self.register(r.tgid, r.fd, fd, data);
                }
                let before = self.interest.insert(key, mask);
                let Some(conn) = conn else { return };
                let kind = match before {
                    Some(old) if r.a[0] == EPOLL_CTL_MOD => {
                        match (old & EPOLLIN != 0, mask & EPOLLIN != 0) {
                            (true, false) => EventKind::ReadPaused { syscall: true },
                            (false, true) => EventKind::ReadResumed { syscall: true },
                            _ => return,
                        }
                    }
                    _ => EventKind::Registered {
                        readable: mask & EPOLLIN != 0,
                        writable: mask & EPOLLOUT != 0,
                        edge_triggered: mask & EPOLLET != 0,
                    },
                };
                let dir = match kind {
                    EventKind::ReadResumed { .. } => Dir::Out,
                    _ => Dir::In,
                };
                let target = self.target(conn, dir);
                self.event(r.tid, conn, target, at, kind);
            }
            EPOLL_CTL_DEL => {
                self.interest.remove(&key);
                self.unregister(r.tgid, fd, Some(r.fd));
            }
            _ => {}
        }
    }

    fn close(&mut self, r: &Record<'_>, at: u64) {
        let key = (r.tgid, r.fd);
        let Some(&id) = self.fds.get(&key) else {
            self.listeners.remove(&key);
            self.interest.remove(&key);
            self.other.remove(&key);
            self.unregister(r.tgid, r.fd, None);
            return;
        };
        let conn = &self.conns[&id];
        // Another thread's accept or socket reused the fd after this close began: this close
        // was of the socket before, already retired.
        if conn.born_tid != r.tid && conn.born_ns > r.enter_ns {
            return;
        }
        let by = if conn.failed {
            Closer::Error
        } else if conn.read_eof {
            Closer::Peer
        } else {
            Closer::Local
        };
        self.interest.remove(&key);
        self.unregister(r.tgid, r.fd, None);
        let mut target = self.target(id, Dir::Out);
        // A close in a later round than the response's last write ends the connection, not
        // that exchange (a keep-alive client leaving), as weir's own recorder sees it.
        let round = self.threads.get(&r.tid).map_or(0, |t| t.round);
        if let Target::Flow(f) = target
            && self
                .flows
                .get(&f)
                .is_some_and(|b| b.answered && b.written_round != round)
        {
            target = Target::Pending(id);
        }
        self.event(r.tid, id, target, at, EventKind::Close { by });
        self.fds.remove(&key);
        self.end_conn(id);
    }

    fn fork(&mut self, r: &Record<'_>) {
        let child = r.a[0] as u32;
        let parent = r.tgid;
        // The child inherits the listeners and the epoll registrations; its connections are
        // its own from here on.
        let listeners: Vec<_> = self
            .listeners
            .iter()
            .filter(|((t, _), _)| *t == parent)
            .map(|((_, fd), a)| (*fd, *a))
            .collect();
        for (fd, addr) in listeners {
            self.listeners.insert((child, fd), addr);
        }
        let epoll: Vec<_> = self
            .epoll_fd
            .iter()
            .filter(|((t, _, _), _)| *t == parent)
            .map(|((_, epfd, data), fd)| (*epfd, *data, *fd))
            .collect();
        for (epfd, data, fd) in epoll {
            self.register(child, epfd, fd, data);
        }
    }

    // Bytes --------------------------------------------------------------------------------

    fn read(&mut self, r: &Record<'_>, at: u64) {
        let key = (r.tgid, r.fd);
        let id = match self.fds.get(&key) {
            Some(&id) => id,
            // A socket from between the /proc snapshot and the attach: its first bytes say
            // which side it is.
            None if r.ret > 0 && request_line(r.data).is_some() => {
                self.open(r.tgid, r.fd, Lane::Downstream, 0, 0, None)
            }
            None if r.ret > 0 && status_line(r.data).is_some() => {
                self.open(r.tgid, r.fd, Lane::Upstream, 0, 0, None)
            }
            None => return,
        };
        let result = match r.ret {
            n if n > 0 => ReadResult::Bytes(n as u32),
            0 => ReadResult::Eof,
            n if n == -EAGAIN => ReadResult::WouldBlock,
            n => ReadResult::Error(-n as i32),
        };
        let lane = self.conns[&id].lane;
        let conn = self.conns.get_mut(&id).expect("looked up above");
        match result {
            ReadResult::Eof => conn.read_eof = true,
            ReadResult::Error(_) => conn.failed = true,
            _ => {}
        }
        let kind = EventKind::Read {
            asked: r.a[0].min(u64::from(u32::MAX)) as u32,
            result,
        };
        if lane == Lane::Upstream {
            let target = self.target(id, Dir::In);
            self.event(r.tid, id, target, at, kind);
            if let (Target::Flow(f), ReadResult::Bytes(_)) = (target, result) {
                let b = self.flows.get_mut(&f).expect("target exists");
                let status = (!b.upstream_answered)
                    .then(|| status_line(r.data))
                    .flatten();
                if let Some(status) = status {
                    b.flow.events.push(with_kind(
                        &b.flow.events,
                        EventKind::ResponseHead { status },
                    ));
                    if b.flow.status == 0 || interim(b.flow.status) {
                        b.flow.status = status;
                    }
                }
                // A 100 Continue is not the response: the request's body follows it.
                b.upstream_answered |= !status.is_some_and(interim);
            }
            return;
        }
        // Downstream: a request line opens a flow; so do any bytes once the previous
        // response has started.
        let target = match result {
            ReadResult::Bytes(_) => {
                let conn = &self.conns[&id];
                let last = conn.flows.back().and_then(|f| self.flows.get(f));
                // After a 101 the connection is a tunnel: its bytes are the same exchange's.
                let starts = last.is_none()
                    || !conn.tunnel
                        && (request_line(r.data).is_some() || last.is_some_and(|b| b.answered));
                if starts {
                    Target::Flow(self.new_flow(r.tid, id, r.data))
                } else {
                    Target::Flow(*conn.flows.back().expect("checked above"))
                }
            }
            _ => self.target(id, Dir::In),
        };
        self.event(r.tid, id, target, at, kind);
        if let (Target::Flow(f), ReadResult::Bytes(_)) = (target, result) {
            if let Some((method, path)) = request_line(r.data)
                && let Some(b) = self.flows.get_mut(&f)
                && b.flow.method.as_str().is_empty()
            {
                b.flow.events.push(with_kind(
                    &b.flow.events,
                    EventKind::RequestHead {
                        method: ShortText::new(method),
                        path: ShortText::new(path),
                    },
                ));
            }
            let linked = self.flows.get(&f).is_none_or(|b| b.linked);
            if !linked {
                let thread = self.threads.get_mut(&r.tid).expect("registered");
                let round = thread.round;
                thread.unlinked.retain(|&(_, x)| x != f);
                thread.unlinked.push_back((round, f));
            }
        }
    }

    fn write(&mut self, r: &Record<'_>, at: u64) {
        let Some(&id) = self.fds.get(&(r.tgid, r.fd)) else {
            return;
        };
        let conn = &self.conns[&id];
        let lane = conn.lane;
        if lane == Lane::Upstream {
            if conn.connecting {
                self.connected(r.tid, id, at);
            }
            // An idle connection, or one whose request has been answered: a new request.
            let conn = &self.conns[&id];
            let bound = conn.bound.and_then(|f| self.flows.get(&f).map(|b| (f, b)));
            let head = request_line(r.data);
            if bound.is_none_or(|(_, b)| b.upstream_answered) {
                let reused = conn.bound.is_some() || conn.served > 0;
                if self.bind(r.tid, id, head) {
                    let target = self.target(id, Dir::Out);
                    self.event(r.tid, id, target, at, EventKind::StreamAttached { reused });
                } else {
                    self.counts.unlinked_writes += 1;
                }
            } else if let (Some((f, b)), Some(head)) = (bound, head)
                && !conn.sent
                && !carries(b, head)
            {
                // Bound at connect to the oldest waiting request, but the request line
                // written names another.
                self.rebind(r.tid, id, f, head);
            }
            if r.ret > 0
                && let Some(conn) = self.conns.get_mut(&id)
            {
                conn.sent = true;
            }
        }
        let kind = EventKind::Write {
            asked: r.a[0].min(u64::from(u32::MAX)) as u32,
            written: r.ret,
        };
        if r.ret < 0 && r.ret != -EAGAIN {
            self.conns.get_mut(&id).expect("looked up").failed = true;
        }
        let target = self.target(id, Dir::Out);
        self.event(r.tid, id, target, at, kind);
        if lane == Lane::Downstream
            && r.ret > 0
            && let Target::Flow(f) = target
        {
            let b = self.flows.get_mut(&f).expect("target exists");
            b.written_round = self.threads.get(&r.tid).map_or(0, |t| t.round);
            let status = (!b.answered).then(|| status_line(r.data)).flatten();
            if status.is_some_and(interim) {
                // A 1xx interim response: the final one is still to come.
                if status == Some(101) {
                    self.conns.get_mut(&id).expect("looked up").tunnel = true;
                    b.flow.status = 101;
                    b.answered = true;
                }
            } else if !b.answered {
                b.answered = true;
                if let Some(status) = status {
                    b.flow.status = status;
                    if !b.linked {
                        // Answered without an upstream: the proxy replied itself.
                        b.flow.events.push(with_kind(
                            &b.flow.events,
                            EventKind::LocalReply { status, flag: "" },
                        ));
                    }
                }
                // Answered: no longer waiting for an upstream.
                let tid = b.tid;
                if let Some(thread) = self.threads.get_mut(&tid) {
                    thread.unlinked.retain(|&(_, x)| x != f);
                }
            }
            // Responses answer requests in order: an earlier request still open is done.
            let conn = self.conns.get_mut(&id).expect("looked up");
            let mut earlier = Vec::new();
            while conn.flows.front().is_some_and(|&x| x != f) {
                earlier.extend(conn.flows.pop_front());
            }
            for flow in earlier {
                self.finishing(flow);
            }
        }
    }

    // Flows --------------------------------------------------------------------------------

    /// Binds the upstream connection `id` to the request waiting on thread `tid`: the one
    /// whose request line is `head` (what the write carries), else the oldest read in the
    /// current round, else the oldest waiting. False when none waits.
    fn bind(&mut self, tid: u32, id: u64, head: Option<(&[u8], &[u8])>) -> bool {
        let thread = self.threads.get_mut(&tid).expect("registered");
        let round = thread.round;
        // Requests answered or gone meanwhile are not waiting any more.
        let flows = &self.flows;
        thread
            .unlinked
            .retain(|(_, f)| flows.get(f).is_some_and(|b| !b.linked));
        let named = head.and_then(|head| {
            thread
                .unlinked
                .iter()
                .position(|(_, f)| carries(&flows[f], head))
        });
        let pick = named
            .or_else(|| thread.unlinked.iter().position(|&(r, _)| r == round))
            .or(if thread.unlinked.is_empty() {
                None
            } else {
                Some(0)
            });
        // Nothing waits: the connection keeps the request it has (a body written after
        // an early response is still that request's).
        let Some(i) = pick else {
            return false;
        };
        let (_, flow) = thread.unlinked.remove(i).expect("position is in range");
        let conn = self.conns.get_mut(&id).expect("binding a known connection");
        if conn.bound.is_some() {
            conn.served += 1;
        }
        conn.bound = Some(flow);
        conn.sent = false;
        let pending = std::mem::take(&mut conn.pending);
        let port = conn.addr.map(|a| a.port());
        let b = self.flows.get_mut(&flow).expect("retained above");
        b.linked = true;
        b.ports.extend(port);
        for mut e in pending {
            e.stream = flow;
            b.flow.events.push(e);
        }
        true
    }

    /// Upstream connection `id`, bound at connect to `from`, writes the request line `head`
    /// of another request of thread `tid` (proxies do not forward in the order they read):
    /// the connection takes that request, with its events so far. If that request was bound
    /// to another connection that has not written yet, the two swap; else `from` waits again.
    fn rebind(&mut self, tid: u32, id: u64, from: u64, head: (&[u8], &[u8])) {
        let flows = &self.flows;
        let waiting = self.threads.get(&tid).and_then(|t| {
            t.unlinked
                .iter()
                .map(|&(_, f)| f)
                .find(|f| flows.get(f).is_some_and(|b| !b.linked && carries(b, head)))
        });
        let (to, other) = match waiting {
            Some(to) => (to, None),
            None => {
                let bound_unsent = self.conns.iter().find_map(|(&c, conn)| {
                    let f = conn.bound.filter(|_| c != id && !conn.sent)?;
                    let b = flows.get(&f)?;
                    (b.tid == tid && carries(b, head)).then_some((f, c))
                });
                let Some((to, other)) = bound_unsent else {
                    return;
                };
                (to, Some(other))
            }
        };
        self.move_events(id, from, to);
        self.conns
            .get_mut(&id)
            .expect("rebinding a known connection")
            .bound = Some(to);
        if let Some(other) = other {
            self.move_events(other, to, from);
            self.conns.get_mut(&other).expect("found above").bound = Some(from);
        } else {
            if let Some(thread) = self.threads.get_mut(&tid) {
                thread.unlinked.retain(|&(_, f)| f != to);
            }
            self.flows.get_mut(&to).expect("found above").linked = true;
            self.unbound(from);
        }
        if let Some(thread) = self.threads.get_mut(&tid)
            && thread.round_start.is_some()
            && !thread.touched.contains(&Target::Flow(to))
        {
            thread.touched.push(Target::Flow(to));
        }
    }

    /// Moves upstream connection `conn`'s events (and its port) from flow `from` to `to`.
    fn move_events(&mut self, conn: u64, from: u64, to: u64) {
        let port = self.conns.get(&conn).and_then(|c| c.addr).map(|a| a.port());
        let Some(b) = self.flows.get_mut(&from) else {
            return;
        };
        let (moved, kept): (Vec<Event>, Vec<Event>) = std::mem::take(&mut b.flow.events)
            .into_iter()
            .partition(|e| e.conn == conn);
        b.flow.events = kept;
        if let Some(i) = port.and_then(|p| b.ports.iter().position(|&x| x == p)) {
            b.ports.remove(i);
        }
        let Some(b) = self.flows.get_mut(&to) else {
            return;
        };
        b.ports.extend(port);
        b.flow.events.extend(moved.into_iter().map(|mut e| {
            e.stream = to;
            e
        }));
    }

    fn new_flow(&mut self, tid: u32, conn_id: u64, data: &[u8]) -> u64 {
        let id = self.next_flow;
        self.next_flow += 1;
        let worker = self.threads[&tid].worker;
        let conn = self.conns.get_mut(&conn_id).expect("a known connection");
        // The previous request has its response: it is done.
        let finished: Vec<u64> = conn
            .flows
            .iter()
            .copied()
            .filter(|f| self.flows.get(f).is_some_and(|b| b.answered))
            .collect();
        conn.flows.retain(|f| !finished.contains(f));
        conn.flows.push_back(id);
        let (method, path) = request_line(data).unwrap_or((b"", b""));
        let mut events = std::mem::take(&mut conn.pending);
        for e in &mut events {
            e.stream = id;
        }
        let ports = conn.addr.map(|a| a.port()).into_iter().collect();
        self.flows.insert(
            id,
            Building {
                flow: Flow {
                    stream: id,
                    worker,
                    downstream: conn_id,
                    start: 0,
                    end: 0,
                    status: 0,
                    method: ShortText::new(method),
                    path: ShortText::new(path),
                    truncated: false,
                    events,
                },
                tid,
                downstream: conn_id,
                linked: false,
                upstream_answered: false,
                answered: false,
                written_round: 0,
                last_ns: self.last_ns,
                ports,
            },
        );
        // Pending events' rounds now belong to the flow.
        let thread = self.threads.get_mut(&tid).expect("registered");
        for t in &mut thread.touched {
            if *t == Target::Pending(conn_id) {
                *t = Target::Flow(id);
            }
        }
        for f in finished {
            self.finishing(f);
        }
        id
    }

    /// Where an event of connection `id` goes. Downstream, `In` (readiness to read, a read
    /// with nothing) goes to the request being read, or waits for the next request once
    /// the last one is being answered; `Out` to the request being answered.
    fn target(&self, id: u64, dir: Dir) -> Target {
        let Some(conn) = self.conns.get(&id) else {
            return Target::Pending(id);
        };
        match conn.lane {
            Lane::Upstream => match conn.bound {
                Some(f) if self.flows.contains_key(&f) => Target::Flow(f),
                _ => Target::Pending(id),
            },
            _ => match dir {
                Dir::Out => conn
                    .flows
                    .front()
                    .map_or(Target::Pending(id), |&f| Target::Flow(f)),
                Dir::In => match conn.flows.back() {
                    Some(&f) if self.flows.get(&f).is_some_and(|b| !b.answered) => Target::Flow(f),
                    _ => Target::Pending(id),
                },
            },
        }
    }

    fn event(&mut self, tid: u32, conn_id: u64, target: Target, at: u64, kind: EventKind) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let thread = self.threads.get_mut(&tid).expect("registered");
        let stream = match target {
            Target::Flow(f) => f,
            Target::Pending(_) => 0,
        };
        let event = Event::new(at, thread.worker, conn.lane, conn.fd, conn_id, stream, kind);
        match target {
            Target::Flow(f) => {
                let Some(b) = self.flows.get_mut(&f) else {
                    return;
                };
                b.flow.events.push(event);
                b.last_ns = self.last_ns;
            }
            // Bounded: an idle connection's wake-ups (or a long stream's after its flow
            // was handed out) wait here for a flow that may never come.
            Target::Pending(_) if conn.pending.len() < PENDING_MAX => conn.pending.push(event),
            Target::Pending(_) => {}
        }
        if thread.round_start.is_some() && !thread.touched.contains(&target) {
            thread.touched.push(target);
        }
    }

    /// Sets the phase of the event just recorded for `target` on connection `conn`.
    fn rephase(&mut self, target: Target, conn: u64, phase: Phase) {
        let last = match target {
            Target::Flow(f) => self
                .flows
                .get_mut(&f)
                .and_then(|b| b.flow.events.last_mut()),
            Target::Pending(_) => self.conns.get_mut(&conn).and_then(|c| c.pending.last_mut()),
        };
        if let Some(event) = last {
            event.phase = Some(phase);
        }
    }

    /// `flow` is complete: handed out when its thread's round ends (at once when the thread
    /// is not in a round).
    fn finishing(&mut self, flow: u64) {
        let Some(b) = self.flows.get(&flow) else {
            return;
        };
        match self.threads.get_mut(&b.tid) {
            Some(thread) if thread.round_start.is_some() => {
                if !thread.finishing.contains(&flow) {
                    thread.finishing.push(flow);
                }
            }
            _ => self.emit(flow),
        }
    }

    fn emit(&mut self, id: u64) {
        let Some(mut b) = self.flows.remove(&id) else {
            return;
        };
        if let Some(conn) = self.conns.get_mut(&b.downstream) {
            conn.flows.retain(|&f| f != id);
        }
        if let Some(thread) = self.threads.get_mut(&b.tid) {
            thread.unlinked.retain(|&(_, f)| f != id);
            thread.finishing.retain(|&f| f != id);
            thread.touched.retain(|&t| t != Target::Flow(id));
        }
        if !self.ports.is_empty() && !b.ports.iter().any(|p| self.ports.contains(p)) {
            return;
        }
        b.flow.events.sort_by_key(|e| e.at);
        b.flow.start = b.flow.events.first().map_or(0, |e| e.at);
        b.flow.end = b.flow.events.last().map_or(0, |e| e.at);
        self.counts.flows += 1;
        self.done.push(b.flow);
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
mod tests {
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
                EventKind::Write { written, .. } if written > 0 => {
                    Some((e.lane, e.fd, 'w', written))
                }
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
}
