//! Ground truth for `weir trace` (tests/trace.rs): an origin and a client load in which every
//! request and every response has a length that names its request, the proxies to put between
//! them (nginx two ways, HAProxy, weir), the tracer run as a child process, and the checker that
//! decides whether each flow the tracer printed is linked right.
//!
//! Request k is `request_len(k)` bytes from the client, and the origin answers it with
//! `response_len(k)` bytes; both lengths differ for every k. A proxy rewrites heads by a fixed
//! amount (nginx changes the version and `Host`, weir adds `x-request-id`…), so in a correctly
//! rebuilt flow the bytes on its four sides are k's lengths plus two per-proxy constants, while
//! a flow that took another request's syscalls shows that request's length on some side.
//!
//! Everything is bounded: sockets have timeouts and every wait a deadline.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{TIMEOUT, TempFile, Weir, proxy_config, strip_ansi, weir_bin};

// ---------------------------------------------------------------------------------------------
// The ground truth: what request k and its response look like
// ---------------------------------------------------------------------------------------------

/// Client connections, each on a thread of its own, all sending at once.
pub(crate) const CLIENTS: u32 = 64;
/// Requests each client sends, one after another on its keep-alive connection.
pub(crate) const ROUNDS: u32 = 20;
/// Requests in one load; their k's are `0..REQUESTS`.
pub(crate) const REQUESTS: u32 = CLIENTS * ROUNDS;

/// The size of response k's body.
pub(crate) const fn body_len(k: u32) -> usize {
    10_000 + 7 * k as usize
}

// Every `Content-Length` has five digits, so a proxy's response head (which copies it) has one
// length for every k, and "downstream written − body" is a per-proxy constant.
const _: () = assert!(body_len(0) >= 10_000 && body_len(REQUESTS - 1) < 100_000);

/// The size of request k as the client writes it (padded to this length).
pub(crate) const fn request_len(k: u32) -> usize {
    200 + 2 * k as usize
}

/// The size of response k as the origin writes it.
pub(crate) fn response_len(k: u32) -> usize {
    response_head(k).len() + body_len(k)
}

/// Request k: `GET /gt/<k>/<padding>`, padded to `request_len(k)` bytes. The padding is in
/// the target (not a header) so a proxy forwards it as it is, and k comes first so that a
/// tracer's shortened copy of the target still names the request.
pub(crate) fn request(k: u32) -> String {
    let with_padding =
        |padding: &str| format!("GET /gt/{k}/{padding} HTTP/1.1\r\nHost: gt.weir.test\r\n\r\n");
    let padding = request_len(k)
        .checked_sub(with_padding("").len())
        .expect("request_len leaves room for the padding");
    with_padding(&"p".repeat(padding))
}

/// The k a request target names (`/gt/<k>/…`), if it is one of ours.
pub(crate) fn target_k(target: &str) -> Option<u32> {
    target.strip_prefix("/gt/")?.split('/').next()?.parse().ok()
}

/// The origin's response head for k: one length for every k. It has no `Connection` field,
/// whose value would depend on whether the connection closes; closing without announcing it
/// is allowed, as the request asked for it (`Connection: close`, or HTTP/1.0).
fn response_head(k: u32) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\
         X-K: {k:06}\r\n\r\n",
        body_len(k)
    )
}

/// The byte response k's body is made of, so that a body from another request shows.
fn body_byte(k: u32) -> u8 {
    b'a' + (k % 26) as u8
}

// ---------------------------------------------------------------------------------------------
// HTTP/1 heads, as the origin and the client read them
// ---------------------------------------------------------------------------------------------

/// A message head as read off a socket: the start line's words, the fields, and the head's
/// exact length in bytes (up to and including the empty line).
struct RawHead {
    start: Vec<String>,
    fields: Vec<(String, String)>,
    len: usize,
}

impl RawHead {
    /// The first value of a field (name matched case-insensitively).
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The start line's `i`-th word (method, target, version; or version, status, reason).
    fn word(&self, i: usize) -> &str {
        self.start.get(i).map_or("", String::as_str)
    }
}

/// Reads a head; `Ok(None)` on a clean EOF before its first byte.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<RawHead>> {
    let mut line = String::new();
    let mut len = reader.read_line(&mut line)?;
    if len == 0 {
        return Ok(None);
    }
    let start = line.split_whitespace().map(str::to_string).collect();
    let mut fields = Vec::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
        let field = line.trim_end_matches(['\r', '\n']);
        if field.is_empty() {
            return Ok(Some(RawHead { start, fields, len }));
        }
        let (name, value) = field
            .split_once(':')
            .ok_or_else(|| io::Error::other(format!("bad header line {field:?}")))?;
        fields.push((name.trim().to_string(), value.trim().to_string()));
    }
}

