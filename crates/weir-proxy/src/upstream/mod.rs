//! Upstream side: clusters, load balancing and per-worker connection pools.

pub(crate) mod codec_client;
pub(crate) mod conn_pool;
pub(crate) mod load_balancer;
pub(crate) mod retry;

use std::net::SocketAddr;

use weir_config::Cluster;

use crate::stats::WorkerStats;
use crate::worker::Stream;

use conn_pool::ConnPool;
use load_balancer::RoundRobin;

/// One cluster as one worker sees it: its balancer state and a pool per host.
pub(crate) struct ClusterState {
    pub(crate) name: weir_flow::Name,
    pub(crate) hosts: Vec<SocketAddr>,
    pub(crate) pools: Vec<ConnPool>,
    pub(crate) lb: RoundRobin,
    pub(crate) connect_timeout: std::time::Duration,
    pub(crate) buffer_limit: usize,
}

impl ClusterState {
    pub(crate) fn new(cluster: &Cluster, worker: usize) -> Self {
        ClusterState {
            name: cluster.name.as_str().into(),
            hosts: cluster.endpoints.iter().map(|e| e.address).collect(),
            pools: cluster
                .endpoints
                .iter()
                .map(|_| ConnPool::default())
                .collect(),
            lb: RoundRobin::new(cluster.endpoints.iter().map(|e| e.weight), worker),
            connect_timeout: cluster.connect_timeout,
            // At least 1, as for listeners (snapshot.rs): with 0 a request body never resumed.
            buffer_limit: (cluster.per_connection_buffer_limit_bytes as usize).max(1),
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

/// A request leaves its upstream connection: `upstream_rq_active` (and `_pending_active`, the
/// host's `rq_active`) drop, and how it ended is counted. Once per attempt: later calls find
/// nothing to end.
pub(crate) fn end_upstream_request(
    stats: &WorkerStats,
    now: std::time::Instant,
    stream: &mut Stream,
    end: UpstreamEnd,
) {
    let Some(started) = stream.upstream_started.take() else {
        return;
    };
    let Some(c) = stats.clusters.get(stream.cluster) else {
        return;
    };
    let cs = &c.common;
    cs.upstream_rq_active.dec();
    if std::mem::take(&mut stream.pending) {
        cs.upstream_rq_pending_active.dec();
    }
    if let Some(h) = c.hosts.get(stream.upstream_host) {
        h.rq_active.dec();
    }
    match end {
        UpstreamEnd::Completed => {
            cs.upstream_rq_completed.inc();
            let took = now.saturating_duration_since(started);
            cs.upstream_rq_time.record(took.as_millis() as u64);
        }
        UpstreamEnd::LocalReset => cs.upstream_rq_tx_reset.inc(),
        UpstreamEnd::Failed => {}
    }
}
