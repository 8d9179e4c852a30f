//! Upstream side: clusters, load balancing and per-worker connection pools.

mod admission;
pub(crate) mod balancer;
pub(crate) mod circuit_breaker;
pub(crate) mod codec_client;
pub(crate) mod conn_pool;
pub(crate) mod dns;
pub(crate) mod failure;
pub(crate) mod health_check;
pub(crate) mod health_checker;
pub(crate) mod host_choice;
pub(crate) mod host_set;
pub(crate) mod lb;
mod origin_tls;
pub(crate) mod original_dst;
pub(crate) mod outlier;
pub(crate) mod priority;
pub(crate) mod probe_flows;
pub(crate) mod retry;
pub(crate) mod threads;

use std::sync::Arc;

use crate::event::timer::TimerWheel;
use crate::event::token::Id;
use crate::http::active_stream::Stream;
use crate::snapshot::ClusterEntry;
use crate::stats::WorkerStats;
use crate::worker::{TimerKey, Worker};

use circuit_breaker::{ClusterBreakers, Resource};
use health_checker::HealthStats;
use host_set::{HostSet, HostSlots};
use outlier::{Detector, Outcome};

/// One cluster as one worker sees it: its hosts (each with its pool) and balancer.
pub(crate) struct ClusterState {
    /// The cluster under its number (whether a reload retired it is read there).
    pub(crate) entry: Arc<ClusterEntry>,
    /// This worker followed the reload that retired it: its pools drain (no connection goes
    /// back to one), and a drain time later its hosts are removed.
    pub(crate) retired: bool,
    /// Its hosts removed and its last connection closed, this worker released it: its
    /// number may be given to another cluster (`snapshot/clusters.rs`).
    pub(crate) released: bool,
    pub(crate) name: weir_flow::Name,
    /// Its balancer picks by the request's hash (ring hash, Maglev).
    pub(crate) hashes: bool,
    pub(crate) hosts: HostSlots,
    pub(crate) connect_timeout: std::time::Duration,
    pub(crate) buffer_limit: usize,
    /// Its `header_key_format`: how requests' names are written to it.
    pub(crate) key_format: weir_config::HeaderKeyFormat,
    /// Its `transport_socket`: TLS to its hosts, or plaintext.
    pub(crate) tls: Option<weir_config::UpstreamTls>,
    /// `upstream_http_protocol_options.auto_sni`: the SNI comes from each request.
    pub(crate) auto_sni: Option<weir_config::AutoSni>,
    /// Its circuit breakers, shared with every worker.
    pub(crate) breakers: Arc<ClusterBreakers>,
    /// Its outlier detector, shared with every worker and the sweep.
    pub(crate) outlier: Option<Arc<Detector>>,
    /// Its health check's stats (with `health_checks`).
    pub(crate) health: Option<Arc<HealthStats>>,
    /// An `ORIGINAL_DST` cluster's settings: its hosts are the requests' destinations.
    pub(crate) original_dst: Option<weir_config::OriginalDst>,
}

/// What a cluster's workers share: its circuit breakers, outlier detector and health
/// check stats.
pub(crate) type Shared = (
    Arc<ClusterBreakers>,
    Option<Arc<Detector>>,
    Option<Arc<HealthStats>>,
);

impl ClusterState {
    pub(crate) fn new(entry: &Arc<ClusterEntry>, hosts: Arc<HostSet>, worker: usize) -> Self {
        let cluster = &entry.config;
        let (breakers, outlier, health) = entry.shared();
        ClusterState {
            entry: entry.clone(),
            retired: false,
            released: false,
            name: cluster.name.as_str().into(),
            hashes: cluster.lb_policy.hashes(),
            hosts: HostSlots::new(
                hosts,
                cluster.lb_policy,
                cluster.load_spread,
                cluster.healthy_panic_threshold,
                worker,
            ),
            connect_timeout: cluster.connect_timeout,
            // At least 1, as for listeners (snapshot.rs): with 0 a request body never resumed.
            buffer_limit: (cluster.per_connection_buffer_limit_bytes as usize).max(1),
            key_format: cluster.header_key_format,
            tls: cluster.tls.clone(),
            auto_sni: cluster.auto_sni.clone(),
            breakers,
            outlier,
            health,
            original_dst: match &cluster.discovery {
                weir_config::Discovery::OriginalDst(od) => Some(od.clone()),
                _ => None,
            },
        }
    }
}

impl ClusterState {
    /// Gives the pools of forgotten hosts back to `max_connection_pools`.
    pub(crate) fn release_forgotten_pools(&mut self) {
        for _ in 0..self.hosts.take_forgotten_pools() {
            self.breakers.default_priority().dec(Resource::Pools);
        }
    }
}

/// How a request leaves its upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamEnd {
    /// The response ended (`upstream_rq_completed`, `upstream_rq_time`).
    Completed,
    /// weir gave up on it: a timeout, the client left (`upstream_rq_tx_reset`).
    LocalReset,
    /// The connection failed under it (counted where the failure is seen).
    Failed,
}

