//! The vocabulary: what can happen to a request, as the proxy records it (and, later, as the
//! eBPF tracer reconstructs it from the kernel's side).
//!
//! Events are small `Copy`-free values without heap data except shared names (`Arc<str>`,
//! cloned without allocating), so a recorder can write them into a preallocated ring.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

/// Nanoseconds on a monotonic clock, counted from the recorder's epoch (process start).
pub type Nanos = u64;

/// A shared, immutable name from the configuration (cluster, route, filter chain…).
pub type Name = Arc<str>;

/// The `worker` of events and flows recorded by the health checker's thread (its probes),
/// not by a worker.
pub const HEALTH_CHECKER: u16 = u16::MAX;

/// Who recorded an event, as the renderers name it: a worker's index, or `health`.
#[derive(Debug, Clone, Copy)]
pub struct Thread(pub u16);

impl std::fmt::Display for Thread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            HEALTH_CHECKER => f.write_str("health"),
            n => write!(f, "{n}"),
        }
    }
}

/// The seed's four events: every socket event of a proxied request belongs to one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The downstream socket is readable: accept, read and decode the request, route it, pick
    /// or start an upstream connection.
    DownstreamReadRequest,
    /// The upstream socket is writable: connected (or pooled), the request is written.
    UpstreamWriteRequest,
    /// The upstream socket is readable: the response is read and decoded.
    UpstreamReadResponse,
    /// The downstream socket is writable: the response is written to the client.
    DownstreamWriteResponse,
}

impl Phase {
    /// All four, in the order a request crosses them.
    pub const ALL: [Phase; 4] = [
        Phase::DownstreamReadRequest,
        Phase::UpstreamWriteRequest,
        Phase::UpstreamReadResponse,
        Phase::DownstreamWriteResponse,
    ];

    /// The heading the seed's log uses.
    pub fn title(self) -> &'static str {
        match self {
            Phase::DownstreamReadRequest => "Downstream Read Request",
            Phase::UpstreamWriteRequest => "Upstream Write Request",
            Phase::UpstreamReadResponse => "Upstream Read Response",
            Phase::DownstreamWriteResponse => "Downstream Write Response",
        }
    }

    /// The snake_case name used in JSON (`"phase"`) and as the HTML page's CSS class.
    pub fn name(self) -> &'static str {
        match self {
            Phase::DownstreamReadRequest => "downstream_read_request",
            Phase::UpstreamWriteRequest => "upstream_write_request",
            Phase::UpstreamReadResponse => "upstream_read_response",
            Phase::DownstreamWriteResponse => "downstream_write_response",
        }
    }

    /// Which phase an event belongs to, from where it happened and what it is. `None` for
    /// events of the worker itself (wake rounds).
    pub fn of(lane: Lane, kind: &EventKind) -> Option<Phase> {
        use EventKind as K;
        use Phase::*;
        match (lane, kind) {
            (Lane::Worker, _)
            | (_, K::WakeRound { .. })
            | (_, K::HealthCheck { .. })
            | (_, K::HealthCheckResult { .. }) => None,
            (Lane::Downstream, k) => Some(match k {
                // Reading the request and deciding where it goes.
                K::Ready { readable: true, .. }
                | K::Accept { .. }
                | K::ListenerFilter { .. }
                | K::FilterChain { .. }
                | K::TlsHandshake { .. }
                | K::TlsRecords {
                    direction: Direction::In,
                    ..
                }
                | K::Registered { .. }
                | K::Read { .. }
                | K::RequestHead { .. }
                | K::RequestComplete
                | K::ReadPaused { .. }
                | K::RouteMatched { .. }
                | K::PoolCreated { .. }
                | K::HostChosen { .. }
                | K::WaitingForConnection { .. }
                | K::ConnectStarted { .. }
                | K::LocalReply { .. } => DownstreamReadRequest,
                // The seed restores the downstream's read interest when the response is in.
                K::ReadResumed { .. }
                | K::Connected
                | K::StreamAttached { .. }
                | K::ResponseHead { .. }
                | K::ResponseComplete => UpstreamReadResponse,
                K::Ready { .. }
                | K::Write { .. }
                | K::TlsRecords { .. }
                | K::Close { .. }
                | K::Why { .. }
                | K::WakeRound { .. }
                | K::HealthCheck { .. }
                | K::HealthCheckResult { .. } => DownstreamWriteResponse,
            }),
            (Lane::Upstream, k) => Some(match k {
                // A new connection is started, or a pooled one taken, while routing.
                K::PoolCreated { .. }
                | K::HostChosen { .. }
                | K::WaitingForConnection { .. }
                | K::ConnectStarted { .. }
                | K::Registered { .. }
                | K::StreamAttached { reused: true } => DownstreamReadRequest,
                K::Ready { readable: true, .. }
                | K::Read { .. }
                | K::TlsRecords {
                    direction: Direction::In,
                    ..
                }
                | K::ResponseHead { .. }
                | K::ResponseComplete
                | K::Close { .. } => UpstreamReadResponse,
                _ => UpstreamWriteRequest,
            }),
        }
    }
}

