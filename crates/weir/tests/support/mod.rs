//! Shared helpers for the binary-level tests: running the `weir` executable (one-shot or as a
//! server whose bound ports are parsed from its log), in-test origin servers, a raw HTTP/1.1
//! client, and a streaming checksum for large bodies.
//!
//! Everything is bounded: every wait has a deadline and every socket a timeout, so a hung proxy
//! fails a test instead of hanging the suite.

#![allow(dead_code)]

pub(crate) mod dns;
pub(crate) mod pki;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The longest any single wait in these tests may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(15);

/// The `weir` executable cargo built for these tests.
pub(crate) fn weir_bin() -> &'static str {
    env!("CARGO_BIN_EXE_weir")
}

/// The repository's `examples/` directory.
pub(crate) fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

// ---------------------------------------------------------------------------------------------
// Envoy (the differential test's oracle, and a proxy `weir trace` follows)
// ---------------------------------------------------------------------------------------------

/// Set to 1 (scripts/test.sh does) when Envoy must be there: a missing Envoy fails the test.
pub(crate) const REQUIRE_ENVOY: &str = "WEIR_REQUIRE_ENVOY";

/// The Envoy binary: `$WEIR_ENVOY`, else the repository's `.venv/envoy/bin/envoy`
/// (scripts/install-envoy.sh), else `envoy` on PATH; `Err(why)` when there is none.
pub(crate) fn envoy_bin() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("WEIR_ENVOY") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("WEIR_ENVOY={} is not a file", path.display()))
        };
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/envoy/bin/envoy");
    if venv.is_file() {
        return Ok(venv);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("envoy"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "no Envoy: set WEIR_ENVOY or run scripts/install-envoy.sh (scripts/test.sh does)".into()
        })
}

