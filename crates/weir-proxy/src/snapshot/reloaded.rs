//! A snapshot rebuilt by a reload. A listener is known by its name: one the config no longer
//! has is retired when the snapshot is published (workers close its sockets and drain its
//! connections), a new one is compiled with the next listener number, and one whose config
//! changed is compiled again around its chains, each of which is, by what changed in it:
//!
//! - nothing: the same chain, shared (its connections never notice);
//! - only its route table: a newer version of it, which its connections move to when their
//!   next request starts;
//! - anything else (filters, TLS, connection manager settings), or it is new: a chain of its
//!   own; the one it replaces is retired when the snapshot is published, and each of its
//!   connections closes after the next response that starts (Envoy's drain of a filter
//!   chain that an update replaced); an idle one is not cut.
//!
//! Nothing reaches the workers until [`Snapshot::publish`], which the reload calls once the
//! stats have room for the new chains' scopes.

use std::sync::Arc;

use serde_json::Value;
use weir_config::{Bootstrap, FilterChain, HttpConnectionManager};

use super::version::Version;
use super::{Chain, ChainRuntime, Clusters, ListenerRuntime, Prefixes, Snapshot, faults};
use crate::access_log::LogsAdmin;
use crate::http::filter::FilterChainSpec;
use crate::reload::only_routes;
use crate::router::route_table::RouteTable;

/// A reload's snapshot, not yet published, and what it changed, by chain name.
pub(crate) struct Rebuilt {
    pub(crate) snapshot: Snapshot,
    /// Chains whose route table changed (their connections move to it).
    pub(crate) routes: Vec<String>,
    /// Chains compiled anew: changed (the old one's connections close after their current
    /// request) or added.
    pub(crate) replaced: Vec<String>,
}

/// A problem at a config path.
pub(crate) type PathError = (String, String);

/// Where a listener of a reload's config comes from: its place in the config in force, and
/// whether it changed; or nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenerFrom {
    Same(usize),
    Changed(usize),
    Added,
}

impl Snapshot {
    /// This snapshot with `bootstrap` in force as config version `version`, its listeners
    /// made as `plan` says (one entry per listener of `bootstrap`), its clusters numbered
    /// as `clusters` says (a chain that names a cluster `clusters` no longer has in force is
    /// not kept: it is compiled again, naming the cluster's new number). A chain's new
    /// `access_log` is registered with `logs` (its files opened; an error names the file).
    pub(crate) fn reloaded(
        &self,
        bootstrap: Bootstrap,
        plan: &[ListenerFrom],
        (version, clusters): (u64, Clusters),
        logs: &LogsAdmin,
    ) -> Result<Rebuilt, PathError> {
        let retired = self.retired_by(&clusters);
        let mut prefixes = Prefixes {
            http: self.http_prefixes.clone(),
            tcp: self.tcp_prefixes.clone(),
        };
        let mut listeners = Vec::with_capacity(plan.len());
        let mut listener_slots = self.listener_slots;
        let (mut routes, mut replaced) = (Vec::new(), Vec::new());
        for (j, from) in plan.iter().enumerate() {
            let path = format!("static_resources.listeners[{j}]");
            let Some(config) = bootstrap.listeners.get(j) else {
                return Err((path, "a listener went missing".into()));
            };
            let i = match *from {
                ListenerFrom::Same(i) | ListenerFrom::Changed(i) if i >= self.listeners.len() => {
                    return Err((path, "a listener went missing".into()));
                }
                ListenerFrom::Same(i) => {
                    listeners.push(self.listeners[i].clone());
                    continue;
                }
                ListenerFrom::Changed(i) => i,
                ListenerFrom::Added => {
                    let mut compile = |c| Chain::new(c, &mut prefixes, logs, (version, &clusters));
                    let chains = (config.filter_chains.iter())
                        .enumerate()
                        .map(|(k, c)| {
                            compile(c).map_err(|e| (format!("{path}.filter_chains[{k}]"), e))
                        })
                        .collect::<Result<_, _>>()?;
                    let default = (config.default_filter_chain.as_ref())
                        .map(compile)
                        .transpose()
                        .map_err(|e| (format!("{path}.default_filter_chain"), e))?;
                    let runtime = ListenerRuntime::compile(
                        config,
                        chains,
                        default,
                        (Version::first(), listener_slots),
                    )
                    .map_err(|e| (path.clone(), e))?;
                    listener_slots += 1;
                    listeners.push(Arc::new(runtime));
                    continue;
                }
            };
            let old = &self.listeners[i];
            let sources = Sources {
                old: listener_source(&self.bootstrap, i),
                new: listener_source(&bootstrap, j),
            };
            let mut rebuild = Rebuild {
                old,
                sources,
                prefixes: &mut prefixes,
                logs,
                version,
                clusters: &clusters,
                retired: &retired,
                reused: Vec::new(),
            };
            let (chains, default) = rebuild
                .chains(config)
                .map_err(|(at, e)| (format!("{path}.{at}"), e))?;
            for (name, fate) in rebuild.fates(config) {
                match fate {
                    Fate::Routes => routes.push(name),
                    Fate::New => replaced.push(name),
                    Fate::Kept => {}
                }
            }
            let place = (old.version.next(), old.slot);
            let runtime = ListenerRuntime::compile(config, chains, default, place)
                .map_err(|e| (path.clone(), e))?;
            listeners.push(Arc::new(runtime));
        }
        let http_faults = faults(&listeners, prefixes.http.len(), &self.http_faults);
        Ok(Rebuilt {
            snapshot: Snapshot {
                bootstrap,
                listeners,
                http_prefixes: prefixes.http,
                tcp_prefixes: prefixes.tcp,
                http_faults,
                clusters,
                listener_slots,
            },
            routes,
            replaced,
        })
    }

