//! The worker's side of [`super`]: what the router and the codec client note as an attempt
//! fails, and the record a failed stream leaves when it ends.

use std::time::SystemTime;

use weir_flow::EventKind;

use super::{AttemptNote, Breakers, ConnectionUse, FailureRecord, HostCounts, Notes, Outcome};
use super::{Pool, Verdict};
use crate::event::token::Id;
use crate::http::active_stream::Stream;
use crate::http::local_reply::LocalReply;
use crate::worker::Worker;

impl Worker {
    /// The stream's notes, made at its first failure.
    fn notes(&mut self, sid: Id) -> Option<&mut Notes> {
        let stream = self.streams.get_mut(sid)?;
        Some(stream.why.get_or_insert_with(Box::default))
    }

    /// Notes how the stream's current attempt ended, before it is ended: its host and
    /// connection, what it met and how far its response had come, the cluster's circuit
    /// breakers and the host's pool now.
    pub(crate) fn note_attempt(&mut self, sid: Id, outcome: Outcome) {
        self.note_attempt_at(sid, outcome, None);
    }

    /// [`Worker::note_attempt`], at `host` (the stream's own when `None`).
    pub(crate) fn note_attempt_at(&mut self, sid: Id, outcome: Outcome, host: Option<Id>) {
        let Some(stream) = self.streams.get(sid) else {
            return;
        };
        let Some(cluster) = self.clusters.get(stream.cluster) else {
            return;
        };
        let connection = match &stream.attempt {
            Some(a) => match self.upstreams.get(a.upstream).is_some_and(|u| u.reused) {
                true => ConnectionUse::Reused,
                false => ConnectionUse::New,
            },
            None if matches!(
                outcome,
                Outcome::ConnectRefused | Outcome::ConnectFailed | Outcome::ConnectTimeout
            ) =>
            {
                ConnectionUse::New
            }
            None => ConnectionUse::None,
        };
        // A route timeout during a retry's back-off finds no attempt under way: no host.
        let at_host = stream.attempt.is_some() || stream.queued || outcome != Outcome::RouteTimeout;
        let slot = (host.or(stream.upstream_host))
            .filter(|_| at_host)
            .and_then(|h| cluster.hosts.get(h));
        let started = stream.attempt.as_ref().map(|a| a.started);
        let note = AttemptNote {
            started,
            host: slot.map(|s| s.host.spec.address),
            connection,
            outcome,
            took: stream.attempt.as_ref().map_or_else(Default::default, |a| {
                self.now.saturating_duration_since(a.started)
            }),
            response_status: stream.response_started().then_some(stream.status),
            response_bytes: stream.attempt.as_ref().map_or(0, |a| a.response_bytes),
            verdict: None,
            backoff: None,
            breakers: Breakers::of(cluster.breakers.default_priority()),
            pool: slot.map(|s| Pool {
                connections: s.conns,
                waiting: s.waiting.len() as u32,
            }),
        };
        let Some(notes) = self.notes(sid) else {
            return;
        };
        match notes.attempts.last_mut() {
            // The same attempt again (its error status was noted, then its body failed): what
            // it met last stands, and the router decides anew.
            Some(last) if started.is_some() && last.started == started => *last = note,
            _ => notes.attempts.push(note),
        }
    }

    /// What the router decided after the attempt just noted (nothing when none was).
    pub(crate) fn note_verdict(&mut self, sid: Id, verdict: Verdict) {
        let Some(notes) = self.streams.get_mut(sid).and_then(|s| s.why.as_mut()) else {
            return;
        };
        if let Some(last) = notes.attempts.last_mut()
            && last.verdict.is_none()
        {
            last.verdict = Some(verdict);
        }
    }

    /// The back-off of the retry just decided.
    pub(crate) fn note_backoff(&mut self, sid: Id, backoff: std::time::Duration) {
        let Some(notes) = self.streams.get_mut(sid).and_then(|s| s.why.as_mut()) else {
            return;
        };
        if let Some(last) = notes.attempts.last_mut() {
            last.backoff = Some(backoff);
        }
    }

