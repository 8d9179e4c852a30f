//! A stream's response side: the upstream's response or a local reply encoded for the client
//! (the seed's "Downstream Write Response"), and how a stream ends.

use bytes::Bytes;
use weir_http1::{Headers, ResponseHead, Version};

use std::sync::atomic::Ordering::Relaxed;

use crate::codec::ReceivedNames;
use crate::event::token::Id;
use crate::http::active_stream::{ResponseState, Stream};
use crate::http::filter::EncodeEnv;
use crate::http::headers::{number_value, set_response_headers, strip_hop_by_hop};
use crate::http::local_reply::{LocalReply, ResponseFlag};
use crate::recorder::PendingFlow;
use crate::router::route_table::RouteRef;
use crate::stats::WorkerStats;
use crate::upstream::{UpstreamEnd, end_attempt};
use crate::worker::Downstream;
use crate::worker::{Deferred, Worker};
use weir_flow::EventKind;

impl Worker {
    /// A stream is gone (finished or abandoned): its timers are disarmed, an attempt still
    /// under way is given up (its connection closed: it is mid-exchange), and its filters give
    /// back what they hold in shared state. `scope`: its HCM's stats.
    pub(crate) fn retire_stream(&mut self, stream: &mut Stream, scope: usize) {
        self.disarm(&mut stream.route_timer);
        self.disarm(&mut stream.request_timer);
        self.disarm(&mut stream.idle_timer);
        self.disarm(&mut stream.retry.timer);
        self.disarm(&mut stream.filter_timer);
        crate::upstream::retry::release_retry(&self.clusters, stream);
        let end = UpstreamEnd::LocalReset;
        if let Some(up) = end_attempt(
            (&self.stats, &self.clusters),
            &mut self.timers,
            self.now,
            stream,
            end,
        ) {
            self.close_upstream(up);
        }
        if let Some(http) = self.stats.http.get(scope) {
            stream.filters.on_destroy(&http.fault);
        }
    }

    /// Runs a response head through the stream's filters (their encode path).
    fn encode_filters(&mut self, sid: Id, head: &mut ResponseHead) {
        let env = EncodeEnv {
            health_check_failed: self.control.server.health_check_failed.load(Relaxed),
            local_cluster: &self.local_cluster,
        };
        if let Some(stream) = self.streams.get_mut(sid) {
            stream.filters.encode_headers(head, &env);
        }
    }

