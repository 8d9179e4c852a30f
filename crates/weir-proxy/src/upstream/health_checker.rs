//! The `weir:health` thread: every cluster's active health check, on an event loop of its own
//! (the workers never wait on a probe). Each host gets a [`Session`]; a probe is a connection
//! (over the cluster's TLS when it has one, kept between checks with `reuse_connection`), a
//! request (HTTP) or payload (TCP), and an answer judged by [`health_check`](super::health_check).
//! A change of health is a new host set ([`ClusterHosts::set_health`]) and wakes the workers.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};
use slab::Slab;
use weir_config::{HealthCheck, HealthCheckKind, UpstreamTls};

use super::health_check::{
    NO_ANSWER, Session, Transition, Verdict, http_request, judge_http, tcp_matches,
};
use super::host_set::{ClusterHosts, HEALTH_ACTIVE_HC, HEALTH_DEGRADED_HC, Host, HostId};
use super::probe_flows::{ProbeFlows, ProbeRecorder, ProbeTrace};
use crate::codec::ResponsePart;
use crate::codec::http1::Http1Client;
use crate::event::Readiness;
use crate::network::connection::{Connection, ReadOutcome};
use crate::network::transport::ConnectProgress;
use crate::recorder::{read_result, write_event};
use crate::stats::Syscalls;
use weir_flow::{Closer, EventKind};

const WAKE: Token = Token(usize::MAX);

/// `cluster.<name>.health_check.*`, shared with the admin.
#[derive(Debug, Default)]
pub(crate) struct HealthStats {
    pub(crate) attempt: AtomicU64,
    pub(crate) success: AtomicU64,
    pub(crate) failure: AtomicU64,
    pub(crate) network_failure: AtomicU64,
    pub(crate) passive_failure: AtomicU64,
    pub(crate) healthy: AtomicU64,
    pub(crate) degraded: AtomicU64,
}

impl HealthStats {
    /// The stats as Envoy names them: (name, is a gauge, value).
    pub(crate) fn each(&self, mut f: impl FnMut(&str, bool, u64)) {
        f("attempt", false, self.attempt.load(Relaxed));
        f("success", false, self.success.load(Relaxed));
        f("failure", false, self.failure.load(Relaxed));
        f("network_failure", false, self.network_failure.load(Relaxed));
        f("passive_failure", false, self.passive_failure.load(Relaxed));
        f("healthy", true, self.healthy.load(Relaxed));
        f("degraded", true, self.degraded.load(Relaxed));
    }
}

/// One cluster's health check as the thread runs it.
pub(crate) struct ClusterCheck {
    pub(crate) cluster: usize,
    pub(crate) name: String,
    pub(crate) config: HealthCheck,
    pub(crate) tls: Option<UpstreamTls>,
    pub(crate) stats: Arc<HealthStats>,
    /// Whether the cluster has carried traffic (its `upstream_cx_total` moved).
    pub(crate) traffic: Box<dyn Fn() -> bool + Send>,
}

/// One host under checking.
struct Target {
    check: usize,
    host: Arc<Host>,
    session: Session,
    next: Instant,
    probe: Option<Probe>,
    /// The connection kept between checks (`reuse_connection`).
    kept: Option<Connection>,
    /// The status of the last HTTP answer (for the event log).
    status: Option<u16>,
    /// The probe under way, when the flow trace records it.
    trace: Option<ProbeTrace>,
    /// The last answer carried `x-envoy-degraded`.
    degraded_answer: bool,
    /// The host is flagged degraded (`/degraded_active_hc`).
    degraded: bool,
}

/// A check under way.
struct Probe {
    conn: Connection,
    connected: bool,
    deadline: Instant,
    codec: Option<Http1Client>,
}

/// The thread's handle.
pub(crate) struct HealthChecker {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: std::thread::JoinHandle<()>,
}

