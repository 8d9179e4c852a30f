//! The TCP proxy (`envoy.filters.network.tcp_proxy`): a downstream connection paired with one
//! upstream connection, the bytes of each queued to the other as they come, never parsed.
//! Behind the TLS inspector and `server_names` this is TLS passthrough routed by SNI.
//!
//! ```text
//!  accepted ──▶ Connecting ──connected──▶ Open ──both sides finished, queues flushed──▶ closed
//!                  │ failed or timed out: another attempt (max_connect_attempts), else closed
//!                  Open ──error, reset or idle_timeout──▶ closed
//! ```
//!
//! Back-pressure is the queues': a side is read only while the other's queue is under the
//! cluster's (upstream) or listener's (downstream) buffer limit; the readable edge is
//! remembered, so pausing costs no syscall. A FIN is carried over once what preceded it has
//! been written (half-close both ways, as Envoy's TCP proxy does).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::access_log::LogRecord;
use crate::event::Readiness;
use crate::event::timer::TimerId;
use crate::event::token::{Id, Kind, token};
use crate::network::connection::{Connection, ReadOutcome};
use crate::network::proxy_protocol::Proxied;
use crate::network::transport::ConnectProgress;
use crate::snapshot::TcpChain;
use crate::upstream::circuit_breaker::Resource;
use crate::worker::{TimerKey, Worker};

/// Which connection of a session an event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Downstream,
    Upstream,
}

/// See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TcpState {
    /// The upstream connect is in progress; `attempts` made so far (this one included).
    Connecting { attempts: u32 },
    /// Bytes flow.
    Open,
}

/// A downstream connection and its upstream connection.
pub(crate) struct TcpSession {
    pub(crate) down: Connection,
    pub(crate) up: Connection,
    pub(crate) chain: Arc<TcpChain>,
    pub(crate) cluster: usize,
    /// The address of the host it connects to.
    pub(crate) host: SocketAddr,
    /// The listener's index (its stats, its buffer limit).
    pub(crate) listener: usize,
    pub(crate) peer: SocketAddr,
    /// What a PROXY protocol header changed of its addresses (`peer` is the client it named).
    pub(crate) proxied: Option<Box<Proxied>>,
    pub(crate) state: TcpState,
    pub(crate) connect_timer: Option<TimerId>,
    pub(crate) idle_timer: Option<TimerId>,
    /// The last time bytes moved (the idle timer is re-armed lazily from it).
    pub(crate) last_active: Instant,
    /// When it was accepted, for its access-log entry.
    pub(crate) started: (SystemTime, Instant),
    /// Bytes from the client, and to it.
    pub(crate) received: u64,
    pub(crate) sent: u64,
    /// The response flags its entry carries (`UF,URX`: no upstream connection).
    pub(crate) flag: &'static str,
}

/// What a TCP proxy's access-log entry says about its connection.
struct TcpEntry {
    started: (SystemTime, Instant),
    peer: SocketAddr,
    proxied: Option<Proxied>,
    listener: usize,
    received: u64,
    sent: u64,
    flag: &'static str,
    upstream: Option<(usize, SocketAddr)>,
}