// ---------------------------------------------------------------------------------------------
// The origin
// ---------------------------------------------------------------------------------------------

/// What the origin has seen.
#[derive(Default)]
struct OriginCounts {
    connections: AtomicU64,
    responses: AtomicU64,
    /// Requests answered 400: their target was not `/gt/<k>/…`.
    rejected: AtomicU64,
    /// How many bytes longer than the client's the proxy's forwarded request was, and how
    /// often: the "upstream written − request" constant, measured.
    request_overheads: Mutex<BTreeMap<i64, u64>>,
}

/// A thread-per-connection origin on 127.0.0.1 that answers `GET /gt/<k>/…` with
/// `response_len(k)` bytes: HTTP/1.1 keep-alive, and one response then close for
/// `Connection: close` or HTTP/1.0 (nginx's default upstream protocol). Its threads end with
/// the test process, or when their socket times out or closes.
pub(crate) struct GtOrigin {
    pub(crate) addr: SocketAddr,
    counts: Arc<OriginCounts>,
}

impl GtOrigin {
    pub(crate) fn start() -> GtOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the origin");
        let addr = listener.local_addr().expect("origin address");
        let counts = Arc::new(OriginCounts::default());
        let accept_counts = counts.clone();
        std::thread::spawn(move || {
            for socket in listener.incoming() {
                let Ok(socket) = socket else { continue };
                accept_counts.connections.fetch_add(1, Ordering::Relaxed);
                let counts = accept_counts.clone();
                std::thread::spawn(move || {
                    if let Err(e) = serve(socket, &counts) {
                        eprintln!("[gt origin] connection ended: {e}");
                    }
                });
            }
        });
        GtOrigin { addr, counts }
    }

    /// Connections accepted.
    pub(crate) fn connections(&self) -> u64 {
        self.counts.connections.load(Ordering::Relaxed)
    }

    /// Responses written.
    pub(crate) fn responses(&self) -> u64 {
        self.counts.responses.load(Ordering::Relaxed)
    }

    /// Requests for something else than `/gt/<k>/…` (a proxy garbling targets).
    pub(crate) fn rejected(&self) -> u64 {
        self.counts.rejected.load(Ordering::Relaxed)
    }

    /// "Forwarded request length − `request_len(k)`" → how many requests had it.
    pub(crate) fn request_overheads(&self) -> BTreeMap<i64, u64> {
        self.counts
            .request_overheads
            .lock()
            .expect("overheads lock")
            .clone()
    }
}

