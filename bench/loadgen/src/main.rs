//! Open-loop HTTP/1.1 load at a fixed request rate, for bench/run.sh's fixed-rate latency.
//!
//! Request i is due at `start + i / rate`, whatever happened to the ones before it: a slow
//! response does not slow the schedule, and each latency counts from the request's intended
//! send time (so a request that had to wait for a free connection pays for the wait, as
//! wrk2 counts it, and coordinated omission does not hide stalls). Keep-alive connections, one
//! request in flight on each; a timerfd wakes the loop at each due time with nanosecond
//! resolution. Everything is bounded: the run stops scheduling after `--duration` and waits at
//! most two seconds for what is in flight. A connection the server closes is opened again; a
//! request lost with it, or answered with another status than 200, counts as an error.
//!
//! Usage: weir-bench-loadgen ADDR PATH RATE CONNECTIONS SECONDS
//! Prints one line: `sent=… completed=… errors=… reconnects=… rate=…/s p50_ms=… p90_ms=…
//! p99_ms=… p999_ms=… max_ms=…` (latencies of the completed requests).
//!
//! `weir-bench-loadgen handshake …` is another mode: TLS handshakes, a new connection per
//! request, for bench/tls.sh (see `handshake.rs`).

mod handshake;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

// (mio reserves `usize::MAX`.)
const TIMER: Token = Token(1 << 40);
/// How long in-flight requests may take to finish once the schedule ends.
const DRAIN: Duration = Duration::from_secs(2);

struct Conn {
    stream: TcpStream,
    /// A reconnect in progress: free once writable.
    connecting: bool,
    /// The intended send time of the request in flight.
    busy: Option<Instant>,
    /// Request bytes not yet written.
    out: Vec<u8>,
    /// Response bytes read so far.
    input: Vec<u8>,
}

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weir-bench-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> io::Result<T> {
    args.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| {
        io::Error::other(format!(
            "argument {i} ({name}) missing or invalid; usage: ADDR PATH RATE CONNECTIONS SECONDS"
        ))
    })
}