/// Ends a stream's current attempt, if it has one: `upstream_rq_active` (and
/// `_pending_active`, the host's `rq_active`) drop, how it ended is counted, its
/// `per_try_timeout` is disarmed. Returns the attempt's upstream connection, which the caller
/// closes (or, after a complete response, may pool). The one place an attempt ends.
pub(crate) fn end_attempt(
    (stats, clusters): (&WorkerStats, &[ClusterState]),
    timers: &mut TimerWheel<TimerKey>,
    now: std::time::Instant,
    stream: &mut Stream,
    end: UpstreamEnd,
) -> Option<Id> {
    let breaker = clusters
        .get(stream.cluster)
        .map(|c| c.breakers.default_priority());
    if std::mem::take(&mut stream.queued) {
        // It waited in its host's queue, with no connection yet.
        breaker.inspect(|b| b.dec(Resource::Pending));
        if let Some(c) = stats.clusters.get(stream.cluster) {
            c.common.upstream_rq_pending_active.dec();
        }
    }
    let attempt = stream.attempt.take()?;
    if let Some(timer) = attempt.per_try_timer {
        timers.cancel(timer);
    }
    if let Some(b) = breaker {
        b.dec(match attempt.pending {
            true => Resource::Pending,
            false => Resource::Requests,
        });
    }
    if let Some(c) = stats.clusters.get(stream.cluster) {
        let cs = &c.common;
        cs.upstream_rq_active.dec();
        if attempt.pending {
            cs.upstream_rq_pending_active.dec();
        }
        let host = clusters.get(stream.cluster);
        if let Some(h) = host.and_then(|c| c.hosts.stats(stream.upstream_host)) {
            h.rq_active.dec();
        }
        match end {
            UpstreamEnd::Completed => {
                cs.upstream_rq_completed.inc();
                let took = now.saturating_duration_since(attempt.started);
                cs.upstream_rq_time.record(took.as_millis() as u64);
            }
            UpstreamEnd::LocalReset => cs.upstream_rq_tx_reset.inc(),
            UpstreamEnd::Failed => {}
        }
    }
    Some(attempt.upstream)
}

impl Worker {
    /// Follows every cluster's current host set: hosts that left take nothing new, their
    /// idle connections close now and their busy ones after their request.
    pub(crate) fn apply_host_sets(&mut self) {
        let hosts = self.control.server.hosts.clone();
        let mut idle = Vec::new();
        for (i, cluster) in self.clusters.iter_mut().enumerate() {
            if cluster.released {
                // Its number may be another cluster's already: the worker takes that one
                // as it follows the reload that gave it.
                continue;
            }
            let set = hosts.current(i);
            if !Arc::ptr_eq(&set, cluster.hosts.set()) {
                idle.extend(cluster.hosts.apply(set));
                cluster.release_forgotten_pools();
            }
        }
        self.cluster_health = health_of(&self.clusters);
        for up in idle {
            self.close_upstream(up);
        }
    }

    /// Ends stream `sid`'s current attempt ([`end_attempt`]); returns its connection.
    pub(crate) fn end_attempt(&mut self, sid: Id, end: UpstreamEnd) -> Option<Id> {
        let stream = self.streams.get_mut(sid)?;
        end_attempt(
            (&self.stats, &self.clusters),
            &mut self.timers,
            self.now,
            stream,
            end,
        )
    }
}

/// Each cluster's name, host count and healthy host count, for the health check filter
/// (clusters in force only: a name a reload replaced is found under its new number).
pub(crate) fn health_of(clusters: &[ClusterState]) -> Vec<(String, usize, usize)> {
    clusters
        .iter()
        .filter(|c| !c.entry.retired())
        .map(|c| {
            let set = c.hosts.set();
            let healthy = set.hosts.iter().filter(|h| h.healthy()).count();
            (c.name.to_string(), set.hosts.len(), healthy)
        })
        .collect()
}

impl Worker {
    /// An origin said `x-envoy-immediate-health-check-fail` (a proxy in front of it is
    /// draining): with health checks, the host fails at once and returns when its checks
    /// pass again (`health_check.passive_failure`).
    pub(crate) fn fail_health_check(&mut self, cluster: usize, host: Option<Id>) {
        let Some(stats) = self.clusters.get(cluster).and_then(|c| c.health.clone()) else {
            return;
        };
        let Some(host) = host.and_then(|h| self.clusters[cluster].hosts.get(h)) else {
            return;
        };
        let id = host.host.id;
        let hosts = self.control.server.hosts.clone();
        if hosts.set_health(cluster, id, host_set::HEALTH_ACTIVE_HC, true) {
            stats
                .passive_failure
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.apply_host_sets();
        }
    }

    /// Tells the cluster's outlier detector what an attempt at `host` gave; a run of failures
    /// that reaches its threshold ejects the host (this worker follows the new set at once;
    /// the others at their next round).
    pub(crate) fn report_outlier(&mut self, cluster: usize, host: Option<Id>, outcome: Outcome) {
        let Some(state) = self.clusters.get(cluster) else {
            return;
        };
        let Some(detector) = &state.outlier else {
            return;
        };
        let Some(slot) = host.and_then(|h| state.hosts.get(h)) else {
            return;
        };
        let triggered = slot.host.outlier.record(outcome, &detector.config);
        if triggered == [None, None] {
            return;
        }
        let (detector, host) = (detector.clone(), slot.host.clone());
        let hosts = self.control.server.hosts.clone();
        let mut changed = false;
        for kind in triggered.into_iter().flatten() {
            changed |= detector.on_consecutive(&hosts, &host, kind, self.now);
        }
        if changed {
            self.apply_host_sets();
        }
    }
}