    /// Encodes the upstream's response head for the client: hop-by-hop headers removed, the
    /// route's response headers applied; the codec frames it for this client (`names`: as
    /// the origin spelled them, when the cluster kept them).
    pub(crate) fn encode_response_head(
        &mut self,
        sid: Id,
        mut head: ResponseHead,
        names: Option<ReceivedNames>,
        end_stream: bool,
    ) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.response = ResponseState::Sending;
        stream.status = head.status;
        stream.last_activity = self.now;
        // Envoy's request_timeout ends when the response begins: an upload still running
        // under an early answer is bounded by the stream idle timeout instead.
        if let Some(t) = stream.request_timer.take() {
            self.timers.cancel(t);
        }
        let (closing, route, ds_id, key) = (
            stream.close_after,
            stream.route,
            stream.downstream,
            stream.key,
        );
        let drain_close = self.drain_close(ds_id);
        let Some(ds) = self.downstreams.get_mut(ds_id) else {
            return;
        };
        // A reload that replaced the connection's chain closes it after this response.
        let drain_close = drain_close || ds.chain.retired();
        // A 101 keeps what it switched to (only an upgrade the route allowed gets one).
        let switched = (head.status == 101).then(|| {
            let kept = |name| head.headers.get(name).cloned().unwrap_or_default();
            (kept("connection"), kept("upgrade"))
        });
        strip_hop_by_hop(&mut head.headers);
        // A cookie the hash policy made up goes with the origin's answer (as Envoy's router
        // adds it).
        if let Some(cookie) = self.streams.get_mut(sid).and_then(|s| s.set_cookie.take()) {
            head.headers.append("set-cookie", String::from(cookie));
        }
        if let Some((connection, upgrade)) = switched {
            head.headers.append("connection", connection);
            head.headers.append("upgrade", upgrade);
        }
        if let Some(r) = route {
            ds.chain.routes.mutate_response(r, &mut head.headers);
        }
        self.encode_filters(sid, &mut head);
        let Some(ds) = self.downstreams.get_mut(ds_id) else {
            return;
        };
        let (date, now) = (&mut self.date, self.now);
        let server = (
            ds.chain.hcm.server_header_transformation,
            &ds.chain.server_name,
        );
        set_response_headers(&mut head.headers, || date.get(now), server);
        if let Some(stream) = self.streams.get(sid) {
            stream.echo_request_id(&mut head.headers);
        }
        let close = closing || drain_close || ds.close_soon;
        let kept = ds.codec.encode_headers(
            key,
            &mut head,
            names.as_ref(),
            end_stream,
            close,
            &mut ds.conn,
        );
        let close_after = ds.codec.closes_connection();
        let tunnel_open = ds.codec.tunnel_open(key);
        count_drain_close(&self.stats, ds, kept && !closing && drain_close);
        if let Some(stream) = self.streams.get_mut(sid) {
            stream.close_after = close_after;
            // A tunnel opened: the client's bytes held since its head are read now.
            if tunnel_open {
                self.deferred.push_back(Deferred::Downstream(ds_id));
            }
        }
        self.log_response(sid, &head.headers, "via_upstream");
    }

    /// A CONNECT weir ends: the tunnel's connection to the origin is up, so the client is told
    /// (`200`, with no body framing: the connection is the tunnel's now).
    pub(crate) fn connect_tunnel_open(&mut self, sid: Id) {
        let head = ResponseHead {
            version: Version::Http11,
            status: 200,
            reason: Bytes::new(),
            headers: Headers::with_capacity(2),
        };
        let Some((ds_id, key)) = self.streams.get(sid).map(|s| (s.downstream, s.key)) else {
            return;
        };
        if let Some(ds) = self.downstreams.get_mut(ds_id) {
            ds.codec.accept_connect(key);
        }
        self.encode_response_head(sid, head, None, false);
        self.flush_downstream(ds_id);
    }

    /// Queues a piece of response body for the client, framed as chosen at the head.
    pub(crate) fn forward_response_data(&mut self, sid: Id, data: Bytes) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.last_activity = self.now;
        if let Some(attempt) = stream.attempt.as_mut() {
            attempt.response_bytes += data.len() as u64;
        }
        let Some(ds) = self.downstreams.get_mut(stream.downstream) else {
            return;
        };
        let sent = ds.codec.encode_data(stream.key, data, &mut ds.conn);
        if let Some(log) = stream.log.as_mut() {
            log.bytes_sent += sent as u64;
        }
    }

    /// The response is fully queued: end the stream.
    pub(crate) fn complete_response(&mut self, sid: Id) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.response = ResponseState::Complete;
        if let Some(ds) = self.downstreams.get_mut(stream.downstream) {
            ds.codec.encode_end(stream.key, &mut ds.conn);
        }
        self.finish_stream(sid);
    }

    /// Answers a stream locally. If its response already started it can only be cut.
    pub(crate) fn local_reply(&mut self, sid: Id, route: Option<RouteRef>, reply: LocalReply) {
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        if stream.response_started() {
            if let Some(flag) = reply.flag {
                stream.flag.get_or_insert(flag);
            }
            return self.cut_stream(sid);
        }
        // After a retry, an upstream failure's body says so, as Envoy's does.
        let reply = match stream.retry.attempts {
            0 => reply,
            _ => reply.after_retries(),
        };
        let mut retry_timer = stream.retry.timer.take();
        let (ds_id, key) = (stream.downstream, stream.key);
        self.disarm(&mut retry_timer);
        self.note_local_reply(sid, &reply);
        let upstream = self.end_attempt(sid, UpstreamEnd::LocalReset);
        self.charge_upstream_abort(sid, &reply);
        let flag = reply.flag.map_or("", |f| f.letters());
        self.trace_stream(sid, || EventKind::LocalReply {
            status: reply.status,
            flag,
        });
        let drain_close = self.closes_connection(ds_id);
        let Some(stream) = self.streams.get_mut(sid) else {
            return;
        };
        stream.response = ResponseState::Sending;
        stream.status = reply.status;
        stream.flag = reply.flag;
        // Answering before the request body arrived closes the connection (the codec's rule,
        // as Envoy's), rather than guess where the next request starts.
        let closing = stream.close_after;
        if let Some(up) = upstream {
            self.close_upstream(up);
        }
        let route = route.or(self.streams.get(sid).and_then(|s| s.route));
        let (mut head, body) = self.local_response(&reply, ds_id, route);
        if let Some(stream) = self.streams.get(sid) {
            stream.echo_request_id(&mut head.headers);
        }
        self.encode_filters(sid, &mut head);
        let Some(ds) = self.downstreams.get_mut(ds_id) else {
            return;
        };
        // A reload that replaced the connection's chain closes it after this response.
        let drain_close = drain_close || ds.chain.retired();
        let close = closing || drain_close;
        let kept =
            (ds.codec).encode_headers(key, &mut head, None, body.is_empty(), close, &mut ds.conn);
        count_drain_close(&self.stats, ds, kept && !closing && drain_close);
        let sent = ds.codec.encode_data(key, body, &mut ds.conn);
        ds.codec.encode_end(key, &mut ds.conn);
        let close_after = ds.codec.closes_connection();
        self.log_response(sid, &head.headers, reply.details);
        if let Some(stream) = self.streams.get_mut(sid) {
            stream.close_after = close_after;
            stream.response = ResponseState::Complete;
            if let Some(log) = stream.log.as_mut() {
                log.bytes_sent = sent as u64;
            }
        }
        self.finish_stream(sid);
        self.flush_downstream(ds_id);
    }

    /// A local reply as a response on connection `ds`: its head (with the route's response
    /// headers, when one matched) and its body. As Envoy's: `content-type: text/plain` for a
    /// body unless the route set a content type; no `content-length` on a 204 or 304 (RFC
    /// 9110 §8.6); then the connection manager's `date` and `server`.
    pub(crate) fn local_response(
        &mut self,
        reply: &LocalReply,
        ds: Id,
        route: Option<RouteRef>,
    ) -> (ResponseHead, Bytes) {
        let mut headers = Headers::with_capacity(6);
        if let Some(location) = &reply.location {
            headers.append("location", location.clone());
        }
        let ds = self.downstreams.get(ds);
        // Envoy's router says a circuit breaker refused the request, unless told not to.
        if reply.flag == Some(ResponseFlag::UpstreamOverflow)
            && !ds.is_some_and(|ds| ds.chain.suppress_envoy_headers)
        {
            headers.append("x-envoy-overloaded", Bytes::from_static(b"true"));
        }
        if let Some((ds, r)) = ds.zip(route) {
            ds.chain.routes.mutate_response(r, &mut headers);
        }
        if !reply.body.is_empty() && !headers.contains("content-type") {
            headers.append("content-type", Bytes::from_static(b"text/plain"));
        }
        if !matches!(reply.status, 100..=199 | 204 | 304) {
            headers.append("content-length", number_value(reply.body.len() as u64));
        }
        if let Some(ds) = ds {
            let (date, now) = (&mut self.date, self.now);
            let server = (
                ds.chain.hcm.server_header_transformation,
                &ds.chain.server_name,
            );
            set_response_headers(&mut headers, || date.get(now), server);
        }
        let head = ResponseHead {
            version: Version::Http11,
            status: reply.status,
            reason: Bytes::new(),
            headers,
        };
        (head, reply.body.clone())
    }

    /// Removes a finished stream from the worker and from its connection's active streams; the
    /// connection reads on (its next request), or closes when the stream's end is the
    /// connection's (the others active then end with it).
    pub(crate) fn finish_stream(&mut self, sid: Id) {
        let Some(mut stream) = self.streams.remove(sid) else {
            return;
        };
        let scope = self
            .downstreams
            .get(stream.downstream)
            .map(|d| d.chain.stats);
        self.retire_stream(&mut stream, scope.unwrap_or(usize::MAX));
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
        self.keep_failure(&stream, false);
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
        ds.streams.remove(stream.key);
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
            if ds.streams.is_empty() {
                ds.conn.release_idle_input();
                self.arm_idle_timer(id);
            }
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
        let key = stream.key;
        if let Some(ds) = self.downstreams.get_mut(ds_id) {
            ds.abort |= ds.codec.close_delimited(key);
        }
        self.finish_stream(sid);
        self.flush_downstream(ds_id);
    }

    /// A local reply that replaces an upstream response (a failure, a timeout, no healthy
    /// host) is charged to the cluster as that status, as Envoy's router does
    /// (`upstream_rq_503`, the host's `rq_error`).
    pub(crate) fn charge_upstream_abort(&self, sid: Id, reply: &LocalReply) {
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
            let hosts = &self.clusters[stream.cluster].hosts;
            c.charge(hosts.stats(stream.upstream_host), reply.status);
        }
    }
}

/// `downstream_cx_drain_close`, when a response closes its keep-alive connection only because
/// of a drain (`drained`), as Envoy counts it in its connection manager's `encodeHeaders`.
fn count_drain_close(stats: &WorkerStats, ds: &Downstream, drained: bool) {
    if drained && let Some(http) = stats.http.get(ds.chain.stats) {
        http.stats.downstream_cx_drain_close.inc();
    }
}
