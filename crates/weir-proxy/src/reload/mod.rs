//! Changing the config of a running weir without dropping a connection (`SIGHUP`, admin
//! `POST /reload`): the file is read and validated as at startup, compared with the config in
//! force, and what changed is applied, all or nothing.
//!
//! What a reload changes now: the route tables of HTTP connection managers (`route_config`:
//! virtual hosts, routes, their actions and per-route configs) and the endpoints of `STATIC`
//! clusters (`load_assignment.endpoints`, through the host-set update path, as DNS answers
//! are). Any other difference is refused with its config path, and nothing changes.
//!
//! How a new route table reaches the workers without a lock on the request path: the
//! versions of a listener runtime, and of a chain, share a lineage that names the newest
//! (`snapshot.rs`); a worker takes a listener's at its next accept (or when woken after the
//! reload), a connection its chain's when its next request starts (no stream of the
//! connection is in flight then; one atomic load when nothing changed). Streams in flight
//! finish on the table they started with, new ones use the new table at once, and a version is
//! freed with the last holder (the lineage holds the newest weakly).

mod diff;
mod follow;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::access_log::format::rfc3339;
use crate::server::{ServerState, Workers};
use crate::snapshot::Snapshot;
use crate::upstream::host_set::{ClusterHosts, HostSpec, Identity};
pub(crate) use diff::ChainAt;
use diff::{Change, classify, differences};

/// The config in force, and how it came to be.
pub(crate) struct ConfigState {
    /// The file weir was started from (`None`: an embedded config, as the demo's).
    path: Option<PathBuf>,
    current: Mutex<Current>,
    /// One reload at a time.
    reloading: Mutex<()>,
    /// `current`'s version, for workers to compare without the lock.
    version: AtomicU64,
    /// `server.config_reload_total`: reloads applied.
    reloads: AtomicU64,
    /// `server.config_reload_failed`: reloads refused.
    failures: AtomicU64,
    /// `server.last_config_reload_time`: when the last one was applied (Unix seconds).
    last_reload: AtomicU64,
}

impl std::fmt::Debug for ConfigState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigState")
            .field("path", &self.path)
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// The snapshot in force, its version (1 at startup, one more per applied reload) and when
/// it was applied.
#[derive(Clone)]
pub(crate) struct Current {
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) version: u64,
    pub(crate) applied_at: String,
}

/// What a reload applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) version: u64,
    /// The chains whose route tables changed, as `listener/chain`.
    pub(crate) routes: Vec<String>,
    /// The clusters whose endpoints changed.
    pub(crate) endpoints: Vec<String>,
}

impl Applied {
    /// In words, for the log and `/reload`.
    pub(crate) fn text(&self) -> String {
        if self.routes.is_empty() && self.endpoints.is_empty() {
            return format!("no change: config version {} stays\n", self.version);
        }
        let mut out = format!("applied config version {}\n", self.version);
        for r in &self.routes {
            out.push_str(&format!("  routes of {r}\n"));
        }
        for c in &self.endpoints {
            out.push_str(&format!("  endpoints of cluster {c}\n"));
        }
        out
    }
}

/// Why a reload changed nothing: each problem with its config path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) errors: Vec<(String, String)>,
}

impl Refused {
    fn one(path: &str, message: impl Into<String>) -> Refused {
        Refused {
            errors: vec![(path.to_owned(), message.into())],
        }
    }

    pub(crate) fn text(&self) -> String {
        let mut out = String::from("reload refused; nothing changed\n");
        for (path, message) in &self.errors {
            match path.is_empty() {
                true => out.push_str(&format!("  {message}\n")),
                false => out.push_str(&format!("  {path}: {message}\n")),
            }
        }
        out
    }
}

/// Reloads (`SIGHUP`, `POST /reload`), logs what happened, and wakes the workers to follow
/// host sets that changed.
pub(crate) fn run(state: &ServerState, workers: &Workers) -> Result<Applied, Refused> {
    let outcome = state.config.reload(&state.hosts);
    match &outcome {
        Ok(applied) => {
            tracing::info!("reload: {}", applied.text().trim_end());
            // Workers follow the new runtimes and host sets when woken.
            workers.tell(|_| {});
        }
        Err(refused) => tracing::warn!("{}", refused.text().trim_end()),
    }
    outcome
}

