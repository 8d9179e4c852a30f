//! The threads beside the workers that change clusters' host sets: DNS refreshes, outlier
//! sweeps, active health checks and ORIGINAL_DST cleanups. Each wakes every worker when a set
//! changed.

use std::io;
use std::sync::Arc;

use super::dns::{DnsClusters, DnsRefresher};
use super::health_checker::{ClusterCheck, HealthChecker};
use super::original_dst::OriginalDstCleanup;
use super::outlier::OutlierSweeper;
use super::probe_flows::ProbeFlows;
use crate::server::{ServerState, Workers};
use crate::snapshot::Snapshot;
use crate::stats::WorkerStats;

/// The threads, each present when some cluster needs it.
pub(crate) struct HostThreads {
    pub(crate) dns: Option<DnsRefresher>,
    pub(crate) outlier: Option<OutlierSweeper>,
    pub(crate) health: Option<HealthChecker>,
    pub(crate) original_dst: Option<OriginalDstCleanup>,
}

impl HostThreads {
    pub(crate) fn start(
        snapshot: &Snapshot,
        state: &Arc<ServerState>,
        workers: &Workers,
        dns: Option<DnsClusters>,
        probe_flows: Arc<ProbeFlows>,
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
        let detectors = snapshot.detectors.iter().flatten().cloned().collect();
        let outlier = OutlierSweeper::start(detectors, hosts.clone(), wake())?;
        let checks = health_checks(snapshot, state);
        let health = HealthChecker::start(checks, hosts.clone(), probe_flows, wake())?;
        let cleanups = (snapshot.bootstrap.clusters.iter().enumerate())
            .filter_map(|(i, c)| match &c.discovery {
                weir_config::Discovery::OriginalDst(od) => Some((i, od.cleanup_interval)),
                _ => None,
            })
            .collect();
        let original_dst = OriginalDstCleanup::start(cleanups, hosts.clone(), wake())?;
        Ok(HostThreads {
            dns,
            outlier,
            health,
            original_dst,
        })
    }
}

/// Each cluster's active health check, with a way to tell whether the cluster has carried
/// traffic (`no_traffic_interval`).
fn health_checks(snapshot: &Snapshot, state: &Arc<ServerState>) -> Vec<ClusterCheck> {
    (snapshot.bootstrap.clusters.iter().enumerate())
        .filter_map(|(i, c)| {
            let state = state.clone();
            Some(ClusterCheck {
                cluster: i,
                name: c.name.clone(),
                config: c.health_checks.first()?.clone(),
                tls: c.tls.clone(),
                stats: snapshot.health.get(i)?.clone()?,
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
