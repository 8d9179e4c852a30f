//! Whether a request gets a connection now, waits for one, or is refused: the cluster's
//! circuit breakers ([`super::circuit_breaker`]) applied the way Envoy's connection pool
//! applies them.
//!
//! ```text
//!             idle pooled connection ──▶ requests < max_requests ? attach : 503 UO
//!            ╱
//!   request ─
//!            ╲ none ──▶ pending < max_pending_requests ?
//!                         no  ──▶ 503 UO (upstream_rq_pending_overflow)
//!                         yes ──▶ connections below the cluster's and the host's limits
//!                                 (or the host has no connection on this worker)?
//!                                   yes ──▶ connect; the request waits on it (pending)
//!                                   no  ──▶ wait in the host's queue (upstream_cx_overflow)
//!                                           until one of its connections is released
//!                                           or closes
//! ```
//!
//! A request waiting on a connect becomes active when the connect completes, if
//! `max_requests` allows then (else 503 UO, `upstream_rq_active_overflow`). Waiting requests
//! read nothing more from their client, and count in `upstream_rq_pending_active`.

use crate::event::token::Id;
use crate::http::active_stream::Tunnel;
use crate::http::local_reply::{LocalReply, ResponseFlag};
use crate::upstream::UpstreamEnd;
use crate::upstream::circuit_breaker::Resource;
use crate::worker::{Deferred, Worker};
use weir_flow::EventKind;

/// What a request that needs a new connection does.
pub(super) enum Admission {
    /// Connect.
    Open,
    /// Wait in its host's queue.
    Wait,
    /// Refused (answered 503 `UO`).
    Refused,
}

impl Worker {
    /// Gives a stream the idle pooled connection `up`, if `max_requests` allows; else puts
    /// the connection back and answers 503 `UO`.
    pub(super) fn attach_pooled(&mut self, sid: Id, cluster: usize, host: Id, up: Id) {
        let state = &mut self.clusters[cluster];
        if !state
            .breakers
            .default_priority()
            .can_create(Resource::Requests)
        {
            if let Some(slot) = state.hosts.get_mut(host) {
                slot.pool.release(up);
            }
            if let Some(c) = self.stats.clusters.get(cluster) {
                c.common.upstream_rq_active_overflow.inc();
            }
            return self.overflow(sid, host, Resource::Requests);
        }
        self.attach(sid, up);
    }

    /// For a stream with no idle connection: whether it connects, waits, or is refused.
    pub(super) fn admit_new_connection(&mut self, sid: Id, cluster: usize, host: Id) -> Admission {
        let breaker = self.clusters[cluster].breakers.default_priority();
        if !breaker.can_create(Resource::Pending) {
            if let Some(c) = self.stats.clusters.get(cluster) {
                c.common.upstream_rq_pending_overflow.inc();
            }
            self.overflow(sid, host, Resource::Pending);
            return Admission::Refused;
        }
        if self.may_connect(cluster, host) {
            return Admission::Open;
        }
        if let Some(c) = self.stats.clusters.get(cluster) {
            c.common.upstream_cx_overflow.inc();
        }
        if self.no_connection_here(cluster, host) {
            return Admission::Open;
        }
        self.enqueue(sid, cluster, host);
        Admission::Wait
    }

    /// Whether one more connection to the host is within the cluster's `max_connections` and
    /// the host's `per_host_thresholds`.
    fn may_connect(&self, cluster: usize, host: Id) -> bool {
        let state = &self.clusters[cluster];
        state
            .breakers
            .default_priority()
            .can_create(Resource::Connections)
            && state
                .breakers
                .host_allows(self.host_connections(cluster, host))
    }

    /// The host has no connection on this worker: its waiting requests would wait for
    /// nothing, so Envoy makes one past the limit then, and so does weir.
    fn no_connection_here(&self, cluster: usize, host: Id) -> bool {
        let slot = self.clusters[cluster].hosts.get(host);
        slot.is_none_or(|slot| slot.conns == 0)
    }

    /// The host's open connections on every worker.
    fn host_connections(&self, cluster: usize, host: Id) -> u64 {
        let slot = self.clusters[cluster].hosts.get(host);
        slot.map_or(0, |s| {
            s.host
                .stats
                .iter()
                .map(|st| st.cx_active.get().max(0) as u64)
                .sum()
        })
    }

    /// A terminated CONNECT's tunnel is a connection of its own: no pooled one will do.
    fn needs_fresh(&self, sid: Id) -> bool {
        self.streams
            .get(sid)
            .is_some_and(|s| s.tunnel == Tunnel::TerminateConnect)
    }

