//! The machinery of the differential test (`tests/differential.rs`): one config file, run once by
//! Envoy and once by weir, each with origins of its own that echo what they receive; the same raw
//! requests to both; each exchange rendered as normalised lines, so the two renderings can be
//! compared and a listed difference can name the lines it explains.
//!
//! - [`Rendered::prepare`] rewrites a config's listener, admin and endpoint addresses to
//!   127.0.0.1 and its ports to free ones (each cluster's endpoints to that cluster's origin),
//!   keeping the file's text otherwise as it was.
//! - [`Envoy`] runs `envoy -c FILE --concurrency 1` until dropped; weir runs through
//!   `support::Weir`.
//! - [`EchoOrigin`] answers every request with what it received: the request line, every header
//!   as it arrived (names in their case), the body.
//! - [`exchange`] sends raw bytes on a fresh connection and reads what comes back;
//!   [`render`] turns that into lines with the values that legitimately vary normalised.
//!
//! Every wait is bounded; everything listens on and connects to 127.0.0.1.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::TempFile;
use crate::support::{REQUIRE_ENVOY, envoy_bin};

/// The Envoy binary, or `None` after printing why the test is skipped; without Envoy, a run
/// with `WEIR_REQUIRE_ENVOY=1` (CI's) fails instead.
pub(crate) fn envoy_or_skip() -> Option<std::path::PathBuf> {
    match envoy_bin() {
        Ok(bin) => Some(bin),
        Err(reason) if std::env::var(REQUIRE_ENVOY).is_ok_and(|v| v == "1") => {
            panic!("{REQUIRE_ENVOY}=1, but {reason}")
        }
        Err(reason) => {
            println!("skipped: {reason}");
            None
        }
    }
}

/// The longest a proxy may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Config rewriting
// ---------------------------------------------------------------------------------------------

/// A weir test config made Envoy's: its first `port_value: 0` (the admin's) and its second
/// (the listener's) become free ports. Returns the config, the listener port, the admin port.
pub(crate) fn envoy_ports(config: &str) -> (String, u16, u16) {
    let (port, admin) = (free_port(), free_port());
    let config = config
        .replacen("port_value: 0 }", &format!("port_value: {admin} }}"), 1)
        .replacen("port_value: 0 }", &format!("port_value: {port} }}"), 1);
    (config, port, admin)
}

/// A port nothing listens on (bound, then released), never handed out before in this test
/// process: the kernel may give a released port to the next bind at once, and the tests run
/// side by side. The window between release and use is small; the proxies fail loudly if
/// another process takes the port meanwhile.
pub(crate) fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a free port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// One proxy's copy of a config: its own listener and admin ports, and its own origins, one per
/// cluster (a cluster whose name starts with `refused` gets a port nothing listens on).
pub(crate) struct Rendered {
    pub(crate) text: String,
    /// Each listener's new port, in the config's order.
    pub(crate) listeners: Vec<u16>,
    pub(crate) admin: Option<u16>,
    /// The origins, by cluster name; they live as long as this.
    pub(crate) origins: BTreeMap<String, EchoOrigin>,
}