impl HealthChecker {
    /// `None` when no cluster has a health check; `wake` tells the workers a set changed.
    pub(crate) fn start(
        checks: Vec<ClusterCheck>,
        hosts: Arc<ClusterHosts>,
        flows: Arc<ProbeFlows>,
        wake: impl Fn() + Send + 'static,
    ) -> std::io::Result<Option<HealthChecker>> {
        if checks.is_empty() {
            return Ok(None);
        }
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("weir:health".into())
            .spawn(move || {
                let mut run = Run {
                    poll,
                    checks,
                    hosts,
                    targets: Slab::new(),
                    by_host: HashMap::new(),
                    generation: u64::MAX,
                    rng: fastrand::Rng::new(),
                    syscalls: Syscalls::default(),
                    scratch: vec![0; 16 * 1024],
                    wake: Box::new(wake),
                    logs: HashMap::new(),
                    flows,
                    recorder: ProbeRecorder::new(),
                };
                run.run(&stopping);
            })?;
        Ok(Some(HealthChecker {
            stop,
            waker,
            thread,
        }))
    }

    pub(crate) fn stop(self) {
        self.stop.store(true, Relaxed);
        let _ = self.waker.wake();
        let _ = self.thread.join();
    }
}

struct Run {
    poll: Poll,
    checks: Vec<ClusterCheck>,
    hosts: Arc<ClusterHosts>,
    targets: Slab<Target>,
    by_host: HashMap<(usize, HostId), usize>,
    generation: u64,
    rng: fastrand::Rng,
    syscalls: Syscalls,
    scratch: Vec<u8>,
    wake: Box<dyn Fn() + Send>,
    /// Open event logs by path.
    logs: HashMap<String, std::fs::File>,
    flows: Arc<ProbeFlows>,
    recorder: ProbeRecorder,
}

impl Run {
    fn run(&mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(256);
        while !stop.load(Relaxed) {
            self.follow_hosts();
            let now = Instant::now();
            let mut changed = false;
            let keys: Vec<usize> = self.targets.iter().map(|(k, _)| k).collect();
            for key in keys {
                changed |= self.tick(key, now);
            }
            if changed {
                (self.wake)();
            }
            let wait = self
                .targets
                .iter()
                .map(|(_, t)| t.probe.as_ref().map_or(t.next, |p| p.deadline))
                .min()
                .map(|at| at.saturating_duration_since(Instant::now()))
                // Host sets change (DNS): look again now and then.
                .map_or(Duration::from_secs(1), |d| d.min(Duration::from_secs(1)));
            if self.poll.poll(&mut events, Some(wait)).is_err() {
                continue;
            }
            let mut changed = false;
            for event in events.iter() {
                if event.token() == WAKE {
                    continue;
                }
                let key = event.token().0;
                let Some(t) = self.targets.get_mut(key) else {
                    continue;
                };
                if let Some(p) = t.probe.as_mut() {
                    p.conn.on_ready(Readiness::of(event));
                    changed |= self.progress(key);
                } else if let Some(kept) = t.kept.as_mut() {
                    // A kept connection that hears anything between checks (a FIN, stray
                    // bytes) is not kept: the next check connects anew.
                    kept.on_ready(Readiness::of(event));
                    let outcome = kept.fill(&mut self.scratch, &self.syscalls);
                    if !matches!(outcome, ReadOutcome::Drained) {
                        t.kept = None;
                    }
                }
            }
            if changed {
                (self.wake)();
            }
        }
    }

    /// Follows the clusters' host sets: a session per host (a new host starts unhealthy),
    /// none for hosts that left; a host failed from outside (passively) is seen as such.
    fn follow_hosts(&mut self) {
        let generation = self.hosts.generation();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        let now = Instant::now();
        let mut seen = Vec::new();
        for (i, check) in self.checks.iter().enumerate() {
            let set = self.hosts.current(check.cluster);
            for host in &set.hosts {
                seen.push((check.cluster, host.id));
                match self.by_host.get(&(check.cluster, host.id)) {
                    Some(&key) => {
                        let t = &mut self.targets[key];
                        if t.session.healthy && host.health & HEALTH_ACTIVE_HC != 0 {
                            t.session.fail_passively();
                        }
                        t.host = host.clone();
                    }
                    None => {
                        let jitter = check.config.initial_jitter.as_millis() as u64;
                        let delay = match jitter {
                            0 => 0,
                            n => self.rng.u64(0..n),
                        };
                        let key = self.targets.insert(Target {
                            check: i,
                            host: host.clone(),
                            session: Session::new(),
                            next: now + Duration::from_millis(delay),
                            probe: None,
                            kept: None,
                            status: None,
                            trace: None,
                            degraded_answer: false,
                            degraded: false,
                        });
                        self.by_host.insert((check.cluster, host.id), key);
                    }
                }
            }
        }
        let gone: Vec<usize> = (self.by_host.iter())
            .filter(|(id, _)| !seen.contains(id))
            .map(|(_, &k)| k)
            .collect();
        for key in gone {
            let t = self.targets.remove(key);
            self.by_host
                .remove(&(self.checks[t.check].cluster, t.host.id));
        }
        self.count_healthy();
    }

