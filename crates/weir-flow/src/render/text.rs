//! The seed's sectioned text: `#### <phase>: <what happens>` headings over `*****` event
//! lines, and the wake-round summary block.

use std::fmt::Write as _;

use super::{Micros, errno_name};
use crate::{Closer, Direction, Event, EventKind as K, Flow, Lane, ReadResult, Thread};

pub(super) fn render(flows: &[Flow], out: &mut String) {
    for (i, flow) in flows.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let labels = Labels::of(flow);
        header(flow, &labels, out);
        let mut run: Vec<&Event> = Vec::new();
        for event in &flow.events {
            if let K::WakeRound { .. } = event.kind {
                flush(flow, &labels, &mut run, out);
                wake_round(flow, event, out);
                continue;
            }
            if let Some(last) = run.last()
                && !continues(last, event)
            {
                flush(flow, &labels, &mut run, out);
            }
            run.push(event);
        }
        flush(flow, &labels, &mut run, out);
    }
}

/// Per-flow names for its connections, in order of appearance: `d1` for the downstream,
/// `u1`, `u2`… for the upstreams (a retry's second connection is `u2`). The recorder's
/// connection ids are unique in the process and grow with its uptime; within one flow, a
/// short name is all a reader needs to tell the sockets apart (an fd number can be reused
/// within a flow once closed).
struct Labels(Vec<(u64, Lane, String)>);

impl Labels {
    fn of(flow: &Flow) -> Labels {
        let mut labels: Vec<(u64, Lane, String)> = Vec::new();
        for e in &flow.events {
            if e.lane == Lane::Worker || labels.iter().any(|l| l.0 == e.conn && l.1 == e.lane) {
                continue;
            }
            let prefix = if e.lane == Lane::Upstream { 'u' } else { 'd' };
            let n = labels.iter().filter(|l| l.1 == e.lane).count() + 1;
            labels.push((e.conn, e.lane, format!("{prefix}{n}")));
        }
        Labels(labels)
    }

    fn get(&self, e: &Event) -> &str {
        self.0
            .iter()
            .find(|l| l.0 == e.conn && l.1 == e.lane)
            .map_or("-", |l| l.2.as_str())
    }
}

/// `======== Flow worker=0: GET /index.html -> 200 in 5430.000µs (downstream d1 fd=41; …)`
///
/// The recorder's stream id is left out: weir's carry the worker in their high bits
/// (1099511627780 is worker 1's fourth stream), too long to read; the JSON has it.
fn header(flow: &Flow, labels: &Labels, out: &mut String) {
    let _ = write!(out, "======== Flow worker={}: ", Thread(flow.worker));
    if flow.method.as_str().is_empty() {
        out.push_str("(no request head)");
    } else {
        let _ = write!(out, "{} {}", flow.method.as_str(), flow.path.as_str());
    }
    match flow.status {
        0 => out.push_str(" -> no response"),
        status => {
            let _ = write!(out, " -> {status}");
        }
    }
    let _ = write!(
        out,
        " in {}µs (",
        Micros(flow.end.saturating_sub(flow.start))
    );
    for lane in [Lane::Downstream, Lane::Upstream] {
        let mut seen: Vec<(&str, i32)> = Vec::new();
        for e in flow.events.iter().filter(|e| e.lane == lane) {
            let label = labels.get(e);
            if !seen.contains(&(label, e.fd)) {
                seen.push((label, e.fd));
            }
        }
        for (i, (label, fd)) in seen.iter().enumerate() {
            let lead = if i == 0 { lane.name() } else { "," };
            let _ = write!(out, "{lead} {label} fd={fd}");
        }
        if !seen.is_empty() {
            out.push_str("; ");
        }
    }
    let _ = write!(out, "{} events", flow.events.len());
    if flow.truncated {
        out.push_str("; TRUNCATED: the recorder's ring wrapped, some events are missing");
    }
    out.push_str(")\n");
}

/// Whether `next` belongs to the same run as `prev`: the same phase, and not the start of a
/// new step (a new callback, a milestone of the request).
fn continues(prev: &Event, next: &Event) -> bool {
    if prev.phase != next.phase {
        return false;
    }
    let starts_step = matches!(
        next.kind,
        K::Accept { .. }
            | K::FilterChain { .. }
            | K::Registered { .. }
            | K::Ready { .. }
            | K::RequestComplete
            | K::RouteMatched { .. }
            | K::ConnectStarted { .. }
            | K::ResponseComplete
            | K::LocalReply { .. }
            | K::Why { .. }
            | K::Close { .. }
            | K::HealthCheckResult { .. }
    );
    // Opening an upstream socket and registering it are one step, in either order.
    let connect_pair = prev.conn == next.conn
        && matches!(
            (&prev.kind, &next.kind),
            (K::ConnectStarted { .. }, K::Registered { .. })
                | (K::Registered { .. }, K::ConnectStarted { .. })
        );
    !starts_step || connect_pair
}

