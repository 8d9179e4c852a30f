//! The transport seam (Envoy's `TransportSocket`): what sits between a socket and the codec.
//!
//! Every byte a connection reads or writes goes through its [`Transport`], and every other
//! socket call weir makes on a connection (connect, `SO_ERROR`, `SO_LINGER`, addresses) lives
//! here too, so nothing above `network/` touches a socket. Today the only transport is `Raw`
//! (plain TCP); TLS arrives as a second variant that owns its session and reports the plaintext
//! it has buffered, since an edge-triggered socket raises no new edge for bytes the session
//! already holds.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// See the module documentation.
pub(crate) enum Transport {
    /// Plain TCP: reads and writes are the socket's.
    Raw(TcpStream),
    /// One end of an in-memory pipe, for tests on a virtual clock (`crate::testing`).
    #[cfg(test)]
    Memory(crate::testing::pipe::End),
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
    /// connect and the option: what the syscall counters charge to a connect).
    pub(crate) fn connect(address: SocketAddr) -> io::Result<Transport> {
        let socket = TcpStream::connect(address)?;
        // A failed option costs latency, never correctness.
        let _ = socket.set_nodelay(true);
        Ok(Transport::Raw(socket))
    }

    /// Registers the socket once, for readable and writable, edge-triggered.
    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match self {
            Transport::Raw(s) => {
                registry.register(s, token, Interest::READABLE | Interest::WRITABLE)
            }
            #[cfg(test)]
            Transport::Memory(_) => Err(io::Error::other("an in-memory pipe has no poll")),
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        match self {
            Transport::Raw(s) => s.as_raw_fd(),
            #[cfg(test)]
            Transport::Memory(end) => end.fd(),
        }
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Raw(s) => s.read(buf),
            #[cfg(test)]
            Transport::Memory(end) => end.read(buf),
        }
    }

    pub(crate) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Raw(s) => s.write_vectored(bufs),
            #[cfg(test)]
            Transport::Memory(end) => end.write_vectored(bufs),
        }
    }

    pub(crate) fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Transport::Raw(s) => s.shutdown(Shutdown::Write),
            #[cfg(test)]
            Transport::Memory(end) => end.shutdown_write(),
        }
    }

    /// At the first writable edge of a connect: `SO_ERROR` says whether it failed, and a peer
    /// address whether it completed. Two syscalls, counted by the caller.
    pub(crate) fn finish_connect(&self) -> ConnectProgress {
        match self {
            Transport::Raw(s) => raw_connect_progress(s),
            #[cfg(test)]
            Transport::Memory(end) => end.finish_connect(),
        }
    }

    pub(crate) fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Transport::Raw(s) => s.set_nodelay(true),
            #[cfg(test)]
            Transport::Memory(_) => Ok(()),
        }
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Transport::Raw(s) => s.local_addr().ok(),
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
            #[cfg(test)]
            Transport::Memory(end) => end.reset_on_close(),
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
