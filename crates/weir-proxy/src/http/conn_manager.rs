//! The HTTP connection manager: requests decoded from a downstream connection become streams,
//! run through the HTTP filters (the router is the last and, so far, only one), and their
//! responses are encoded back. This is the seed's "Downstream Read Request" (decode, route,
//! pick a connection) and "Downstream Write Response" (encode, flush).
//!
//! Rules this file keeps:
//! - While a request is in flight the downstream is not read ("stop reading" is the decode
//!   gate below, a user-space decision; the readable edge is remembered by the connection).
//! - Request bodies stream to the upstream queue; when that queue passes its buffer limit the
//!   downstream stops being read until the queue drains to half (watermarks).
//! - A stream ends when its response is fully queued; the connection then reads the next
//!   (pipelined) request, or closes after flushing when either side asked for close.

use bytes::{Bytes, BytesMut};
use weir_http1::{Error as CodecError, Headers, RequestHead, ResponseHead, Version};

use crate::codec::{RequestPart, RequestStart};
use crate::event::token::Id;
use crate::http::headers::{ForwardContext, set_forwarding_headers, strip_hop_by_hop};
use crate::http::local_reply::{LocalReply, ResponseFlag};
use crate::http::stream_log::StreamLog;
use crate::network::connection::ReadOutcome;
use crate::recorder::{PendingFlow, write_event};
use crate::router::route_table::RouteRef;
use crate::router::{self, Decision};
use crate::upstream::{UpstreamEnd, end_upstream_request};
use crate::worker::{
    Deferred, DownstreamState, LINGER, RetryState, Stream, TimerKey, Worker, listener_buffer_limit,
};
use weir_flow::{EventKind, Lane, ShortText};

impl Worker {
    pub(crate) fn arm_idle_timer(&mut self, id: Id) {
        let Some(ds) = self.downstreams.get(id) else {
            return;
        };
        if let Some(after) = ds.chain.hcm.idle_timeout {
            let timer = self.arm(after, TimerKey::DownstreamIdle(id));
            if let Some(ds) = self.downstreams.get_mut(id) {
                let mut old = ds.idle_timer.replace(timer);
                self.disarm(&mut old);
            }
        }
    }

    /// Reads and decodes the downstream until it cannot make progress, then flushes the
    /// stream's upstream once (all of this round's request bytes in one `writev`).
    pub(crate) fn drive_downstream(&mut self, id: Id) {
        loop {
            let Some(ds) = self.downstreams.get_mut(id) else {
                return;
            };
            match ds.state {
                DownstreamState::Open => {}
                DownstreamState::CloseAfterFlush => return,
                DownstreamState::Lingering => return self.linger_read(id),
            }
            if !self.may_decode(id) {
                break;
            }
            let ds = self.downstreams.get_mut(id).expect("checked above");
            // A request head has begun: `request_headers_timeout` runs until it is whole.
            if let Some(after) = ds.chain.hcm.request_headers_timeout
                && ds.stream.is_none()
                && ds.header_timer.is_none()
                && ds.conn.input.iter().any(|&b| b != b'\r' && b != b'\n')
            {
                let timer = self.arm(after, TimerKey::RequestHeaders(id));
                let ds = self.downstreams.get_mut(id).expect("checked above");
                ds.header_timer = Some(timer);
            }
            let ds = self.downstreams.get_mut(id).expect("checked above");
            match ds.codec.decode(&mut ds.conn.input) {
                Ok(Some(event)) => {
                    self.on_request_event(id, event);
                    continue;
                }
                Ok(None) => {}
                Err(e) => return self.on_request_error(id, e),
            }
            if !ds.conn.can_read() {
                if ds.conn.read_eof() && !ds.peer_closed {
                    self.on_downstream_eof(id);
                }
                break;
            }
            let outcome = ds.conn.fill(&mut self.scratch, &self.stats.syscalls);
            if let (ReadOutcome::Data(n), Some(http)) =
                (&outcome, self.stats.http.get(ds.chain.stats))
            {
                http.stats.downstream_cx_rx_bytes_total.add(*n as u64);
            }
            self.trace_down(id, || read_event(&outcome));
            match outcome {
                ReadOutcome::Data(_) => continue,
                ReadOutcome::Drained => break,
                ReadOutcome::Eof => {
                    self.on_downstream_eof(id);
                    break;
                }
                ReadOutcome::Failed(e) => {
                    tracing::debug!(error = %e, "downstream read failed");
                    return self.close_downstream(id);
                }
            }
        }
        self.flush_stream_upstream(id);
    }

    /// The decode gate: a new request may start when no stream is active and the replies
    /// queued for the client are under the listener's buffer limit (pipelined requests that
    /// weir answers itself have no upstream queue to push back); an active stream's body may
    /// be decoded while its upstream queue is under the buffer limit. A complete request
    /// closes the gate until its response is done (pipelined bytes wait).
    fn may_decode(&mut self, id: Id) -> bool {
        let Some(ds) = self.downstreams.get_mut(id) else {
            return false;
        };
        let Some(sid) = ds.stream else {
            ds.replies_gated = ds.conn.queued() >= listener_buffer_limit(&self.listeners, ds);
            return !ds.replies_gated;
        };
        let Some(stream) = self.streams.get(sid) else {
            return false;
        };
        // A complete request, or one waiting for a retry's back-off: read nothing more.
        if stream.request_complete || stream.retry_timer.is_some() {
            return false;
        }
        let below = match stream.upstream.and_then(|u| self.upstreams.get(u)) {
            Some(up) => up.conn.queued() < up.buffer_limit,
            None => true,
        };
        if !below {
            self.streams.get_mut(sid).expect("checked").request_paused = true;
        }
        below
    }

