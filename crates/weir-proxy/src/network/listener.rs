//! Listener sockets and the accept path: the first half of the seed's "Downstream Read Request".
//!
//! Each worker binds its own socket per listener with SO_REUSEPORT, so the kernel spreads new
//! connections over the workers and no accept lock exists. The filter chain is chosen per
//! listener when it is bound (matching on the destination port is fixed by the listener's own
//! port), so an accept costs `accept4`, one `setsockopt(TCP_NODELAY)` and one `epoll_ctl`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use weir_flow::EventKind;

use crate::codec::http1::Http1Server;
use crate::event::token::{Id, Kind, token};
use crate::network::connection::Connection;
use crate::network::inspecting::{Facts, Opening};
use crate::network::proxy_protocol::Addresses;
use crate::network::tls::TlsProgress;
use crate::network::tls_inspector::ClientHello;
use crate::snapshot::{Chain, ListenerRuntime};
use crate::worker::{Downstream, DownstreamState, ListenerSlot, TimerKey, Worker};

/// Accepts handled per readable edge before yielding to other work (the rest are deferred).
const ACCEPTS_PER_ROUND: usize = 256;
/// After EMFILE/ENFILE/ENOMEM, wait this long before accepting again (no busy loop).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// How often a failing accept is logged while it keeps failing.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(60);

/// Binds a listening socket with SO_REUSEADDR and SO_REUSEPORT, non-blocking.
pub(crate) fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Fails with `AddrInUse` when another socket is bound to `address`, even one with
/// SO_REUSEPORT (another weir): binding once without SO_REUSEPORT cannot share the port. Called
/// before a listener's workers bind it with SO_REUSEPORT, so that a second weir on the same port
/// fails instead of silently taking half the connections. The probe socket is closed at once.
pub(crate) fn check_free(address: SocketAddr) -> io::Result<()> {
    if address.port() == 0 {
        // An ephemeral port is ours alone.
        return Ok(());
    }
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // As the real bind: connections of an earlier run in TIME_WAIT do not hold the port.
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&address.into())
}

/// Binds listener `runtime` once per worker (SO_REUSEPORT: the kernel spreads accepts); the
/// first socket of a port-0 listener fixes the port for the others. At startup and when a
/// reload adds a listener; an error names the listener and its address.
pub(crate) fn bind_workers(
    runtime: &Arc<ListenerRuntime>,
    concurrency: usize,
) -> io::Result<(SocketAddr, Vec<ListenerSlot>)> {
    let mut address = runtime.address;
    // Our workers share the port through SO_REUSEPORT; another process must not.
    check_free(address).map_err(|e| {
        let why = if e.kind() == io::ErrorKind::AddrInUse {
            "address in use: another process already listens on it".to_owned()
        } else {
            e.to_string()
        };
        io::Error::new(
            e.kind(),
            format!("listener {} on {address}: {why}", runtime.name),
        )
    })?;
    let mut slots = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let socket = bind(address).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("listener {} on {address}: {e}", runtime.name),
            )
        })?;
        address = socket.local_addr()?;
        slots.push(slot(runtime, socket, address));
    }
    tracing::info!(listener = %runtime.name, %address, "listening");
    Ok((address, slots))
}

/// A worker's slot of listener `runtime`, listening on `socket` (bound to `address`).
fn slot(runtime: &Arc<ListenerRuntime>, socket: TcpListener, address: SocketAddr) -> ListenerSlot {
    ListenerSlot {
        socket: Some(socket),
        stats: runtime.slot,
        address,
        runtime: runtime.clone(),
        buffer_limit: runtime.buffer_limit,
        inbound: runtime.inbound,
        removed: false,
    }
}

/// Listener `runtime` on the sockets a weir handing over had for it (`hot_restart.rs`), one
/// per worker: they must number `concurrency` (a socket left over would hold connections
/// nobody accepts).
pub(crate) fn adopt_workers(
    runtime: &Arc<ListenerRuntime>,
    fds: Vec<std::os::fd::OwnedFd>,
    concurrency: usize,
) -> io::Result<(SocketAddr, Vec<ListenerSlot>)> {
    if fds.len() != concurrency {
        return Err(io::Error::other(format!(
            "listener {} on {}: the weir handing over has {} sockets for it, one per worker: start this one with --concurrency {}",
            runtime.name,
            runtime.address,
            fds.len(),
            fds.len()
        )));
    }
    let mut slots = Vec::with_capacity(concurrency);
    for fd in fds {
        let socket = std::net::TcpListener::from(fd);
        socket.set_nonblocking(true)?;
        let address = socket.local_addr()?;
        slots.push(slot(runtime, TcpListener::from_std(socket), address));
    }
    let address = slots.first().map_or(runtime.address, |s| s.address);
    tracing::info!(listener = %runtime.name, %address, handed_over = true, "listening");
    Ok((address, slots))
}

