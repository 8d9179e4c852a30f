//! A cluster's hosts as they change at run time (DNS answers now; reload and EDS later).
//!
//! Whoever learns of a change (the DNS thread) builds the cluster's next [`HostSet`] with
//! [`ClusterHosts::replace`], which bumps one generation for all clusters and keeps each
//! surviving host's [`Host`] (its id and its stats). Each worker compares that generation once
//! per wake round and, when it moved, applies the new sets to its own [`HostSlots`]: new hosts
//! get a pool, removed ones leave the balancer at once and are forgotten when their last
//! connection closes (in-flight requests finish; idle connections are closed). So a request
//! always picks from one consistent set, and no worker ever waits on another.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::event::token::{GenSlab, Id};
use crate::stats::HostStats;
use weir_config::{EndpointHealth, LbPolicy, LoadSpread, Placement};

use super::balancer::{Balancer, Member};
use super::conn_pool::ConnPool;
use super::outlier::HostOutlier;

/// A host's identity for as long as it stays in its cluster, across updates (a position in
/// the list would shift when a host before it goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct HostId(u64);

/// What makes a host: where it is, its weight, and the name it is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostSpec {
    pub(crate) address: SocketAddr,
    pub(crate) weight: u32,
    /// `endpoint.hostname` (the SNI under `auto_host_sni`), or the DNS name it came from.
    pub(crate) hostname: Option<Box<str>>,
    /// Its priority and locality.
    pub(crate) placement: Arc<Placement>,
    /// `health_status` as the config gives it.
    pub(crate) eds_health: EndpointHealth,
}

impl HostSpec {
    /// A host with no name, place or health status of its own (an ORIGINAL_DST
    /// destination).
    pub(crate) fn plain(address: SocketAddr, weight: u32) -> HostSpec {
        HostSpec {
            address,
            weight,
            hostname: None,
            placement: Placement::unplaced(),
            eds_health: EndpointHealth::Healthy,
        }
    }

    /// A static endpoint of the config.
    pub(crate) fn of(endpoint: &weir_config::Endpoint) -> HostSpec {
        HostSpec {
            address: endpoint.address,
            weight: endpoint.weight,
            hostname: endpoint.hostname.as_deref().map(Box::from),
            placement: endpoint.placement.clone(),
            eds_health: endpoint.health,
        }
    }
}

/// What makes a host of a new set the same as one of the old set (so it keeps its id, pool
/// and stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Identity {
    /// Its address (STATIC and `STRICT_DNS` hosts).
    ByAddress,
    /// Being the cluster's one host (`LOGICAL_DNS`): a new address changes where new
    /// connections go, and connections made before keep theirs.
    Logical,
}

/// Health flag: outlier detection ejected the host (`/failed_outlier_check`).
pub(crate) const HEALTH_OUTLIER: u8 = 1;
/// Health flag: active health checking failed the host, or has not passed it yet
/// (`/failed_active_hc`).
pub(crate) const HEALTH_ACTIVE_HC: u8 = 2;

/// Health flag: the last passing active check's answer carried `x-envoy-degraded`
/// (`/degraded_active_hc`): the host takes only what healthy hosts cannot.
pub(crate) const HEALTH_DEGRADED_HC: u8 = 4;
/// The flags that fail a host.
const HEALTH_FAILED: u8 = HEALTH_OUTLIER | HEALTH_ACTIVE_HC;

/// One host of one cluster, shared by every worker; never changed in place (a new weight or
/// health makes a new `Host` with the same id, stats and counters).
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) id: HostId,
    pub(crate) spec: HostSpec,
    /// One scope per worker, each written by its worker only; the admin sums them.
    pub(crate) stats: Arc<[HostStats]>,
    /// Health flags (`HEALTH_*`); 0 is healthy.
    pub(crate) health: u8,
    /// What outlier detection counts of it, written by every worker.
    pub(crate) outlier: Arc<HostOutlier>,
}

impl Host {
    /// The same host with other `spec` or `health`.
    fn with(&self, spec: HostSpec, health: u8) -> Host {
        Host {
            id: self.id,
            spec,
            stats: self.stats.clone(),
            health,
            outlier: self.outlier.clone(),
        }
    }