    fn count_healthy(&self) {
        for (i, check) in self.checks.iter().enumerate() {
            let mine = || self.targets.iter().filter(move |(_, t)| t.check == i);
            let healthy = mine().filter(|(_, t)| t.session.healthy).count();
            let degraded = mine().filter(|(_, t)| t.degraded).count();
            check.stats.healthy.store(healthy as u64, Relaxed);
            check.stats.degraded.store(degraded as u64, Relaxed);
        }
    }

    /// Starts a due probe, or fails one past its timeout.
    fn tick(&mut self, key: usize, now: Instant) -> bool {
        let t = &mut self.targets[key];
        match &t.probe {
            Some(p) if p.deadline <= now => self.finish(key, NO_ANSWER),
            Some(_) => false,
            None if t.next <= now => self.start(key, now),
            None => false,
        }
    }

    fn start(&mut self, key: usize, now: Instant) -> bool {
        let t = &mut self.targets[key];
        let check = &self.checks[t.check];
        check.stats.attempt.fetch_add(1, Relaxed);
        let address = match check.config.alt_port {
            Some(port) => SocketAddr::new(t.host.spec.address.ip(), port),
            None => t.host.spec.address,
        };
        let deadline = now + check.config.timeout;
        t.status = None;
        t.degraded_answer = false;
        let checker = match check.config.kind {
            HealthCheckKind::Http(_) => "http",
            HealthCheckKind::Tcp(_) => "tcp",
        };
        t.trace = self
            .recorder
            .begin(&self.flows, &check.name, address, checker);
        let (conn, connected) = match t.kept.take() {
            Some(conn) => {
                if let Some(trace) = &mut t.trace {
                    trace.started(conn.fd());
                    trace.push(EventKind::StreamAttached { reused: true });
                }
                (conn, true)
            }
            None => {
                let sni = t.host.spec.hostname.as_deref();
                match Connection::connect(address, check.tls.as_ref(), sni) {
                    Ok(mut conn) => {
                        if let Some(trace) = &mut t.trace {
                            trace.started(conn.fd());
                            trace.push(EventKind::ConnectStarted { host: address });
                        }
                        let token = Token(key);
                        if conn.register(self.poll.registry(), token).is_err() {
                            return self.finish(key, NO_ANSWER);
                        }
                        (conn, false)
                    }
                    Err(_) => {
                        if let Some(trace) = &mut t.trace {
                            trace.started(-1);
                        }
                        return self.finish(key, NO_ANSWER);
                    }
                }
            }
        };
        t.probe = Some(Probe {
            conn,
            connected,
            deadline,
            codec: None,
        });
        if connected {
            self.send(key);
            return self.progress(key);
        }
        false
    }

    /// Queues the check's request (HTTP) or payload (TCP).
    fn send(&mut self, key: usize) {
        let t = &mut self.targets[key];
        let check = &self.checks[t.check];
        let Some(p) = t.probe.as_mut() else {
            return;
        };
        match &check.config.kind {
            HealthCheckKind::Http(http) => {
                let close = !check.config.reuse_connection;
                let head = http_request(http, &check.name, close);
                let mut codec = Http1Client::new(weir_config::HeaderKeyFormat::default());
                let bodiless = true;
                codec.encode_headers(&head, None, bodiless, false, &mut p.conn);
                p.codec = Some(codec);
            }
            HealthCheckKind::Tcp(tcp) => {
                p.conn.input.clear();
                if !tcp.send.is_empty() {
                    p.conn.queue(bytes::Bytes::copy_from_slice(&tcp.send));
                }
            }
        }
    }