// ---------------------------------------------------------------------------------------------
// Temporary files
// ---------------------------------------------------------------------------------------------

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A file in the system temp dir, removed on drop.
pub(crate) struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// Writes `contents` to a fresh file whose name ends with `name` (keep the extension
    /// meaningful: weir reads `.yaml` as YAML and `.json` as JSON).
    pub(crate) fn new(name: &str, contents: impl AsRef<[u8]>) -> TempFile {
        let path = TempFile::unique_path(name);
        std::fs::write(&path, contents).expect("write temp file");
        TempFile { path }
    }

    /// A unique path in the temp dir that nothing has created (for "file not found" tests).
    pub(crate) fn unique_path(name: &str) -> PathBuf {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        std::env::temp_dir().join(format!(
            "weir-bintest-{}-{n}-{nanos}-{name}",
            std::process::id()
        ))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// Running weir once (validate, demo, a run that must fail)
// ---------------------------------------------------------------------------------------------

/// What a finished `weir` invocation produced.
pub(crate) struct Ran {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ran {
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `weir ARGS` to completion within `timeout` (killing it and panicking if it takes
/// longer). stdout and stderr are captured (ANSI colour codes removed).
pub(crate) fn run_weir(args: &[&str], timeout: Duration) -> Ran {
    let mut child = Command::new(weir_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weir");
    let out_thread = read_all_thread(child.stdout.take().expect("stdout"));
    let err_thread = read_all_thread(child.stderr.take().expect("stderr"));
    let status = wait_child(&mut child, timeout)
        .unwrap_or_else(|| panic!("weir {args:?} did not finish within {timeout:?}"));
    let stdout = strip_ansi(&String::from_utf8_lossy(&out_thread.join().expect("join")));
    let stderr = strip_ansi(&String::from_utf8_lossy(&err_thread.join().expect("join")));
    Ran {
        status,
        stdout,
        stderr,
    }
}

/// Runs `program ARGS` to completion within `timeout` (killing it and panicking if it takes
/// longer), capturing stdout and stderr (lossily decoded; ANSI codes are kept).
pub(crate) fn run_program(program: &str, args: &[&str], timeout: Duration) -> Ran {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let out_thread = read_all_thread(child.stdout.take().expect("stdout"));
    let err_thread = read_all_thread(child.stderr.take().expect("stderr"));
    let status = wait_child(&mut child, timeout)
        .unwrap_or_else(|| panic!("{program} {args:?} did not finish within {timeout:?}"));
    Ran {
        status,
        stdout: String::from_utf8_lossy(&out_thread.join().expect("join")).into_owned(),
        stderr: String::from_utf8_lossy(&err_thread.join().expect("join")).into_owned(),
    }
}

/// Reads a pipe to its end on a thread of its own (so a full pipe never blocks the child).
fn read_all_thread(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = pipe.read_to_end(&mut s);
        s
    })
}

/// Waits for a child to exit; on timeout kills it and returns `None`.
pub(crate) fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Removes ANSI escape sequences (`ESC [ … final-byte`), which tracing's formatter may emit.
pub(crate) fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// A running weir server
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct LogState {
    lines: Vec<String>,
    closed: bool,
}

/// The stderr lines of a running weir, shared with the thread that reads them.
#[derive(Clone, Default)]
struct Log(Arc<(Mutex<LogState>, Condvar)>);

impl Log {
    fn push(&self, line: String) {
        let (m, cv) = &*self.0;
        m.lock().expect("log lock").lines.push(line);
        cv.notify_all();
    }

    fn close(&self) {
        let (m, cv) = &*self.0;
        m.lock().expect("log lock").closed = true;
        cv.notify_all();
    }

    /// Waits until some line satisfies `pred` (returning it) or stderr closes / time runs out.
    fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.0;
        let mut state = m.lock().expect("log lock");
        loop {
            if let Some(line) = state.lines.iter().find(|l| pred(l)) {
                return Some(line.clone());
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = cv.wait_timeout(state, deadline - now).expect("log lock").0;
        }
    }

    fn lines(&self) -> Vec<String> {
        self.0.0.lock().expect("log lock").lines.clone()
    }
}

/// A `weir -c CONFIG` process. Killed (SIGKILL) on drop if still running.
pub(crate) struct Weir {
    child: Child,
    log: Log,
    _config: TempFile,
    /// Each listener's name and bound address, from the `listening` log lines.
    pub(crate) listeners: Vec<(String, SocketAddr)>,
    /// The admin listener's bound address, from the `admin listening` log line.
    pub(crate) admin: SocketAddr,
}

impl Weir {
    /// Writes `config` (YAML) to a temp file, runs `weir -c FILE ARGS`, and waits (≤ 15 s) for
    /// the `admin listening` line, which weir logs after every listener is bound. The config
    /// must therefore have an `admin` section; ports may be 0.
    pub(crate) fn start(config: &str, args: &[&str]) -> Weir {
        Weir::start_under(&[], config, args)
    }

    /// Like [`Weir::start`], run through `wrapper` (e.g. `prlimit --nofile=64:64`).
    pub(crate) fn start_under(wrapper: &[&str], config: &str, args: &[&str]) -> Weir {
        Weir::start_file(wrapper, TempFile::new("weir.yaml", config), args)
    }

    /// Like [`Weir::start`], with the config in a file named after `name` (its extension
    /// tells YAML from JSON).
    pub(crate) fn start_named(name: &str, config: &str, args: &[&str]) -> Weir {
        Weir::start_file(&[], TempFile::new(name, config), args)
    }

    fn start_file(wrapper: &[&str], file: TempFile, args: &[&str]) -> Weir {
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(weir_bin());
                c
            }
            None => Command::new(weir_bin()),
        };
        let mut child = command
            .arg("-c")
            .arg(file.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir");
        let pid = child.id();
        let stderr = child.stderr.take().expect("stderr");
        let log = Log::default();
        let reader_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                eprintln!("[weir {pid}] {line}");
                reader_log.push(line);
            }
            reader_log.close();
        });
        let admin_line = log.wait_for(TIMEOUT, |l| l.contains("admin listening"));
        let mut weir = Weir {
            child,
            log,
            _config: file,
            listeners: Vec::new(),
            admin: "127.0.0.1:0".parse().expect("addr"),
        };
        let Some(admin_line) = admin_line else {
            let _ = weir.child.kill();
            panic!(
                "weir did not log `admin listening` within {TIMEOUT:?}; its stderr:\n{}",
                weir.log.lines().join("\n")
            );
        };
        weir.admin = log_field(&admin_line, "address")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {admin_line:?}"));
        for line in weir.log.lines() {
            if line.contains(" listening ") && !line.contains("admin listening") {
                let name = log_field(&line, "listener").unwrap_or_default();
                let address = log_field(&line, "address")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("no address in {line:?}"));
                weir.listeners.push((name.to_string(), address));
            }
        }
        assert!(
            !weir.listeners.is_empty(),
            "weir logged no `listening` line for a listener"
        );
        weir
    }

    /// The first listener's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.listeners[0].1
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file it was started with (a reload test rewrites it).
    pub(crate) fn config_path(&self) -> &Path {
        self._config.path()
    }

    /// Sends a signal (`TERM`, `INT`, …) with the `kill` command.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} failed: {status}");
    }

    /// Waits for weir to exit; panics (after killing it) if it has not within `timeout`.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_child(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("weir did not exit within {timeout:?}"))
    }

    /// Waits for a log line containing `needle`.
    pub(crate) fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.log.wait_for(timeout, |l| l.contains(needle))
    }

    /// Every stderr line so far (ANSI codes removed).
    pub(crate) fn log_lines(&self) -> Vec<String> {
        self.log.lines()
    }

    /// A field of weir's `/proc/<pid>/status`, in kB (e.g. `VmHWM`, `VmRSS`).
    pub(crate) fn proc_status_kib(&self, field: &str) -> u64 {
        proc_status_kib(self.pid(), field)
    }

    /// `POST path` on the admin listener: the status and the body.
    pub(crate) fn admin_post(&self, path: &str) -> (u16, String) {
        let mut client = Client::connect(self.admin).expect("connect admin");
        let request = format!("POST {path} HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n");
        client.send(request.as_bytes()).expect("send");
        let response = client.read_response().expect("a response");
        (response.head.status(), response.text())
    }

    /// Counter or gauge `name`, from `/stats`.
    pub(crate) fn stat(&self, name: &str) -> u64 {
        let text = get(self.admin, &format!("/stats?filter=^{name}$"))
            .expect("/stats")
            .text();
        text.split(": ")
            .nth(1)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text:?}"))
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The value of `key=value` in a (colour-stripped) tracing line.
pub(crate) fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|token| token.strip_prefix(key)?.strip_prefix('='))
}

