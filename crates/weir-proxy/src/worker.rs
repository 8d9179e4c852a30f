//! One worker thread: owns its poll, listener sockets, connections, streams, pools and timers.
//!
//! Everything a request touches lives in this struct's slabs and is named by generational ids;
//! nothing is shared with other workers and nothing takes a lock. The event handlers are
//! methods on `Worker` spread over the modules that follow the request's path:
//! `network::listener` (accept), `http::conn_manager` (downstream side, streams, local replies),
//! `router` (the decision), `upstream::codec_client` (upstream side and pools).
//!
//! The dispatcher loop is the seed's wake round: poll with the next timer as timeout → handle
//! each ready token → fire due timers → run deferred work.
//!
//! Closing is immediate but safe, which is what Envoy's deferred delete buys in C++: a closed
//! connection leaves its slab slot, and every later reference to it in the same round (an
//! event already returned by `epoll_wait` for its token, a timer, a peer's id) carries the old
//! generation and finds nothing. Work that must wait for the handler to return (resuming a
//! paused side, continuing a bounded accept loop) goes to the deferred queue instead.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::Events;
use mio::net::TcpListener;

use crate::access_log::WorkerLogs;
use crate::codec::http1::{Http1Client, Http1Server};
use crate::containment::Scope;
use crate::event::Readiness;
use crate::event::timer::{TimerId, TimerWheel};
use crate::event::token::{GenSlab, Id, Kind, untoken};
use crate::http::active_stream::Stream;
use crate::http::active_streams::ActiveStreams;
use crate::http::local_reply::DateCache;
use crate::network::Network;
use crate::network::connection::{Connection, SpareOutputs};
use crate::network::inspecting::Inspecting;
use crate::network::proxy_protocol::Proxied;
use crate::recorder::{ConnTrace, PendingFlow, Recorder};
use crate::runtime::Runtime;
use crate::server::{Control, ListenerScope, Query};
use crate::snapshot::{ChainRuntime, ListenerRuntime, Snapshot};
use crate::stats::{Syscalls, WorkerStats};
use crate::tcp_proxy::Side;
use crate::upstream::ClusterState;

/// Bytes one read may bring (the worker's scratch buffer).
pub(crate) const READ_SIZE: usize = 64 * 1024;
/// How long a closing connection waits for the client's FIN while discarding its input.
pub(crate) const LINGER: Duration = Duration::from_secs(2);
/// Most events handled per `epoll_wait`.
const EVENTS: usize = 1024;
/// Deferred items run per round before polling again (the rest run next round).
const DEFERRED_PER_ROUND: usize = 4096;
/// Streams open at once that make a burst: when they have all finished, the heap's free
/// memory goes back to the kernel.
const BURST_STREAMS: usize = 256;

/// A worker's listener socket and the filter chain its connections get.
pub(crate) struct ListenerSlot {
    pub(crate) socket: Option<TcpListener>,
    /// Its index in the layout of listener stats.
    pub(crate) stats: usize,
    pub(crate) address: SocketAddr,
    /// Its filter chains and listener filters, which choose a connection's chain.
    pub(crate) runtime: Arc<ListenerRuntime>,
    pub(crate) buffer_limit: usize,
    /// Its `traffic_direction` is INBOUND.
    pub(crate) inbound: bool,
    /// A reload removed it: its socket is closed and its connections drain.
    pub(crate) removed: bool,
}

impl std::fmt::Debug for ListenerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerSlot")
            .field("name", &self.runtime.name)
            .field("address", &self.address)
            .field("listening", &self.socket.is_some())
            .finish_non_exhaustive()
    }
}

/// The buffer limit (`per_connection_buffer_limit_bytes`) of the listener `ds` came through. A
/// free function, so that callers may hold a downstream or a stream mutably meanwhile.
pub(crate) fn listener_buffer_limit(listeners: &[ListenerSlot], ds: &Downstream) -> usize {
    listeners
        .get(ds.listener as usize)
        .map_or(1, |l| l.buffer_limit)
}

/// Where a downstream connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DownstreamState {
    /// Reading requests (or waiting for the active streams to let it read on).
    Open,
    /// A final response is queued: send it, then FIN.
    CloseAfterFlush,
    /// FIN sent: discard input until the client's FIN or the linger timer.
    Lingering,
}

