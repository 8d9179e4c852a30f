//! The clusters as weir runs them, under numbers. The config numbers clusters by their
//! place in `static_resources.clusters`; a running weir gives each a number that stays its
//! own while anything may still use it (the workers' cluster states, host sets and stats
//! are indexed by it, and a chain's routes and a stream in flight name it). A reload that
//! adds a cluster gives it a number; one that removes a cluster, or changes it beyond its
//! static endpoints, retires its number (a changed cluster comes back under another, as
//! Envoy's CDS replaces a cluster): its pools drain (idle connections close at once, busy
//! ones after their request), a stream that still names it (its chain is from before the
//! reload) is served by it, and a drain time later its hosts are removed (a stream that
//! names it then is answered 503 `NC`).
//!
//! A retired number is given again, so that clusters that come and go do not make the
//! workers' state and stats grow, once nothing can reach it: no chain names it (each holds
//! a token of every cluster it names), every worker has released it (its hosts removed and
//! its last connection closed; its counts folded into the cluster of the same name, if one
//! is in force), and no DNS, health check or outlier thread follows it (such a thread
//! follows its clusters until all of them are removed: their numbers wait until then).

use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Instant;

use weir_config::Cluster;

use crate::upstream::Shared;
use crate::upstream::circuit_breaker::ClusterBreakers;
use crate::upstream::health_checker::HealthStats;
use crate::upstream::outlier::Detector;

/// One cluster under its number: its config and what every worker shares of it.
#[derive(Debug)]
pub(crate) struct ClusterEntry {
    pub(crate) number: usize,
    pub(crate) config: Cluster,
    /// Its circuit breakers: counts every worker shares.
    pub(crate) breakers: Arc<ClusterBreakers>,
    /// Its outlier detector (when it has `outlier_detection`).
    pub(crate) detector: Option<Arc<Detector>>,
    /// Its health check's stats (when it has `health_checks`).
    pub(crate) health: Option<Arc<HealthStats>>,
    /// The config version that retired it (0: in force).
    retired_by: AtomicU64,
    /// Its token: each chain that names it holds a clone (see the module documentation).
    token: Arc<()>,
    /// Workers that released it (counted once each).
    released: AtomicUsize,
}

impl ClusterEntry {
    pub(crate) fn new(config: Cluster, number: usize, now: Instant) -> Arc<ClusterEntry> {
        Arc::new(ClusterEntry {
            number,
            breakers: Arc::new(ClusterBreakers::new(&config.circuit_breakers)),
            detector: (config.outlier_detection.clone())
                .map(|o| Arc::new(Detector::new(o, number, now))),
            health: (!config.health_checks.is_empty()).then(Arc::default),
            config,
            retired_by: AtomicU64::new(0),
            token: Arc::default(),
            released: AtomicUsize::new(0),
        })
    }

    /// What each worker's state of it shares with the others'.
    pub(crate) fn shared(&self) -> Shared {
        (
            self.breakers.clone(),
            self.detector.clone(),
            self.health.clone(),
        )
    }

    /// A reload removed or replaced it.
    pub(crate) fn retired(&self) -> bool {
        self.retired_by() != 0
    }

    /// The config version that retired it (0: in force).
    pub(crate) fn retired_by(&self) -> u64 {
        self.retired_by.load(Acquire)
    }

    /// Config version `version` removed or replaced it.
    pub(crate) fn retire(&self, version: u64) {
        self.retired_by.store(version, Release);
    }

    /// A token for a chain that names it.
    pub(crate) fn token(&self) -> Arc<()> {
        self.token.clone()
    }

    /// A worker released it: its hosts are removed and it has no connection left.
    pub(crate) fn release(&self) {
        // Release: the worker's fold of its counts comes before a reuse that sees this.
        self.released.fetch_add(1, Release);
    }

    /// Nothing can reach its number any more: retired, no chain names it, and `workers`
    /// workers released it.
    pub(crate) fn unreachable(&self, workers: usize) -> bool {
        self.retired() && Arc::strong_count(&self.token) == 1 && self.released_by(workers)
    }

    /// `workers` workers released it: their counts of it went to the name's cluster in
    /// force.
    pub(crate) fn released_by(&self, workers: usize) -> bool {
        self.released.load(Acquire) >= workers
    }
}

/// The clusters of a config under their numbers: every number given so far (retired ones
/// included), and the number of each cluster of the config by its place.
#[derive(Debug, Clone)]
pub(crate) struct Clusters {
    pub(crate) all: Vec<Arc<ClusterEntry>>,
    pub(crate) ids: Vec<usize>,
}

impl Clusters {
    /// The clusters of the config weir starts with, numbered by their place.
    pub(crate) fn first(config: &[Cluster]) -> Clusters {
        let now = Instant::now();
        let all: Vec<_> = (config.iter().enumerate())
            .map(|(i, c)| ClusterEntry::new(c.clone(), i, now))
            .collect();
        Clusters {
            ids: (0..all.len()).collect(),
            all,
        }
    }

    /// The clusters in force, in config order.
    pub(crate) fn in_force(&self) -> impl Iterator<Item = &Arc<ClusterEntry>> {
        self.ids.iter().map(|&n| &self.all[n])
    }

    /// The tokens of the clusters `numbers` (each once), for a chain that names them.
    pub(crate) fn tokens(&self, numbers: impl Iterator<Item = usize>) -> Vec<Arc<()>> {
        let mut numbers: Vec<usize> = numbers.collect();
        numbers.sort_unstable();
        numbers.dedup();
        (numbers.iter())
            .filter_map(|&n| self.all.get(n).map(|c| c.token()))
            .collect()
    }

    /// The number of the config's cluster at place `c` (the config checked that it has one).
    pub(crate) fn number(&self, c: usize) -> usize {
        self.ids[c]
    }
}

impl super::Snapshot {
    /// The cluster numbers in force here that `new` no longer has in force.
    pub(crate) fn retired_by(&self, new: &Clusters) -> Vec<usize> {
        let mut kept = vec![false; new.all.len()];
        for &n in &new.ids {
            kept[n] = true;
        }
        (self.clusters.ids.iter().copied())
            .filter(|&n| !kept.get(n).copied().unwrap_or(false))
            .collect()
    }
}

impl super::Chain {
    /// It forwards to one of the clusters `numbers`.
    pub(crate) fn names_any(&self, numbers: &[usize]) -> bool {
        match self {
            super::Chain::Http(c) => (c.hcm.route_config.clusters()).any(|n| numbers.contains(&n)),
            super::Chain::Tcp(c) => (c.proxy.clusters.iter()).any(|(n, _)| numbers.contains(n)),
            super::Chain::Empty(_) => false,
        }
    }
}

impl super::ListenerRuntime {
    /// One of its chains forwards to one of the clusters `numbers`.
    pub(crate) fn names_any(&self, numbers: &[usize]) -> bool {
        self.all_chains().any(|c| c.names_any(numbers))
    }
}