/// A `kB` field of `/proc/<pid>/status`.
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// An address nothing answers: a socket bound but not listening, so connects are refused
/// and, while the returned socket lives, no other test's listener can take the port (one
/// bound and dropped could be handed to a parallel test's origin).
pub(crate) fn refusing_address() -> (socket2::Socket, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    socket.bind(&any.into()).expect("bind");
    let addr = socket
        .local_addr()
        .expect("local address")
        .as_socket()
        .expect("an IP address");
    (socket, addr)
}

/// One `lb_endpoints[]` line for `origin`, as [`proxy_config`] writes it (so a test can
/// replace it with several).
pub(crate) fn endpoint_line(origin: SocketAddr) -> String {
    format!(
        "        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n",
        origin.port()
    )
}

/// A config with an admin listener and one HTTP listener (both on port 0) whose every route
/// goes to one cluster, `origin`, with the given endpoint.
pub(crate) fn proxy_config(origin: SocketAddr) -> String {
    format!(
        r#"node: {{ id: weir-bintest, cluster: tests }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ path: /local }}
                direct_response: {{ status: 200, body: {{ inline_string: "local\n" }} }}
              - match: {{ prefix: / }}
                route: {{ cluster: origin, timeout: 14s }}
              response_headers_to_add:
              - header: {{ key: x-proxied-by, value: weir }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: origin
    type: STATIC
    connect_timeout: 2s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}
"#,
        port = origin.port()
    )
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 message heads and bodies (shared by the origin and the client)
// ---------------------------------------------------------------------------------------------

/// A request or response head: the start line split in three, and the header fields.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    /// Request: method, target, version. Response: version, status, reason.
    pub(crate) start: [String; 3],
    /// Fields in order, names lower-cased.
    pub(crate) headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of a header (name in lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn status(&self) -> u16 {
        self.start[1].parse().expect("status code")
    }

    /// Whether a `connection` header lists `token`.
    pub(crate) fn connection_has(&self, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == "connection")
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn framing(&self, response_without_body: bool, is_response: bool) -> Framing {
        if response_without_body {
            return Framing::Length(0);
        }
        let chunked = self
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            Framing::Chunked
        } else if let Some(len) = self.header("content-length") {
            Framing::Length(len.trim().parse().expect("content-length"))
        } else if is_response {
            Framing::Close
        } else {
            Framing::Length(0)
        }
    }
}