/// A client connection and the connection manager's state on it.
pub(crate) struct Downstream {
    pub(crate) conn: Connection,
    pub(crate) chain: Arc<ChainRuntime>,
    pub(crate) peer: SocketAddr,
    /// The listener it arrived on (its stats scope).
    pub(crate) listener: u32,
    /// When it was accepted (`downstream_cx_length_ms`).
    pub(crate) accepted: Millis,
    pub(crate) codec: Http1Server,
    /// Its active streams, by the codec's stream key (HTTP/1: at most one, by its own rule).
    pub(crate) streams: ActiveStreams,
    pub(crate) state: DownstreamState,
    pub(crate) idle_timer: Option<TimerId>,
    /// In `CloseAfterFlush`, bounds the wait for the queue to leave; in `Lingering`, the
    /// wait for the client's FIN.
    pub(crate) linger_timer: Option<TimerId>,
    /// `conn.bytes_out` when the flush timer was last armed: progress since re-arms it.
    pub(crate) flush_mark: u32,
    /// The client half-closed after its request: answer, then close.
    pub(crate) peer_closed: bool,
    /// The client ended the connection (FIN or reset) before weir did: counted as
    /// `downstream_cx_destroy_remote`.
    pub(crate) closed_by_peer: bool,
    /// Close with RST instead of FIN (a cut close-delimited response must not look complete).
    pub(crate) abort: bool,
    /// `request_headers_timeout`, from a head's first byte to its end.
    pub(crate) header_timer: Option<TimerId>,
    /// `max_connection_duration`.
    pub(crate) duration_timer: Option<TimerId>,
    /// It reached its duration or request limit: the next response closes it.
    pub(crate) close_soon: bool,
    /// Reading stopped between requests because replies filled the buffer limit: the flush
    /// that drains them resumes it.
    pub(crate) replies_gated: bool,
    /// Its place in the flow recorder.
    pub(crate) trace: ConnTrace,
    /// A traced stream's flow, kept once its response has left.
    /// Boxed: only traced connections have one, and every idle connection carries the field.
    pub(crate) pending_flow: Option<Box<PendingFlow>>,
    /// What its TLS handshake settled, once it has (access logs read it).
    pub(crate) tls: Option<Arc<crate::network::tls::TlsInfo>>,
    /// What a PROXY protocol header changed of its addresses (`peer` is the client it
    /// named); boxed: only such connections have one.
    pub(crate) proxied: Option<Box<Proxied>>,
}

/// Where an upstream connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamState {
    /// Non-blocking connect in progress; the first writable edge completes it.
    Connecting,
    /// Carrying a stream's request and response.
    Active,
    /// In its host's pool, waiting for the next stream.
    Idle,
}

/// A connection to an origin, owned by its host's pool when idle and by a stream when active.
pub(crate) struct Upstream {
    pub(crate) conn: Connection,
    pub(crate) cluster: usize,
    pub(crate) host: Id,
    pub(crate) state: UpstreamState,
    pub(crate) codec: Http1Client,
    pub(crate) stream: Option<Id>,
    /// It has carried a complete request/response before (it came from the pool).
    pub(crate) reused: bool,
    /// Any byte of the current response has arrived.
    pub(crate) response_seen: bool,
    pub(crate) connect_timer: Option<TimerId>,
    pub(crate) buffer_limit: usize,
    /// Its id in flow traces.
    pub(crate) trace_conn: u64,
    /// When its connect started (`upstream_cx_connect_ms`, `upstream_cx_length_ms`).
    pub(crate) opened: Instant,
    /// The origin ended it (FIN, reset): `upstream_cx_destroy_remote` rather than `_local`.
    pub(crate) closed_by_peer: bool,
    /// The SNI it was opened with when its cluster takes it from each request's host
    /// (`auto_host_sni`): only requests for that host may reuse it.
    pub(crate) sni: Option<Box<str>>,
}