/// What a config change that a reload does not apply is told.
const NEEDS_RESTART: &str = "cannot change at run time (a reload changes route configs and static endpoints): restart weir to apply it";

impl ConfigState {
    pub(crate) fn new(path: Option<PathBuf>, snapshot: Arc<Snapshot>) -> ConfigState {
        ConfigState {
            path,
            current: Mutex::new(Current {
                snapshot,
                version: 1,
                applied_at: rfc3339(SystemTime::now()),
            }),
            reloading: Mutex::new(()),
            version: AtomicU64::new(1),
            reloads: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_reload: AtomicU64::new(0),
        }
    }

    /// Reloads applied, refused, and when the last was applied (Unix seconds).
    pub(crate) fn counts(&self) -> [u64; 3] {
        [
            self.reloads.load(Relaxed),
            self.failures.load(Relaxed),
            self.last_reload.load(Relaxed),
        ]
    }

    /// The version in force (read by workers when woken, without a lock).
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Relaxed)
    }

    pub(crate) fn current(&self) -> Current {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the config file again and applies what changed, or nothing (counted either way).
    pub(crate) fn reload(&self, hosts: &ClusterHosts) -> Result<Applied, Refused> {
        let _one = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = self.try_reload(hosts);
        match &outcome {
            Ok(applied) if !applied.routes.is_empty() || !applied.endpoints.is_empty() => {
                self.reloads.fetch_add(1, Relaxed);
                let now = SystemTime::now();
                let secs = now.duration_since(SystemTime::UNIX_EPOCH);
                self.last_reload
                    .store(secs.map_or(0, |d| d.as_secs()), Relaxed);
            }
            Ok(_) => {}
            Err(_) => {
                self.failures.fetch_add(1, Relaxed);
            }
        }
        outcome
    }

    fn try_reload(&self, hosts: &ClusterHosts) -> Result<Applied, Refused> {
        let Some(path) = &self.path else {
            return Err(Refused::one(
                "",
                "weir was not started from a config file (-c): there is nothing to read again",
            ));
        };
        let new = weir_config::load(path).map_err(|e| Refused {
            errors: (e.errors.into_iter())
                .map(|e| (e.path, e.message))
                .collect(),
        })?;
        for warning in &new.warnings {
            tracing::warn!(config = %path.display(), "{warning}");
        }
        let current = self.current();
        let old = &current.snapshot;
        let mut chains = Vec::new();
        let mut endpoints = Vec::new();
        let mut refused = Vec::new();
        for path in differences(&old.bootstrap.source, &new.source) {
            match classify(&path) {
                Change::Routes { listener, chain } => chains.push((listener, chain)),
                Change::Endpoints { cluster } if is_static(&new, cluster) => {
                    endpoints.push(cluster)
                }
                Change::Endpoints { .. } | Change::Other(_) => {
                    refused.push((path, NEEDS_RESTART.to_owned()))
                }
            }
        }
        if !refused.is_empty() {
            return Err(Refused { errors: refused });
        }
        chains.sort();
        chains.dedup();
        endpoints.sort();
        endpoints.dedup();
        if chains.is_empty() && endpoints.is_empty() {
            return Ok(Applied {
                version: current.version,
                routes: Vec::new(),
                endpoints: Vec::new(),
            });
        }
        let routes = (chains.iter())
            .map(|(l, c)| chain_name(&new, *l, *c))
            .collect();
        let endpoint_names = (endpoints.iter())
            .map(|&c| new.clusters[c].name.clone())
            .collect();
        let specs: Vec<(usize, Vec<HostSpec>)> = (endpoints.iter())
            .map(|&c| {
                (
                    c,
                    new.clusters[c].endpoints.iter().map(HostSpec::of).collect(),
                )
            })
            .collect();
        let snapshot = old
            .reloaded(new, &chains)
            .map_err(|e| Refused::one("", e))?;
        for (cluster, specs) in specs {
            hosts.replace(cluster, specs, Identity::ByAddress);
        }
        let version = current.version + 1;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Current {
            snapshot: Arc::new(snapshot),
            version,
            applied_at: rfc3339(SystemTime::now()),
        };
        self.version.store(version, Relaxed);
        Ok(Applied {
            version,
            routes,
            endpoints: endpoint_names,
        })
    }
}

