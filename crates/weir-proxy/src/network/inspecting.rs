//! Connections whose listener filters run before a filter chain is chosen: today the TLS
//! inspector. Such a connection is registered under its own token kind, reads its first bytes
//! (kept, not consumed), and once the inspector has decided — or `listener_filters_timeout`
//! passed with `continue_on_listener_filters_timeout` — it gets its chain and becomes a
//! downstream under a new token (`epoll_ctl(MOD)`), carrying the bytes read so far.
//!
//! ```text
//!  accept ──▶ Inspecting ──(ClientHello, or not TLS)──▶ chain chosen ──▶ Downstream
//!                 │ (EOF, error, ClientHello too large, timeout) ──▶ closed
//! ```

use std::net::SocketAddr;

use crate::event::timer::TimerId;
use crate::event::token::{Id, Kind, token};
use crate::network::connection::{Connection, ReadOutcome};
use crate::network::tls_inspector::{ClientHello, Inspection, inspect};
use crate::recorder::ConnTrace;
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
}

/// How a connection reaches [`Worker::open_downstream`].
pub(crate) enum Opening {
    /// Just accepted: not yet registered, not yet counted against the connection limit.
    Accepted,
    /// Out of its listener filters: registered and counted already, with bytes read.
    Inspected {
        /// Its flow trace, begun at the accept.
        trace: ConnTrace,
        /// The listener filter that ran, for the trace.
        filter: weir_flow::Name,
    },
}

/// What the chain selector is told about a connection, owned.
pub(crate) struct Facts {
    pub(crate) local: SocketAddr,
    pub(crate) peer: SocketAddr,
    /// What a TLS inspector found; `None`: not TLS (or no inspector).
    pub(crate) hello: Option<ClientHello>,
}

impl Facts {
    pub(crate) fn facts(&self) -> ConnectionFacts<'_> {
        let hello = self.hello.as_ref();
        ConnectionFacts {
            local: self.local,
            direct_peer: self.peer,
            peer: self.peer,
            server_name: hello.and_then(|h| h.server_name.as_deref()),
            transport_protocol: if hello.is_some() { "tls" } else { "raw_buffer" },
            application_protocols: hello.map_or(&[], |h| &h.alpn[..]),
        }
    }
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

    /// A readiness event for a connection under inspection: read what came, and decide if the
    /// inspector can.
    pub(crate) fn on_inspecting_ready(&mut self, id: Id, event: crate::event::Readiness) {
        let Some(i) = self.inspecting.get_mut(id) else {
            return;
        };
        i.conn.on_ready(event);
        let Some(spec) = self.listeners[i.listener].runtime.tls_inspector.clone() else {
            return self.close_inspecting(id, "no inspector");
        };
        // Read until the socket is drained (the edge is spent) or the ClientHello is too
        // large; each read appends, so the loop is bounded by the limit.
        loop {
            let i = self.inspecting.get_mut(id).expect("checked above");
            if !i.conn.can_read() || i.conn.input.len() >= spec.max_client_hello_size {
                break;
            }
            match i.conn.fill(&mut self.scratch, &self.stats.syscalls) {
                ReadOutcome::Data(_) => {
                    if !matches!(
                        inspect(&i.conn.input, spec.max_client_hello_size),
                        Inspection::NeedMore
                    ) {
                        break;
                    }
                }
                ReadOutcome::Drained => break,
                ReadOutcome::Eof | ReadOutcome::Failed(_) => break,
            }
        }
        let i = self.inspecting.get(id).expect("checked above");
        let inspection = inspect(&i.conn.input, spec.max_client_hello_size);
        if inspection == Inspection::NeedMore {
            if i.conn.read_eof() {
                self.close_inspecting(id, "closed before its listener filters were done");
            }
            return;
        }
        self.count_inspection(&inspection, i.conn.input.len());
        match inspection {
            Inspection::NeedMore => {}
            Inspection::TooLarge => self.close_inspecting(id, "ClientHello too large"),
            Inspection::NotTls => self.finish_inspecting(id, None),
            Inspection::Tls(hello) => self.finish_inspecting(id, Some(hello)),
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
            self.finish_inspecting(id, None);
        } else {
            self.close_inspecting(id, "listener filters timed out");
        }
    }

    /// The inspector is done: the connection gets its chain and becomes a downstream.
    fn finish_inspecting(&mut self, id: Id, hello: Option<ClientHello>) {
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
        let facts = self.facts(index, &i.conn, i.peer, hello);
        let runtime = self.listeners[index].runtime.clone();
        let chain = runtime.select(&facts.facts());
        let filter = runtime
            .tls_inspector
            .as_ref()
            .map_or_else(|| "tls_inspector".into(), |t| t.name.clone());
        let opening = Opening::Inspected {
            trace: i.trace,
            filter,
        };
        self.open_downstream(index, i.conn, i.peer, chain, opening);
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