fn flush(flow: &Flow, labels: &Labels, run: &mut Vec<&Event>, out: &mut String) {
    let Some(first) = run.first() else { return };
    let title = match (first.phase, first.worker) {
        (Some(phase), _) => phase.title(),
        (None, crate::HEALTH_CHECKER) => "Health check",
        (None, _) => "Worker",
    };
    let _ = writeln!(out, "\n#### {title}: {}", describe(run));
    for event in run.iter() {
        event_line(flow, labels, event, out);
    }
    run.clear();
}

fn wake_round(flow: &Flow, event: &Event, out: &mut String) {
    let K::WakeRound {
        round,
        ready,
        waited_ns,
        ran_ns,
    } = event.kind
    else {
        return;
    };
    let _ = write!(
        out,
        "\n******* WAKE-ROUND:END Summary *******\n\
         ***** elapsed={}µs: worker={}: epoll_wait\n\
         ran={}µs ready_fds={ready} waited={}µs round={round}\n\
         ***************************\n",
        Micros(event.at.saturating_sub(flow.start)),
        Thread(event.worker),
        Micros(ran_ns),
        Micros(waited_ns),
    );
}

fn event_line(flow: &Flow, labels: &Labels, e: &Event, out: &mut String) {
    let _ = write!(
        out,
        "***** elapsed={}µs: worker={}, fd={}, conn={}: {}",
        Micros(e.at.saturating_sub(flow.start)),
        Thread(e.worker),
        e.fd,
        labels.get(e),
        line_name(&e.kind),
    );
    details(&e.kind, out);
    out.push('\n');
}

/// The event's name in the text: its JSON name, except the two syscalls named as the seed's
/// readers know them.
fn line_name(kind: &K) -> &'static str {
    match kind {
        K::Registered { .. } => "register",
        K::Write { .. } => "writev",
        other => other.name(),
    }
}

/// ` key=value …` after the event's name.
fn details(kind: &K, out: &mut String) {
    let _ = match kind {
        K::Accept { peer, local } => write!(out, " peer={peer} local={local}"),
        K::ListenerFilter { name } | K::FilterChain { name } => write!(out, " name={name}"),
        K::Registered {
            readable,
            writable,
            edge_triggered,
        } => write!(
            out,
            " events={}",
            epoll_flags(&[
                (*readable, "EPOLLIN"),
                (*writable, "EPOLLOUT"),
                (*edge_triggered, "EPOLLET"),
            ])
        ),
        K::Ready {
            readable,
            writable,
            hup,
            error,
        } => write!(
            out,
            " events={}",
            epoll_flags(&[
                (*readable, "EPOLLIN"),
                (*writable, "EPOLLOUT"),
                (*hup, "EPOLLHUP"),
                (*error, "EPOLLERR"),
            ])
        ),
        K::Read { asked, result } => {
            let _ = write!(out, " asked={asked} ret=");
            match *result {
                ReadResult::Bytes(n) => write!(out, "{n}"),
                ReadResult::WouldBlock => write!(out, "EAGAIN"),
                ReadResult::Eof => write!(out, "EOF"),
                ReadResult::Error(errno) => write_errno(i64::from(errno), out),
            }
        }
        K::Write { asked, written } => {
            let _ = write!(out, " asked={asked} ret=");
            if *written < 0 {
                write_errno(-written, out)
            } else if *written < i64::from(*asked) {
                write!(out, "{written} (partial)")
            } else {
                write!(out, "{written}")
            }
        }
        K::RequestHead {
            method,
            path,
            config,
        } => {
            let (method, path) = (method.as_str(), path.as_str());
            match config {
                0 => write!(out, " method={method} path={path}"),
                n => write!(out, " method={method} path={path} config={n}"),
            }
        }
        K::ReadPaused { syscall } | K::ReadResumed { syscall } => {
            write!(out, " syscall={syscall}")
        }
        K::RouteMatched {
            vhost,
            route,
            cluster,
        } => write!(out, " vhost={vhost} route={route:?} cluster={cluster}"),
        K::PoolCreated { cluster, host } | K::WaitingForConnection { cluster, host } => {
            write!(out, " cluster={cluster} host={host}")
        }
        K::HostChosen {
            cluster,
            host,
            policy,
            why,
        } => write!(
            out,
            " cluster={cluster} host={host} policy={policy} why={why:?}"
        ),
        K::ConnectStarted { host } => write!(out, " host={host}"),
        K::HealthCheck {
            cluster,
            host,
            checker,
        } => write!(out, " cluster={cluster} host={host} checker={checker}"),
        K::HealthCheckResult {
            verdict,
            host_healthy,
            changed,
        } => write!(
            out,
            " verdict={verdict} host_healthy={host_healthy} changed={changed}"
        ),
        K::StreamAttached { reused } => write!(out, " reused={reused}"),
        K::ResponseHead { status } => write!(out, " status={status}"),
        K::LocalReply { status, flag: "" } => write!(out, " status={status}"),
        K::LocalReply { status, flag } => write!(out, " status={status} flag={flag}"),
        K::Why { reason } => write!(out, " reason={reason:?}"),
        K::Close { by } => write!(out, " by={}", closer_name(*by)),
        K::WakeRound {
            round,
            ready,
            waited_ns,
            ran_ns,
        } => write!(
            out,
            " ran={}µs ready_fds={ready} waited={}µs round={round}",
            Micros(*ran_ns),
            Micros(*waited_ns)
        ),
        K::TlsHandshake {
            version,
            cipher,
            server_name,
            alpn,
            resumed,
        } => write!(
            out,
            " version={version} cipher={cipher} sni={} alpn={} resumed={resumed}",
            server_name.as_deref().unwrap_or("-"),
            alpn.as_deref().unwrap_or("-")
        ),
        K::TlsRecords { direction, bytes } => write!(
            out,
            " {}={bytes}",
            match direction {
                Direction::In => "read",
                Direction::Out => "written",
            }
        ),
        K::RequestComplete | K::Connected | K::ResponseComplete => Ok(()),
    };
}