impl Worker {
    /// Opens a TCP proxy session for an accepted connection (its chain chosen, counted against
    /// the connection limit, `registered` when a listener filter had it under another token):
    /// its client, and what a PROXY protocol header changed of its addresses.
    pub(crate) fn open_tcp(
        &mut self,
        index: usize,
        mut down: Connection,
        (peer, proxied): (SocketAddr, Option<Proxied>),
        chain: Arc<TcpChain>,
        registered: bool,
    ) {
        let stats = chain.stats;
        if let Some(t) = self.stats.tcp.get(stats) {
            t.downstream_cx_total.inc();
        }
        let started = (SystemTime::now(), self.now);
        let entry = |flag, upstream| TcpEntry {
            started,
            peer,
            proxied,
            listener: index,
            received: 0,
            sent: 0,
            flag,
            upstream,
        };
        let Some((cluster, host)) = self.tcp_host(&chain) else {
            tracing::debug!(%peer, "tcp_proxy: no host; closing");
            if let Some(t) = self.stats.tcp.get(stats) {
                t.downstream_cx_no_route.inc();
            }
            self.log_tcp(&chain, &entry("UH", None));
            self.control.server.connection_closed();
            return;
        };
        // Envoy checks the cluster's connection breaker here: its TCP pool would queue the
        // session for a connection no other session ever releases.
        let breakers = self.clusters[cluster].breakers.clone();
        if !breakers
            .default_priority()
            .can_create(Resource::Connections)
        {
            tracing::debug!(%peer, "tcp_proxy: the cluster's max_connections is reached; closing");
            if let Some(c) = self.stats.clusters.get(cluster) {
                c.common.upstream_cx_overflow.inc();
            }
            self.log_tcp(&chain, &entry("UO", Some((cluster, host))));
            self.control.server.connection_closed();
            return;
        }
        let Some(up) = self.tcp_connect(cluster, host) else {
            self.log_tcp(&chain, &entry("UF,URX", Some((cluster, host))));
            self.control.server.connection_closed();
            return;
        };
        // The session holds one of the cluster's connections until it closes.
        breakers.default_priority().inc(Resource::Connections);
        let net = &mut self.net;
        let mut ok = Ok(());
        let id = self.tcp.insert_with(|id| {
            let down_token = token(Kind::TcpDownstream, id);
            ok = if registered {
                net.reregister(&mut down, down_token)
            } else {
                net.register(&mut down, down_token)
            };
            TcpSession {
                down,
                up,
                chain,
                cluster,
                host,
                listener: index,
                peer,
                proxied: proxied.map(Box::new),
                state: TcpState::Connecting { attempts: 1 },
                connect_timer: None,
                idle_timer: None,
                last_active: self.now,
                started,
                received: 0,
                sent: 0,
                flag: "",
            }
        });
        self.stats.syscalls.epoll_ctl.inc();
        if ok.is_ok() {
            ok = self.register_tcp_upstream(id);
        }
        if let Err(e) = ok {
            tracing::warn!(%peer, error = %e, "epoll registration failed; closing");
            return self.close_tcp(id);
        }
        if let Some(l) = self.stats.listeners.get(self.listeners[index].stats) {
            l.downstream_cx_total.inc();
            l.downstream_cx_active.inc();
        }
        self.arm_tcp_timers(id);
    }

    /// A new session's timers: its connect, its TLS handshake, its idle timeout.
    fn arm_tcp_timers(&mut self, id: Id) {
        self.arm_tcp_connect_timer(id);
        let handshake = self
            .tcp
            .get(id)
            .filter(|s| s.chain.tls.is_some())
            .and_then(|s| s.chain.handshake_timeout);
        if let Some(after) = handshake {
            // Not cancelled: it finds the handshake done and does nothing.
            self.arm(after, TimerKey::TcpHandshake(id));
        }
        let idle = self.tcp.get(id).and_then(|s| s.chain.proxy.idle_timeout);
        if let Some(after) = idle {
            let timer = self.arm(after, TimerKey::TcpIdle(id));
            if let Some(s) = self.tcp.get_mut(id) {
                s.idle_timer = Some(timer);
            }
        }
    }

    /// A weighted pick of the chain's clusters (as Envoy picks them, at random), then a host.
    fn tcp_host(&mut self, chain: &TcpChain) -> Option<(usize, SocketAddr)> {
        let clusters = &chain.proxy.clusters;
        let total: u64 = clusters.iter().map(|&(_, w)| u64::from(w)).sum();
        let mut ticket = self.rng.u64(0..total.max(1));
        let cluster = clusters
            .iter()
            .find(|&&(_, w)| {
                let hit = ticket < u64::from(w);
                ticket = ticket.saturating_sub(u64::from(w));
                hit
            })
            .map(|&(c, _)| c)?;
        // A cluster a reload removed (its chain retired with it) has no host.
        if !self.cluster_in_force(cluster) {
            return None;
        }
        let hosts = &mut self.clusters.get_mut(cluster)?.hosts;
        let host = hosts
            .pick(None, &mut self.rng, None)
            .and_then(|id| hosts.address(id));
        if host.is_none()
            && let Some(c) = self.stats.clusters.get(cluster)
        {
            c.common.upstream_cx_none_healthy.inc();
        }
        Some((cluster, host?))
    }

