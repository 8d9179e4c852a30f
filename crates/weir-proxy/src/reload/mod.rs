//! Changing the config of a running weir without dropping a connection (`SIGHUP`, admin
//! `POST /reload`): the file is read and validated as at startup, compared with the config in
//! force, and what changed is applied, all or nothing.
//!
//! What a reload changes now: listeners and clusters, each known by its name (added,
//! removed or changed: `listeners.rs` and `snapshot/reloaded.rs` say what becomes of a
//! listener, its filter chains and their connections; `clusters.rs` and
//! `snapshot/clusters.rs`, of a cluster, its pools and the threads that follow its hosts).
//! Any other difference is refused with its config path, and nothing changes.
//!
//! How a new config reaches the workers without a lock on the request path: the versions of
//! a listener runtime, and of a chain, share a lineage that names the newest
//! (`snapshot/version.rs`); a worker takes a listener's at its next accept (or when woken
//! after the reload), a connection its chain's when its next request starts (no stream of the
//! connection is in flight then; one atomic load when nothing changed). Streams in flight
//! finish on the config they started with, and a version is freed with the last holder (the
//! lineage holds the newest weakly). The order matters: the stats layout grows before the
//! new versions are published, so a worker that takes a new chain has room for its scope.

mod clusters;
mod diff;
mod follow;
mod follow_clusters;
mod listeners;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use weir_config::Bootstrap;

use crate::access_log::format::rfc3339;
use crate::server::{ServerState, Workers};
use crate::snapshot::{ClusterEntry, ListenerFrom, Snapshot};
use crate::upstream::dns::DnsClusters;
use crate::upstream::host_set::{HostSpec, Identity, initial_health};
use crate::upstream::threads::HostThreads;
use diff::differences;
pub(crate) use diff::only_routes;

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
    /// The threads that follow clusters' hosts: those weir started with, and those of
    /// clusters reloads added (each set stops once its clusters are all removed).
    threads: Mutex<Vec<HostThreads>>,
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
    /// The clusters added, removed, replaced, or with new endpoints.
    pub(crate) clusters: clusters::Names,
}

