//! TLS handshake load, for bench/tls.sh: every request on a new TLS 1.3 connection.
//!
//! `CONCURRENCY` connections are in flight at a time (closed loop). Each one connects, does the
//! TLS handshake, sends one `GET PATH`, reads the whole response, sends close_notify and closes;
//! a new connection takes its place. In `full` mode the client keeps no sessions, so every
//! handshake is a full one. In `resume` mode a shared session store keeps the TLS 1.3 tickets the
//! server sends, each used once, and every connection offers one when it has one; whether the
//! server accepted it is read from the connection's `handshake_kind()`.
//!
//! The client offers TLS 1.3 only, X25519 only (so that no server picks a costlier group), and
//! trusts exactly one certificate: the end-entity certificate in CERT_PEM, compared byte for
//! byte, with the server's CertificateVerify signature checked against it. It sends SNI
//! `localhost`.
//!
//! The run is `WARMUP` seconds (not counted; in `resume` mode this fills the ticket store), then
//! `SECONDS` measured. When `PIDS` (comma-separated) is given, utime+stime of those processes are
//! read from /proc at the start and the end of the measured part and printed as `cpu_ticks`.
//! Everything is bounded: at most `MAX` connections in all, no new ones after the time is up, and
//! at most two seconds to finish what is in flight (the rest count as errors).
//!
//! Usage: weir-bench-loadgen handshake ADDR PATH CONCURRENCY WARMUP SECONDS CERT_PEM full|resume
//! [PIDS] [MAX]
//! Prints one line: `mode=… completed=… errors=… resumed=… full=… hrr=… rate=…/s cpu_ticks=…
//! suite=… group=… p50_ms=… p99_ms=…`, about the measured part.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::crypto::{ring, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, NamedGroup,
    SignatureScheme,
};

/// How long in-flight connections may take to finish once the time is up.
const DRAIN: Duration = Duration::from_secs(2);
/// Tickets the session store keeps at most (rustls' own store keeps 8 per server, fewer than the
/// connections in flight, which would make full handshakes of the client's own doing).
const TICKETS: usize = 4096;
const SERVER_NAME: &str = "localhost";