    fn on_request_event(&mut self, id: Id, part: RequestPart) {
        match part {
            RequestPart::Headers(start) => self.on_request_head(id, start),
            RequestPart::Data(data) => {
                let Some(sid) = self.downstreams.get(id).and_then(|d| d.stream) else {
                    return;
                };
                let Some(stream) = self.streams.get_mut(sid) else {
                    return;
                };
                stream.last_activity = self.now;
                if let Some(log) = stream.log.as_mut() {
                    log.bytes_received += data.len() as u64;
                }
                self.send_upstream(sid, data);
            }
            RequestPart::End => {
                let Some(sid) = self.downstreams.get(id).and_then(|d| d.stream) else {
                    return;
                };
                let Some(stream) = self.streams.get_mut(sid) else {
                    return;
                };
                stream.request_complete = true;
                stream.last_activity = self.now;
                if let Some(log) = stream.log.as_mut() {
                    log.request_done = Some(self.now);
                }
                let mut request_timer = stream.request_timer.take();
                let upstream = stream.upstream;
                self.disarm(&mut request_timer);
                self.trace_down(id, || EventKind::RequestComplete);
                // The gate closes: the downstream is not read until the response is done.
                self.trace_down(id, || EventKind::ReadPaused { syscall: false });
                if let Some(up) = upstream.and_then(|u| self.upstreams.get_mut(u)) {
                    up.codec.encode_end(&mut up.conn);
                }
                let Some(stream) = self.streams.get(sid) else {
                    return;
                };
                // The attempt's `per_try_timeout` runs from here, like the route timeout.
                let attempt = stream.upstream.is_some() && !stream.response_started;
                if let (Some(after), false) = (stream.route_timeout, stream.response_complete) {
                    let timer = self.arm(after, TimerKey::Route(sid));
                    self.streams.get_mut(sid).expect("exists").route_timer = Some(timer);
                }
                if attempt {
                    self.arm_per_try_timer(sid);
                }
            }
        }
    }