impl Rendered {
    /// Rewrites `text` (YAML or JSON) for one proxy: every `address` that is an IP becomes
    /// 127.0.0.1, listener and admin ports become free ports, endpoint ports become their
    /// cluster's origin's port, and `destination_port` follows its listener's port.
    pub(crate) fn prepare(text: &str) -> Rendered {
        let tree: serde_json::Value =
            serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("config does not parse: {e}"));
        let mut ports: HashMap<u16, u16> = HashMap::new();
        let mut map = |old: u16, new: u16, what: &str| {
            if let Some(previous) = ports.insert(old, new) {
                assert_eq!(
                    previous, new,
                    "port {old} has two roles in the config ({what}); the rewrite needs one"
                );
            }
        };
        let port_of = |addr: &serde_json::Value| -> u16 {
            let v = &addr["socket_address"]["port_value"];
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or_else(|| panic!("no port_value in {addr}"))
        };
        let admin = tree["admin"].get("address").map(|a| {
            let new = free_port();
            map(port_of(a), new, "admin");
            new
        });
        let resources = &tree["static_resources"];
        let mut listeners = Vec::new();
        for listener in resources["listeners"].as_array().into_iter().flatten() {
            let new = free_port();
            map(port_of(&listener["address"]), new, "listener");
            listeners.push(new);
        }
        let mut origins = BTreeMap::new();
        for cluster in resources["clusters"].as_array().into_iter().flatten() {
            let name = cluster["name"].as_str().expect("cluster name").to_string();
            let port = if name.starts_with("refused") {
                free_port()
            } else {
                let origin = EchoOrigin::start(&name);
                let port = origin.addr.port();
                origins.insert(name.clone(), origin);
                port
            };
            let endpoints = cluster["load_assignment"]["endpoints"].as_array();
            for locality in endpoints.into_iter().flatten() {
                for lb in locality["lb_endpoints"].as_array().into_iter().flatten() {
                    map(port_of(&lb["endpoint"]["address"]), port, &name);
                }
            }
        }
        let text = rewrite_values(text, "port_value", |v| {
            let old: u16 = v.parse().unwrap_or_else(|_| panic!("port_value {v:?}"));
            let new = ports
                .get(&old)
                .unwrap_or_else(|| panic!("port {old} has no role"));
            Some(new.to_string())
        });
        let text = rewrite_values(&text, "destination_port", |v| {
            let old: u16 = v
                .parse()
                .unwrap_or_else(|_| panic!("destination_port {v:?}"));
            ports.get(&old).map(u16::to_string)
        });
        let text = rewrite_values(&text, "address", |v| {
            v.parse::<std::net::IpAddr>()
                .is_ok()
                .then(|| "127.0.0.1".to_string())
        });
        Rendered {
            text,
            listeners,
            admin,
            origins,
        }
    }
}

/// Replaces the scalar value of every `key:` (YAML) or `"key":` (JSON) whose key is exactly
/// `key` (not `socket_address` for `address`) with `f(value)` when that is `Some`, keeping any
/// quotes around it.
fn rewrite_values(text: &str, key: &str, f: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(key) {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + key.len()..];
        let standalone = !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let after_quote = after.strip_prefix('"').unwrap_or(after);
        let colon = after_quote.trim_start_matches([' ', '\t']);
        out.push_str(&rest[..at + key.len()]);
        rest = after;
        let Some(value_start) = colon.strip_prefix(':').filter(|_| standalone) else {
            continue;
        };
        let value_start = value_start.trim_start_matches([' ', '\t']);
        let quote = value_start
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'');
        let body = &value_start[quote.map_or(0, char::len_utf8)..];
        let end = match quote {
            Some(q) => body.find(q).unwrap_or(body.len()),
            None => body
                .find([',', '}', ']', '\n', ' ', '#', '\r'])
                .unwrap_or(body.len()),
        };
        let Some(new) = f(&body[..end]) else { continue };
        // Copy up to the value, then the new value; skip the old one.
        let value_offset = after.len() - body.len();
        out.push_str(&after[..value_offset]);
        out.push_str(&new);
        rest = &body[end..];
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// Envoy
// ---------------------------------------------------------------------------------------------

static BASE_ID: AtomicU32 = AtomicU32::new(0);

