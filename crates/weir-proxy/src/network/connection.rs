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
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};

use bytes::{Buf, Bytes, BytesMut};
use mio::event::Event;
use mio::net::TcpStream;

use crate::stats::Syscalls;

/// The most slices handed to one `writev` (well under IOV_MAX).
const MAX_IOVECS: usize = 64;

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
    socket: TcpStream,
    fd: RawFd,
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
    /// Bytes written over the connection's life (flush progress and byte counters read it).
    pub(crate) bytes_out: u64,
}

impl Connection {
    /// Wraps a socket. `writable`: whether it may be written before the first writable edge
    /// (true for accepted sockets, false for connects in progress).
    pub(crate) fn new(socket: TcpStream, writable: bool) -> Self {
        let fd = socket.as_raw_fd();
        Connection {
            socket,
            fd,
            input: BytesMut::new(),
            output: VecDeque::new(),
            queued: 0,
            readable: false,
            writable,
            hup_seen: false,
            read_eof: false,
            write_shut: false,
            bytes_out: 0,
        }
    }

    pub(crate) fn socket(&self) -> &TcpStream {
        &self.socket
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    /// Records what an event says. Errors and hang-ups count as both readable and writable, so
    /// the next read or write reports them.
    pub(crate) fn on_ready(&mut self, event: &Event) {
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.readable = true;
        }
        if event.is_read_closed() || event.is_error() {
            self.hup_seen = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
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
            match self.socket.read(scratch) {
                Ok(0) => {
                    self.readable = false;
                    self.read_eof = true;
                    return ReadOutcome::Eof;
                }
                Ok(n) => {
                    // A short read drained the socket, and any later arrival raises a new
                    // edge; but a FIN that came with the data raised its edge already.
                    if n < scratch.len() && !self.hup_seen {
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

    /// Appends bytes to the write queue (nothing is written until `flush`).
    pub(crate) fn queue(&mut self, bytes: impl Into<Bytes>) {
        let bytes = bytes.into();
        if !bytes.is_empty() {
            self.queued += bytes.len();
            self.output.push_back(bytes);
        }
    }

    /// Bytes queued and not yet taken by the kernel.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Writes as much of the queue as the kernel takes, in one `writev` per 64 pieces, telling
    /// `wrote` what each `writev` was offered and returned. Ok(true) when the queue is empty.
    pub(crate) fn flush(
        &mut self,
        syscalls: &Syscalls,
        mut wrote: impl FnMut(usize, &io::Result<usize>),
    ) -> io::Result<bool> {
        while self.queued > 0 && self.writable {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            let mut offered = 0;
            for (slot, piece) in slices.iter_mut().zip(self.output.iter()) {
                *slot = IoSlice::new(piece);
                count += 1;
                offered += piece.len();
            }
            syscalls.write();
            let result = self.socket.write_vectored(&slices[..count]);
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
        Ok(self.queued == 0)
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

    /// Sends FIN after the queue (call once the queue is empty).
    pub(crate) fn shutdown_write(&mut self, syscalls: &Syscalls) {
        if !self.write_shut {
            self.write_shut = true;
            syscalls.other();
            let _ = self.socket.shutdown(Shutdown::Write);
        }
    }

    /// Takes the output queue's memory when nothing is queued (to keep for another connection).
    pub(crate) fn take_idle_output(&mut self) -> Option<VecDeque<Bytes>> {
        (self.output.is_empty() && self.output.capacity() > 0)
            .then(|| std::mem::take(&mut self.output))
    }

    /// Gives the connection an (empty) output queue with memory, if it has none.
    pub(crate) fn give_output(&mut self, spare: VecDeque<Bytes>) -> Option<VecDeque<Bytes>> {
        if self.output.capacity() == 0 && spare.is_empty() {
            self.output = spare;
            None
        } else {
            Some(spare)
        }
    }

    /// Returns the input buffer's memory when nothing is buffered (idle keep-alive connections
    /// then hold no buffer at all).
    pub(crate) fn release_idle_input(&mut self) {
        if self.input.is_empty() && self.input.capacity() > 0 {
            self.input = BytesMut::new();
        }
    }
}
