//! Sockets: listeners and the accept path, connections with their edge-triggered rules, the
//! transport seam, and the network a worker opens connections on.

pub(crate) mod connection;
pub(crate) mod http_inspector;
pub(crate) mod inspecting;
pub(crate) mod listener;
pub(crate) mod proxy_protocol;
pub(crate) mod resolver;
pub(crate) mod secrets;
pub(crate) mod tls;
pub(crate) mod tls_inspector;
pub(crate) mod transport;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mio::{Events, Poll, Token};

use connection::Connection;

/// Where a worker opens and registers connections: the kernel's sockets and the worker's poll,
/// or (in tests) an in-memory network whose readiness the test harness delivers.
pub(crate) enum Network {
    /// Real sockets, registered with the worker's own poll (the one its loop waits on: one
    /// epoll instance, so a tracer that follows `epoll_ctl` sees every registration).
    Sockets(Poll),
    /// In-memory pipes on a virtual clock (`crate::testing`).
    #[cfg(test)]
    Memory(crate::testing::MemoryNet),
}

impl Network {
    /// Starts a non-blocking connect to `address`, over TLS when `tls` says so (the in-memory
    /// network speaks plaintext only).
    pub(crate) fn connect(
        &mut self,
        address: SocketAddr,
        tls: Option<&weir_config::UpstreamTls>,
        host_sni: Option<&str>,
    ) -> io::Result<Connection> {
        match self {
            Network::Sockets(_) => Connection::connect(address, tls, host_sni),
            #[cfg(test)]
            Network::Memory(net) => net.connect(address),
        }
    }

    /// Waits for readiness (`epoll_wait`) at most `timeout`.
    pub(crate) fn wait(
        &mut self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        match self {
            Network::Sockets(poll) => poll.poll(events, timeout),
            #[cfg(test)]
            Network::Memory(_) => Err(io::Error::other(
                "the in-memory network is driven by its harness",
            )),
        }
    }

    /// Sends a registered connection's edges to a new token: a connection whose listener
    /// filters are done becomes a downstream.
    pub(crate) fn reregister(&mut self, conn: &mut Connection, token: Token) -> io::Result<()> {
        match self {
            Network::Sockets(poll) => conn.reregister(poll.registry(), token),
            #[cfg(test)]
            Network::Memory(net) => net.reregister(conn, token),
        }
    }

    /// Registers a listening socket a reload added (the in-memory network has none).
    pub(crate) fn register_listener(
        &mut self,
        socket: &mut mio::net::TcpListener,
        token: Token,
    ) -> io::Result<()> {
        match self {
            Network::Sockets(poll) => {
                (poll.registry()).register(socket, token, mio::Interest::READABLE)
            }
            #[cfg(test)]
            Network::Memory(_) => Ok(()),
        }
    }

    /// Registers a connection once, for readable and writable, edge-triggered.
    pub(crate) fn register(&mut self, conn: &mut Connection, token: Token) -> io::Result<()> {
        match self {
            Network::Sockets(poll) => conn.register(poll.registry(), token),
            #[cfg(test)]
            Network::Memory(net) => net.register(conn, token),
        }
    }
}