/// An `envoy -c FILE --concurrency 1` process, killed on drop.
pub(crate) struct Envoy {
    child: Child,
    _config: TempFile,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Envoy {
    /// Starts Envoy on `config` (named `name`, whose extension tells Envoy YAML from JSON) and
    /// waits until its admin says it is ready, or, without admin, until `listener` accepts.
    pub(crate) fn start(
        bin: &Path,
        name: &str,
        config: &str,
        admin: Option<u16>,
        listener: u16,
    ) -> Envoy {
        Envoy::start_with(bin, name, config, admin, listener, &[])
    }

    /// [`Envoy::start`] with more command-line arguments (`--file-flush-interval-msec 20`
    /// for a test that reads its access log: Envoy's default is 10 s).
    pub(crate) fn start_with(
        bin: &Path,
        name: &str,
        config: &str,
        admin: Option<u16>,
        listener: u16,
        args: &[&str],
    ) -> Envoy {
        let file = TempFile::new(name, config);
        // Hot restart is off, so no shared memory; a base id of this process's own keeps
        // parallel Envoys (other tests, other engineers) apart all the same.
        let base_id = 1000
            + (std::process::id() % 100_000) * 16
            + BASE_ID.fetch_add(1, Ordering::Relaxed) % 16;
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(file.path())
            .args(["--concurrency", "1", "--disable-hot-restart", "-l", "error"])
            .args(["--base-id", &base_id.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("envoy log").extend_from_slice(&buf[..n]);
            }
        });
        let mut envoy = Envoy {
            child,
            _config: file,
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                panic!("envoy exited ({status}) at start:\n{}", envoy.log_text());
            }
            let ready = match admin {
                Some(port) => admin_ready(port),
                None => TcpStream::connect(("127.0.0.1", listener)).is_ok(),
            };
            if ready && TcpStream::connect(("127.0.0.1", listener)).is_ok() {
                return envoy;
            }
            assert!(
                Instant::now() < deadline,
                "envoy not ready within {START_TIMEOUT:?}:\n{}",
                envoy.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().expect("envoy log")).into_owned()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether Envoy's admin `/ready` answers 200.
fn admin_ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /ready HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out.starts_with(b"HTTP/1.1 200")
}

// ---------------------------------------------------------------------------------------------
// The echo origin
// ---------------------------------------------------------------------------------------------

/// An origin that answers every request with what it received. It reads the request head and a
/// body framed by Content-Length or chunked, then answers 200 (or `?status=N`) with
/// `x-echo-cluster`, `x-echo-method` and `x-echo-target` headers and a text body: the request
/// line, each header line as it arrived, `body-bytes: N` and the body (when it is short text).
/// Query flags: `status=N` answers N; `delay_ms=N` answers after N ms; `fail=N&key=K` answers
/// 503 to the first N requests carrying key K (for retries), `fail_grpc=N&key=K` answers them
/// `grpc-status: 14` (then `0`); `reset=1` closes without answering; `mixed_case=1` adds
/// response headers whose names are in mixed case (`X-Origin-Case`, `ETAG`, `x-Weird_NAME-9a`,
/// and `X-Dup` then `x-dup`).
pub(crate) struct EchoOrigin {
    pub(crate) addr: SocketAddr,
}

impl EchoOrigin {
    pub(crate) fn start(cluster: &str) -> EchoOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let cluster = cluster.to_string();
        let failures: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        std::thread::spawn(move || {
            for socket in listener.incoming() {
                let Ok(socket) = socket else { continue };
                let (cluster, failures) = (cluster.clone(), failures.clone());
                std::thread::spawn(move || {
                    let _ = echo_connection(socket, &cluster, &failures);
                });
            }
        });
        EchoOrigin { addr }
    }
}

fn echo_connection(
    socket: TcpStream,
    cluster: &str,
    failures: &Mutex<HashMap<String, u32>>,
) -> io::Result<()> {
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    socket.set_nodelay(true)?;
    let mut writer = socket.try_clone()?;
    let mut reader = BufReader::new(socket);
    loop {
        let mut head_lines = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let line = String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            if line.is_empty() {
                break;
            }
            head_lines.push(line);
        }
        let request_line = head_lines.first().cloned().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let header = |name: &str| {
            head_lines[1..].iter().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let length: usize = header("content-length").map_or(0, |v| v.parse().unwrap_or(0));
        let body = if chunked {
            read_chunked(&mut reader)?
        } else {
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            body
        };
        let query = |key: &str| {
            let (_, q) = target.split_once('?')?;
            q.split('&')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        if query("reset").is_some() {
            return Ok(());
        }
        if let Some(ms) = query("delay_ms").and_then(|v| v.parse().ok()) {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let mut status: u16 = query("status").and_then(|v| v.parse().ok()).unwrap_or(200);
        // `fail=N` and `fail_grpc=N` count the requests carrying `key`: the first N fail.
        let failing = |flag: &str| {
            let (n, key) = (query(flag)?.parse::<u32>().ok()?, query("key")?);
            let mut failures = failures.lock().expect("failures");
            let seen = failures.entry(key).or_insert(0);
            *seen += 1;
            Some(*seen <= n)
        };
        if failing("fail") == Some(true) {
            status = 503;
        }
        let grpc = match failing("fail_grpc") {
            Some(true) => "grpc-status: 14\r\n",
            Some(false) => "grpc-status: 0\r\n",
            None => "",
        };
        let mut text = String::new();
        for line in &head_lines {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&format!("body-bytes: {}\n", body.len()));
        if body.len() <= 256 && !body.is_empty() {
            text.push_str(&String::from_utf8_lossy(&body));
            text.push('\n');
        }
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut server = query("server").map_or(String::new(), |s| format!("server: {s}\r\n"));
        if query("mixed_case").is_some() {
            server.push_str(
                "X-Origin-Case: Mixed\r\nETAG: \"e\"\r\nx-Weird_NAME-9a: w\r\nX-Dup: a\r\nx-dup: b\r\n",
            );
        }
        let head = format!(
            "HTTP/1.1 {status} Echo\r\nx-echo-cluster: {cluster}\r\nx-echo-method: {method}\r\n\
             x-echo-target: {target}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{}{server}{grpc}\r\n",
            if method == "HEAD" { 0 } else { text.len() },
            if close { "connection: close\r\n" } else { "" },
        );
        let mut out = head.into_bytes();
        if method != "HEAD" {
            out.extend_from_slice(text.as_bytes());
        }
        writer.write_all(&out)?;
        if close {
            let _ = writer.shutdown(Shutdown::Write);
            return Ok(());
        }
    }
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size, 16).map_err(io::Error::other)?;
        if size == 0 {
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        line.clear();
        reader.read_line(&mut line)?;
    }
}

// ---------------------------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------------------------

/// One response as it came off the wire.
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub(crate) status_line: String,
    /// Header fields in order, names as sent.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

/// How the connection ended after the responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// Still open after the responses the case expects (not waited on further).
    Open,
    /// The proxy closed it (FIN).
    Closed,
    /// The proxy reset it.
    Reset,
    /// Nothing more came within the wait, though the last response asked to close or a
    /// response was still due.
    Silent,
    /// Bytes that are not a response.
    Garbage(String),
}