/// Duplicates of listener `name`'s sockets, for a weir that takes over (`hot_restart.rs`).
pub(crate) fn share<'a>(
    name: &str,
    slots: impl Iterator<Item = &'a ListenerSlot>,
) -> io::Result<crate::hot_restart::Sockets> {
    use std::os::fd::AsFd;
    let mut address = None;
    let mut fds = Vec::new();
    for slot in slots {
        address.get_or_insert(slot.address);
        if let Some(socket) = &slot.socket {
            fds.push(socket.as_fd().try_clone_to_owned()?);
        }
    }
    Ok(crate::hot_restart::Sockets {
        name: name.to_owned(),
        address: address.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
        fds,
    })
}

impl Worker {
    /// Accepts until the queue is empty (or the per-round bound).
    pub(crate) fn accept(&mut self, index: usize) {
        for _ in 0..ACCEPTS_PER_ROUND {
            let Some(listener) = self.listeners.get(index).and_then(|l| l.socket.as_ref()) else {
                return;
            };
            self.stats.syscalls.accept.inc();
            match listener.accept() {
                Ok((socket, peer)) => self.admit(index, Connection::accepted(socket), peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // Out of fds or memory: the pending connections stay queued; try again
                    // shortly instead of spinning on an edge that will not repeat. Said once
                    // a minute at most, not at every retry.
                    let quiet = self.accept_warned.is_some_and(|at| {
                        self.now.saturating_duration_since(at) < ACCEPT_WARN_EVERY
                    });
                    if !quiet {
                        self.accept_warned = Some(self.now);
                        tracing::warn!(worker = self.index, error = %e, "accept failed; retrying in 100 ms");
                    }
                    self.arm(ACCEPT_RETRY, TimerKey::AcceptRetry(index));
                    return;
                }
            }
        }
        self.deferred
            .push_back(crate::worker::Deferred::Accept(index));
    }

    /// A connection accepted on listener `index` (the in-memory harness admits its own
    /// through here too). With a TLS inspector it waits for its first bytes
    /// ([`Worker::inspect`]); otherwise its filter chain is chosen now.
    pub(crate) fn admit(&mut self, index: usize, conn: Connection, peer: SocketAddr) {
        // After a reload, new connections get the listener's new chains.
        self.follow_listener(index);
        let runtime = self.listeners[index].runtime.clone();
        if !runtime.listener_filters.is_empty() {
            return self.inspect(index, conn, peer);
        }
        let facts = self.facts(index, &conn, peer, None, None);
        let chain = runtime.select(&facts.facts());
        self.open_downstream(index, conn, peer, chain, Opening::Accepted);
    }

    /// What the chain selector knows of a connection: its addresses (those a PROXY protocol
    /// header gave, when one did), and what a TLS inspector found (`None`: no inspector ran,
    /// or it found no TLS).
    pub(crate) fn facts(
        &self,
        index: usize,
        conn: &Connection,
        peer: SocketAddr,
        hello: Option<ClientHello>,
        proxied: Option<Addresses>,
    ) -> Facts {
        let slot = &self.listeners[index];
        let local = match proxied {
            Some(p) => p.destination,
            None if slot.runtime.needs_local_address() => {
                self.syscalls().other();
                conn.local_addr().unwrap_or(slot.address)
            }
            None => slot.address,
        };
        Facts {
            local,
            direct_peer: peer,
            peer: proxied.map_or(peer, |p| p.source),
            hello,
            http: Vec::new(),
        }
    }

