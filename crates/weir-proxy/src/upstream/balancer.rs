//! One worker's balancer for one cluster: the cluster's priority levels (`priority.rs` says
//! how much load each takes), and in each level the hosts a request may go to — healthy ones,
//! degraded ones, or all of them in panic — with the `lb_policy` over each list, and, under
//! `locality_weighted_lb_config`, a locality chosen by weight first. Rebuilt whenever the
//! cluster's hosts change; a pick is then one draw for the level (none with one level and
//! no degraded host) and the policy's pick.

use std::collections::BTreeMap;
use std::sync::Arc;

use weir_config::{LbPolicy, LoadSpread, Locality};

use super::host_set::{Host, HostClass};
use super::lb::round_robin::RoundRobin;
use super::lb::{LoadBalancer, PickContext};
use super::priority::{LevelHealth, Source, Spread};
use crate::event::token::Id;

/// Hosts a pick may land on, and the policy over them.
#[derive(Debug, Clone)]
struct Picker {
    ids: Vec<Id>,
    hosts: Vec<Arc<Host>>,
    lb: LoadBalancer,
}

impl Picker {
    fn new(policy: LbPolicy, members: Vec<(Id, Arc<Host>, u32)>, worker: usize) -> Picker {
        let keys: Vec<(String, u32)> = (members.iter())
            .map(|(_, h, w)| (h.spec.address.to_string(), *w))
            .collect();
        let lb = LoadBalancer::new(policy, &keys, worker);
        let (ids, hosts) = members.into_iter().map(|(id, h, _)| (id, h)).unzip();
        Picker { ids, hosts, lb }
    }

    fn pick(&mut self, hash: Option<u64>, rng: &mut fastrand::Rng) -> Option<Id> {
        let hosts = &self.hosts;
        // Least request weighs a host's requests on every worker, as Envoy's host count does.
        let active = |i: usize| hosts.get(i).map_or(0, |h| active_requests(h));
        let i = self.lb.pick(PickContext {
            hash,
            active: &active,
            rng,
        })?;
        self.ids.get(i).copied()
    }
}

/// A level's localities under locality-weighted balancing: one picker per locality that
/// has hosts of the source, chosen in turn by effective weight.
#[derive(Debug, Clone)]
struct Localities {
    pickers: Vec<Picker>,
    names: Vec<Locality>,
    turn: RoundRobin,
}

/// One priority level: where its healthy-source and degraded-source picks go.
#[derive(Debug, Clone)]
struct Level {
    priority: u32,
    /// Healthy hosts, or all of the level's hosts when it is in panic.
    main: Picker,
    degraded: Picker,
    /// Locality-weighted: the same hosts, by locality (healthy, then degraded).
    localities: [Option<Localities>; 2],
    panic: bool,
}

/// What the last pick went through, for the flow trace.
#[derive(Debug, Clone, Copy)]
struct LastPick {
    level: usize,
    source: Source,
    locality: Option<usize>,
}

/// A cluster's balancer on one worker.
#[derive(Debug, Clone)]
pub(crate) struct Balancer {
    levels: Vec<Level>,
    spread: Spread,
    /// The policy picks by the request's hash, which then picks the level too.
    hashes: bool,
    /// One level and no degraded share: every pick goes to level 0's healthy hosts, no draw.
    single: bool,
    last: LastPick,
}

/// A host as the balancer is built from it.
pub(crate) struct Member<'h> {
    pub(crate) id: Id,
    pub(crate) host: &'h Arc<Host>,
}

