//! A stream's request side: a decoded request head becomes a stream, is checked and given its
//! forwarding headers, and goes to the router (the seed's "Downstream Read Request", from the
//! decoded head to the chosen upstream); its body follows. The stream's own timers live here.

use bytes::{Bytes, BytesMut};
use weir_http1::RequestHead;

use crate::codec::{RequestStart, StreamKey};
use crate::event::token::Id;
use crate::http::active_stream::Stream;
use crate::http::headers::{ForwardContext, set_forwarding_headers, strip_hop_by_hop};
use crate::http::local_reply::{LocalReply, ResponseFlag};
use crate::http::stream_log::StreamLog;
use crate::worker::{TimerKey, Worker};
use weir_flow::{EventKind, ShortText};

impl Worker {
    /// A request head was decoded: it becomes a stream (`key`: the codec's), is checked and
    /// given its forwarding headers, then goes to the HTTP filters and the router.
    pub(crate) fn on_request_head(&mut self, id: Id, key: StreamKey, start: RequestStart) {
        let RequestStart {
            head: mut request,
            end_stream,
            expect_continue,
            single_use,
            upgrade,
            names,
        } = start;
        let Some(sid) = self.open_stream(id, key, end_stream, single_use) else {
            return;
        };
        if let Some(stream) = self.streams.get_mut(sid) {
            stream.request_names = names.map(Box::new);
        }
        if self.recorder.enabled() {
            self.trace_request_head(id, sid, &request);
        }
        #[cfg(feature = "fault-injection")]
        if request
            .headers
            .get("x-weir-fault")
            .is_some_and(|v| v.as_ref() == b"panic")
        {
            panic!("x-weir-fault: panic");
        }
        if self.refuses_http10(id, key) {
            // Envoy's codec answers HTTP/1.0 426 unless `accept_http_10`, and closes.
            self.log_request(sid, &request);
            if let Some(ds) = self.downstreams.get_mut(id) {
                ds.codec.refuse_http10(key);
            }
            let mut reply = LocalReply::failure(ResponseFlag::DownstreamProtocolError);
            reply.status = 426;
            reply.body = Bytes::from_static(b"Upgrade Required");
            let reply = reply.because("low_version");
            if let Some(stream) = self.streams.get_mut(sid) {
                stream.close_after = true;
                // Kept for the failure's account.
                stream.retry.head = Some(request);
            }
            return self.local_reply(sid, None, reply);
        }
        let authority = match self.check_request(sid, &mut request, expect_continue) {
            Ok(authority) => authority,
            Err(reply) => {
                self.log_request(sid, &request);
                if let Some(stream) = self.streams.get_mut(sid) {
                    // Kept for the failure's account.
                    stream.retry.head = Some(request);
                }
                return self.local_reply(sid, None, reply);
            }
        };
        if expect_continue {
            // Answered as the connection manager reads the head, as Envoy does (without
            // `proxy_100_continue`): a filter that needs the body (buffer) gets it.
            if let Some(ds) = self.downstreams.get_mut(id) {
                ds.codec.encode_continue(key, &mut ds.conn);
            }
            self.flush_downstream(id);
        }
        self.start_filters(sid, request, authority, end_stream, upgrade);
    }