fn write_errno(errno: i64, out: &mut String) -> std::fmt::Result {
    match errno_name(errno) {
        Some(name) => write!(out, "{name}"),
        None => write!(out, "-{errno}"),
    }
}

fn epoll_flags(flags: &[(bool, &str)]) -> String {
    let set: Vec<&str> = flags.iter().filter(|f| f.0).map(|f| f.1).collect();
    if set.is_empty() {
        "0".to_owned()
    } else {
        set.join("|")
    }
}

fn closer_name(by: Closer) -> &'static str {
    match by {
        Closer::Local => "local",
        Closer::Peer => "peer",
        Closer::Error => "error",
    }
}

/// One part of a run's description; reads and writes on one socket add up into one part.
enum Clause {
    /// The socket the run's callback fired for.
    Ready {
        conn: u64,
        text: String,
    },
    Text(String),
    ListenerFilters(Vec<String>),
    Read(Reads),
    Write(Writes),
}

struct Reads {
    conn: u64,
    fd: i32,
    bytes: u64,
    eof: bool,
    errno: Option<i32>,
    /// "HTTP request GET /" when the run decoded a head from these bytes.
    head: Option<String>,
}

struct Writes {
    lane: Lane,
    conn: u64,
    fd: i32,
    asked: u64,
    written: u64,
    errno: Option<i64>,
}

/// What a run does, in a line: "FD=41 readable: read HTTP request GET / (89 bytes)".
fn describe(run: &[&Event]) -> String {
    let mut clauses: Vec<Clause> = Vec::new();
    for e in run {
        add_clause(&mut clauses, e);
    }
    let ready_conn = match clauses.first() {
        Some(Clause::Ready { conn, .. }) => Some(*conn),
        _ => None,
    };
    let mut parts = clauses.iter().map(|c| clause_text(c, ready_conn));
    let Some(first) = parts.next() else {
        return String::new();
    };
    let rest: Vec<String> = parts.collect();
    match (ready_conn, rest.is_empty()) {
        (_, true) => first,
        (Some(_), false) => format!("{first}: {}", rest.join("; ")),
        (None, false) => format!("{first}; {}", rest.join("; ")),
    }
}