    /// Makes this snapshot (config version `version`) in force: its listeners and chains the
    /// newest of their lineages, and the listeners and chains of `previous` that none of
    /// this snapshot's continues retired.
    pub(crate) fn publish(&self, previous: &Snapshot, version: u64) {
        let chains = |s: &Snapshot| -> Vec<Chain> {
            (s.listeners.iter())
                .flat_map(|l| l.all_chains())
                .cloned()
                .collect()
        };
        let now = chains(self);
        for l in &self.listeners {
            Version::publish(l, |l| &l.version);
        }
        for c in now.iter().filter_map(Chain::http) {
            Version::publish(c, |c| &c.version);
        }
        for old in &previous.listeners {
            if !(self.listeners.iter()).any(|l| l.version.same_lineage(&old.version)) {
                old.version.retire(version);
            }
        }
        for old in chains(previous) {
            let continued = now.iter().any(|c| match (c, &old) {
                (Chain::Http(c), Chain::Http(o)) => c.version.same_lineage(&o.version),
                (Chain::Tcp(c), Chain::Tcp(o)) => c.version.same_lineage(&o.version),
                _ => false,
            });
            match &old {
                Chain::Http(o) if !continued => o.version.retire(version),
                Chain::Tcp(o) if !continued => o.version.retire(version),
                _ => {}
            }
        }
    }
}

/// The config documents of one listener, before and after.
struct Sources<'a> {
    old: Option<&'a Value>,
    new: Option<&'a Value>,
}

fn listener_source(bootstrap: &Bootstrap, i: usize) -> Option<&Value> {
    (bootstrap.source).pointer(&format!("/static_resources/listeners/{i}"))
}

/// What became of a chain.
enum Fate {
    Kept,
    Routes,
    New,
}

/// One listener's chains being rebuilt.
struct Rebuild<'a, 'b> {
    old: &'a ListenerRuntime,
    sources: Sources<'a>,
    prefixes: &'b mut Prefixes,
    logs: &'b LogsAdmin,
    /// The config version being made.
    version: u64,
    /// The clusters of that version.
    clusters: &'b Clusters,
    /// The cluster numbers it retires: a chain that names one cannot be kept.
    retired: &'b [usize],
    /// Per new chain (the default last): the old chain it continues, and whether only its
    /// routes changed.
    reused: Vec<Option<(usize, Fate)>>,
}