/// What a timer is for. Ids are generational, so a timer for a closed object is a no-op.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TimerKey {
    DownstreamIdle(Id),
    Linger(Id),
    Connect(Id),
    Route(Id),
    Request(Id),
    StreamIdle(Id),
    AcceptRetry(usize),
    DrainDeadline,
    /// The graceful part of `/drain_listeners` is over: close the listener sockets.
    StopListeners,
    /// A reload removed listener `n` (its number) a drain time ago: close what is left of
    /// its connections.
    RemovedListener(usize),
    /// Config version `.1` (its low 32 bits: the key stays as small as the others)
    /// retired cluster number `.0` a drain time ago: its hosts are removed (the version
    /// tells it from a later cluster under the same number).
    RetiredCluster(u32, u32),
    /// A request head did not arrive in time.
    RequestHeaders(Id),
    /// A connection reached `max_connection_duration`.
    MaxDuration(Id),
    /// A retry's back-off is over.
    Retry(Id),
    /// An attempt's `per_try_timeout`.
    PerTry(Id),
    /// A filter holding the request asked to be woken (a fault delay is over).
    FilterWake(Id),
    /// `listener_filters_timeout` of a connection under inspection.
    ListenerFilters(Id),
    /// A TCP proxy session's `idle_timeout` (re-armed lazily from its last activity).
    TcpIdle(Id),
    /// A TCP proxy session's upstream connect timed out.
    TcpConnect(Id),
    /// A downstream's `transport_socket_connect_timeout`: its TLS handshake must be done.
    Handshake(Id),
    /// The same for a TCP proxy session.
    TcpHandshake(Id),
}

/// Work that must not run inside the handler that found it (to keep handlers short and
/// borrow-free): resuming a paused side, continuing an accept loop that hit its bound.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deferred {
    Downstream(Id),
    Upstream(Id),
    Accept(usize),
    /// A host's connection was released or closed while streams wait for one.
    Waiting {
        cluster: usize,
        host: Id,
    },
}

/// See the module documentation.
pub(crate) struct Worker {
    pub(crate) index: usize,
    /// Where new connections are made and registered.
    pub(crate) net: Network,
    pub(crate) listeners: Vec<ListenerSlot>,
    pub(crate) downstreams: GenSlab<Downstream>,
    /// Accepted connections whose listener filters have not chosen a chain yet.
    pub(crate) inspecting: GenSlab<Inspecting>,
    /// TCP proxy sessions (a downstream and its upstream connection each).
    pub(crate) tcp: GenSlab<crate::tcp_proxy::TcpSession>,
    pub(crate) upstreams: GenSlab<Upstream>,
    pub(crate) streams: GenSlab<Stream>,
    /// Most streams open at once since the heap's free memory was last released.
    pub(crate) stream_peak: usize,
    pub(crate) clusters: Vec<ClusterState>,
    pub(crate) timers: TimerWheel<TimerKey>,
    pub(crate) deferred: VecDeque<Deferred>,
    pub(crate) scratch: Vec<u8>,
    pub(crate) now: Instant,
    pub(crate) stats: Arc<WorkerStats>,
    pub(crate) control: Arc<Control>,
    pub(crate) draining: bool,
    pub(crate) rng: fastrand::Rng,
    pub(crate) date: DateCache,
    /// The text of the last `x-envoy-expected-rq-timeout-ms` of 1000 ms or more.
    pub(crate) timeout_text: crate::http::headers::NumberCache,
    pub(crate) recorder: Recorder,
    /// Its last failed requests, for `GET /explain` (kept with the recorder off too).
    pub(crate) failures: crate::why::FailureLog,
    /// Wake rounds so far (flow traces number them).
    pub(crate) rounds: u64,
    /// `POST /drain_listeners?graceful` is under way for these listeners: responses on their
    /// connections close them.
    pub(crate) listener_drain: ListenerScope,
    /// Where this worker's access log lines go (formatted here, written by the flusher).
    pub(crate) logs: WorkerLogs,
    /// Output queues of idle connections, for the next connection that writes.
    pub(crate) spare_outputs: SpareOutputs,
    /// When a failing accept was last logged.
    pub(crate) accept_warned: Option<Instant>,
    /// Timers due in the current round (kept to reuse its memory).
    fired: Vec<TimerKey>,
    /// `node.cluster`: this proxy's own cluster name (the health check filter's answers).
    pub(crate) local_cluster: String,
    /// Each cluster's name, host count and healthy host count (all hosts are healthy until
    /// health checking lands).
    pub(crate) cluster_health: Vec<(String, usize, usize)>,
    /// The runtime snapshot in force, and its generation (checked once per wake round).
    pub(crate) runtime: Arc<Runtime>,
    runtime_generation: u64,
    /// The host sets' generation this worker follows (checked once per wake round).
    pub(crate) hosts_generation: u64,
    /// The config version (reloads) its listeners and idle connections follow.
    pub(crate) config_version: u64,
}

