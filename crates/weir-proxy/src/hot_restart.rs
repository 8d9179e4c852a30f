//! Handing a running weir's listening sockets to a new weir binary (`--hot-restart PATH`),
//! as Envoy's hot restart does: no connection is refused in between, because the sockets
//! themselves move (their accept queues with them), passed over a Unix socket.
//!
//! ```text
//!   new weir                         old weir (listening on PATH)
//!   loads and checks its config
//!   ── SOCKETS ──────────────────►   each listener's name, address and socket count (a
//!   ◄─ JSON line, then the fds ──    JSON line), then its sockets (SCM_RIGHTS, in chunks)
//!   builds its listeners on them
//!   ── ADMIN ────────────────────►   stops its admin listener
//!   ◄──────────── OK ────────────
//!   binds the admin address, starts its workers (accepting)
//!   ── STATS ────────────────────►   its counters, by name (they go on in the new weir)
//!   ◄──────── JSON line ─────────
//!   ── DRAIN ────────────────────►   removes PATH; drains as on SIGTERM (its listeners stop,
//!   ◄──────────── OK ────────────    each connection closes after its next response), exits
//!   listens on PATH for the next
//! ```
//!
//! A listener of the new config takes the sockets of the old one with its name and address
//! (they must number `--concurrency`); any other binds anew. Counters go on from the old
//! weir's, as they stood when the new one asked (not what it counts while it drains).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};

use crate::server::Exit;

/// How long one side waits for the other's answer.
const ANSWER: Duration = Duration::from_secs(10);
/// Most sockets one hand-over carries (listeners × workers).
const MAX_SOCKETS: usize = 4096;
/// Sockets per message: the kernel takes at most 253 (`SCM_MAX_FD`).
const CHUNK: usize = 200;

/// One listener's sockets, as the old weir hands them over.
#[derive(Debug)]
pub(crate) struct Sockets {
    pub(crate) name: String,
    pub(crate) address: SocketAddr,
    /// One per worker, in worker order.
    pub(crate) fds: Vec<OwnedFd>,
}

/// The weir this one takes over from.
#[derive(Debug)]
pub(crate) struct Predecessor {
    stream: UnixStream,
    /// Its listeners' sockets not taken yet.
    pub(crate) listeners: Vec<Sockets>,
}

/// Connects to the weir listening on `path` and takes its listening sockets; `None` when no
/// weir listens there (a file left by one that is gone is removed).
pub(crate) fn take_over(path: &Path) -> io::Result<Option<Predecessor>> {
    let stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            let _ = std::fs::remove_file(path);
            return Ok(None);
        }
        Err(e) => return Err(context(path, e)),
    };
    stream.set_read_timeout(Some(ANSWER))?;
    stream.set_write_timeout(Some(ANSWER))?;
    (&stream).write_all(b"SOCKETS\n")?;
    let (entries, mut fds) = receive(&stream)?;
    let mut listeners = Vec::new();
    for entry in entries {
        let rest = fds.split_off(entry.sockets.min(fds.len()));
        listeners.push(Sockets {
            name: entry.name,
            address: entry.address,
            fds: std::mem::replace(&mut fds, rest),
        });
    }
    tracing::info!(path = %path.display(), listeners = listeners.len(), "hot restart: took the running weir's sockets");
    Ok(Some(Predecessor { stream, listeners }))
}

impl Predecessor {
    /// The sockets of the old weir's listener `name` on `address`, if it had that one.
    pub(crate) fn take(&mut self, name: &str, address: SocketAddr) -> Option<Vec<OwnedFd>> {
        let at = (self.listeners.iter()).position(|l| l.name == name && l.address == address)?;
        Some(self.listeners.swap_remove(at).fds)
    }

    /// Asks the old weir to stop its admin listener (this one binds the address next).
    pub(crate) fn release_admin(&mut self) -> io::Result<()> {
        self.ok("ADMIN")
    }

