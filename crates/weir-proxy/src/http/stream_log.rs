//! A stream's access log entry: what the connection manager's loggers need, collected while the
//! stream runs (only when the connection manager has loggers, and only the headers their formats
//! name), then formatted once when the stream ends.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use weir_http1::{Headers, RequestHead};

use crate::access_log::LogRecord;
use crate::event::token::Id;
use crate::http::active_stream::Stream;
use crate::http::local_reply::LocalReply;
use crate::router::route_table::request_scheme;
use crate::worker::Worker;

/// What a stream collects for its log entry (boxed in the stream: absent when nobody logs).
#[derive(Debug)]
pub(crate) struct StreamLog {
    start: SystemTime,
    request_headers: Vec<(Bytes, Bytes)>,
    response_headers: Vec<(Bytes, Bytes)>,
    details: &'static str,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) request_done: Option<Instant>,
    first_response_byte: Option<Instant>,
    pub(crate) upstream_local: Option<SocketAddr>,
    /// The trusted client address, once the request's forwarding headers are read (Envoy's
    /// `%DOWNSTREAM_REMOTE_ADDRESS%`); the connection's peer until then.
    pub(crate) downstream_remote: Option<SocketAddr>,
    /// Why the TLS session with the origin failed (`%UPSTREAM_TRANSPORT_FAILURE_REASON%`).
    pub(crate) transport_failure: Option<Box<str>>,
    /// The config version the request started under (`%WEIR_CONFIG_VERSION%`).
    config_version: u64,
}

impl StreamLog {
    pub(crate) fn new(config_version: u64) -> Box<Self> {
        Box::new(StreamLog {
            config_version,
            start: SystemTime::now(),
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            details: "",
            bytes_received: 0,
            bytes_sent: 0,
            request_done: None,
            first_response_byte: None,
            upstream_local: None,
            downstream_remote: None,
            transport_failure: None,
        })
    }
}

/// A header name from the formats (lower-case ASCII, so always UTF-8).
fn text(name: &Bytes) -> &str {
    std::str::from_utf8(name).unwrap_or_default()
}

/// The named headers of `headers` (first value of each), as `(name, value)`.
fn pick(names: &[Bytes], headers: &Headers, out: &mut Vec<(Bytes, Bytes)>) {
    out.clear();
    for name in names {
        if let Some(value) = headers.get(text(name)) {
            out.push((name.clone(), value.clone()));
        }
    }
}

impl Worker {
    /// The access log sets of the stream's connection manager, if it logs at all.
    fn stream_logs(&self, stream: &Stream) -> Option<crate::access_log::LogSet> {
        let ds = self.downstreams.get(stream.downstream)?;
        (!self.logs.is_empty(ds.chain.logs)).then_some(ds.chain.logs)
    }

    /// Keeps the request headers the formats name, as the request goes upstream (after the
    /// router's rewrites and mutations), pseudo-headers included.
    pub(crate) fn log_request(&mut self, sid: Id, head: &RequestHead) {
        let Some(stream) = self.streams.get(sid) else {
            return;
        };
        let Some(set) = self.stream_logs(stream) else {
            return;
        };
        let connection = self
            .downstreams
            .get(stream.downstream)
            .map_or(&b"http"[..], |ds| ds.chain.scheme());
        let mut headers = Vec::new();
        for name in &self.logs.needs(set).request_headers {
            let value = match text(name) {
                ":method" => Some(head.method.clone()),
                ":path" => Some(head.target.clone()),
                ":authority" => head.headers.get("host").cloned(),
                ":scheme" => Some(Bytes::from_static(request_scheme(head, connection))),
                other => head.headers.get(other).cloned(),
            };
            if let Some(value) = value {
                headers.push((name.clone(), value));
            }
        }
        if let Some(log) = self.streams.get_mut(sid).and_then(|s| s.log.as_mut()) {
            log.request_headers = headers;
        }
    }

    /// Keeps the response headers the formats name, as they go to the client, and why this
    /// response (`%RESPONSE_CODE_DETAILS%`).
    pub(crate) fn log_response(&mut self, sid: Id, headers: &Headers, details: &'static str) {
        let Some(stream) = self.streams.get(sid) else {
            return;
        };
        let Some(set) = self.stream_logs(stream) else {
            return;
        };
        let now = self.now;
        let names = &self.logs.needs(set).response_headers;
        if let Some(log) = self.streams.get_mut(sid).and_then(|s| s.log.as_mut()) {
            pick(names, headers, &mut log.response_headers);
            log.details = details;
            if details == "via_upstream" {
                log.first_response_byte = Some(now);
            }
        }
    }