/// Where a worker reports what it does: stats, the flow recorder, access logs.
pub(crate) struct Reporting {
    pub(crate) stats: Arc<WorkerStats>,
    pub(crate) recorder: Recorder,
    pub(crate) logs: WorkerLogs,
}

impl Worker {
    pub(crate) fn new(
        index: usize,
        net: Network,
        snapshot: Arc<Snapshot>,
        listeners: Vec<ListenerSlot>,
        control: Arc<Control>,
        reporting: Reporting,
    ) -> Self {
        let Reporting {
            stats,
            recorder,
            logs,
        } = reporting;
        let now = clock();
        let hosts = &control.server.hosts;
        let hosts_generation = hosts.generation();
        let clusters: Vec<ClusterState> = (snapshot.clusters.all.iter())
            .map(|c| ClusterState::new(c, hosts.current(c.number), index))
            .collect();
        let cluster_health = crate::upstream::health_of(&clusters);
        let (runtime_generation, runtime) = control.server.runtime.snapshot();
        Worker {
            index,
            net,
            listeners,
            downstreams: GenSlab::new(),
            inspecting: GenSlab::new(),
            tcp: GenSlab::new(),
            upstreams: GenSlab::new(),
            streams: GenSlab::new(),
            stream_peak: 0,
            clusters,
            timers: TimerWheel::new(now),
            deferred: VecDeque::new(),
            scratch: vec![0; READ_SIZE],
            now,
            stats,
            control,
            draining: false,
            rng: fastrand::Rng::new(),
            date: DateCache::new(),
            timeout_text: Default::default(),
            recorder,
            failures: Default::default(),
            rounds: 0,
            listener_drain: ListenerScope::None,
            logs,
            spare_outputs: SpareOutputs::default(),
            accept_warned: None,
            fired: Vec::new(),
            local_cluster: snapshot.bootstrap.node.cluster.clone(),
            cluster_health,
            runtime,
            runtime_generation,
            hosts_generation,
            config_version: 1,
        }
    }

    pub(crate) fn syscalls(&self) -> &Syscalls {
        &self.stats.syscalls
    }

    /// The dispatcher loop: returns when a drain completes or the server stops.
    pub(crate) fn run(mut self) {
        self.run_loop();
        // Nobody will answer queries from now on: drop those waiting (their senders go, so the
        // asker stops waiting) and turn later ones away.
        let mut queries = self
            .control
            .queries
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.control.exited.store(true, Ordering::Release);
        queries.clear();
    }

    fn run_loop(&mut self) {
        let mut events = Events::with_capacity(EVENTS);
        let mut woke: Option<Instant> = None;
        loop {
            let timeout = self.poll_timeout();
            self.stats.syscalls.epoll_wait.inc();
            // Envoy's dispatcher stats: the round just run (wake-up to poll), and how far past
            // its timeout the poll returns.
            let waiting = clock();
            if let Some(woke) = woke {
                let ran = waiting.saturating_duration_since(woke);
                self.stats
                    .dispatcher
                    .loop_duration_us
                    .record(ran.as_micros() as u64);
            }
            if let Err(e) = self.net.wait(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(worker = self.index, error = %e, "epoll_wait failed; worker stops");
                return;
            }
            self.now = clock();
            woke = Some(self.now);
            // Only a poll that ran its whole timeout says how late it was (one woken early by
            // I/O says nothing), as Envoy records it.
            let polled = self.now.saturating_duration_since(waiting);
            if let Some(late) = timeout.and_then(|t| polled.checked_sub(t)) {
                self.stats
                    .dispatcher
                    .poll_delay_us
                    .record(late.as_micros() as u64);
            }
            let ready = self.round(events.iter().map(Readiness::of));
            if self.recorder.enabled() {
                let round = self.rounds;
                let waited = self.now.saturating_duration_since(waiting).as_nanos() as u64;
                let ran = clock().saturating_duration_since(self.now).as_nanos() as u64;
                self.recorder.wake_round(round, ready, waited, ran);
                self.recorder.end_of_round();
            }
            if self.finished() {
                return;
            }
        }
    }