fn serve(socket: TcpStream, counts: &OriginCounts) -> io::Result<()> {
    socket.set_read_timeout(Some(TIMEOUT))?;
    socket.set_write_timeout(Some(TIMEOUT))?;
    socket.set_nodelay(true)?;
    let mut writer = socket.try_clone()?;
    let mut reader = BufReader::new(socket);
    while let Some(head) = read_head(&mut reader)? {
        let Some(k) = target_k(head.word(1)) else {
            counts.rejected.fetch_add(1, Ordering::Relaxed);
            writer.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return Ok(());
        };
        let overhead = head.len as i64 - request_len(k) as i64;
        *counts
            .request_overheads
            .lock()
            .expect("overheads lock")
            .entry(overhead)
            .or_default() += 1;
        let mut response = response_head(k).into_bytes();
        response.resize(response.len() + body_len(k), body_byte(k));
        writer.write_all(&response)?;
        counts.responses.fetch_add(1, Ordering::Relaxed);
        // HTTP/1.0 closes after one response whatever it asks: a `Connection: keep-alive`
        // answer would make this response's head longer than the others.
        let close = head.word(2) != "HTTP/1.1"
            || head
                .field("connection")
                .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
        if close {
            return writer.shutdown(Shutdown::Write);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The client load
// ---------------------------------------------------------------------------------------------

/// What one load saw.
pub(crate) struct Load {
    /// The k of every request sent (in no particular order).
    pub(crate) sent: Vec<u32>,
    /// Requests that failed, with why (a client stops at its first failure).
    pub(crate) failures: Vec<String>,
    /// Response head length → how many responses had it: the "downstream written − body"
    /// constant, measured (one length is expected).
    pub(crate) response_heads: BTreeMap<usize, u64>,
    pub(crate) elapsed: Duration,
}

/// Runs the load against `addr`: `CLIENTS` threads, each with its own keep-alive connection,
/// start together and send `ROUNDS` requests one after another, each with its own k, reading
/// and checking every response in full.
pub(crate) fn run_load(addr: SocketAddr) -> Load {
    let barrier = Arc::new(Barrier::new(CLIENTS as usize));
    let started = Instant::now();
    let clients: Vec<JoinHandle<ClientRun>> = (0..CLIENTS)
        .map(|client| {
            let barrier = barrier.clone();
            std::thread::spawn(move || run_client(addr, client, &barrier))
        })
        .collect();
    let mut load = Load {
        sent: Vec::new(),
        failures: Vec::new(),
        response_heads: BTreeMap::new(),
        elapsed: Duration::ZERO,
    };
    for client in clients {
        let run = client.join().expect("client thread");
        load.sent.extend(run.sent);
        load.failures.extend(run.failure);
        for (len, n) in run.response_heads {
            *load.response_heads.entry(len).or_default() += n;
        }
    }
    load.elapsed = started.elapsed();
    load
}

/// What one client thread did.
struct ClientRun {
    sent: Vec<u32>,
    failure: Option<String>,
    response_heads: BTreeMap<usize, u64>,
}

fn run_client(addr: SocketAddr, client: u32, barrier: &Barrier) -> ClientRun {
    let mut run = ClientRun {
        sent: Vec::new(),
        failure: None,
        response_heads: BTreeMap::new(),
    };
    let connection = GtConnection::connect(addr);
    // Every thread reaches the barrier, connected or not, so none waits forever.
    barrier.wait();
    let mut connection = match connection {
        Ok(c) => c,
        Err(e) => {
            run.failure = Some(format!("client {client}: connect: {e}"));
            return run;
        }
    };
    for round in 0..ROUNDS {
        let k = round * CLIENTS + client;
        run.sent.push(k);
        match connection.exchange(k) {
            Ok(head_len) => *run.response_heads.entry(head_len).or_default() += 1,
            Err(e) => {
                run.failure = Some(format!("client {client}, k={k}: {e}"));
                break;
            }
        }
    }
    run
}

/// A client's keep-alive connection.
struct GtConnection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl GtConnection {
    fn connect(addr: SocketAddr) -> io::Result<GtConnection> {
        let socket = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        socket.set_read_timeout(Some(TIMEOUT))?;
        socket.set_write_timeout(Some(TIMEOUT))?;
        socket.set_nodelay(true)?;
        Ok(GtConnection {
            writer: socket.try_clone()?,
            reader: BufReader::new(socket),
        })
    }

    /// Sends request k and reads its whole response, checking that it is k's (status, `X-K`,
    /// body length and bytes). Returns the response head's length.
    fn exchange(&mut self, k: u32) -> Result<usize, String> {
        self.writer
            .write_all(request(k).as_bytes())
            .map_err(|e| format!("sending: {e}"))?;
        let head = read_head(&mut self.reader)
            .map_err(|e| format!("reading the response head: {e}"))?
            .ok_or("connection closed before a response")?;
        let status = head.word(1);
        let x_k = head.field("x-k").unwrap_or_default();
        let length = head.field("content-length").unwrap_or_default();
        let want_length = body_len(k).to_string();
        if status != "200" || x_k != format!("{k:06}") || length != want_length {
            return Err(format!(
                "got status {status}, X-K {x_k:?}, Content-Length {length:?}; want 200, \
                 {k:06}, {want_length}"
            ));
        }
        let mut body = vec![0; body_len(k)];
        self.reader
            .read_exact(&mut body)
            .map_err(|e| format!("reading the body: {e}"))?;
        if body.iter().any(|&b| b != body_byte(k)) {
            return Err("the body is not k's".into());
        }
        Ok(head.len)
    }
}

// ---------------------------------------------------------------------------------------------
// The proxies
// ---------------------------------------------------------------------------------------------

const NGINX: &str = "/usr/sbin/nginx";
const HAPROXY: &str = "/usr/sbin/haproxy";

/// The proxy setups the tracer is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyKind {
    /// nginx with its default upstream: HTTP/1.0, a new connection for every request.
    NginxPerRequest,
    /// nginx with an upstream keep-alive pool (HTTP/1.1, `keepalive 32`).
    NginxPool,
    /// HAProxy, one thread, server connections shared (`http-reuse always`).
    Haproxy,
    /// weir itself, two workers.
    Weir,
    /// Envoy 1.40, one worker (`--concurrency 1`), upstream keep-alive.
    Envoy,
}

impl ProxyKind {
    /// Whether the proxy sends several requests over one upstream connection.
    pub(crate) fn reuses_upstream_connections(self) -> bool {
        self != ProxyKind::NginxPerRequest
    }
}

impl fmt::Display for ProxyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyKind::NginxPerRequest => "nginx (HTTP/1.0 upstream, connection per request)",
            ProxyKind::NginxPool => "nginx (upstream keep-alive pool)",
            ProxyKind::Haproxy => "HAProxy",
            ProxyKind::Weir => "weir",
            ProxyKind::Envoy => "Envoy",
        })
    }
}

