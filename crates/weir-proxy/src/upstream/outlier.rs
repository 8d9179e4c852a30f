//! Outlier detection: Envoy's passive health checking. Workers count what each attempt at a
//! host gave (a status, a connect failure, a timeout) in the host's shared counters; a run of
//! failures that reaches its threshold ejects the host at once, and a sweep every `interval`
//! returns hosts whose ejection is over and ejects those whose success rate or failure
//! percentage stands out. An ejection is a new host set with the host's health flag set
//! ([`ClusterHosts::set_health`]), so each worker's balancer leaves it out from its next round.
//!
//! ```text
//!   healthy ──consecutive failures / success rate / failure %──▶ ejected
//!      ▲          (within max_ejection_percent, enforcing_*)         │
//!      └───── sweep: base_ejection_time × ejections (≤ max) over ────┘
//! ```
//!
//! The sweep's inputs are the counts of the interval before it, as Envoy's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_config::OutlierDetection;

use super::host_set::{ClusterHosts, HEALTH_OUTLIER, Host, HostId};

/// What one attempt at a host gave, as the detector reads it (Envoy's `Result`, or a status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The origin answered with this status.
    Status(u16),
    /// The connection was made (counts only with `split_external_local_origin_errors`).
    Connected,
    /// The connection could not be made (refused, timed out, TLS failed).
    ConnectFailed,
    /// No response in time.
    Timeout,
    /// The connection broke before the response (closed, reset, garbage).
    RequestFailed,
}

/// Why a host is ejected (Envoy's `OutlierEjectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ejection {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
    ConsecutiveLocalOriginFailure,
    SuccessRate,
    LocalOriginSuccessRate,
    FailurePercentage,
    LocalOriginFailurePercentage,
}

const EJECTIONS: [Ejection; 7] = [
    Ejection::Consecutive5xx,
    Ejection::ConsecutiveGatewayFailure,
    Ejection::ConsecutiveLocalOriginFailure,
    Ejection::SuccessRate,
    Ejection::LocalOriginSuccessRate,
    Ejection::FailurePercentage,
    Ejection::LocalOriginFailurePercentage,
];

impl Ejection {
    /// Its part of the stat names (`ejections_detected_<name>`).
    fn name(self) -> &'static str {
        match self {
            Ejection::Consecutive5xx => "consecutive_5xx",
            Ejection::ConsecutiveGatewayFailure => "consecutive_gateway_failure",
            Ejection::ConsecutiveLocalOriginFailure => "consecutive_local_origin_failure",
            Ejection::SuccessRate => "success_rate",
            Ejection::LocalOriginSuccessRate => "local_origin_success_rate",
            Ejection::FailurePercentage => "failure_percentage",
            Ejection::LocalOriginFailurePercentage => "local_origin_failure_percentage",
        }
    }

    /// Percent chance that a detected outlier of this kind is ejected.
    fn enforcing(self, c: &OutlierDetection) -> u32 {
        match self {
            Ejection::Consecutive5xx => c.enforcing_consecutive_5xx,
            Ejection::ConsecutiveGatewayFailure => c.enforcing_consecutive_gateway_failure,
            Ejection::ConsecutiveLocalOriginFailure => c.enforcing_consecutive_local_origin_failure,
            Ejection::SuccessRate => c.enforcing_success_rate,
            Ejection::LocalOriginSuccessRate => c.enforcing_local_origin_success_rate,
            Ejection::FailurePercentage => c.enforcing_failure_percentage,
            Ejection::LocalOriginFailurePercentage => c.enforcing_failure_percentage_local_origin,
        }
    }
}

/// One host's counts, written by every worker.
#[derive(Debug, Default)]
pub(crate) struct HostOutlier {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
    /// This interval's requests and successes, the origin's (all of them, unsplit) …
    external: [AtomicU64; 2],
    /// … and the connections' (split only).
    local: [AtomicU64; 2],
}

/// Up to two runs reached their threshold at once (a 503 counts as a 5xx and a gateway
/// failure).
pub(crate) type Triggered = [Option<Ejection>; 2];

