//! The desync tests' own harness: the `http_desync_guardian` corpus turned into wire bytes, an
//! origin that records every byte of every connection, and a client that reads whatever comes
//! back (responses, a close, nothing) without panicking, so a data-driven test can report every
//! case.
//!
//! - [`corpus`] finds the `http_desync_guardian` package through `cargo metadata` (it is a
//!   dev-dependency, so cargo has it unpacked) and reads every `tests/*.yaml` of it.
//! - [`Case::wire`] writes a case as the crate's own test harness does
//!   (`src/request_analyzer.rs`, `run_test_case`), plus a `Host` and a body where needed.
//! - [`RecordingOrigin`] answers each complete request `200` with `content-length` and keeps
//!   the raw bytes of each connection, even those it cannot parse.
//! - [`Talk`] is a client connection that sends raw bytes and reads responses or a close.

// Each test file compiles this module into its own crate; `pub` is its API for `desync.rs`.
#![allow(dead_code, unreachable_pub)]

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use weir_http1::{BytesMut, Limits, RequestDecoder, RequestEvent, ResponseDecoder, ResponseEvent};

/// The Host a case gets when it has none: the corpus leaves it out (the guardian does not look
/// at it) but weir, as RFC 9112 §3.2 requires, rejects an HTTP/1.1 request without one.
pub const DEFAULT_HOST: &str = "desync.test";

// ---------------------------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------------------------

/// The guardian's verdict for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Compliant,
    Acceptable,
    Ambiguous,
    Severe,
}

impl Tier {
    fn parse(s: &str) -> Option<Tier> {
        Some(match s {
            "Compliant" => Tier::Compliant,
            "Acceptable" => Tier::Acceptable,
            "Ambiguous" => Tier::Ambiguous,
            "Severe" => Tier::Severe,
            _ => return None,
        })
    }
}

/// One labelled request of the corpus, its fields as bytes.
#[derive(Clone, Debug)]
pub struct Case {
    /// The YAML file's stem (`severe`, `rfc-compliant`…).
    pub file: String,
    pub name: String,
    pub method: Vec<u8>,
    pub uri: Vec<u8>,
    pub version: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub tier: Tier,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({:?})", self.file, self.name, self.tier)
    }
}

/// The directory holding the corpus: `tests/` of the `http_desync_guardian` package that cargo
/// resolved for this workspace.
pub fn corpus_dir() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let metadata = |offline: bool| {
        let mut command = Command::new(&cargo);
        command
            .args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if offline {
            command.arg("--offline");
        }
        command.output().expect("cargo metadata runs")
    };
    // Offline first: the package is unpacked already (this test was built with it). Cargo may
    // still want the manifests of other platforms' dependencies; then ask the registry.
    let mut output = metadata(true);
    if !output.status.success() {
        output = metadata(false);
    }
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let manifest = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "http_desync_guardian")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("http_desync_guardian is a dev-dependency of weir-proxy");
    PathBuf::from(manifest)
        .parent()
        .expect("package directory")
        .join("tests")
}

/// Every case of every `tests/*.yaml` of the corpus, files in name order, cases in file order.
pub fn corpus() -> Vec<Case> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let file = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).expect("corpus file");
        let parsed: Vec<YamlCase> =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for c in parsed {
            let case = c
                .into_case(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            cases.push(case);
        }
    }
    cases
}

#[derive(Deserialize)]
struct YamlCase {
    name: String,
    uri: Scalar,
    method: Scalar,
    version: Scalar,
    #[serde(default)]
    headers: Option<Vec<YamlHeader>>,
    expected: YamlExpected,
}

#[derive(Deserialize)]
struct YamlHeader {
    name: Scalar,
    value: Scalar,
}

#[derive(Deserialize)]
struct YamlExpected {
    tier: String,
}

/// A YAML scalar as text: the corpus writes some values as plain integers (`value: 1000`),
/// which the guardian's harness turns back into their decimal text.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl YamlCase {
    fn into_case(self, file: &str) -> Result<Case, String> {
        let name = self.name;
        let bytes = |s: &Scalar| wire_bytes(&s.0).map_err(|e| format!("case {name:?}: {e}"));
        let tier = Tier::parse(&self.expected.tier)
            .ok_or_else(|| format!("case {name:?}: tier {:?}", self.expected.tier))?;
        let mut headers = Vec::new();
        for h in self.headers.iter().flatten() {
            headers.push((bytes(&h.name)?, bytes(&h.value)?));
        }
        Ok(Case {
            file: file.to_owned(),
            method: bytes(&self.method)?,
            uri: bytes(&self.uri)?,
            version: bytes(&self.version)?,
            headers,
            tier,
            name,
        })
    }
}

