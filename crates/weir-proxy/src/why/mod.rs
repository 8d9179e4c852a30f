//! "Why did this request fail?", answered by the worker that served it: what each upstream
//! attempt met (host, new or pooled connection, refused, reset after how many bytes, which
//! timeout), what the router decided after it (retry and its back-off, or why not), the
//! circuit breakers and the host's pool at that moment, no healthy host and why, and the
//! response flags and `%RESPONSE_CODE_DETAILS%` as the access log has them.
//!
//! A stream notes these only once something fails (a request that goes well allocates
//! nothing), and each worker keeps its last [`KEPT`] failed requests whether or not the flow
//! recorder is on: failures are rare, and the answer must be there when asked
//! (`GET /explain`). The worker's side is in `notes.rs`.

mod notes;
mod render;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use weir_flow::Name;

use crate::upstream::circuit_breaker::{Breaker, Resource};
use crate::upstream::host_set::{HEALTH_ACTIVE_HC, HEALTH_OUTLIER, HostClass, HostSet};

/// Failed requests each worker keeps, newest first; older ones drop off.
pub(crate) const KEPT: usize = 128;

/// What a stream has noted as it failed. Boxed on the stream, made at the first failure.
#[derive(Debug, Clone, Default)]
pub(crate) struct Notes {
    /// Each attempt that did not give the answer, in order.
    pub(crate) attempts: Vec<AttemptNote>,
    /// weir answered itself: the reply's `%RESPONSE_CODE_DETAILS%`.
    pub(crate) local_details: Option<&'static str>,
    /// No host could be chosen: the cluster's hosts then.
    pub(crate) hosts: Option<HostCounts>,
}

/// How an attempt had its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionUse {
    /// A new connection was made (or tried) for it.
    New,
    /// A pooled connection that had carried requests before.
    Reused,
    /// It never had one (a circuit breaker refused it, or it waited for one).
    None,
}

/// What ended an attempt without the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    ConnectRefused,
    ConnectFailed,
    /// The cluster's `connect_timeout` passed.
    ConnectTimeout,
    /// The TLS handshake with the origin failed.
    Tls,
    /// The origin closed the connection (FIN) before the response ended.
    Closed,
    /// The origin reset the connection.
    Reset,
    /// The origin's response was malformed.
    ProtocolError,
    /// No response head within the retry policy's `per_try_timeout`.
    PerTryTimeout,
    /// The route's `timeout` passed.
    RouteTimeout,
    /// The origin answered with this status.
    Status(u16),
    /// A circuit breaker refused it.
    Overflow(Resource),
}

/// What the router decided after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Retried under the route's policy: retry `retry` of at most `of`.
    Retry { retry: u32, of: u32 },
    /// A pooled connection the origin had closed: sent once more on a fresh connection (no
    /// policy needed, the request is idempotent).
    FreshConnection,
    /// The route has no retry policy.
    NoPolicy,
    /// The policy's `retry_on` does not cover what happened.
    NotCovered,
    /// The response had started: it could only be cut.
    ResponseStarted,
    /// The request could not be sent again (its body outgrew the retry buffer, or it was a
    /// tunnel).
    NotReplayable,
    /// The policy's `num_retries` were spent (`URX`).
    LimitReached { num_retries: u32 },
    /// The retries circuit breaker was open (`UO`).
    RetryBreakerOpen { in_use: u64, max: u64 },
}

impl Verdict {
    /// Whether the request goes again.
    pub(crate) fn retries(self) -> bool {
        matches!(self, Verdict::Retry { .. } | Verdict::FreshConnection)
    }
}

/// One circuit breaker's use against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Use {
    pub(crate) in_use: u64,
    pub(crate) max: u64,
}

/// The cluster's circuit breakers (default priority) at a moment, for the whole proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Breakers {
    pub(crate) connections: Use,
    pub(crate) pending: Use,
    pub(crate) requests: Use,
    pub(crate) retries: Use,
}

impl Breakers {
    pub(crate) fn of(b: &Breaker) -> Breakers {
        let take = |r| Use {
            in_use: b.count(r),
            max: b.max(r),
        };
        Breakers {
            connections: take(Resource::Connections),
            pending: take(Resource::Pending),
            requests: take(Resource::Requests),
            retries: take(Resource::Retries),
        }
    }
}

