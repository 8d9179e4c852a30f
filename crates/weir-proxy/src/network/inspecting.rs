//! Connections whose listener filters run before a filter chain is chosen: the PROXY protocol
//! filter and the TLS inspector, in the listener's order. Such a connection is registered
//! under its own token kind and reads its first bytes; each filter in turn decides from them
//! (the PROXY protocol filter consumes its header and takes the addresses it carries, the
//! TLS inspector only looks). Once the last has decided — or `listener_filters_timeout`
//! passed with `continue_on_listener_filters_timeout` — the connection gets its chain and
//! becomes a downstream under a new token (`epoll_ctl(MOD)`), carrying the bytes read so far.
//!
//! ```text
//!  accept ──▶ Inspecting ──(each filter decides, in order)──▶ chain chosen ──▶ Downstream
//!                 │ (EOF, error, no header, ClientHello too large, timeout) ──▶ closed
//! ```

use std::net::SocketAddr;

use bytes::Buf;

use crate::event::timer::TimerId;
use crate::event::token::{Id, Kind, token};
use crate::network::connection::{Connection, ReadOutcome};
use crate::network::http_inspector::{self, Detection};
use crate::network::proxy_protocol::{self, Addresses, Header, Proxied};
use crate::network::tls_inspector::{ClientHello, Inspection, inspect};
use crate::recorder::ConnTrace;
use crate::snapshot::{ListenerFilterSpec, ProxyProtocolSpec, TlsInspectorSpec};
use crate::worker::{TimerKey, Worker};
use weir_config::ConnectionFacts;

/// A connection its listener filters are still looking at.
pub(crate) struct Inspecting {
    pub(crate) conn: Connection,
    /// The listener's index.
    pub(crate) listener: usize,
    pub(crate) peer: SocketAddr,
    /// `listener_filters_timeout`, if any.
    pub(crate) timer: Option<TimerId>,
    /// Its flow trace, begun at the accept; recorded once it is a downstream.
    pub(crate) trace: ConnTrace,
    /// The listener filter deciding now (an index in the listener's).
    pub(crate) stage: usize,
    /// What the TLS inspector found.
    pub(crate) hello: Option<ClientHello>,
    /// The application protocol the HTTP inspector found.
    pub(crate) http: Option<&'static str>,
    /// The addresses a PROXY protocol header carried.
    pub(crate) proxied: Option<Addresses>,
}

/// How a connection reaches [`Worker::open_downstream`].
pub(crate) enum Opening {
    /// Just accepted: not yet registered, not yet counted against the connection limit.
    Accepted,
    /// Out of its listener filters: registered and counted already, with bytes read.
    Inspected {
        /// Its flow trace, begun at the accept.
        trace: ConnTrace,
        /// The listener filters that ran, for the trace.
        filters: Vec<weir_flow::Name>,
        /// What a PROXY protocol header changed of its addresses.
        proxied: Option<Proxied>,
    },
}

/// What the chain selector is told about a connection, owned.
pub(crate) struct Facts {
    pub(crate) local: SocketAddr,
    /// The TCP peer.
    pub(crate) direct_peer: SocketAddr,
    /// The client: the TCP peer, or the source a PROXY protocol header gave.
    pub(crate) peer: SocketAddr,
    /// What a TLS inspector found; `None`: not TLS (or no inspector).
    pub(crate) hello: Option<ClientHello>,
    /// What an HTTP inspector found, as an application protocol (none, or one).
    pub(crate) http: Vec<String>,
}

impl Facts {
    pub(crate) fn facts(&self) -> ConnectionFacts<'_> {
        let hello = self.hello.as_ref();
        ConnectionFacts {
            local: self.local,
            direct_peer: self.direct_peer,
            peer: self.peer,
            server_name: hello.and_then(|h| h.server_name.as_deref()),
            transport_protocol: if hello.is_some() { "tls" } else { "raw_buffer" },
            application_protocols: hello.map_or(&self.http[..], |h| &h.alpn[..]),
        }
    }
}