/// A running proxy in front of a [`GtOrigin`], stopped on drop.
pub(crate) enum Proxy {
    External(ExternalProxy),
    Weir(Weir),
}

impl Proxy {
    /// Starts `kind` in front of `origin` and waits until it accepts connections. Nothing is
    /// sent through it, so a tracer attached next finds no pooled upstream connection it did
    /// not see opened. `Err` says why it cannot run here (its binary is not installed);
    /// anything else that goes wrong panics.
    pub(crate) fn start(kind: ProxyKind, origin: SocketAddr) -> Result<Proxy, String> {
        Ok(match kind {
            ProxyKind::NginxPerRequest | ProxyKind::NginxPool => {
                let pool = kind == ProxyKind::NginxPool;
                Proxy::External(ExternalProxy::start(NGINX, &|dir, port| {
                    nginx_launch(dir, port, origin, pool)
                })?)
            }
            ProxyKind::Haproxy => Proxy::External(ExternalProxy::start(HAPROXY, &|dir, port| {
                haproxy_launch(dir, port, origin)
            })?),
            ProxyKind::Weir => {
                // As Envoy's below: no `x-envoy-upstream-service-time`, whose length varies.
                let router = "router.v3.Router\n";
                let config = proxy_config(origin);
                assert!(config.contains(router));
                let config = config.replace(
                    router,
                    "router.v3.Router\n              suppress_envoy_headers: true\n",
                );
                Proxy::Weir(Weir::start(&config, &["--concurrency", "2"]))
            }
            ProxyKind::Envoy => {
                let bin = crate::support::envoy_bin()?;
                Proxy::External(ExternalProxy::start(
                    &bin.to_string_lossy(),
                    &|dir, port| envoy_launch(dir, port, origin),
                )?)
            }
        })
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        match self {
            Proxy::External(p) => p.addr,
            Proxy::Weir(w) => w.addr(),
        }
    }

    /// The process to trace: weir's, HAProxy's, or nginx's master (its worker is its child).
    pub(crate) fn pid(&self) -> u32 {
        match self {
            Proxy::External(p) => p.child.id(),
            Proxy::Weir(w) => w.pid(),
        }
    }
}

/// Writes nginx's config into `dir` and returns its arguments. Temp paths are set because the
/// compiled-in ones are under /var/lib/nginx, which may not exist.
fn nginx_launch(dir: &Path, port: u16, origin: SocketAddr, pool: bool) -> Vec<String> {
    let d = dir.display();
    let (upstream, location) = if pool {
        (
            format!("upstream gt_origin {{ server {origin}; keepalive 32; }}"),
            "proxy_pass http://gt_origin;\n            proxy_http_version 1.1;\n            \
             proxy_set_header Connection \"\";"
                .to_string(),
        )
    } else {
        (String::new(), format!("proxy_pass http://{origin};"))
    };
    let config = format!(
        r#"daemon off;
master_process on;
worker_processes 1;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    {upstream}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            {location}
        }}
    }}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config).expect("write nginx.conf");
    vec![
        "-p".into(),
        format!("{d}/"),
        "-c".into(),
        path.display().to_string(),
    ]
}

/// Writes HAProxy's config into `dir` and returns its arguments. No `log` lines: it logs
/// nothing.
fn haproxy_launch(dir: &Path, port: u16, origin: SocketAddr) -> Vec<String> {
    let config = format!(
        r#"global
    nbthread 1
    maxconn 1000
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse always
frontend gt
    bind 127.0.0.1:{port}
    default_backend origin
backend origin
    server o1 {origin}
"#
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).expect("write haproxy.cfg");
    vec!["-db".into(), "-f".into(), path.display().to_string()]
}