    /// Queues request body bytes on the stream's upstream, keeping them for a retry while
    /// they fit the retry buffer: the listener's `per_connection_buffer_limit_bytes`, as in
    /// Envoy.
    fn send_upstream(&mut self, sid: Id, data: Bytes) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        let retry_buffer = match self.downstreams.get(stream.downstream) {
            Some(ds) if stream.retry.possible => listener_buffer_limit(&self.listeners, ds),
            _ => 0,
        };
        if stream.retry.possible {
            stream.retry.body_bytes += data.len();
            if stream.retry.body_bytes > retry_buffer {
                stream.retry.possible = false;
                stream.retry.body.clear();
            } else {
                stream.retry.body.push(data.clone());
            }
        }
        // With no upstream (answered locally), the body is read and dropped.
        if let Some(up) = stream.upstream.and_then(|u| self.upstreams.get_mut(u)) {
            up.codec.encode_data(data, &mut up.conn);
        }
    }

    fn on_request_head(&mut self, id: Id, start: RequestStart) {
        let RequestStart {
            head: mut request,
            end_stream,
            expect_continue,
            single_use,
        } = start;
        let Some(ds) = self.downstreams.get_mut(id) else {
            return;
        };
        self.spare_outputs.lend(&mut ds.conn);
        let mut idle = ds.idle_timer.take();
        let mut header_timer = ds.header_timer.take();
        ds.requests += 1;
        let last_request = ds
            .chain
            .hcm
            .max_requests_per_connection
            .is_some_and(|max| ds.requests >= max);
        if last_request && !ds.close_soon {
            ds.close_soon = true;
            if let Some(http) = self.stats.http.get(ds.chain.stats) {
                http.stats.downstream_cx_max_requests_reached.inc();
            }
        }
        let chain = ds.chain.clone();
        let peer = ds.peer;
        let previous_unsent = ds.pending_flow.is_some();
        self.disarm(&mut header_timer);
        self.disarm(&mut idle);
        if let Some(http) = self.stats.http.get(chain.stats) {
            http.stats.downstream_rq_total.inc();
            http.stats.downstream_rq_http1_total.inc();
            http.stats.downstream_rq_active.inc();
        }
        if previous_unsent {
            // A pipelined request arrived while the previous (traced) response is still being
            // written: keep that flow now, so the new request neither overwrites it nor
            // starts inside it (the previous response's last writes are left out of it).
            self.trace_response_sent(id);
        }

        let stream = Stream {
            downstream: id,
            upstream: None,
            route: None,
            cluster: 0,
            route_timeout: None,
            request_bodiless: end_stream,
            upstream_single_use: single_use,
            request_complete: false,
            request_paused: false,
            response_started: false,
            response_complete: false,
            response_paused: false,
            close_after: false,
            status: 0,
            flag: None,
            retry: RetryState {
                head: None,
                body: Vec::new(),
                body_bytes: 0,
                possible: true,
            },
            route_timer: None,
            request_timer: None,
            idle_timer: None,
            last_activity: self.now,
            started: self.now,
            upstream_started: None,
            upstream_host: usize::MAX,
            pending: false,
            retried: false,
            attempts: 0,
            retry_limit_hit: false,
            retry_timer: None,
            per_try_timer: None,
            forwarded: false,
            log: (!self.logs.is_empty(chain.logs)).then(StreamLog::new),
            trace_id: self.recorder.new_id(),
            traced: None,
        };
        let sid = self.streams.insert_with(|_| stream);
        self.stream_peak = self.stream_peak.max(self.streams.len());
        self.downstreams.get_mut(id).expect("exists").stream = Some(sid);
        if self.recorder.enabled() {
            self.trace_request_head(id, sid, &request);
        }
        let hcm = &chain.hcm;
        if let Some(after) = hcm.request_timeout {
            let t = self.arm(after, TimerKey::Request(sid));
            self.streams.get_mut(sid).expect("exists").request_timer = Some(t);
        }
        if let Some(after) = hcm.stream_idle_timeout {
            let t = self.arm(after, TimerKey::StreamIdle(sid));
            self.streams.get_mut(sid).expect("exists").idle_timer = Some(t);
        }

        #[cfg(feature = "fault-injection")]
        if request
            .headers
            .get("x-weir-fault")
            .is_some_and(|v| v.as_ref() == b"panic")
        {
            panic!("x-weir-fault: panic");
        }
        if request.method.as_ref() == b"CONNECT" {
            self.log_request(sid, &request);
            return self.local_reply(
                sid,
                None,
                LocalReply::new(405, "CONNECT is not supported").because("connect_not_supported"),
            );
        }
        // The authority: absolute-form targets carry it (and win over Host, RFC 9112 §3.2.2).
        let authority = match absolute_form_split(&request.target) {
            Some((authority, origin_form)) => {
                request.headers.set("host", authority.clone());
                request.target = origin_form;
                authority
            }
            None => request.headers.get("host").cloned().unwrap_or_default(),
        };
        // Only HTTP/1.0 may omit Host (the codec rejects HTTP/1.1 without it); upstream the
        // request goes out as HTTP/1.1, which must carry one. Envoy answers 400 here.
        if !request.headers.contains("host") {
            self.log_request(sid, &request);
            return self.local_reply(
                sid,
                None,
                LocalReply::new(400, "missing host header").because("missing_host_header"),
            );
        }
        strip_hop_by_hop(&mut request.headers);
        if expect_continue {
            request.headers.remove("expect");
        }
        let ctx = ForwardContext {
            remote: peer,
            use_remote_address: hcm.use_remote_address,
            xff_num_trusted_hops: hcm.xff_num_trusted_hops,
            generate_request_id: hcm.generate_request_id,
        };
        let client = set_forwarding_headers(&mut request.headers, &ctx, &mut self.rng);
        if let Some(log) = self.streams.get_mut(sid).and_then(|s| s.log.as_mut()) {
            log.downstream_remote = Some(client);
        }

        let decision = router::route(&chain.routes, &authority, &mut request, &mut self.rng);
        self.log_request(sid, &request);
        let idempotent = matches!(
            request.method.as_ref(),
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        );
        let retry_policy = match &decision {
            Decision::Forward { route, .. } => chain.routes.retry_policy(*route).is_some(),
            Decision::Respond { .. } => false,
        };
        let http = self.stats.http.get(chain.stats).map(|h| &h.stats);
        match decision {
            Decision::Respond { route, reply } => {
                if let Some(http) = http {
                    match (&reply.flag, &reply.location) {
                        (Some(ResponseFlag::NoRouteFound), _) => &http.no_route,
                        (_, Some(_)) => &http.rq_redirect,
                        _ => &http.rq_direct_response,
                    }
                    .inc();
                }
                self.local_reply(sid, route, reply)
            }
            Decision::Forward {
                route,
                cluster,
                timeout,
            } => {
                if let Some(http) = http {
                    http.rq_total.inc();
                }
                if self.recorder.enabled() {
                    let (vhost, name) = chain.routes.names(route);
                    let cluster = self.clusters[cluster].name.clone();
                    self.trace_down(id, || EventKind::RouteMatched {
                        vhost,
                        route: name,
                        cluster,
                    });
                }
                if expect_continue {
                    if let Some(ds) = self.downstreams.get_mut(id) {
                        ds.codec.encode_continue(&mut ds.conn);
                    }
                    // The client waits for this before sending its body: send it now.
                    self.flush_downstream(id);
                }
                // Sending `100 Continue` can find the client gone, which ends the stream.
                let Some(stream) = self.streams.get_mut(sid) else {
                    return;
                };
                stream.route = Some(route);
                stream.cluster = cluster;
                stream.forwarded = true;
                // Keep the request for a retry: under a retry policy, or, for the keep-alive
                // race of a pooled connection, when it is idempotent (RFC 9110 §9.2.2).
                stream.retry.possible = retry_policy || idempotent;
                stream.route_timeout = timeout;
                stream.retry.head = Some(request);
                self.connect_stream(sid, false);
            }
        }
    }

    /// A request the codec rejected: answer with its status and close (the upstream saw
    /// nothing of it, or, mid-body, its connection is closed too).
    fn on_request_error(&mut self, id: Id, error: CodecError) {
        tracing::debug!(%error, "malformed request");
        let sid = self.downstreams.get(id).and_then(|d| d.stream);
        let http = self.downstreams.get(id).map(|d| d.chain.stats);
        let http = http.and_then(|k| self.stats.http.get(k));
        if let Some(http) = http {
            http.stats.downstream_cx_protocol_error.inc();
        }
        let mut reply = LocalReply::failure(ResponseFlag::DownstreamProtocolError);
        reply.status = error.status();
        reply.body = Bytes::from(weir_http1::reason_phrase(error.status()));
        match sid {
            Some(sid) => self.local_reply(sid, None, reply),
            None => self.reject_without_stream(id, &reply),
        }
    }

    /// Answers on a connection whose request never became a stream (the codec rejected it, or
    /// its head did not arrive in time), then closes it.
    fn reject_without_stream(&mut self, id: Id, reply: &LocalReply) {
        let http = self.downstreams.get(id).map(|d| d.chain.stats);
        if let Some(http) = http.and_then(|k| self.stats.http.get(k)) {
            http.stats.downstream_rq_total.inc();
            http.stats.downstream_rq_http1_total.inc();
            http.response(reply.status);
        }
        self.log_without_stream(id, reply);
        let (mut head, body) = self.local_response(reply, None);
        if let Some(ds) = self.downstreams.get_mut(id) {
            let mut header_timer = ds.header_timer.take();
            ds.codec.reset_exchange();
            ds.codec
                .encode_headers(&mut head, body.is_empty(), true, &mut ds.conn);
            ds.codec.encode_data(body, &mut ds.conn);
            ds.codec.encode_end(&mut ds.conn);
            self.disarm(&mut header_timer);
        }
        self.close_after_flush(id);
        self.flush_downstream(id);
    }

    /// `request_headers_timeout` passed with a request head still incomplete: 408, close.
    pub(crate) fn on_request_headers_timeout(&mut self, id: Id) {
        let Some(ds) = self.downstreams.get_mut(id) else {
            return;
        };
        ds.header_timer = None;
        if ds.stream.is_some() || ds.state != DownstreamState::Open {
            return;
        }
        if let Some(http) = self.stats.http.get(ds.chain.stats) {
            http.stats.downstream_rq_header_timeout.inc();
        }
        let reply =
            LocalReply::new(408, "request header timeout").because("request_header_timeout");
        self.reject_without_stream(id, &reply);
    }

    /// `max_connection_duration` passed: the connection closes after its current response,
    /// or now if it has none.
    pub(crate) fn on_max_connection_duration(&mut self, id: Id) {
        let Some(ds) = self.downstreams.get_mut(id) else {
            return;
        };
        ds.duration_timer = None;
        ds.close_soon = true;
        if let Some(http) = self.stats.http.get(ds.chain.stats) {
            http.stats.downstream_cx_max_duration_reached.inc();
        }
        if ds.stream.is_some() || ds.state != DownstreamState::Open {
            return;
        }
        if ds.conn.queued() == 0 {
            return self.close_downstream(id);
        }
        self.close_after_flush(id);
        self.flush_downstream(id);
    }

    /// Whether the response being sent on `ds_id` must close the connection: a drain, a
    /// failed health check, or the connection's own limits (duration, requests).
    fn closes_connection(&self, ds_id: Id) -> bool {
        self.drain_close() || self.downstreams.get(ds_id).is_some_and(|d| d.close_soon)
    }

    /// The client half-closed. Between requests that ends the connection; after a complete
    /// request the response is still sent; mid-request the stream is abandoned.
    fn on_downstream_eof(&mut self, id: Id) {
        let Some(ds) = self.downstreams.get_mut(id) else {
            return;
        };
        ds.peer_closed = true;
        ds.closed_by_peer = true;
        let sid = ds.stream;
        match sid.and_then(|s| self.streams.get(s)) {
            // The last response may still be queued (larger than the kernel's buffers, a slow
            // reader): closing now would drop it. Half-closing is how some clients say "that
            // was my last request", so send the rest, then close.
            None if ds.conn.queued() > 0 => {
                self.close_after_flush(id);
                self.flush_downstream(id);
            }
            None => self.close_downstream(id),
            Some(stream) if stream.request_complete => {}
            Some(_) => {
                tracing::debug!("client closed mid-request");
                self.close_downstream(id);
            }
        }
    }

    /// Writes the downstream queue; after the last byte of a closing connection, sends FIN and
    /// lingers; below the low watermark, resumes a paused upstream.
    pub(crate) fn flush_downstream(&mut self, id: Id) {
        let Some(ds) = self.downstreams.get_mut(id) else {
            return;
        };
        if ds.conn.queued() == 0 && ds.state != DownstreamState::CloseAfterFlush {
            return;
        }
        let (fd, conn) = (ds.conn.fd(), u64::from(ds.trace.conn));
        // The response being written belongs to the active stream, or to the one just ended.
        let stream = match (
            ds.stream.and_then(|s| self.streams.get(s)),
            &ds.pending_flow,
        ) {
            (Some(s), _) => s.trace_id,
            (None, Some(p)) => p.stream,
            (None, None) => 0,
        };
        let recorder = &mut self.recorder;
        let trace = &mut ds.trace;
        let sent_before = ds.conn.bytes_out;
        let result = ds.conn.flush(&self.stats.syscalls, |asked, result| {
            recorder.record(trace, Lane::Downstream, fd, conn, stream, || {
                write_event(asked, result)
            });
        });
        if let Some(http) = self.stats.http.get(ds.chain.stats) {
            let sent = ds.conn.bytes_out - sent_before;
            http.stats.downstream_cx_tx_bytes_total.add(sent);
        }
        if matches!(result, Ok(true)) && ds.stream.is_none() {
            // The last stream's response has left: its flow is complete, and the connection,
            // idle now, need not hold an output queue.
            self.spare_outputs.take_back(&mut ds.conn);
            self.trace_response_sent(id);
        }
        let Some(ds) = self.downstreams.get_mut(id) else {
            return;
        };
        match result {
            Err(e) => {
                tracing::debug!(error = %e, "downstream write failed");
                self.close_downstream(id);
            }
            Ok(true) if ds.state == DownstreamState::CloseAfterFlush => {
                if ds.abort || ds.conn.read_eof() {
                    if ds.abort {
                        ds.conn.reset_on_close();
                    }
                    return self.close_downstream(id);
                }
                ds.conn.shutdown_write(&self.stats.syscalls);
                ds.state = DownstreamState::Lingering;
                // The flush timer's turn is over; the linger timer replaces it.
                let mut flush_timer = ds.linger_timer.take();
                self.disarm(&mut flush_timer);
                let timer = self.arm(LINGER, TimerKey::Linger(id));
                if let Some(ds) = self.downstreams.get_mut(id) {
                    ds.linger_timer = Some(timer);
                }
                self.deferred.push_back(Deferred::Downstream(id));
            }
            Ok(_) => {
                let low = ds.conn.queued() <= listener_buffer_limit(&self.listeners, ds) / 2;
                if low && ds.replies_gated {
                    ds.replies_gated = false;
                    self.deferred.push_back(Deferred::Downstream(id));
                }
                if let (true, Some(sid)) = (low, ds.stream)
                    && let Some(stream) = self.streams.get_mut(sid)
                    && stream.response_paused
                {
                    stream.response_paused = false;
                    if let Some(up) = stream.upstream {
                        self.deferred.push_back(Deferred::Upstream(up));
                    }
                }
            }
        }
    }

    /// Flushes the upstream of the downstream's active stream, if any.
    fn flush_stream_upstream(&mut self, id: Id) {
        if let Some(sid) = self.downstreams.get(id).and_then(|d| d.stream) {
            self.flush_stream_upstream_of(sid);
        }
    }

    /// After FIN: read and drop what the client still sends until its FIN or the timer.
    fn linger_read(&mut self, id: Id) {
        loop {
            let Some(ds) = self.downstreams.get_mut(id) else {
                return;
            };
            ds.conn.input.clear();
            if !ds.conn.can_read() {
                if ds.conn.read_eof() {
                    self.close_downstream(id);
                }
                return;
            }
            let outcome = ds.conn.fill(&mut self.scratch, &self.stats.syscalls);
            self.trace_down(id, || read_event(&outcome));
            match outcome {
                ReadOutcome::Data(_) => {}
                ReadOutcome::Drained => return,
                ReadOutcome::Eof | ReadOutcome::Failed(_) => return self.close_downstream(id),
            }
        }
    }

    /// Encodes the upstream's response head for the client: hop-by-hop headers removed, the
    /// route's response headers applied; the codec frames it for this client.
    pub(crate) fn encode_response_head(
        &mut self,
        sid: Id,
        mut head: ResponseHead,
        end_stream: bool,
    ) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.response_started = true;
        stream.status = head.status;
        stream.last_activity = self.now;
        // Envoy's request_timeout ends when the response begins: an upload still running
        // under an early answer is bounded by the stream idle timeout instead.
        if let Some(t) = stream.request_timer.take() {
            self.timers.cancel(t);
        }
        let (closing, route, ds_id) = (stream.close_after, stream.route, stream.downstream);
        let drain_close = self.drain_close();
        let Some(ds) = self.downstreams.get_mut(ds_id) else {
            return;
        };
        strip_hop_by_hop(&mut head.headers);
        if let Some(r) = route {
            ds.chain.routes.mutate_response(r, &mut head.headers);
        }
        let close = closing || drain_close || ds.close_soon;
        let kept = ds
            .codec
            .encode_headers(&mut head, end_stream, close, &mut ds.conn);
        let close_after = ds.codec.closes_connection();
        if kept
            && !closing
            && drain_close
            && let Some(http) = self.stats.http.get(ds.chain.stats)
        {
            http.stats.downstream_cx_drain_close.inc();
        }
        if let Some(stream) = self.streams.get_mut(sid) {
            stream.close_after = close_after;
        }
        self.log_response(sid, &head.headers, "via_upstream");
    }

    /// Queues a piece of response body for the client, framed as chosen at the head.
    pub(crate) fn forward_response_data(&mut self, sid: Id, data: Bytes) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.last_activity = self.now;
        let Some(ds) = self.downstreams.get_mut(stream.downstream) else {
            return;
        };
        let sent = ds.codec.encode_data(data, &mut ds.conn);
        if let Some(log) = stream.log.as_mut() {
            log.bytes_sent += sent as u64;
        }
    }

    /// The response is fully queued: end the stream.
    pub(crate) fn complete_response(&mut self, sid: Id) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.response_complete = true;
        if let Some(ds) = self.downstreams.get_mut(stream.downstream) {
            ds.codec.encode_end(&mut ds.conn);
        }
        self.finish_stream(sid);
    }

    /// Answers a stream locally. If its response already started it can only be cut.
    pub(crate) fn local_reply(&mut self, sid: Id, route: Option<RouteRef>, reply: LocalReply) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        if stream.response_started {
            if let Some(flag) = reply.flag {
                stream.flag.get_or_insert(flag);
            }
            return self.cut_stream(sid);
        }
        let upstream = stream.upstream.take();
        if upstream.is_some() {
            end_upstream_request(&self.stats, self.now, stream, UpstreamEnd::LocalReset);
        }
        let (mut retry_timer, mut per_try_timer) =
            (stream.retry_timer.take(), stream.per_try_timer.take());
        let ds_id = stream.downstream;
        self.disarm(&mut retry_timer);
        self.disarm(&mut per_try_timer);
        self.charge_upstream_abort(sid, &reply);
        let flag = reply.flag.map_or("", |f| f.letters());
        self.trace_down(ds_id, || EventKind::LocalReply {
            status: reply.status,
            flag,
        });
        let drain_close = self.closes_connection(ds_id);
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.response_started = true;
        stream.status = reply.status;
        stream.flag = reply.flag;
        // Answering before the request body arrived closes the connection (the codec's rule,
        // as Envoy's), rather than guess where the next request starts.
        let close = stream.close_after || drain_close;
        if let Some(up) = upstream {
            self.close_upstream(up);
        }
        let route = route.or(self.streams.get(sid).and_then(|s| s.route));
        let (mut head, body) = self.local_response(&reply, route.map(|r| (ds_id, r)));
        let Some(ds) = self.downstreams.get_mut(ds_id) else {
            return;
        };
        ds.codec
            .encode_headers(&mut head, body.is_empty(), close, &mut ds.conn);
        let sent = ds.codec.encode_data(body, &mut ds.conn);
        ds.codec.encode_end(&mut ds.conn);
        let close_after = ds.codec.closes_connection();
        self.log_response(sid, &head.headers, reply.details);
        if let Some(stream) = self.streams.get_mut(sid) {
            stream.close_after = close_after;
            stream.response_complete = true;
            if let Some(log) = stream.log.as_mut() {
                log.bytes_sent = sent as u64;
            }
        }
        self.finish_stream(sid);
        self.flush_downstream(ds_id);
    }

    /// A local reply as a response: its head (with the route's response headers, when one
    /// matched) and its body.
    fn local_response(
        &mut self,
        reply: &LocalReply,
        route: Option<(Id, RouteRef)>,
    ) -> (ResponseHead, Bytes) {
        let mut headers = Headers::with_capacity(6);
        if let Some(location) = &reply.location {
            headers.append("location", location.clone());
        }
        if !reply.body.is_empty() {
            headers.append("content-type", Bytes::from_static(b"text/plain"));
        }
        let mut len = itoa::Buffer::new();
        headers.append(
            "content-length",
            Bytes::copy_from_slice(len.format(reply.body.len()).as_bytes()),
        );
        headers.append("date", self.date.get(self.now));
        headers.append("server", Bytes::from_static(b"weir"));
        if let Some((ds, r)) = route
            && let Some(ds) = self.downstreams.get(ds)
        {
            ds.chain.routes.mutate_response(r, &mut headers);
        }
        let head = ResponseHead {
            version: Version::Http11,
            status: reply.status,
            reason: Bytes::new(),
            headers,
        };
        (head, reply.body.clone())
    }

    /// Removes a finished stream; the connection reads its next request or closes.
    pub(crate) fn finish_stream(&mut self, sid: Id) {
        let Some(mut stream) = self.streams.remove(sid) else {
            return;
        };
        self.disarm(&mut stream.route_timer);
        self.disarm(&mut stream.request_timer);
        self.disarm(&mut stream.idle_timer);
        self.disarm(&mut stream.retry_timer);
        self.disarm(&mut stream.per_try_timer);
        end_upstream_request(&self.stats, self.now, &mut stream, UpstreamEnd::LocalReset);
        if let Some(up) = stream.upstream {
            self.close_upstream(up);
        }
        let id = stream.downstream;
        let Some(ds) = self.downstreams.get(id) else {
            return;
        };
        if let Some(http) = self.stats.http.get(ds.chain.stats) {
            http.response(stream.status);
            http.stats.downstream_rq_completed.inc();
            http.stats.downstream_rq_active.dec();
            let took = self.now.saturating_duration_since(stream.started);
            http.stats
                .downstream_rq_time
                .record(took.as_millis() as u64);
        }
        self.write_log(&mut stream, false);
        let Some(ds) = self.downstreams.get(id) else {
            return;
        };
        // While draining, a connection ends with its stream even when the response started
        // before the drain (and so went out without `connection: close`), as Envoy does;
        // otherwise it would idle until the drain deadline.
        let closing = stream.close_after || ds.peer_closed || self.closes_connection(id);
        if !closing {
            self.trace_down(id, || EventKind::ReadResumed { syscall: false });
        }
        let Some(ds) = self.downstreams.get_mut(id) else {
            return;
        };
        ds.stream = None;
        if let Some((method, path)) = stream.traced {
            ds.pending_flow = Some(Box::new(PendingFlow {
                stream: stream.trace_id,
                status: stream.status,
                method,
                path,
                start: ds.trace.start,
            }));
        }
        if closing {
            self.close_after_flush(id);
        } else {
            ds.conn.release_idle_input();
            self.arm_idle_timer(id);
            self.deferred.push_back(Deferred::Downstream(id));
        }
    }

    /// A response that started cannot become an error response: send what is queued and
    /// close, so the client sees a short body or a missing last chunk, never a padded one.
    pub(crate) fn cut_stream(&mut self, sid: Id) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.close_after = true;
        let ds_id = stream.downstream;
        if let Some(ds) = self.downstreams.get_mut(ds_id) {
            ds.abort |= ds.codec.close_delimited();
        }
        self.finish_stream(sid);
        self.flush_downstream(ds_id);
    }

    /// Closes a downstream connection now, abandoning its stream (and that stream's upstream,
    /// which is mid-exchange and cannot be reused).
    pub(crate) fn close_downstream(&mut self, id: Id) {
        if self.recorder.enabled() {
            self.trace_closing(id);
        }
        // An unanswered stream's log entry reads its connection: write it first.
        let sid = self.downstreams.get(id).and_then(|d| d.stream);
        let mut abandoned = sid.and_then(|s| self.streams.remove(s));
        if let Some(stream) = abandoned.as_mut() {
            self.write_log(stream, true);
        }
        let Some(mut ds) = self.downstreams.remove(id) else {
            return;
        };
        self.disarm(&mut ds.idle_timer);
        self.disarm(&mut ds.linger_timer);
        self.disarm(&mut ds.header_timer);
        self.disarm(&mut ds.duration_timer);
        self.control.server.connection_closed();
        let stats = self.stats.clone();
        let http = stats.http.get(ds.chain.stats).map(|h| &h.stats);
        if let Some(mut stream) = abandoned {
            self.disarm(&mut stream.route_timer);
            self.disarm(&mut stream.request_timer);
            self.disarm(&mut stream.idle_timer);
            self.disarm(&mut stream.retry_timer);
            self.disarm(&mut stream.per_try_timer);
            // The client went away (or the connection was cut) with this request unanswered.
            if let Some(http) = http {
                http.downstream_rq_active.dec();
                http.downstream_rq_rx_reset.inc();
                http.downstream_cx_destroy_active_rq.inc();
            }
            end_upstream_request(&self.stats, self.now, &mut stream, UpstreamEnd::LocalReset);
            if let Some(up) = stream.upstream {
                self.close_upstream(up);
            }
        }
        self.syscalls().other();
        let lived = ds.accepted.until(self.now);
        if let Some(l) = self.stats.listeners.get(ds.listener as usize) {
            l.downstream_cx_destroy.inc();
            l.downstream_cx_active.dec();
            l.downstream_cx_length_ms.record(lived);
        }
        if let Some(http) = http {
            http.downstream_cx_destroy.inc();
            http.downstream_cx_active.dec();
            http.downstream_cx_http1_active.dec();
            http.downstream_cx_length_ms.record(lived);
            if ds.closed_by_peer {
                &http.downstream_cx_destroy_remote
            } else {
                &http.downstream_cx_destroy_local
            }
            .inc();
        }
        drop(ds);
    }

    /// The connection ends once its queue has left (FIN, then linger). A timer bounds the
    /// wait: `LINGER` without write progress closes it, so a client that stops reading cannot
    /// hold the connection and its queue forever (no other timer runs in this state).
    pub(crate) fn close_after_flush(&mut self, id: Id) {
        let Some(ds) = self.downstreams.get_mut(id) else {
            return;
        };
        ds.state = DownstreamState::CloseAfterFlush;
        ds.flush_mark = ds.conn.bytes_out as u32;
        let mut old = ds.linger_timer.take();
        self.disarm(&mut old);
        let timer = self.arm(LINGER, TimerKey::Linger(id));
        if let Some(ds) = self.downstreams.get_mut(id) {
            ds.linger_timer = Some(timer);
        }
    }

    /// No stream for the idle timeout. A response may still be leaving (the stream ended when
    /// it was queued, not sent): then the connection closes after it, as Envoy's idle close
    /// flushes first, instead of cutting it.
    pub(crate) fn on_downstream_idle_timer(&mut self, id: Id) {
        let Some(ds) = self.downstreams.get_mut(id) else {
            return;
        };
        ds.idle_timer = None;
        if ds.stream.is_some() || ds.state != DownstreamState::Open {
            // A closing connection has its own timer.
            return;
        }
        if let Some(http) = self.stats.http.get(ds.chain.stats) {
            http.stats.downstream_cx_idle_timeout.inc();
        }
        if ds.conn.queued() == 0 {
            return self.close_downstream(id);
        }
        self.close_after_flush(id);
        self.flush_downstream(id);
    }

    /// While flushing before a close: more went out since the timer was armed, so wait another
    /// period; otherwise (and always once lingering) close. Unsent bytes mean a cut response,
    /// which must not look complete to the client: reset.
    pub(crate) fn on_linger_timer(&mut self, id: Id) {
        let Some(ds) = self.downstreams.get_mut(id) else {
            return;
        };
        ds.linger_timer = None;
        if ds.state == DownstreamState::CloseAfterFlush {
            // Any progress (compared modulo 2^32: the mark only needs to tell "more went out").
            if ds.conn.bytes_out as u32 != ds.flush_mark {
                ds.flush_mark = ds.conn.bytes_out as u32;
                let timer = self.arm(LINGER, TimerKey::Linger(id));
                if let Some(ds) = self.downstreams.get_mut(id) {
                    ds.linger_timer = Some(timer);
                }
                return;
            }
            if ds.conn.queued() > 0 {
                tracing::debug!("client read nothing for {LINGER:?}; resetting, response unsent");
                ds.conn.reset_on_close();
            }
        }
        self.close_downstream(id);
    }

    pub(crate) fn on_route_timeout(&mut self, sid: Id) {
        if let Some(stream) = self.streams.get_mut(sid) {
            stream.route_timer = None;
            if stream.forwarded
                && let Some(c) = self.stats.clusters.get(stream.cluster)
            {
                c.common.upstream_rq_timeout.inc();
                if let Some(h) = c.hosts.get(stream.upstream_host) {
                    h.rq_timeout.inc();
                }
            }
            self.local_reply(
                sid,
                None,
                LocalReply::failure(ResponseFlag::UpstreamRequestTimeout),
            );
        }
    }

    pub(crate) fn on_request_timeout(&mut self, sid: Id) {
        if let Some(stream) = self.streams.get_mut(sid) {
            stream.request_timer = None;
            if !stream.request_complete {
                self.count_stream_stat(sid, |h| &h.downstream_rq_timeout);
                self.local_reply(
                    sid,
                    None,
                    LocalReply::new(408, "request timeout").because("request_overall_timeout"),
                );
            }
        }
    }

    /// The stream idle timer is armed once; activity only moves `last_activity`, and the
    /// timer re-arms itself for the remainder when it fires early.
    pub(crate) fn on_stream_idle_timer(&mut self, sid: Id) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.idle_timer = None;
        let Some(ds) = self.downstreams.get(stream.downstream) else {
            return;
        };
        let Some(timeout) = ds.chain.hcm.stream_idle_timeout else {
            return;
        };
        let due = stream.last_activity + timeout;
        if due > self.now {
            let t = self.timers.insert(due, TimerKey::StreamIdle(sid));
            self.streams.get_mut(sid).expect("exists").idle_timer = Some(t);
        } else {
            self.count_stream_stat(sid, |h| &h.downstream_rq_idle_timeout);
            self.local_reply(
                sid,
                None,
                LocalReply::failure(ResponseFlag::StreamIdleTimeout),
            );
        }
    }
}