/// What a listener filter made of the bytes so far.
enum Step {
    /// It decided: the next filter's turn.
    Next,
    /// It needs more bytes.
    Wait,
    /// The connection is closed (reset when `reset`).
    Close { why: &'static str, reset: bool },
}

impl Worker {
    /// Starts listener filters on an accepted connection.
    pub(crate) fn inspect(&mut self, index: usize, mut conn: Connection, peer: SocketAddr) {
        let listener = self.listeners[index].stats;
        if !self.control.server.connection_opened() {
            tracing::debug!(%peer, "global connection limit reached; closing");
            if let Some(l) = self.stats.listeners.get(listener) {
                l.downstream_global_cx_overflow.inc();
            }
            return;
        }
        self.syscalls().other();
        if let Err(e) = conn.set_nodelay() {
            tracing::debug!(%peer, error = %e, "TCP_NODELAY failed");
        }
        let trace = self.recorder.new_conn();
        let mut registered = Ok(());
        let net = &mut self.net;
        let id = self.inspecting.insert_with(|id| {
            registered = net.register(&mut conn, token(Kind::Inspecting, id));
            Inspecting {
                conn,
                listener: index,
                peer,
                timer: None,
                trace,
                stage: 0,
                hello: None,
                http: None,
                proxied: None,
            }
        });
        self.stats.syscalls.epoll_ctl.inc();
        if let Err(e) = registered {
            tracing::warn!(%peer, error = %e, "epoll registration failed; closing");
            self.inspecting.remove(id);
            self.control.server.connection_closed();
            return;
        }
        if let Some(l) = self.stats.listeners.get(listener) {
            l.downstream_pre_cx_active.inc();
        }
        if let Some(after) = self.listeners[index].runtime.filters_timeout.timeout {
            let timer = self.arm(after, TimerKey::ListenerFilters(id));
            if let Some(i) = self.inspecting.get_mut(id) {
                i.timer = Some(timer);
            }
        }
    }

    /// A readiness event for a connection under inspection: read what came (until the
    /// socket is drained, so the edge is spent, or its filters have all they may need), then
    /// let its filters decide.
    pub(crate) fn on_inspecting_ready(&mut self, id: Id, event: crate::event::Readiness) {
        let Some(i) = self.inspecting.get_mut(id) else {
            return;
        };
        i.conn.on_ready(event);
        let limit = self.listeners[i.listener].runtime.inspect_limit();
        loop {
            let Some(i) = self.inspecting.get_mut(id) else {
                return;
            };
            if !i.conn.can_read() || i.conn.input.len() >= limit {
                break;
            }
            match i.conn.fill(&mut self.scratch, &self.stats.syscalls) {
                ReadOutcome::Data(_) => {}
                ReadOutcome::Drained | ReadOutcome::Eof | ReadOutcome::Failed(_) => break,
            }
        }
        self.run_listener_filters(id);
    }

    /// Runs the connection's listener filters from the one deciding now, until one waits for
    /// more bytes, one closes the connection, or all have decided.
    fn run_listener_filters(&mut self, id: Id) {
        loop {
            let Some(i) = self.inspecting.get(id) else {
                return;
            };
            // The runtime, not the filter, is cloned: an Arc, and the spec is borrowed from it.
            let runtime = self.listeners[i.listener].runtime.clone();
            let Some(filter) = runtime.listener_filters.get(i.stage) else {
                return self.finish_inspecting(id);
            };
            let step = match filter {
                ListenerFilterSpec::ProxyProtocol(spec) => self.proxy_protocol_step(id, spec),
                ListenerFilterSpec::TlsInspector(spec) => self.tls_inspector_step(id, spec),
                ListenerFilterSpec::HttpInspector(_) => self.http_inspector_step(id),
            };
            let Some(i) = self.inspecting.get_mut(id) else {
                return;
            };
            match step {
                Step::Next => i.stage += 1,
                Step::Wait if i.conn.read_eof() => {
                    return self
                        .close_inspecting(id, "closed before its listener filters were done");
                }
                Step::Wait => return,
                Step::Close { why, reset } => {
                    if reset {
                        i.conn.reset_on_close();
                    }
                    return self.close_inspecting(id, why);
                }
            }
        }
    }

