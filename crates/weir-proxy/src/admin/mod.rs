//! The admin listener, on a thread of its own so it never shares a loop with request traffic.
//! It speaks HTTP/1.1 through the same codec as the data plane and answers Envoy's admin
//! endpoints in Envoy's formats ([`ENDPOINTS`] lists them); state changes only by POST.
//!
//! The thread also keeps what Envoy's main thread keeps for stats: histogram values per flush
//! interval (the `interval` column of `/stats`) and the baseline of `/reset_counters`.

mod certs;
mod config_dump;
mod explain;
mod flows;
mod handlers;
mod route_query;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use weir_http1::{
    Headers, Limits, RequestDecoder, RequestEvent, ResponseHead, Version, encode_response_head,
};

use crate::network::connection::{Connection, ReadOutcome};
use crate::server::{Exit, LogControl, ServerState, Workers};
use crate::snapshot::Snapshot;
use crate::stats::histogram::Snapshot as HistogramSnapshot;
use crate::stats::{Stat, Syscalls, Value};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// What the admin endpoints report and act on.
pub(crate) struct AdminInfo {
    pub(crate) command_line: Vec<String>,
    pub(crate) state: Arc<ServerState>,
    pub(crate) workers: Workers,
    pub(crate) exit: mpsc::Sender<Exit>,
    pub(crate) log_control: Option<LogControl>,
    /// The flow recorder's settings, as the workers run them (`--flow-trace` applied).
    pub(crate) flow_trace: weir_config::FlowTrace,
}

impl AdminInfo {
    /// The config in force (a reload may have replaced the one weir started with).
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.state.config.current().snapshot
    }
}

/// An answer: status, content type, body.
pub(crate) type Reply = (u16, &'static str, Bytes);

/// What the admin thread keeps between requests.
#[derive(Default)]
pub(crate) struct Kept {
    /// Each histogram's values in the last complete flush interval.
    intervals: HashMap<String, HistogramSnapshot>,
    /// Each histogram at the last flush.
    flushed: HashMap<String, HistogramSnapshot>,
    /// Counter values at the last `/reset_counters`.
    baseline: HashMap<String, u64>,
}

impl Kept {
    /// Ends a flush interval: what each histogram gained since the last one.
    fn flush(&mut self, stats: &[Stat]) {
        for s in stats {
            if let Value::Histogram(h) = &s.value {
                let before = self.flushed.get(&s.name).cloned().unwrap_or_default();
                self.intervals.insert(s.name.clone(), h.since(&before));
                self.flushed.insert(s.name.clone(), h.clone());
            }
        }
    }
}

impl AdminInfo {
    /// Every stat now, counters measured from the last `/reset_counters`.
    pub(crate) fn stats(&self, kept: &Kept) -> Vec<Stat> {
        let pages = self.state.stats.read();
        let mut stats = crate::stats::collect(
            &pages.layout,
            &pages.workers,
            &crate::server::server_gauges(&self.state),
        );
        for s in &mut stats {
            if let (Value::Counter(v), Some(base)) = (&mut s.value, kept.baseline.get(&s.name)) {
                *v = v.saturating_sub(*base);
            }
        }
        stats
    }
}

/// The running admin thread.
pub(crate) struct AdminHandle {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: JoinHandle<()>,
}

struct AdminConn {
    conn: Connection,
    decoder: RequestDecoder,
    request: Option<Pending>,
    close: bool,
}

/// The most of a form body (`POST /runtime_modify` takes its parameters there too) that is read.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A request whose head has arrived.
#[derive(Default)]
struct Pending {
    method: Bytes,
    path: Bytes,
    query: Bytes,
    /// `content-type: application/x-www-form-urlencoded`: the body is kept as parameters.
    form: bool,
    body: Vec<u8>,
    /// The form body was longer than [`MAX_FORM_BYTES`].
    too_long: bool,
}

impl AdminHandle {
    pub(crate) fn start(address: SocketAddr, info: AdminInfo) -> io::Result<AdminHandle> {
        let mut listener = TcpListener::bind(address)
            .map_err(|e| io::Error::new(e.kind(), format!("admin listener on {address}: {e}")))?;
        let address = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        tracing::info!(%address, "admin listening");
        let thread = std::thread::Builder::new()
            .name("weir:admin".into())
            .spawn(move || run(poll, listener, info, &thread_stop))?;
        Ok(AdminHandle {
            address,
            stop,
            waker,
            thread,
        })
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        let _ = self.thread.join();
    }
}

fn run(mut poll: Poll, listener: TcpListener, info: AdminInfo, stop: &AtomicBool) {
    let syscalls = Syscalls::default();
    let mut scratch = vec![0u8; 16 * 1024];
    let mut conns: Slab<AdminConn> = Slab::new();
    let mut events = Events::with_capacity(64);
    let mut kept = Kept::default();
    // Histograms' `interval` values cover one `stats_flush_interval`, as Envoy's do.
    let flush_interval = info.snapshot().bootstrap.stats_flush_interval;
    let mut next_flush = Instant::now() + flush_interval;
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now >= next_flush {
            kept.flush(&info.stats(&kept));
            next_flush = now + flush_interval;
        }
        if let Err(e) = poll.poll(&mut events, Some(next_flush - now)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(error = %e, "admin poll failed");
            return;
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => {
                    while let Ok((socket, _)) = listener.accept() {
                        let entry = conns.vacant_entry();
                        let mut conn = Connection::accepted(socket);
                        if conn.register(poll.registry(), Token(entry.key())).is_ok() {
                            entry.insert(AdminConn {
                                conn,
                                decoder: RequestDecoder::new(Limits::default()),
                                request: None,
                                close: false,
                            });
                        }
                    }
                }
                WAKER => {}
                Token(key) => {
                    let Some(c) = conns.get_mut(key) else {
                        continue;
                    };
                    c.conn.on_ready(crate::event::Readiness::of(event));
                    if !serve(c, &info, &mut kept, &syscalls, &mut scratch) {
                        conns.remove(key);
                    }
                }
            }
        }
    }
}

