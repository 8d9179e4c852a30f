//! The admin listener, on a thread of its own so it never shares a loop with request traffic.
//! It speaks HTTP/1.1 through the same codec as the data plane. Endpoints so far: `GET /ready`
//! (`LIVE`, or 503 `DRAINING`), `GET /server_info` (JSON in Envoy's shape), `GET /` (an index).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
use crate::stats::{self, Syscalls, WorkerStats};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// What the admin endpoints report.
pub(crate) struct AdminInfo {
    pub(crate) node: weir_config::Node,
    pub(crate) concurrency: usize,
    pub(crate) command_line: Vec<String>,
    pub(crate) draining: Arc<AtomicBool>,
    pub(crate) stats: Vec<Arc<WorkerStats>>,
    pub(crate) flows: crate::server::FlowSource,
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
    request: Option<(Bytes, Bytes, Bytes)>,
    close: bool,
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
    let started = crate::worker::clock();
    let syscalls = Syscalls::default();
    let mut scratch = vec![0u8; 16 * 1024];
    let mut conns: Slab<AdminConn> = Slab::new();
    let mut events = Events::with_capacity(64);
    while !stop.load(Ordering::Acquire) {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(error = %e, "admin poll failed");
            return;
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => {
                    while let Ok((mut socket, _)) = listener.accept() {
                        let entry = conns.vacant_entry();
                        if poll
                            .registry()
                            .register(
                                &mut socket,
                                Token(entry.key()),
                                Interest::READABLE | Interest::WRITABLE,
                            )
                            .is_ok()
                        {
                            entry.insert(AdminConn {
                                conn: Connection::new(socket, true),
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
                    c.conn.on_ready(event);
                    if !serve(c, &info, started, &syscalls, &mut scratch) {
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
    started: Instant,
    syscalls: &Syscalls,
    scratch: &mut [u8],
) -> bool {
    loop {
        match c.decoder.decode(&mut c.conn.input) {
            Ok(Some(RequestEvent::Head(req))) => {
                c.close |= !req.keep_alive;
                c.request = Some((
                    req.head.method.clone(),
                    Bytes::copy_from_slice(req.head.path()),
                    Bytes::copy_from_slice(req.head.query().unwrap_or_default()),
                ));
                continue;
            }
            Ok(Some(RequestEvent::Data(_))) => continue,
            Ok(Some(RequestEvent::End)) => {
                let (method, path, query) = c.request.take().unwrap_or_default();
                let (status, content_type, body) = respond(&method, &path, &query, info, started);
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
            }
        }
        if c.close || !c.conn.can_read() {
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

fn respond(
    method: &[u8],
    path: &[u8],
    query: &[u8],
    info: &AdminInfo,
    started: Instant,
) -> (u16, &'static str, Bytes) {
    let draining = info.draining.load(Ordering::Acquire);
    let state = if draining { "DRAINING" } else { "LIVE" };
    let get = method == b"GET" || method == b"HEAD";
    match path {
        b"/ready" | b"/server_info" | b"/" | b"/flows" | b"/flows/view" if !get => (
            405,
            "text/plain",
            Bytes::from_static(b"method not allowed\n"),
        ),
        b"/ready" => (
            if draining { 503 } else { 200 },
            "text/plain",
            Bytes::from(format!("{state}\n")),
        ),
        b"/server_info" => {
            let uptime = crate::worker::clock()
                .saturating_duration_since(started)
                .as_secs();
            let sum = |pick: fn(&WorkerStats) -> &std::sync::atomic::AtomicU64| {
                stats::sum(&info.stats, pick)
            };
            let body = serde_json::json!({
                "version": concat!("weir/", env!("CARGO_PKG_VERSION")),
                "state": state,
                "uptime_current_epoch": format!("{uptime}s"),
                "uptime_all_epochs": format!("{uptime}s"),
                "node": { "id": info.node.id, "cluster": info.node.cluster },
                "command_line_options": {
                    "concurrency": info.concurrency,
                    "argv": info.command_line,
                },
                "stats": {
                    "downstream_cx_total": sum(|s| &s.downstream_cx_total),
                    "downstream_rq_total": sum(|s| &s.downstream_rq_total),
                    "upstream_cx_total": sum(|s| &s.upstream_cx_total),
                    "upstream_rq_total": sum(|s| &s.upstream_rq_total),
                },
            });
            (200, "application/json", Bytes::from(format!("{body:#}\n")))
        }
        b"/flows" => flows(query, info),
        b"/flows/view" => (
            200,
            "text/html; charset=utf-8",
            Bytes::from_static(weir_flow::render::view_html().as_bytes()),
        ),
        b"/" => (200, "text/plain", Bytes::from_static(INDEX.as_bytes())),
        _ => (404, "text/plain", Bytes::from_static(b"not found\n")),
    }
}

const INDEX: &str = "weir admin
  GET /ready         LIVE when serving, 503 DRAINING while draining
  GET /server_info   version, state, uptime, node, options (JSON)
  GET /flows         recent request flows: ?format=text|json|perfetto &limit=N (20)
                     &status=2xx|404|… &min_duration_ms=N &since=NS &until=NS
  GET /flows/view    the flows as a timeline (HTML, works offline)
";

/// `GET /flows`: recent flows, newest first, filtered and rendered.
fn flows(query: &[u8], info: &AdminInfo) -> (u16, &'static str, Bytes) {
    let mut format = "text";
    let mut limit = 20usize;
    let mut status: Option<(u16, bool)> = None;
    let mut min_duration_ns = 0u64;
    let mut since = 0u64;
    let mut until = u64::MAX;
    let query = String::from_utf8_lossy(query);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = |what: &str| {
            let body = format!("bad {what}: `{value}`\n");
            (400, "text/plain", Bytes::from(body))
        };
        match key {
            "format" => {
                format = match value {
                    "text" => "text",
                    "json" => "json",
                    "perfetto" => "perfetto",
                    _ => return bad("format (text, json or perfetto)"),
                }
            }
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=10_000).contains(&n) => limit = n,
                _ => return bad("limit (1..=10000)"),
            },
            // `5xx` is a class, `404` an exact status.
            "status" => {
                let class = value.len() == 3 && value.ends_with("xx");
                let digits = if class { &value[..1] } else { value };
                match digits.parse::<u16>() {
                    Ok(n) => status = Some((n, class)),
                    Err(_) => return bad("status (e.g. 5xx or 404)"),
                }
            }
            // Only flows that ended in (since, until], recorder time in ns: `weir flows --follow`.
            "since" => match value.parse::<u64>() {
                Ok(ns) => since = ns,
                Err(_) => return bad("since"),
            },
            "until" => match value.parse::<u64>() {
                Ok(ns) => until = ns,
                Err(_) => return bad("until"),
            },
            "min_duration_ms" => match value.parse::<u64>() {
                Ok(ms) => min_duration_ns = ms.saturating_mul(1_000_000),
                Err(_) => return bad("min_duration_ms"),
            },
            _ => return bad("parameter"),
        }
    }
    // Filters apply before the limit, so ask the workers for enough to filter from.
    let filtered = status.is_some() || min_duration_ns > 0 || since > 0 || until < u64::MAX;
    let wanted = if filtered { limit.max(1024) } else { limit };
    let mut flows = info.flows.flows(wanted);
    flows.retain(|f| {
        let status_ok = match status {
            Some((class, true)) => f.status / 100 == class,
            Some((exact, false)) => f.status == exact,
            None => true,
        };
        status_ok
            && f.end.saturating_sub(f.start) >= min_duration_ns
            && f.end > since
            && f.end <= until
    });
    flows.truncate(limit);
    match format {
        "json" => {
            let mut out = String::new();
            weir_flow::render::json_lines(&flows, &mut out);
            (200, "application/x-ndjson", Bytes::from(out))
        }
        "perfetto" => (
            200,
            "application/json",
            Bytes::from(weir_flow::render::perfetto(&flows)),
        ),
        _ => {
            let mut out = String::new();
            weir_flow::render::text(&flows, &mut out);
            if flows.is_empty() {
                out.push_str(
                    "no flows recorded: enable the recorder (weir.flow_trace or --flow-trace)\n",
                );
            }
            (200, "text/plain; charset=utf-8", Bytes::from(out))
        }
    }
}
