//! One request/response exchange on a downstream connection (Envoy's `ActiveStream`), as the
//! worker keeps it: its request side and response side, each a state, the router's view of it
//! (route, retries, the current attempt), its filters, timers and reporting.

use std::time::{Duration, Instant};

use bytes::Bytes;
use weir_config::RetryPolicy;
use weir_flow::ShortText;
use weir_http1::RequestHead;

use crate::codec::{ReceivedNames, StreamKey};
use crate::event::timer::TimerId;
use crate::event::token::Id;
use crate::http::filter::StreamFilters;
use crate::http::local_reply::ResponseFlag;
use crate::http::stream_log::StreamLog;
use crate::router::route_table::RouteRef;
use crate::why::Notes;

/// Where the request stands, as the client sends it.
///
/// ```text
///   Receiving ──(its end is decoded; for a tunnel, the client's FIN)──> Complete
/// ```
///
/// While receiving, reading the client may pause for back-pressure
/// ([`Stream::client_paused`]); once complete, the connection reads no more until the
/// response is done (pipelined requests wait in the input buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestState {
    Receiving,
    Complete,
}

/// Where the response stands, as weir sends it to the client.
///
/// ```text
///   Waiting ──(a head is encoded: the upstream's, or a local reply's)──> Sending
///   Sending ──(its end is encoded)──> Complete
/// ```
///
/// Once `Sending`, a failure can no longer become an error response: the stream is cut. A
/// `Waiting` stream can still be retried or answered locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseState {
    Waiting,
    Sending,
    Complete,
}

/// Whether a stream is a tunnel, and which kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tunnel {
    /// A plain request and response.
    No,
    /// An upgrade the route allows (`websocket`…): forwarded with its `Upgrade`; a `101`
    /// from the origin makes the stream a byte tunnel both ways.
    Upgrade,
    /// A CONNECT weir ends itself: a fresh connection to the route's cluster, `200` to the
    /// client once it is up, then bytes both ways.
    TerminateConnect,
}

/// The router's current attempt: the upstream connection carrying the request. Ended in one
/// place (`Worker::end_attempt`), whatever ends it.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) upstream: Id,
    /// When the request went to the connection (`upstream_rq_time`).
    pub(crate) started: Instant,
    /// The connection is still connecting (`upstream_rq_pending_active`).
    pub(crate) pending: bool,
    /// Its `per_try_timeout`.
    pub(crate) per_try_timer: Option<TimerId>,
    /// Response body bytes it brought (a failure's account says how far it came).
    pub(crate) response_bytes: u64,
}

/// The request as it goes upstream, kept so that another attempt can send it again (a retry,
/// or a fresh connection when a pooled one turns out to have been closed by the origin): the
/// request itself, not wire bytes, so the attempt's codec frames it. And the retries so far.
#[derive(Debug)]
pub(crate) struct RetryState {
    /// The head: held here while the filters decide, then as routed (rewrites applied).
    pub(crate) head: Option<RequestHead>,
    /// The body so far, while it fits the retry buffer.
    pub(crate) body: Vec<Bytes>,
    pub(crate) body_bytes: usize,
    /// False once the body outgrew the retry buffer or a retry was made.
    pub(crate) possible: bool,
    /// The request's end reached the router (an attempt sends it after the body).
    pub(crate) ended: bool,
    /// When it did: Envoy's "downstream request complete" time, from which the router counts
    /// `x-envoy-upstream-service-time` and the time a retry has left.
    pub(crate) ended_at: Option<Instant>,
    /// It was retried (`upstream_rq_retry_success` when the retry answers).
    pub(crate) retried: bool,
    /// Retries made under the route's retry policy.
    pub(crate) attempts: u32,
    /// The hosts its earlier attempts went to, gathered at each retry when its policy's
    /// `previous_hosts` predicate keeps a retry away from them.
    pub(crate) tried: Vec<Id>,
    /// The priority of each earlier attempt's host, gathered at each retry when its policy
    /// has `previous_priorities`.
    pub(crate) tried_priorities: Vec<u32>,
    /// The policy wanted another retry but none was left (`URX`).
    pub(crate) limit_hit: bool,
    /// The policy wanted another retry but the retries circuit breaker refused it (`UO`).
    pub(crate) overflowed: bool,
    /// It holds one of the cluster's retries (from its scheduling until the attempt it made
    /// is judged, or the stream ends).
    pub(crate) holds_retry: bool,
    /// A retry waits for its back-off.
    pub(crate) timer: Option<TimerId>,
    /// The retry policy an internal request's `x-envoy-*` headers made of the route's (see
    /// `router/internal_headers.rs`); `None`: the route's own.
    pub(crate) policy: Option<Box<RetryPolicy>>,
    /// `x-envoy-upstream-rq-timeout-alt-response`: the route timeout answers 204.
    pub(crate) timeout_alt_response: bool,
}

