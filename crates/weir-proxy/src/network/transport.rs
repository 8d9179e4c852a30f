//! The transport seam (Envoy's `TransportSocket`): what sits between a socket and the codec.
//!
//! Every byte a connection reads or writes goes through its [`Transport`], and every other
//! socket call weir makes on a connection (connect, `SO_ERROR`, `SO_LINGER`, addresses) lives
//! here too, so nothing above `network/` touches a socket. Today the only transport is `Raw`
//! (plain TCP) and `Tls`, which owns the socket and a [`TlsSession`]. An edge-triggered socket
//! raises no new edge for plaintext the session already holds, so for TLS a short read does
//! not mean the socket is drained ([`Transport::short_read_drains`]): the connection reads on
//! until the session and the socket are both empty. The session also holds encrypted output
//! the codec never queued (handshake, alerts, close_notify): [`Transport::wants_write`] makes
//! the connection flush it.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::ServerConfig;
use weir_config::UpstreamTls;

use crate::network::tls::{TlsProgress, TlsSession};

/// See the module documentation.
pub(crate) enum Transport {
    /// Plain TCP: reads and writes are the socket's.
    Raw(TcpStream),
    /// TLS, terminated here (a client's) or spoken to an origin. Boxed: a plaintext connection
    /// stays as small as a socket.
    Tls(Box<TlsTransport>),
    /// One end of an in-memory pipe, for tests on a virtual clock (`crate::testing`).
    #[cfg(test)]
    Memory(crate::testing::pipe::End),
}

/// A socket and the TLS session spoken over it.
pub(crate) struct TlsTransport {
    socket: TcpStream,
    session: TlsSession,
}

/// How a non-blocking connect stands at its first writable edge.
#[derive(Debug)]
pub(crate) enum ConnectProgress {
    /// The connection is established.
    Connected,
    /// Not yet (a spurious edge): wait for the next one.
    InProgress,
    /// It failed.
    Failed(io::Error),
}

impl Transport {
    /// Starts a non-blocking connect to `address` with `TCP_NODELAY` set (the socket, the
    /// connect and the option: what the syscall counters charge to a connect). With TLS, the
    /// session names `host_sni` when given (`auto_host_sni`), else the cluster's `sni`.
    pub(crate) fn connect(
        address: SocketAddr,
        tls: Option<&UpstreamTls>,
        host_sni: Option<&str>,
    ) -> io::Result<Transport> {
        let socket = TcpStream::connect(address)?;
        // A failed option costs latency, never correctness.
        let _ = socket.set_nodelay(true);
        Ok(match tls {
            None => Transport::Raw(socket),
            Some(tls) => {
                let sni = host_sni.or(tls.sni.as_deref());
                let name = weir_config::upstream_server_name(sni, address.ip());
                let session = TlsSession::client(tls.client_config.clone(), name)?;
                Transport::Tls(Box::new(TlsTransport { socket, session }))
            }
        })
    }

    /// Sends the socket's edges to a new token (`epoll_ctl(MOD)`).
    pub(crate) fn reregister(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let interest = Interest::READABLE | Interest::WRITABLE;
        match self {
            Transport::Raw(s) => registry.reregister(s, token, interest),
            Transport::Tls(t) => registry.reregister(&mut t.socket, token, interest),
            #[cfg(test)]
            Transport::Memory(_) => Err(io::Error::other("an in-memory pipe has no poll")),
        }
    }

