//! The upstream side of a stream: choosing a host, taking a pooled connection or connecting a
//! new one, writing the request (the seed's "Upstream Write Request"), and decoding the
//! response (its "Upstream Read Response") into the connection manager's encode path.
//!
//! An upstream connection carries one request at a time. It returns to its host's pool only
//! when the response ended cleanly, the request was complete, no stray bytes followed the
//! response, and both sides allowed keep-alive; anything else closes it.

use crate::codec::ResponsePart;
use crate::codec::http1::Http1Client;
use crate::event::token::{Id, Kind, token};
use crate::http::active_stream::{Attempt, Tunnel};
use crate::http::local_reply::{LocalReply, ResponseFlag};
use crate::network::connection::ReadOutcome;
use crate::network::tls::TlsProgress;
use crate::network::transport::ConnectProgress;
use crate::recorder::write_event;
use crate::upstream::UpstreamEnd;
use crate::upstream::admission::Admission;
use crate::upstream::circuit_breaker::Resource;
use crate::upstream::failure::Failure;
use crate::upstream::outlier::Outcome;
use crate::upstream::retry::RetryCause;
use crate::why;
use crate::worker::{Deferred, TimerKey, Upstream, UpstreamState, Worker, listener_buffer_limit};
use weir_flow::{EventKind, Lane};

impl Worker {
    /// Gives a stream an upstream connection: a pooled one when `fresh` is false and one is
    /// idle, otherwise a new non-blocking connect. Queues the request head (and, on a retry,
    /// the body so far).
    pub(crate) fn connect_stream(&mut self, sid: Id, fresh: bool) {
        let Some((cluster, host)) = self.choose_host(sid) else {
            return;
        };
        let sni = self.connection_sni(sid, cluster, host);
        if !fresh && let Some(up) = self.take_pooled(cluster, host, sni.as_deref()) {
            return self.attach_pooled(sid, cluster, host, up);
        }
        if let Admission::Open = self.admit_new_connection(sid, cluster, host) {
            self.open_upstream(sid, cluster, host, sni);
        }
    }

    /// An idle pooled connection to the host that can carry a request (closing the ones the
    /// origin closed or wrote to while idle); with `auto_host_sni`, one opened for `sni`.
    pub(super) fn take_pooled(
        &mut self,
        cluster: usize,
        host: Id,
        sni: Option<&str>,
    ) -> Option<Id> {
        loop {
            let upstreams = &self.upstreams;
            let up = (self.clusters[cluster].hosts.get_mut(host)?.pool)
                .take_idle_where(|id| upstreams.get(id).is_some_and(|u| u.sni.as_deref() == sni))?;
            let usable = self.upstreams.get(up).is_some_and(|u| {
                u.state == UpstreamState::Idle
                    && u.codec.streams_available() > 0
                    && !u.conn.read_eof()
                    && u.conn.input.is_empty()
            });
            if usable {
                return Some(up);
            }
            self.close_upstream(up);
        }
    }