/// A field of the corpus as the bytes to send.
///
/// YAML has already resolved its own escapes; the guardian's harness (`unescape_value`) then
/// resolves a second layer on every field: `\xHH` (exactly two hex digits), `\b`, `\f`, `\n`,
/// `\r`, `\t`, and `\c` → `c` for any other `c`. That is how plain scalars such as
/// `uri: /foo/bar\t/baz` carry control characters. `\xHH` and YAML's `"\xHH"` both name the
/// byte 0xHH (a character U+0000..U+00FF): it is sent as that one byte, as the corpus means
/// (`"\xa0chunked"` is the classic NBSP trick). The guardian's harness sends the UTF-8 encoding
/// instead (two bytes for U+0080..U+00FF), which its own classification cannot tell apart, both
/// being obs-text. Characters above U+00FF (`ſ`, `ı`, `―`, Cyrillic) are sent as UTF-8.
pub fn wire_bytes(field: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(field.len());
    let mut chars = field.chars();
    let push = |out: &mut Vec<u8>, c: char| match u8::try_from(u32::from(c)) {
        Ok(b) => out.push(b),
        Err(_) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            push(&mut out, c);
            continue;
        }
        let unescaped = match chars.next() {
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let b = u8::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| format!("bad escape \\x{hex} in {field:?}"))?;
                char::from(b)
            }
            Some('b') => '\x08',
            Some('f') => '\x0c',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some(other) => other,
            None => return Err(format!("trailing backslash in {field:?}")),
        };
        push(&mut out, unescaped);
    }
    Ok(out)
}

impl Case {
    /// True when the case's headers include a field named exactly `name` (ASCII case
    /// insensitive).
    fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The request on the wire, as the guardian's harness writes it — `{method} {uri}
    /// {version}\r\n`, then `{name}: {value}\r\n` for each header, then `\r\n` — with two
    /// additions:
    ///
    /// - `Host: desync.test` as the first field when the case has no `Host` (see
    ///   [`DEFAULT_HOST`]);
    /// - the body that the case's own framing fields announce, read per RFC 9112 §6.3 on
    ///   fields named exactly `Transfer-Encoding` / `Content-Length`: a chunked body when the
    ///   last transfer coding is `chunked`, else `n` bytes for a `Content-Length` whose values
    ///   all read as the same decimal `n`, else none. The corpus has heads only; without a body
    ///   a proxy that forwards the request would wait for it, and a rejected request would be
    ///   rejected for the wrong reason.
    pub fn wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.method);
        out.push(b' ');
        out.extend_from_slice(&self.uri);
        out.push(b' ');
        out.extend_from_slice(&self.version);
        out.extend_from_slice(b"\r\n");
        if !self.has("host") {
            out.extend_from_slice(format!("Host: {DEFAULT_HOST}\r\n").as_bytes());
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body());
        out
    }

    fn values(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }

    fn body(&self) -> Vec<u8> {
        let trim = |s: &[u8]| -> Vec<u8> {
            let s = String::from_utf8_lossy(s);
            s.trim_matches([' ', '\t']).as_bytes().to_vec()
        };
        if self.has("transfer-encoding") {
            let last = self
                .values("transfer-encoding")
                .flat_map(|v| v.split(|&b| b == b','))
                .map(|c| trim(c.split(|&b| b == b';').next().unwrap_or(b"")))
                .filter(|c| !c.is_empty())
                .last();
            return match last {
                Some(c) if c.eq_ignore_ascii_case(b"chunked") => {
                    b"5\r\nhello\r\n0\r\n\r\n".to_vec()
                }
                _ => Vec::new(),
            };
        }
        let lengths: Vec<Option<usize>> = self
            .values("content-length")
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|n| {
                let n = trim(n);
                let digits = !n.is_empty() && n.iter().all(u8::is_ascii_digit);
                digits
                    .then(|| std::str::from_utf8(&n).ok()?.parse().ok())
                    .flatten()
            })
            .collect();
        match lengths.first() {
            Some(Some(n)) if lengths.iter().all(|l| *l == Some(*n)) => vec![b'x'; *n],
            _ => Vec::new(),
        }
    }

    /// The request is HEAD (its response has no body).
    pub fn is_head(&self) -> bool {
        self.method == b"HEAD"
    }
}

// ---------------------------------------------------------------------------------------------
// The recording origin
// ---------------------------------------------------------------------------------------------