/// See the module documentation.
pub(crate) struct Stream {
    pub(crate) downstream: Id,
    /// Its key in its connection's codec (and in `Downstream::streams`).
    pub(crate) key: StreamKey,
    pub(crate) request: RequestState,
    pub(crate) response: ResponseState,
    /// Reading the client stopped: the upstream's queue is over its limit (resumed below half).
    pub(crate) client_paused: bool,
    /// Reading the upstream stopped: the client's queue is over its limit.
    pub(crate) upstream_paused: bool,
    /// The request has no body: its end follows its head.
    pub(crate) request_bodiless: bool,
    /// What the router made of it.
    pub(crate) tunnel: Tunnel,
    /// The request's authority (absolute-form target or Host), which routing reads.
    pub(crate) authority: Bytes,
    /// Its HTTP filters before the router, and where the request is among them.
    pub(crate) filters: StreamFilters,
    /// A filter asked to be woken (a fault delay).
    pub(crate) filter_timer: Option<TimerId>,
    /// A fault filter delayed the request (`DI`).
    pub(crate) delay_injected: bool,
    pub(crate) route: Option<RouteRef>,
    /// The router sent it to `cluster` (rather than answering it).
    pub(crate) forwarded: bool,
    pub(crate) cluster: usize,
    /// The host its request went to (in its cluster's `HostSlots`), once one was chosen.
    pub(crate) upstream_host: Option<Id>,
    /// The request's hash for a ring hash or Maglev cluster (`hash_policy`).
    pub(crate) lb_hash: Option<u64>,
    /// A `set-cookie` a cookie hash policy made up, for the response.
    pub(crate) set_cookie: Option<Box<str>>,
    pub(crate) route_timeout: Option<Duration>,
    pub(crate) route_timer: Option<TimerId>,
    /// The codec found the request ambiguous (a body on GET, HEAD or DELETE), or it is a
    /// tunnel: its upstream connection is closed after the response, never pooled.
    pub(crate) upstream_single_use: bool,
    /// The connection manager found the request internal (`internal_address_config`): the
    /// router reads its `x-envoy-*` headers.
    pub(crate) internal: bool,
    /// The request's `x-request-id`, for the response (`always_set_request_id_in_response`,
    /// or an internal request's `x-envoy-force-trace`).
    pub(crate) request_id_echo: Option<Box<Bytes>>,
    /// The request's header names as the client spelled them (the connection manager's
    /// `preserve_case`): every attempt writes them so.
    pub(crate) request_names: Option<Box<ReceivedNames>>,
    pub(crate) retry: RetryState,
    pub(crate) attempt: Option<Attempt>,
    /// It waits in its host's queue for a connection (a circuit breaker's connection limit
    /// was reached); it reads nothing more from its client meanwhile.
    pub(crate) queued: bool,
    /// The connection ends with this stream (the codec's rules, a drain, a cut response).
    pub(crate) close_after: bool,
    pub(crate) status: u16,
    pub(crate) flag: Option<ResponseFlag>,
    pub(crate) request_timer: Option<TimerId>,
    pub(crate) idle_timer: Option<TimerId>,
    pub(crate) last_activity: Instant,
    /// When its request head was decoded (`downstream_rq_time`).
    pub(crate) started: Instant,
    /// Its access log entry in the making, when its connection manager logs.
    pub(crate) log: Option<Box<StreamLog>>,
    /// Its id in flow traces.
    pub(crate) trace_id: u64,
    /// The recorder keeps this stream's flow: its method and target.
    pub(crate) traced: Option<(ShortText, ShortText)>,
    /// What it noted as it failed, for `GET /explain` (none while all goes well).
    pub(crate) why: Option<Box<Notes>>,
}

