//! The HTTP connection manager's connection side: reading and decoding a downstream
//! connection (the seed's "Downstream Read Request" up to a decoded request), the decode gate,
//! flushing responses (its "Downstream Write Response"), and the connection's timers and close.
//! A decoded request becomes a stream in `stream.rs`; its response is encoded in `response.rs`.
//!
//! A connection holds any number of active streams, by the codec's stream key: a decoded part
//! goes to the stream its key names, and what happens to the whole connection (its end, a
//! reset, its timers, its close) happens to every active stream. HTTP/1 keeps them to one.
//!
//! Rules this file keeps:
//! - Once a request is complete the downstream is not read until its response is done, unless
//!   the codec may start another stream meanwhile (HTTP/1 may not: "stop reading" is the decode
//!   gate below, a user-space decision; the readable edge is remembered by the connection). A
//!   tunnel's bytes are not read before it opens.
//! - Request bodies (and tunnel bytes) stream to the upstream queue, or to the filter that
//!   holds the request; past the buffer limit the downstream stops being read until the queue
//!   drains to half (watermarks).
//! - A stream ends when its response is fully queued; the connection then reads the next
//!   (pipelined) request, or closes after flushing when either side asked for close.

use bytes::Bytes;
use weir_http1::Error as CodecError;

use crate::codec::{RequestPart, StreamKey};
use crate::event::token::Id;
use crate::http::active_stream::{RequestState, Tunnel};
use crate::http::local_reply::{LocalReply, ResponseFlag};
use crate::network::connection::ReadOutcome;
use crate::recorder::{PendingFlow, write_event};
use crate::worker::{Deferred, DownstreamState, LINGER, TimerKey, Worker, listener_buffer_limit};
use weir_flow::{Direction, EventKind, Lane};

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
    /// streams' upstreams once (all of this round's request bytes in one `writev` each).
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
                && ds.streams.is_empty()
                && ds.header_timer.is_none()
                && ds.conn.input.iter().any(|&b| b != b'\r' && b != b'\n')
            {
                let timer = self.arm(after, TimerKey::RequestHeaders(id));
                let ds = self.downstreams.get_mut(id).expect("checked above");
                ds.header_timer = Some(timer);
            }
            let ds = self.downstreams.get_mut(id).expect("checked above");
            match ds.codec.decode(&mut ds.conn.input) {
                Ok(Some((key, part))) => {
                    self.on_request_event(id, key, part);
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
            if let Some(progress) = ds.conn.take_tls_progress() {
                self.tls_progress(id, progress);
            }
            let Some(ds) = self.downstreams.get_mut(id) else {
                return;
            };
            if let (ReadOutcome::Data(n), Some(http)) =
                (&outcome, self.stats.http.get(ds.chain.stats))
            {
                http.stats.downstream_cx_rx_bytes_total.add(*n as u64);
            }
            self.trace_down(id, || read_event(&outcome));
            self.trace_down_tls(id, Direction::In);
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
        self.flush_stream_upstreams(id);
    }

    /// The decode gate. Each active stream whose request is still arriving must take more:
    /// its body is decoded while its upstream queue (or the filter holding it) is under the
    /// buffer limit. When none is arriving, the next bytes start a new stream: the codec must
    /// allow one (HTTP/1: not before the last response is done, so pipelined bytes wait), and
    /// the replies queued for the client must be under the listener's buffer limit (pipelined
    /// requests that weir answers itself have no upstream queue to push back).
    fn may_decode(&mut self, id: Id) -> bool {
        let Some(ds) = self.downstreams.get(id) else {
            return false;
        };
        let mut arriving = false;
        // By index: the gate removes no stream, and a copy of the list would cost HTTP/2 an
        // allocation per read.
        for i in 0..ds.streams.as_slice().len() {
            let Some(&(_, sid)) = self
                .downstreams
                .get(id)
                .and_then(|d| d.streams.as_slice().get(i))
            else {
                break;
            };
            match self.stream_takes_more(id, sid) {
                Some(true) => arriving = true,
                Some(false) => return false,
                None => {}
            }
        }
        let Some(ds) = self.downstreams.get_mut(id) else {
            return false;
        };
        if arriving {
            return true;
        }
        if !ds.codec.may_start_stream() {
            return false;
        }
        ds.replies_gated = ds.conn.queued() >= listener_buffer_limit(&self.listeners, ds);
        !ds.replies_gated
    }

    /// The decode gate for one active stream of connection `id`: `None` when its request is
    /// complete (it needs nothing more read), else whether it takes more now (a stream that
    /// does not is marked `client_paused`).
    fn stream_takes_more(&mut self, id: Id, sid: Id) -> Option<bool> {
        let ds = self.downstreams.get(id)?;
        let Some(stream) = self.streams.get(sid) else {
            return Some(false);
        };
        if stream.request_complete() {
            return None;
        }
        // A request waiting for a retry's back-off: read nothing more. A tunnel's bytes wait
        // for its 101 (or its CONNECT's 200): nothing after the head is read until then, so no
        // request rides past routing to the origin.
        if stream.retry.timer.is_some()
            || (stream.tunnel != Tunnel::No && !ds.codec.tunnel_open(stream.key))
        {
            return Some(false);
        }
        let below = if !stream.filters.routed() {
            // A filter holds the request, and its body with it.
            let limit = listener_buffer_limit(&self.listeners, ds);
            stream.filters.held_len() < stream.filters.hold_limit(limit)
        } else {
            match stream.upstream().and_then(|u| self.upstreams.get(u)) {
                Some(up) => up.conn.queued() < up.buffer_limit,
                // Waiting for a connection: its body is kept, up to the listener's limit.
                None if stream.queued => {
                    stream.retry.body_bytes < listener_buffer_limit(&self.listeners, ds)
                }
                None => true,
            }
        };
        if !below {
            self.streams.get_mut(sid).expect("checked").client_paused = true;
        }
        Some(below)
    }

    /// A part the codec decoded for its stream `key` on connection `id`.
    fn on_request_event(&mut self, id: Id, key: StreamKey, part: RequestPart) {
        match part {
            RequestPart::Headers(start) => self.on_request_head(id, key, start),
            RequestPart::Data(data) => {
                let Some(sid) = self.downstreams.get(id).and_then(|d| d.streams.get(key)) else {
                    return;
                };
                let Some(stream) = self.streams.get_mut(sid) else {
                    return;
                };
                stream.last_activity = self.now;
                if let Some(log) = stream.log.as_mut() {
                    log.bytes_received += data.len() as u64;
                }
                self.request_data(sid, data);
            }
            RequestPart::End => {
                let Some(sid) = self.downstreams.get(id).and_then(|d| d.streams.get(key)) else {
                    return;
                };
                let Some(stream) = self.streams.get_mut(sid) else {
                    return;
                };
                stream.request = RequestState::Complete;
                stream.last_activity = self.now;
                if let Some(log) = stream.log.as_mut() {
                    log.request_done = Some(self.now);
                }
                let mut request_timer = stream.request_timer.take();
                self.disarm(&mut request_timer);
                self.trace_stream(sid, || EventKind::RequestComplete);
                // The gate closes unless another stream may start (HTTP/1: not until this
                // response is done).
                if self
                    .downstreams
                    .get(id)
                    .is_some_and(|d| !d.codec.may_start_stream())
                {
                    self.trace_stream(sid, || EventKind::ReadPaused { syscall: false });
                }
                self.request_end(sid);
            }
        }
    }

    /// A request the codec rejected: answer with its status and close (the upstream saw
    /// nothing of it, or, mid-body, its connection is closed too). The request is the stream
    /// whose request was arriving, or one that never became a stream; other active streams
    /// end with the connection.
    fn on_request_error(&mut self, id: Id, error: CodecError) {
        tracing::debug!(%error, "malformed request");
        let sid = self.downstreams.get(id).and_then(|d| {
            d.streams
                .as_slice()
                .iter()
                .map(|&(_, sid)| sid)
                .find(|&sid| self.streams.get(sid).is_some_and(|s| !s.request_complete()))
        });
        // A missing Host is Envoy's connection manager's rejection, after its codec: 400
        // without a body, no protocol error. The codec's own errors carry their reason phrase
        // as the body, as Envoy's codec errors do.
        let reply = if error == CodecError::MissingHost {
            LocalReply::new(400, Bytes::new()).because("missing_host_header")
        } else {
            let http = self.downstreams.get(id).map(|d| d.chain.stats);
            if let Some(http) = http.and_then(|k| self.stats.http.get(k)) {
                http.stats.downstream_cx_protocol_error.inc();
            }
            let mut reply = LocalReply::failure(ResponseFlag::DownstreamProtocolError);
            reply.status = error.status();
            reply.body = Bytes::from_static(weir_http1::reason_phrase(error.status()).as_bytes());
            reply
        };
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
        let (mut head, body) = self.local_response(reply, id, None);
        if let Some(ds) = self.downstreams.get_mut(id) {
            let mut header_timer = ds.header_timer.take();
            let key = ds.codec.reset_exchange();
            ds.codec
                .encode_headers(key, &mut head, None, body.is_empty(), true, &mut ds.conn);
            ds.codec.encode_data(key, body, &mut ds.conn);
            ds.codec.encode_end(key, &mut ds.conn);
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
        if !ds.streams.is_empty() || ds.state != DownstreamState::Open {
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
        if !ds.streams.is_empty() || ds.state != DownstreamState::Open {
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
    pub(crate) fn closes_connection(&self, ds_id: Id) -> bool {
        self.drain_close(ds_id) || self.downstreams.get(ds_id).is_some_and(|d| d.close_soon)
    }

    /// The client half-closed. Between requests that ends the connection. Otherwise every
    /// active stream learns of it: a complete request is still answered, a tunnel's request
    /// ends, and a request cut mid-way abandons the connection (and its other streams).
    fn on_downstream_eof(&mut self, id: Id) {
        let Some(ds) = self.downstreams.get(id) else {
            return;
        };
        let streams = ds.streams.clone();
        let active = |sid| self.streams.get(sid);
        // A tunnel not open yet holds the client's bytes unread: its FIN is taken up once they
        // are (the connection still reports the EOF then).
        let tunnel_waits = streams.as_slice().iter().any(|&(key, sid)| {
            active(sid).is_some_and(|s| s.tunnel != Tunnel::No && !ds.codec.tunnel_open(key))
        });
        if tunnel_waits {
            return;
        }
        let cut = streams.as_slice().iter().any(|&(_, sid)| {
            active(sid).is_some_and(|s| !s.request_complete() && s.tunnel == Tunnel::No)
        });
        let ds = self.downstreams.get_mut(id).expect("checked above");
        ds.peer_closed = true;
        ds.closed_by_peer = true;
        if streams.is_empty() {
            // The last response may still be queued (larger than the kernel's buffers, a slow
            // reader): closing now would drop it. Half-closing is how some clients say "that
            // was my last request", so send the rest, then close.
            if ds.conn.queued() > 0 {
                self.close_after_flush(id);
                return self.flush_downstream(id);
            }
            return self.close_downstream(id);
        }
        if cut {
            tracing::debug!("client closed mid-request");
            return self.close_downstream(id);
        }
        // A tunnel's request is its client's bytes: their end is the request's end, and the
        // other direction carries on until the origin closes.
        for &(key, sid) in streams.as_slice() {
            if self.streams.get(sid).is_some_and(|s| !s.request_complete()) {
                self.on_request_event(id, key, RequestPart::End);
            }
        }
    }

    /// Writes the downstream queue; after the last byte of a closing connection, sends FIN and
    /// lingers; below the low watermark, resumes a paused upstream.
    pub(crate) fn flush_downstream(&mut self, id: Id) {
        let Some(ds) = self.downstreams.get_mut(id) else {
            return;
        };
        if !ds.conn.has_output() && ds.state != DownstreamState::CloseAfterFlush {
            return;
        }
        let (fd, conn) = (ds.conn.fd(), u64::from(ds.trace.conn));
        // The response being written belongs to the only active stream, or to the one just
        // ended (with several, a write is the connection's).
        let stream = match (
            ds.streams.sole().and_then(|s| self.streams.get(s)),
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
        let emptied = matches!(result, Ok(true)) && ds.streams.is_empty();
        self.trace_down_tls(id, Direction::Out);
        let Some(ds) = self.downstreams.get_mut(id) else {
            return;
        };
        if emptied {
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
                let streams = if low { ds.streams.as_slice() } else { &[] };
                for &(_, sid) in streams {
                    if let Some(stream) = self.streams.get_mut(sid)
                        && std::mem::take(&mut stream.upstream_paused)
                        && let Some(up) = stream.upstream()
                    {
                        self.deferred.push_back(Deferred::Upstream(up));
                    }
                }
            }
        }
    }

    /// Flushes the upstreams of the downstream's active streams.
    pub(crate) fn flush_stream_upstreams(&mut self, id: Id) {
        // A copy, since a flush may end a stream (HTTP/1's one is copied without allocating).
        let Some(streams) = self.downstreams.get(id).map(|d| d.streams.clone()) else {
            return;
        };
        for &(_, sid) in streams.as_slice() {
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
            self.trace_down_tls(id, Direction::In);
            match outcome {
                ReadOutcome::Data(_) => {}
                ReadOutcome::Drained => return,
                ReadOutcome::Eof | ReadOutcome::Failed(_) => return self.close_downstream(id),
            }
        }
    }

    /// Closes a downstream connection now, abandoning its active streams (and their upstreams,
    /// which are mid-exchange and cannot be reused).
    pub(crate) fn close_downstream(&mut self, id: Id) {
        if self.recorder.enabled() {
            self.trace_closing(id);
        }
        while let Some((_, sid)) = self.downstreams.get_mut(id).and_then(|d| d.streams.pop()) {
            self.abandon_stream(id, sid);
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

    /// A stream of connection `id`, already out of its active streams, ends unanswered with the
    /// connection: the client went away (or the connection was cut).
    fn abandon_stream(&mut self, id: Id, sid: Id) {
        let Some(mut stream) = self.streams.remove(sid) else {
            return;
        };
        // Its log entry reads the connection: written while the connection is still there.
        self.write_log(&mut stream, true);
        self.keep_failure(&stream, true);
        let scope = self
            .downstreams
            .get(id)
            .map_or(usize::MAX, |d| d.chain.stats);
        self.retire_stream(&mut stream, scope);
        if let Some(http) = self.stats.http.get(scope).map(|h| &h.stats) {
            http.downstream_rq_active.dec();
            http.downstream_rq_rx_reset.inc();
            http.downstream_cx_destroy_active_rq.inc();
        }
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
        if !ds.streams.is_empty() || ds.state != DownstreamState::Open {
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

    /// A connection is closing: record it, and keep the flow of its last (or abandoned) stream.
    pub(crate) fn trace_closing(&mut self, id: Id) {
        let Some(ds) = self.downstreams.get(id) else {
            return;
        };
        let by = crate::recorder::closer(ds.conn.read_eof(), false);
        // The connection keeps one pending flow: its first traced stream's.
        let traced = ds.streams.as_slice().iter().find_map(|&(_, sid)| {
            let stream = self.streams.get(sid)?;
            stream.traced.map(|t| (stream, t))
        });
        // A failed stream's flow says why, before it ends with the connection.
        let why = traced.and_then(|(stream, _)| self.why_of(stream));
        if ds.pending_flow.is_none()
            && let Some((stream, (method, path))) = traced
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
        if let Some(reason) = why {
            self.trace_down(id, || EventKind::Why {
                reason: reason.into(),
            });
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