fn run() -> io::Result<String> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("handshake") {
        return handshake::run(&args[2..]);
    }
    let addr: SocketAddr = arg(&args, 1, "ADDR")?;
    let path: String = arg(&args, 2, "PATH")?;
    let rate: f64 = arg(&args, 3, "RATE")?;
    let connections: usize = arg(&args, 4, "CONNECTIONS")?;
    let seconds: f64 = arg(&args, 5, "SECONDS")?;
    if rate <= 0.0 || connections == 0 || seconds <= 0.0 {
        return Err(io::Error::other(
            "RATE, CONNECTIONS and SECONDS must be positive",
        ));
    }
    // The Host wrk sends, which virtual-host routing (Sozu's) matches on.
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
    let mut poll = Poll::new()?;
    let mut conns = Vec::with_capacity(connections);
    for i in 0..connections {
        let std_stream = std::net::TcpStream::connect(addr)?;
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std_stream);
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        conns.push(Conn {
            stream,
            connecting: false,
            busy: None,
            out: Vec::new(),
            input: Vec::with_capacity(1 << 16),
        });
    }
    let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK)
        .map_err(io::Error::from)?;
    poll.registry().register(
        &mut SourceFd(&timer.as_fd().as_raw_fd()),
        TIMER,
        Interest::READABLE,
    )?;

    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * seconds).round() as u64;
    let start = Instant::now();
    let mut scheduled = 0u64; // requests whose due time has come
    let mut waiting: VecDeque<Instant> = VecDeque::new(); // due, no free connection yet
    let mut latencies: Vec<u64> = Vec::with_capacity(total as usize);
    let mut events = Events::with_capacity(1024);
    let mut free: Vec<usize> = (0..connections).collect();
    let (mut errors, mut reconnects) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        // Every request now due joins the queue; free connections take the oldest.
        while scheduled < total && start + interval.mul_f64(scheduled as f64) <= now {
            waiting.push_back(start + interval.mul_f64(scheduled as f64));
            scheduled += 1;
        }
        while !waiting.is_empty() {
            let Some(i) = free.pop() else { break };
            let due = waiting.pop_front().expect("not empty");
            let c = &mut conns[i];
            c.busy = Some(due);
            c.out.extend_from_slice(&request);
            write_out(c)?;
        }
        let in_flight = connections - free.len();
        if scheduled == total && waiting.is_empty() && in_flight == 0 {
            break;
        }
        let deadline = start + interval.mul_f64(total as f64) + DRAIN;
        if now > deadline {
            return Err(io::Error::other(format!(
                "{in_flight} requests still in flight {DRAIN:?} after the schedule ended"
            )));
        }
        if scheduled < total {
            let next = start + interval.mul_f64(scheduled as f64);
            let wait = next
                .saturating_duration_since(Instant::now())
                .max(Duration::from_nanos(1));
            timer
                .set(
                    Expiration::OneShot(TimeSpec::from_duration(wait)),
                    TimerSetTimeFlags::empty(),
                )
                .map_err(io::Error::from)?;
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in events.iter() {
            if event.token() == TIMER {
                let _ = timer.wait(); // consume the expiry (non-blocking)
                continue;
            }
            let i = event.token().0;
            let c = &mut conns[i];
            if c.connecting {
                if event.is_writable() || event.is_error() {
                    match c.stream.take_error()? {
                        None if c.stream.peer_addr().is_ok() => {
                            c.connecting = false;
                            free.push(i);
                        }
                        _ => reopen(&poll, c, i, addr, &mut reconnects)?,
                    }
                }
                continue;
            }
            if event.is_writable() && write_out(c).is_err() {
                errors += u64::from(c.busy.take().is_some());
                reopen(&poll, c, i, addr, &mut reconnects)?;
                continue;
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                match read_in(c) {
                    Arrival::Pending => {}
                    Arrival::Complete(due, ok, closing) => {
                        if ok {
                            latencies.push(due.elapsed().as_micros() as u64);
                        } else {
                            errors += 1;
                        }
                        if closing {
                            reopen(&poll, c, i, addr, &mut reconnects)?;
                        } else {
                            free.push(i);
                        }
                    }
                    Arrival::Closed => {
                        errors += u64::from(c.busy.take().is_some());
                        free.retain(|&f| f != i);
                        reopen(&poll, c, i, addr, &mut reconnects)?;
                    }
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let q = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1000.0
    };
    if latencies.is_empty() {
        return Err(io::Error::other(format!(
            "no request completed ({errors} errors)"
        )));
    }
    Ok(format!(
        "sent={total} completed={} errors={errors} reconnects={reconnects} rate={:.0}/s p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        q(0.50),
        q(0.90),
        q(0.99),
        q(0.999),
        q(1.0)
    ))
}

/// Writes what the connection has queued, as far as the socket takes it.
fn write_out(c: &mut Conn) -> io::Result<()> {
    while !c.out.is_empty() {
        match c.stream.write(&c.out) {
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Replaces a connection the server closed (or that failed) with a new one, connecting.
fn reopen(
    poll: &Poll,
    c: &mut Conn,
    token: usize,
    addr: SocketAddr,
    reconnects: &mut u64,
) -> io::Result<()> {
    let _ = poll.registry().deregister(&mut c.stream);
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    poll.registry().register(
        &mut stream,
        Token(token),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    c.stream = stream;
    c.connecting = true;
    c.busy = None;
    c.out.clear();
    c.input.clear();
    *reconnects += 1;
    Ok(())
}

/// What a read brought.
enum Arrival {
    /// No whole response yet.
    Pending,
    /// A whole response: its request's intended send time, whether it was a 200, and
    /// whether the server closes the connection after it (`Connection: close`).
    Complete(Instant, bool, bool),
    /// The server closed the connection, or it failed, or sent what is not HTTP.
    Closed,
}

/// Reads what arrived; a whole response (head + Content-Length body) frees the connection.
fn read_in(c: &mut Conn) -> Arrival {
    let mut buf = [0u8; 65536];
    // The last response often comes with the server's FIN: read both, then parse.
    let mut eof = false;
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => c.input.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Arrival::Closed,
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(&c.input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if eof => return Arrival::Closed,
        Ok(httparse::Status::Partial) => return Arrival::Pending,
        Err(_) => return Arrival::Closed,
    };
    let ok = response.code == Some(200);
    let closing = response.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("connection")
            && std::str::from_utf8(h.value).is_ok_and(|v| v.to_ascii_lowercase().contains("close"))
    });
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
        });
    let Some(length) = length else {
        return Arrival::Closed; // not framed by length: the connection cannot carry on
    };
    if c.input.len() < head + length {
        return if eof {
            Arrival::Closed
        } else {
            Arrival::Pending
        };
    }
    if c.input.len() > head + length {
        return Arrival::Closed; // bytes nobody asked for
    }
    c.input.clear();
    match c.busy.take() {
        Some(due) => Arrival::Complete(due, ok, closing || eof),
        None => Arrival::Closed,
    }
}