impl Applied {
    fn changed(&self) -> bool {
        !self.added.is_empty()
            || !self.removed.is_empty()
            || !self.listeners.is_empty()
            || !self.clusters.is_empty()
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
        let clusters = &self.clusters;
        for c in &clusters.added {
            out.push_str(&format!("  cluster {c} added\n"));
        }
        for c in &clusters.removed {
            out.push_str(&format!("  cluster {c} removed: its connections drain\n"));
        }
        for c in &clusters.changed {
            out.push_str(&format!(
                "  cluster {c} replaced: its old connections drain\n"
            ));
        }
        for c in &clusters.endpoints {
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
pub(crate) fn run(state: &Arc<ServerState>, workers: &Workers) -> Result<Applied, Refused> {
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
const NEEDS_RESTART: &str =
    "cannot change at run time (a reload changes listeners and clusters): restart weir to apply it";

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
            threads: Mutex::new(Vec::new()),
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
        self.version.load(Acquire)
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
        state: &Arc<ServerState>,
        workers: &Workers,
    ) -> Result<Applied, Refused> {
        self.counted(|| {
            let new = self.load()?;
            self.apply(state, new, Some(workers))
        })
    }

    /// [`ConfigState::reload`] with `new` in place of the file (the in-memory harness, whose
    /// worker has no sockets: `new` adds no listener).
    #[cfg(test)]
    pub(crate) fn reload_from(
        &self,
        state: &Arc<ServerState>,
        new: Bootstrap,
    ) -> Result<Applied, Refused> {
        self.counted(|| self.apply(state, new, None))
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

    /// Applies what changed between the config in force and `new`, all or nothing;
    /// `workers` get the sockets of the listeners `new` adds and wake the threads of the
    /// clusters it adds (`None`: the in-memory harness, which has neither).
    fn apply(
        &self,
        state: &Arc<ServerState>,
        new: Bootstrap,
        workers: Option<&Workers>,
    ) -> Result<Applied, Refused> {
        let current = self.current();
        let old = &current.snapshot;
        refuse_other_changes(&old.bootstrap, &new)?;
        let clusters = {
            let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
            clusters::plan(old, &new, |c| {
                c.unreachable(state.concurrency)
                    && state.hosts.removed(c.number)
                    && !threads.iter().any(|t| t.follow(c.number))
            })
        };
        let mut plan = listeners::plan(&old.bootstrap, &new);
        // A listener whose chains name a cluster this reload replaces is compiled again, so
        // that they name its new number.
        for from in &mut plan.from {
            if let ListenerFrom::Same(i) = *from
                && old
                    .listeners
                    .get(i)
                    .is_some_and(|l| l.names_any(&clusters.retired))
            {
                *from = ListenerFrom::Changed(i);
            }
        }
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
            clusters: clusters.names.clone(),
        };
        let adds = plan.from.contains(&ListenerFrom::Added);
        if !applied.changed() && !adds {
            return Ok(applied);
        }
        let version = current.version + 1;
        let rebuilt = old
            .reloaded(
                new,
                &plan.from,
                (version, clusters.clusters.clone()),
                &state.access_logs,
            )
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
        // With `--hot-restart`, a weir that takes over gets the added listeners' sockets.
        let shared = match &state.handover {
            Some(_) => bound
                .share()
                .map_err(|e| Refused::one("static_resources.listeners", e.to_string()))?,
            None => Vec::new(),
        };
        let added_clusters = (clusters.added.iter()).map(|c| (c.number, &c.config));
        let mut dns = DnsClusters::of(added_clusters)
            .map_err(|e| Refused::one("static_resources.clusters", e.to_string()))?;
        // Nothing can fail from here on. The added clusters' hosts first (a DNS cluster
        // with its first answers, as at startup), then room for the new scopes, so that a
        // worker that takes a new chain, listener or cluster has them; then the new
        // listeners' sockets, which each worker takes when it follows this version.
        for entry in &clusters.added {
            let specs = entry.config.endpoints.iter().map(HostSpec::of).collect();
            (state.hosts).add_cluster(entry.number, specs, initial_health(&entry.config));
        }
        if let Some(dns) = &mut dns {
            dns.refresh_due(&state.hosts);
        }
        let stats = &state.stats;
        let drain_end = std::time::Instant::now() + state.drain_time;
        let addresses = bound.addresses();
        let layout = stats
            .layout()
            .with_scopes_of(&snapshot, &addresses, drain_end);
        stats.set_layout(layout);
        if let Some(workers) = workers {
            workers.hand(bound.per_worker(state.concurrency));
        }
        if let Some(handover) = &state.handover {
            let mut sockets = handover.lock().unwrap_or_else(|e| e.into_inner());
            sockets.retain(|s| !applied.removed.contains(&s.name));
            sockets.extend(shared);
        }
        snapshot.publish(old, version);
        // A retired cluster drains: each worker's pools close, and a drain time later its
        // hosts are removed (`reload/follow.rs`).
        for &number in &clusters.retired {
            snapshot.clusters.all[number].retire(version);
        }
        for (cluster, specs) in clusters.endpoints {
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
        applied.version = version;
        applied.routes = rebuilt.routes;
        applied.chains = rebuilt.replaced;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Current {
            snapshot: Arc::new(snapshot),
            version,
            applied_at: rfc3339(SystemTime::now()),
        };
        // Release: a worker that sees this version sees what the reload published and
        // retired before it.
        self.version.store(version, Release);
        if let Some(workers) = workers {
            self.follow_threads(state, workers, &clusters.added, dns);
        }
        Ok(applied)
    }

    /// Starts the threads the added clusters need, and stops those that serve only removed
    /// clusters.
    fn follow_threads(
        &self,
        state: &Arc<ServerState>,
        workers: &Workers,
        added: &[Arc<ClusterEntry>],
        dns: Option<DnsClusters>,
    ) {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let (unneeded, kept) = std::mem::take(&mut *threads)
            .into_iter()
            .partition(|t: &HostThreads| t.unneeded(&state.hosts));
        *threads = kept;
        drop(threads);
        for t in unneeded {
            t.stop();
        }
        if added.is_empty() {
            return;
        }
        match HostThreads::start(added, state, workers, dns) {
            Ok(t) => self.keep_threads(t),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the added clusters' DNS, health check or outlier threads")
            }
        }
    }

    /// Keeps `threads` until they are unneeded or weir stops.
    pub(crate) fn keep_threads(&self, threads: HostThreads) {
        if !threads.is_empty() {
            let mut kept = self.threads.lock().unwrap_or_else(|e| e.into_inner());
            kept.push(threads);
        }
    }

    /// The threads kept, for weir to stop them as it exits.
    pub(crate) fn take_threads(&self) -> Vec<HostThreads> {
        std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Refuses, with their paths, the differences between `old` and `new` outside their
/// listeners and clusters (which are paired by name).
fn refuse_other_changes(old: &Bootstrap, new: &Bootstrap) -> Result<(), Refused> {
    let rest = |b: &Bootstrap| {
        let mut source = b.source.clone();
        if let Some(resources) =
            (source.get_mut("static_resources")).and_then(|r| r.as_object_mut())
        {
            resources.remove("listeners");
            resources.remove("clusters");
        }
        source
    };
    let errors: Vec<_> = (differences(&rest(old), &rest(new)).into_iter())
        .map(|path| (path, NEEDS_RESTART.to_owned()))
        .collect();
    match errors.is_empty() {
        true => Ok(()),
        false => Err(Refused { errors }),
    }
}