    /// Registers the socket once, for readable and writable, edge-triggered.
    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match self {
            Transport::Raw(s) => {
                registry.register(s, token, Interest::READABLE | Interest::WRITABLE)
            }
            Transport::Tls(t) => registry.register(
                &mut t.socket,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ),
            #[cfg(test)]
            Transport::Memory(_) => Err(io::Error::other("an in-memory pipe has no poll")),
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        match self {
            Transport::Raw(s) => s.as_raw_fd(),
            Transport::Tls(t) => t.socket.as_raw_fd(),
            #[cfg(test)]
            Transport::Memory(end) => end.fd(),
        }
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Raw(s) => s.read(buf),
            Transport::Tls(t) => t.session.read(&mut t.socket, buf),
            #[cfg(test)]
            Transport::Memory(end) => end.read(buf),
        }
    }

    pub(crate) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Raw(s) => s.write_vectored(bufs),
            Transport::Tls(t) => t.session.write_vectored(&mut t.socket, bufs),
            #[cfg(test)]
            Transport::Memory(end) => end.write_vectored(bufs),
        }
    }

    pub(crate) fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Transport::Raw(s) => s.shutdown(Shutdown::Write),
            Transport::Tls(t) => t.socket.shutdown(Shutdown::Write),
            #[cfg(test)]
            Transport::Memory(end) => end.shutdown_write(),
        }
    }

    /// At the first writable edge of a connect: `SO_ERROR` says whether it failed, and a peer
    /// address whether it completed. Two syscalls, counted by the caller.
    pub(crate) fn finish_connect(&self) -> ConnectProgress {
        match self {
            Transport::Raw(s) => raw_connect_progress(s),
            Transport::Tls(t) => raw_connect_progress(&t.socket),
            #[cfg(test)]
            Transport::Memory(end) => end.finish_connect(),
        }
    }

    pub(crate) fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Transport::Raw(s) => s.set_nodelay(true),
            Transport::Tls(t) => t.socket.set_nodelay(true),
            #[cfg(test)]
            Transport::Memory(_) => Ok(()),
        }
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Transport::Raw(s) => s.local_addr().ok(),
            Transport::Tls(t) => t.socket.local_addr().ok(),
            #[cfg(test)]
            Transport::Memory(end) => Some(end.local_addr()),
        }
    }

    /// Makes the coming close send RST instead of FIN (`SO_LINGER` 0): a cut response must
    /// not look complete to the peer.
    pub(crate) fn reset_on_close(&self) {
        match self {
            Transport::Raw(s) => {
                let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
            }
            Transport::Tls(t) => {
                let _ = socket2::SockRef::from(&t.socket).set_linger(Some(Duration::ZERO));
            }
            #[cfg(test)]
            Transport::Memory(end) => end.reset_on_close(),
        }
    }
}

impl Transport {
    /// Starts TLS on an accepted plaintext socket (the chain chosen for it terminates TLS).
    pub(crate) fn into_tls(
        self,
        config: Arc<ServerConfig>,
        prefix: &[u8],
    ) -> io::Result<Transport> {
        match self {
            Transport::Raw(socket) => Ok(Transport::Tls(Box::new(TlsTransport {
                socket,
                session: TlsSession::server(config, prefix)?,
            }))),
            other => Ok(other),
        }
    }

    /// A read that returned less than asked drained the socket (plain TCP), or only the
    /// session's plaintext (TLS), after which the socket may still hold bytes.
    pub(crate) fn short_read_drains(&self) -> bool {
        !matches!(self, Transport::Tls(_))
    }

    /// The TLS session holds encrypted output the socket has not taken.
    pub(crate) fn wants_write(&self) -> bool {
        match self {
            Transport::Tls(t) => t.session.wants_write(),
            _ => false,
        }
    }

    /// Writes what the TLS session holds; `Ok(true)` when nothing is left.
    pub(crate) fn flush_pending(&mut self) -> io::Result<bool> {
        match self {
            Transport::Tls(t) => t.session.flush(&mut t.socket),
            _ => Ok(true),
        }
    }

    /// Queues TLS `close_notify` before the FIN (nothing for plain TCP).
    pub(crate) fn close_notify(&mut self) {
        if let Transport::Tls(t) = self {
            t.session.close_notify();
        }
    }

    /// Encrypted bytes that went `direction` since last asked; none for plain TCP.
    pub(crate) fn take_tls_wire(&mut self, direction: weir_flow::Direction) -> u64 {
        match self {
            Transport::Tls(t) => t.session.take_wire(direction),
            _ => 0,
        }
    }

    /// A TLS handshake is under way (never for plain TCP).
    pub(crate) fn handshaking(&self) -> bool {
        match self {
            Transport::Tls(t) => t.session.handshaking(),
            _ => false,
        }
    }

    /// What happened to a TLS handshake since last asked.
    pub(crate) fn take_tls_progress(&mut self) -> Option<TlsProgress> {
        match self {
            Transport::Tls(t) => t.session.take_progress(),
            _ => None,
        }
    }
}

/// `SO_ERROR` says whether a connect failed, and a peer address whether it completed.
fn raw_connect_progress(s: &TcpStream) -> ConnectProgress {
    match s.take_error() {
        Ok(None) => {}
        Ok(Some(e)) | Err(e) => return ConnectProgress::Failed(e),
    }
    match s.peer_addr() {
        Ok(_) => ConnectProgress::Connected,
        Err(e) if e.kind() == io::ErrorKind::NotConnected => ConnectProgress::InProgress,
        Err(e) => ConnectProgress::Failed(e),
    }
}
