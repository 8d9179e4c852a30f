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
mod listeners;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use weir_config::Bootstrap;

use crate::access_log::format::rfc3339;
use crate::server::{ServerState, Workers};
use crate::snapshot::ListenerFrom;
use crate::snapshot::Snapshot;
use crate::upstream::host_set::{HostSpec, Identity};
use crate::worker::ListenerSlot;
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
    /// The listeners added, with their bound addresses.
    pub(crate) added: Vec<(String, SocketAddr)>,
    /// The listeners removed (their sockets close; their connections drain).
    pub(crate) removed: Vec<String>,
    /// The listeners rebuilt (new connections get their new chains and settings).
    pub(crate) listeners: Vec<String>,
    /// The chains whose route tables changed (their connections move to the new table).
    pub(crate) routes: Vec<String>,
    /// The chains compiled anew: added, or changed beyond their routes (the old chain's
    /// connections close after their next response).
    pub(crate) chains: Vec<String>,
    /// The clusters whose endpoints changed.
    pub(crate) endpoints: Vec<String>,
}

impl Applied {
    fn changed(&self) -> bool {
        !self.added.is_empty()
            || !self.removed.is_empty()
            || !self.listeners.is_empty()
            || !self.endpoints.is_empty()
    }

    /// In words, for the log and `/reload`.
    pub(crate) fn text(&self) -> String {
        if !self.changed() {
            return format!("no change: config version {} stays\n", self.version);
        }
        let mut out = format!("applied config version {}\n", self.version);
        for (l, address) in &self.added {
            out.push_str(&format!("  listener {l} added, on {address}\n"));
        }
        for l in &self.removed {
            out.push_str(&format!("  listener {l} removed: its connections drain\n"));
        }
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
    let outcome = state.config.reload(state, workers);
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
const NEEDS_RESTART: &str = "cannot change at run time (a reload changes listeners and the endpoints of static clusters, not which clusters there are): restart weir to apply it";

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
    pub(crate) fn reload(
        &self,
        state: &ServerState,
        workers: &Workers,
    ) -> Result<Applied, Refused> {
        self.counted(|| {
            let new = self.load()?;
            self.apply(state, new, |slots| workers.hand(slots))
        })
    }

    /// [`ConfigState::reload`] with `new` in place of the file (the in-memory harness, whose
    /// worker has no sockets: `new` adds no listener).
    #[cfg(test)]
    pub(crate) fn reload_from(
        &self,
        state: &ServerState,
        new: Bootstrap,
    ) -> Result<Applied, Refused> {
        self.counted(|| self.apply(state, new, |_| {}))
    }

    /// Runs one reload at a time, and counts it.
    fn counted(
        &self,
        reload: impl FnOnce() -> Result<Applied, Refused>,
    ) -> Result<Applied, Refused> {
        let _one = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = reload();
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

    /// The config file, read and validated again.
    fn load(&self) -> Result<Bootstrap, Refused> {
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
        Ok(new)
    }

    /// Applies what changed between the config in force and `new`, all or nothing; `hand`
    /// gives each worker its sockets of the listeners `new` adds.
    fn apply(
        &self,
        state: &ServerState,
        new: Bootstrap,
        hand: impl FnOnce(Vec<Vec<ListenerSlot>>),
    ) -> Result<Applied, Refused> {
        let current = self.current();
        let old = &current.snapshot;
        let plan = listeners::plan(&old.bootstrap, &new);
        let endpoints = changed_endpoints(&old.bootstrap, &new)?;
        let mut applied = Applied {
            version: current.version,
            added: Vec::new(),
            removed: plan.removed.clone(),
            listeners: (plan.from.iter().zip(&new.listeners))
                .filter(|(f, _)| matches!(f, ListenerFrom::Changed(_)))
                .map(|(_, l)| l.name.clone())
                .collect(),
            routes: Vec::new(),
            chains: Vec::new(),
            endpoints: (endpoints.iter())
                .map(|&c| new.clusters[c].name.clone())
                .collect(),
        };
        let adds = plan.from.contains(&ListenerFrom::Added);
        if !applied.changed() && !adds {
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
            .reloaded(new, &plan.from, current.version + 1)
            .map_err(|(path, e)| Refused::one(&path, e))?;
        let snapshot = rebuilt.snapshot;
        let added: Vec<_> = (plan.from.iter().enumerate())
            .filter(|(_, f)| **f == ListenerFrom::Added)
            .map(|(j, _)| (j, snapshot.listeners[j].clone()))
            .collect();
        let in_force = (state.listeners.lock())
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let bound = listeners::Bound::bind(&added, state.concurrency, &in_force)
            .map_err(|(path, e)| Refused::one(&path, e))?;
        // Nothing can fail from here on. Room for the new scopes first, so that a worker
        // that takes a new chain or listener has it; then the new listeners' sockets, which
        // each worker takes when it follows this version.
        let stats = &state.stats;
        let drain_end = std::time::Instant::now() + state.drain_time;
        let addresses = bound.addresses();
        let layout = stats
            .layout()
            .with_scopes_of(&snapshot, &addresses, drain_end);
        stats.set_layout(layout);
        hand(bound.per_worker(state.concurrency));
        snapshot.publish(old, current.version + 1);
        for (cluster, specs) in specs {
            state.hosts.replace(cluster, specs, Identity::ByAddress);
        }
        let mut in_force = state.listeners.lock().unwrap_or_else(|e| e.into_inner());
        let before = std::mem::take(&mut *in_force);
        for (from, l) in plan.from.iter().zip(&snapshot.listeners) {
            let address = match from {
                ListenerFrom::Same(i) | ListenerFrom::Changed(i) => before.get(*i).map(|b| b.1),
                ListenerFrom::Added => (addresses.iter())
                    .find(|(slot, _)| *slot == l.slot)
                    .map(|a| a.1),
            };
            let address = address.unwrap_or(l.address);
            if *from == ListenerFrom::Added {
                applied.added.push((l.name.clone(), address));
            }
            in_force.push((l.name.clone(), address));
        }
        drop(in_force);
        applied.version = current.version + 1;
        applied.routes = rebuilt.routes;
        applied.chains = rebuilt.replaced;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Current {
            snapshot: Arc::new(snapshot),
            version: applied.version,
            applied_at: rfc3339(SystemTime::now()),
        };
        self.version.store(applied.version, Relaxed);
        Ok(applied)
    }
}

/// The static clusters whose endpoints changed between `old` and `new`; any other difference
/// outside the listeners is refused with its path.
fn changed_endpoints(old: &Bootstrap, new: &Bootstrap) -> Result<Vec<usize>, Refused> {
    // Listeners are paired by name (`listeners.rs`), not compared as one array.
    let without_listeners = |b: &Bootstrap| {
        let mut source = b.source.clone();
        if let Some(resources) =
            (source.get_mut("static_resources")).and_then(|r| r.as_object_mut())
        {
            resources.remove("listeners");
        }
        source
    };
    let mut endpoints = Vec::new();
    let mut refused = Vec::new();
    for path in differences(&without_listeners(old), &without_listeners(new)) {
        match classify(&path) {
            Change::Endpoints { cluster } if is_static(new, cluster) => endpoints.push(cluster),
            Change::Endpoints { .. } | Change::Other(_) => {
                refused.push((path, NEEDS_RESTART.to_owned()))
            }
        }
    }
    if !refused.is_empty() {
        return Err(Refused { errors: refused });
    }
    endpoints.sort();
    endpoints.dedup();
    Ok(endpoints)
}

/// Cluster `c` takes its hosts from its endpoints as written (`STATIC`): a DNS or
/// `ORIGINAL_DST` cluster's come from elsewhere.
fn is_static(config: &Bootstrap, c: usize) -> bool {
    (config.clusters.get(c)).is_some_and(|c| matches!(c.discovery, weir_config::Discovery::Static))
}