/// Where an event happened: the worker's loop, or one side's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// The worker's event loop (wake rounds).
    Worker,
    /// The client's connection.
    Downstream,
    /// A connection to an origin.
    Upstream,
}

impl Lane {
    /// The snake_case name used in JSON (`"lane"`).
    pub fn name(self) -> &'static str {
        match self {
            Lane::Worker => "worker",
            Lane::Downstream => "downstream",
            Lane::Upstream => "upstream",
        }
    }
}

/// What one read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadResult {
    /// `n` bytes.
    Bytes(u32),
    /// EAGAIN: nothing to read.
    WouldBlock,
    /// 0: the peer closed its write side.
    Eof,
    /// An error, by errno.
    Error(i32),
}

/// Which way bytes went on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the peer.
    In,
    /// To the peer.
    Out,
}

/// Who closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Closer {
    /// The proxy decided to close (keep-alive ended, drain, timeout, protocol error).
    Local,
    /// The peer closed first (EOF seen) and the proxy closed its side.
    Peer,
    /// The socket failed (reset, broken pipe).
    Error,
}

/// Up to `N` bytes of text kept inline (a method, a path prefix): no heap allocation. Events
/// use small capacities to stay small (every recorded event is copied into the ring); a flow's
/// header keeps 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortText<const N: usize = 64> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> ShortText<N> {
    /// The first `N` bytes of `s` (cut at a UTF-8 boundary after lossy conversion).
    pub fn new(s: &[u8]) -> Self {
        let cap = N.min(u8::MAX as usize);
        let mut bytes = [0u8; N];
        let text = String::from_utf8_lossy(&s[..s.len().min(cap)]);
        let mut len = text.len().min(cap);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
        ShortText {
            len: len as u8,
            bytes,
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl<const N: usize> std::fmt::Debug for ShortText<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> Serialize for ShortText<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What happened. Field names are part of the JSON format (README documents them).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A downstream connection was accepted.
    Accept {
        /// The client's address.
        peer: SocketAddr,
        /// The listener's address.
        local: SocketAddr,
    },
    /// A listener filter ran (e.g. tls_inspector).
    ListenerFilter {
        /// The filter's name.
        name: Name,
    },
    /// The network filter chain for the connection was chosen.
    FilterChain {
        /// The chain's name.
        name: Name,
    },
    /// The socket was registered with epoll (once per socket's life).
    Registered {
        /// Interest in readable.
        readable: bool,
        /// Interest in writable.
        writable: bool,
        /// EPOLLET.
        edge_triggered: bool,
    },
    /// epoll reported the socket ready.
    Ready {
        /// EPOLLIN.
        readable: bool,
        /// EPOLLOUT.
        writable: bool,
        /// EPOLLRDHUP / EPOLLHUP.
        hup: bool,
        /// EPOLLERR.
        error: bool,
    },
    /// A read syscall.
    Read {
        /// The buffer size offered.
        asked: u32,
        /// What it returned.
        result: ReadResult,
    },
    /// A write syscall (`writev`).
    Write {
        /// Bytes offered.
        asked: u32,
        /// Bytes the kernel took (less than `asked`: partial), or the errno when negative.
        written: i64,
    },
    /// A request head was decoded.
    RequestHead {
        /// The method (first 16 bytes).
        method: ShortText<16>,
        /// The request target (first 48 bytes; the flow's header keeps 64).
        path: ShortText<48>,
        /// The config version that serves it (1 at startup, one more per applied reload; 0
        /// when unknown, as to `weir trace`, and then left out of the JSON).
        #[serde(skip_serializing_if = "is_zero")]
        config: u32,
    },
    /// The whole request was received.
    RequestComplete,
    /// Reading the downstream stopped (its request is in flight, or back-pressure).
    ReadPaused {
        /// Whether pausing cost a syscall (`epoll_ctl`): weir's never does.
        syscall: bool,
    },
    /// Reading the downstream resumed.
    ReadResumed {
        /// Whether resuming cost a syscall.
        syscall: bool,
    },
    /// The router matched a route.
    RouteMatched {
        /// The virtual host's name.
        vhost: Name,
        /// The route's name (empty when unnamed).
        route: Name,
        /// The chosen cluster.
        cluster: Name,
    },
    /// A connection pool was created for a host (first use on this worker).
    PoolCreated {
        /// The cluster.
        cluster: Name,
        /// The host.
        host: SocketAddr,
    },
    /// The load balancer chose a host.
    HostChosen {
        /// The cluster.
        cluster: Name,
        /// The host.
        host: SocketAddr,
        /// The cluster's `lb_policy`, in lower case (`round_robin`, `least_request`…).
        policy: &'static str,
        /// Why this host: the request's hash, least request's candidates and their loads…
        why: Name,
    },
    /// No connection to the host could be had or made (the cluster's or the host's
    /// `max_connections` was reached): the request waits for one of the host's connections.
    WaitingForConnection {
        /// The cluster.
        cluster: Name,
        /// The host.
        host: SocketAddr,
    },
    /// A non-blocking connect to an upstream host started.
    ConnectStarted {
        /// The host.
        host: SocketAddr,
    },
    /// The upstream connect completed.
    Connected,
    /// A health-check probe of a host began: the flow is the probe's, recorded by the health
    /// checker's thread.
    HealthCheck {
        /// The cluster.
        cluster: Name,
        /// The host.
        host: SocketAddr,
        /// `http` or `tcp`.
        checker: &'static str,
    },
    /// A health-check probe was judged.
    HealthCheckResult {
        /// `healthy`, `unhealthy` (an answer that failed the check) or `no_answer` (no
        /// connection, a timeout, an answer cut short).
        verdict: &'static str,
        /// Whether the host passes its checks now.
        host_healthy: bool,
        /// Whether this probe changed that.
        changed: bool,
    },
    /// A TLS handshake completed on this connection (downstream: weir terminated it;
    /// upstream: weir spoke TLS to the origin).
    TlsHandshake {
        /// `TLSv1.2` or `TLSv1.3`.
        version: Name,
        /// The suite, by the name Envoy's stats use.
        cipher: Name,
        /// The SNI (downstream: the client's; upstream: the one sent), if any.
        server_name: Option<Name>,
        /// The ALPN protocol agreed, if any.
        alpn: Option<Name>,
        /// A resumed session (no full handshake).
        resumed: bool,
    },
    /// TLS records the socket gave (`In`, beside the `read` whose plaintext they carried) or
    /// took (`Out`, beside the `write`): the bytes on the wire, where `read` and `write` count
    /// plaintext.
    TlsRecords {
        /// Which way.
        direction: Direction,
        /// Encrypted bytes.
        bytes: u32,
    },
    /// The stream was bound to an upstream connection.
    StreamAttached {
        /// The connection came from the pool (no connect).
        reused: bool,
    },
    /// The upstream response head was decoded.
    ResponseHead {
        /// Its status.
        status: u16,
    },
    /// The whole response was received from upstream (or answered locally).
    ResponseComplete,
    /// weir answered the request itself.
    LocalReply {
        /// The status.
        status: u16,
        /// Envoy's response flag (`UF`, `NR`…), empty for direct responses and redirects.
        flag: &'static str,
    },
    /// Why the request failed, in one line (weir's `GET /explain?stream=ID` has the whole
    /// account): recorded as a failed stream ends.
    Why {
        /// What the last attempt met and why it was the last, no healthy host, or what
        /// weir answered and why.
        reason: Name,
    },
    /// The connection was closed.
    Close {
        /// Who closed it.
        by: Closer,
    },
    /// One turn of the worker's loop: from `epoll_wait` returning to the next call.
    WakeRound {
        /// The round's number on this worker.
        round: u64,
        /// Ready sockets `epoll_wait` returned.
        ready: u32,
        /// Time spent in `epoll_wait` before this round.
        waited_ns: u64,
        /// Time the round ran.
        ran_ns: u64,
    },
}

impl EventKind {
    /// The event's name: the value of its JSON `"event"` tag (`"read"`, `"wake_round"`…).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Accept { .. } => "accept",
            EventKind::ListenerFilter { .. } => "listener_filter",
            EventKind::FilterChain { .. } => "filter_chain",
            EventKind::Registered { .. } => "registered",
            EventKind::Ready { .. } => "ready",
            EventKind::Read { .. } => "read",
            EventKind::Write { .. } => "write",
            EventKind::RequestHead { .. } => "request_head",
            EventKind::RequestComplete => "request_complete",
            EventKind::ReadPaused { .. } => "read_paused",
            EventKind::ReadResumed { .. } => "read_resumed",
            EventKind::RouteMatched { .. } => "route_matched",
            EventKind::PoolCreated { .. } => "pool_created",
            EventKind::HostChosen { .. } => "host_chosen",
            EventKind::WaitingForConnection { .. } => "waiting_for_connection",
            EventKind::ConnectStarted { .. } => "connect_started",
            EventKind::Connected => "connected",
            EventKind::HealthCheck { .. } => "health_check",
            EventKind::HealthCheckResult { .. } => "health_check_result",
            EventKind::TlsHandshake { .. } => "tls_handshake",
            EventKind::TlsRecords { .. } => "tls_records",
            EventKind::StreamAttached { .. } => "stream_attached",
            EventKind::ResponseHead { .. } => "response_head",
            EventKind::ResponseComplete => "response_complete",
            EventKind::LocalReply { .. } => "local_reply",
            EventKind::Why { .. } => "why",
            EventKind::Close { .. } => "close",
            EventKind::WakeRound { .. } => "wake_round",
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// When, on the recorder's monotonic clock.
    pub at: Nanos,
    /// The worker thread (0-based).
    pub worker: u16,
    /// Where.
    pub lane: Lane,
    /// The socket's file descriptor (-1 for the worker lane).
    pub fd: i32,
    /// The connection's id (unique in the process; 0 for the worker lane).
    pub conn: u64,
    /// The stream's id (0 when no stream is involved).
    pub stream: u64,
    /// Which of the four events it belongs to.
    pub phase: Option<Phase>,
    /// What happened (flattened into the same JSON object).
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// An event, classified into its phase.
    pub fn new(
        at: Nanos,
        worker: u16,
        lane: Lane,
        fd: i32,
        conn: u64,
        stream: u64,
        kind: EventKind,
    ) -> Self {
        Event {
            at,
            worker,
            lane,
            fd,
            conn,
            stream,
            phase: Phase::of(lane, &kind),
            kind,
        }
    }
}

/// One request's flow: every event of its downstream connection, its upstream connection(s),
/// and the worker's wake rounds while it was in flight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flow {
    /// The stream's id.
    pub stream: u64,
    /// The worker that served it.
    pub worker: u16,
    /// The downstream connection's id.
    pub downstream: u64,
    /// First and last event times.
    pub start: Nanos,
    /// See `start`.
    pub end: Nanos,
    /// The response status (0 when none was sent).
    pub status: u16,
    /// The method and target.
    pub method: ShortText,
    /// See `method`.
    pub path: ShortText,
    /// Events were lost to the recorder's ring wrapping (a very busy worker).
    pub truncated: bool,
    /// The events, in time order.
    pub events: Vec<Event>,
}