    pub(crate) fn healthy(&self) -> bool {
        self.class() == HostClass::Healthy
    }

    /// What the balancer makes of the host: its flags and its `health_status` together, as
    /// Envoy's coarse health (a failed check outweighs a degraded status).
    pub(crate) fn class(&self) -> HostClass {
        match self.spec.eds_health {
            EndpointHealth::Draining => HostClass::Excluded,
            _ if self.health & HEALTH_FAILED != 0 => HostClass::Unhealthy,
            EndpointHealth::Unhealthy => HostClass::Unhealthy,
            _ if self.health & HEALTH_DEGRADED_HC != 0 => HostClass::Degraded,
            EndpointHealth::Degraded => HostClass::Degraded,
            EndpointHealth::Healthy => HostClass::Healthy,
        }
    }
}

/// How the balancer treats a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostClass {
    Healthy,
    /// Takes only the load healthy hosts cannot (`DEGRADED`).
    Degraded,
    /// Failed a check (active, outlier) or marked so (`UNHEALTHY`, `TIMEOUT`): only in panic.
    Unhealthy,
    /// `DRAINING`: counts toward no level's health; only in panic.
    Excluded,
}

/// One version of a cluster's hosts, in the order the balancer walks them.
#[derive(Debug, Default)]
pub(crate) struct HostSet {
    pub(crate) hosts: Vec<Arc<Host>>,
}

/// Every cluster's current host set, for the workers, the admin, and what changes them.
/// Clusters are numbered for good: a reload that adds one appends it, one that removes a
/// cluster empties its set and keeps its number (nothing changes it again).
#[derive(Debug)]
pub(crate) struct ClusterHosts {
    sets: RwLock<Vec<Arc<ClusterSet>>>,
    /// Bumped by every change to any cluster: one load per wake round tells a worker whether
    /// to look.
    generation: AtomicU64,
    next_id: AtomicU64,
    workers: usize,
}

/// One cluster's hosts.
#[derive(Debug)]
struct ClusterSet {
    hosts: Mutex<Arc<HostSet>>,
    /// The health a new host starts with (unchecked, when it has health checks).
    initial_health: u8,
    /// A reload removed the cluster: its set stays empty.
    removed: AtomicBool,
}

impl ClusterHosts {
    /// Each cluster's first hosts (`initial[c]`), with host stats for `workers` workers.
    pub(crate) fn new(initial: Vec<Vec<HostSpec>>, workers: usize) -> ClusterHosts {
        let hosts = ClusterHosts {
            sets: RwLock::new(Vec::new()),
            generation: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            workers,
        };
        for (number, specs) in initial.into_iter().enumerate() {
            hosts.add_cluster(number, specs, 0);
        }
        hosts
    }

    /// The clusters of a config with their configured endpoints; those with health checks
    /// start their hosts unhealthy (`/failed_active_hc`) until a check passes, as Envoy does.
    pub(crate) fn of(clusters: &[weir_config::Cluster], workers: usize) -> ClusterHosts {
        let hosts = ClusterHosts::new(Vec::new(), workers);
        for (number, c) in clusters.iter().enumerate() {
            let specs = c.endpoints.iter().map(HostSpec::of).collect();
            hosts.add_cluster(number, specs, initial_health(c));
        }
        hosts
    }

    /// Gives cluster number `number` (the next one, or one whose cluster was removed and
    /// that nothing reaches any more) its first hosts. No worker has the cluster yet: each
    /// takes it with these hosts as it follows the reload.
    pub(crate) fn add_cluster(&self, number: usize, specs: Vec<HostSpec>, initial_health: u8) {
        let set = HostSet {
            hosts: (specs.into_iter())
                .map(|s| self.new_host(s, initial_health))
                .collect(),
        };
        let set = Arc::new(ClusterSet {
            hosts: Mutex::new(Arc::new(set)),
            initial_health,
            removed: AtomicBool::new(false),
        });
        let mut sets = self.sets.write().unwrap_or_else(|e| e.into_inner());
        match sets.get_mut(number) {
            Some(old) => *old = set,
            None => {
                debug_assert_eq!(number, sets.len(), "numbers are given in order");
                sets.push(set);
            }
        }
    }