impl Worker {
    /// Decides whether the request is traced; records its head if so, and otherwise stops
    /// recording on the connection until the stream ends.
    fn trace_request_head(&mut self, id: Id, sid: Id, request: &RequestHead) {
        let Some(ds) = self.downstreams.get_mut(id) else {
            return;
        };
        let wanted = self.recorder.wants(&mut ds.trace, || {
            request
                .headers
                .get("x-weir-trace")
                .is_some_and(|v| v.as_ref() == b"1")
        });
        if !wanted {
            return;
        }
        let method = ShortText::new(&request.method);
        let path = ShortText::new(&request.target);
        if let Some(stream) = self.streams.get_mut(sid) {
            stream.traced = Some((method, path));
        }
        self.trace_down(id, || EventKind::RequestHead {
            method: ShortText::new(&request.method),
            path: ShortText::new(&request.target),
        });
    }

    /// A connection is closing: record it, and keep the flow of its last (or abandoned) stream.
    fn trace_closing(&mut self, id: Id) {
        let Some(ds) = self.downstreams.get(id) else {
            return;
        };
        let by = crate::recorder::closer(ds.conn.read_eof(), false);
        if ds.pending_flow.is_none()
            && let Some(stream) = ds.stream.and_then(|s| self.streams.get(s))
            && let Some((method, path)) = stream.traced
        {
            let pending = Box::new(PendingFlow {
                stream: stream.trace_id,
                status: stream.status,
                method,
                path,
                start: ds.trace.start,
            });
            self.downstreams.get_mut(id).expect("exists").pending_flow = Some(pending);
        }
        self.trace_down(id, || EventKind::Close { by });
        self.trace_response_sent(id);
    }
}