impl Stream {
    /// A stream for a request just decoded on `downstream`, its codec's stream `key`.
    pub(crate) fn new(
        downstream: Id,
        key: StreamKey,
        request_bodiless: bool,
        single_use: bool,
        now: Instant,
    ) -> Stream {
        Stream {
            downstream,
            key,
            request: RequestState::Receiving,
            response: ResponseState::Waiting,
            client_paused: false,
            upstream_paused: false,
            request_bodiless,
            tunnel: Tunnel::No,
            authority: Bytes::new(),
            filters: StreamFilters::none(),
            filter_timer: None,
            delay_injected: false,
            route: None,
            forwarded: false,
            cluster: 0,
            upstream_host: None,
            lb_hash: None,
            set_cookie: None,
            route_timeout: None,
            route_timer: None,
            upstream_single_use: single_use,
            internal: false,
            request_id_echo: None,
            request_names: None,
            retry: RetryState {
                head: None,
                body: Vec::new(),
                body_bytes: 0,
                possible: true,
                ended: false,
                ended_at: None,
                retried: false,
                tried: Vec::new(),
                tried_priorities: Vec::new(),
                attempts: 0,
                limit_hit: false,
                overflowed: false,
                holds_retry: false,
                timer: None,
                policy: None,
                timeout_alt_response: false,
            },
            attempt: None,
            queued: false,
            close_after: false,
            status: 0,
            flag: None,
            request_timer: None,
            idle_timer: None,
            last_activity: now,
            started: now,
            log: None,
            trace_id: 0,
            traced: None,
            why: None,
        }
    }

    pub(crate) fn request_complete(&self) -> bool {
        self.request == RequestState::Complete
    }

    /// Gives a response head the request's `x-request-id` when the stream keeps it for that
    /// (`always_set_request_id_in_response`, or an internal request's `x-envoy-force-trace`).
    pub(crate) fn echo_request_id(&self, headers: &mut weir_http1::Headers) {
        if let Some(id) = &self.request_id_echo {
            headers.set("x-request-id", Bytes::clone(id));
        }
    }

    /// A response head went to the client (or the whole response did).
    pub(crate) fn response_started(&self) -> bool {
        self.response != ResponseState::Waiting
    }

    pub(crate) fn response_complete(&self) -> bool {
        self.response == ResponseState::Complete
    }

    /// The current attempt's upstream connection.
    pub(crate) fn upstream(&self) -> Option<Id> {
        self.attempt.as_ref().map(|a| a.upstream)
    }

    /// Its `%RESPONSE_FLAGS%`. `abandoned`: the connection closed under it (Envoy's `DC`
    /// when no other flag explains it).
    pub(crate) fn response_flags(&self, abandoned: bool) -> &'static str {
        match (self.flag, abandoned) {
            _ if self.retry.limit_hit => ResponseFlag::with_retry_limit(self.flag),
            _ if self.retry.overflowed => ResponseFlag::with_retry_overflow(self.flag),
            // A fault delay (`DI`) is shown with an abort after it, or alone; with another
            // failure that failure's flag stands alone.
            (Some(ResponseFlag::FaultInjected), _) if self.delay_injected => "DI,FI",
            (Some(flag), _) => flag.letters(),
            (None, _) if self.delay_injected => "DI",
            (None, true) => "DC",
            (None, false) => "",
        }
    }
}