/// What one origin connection received.
#[derive(Clone, Debug, Default)]
pub struct ConnRecord {
    /// Every byte received, in order.
    pub bytes: Vec<u8>,
    /// Complete requests decoded (and answered).
    pub requests: usize,
    /// The proxy closed (FIN or reset) or the read failed.
    pub closed: bool,
    /// The origin's decoder rejected what it received (it keeps recording).
    pub undecodable: bool,
}

struct OriginState {
    conns: Mutex<Vec<Arc<Mutex<ConnRecord>>>>,
    stop: AtomicBool,
}

/// An origin on 127.0.0.1 that answers each complete request `200 ok` (`content-length: 2`)
/// and records every byte it receives, per connection.
pub struct RecordingOrigin {
    addr: SocketAddr,
    state: Arc<OriginState>,
}

impl RecordingOrigin {
    pub fn start() -> RecordingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("origin binds");
        let addr = listener.local_addr().expect("origin address");
        let state = Arc::new(OriginState {
            conns: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accept = state.clone();
        thread::Builder::new()
            .name(format!("recording-origin-{}", addr.port()))
            .spawn(move || {
                for conn in listener.incoming() {
                    if accept.stop.load(SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let record = Arc::new(Mutex::new(ConnRecord::default()));
                    accept.conns.lock().unwrap().push(record.clone());
                    let _ = thread::Builder::new()
                        .name("recording-origin-conn".into())
                        .spawn(move || record_connection(conn, &record));
                }
            })
            .expect("origin thread");
        RecordingOrigin { addr, state }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What each accepted connection received so far, in accept order.
    pub fn connections(&self) -> Vec<ConnRecord> {
        let conns = self.state.conns.lock().unwrap();
        conns.iter().map(|c| c.lock().unwrap().clone()).collect()
    }

    /// Bytes received over all connections.
    pub fn bytes_received(&self) -> usize {
        self.connections().iter().map(|c| c.bytes.len()).sum()
    }

    /// Complete requests received over all connections.
    pub fn requests(&self) -> usize {
        self.connections().iter().map(|c| c.requests).sum()
    }

    /// Polls `cond` on the connections every 5 ms for at most `ms`; true when it held.
    pub fn wait_for(&self, ms: u64, mut cond: impl FnMut(&[ConnRecord]) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            if cond(&self.connections()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RecordingOrigin {
    fn drop(&mut self) {
        self.state.stop.store(true, SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn record_connection(mut conn: TcpStream, record: &Mutex<ConnRecord>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = conn.set_nodelay(true);
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut head_request = false;
    let mut decodable = true;
    let mut scratch = vec![0u8; 64 * 1024];
    loop {
        let n = match conn.read(&mut scratch) {
            Ok(0) | Err(_) => {
                record.lock().unwrap().closed = true;
                return;
            }
            Ok(n) => n,
        };
        record
            .lock()
            .unwrap()
            .bytes
            .extend_from_slice(&scratch[..n]);
        if !decodable {
            continue;
        }
        buf.extend_from_slice(&scratch[..n]);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(RequestEvent::Head(r))) => head_request = r.head.is_head(),
                Ok(Some(RequestEvent::Data(_))) => {}
                Ok(Some(RequestEvent::End)) => {
                    record.lock().unwrap().requests += 1;
                    let reply: &[u8] = if head_request {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                    };
                    if conn.write_all(reply).is_err() {
                        record.lock().unwrap().closed = true;
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    record.lock().unwrap().undecodable = true;
                    decodable = false;
                    break;
                }
            }
        }
    }
}

/// Checks that `bytes` are exactly one complete, well-formed request: a head, its body, its
/// end, and nothing after. Returns the request's method and target.
pub fn one_message(bytes: &[u8]) -> Result<(String, String), String> {
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut buf = BytesMut::from(bytes);
    let mut head = None;
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(RequestEvent::Head(r))) => {
                head = Some((
                    String::from_utf8_lossy(&r.head.method).into_owned(),
                    String::from_utf8_lossy(&r.head.target).into_owned(),
                ));
            }
            Ok(Some(RequestEvent::Data(_))) => {}
            Ok(Some(RequestEvent::End)) => break,
            Ok(None) => {
                return Err(format!(
                    "incomplete request: {:?}",
                    String::from_utf8_lossy(bytes)
                ));
            }
            Err(e) => {
                return Err(format!(
                    "malformed request ({e}): {:?}",
                    String::from_utf8_lossy(bytes)
                ));
            }
        }
    }
    if !buf.is_empty() {
        return Err(format!(
            "{} bytes after the request: {:?}",
            buf.len(),
            String::from_utf8_lossy(&buf)
        ));
    }
    head.ok_or_else(|| "no request".into())
}

/// True when `bytes` hold at least one complete request (used to prove that a rejected request
/// never reached the origin whole).
pub fn has_complete_request(bytes: &[u8]) -> bool {
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut buf = BytesMut::from(bytes);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(RequestEvent::End)) => return true,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// How a read on the client side ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The proxy sent FIN.
    Fin,
    /// The proxy reset the connection.
    Reset,
    /// Nothing arrived within the wait: the connection is open.
    Open,
}

/// A response as the client read it.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A client connection that never panics on what the proxy does: every outcome is a value.
pub struct Talk {
    stream: TcpStream,
    buf: BytesMut,
    decoder: ResponseDecoder,
    ended: Option<Ending>,
}

impl Talk {
    pub fn open(addr: SocketAddr) -> Talk {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connects");
        stream.set_nodelay(true).unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Talk {
            stream,
            buf: BytesMut::new(),
            decoder: ResponseDecoder::new(Limits::default()),
            ended: None,
        }
    }

    /// Writes the bytes; a write error (the proxy closed early) is ignored, the reads tell.
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Sends FIN.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads more bytes, waiting at most `wait`; false when the connection ended or the wait
    /// passed.
    fn read_more(&mut self, wait: Duration) -> bool {
        if self.ended.is_some() {
            return false;
        }
        self.stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .unwrap();
        let mut scratch = [0u8; 64 * 1024];
        match self.stream.read(&mut scratch) {
            Ok(0) => {
                self.ended = Some(Ending::Fin);
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&scratch[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(_) => {
                self.ended = Some(Ending::Reset);
                false
            }
        }
    }

    /// The next response (1xx responses included, each on its own), waiting at most `wait`
    /// for it. `Err` says why there is none: the connection ended, the wait passed, or the
    /// bytes are not a response.
    pub fn response(&mut self, head_request: bool, wait: Duration) -> Result<Resp, String> {
        let deadline = Instant::now() + wait;
        self.decoder.expect(head_request);
        let mut resp: Option<Resp> = None;
        loop {
            let event = if self.ended.is_some() {
                self.decoder.decode_eof(&mut self.buf)
            } else {
                self.decoder.decode(&mut self.buf)
            };
            match event {
                Ok(Some(ResponseEvent::Head(r))) => {
                    let new = Resp {
                        status: r.head.status,
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
                    };
                    if new.status < 200 {
                        return Ok(new);
                    }
                    resp = Some(new);
                }
                Ok(Some(ResponseEvent::Data(d))) => {
                    if let Some(r) = resp.as_mut() {
                        r.body.extend_from_slice(&d);
                    }
                }
                Ok(Some(ResponseEvent::End)) => {
                    return resp.ok_or_else(|| "end without a head".into());
                }
                Ok(None) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if let Some(ending) = self.ended {
                        return Err(format!("connection ended ({ending:?}) without a response"));
                    }
                    if left.is_zero() {
                        return Err(format!("no response within {wait:?}"));
                    }
                    self.read_more(left);
                }
                Err(e) => return Err(format!("malformed response: {e}")),
            }
        }
    }

    /// The next final response, skipping 1xx ones.
    pub fn final_response(&mut self, head_request: bool, wait: Duration) -> Result<Resp, String> {
        loop {
            let r = self.response(head_request, wait)?;
            if r.status >= 200 {
                return Ok(r);
            }
        }
    }

    /// Drops the next `n` bytes (waiting at most `wait` for them).
    pub fn skip(&mut self, n: usize, wait: Duration) -> Result<(), String> {
        let deadline = Instant::now() + wait;
        while self.buf.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.read_more(left) {
                return Err(format!("{} of {n} bytes arrived", self.buf.len()));
            }
        }
        let _ = self.buf.split_to(n);
        Ok(())
    }

    /// Waits at most `wait` for the connection to end. Bytes that arrive first are an error.
    pub fn ending(&mut self, wait: Duration) -> Result<Ending, String> {
        let deadline = Instant::now() + wait;
        loop {
            if !self.buf.is_empty() {
                return Err(format!(
                    "unexpected bytes: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
            if let Some(ending) = self.ended {
                return Ok(ending);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Ending::Open);
            }
            if !self.read_more(left) && self.ended.is_none() {
                // The wait passed with nothing read.
                return Ok(Ending::Open);
            }
        }
    }
}
