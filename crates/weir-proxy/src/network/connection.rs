//! A non-blocking TCP connection: socket, read buffer, write queue, and the edge-triggered rules.
//!
//! Every socket is registered once, for readable and writable, edge-triggered, and never
//! re-registered. The rules that make that safe all live in this type:
//!
//! - **Readiness is remembered.** An event sets `readable`/`writable`; they are cleared only by
//!   the kernel's answer: a read that returns fewer bytes than it asked for (the socket was empty
//!   at that instant, and any later arrival raises a new edge), EAGAIN, or EOF. So a short read
//!   is never followed by a read that only returns EAGAIN. The exception is a FIN (or error)
//!   that an event already reported: it raises no later edge, so after it a short read keeps
//!   `readable` set and the next read returns the EOF.
//! - **Pausing reads costs nothing.** A caller that must not read (its request is in flight, or
//!   the other side's queue is over its watermark) simply does not call [`Connection::fill`]; the
//!   remembered edge keeps `readable` set and the data is read when reading resumes.
//! - **Writes leave in one `writev`.** Output is queued as `Bytes` pieces and [`Connection::flush`]
//!   hands all of them to the kernel at once; only when the kernel takes less is `writable`
//!   cleared, and the next writable edge flushes the rest.
//! - **Closing is dropping.** Closing the fd removes it from epoll, so no `epoll_ctl(DEL)`.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use mio::net::TcpStream;
use mio::{Registry, Token};

use crate::event::Readiness;
use crate::network::tls::TlsProgress;
use crate::network::transport::{ConnectProgress, Transport};
use crate::stats::Syscalls;

/// The most slices handed to one `writev` (well under IOV_MAX).
const MAX_IOVECS: usize = 64;
/// Enough slices for a typical write (a response head and its body, maybe a chunk's framing).
const FEW_IOVECS: usize = 4;

/// What one read brought.
#[derive(Debug)]
pub(crate) enum ReadOutcome {
    /// This many bytes were appended to the input buffer.
    Data(usize),
    /// Nothing to read now (EAGAIN); wait for the next readable edge.
    Drained,
    /// The peer closed its write side.
    Eof,
    /// The connection failed (reset, …).
    Failed(io::Error),
}

/// See the module documentation.
pub(crate) struct Connection {
    /// The socket, and a TLS session if any (boxed: a plaintext connection pays 16 bytes).
    transport: Transport,
    /// Bytes read and not yet consumed by the codec.
    pub(crate) input: BytesMut,
    output: VecDeque<Bytes>,
    queued: usize,
    readable: bool,
    writable: bool,
    /// An event already reported the peer's FIN or an error. No further edge will come for
    /// it, so a short read must not clear `readable`: the next read returns the EOF or error.
    hup_seen: bool,
    read_eof: bool,
    write_shut: bool,
    /// Send FIN once the queue has left (a tunnel's client or origin finished).
    fin_pending: bool,
    /// Bytes written over the connection's life (flush progress and byte counters read it).
    pub(crate) bytes_out: u64,
}

impl Connection {
    /// Wraps an accepted socket: writable before its first edge.
    pub(crate) fn accepted(socket: TcpStream) -> Self {
        Connection::new(Transport::Raw(socket), true)
    }

    /// Starts a non-blocking connect to `address` (speaking TLS when `tls` says so): not
    /// writable until its first edge, which
    /// [`Connection::finish_connect`] reads.
    pub(crate) fn connect(
        address: SocketAddr,
        tls: Option<&weir_config::UpstreamTls>,
        host_sni: Option<&str>,
    ) -> io::Result<Self> {
        Ok(Connection::new(
            Transport::connect(address, tls, host_sni)?,
            false,
        ))
    }

    pub(crate) fn new(transport: Transport, writable: bool) -> Self {
        Connection {
            transport,
            input: BytesMut::new(),
            output: VecDeque::new(),
            queued: 0,
            readable: false,
            writable,
            hup_seen: false,
            read_eof: false,
            write_shut: false,
            fin_pending: false,
            bytes_out: 0,
        }
    }