impl HostOutlier {
    /// Counts one outcome; returns the runs of failures it brought to their threshold.
    pub(crate) fn record(&self, outcome: Outcome, c: &OutlierDetection) -> Triggered {
        let split = c.split_external_local_origin_errors;
        match (outcome, split) {
            (Outcome::Status(code), _) => self.status(code, c),
            (Outcome::Connected, false) => [None; 2],
            (Outcome::ConnectFailed, false) => self.status(503, c),
            (Outcome::Timeout, false) => self.status(504, c),
            (Outcome::RequestFailed, false) => self.status(500, c),
            (Outcome::RequestFailed, true) => self.status(503, c),
            (Outcome::Connected, true) => {
                count(&self.local, true);
                self.consecutive_local.store(0, Relaxed);
                [None; 2]
            }
            (Outcome::ConnectFailed | Outcome::Timeout, true) => {
                count(&self.local, false);
                let run = self.consecutive_local.fetch_add(1, Relaxed) + 1;
                let hit = run == c.consecutive_local_origin_failure;
                [hit.then_some(Ejection::ConsecutiveLocalOriginFailure), None]
            }
        }
    }

    fn status(&self, code: u16, c: &OutlierDetection) -> Triggered {
        if code < 500 {
            count(&self.external, true);
            self.consecutive_5xx.store(0, Relaxed);
            self.consecutive_gateway.store(0, Relaxed);
            return [None; 2];
        }
        count(&self.external, false);
        let mut hit = [None; 2];
        if matches!(code, 502..=504) {
            let run = self.consecutive_gateway.fetch_add(1, Relaxed) + 1;
            if run == c.consecutive_gateway_failure {
                hit[0] = Some(Ejection::ConsecutiveGatewayFailure);
            }
        } else {
            self.consecutive_gateway.store(0, Relaxed);
        }
        if self.consecutive_5xx.fetch_add(1, Relaxed) + 1 == c.consecutive_5xx {
            hit[1] = Some(Ejection::Consecutive5xx);
        }
        hit
    }

    fn reset(&self, kind: Ejection) {
        match kind {
            Ejection::Consecutive5xx => self.consecutive_5xx.store(0, Relaxed),
            Ejection::ConsecutiveGatewayFailure => self.consecutive_gateway.store(0, Relaxed),
            Ejection::ConsecutiveLocalOriginFailure => self.consecutive_local.store(0, Relaxed),
            _ => {}
        }
    }

    /// This interval's (requests, successes) of the origin or of the connections, zeroed for
    /// the next.
    fn take_interval(&self, local: bool) -> (u64, u64) {
        let counts = if local { &self.local } else { &self.external };
        (counts[0].swap(0, Relaxed), counts[1].swap(0, Relaxed))
    }
}

fn count(counts: &[AtomicU64; 2], success: bool) {
    counts[0].fetch_add(1, Relaxed);
    if success {
        counts[1].fetch_add(1, Relaxed);
    }
}

/// What the detector keeps of one host.
#[derive(Debug, Default)]
struct Monitor {
    /// Ejected since then.
    ejected_at: Option<Instant>,
    /// Its ejection lasts `base_ejection_time` times this: one more per ejection, one less
    /// per sweep it spends healthy.
    backoff: u32,
    /// This ejection's jitter.
    jitter: Duration,
    /// Its last success rates, origin and local (`/clusters`), when it had the volume.
    success_rate: [Option<f64>; 2],
}

/// Counters and the gauge of `cluster.<name>.outlier_detection.*`.
#[derive(Debug, Default)]
pub(crate) struct OutlierStats {
    pub(crate) ejections_active: AtomicU64,
    ejections_overflow: AtomicU64,
    /// Envoy's deprecated counters, still reported: ejections allowed by
    /// `max_ejection_percent` of the consecutive-5xx and success-rate kinds, and those
    /// kinds detected.
    ejections_total: AtomicU64,
    ejections_consecutive_5xx: AtomicU64,
    ejections_success_rate: AtomicU64,
    ejections_enforced_total: AtomicU64,
    detected: [AtomicU64; 7],
    enforced: [AtomicU64; 7],
}