    /// How long the next poll may wait: until the next timer, or not at all while deferred
    /// work is left.
    pub(crate) fn poll_timeout(&self) -> Option<Duration> {
        if self.deferred.is_empty() {
            self.timers.next_timeout(self.now)
        } else {
            Some(Duration::ZERO)
        }
    }

    /// One wake round at `self.now`: each ready token, then the timers due, then deferred
    /// work. Returns how many tokens were ready.
    pub(crate) fn round(&mut self, events: impl Iterator<Item = Readiness>) -> u32 {
        self.rounds += 1;
        // `/runtime_modify` published a new snapshot: requests from this round on read it.
        if self.control.server.runtime.generation() != self.runtime_generation {
            (self.runtime_generation, self.runtime) = self.control.server.runtime.snapshot();
        }
        // A cluster's hosts changed (DNS): requests from this round on pick from the new set.
        let hosts_generation = self.control.server.hosts.generation();
        if hosts_generation != self.hosts_generation {
            self.hosts_generation = hosts_generation;
            self.apply_host_sets();
        }
        let mut ready = 0;
        for event in events {
            let scope = match untoken(event.token) {
                (Kind::Downstream, id) => Scope::Downstream(id),
                (Kind::Upstream, id) => Scope::Upstream(id),
                _ => Scope::Worker,
            };
            self.contained(scope, |w| w.dispatch(event));
            ready += 1;
        }
        let mut fired = std::mem::take(&mut self.fired);
        self.timers.expire(self.now, &mut fired);
        for key in fired.drain(..) {
            self.contained(key.scope(), |w| w.on_timer(key));
        }
        self.fired = fired;
        for _ in 0..DEFERRED_PER_ROUND {
            let Some(item) = self.deferred.pop_front() else {
                break;
            };
            match item {
                Deferred::Downstream(id) => {
                    self.contained(Scope::Downstream(id), |w| w.drive_downstream(id));
                }
                Deferred::Upstream(id) => {
                    self.contained(Scope::Upstream(id), |w| w.drive_upstream(id));
                }
                Deferred::Accept(listener) => {
                    self.contained(Scope::Worker, |w| w.accept(listener));
                }
                Deferred::Waiting { cluster, host } => {
                    self.contained(Scope::Worker, |w| w.serve_waiting(cluster, host));
                }
            }
        }
        if self.stream_peak > BURST_STREAMS && self.streams.is_empty() {
            crate::memory::release_free();
            self.stream_peak = 0;
        }
        ready
    }

    /// The server stopped it, or its drain is complete.
    pub(crate) fn finished(&self) -> bool {
        if self.control.stop.load(Ordering::Acquire) {
            return true;
        }
        if self.draining && self.downstreams.is_empty() && self.tcp.is_empty() {
            tracing::debug!(worker = self.index, "drained");
            return true;
        }
        false
    }