/// Writes Envoy's config into `dir` and returns its arguments. The router's
/// `suppress_envoy_headers` keeps `x-envoy-upstream-service-time` (whose length varies) off the
/// responses, so each head changes by a constant amount, as the checker needs.
fn envoy_launch(dir: &Path, port: u16, origin: SocketAddr) -> Vec<String> {
    let config = format!(
        r#"static_resources:
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gt
          route_config:
            virtual_hosts:
            - {{ name: all, domains: ["*"], routes: [ {{ match: {{ prefix: / }}, route: {{ cluster: origin }} }} ] }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              suppress_envoy_headers: true
  clusters:
  - name: origin
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: {ip}, port_value: {origin_port} }} }} }}
"#,
        ip = origin.ip(),
        origin_port = origin.port()
    );
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, config).expect("write envoy.yaml");
    [
        "-c",
        &path.display().to_string(),
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "-l",
        "error",
    ]
    .map(String::from)
    .to_vec()
}

/// nginx, HAProxy or Envoy, run in the foreground with its files in a temp dir.
pub(crate) struct ExternalProxy {
    child: Child,
    addr: SocketAddr,
    /// Its config and logs; removed after the process has stopped (fields drop after `drop`).
    _dir: TempDir,
}

impl ExternalProxy {
    /// Runs `program` with the arguments `launch(dir, port)` returns (having written its config
    /// into `dir`) and waits until it accepts connections on 127.0.0.1:`port`. The port was
    /// free when probed but another process may take it first, so a proxy that exits before
    /// listening is tried again on another port.
    fn start(
        program: &str,
        launch: &dyn Fn(&Path, u16) -> Vec<String>,
    ) -> Result<ExternalProxy, String> {
        if !Path::new(program).exists() {
            return Err(format!("{program} is not installed"));
        }
        let name = Path::new(program)
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut failures = Vec::new();
        for _ in 0..3 {
            let dir = TempDir::new(&name);
            let port = free_port();
            let args = launch(dir.path(), port);
            let output = File::create(dir.path().join("output.log")).expect("create output.log");
            let mut child = Command::new(program)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(output.try_clone().expect("clone output.log"))
                .stderr(output)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            match wait_listening(&mut child, addr) {
                Ok(()) => {
                    return Ok(ExternalProxy {
                        child,
                        addr,
                        _dir: dir,
                    });
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    failures.push(format!("{program} {args:?}: {why}\n{}", dir.logs()));
                }
            }
        }
        panic!("{program} did not start:\n{}", failures.join("\n"));
    }
}