pub fn run(args: &[String]) -> io::Result<String> {
    let usage =
        "usage: handshake ADDR PATH CONCURRENCY WARMUP SECONDS CERT_PEM full|resume [PIDS] [MAX]";
    let get = |i: usize, name: &str| -> io::Result<&String> {
        args.get(i)
            .ok_or_else(|| io::Error::other(format!("argument {name} missing; {usage}")))
    };
    let parse = |i: usize, name: &str| -> io::Result<f64> {
        get(i, name)?
            .parse::<f64>()
            .map_err(|_| io::Error::other(format!("argument {name} invalid; {usage}")))
    };
    let addr: SocketAddr = get(0, "ADDR")?
        .parse()
        .map_err(|_| io::Error::other(format!("argument ADDR invalid; {usage}")))?;
    let path = get(1, "PATH")?.clone();
    let concurrency = parse(2, "CONCURRENCY")? as usize;
    let warmup = Duration::from_secs_f64(parse(3, "WARMUP")?);
    let seconds = Duration::from_secs_f64(parse(4, "SECONDS")?);
    let cert_file = get(5, "CERT_PEM")?;
    let resume = match get(6, "full|resume")?.as_str() {
        "full" => false,
        "resume" => true,
        _ => {
            return Err(io::Error::other(format!(
                "mode must be full or resume; {usage}"
            )))
        }
    };
    let pids: Vec<u32> = match args.get(7) {
        Some(s) if !s.is_empty() && s != "-" => s
            .split(',')
            .map(|p| {
                p.parse()
                    .map_err(|_| io::Error::other(format!("bad pid {p}")))
            })
            .collect::<io::Result<_>>()?,
        _ => Vec::new(),
    };
    let max: u64 = match args.get(8) {
        Some(s) => s
            .parse()
            .map_err(|_| io::Error::other(format!("bad MAX {s}")))?,
        None => 1_000_000,
    };
    if concurrency == 0 || seconds.is_zero() {
        return Err(io::Error::other("CONCURRENCY and SECONDS must be positive"));
    }

    let pinned = CertificateDer::from_pem_file(cert_file)
        .map_err(|e| io::Error::other(format!("{cert_file}: {e}")))?;
    // Deprecated for lacking post-quantum groups, which the client deliberately does not offer
    // (the OpenSSL 3.0 peers have none either).
    #[allow(deprecated)]
    let mut provider = ring::default_provider();
    provider.kx_groups = vec![ring::kx_group::X25519];
    let algorithms = provider.signature_verification_algorithms;
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            cert: pinned,
            algorithms,
        }))
        .with_no_client_auth();
    config.resumption = if resume {
        Resumption::store(Arc::new(Store::default()))
    } else {
        Resumption::disabled()
    };
    let config = Arc::new(config);
    let name = ServerName::try_from(SERVER_NAME).expect("a valid DNS name");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut slots: Vec<Option<Slot>> = (0..concurrency).map(|_| None).collect();
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop_at = measure_from + seconds;
    let mut opened = 0u64;
    let mut stats = Stats::default();
    let mut measuring = false;
    let mut cpu_start = 0u64;
    let mut measured_at = measure_from;
    let mut latencies: Vec<u64> = Vec::new();
    loop {
        let now = Instant::now();
        if !measuring && now >= measure_from {
            measuring = true;
            measured_at = now;
            stats = Stats::default();
            latencies.clear();
            cpu_start = cpu_ticks(&pids);
        }
        // Fill the free slots while there is time and budget.
        if now < stop_at {
            for (i, slot) in slots.iter_mut().enumerate() {
                if slot.is_none() && opened < max {
                    *slot = Some(Slot::open(&poll, i, addr, &config, &name, measuring)?);
                    opened += 1;
                }
            }
        }
        let in_flight = slots.iter().filter(|s| s.is_some()).count();
        if in_flight == 0 && (now >= stop_at || opened >= max) {
            break;
        }
        if now >= stop_at + DRAIN {
            stats.errors += in_flight as u64; // never finished
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for event in events.iter() {
            let i = event.token().0;
            let Some(slot) = slots[i].as_mut() else {
                continue;
            };
            let result = slot.drive(&request);
            let counted = slot.counted;
            match result {
                Ok(None) => continue,
                Ok(Some(done)) => {
                    if counted {
                        if done.ok {
                            stats.completed += 1;
                            latencies.push(slot.began.elapsed().as_micros() as u64);
                        } else {
                            stats.errors += 1;
                        }
                        match done.kind {
                            Some(HandshakeKind::Resumed) => stats.resumed += 1,
                            Some(HandshakeKind::FullWithHelloRetryRequest) => stats.hrr += 1,
                            _ => stats.full += 1,
                        }
                        if stats.suite.is_empty() {
                            stats.suite = done.suite;
                            stats.group = done.group;
                        }
                    }
                }
                Err(e) => {
                    if counted {
                        stats.errors += 1;
                        if stats.first_error.is_none() {
                            stats.first_error = Some(e.to_string());
                        }
                    }
                }
            }
            let mut slot = slots[i].take().expect("checked above");
            slot.close(&poll);
        }
    }
    let elapsed = measured_at.elapsed().min(seconds + DRAIN).as_secs_f64();
    let cpu = if measuring {
        cpu_ticks(&pids) - cpu_start
    } else {
        0
    };
    if !measuring || stats.completed == 0 {
        return Err(io::Error::other(format!(
            "no connection completed ({} errors; first: {})",
            stats.errors,
            stats.first_error.as_deref().unwrap_or("none")
        )));
    }
    latencies.sort_unstable();
    let q = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1000.0
    };
    Ok(format!(
        "mode={} completed={} errors={} resumed={} full={} hrr={} rate={:.0}/s cpu_ticks={cpu} suite={} group={} p50_ms={:.3} p99_ms={:.3}{}",
        if resume { "resume" } else { "full" },
        stats.completed,
        stats.errors,
        stats.resumed,
        stats.full,
        stats.hrr,
        stats.completed as f64 / elapsed,
        stats.suite,
        stats.group,
        q(0.5),
        q(0.99),
        stats
            .first_error
            .map(|e| format!(" first_error=\"{e}\""))
            .unwrap_or_default()
    ))
}

#[derive(Default)]
struct Stats {
    completed: u64,
    errors: u64,
    resumed: u64,
    full: u64,
    hrr: u64,
    suite: String,
    group: String,
    first_error: Option<String>,
}

/// utime+stime (clock ticks) of the processes, from /proc/PID/stat.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .map(|stat| {
            // The fields after the command (which may hold spaces) start after the last ')'.
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after the ')'.
            let f = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            f(11) + f(12)
        })
        .sum()
}

/// One connection's end.
struct Done {
    ok: bool,
    kind: Option<HandshakeKind>,
    suite: String,
    group: String,
}