    /// A non-blocking connect to the host (over TLS when its cluster says so).
    fn tcp_connect(&mut self, cluster: usize, address: SocketAddr) -> Option<Connection> {
        self.stats.syscalls.connect.add(2);
        let tls = self.clusters[cluster].tls.as_ref();
        let c = self.stats.clusters.get(cluster);
        match self.net.connect(address, tls, None) {
            Ok(conn) => {
                if let Some(c) = c {
                    c.common.upstream_cx_total.inc();
                }
                Some(conn)
            }
            Err(e) => {
                tracing::debug!(%address, error = %e, "tcp_proxy: connect failed");
                if let Some(c) = c {
                    c.common.upstream_cx_connect_fail.inc();
                }
                None
            }
        }
    }

    fn register_tcp_upstream(&mut self, id: Id) -> std::io::Result<()> {
        let Some(s) = self.tcp.get_mut(id) else {
            return Ok(());
        };
        self.stats.syscalls.epoll_ctl.inc();
        self.net.register(&mut s.up, token(Kind::TcpUpstream, id))
    }

    fn arm_tcp_connect_timer(&mut self, id: Id) {
        let Some(s) = self.tcp.get(id) else { return };
        let after = self.clusters[s.cluster].connect_timeout;
        let timer = self.arm(after, TimerKey::TcpConnect(id));
        if let Some(s) = self.tcp.get_mut(id) {
            s.connect_timer = Some(timer);
        }
    }

    /// A readiness event for one side of a session.
    pub(crate) fn on_tcp_ready(&mut self, id: Id, side: Side, event: Readiness) {
        let Some(s) = self.tcp.get_mut(id) else {
            return;
        };
        match side {
            Side::Downstream => s.down.on_ready(event),
            Side::Upstream => s.up.on_ready(event),
        }
        if let (Side::Upstream, TcpState::Connecting { .. }) = (side, s.state) {
            if !s.up.is_writable() {
                return;
            }
            match s.up.finish_connect(&self.stats.syscalls) {
                ConnectProgress::Connected => {
                    s.state = TcpState::Open;
                    let mut timer = s.connect_timer.take();
                    self.disarm(&mut timer);
                }
                ConnectProgress::InProgress => return,
                ConnectProgress::Failed(e) => {
                    tracing::debug!(error = %e, "tcp_proxy: upstream connect failed");
                    return self.tcp_connect_failed(id);
                }
            }
        }
        self.pump_tcp(id);
    }

    /// The connect failed or timed out: another attempt while `max_connect_attempts` allows,
    /// else the downstream is closed.
    pub(crate) fn tcp_connect_failed(&mut self, id: Id) {
        let Some(s) = self.tcp.get_mut(id) else {
            return;
        };
        let TcpState::Connecting { attempts } = s.state else {
            return;
        };
        let (cluster, max) = (s.cluster, s.chain.proxy.max_connect_attempts);
        // Envoy's flags once the attempts are spent: the connect failed, and no retry is left.
        s.flag = "UF,URX";
        let mut timer = s.connect_timer.take();
        self.disarm(&mut timer);
        if let Some(c) = self.stats.clusters.get(cluster) {
            c.common.upstream_cx_connect_fail.inc();
        }
        if attempts >= max {
            return self.close_tcp(id);
        }
        let chain = self.tcp.get(id).map(|s| s.chain.clone());
        let next = chain.and_then(|chain| {
            let (cluster, host) = self.tcp_host(&chain)?;
            Some((cluster, host, self.tcp_connect(cluster, host)?))
        });
        let Some((cluster, host, up)) = next else {
            return self.close_tcp(id);
        };
        if let Some(s) = self.tcp.get_mut(id) {
            // The failed socket closes as it is dropped (which removes it from epoll).
            s.up = up;
            s.cluster = cluster;
            s.host = host;
            s.state = TcpState::Connecting {
                attempts: attempts + 1,
            };
        }
        if self.register_tcp_upstream(id).is_err() {
            return self.close_tcp(id);
        }
        self.arm_tcp_connect_timer(id);
    }