impl Drop for ExternalProxy {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        // SIGTERM, not SIGKILL: nginx's master then stops its worker before exiting, whereas a
        // killed master leaves the worker serving. The worker is killed too if that fails.
        let children = child_pids(self.child.id());
        signal(self.child.id(), "TERM");
        if crate::support::wait_child(&mut self.child, TIMEOUT).is_none() {
            for pid in children {
                signal(pid, "KILL");
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `addr` accepts a connection (`Err` if the child exits first, or time runs out).
fn wait_listening(child: &mut Child, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("exited ({status}) before listening on {addr}"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("not listening on {addr} after {TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a probe port")
        .port()
}

/// A process's children, from `/proc/PID/task/PID/children`.
fn child_pids(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Sends a signal (`INT`, `TERM`, `KILL`) with the `kill` command; whether it was delivered.
fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A directory in the system temp dir, removed with its contents on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = TempFile::unique_path(name);
        std::fs::create_dir(&path).expect("create temp dir");
        TempDir { path }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Every `*.log` file in it, for a failure message.
    fn logs(&self) -> String {
        let mut text = String::new();
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return text;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let contents = std::fs::read_to_string(&path).unwrap_or_default();
                text.push_str(&format!("--- {} ---\n{contents}\n", path.display()));
            }
        }
        text
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// The tracer
// ---------------------------------------------------------------------------------------------

/// The tracer's stderr line once it is attached and recording.
const TRACING: &str = "weir trace: tracing";
/// The tracer's stderr line (then exit status 2) when the machine cannot trace.
const CANNOT: &str = "weir trace: cannot trace:";
/// The tracer's summary line on stderr after SIGINT.
const DONE: &str = "weir trace: done";
/// How long attaching may take (loading and verifying the BPF programs).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the tracer may take, after SIGINT, to print the open flows and exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// How attaching went.
pub(crate) enum Attach {
    /// Attached and recording.
    Tracing(Tracer),
    /// The machine cannot trace (exit status 2): the reason the tracer gave.
    Cannot(String),
}

/// A running `weir trace --pid PID --format json`, killed on drop.
pub(crate) struct Tracer {
    child: Child,
    /// Taken by [`Tracer::stop`].
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Lines,
}

/// What a stopped tracer printed.
pub(crate) struct Trace {
    /// The flows, as JSON lines.
    pub(crate) stdout: String,
}

impl Tracer {
    /// Starts the tracer on `pid` (JSON lines) and waits for it to say it is tracing. Panics
    /// if it neither does that nor exits 2 saying it cannot trace.
    pub(crate) fn attach(pid: u32) -> Attach {
        Tracer::attach_as(pid, "json")
    }

    /// Like [`Tracer::attach`], printing `format` (`text`, `json` or `perfetto`).
    pub(crate) fn attach_as(pid: u32, format: &str) -> Attach {
        let mut child = Command::new(weir_bin())
            .args(["trace", "--pid", &pid.to_string(), "--format", format])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir trace");
        let mut stdout = child.stdout.take().expect("tracer stdout");
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stdout.read_to_end(&mut bytes);
            bytes
        });
        let stderr = Lines::read_from(child.stderr.take().expect("tracer stderr"));
        let mut tracer = Tracer {
            child,
            stdout: Some(stdout),
            stderr,
        };
        if tracer
            .stderr
            .wait_for(ATTACH_TIMEOUT, |l| l.starts_with(TRACING))
            .is_some()
        {
            return Attach::Tracing(tracer);
        }
        let status = crate::support::wait_child(&mut tracer.child, Duration::from_secs(5));
        let lines = tracer.stderr.when_closed(Duration::from_secs(5));
        if let Some(status) = status
            && status.code() == Some(2)
            && let Some(reason) = lines.iter().find_map(|l| l.strip_prefix(CANNOT))
        {
            return Attach::Cannot(reason.trim().to_string());
        }
        match status {
            Some(status) => panic!(
                "weir trace --pid {pid} exited ({status}) without printing `{TRACING}`, and not \
                 with status 2 and a `{CANNOT}` line; its stderr:\n{}",
                lines.join("\n")
            ),
            None => panic!(
                "weir trace --pid {pid} did not print `{TRACING}` within {ATTACH_TIMEOUT:?}; \
                 its stderr:\n{}",
                lines.join("\n")
            ),
        }
    }

    /// Sends SIGINT and waits for the tracer to print the open flows and exit; panics unless
    /// it exits 0 having printed its `done` line.
    pub(crate) fn stop(mut self) -> Trace {
        assert!(
            signal(self.child.id(), "INT"),
            "could not send SIGINT to weir trace"
        );
        let status = crate::support::wait_child(&mut self.child, STOP_TIMEOUT);
        let stderr = self.stderr.when_closed(TIMEOUT);
        let Some(status) = status else {
            panic!(
                "weir trace did not exit within {STOP_TIMEOUT:?} of SIGINT; its stderr:\n{}",
                stderr.join("\n")
            );
        };
        let stdout = self
            .stdout
            .take()
            .expect("stop runs once")
            .join()
            .expect("tracer stdout reader");
        assert!(
            status.success() && stderr.iter().any(|l| l.starts_with(DONE)),
            "weir trace exited with {status} after SIGINT (want 0 and a `{DONE}` line); its \
             stderr:\n{}",
            stderr.join("\n")
        );
        Trace {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A child's stderr lines (ANSI codes removed), read by a thread of their own and echoed to the
/// test's stderr.
#[derive(Clone, Default)]
struct Lines(Arc<(Mutex<LinesState>, Condvar)>);

#[derive(Default)]
struct LinesState {
    lines: Vec<String>,
    closed: bool,
}

impl Lines {
    fn read_from(pipe: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let reader = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                eprintln!("[weir trace] {line}");
                let (state, changed) = &*reader.0;
                state.lock().expect("lines lock").lines.push(line);
                changed.notify_all();
            }
            let (state, changed) = &*reader.0;
            state.lock().expect("lines lock").closed = true;
            changed.notify_all();
        });
        lines
    }

    /// Waits (at most `timeout`) until `done` holds for the state; returns the state.
    fn wait(
        &self,
        timeout: Duration,
        done: impl Fn(&LinesState) -> bool,
    ) -> MutexGuard<'_, LinesState> {
        let deadline = Instant::now() + timeout;
        let (state, changed) = &*self.0;
        let mut state = state.lock().expect("lines lock");
        loop {
            let now = Instant::now();
            if done(&state) || now >= deadline {
                return state;
            }
            state = changed
                .wait_timeout(state, deadline - now)
                .expect("lines lock")
                .0;
        }
    }

    /// The first line that satisfies `pred`, waiting for it until the pipe closes or `timeout`.
    fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let state = self.wait(timeout, |s| s.closed || s.lines.iter().any(|l| pred(l)));
        state.lines.iter().find(|l| pred(l)).cloned()
    }

