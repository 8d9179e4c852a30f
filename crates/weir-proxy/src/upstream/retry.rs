//! Retries: Envoy's `retry_policy` (which failures and statuses, how many times, with a
//! jittered exponential back-off, and a timeout per attempt), plus the keep-alive race of a
//! reused pooled connection (in `codec_client`).
//!
//! A stream is tried again only while its request can be replayed: its head and its whole body
//! so far are kept (up to the listener's `per_connection_buffer_limit_bytes`, 1 MiB by default,
//! as Envoy does), and while a retry waits for its back-off the client
//! is not read, so no body arrives with nowhere to go. A response that started going to the
//! client is never retried.

use std::time::Duration;

use weir_config::{RetryOn, RetryPolicy};
use weir_http1::Headers;

use crate::event::token::Id;
use crate::http::active_stream::Stream;
use crate::http::local_reply::{LocalReply, ResponseFlag};
use crate::upstream::circuit_breaker::Resource;
use crate::upstream::outlier::Outcome;
use crate::upstream::{ClusterState, UpstreamEnd};
use crate::why::Verdict;
use crate::worker::{Deferred, TimerKey, Worker};

/// What went wrong with an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryCause<'a> {
    /// The connection could not be made.
    Connect,
    /// The connection was closed, reset or spoke garbage before a response.
    Reset,
    /// No response within `per_try_timeout`.
    PerTryTimeout,
    /// A response with this status and these headers (a gRPC condition reads `grpc-status`).
    Status(u16, &'a Headers),
}

impl RetryCause<'_> {
    /// Whether the policy's `retry_on` covers this cause, as Envoy reads it.
    fn covered_by(self, policy: &RetryPolicy) -> bool {
        let on = policy.retry_on;
        let any_failure = RetryOn::FIVE_XX
            .with(RetryOn::GATEWAY_ERROR)
            .with(RetryOn::RESET);
        match self {
            RetryCause::Connect => on.any(any_failure.with(RetryOn::CONNECT_FAILURE)),
            RetryCause::Reset | RetryCause::PerTryTimeout => on.any(any_failure),
            RetryCause::Status(s, headers) => {
                (on.any(RetryOn::FIVE_XX) && s >= 500)
                    || (on.any(RetryOn::GATEWAY_ERROR) && matches!(s, 502..=504))
                    || (on.any(RetryOn::RETRIABLE_4XX) && s == 409)
                    || (on.any(RetryOn::RETRIABLE_STATUS_CODES)
                        && policy.retriable_status_codes.contains(&s))
                    || (on.any(RetryOn::GRPC)
                        && grpc_status(headers).is_some_and(|g| on.covers_grpc_status(g)))
            }
        }
    }
}

/// Gives back the retry the stream holds, if any (Envoy's `resetRetry`).
pub(crate) fn release_retry(clusters: &[ClusterState], stream: &mut Stream) {
    if std::mem::take(&mut stream.retry.holds_retry)
        && let Some(c) = clusters.get(stream.cluster)
    {
        c.breakers.default_priority().dec(Resource::Retries);
    }
}

