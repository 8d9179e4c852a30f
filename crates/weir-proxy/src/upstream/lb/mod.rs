//! Load balancers: which host of a cluster a request goes to. Each worker has its own balancer
//! per cluster, rebuilt when the cluster's hosts change; none of them shares state between
//! threads.

pub(crate) mod hash;
#[cfg(test)]
mod hashing_tests;
pub(crate) mod least_request;
pub(crate) mod maglev;
pub(crate) mod random;
pub(crate) mod ring_hash;
pub(crate) mod round_robin;

use weir_config::LbPolicy;

use least_request::LeastRequest;
use maglev::Maglev;
use random::Random;
use ring_hash::RingHash;
use round_robin::RoundRobin;

/// A cluster's balancer on one worker, by its `lb_policy`.
#[derive(Debug, Clone)]
pub(crate) enum LoadBalancer {
    RoundRobin(RoundRobin),
    LeastRequest(LeastRequest),
    Random(Random),
    RingHash(RingHash),
    Maglev(Maglev),
}

/// What a pick may look at.
pub(crate) struct PickContext<'a> {
    /// The request's hash (`hash_policy`), for ring hash and Maglev; without one they pick at
    /// random, as Envoy's do.
    pub(crate) hash: Option<u64>,
    /// Host `i`'s active requests on this worker (least request).
    pub(crate) active: &'a dyn Fn(usize) -> u64,
    pub(crate) rng: &'a mut fastrand::Rng,
}

impl LoadBalancer {
    /// A balancer over `hosts` (each host's key, its address as text, and its weight);
    /// `worker` staggers round robin's start.
    pub(crate) fn new(policy: LbPolicy, hosts: &[(String, u32)], worker: usize) -> LoadBalancer {
        let weights = || hosts.iter().map(|(_, w)| *w);
        match policy {
            // An ORIGINAL_DST cluster picks by destination (`original_dst.rs`), never here.
            LbPolicy::RoundRobin | LbPolicy::ClusterProvided => {
                LoadBalancer::RoundRobin(RoundRobin::new(weights(), worker))
            }
            LbPolicy::LeastRequest {
                choice_count,
                active_request_bias,
            } => LoadBalancer::LeastRequest(LeastRequest::new(
                weights().collect(),
                choice_count,
                active_request_bias,
            )),
            LbPolicy::Random => LoadBalancer::Random(Random::new(&weights().collect::<Vec<_>>())),
            LbPolicy::RingHash {
                minimum_ring_size,
                maximum_ring_size,
            } => LoadBalancer::RingHash(RingHash::new(hosts, minimum_ring_size, maximum_ring_size)),
            LbPolicy::Maglev { table_size } => LoadBalancer::Maglev(Maglev::new(hosts, table_size)),
        }
    }

    /// The policy's name, as the flow trace shows it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            LoadBalancer::RoundRobin(_) => "round_robin",
            LoadBalancer::LeastRequest(_) => "least_request",
            LoadBalancer::Random(_) => "random",
            LoadBalancer::RingHash(_) => "ring_hash",
            LoadBalancer::Maglev(_) => "maglev",
        }
    }

    /// Round robin over equal weights (plain rotation).
    pub(crate) fn rotates(&self) -> bool {
        matches!(self, LoadBalancer::RoundRobin(rr) if rr.rotates())
    }

    /// Least request's draws in its last pick (empty for every other policy).
    pub(crate) fn drawn(&self) -> &[usize] {
        match self {
            LoadBalancer::LeastRequest(lr) => lr.drawn(),
            _ => &[],
        }
    }

    /// The index of the next host, `None` when there is none.
    pub(crate) fn pick(&mut self, cx: PickContext<'_>) -> Option<usize> {
        match self {
            LoadBalancer::RoundRobin(rr) => rr.pick(),
            LoadBalancer::LeastRequest(lr) => lr.pick(cx.active, cx.rng),
            LoadBalancer::Random(r) => r.pick(cx.rng),
            LoadBalancer::RingHash(ring) => ring.pick(cx.hash.unwrap_or_else(|| cx.rng.u64(..))),
            LoadBalancer::Maglev(m) => m.pick(cx.hash.unwrap_or_else(|| cx.rng.u64(..))),
        }
    }
}