    /// A new connection to the host: a non-blocking connect, registered once, with its
    /// connect timeout; the stream is attached and waits for it. A connect that fails at once
    /// is retried when the policy says so, else answered 503 `UF`.
    pub(super) fn open_upstream(
        &mut self,
        sid: Id,
        cluster: usize,
        host: Id,
        sni: Option<Box<str>>,
    ) {
        let Some(address) = self.clusters[cluster].hosts.address(host) else {
            return;
        };
        self.stats.syscalls.connect.add(2);
        let tls = self.clusters[cluster].tls.as_ref();
        let mut conn = match self.net.connect(address, tls, sni.as_deref()) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(cluster = %self.clusters[cluster].name, %address, error = %e, "connect failed");
                if let Some(c) = self.stats.clusters.get(cluster) {
                    c.common.upstream_cx_connect_fail.inc();
                }
                if let Some(h) = self.clusters[cluster].hosts.stats(Some(host)) {
                    h.cx_connect_fail.inc();
                }
                if let Some(stream) = self.streams.get_mut(sid) {
                    stream.upstream_host = Some(host);
                }
                let outcome = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => why::Outcome::ConnectRefused,
                    _ => why::Outcome::ConnectFailed,
                };
                self.note_attempt(sid, outcome);
                self.report_outlier(cluster, Some(host), Outcome::ConnectFailed);
                if self.should_retry(sid, RetryCause::Connect) {
                    return self.schedule_retry(sid);
                }
                let reply = LocalReply::failure(ResponseFlag::UpstreamConnectionFailure);
                return self.local_reply(sid, None, reply);
            }
        };
        self.syscalls().other();
        let net = &mut self.net;
        let mut registered = Ok(());
        let buffer_limit = self.clusters[cluster].buffer_limit;
        let key_format = self.clusters[cluster].key_format;
        let trace_conn = self.recorder.new_id();
        let up = self.upstreams.insert_with(|id| {
            registered = net.register(&mut conn, token(Kind::Upstream, id));
            Upstream {
                conn,
                cluster,
                host,
                state: UpstreamState::Connecting,
                codec: Http1Client::new(key_format),
                stream: None,
                reused: false,
                response_seen: false,
                connect_timer: None,
                buffer_limit,
                trace_conn,
                opened: self.now,
                closed_by_peer: false,
                sni,
            }
        });
        self.stats.syscalls.epoll_ctl.inc();
        if let Some(c) = self.stats.clusters.get(cluster) {
            c.common.upstream_cx_total.inc();
            c.common.upstream_cx_active.inc();
        }
        let state = &mut self.clusters[cluster];
        state.breakers.default_priority().inc(Resource::Connections);
        let hosts = &mut state.hosts;
        hosts.opened(host);
        if let Some(h) = hosts.stats(Some(host)) {
            h.cx_total.inc();
            h.cx_active.inc();
        }
        if let Err(e) = registered {
            tracing::warn!(error = %e, "epoll registration failed");
            self.close_upstream(up);
            let reply = LocalReply::failure(ResponseFlag::UpstreamConnectionFailure);
            return self.local_reply(sid, None, reply);
        }
        let timer = self.arm(
            self.clusters[cluster].connect_timeout,
            TimerKey::Connect(up),
        );
        self.upstreams.get_mut(up).expect("inserted").connect_timer = Some(timer);
        self.attach(sid, up);
        self.trace_up(up, || EventKind::ConnectStarted { host: address });
        self.trace_up(up, || EventKind::Registered {
            readable: true,
            writable: true,
            edge_triggered: true,
        });
    }

    /// Binds a stream to a connection and queues its request.
    pub(super) fn attach(&mut self, sid: Id, up: Id) {
        let has_policy = self.retry_policy_of(sid).is_some();
        let expected_timeout = self.expected_timeout_value(sid);
        let wants_local = self
            .streams
            .get(sid)
            .is_some_and(|s| self.log_wants_upstream_local(s));
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        let Some(conn) = self.upstreams.get_mut(up) else {
            return;
        };
        let reused = conn.state == UpstreamState::Idle;
        if reused {
            conn.state = UpstreamState::Active;
        }
        let pending = conn.state == UpstreamState::Connecting;
        if let Some(c) = self.clusters.get(conn.cluster) {
            let held = match pending {
                true => Resource::Pending,
                false => Resource::Requests,
            };
            c.breakers.default_priority().inc(held);
        }
        stream.attempt = Some(Attempt {
            upstream: up,
            started: self.now,
            pending,
            per_try_timer: None,
            response_bytes: 0,
        });
        stream.upstream_host = Some(conn.host);
        if wants_local && let Some(log) = stream.log.as_mut() {
            log.upstream_local = conn.conn.local_addr();
        }
        if let Some(c) = self.stats.clusters.get(conn.cluster) {
            c.common.upstream_rq_total.inc();
            c.common.upstream_rq_active.inc();
            if pending {
                c.common.upstream_rq_pending_total.inc();
                c.common.upstream_rq_pending_active.inc();
            }
        }
        let hosts = self.clusters.get(conn.cluster).map(|c| &c.hosts);
        if let Some(h) = hosts.and_then(|hosts| hosts.stats(Some(conn.host))) {
            h.rq_total.inc();
            h.rq_active.inc();
        }
        conn.stream = Some(sid);
        conn.response_seen = false;
        self.spare_outputs.lend(&mut conn.conn);
        // The request so far: its head, the body kept, and its end once it came. A CONNECT
        // weir ends sends no head: the origin sees only the tunnel's bytes.
        if stream.tunnel == Tunnel::TerminateConnect {
            conn.codec.open_tunnel();
        } else if let Some(head) = &mut stream.retry.head {
            if let Some(ms) = expected_timeout {
                head.headers.set("x-envoy-expected-rq-timeout-ms", ms);
            }
            let codec = &mut conn.codec;
            let upgrade = stream.tunnel == Tunnel::Upgrade;
            let names = stream.request_names.as_deref();
            codec.encode_headers(
                head,
                names,
                stream.request_bodiless,
                upgrade,
                &mut conn.conn,
            );
            for piece in &stream.retry.body {
                codec.encode_data(piece.clone(), &mut conn.conn);
            }
            if stream.retry.ended && !stream.request_bodiless {
                codec.encode_end(&mut conn.conn);
            }
        }
        if !stream.retry.possible {
            // Sent, and never to be sent again (kept only while the stream waited).
            stream.retry.body.clear();
        }
        if !reused && !has_policy {
            // Without a retry policy only a pooled connection the origin closed while idle is
            // retried; on a fresh one the body need not be kept (and no more is copied).
            stream.retry.possible = false;
            stream.retry.body.clear();
        }
        if reused {
            self.trace_up(up, || EventKind::StreamAttached { reused: true });
        }
        // A new attempt of a request the router already has whole: its per-try timer runs.
        if self.streams.get(sid).is_some_and(|s| s.retry.ended) {
            self.arm_per_try_timer(sid);
        }
    }

    /// An event on an upstream socket.
    pub(crate) fn upstream_ready(&mut self, id: Id) {
        let Some(up) = self.upstreams.get_mut(id) else {
            return;
        };
        match up.state {
            UpstreamState::Connecting => {
                if !up.conn.is_writable() {
                    return;
                }
                // The first writable edge ends the connect: SO_ERROR says how.
                match up.conn.finish_connect(&self.stats.syscalls) {
                    ConnectProgress::Connected => {}
                    ConnectProgress::InProgress => return,
                    ConnectProgress::Failed(e) => {
                        tracing::debug!(error = %e, "upstream connect failed");
                        let failure = match e.kind() {
                            std::io::ErrorKind::ConnectionRefused => Failure::ConnectRefused,
                            _ => Failure::ConnectFailed,
                        };
                        return self.upstream_failed(id, failure);
                    }
                }
                up.state = UpstreamState::Active;
                let mut timer = up.connect_timer.take();
                let took = self.now.saturating_duration_since(up.opened);
                let (cluster, stream) = (up.cluster, up.stream);
                self.disarm(&mut timer);
                let waiting = stream.filter(|&s| {
                    let attempt = self.streams.get(s).and_then(|s| s.attempt.as_ref());
                    attempt.is_some_and(|a| a.pending)
                });
                if let Some(sid) = waiting
                    && !self.admit_on_connect(id, sid, cluster)
                {
                    return;
                }
                if let Some(c) = self.stats.clusters.get(cluster) {
                    c.common
                        .upstream_cx_connect_ms
                        .record(took.as_millis() as u64);
                    if let Some(a) = stream
                        .and_then(|s| self.streams.get_mut(s))
                        .and_then(|s| s.attempt.as_mut())
                        && std::mem::take(&mut a.pending)
                    {
                        c.common.upstream_rq_pending_active.dec();
                    }
                }
                let host = self.upstreams.get(id).map(|u| u.host);
                self.report_outlier(cluster, host, Outcome::Connected);
                self.trace_up(id, || EventKind::Connected);
                // The seed's attachStreamToClient: the waiting stream gets the connection.
                self.trace_up(id, || EventKind::StreamAttached { reused: false });
                if let Some(sid) = stream
                    && self
                        .streams
                        .get(sid)
                        .is_some_and(|s| s.tunnel == Tunnel::TerminateConnect)
                {
                    self.connect_tunnel_open(sid);
                }
            }
            UpstreamState::Idle => return self.check_idle(id),
            UpstreamState::Active => {}
        }
        self.flush_upstream(id);
        self.drive_upstream(id);
    }

    /// Reads and decodes the response until it cannot make progress, then flushes the client
    /// once.
    pub(crate) fn drive_upstream(&mut self, id: Id) {
        let downstream = self
            .upstreams
            .get(id)
            .and_then(|u| u.stream)
            .and_then(|s| self.streams.get(s))
            .map(|s| s.downstream);
        while let Some(up) = self.upstreams.get_mut(id) {
            if up.state != UpstreamState::Active {
                break;
            }
            let Some(sid) = up.stream else {
                break;
            };
            // Back-pressure: stop while the client's queue is over its limit.
            let Some(stream) = self.streams.get_mut(sid) else {
                break;
            };
            let over = self
                .downstreams
                .get(stream.downstream)
                .is_none_or(|d| d.conn.queued() >= listener_buffer_limit(&self.listeners, d));
            if over {
                stream.upstream_paused = true;
                break;
            }
            let up = self.upstreams.get_mut(id).expect("checked");
            match up.codec.decode(&mut up.conn.input) {
                Ok(Some(event)) => {
                    self.on_response_event(id, sid, event);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "malformed upstream response");
                    self.upstream_failed(id, Failure::Protocol);
                    break;
                }
            }
            if !up.conn.can_read() {
                break;
            }
            let outcome = up.conn.fill(&mut self.scratch, &self.stats.syscalls);
            let handshake = match up.conn.take_tls_progress() {
                Some(TlsProgress::Done(info)) => {
                    if let Some(ssl) = self.stats.cluster_ssl.get(up.cluster) {
                        ssl.handshake(&info);
                    }
                    Some(info)
                }
                Some(TlsProgress::Failed(why)) => {
                    if let Some(ssl) = self.stats.cluster_ssl.get(up.cluster) {
                        match why {
                            Some(why) => ssl.fail_verify(why),
                            None => ssl.connection_error(),
                        }
                    }
                    None
                }
                None => None,
            };
            if let ReadOutcome::Data(n) = outcome {
                up.response_seen = true;
                if let Some(c) = self.stats.clusters.get(up.cluster) {
                    c.common.upstream_cx_rx_bytes_total.add(n as u64);
                }
            }
            if let Some(info) = handshake {
                self.trace_up(id, || info.event());
            }
            self.trace_up(id, || EventKind::Read {
                asked: crate::worker::READ_SIZE as u32,
                result: crate::recorder::read_result(&outcome),
            });
            self.trace_up_tls(id, weir_flow::Direction::In);
            match outcome {
                ReadOutcome::Data(_) => {}
                ReadOutcome::Drained => break,
                ReadOutcome::Eof => {
                    self.on_upstream_eof(id, sid);
                    break;
                }
                ReadOutcome::Failed(e) => {
                    self.note_transport_failure(id, &e);
                    self.upstream_failed(id, Failure::of_io(&e));
                    break;
                }
            }
        }
        if let Some(ds) = downstream {
            self.flush_downstream(ds);
        }
    }

    /// The origin closed: a close-delimited body ends here; anything else was cut short.
    /// `decode_eof` first returns what is still buffered, so it is drained in a loop.
    fn on_upstream_eof(&mut self, id: Id, sid: Id) {
        loop {
            let Some(up) = self.upstreams.get_mut(id) else {
                return;
            };
            if up.stream != Some(sid) {
                return;
            }
            match up.codec.decode_eof(&mut up.conn.input) {
                Ok(Some(ResponsePart::End)) => {
                    return self.on_response_event(id, sid, ResponsePart::End);
                }
                Ok(Some(part)) => self.on_response_event(id, sid, part),
                Ok(None) | Err(weir_http1::Error::Incomplete) => {
                    return self.upstream_failed(id, Failure::Termination);
                }
                Err(_) => return self.upstream_failed(id, Failure::Protocol),
            }
        }
    }

    fn on_response_event(&mut self, id: Id, sid: Id, part: ResponsePart) {
        match part {
            ResponsePart::Headers {
                head,
                end_stream,
                names,
            } => {
                // `per_try_timeout` bounds the wait for a response, not its transfer.
                if let Some(timer) = self
                    .streams
                    .get_mut(sid)
                    .and_then(|s| s.attempt.as_mut())
                    .and_then(|a| a.per_try_timer.take())
                {
                    self.timers.cancel(timer);
                }
                let status = head.status;
                if let Some(stream) = self.streams.get(sid)
                    && let Some(c) = self.stats.clusters.get(stream.cluster)
                {
                    let hosts = &self.clusters[stream.cluster].hosts;
                    c.charge(hosts.stats(stream.upstream_host), status);
                    let (cluster, host) = (stream.cluster, stream.upstream_host);
                    self.report_outlier(cluster, host, Outcome::Status(status));
                    // Read only where it matters: a cluster with health checks.
                    if self.clusters[cluster].health.is_some()
                        && head.headers.contains("x-envoy-immediate-health-check-fail")
                    {
                        self.fail_health_check(cluster, host);
                    }
                }
                // An error status, or one the policy retries, goes in the failure's account.
                let error = status >= 500;
                if error {
                    self.note_attempt(sid, why::Outcome::Status(status));
                }
                let verdict = self.retry_verdict(sid, RetryCause::Status(status, &head.headers));
                if !error && verdict.retries() {
                    self.note_attempt(sid, why::Outcome::Status(status));
                }
                self.note_verdict(sid, verdict);
                if verdict.retries() {
                    // This response is not the answer: drop the attempt and try again.
                    self.end_attempt(sid, UpstreamEnd::Failed);
                    self.close_upstream(id);
                    return self.schedule_retry(sid);
                }
                // A retry succeeded when its answer is one the policy would not retry.
                if let Some(stream) = self.streams.get(sid)
                    && stream.retry.retried
                    && !stream.retry.limit_hit
                    && let Some(c) = self.stats.clusters.get(stream.cluster)
                {
                    c.common.upstream_rq_retry_success.inc();
                }
                self.trace_up(id, || EventKind::ResponseHead { status });
                let mut head = head;
                if let Some(ms) = self.upstream_service_time(sid) {
                    head.headers.set("x-envoy-upstream-service-time", ms);
                }
                self.encode_response_head(sid, head, names, end_stream);
            }
            ResponsePart::Data(data) => self.forward_response_data(sid, data),
            ResponsePart::End => {
                self.trace_up(id, || EventKind::ResponseComplete);
                // An ambiguous request's connection is not reused: the origin may have framed
                // it differently (e.g. ignored a GET body and read it as the next request).
                let reusable = self
                    .streams
                    .get(sid)
                    .is_some_and(|s| s.retry.ended && !s.upstream_single_use);
                self.end_attempt(sid, UpstreamEnd::Completed);
                self.release_upstream(id, reusable);
                self.complete_response(sid);
            }
        }
    }

    /// After a complete response: back to the pool if it can carry another request.
    fn release_upstream(&mut self, id: Id, request_reusable: bool) {
        let draining = self.draining;
        let Some(up) = self.upstreams.get_mut(id) else {
            return;
        };
        up.stream = None;
        let reusable = up.codec.streams_available() > 0
            && request_reusable
            && up.conn.input.is_empty()
            && up.conn.queued() == 0
            && up.conn.write_open()
            && !up.conn.read_eof()
            && !draining
            // A host that left its cluster takes no more requests, nor does a cluster a
            // reload retired.
            && self.clusters[up.cluster].hosts.reusable(up.host)
            && !self.clusters[up.cluster].retired;
        if !reusable {
            return self.close_upstream(id);
        }
        up.state = UpstreamState::Idle;
        up.reused = true;
        up.conn.release_idle_input();
        self.spare_outputs.take_back(&mut up.conn);
        let (cluster, host) = (up.cluster, up.host);
        if let Some(slot) = self.clusters[cluster].hosts.get_mut(host) {
            slot.pool.release(id);
            if !slot.waiting.is_empty() {
                // A stream waits for a connection of this host: this one, later this round.
                self.deferred.push_back(Deferred::Waiting { cluster, host });
            }
        }
        // A readable edge still remembered is a FIN that came with the response (its read was
        // short but `hup_seen` kept the edge) or bytes past a read that filled the buffer: no
        // new edge will come for either, so look now rather than hand the next request a
        // closed or desynchronized connection.
        self.check_idle(id);
    }

    /// Anything from an idle connection (a FIN, a stray byte) retires it.
    fn check_idle(&mut self, id: Id) {
        let Some(up) = self.upstreams.get_mut(id) else {
            return;
        };
        if up.conn.can_read() || up.conn.read_eof() {
            let outcome = up.conn.fill(&mut self.scratch, &self.stats.syscalls);
            if !matches!(outcome, ReadOutcome::Drained) {
                self.close_upstream(id);
            }
        }
    }

    /// Writes the upstream queue; below the low watermark, resumes a paused downstream.
    pub(crate) fn flush_upstream(&mut self, id: Id) {
        let Some(up) = self.upstreams.get_mut(id) else {
            return;
        };
        if !up.conn.has_output() {
            return;
        }
        let (fd, conn) = (up.conn.fd(), up.trace_conn);
        let stream = up.stream.and_then(|s| self.streams.get(s));
        let trace_id = stream.map_or(0, |s| s.trace_id);
        let chain = stream
            .and_then(|s| self.downstreams.get_mut(s.downstream))
            .map(|d| &mut d.trace)
            .filter(|t| t.recording != crate::recorder::Recording::Off);
        let recorder = &mut self.recorder;
        let sent_before = up.conn.bytes_out;
        let result = match chain {
            Some(chain) => up.conn.flush(&self.stats.syscalls, |asked, result| {
                recorder.record(chain, Lane::Upstream, fd, conn, trace_id, || {
                    write_event(asked, result)
                });
            }),
            None => up.conn.flush(&self.stats.syscalls, |_, _| {}),
        };
        if let Some(c) = self.stats.clusters.get(up.cluster) {
            c.common
                .upstream_cx_tx_bytes_total
                .add(up.conn.bytes_out - sent_before);
        }
        self.trace_up_tls(id, weir_flow::Direction::Out);
        let Some(up) = self.upstreams.get_mut(id) else {
            return;
        };
        match result {
            Ok(_) => {
                let low = up.conn.queued() <= up.buffer_limit / 2;
                if let (true, Some(sid)) = (low, up.stream)
                    && let Some(stream) = self.streams.get_mut(sid)
                    && stream.client_paused
                {
                    stream.client_paused = false;
                    self.deferred
                        .push_back(Deferred::Downstream(stream.downstream));
                }
            }
            Err(e) => {
                // An origin may answer early (401, 413) and close with the request body
                // unread; the reset that follows fails this write, but what it sent before is
                // still readable. Read that first; the connection fails only if no response
                // began (the read itself may find the reset and fail it).
                up.conn.abandon_output();
                self.drive_upstream(id);
                if self
                    .upstreams
                    .get(id)
                    .is_some_and(|up| up.state == UpstreamState::Active && !up.response_seen)
                {
                    self.note_transport_failure(id, &e);
                    self.upstream_failed(id, Failure::of_io(&e));
                }
            }
        }
    }

    /// Flushes the stream's upstream connection, if it has one.
    pub(crate) fn flush_stream_upstream_of(&mut self, sid: Id) {
        if let Some(up) = self.streams.get(sid).and_then(|s| s.upstream()) {
            self.flush_upstream(up);
        }
    }

    /// Closes an upstream connection now (dropping the socket removes it from epoll).
    pub(crate) fn close_upstream(&mut self, id: Id) {
        self.trace_up(id, || EventKind::Close {
            by: weir_flow::Closer::Local,
        });
        let Some(mut up) = self.upstreams.remove(id) else {
            return;
        };
        let mut timer = up.connect_timer.take();
        self.disarm(&mut timer);
        let hosts = &mut self.clusters[up.cluster].hosts;
        if up.state == UpstreamState::Idle
            && let Some(slot) = hosts.get_mut(up.host)
        {
            slot.pool.remove(id);
        }
        if let Some(h) = hosts.stats(Some(up.host)) {
            h.cx_active.dec();
        }
        // Last: a host that left its cluster is forgotten with its last connection.
        hosts.closed(up.host);
        let state = &mut self.clusters[up.cluster];
        state.release_forgotten_pools();
        state.breakers.default_priority().dec(Resource::Connections);
        self.wake_waiting(up.cluster, up.host);
        self.syscalls().other();
        if let Some(c) = self.stats.clusters.get(up.cluster) {
            let cs = &c.common;
            let remote = up.closed_by_peer || up.conn.read_eof();
            cs.upstream_cx_active.dec();
            cs.upstream_cx_destroy.inc();
            if remote {
                &cs.upstream_cx_destroy_remote
            } else {
                &cs.upstream_cx_destroy_local
            }
            .inc();
            if up.stream.is_some() {
                cs.upstream_cx_destroy_with_active_rq.inc();
                if remote {
                    &cs.upstream_cx_destroy_remote_with_active_rq
                } else {
                    &cs.upstream_cx_destroy_local_with_active_rq
                }
                .inc();
            }
            let lived = self.now.saturating_duration_since(up.opened);
            cs.upstream_cx_length_ms.record(lived.as_millis() as u64);
        }
        // Last, once counted: a retired cluster's last connection may release it.
        if self.clusters[up.cluster].retired {
            self.release_clusters();
        }
    }
}