/// A response's `grpc-status`, if it carries a number there.
fn grpc_status(headers: &Headers) -> Option<u8> {
    std::str::from_utf8(headers.get("grpc-status")?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Worker {
    /// The stream's retry policy: the one its internal request's headers made, or its
    /// route's, if any.
    pub(crate) fn retry_policy_of(&self, sid: Id) -> Option<&RetryPolicy> {
        let stream = self.streams.get(sid)?;
        if let Some(policy) = &stream.retry.policy {
            return Some(policy);
        }
        let ds = self.downstreams.get(stream.downstream)?;
        ds.chain.routes.retry_policy(stream.route?)
    }

    /// Whether to try the stream again after `cause` (the decision is noted for the
    /// failure's account). When its policy covers the cause but its retries are spent, the
    /// stream is marked (`URX`, `upstream_rq_retry_limit_exceeded`).
    pub(crate) fn should_retry(&mut self, sid: Id, cause: RetryCause) -> bool {
        let verdict = self.retry_verdict(sid, cause);
        self.note_verdict(sid, verdict);
        verdict.retries()
    }

    /// What the retry policy says of `cause`, with the counting that goes with it.
    pub(crate) fn retry_verdict(&mut self, sid: Id, cause: RetryCause) -> Verdict {
        // The retry under way, if any, is over: its attempt is being judged.
        if let Some(stream) = self.streams.get_mut(sid) {
            release_retry(&self.clusters, stream);
        }
        let Some(policy) = self.retry_policy_of(sid) else {
            return Verdict::NoPolicy;
        };
        if !cause.covered_by(policy) {
            return Verdict::NotCovered;
        }
        let num_retries = policy.num_retries;
        let Some(stream) = self.streams.get_mut(sid) else {
            return Verdict::NoPolicy;
        };
        if stream.response_started() {
            return Verdict::ResponseStarted;
        }
        if !stream.retry.possible {
            return Verdict::NotReplayable;
        }
        if stream.retry.attempts >= num_retries {
            stream.retry.limit_hit = true;
            if let Some(c) = self.stats.clusters.get(stream.cluster) {
                c.common.upstream_rq_retry_limit_exceeded.inc();
            }
            return Verdict::LimitReached { num_retries };
        }
        let breaker = self.clusters[stream.cluster].breakers.default_priority();
        if !breaker.can_create(Resource::Retries) {
            stream.retry.overflowed = true;
            if let Some(c) = self.stats.clusters.get(stream.cluster) {
                c.common.upstream_rq_retry_overflow.inc();
            }
            return Verdict::RetryBreakerOpen {
                in_use: breaker.count(Resource::Retries),
                max: breaker.max(Resource::Retries),
            };
        }
        Verdict::Retry {
            retry: stream.retry.attempts + 1,
            of: num_retries,
        }
    }

    /// Tries the stream again after the back-off: a random delay up to `base · 2^(n−1)`,
    /// at most `max_interval` (Envoy's fully jittered exponential back-off).
    pub(crate) fn schedule_retry(&mut self, sid: Id) {
        let Some((base, max)) = self
            .retry_policy_of(sid)
            .map(|p| (p.base_interval, p.max_interval))
        else {
            return;
        };
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.retry.attempts += 1;
        stream.retry.retried = true;
        stream.retry.holds_retry = true;
        let breakers = &self.clusters[stream.cluster].breakers;
        breakers.default_priority().inc(Resource::Retries);
        let exponent = (stream.retry.attempts - 1).min(16);
        if let Some(c) = self.stats.clusters.get(stream.cluster) {
            c.common.upstream_rq_retry.inc();
        }
        let ceiling = base.saturating_mul(1 << exponent).min(max);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let delay = Duration::from_nanos(self.rng.u64(0..=nanos));
        self.note_backoff(sid, delay);
        let timer = self.arm(delay, TimerKey::Retry(sid));
        if let Some(stream) = self.streams.get_mut(sid) {
            stream.retry.timer = Some(timer);
        }
    }

    /// The back-off is over: a new attempt (on a pooled or new connection, maybe another host).
    pub(crate) fn on_retry_timer(&mut self, sid: Id) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.retry.timer = None;
        let ds = stream.downstream;
        self.connect_stream(sid, false);
        self.flush_stream_upstream_of(sid);
        // The client was not read while the retry waited.
        self.deferred.push_back(Deferred::Downstream(ds));
    }

    /// Arms the attempt's `per_try_timeout`, if the policy has one.
    pub(crate) fn arm_per_try_timer(&mut self, sid: Id) {
        let Some(after) = self.retry_policy_of(sid).and_then(|p| p.per_try_timeout) else {
            return;
        };
        let timer = self.arm(after, TimerKey::PerTry(sid));
        let attempt = self.streams.get_mut(sid).and_then(|s| s.attempt.as_mut());
        match attempt {
            Some(attempt) => {
                let mut old = attempt.per_try_timer.replace(timer);
                self.disarm(&mut old);
            }
            None => {
                self.timers.cancel(timer);
            }
        }
    }

    /// No response within `per_try_timeout`: the attempt is abandoned and tried again if the
    /// policy says so, else answered 504 `UT` (or cut, if its response already started).
    pub(crate) fn on_per_try_timeout(&mut self, sid: Id) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        let Some(attempt) = stream.attempt.as_mut() else {
            return;
        };
        attempt.per_try_timer = None;
        let (cluster, host) = (stream.cluster, stream.upstream_host);
        if let Some(c) = self.stats.clusters.get(stream.cluster) {
            c.common.upstream_rq_per_try_timeout.inc();
            let hosts = &self.clusters[stream.cluster].hosts;
            if let Some(h) = hosts.stats(stream.upstream_host) {
                h.rq_timeout.inc();
            }
        }
        let started = stream.response_started();
        if !started {
            self.report_outlier(cluster, host, Outcome::Timeout);
        }
        self.note_attempt(sid, crate::why::Outcome::PerTryTimeout);
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        if started {
            stream
                .flag
                .get_or_insert(ResponseFlag::UpstreamRequestTimeout);
            self.note_verdict(sid, Verdict::ResponseStarted);
            return self.cut_stream(sid);
        }
        if let Some(up) = self.end_attempt(sid, UpstreamEnd::LocalReset) {
            self.close_upstream(up);
        }
        if self.should_retry(sid, RetryCause::PerTryTimeout) {
            return self.schedule_retry(sid);
        }
        // As Envoy's router words a per-try timeout that ends the request.
        let reply = LocalReply::failure(ResponseFlag::UpstreamRequestTimeout)
            .because("upstream_per_try_timeout");
        self.local_reply(sid, None, reply);
    }
}