    /// Opens the connection on `chain` (`None`: no chain matched, and there is no default):
    /// checks the chain and the global limit, then registers it with its connection manager
    /// state and timers.
    pub(crate) fn open_downstream(
        &mut self,
        index: usize,
        conn: Connection,
        peer: SocketAddr,
        chain: Option<Chain>,
        opening: Opening,
    ) {
        let listener = self.listeners[index].stats;
        let Some((chain, mut conn)) = self.check_chain(index, conn, peer, chain, &opening) else {
            return;
        };
        let chain = match chain {
            Chain::Http(chain) => chain,
            Chain::Tcp(tcp) => {
                let (registered, proxied) = match &opening {
                    Opening::Accepted => (false, None),
                    Opening::Inspected { proxied, .. } => (true, *proxied),
                };
                return self.open_tcp(index, conn, (peer, proxied), tcp, registered);
            }
            // Closed above, before counting.
            Chain::Empty(_) => return,
        };
        let (limits, key_format) = (chain.limits, chain.hcm.header_key_format);
        let (trace, listener_filters, proxied) = match opening {
            Opening::Accepted => (self.recorder.new_conn(), None, None),
            Opening::Inspected {
                trace,
                filters,
                proxied,
            } => (trace, Some(filters), proxied),
        };
        let mut registered = Ok(());
        let net = &mut self.net;
        let id = self.downstreams.insert_with(|id| {
            let token = token(Kind::Downstream, id);
            registered = match listener_filters {
                None => net.register(&mut conn, token),
                Some(_) => net.reregister(&mut conn, token),
            };
            Downstream {
                conn,
                chain,
                peer,
                listener: listener as u32,
                accepted: crate::worker::Millis::of(self.now),
                codec: Http1Server::new(limits, key_format),
                streams: Default::default(),
                state: DownstreamState::Open,
                idle_timer: None,
                linger_timer: None,
                flush_mark: 0,
                peer_closed: false,
                closed_by_peer: false,
                header_timer: None,
                duration_timer: None,
                close_soon: false,
                replies_gated: false,
                abort: false,
                trace,
                pending_flow: None,
                tls: None,
                proxied: proxied.map(Box::new),
            }
        });
        self.stats.syscalls.epoll_ctl.inc();
        if let Err(e) = registered {
            tracing::warn!(%peer, error = %e, "epoll registration failed; closing");
            self.downstreams.remove(id);
            self.control.server.connection_closed();
            return;
        }
        let inspected = listener_filters.is_some();
        self.start_downstream(id, index, peer, listener_filters);
        if inspected {
            // Its first bytes were read already and no edge will announce them again; a TLS
            // session that took them may hold its answer (ServerHello) to send.
            self.flush_downstream(id);
            self.drive_downstream(id);
        }
    }
}

impl Worker {
    /// A connection's chain, checked before anything is set up for it: a chain without
    /// network filters or no chain at all closes it (as Envoy does), so does the global
    /// connection limit for a new one; a TLS chain starts its session. `None`: closed.
    fn check_chain(
        &mut self,
        index: usize,
        mut conn: Connection,
        peer: SocketAddr,
        chain: Option<Chain>,
        opening: &Opening,
    ) -> Option<(Chain, Connection)> {
        let listener = self.listeners[index].stats;
        let counted = !matches!(opening, Opening::Accepted);
        let chain = match chain {
            Some(chain @ (Chain::Http(_) | Chain::Tcp(_))) => chain,
            Some(Chain::Empty(_)) => {
                // A chain without network filters: Envoy accepts the connection and closes it.
                tracing::debug!(%peer, "the filter chain has no network filter; closing");
                if let Some(l) = self.stats.listeners.get(listener) {
                    l.downstream_cx_total.inc();
                    l.network_extension_config_missing.inc();
                    l.downstream_cx_destroy.inc();
                }
                if counted {
                    self.control.server.connection_closed();
                }
                return None;
            }
            None => {
                // No filter chain matches and there is no default: Envoy closes the connection.
                tracing::debug!(%peer, "no filter chain matched; closing");
                if let Some(l) = self.stats.listeners.get(listener) {
                    l.no_filter_chain_match.inc();
                }
                if counted {
                    self.control.server.connection_closed();
                }
                return None;
            }
        };
        if !counted && !self.control.server.connection_opened() {
            // Over the global limit: closed as soon as accepted, as Envoy's overload manager
            // does; established connections are untouched.
            tracing::debug!(%peer, "global connection limit reached; closing");
            if let Some(l) = self.stats.listeners.get(listener) {
                l.downstream_global_cx_overflow.inc();
            }
            return None;
        }
        if matches!(opening, Opening::Accepted) {
            self.syscalls().other();
            if let Err(e) = conn.set_nodelay() {
                tracing::debug!(%peer, error = %e, "TCP_NODELAY failed");
            }
        }
        if let Some(tls) = chain.tls() {
            conn = match conn.start_tls(tls.clone()) {
                Ok(conn) => conn,
                Err(e) => {
                    // The bytes a TLS inspector read are not a handshake this chain accepts.
                    tracing::debug!(%peer, error = %e, "cannot start TLS; closing");
                    if let Some(ssl) = self.stats.ssl.get(listener) {
                        ssl.connection_error();
                    }
                    self.control.server.connection_closed();
                    return None;
                }
            };
        }
        Some((chain, conn))
    }