    /// Terminates TLS on this accepted connection. What was read already (by a TLS
    /// inspector) is the start of the TLS stream: the session takes it, and the connection
    /// counts as readable so that the plaintext it yields is read without a new edge.
    pub(crate) fn start_tls(mut self, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let prefix = std::mem::take(&mut self.input);
        Ok(Connection {
            transport: self.transport.into_tls(config, &prefix)?,
            readable: self.readable || !prefix.is_empty(),
            ..self
        })
    }

    /// The TLS records (encrypted bytes) it moved `direction` since last asked.
    pub(crate) fn take_tls_wire(&mut self, direction: weir_flow::Direction) -> u64 {
        self.transport.take_tls_wire(direction)
    }

    /// Its TLS handshake is under way.
    pub(crate) fn handshaking(&self) -> bool {
        self.transport.handshaking()
    }

    /// What happened to its TLS handshake since last asked.
    pub(crate) fn take_tls_progress(&mut self) -> Option<TlsProgress> {
        self.transport.take_tls_progress()
    }

    /// The transport, for the in-memory network to find its pipe.
    #[cfg(test)]
    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Registers the socket with the worker's poll, once for its life.
    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.transport.register(registry, token)
    }

    /// Sends the socket's edges to a new token.
    pub(crate) fn reregister(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.transport.reregister(registry, token)
    }

    /// How a connect in progress stands (call at a writable edge; two syscalls).
    pub(crate) fn finish_connect(&self, syscalls: &Syscalls) -> ConnectProgress {
        syscalls.other();
        syscalls.other();
        self.transport.finish_connect()
    }

    /// Sends small writes at once (`TCP_NODELAY`): a proxy's writes are whole messages.
    pub(crate) fn set_nodelay(&self) -> io::Result<()> {
        self.transport.set_nodelay()
    }

    /// The local address (one syscall; only access logs ask).
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.transport.local_addr()
    }

    /// Makes the coming close a reset (RST), for a response that was cut.
    pub(crate) fn reset_on_close(&self) {
        self.transport.reset_on_close();
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.transport.fd()
    }

    /// Records what an event says. Errors and hang-ups count as both readable and writable, so
    /// the next read or write reports them.
    pub(crate) fn on_ready(&mut self, event: Readiness) {
        if event.readable || event.read_closed || event.error {
            self.readable = true;
        }
        if event.read_closed || event.error {
            self.hup_seen = true;
        }
        if event.writable || event.write_closed || event.error {
            self.writable = true;
        }
    }

    /// A readable edge is remembered and the peer has not closed: `fill` would make progress.
    pub(crate) fn can_read(&self) -> bool {
        self.readable && !self.read_eof
    }

    pub(crate) fn read_eof(&self) -> bool {
        self.read_eof
    }

    pub(crate) fn is_writable(&self) -> bool {
        self.writable
    }

    /// Reads once into `scratch` and appends what came to `input`.
    pub(crate) fn fill(&mut self, scratch: &mut [u8], syscalls: &Syscalls) -> ReadOutcome {
        loop {
            syscalls.read();
            match self.transport.read(scratch) {
                Ok(0) => {
                    self.readable = false;
                    self.read_eof = true;
                    return ReadOutcome::Eof;
                }
                Ok(n) => {
                    // A short read drained the socket, and any later arrival raises a new
                    // edge; but a FIN that came with the data raised its edge already.
                    // Not so for TLS: a short read may have emptied only the session.
                    if n < scratch.len() && !self.hup_seen && self.transport.short_read_drains() {
                        self.readable = false;
                    }
                    self.input.extend_from_slice(&scratch[..n]);
                    return ReadOutcome::Data(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return ReadOutcome::Drained;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.readable = false;
                    self.read_eof = true;
                    return ReadOutcome::Failed(e);
                }
            }
        }
    }

    /// Appends bytes to the write queue (nothing is written until `flush`). After the write
    /// side is shut or abandoned they can never leave, and are dropped.
    pub(crate) fn queue(&mut self, bytes: impl Into<Bytes>) {
        let bytes = bytes.into();
        if !bytes.is_empty() && !self.write_shut {
            self.queued += bytes.len();
            self.output.push_back(bytes);
        }
    }

    /// Bytes are queued, TLS output waits in the session, or a FIN waits to follow them: a
    /// flush has work.
    pub(crate) fn has_output(&self) -> bool {
        self.queued > 0 || self.fin_pending || self.transport.wants_write()
    }

    /// Bytes queued and not yet taken by the kernel.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Writes as much of the queue as the kernel takes, in one `writev` per 64 pieces, telling
    /// `wrote` what each `writev` was offered and returned (for TLS: plaintext bytes, which the
    /// session encrypts and writes with vectored writes of its own). Ok(true) when the queue is
    /// empty and the TLS session holds no output.
    pub(crate) fn flush(
        &mut self,
        syscalls: &Syscalls,
        mut wrote: impl FnMut(usize, &io::Result<usize>),
    ) -> io::Result<bool> {
        while self.queued > 0 && self.writable {
            syscalls.write();
            // Most writes carry a few pieces (a head, a body): a small array of slices is
            // cheaper to set up than one sized for the most a `writev` takes.
            let (offered, result) = if self.output.len() <= FEW_IOVECS {
                self.write_queued::<FEW_IOVECS>()
            } else {
                self.write_queued::<MAX_IOVECS>()
            };
            wrote(offered, &result);
            match result {
                Ok(n) => {
                    self.bytes_out += n as u64;
                    self.consume(n);
                    if n < offered {
                        self.writable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.queued == 0 && self.writable && self.fin_pending {
            self.transport.close_notify();
        }
        self.flush_transport(syscalls)?;
        // Never on a connect still in progress (a FIN then would abort it): its first
        // writable edge flushes again.
        if self.queued == 0
            && self.writable
            && !self.transport.wants_write()
            && std::mem::take(&mut self.fin_pending)
        {
            self.shutdown_write(syscalls);
        }
        Ok(self.queued == 0 && !self.transport.wants_write())
    }

    /// One `writev` of the first `N` queued pieces (at most): the bytes offered, and the result.
    fn write_queued<const N: usize>(&mut self) -> (usize, io::Result<usize>) {
        let mut slices = [IoSlice::new(&[]); N];
        let mut count = 0;
        let mut offered = 0;
        for (slot, piece) in slices.iter_mut().zip(self.output.iter()) {
            *slot = IoSlice::new(piece);
            count += 1;
            offered += piece.len();
        }
        (offered, self.transport.write_vectored(&slices[..count]))
    }

    /// Writes what the TLS session holds besides the queue (handshake, alerts, close_notify,
    /// and records the queue was encrypted into).
    fn flush_transport(&mut self, syscalls: &Syscalls) -> io::Result<()> {
        if self.writable && self.transport.wants_write() {
            syscalls.write();
            if !self.transport.flush_pending()? {
                self.writable = false;
            }
        }
        Ok(())
    }

    fn consume(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let front = self.output.front_mut().expect("written bytes were queued");
            if front.len() <= n {
                n -= front.len();
                self.output.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// The write side is neither shut nor abandoned.
    pub(crate) fn write_open(&self) -> bool {
        !self.write_shut
    }

    /// Gives up the write side after a write failed: what is queued, and what would be, is
    /// dropped, while what the peer sent before failing can still be read.
    pub(crate) fn abandon_output(&mut self) {
        self.write_shut = true;
        self.queued = 0;
        self.output.clear();
    }

    /// Sends FIN once what is queued now (and before the next flush) has left.
    pub(crate) fn finish_after_flush(&mut self) {
        self.fin_pending = true;
    }

    /// Sends FIN after the queue (call once the queue is empty); over TLS, close_notify first
    /// if the socket takes it.
    pub(crate) fn shutdown_write(&mut self, syscalls: &Syscalls) {
        if !self.write_shut {
            self.write_shut = true;
            self.transport.close_notify();
            let _ = self.flush_transport(syscalls);
            syscalls.other();
            let _ = self.transport.shutdown_write();
        }
    }

    /// Lets go of the input buffer when nothing is buffered, so idle keep-alive connections hold
    /// no buffer at all. Even an empty one with no spare capacity can be a view that keeps the
    /// whole buffer its last message was split from alive.
    pub(crate) fn release_idle_input(&mut self) {
        if self.input.is_empty() {
            self.input = BytesMut::new();
        }
    }
}

/// Output queues taken from connections gone idle (downstream after a response, upstream back
/// in its pool), handed to the next connection that writes: idle connections hold no queue,
/// and busy ones do not allocate one per message.
#[derive(Default)]
pub(crate) struct SpareOutputs(Vec<VecDeque<Bytes>>);

impl SpareOutputs {
    /// The most queues kept.
    const MAX: usize = 256;

    /// Takes `conn`'s output queue if it is empty and has memory (freeing it when enough are
    /// kept).
    pub(crate) fn take_back(&mut self, conn: &mut Connection) {
        if conn.output.is_empty() && conn.output.capacity() > 0 {
            let queue = std::mem::take(&mut conn.output);
            if self.0.len() < Self::MAX {
                self.0.push(queue);
            }
        }
    }

    /// Gives `conn` a kept queue if it has none with memory.
    pub(crate) fn lend(&mut self, conn: &mut Connection) {
        if conn.output.capacity() == 0
            && let Some(spare) = self.0.pop()
        {
            conn.output = spare;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A connected pair on 127.0.0.1: weir's side wrapped in a `Connection`, and the peer.
    fn pair() -> (Connection, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (ours, _) = listener.accept().expect("accept");
        ours.set_nonblocking(true).expect("nonblocking");
        (Connection::accepted(TcpStream::from_std(ours)), peer)
    }

    #[test]
    fn an_idle_connection_lets_go_of_a_split_input_buffer() {
        let (mut conn, mut peer) = pair();
        peer.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("send");
        conn.readable = true;
        let mut scratch = [0u8; 64];
        let syscalls = Syscalls::default();
        // Blocking until the bytes are there is the test's business, not the connection's.
        while !matches!(conn.fill(&mut scratch, &syscalls), ReadOutcome::Data(_)) {
            conn.readable = true;
        }
        // What the decoder does: the head leaves as its own `Bytes`, the buffer is empty.
        let head = conn.input.split().freeze();
        drop(head);
        assert!(conn.input.is_empty());
        // Empty and without room, but still a view into the buffer the head came from.
        let view = conn.input.as_ptr();
        conn.release_idle_input();
        assert_ne!(
            conn.input.as_ptr(),
            view,
            "the empty view still holds the buffer"
        );
        assert_eq!(conn.input.capacity(), 0);
        peer.write_all(b"x").expect("send");
        conn.readable = true;
        while !matches!(conn.fill(&mut scratch, &syscalls), ReadOutcome::Data(_)) {
            conn.readable = true;
        }
        assert_eq!(&conn.input[..], b"x");
    }

    #[test]
    fn spare_output_queues_move_between_connections_and_are_bounded() {
        let (mut a, mut peer) = pair();
        let (mut b, _peer_b) = pair();
        let syscalls = Syscalls::default();
        a.queue(Bytes::from_static(b"hello"));
        assert!(a.flush(&syscalls, |_, _| {}).expect("flush"));
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).expect("read");
        let mut spares = SpareOutputs::default();
        spares.take_back(&mut a);
        assert_eq!(a.output.capacity(), 0, "an idle connection holds no queue");
        spares.lend(&mut b);
        assert!(
            b.output.capacity() > 0,
            "the next writer gets the kept queue"
        );
        assert!(spares.0.is_empty());
        // Past the bound, an idle connection's queue is freed, not kept.
        spares.0 = (0..SpareOutputs::MAX)
            .map(|_| VecDeque::with_capacity(1))
            .collect();
        spares.take_back(&mut b);
        assert_eq!(b.output.capacity(), 0);
        assert_eq!(spares.0.len(), SpareOutputs::MAX);
    }
}