/// The attempt's host's pool on this worker at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pool {
    /// Connections open to the host (busy or idle).
    pub(crate) connections: u32,
    /// Requests waiting for one of them.
    pub(crate) waiting: u32,
}

/// One attempt that did not give the answer.
#[derive(Debug, Clone)]
pub(crate) struct AttemptNote {
    /// When the attempt started (which attempt it is: one noted twice, an error status then a
    /// reset in its body, is one note).
    pub(crate) started: Option<std::time::Instant>,
    pub(crate) host: Option<SocketAddr>,
    pub(crate) connection: ConnectionUse,
    pub(crate) outcome: Outcome,
    /// From the attempt's start (its host chosen) to its end.
    pub(crate) took: Duration,
    /// The response head that had arrived, if any.
    pub(crate) response_status: Option<u16>,
    /// Response body bytes that had arrived.
    pub(crate) response_bytes: u64,
    /// What the router did next (`None`: nothing to decide, the stream ended with it).
    pub(crate) verdict: Option<Verdict>,
    /// The retry's back-off, when it was retried under a policy.
    pub(crate) backoff: Option<Duration>,
    pub(crate) breakers: Breakers,
    pub(crate) pool: Option<Pool>,
}

/// A cluster's hosts by how the balancer sees them, when none could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct HostCounts {
    pub(crate) total: u32,
    pub(crate) healthy: u32,
    pub(crate) degraded: u32,
    /// Failing active health checks (or not yet passed them).
    pub(crate) failed_health_check: u32,
    /// Ejected by outlier detection.
    pub(crate) ejected: u32,
    /// Marked unhealthy by its endpoint's `health_status`.
    pub(crate) unhealthy_status: u32,
    /// `DRAINING`.
    pub(crate) excluded: u32,
    /// A new pool for the host was refused by `max_connection_pools`.
    pub(crate) pools_full: bool,
}

impl HostCounts {
    pub(crate) fn of(set: &HostSet) -> HostCounts {
        let mut c = HostCounts::default();
        for host in &set.hosts {
            c.total += 1;
            match host.class() {
                HostClass::Healthy => c.healthy += 1,
                HostClass::Degraded => c.degraded += 1,
                HostClass::Excluded => c.excluded += 1,
                HostClass::Unhealthy if host.health & HEALTH_ACTIVE_HC != 0 => {
                    c.failed_health_check += 1
                }
                HostClass::Unhealthy if host.health & HEALTH_OUTLIER != 0 => c.ejected += 1,
                HostClass::Unhealthy => c.unhealthy_status += 1,
            }
        }
        c
    }
}

/// A failed request, as its worker keeps it.
#[derive(Debug, Clone)]
pub(crate) struct FailureRecord {
    /// The stream's id (the flow trace's).
    pub(crate) stream: u64,
    pub(crate) worker: u16,
    /// When it ended.
    pub(crate) at: SystemTime,
    /// From its request head to its end.
    pub(crate) duration: Duration,
    pub(crate) method: Box<str>,
    pub(crate) authority: Box<str>,
    pub(crate) path: Box<str>,
    pub(crate) request_id: Option<Box<str>>,
    pub(crate) downstream: SocketAddr,
    /// The virtual host and route names, when a route matched.
    pub(crate) route: Option<(Name, Name)>,
    /// The cluster it went to, when the router forwarded it.
    pub(crate) cluster: Option<Name>,
    /// The status the client got (0: none, the connection closed first).
    pub(crate) status: u16,
    /// `%RESPONSE_FLAGS%`.
    pub(crate) flags: &'static str,
    /// `%RESPONSE_CODE_DETAILS%`.
    pub(crate) details: &'static str,
    /// The response had started when the failure came: it was cut short.
    pub(crate) cut: bool,
    pub(crate) notes: Notes,
}

/// A worker's last failed requests, newest last.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    kept: std::collections::VecDeque<FailureRecord>,
}

impl FailureLog {
    pub(crate) fn push(&mut self, record: FailureRecord) {
        if self.kept.len() == KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(record);
    }

    /// Newest first.
    pub(crate) fn recent(&self) -> impl Iterator<Item = &FailureRecord> {
        self.kept.iter().rev()
    }
}