    /// The PROXY protocol filter: the header is consumed and its addresses taken. As Envoy's:
    /// a connection without one (unless allowed) or with a malformed one is reset and counted
    /// in `downstream_cx_proxy_proto_error`; one of a disallowed version is reset too (found
    /// and disallowed), or, when connections without a header are allowed, taken as one
    /// without (its bytes go on untouched).
    fn proxy_protocol_step(&mut self, id: Id, spec: &ProxyProtocolSpec) -> Step {
        let Some(i) = self.inspecting.get_mut(id) else {
            return Step::Wait;
        };
        let (root, versions, errors) = &self.stats.proxy_proto;
        let version = |v: u8| &versions[usize::from(v.clamp(1, 2)) - 1];
        let error = |why| {
            errors.downstream_cx_proxy_proto_error.inc();
            Step::Close { why, reset: true }
        };
        let header = match proxy_protocol::read(&i.conn.input) {
            Header::Found { version, .. } | Header::Invalid { version }
                if spec.allow_without && spec.disallowed_versions.contains(&version) =>
            {
                Header::Absent
            }
            header => header,
        };
        match header {
            Header::NeedMore => Step::Wait,
            Header::Absent if spec.allow_without => {
                root.not_found_allowed.inc();
                Step::Next
            }
            Header::Absent => {
                root.not_found_disallowed.inc();
                error("no PROXY protocol header")
            }
            // Envoy looks no further than the signature of a version it disallows.
            Header::Found { version: v, .. } | Header::Invalid { version: v }
                if spec.disallowed_versions.contains(&v) =>
            {
                version(v).found.inc();
                version(v).disallowed.inc();
                Step::Close {
                    why: "a PROXY protocol version the listener disallows",
                    reset: true,
                }
            }
            Header::Found {
                version: v,
                length,
                addresses,
            } => {
                version(v).found.inc();
                i.conn.input.advance(length);
                i.proxied = addresses.or(i.proxied);
                Step::Next
            }
            Header::Invalid { version: v } => {
                version(v).error.inc();
                error("a malformed PROXY protocol header")
            }
        }
    }

    /// The TLS inspector: looks for a ClientHello in what came (nothing is consumed).
    fn tls_inspector_step(&mut self, id: Id, spec: &TlsInspectorSpec) -> Step {
        let Some(i) = self.inspecting.get(id) else {
            return Step::Wait;
        };
        let inspection = inspect(&i.conn.input, spec.max_client_hello_size);
        if inspection == Inspection::NeedMore {
            return Step::Wait;
        }
        self.count_inspection(&inspection, i.conn.input.len());
        match inspection {
            Inspection::NeedMore => Step::Wait,
            Inspection::TooLarge => Step::Close {
                why: "ClientHello too large",
                reset: false,
            },
            Inspection::NotTls => Step::Next,
            Inspection::Tls(hello) => {
                if let Some(i) = self.inspecting.get_mut(id) {
                    i.hello = Some(hello);
                }
                Step::Next
            }
        }
    }

