//! Upstream side: clusters, load balancing and per-worker connection pools.

pub(crate) mod codec_client;
pub(crate) mod conn_pool;
pub(crate) mod load_balancer;
pub(crate) mod retry;

use std::net::SocketAddr;

use weir_config::Cluster;

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