    /// The connection's bookkeeping for a new request, and its stream with the stream's
    /// timers, active on the connection under the codec's `key`. `None` when the connection
    /// is gone.
    fn open_stream(
        &mut self,
        id: Id,
        key: StreamKey,
        end_stream: bool,
        single_use: bool,
    ) -> Option<Id> {
        let ds = self.downstreams.get_mut(id)?;
        // After a reload, requests use the new route table from the first that starts with
        // no other in flight.
        ds.follow_reload();
        self.spare_outputs.lend(&mut ds.conn);
        let mut idle = ds.idle_timer.take();
        let mut header_timer = ds.header_timer.take();
        let requests = ds.codec.streams_started();
        let last_request = ds
            .chain
            .hcm
            .max_requests_per_connection
            .is_some_and(|max| requests >= max);
        let http = self.stats.http.get(ds.chain.stats).map(|h| &h.stats);
        if last_request && !ds.close_soon {
            ds.close_soon = true;
            if let Some(http) = http {
                http.downstream_cx_max_requests_reached.inc();
            }
        }
        if let Some(http) = http {
            http.downstream_rq_total.inc();
            http.downstream_rq_http1_total.inc();
            http.downstream_rq_active.inc();
        }
        let (logs, request_timeout, idle_timeout) = (
            ds.chain.logs,
            ds.chain.hcm.request_timeout,
            ds.chain.hcm.stream_idle_timeout,
        );
        // The config version this request starts under, for its access log entry (a request
        // in flight across a reload stays on the config it started with).
        let logged = (!self.logs.is_empty(logs)).then(|| {
            ds.chain
                .config_version(self.control.server.config.version())
        });
        let previous_unsent = ds.pending_flow.is_some();
        self.disarm(&mut header_timer);
        self.disarm(&mut idle);
        if previous_unsent {
            // A pipelined request arrived while the previous (traced) response is still being
            // written: keep that flow now, so the new request neither overwrites it nor
            // starts inside it (the previous response's last writes are left out of it).
            self.trace_response_sent(id);
        }
        let (now, log, trace_id) = (self.now, logged.map(StreamLog::new), self.recorder.new_id());
        let sid = self.streams.insert_with(|_| {
            let mut stream = Stream::new(id, key, end_stream, single_use, now);
            stream.log = log;
            stream.trace_id = trace_id;
            stream
        });
        self.stream_peak = self.stream_peak.max(self.streams.len());
        self.downstreams.get_mut(id)?.streams.insert(key, sid);
        if let Some(after) = request_timeout {
            let t = self.arm(after, TimerKey::Request(sid));
            self.streams.get_mut(sid)?.request_timer = Some(t);
        }
        if let Some(after) = idle_timeout {
            let t = self.arm(after, TimerKey::StreamIdle(sid));
            self.streams.get_mut(sid)?.idle_timer = Some(t);
        }
        Some(sid)
    }

    /// Whether stream `key` of connection `id` is HTTP/1.0 and its connection manager does
    /// not `accept_http_10`.
    fn refuses_http10(&self, id: Id, key: StreamKey) -> bool {
        self.downstreams
            .get(id)
            .is_some_and(|ds| ds.codec.http10(key) && !ds.chain.hcm.accept_http_10)
    }

    /// What the connection manager checks and sets before any filter sees a request: the
    /// authority (from an absolute-form target, which wins over Host, RFC 9112 §3.2.2), a
    /// Host to send upstream, hop-by-hop headers removed, the forwarding headers. Returns the
    /// authority, or the answer for a request it refuses.
    fn check_request(
        &mut self,
        sid: Id,
        request: &mut RequestHead,
        expect_continue: bool,
    ) -> Result<Bytes, LocalReply> {
        // A CONNECT names its authority in its target (`host:port`).
        let connect = request.method.as_ref() == b"CONNECT";
        let authority = match absolute_form_split(&request.target) {
            _ if connect => request.target.clone(),
            Some((authority, origin_form)) => {
                request.headers.set("host", authority.clone());
                request.target = origin_form;
                authority
            }
            None => request.headers.get("host").cloned().unwrap_or_default(),
        };
        // Only HTTP/1.0 may omit Host (the codec rejects HTTP/1.1 without it); upstream the
        // request goes out as HTTP/1.1, which must carry one. Envoy gives it
        // `default_host_for_http_10`, or answers 400 (without a body).
        let mut authority = authority;
        if !request.headers.contains("host") {
            let Some(host) = self.default_host_for_http_10(sid) else {
                return Err(LocalReply::new(400, Bytes::new()).because("missing_host_header"));
            };
            request.headers.append("host", host.clone());
            if authority.is_empty() {
                authority = host;
            }
        }
        // Past the codec a target is a path, an authority (CONNECT) or `*`. Envoy routes paths
        // only: `OPTIONS *` and the like are answered 404 here, before filters and routes.
        if !connect && request.target.first() != Some(&b'/') {
            self.count_stream_stat(sid, |h| &h.downstream_rq_non_relative_path);
            return Err(LocalReply::new(404, Bytes::new()).because("absolute_path_rejected"));
        }
        strip_hop_by_hop(&mut request.headers);
        if expect_continue {
            request.headers.remove("expect");
        }
        let Some(stream) = self.streams.get_mut(sid) else {
            return Ok(authority);
        };
        let Some(ds) = self.downstreams.get(stream.downstream) else {
            return Ok(authority);
        };
        let hcm = &ds.chain.hcm;
        let ctx = ForwardContext {
            remote: ds.peer,
            use_remote_address: hcm.use_remote_address,
            xff_num_trusted_hops: hcm.xff_num_trusted_hops,
            generate_request_id: hcm.generate_request_id,
            preserve_external_request_id: hcm.preserve_external_request_id,
            internal_addresses: &hcm.internal_addresses,
            scheme: ds.chain.scheme(),
        };
        let origin = set_forwarding_headers(&mut request.headers, &ctx, &mut self.rng);
        stream.internal = origin.internal;
        // Only an internal request still has `x-envoy-force-trace` here.
        if hcm.always_set_request_id_in_response || request.headers.contains("x-envoy-force-trace")
        {
            stream.request_id_echo = request.headers.get("x-request-id").cloned().map(Box::new);
        }
        if let Some(log) = stream.log.as_mut() {
            log.downstream_remote = Some(origin.client);
        }
        Ok(authority)
    }