    /// A reload removed `cluster`: its hosts leave (workers close their idle connections,
    /// and their busy ones after their request) and nothing adds any again.
    pub(crate) fn remove_cluster(&self, cluster: usize) {
        let Some(set) = self.set(cluster) else { return };
        set.removed.store(true, Ordering::Relaxed);
        *set.hosts.lock().unwrap_or_else(|e| e.into_inner()) = Arc::default();
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// A reload removed `cluster`.
    pub(crate) fn removed(&self, cluster: usize) -> bool {
        self.set(cluster)
            .is_some_and(|s| s.removed.load(Ordering::Relaxed))
    }

    fn set(&self, cluster: usize) -> Option<Arc<ClusterSet>> {
        let sets = self.sets.read().unwrap_or_else(|e| e.into_inner());
        sets.get(cluster).cloned()
    }

    /// `cluster`'s set locked for a change, unless it does not exist or was removed.
    fn changing(&self, cluster: usize, change: impl FnOnce(&mut Arc<HostSet>, u8) -> bool) -> bool {
        let Some(set) = self.set(cluster) else {
            return false;
        };
        let mut hosts = set.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if set.removed.load(Ordering::Relaxed) || !change(&mut hosts, set.initial_health) {
            return false;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        true
    }

    fn new_host(&self, spec: HostSpec, health: u8) -> Arc<Host> {
        Arc::new(Host {
            id: HostId(self.next_id.fetch_add(1, Ordering::Relaxed)),
            spec,
            stats: (0..self.workers).map(|_| HostStats::default()).collect(),
            health,
            outlier: Arc::default(),
        })
    }

    /// Changes counted so far (a worker applies the sets when this moved).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Cluster `cluster`'s current hosts (empty for a cluster that does not exist).
    pub(crate) fn current(&self, cluster: usize) -> Arc<HostSet> {
        self.set(cluster).map_or_else(Arc::default, |set| {
            set.hosts.lock().unwrap_or_else(|e| e.into_inner()).clone()
        })
    }

    /// Makes `specs` cluster `cluster`'s hosts. A host that stays (by `identity`) keeps its
    /// id and stats (several at one address are matched in order); returns false, and changes
    /// nothing, when the set is the same.
    pub(crate) fn replace(&self, cluster: usize, specs: Vec<HostSpec>, identity: Identity) -> bool {
        self.changing(cluster, |slot, initial_health| {
            let same = slot.hosts.len() == specs.len()
                && slot.hosts.iter().zip(&specs).all(|(h, s)| h.spec == *s);
            if same {
                return false;
            }
            let mut old: HashMap<SocketAddr, Vec<Arc<Host>>> = HashMap::new();
            for host in slot.hosts.iter().rev() {
                old.entry(host.spec.address).or_default().push(host.clone());
            }
            if let (Identity::Logical, [was], [spec]) = (identity, &slot.hosts[..], &specs[..]) {
                // The logical host moves: same id, same stats, the new address.
                old = HashMap::from([(spec.address, vec![was.clone()])]);
            }
            let hosts = specs
                .into_iter()
                .map(|spec| match old.get_mut(&spec.address).and_then(Vec::pop) {
                    Some(host) if host.spec == spec => host,
                    Some(host) => Arc::new(host.with(spec, host.health)),
                    None => self.new_host(spec, initial_health),
                })
                .collect();
            *slot = Arc::new(HostSet { hosts });
            true
        })
    }
}

/// The health `cluster`'s new hosts start with: unchecked while it has health checks.
pub(crate) fn initial_health(cluster: &weir_config::Cluster) -> u8 {
    match cluster.health_checks.is_empty() {
        true => 0,
        false => HEALTH_ACTIVE_HC,
    }
}

impl ClusterHosts {
    /// Adds a host at `spec`'s address to `cluster` unless it has one there (an
    /// `ORIGINAL_DST` cluster's new destination); returns whether the set changed.
    pub(crate) fn add(&self, cluster: usize, spec: HostSpec) -> bool {
        self.changing(cluster, |slot, initial_health| {
            if slot.hosts.iter().any(|h| h.spec.address == spec.address) {
                return false;
            }
            let mut hosts = slot.hosts.clone();
            hosts.push(self.new_host(spec, initial_health));
            *slot = Arc::new(HostSet { hosts });
            true
        })
    }

    /// Keeps only the hosts of `cluster` that `keep` keeps; returns whether the set changed.
    pub(crate) fn retain(&self, cluster: usize, mut keep: impl FnMut(&Host) -> bool) -> bool {
        self.changing(cluster, |slot, _| {
            let hosts: Vec<Arc<Host>> = slot.hosts.iter().filter(|h| keep(h)).cloned().collect();
            if hosts.len() == slot.hosts.len() {
                return false;
            }
            *slot = Arc::new(HostSet { hosts });
            true
        })
    }

    /// Sets or clears a health flag of host `id` of `cluster`; returns whether the set
    /// changed (workers then follow it).
    pub(crate) fn set_health(&self, cluster: usize, id: HostId, flag: u8, on: bool) -> bool {
        self.changing(cluster, |slot, _| {
            let Some(at) = slot.hosts.iter().position(|h| h.id == id) else {
                return false;
            };
            let host = &slot.hosts[at];
            let health = if on {
                host.health | flag
            } else {
                host.health & !flag
            };
            if health == host.health {
                return false;
            }
            let mut hosts = slot.hosts.clone();
            hosts[at] = Arc::new(host.with(host.spec.clone(), health));
            *slot = Arc::new(HostSet { hosts });
            true
        })
    }
}

/// One host as one worker sees it: its pool and how many of its connections are open.
#[derive(Debug)]
pub(crate) struct HostSlot {
    pub(crate) host: Arc<Host>,
    pub(crate) pool: ConnPool,
    /// Connections to it that are open (in use or idle).
    pub(crate) conns: u32,
    /// Streams waiting for one of its connections (see `admission.rs`), oldest first; an
    /// entry whose stream ended or moved on is skipped when reached.
    pub(crate) waiting: VecDeque<Id>,
    /// It left the cluster: nothing new goes to it, and it is forgotten with its last
    /// connection.
    pub(crate) removed: bool,
}

/// One worker's hosts of one cluster: a slot per host, referred to by generational [`Id`]s
/// (a connection or stream holds one, and a slot freed meanwhile reads as gone), the live ones
/// in set order and the balancer over them.
pub(crate) struct HostSlots {
    set: Arc<HostSet>,
    slots: GenSlab<HostSlot>,
    live: Vec<Id>,
    balancer: Balancer,
    policy: LbPolicy,
    load_spread: LoadSpread,
    /// `healthy_panic_threshold`: below this percent of healthy hosts, a level picks among
    /// all of its hosts.
    panic_threshold: f64,
    /// This worker's index: its scope in each host's stats, and its balancer's offset.
    worker: usize,
    /// Pools this worker used whose host has since been forgotten, not yet given back to the
    /// cluster's `max_connection_pools` breaker.
    forgotten_pools: u64,
}

impl HostSlots {
    pub(crate) fn new(
        set: Arc<HostSet>,
        policy: LbPolicy,
        load_spread: LoadSpread,
        panic_threshold: f64,
        worker: usize,
    ) -> HostSlots {
        let mut slots = HostSlots {
            set: Arc::default(),
            slots: GenSlab::new(),
            live: Vec::new(),
            balancer: Balancer::new(&[], policy, load_spread, panic_threshold, worker),
            policy,
            load_spread,
            panic_threshold,
            worker,
            forgotten_pools: 0,
        };
        slots.apply(set);
        slots
    }

    /// The set these slots follow.
    pub(crate) fn set(&self) -> &Arc<HostSet> {
        &self.set
    }

    /// Follows `set`: returns the idle connections of the hosts that left it, for the caller
    /// to close (their busy ones close when their request ends: see [`HostSlots::reusable`]).
    pub(crate) fn apply(&mut self, set: Arc<HostSet>) -> Vec<Id> {
        let mut kept: HashMap<HostId, Id> = self
            .live
            .iter()
            .filter_map(|&id| Some((self.slots.get(id)?.host.id, id)))
            .collect();
        let mut live = Vec::with_capacity(set.hosts.len());
        for host in &set.hosts {
            let id = match kept.remove(&host.id) {
                Some(id) => {
                    if let Some(slot) = self.slots.get_mut(id) {
                        slot.host = host.clone();
                    }
                    id
                }
                None => self.slots.insert_with(|_| HostSlot {
                    host: host.clone(),
                    pool: ConnPool::default(),
                    conns: 0,
                    waiting: VecDeque::new(),
                    removed: false,
                }),
            };
            live.push(id);
        }
        let mut idle = Vec::new();
        for (_, id) in kept {
            if let Some(slot) = self.slots.get_mut(id) {
                slot.removed = true;
                idle.extend(slot.pool.drain());
                if slot.conns == 0 && slot.waiting.is_empty() {
                    self.forget(id);
                }
            }
        }
        let members: Vec<Member<'_>> = (live.iter().zip(&set.hosts))
            .map(|(&id, host)| Member { id, host })
            .collect();
        self.balancer = Balancer::new(
            &members,
            self.policy,
            self.load_spread,
            self.panic_threshold,
            self.worker,
        );
        self.live = live;
        self.set = set;
        idle
    }

    /// The balancer's next host for a request with `hash`, `None` when the cluster has
    /// none; `tried` leaves a retry's tried priorities out.
    pub(crate) fn pick(
        &mut self,
        hash: Option<u64>,
        rng: &mut fastrand::Rng,
        tried: Option<&dyn Fn(u32) -> bool>,
    ) -> Option<Id> {
        self.balancer.pick(hash, rng, tried)
    }

    /// The last pick's level ignored health: too few of its hosts are healthy
    /// (`lb_healthy_panic`).
    pub(crate) fn in_panic(&self) -> bool {
        self.balancer.in_panic()
    }

    /// Why the last pick chose its host, for the flow trace.
    pub(crate) fn explain_pick(&self, hash: Option<u64>) -> (&'static str, String) {
        self.balancer.explain(hash)
    }

    /// The live host at `address`, if any.
    pub(crate) fn find(&self, address: SocketAddr) -> Option<Id> {
        (self.live.iter().copied()).find(|&id| self.address(id) == Some(address))
    }

    /// The live hosts, in set order.
    #[cfg(test)]
    pub(crate) fn live(&self) -> &[Id] {
        &self.live
    }

    pub(crate) fn get(&self, id: Id) -> Option<&HostSlot> {
        self.slots.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: Id) -> Option<&mut HostSlot> {
        self.slots.get_mut(id)
    }

    /// Host `id`'s address (`None` once it is forgotten).
    pub(crate) fn address(&self, id: Id) -> Option<SocketAddr> {
        Some(self.slots.get(id)?.host.spec.address)
    }

    /// This worker's stats of host `id`.
    pub(crate) fn stats(&self, id: Option<Id>) -> Option<&HostStats> {
        self.slots.get(id?)?.host.stats.get(self.worker)
    }

    /// A connection to host `id` opened.
    pub(crate) fn opened(&mut self, id: Id) {
        if let Some(slot) = self.slots.get_mut(id) {
            slot.conns += 1;
        }
    }

    /// A connection to host `id` closed: a removed host goes with its last one.
    pub(crate) fn closed(&mut self, id: Id) {
        if let Some(slot) = self.slots.get_mut(id) {
            slot.conns = slot.conns.saturating_sub(1);
            // Streams still waiting get a connection of their own first.
            if slot.removed && slot.conns == 0 && slot.waiting.is_empty() {
                self.forget(id);
            }
        }
    }

    /// Forgets host `id` if it left its cluster and nothing holds it (no connection, no
    /// stream waiting).
    pub(crate) fn forget_if_gone(&mut self, id: Id) {
        if (self.slots.get(id)).is_some_and(|s| s.removed && s.conns == 0 && s.waiting.is_empty()) {
            self.forget(id);
        }
    }

    fn forget(&mut self, id: Id) {
        if let Some(slot) = self.slots.remove(id) {
            self.forgotten_pools += u64::from(slot.pool.created);
        }
    }

    /// How many used pools were forgotten since last asked.
    pub(crate) fn take_forgotten_pools(&mut self) -> u64 {
        std::mem::take(&mut self.forgotten_pools)
    }

    /// No host is left, in the set or draining (so no connection is open).
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Empties every host's pool (a reload retired the cluster): returns the idle
    /// connections, for the caller to close.
    pub(crate) fn drain_pools(&mut self) -> Vec<Id> {
        let mut idle = Vec::new();
        for id in self.slots.ids() {
            if let Some(slot) = self.slots.get_mut(id) {
                idle.extend(slot.pool.drain());
            }
        }
        idle
    }

    /// Whether a connection to host `id` may go back to its pool (not once the host left).
    pub(crate) fn reusable(&self, id: Id) -> bool {
        self.slots.get(id).is_some_and(|s| !s.removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_config::LbPolicy;

    fn spec(address: &str, weight: u32) -> HostSpec {
        HostSpec::plain(address.parse().unwrap(), weight)
    }

    #[test]
    fn a_replaced_set_keeps_the_ids_and_stats_of_hosts_that_stay() {
        let hosts = ClusterHosts::new(
            vec![vec![spec("10.0.0.1:80", 1), spec("10.0.0.2:80", 1)]],
            2,
        );
        let before = hosts.current(0);
        before.hosts[1].stats[1].rq_total.inc();
        let by_address = Identity::ByAddress;
        let same = vec![spec("10.0.0.1:80", 1), spec("10.0.0.2:80", 1)];
        assert!(!hosts.replace(0, same, by_address));
        assert_eq!(hosts.generation(), 0);
        let next = vec![spec("10.0.0.2:80", 3), spec("10.0.0.3:80", 1)];
        assert!(hosts.replace(0, next, by_address));
        assert_eq!(hosts.generation(), 1);
        let after = hosts.current(0);
        assert_eq!(after.hosts[0].id, before.hosts[1].id);
        assert_eq!(after.hosts[0].spec.weight, 3);
        assert_eq!(after.hosts[0].stats[1].rq_total.get(), 1);
        assert!(after.hosts[1].id != before.hosts[0].id && after.hosts[1].id != before.hosts[1].id);
        assert!(!hosts.replace(7, Vec::new(), by_address), "no such cluster");
    }

    #[test]
    fn least_request_counts_a_hosts_requests_on_every_worker() {
        let hosts = ClusterHosts::new(
            vec![vec![spec("10.0.0.1:80", 1), spec("10.0.0.2:80", 1)]],
            2,
        );
        // Host a is busy on worker 1; worker 0 picks.
        for _ in 0..5 {
            hosts.current(0).hosts[0].stats[1].rq_active.inc();
        }
        let policy = LbPolicy::LeastRequest {
            choice_count: 2,
            active_request_bias: 1.0,
        };
        let mut slots = HostSlots::new(hosts.current(0), policy, LoadSpread::default(), 50.0, 0);
        let a = slots.live()[0];
        let mut rng = fastrand::Rng::with_seed(3);
        let to_a = (0..100)
            .filter(|_| slots.pick(None, &mut rng, None) == Some(a))
            .count();
        // a wins only when both draws are a (a quarter of the time).
        assert!(to_a < 40, "{to_a} of 100 to the busy host");
    }

    #[test]
    fn unhealthy_hosts_are_left_out_until_too_few_are_healthy() {
        let specs = |n: usize| {
            (1..=n)
                .map(|i| spec(&format!("10.0.0.{i}:80"), 1))
                .collect()
        };
        let hosts = ClusterHosts::new(vec![specs(2), specs(3)], 1);
        let id = |c: usize, i: usize| hosts.current(c).hosts[i].id;
        let mut rng = fastrand::Rng::with_seed(7);
        let picked = |slots: &mut HostSlots, rng: &mut fastrand::Rng| {
            let picks: Vec<Id> = (0..12)
                .filter_map(|_| slots.pick(None, rng, None))
                .collect();
            let mut seen: Vec<SocketAddr> =
                picks.iter().filter_map(|&h| slots.address(h)).collect();
            seen.sort();
            seen.dedup();
            seen.len()
        };
        // Two hosts, one ejected: half are healthy, not below the 50 % threshold.
        assert!(hosts.set_health(0, id(0, 0), HEALTH_OUTLIER, true));
        assert!(
            !hosts.set_health(0, id(0, 0), HEALTH_OUTLIER, true),
            "no change"
        );
        let mut two = HostSlots::new(
            hosts.current(0),
            LbPolicy::RoundRobin,
            LoadSpread::default(),
            50.0,
            0,
        );
        assert!(!two.in_panic());
        assert_eq!(picked(&mut two, &mut rng), 1);
        assert_eq!(
            hosts.current(0).hosts[0].stats.len(),
            1,
            "same host, same stats"
        );
        // Three hosts, two ejected: a third is healthy, below 50 %: panic, all are picked.
        hosts.set_health(1, id(1, 0), HEALTH_OUTLIER, true);
        hosts.set_health(1, id(1, 1), HEALTH_OUTLIER, true);
        let mut three = HostSlots::new(
            hosts.current(1),
            LbPolicy::RoundRobin,
            LoadSpread::default(),
            50.0,
            0,
        );
        assert!(three.in_panic());
        assert_eq!(picked(&mut three, &mut rng), 3);
        // Without a panic threshold, only the healthy one.
        let mut strict = HostSlots::new(
            hosts.current(1),
            LbPolicy::RoundRobin,
            LoadSpread::default(),
            0.0,
            0,
        );
        assert_eq!(picked(&mut strict, &mut rng), 1);
        // Back to healthy: all of them again.
        hosts.set_health(1, id(1, 0), HEALTH_OUTLIER, false);
        hosts.set_health(1, id(1, 1), HEALTH_OUTLIER, false);
        strict.apply(hosts.current(1));
        assert_eq!(picked(&mut strict, &mut rng), 3);
    }

    #[test]
    fn a_logical_host_keeps_its_id_when_its_address_changes() {
        let hosts = ClusterHosts::new(vec![vec![spec("10.0.0.1:80", 1)]], 1);
        let before = hosts.current(0).hosts[0].id;
        assert!(hosts.replace(0, vec![spec("10.0.0.9:80", 1)], Identity::Logical));
        let after = &hosts.current(0).hosts[0];
        assert_eq!(
            (after.id, after.spec.address),
            (before, "10.0.0.9:80".parse().unwrap())
        );
        assert!(hosts.replace(0, vec![spec("10.0.0.1:80", 1)], Identity::ByAddress));
        assert_ne!(
            hosts.current(0).hosts[0].id,
            before,
            "by address it is another host"
        );
    }

    #[test]
    fn a_removed_host_drains_then_goes() {
        let hosts = ClusterHosts::new(
            vec![vec![spec("10.0.0.1:80", 1), spec("10.0.0.2:80", 1)]],
            1,
        );
        let mut slots = HostSlots::new(
            hosts.current(0),
            weir_config::LbPolicy::RoundRobin,
            LoadSpread::default(),
            50.0,
            0,
        );
        let (a, b) = (slots.live()[0], slots.live()[1]);
        let mut rng = fastrand::Rng::with_seed(1);
        let picks: Vec<Id> = (0..4)
            .map(|_| slots.pick(None, &mut rng, None).unwrap())
            .collect();
        assert_eq!(picks, vec![a, b, a, b]);
        // b has one busy and one idle connection.
        slots.opened(b);
        slots.opened(b);
        let idle_conn = crate::event::token::fixed(9);
        slots.get_mut(b).unwrap().pool.release(idle_conn);

        let next = vec![spec("10.0.0.1:80", 1), spec("10.0.0.3:80", 1)];
        hosts.replace(0, next, Identity::ByAddress);
        let idle = slots.apply(hosts.current(0));
        assert_eq!(idle, vec![idle_conn], "the idle connection is closed");
        assert_eq!(slots.live()[0], a, "a kept its slot");
        assert!(
            !slots.reusable(b),
            "b's busy connection closes after its request"
        );
        assert_eq!(slots.address(b), Some("10.0.0.2:80".parse().unwrap()));
        let c = slots.live()[1];
        assert!(
            (0..4).all(|_| slots.pick(None, &mut rng, None) != Some(b)),
            "b takes nothing new"
        );
        slots.closed(b);
        assert!(slots.get(b).is_some());
        slots.closed(b);
        assert!(slots.get(b).is_none(), "gone with its last connection");
        assert!(slots.get(c).is_some());

        hosts.replace(0, Vec::new(), Identity::ByAddress);
        slots.apply(hosts.current(0));
        assert_eq!(slots.pick(None, &mut rng, None), None);
        assert!(slots.get(a).is_none() && slots.get(c).is_none());
    }
}