    /// Whether the stream's loggers want the upstream connection's local address.
    pub(crate) fn log_wants_upstream_local(&self, stream: &Stream) -> bool {
        stream.log.is_some()
            && self
                .stream_logs(stream)
                .is_some_and(|set| self.logs.needs(set).upstream_local_address)
    }

    /// Writes the entry of a stream that ended (it has left the slab). `abandoned`: the
    /// connection closed under it (Envoy's `DC` when no other flag explains it).
    pub(crate) fn write_log(&mut self, stream: &mut Stream, abandoned: bool) {
        let Some(log) = stream.log.take() else {
            return;
        };
        let Some(ds) = self.downstreams.get(stream.downstream) else {
            return;
        };
        let set = ds.chain.logs;
        let since = |at: Option<Instant>| at.map(|t| t.saturating_duration_since(stream.started));
        let flag = stream.response_flags(abandoned);
        let details = match (log.details, abandoned) {
            ("", true) => "downstream_remote_disconnect",
            (d, _) => d,
        };
        let cluster = stream
            .forwarded
            .then(|| self.clusters.get(stream.cluster))
            .flatten();
        let route = stream
            .route
            .map(|r| ds.chain.routes.names(r).1)
            .filter(|name| !name.is_empty());
        let mut local = self.listeners.get(ds.listener as usize).map(|l| l.address);
        if local.is_none_or(|a| a.ip().is_unspecified()) {
            local = ds.conn.local_addr();
        }
        if let Some(proxied) = &ds.proxied {
            local = Some(proxied.local);
        }
        let record = LogRecord {
            start: log.start,
            request_headers: log.request_headers,
            response_headers: log.response_headers,
            protocol: ds.codec.protocol(stream.key),
            response_code: if stream.response_started() {
                stream.status
            } else {
                0
            },
            response_code_details: details,
            response_flags: flag,
            bytes_received: log.bytes_received,
            bytes_sent: log.bytes_sent,
            duration: Some(self.now.saturating_duration_since(stream.started)),
            request_duration: since(log.request_done),
            response_duration: since(log.first_response_byte),
            upstream_host: cluster.and_then(|c| c.hosts.address(stream.upstream_host?)),
            upstream_cluster: cluster.map(|c| c.name.clone()),
            upstream_local: log.upstream_local,
            downstream_remote: log.downstream_remote.unwrap_or(ds.peer),
            downstream_direct_remote: ds.proxied.as_ref().map_or(ds.peer, |p| p.direct_peer),
            downstream_local: local.unwrap_or(ds.peer),
            route_name: route,
            config_version: log.config_version,
            tls: ds.tls.clone(),
            transport_failure: log.transport_failure,
        };
        self.logs.log(set, &record);
    }
}

impl Worker {
    /// A request that never became a stream (the codec rejected it, its head timed out): its
    /// entry has the reply's status, flag and details, the connection's addresses, and nothing
    /// of the request.
    pub(crate) fn log_without_stream(&mut self, id: Id, reply: &LocalReply) {
        let Some(ds) = self.downstreams.get(id) else {
            return;
        };
        let set = ds.chain.logs;
        if self.logs.is_empty(set) {
            return;
        }
        let local = self
            .listeners
            .get(ds.listener as usize)
            .map(|l| l.address)
            .filter(|a| !a.ip().is_unspecified())
            .or_else(|| ds.conn.local_addr());
        let local = ds.proxied.as_ref().map(|p| p.local).or(local);
        let record = LogRecord {
            start: SystemTime::now(),
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            protocol: "",
            response_code: reply.status,
            response_code_details: reply.details,
            response_flags: reply.flag.map_or("", |f| f.letters()),
            bytes_received: 0,
            bytes_sent: 0,
            duration: Some(std::time::Duration::ZERO),
            request_duration: None,
            response_duration: None,
            upstream_host: None,
            upstream_cluster: None,
            upstream_local: None,
            downstream_remote: ds.peer,
            downstream_direct_remote: ds.proxied.as_ref().map_or(ds.peer, |p| p.direct_peer),
            downstream_local: local.unwrap_or(ds.peer),
            route_name: None,
            config_version: (ds.chain).config_version(self.control.server.config.version()),
            tls: ds.tls.clone(),
            transport_failure: None,
        };
        self.logs.log(set, &record);
    }
}