    /// Copies what each side has read to the other while the other's queue has room, flushes
    /// both, carries FINs over, and closes the session when both sides are done.
    fn pump_tcp(&mut self, id: Id) {
        let Some(s) = self.tcp.get(id) else { return };
        if s.state != TcpState::Open {
            return;
        }
        let down_limit = self
            .listeners
            .get(s.listener)
            .map_or(usize::MAX, |l| l.buffer_limit);
        let up_limit = self.clusters[s.cluster].buffer_limit;
        let (scope, cluster) = (s.chain.stats, s.cluster);
        let (scratch, syscalls) = (&mut self.scratch, &self.stats.syscalls);
        let Some(TcpSession {
            down,
            up,
            last_active,
            received: total_received,
            sent: total_sent,
            ..
        }) = self.tcp.get_mut(id)
        else {
            return;
        };
        let (mut received, mut sent, mut broken) = (0, 0, false);
        // Each round moves bytes or ends the loop; the queues' limits bound what waits.
        for _ in 0..PUMP_ROUNDS {
            let a = copy(down, up, up_limit, scratch, syscalls);
            let b = copy(up, down, down_limit, scratch, syscalls);
            let flushed =
                up.flush(syscalls, |_, _| {}).is_ok() & down.flush(syscalls, |_, _| {}).is_ok();
            match (a, b) {
                (Copied::Broken, _) | (_, Copied::Broken) => broken = true,
                (Copied::Idle, Copied::Idle) => {}
                (a, b) => {
                    received += a.bytes();
                    sent += b.bytes();
                    if flushed {
                        continue;
                    }
                }
            }
            broken |= !flushed;
            break;
        }
        if received + sent > 0 {
            *last_active = self.now;
            *total_received += received as u64;
            *total_sent += sent as u64;
        }
        let done = down.read_eof() && up.read_eof() && !down.has_output() && !up.has_output();
        if let Some(t) = self.stats.tcp.get(scope) {
            t.downstream_cx_rx_bytes_total.add(received as u64);
            t.downstream_cx_tx_bytes_total.add(sent as u64);
        }
        if let Some(c) = self.stats.clusters.get(cluster) {
            c.common.upstream_cx_tx_bytes_total.add(received as u64);
            c.common.upstream_cx_rx_bytes_total.add(sent as u64);
        }
        if broken || done {
            self.close_tcp(id);
        }
    }

    /// `transport_socket_connect_timeout`: a session still in its TLS handshake is closed.
    pub(crate) fn on_tcp_handshake_timeout(&mut self, id: Id) {
        let Some(s) = self.tcp.get(id) else {
            return;
        };
        if !s.down.handshaking() {
            return;
        }
        tracing::debug!("TLS handshake not done within transport_socket_connect_timeout; closing");
        if let Some(l) = self.stats.listeners.get(self.listeners[s.listener].stats) {
            l.downstream_cx_transport_socket_connect_timeout.inc();
        }
        self.close_tcp(id);
    }

    /// `idle_timeout`: closes a session no byte crossed for that long; re-armed from the last
    /// activity otherwise.
    pub(crate) fn on_tcp_idle(&mut self, id: Id) {
        let Some(s) = self.tcp.get_mut(id) else {
            return;
        };
        s.idle_timer = None;
        let Some(idle) = s.chain.proxy.idle_timeout else {
            return;
        };
        let quiet = self.now.saturating_duration_since(s.last_active);
        if quiet < idle {
            let timer = self.arm(idle - quiet, TimerKey::TcpIdle(id));
            if let Some(s) = self.tcp.get_mut(id) {
                s.idle_timer = Some(timer);
            }
            return;
        }
        if let Some(t) = self
            .tcp
            .get(id)
            .and_then(|s| self.stats.tcp.get(s.chain.stats))
        {
            t.idle_timeout.inc();
        }
        self.close_tcp(id);
    }

