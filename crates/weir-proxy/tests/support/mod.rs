//! The harness for weir-proxy's whole-proxy tests: everything runs over real sockets on
//! 127.0.0.1.
//!
//! - [`Config`] writes an Envoy v3 bootstrap in YAML (listener on port 0, clusters pointing at
//!   the test's origins) and [`Proxy`] starts a [`weir_proxy::Server`] from it.
//! - [`Origin`] is an origin server (std::net, a thread per connection) that decodes every
//!   request it receives with weir-http1, records it (raw bytes and parsed head), counts
//!   accepted connections and bytes, and answers as its handler scripts ([`Reply`]): normal
//!   keep-alive responses, or misbehaviour (close, reset, garbage, stall, cut bodies).
//! - [`Client`] is a raw client: it writes bytes as given and decodes responses with
//!   [`weir_http1::ResponseDecoder`], keeping each response's raw bytes.
//! - [`curl`] runs /usr/bin/curl for the cases a real client should prove.
//!
//! Every blocking read has a timeout ([`IO_TIMEOUT`]) and every wait loop is bounded, so a
//! broken proxy fails a test instead of hanging it.

// Each test file compiles this module into its own crate and uses a different part of it.
#![allow(dead_code)]
// `pub` items here are the harness's API for the test files; the module itself is private to
// each test crate, so they are never reachable from outside (and need not be).
#![allow(unreachable_pub)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use weir_http1::{
    BodyKind, BytesMut, Limits, RequestDecoder, RequestEvent, ResponseDecoder, ResponseEvent,
    Version,
};
use weir_proxy::stats::Value;
use weir_proxy::{Options, Server};

/// The longest any socket read in the tests waits.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Sleeps for `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    thread::sleep(Duration::from_millis(ms));
}

/// Polls `cond` every 10 ms for at most `ms` milliseconds; true when it held.
/// An address nothing answers: a socket bound but not listening, so connects are refused
/// and, while the returned socket lives, no other test's listener can take the port (one
/// bound and dropped could be handed to a parallel test's origin).
pub fn refusing_address() -> (socket2::Socket, std::net::SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("address");
    socket.bind(&any.into()).expect("bind");
    let addr = socket
        .local_addr()
        .expect("local address")
        .as_socket()
        .expect("an IP address");
    (socket, addr)
}