    fn dispatch(&mut self, event: Readiness) {
        match untoken(event.token) {
            (Kind::Listener, id) => self.accept(id.slot() as usize),
            (Kind::Downstream, id) => {
                if let Some(ds) = self.downstreams.get_mut(id) {
                    ds.conn.on_ready(event);
                    // A writable edge with nothing to write (a new socket's first, say) is
                    // no part of writing a response.
                    let idle = !event.readable && ds.conn.queued() == 0;
                    let phase = idle.then_some(weir_flow::Phase::DownstreamReadRequest);
                    self.trace_down_in(id, phase, || ready(event));
                    // An error, or both directions closed (the client reset, or closed after
                    // our FIN): nobody is left to answer, so the stream and its upstream
                    // request end now instead of when the response or route timeout comes.
                    // A FIN alone is a half-close that still gets its response.
                    if event.error || (event.read_closed && event.write_closed) {
                        if let Some(ds) = self.downstreams.get_mut(id) {
                            ds.closed_by_peer = true;
                        }
                        return self.close_downstream(id);
                    }
                    self.flush_downstream(id);
                    self.drive_downstream(id);
                }
            }
            (Kind::Inspecting, id) => self.on_inspecting_ready(id, event),
            (Kind::TcpDownstream, id) => self.on_tcp_ready(id, Side::Downstream, event),
            (Kind::TcpUpstream, id) => self.on_tcp_ready(id, Side::Upstream, event),
            (Kind::Upstream, id) => {
                if let Some(up) = self.upstreams.get_mut(id) {
                    up.conn.on_ready(event);
                    self.trace_up(id, || ready(event));
                    self.upstream_ready(id);
                }
            }
            (Kind::Waker, _) => {
                if self.control.drain.load(Ordering::Acquire) && !self.draining {
                    self.begin_drain();
                }
                let stop = ListenerScope::load(&self.control.stop_listeners);
                if stop != ListenerScope::None {
                    self.stop_listeners(stop);
                }
                let drain = ListenerScope::load(&self.control.drain_listeners);
                if drain > self.listener_drain {
                    self.listener_drain = drain;
                    self.arm(self.control.server.drain_time, TimerKey::StopListeners);
                }
                self.follow_reload(self.control.server.config.version());
                self.answer_queries();
            }
        }
    }

    fn on_timer(&mut self, key: TimerKey) {
        match key {
            TimerKey::DownstreamIdle(id) => self.on_downstream_idle_timer(id),
            TimerKey::Linger(id) => self.on_linger_timer(id),
            TimerKey::Connect(id) => {
                if let Some(up) = self.upstreams.get_mut(id) {
                    up.connect_timer = None;
                    self.upstream_failed(id, crate::upstream::failure::Failure::ConnectTimeout);
                }
            }
            TimerKey::Route(id) => self.on_route_timeout(id),
            TimerKey::Request(id) => self.on_request_timeout(id),
            TimerKey::StreamIdle(id) => self.on_stream_idle_timer(id),
            TimerKey::AcceptRetry(listener) => self.accept(listener),
            TimerKey::StopListeners => self.stop_listeners(self.listener_drain),
            TimerKey::RemovedListener(n) => self.close_listener_connections(n),
            TimerKey::RetiredCluster(n, version) => self.remove_cluster(n as usize, version),
            TimerKey::Retry(id) => self.on_retry_timer(id),
            TimerKey::RequestHeaders(id) => self.on_request_headers_timeout(id),
            TimerKey::MaxDuration(id) => self.on_max_connection_duration(id),
            TimerKey::PerTry(id) => self.on_per_try_timeout(id),
            TimerKey::FilterWake(id) => self.on_filter_wake(id),
            TimerKey::ListenerFilters(id) => self.on_listener_filters_timeout(id),
            TimerKey::TcpIdle(id) => self.on_tcp_idle(id),
            TimerKey::Handshake(id) => self.on_handshake_timeout(id),
            TimerKey::TcpHandshake(id) => self.on_tcp_handshake_timeout(id),
            TimerKey::TcpConnect(id) => {
                if let Some(s) = self.tcp.get_mut(id) {
                    s.connect_timer = None;
                }
                self.tcp_connect_failed(id);
            }
            TimerKey::DrainDeadline => {
                tracing::info!(
                    worker = self.index,
                    "drain time is up; closing remaining connections"
                );
                for id in self.downstreams.ids() {
                    self.close_downstream(id);
                }
                for id in self.tcp.ids() {
                    self.close_tcp(id);
                }
            }
        }
    }

