//! A scripted DNS server for the DNS cluster tests: it answers A and AAAA queries from a table
//! the test edits while it runs, can fail a name (SERVFAIL, NXDOMAIN, or no answer at all), and
//! counts the queries it gets per name.
//!
//! Self-contained (std and hickory-proto only) because two crates compile it: the `weir`
//! crate's integration tests (`tests/support`) and `weir-proxy`'s resolver unit tests, through
//! `#[path]`. It listens on UDP and TCP on the same loopback port; each thread polls a stop flag
//! between short blocking reads, so dropping the server ends and joins them all promptly.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// How long a thread blocks on a socket before it looks at the stop flag again.
const POLL: Duration = Duration::from_millis(20);

/// How a name fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Answers SERVFAIL.
    ServFail,
    /// Answers NXDOMAIN (as for any name never scripted).
    NxDomain,
    /// Never answers, so the client times out.
    Silent,
}

/// What the server does for one name.
enum Script {
    Answer { addresses: Vec<IpAddr>, ttl: u32 },
    Fail(Failure),
}

#[derive(Default)]
struct State {
    scripts: HashMap<String, Script>,
    queries: HashMap<String, usize>,
}

/// The running server; dropping it stops it.
pub(crate) struct DnsServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP and TCP on one free port of 127.0.0.1 and starts answering.
    pub(crate) fn start() -> DnsServer {
        let (udp, tcp) = bind();
        let addr = udp.local_addr().expect("DNS server address");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = vec![
            spawn("dns-udp", {
                let (state, stop) = (state.clone(), stop.clone());
                move || serve_udp(&udp, &state, &stop)
            }),
            spawn("dns-tcp", {
                let (state, stop) = (state.clone(), stop.clone());
                move || serve_tcp(&tcp, &state, &stop)
            }),
        ];
        DnsServer {
            addr,
            state,
            stop,
            threads,
        }
    }

    /// Where to send queries (UDP or TCP).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers `name` with `addresses`: A queries get the IPv4 ones, AAAA queries the IPv6 ones,
    /// each record with `ttl_secs`; a family with no address gets an empty answer (NODATA).
    pub(crate) fn answer(&self, name: &str, addresses: &[IpAddr], ttl_secs: u32) {
        let script = Script::Answer {
            addresses: addresses.to_vec(),
            ttl: ttl_secs,
        };
        self.lock().scripts.insert(key(name), script);
    }

    /// Makes every query for `name` fail the way `failure` says.
    pub(crate) fn fail(&self, name: &str, failure: Failure) {
        self.lock().scripts.insert(key(name), Script::Fail(failure));
    }

    /// How many queries (of any type, over UDP or TCP) the server got for `name`.
    pub(crate) fn queries(&self, name: &str) -> usize {
        self.lock().queries.get(&key(name)).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("DNS server state")
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A UDP socket and a TCP listener on the same port (retried: the port UDP got may be taken
/// for TCP).
fn bind() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind DNS UDP socket");
        let addr = udp.local_addr().expect("DNS UDP address");
        if let Ok(tcp) = TcpListener::bind(addr) {
            return (udp, tcp);
        }
    }
    panic!("no loopback port was free for both UDP and TCP");
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .expect("spawn DNS server thread")
}

fn serve_udp(socket: &UdpSocket, state: &Mutex<State>, stop: &AtomicBool) {
    socket
        .set_read_timeout(Some(POLL))
        .expect("UDP read timeout");
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                if let Some(reply) = respond(state, &buf[..n]) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

fn serve_tcp(listener: &TcpListener, state: &Arc<Mutex<State>>, stop: &Arc<AtomicBool>) {
    listener.set_nonblocking(true).expect("TCP non-blocking");
    let mut connections = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let (state, stop) = (state.clone(), stop.clone());
                connections.push(spawn("dns-tcp-conn", move || {
                    let _ = serve_connection(stream, &state, &stop);
                }));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(_) => break,
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// Answers the length-prefixed messages (RFC 1035 §4.2.2) of one TCP connection until the peer
/// closes it or the server stops.
fn serve_connection(
    mut stream: TcpStream,
    state: &Mutex<State>,
    stop: &AtomicBool,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(POLL))?;
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(e),
        }
        while pending.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([pending[0], pending[1]]));
            if pending.len() < 2 + len {
                break;
            }
            let message: Vec<u8> = pending.drain(..2 + len).skip(2).collect();
            if let Some(reply) = respond(state, &message) {
                let len = u16::try_from(reply.len()).expect("DNS reply fits a TCP frame");
                stream.write_all(&len.to_be_bytes())?;
                stream.write_all(&reply)?;
            }
        }
    }
    Ok(())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The reply to one query, or `None` to stay silent (an undecodable query, or a silent name).
fn respond(state: &Mutex<State>, query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let question = request.queries.first()?.clone();
    let name = key(&question.name().to_string());
    let mut state = state.lock().expect("DNS server state");
    *state.queries.entry(name.clone()).or_default() += 1;

    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    match state.scripts.get(&name) {
        None | Some(Script::Fail(Failure::NxDomain)) => {
            response.metadata.response_code = ResponseCode::NXDomain;
        }
        Some(Script::Fail(Failure::ServFail)) => {
            response.metadata.response_code = ResponseCode::ServFail;
        }
        Some(Script::Fail(Failure::Silent)) => return None,
        Some(Script::Answer { addresses, ttl }) => {
            response.metadata.authoritative = true;
            let records = addresses.iter().filter_map(|address| {
                record(question.name(), question.query_type(), *address, *ttl)
            });
            response.add_answers(records);
        }
    }
    response.add_query(question);
    response.to_vec().ok()
}

/// `address` as an answer to a query of `query_type`, if it is of that family.
fn record(name: &Name, query_type: RecordType, address: IpAddr, ttl: u32) -> Option<Record> {
    let data = match (query_type, address) {
        (RecordType::A, IpAddr::V4(v4)) => RData::A(v4.into()),
        (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(v6.into()),
        _ => return None,
    };
    Some(Record::from_rdata(name.clone(), ttl, data))
}

/// Names compare without case and without the root's trailing dot.
fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}
