//! In-memory pipes with a socket's manners, and the network they make up.
//!
//! A pipe joins a worker-side [`End`] (a connection's transport) and a test-side [`Peer`]. Each
//! direction holds what was written and not yet read; the worker's direction is bounded like a
//! socket buffer, so a peer that does not read pushes back. What the kernel would report
//! through epoll the pipe records as edges (data arrived, room freed, the peer closed), and the
//! harness delivers them as [`Readiness`] the way an edge-triggered poll does: once per change.
//!
//! A pipe's two ends are held by the worker and by the test at once, so they share its state
//! (behind a mutex only so that a worker built for tests stays `Send` like any other).

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, BytesMut};
use mio::Token;

use crate::event::Readiness;
use crate::network::connection::Connection;
use crate::network::transport::{ConnectProgress, Transport};

/// How much the worker may write towards a peer that does not read (a socket's send buffer).
pub(crate) const PIPE_CAPACITY: usize = 256 * 1024;

#[derive(Default)]
struct State {
    /// Peer → worker.
    inbound: BytesMut,
    /// Worker → peer.
    outbound: BytesMut,
    /// The peer sent FIN.
    peer_fin: bool,
    /// The worker sent FIN.
    worker_fin: bool,
    /// The worker closed its end (dropped the connection).
    worker_closed: bool,
    /// Either side reset: reads and writes fail.
    reset: bool,
    /// The worker asked for a reset on close (SO_LINGER 0).
    reset_on_close: bool,
    /// A connect still waiting for the far side (a black hole).
    connecting: bool,
    /// The worker's writes filled `outbound`: reading it raises a writable edge.
    worker_blocked: bool,
    token: Option<Token>,
    fd: i32,
    local: Option<SocketAddr>,
    pending: Pending,
}

/// Edges not yet delivered to the worker.
#[derive(Default, Clone, Copy)]
struct Pending {
    readable: bool,
    writable: bool,
    read_closed: bool,
    error: bool,
}

type Shared = Arc<Mutex<State>>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The worker's end: a connection's transport.
pub(crate) struct End(Shared);

/// The test's end: a client of the worker, or an origin the worker connected to.
#[derive(Clone)]
pub(crate) struct Peer(Shared);

fn pipe(fd: i32, local: SocketAddr) -> (End, Peer) {
    let state = Arc::new(Mutex::new(State {
        fd,
        local: Some(local),
        ..State::default()
    }));
    (End(state.clone()), Peer(state))
}

impl End {
    pub(crate) fn fd(&self) -> i32 {
        lock(&self.0).fd
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        lock(&self.0).local.expect("a pipe has a local address")
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = lock(&self.0);
        if s.reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if s.inbound.is_empty() {
            return if s.peer_fin {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(s.inbound.len());
        buf[..n].copy_from_slice(&s.inbound[..n]);
        s.inbound.advance(n);
        Ok(n)
    }

    pub(crate) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut s = lock(&self.0);
        if s.reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        let mut written = 0;
        for buf in bufs {
            let room = PIPE_CAPACITY - s.outbound.len();
            let n = room.min(buf.len());
            s.outbound.extend_from_slice(&buf[..n]);
            written += n;
            if n < buf.len() {
                break;
            }
        }
        if written == 0 && bufs.iter().any(|b| !b.is_empty()) {
            s.worker_blocked = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if s.outbound.len() == PIPE_CAPACITY {
            s.worker_blocked = true;
        }
        Ok(written)
    }

    pub(crate) fn shutdown_write(&mut self) -> io::Result<()> {
        lock(&self.0).worker_fin = true;
        Ok(())
    }

    pub(crate) fn finish_connect(&self) -> ConnectProgress {
        if lock(&self.0).connecting {
            ConnectProgress::InProgress
        } else {
            ConnectProgress::Connected
        }
    }

    pub(crate) fn reset_on_close(&self) {
        lock(&self.0).reset_on_close = true;
    }
}

impl Drop for End {
    fn drop(&mut self) {
        let mut s = lock(&self.0);
        s.worker_closed = true;
        s.worker_fin = true;
        if s.reset_on_close {
            s.reset = true;
        }
    }
}

impl Peer {
    /// Sends bytes to the worker.
    pub(crate) fn send(&self, bytes: impl AsRef<[u8]>) {
        let mut s = lock(&self.0);
        s.inbound.extend_from_slice(bytes.as_ref());
        s.pending.readable = true;
    }

    /// Takes everything the worker has written so far.
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut s = lock(&self.0);
        let out = s.outbound.split().to_vec();
        if std::mem::take(&mut s.worker_blocked) && !out.is_empty() {
            s.pending.writable = true;
        }
        out
    }

    /// Takes everything written so far as text.
    pub(crate) fn take_text(&self) -> String {
        String::from_utf8_lossy(&self.take()).into_owned()
    }

    /// Bytes the peer sent that the worker has not read.
    pub(crate) fn unsent(&self) -> usize {
        lock(&self.0).inbound.len()
    }

    /// Bytes the worker wrote that the peer has not taken.
    pub(crate) fn unread(&self) -> usize {
        lock(&self.0).outbound.len()
    }

    /// Half-closes: the worker reads EOF after what was sent.
    pub(crate) fn finish(&self) {
        let mut s = lock(&self.0);
        s.peer_fin = true;
        s.pending.readable = true;
        s.pending.read_closed = true;
    }

    /// Resets the connection: the worker's next read or write fails.
    pub(crate) fn reset(&self) {
        let mut s = lock(&self.0);
        s.reset = true;
        s.pending.error = true;
    }

    /// The worker sent FIN (or closed).
    pub(crate) fn worker_finished(&self) -> bool {
        lock(&self.0).worker_fin
    }

    /// The worker closed its end (its connection is gone).
    pub(crate) fn worker_closed(&self) -> bool {
        lock(&self.0).worker_closed
    }

    /// The worker's close was a reset (RST).
    pub(crate) fn was_reset(&self) -> bool {
        let s = lock(&self.0);
        s.worker_closed && s.reset
    }
}

/// What listens at an address of the in-memory network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listening {
    /// Connects complete at once; the test takes the connection with `MemoryNet::accepted`.
    Accept,
    /// Connects never complete (a host that drops SYNs).
    BlackHole,
}