fn read_event(outcome: &ReadOutcome) -> EventKind {
    EventKind::Read {
        asked: crate::worker::READ_SIZE as u32,
        result: crate::recorder::read_result(outcome),
    }
}

/// `http://authority/path?q` → (authority, `/path?q`); `None` for origin-form targets.
pub(crate) fn absolute_form_split(target: &Bytes) -> Option<(Bytes, Bytes)> {
    let lower = target.get(..8).map(|p| p.to_ascii_lowercase())?;
    let skip = if lower.starts_with(b"http://") {
        7
    } else if lower.starts_with(b"https://") {
        8
    } else {
        return None;
    };
    let rest = target.slice(skip..);
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = rest.slice(..end);
    let path = rest.slice(end..);
    let origin_form = if path.first() == Some(&b'/') {
        path
    } else {
        let mut p = BytesMut::with_capacity(path.len() + 1);
        p.extend_from_slice(b"/");
        p.extend_from_slice(&path);
        p.freeze()
    };
    Some((authority, origin_form))
}

/// Stats bookkeeping shared by the downstream and upstream sides.
impl Worker {
    /// Increments one of the stream's HCM counters.
    fn count_stream_stat(
        &self,
        sid: Id,
        pick: fn(&crate::stats::HttpStats) -> &crate::stats::Counter,
    ) {
        let ds = self
            .streams
            .get(sid)
            .and_then(|s| self.downstreams.get(s.downstream));
        if let Some(http) = ds.and_then(|d| self.stats.http.get(d.chain.stats)) {
            pick(&http.stats).inc();
        }
    }

    /// A local reply that replaces an upstream response (a failure, a timeout, no healthy
    /// host) is charged to the cluster as that status, as Envoy's router does
    /// (`upstream_rq_503`, the host's `rq_error`).
    fn charge_upstream_abort(&self, sid: Id, reply: &LocalReply) {
        use ResponseFlag::*;
        let upstream = matches!(
            reply.flag,
            Some(
                NoHealthyUpstream
                    | UpstreamConnectionFailure
                    | UpstreamConnectionTermination
                    | UpstreamRemoteReset
                    | UpstreamProtocolError
                    | UpstreamRequestTimeout
            )
        );
        if let (true, Some(stream)) = (upstream, self.streams.get(sid))
            && let Some(c) = self.stats.clusters.get(stream.cluster)
        {
            c.charge(stream.upstream_host, reply.status);
        }
    }
}