    /// The stream's connection manager's `default_host_for_http_10`.
    fn default_host_for_http_10(&self, sid: Id) -> Option<Bytes> {
        let stream = self.streams.get(sid)?;
        let ds = self.downstreams.get(stream.downstream)?;
        let host = ds.chain.hcm.default_host_for_http_10.as_ref()?;
        Some(Bytes::copy_from_slice(host.as_bytes()))
    }

    /// Decides whether the request is traced; records its head if so, and otherwise stops
    /// recording on the connection until the stream ends.
    pub(crate) fn trace_request_head(&mut self, id: Id, sid: Id, request: &RequestHead) {
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
        let config = self.downstreams.get(id).map_or(0, |ds| {
            let version = ds
                .chain
                .config_version(self.control.server.config.version());
            u32::try_from(version).unwrap_or(u32::MAX)
        });
        self.trace_stream(sid, || EventKind::RequestHead {
            method: ShortText::new(&request.method),
            path: ShortText::new(&request.target),
            config,
        });
    }

    pub(crate) fn on_route_timeout(&mut self, sid: Id) {
        // An attempt still waiting for its response timed out at its host.
        if let Some(s) = self.streams.get(sid)
            && s.attempt.is_some()
            && !s.response_started()
        {
            let (cluster, host) = (s.cluster, s.upstream_host);
            self.report_outlier(cluster, host, crate::upstream::outlier::Outcome::Timeout);
        }
        if self.streams.get(sid).is_some_and(|s| s.forwarded) {
            self.note_attempt(sid, crate::why::Outcome::RouteTimeout);
        }
        if let Some(stream) = self.streams.get_mut(sid) {
            stream.route_timer = None;
            if stream.forwarded
                && let Some(c) = self.stats.clusters.get(stream.cluster)
            {
                c.common.upstream_rq_timeout.inc();
                let hosts = &self.clusters[stream.cluster].hosts;
                if let Some(h) = hosts.stats(stream.upstream_host) {
                    h.rq_timeout.inc();
                }
            }
            let mut reply = LocalReply::failure(ResponseFlag::UpstreamRequestTimeout);
            if self
                .streams
                .get(sid)
                .is_some_and(|s| s.retry.timeout_alt_response)
            {
                // `x-envoy-upstream-rq-timeout-alt-response`: 204, no body.
                reply.status = 204;
                reply.body = Bytes::new();
            }
            self.local_reply(sid, None, reply);
        }
    }

    pub(crate) fn on_request_timeout(&mut self, sid: Id) {
        if let Some(stream) = self.streams.get_mut(sid) {
            stream.request_timer = None;
            if !stream.request_complete() {
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
            let mut reply = LocalReply::failure(ResponseFlag::StreamIdleTimeout);
            // As Envoy (`maybeRequestTimeoutCode`): 408 while the client still owes the
            // request, 504 once it has sent all of it.
            if self.streams.get(sid).is_some_and(|s| s.request_complete()) {
                reply.status = 504;
            }
            self.local_reply(sid, None, reply);
        }
    }

    /// Increments one of the stream's HCM counters.
    pub(crate) fn count_stream_stat(
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
