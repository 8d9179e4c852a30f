//! When an upstream connection fails: what it counts, whether the stream is tried again,
//! and the local reply (or the cut response) it gets otherwise.

use crate::event::token::Id;
use crate::http::local_reply::{LocalReply, ResponseFlag};
use crate::upstream::UpstreamEnd;
use crate::upstream::outlier::Outcome;
use crate::upstream::retry::RetryCause;
use crate::why::{self, Verdict};
use crate::worker::Worker;

/// Why an upstream connection failed, which decides the local reply and whether to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// connect() failed.
    ConnectFailed,
    /// connect() was refused (ECONNREFUSED).
    ConnectRefused,
    /// The cluster's connect_timeout passed.
    ConnectTimeout,
    /// The origin closed the connection (FIN) before the response ended.
    Termination,
    /// The origin reset the connection.
    Reset,
    /// The origin's response was malformed.
    Protocol,
    /// The TLS session with the origin failed: its handshake (an untrusted certificate, no
    /// common version or suite) or a bad record. A connection failure to Envoy (`UF`).
    Tls,
}

impl Failure {
    /// No connection was had (connect failed, refused, timed out, or its TLS handshake
    /// failed), as opposed to a request that failed on one.
    fn is_connect(self) -> bool {
        matches!(
            self,
            Failure::ConnectFailed
                | Failure::ConnectRefused
                | Failure::ConnectTimeout
                | Failure::Tls
        )
    }

    /// The failure as an attempt's account says it.
    fn outcome(self) -> why::Outcome {
        match self {
            Failure::ConnectFailed => why::Outcome::ConnectFailed,
            Failure::ConnectRefused => why::Outcome::ConnectRefused,
            Failure::ConnectTimeout => why::Outcome::ConnectTimeout,
            Failure::Termination => why::Outcome::Closed,
            Failure::Reset => why::Outcome::Reset,
            Failure::Protocol => why::Outcome::ProtocolError,
            Failure::Tls => why::Outcome::Tls,
        }
    }

    /// A failed read or write: a TLS error (the transport says `InvalidData` for those and
    /// for nothing else), a reset, or else the connection ended.
    pub(super) fn of_io(e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::InvalidData => Failure::Tls,
            std::io::ErrorKind::ConnectionReset => Failure::Reset,
            _ => Failure::Termination,
        }
    }
}

impl Worker {
    /// An upstream connection failed: close it, then retry the stream once on a fresh
    /// connection (a pooled connection the origin had closed, before any response byte), or
    /// answer with Envoy's status and flag, or cut a response that already started.
    pub(crate) fn upstream_failed(&mut self, id: Id, failure: Failure) {
        let Some(up) = self.upstreams.get(id) else {
            return;
        };
        let (sid, reused, seen) = (up.stream, up.reused, up.response_seen);
        let (cluster, host) = (up.cluster, up.host);
        // A TLS error once the origin has answered is a broken connection, not a failed one.
        let failure = match failure {
            Failure::Tls if seen => Failure::Reset,
            other => other,
        };
        self.count_failure(cluster, host, failure);
        if let Some(sid) = sid {
            self.note_attempt(sid, failure.outcome());
        }
        if let Some(up) = self.upstreams.get_mut(id) {
            up.closed_by_peer = matches!(failure, Failure::Termination | Failure::Reset);
        }
        self.close_upstream(id);
        let Some(sid) = sid else {
            return;
        };
        let outcome = match failure.is_connect() {
            true => Outcome::ConnectFailed,
            false => Outcome::RequestFailed,
        };
        self.report_outlier(cluster, Some(host), outcome);
        self.end_attempt(sid, UpstreamEnd::Failed);
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        if stream.response_started() {
            stream.flag.get_or_insert(match failure {
                f if f.is_connect() => ResponseFlag::UpstreamConnectionFailure,
                Failure::Termination => ResponseFlag::UpstreamConnectionTermination,
                Failure::Reset => ResponseFlag::UpstreamRemoteReset,
                _ => ResponseFlag::UpstreamProtocolError,
            });
            self.note_verdict(sid, Verdict::ResponseStarted);
            return self.cut_stream(sid);
        }
        // The keep-alive race: without a retry policy, an idempotent request (only those keep
        // their body for it) that met a pooled connection the origin had closed goes once more
        // on a fresh connection. Under a policy, the policy alone decides.
        let stale = reused && !seen && matches!(failure, Failure::Termination | Failure::Reset);
        let has_policy = stream.route.is_some_and(|r| {
            self.downstreams
                .get(stream.downstream)
                .is_some_and(|d| d.chain.routes.retry_policy(r).is_some())
        });
        if stale && stream.retry.possible && !has_policy {
            stream.retry.possible = false;
            stream.retry.retried = true;
            if let Some(c) = self.stats.clusters.get(stream.cluster) {
                c.common.upstream_rq_retry.inc();
            }
            tracing::debug!("pooled connection was closed by the origin; retrying on a fresh one");
            self.note_verdict(sid, Verdict::FreshConnection);
            self.connect_stream(sid, true);
            self.flush_stream_upstream_of(sid);
            return;
        }
        let cause = match failure.is_connect() {
            true => RetryCause::Connect,
            false => RetryCause::Reset,
        };
        if self.should_retry(sid, cause) {
            return self.schedule_retry(sid);
        }
        let reply = match failure {
            Failure::ConnectFailed => LocalReply::failure(ResponseFlag::UpstreamConnectionFailure),
            Failure::ConnectRefused => LocalReply::connect_refused(),
            Failure::ConnectTimeout => LocalReply::connect_timeout(),
            Failure::Termination => {
                LocalReply::failure(ResponseFlag::UpstreamConnectionTermination)
            }
            Failure::Reset => LocalReply::failure(ResponseFlag::UpstreamRemoteReset),
            Failure::Protocol => LocalReply::failure(ResponseFlag::UpstreamProtocolError),
            Failure::Tls => LocalReply::tls_failure(),
        };
        self.local_reply(sid, None, reply);
    }

    /// The cluster's and the host's counters of a failed connection, as Envoy keeps them.
    fn count_failure(&self, cluster: usize, host: Id, failure: Failure) {
        if let Some(c) = self.stats.clusters.get(cluster) {
            match failure {
                f if f.is_connect() => {
                    c.common.upstream_cx_connect_fail.inc();
                    if let Some(h) = self.clusters[cluster].hosts.stats(Some(host)) {
                        h.cx_connect_fail.inc();
                    }
                    if failure == Failure::ConnectTimeout {
                        c.common.upstream_cx_connect_timeout.inc();
                    }
                }
                Failure::Reset => c.common.upstream_rq_rx_reset.inc(),
                Failure::Protocol => c.common.upstream_cx_protocol_error.inc(),
                _ => {}
            }
        }
    }
}