pub fn eventually(ms: u64, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..ms.div_ceil(10).max(1) {
        if cond() {
            return true;
        }
        sleep_ms(10);
    }
    cond()
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Builds a bootstrap: one listener on 127.0.0.1:0 with an HTTP connection manager, the
/// clusters added, and the route configuration given (or a catch-all to one cluster).
#[derive(Default, Clone)]
pub struct Config {
    hcm: Vec<String>,
    route_config: Option<String>,
    clusters: Vec<String>,
}

impl Config {
    pub fn new() -> Self {
        Config::default()
    }

    /// A config whose every request goes to cluster `backend` with these endpoints.
    pub fn forward_all(endpoints: &[SocketAddr]) -> Self {
        Config::new()
            .cluster("backend", endpoints)
            .route_all_to("backend")
    }

    /// A cluster of equally weighted endpoints, connect timeout 1 s.
    pub fn cluster(self, name: &str, endpoints: &[SocketAddr]) -> Self {
        let weighted: Vec<(SocketAddr, u32)> = endpoints.iter().map(|&a| (a, 1)).collect();
        self.cluster_with(name, &weighted, "connect_timeout: 1s")
    }

    /// A cluster with weighted endpoints and extra cluster-level YAML (e.g. `connect_timeout`).
    pub fn cluster_with(
        mut self,
        name: &str,
        endpoints: &[(SocketAddr, u32)],
        extra: &str,
    ) -> Self {
        let mut yaml = format!("- name: {name}\n");
        yaml += &indent(extra, 2);
        yaml += &format!(
            "  load_assignment:\n    cluster_name: {name}\n    endpoints:\n      - lb_endpoints:\n"
        );
        for (address, weight) in endpoints {
            yaml += &format!(
                "          - endpoint:\n              address:\n                socket_address: {{ address: {}, port_value: {} }}\n            load_balancing_weight: {weight}\n",
                address.ip(),
                address.port()
            );
        }
        self.clusters.push(yaml);
        self
    }

    /// HTTP/1.0 requests are served (`http_protocol_options.accept_http_10`; without it they
    /// are answered 426, as in Envoy).
    pub fn accept_http10(self) -> Self {
        self.hcm("http_protocol_options: { accept_http_10: true }")
    }

    /// Extra YAML at the HTTP connection manager's level (e.g. `use_remote_address: true`).
    pub fn hcm(mut self, yaml: &str) -> Self {
        self.hcm.push(yaml.to_owned());
        self
    }

    /// The body of `route_config` (its `virtual_hosts`, header mutations…), any indentation.
    pub fn routes(mut self, yaml: &str) -> Self {
        self.route_config = Some(yaml.to_owned());
        self
    }

    /// One virtual host `*` whose only route sends everything to `cluster`.
    pub fn route_all_to(self, cluster: &str) -> Self {
        self.routes(&format!(
            "virtual_hosts:\n  - name: all\n    domains: [\"*\"]\n    routes:\n      - match: {{ prefix: / }}\n        route: {{ cluster: {cluster} }}\n"
        ))
    }

    /// One virtual host `*` whose only route sends everything to `cluster` with a route
    /// timeout.
    pub fn route_all_with_timeout(self, cluster: &str, timeout: &str) -> Self {
        self.routes(&format!(
            "virtual_hosts:\n  - name: all\n    domains: [\"*\"]\n    routes:\n      - match: {{ prefix: / }}\n        route: {{ cluster: {cluster}, timeout: {timeout} }}\n"
        ))
    }

    /// The bootstrap as YAML.
    pub fn yaml(&self) -> String {
        let mut y = String::from(
            "node: { id: weir-proxy-tests, cluster: tests }\n\
             static_resources:\n\
             \x20 listeners:\n\
             \x20   - name: test\n\
             \x20     address:\n\
             \x20       socket_address: { address: 127.0.0.1, port_value: 0 }\n\
             \x20     filter_chains:\n\
             \x20       - filters:\n\
             \x20           - name: envoy.filters.network.http_connection_manager\n\
             \x20             typed_config:\n\
             \x20               \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n\
             \x20               stat_prefix: test\n",
        );
        for h in &self.hcm {
            y += &indent(h, 16);
        }
        y += "                route_config:\n                  name: test\n";
        y += &indent(
            self.route_config
                .as_deref()
                .expect("Config::routes or route_all_to must be called"),
            18,
        );
        y += "                http_filters:\n\
              \x20                 - name: envoy.filters.http.router\n\
              \x20                   typed_config:\n\
              \x20                     \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n";
        if !self.clusters.is_empty() {
            y += "  clusters:\n";
            for c in &self.clusters {
                y += &indent(c, 4);
            }
        }
        y
    }

    /// Starts a proxy running this config on one worker.
    pub fn start(&self) -> Proxy {
        self.start_with(1)
    }

    /// Starts a proxy running this config on `concurrency` workers.
    pub fn start_with(&self, concurrency: usize) -> Proxy {
        Proxy::start(&self.yaml(), concurrency, Duration::from_secs(5))
    }

    /// Starts a proxy running this config on one worker, with the listener's
    /// `per_connection_buffer_limit_bytes` set to `limit`.
    pub fn start_with_listener_limit(&self, limit: u64) -> Proxy {
        let yaml = self.yaml().replacen(
            "      address:\n",
            &format!("      per_connection_buffer_limit_bytes: {limit}\n      address:\n"),
            1,
        );
        Proxy::start(&yaml, 1, Duration::from_secs(5))
    }

    /// Starts a proxy running this config on one worker with the flow recorder in `mode`.
    pub fn start_traced(&self, mode: weir_config::FlowTraceMode) -> Proxy {
        Proxy::start_traced(&self.yaml(), 1, Duration::from_secs(5), Some(mode))
    }
}

/// Removes the common leading whitespace of `text`'s lines and indents them by `n` spaces.
fn indent(text: &str, n: usize) -> String {
    let common = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let pad = " ".repeat(n);
    let mut out = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        out += &pad;
        out += &line[common..];
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------------------------

/// A running weir; stopped when dropped.
pub struct Proxy {
    server: Option<Server>,
    /// The listener's bound address.
    pub addr: SocketAddr,
}

impl Proxy {
    /// Parses `yaml` and starts a server with `concurrency` workers.
    pub fn start(yaml: &str, concurrency: usize, drain_time: Duration) -> Proxy {
        Proxy::start_traced(yaml, concurrency, drain_time, None)
    }

    /// Like [`start`](Self::start), with the flow recorder's mode set (`Options.flow_trace`).
    pub fn start_traced(
        yaml: &str,
        concurrency: usize,
        drain_time: Duration,
        flow_trace: Option<weir_config::FlowTraceMode>,
    ) -> Proxy {
        let bootstrap = match weir_config::parse(yaml) {
            Ok(b) => b,
            Err(e) => panic!("config rejected:\n{e}\n--- config ---\n{yaml}"),
        };
        let server = Server::start(
            bootstrap,
            Options {
                concurrency,
                drain_time,
                command_line: vec!["weir-proxy-tests".into()],
                flow_trace,
                ..Options::default()
            },
        )
        .expect("server starts");
        let addr = server.listener_addresses()[0].1;
        assert_ne!(addr.port(), 0, "port 0 is replaced by the bound port");
        Proxy {
            server: Some(server),
            addr,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// Takes the server out (to drain and wait on it); the proxy is then not stopped on drop.
    pub fn take(&mut self) -> Server {
        self.server.take().expect("running")
    }

    /// A stat by its short name, summed over its scopes: `upstream_*` over every
    /// `cluster.<name>.`, `downstream_*` over every `http.<prefix>.`, `syscalls.*` is
    /// `weir.syscalls.*`; `upstream_rq_reused` is requests that went out on a pooled
    /// connection (`upstream_rq_total − upstream_cx_total`). Panics on a name no scope has.
    pub fn stat(&self, name: &str) -> u64 {
        if name == "upstream_rq_reused" {
            return self.stat("upstream_rq_total") - self.stat("upstream_cx_total");
        }
        let stats = self.server().stats();
        let wanted = |full: &str| {
            if let Some(rest) = name.strip_prefix("syscalls.") {
                full == format!("weir.syscalls.{rest}")
            } else {
                let scope = if name.starts_with("upstream_") {
                    "cluster."
                } else {
                    "http."
                };
                full.starts_with(scope) && full.ends_with(&format!(".{name}"))
            }
        };
        let found: Vec<u64> = stats
            .iter()
            .filter(|s| wanted(&s.name))
            .map(|s| match s.value {
                Value::Counter(v) => v,
                Value::Gauge(v) => u64::try_from(v).expect("gauge ≥ 0"),
                Value::Histogram(_) => panic!("{} is a histogram", s.name),
            })
            .collect();
        assert!(!found.is_empty(), "no stat named {name}");
        found.iter().sum()
    }

    /// Responses by class: `class(5)` is the number of 5xx responses.
    pub fn class(&self, class: usize) -> u64 {
        self.stat(&format!("downstream_rq_{class}xx"))
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Origins
// ---------------------------------------------------------------------------------------------

/// A request as an origin received it.
#[derive(Debug, Clone)]
pub struct Req {
    /// Which accepted connection (0-based, in accept order) carried it.
    pub conn: usize,
    /// Its index among the requests on that connection.
    pub index_on_conn: usize,
    pub method: String,
    pub target: String,
    pub version: Version,
    pub headers: Vec<(String, String)>,
    /// The decoded body (chunk payloads for chunked bodies).
    pub body: Vec<u8>,
    /// How the body was framed on the wire.
    pub framing: BodyKind,
    /// The request's bytes exactly as received (head, framing and body).
    pub raw: Vec<u8>,
}

impl Req {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// All values of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all(&self.headers, name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// What an origin does after receiving a complete request.
pub enum Reply {
    /// Writes the bytes and waits for the next request on the connection.
    Send(Vec<u8>),
    /// Writes the bytes, then closes (FIN).
    SendClose(Vec<u8>),
    /// Writes the bytes, waits, then closes (FIN): a keep-alive connection that the origin
    /// closes while it idles in the proxy's pool.
    SendCloseAfter(Vec<u8>, Duration),
    /// Writes the bytes, then resets (SO_LINGER 0 and close).
    SendReset(Vec<u8>),
    /// Closes without answering (FIN).
    Close,
    /// Resets without answering (SO_LINGER 0 and close).
    Reset,
    /// Waits, then does the inner reply.
    After(Duration, Box<Reply>),
    /// Never answers: waits (at most [`IO_TIMEOUT`]) for the proxy to close the connection.
    Stall,
    /// Writes `head`, then `len` body bytes of [`pattern`] in 64 KiB writes, and waits for the
    /// next request.
    Stream { head: Vec<u8>, len: usize },
    /// Writes the pieces one by one with `gap` between them, then waits for the next request.
    Trickle { pieces: Vec<Vec<u8>>, gap: Duration },
}

impl Reply {
    pub fn after_ms(ms: u64, reply: Reply) -> Reply {
        Reply::After(Duration::from_millis(ms), Box::new(reply))
    }
}

/// Decides the reply to a request.
pub type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

struct OriginState {
    accepted: AtomicUsize,
    bytes_received: AtomicUsize,
    bytes_sent: AtomicUsize,
    /// Each accepted connection's peer address, in accept order.
    peers: Mutex<Vec<SocketAddr>>,
    requests: Mutex<Vec<Req>>,
    stop: AtomicBool,
    handler: Box<Handler>,
}

/// An origin server on 127.0.0.1; stops accepting when dropped.
pub struct Origin {
    addr: SocketAddr,
    state: Arc<OriginState>,
}

impl Origin {
    /// An origin that answers every request with `handler`'s reply.
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("origin binds");
        let addr = listener.local_addr().expect("origin address");
        let state = Arc::new(OriginState {
            accepted: AtomicUsize::new(0),
            bytes_received: AtomicUsize::new(0),
            bytes_sent: AtomicUsize::new(0),
            peers: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            handler: Box::new(handler),
        });
        let accept_state = state.clone();
        thread::Builder::new()
            .name(format!("origin-{}", addr.port()))
            .spawn(move || {
                for conn in listener.incoming() {
                    if accept_state.stop.load(SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    if let Ok(peer) = conn.peer_addr() {
                        accept_state.peers.lock().unwrap().push(peer);
                    }
                    let index = accept_state.accepted.fetch_add(1, SeqCst);
                    let state = accept_state.clone();
                    let _ = thread::Builder::new()
                        .name(format!("origin-{}-{index}", addr.port()))
                        .spawn(move || serve(&state, conn, index));
                }
            })
            .expect("origin thread");
        Origin { addr, state }
    }

    /// A keep-alive origin answering `200` with `body` (and `content-length`).
    pub fn ok(body: &str) -> Origin {
        let body = body.as_bytes().to_vec();
        Origin::start(move |_| Reply::Send(response(200, &[], &body)))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(SeqCst)
    }

    /// The peer address (the proxy's side) of each accepted connection, in accept order.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.state.peers.lock().unwrap().clone()
    }

    /// Bytes received over all connections.
    pub fn bytes_received(&self) -> usize {
        self.state.bytes_received.load(SeqCst)
    }

    /// Bytes written over all connections.
    pub fn bytes_sent(&self) -> usize {
        self.state.bytes_sent.load(SeqCst)
    }

    /// Every complete request received, in order of completion.
    pub fn requests(&self) -> Vec<Req> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    /// The last complete request (panics if none arrived).
    pub fn last(&self) -> Req {
        self.requests()
            .pop()
            .expect("the origin received a request")
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.state.stop.store(true, SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// One origin connection: decode requests, record them, carry out the replies.
fn serve(state: &OriginState, mut conn: TcpStream, index: usize) {
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    let _ = conn.set_nodelay(true);
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    // The bytes read and not yet attributed to a request: what the decoder consumed for the
    // request in progress, then what is still in `buf`.
    let mut raw: Vec<u8> = Vec::new();
    let mut current: Option<Req> = None;
    let mut on_conn = 0usize;
    let mut scratch = vec![0u8; 64 * 1024];
    loop {
        loop {
            let event = decoder.decode(&mut buf);
            match event {
                Ok(Some(RequestEvent::Head(r))) => {
                    current = Some(Req {
                        conn: index,
                        index_on_conn: on_conn,
                        method: String::from_utf8_lossy(&r.head.method).into_owned(),
                        target: String::from_utf8_lossy(&r.head.target).into_owned(),
                        version: r.head.version,
                        headers: r
                            .head
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    String::from_utf8_lossy(&h.name).into_owned(),
                                    String::from_utf8_lossy(&h.value).into_owned(),
                                )
                            })
                            .collect(),
                        body: Vec::new(),
                        framing: r.body,
                        raw: Vec::new(),
                    });
                }
                Ok(Some(RequestEvent::Data(d))) => {
                    if let Some(req) = current.as_mut() {
                        req.body.extend_from_slice(&d);
                    }
                }
                Ok(Some(RequestEvent::End)) => {
                    let Some(mut req) = current.take() else {
                        return;
                    };
                    // Everything read so far minus what is still buffered is this request.
                    let used = raw.len() - buf.len();
                    req.raw = raw.drain(..used).collect();
                    on_conn += 1;
                    let reply = (state.handler)(&req);
                    state.requests.lock().unwrap().push(req);
                    if !execute(state, &mut conn, reply) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        match conn.read(&mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                state.bytes_received.fetch_add(n, SeqCst);
                raw.extend_from_slice(&scratch[..n]);
                buf.extend_from_slice(&scratch[..n]);
            }
        }
    }
}

/// Carries out a reply; false when the connection is done.
fn execute(state: &OriginState, conn: &mut TcpStream, reply: Reply) -> bool {
    let write = |conn: &mut TcpStream, bytes: &[u8]| -> bool {
        let ok = conn.write_all(bytes).is_ok();
        if ok {
            state.bytes_sent.fetch_add(bytes.len(), SeqCst);
        }
        ok
    };
    match reply {
        Reply::Send(bytes) => write(conn, &bytes),
        Reply::SendClose(bytes) => {
            write(conn, &bytes);
            let _ = conn.shutdown(Shutdown::Write);
            false
        }
        Reply::SendCloseAfter(bytes, after) => {
            write(conn, &bytes);
            thread::sleep(after);
            let _ = conn.shutdown(Shutdown::Write);
            false
        }
        Reply::SendReset(bytes) => {
            write(conn, &bytes);
            reset(conn);
            false
        }
        Reply::Close => {
            let _ = conn.shutdown(Shutdown::Write);
            false
        }
        Reply::Reset => {
            reset(conn);
            false
        }
        Reply::After(delay, inner) => {
            thread::sleep(delay);
            execute(state, conn, *inner)
        }
        Reply::Stall => {
            let mut sink = [0u8; 4096];
            // Until the proxy closes (or the read timeout).
            while let Ok(n) = conn.read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
            false
        }
        Reply::Trickle { pieces, gap } => {
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 {
                    thread::sleep(gap);
                }
                if !write(conn, piece) {
                    return false;
                }
            }
            true
        }
        Reply::Stream { head, len } => {
            if !write(conn, &head) {
                return false;
            }
            let mut sent = 0;
            while sent < len {
                let n = (64 * 1024).min(len - sent);
                if !write(conn, pattern_slice(sent, n)) {
                    return false;
                }
                sent += n;
            }
            true
        }
    }
}

/// Closes with RST: SO_LINGER 0, then close.
fn reset(conn: &TcpStream) {
    let _ = socket2::SockRef::from(conn).set_linger(Some(Duration::ZERO));
    let _ = conn.shutdown(Shutdown::Read);
    // The fd closes when the caller drops the stream; with linger 0 that sends RST.
}

/// The byte at `offset` of a streamed body.
pub fn pattern(offset: usize) -> u8 {
    (offset % 251) as u8
}

/// The pattern's bytes from `offset` on, `len` of them (at most 64 KiB), without a per-byte
/// loop: the pattern repeats every 251 bytes.
pub fn pattern_slice(offset: usize, len: usize) -> &'static [u8] {
    static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let base = BASE.get_or_init(|| (0..64 * 1024 + 251).map(pattern).collect());
    assert!(len <= 64 * 1024);
    let start = offset % 251;
    &base[start..start + len]
}

/// A response with `content-length` set from the body.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\n",
        weir_http1::reason_phrase(status)
    );
    for (n, v) in headers {
        out += &format!("{n}: {v}\r\n");
    }
    out += &format!("content-length: {}\r\n\r\n", body.len());
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A response head exactly as given (no framing header added) followed by `body`.
pub fn raw_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\n",
        weir_http1::reason_phrase(status)
    );
    for (n, v) in headers {
        out += &format!("{n}: {v}\r\n");
    }
    out += "\r\n";
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A chunked response with these chunks (and the last chunk).
pub fn chunked_response(status: u16, headers: &[(&str, &str)], chunks: &[&[u8]]) -> Vec<u8> {
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.push(("transfer-encoding", "chunked"));
    let mut out = raw_response(status, &all, b"");
    out.extend_from_slice(&chunked_body(chunks, true));
    out
}

/// Chunked framing of `chunks`, with the last chunk when `last`.
pub fn chunked_body(chunks: &[&[u8]], last: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    if last {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------------------------

/// A response as the client received it.
#[derive(Debug, Clone)]
pub struct Resp {
    pub version: Version,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// The decoded body (chunk payloads for chunked bodies): what arrived, even if cut.
    pub body: Vec<u8>,
    /// How the body was framed on the wire.
    pub framing: BodyKind,
    /// The response says the connection stays open.
    pub keep_alive: bool,
    /// The body ended as its framing says (false: the connection closed first).
    pub complete: bool,
    /// The response's bytes exactly as received (when the client records them).
    pub raw: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all(&self.headers, name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

/// How a read on the client ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The peer sent FIN.
    Fin,
    /// The peer reset the connection.
    Reset,
}

/// A raw HTTP/1.1 client over one connection.
pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
    decoder: ResponseDecoder,
    /// Bytes received and not yet attributed to a response.
    raw: Vec<u8>,
    closed: Option<Closed>,
    /// Keep each response's raw bytes (off for very large transfers).
    pub record_raw: bool,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("client connects");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
            decoder: ResponseDecoder::new(Limits::default()),
            raw: Vec::new(),
            closed: None,
            record_raw: true,
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    /// Writes bytes exactly as given.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .write_all(bytes.as_ref())
            .expect("client writes");
    }

    /// Sends FIN.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Sends a request and reads its response (HEAD requests expect no body).
    pub fn request(&mut self, raw: impl AsRef<[u8]>) -> Resp {
        let raw = raw.as_ref();
        self.send(raw);
        self.read_response(raw.starts_with(b"HEAD "))
    }

    /// `GET path` with `host: test`.
    pub fn get(&mut self, path: &str) -> Resp {
        self.request(format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n"))
    }

    /// `GET path` with the given Host and extra header lines (each `name: value`).
    pub fn get_host(&mut self, host: &str, path: &str, extra: &[&str]) -> Resp {
        let mut req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n");
        for line in extra {
            req += line;
            req += "\r\n";
        }
        req += "\r\n";
        self.request(req)
    }

    /// Reads one more chunk from the socket into the buffer; false at EOF or reset.
    fn read_more(&mut self) -> bool {
        if self.closed.is_some() {
            return false;
        }
        let mut scratch = [0u8; 64 * 1024];
        match self.stream.read(&mut scratch) {
            Ok(0) => {
                self.closed = Some(Closed::Fin);
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&scratch[..n]);
                if self.record_raw {
                    self.raw.extend_from_slice(&scratch[..n]);
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                self.closed = Some(Closed::Reset);
                false
            }
            Err(e) => panic!("client read failed (timeout {IO_TIMEOUT:?}?): {e}"),
        }
    }

    /// Reads the next response (a 1xx is returned on its own; call again for the final one).
    /// A response cut by the connection closing comes back with `complete: false`.
    pub fn read_response(&mut self, head_request: bool) -> Resp {
        let mut body = Vec::new();
        let mut resp = self.read_response_with(head_request, &mut |d| body.extend_from_slice(d));
        resp.body = body;
        resp
    }

    /// Like [`read_response`](Self::read_response), but hands the body to `on_data` piece by
    /// piece instead of keeping it (`body` stays empty).
    pub fn read_response_with(
        &mut self,
        head_request: bool,
        on_data: &mut dyn FnMut(&[u8]),
    ) -> Resp {
        self.decoder.expect(head_request);
        let mut resp: Option<Resp> = None;
        loop {
            let event = if self.closed.is_some() {
                self.decoder.decode_eof(&mut self.buf)
            } else {
                self.decoder.decode(&mut self.buf)
            };
            match event {
                Ok(Some(ResponseEvent::Head(r))) => {
                    let informational = r.head.status < 200;
                    let new = Resp {
                        version: r.head.version,
                        status: r.head.status,
                        reason: String::from_utf8_lossy(&r.head.reason).into_owned(),
                        headers: r
                            .head
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    String::from_utf8_lossy(&h.name).into_owned(),
                                    String::from_utf8_lossy(&h.value).into_owned(),
                                )
                            })
                            .collect(),
                        body: Vec::new(),
                        framing: r.body,
                        keep_alive: r.keep_alive,
                        complete: false,
                        raw: Vec::new(),
                    };
                    if informational {
                        let mut new = new;
                        new.complete = true;
                        new.raw = self.take_raw();
                        return new;
                    }
                    resp = Some(new);
                }
                Ok(Some(ResponseEvent::Data(d))) => {
                    assert!(resp.is_some(), "data after a head");
                    on_data(&d);
                }
                Ok(Some(ResponseEvent::End)) => {
                    let mut r = resp.expect("end after a head");
                    r.complete = true;
                    r.raw = self.take_raw();
                    return r;
                }
                Ok(None) => {
                    if self.closed.is_some() {
                        panic!(
                            "connection closed ({:?}) before any response byte",
                            self.closed
                        );
                    }
                    self.read_more();
                }
                Err(weir_http1::Error::Incomplete) => {
                    let Some(mut r) = resp else {
                        panic!("connection closed in the middle of a response head");
                    };
                    r.raw = self.take_raw();
                    return r;
                }
                Err(e) => panic!("the proxy sent a malformed response: {e:?}"),
            }
        }
    }

    fn take_raw(&mut self) -> Vec<u8> {
        let used = self.raw.len().saturating_sub(self.buf.len());
        self.raw.drain(..used).collect()
    }

    /// Waits for the proxy to close the connection (at most [`IO_TIMEOUT`]); returns how it
    /// closed and panics if more bytes arrive first.
    pub fn expect_closed(&mut self) -> Closed {
        while self.read_more() {}
        assert!(
            self.buf.is_empty(),
            "bytes after the last response: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.closed.expect("closed")
    }

    /// Reads until the proxy closes the connection; returns everything that arrived (and was
    /// not part of an earlier response).
    pub fn read_to_close(&mut self) -> (Vec<u8>, Closed) {
        while self.read_more() {}
        let rest = self.buf.split().to_vec();
        (rest, self.closed.expect("closed"))
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn header_all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------------------------

/// What curl received.
#[derive(Debug)]
pub struct CurlResult {
    pub status: u16,
    /// The final response's headers (after any `100 Continue`).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Every head curl saw, raw, one after the other (a `100 Continue` comes first).
    pub raw_heads: String,
}

impl CurlResult {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// Runs `curl -sS --max-time 10 -D <heads> -o <body> <args…>`.
pub fn curl(args: &[&str]) -> CurlResult {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "weir-proxy-tests-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let heads = dir.join("heads");
    let body = dir.join("body");
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D"])
        .arg(&heads)
        .arg("-o")
        .arg(&body)
        .args(args)
        .output()
        .expect("curl runs (is /usr/bin/curl installed?)");
    assert!(
        output.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let raw_heads = std::fs::read_to_string(&heads).unwrap_or_default();
    let body = std::fs::read(&body).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let last = raw_heads
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or("")
        .to_owned();
    let mut lines = last.lines();
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    CurlResult {
        status,
        headers,
        body,
        raw_heads,
    }
}

/// An origin on a raw socket, for answers [`Origin`] cannot give (early, mid-body, then a
/// reset): on each connection, in turn, it reads one request head a byte at a time (nothing
/// past it, with [`IO_TIMEOUT`]) and hands the connection to `answer`.
pub fn raw_origin(answer: impl Fn(TcpStream) + Send + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else {
                return;
            };
            conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            if head.ends_with(b"\r\n\r\n") {
                answer(conn);
            }
        }
    });
    addr
}