    /// No host could be chosen in `cluster`: its hosts as the balancer saw them.
    pub(crate) fn note_no_host(&mut self, sid: Id, cluster: usize, pools_full: bool) {
        let Some(state) = self.clusters.get(cluster) else {
            return;
        };
        let counts = HostCounts {
            pools_full,
            ..HostCounts::of(state.hosts.set())
        };
        if let Some(notes) = self.notes(sid) {
            notes.hosts = Some(counts);
        }
    }

    /// weir answers the stream itself: a failure or an error status is noted (a direct
    /// response or a redirect is what the config asked for, not a failure, unless it is a
    /// 5xx: a 503 is worth explaining whoever chose it).
    pub(crate) fn note_local_reply(&mut self, sid: Id, reply: &LocalReply) {
        let configured = reply.details == "direct_response" && reply.status < 500;
        if !configured && (reply.status >= 400 || reply.flag.is_some()) {
            let details = reply.details;
            if let Some(notes) = self.notes(sid) {
                notes.local_details = Some(details);
            }
        }
    }

    /// A stream ends (it has left the slab): if it failed — a 5xx, an error weir answered, a
    /// response cut short, or a client that left after attempts had failed — its record is
    /// kept, and its flow (when traced) says why. A stream abandoned with its connection has
    /// its flow's `why` recorded as the connection closes ([`Worker::why_of`]).
    pub(crate) fn keep_failure(&mut self, stream: &Stream, abandoned: bool) {
        let Some(record) = self.failure_record(stream, abandoned) else {
            return;
        };
        if stream.traced.is_some() && !abandoned {
            let reason = record.summary();
            self.trace_ended_stream(stream, || EventKind::Why {
                reason: reason.into(),
            });
        }
        self.failures.push(record);
    }

    /// What a stream's flow says of its failure when its connection closes under it.
    pub(crate) fn why_of(&self, stream: &Stream) -> Option<String> {
        self.failure_record(stream, true).map(|r| r.summary())
    }

    /// A stream's failure record, if it failed.
    fn failure_record(&self, stream: &Stream, abandoned: bool) -> Option<FailureRecord> {
        let started = stream.response_started();
        let failed = stream.status >= 500 && started
            || stream.flag.is_some()
            || stream.retry.limit_hit
            || stream.retry.overflowed
            || stream
                .why
                .as_ref()
                .is_some_and(|n| n.local_details.is_some());
        let left_after_failures = abandoned && stream.why.is_some();
        if !(failed || left_after_failures) {
            return None;
        }
        let notes = stream.why.as_deref().cloned().unwrap_or_default();
        // A local reply sets a flag too; a cut is an origin's response that failed midway.
        let cut = started && stream.flag.is_some() && notes.local_details.is_none();
        let details = match (notes.local_details, started, abandoned) {
            (Some(d), _, _) => d,
            (None, true, _) => "via_upstream",
            (None, false, true) => "downstream_remote_disconnect",
            (None, false, false) => "",
        };
        let ds = self.downstreams.get(stream.downstream);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned().into_boxed_str();
        let (method, path, request_id) = match (&stream.retry.head, &stream.traced) {
            (Some(head), _) => (
                text(&head.method),
                text(&head.target),
                head.headers.get("x-request-id").map(|v| text(v)),
            ),
            (None, Some((method, path))) => (method.as_str().into(), path.as_str().into(), None),
            (None, None) => ("-".into(), "-".into(), None),
        };
        let record = FailureRecord {
            stream: stream.trace_id,
            worker: self.index as u16,
            at: SystemTime::now(),
            duration: self.now.saturating_duration_since(stream.started),
            method,
            authority: text(&stream.authority),
            path,
            request_id,
            downstream: ds.map_or(([0, 0, 0, 0], 0).into(), |d| d.peer),
            route: ds.zip(stream.route).map(|(d, r)| d.chain.routes.names(r)),
            cluster: (stream.forwarded)
                .then(|| self.clusters.get(stream.cluster).map(|c| c.name.clone()))
                .flatten(),
            status: if started { stream.status } else { 0 },
            flags: stream.response_flags(abandoned),
            details,
            cut,
            notes,
        };
        Some(record)
    }
}