/// How a body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    Close,
}

/// Reads a head; `Ok(None)` on a clean EOF before its first byte.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let start = [(); 3].map(|()| parts.next().unwrap_or_default().to_string());
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let field = line.trim_end_matches(['\r', '\n']);
        if field.is_empty() {
            break;
        }
        let (name, value) = field
            .split_once(':')
            .ok_or_else(|| io::Error::other(format!("bad header line {field:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Some(Head { start, headers }))
}

/// Reads a body, handing each piece to `sink` (nothing is accumulated here).
fn read_body(
    reader: &mut impl BufRead,
    framing: Framing,
    sink: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    match framing {
        Framing::Length(n) => read_exact_into(reader, n, sink),
        Framing::Close => loop {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            let n = buf.len();
            sink(buf);
            reader.consume(n);
        },
        Framing::Chunked => {
            let mut line = String::new();
            loop {
                line.clear();
                reader.read_line(&mut line)?;
                let size = line.trim().split(';').next().unwrap_or_default();
                let size = u64::from_str_radix(size, 16)
                    .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
                if size == 0 {
                    // Trailer section up to the empty line.
                    loop {
                        line.clear();
                        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                            return Ok(());
                        }
                    }
                }
                read_exact_into(reader, size, sink)?;
                line.clear();
                reader.read_line(&mut line)?;
            }
        }
    }
}

fn read_exact_into(
    reader: &mut impl BufRead,
    mut remaining: u64,
    sink: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    while remaining > 0 {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("body ended {remaining} bytes short"),
            ));
        }
        let n = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        sink(&buf[..n]);
        reader.consume(n);
        remaining -= n as u64;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Streaming checksum and body generator
// ---------------------------------------------------------------------------------------------

/// A cheap order-sensitive checksum (Fletcher-style over little-endian u64 words) that gives the
/// same result however the stream is split into pieces.
#[derive(Debug, Clone, Default)]
pub(crate) struct Checksum {
    count: u64,
    a: u64,
    b: u64,
    pending: [u8; 8],
    npending: usize,
}

impl Checksum {
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.count += data.len() as u64;
        if self.npending > 0 {
            let take = (8 - self.npending).min(data.len());
            self.pending[self.npending..self.npending + take].copy_from_slice(&data[..take]);
            self.npending += take;
            data = &data[take..];
            if self.npending < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.pending));
            self.npending = 0;
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.npending = rest.len();
    }

    fn word(&mut self, w: u64) {
        self.a = self.a.wrapping_add(w);
        self.b = self.b.wrapping_add(self.a);
    }

    /// Bytes seen so far.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// `count:digest`, the form the origin reports.
    pub(crate) fn finish(&self) -> String {
        let mut c = self.clone();
        if c.npending > 0 {
            let mut last = [0u8; 8];
            last[..c.npending].copy_from_slice(&c.pending[..c.npending]);
            c.word(u64::from_le_bytes(last));
        }
        format!("{}:{:016x}{:016x}", c.count, c.a, c.b)
    }
}