/// One cluster's detector, shared by the workers and the sweep.
#[derive(Debug)]
pub(crate) struct Detector {
    pub(crate) config: OutlierDetection,
    cluster: usize,
    state: Mutex<State>,
    pub(crate) stats: OutlierStats,
}

#[derive(Debug)]
struct State {
    monitors: HashMap<HostId, Monitor>,
    rng: fastrand::Rng,
    next_sweep: Instant,
}

impl Detector {
    pub(crate) fn new(config: OutlierDetection, cluster: usize, now: Instant) -> Detector {
        Detector {
            cluster,
            state: Mutex::new(State {
                monitors: HashMap::new(),
                rng: fastrand::Rng::new(),
                next_sweep: now + config.interval,
            }),
            config,
            stats: OutlierStats::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the next sweep is due.
    pub(crate) fn next_sweep(&self) -> Instant {
        self.lock().next_sweep
    }

    /// A worker saw `host`'s run of failures reach its threshold: eject it (if it is not
    /// already out). Returns whether the host set changed.
    pub(crate) fn on_consecutive(
        &self,
        hosts: &ClusterHosts,
        host: &Host,
        kind: Ejection,
        now: Instant,
    ) -> bool {
        let mut state = self.lock();
        let set = hosts.current(self.cluster);
        state.sync(set.hosts.iter().map(|h| h.id), &self.stats);
        let ejected = state
            .monitors
            .get(&host.id)
            .is_some_and(|m| m.ejected_at.is_some());
        if ejected || !set.hosts.iter().any(|h| h.id == host.id) {
            return false;
        }
        self.stats.detected[kind as usize].fetch_add(1, Relaxed);
        let changed = self.eject(&mut state, hosts, host.id, kind, now);
        if kind == Ejection::Consecutive5xx {
            self.stats.ejections_consecutive_5xx.fetch_add(1, Relaxed);
        }
        host.outlier.reset(kind);
        changed
    }

    /// Ejects `id` if `max_ejection_percent` and the kind's enforcement allow.
    fn eject(
        &self,
        state: &mut State,
        hosts: &ClusterHosts,
        id: HostId,
        kind: Ejection,
        now: Instant,
    ) -> bool {
        let c = &self.config;
        let active = state
            .monitors
            .values()
            .filter(|m| m.ejected_at.is_some())
            .count();
        let percent = 100.0 * active as f64 / state.monitors.len().max(1) as f64;
        let allowed = percent < f64::from(c.max_ejection_percent.min(100))
            || (c.always_eject_one_host && active == 0);
        if !allowed {
            self.stats.ejections_overflow.fetch_add(1, Relaxed);
            return false;
        }
        if matches!(kind, Ejection::Consecutive5xx | Ejection::SuccessRate) {
            self.stats.ejections_total.fetch_add(1, Relaxed);
        }
        if state.rng.u32(0..100) >= kind.enforcing(c) {
            return false;
        }
        let jitter = match c.max_ejection_time_jitter.as_millis() as u64 {
            0 => Duration::ZERO,
            max => Duration::from_millis(state.rng.u64(0..=max)),
        };
        let Some(m) = state.monitors.get_mut(&id) else {
            return false;
        };
        m.ejected_at = Some(now);
        m.jitter = jitter;
        if u128::from(m.backoff) * c.base_ejection_time.as_millis()
            < c.max_ejection_time.as_millis() + c.base_ejection_time.as_millis()
        {
            m.backoff += 1;
        }
        self.stats.ejections_active.fetch_add(1, Relaxed);
        self.stats.ejections_enforced_total.fetch_add(1, Relaxed);
        self.stats.enforced[kind as usize].fetch_add(1, Relaxed);
        tracing::info!(
            cluster = self.cluster,
            ?kind,
            "outlier detection: host ejected"
        );
        hosts.set_health(self.cluster, id, HEALTH_OUTLIER, true)
    }

    /// The sweep: hosts whose ejection is over return, then the success-rate and
    /// failure-percentage checks run on the last interval's counts. Returns whether the host
    /// set changed.
    pub(crate) fn sweep(&self, hosts: &ClusterHosts, now: Instant) -> bool {
        let mut state = self.lock();
        let set = hosts.current(self.cluster);
        state.sync(set.hosts.iter().map(|h| h.id), &self.stats);
        state.next_sweep = now + self.config.interval;
        let c = &self.config;
        let mut changed = false;
        for host in &set.hosts {
            let Some(m) = state.monitors.get_mut(&host.id) else {
                continue;
            };
            m.success_rate = [None; 2];
            let Some(at) = m.ejected_at else {
                m.backoff = m.backoff.saturating_sub(1);
                continue;
            };
            let lasts = c
                .base_ejection_time
                .saturating_mul(m.backoff)
                .min(c.max_ejection_time)
                + m.jitter;
            if now.saturating_duration_since(at) >= lasts {
                m.ejected_at = None;
                self.stats.ejections_active.fetch_sub(1, Relaxed);
                host.outlier.reset(Ejection::Consecutive5xx);
                host.outlier.reset(Ejection::ConsecutiveGatewayFailure);
                changed |= hosts.set_health(self.cluster, host.id, HEALTH_OUTLIER, false);
            }
        }
        for local in [false, true] {
            changed |= self.rates(&mut state, hosts, &set.hosts, local, now);
        }
        changed
    }

    /// Envoy's success-rate and failure-percentage checks over the interval's counts (the
    /// origin's, or with `local` the connections').
    fn rates(
        &self,
        state: &mut State,
        hosts: &ClusterHosts,
        set: &[Arc<Host>],
        local: bool,
        now: Instant,
    ) -> bool {
        let c = &self.config;
        let counts: Vec<(HostId, u64, u64)> = set
            .iter()
            .map(|h| {
                let (total, ok) = h.outlier.take_interval(local);
                (h.id, total, ok)
            })
            .collect();
        let hosts_n = state.monitors.len() as u64;
        if hosts_n < u64::from(c.success_rate_minimum_hosts)
            && hosts_n < u64::from(c.failure_percentage_minimum_hosts)
        {
            return false;
        }
        let (sr_volume, fp_volume) = (
            u64::from(c.success_rate_request_volume),
            u64::from(c.failure_percentage_request_volume),
        );
        let mut sr_hosts = Vec::new();
        let mut fp_hosts = Vec::new();
        for (id, total, ok) in counts {
            let Some(m) = state.monitors.get_mut(&id) else {
                continue;
            };
            if m.ejected_at.is_some() || total == 0 {
                continue;
            }
            let rate = ok as f64 * 100.0 / total as f64;
            if total >= sr_volume.min(fp_volume) {
                m.success_rate[usize::from(local)] = Some(rate);
            }
            if total >= sr_volume {
                sr_hosts.push((id, rate));
            }
            if total >= fp_volume {
                fp_hosts.push((id, rate));
            }
        }
        let mut changed = false;
        if !sr_hosts.is_empty() && sr_hosts.len() as u64 >= u64::from(c.success_rate_minimum_hosts)
        {
            let n = sr_hosts.len() as f64;
            let mean = sr_hosts.iter().map(|(_, r)| r).sum::<f64>() / n;
            let variance = sr_hosts
                .iter()
                .map(|(_, r)| (r - mean).powi(2))
                .sum::<f64>()
                / n;
            let threshold =
                mean - f64::from(c.success_rate_stdev_factor) / 1000.0 * variance.sqrt();
            let kind = match local {
                false => Ejection::SuccessRate,
                true => Ejection::LocalOriginSuccessRate,
            };
            for &(id, rate) in &sr_hosts {
                if rate < threshold {
                    self.stats.ejections_success_rate.fetch_add(1, Relaxed);
                    self.stats.detected[kind as usize].fetch_add(1, Relaxed);
                    changed |= self.eject(state, hosts, id, kind, now);
                }
            }
        }
        if !fp_hosts.is_empty()
            && fp_hosts.len() as u64 >= u64::from(c.failure_percentage_minimum_hosts)
        {
            let kind = match local {
                false => Ejection::FailurePercentage,
                true => Ejection::LocalOriginFailurePercentage,
            };
            for &(id, rate) in &fp_hosts {
                let ejected = state
                    .monitors
                    .get(&id)
                    .is_some_and(|m| m.ejected_at.is_some());
                if !ejected && 100.0 - rate >= f64::from(c.failure_percentage_threshold) {
                    self.stats.detected[kind as usize].fetch_add(1, Relaxed);
                    changed |= self.eject(state, hosts, id, kind, now);
                }
            }
        }
        changed
    }

    /// A host's last success rate (origin's), for `/clusters`; −1 when it had none.
    pub(crate) fn success_rate(&self, id: HostId, local: bool) -> f64 {
        let state = self.lock();
        let rate = state
            .monitors
            .get(&id)
            .and_then(|m| m.success_rate[usize::from(local)]);
        rate.unwrap_or(-1.0)
    }

    /// `outlier_detection.*` as Envoy names them.
    pub(crate) fn each_stat(&self, mut f: impl FnMut(&str, bool, u64)) {
        let s = &self.stats;
        f("ejections_active", true, s.ejections_active.load(Relaxed));
        f(
            "ejections_overflow",
            false,
            s.ejections_overflow.load(Relaxed),
        );
        f(
            "ejections_enforced_total",
            false,
            s.ejections_enforced_total.load(Relaxed),
        );
        f("ejections_total", false, s.ejections_total.load(Relaxed));
        let consecutive = s.ejections_consecutive_5xx.load(Relaxed);
        f("ejections_consecutive_5xx", false, consecutive);
        f(
            "ejections_success_rate",
            false,
            s.ejections_success_rate.load(Relaxed),
        );
        for kind in EJECTIONS {
            let i = kind as usize;
            let detected = format!("ejections_detected_{}", kind.name());
            f(&detected, false, s.detected[i].load(Relaxed));
            let enforced = format!("ejections_enforced_{}", kind.name());
            f(&enforced, false, s.enforced[i].load(Relaxed));
        }
    }
}

impl State {
    /// Follows the host set: a monitor per host, none for hosts that left (an ejected one
    /// that left is no longer counted active).
    fn sync(&mut self, ids: impl Iterator<Item = HostId>, stats: &OutlierStats) {
        let ids: Vec<HostId> = ids.collect();
        self.monitors.retain(|id, m| {
            let stays = ids.contains(id);
            if !stays && m.ejected_at.is_some() {
                stats.ejections_active.fetch_sub(1, Relaxed);
            }
            stays
        });
        for id in ids {
            self.monitors.entry(id).or_default();
        }
    }
}

/// The sweeps' thread (`weir:outlier`): each detector's sweep when it is due; `wake` tells
/// the workers when a host set changed.
pub(crate) struct OutlierSweeper {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl OutlierSweeper {
    /// `None` when no cluster has outlier detection.
    pub(crate) fn start(
        detectors: Vec<Arc<Detector>>,
        hosts: Arc<ClusterHosts>,
        wake: impl Fn() + Send + 'static,
    ) -> std::io::Result<Option<OutlierSweeper>> {
        use std::sync::mpsc::RecvTimeoutError;
        if detectors.is_empty() {
            return Ok(None);
        }
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("weir:outlier".into())
            .spawn(move || {
                loop {
                    let due = detectors.iter().map(|d| d.next_sweep()).min();
                    let wait = due.map_or(Duration::from_secs(3600), |t| {
                        t.saturating_duration_since(Instant::now())
                    });
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    let now = Instant::now();
                    let mut changed = false;
                    for d in detectors.iter().filter(|d| d.next_sweep() <= now) {
                        changed |= d.sweep(&hosts, now);
                    }
                    if changed {
                        wake();
                    }
                }
            })?;
        Ok(Some(OutlierSweeper { stop, thread }))
    }

    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

#[cfg(test)]
#[path = "outlier_tests.rs"]
mod tests;