    /// Ends a session: both connections close (dropped), its timers go.
    pub(crate) fn close_tcp(&mut self, id: Id) {
        let Some(mut s) = self.tcp.remove(id) else {
            return;
        };
        self.disarm(&mut s.connect_timer);
        self.disarm(&mut s.idle_timer);
        if let Some(c) = self.clusters.get(s.cluster) {
            c.breakers.default_priority().dec(Resource::Connections);
        }
        if let Some(l) = self.stats.listeners.get(self.listeners[s.listener].stats) {
            l.downstream_cx_destroy.inc();
            l.downstream_cx_active.dec();
        }
        tracing::debug!(peer = %s.peer, chain = &*s.chain.name, "tcp_proxy: session closed");
        let connected = s.flag.is_empty() || matches!(s.state, TcpState::Open);
        self.log_tcp(
            &s.chain,
            &TcpEntry {
                started: s.started,
                peer: s.peer,
                proxied: s.proxied.as_deref().copied(),
                listener: s.listener,
                received: s.received,
                sent: s.sent,
                flag: if connected { "" } else { s.flag },
                upstream: Some((s.cluster, s.host)),
            },
        );
        self.control.server.connection_closed();
    }

    /// Writes a connection's entry to the TCP proxy's access logs, if it has any: no request
    /// or response, so their operators log `-` (and `%RESPONSE_CODE%` 0), as Envoy's do.
    fn log_tcp(&self, chain: &TcpChain, entry: &TcpEntry) {
        if self.logs.is_empty(chain.logs) {
            return;
        }
        let local = (entry.proxied.map(|p| p.local))
            .or_else(|| self.listeners.get(entry.listener).map(|l| l.address))
            .unwrap_or(entry.peer);
        let cluster = entry.upstream.and_then(|(c, _)| self.clusters.get(c));
        let record = LogRecord {
            start: entry.started.0,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            protocol: "",
            response_code: 0,
            response_code_details: "",
            response_flags: entry.flag,
            bytes_received: entry.received,
            bytes_sent: entry.sent,
            duration: Some(self.now.saturating_duration_since(entry.started.1)),
            request_duration: None,
            response_duration: None,
            upstream_host: entry.upstream.map(|(_, address)| address),
            upstream_cluster: cluster.map(|c| c.name.clone()),
            upstream_local: None,
            downstream_remote: entry.peer,
            downstream_direct_remote: entry.proxied.map_or(entry.peer, |p| p.direct_peer),
            downstream_local: local,
            route_name: None,
            config_version: chain.config_version(self.control.server.config.version()),
            tls: None,
            transport_failure: None,
        };
        self.logs.log(chain.logs, &record);
    }
}

/// Copy rounds per event at most: enough for a burst, and the edge is remembered for the next
/// round if more waits.
const PUMP_ROUNDS: usize = 64;

/// What one copy did.
enum Copied {
    /// Nothing moved.
    Idle,
    /// Bytes moved.
    Moved(usize),
    /// The reading side failed: the session ends.
    Broken,
}

impl Copied {
    fn bytes(&self) -> usize {
        match self {
            Copied::Moved(n) => *n,
            _ => 0,
        }
    }
}

/// Reads `from` into `to`'s queue while `to` has room under `limit` (bytes read before the
/// session opened go first); a FIN read from `from` becomes a FIN on `to` after its queue.
fn copy(
    from: &mut Connection,
    to: &mut Connection,
    limit: usize,
    scratch: &mut [u8],
    syscalls: &crate::stats::Syscalls,
) -> Copied {
    let mut moved = 0;
    if !from.input.is_empty() {
        moved += from.input.len();
        to.queue(from.input.split().freeze());
    }
    while to.queued() < limit && from.can_read() {
        match from.fill(scratch, syscalls) {
            ReadOutcome::Data(n) => {
                moved += n;
                to.queue(from.input.split().freeze());
            }
            ReadOutcome::Drained => break,
            ReadOutcome::Eof => {
                to.finish_after_flush();
                break;
            }
            ReadOutcome::Failed(_) => return Copied::Broken,
        }
    }
    if moved > 0 {
        Copied::Moved(moved)
    } else {
        Copied::Idle
    }
}