/// What a client saw: the responses (interim 1xx included) and how the connection ended.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub(crate) responses: Vec<RawResponse>,
    pub(crate) end: End,
}

/// A request to send: its bytes, how many final responses to wait for, and whether each is to a
/// HEAD (no body follows).
pub(crate) struct Request {
    pub(crate) bytes: Vec<u8>,
    pub(crate) heads: Vec<bool>,
}

/// How long a client waits for the next response byte, or for a close it expects.
const WAIT: Duration = Duration::from_secs(3);

/// Sends `request` on a fresh connection to `addr` and reads what comes back: `heads.len()`
/// final responses, then, if the last asked to close (or HTTP/1.0 without keep-alive), the
/// close itself.
pub(crate) fn exchange(addr: SocketAddr, request: &Request) -> Exchange {
    let socket = TcpStream::connect_timeout(&addr, WAIT).expect("connect to proxy");
    socket.set_read_timeout(Some(WAIT)).expect("timeout");
    socket.set_nodelay(true).expect("nodelay");
    let mut writer = socket.try_clone().expect("clone");
    let mut reader = BufReader::new(socket);
    let mut responses = Vec::new();
    // A proxy may answer and close before taking every byte; a failed write shows in what is
    // read next.
    let _ = writer.write_all(&request.bytes);
    let mut finals = 0;
    while finals < request.heads.len() {
        match read_response(&mut reader, request.heads[finals]) {
            Ok(Some(r)) => {
                if !(100..200).contains(&r.status()) {
                    finals += 1;
                }
                responses.push(r);
            }
            Ok(None) => {
                return Exchange {
                    responses,
                    end: End::Closed,
                };
            }
            Err(e) => {
                return Exchange {
                    responses,
                    end: error_end(&e),
                };
            }
        }
    }
    let wants_close = responses.last().is_some_and(|r| {
        r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            || (r.status_line.starts_with("HTTP/1.0")
                && !r
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")))
    });
    let end = if wants_close {
        let mut byte = [0u8; 1];
        match reader.read(&mut byte) {
            Ok(0) => End::Closed,
            Ok(_) => End::Garbage(format!("{:?} after the responses", byte[0] as char)),
            // A close with request bytes still unread reaches the client as a reset; once the
            // whole response is in, whether it came as FIN or RST is a race, not a behaviour.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => End::Closed,
            Err(e) => error_end(&e),
        }
    } else {
        End::Open
    };
    Exchange { responses, end }
}

fn error_end(e: &io::Error) -> End {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => End::Reset,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => End::Silent,
        io::ErrorKind::UnexpectedEof => End::Closed,
        _ => End::Garbage(e.to_string()),
    }
}

/// Reads one response; `Ok(None)` on EOF before its first byte.
fn read_response(reader: &mut impl BufRead, head_request: bool) -> io::Result<Option<RawResponse>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    let status_line = String::from_utf8_lossy(&line)
        .trim_end_matches(['\r', '\n'])
        .to_string();
    if !status_line.starts_with("HTTP/") {
        return Err(io::Error::other(format!(
            "not a status line: {status_line:?}"
        )));
    }
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let field = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        if field.is_empty() {
            break;
        }
        let (n, v) = field.split_once(':').unwrap_or((&field, ""));
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let mut response = RawResponse {
        status_line,
        headers,
        body: Vec::new(),
    };
    let status = response.status();
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some(response));
    }
    if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        response.body = read_chunked(reader)?;
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().map_err(io::Error::other)?;
        response.body = vec![0; len];
        reader.read_exact(&mut response.body)?;
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(Some(response))
}