/// A listener's chains with their config documents, the default last (its index is the
/// number of `filter_chains`).
fn chains_of<'a>(
    listener: &'a ListenerRuntime,
    source: Option<&'a Value>,
) -> Vec<(Option<&'a Value>, &'a Chain)> {
    let at = |key: &str| source.and_then(|l| l.get(key));
    let mut out: Vec<_> = (listener.chains.iter().enumerate())
        .map(|(j, c)| (at("filter_chains").and_then(|a| a.get(j)), c))
        .collect();
    if let Some(d) = &listener.default {
        out.push((at("default_filter_chain"), d));
    }
    out
}

impl Rebuild<'_, '_> {
    /// The new chains (`filter_chains`, then the default), each kept, a successor, or new.
    fn chains(
        &mut self,
        config: &weir_config::Listener,
    ) -> Result<(Vec<Chain>, Option<Chain>), PathError> {
        let new_src = self.sources.new;
        let at = |key: &str| new_src.and_then(|l| l.get(key));
        let mut wanted: Vec<(String, Option<&Value>, &FilterChain)> = (config.filter_chains.iter())
            .enumerate()
            .map(|(j, c)| {
                let src = at("filter_chains").and_then(|a| a.get(j));
                (format!("filter_chains[{j}]"), src, c)
            })
            .collect();
        if let Some(d) = &config.default_filter_chain {
            wanted.push(("default_filter_chain".into(), at("default_filter_chain"), d));
        }
        let old = chains_of(self.old, self.sources.old);
        // Same document: the same chain.
        let mut taken = vec![false; old.len()];
        let mut reused: Vec<Option<(usize, Fate)>> = (wanted.iter())
            .map(|(_, src, _)| {
                let k = (old.iter().enumerate()).position(|(k, (o, c))| {
                    !taken[k] && src.is_some() && *o == *src && !c.names_any(self.retired)
                })?;
                taken[k] = true;
                Some((k, Fate::Kept))
            })
            .collect();
        // In the same place, only its route table changed: its successor.
        let old_default = self.old.default.as_ref().map(|_| self.old.chains.len());
        for (j, slot) in reused.iter_mut().enumerate() {
            let is_default =
                config.default_filter_chain.is_some() && j == config.filter_chains.len();
            let k = if is_default {
                old_default
            } else {
                (j < self.old.chains.len()).then_some(j)
            };
            let Some(k) = k.filter(|k| slot.is_none() && !taken[*k]) else {
                continue;
            };
            if let ((Some(o), Chain::Http(_)), Some(n)) = (old[k], wanted[j].1)
                && only_routes(o, n)
            {
                taken[k] = true;
                *slot = Some((k, Fate::Routes));
            }
        }
        let mut built = Vec::with_capacity(wanted.len());
        for ((place, _, config), slot) in wanted.iter().zip(&reused) {
            let chain = match slot {
                Some((k, Fate::Kept)) => old[*k].1.clone(),
                Some((k, _)) => match (old[*k].1, &config.http_connection_manager) {
                    (Chain::Http(c), Some(hcm)) => {
                        Chain::Http(c.with_routes(hcm.clone(), (self.version, self.clusters)))
                    }
                    _ => return Err((place.clone(), "not an HTTP connection manager".into())),
                },
                None => {
                    let made = (self.version, self.clusters);
                    Chain::new(config, self.prefixes, self.logs, made)
                        .map_err(|e| (place.clone(), e))?
                }
            };
            built.push(chain);
        }
        self.reused = std::mem::take(&mut reused);
        let default = config
            .default_filter_chain
            .as_ref()
            .and_then(|_| built.pop());
        Ok((built, default))
    }