/// Size of the generator's pieces.
pub(crate) const PIECE: usize = 64 * 1024;

/// Generates `total` bytes in pieces of at most 64 KiB without holding more than one piece:
/// a fixed pattern with each piece's index stamped in its first 8 bytes, so a lost, repeated or
/// reordered piece changes the checksum.
pub(crate) fn generate(total: u64, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    let mut piece: Vec<u8> = (0..PIECE).map(|i| (i * 31 + 7) as u8).collect();
    let mut sent = 0u64;
    let mut index = 0u64;
    while sent < total {
        let n = usize::try_from(total - sent).unwrap_or(PIECE).min(PIECE);
        piece[..8].copy_from_slice(&index.to_le_bytes());
        f(&piece[..n])?;
        sent += n as u64;
        index += 1;
    }
    Ok(())
}

/// The checksum of `generate(total)`.
pub(crate) fn generated_checksum(total: u64) -> String {
    let mut sum = Checksum::default();
    generate(total, |p| {
        sum.update(p);
        Ok(())
    })
    .expect("in-memory");
    sum.finish()
}

// ---------------------------------------------------------------------------------------------
// In-test origin server
// ---------------------------------------------------------------------------------------------

/// A request as the origin sees it; the body is streamed on demand.
pub(crate) struct OriginRequest<'a> {
    pub(crate) head: Head,
    reader: &'a mut BufReader<TcpStream>,
    framing: Framing,
    body_read: bool,
}

impl OriginRequest<'_> {
    pub(crate) fn method(&self) -> &str {
        &self.head.start[0]
    }

    pub(crate) fn target(&self) -> &str {
        &self.head.start[1]
    }

    /// The value of a query parameter.
    pub(crate) fn query(&self, key: &str) -> Option<&str> {
        let (_, query) = self.target().split_once('?')?;
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    /// Streams the body to `sink` (once; later calls see nothing).
    pub(crate) fn body_each(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        if self.body_read {
            return Ok(());
        }
        self.body_read = true;
        read_body(self.reader, self.framing, sink)
    }
}

/// What the origin answers.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: ReplyBody,
    /// Sleep this long before answering (the request is already fully read).
    pub(crate) delay: Duration,
}

/// A reply body, always sent with `content-length`.
pub(crate) enum ReplyBody {
    Bytes(Vec<u8>),
    /// `generate(n)`, streamed.
    Generated(u64),
    /// No `content-length`: `connection: close`, the bytes, then FIN (close-delimited).
    UntilClose(Vec<u8>),
}

impl Reply {
    pub(crate) fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: ReplyBody::Bytes(body.into().into_bytes()),
            delay: Duration::ZERO,
        }
    }
}