    /// Every line, once the pipe has closed (or `timeout` has passed).
    fn when_closed(&self, timeout: Duration) -> Vec<String> {
        self.wait(timeout, |s| s.closed).lines.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// The checker
// ---------------------------------------------------------------------------------------------

/// How many bad flows a report describes in full.
const EXAMPLES: usize = 10;

/// What the checker found in a tracer's output.
#[derive(Debug)]
pub(crate) struct Report {
    /// Requests the client sent.
    pub(crate) requests: usize,
    /// Flow headers in the output.
    pub(crate) flows: usize,
    /// Requests with exactly one flow, and that flow correctly linked.
    pub(crate) linked: usize,
    /// Requests without a flow.
    pub(crate) missing: Vec<u32>,
    /// Requests with more than one flow.
    pub(crate) duplicated: Vec<u32>,
    /// Requests whose one flow has another request's bytes on some side.
    pub(crate) mislinked: Vec<u32>,
    /// Flows whose path names none of the requests sent.
    pub(crate) unattributed: usize,
    /// Lines that are not JSON objects, or events before any flow header.
    pub(crate) malformed: usize,
    /// The most common "upstream written − request_len(k)": the bytes the proxy adds to a
    /// request head.
    pub(crate) request_overhead: Option<i64>,
    /// The most common "downstream written − body_len(k)": the proxy's response head length.
    pub(crate) response_overhead: Option<i64>,
    /// Descriptions of some bad flows and lines.
    pub(crate) examples: Vec<String>,
}

impl Report {
    /// Whether at least `min_percent` % of the requests are correctly linked and every line
    /// is well-formed.
    pub(crate) fn meets(&self, min_percent: usize) -> bool {
        self.malformed == 0 && self.linked * 100 >= min_percent * self.requests
    }

    fn malformed_line(&mut self, number: usize, why: &str, line: &str) {
        self.malformed += 1;
        let shown: String = line.chars().take(120).collect();
        self.example(format!("line {number}: {why}: {shown}"));
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(text);
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = if self.requests == 0 {
            0.0
        } else {
            100.0 * self.linked as f64 / self.requests as f64
        };
        writeln!(
            f,
            "{} requests, {} flows: {} correctly linked ({percent:.2} %)",
            self.requests, self.flows, self.linked
        )?;
        writeln!(
            f,
            "  request overhead (upstream written − request): {:?}; response head \
             (downstream written − body): {:?}",
            self.request_overhead, self.response_overhead
        )?;
        for (what, ks) in [
            ("missing", &self.missing),
            ("duplicated", &self.duplicated),
            ("mislinked", &self.mislinked),
        ] {
            if !ks.is_empty() {
                let shown: Vec<String> = ks.iter().take(20).map(u32::to_string).collect();
                let more = if ks.len() > 20 { ", …" } else { "" };
                writeln!(f, "  {what}: {} (k = {}{more})", ks.len(), shown.join(", "))?;
            }
        }
        writeln!(
            f,
            "  unattributed flows: {}, malformed lines: {}",
            self.unattributed, self.malformed
        )?;
        for example in &self.examples {
            writeln!(f, "  {example}")?;
        }
        Ok(())
    }
}

/// One flow's byte counts: the sums of the positive results of its reads and writes, by side.
#[derive(Debug, Default)]
struct FlowBytes {
    /// The line of its header (1-based), to find it in the output.
    line: usize,
    method: String,
    path: String,
    downstream_read: i64,
    upstream_written: i64,
    upstream_read: i64,
    downstream_written: i64,
}

impl FlowBytes {
    /// Adds an event line's bytes (events that are not reads or writes carry none).
    fn add(&mut self, event: &Value) {
        let bytes = match event["event"].as_str() {
            Some("read") => event["result"]["bytes"].as_i64(),
            Some("write") => event["written"].as_i64(),
            _ => None,
        };
        let Some(bytes) = bytes.filter(|&b| b > 0) else {
            return;
        };
        let sum = match (event["lane"].as_str(), event["event"].as_str()) {
            (Some("downstream"), Some("read")) => &mut self.downstream_read,
            (Some("downstream"), _) => &mut self.downstream_written,
            (Some("upstream"), Some("read")) => &mut self.upstream_read,
            (Some("upstream"), _) => &mut self.upstream_written,
            _ => return,
        };
        *sum += bytes;
    }

    /// Whether this is k's flow, given the proxy's two constants.
    fn linked(&self, k: u32, request_overhead: i64, response_overhead: i64) -> bool {
        self.method == "GET"
            && self.downstream_read == request_len(k) as i64
            && self.upstream_written == request_len(k) as i64 + request_overhead
            && self.upstream_read == response_len(k) as i64
            && self.downstream_written == body_len(k) as i64 + response_overhead
    }

    fn describe(&self, k: u32, request_overhead: i64, response_overhead: i64) -> String {
        format!(
            "k={k} (flow at line {}, {} {:?}): downstream read {} (want {}), upstream written {} \
             (want {}), upstream read {} (want {}), downstream written {} (want {})",
            self.line,
            self.method,
            self.path,
            self.downstream_read,
            request_len(k),
            self.upstream_written,
            request_len(k) as i64 + request_overhead,
            self.upstream_read,
            response_len(k),
            self.downstream_written,
            body_len(k) as i64 + response_overhead,
        )
    }
}

/// Checks a tracer's JSON lines against the requests sent (their k's): groups the lines into
/// flows (each event belongs to the last header before it), takes each flow's k from its
/// path, and counts a request as correctly linked when exactly one flow has its k and that
/// flow's bytes are k's on all four sides: the request's length read downstream, the
/// response's length read upstream, and on the two written sides those lengths plus the
/// proxy's constants, taken as the values most flows agree on.
pub(crate) fn verify(json_lines: &str, sent: &[u32]) -> Report {
    let sent_set: HashSet<u32> = sent.iter().copied().collect();
    let mut report = Report {
        requests: sent_set.len(),
        flows: 0,
        linked: 0,
        missing: Vec::new(),
        duplicated: Vec::new(),
        mislinked: Vec::new(),
        unattributed: 0,
        malformed: 0,
        request_overhead: None,
        response_overhead: None,
        examples: Vec::new(),
    };
    let mut flows: Vec<FlowBytes> = Vec::new();
    for (i, line) in json_lines.lines().enumerate() {
        let Some(value) = serde_json::from_str(line).ok().filter(Value::is_object) else {
            report.malformed_line(i + 1, "not a JSON object", line);
            continue;
        };
        if value["event"] == "flow" {
            flows.push(FlowBytes {
                line: i + 1,
                method: value["method"].as_str().unwrap_or_default().to_string(),
                path: value["path"].as_str().unwrap_or_default().to_string(),
                ..FlowBytes::default()
            });
        } else if let Some(flow) = flows.last_mut() {
            flow.add(&value);
        } else {
            report.malformed_line(i + 1, "an event before any flow header", line);
        }
    }
    report.flows = flows.len();

    let mut by_k: HashMap<u32, Vec<&FlowBytes>> = HashMap::new();
    for flow in &flows {
        match target_k(&flow.path).filter(|k| sent_set.contains(k)) {
            Some(k) => by_k.entry(k).or_default().push(flow),
            None => report.unattributed += 1,
        }
    }
    let attributed = || {
        by_k.iter()
            .flat_map(|(&k, fs)| fs.iter().map(move |f| (k, f)))
    };
    report.request_overhead =
        most_common(attributed().map(|(k, f)| f.upstream_written - request_len(k) as i64));
    report.response_overhead =
        most_common(attributed().map(|(k, f)| f.downstream_written - body_len(k) as i64));
    let request_overhead = report.request_overhead.unwrap_or_default();
    let response_overhead = report.response_overhead.unwrap_or_default();

    let mut ks: Vec<u32> = sent_set.into_iter().collect();
    ks.sort_unstable();
    for k in ks {
        match by_k.get(&k).map(Vec::as_slice) {
            None | Some([]) => report.missing.push(k),
            Some([flow]) if flow.linked(k, request_overhead, response_overhead) => {
                report.linked += 1;
            }
            Some([flow]) => {
                report.mislinked.push(k);
                report.example(flow.describe(k, request_overhead, response_overhead));
            }
            Some(several) => {
                report.duplicated.push(k);
                for flow in several {
                    report.example(flow.describe(k, request_overhead, response_overhead));
                }
            }
        }
    }
    report
}

/// The value that occurs most often (the smallest of those tied); `None` for no values.
fn most_common(values: impl Iterator<Item = i64>) -> Option<i64> {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|(va, a), (vb, b)| a.cmp(b).then(vb.cmp(va)))
        .map(|(v, _)| v)
}