fn add_clause(clauses: &mut Vec<Clause>, e: &Event) {
    let text = match &e.kind {
        K::Read { result, .. } => {
            let reads = match clauses.last_mut() {
                Some(Clause::Read(r)) if r.conn == e.conn => r,
                _ => {
                    clauses.push(Clause::Read(Reads {
                        conn: e.conn,
                        fd: e.fd,
                        bytes: 0,
                        eof: false,
                        errno: None,
                        head: None,
                    }));
                    let Some(Clause::Read(r)) = clauses.last_mut() else {
                        return;
                    };
                    r
                }
            };
            match *result {
                ReadResult::Bytes(n) => reads.bytes += u64::from(n),
                ReadResult::WouldBlock => {}
                ReadResult::Eof => reads.eof = true,
                ReadResult::Error(errno) => reads.errno = Some(errno),
            }
            return;
        }
        K::Write { asked, written } => {
            let writes = match clauses.last_mut() {
                Some(Clause::Write(w)) if w.conn == e.conn => w,
                _ => {
                    clauses.push(Clause::Write(Writes {
                        lane: e.lane,
                        conn: e.conn,
                        fd: e.fd,
                        asked: 0,
                        written: 0,
                        errno: None,
                    }));
                    let Some(Clause::Write(w)) = clauses.last_mut() else {
                        return;
                    };
                    w
                }
            };
            writes.asked += u64::from(*asked);
            match u64::try_from(*written) {
                Ok(n) => writes.written += n,
                Err(_) => writes.errno = Some(-written),
            }
            return;
        }
        K::RequestHead { method, path, .. } => {
            let head = format!("HTTP request {} {}", method.as_str(), path.as_str());
            if attach_head(clauses, e.conn, &head) {
                return;
            }
            format!("decode request head {} {}", method.as_str(), path.as_str())
        }
        K::ResponseHead { status } => {
            if attach_head(clauses, e.conn, &format!("HTTP response {status}")) {
                return;
            }
            format!("response head {status}")
        }
        K::ListenerFilter { name } => {
            if let Some(Clause::ListenerFilters(names)) = clauses.last_mut() {
                names.push(name.to_string());
            } else {
                clauses.push(Clause::ListenerFilters(vec![name.to_string()]));
            }
            return;
        }
        K::Ready {
            readable,
            writable,
            hup,
            error,
        } => {
            let states: Vec<&str> = [
                (*readable, "readable"),
                (*writable, "writable"),
                (*hup, "hung up"),
                (*error, "in error"),
            ]
            .iter()
            .filter(|s| s.0)
            .map(|s| s.1)
            .collect();
            let states = if states.is_empty() {
                "ready".to_owned()
            } else {
                states.join(", ")
            };
            clauses.push(Clause::Ready {
                conn: e.conn,
                text: format!("FD={} {states}", e.fd),
            });
            return;
        }
        K::Accept { peer, .. } => format!("accept downstream socket, FD={}, from {peer}", e.fd),
        K::FilterChain { name } => format!("choose network filter chain {name}"),
        K::Registered {
            readable,
            writable,
            edge_triggered,
        } => {
            let side = if e.lane == Lane::Upstream {
                "upstream "
            } else {
                ""
            };
            let flags = epoll_flags(&[
                (*readable, "EPOLLIN"),
                (*writable, "EPOLLOUT"),
                (*edge_triggered, "EPOLLET"),
            ]);
            format!("register {side}FD={} with epoll ({flags})", e.fd)
        }
        K::RequestComplete => "request complete".to_owned(),
        K::ReadPaused { syscall } => format!("stop reading the downstream ({})", cost(*syscall)),
        K::ReadResumed { syscall } => {
            format!("resume reading the downstream ({})", cost(*syscall))
        }
        K::RouteMatched {
            vhost,
            route,
            cluster,
        } if route.is_empty() => {
            format!("route matched in virtual host {vhost} -> cluster {cluster}")
        }
        K::RouteMatched {
            vhost,
            route,
            cluster,
        } => format!("route {route} in virtual host {vhost} -> cluster {cluster}"),
        K::PoolCreated { host, .. } => format!("create connection pool for {host}"),
        K::WaitingForConnection { host, .. } => {
            format!("wait for a connection to {host}: max_connections reached")
        }
        K::HostChosen {
            host, policy, why, ..
        } => format!("load balancer ({policy}) chose {host}: {why}"),
        K::ConnectStarted { host } => {
            format!(
                "start non-blocking connect to {host} on upstream FD={}",
                e.fd
            )
        }
        K::Connected => "connected".to_owned(),
        K::HealthCheck {
            cluster,
            host,
            checker,
        } => format!("{checker} health check of {host} (cluster {cluster})"),
        K::HealthCheckResult {
            verdict,
            host_healthy,
            changed,
        } => {
            let now = if *host_healthy {
                "healthy"
            } else {
                "unhealthy"
            };
            let how = if *changed { "now" } else { "still" };
            format!("probe judged {verdict}: the host is {how} {now}")
        }
        K::TlsRecords { direction, bytes } => match direction {
            Direction::In => format!("{bytes} bytes of TLS records read from FD={}", e.fd),
            Direction::Out => format!("{bytes} bytes of TLS records written to FD={}", e.fd),
        },
        K::TlsHandshake {
            version,
            cipher,
            server_name,
            resumed,
            ..
        } => {
            let how = if *resumed { "resumed" } else { "full" };
            let sni = server_name
                .as_deref()
                .map_or(String::new(), |n| format!(", SNI {n}"));
            format!(
                "TLS handshake done on FD={} ({how}, {version}, {cipher}{sni})",
                e.fd
            )
        }
        K::StreamAttached { reused: true } => {
            format!(
                "attach the stream to pooled connection FD={} (no connect)",
                e.fd
            )
        }
        K::StreamAttached { reused: false } => {
            "attach the waiting stream to the new connection".to_owned()
        }
        K::ResponseComplete => "response complete".to_owned(),
        K::LocalReply { status, flag: "" } => format!("local reply {status}"),
        K::LocalReply { status, flag } => format!("local reply {status} ({flag})"),
        K::Why { reason } => format!("why: {reason}"),
        K::Close { by } => {
            let why = match by {
                Closer::Local => "weir closed it",
                Closer::Peer => "the peer closed first",
                Closer::Error => "socket error",
            };
            format!("close FD={} ({why})", e.fd)
        }
        K::WakeRound { .. } => "wake round".to_owned(),
    };
    if !matches!(clauses.last(), Some(Clause::Text(last)) if *last == text) {
        clauses.push(Clause::Text(text));
    }
}