type Handler = dyn Fn(&mut OriginRequest<'_>) -> io::Result<Reply> + Send + Sync;

/// Counters an origin keeps.
#[derive(Default)]
pub(crate) struct OriginStats {
    /// Connections accepted.
    pub(crate) accepted: AtomicU64,
    /// Request heads received.
    pub(crate) started: AtomicU64,
    /// Responses fully written.
    pub(crate) served: AtomicU64,
}

/// A thread-per-connection HTTP/1.1 origin on 127.0.0.1 (keep-alive, `content-length`
/// responses). Its threads end with the test process (or when their socket times out).
pub(crate) struct Origin {
    pub(crate) addr: SocketAddr,
    pub(crate) stats: Arc<OriginStats>,
}

impl Origin {
    pub(crate) fn start(
        handler: impl Fn(&mut OriginRequest<'_>) -> io::Result<Reply> + Send + Sync + 'static,
    ) -> Origin {
        Origin::start_at("127.0.0.1:0".parse().expect("address"), handler)
    }

    /// An origin at `address` (another loopback address, a chosen port).
    pub(crate) fn start_at(
        address: SocketAddr,
        handler: impl Fn(&mut OriginRequest<'_>) -> io::Result<Reply> + Send + Sync + 'static,
    ) -> Origin {
        let listener = TcpListener::bind(address).expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let stats = Arc::new(OriginStats::default());
        let handler: Arc<Handler> = Arc::new(handler);
        let accept_stats = stats.clone();
        std::thread::spawn(move || {
            for socket in listener.incoming() {
                let Ok(socket) = socket else { continue };
                accept_stats.accepted.fetch_add(1, Ordering::Relaxed);
                let (handler, stats) = (handler.clone(), accept_stats.clone());
                std::thread::spawn(move || {
                    if let Err(e) = serve_connection(socket, &*handler, &stats) {
                        eprintln!("[origin] connection ended: {e}");
                    }
                });
            }
        });
        Origin { addr, stats }
    }

    /// The standard test origin: see [`standard_handler`].
    pub(crate) fn standard() -> Origin {
        Origin::start(standard_handler)
    }
}

fn serve_connection(socket: TcpStream, handler: &Handler, stats: &OriginStats) -> io::Result<()> {
    socket.set_read_timeout(Some(TIMEOUT))?;
    socket.set_write_timeout(Some(TIMEOUT))?;
    socket.set_nodelay(true)?;
    let mut writer = socket.try_clone()?;
    let mut reader = BufReader::with_capacity(PIECE, socket);
    loop {
        let Some(head) = read_head(&mut reader)? else {
            return Ok(());
        };
        stats.started.fetch_add(1, Ordering::Relaxed);
        let close = head.connection_has("close");
        let framing = head.framing(false, false);
        let mut request = OriginRequest {
            head,
            reader: &mut reader,
            framing,
            body_read: false,
        };
        let reply = handler(&mut request)?;
        request.body_each(&mut |_| {})?;
        std::thread::sleep(reply.delay);
        let len = match &reply.body {
            ReplyBody::Bytes(b) => Some(b.len() as u64),
            ReplyBody::Generated(n) => Some(*n),
            ReplyBody::UntilClose(_) => None,
        };
        let close = close || len.is_none();
        let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
        for (n, v) in &reply.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(len) = len {
            head.push_str(&format!("content-length: {len}\r\n"));
        }
        if close {
            head.push_str("connection: close\r\n");
        }
        head.push_str("\r\n");
        match reply.body {
            ReplyBody::Bytes(body) | ReplyBody::UntilClose(body) => {
                let mut message = head.into_bytes();
                message.extend_from_slice(&body);
                writer.write_all(&message)?;
            }
            ReplyBody::Generated(n) => {
                writer.write_all(head.as_bytes())?;
                generate(n, |piece| writer.write_all(piece))?;
            }
        }
        stats.served.fetch_add(1, Ordering::Relaxed);
        if close {
            let _ = writer.shutdown(Shutdown::Write);
            return Ok(());
        }
    }
}

/// The standard origin's behaviour:
/// - `GET /download?bytes=N`: a generated body of N bytes (see [`generate`]).
/// - `?delay_ms=N` on any path: answer N ms after the request is read.
/// - `?pause_ms=N`: wait N ms before reading the request body.
/// - `?close_delimited=1`: send the text body without `content-length`, then close.
/// - anything else: a text body describing what arrived:
///   `method`, `target`, `body-bytes`, `body-sum` (a [`Checksum`]), `request-id` (present or
///   not), and `body` itself when it is at most 1 KiB of UTF-8.
pub(crate) fn standard_handler(req: &mut OriginRequest<'_>) -> io::Result<Reply> {
    let delay = Duration::from_millis(req.query("delay_ms").map_or(0, |d| d.parse().unwrap_or(0)));
    if let Some(n) = req.query("bytes") {
        let n: u64 = n.parse().map_err(io::Error::other)?;
        return Ok(Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/octet-stream".into())],
            body: ReplyBody::Generated(n),
            delay,
        });
    }
    // `pause_ms`: wait before reading the body, so the proxy has to hold back the sender.
    let pause = req.query("pause_ms").map_or(0, |d| d.parse().unwrap_or(0));
    std::thread::sleep(Duration::from_millis(pause));
    let mut sum = Checksum::default();
    let mut small = Vec::new();
    req.body_each(&mut |piece| {
        sum.update(piece);
        if small.len() <= 1024 {
            small.extend_from_slice(piece);
        }
    })?;
    let mut text = format!(
        "method: {}\ntarget: {}\nbody-bytes: {}\nbody-sum: {}\nrequest-id: {}\n",
        req.method(),
        req.target(),
        sum.count(),
        sum.finish(),
        if req.head.header("x-request-id").is_some() {
            "present"
        } else {
            "absent"
        },
    );
    if let (true, Ok(s)) = (small.len() <= 1024, std::str::from_utf8(&small)) {
        text.push_str(&format!("body: {s}\n"));
    }
    let mut reply = Reply::text(200, text);
    if req.query("close_delimited").is_some()
        && let ReplyBody::Bytes(body) = reply.body
    {
        reply.body = ReplyBody::UntilClose(body);
    }
    reply
        .headers
        .push(("x-origin".into(), "test-origin".into()));
    reply.delay = delay;
    Ok(reply)
}

/// The `key: value` lines of a standard-origin text body.
pub(crate) fn echo_fields(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP client
// ---------------------------------------------------------------------------------------------

/// A complete response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) head: Head,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn status(&self) -> u16 {
        self.head.status()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection (keep-alive capable) with 15 s socket timeouts.
pub(crate) struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> io::Result<Client> {
        let socket = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        socket.set_read_timeout(Some(TIMEOUT))?;
        socket.set_write_timeout(Some(TIMEOUT))?;
        socket.set_nodelay(true)?;
        Ok(Client {
            writer: socket.try_clone()?,
            reader: BufReader::with_capacity(PIECE, socket),
        })
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// This end's address: the peer weir sees.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().expect("local address")
    }

    /// Reads a response head (EOF before it is an error).
    pub(crate) fn read_head(&mut self) -> io::Result<Head> {
        read_head(&mut self.reader)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        })
    }

    /// Streams the body that follows `head` (of a response to a non-HEAD request).
    pub(crate) fn read_body_each(
        &mut self,
        head: &Head,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<()> {
        let status = head.status();
        let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
        read_body(&mut self.reader, head.framing(bodiless, true), sink)
    }

    /// Reads one complete response (skipping any 1xx).
    pub(crate) fn read_response(&mut self) -> io::Result<Response> {
        loop {
            let head = self.read_head()?;
            if (100..200).contains(&head.status()) {
                continue;
            }
            let mut body = Vec::new();
            self.read_body_each(&head, &mut |p| body.extend_from_slice(p))?;
            return Ok(Response { head, body });
        }
    }

    /// Sends a GET and reads its response.
    pub(crate) fn get(&mut self, target: &str) -> io::Result<Response> {
        self.send(format!("GET {target} HTTP/1.1\r\nhost: test.local\r\n\r\n").as_bytes())?;
        self.read_response()
    }

    /// Whether the server closed the connection: a read returns EOF (or a reset) within the
    /// socket timeout, with no further bytes.
    pub(crate) fn closed_by_peer(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }

    /// Sends FIN (the client is done sending).
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        self.writer.shutdown(Shutdown::Write)
    }

    pub(crate) fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.writer.set_read_timeout(Some(timeout))
    }
}