    /// A new downstream's accept in the flow trace and the stats, and its timers.
    fn start_downstream(
        &mut self,
        id: Id,
        index: usize,
        peer: SocketAddr,
        listener_filters: Option<Vec<weir_flow::Name>>,
    ) {
        let listener = self.listeners[index].stats;
        tracing::trace!(worker = self.index, %peer, fd = self.downstreams.get(id).map(|d| d.conn.fd()), chain = %self.downstreams.get(id).map_or("", |d| &*d.chain.name), "accepted");
        if self.recorder.enabled() {
            let local = self.listeners[index].address;
            let chain = self.downstreams.get(id).map(|d| d.chain.name.clone());
            self.trace_down(id, || EventKind::Accept { peer, local });
            for name in listener_filters.into_iter().flatten() {
                self.trace_down(id, || EventKind::ListenerFilter { name });
            }
            if let Some(name) = chain {
                self.trace_down(id, || EventKind::FilterChain { name });
            }
            self.trace_down(id, || EventKind::Registered {
                readable: true,
                writable: true,
                edge_triggered: true,
            });
        }
        if let Some(l) = self.stats.listeners.get(listener) {
            l.downstream_cx_total.inc();
            l.downstream_cx_active.inc();
        }
        if let Some(ds) = self.downstreams.get(id)
            && let Some(http) = self.stats.http.get(ds.chain.stats)
        {
            let http = &http.stats;
            http.downstream_cx_total.inc();
            http.downstream_cx_active.inc();
            http.downstream_cx_http1_total.inc();
            http.downstream_cx_http1_active.inc();
        }
        self.arm_idle_timer(id);
        self.arm_handshake_timer(id);
        if let Some(after) = self
            .downstreams
            .get(id)
            .and_then(|d| d.chain.hcm.max_connection_duration)
        {
            let timer = self.arm(after, TimerKey::MaxDuration(id));
            if let Some(ds) = self.downstreams.get_mut(id) {
                ds.duration_timer = Some(timer);
            }
        }
    }
}

impl Worker {
    /// Arms `transport_socket_connect_timeout` on a connection that terminates TLS. The timer
    /// is not cancelled when the handshake ends: it finds the handshake done and does nothing.
    fn arm_handshake_timer(&mut self, id: crate::event::token::Id) {
        let after = self
            .downstreams
            .get(id)
            .filter(|d| d.chain.tls.is_some())
            .and_then(|d| d.chain.handshake_timeout);
        if let Some(after) = after {
            self.arm(after, TimerKey::Handshake(id));
        }
    }

    /// `transport_socket_connect_timeout`: a connection still in its TLS handshake is closed
    /// (`listener.<address>.downstream_cx_transport_socket_connect_timeout`).
    pub(crate) fn on_handshake_timeout(&mut self, id: crate::event::token::Id) {
        let Some(ds) = self.downstreams.get(id) else {
            return;
        };
        if !ds.conn.handshaking() {
            return;
        }
        tracing::debug!(peer = %ds.peer, "TLS handshake not done within transport_socket_connect_timeout; closing");
        if let Some(l) = self.stats.listeners.get(ds.listener as usize) {
            l.downstream_cx_transport_socket_connect_timeout.inc();
        }
        self.close_downstream(id);
    }

    /// Counts a TLS handshake that completed or failed since the last read
    /// (`listener.<address>.ssl.*`).
    pub(crate) fn tls_progress(&mut self, id: crate::event::token::Id, progress: TlsProgress) {
        let Some(ds) = self.downstreams.get(id) else {
            return;
        };
        let Some(ssl) = self.stats.ssl.get(ds.listener as usize) else {
            return;
        };
        match progress {
            TlsProgress::Done(info) => {
                tracing::trace!(version = info.version, cipher = %info.cipher, sni = ?info.server_name, "TLS handshake done");
                ssl.handshake(&info);
                self.trace_down(id, || info.event());
                if let Some(ds) = self.downstreams.get_mut(id) {
                    ds.tls = Some(Arc::from(info));
                }
            }
            TlsProgress::Failed(verify) => {
                tracing::debug!(peer = %ds.peer, ?verify, "TLS handshake failed");
                // A refused certificate is counted as that alone, as Envoy does.
                match verify {
                    Some(verify) => ssl.fail_verify(verify),
                    None => ssl.connection_error(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_another_reuseport_listener_holds_is_not_free() {
        // What another weir holds: a listening socket with SO_REUSEPORT.
        let other = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = other.local_addr().unwrap();
        let e = check_free(address).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        // Without the check, a second SO_REUSEPORT bind succeeds: the silent sharing.
        assert!(bind(address).is_ok());
        drop(other);
        // Once it is gone the port is free again, and port 0 always is.
        check_free(address).unwrap();
        check_free("127.0.0.1:0".parse().unwrap()).unwrap();
    }
}