    /// Stop accepting, close idle connections, and let in-flight requests finish with
    /// `connection: close`; the deadline closes what is left.
    fn begin_drain(&mut self) {
        self.draining = true;
        for listener in &mut self.listeners {
            listener.socket = None;
        }
        let deadline = self.now + self.control.server.drain_time;
        self.timers.insert(deadline, TimerKey::DrainDeadline);
        if self.control.gently.load(Ordering::Acquire) {
            // Each connection closes after its next response, or at the deadline.
            return;
        }
        // A connection that has no chain yet has no request either.
        for id in self.inspecting.ids() {
            self.close_inspecting(id, "draining");
        }
        for id in self.downstreams.ids() {
            let Some(ds) = self.downstreams.get_mut(id) else {
                continue;
            };
            if !ds.streams.is_empty() {
                continue;
            }
            if ds.conn.queued() == 0 {
                self.close_downstream(id);
            } else if ds.state == DownstreamState::Open {
                // Between requests but still sending the last response: close once it is out.
                self.close_after_flush(id);
            }
        }
        for id in self.upstreams.ids() {
            if self
                .upstreams
                .get(id)
                .is_some_and(|u| u.state == UpstreamState::Idle)
            {
                self.close_upstream(id);
            }
        }
    }

    /// Closes the sockets of the listeners in `scope`: no new connections; the established
    /// ones carry on.
    fn stop_listeners(&mut self, scope: ListenerScope) {
        for listener in &mut self.listeners {
            if scope.covers(listener.inbound) && listener.socket.take().is_some() {
                tracing::info!(worker = self.index, address = %listener.address, "listener stopped");
            }
        }
    }

    /// Whether responses on connection `ds` should close it: a drain, a graceful drain of its
    /// listener, or a failed health check unless its listener's `drain_type` is MODIFY_ONLY
    /// (Envoy's "drain close").
    pub(crate) fn drain_close(&self, ds: Id) -> bool {
        if self.draining {
            return true;
        }
        let health_check_failed = (self.control.server.health_check_failed).load(Ordering::Relaxed);
        // The common case, nothing draining, costs two loads.
        if self.listener_drain == ListenerScope::None && !health_check_failed {
            return false;
        }
        let Some(listener) =
            (self.downstreams.get(ds)).and_then(|d| self.listeners.get(d.listener as usize))
        else {
            return health_check_failed;
        };
        // A MODIFY_ONLY listener is not drained by a failed health check (Envoy's
        // DrainManagerImpl::drainClose).
        self.listener_drain.covers(listener.inbound)
            || health_check_failed
                && listener.runtime.drain_type != weir_config::DrainType::ModifyOnly
    }

    /// The admin listener asked for this worker's recent flows or failures (through the
    /// waker, so the request path never takes a lock).
    fn answer_queries(&mut self) {
        let queries = std::mem::take(
            &mut *self
                .control
                .queries
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for query in queries {
            match query {
                Query::Flows(limit, reply) => {
                    let _ = reply.send(self.recorder.flows().take(limit).cloned().collect());
                }
                Query::Failures(reply) => {
                    let _ = reply.send(self.failures.recent().cloned().collect());
                }
            }
        }
    }

    pub(crate) fn arm(&mut self, after: Duration, key: TimerKey) -> TimerId {
        self.timers.insert(self.now + after, key)
    }

    pub(crate) fn disarm(&mut self, timer: &mut Option<TimerId>) {
        if let Some(t) = timer.take() {
            self.timers.cancel(t);
        }
    }
}

/// What epoll reported, in the trace's terms.
fn ready(event: Readiness) -> weir_flow::EventKind {
    weir_flow::EventKind::Ready {
        readable: event.readable,
        writable: event.writable,
        hup: event.read_closed || event.write_closed,
        error: event.error,
    }
}

/// A time as milliseconds since the process's first clock reading: half the size of an
/// `Instant`, for what every connection keeps (its start).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Millis(u64);

impl Millis {
    pub(crate) fn of(at: Instant) -> Millis {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let origin = *ORIGIN.get_or_init(clock);
        Millis(at.saturating_duration_since(origin).as_millis() as u64)
    }

    /// Milliseconds from `self` to `later`.
    pub(crate) fn until(self, later: Instant) -> u64 {
        Millis::of(later).0.saturating_sub(self.0)
    }
}

/// The loop's clock: read once per wake round and passed down as `now`.
pub(crate) fn clock() -> Instant {
    Instant::now()
}
