//! A worker's side of a reload's clusters (`snapshot/clusters.rs` says what a number is):
//!
//! ```text
//!   in force ──reload retires it──► retired ──drain time──► hosts removed ──last connection──► released
//!   (a number)   (pools drain; streams      (streams that      closed (counts folded into the   │
//!       ▲         that name it are served)    name it: 503 NC)  same name's; zero here)          │
//!       └─────────────── a reload gives the number again, once every worker released it ◄───────┘
//! ```
//!
//! The worker takes new and re-given numbers from the stats layout, which a reload publishes
//! before any chain that names them; a chain can still reach a worker before its waker does
//! (at an accept or a request's start), so the stream that meets an unknown or released
//! number makes the worker follow first.

use std::sync::Arc;

use crate::stats::Layout;
use crate::upstream::ClusterState;
use crate::worker::{TimerKey, Worker};

impl Worker {
    /// Takes the clusters reloads added or gave a released number to, and drains those
    /// they retired: their idle connections close now, their busy ones after their request;
    /// a stream that still names one (its chain is from before) is served by it, as the
    /// config it started with says, until its hosts are removed a drain time later.
    pub(super) fn follow_clusters(&mut self) {
        self.take_clusters();
        let mut idle = Vec::new();
        for n in 0..self.clusters.len() {
            let cluster = &mut self.clusters[n];
            if cluster.retired || !cluster.entry.retired() {
                continue;
            }
            cluster.retired = true;
            idle.extend(cluster.hosts.drain_pools());
            // Numbers stay below the clusters of one config, far below 2^32.
            let key = TimerKey::RetiredCluster(n as u32, cluster.entry.retired_by() as u32);
            self.arm(self.control.server.drain_time, key);
        }
        for up in idle {
            self.close_upstream(up);
        }
        self.release_clusters();
        // What the health check filter reads of clusters, by name.
        self.cluster_health = crate::upstream::health_of(&self.clusters);
    }

    /// A state for every number of the layout: new numbers, and released ones given again
    /// (what was counted under the old cluster since it was released goes to its name; to
    /// a cluster of the same name, it stays: counts folded into the number while the layout
    /// already named it but this worker had not taken it are that cluster's).
    fn take_clusters(&mut self) {
        // Room in this worker's stats for every number of this layout first.
        let layout = self.control.server.stats.layout();
        self.grow_stats_to(&layout);
        let hosts = self.control.server.hosts.clone();
        for (n, entry) in layout.clusters.iter().enumerate() {
            let worker = self.index;
            let state = || ClusterState::new(entry, hosts.current(n), worker);
            match self.clusters.get(n) {
                None => self.clusters.push(state()),
                Some(old) if !Arc::ptr_eq(&old.entry, entry) => {
                    let name = old.entry.config.name.clone();
                    if name != entry.config.name {
                        self.fold_counts(n, &name, &layout);
                    }
                    self.clusters[n] = state();
                }
                Some(_) => {}
            }
        }
    }

    /// A drain time after config version `version` retired cluster `n`: its hosts are
    /// removed (by the first worker to get here; every worker then follows the emptied
    /// set). Not if this worker released it meanwhile (another worker's timer came first):
    /// the number may be another cluster's already.
    pub(crate) fn remove_cluster(&mut self, n: usize, version: u32) {
        let this = |c: &ClusterState| c.entry.retired_by() as u32 == version && !c.released;
        if !self.clusters.get(n).is_some_and(this) {
            return;
        }
        self.control.server.hosts.remove_cluster(n);
        self.apply_host_sets();
        self.release_clusters();
    }

    /// Releases the retired clusters whose hosts are removed and whose last connection
    /// closed: their counts go on under the cluster in force of the same name (or go, with
    /// the name), and their numbers may be given again once every worker released them.
    pub(crate) fn release_clusters(&mut self) {
        let hosts = &self.control.server.hosts;
        let ready: Vec<usize> = (0..self.clusters.len())
            .filter(|&n| {
                let c = &self.clusters[n];
                c.retired && !c.released && hosts.removed(n) && c.hosts.is_empty()
            })
            .collect();
        if ready.is_empty() {
            return;
        }
        // The name's cluster in force may be one this worker has not taken yet.
        self.take_clusters();
        let layout = self.control.server.stats.layout();
        for n in ready {
            let name = self.clusters[n].entry.config.name.clone();
            self.fold_counts(n, &name, &layout);
            self.clusters[n].released = true;
            self.clusters[n].entry.release();
        }
    }

    /// Moves the counts of number `n` to the cluster named `name` in force in `layout` (or
    /// drops them when none is), leaving `n`'s at zero.
    fn fold_counts(&mut self, n: usize, name: &str, layout: &Layout) {
        // The layout's own cluster of that name, even if a reload retired it since: its
        // counts go on to the next when it is released in turn.
        let live = (layout.in_force.iter().copied()).find(|&m| {
            layout
                .clusters
                .get(m)
                .is_some_and(|c| c.config.name == name)
        });
        if live.is_some_and(|m| m >= self.stats.clusters.len()) {
            self.grow_stats_to(layout);
        }
        self.stats.fold_cluster(n, live);
    }

    /// Cluster `c` can take a stream: it has hosts to pick from, even if a reload retired
    /// it (the stream's chain named it before the reload), unless its hosts were removed. A
    /// chain taken at an accept or a request's start may name a cluster this worker has not
    /// followed yet (a new number, or one this worker released and a reload gave again):
    /// it follows now.
    pub(crate) fn cluster_in_force(&mut self, c: usize) -> bool {
        if self.clusters.get(c).is_none_or(|c| c.released) {
            self.follow_clusters();
        }
        match self.clusters.get(c) {
            Some(cluster) if cluster.entry.retired() => !self.control.server.hosts.removed(c),
            Some(_) => true,
            None => false,
        }
    }
}