    /// Moves a probe on after an event: connect, write, read, judge. Returns whether a host
    /// set changed.
    fn progress(&mut self, key: usize) -> bool {
        let Some(t) = self.targets.get_mut(key) else {
            return false;
        };
        let Some(p) = t.probe.as_mut() else {
            return false;
        };
        if !p.connected {
            if !p.conn.is_writable() {
                return false;
            }
            match p.conn.finish_connect(&self.syscalls) {
                ConnectProgress::Connected => p.connected = true,
                ConnectProgress::InProgress => return false,
                ConnectProgress::Failed(_) => return self.finish(key, NO_ANSWER),
            }
            if let Some(trace) = &mut t.trace {
                trace.push(EventKind::Connected);
            }
            self.send(key);
        }
        let t = &mut self.targets[key];
        let Target { probe, trace, .. } = t;
        let Some(p) = probe.as_mut() else {
            return false;
        };
        let wrote = |asked: usize, result: &std::io::Result<usize>| {
            if let Some(trace) = trace.as_mut() {
                trace.push(write_event(asked, result));
            }
        };
        if p.conn.flush(&self.syscalls, wrote).is_err() {
            return self.finish(key, NO_ANSWER);
        }
        let mut eof = false;
        while p.conn.can_read() {
            let outcome = p.conn.fill(&mut self.scratch, &self.syscalls);
            if let Some(trace) = trace.as_mut() {
                let asked = self.scratch.len() as u32;
                let result = read_result(&outcome);
                trace.push(EventKind::Read { asked, result });
            }
            match outcome {
                ReadOutcome::Data(_) => {}
                ReadOutcome::Drained => break,
                ReadOutcome::Eof | ReadOutcome::Failed(_) => {
                    eof = true;
                    break;
                }
            }
        }
        let check = &self.checks[t.check];
        let verdict = match &check.config.kind {
            HealthCheckKind::Http(http) => {
                let Some(codec) = p.codec.as_mut() else {
                    return false;
                };
                let mut verdict = None;
                loop {
                    match codec.decode(&mut p.conn.input) {
                        Ok(Some(ResponsePart::Headers { head, .. })) => {
                            t.status = Some(head.status);
                            t.degraded_answer = head.headers.contains("x-envoy-degraded");
                            if let Some(trace) = trace.as_mut() {
                                trace.status = head.status;
                                trace.push(EventKind::ResponseHead {
                                    status: head.status,
                                });
                            }
                            verdict = Some(judge_http(head.status, &head.headers, http));
                        }
                        Ok(Some(ResponsePart::Data(_))) => {}
                        Ok(Some(ResponsePart::End)) => break verdict,
                        Ok(None) | Err(weir_http1::Error::Incomplete) if !eof => return false,
                        Ok(None) | Err(_) => {
                            // Cut short, or garbage: the connection is no good.
                            break Some(NO_ANSWER);
                        }
                    }
                }
            }
            HealthCheckKind::Tcp(tcp) => {
                if p.conn.has_output() {
                    None
                } else if tcp_matches(&p.conn.input, &tcp.receive) {
                    Some(Verdict::Healthy)
                } else if eof {
                    Some(NO_ANSWER)
                } else {
                    None
                }
            }
        };
        match verdict {
            Some(v) => self.finish(key, v),
            None if eof => self.finish(key, NO_ANSWER),
            None => false,
        }
    }