/// Reads, answers and flushes one admin connection; false when it should close.
fn serve(
    c: &mut AdminConn,
    info: &AdminInfo,
    kept: &mut Kept,
    syscalls: &Syscalls,
    scratch: &mut [u8],
) -> bool {
    loop {
        match c.decoder.decode(&mut c.conn.input) {
            Ok(Some(RequestEvent::Head(req))) => {
                c.close |= !req.keep_alive;
                let form =
                    req.head.headers.get("content-type").is_some_and(|t| {
                        t.eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
                    });
                c.request = Some(Pending {
                    method: req.head.method.clone(),
                    path: Bytes::copy_from_slice(req.head.path()),
                    query: Bytes::copy_from_slice(req.head.query().unwrap_or_default()),
                    form,
                    ..Pending::default()
                });
                continue;
            }
            Ok(Some(RequestEvent::Data(data))) => {
                if let Some(p) = c.request.as_mut().filter(|p| p.form) {
                    if p.body.len() + data.len() > MAX_FORM_BYTES {
                        p.too_long = true;
                    } else {
                        p.body.extend_from_slice(&data);
                    }
                }
                continue;
            }
            Ok(Some(RequestEvent::End)) => {
                let p = c.request.take().unwrap_or_default();
                let query = String::from_utf8_lossy(&p.query);
                let form = String::from_utf8_lossy(&p.body);
                let (status, content_type, body) = if p.too_long {
                    handlers::form_too_long(MAX_FORM_BYTES)
                } else {
                    handlers::respond(&p.method, &p.path, &query, &form, info, kept)
                };
                let method = p.method;
                let mut headers = Headers::new();
                headers.append("content-type", content_type);
                headers.append("content-length", body.len().to_string());
                if c.close {
                    headers.append("connection", "close");
                }
                let head = ResponseHead {
                    version: Version::Http11,
                    status,
                    reason: Bytes::new(),
                    headers,
                };
                let mut encoded = Vec::new();
                encode_response_head(&head, false, &mut encoded);
                c.conn.queue(encoded);
                // A HEAD response is the head alone (content-length still says what GET
                // would send); a body after it would be read as the next response.
                if method.as_ref() != b"HEAD" {
                    c.conn.queue(body);
                }
                // After a request that closes the connection, pipelined ones are not run.
                if c.close {
                    break;
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                c.conn.queue(format!(
                    "HTTP/1.1 {} {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    e.status(),
                    weir_http1::reason_phrase(e.status())
                ));
                c.close = true;
                c.request = None;
            }
        }
        // A request that closes the connection is still read to its end (its body may be a
        // form): closing with bytes unread would reset the connection before the answer.
        if (c.close && c.request.is_none()) || !c.conn.can_read() {
            break;
        }
        match c.conn.fill(scratch, syscalls) {
            ReadOutcome::Data(_) => {}
            ReadOutcome::Drained => break,
            // A FIN is a half-close: the answers already queued still go out (the flush
            // below closes once they have, since `read_eof` is set).
            ReadOutcome::Eof => break,
            ReadOutcome::Failed(_) => return false,
        }
    }
    match c.conn.flush(syscalls, |_, _| {}) {
        Ok(true) => !c.close && !c.conn.read_eof(),
        Ok(false) => true,
        Err(_) => false,
    }
}