/// Cluster `c` takes its hosts from its endpoints as written (`STATIC`): a DNS or
/// `ORIGINAL_DST` cluster's come from elsewhere.
fn is_static(config: &weir_config::Bootstrap, c: usize) -> bool {
    (config.clusters.get(c)).is_some_and(|c| matches!(c.discovery, weir_config::Discovery::Static))
}

/// `listener/chain` (the chain's name, its index when unnamed, or `default`).
fn chain_name(config: &weir_config::Bootstrap, listener: usize, chain: ChainAt) -> String {
    let Some(l) = config.listeners.get(listener) else {
        return format!("listener {listener}");
    };
    let chain = match chain {
        ChainAt::Default => "default_filter_chain".to_owned(),
        ChainAt::Index(i) => match l.filter_chains.get(i).map(|c| c.name.as_str()) {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => format!("filter_chains[{i}]"),
        },
    };
    format!("{}/{chain}", l.name)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::ChainAt;
    use crate::access_log::AccessLogs;
    use crate::snapshot::{ChainRuntime, ListenerRuntime, Snapshot};
    use crate::testing::bootstrap;

    fn snapshot(yaml: &str) -> Snapshot {
        let mut logs = AccessLogs::builder(1, Duration::from_secs(1));
        Snapshot::new(weir_config::parse(yaml).expect("valid"), &mut logs).expect("snapshot")
    }

    /// The chain a plain connection to listener 0 gets.
    fn chain(listener: &ListenerRuntime) -> Arc<ChainRuntime> {
        let peer = "127.0.0.1:50000".parse().expect("addr");
        let facts = weir_config::ConnectionFacts {
            local: "127.0.0.1:10000".parse().expect("addr"),
            direct_peer: peer,
            peer,
            server_name: None,
            transport_protocol: "raw_buffer",
            application_protocols: &[],
        };
        match listener.select(&facts) {
            Some(crate::snapshot::Chain::Http(c)) => c,
            _ => panic!("an HTTP chain"),
        }
    }

    #[test]
    fn a_new_route_table_is_the_old_chains_successor_and_the_rest_is_shared() {
        let old = snapshot(&bootstrap("", "", "", &["127.0.0.1:9001"]));
        let new = weir_config::parse(&bootstrap("", "", ", timeout: 3s", &["127.0.0.1:9001"]))
            .expect("valid");
        let reloaded = old
            .reloaded(new, &[(0, ChainAt::Index(0))])
            .expect("reloaded");
        let (before, after) = (&old.listeners[0], &reloaded.listeners[0]);
        let newest = ListenerRuntime::newest(before).expect("a successor");
        assert!(Arc::ptr_eq(&newest, after));
        let (old_chain, new_chain) = (chain(before), chain(after));
        let followed = ChainRuntime::newest(&old_chain).expect("a successor");
        assert!(Arc::ptr_eq(&followed, &new_chain));
        assert!(
            ChainRuntime::newest(&new_chain).is_none(),
            "the newest has none"
        );
        assert_eq!(new_chain.stats, old_chain.stats, "same stats scope");
        assert!(Arc::ptr_eq(&reloaded.breakers[0], &old.breakers[0]));
    }

    #[test]
    fn a_connection_on_the_first_version_keeps_only_that_one() {
        let config = |timeout: &str| {
            weir_config::parse(&bootstrap("", "", timeout, &["127.0.0.1:9001"])).expect("valid")
        };
        let first = snapshot(&bootstrap("", "", "", &["127.0.0.1:9001"]));
        let held = chain(&first.listeners[0]);
        let second = first
            .reloaded(config(", timeout: 2s"), &[(0, ChainAt::Index(0))])
            .expect("reloaded");
        let middle = Arc::downgrade(&chain(&second.listeners[0]));
        let third = second
            .reloaded(config(", timeout: 3s"), &[(0, ChainAt::Index(0))])
            .expect("reloaded");
        drop((first, second));
        assert!(
            middle.upgrade().is_none(),
            "the version in between is freed"
        );
        let newest = ChainRuntime::newest(&held).expect("the newest");
        assert!(Arc::ptr_eq(&newest, &chain(&third.listeners[0])));
    }
}