    /// The old weir's counters now, by name.
    pub(crate) fn counters(&mut self) -> io::Result<HashMap<String, u64>> {
        let line = self.ask("STATS")?;
        serde_json::from_str(&line).map_err(io::Error::other)
    }

    /// Tells the old weir to drain and exit: this one accepts on the sockets now.
    pub(crate) fn drain(mut self) -> io::Result<()> {
        self.ok("DRAIN")
    }

    /// Sends request `what`; its answer is one line.
    fn ask(&mut self, what: &str) -> io::Result<String> {
        (&self.stream).write_all(format!("{what}\n").as_bytes())?;
        let mut answer = String::new();
        BufReader::new(&self.stream).read_line(&mut answer)?;
        Ok(answer)
    }

    /// Sends request `what`, which is answered `OK`.
    fn ok(&mut self, what: &str) -> io::Result<()> {
        match self.ask(what)?.trim() {
            "OK" => Ok(()),
            other => Err(io::Error::other(format!(
                "hot restart: {what} answered {other:?}"
            ))),
        }
    }
}

/// One listener in the hand-over's header.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Entry {
    name: String,
    address: SocketAddr,
    sockets: usize,
}

/// Reads the header line and every socket it announces. Everything is read with `recvmsg`
/// (a plain read would drop the sockets that came with the bytes it read): the header's
/// bytes, then one marker byte per chunk of sockets.
fn receive(stream: &UnixStream) -> io::Result<(Vec<Entry>, Vec<OwnedFd>)> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let (mut data, mut fds) = (Vec::new(), Vec::new());
    let mut header: Option<(Vec<Entry>, usize)> = None;
    let mut buf = [0u8; 4096];
    loop {
        if let Some((entries, total)) = header.take() {
            if fds.len() >= total {
                return Ok((entries, fds));
            }
            header = Some((entries, total));
        }
        let mut ancillary = RecvAncillaryBuffer::new(&mut space);
        let got = recvmsg(
            stream,
            &mut [IoSliceMut::new(&mut buf)],
            &mut ancillary,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        for message in ancillary.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if got.bytes == 0 {
            return Err(io::Error::other("hot restart: the running weir hung up"));
        }
        data.extend_from_slice(&buf[..got.bytes]);
        if header.is_none()
            && let Some(end) = data.iter().position(|&b| b == b'\n')
        {
            let entries: Vec<Entry> =
                serde_json::from_slice(&data[..end]).map_err(io::Error::other)?;
            let total = entries.iter().map(|e| e.sockets).sum::<usize>();
            if total > MAX_SOCKETS {
                return Err(io::Error::other("hot restart: too many sockets"));
            }
            header = Some((entries, total));
        }
    }
}

fn context(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("hot restart on {}: {e}", path.display()))
}