impl Balancer {
    pub(crate) fn new(
        members: &[Member<'_>],
        policy: LbPolicy,
        load_spread: LoadSpread,
        panic_threshold: f64,
        worker: usize,
    ) -> Balancer {
        let mut by_priority: BTreeMap<u32, Vec<&Member<'_>>> = BTreeMap::new();
        for m in members {
            let priority = m.host.spec.placement.priority;
            by_priority.entry(priority).or_default().push(m);
        }
        if by_priority.is_empty() {
            by_priority.insert(0, Vec::new());
        }
        let health: Vec<LevelHealth> = by_priority.values().map(|l| level_health(l)).collect();
        let spread = Spread::new(&health, load_spread, panic_threshold);
        let levels = (by_priority.into_iter().enumerate())
            .map(|(i, (priority, members))| {
                let panic = spread.panic[i];
                let class = |m: &&Member<'_>| m.host.class();
                let in_main = |m: &&&Member<'_>| panic || class(m) == HostClass::Healthy;
                let degraded = |m: &&&Member<'_>| !panic && class(m) == HostClass::Degraded;
                let main: Vec<&Member<'_>> = members.iter().filter(in_main).copied().collect();
                let worse: Vec<&Member<'_>> = members.iter().filter(degraded).copied().collect();
                let localities = match load_spread.locality_weighted && !panic {
                    true => [
                        Localities::of(&main, &members, policy, load_spread, worker),
                        Localities::of(&worse, &members, policy, load_spread, worker),
                    ],
                    false => [None, None],
                };
                let weighted = load_spread.locality_weighted && policy.hashes();
                Level {
                    priority,
                    main: picker(policy, &main, weighted, worker),
                    degraded: picker(policy, &worse, weighted, worker),
                    localities,
                    panic,
                }
            })
            .collect::<Vec<Level>>();
        let single = levels.len() == 1 && spread.load.degraded[0] == 0;
        Balancer {
            levels,
            spread,
            hashes: policy.hashes(),
            single,
            last: LastPick {
                level: 0,
                source: Source::Healthy,
                locality: None,
            },
        }
    }

    /// The next host for a request with `hash`; `tried` says which levels a retry leaves out
    /// (`previous_priorities`). `None` when the chosen level has no host to give.
    pub(crate) fn pick(
        &mut self,
        hash: Option<u64>,
        rng: &mut fastrand::Rng,
        tried: Option<&dyn Fn(u32) -> bool>,
    ) -> Option<Id> {
        // Envoy's hashing balancers choose only the level (degraded hosts are not on their
        // rings outside panic) and do not take `retry_priority`.
        let tried = tried.filter(|_| !self.hashes);
        let (level, source) = match (self.single, tried) {
            (true, None) => (0, Source::Healthy),
            _ => {
                // A hashing policy keeps a request's level stable; the others draw at random.
                let draw = match (self.hashes, hash) {
                    (true, Some(h)) => h,
                    _ => rng.u64(..),
                };
                let levels = &self.levels;
                let without =
                    tried.and_then(|tried| self.spread.without(|i| tried(levels[i].priority)));
                without.as_ref().unwrap_or(&self.spread.load).choose(draw)
            }
        };
        let l = &mut self.levels[level];
        // A level in panic picks among all its hosts, whichever share drew it.
        let source = match l.panic || self.hashes {
            true => Source::Healthy,
            false => source,
        };
        let slot = match source {
            Source::Healthy => 0,
            Source::Degraded => 1,
        };
        let mut locality = None;
        let picker = match &mut l.localities[slot] {
            Some(localities) => {
                let i = localities.turn.pick().unwrap_or(0);
                locality = Some(i);
                &mut localities.pickers[i]
            }
            None if slot == 0 => &mut l.main,
            None => &mut l.degraded,
        };
        let picked = picker.pick(hash, rng);
        self.last = LastPick {
            level,
            source,
            locality,
        };
        picked
    }

    /// The level of the last pick was in panic (`lb_healthy_panic`).
    pub(crate) fn in_panic(&self) -> bool {
        self.levels[self.last.level].panic
    }

    /// The picker of the last pick.
    fn last_picker(&self) -> &Picker {
        let l = &self.levels[self.last.level];
        let slot = usize::from(self.last.source == Source::Degraded);
        match (&l.localities[slot], self.last.locality) {
            (Some(localities), Some(i)) => &localities.pickers[i],
            _ if slot == 0 => &l.main,
            _ => &l.degraded,
        }
    }

    /// Why the last pick chose its host, for the flow trace: its policy, and the request's
    /// hash, least request's candidates with their loads, or the kind of turn it was; with
    /// the level, source and locality when the cluster has more than one way to go.
    pub(crate) fn explain(&self, hash: Option<u64>) -> (&'static str, String) {
        let picker = self.last_picker();
        let lb = &picker.lb;
        let policy = lb.name();
        let mut why = match policy {
            "ring_hash" | "maglev" => match hash {
                Some(h) => format!("request hash {h:016x}"),
                None => "no hash policy gave a hash: a random key".to_owned(),
            },
            "least_request" if !lb.drawn().is_empty() => {
                let candidates: Vec<String> = (lb.drawn().iter())
                    .filter_map(|&i| {
                        let host = picker.hosts.get(i)?;
                        let active = active_requests(host);
                        Some(format!("{} ({active} active)", host.spec.address))
                    })
                    .collect();
                format!("fewest active requests of {}", candidates.join(", "))
            }
            "least_request" => "weighted draw, weights divided by active requests".to_owned(),
            "random" => "weighted random draw".to_owned(),
            _ if lb.rotates() => "next in rotation (equal weights)".to_owned(),
            _ => "smooth weighted turn".to_owned(),
        };
        let l = &self.levels[self.last.level];
        if let (Some(localities), Some(i)) = (
            &l.localities[usize::from(self.last.source == Source::Degraded)],
            self.last.locality,
        ) {
            let name = &localities.names[i];
            why = format!(
                "locality {}/{}/{} by weight, then {why}",
                name.region, name.zone, name.sub_zone
            );
        }
        let degraded = self.spread.load.degraded.iter().any(|&d| d > 0);
        if self.levels.len() > 1 || degraded || l.panic {
            let level = self.last.level;
            let (share, which) = match self.last.source {
                Source::Healthy if l.panic => (self.spread.load.healthy[level], "any (panic)"),
                Source::Healthy => (self.spread.load.healthy[level], "healthy"),
                Source::Degraded => (self.spread.load.degraded[level], "degraded"),
            };
            why = format!(
                "priority {} ({share} % of load, {which} hosts), {why}",
                l.priority
            );
        }
        (policy, why)
    }
}

impl Localities {
    /// `members`' localities with effective weights: the locality's weight times its share
    /// of eligible hosts (times the overprovisioning factor, capped at 1), as Envoy weighs
    /// them. `None` when no locality has weight (the level's list is used whole).
    fn of(
        members: &[&Member<'_>],
        all: &[&Member<'_>],
        policy: LbPolicy,
        spread: LoadSpread,
        worker: usize,
    ) -> Option<Localities> {
        if policy.hashes() {
            return None;
        }
        let mut names: Vec<Locality> = Vec::new();
        let mut groups: Vec<Vec<&Member<'_>>> = Vec::new();
        for m in members {
            let locality = &m.host.spec.placement.locality;
            match names.iter().position(|n| n == locality) {
                Some(i) => groups[i].push(m),
                None => {
                    names.push(locality.clone());
                    groups.push(vec![m]);
                }
            }
        }
        let factor = f64::from(spread.overprovisioning_factor) / 100.0;
        let weights: Vec<u32> = (names.iter().zip(&groups))
            .map(|(name, group)| {
                let counted = (all.iter())
                    .filter(|m| &m.host.spec.placement.locality == name)
                    .filter(|m| m.host.class() != HostClass::Excluded)
                    .count();
                let weight = group[0].host.spec.placement.locality_weight.unwrap_or(0);
                let ratio = (factor * group.len() as f64 / counted.max(1) as f64).min(1.0);
                // Effective weights in thousandths: the turn takes whole numbers.
                (f64::from(weight) * ratio * 1000.0).round() as u32
            })
            .collect();
        if weights.iter().all(|&w| w == 0) {
            return None;
        }
        // A locality of weight 0 keeps its place (indexes match) and never gets a turn.
        let turn = RoundRobin::new(weights.iter().copied(), worker);
        let pickers = groups
            .iter()
            .map(|g| picker(policy, g, false, worker))
            .collect();
        Some(Localities {
            pickers,
            names,
            turn,
        })
    }
}

/// A picker over `members`; `locality_weights` (hashing policies under locality-weighted
/// balancing) scales each host's weight by its locality's share, leaving out hosts of a
/// locality without weight.
fn picker(
    policy: LbPolicy,
    members: &[&Member<'_>],
    locality_weights: bool,
    worker: usize,
) -> Picker {
    let list: Vec<(Id, Arc<Host>, u32)> = match locality_weights {
        false => (members.iter())
            .map(|m| (m.id, m.host.clone(), m.host.spec.weight))
            .collect(),
        true => {
            let placement = |m: &Member<'_>| m.host.spec.placement.clone();
            let mut sums: Vec<(Locality, u64, u64)> = Vec::new();
            for m in members {
                let p = placement(m);
                let lw = u64::from(p.locality_weight.unwrap_or(0));
                match sums.iter_mut().find(|(l, _, _)| *l == p.locality) {
                    Some((_, hosts, _)) => *hosts += u64::from(m.host.spec.weight),
                    None => sums.push((p.locality.clone(), u64::from(m.host.spec.weight), lw)),
                }
            }
            let localities: u64 = sums.iter().map(|(_, _, lw)| lw).sum();
            (members.iter())
                .filter_map(|m| {
                    let p = placement(m);
                    let (_, hosts, lw) = sums.iter().find(|(l, _, _)| *l == p.locality)?;
                    let share = (m.host.spec.weight as f64 / *hosts as f64)
                        * (*lw as f64 / localities.max(1) as f64);
                    let weight = (share * 1_000_000.0).round() as u32;
                    (weight > 0).then(|| (m.id, m.host.clone(), weight))
                })
                .collect()
        }
    };
    Picker::new(policy, list, worker)
}

/// A level's counts for the spread.
fn level_health(members: &[&Member<'_>]) -> LevelHealth {
    let mut l = LevelHealth::default();
    for m in members {
        let w = u64::from(m.host.spec.weight);
        l.all += 1;
        match m.host.class() {
            HostClass::Excluded => continue,
            HostClass::Healthy => {
                (l.healthy, l.healthy_weight) = (l.healthy + 1, l.healthy_weight + w)
            }
            HostClass::Degraded => {
                (l.degraded, l.degraded_weight) = (l.degraded + 1, l.degraded_weight + w)
            }
            HostClass::Unhealthy => {}
        }
        (l.counted, l.counted_weight) = (l.counted + 1, l.counted_weight + w);
    }
    l
}

/// A host's requests in flight, on every worker.
pub(crate) fn active_requests(host: &Host) -> u64 {
    let each = host.stats.iter().map(|st| st.rq_active.get().max(0) as u64);
    each.sum()
}

#[cfg(test)]
#[path = "balancer_tests.rs"]
mod tests;