// ---------------------------------------------------------------------------------------------
// Rendering and normalising
// ---------------------------------------------------------------------------------------------

/// One line of a rendered exchange: which response it belongs to (0 for the end) and the text.
pub(crate) type Line = (usize, String);

/// Renders an exchange as lines, with what legitimately varies normalised:
/// - `status HTTP/1.1 200` and `reason OK`, then `header name: value` sorted by lower-case name (a name's
///   own values keep their order); `date` becomes `<date>`, `x-envoy-upstream-service-time`
///   `<ms>`; an echoed response's `content-length` becomes `<echo>` (the echo's length follows
///   the request headers, which are compared line by line below);
/// - an echoed body as `upstream <request line>`, `upstream-header name: value` (sorted the same
///   way, names in lower case, each followed by `upstream-header-case Name` when the origin
///   received it in another case) and `upstream <rest>`; any other body as `body <line>`;
/// - UUIDs anywhere become `<uuid>`;
/// - `end open|closed|reset|silent|garbage …`.
pub(crate) fn render(exchange: &Exchange) -> Vec<Line> {
    let mut lines = Vec::new();
    for (i, r) in exchange.responses.iter().enumerate() {
        let i = i + 1;
        let mut status_line = r.status_line.splitn(3, ' ');
        let version = status_line.next().unwrap_or_default();
        let code = status_line.next().unwrap_or_default();
        lines.push((i, format!("status {version} {code}")));
        lines.push((
            i,
            format!("reason {}", status_line.next().unwrap_or_default()),
        ));
        let echoed = r.header("x-echo-cluster").is_some();
        let mut headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|(n, v)| {
                let lower = n.to_ascii_lowercase();
                let v = match lower.as_str() {
                    "date" => "<date>".to_string(),
                    "x-envoy-upstream-service-time" => "<ms>".to_string(),
                    "content-length" if echoed => "<echo>".to_string(),
                    _ => v.clone(),
                };
                (n.clone(), v)
            })
            .collect();
        headers.sort_by_key(|(n, _)| n.to_ascii_lowercase());
        for (n, v) in headers {
            lines.push((i, format!("header {n}: {v}")));
        }
        let text = String::from_utf8_lossy(&r.body);
        if echoed && !r.body.is_empty() {
            let mut body_lines = text.lines();
            if let Some(first) = body_lines.next() {
                lines.push((i, format!("upstream {first}")));
            }
            let mut fields = Vec::new();
            let mut rest = Vec::new();
            for l in body_lines {
                if rest.is_empty() && !l.starts_with("body-bytes: ") {
                    fields.push(l.to_string());
                } else {
                    rest.push(l.to_string());
                }
            }
            fields.sort_by_key(|f| f.split(':').next().unwrap_or_default().to_ascii_lowercase());
            for f in fields {
                let (name, value) = f.split_once(':').unwrap_or((&f, ""));
                let lower = name.to_ascii_lowercase();
                lines.push((i, format!("upstream-header {lower}:{value}")));
                if lower != name {
                    lines.push((i, format!("upstream-header-case {name}")));
                }
            }
            lines.extend(rest.into_iter().map(|l| (i, format!("upstream {l}"))));
        } else {
            lines.extend(
                text.lines()
                    .map(|l| (i, format!("body {}", l.escape_debug()))),
            );
        }
    }
    let end = match &exchange.end {
        End::Open => "end open".to_string(),
        End::Closed => "end closed".to_string(),
        End::Reset => "end reset".to_string(),
        End::Silent => "end silent".to_string(),
        End::Garbage(what) => format!("end garbage {what}"),
    };
    lines.push((0, end));
    for (_, l) in &mut lines {
        *l = normalise_uuids(l);
    }
    lines
}

/// Replaces every RFC 4122-shaped UUID in `s` with `<uuid>`.
fn normalise_uuids(s: &str) -> String {
    let b = s.as_bytes();
    let is_uuid = |w: &[u8]| {
        w.len() == 36
            && w.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
    };
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if i + 36 <= b.len() && is_uuid(&b[i..i + 36]) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let c = s[i..].chars().next().expect("char");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}