/// The old side: listens on `path` for the weir that takes over.
pub(crate) struct Handover {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// What the hand-over thread reaches of the server.
pub(crate) struct Reach {
    /// Its counters now, by name.
    pub(crate) counters: Box<dyn Fn() -> HashMap<String, u64> + Send>,
    /// The listeners' sockets (duplicates of the workers'), kept current by reloads.
    pub(crate) sockets: Arc<Mutex<Vec<Sockets>>>,
    /// Stops the admin listener.
    pub(crate) stop_admin: Box<dyn FnMut() + Send>,
    /// Where the thread says the process should drain.
    pub(crate) exit: Sender<Exit>,
}

impl Handover {
    /// Listens on `path` (a file left there by a weir that is gone is replaced).
    pub(crate) fn start(path: PathBuf, reach: Reach) -> io::Result<Handover> {
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|e| context(&path, e))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("weir:hot-restart".into())
            .spawn(move || serve(&listener, &path, reach, &stopping))?;
        Ok(Handover {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops listening (weir exits).
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves successors, one at a time, until one takes over or weir stops.
fn serve(listener: &UnixListener, path: &Path, mut reach: Reach, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "hot restart: accept failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        match answer(&stream, path, &mut reach) {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "hot restart: a successor gave up"),
        }
    }
    let _ = std::fs::remove_file(path);
}

/// Answers one successor; true once it has taken over (this weir drains).
fn answer(stream: &UnixStream, path: &Path, reach: &mut Reach) -> io::Result<bool> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(ANSWER))?;
    stream.set_write_timeout(Some(ANSWER))?;
    let mut lines = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            return Ok(false);
        }
        match line.trim() {
            "SOCKETS" => send_sockets(
                stream,
                &reach.sockets.lock().unwrap_or_else(|e| e.into_inner()),
            )?,
            "STATS" => {
                let mut line = serde_json::to_vec(&(reach.counters)()).map_err(io::Error::other)?;
                line.push(b'\n');
                (&*stream).write_all(&line)?;
            }
            "ADMIN" => {
                (reach.stop_admin)();
                (&*stream).write_all(b"OK\n")?;
            }
            "DRAIN" => {
                let _ = std::fs::remove_file(path);
                (&*stream).write_all(b"OK\n")?;
                tracing::info!("hot restart: a new weir took over; draining");
                let _ = reach.exit.send(Exit::HandedOver);
                return Ok(true);
            }
            other => {
                return Err(io::Error::other(format!("an unknown request {other:?}")));
            }
        }
    }
}

/// The header (a JSON line: each listener's name, address and socket count), then every
/// socket, [`CHUNK`] per message, each message one marker byte.
fn send_sockets(stream: &UnixStream, sockets: &[Sockets]) -> io::Result<()> {
    let entries: Vec<Entry> = (sockets.iter())
        .map(|s| Entry {
            name: s.name.clone(),
            address: s.address,
            sockets: s.fds.len(),
        })
        .collect();
    let mut header = serde_json::to_vec(&entries).map_err(io::Error::other)?;
    header.push(b'\n');
    let fds: Vec<_> = (sockets.iter())
        .flat_map(|s| &s.fds)
        .map(|fd| fd.as_fd())
        .collect();
    if fds.len() > MAX_SOCKETS {
        return Err(io::Error::other(
            "hot restart: too many sockets to hand over",
        ));
    }
    (&*stream).write_all(&header)?;
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(CHUNK))];
    for chunk in fds.chunks(CHUNK) {
        let mut ancillary = SendAncillaryBuffer::new(&mut space);
        if !ancillary.push(SendAncillaryMessage::ScmRights(chunk)) {
            return Err(io::Error::other("hot restart: the sockets do not fit"));
        }
        let sent = sendmsg(
            stream,
            &[IoSlice::new(b"+")],
            &mut ancillary,
            SendFlags::empty(),
        )?;
        if sent != 1 {
            return Err(io::Error::other(
                "hot restart: a chunk of sockets was not sent",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_sockets_than_one_message_carries_arrive_in_order() {
        let listeners: Vec<std::net::TcpListener> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        // 3 listeners × 150 sockets: more than the kernel passes in one message.
        let sent: Vec<Sockets> = (listeners.iter().enumerate())
            .map(|(i, l)| Sockets {
                name: format!("listener {i}; with \"quotes\""),
                address: l.local_addr().expect("address"),
                fds: (0..150)
                    .map(|_| l.as_fd().try_clone_to_owned().expect("dup"))
                    .collect(),
            })
            .collect();
        let (old, new) = UnixStream::pair().expect("pair");
        send_sockets(&old, &sent).expect("sent");
        let (entries, fds) = receive(&new).expect("received");
        assert_eq!(fds.len(), 450);
        for (entry, (s, fd)) in entries.iter().zip(sent.iter().zip(fds.chunks(150))) {
            assert_eq!(
                (&entry.name, entry.address, entry.sockets),
                (&s.name, s.address, 150)
            );
            let socket = std::net::TcpListener::from(fd[149].try_clone().expect("dup"));
            assert_eq!(socket.local_addr().expect("address"), s.address);
        }
    }
}