    /// The HTTP inspector: which HTTP a plaintext connection speaks (nothing is consumed; a
    /// connection the TLS inspector found TLS on is left alone, as Envoy leaves it).
    fn http_inspector_step(&mut self, id: Id) -> Step {
        let Some(i) = self.inspecting.get_mut(id) else {
            return Step::Wait;
        };
        if i.hello.is_some() {
            return Step::Next;
        }
        let stats = &self.stats.http_inspector;
        match http_inspector::detect(&i.conn.input) {
            Detection::NeedMore => Step::Wait,
            Detection::NotHttp => {
                stats.http_not_found.inc();
                Step::Next
            }
            Detection::Found(protocol) => {
                match protocol {
                    "h2c" => stats.http2_found.inc(),
                    "http/1.1" => stats.http11_found.inc(),
                    _ => stats.http10_found.inc(),
                }
                i.http = Some(protocol);
                Step::Next
            }
            Detection::TooLong => {
                stats.read_error.inc();
                Step::Close {
                    why: "no end of the request line within 64 KiB",
                    reset: false,
                }
            }
        }
    }

    /// `tls_inspector.*`, as Envoy counts a decision.
    fn count_inspection(&self, inspection: &Inspection, bytes: usize) {
        let stats = &self.stats.tls_inspector;
        stats.bytes_processed.record(bytes as u64);
        match inspection {
            Inspection::NeedMore => {}
            Inspection::TooLarge => stats.client_hello_too_large.inc(),
            Inspection::NotTls => stats.tls_not_found.inc(),
            Inspection::Tls(hello) => {
                stats.tls_found.inc();
                match hello.server_name {
                    Some(_) => stats.sni_found.inc(),
                    None => stats.sni_not_found.inc(),
                }
                if hello.alpn.is_empty() {
                    stats.alpn_not_found.inc();
                } else {
                    stats.alpn_found.inc();
                }
            }
        }
    }

    /// `listener_filters_timeout`: the connection goes on with what is known (not TLS), or is
    /// closed.
    pub(crate) fn on_listener_filters_timeout(&mut self, id: Id) {
        let Some(i) = self.inspecting.get_mut(id) else {
            return;
        };
        i.timer = None;
        let listener = &self.listeners[i.listener];
        if let Some(l) = self.stats.listeners.get(listener.stats) {
            l.downstream_pre_cx_timeout.inc();
        }
        if listener.runtime.filters_timeout.continue_on_timeout {
            self.finish_inspecting(id);
        } else {
            self.close_inspecting(id, "listener filters timed out");
        }
    }

    /// The listener filters are done: the connection gets its chain (chosen with what they
    /// found) and becomes a downstream, with the client a PROXY protocol header named.
    fn finish_inspecting(&mut self, id: Id) {
        let Some(i) = self.inspecting.remove(id) else {
            return;
        };
        if let Some(timer) = i.timer {
            self.timers.cancel(timer);
        }
        let index = i.listener;
        if let Some(l) = self.stats.listeners.get(self.listeners[index].stats) {
            l.downstream_pre_cx_active.dec();
        }
        let mut facts = self.facts(index, &i.conn, i.peer, i.hello, i.proxied);
        facts.http.extend(i.http.map(str::to_owned));
        let runtime = self.listeners[index].runtime.clone();
        let chain = runtime.select(&facts.facts());
        let filters = (runtime.listener_filters.iter())
            .take(i.stage.max(1))
            .map(|f| f.name().clone())
            .collect();
        let opening = Opening::Inspected {
            trace: i.trace,
            filters,
            proxied: i.proxied.map(|p| Proxied {
                direct_peer: i.peer,
                local: p.destination,
            }),
        };
        self.open_downstream(index, i.conn, facts.peer, chain, opening);
    }

    /// Closes a connection under inspection.
    pub(crate) fn close_inspecting(&mut self, id: Id, why: &str) {
        let Some(i) = self.inspecting.remove(id) else {
            return;
        };
        tracing::debug!(peer = %i.peer, why, "closing before a filter chain was chosen");
        if let Some(timer) = i.timer {
            self.timers.cancel(timer);
        }
        if let Some(l) = self.stats.listeners.get(self.listeners[i.listener].stats) {
            l.downstream_pre_cx_active.dec();
        }
        self.control.server.connection_closed();
    }
}