struct Slot {
    stream: TcpStream,
    tls: ClientConnection,
    connected: bool,
    sent: bool,
    input: Vec<u8>,
    began: Instant,
    /// Opened during the measured part.
    counted: bool,
}

impl Slot {
    fn open(
        poll: &Poll,
        token: usize,
        addr: SocketAddr,
        config: &Arc<ClientConfig>,
        name: &ServerName<'static>,
        counted: bool,
    ) -> io::Result<Slot> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        poll.registry().register(
            &mut stream,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let tls = ClientConnection::new(config.clone(), name.clone()).map_err(io::Error::other)?;
        Ok(Slot {
            stream,
            tls,
            connected: false,
            sent: false,
            input: Vec::with_capacity(8192),
            began: Instant::now(),
            counted,
        })
    }

    fn close(&mut self, poll: &Poll) {
        // Best effort: close_notify, then the socket closes when the stream drops.
        self.tls.send_close_notify();
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut self.stream).is_err() {
                break;
            }
        }
        let _ = poll.registry().deregister(&mut self.stream);
    }

    /// Does everything the socket allows (mio is edge-triggered); `Some` once the response is in.
    fn drive(&mut self, request: &[u8]) -> io::Result<Option<Done>> {
        if !self.connected {
            if let Some(e) = self.stream.take_error()? {
                return Err(e);
            }
            match self.stream.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let mut buf = [0u8; 16384];
        loop {
            let mut progress = false;
            while self.tls.wants_write() {
                match self.tls.write_tls(&mut self.stream) {
                    Ok(_) => progress = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            let mut eof = false;
            match self.tls.read_tls(&mut self.stream) {
                Ok(0) => eof = true,
                Ok(_) => {
                    progress = true;
                    self.tls
                        .process_new_packets()
                        .map_err(|e| io::Error::other(format!("TLS: {e}")))?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => progress = true,
                Err(e) => return Err(e),
            }
            if !self.tls.is_handshaking() && !self.sent {
                self.tls.writer().write_all(request)?;
                self.sent = true;
                progress = true;
            }
            loop {
                match self.tls.reader().read(&mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => self.input.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            if let Some(ok) = complete(&self.input)? {
                return Ok(Some(Done {
                    ok,
                    kind: self.tls.handshake_kind(),
                    suite: self
                        .tls
                        .negotiated_cipher_suite()
                        .map(|s| format!("{:?}", s.suite()))
                        .unwrap_or_default(),
                    group: self
                        .tls
                        .negotiated_key_exchange_group()
                        .map(|g| format!("{:?}", g.name()))
                        .unwrap_or_default(),
                }));
            }
            if eof {
                return Err(io::Error::other("closed before the whole response"));
            }
            if !progress {
                return Ok(None);
            }
        }
    }
}

/// Whether the bytes hold a whole response (head + Content-Length body), and if so whether it
/// was a 200.
fn complete(input: &[u8]) -> io::Result<Option<bool>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(io::Error::other(format!("bad response: {e}"))),
    };
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .ok_or_else(|| io::Error::other("response without Content-Length"))?;
    Ok((input.len() >= head + length).then_some(response.code == Some(200)))
}

/// Trusts exactly one certificate (byte for byte) and checks the handshake's signature with it.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the bench certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A session store that keeps many TLS 1.3 tickets (each handed out once), for one server.
#[derive(Debug, Default)]
struct Store {
    tickets: Mutex<VecDeque<Tls13ClientSessionValue>>,
    kx: Mutex<Option<NamedGroup>>,
}

impl ClientSessionStore for Store {
    fn set_kx_hint(&self, _server_name: ServerName<'static>, group: NamedGroup) {
        *self.kx.lock().unwrap() = Some(group);
    }

    fn kx_hint(&self, _server_name: &ServerName<'_>) -> Option<NamedGroup> {
        *self.kx.lock().unwrap()
    }

    fn set_tls12_session(
        &self,
        _server_name: ServerName<'static>,
        _value: Tls12ClientSessionValue,
    ) {
    }

    fn tls12_session(&self, _server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _server_name: &ServerName<'static>) {}

    fn insert_tls13_ticket(
        &self,
        _server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        let mut tickets = self.tickets.lock().unwrap();
        if tickets.len() == TICKETS {
            tickets.pop_front();
        }
        tickets.push_back(value);
    }

    fn take_tls13_ticket(
        &self,
        _server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        // The newest first: the one least likely to have expired.
        self.tickets.lock().unwrap().pop_back()
    }
}