/// One GET on a fresh connection.
pub(crate) fn get(addr: SocketAddr, target: &str) -> io::Result<Response> {
    Client::connect(addr)?.get(target)
}

/// Runs `/usr/bin/curl ARGS` (with `-sS --max-time 10`) and returns its output.
pub(crate) fn curl(args: &[&str]) -> Output {
    let mut child = Command::new("/usr/bin/curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn /usr/bin/curl");
    let out = read_all_thread(child.stdout.take().expect("stdout"));
    let err = read_all_thread(child.stderr.take().expect("stderr"));
    let status = wait_child(&mut child, TIMEOUT).expect("curl finished");
    Output {
        status,
        stdout: out.join().expect("join"),
        stderr: err.join().expect("join"),
    }
}

/// An origin on raw sockets, one request per connection: an upgrade to `websocket` is
/// answered 101 and then echoed; `/big` answers 32 MiB of `x`; anything else `ok`.
pub(crate) fn raw_origin() -> SocketAddr {
    use std::io::{Read, Write};
    fn serve(conn: &mut std::net::TcpStream) -> std::io::Result<()> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if conn.read(&mut byte)? == 0 {
                return Ok(());
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        if head.contains("upgrade: websocket") {
            conn.write_all(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n")?;
            let mut buf = [0u8; 4096];
            loop {
                let n = conn.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                conn.write_all(&buf[..n])?;
            }
        }
        let body = match head.starts_with("get /big ") {
            true => vec![b'x'; BIG],
            false => b"ok".to_vec(),
        };
        let len = body.len();
        conn.write_all(
            format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        conn.write_all(&body)
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || serve(&mut conn));
        }
    });
    addr
}