    /// A check is over: judge it, log it, keep or close its connection, schedule the next.
    fn finish(&mut self, key: usize, verdict: Verdict) -> bool {
        let Some(t) = self.targets.get_mut(key) else {
            return false;
        };
        let check = &self.checks[t.check];
        let c = &check.config;
        let first = t.session.first_check;
        let transition = t.session.judge(verdict, c);
        match verdict {
            Verdict::Healthy => check.stats.success.fetch_add(1, Relaxed),
            Verdict::Failed { network, .. } => {
                if network {
                    check.stats.network_failure.fetch_add(1, Relaxed);
                }
                check.stats.failure.fetch_add(1, Relaxed)
            }
        };
        if let Some(p) = t.probe.take() {
            let reusable = c.reuse_connection
                && verdict == Verdict::Healthy
                && matches!(c.kind, HealthCheckKind::Http(_))
                && !p.conn.read_eof()
                && p.conn.input.is_empty()
                && p.codec
                    .as_ref()
                    .is_some_and(|codec| codec.streams_available() > 0);
            if reusable {
                t.kept = Some(p.conn);
            } else if let Some(trace) = t.trace.as_mut() {
                trace.push(EventKind::Close { by: Closer::Local });
            }
        }
        let traffic = (check.traffic)();
        let rng = &mut self.rng;
        let wait = t
            .session
            .next_wait(transition, c, traffic, &mut |n| rng.u64(0..n.max(1)));
        t.next = Instant::now() + wait;
        let healthy = t.session.healthy;
        if let Some(mut trace) = t.trace.take() {
            trace.push(EventKind::HealthCheckResult {
                verdict: match verdict {
                    Verdict::Healthy => "healthy",
                    Verdict::Failed { network: true, .. } => "no_answer",
                    Verdict::Failed { .. } => "unhealthy",
                },
                host_healthy: healthy,
                changed: transition == Transition::Changed,
            });
            let (method, path) = match &c.kind {
                HealthCheckKind::Http(http) => (http.method.as_str(), http.path.as_str()),
                HealthCheckKind::Tcp(_) => ("TCP", ""),
            };
            trace.finish(&self.flows, method, path);
        }
        let (cluster, id, address) = (check.cluster, t.host.id, t.host.spec.address);
        // A passing answer with `x-envoy-degraded` makes the host degraded; one without, not.
        let degraded =
            (verdict == Verdict::Healthy && t.degraded != t.degraded_answer).then(|| {
                t.degraded = t.degraded_answer;
                t.degraded
            });
        self.log_event(key, verdict, transition, first);
        let mut changed = false;
        if let Some(degraded) = degraded {
            changed = self
                .hosts
                .set_health(cluster, id, HEALTH_DEGRADED_HC, degraded);
            self.count_healthy();
        }
        if transition != Transition::Changed {
            return changed;
        }
        tracing::info!(cluster = %self.checks[self.targets[key].check].name, %address, healthy, "health check: host health changed");
        self.count_healthy();
        self.hosts
            .set_health(cluster, id, HEALTH_ACTIVE_HC, !healthy)
            || changed
    }

    /// Envoy's health-check event log: a line when a host is ejected or added, when its first
    /// check fails, and for every failure or success when asked.
    fn log_event(&mut self, key: usize, verdict: Verdict, transition: Transition, first: bool) {
        let t = &self.targets[key];
        let check = &self.checks[t.check];
        let c = &check.config;
        let Some(path) = &c.event_log_path else {
            return;
        };
        let failure_type = match verdict {
            Verdict::Failed { network: true, .. } => "NETWORK",
            _ => "ACTIVE",
        };
        let mut event = match (verdict, transition) {
            (Verdict::Healthy, Transition::Changed) => {
                serde_json::json!({"add_healthy_event": {"first_check": first}})
            }
            (Verdict::Failed { .. }, Transition::Changed) => {
                serde_json::json!({"eject_unhealthy_event": {"failure_type": failure_type}})
            }
            (Verdict::Failed { .. }, _) if first || c.always_log_health_check_failures => {
                serde_json::json!({"health_check_failure_event": {"failure_type": failure_type, "first_check": first}})
            }
            (Verdict::Healthy, _) if c.always_log_health_check_success => {
                serde_json::json!({"successful_health_check_event": {}})
            }
            _ => return,
        };
        // Envoy's events of a failed HTTP check carry the status it got.
        if let (Verdict::Failed { .. }, Some(status)) = (verdict, t.status)
            && let Some(inner) = event.as_object_mut().and_then(|o| o.values_mut().next())
            && let Some(inner) = inner.as_object_mut()
        {
            inner.insert("http_status_code".into(), status.into());
        }
        let kind = match c.kind {
            HealthCheckKind::Http(_) => "HTTP",
            HealthCheckKind::Tcp(_) => "TCP",
        };
        let address = t.host.spec.address;
        let mut line = serde_json::json!({
            "health_checker_type": kind,
            "host": {"socket_address": {"address": address.ip().to_string(), "port_value": address.port()}},
            "cluster_name": check.name,
            "timestamp": crate::access_log::format::rfc3339(std::time::SystemTime::now()),
        });
        if let (Some(line), Some(event)) = (line.as_object_mut(), event.as_object()) {
            line.extend(event.clone());
        }
        let file = match self.logs.entry(path.clone()) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(slot) => {
                let opened = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path);
                match opened {
                    Ok(file) => slot.insert(file),
                    Err(e) => {
                        tracing::warn!(%path, error = %e, "health check event log: cannot open");
                        return;
                    }
                }
            }
        };
        let _ = writeln!(file, "{line}");
    }
}
