//! The threads beside the workers that change clusters' host sets: DNS refreshes, outlier
//! sweeps, active health checks and ORIGINAL_DST cleanups. Each wakes every worker when a set
//! changed.

use std::io;
use std::sync::Arc;

use super::dns::{DnsClusters, DnsRefresher};
use super::health_checker::{ClusterCheck, HealthChecker};
use super::host_set::ClusterHosts;
use super::original_dst::OriginalDstCleanup;
use super::outlier::OutlierSweeper;
use crate::server::{ServerState, Workers};
use crate::snapshot::ClusterEntry;
use crate::stats::WorkerStats;

/// The threads of some clusters (those weir started with, or those one reload added), each
/// present when one of them needs it.
pub(crate) struct HostThreads {
    /// The numbers of the clusters they follow.
    clusters: Vec<usize>,
    dns: Option<DnsRefresher>,
    outlier: Option<OutlierSweeper>,
    health: Option<HealthChecker>,
    original_dst: Option<OriginalDstCleanup>,
}

impl HostThreads {
    /// The threads `clusters` need; `dns`: their DNS clusters, with their first answers.
    pub(crate) fn start(
        clusters: &[Arc<ClusterEntry>],
        state: &Arc<ServerState>,
        workers: &Workers,
        dns: Option<DnsClusters>,
    ) -> io::Result<HostThreads> {
        let hosts = &state.hosts;
        let wake = || {
            let workers = workers.clone();
            move || workers.tell(|_| {})
        };
        let dns = match dns {
            Some(dns) => Some(DnsRefresher::start(dns, hosts.clone(), wake())?),
            None => None,
        };
        let detectors = clusters.iter().filter_map(|c| c.detector.clone()).collect();
        let outlier = OutlierSweeper::start(detectors, hosts.clone(), wake())?;
        let checks = health_checks(clusters, state);
        let probes = workers.probes();
        let health = HealthChecker::start(checks, hosts.clone(), probes, wake())?;
        let cleanups = (clusters.iter())
            .filter_map(|c| match &c.config.discovery {
                weir_config::Discovery::OriginalDst(od) => Some((c.number, od.cleanup_interval)),
                _ => None,
            })
            .collect();
        let original_dst = OriginalDstCleanup::start(cleanups, hosts.clone(), wake())?;
        let followed = |c: &&Arc<ClusterEntry>| {
            let discovery = &c.config.discovery;
            c.detector.is_some()
                || c.health.is_some()
                || matches!(discovery, weir_config::Discovery::Dns(_))
                || matches!(discovery, weir_config::Discovery::OriginalDst(_))
        };
        Ok(HostThreads {
            clusters: clusters.iter().filter(followed).map(|c| c.number).collect(),
            dns,
            outlier,
            health,
            original_dst,
        })
    }

    /// None of them runs: nothing to stop.
    pub(crate) fn is_empty(&self) -> bool {
        self.dns.is_none()
            && self.outlier.is_none()
            && self.health.is_none()
            && self.original_dst.is_none()
    }

    /// Every cluster they follow was removed by a reload.
    pub(crate) fn unneeded(&self, hosts: &ClusterHosts) -> bool {
        self.clusters.iter().all(|&c| hosts.removed(c))
    }

    /// They follow cluster `number` (which is therefore not given to another).
    pub(crate) fn follow(&self, number: usize) -> bool {
        self.clusters.contains(&number)
    }

    /// Stops them (each thread is joined).
    pub(crate) fn stop(self) {
        if let Some(dns) = self.dns {
            dns.stop();
        }
        if let Some(outlier) = self.outlier {
            outlier.stop();
        }
        if let Some(health) = self.health {
            health.stop();
        }
        if let Some(cleanup) = self.original_dst {
            cleanup.stop();
        }
    }
}

/// Each cluster's active health check, with a way to tell whether the cluster has carried
/// traffic (`no_traffic_interval`).
fn health_checks(clusters: &[Arc<ClusterEntry>], state: &Arc<ServerState>) -> Vec<ClusterCheck> {
    (clusters.iter())
        .filter_map(|entry| {
            let state = state.clone();
            let (i, c) = (entry.number, &entry.config);
            Some(ClusterCheck {
                cluster: i,
                name: c.name.clone(),
                config: c.health_checks.first()?.clone(),
                tls: c.tls.clone(),
                stats: entry.health.clone()?,
                traffic: Box::new(move || {
                    let cx = |w: &Arc<WorkerStats>| {
                        w.clusters
                            .get(i)
                            .map_or(0, |c| c.common.upstream_cx_total.get())
                    };
                    state.stats.read().workers.iter().any(|w| cx(w) > 0)
                }),
            })
        })
        .collect()
}