    /// Each new chain's name (as the flow trace shows it) and what became of it.
    fn fates(&mut self, config: &weir_config::Listener) -> Vec<(String, Fate)> {
        let names = (config.filter_chains.iter())
            .map(|c| c.name.clone())
            .chain(config.default_filter_chain.iter().map(|c| c.name.clone()));
        names
            .zip(std::mem::take(&mut self.reused))
            .map(|(name, slot)| (name, slot.map_or(Fate::New, |(_, f)| f)))
            .collect()
    }
}

impl ChainRuntime {
    /// The same chain with `hcm`'s route table (nothing else of it changed), as its next
    /// version, made by config version `since`, its clusters numbered as `clusters` says.
    fn with_routes(
        &self,
        mut hcm: HttpConnectionManager,
        (since, clusters): (u64, &Clusters),
    ) -> Arc<ChainRuntime> {
        (hcm.route_config).renumber_clusters(|c| clusters.number(c));
        Arc::new(ChainRuntime {
            name: self.name.clone(),
            routes: RouteTable::new(hcm.route_config.clone()),
            _tokens: clusters.tokens(hcm.route_config.clusters()),
            // The same filters (their configs did not change), compiled anew.
            filters: FilterChainSpec::new(&hcm.http_filters),
            hcm,
            limits: self.limits,
            stats: self.stats,
            logs: self.logs,
            server_name: self.server_name.clone(),
            suppress_envoy_headers: self.suppress_envoy_headers,
            tls: self.tls.clone(),
            tls_context: self.tls_context.clone(),
            handshake_timeout: self.handshake_timeout,
            since,
            version: self.version.next(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{ListenerFrom, Rebuilt};
    use crate::access_log::{AccessLogs, LogsAdmin};
    use crate::snapshot::{Chain, ChainRuntime, ListenerRuntime, Snapshot};
    use crate::testing::{bootstrap, hcm};

    /// The tests' access logs (their loggers write to stdout, if any).
    fn logs() -> LogsAdmin {
        static LOGS: std::sync::OnceLock<AccessLogs> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| AccessLogs::new(1, Duration::from_secs(1)))
            .admin()
    }

    fn snapshot(yaml: &str) -> Snapshot {
        Snapshot::new(weir_config::parse(yaml).expect("valid"), &logs()).expect("snapshot")
    }

    fn reload(old: &Snapshot, yaml: &str) -> Rebuilt {
        let new = weir_config::parse(yaml).expect("valid");
        let plan = [ListenerFrom::Changed(0)];
        let rebuilt = old
            .reloaded(new, &plan, (2, old.clusters.clone()), &logs())
            .expect("reloaded");
        rebuilt.snapshot.publish(old, 2);
        rebuilt
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
            Some(Chain::Http(c)) => c,
            _ => panic!("an HTTP chain"),
        }
    }

    fn with_timeout(timeout: &str) -> String {
        bootstrap("", "", timeout, &["127.0.0.1:9001"])
    }

    #[test]
    fn a_new_route_table_is_the_old_chains_successor_and_the_rest_is_shared() {
        let old = snapshot(&with_timeout(""));
        let rebuilt = reload(&old, &with_timeout(", timeout: 3s"));
        assert_eq!(rebuilt.routes.len(), 1);
        assert!(rebuilt.replaced.is_empty());
        let (before, after) = (&old.listeners[0], &rebuilt.snapshot.listeners[0]);
        let newest = ListenerRuntime::newest(before).expect("a successor");
        assert!(Arc::ptr_eq(&newest, after));
        let (old_chain, new_chain) = (chain(before), chain(after));
        let followed = ChainRuntime::newest(&old_chain).expect("a successor");
        assert!(Arc::ptr_eq(&followed, &new_chain));
        assert!(!old_chain.retired(), "its connections follow; none closes");
        assert!(
            ChainRuntime::newest(&new_chain).is_none(),
            "the newest has none"
        );
        assert_eq!(new_chain.stats, old_chain.stats, "same stats scope");
        let (now, before) = (&rebuilt.snapshot.clusters.all[0], &old.clusters.all[0]);
        assert!(Arc::ptr_eq(now, before), "the same cluster");
    }

    #[test]
    fn a_connection_on_the_first_version_keeps_only_that_one() {
        let first = snapshot(&with_timeout(""));
        let held = chain(&first.listeners[0]);
        let second = reload(&first, &with_timeout(", timeout: 2s")).snapshot;
        let middle = Arc::downgrade(&chain(&second.listeners[0]));
        let third = reload(&second, &with_timeout(", timeout: 3s")).snapshot;
        drop((first, second));
        assert!(
            middle.upgrade().is_none(),
            "the version in between is freed"
        );
        let newest = ChainRuntime::newest(&held).expect("the newest");
        assert!(Arc::ptr_eq(&newest, &chain(&third.listeners[0])));
    }

    #[test]
    fn a_chain_changed_beyond_its_routes_is_new_and_the_old_one_retires() {
        let old = snapshot(&with_timeout(""));
        let changed = with_timeout("").replace("stat_prefix: test", "stat_prefix: renamed");
        let rebuilt = reload(&old, &changed);
        assert_eq!(rebuilt.replaced.len(), 1);
        assert!(rebuilt.routes.is_empty());
        let (old_chain, new_chain) = (
            chain(&old.listeners[0]),
            chain(&rebuilt.snapshot.listeners[0]),
        );
        assert!(
            old_chain.retired(),
            "its connections close after their request"
        );
        assert!(
            ChainRuntime::newest(&old_chain).is_none(),
            "nothing to move to"
        );
        assert!(!new_chain.retired());
        assert_eq!(rebuilt.snapshot.http_prefixes, ["test", "renamed"]);
        assert_eq!(new_chain.stats, 1, "a scope of its own, added");
    }

    #[test]
    fn an_unchanged_listener_setting_keeps_the_chain_itself() {
        let old = snapshot(&with_timeout(""));
        let yaml = with_timeout("").replace(
            "    filter_chains:",
            "    per_connection_buffer_limit_bytes: 4096\n    filter_chains:",
        );
        let rebuilt = reload(&old, &yaml);
        assert!(rebuilt.routes.is_empty() && rebuilt.replaced.is_empty());
        let after = &rebuilt.snapshot.listeners[0];
        assert_eq!(after.buffer_limit, 4096);
        assert!(Arc::ptr_eq(&chain(&old.listeners[0]), &chain(after)));
        assert!(!chain(after).retired());
    }

    #[test]
    fn a_new_access_log_makes_a_new_chain_and_one_that_cannot_open_is_refused_with_its_path() {
        let old = snapshot(&with_timeout(""));
        let log = hcm(
            "access_log: [{ name: envoy.access_loggers.stdout, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog } }]",
        );
        let rebuilt = reload(&old, &bootstrap(&log, "", "", &["127.0.0.1:9001"]));
        assert_eq!(
            rebuilt.replaced.len(),
            1,
            "its connections close after a response"
        );
        assert_ne!(
            chain(&rebuilt.snapshot.listeners[0]).logs,
            chain(&old.listeners[0]).logs
        );

        let old = snapshot(&with_timeout(""));
        let file = hcm(
            "access_log: [{ name: envoy.access_loggers.file, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /nonexistent-dir/access.log } }]",
        );
        let new =
            weir_config::parse(&bootstrap(&file, "", "", &["127.0.0.1:9001"])).expect("valid");
        let plan = [ListenerFrom::Changed(0)];
        let Err((path, message)) = old.reloaded(new, &plan, (2, old.clusters.clone()), &logs())
        else {
            panic!("refused");
        };
        assert_eq!(path, "static_resources.listeners[0].filter_chains[0]");
        assert!(message.contains("/nonexistent-dir/access.log"), "{message}");
        assert!(!chain(&old.listeners[0]).retired(), "nothing changed");
    }
}