/// Names the bytes of the latest read on `conn` in this run by the head decoded from them.
fn attach_head(clauses: &mut [Clause], conn: u64, head: &str) -> bool {
    for clause in clauses.iter_mut().rev() {
        if let Clause::Read(r) = clause
            && r.conn == conn
            && r.bytes > 0
            && r.head.is_none()
        {
            r.head = Some(head.to_owned());
            return true;
        }
    }
    false
}

fn cost(syscall: bool) -> &'static str {
    if syscall { "epoll_ctl" } else { "no syscall" }
}

fn clause_text(clause: &Clause, ready_conn: Option<u64>) -> String {
    match clause {
        Clause::Ready { text, .. } | Clause::Text(text) => text.clone(),
        Clause::ListenerFilters(names) if names.len() == 1 => {
            format!("listener filter {}", names[0])
        }
        Clause::ListenerFilters(names) => format!("listener filters {}", names.join(", ")),
        Clause::Read(r) => {
            // After "FD=41 readable:" the reads need not name the socket again.
            let from = if ready_conn == Some(r.conn) {
                String::new()
            } else {
                format!(" from FD={}", r.fd)
            };
            let mut text = match (&r.head, r.bytes) {
                (Some(head), n) => format!("read {head} ({n} bytes{from})"),
                (None, 0) if r.eof => format!("read EOF{from}: the peer closed"),
                (None, 0) if r.errno.is_none() => format!("read{from}: nothing yet (EAGAIN)"),
                (None, 0) => format!("read{from}"),
                (None, n) => format!("read {n} bytes{from}"),
            };
            if r.eof && r.bytes > 0 {
                text.push_str(", then EOF: the peer closed");
            }
            if let Some(errno) = r.errno {
                let name = errno_name(i64::from(errno))
                    .map_or_else(|| format!("errno {errno}"), str::to_owned);
                let then = if r.bytes > 0 || r.eof { ", then" } else { "" };
                let _ = write!(text, "{then} failed ({name})");
            }
            text
        }
        Clause::Write(w) => {
            let what = match w.lane {
                Lane::Upstream => "request",
                Lane::Downstream | Lane::Worker => "response",
            };
            let mut text = format!("write {what} to FD={}", w.fd);
            if let Some(errno) = w.errno {
                let name =
                    errno_name(errno).map_or_else(|| format!("errno {errno}"), str::to_owned);
                let _ = write!(text, " failed ({name}");
                if w.written > 0 {
                    let _ = write!(text, " after {} bytes", w.written);
                }
                text.push(')');
            } else if w.written < w.asked {
                let _ = write!(
                    text,
                    " ({} of {} bytes: partial, the socket buffer is full)",
                    w.written, w.asked
                );
            } else {
                let _ = write!(text, " ({} bytes)", w.written);
            }
            text
        }
    }
}
