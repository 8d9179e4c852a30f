//! Changing the config of a running weir without dropping a connection (`SIGHUP`, admin
//! `POST /reload`): the file is read and validated as at startup, compared with the config in
//! force, and what changed is applied, all or nothing.
//!
//! What a reload changes now: what a listener does (everything but its name and address:
//! `snapshot/reloaded.rs` says what becomes of each filter chain and its connections) and the
//! endpoints of `STATIC` clusters (`load_assignment.endpoints`, through the host-set update
//! path, as DNS answers are). Any other difference is refused with its config path, and
//! nothing changes.
//!
//! How a new config reaches the workers without a lock on the request path: the versions of
//! a listener runtime, and of a chain, share a lineage that names the newest
//! (`snapshot/version.rs`); a worker takes a listener's at its next accept (or when woken
//! after the reload), a connection its chain's when its next request starts (no stream of the
//! connection is in flight then; one atomic load when nothing changed). Streams in flight
//! finish on the config they started with, and a version is freed with the last holder (the
//! lineage holds the newest weakly). The order matters: the stats layout grows before the
//! new versions are published, so a worker that takes a new chain has room for its scope.

mod diff;
mod follow;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::access_log::format::rfc3339;
use crate::server::{ServerState, Workers};
use crate::snapshot::Snapshot;
use crate::stats::Book;
use crate::upstream::host_set::{ClusterHosts, HostSpec, Identity};
pub(crate) use diff::only_routes;
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
    /// The listeners rebuilt (new connections get their new chains and settings).
    pub(crate) listeners: Vec<String>,
    /// The chains whose route tables changed (their connections move to the new table).
    pub(crate) routes: Vec<String>,
    /// The chains compiled anew: added, or changed beyond their routes (the old chain's
    /// connections close after their current request).
    pub(crate) chains: Vec<String>,
    /// The clusters whose endpoints changed.
    pub(crate) endpoints: Vec<String>,
}

impl Applied {
    fn changed(&self) -> bool {
        !self.listeners.is_empty() || !self.endpoints.is_empty()
    }

    /// In words, for the log and `/reload`.
    pub(crate) fn text(&self) -> String {
        if !self.changed() {
            return format!("no change: config version {} stays\n", self.version);
        }
        let mut out = format!("applied config version {}\n", self.version);
        for l in &self.listeners {
            out.push_str(&format!("  listener {l}\n"));
        }
        for r in &self.routes {
            out.push_str(&format!("  routes of {r}\n"));
        }
        for c in &self.chains {
            out.push_str(&format!("  filter chain {c}, new or changed\n"));
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
    let outcome = state.config.reload(&state.hosts, &state.stats);
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
const NEEDS_RESTART: &str = "cannot change at run time (a reload changes what listeners do and the endpoints of static clusters, not which listeners and clusters there are): restart weir to apply it";

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

    /// A reload can read the config again (weir started from a file).
    pub(crate) fn reloadable(&self) -> bool {
        self.path.is_some()
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
    pub(crate) fn reload(&self, hosts: &ClusterHosts, stats: &Book) -> Result<Applied, Refused> {
        let _one = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = self.try_reload(hosts, stats);
        match &outcome {
            Ok(applied) if applied.changed() => {
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

    fn try_reload(&self, hosts: &ClusterHosts, stats: &Book) -> Result<Applied, Refused> {
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
        let mut listeners = Vec::new();
        let mut endpoints = Vec::new();
        let mut refused = Vec::new();
        for path in differences(&old.bootstrap.source, &new.source) {
            match classify(&path) {
                Change::Listener { listener } => listeners.push(listener),
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
        listeners.sort();
        listeners.dedup();
        endpoints.sort();
        endpoints.dedup();
        let mut applied = Applied {
            version: current.version,
            listeners: (listeners.iter())
                .map(|&l| new.listeners[l].name.clone())
                .collect(),
            routes: Vec::new(),
            chains: Vec::new(),
            endpoints: (endpoints.iter())
                .map(|&c| new.clusters[c].name.clone())
                .collect(),
        };
        if !applied.changed() {
            return Ok(applied);
        }
        let specs: Vec<(usize, Vec<HostSpec>)> = (endpoints.iter())
            .map(|&c| {
                (
                    c,
                    new.clusters[c].endpoints.iter().map(HostSpec::of).collect(),
                )
            })
            .collect();
        let rebuilt = old
            .reloaded(new, &listeners)
            .map_err(|(path, e)| Refused::one(&path, e))?;
        // Room for the new chains' stats before any worker can take one.
        stats.set_layout(stats.layout().with_scopes_of(&rebuilt.snapshot));
        rebuilt.snapshot.publish(old);
        for (cluster, specs) in specs {
            hosts.replace(cluster, specs, Identity::ByAddress);
        }
        applied.version = current.version + 1;
        applied.routes = rebuilt.routes;
        applied.chains = rebuilt.replaced;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Current {
            snapshot: Arc::new(rebuilt.snapshot),
            version: applied.version,
            applied_at: rfc3339(SystemTime::now()),
        };
        self.version.store(applied.version, Relaxed);
        Ok(applied)
    }
}

/// Cluster `c` takes its hosts from its endpoints as written (`STATIC`): a DNS or
/// `ORIGINAL_DST` cluster's come from elsewhere.
fn is_static(config: &weir_config::Bootstrap, c: usize) -> bool {
    (config.clusters.get(c)).is_some_and(|c| matches!(c.discovery, weir_config::Discovery::Static))
}