/// The in-memory network of one worker: what listens where, the connections the worker made,
/// and the pipes whose edges are delivered as readiness.
#[derive(Default)]
pub(crate) struct MemoryNet {
    listening: HashMap<SocketAddr, Listening>,
    accepted: Vec<(SocketAddr, Peer)>,
    registered: Vec<Shared>,
    next_fd: i32,
}

impl MemoryNet {
    /// Something listens at `address`.
    pub(crate) fn listen(&mut self, address: SocketAddr, how: Listening) {
        self.listening.insert(address, how);
    }

    /// Nothing listens at `address` any more: connects are refused.
    pub(crate) fn forget(&mut self, address: SocketAddr) {
        self.listening.remove(&address);
    }

    /// The connections the worker made to `address` and the test has not taken yet.
    pub(crate) fn accepted(&mut self, address: SocketAddr) -> Vec<Peer> {
        let (taken, kept) = std::mem::take(&mut self.accepted)
            .into_iter()
            .partition(|(a, _)| *a == address);
        self.accepted = kept;
        taken.into_iter().map(|(_, p)| p).collect()
    }

    /// A client connection to the worker: the worker's end, and the test's.
    pub(crate) fn client(&mut self, listener: SocketAddr) -> (Connection, Peer) {
        let (end, peer) = pipe(self.fd(), listener);
        // A connected socket is writable when registered.
        lock(&end.0).pending.writable = true;
        (Connection::new(Transport::Memory(end), true), peer)
    }

    pub(crate) fn connect(&mut self, address: SocketAddr) -> io::Result<Connection> {
        let how = self
            .listening
            .get(&address)
            .copied()
            .ok_or(io::ErrorKind::ConnectionRefused)?;
        let local = SocketAddr::from(([127, 0, 0, 1], 40000 + self.next_fd as u16));
        let (end, peer) = pipe(self.fd(), local);
        {
            let mut s = lock(&end.0);
            s.connecting = how == Listening::BlackHole;
            s.pending.writable = how == Listening::Accept;
        }
        if how == Listening::Accept {
            self.accepted.push((address, peer));
        }
        Ok(Connection::new(Transport::Memory(end), false))
    }

    pub(crate) fn register(&mut self, conn: &mut Connection, token: Token) -> io::Result<()> {
        let Transport::Memory(end) = conn.transport() else {
            return Err(io::Error::other("a socket on the in-memory network"));
        };
        lock(&end.0).token = Some(token);
        self.registered.push(end.0.clone());
        Ok(())
    }

    /// Points a registered pipe's edges at a new token (`epoll_ctl(MOD)`).
    pub(crate) fn reregister(&mut self, conn: &mut Connection, token: Token) -> io::Result<()> {
        let Transport::Memory(end) = conn.transport() else {
            return Err(io::Error::other("a socket on the in-memory network"));
        };
        lock(&end.0).token = Some(token);
        Ok(())
    }

    /// Takes the edges raised since the last call, one readiness per pipe, as an
    /// edge-triggered poll reports them; forgets pipes the worker closed.
    pub(crate) fn poll(&mut self) -> Vec<Readiness> {
        self.registered.retain(|s| !lock(s).worker_closed);
        let mut events = Vec::new();
        for shared in &self.registered {
            let mut s = lock(shared);
            let p = std::mem::take(&mut s.pending);
            if !(p.readable || p.writable || p.read_closed || p.error) {
                continue;
            }
            let Some(token) = s.token else { continue };
            events.push(Readiness {
                token,
                readable: p.readable,
                writable: p.writable,
                read_closed: p.read_closed,
                write_closed: p.error,
                error: p.error,
            });
        }
        events
    }

    fn fd(&mut self) -> i32 {
        self.next_fd += 1;
        1000 + self.next_fd
    }
}