pub(crate) const BIG: usize = 32 << 20;

/// Reads a response head from `conn`, byte by byte (so nothing after it is consumed).
pub(crate) fn read_raw_head(conn: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(conn.read(&mut byte).expect("read"), 1, "closed in the head");
        head.push(byte[0]);
    }
    String::from_utf8(head).expect("text")
}

/// A plain TCP connection to `addr`, reads bounded by 20 s (for raw WebSocket and download
/// checks).
pub(crate) fn raw_connect(addr: SocketAddr) -> std::net::TcpStream {
    let conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    conn
}

/// Sends `text` on a WebSocket to [`raw_origin`] and checks it comes back.
pub(crate) fn echo(ws: &mut std::net::TcpStream, text: &[u8]) {
    use std::io::{Read, Write};
    ws.write_all(text).expect("send");
    let mut back = vec![0u8; text.len()];
    ws.read_exact(&mut back).expect("echo");
    assert_eq!(back, text);
}

/// A WebSocket through the proxy at `addr` to [`raw_origin`] (route `/ws`), upgraded.
pub(crate) fn open_websocket(addr: SocketAddr) -> std::net::TcpStream {
    use std::io::Write;
    let mut ws = raw_connect(addr);
    ws.write_all(
        b"GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
    )
    .expect("send");
    let head = read_raw_head(&mut ws);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    ws
}

/// `GET /big` through the proxy at `addr` to [`raw_origin`]: its head read, its [`BIG`]
/// body bytes left to read.
pub(crate) fn start_download(addr: SocketAddr) -> std::net::TcpStream {
    use std::io::Write;
    let mut download = raw_connect(addr);
    download
        .write_all(b"GET /big HTTP/1.1\r\nhost: a\r\n\r\n")
        .expect("send");
    let head = read_raw_head(&mut download);
    assert!(head.contains(&format!("content-length: {BIG}")), "{head}");
    download
}

/// Reads the rest of a [`start_download`] of which `received` bytes were read, and checks
/// the whole body arrived.
pub(crate) fn finish_download(download: &mut std::net::TcpStream, received: usize) {
    use std::io::Read;
    let mut rest = vec![0u8; BIG - received];
    download
        .read_exact(&mut rest)
        .expect("the rest of the download");
    assert!(
        rest.iter().all(|&b| b == b'x'),
        "the download arrived whole"
    );
}