    /// The stream waits in its host's queue (pending).
    fn enqueue(&mut self, sid: Id, cluster: usize, host: Id) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.queued = true;
        stream.upstream_host = Some(host);
        let state = &mut self.clusters[cluster];
        state.breakers.default_priority().inc(Resource::Pending);
        if let Some(slot) = state.hosts.get_mut(host) {
            slot.waiting.push_back(sid);
        }
        if let Some(c) = self.stats.clusters.get(cluster) {
            c.common.upstream_rq_pending_total.inc();
            c.common.upstream_rq_pending_active.inc();
        }
        if self.recorder.enabled() {
            let state = &self.clusters[cluster];
            let name = state.name.clone();
            if let Some(host) = state.hosts.address(host) {
                self.trace_stream(sid, || EventKind::WaitingForConnection {
                    cluster: name,
                    host,
                });
            }
        }
    }

    /// A connection of the host closed: its waiting streams may connect (later in the round,
    /// outside the handler that found it). A released one wakes them the same way, from
    /// `release_upstream`, which has the host's slot at hand.
    pub(crate) fn wake_waiting(&mut self, cluster: usize, host: Id) {
        let waiting = self.clusters[cluster]
            .hosts
            .get(host)
            .is_some_and(|slot| !slot.waiting.is_empty());
        if waiting {
            self.deferred.push_back(Deferred::Waiting { cluster, host });
        }
    }

    /// Gives the host's waiting streams, oldest first, its idle connections, then new ones
    /// while the limits allow.
    pub(crate) fn serve_waiting(&mut self, cluster: usize, host: Id) {
        while let Some(sid) = self.next_waiting(cluster, host) {
            let fresh = self.needs_fresh(sid);
            let sni = self.connection_sni(sid, cluster, host);
            let pooled = match fresh {
                false => self.take_pooled(cluster, host, sni.as_deref()),
                true => None,
            };
            let connects = pooled.is_none()
                && (self.may_connect(cluster, host) || self.no_connection_here(cluster, host));
            if pooled.is_none() && !connects {
                if let Some(slot) = self.clusters[cluster].hosts.get_mut(host) {
                    slot.waiting.push_front(sid);
                }
                return;
            }
            self.unqueue(sid, cluster);
            match pooled {
                Some(up) => self.attach_pooled(sid, cluster, host, up),
                None => self.open_upstream(sid, cluster, host, sni),
            }
            self.flush_stream_upstream_of(sid);
            if let Some(ds) = self.streams.get(sid).map(|s| s.downstream) {
                // Its client was not read while it waited.
                self.deferred.push_back(Deferred::Downstream(ds));
            }
        }
        // Its queue held only streams that had ended: a host that left goes now.
        self.clusters[cluster].hosts.forget_if_gone(host);
    }

    /// The oldest stream still waiting for the host (streams that ended, or left the queue
    /// for a retry elsewhere, are dropped from it on the way).
    fn next_waiting(&mut self, cluster: usize, host: Id) -> Option<Id> {
        let slot = self.clusters[cluster].hosts.get_mut(host)?;
        while let Some(sid) = slot.waiting.pop_front() {
            let waits = self
                .streams
                .get(sid)
                .is_some_and(|s| s.queued && s.upstream_host == Some(host));
            if waits {
                return Some(sid);
            }
        }
        None
    }

    /// The stream leaves its host's queue (to a connection, or ended).
    fn unqueue(&mut self, sid: Id, cluster: usize) {
        if let Some(stream) = self.streams.get_mut(sid) {
            stream.queued = false;
        }
        self.clusters[cluster]
            .breakers
            .default_priority()
            .dec(Resource::Pending);
        if let Some(c) = self.stats.clusters.get(cluster) {
            c.common.upstream_rq_pending_active.dec();
        }
    }

    /// A connect completed for a stream waiting on it: whether `max_requests` lets it become
    /// active. If not, the stream is answered 503 `UO` and the connection, which holds its
    /// request unsent, is closed (Envoy keeps its connection: it had not written the request).
    pub(crate) fn admit_on_connect(&mut self, up: Id, sid: Id, cluster: usize) -> bool {
        let breaker = self.clusters[cluster].breakers.default_priority();
        if breaker.can_create(Resource::Requests) {
            breaker.dec(Resource::Pending);
            breaker.inc(Resource::Requests);
            return true;
        }
        if let Some(c) = self.stats.clusters.get(cluster) {
            c.common.upstream_rq_active_overflow.inc();
        }
        // Noted while its attempt (the new connection) is still there.
        self.note_attempt(sid, crate::why::Outcome::Overflow(Resource::Requests));
        self.end_attempt(sid, UpstreamEnd::Failed);
        if let Some(conn) = self.upstreams.get_mut(up) {
            conn.stream = None;
        }
        self.close_upstream(up);
        let reply = LocalReply::failure(ResponseFlag::UpstreamOverflow);
        self.local_reply(sid, None, reply);
        false
    }

    /// 503 `UO`: a circuit breaker refused the request its way to `host`.
    fn overflow(&mut self, sid: Id, host: Id, breaker: Resource) {
        self.note_attempt_at(sid, crate::why::Outcome::Overflow(breaker), Some(host));
        let reply = LocalReply::failure(ResponseFlag::UpstreamOverflow);
        self.local_reply(sid, None, reply);
    }
}
