//! Which host a stream's attempt goes to: the cluster's balancer picks (with the request's
//! hash), a retry under `previous_hosts` picks again, and the flow trace records why.

use weir_flow::EventKind;

use crate::event::token::Id;
use crate::http::local_reply::{LocalReply, ResponseFlag};
use crate::upstream::circuit_breaker::Resource;
use crate::worker::Worker;

impl Worker {
    /// The load balancer picks a host of the stream's cluster (the flow trace records it, and
    /// the pool's first use). No host: 503 `UH`.
    pub(super) fn choose_host(&mut self, sid: Id) -> Option<(usize, Id)> {
        let (avoid, tried_priorities) = self.retry_constraints(sid)?;
        let stream = self.streams.get(sid)?;
        let (cluster, hash) = (stream.cluster, stream.lb_hash);
        let leave_out = |p: u32| tried_priorities.as_ref().is_some_and(|t| t.contains(&p));
        let tried_levels: Option<&dyn Fn(u32) -> bool> = match &tried_priorities {
            Some(t) if !t.is_empty() => Some(&leave_out),
            _ => None,
        };
        // An ORIGINAL_DST cluster's host is the request's destination: nothing to pick.
        let provided = match self.clusters[cluster].original_dst.is_some() {
            true => Some(self.original_dst_host(sid, cluster)),
            false => None,
        };
        let stream = self.streams.get(sid)?;
        let hosts = &mut self.clusters[cluster].hosts;
        let mut host = match provided {
            Some(host) => host,
            None => hosts.pick(hash, &mut self.rng, tried_levels),
        };
        let avoid = avoid.filter(|_| provided.is_none());
        // `previous_hosts`: a retry picks again (up to `host_selection_retry_max_attempts`
        // more times) while the host is one an earlier attempt went to, as Envoy's balancer
        // consults its retry predicates; the last pick stands. A hashing balancer gets the
        // hash mixed with the attempt, or it would land on the same host.
        if let Some(more) = avoid {
            for attempt in 1..=u64::from(more) {
                match host {
                    Some(h) if stream.retry.tried.contains(&h) => {
                        let mixed =
                            hash.map(|h| xxhash_rust::xxh64::xxh64(&h.to_le_bytes(), attempt));
                        host = hosts.pick(mixed, &mut self.rng, tried_levels);
                    }
                    _ => break,
                }
            }
        }
        if hosts.in_panic()
            && let Some(c) = self.stats.clusters.get(cluster)
        {
            c.common.lb_healthy_panic.inc();
        }
        let Some(host) = host else {
            if let Some(c) = self.stats.clusters.get(cluster) {
                c.common.upstream_cx_none_healthy.inc();
            }
            if let Some(stream) = self.streams.get_mut(sid) {
                stream.upstream_host = None;
            }
            self.note_no_host(sid, cluster, false);
            let reply = LocalReply::failure(ResponseFlag::NoHealthyUpstream);
            self.local_reply(sid, None, reply);
            return None;
        };
        let state = &mut self.clusters[cluster];
        let slot = state.hosts.get_mut(host)?;
        let first_use = !slot.pool.created;
        if first_use {
            // A new pool (this host on this worker) needs room under `max_connection_pools`;
            // without it Envoy's router finds no pool and answers as for no host.
            let breaker = state.breakers.default_priority();
            if !breaker.can_create(Resource::Pools) {
                if let Some(c) = self.stats.clusters.get(cluster) {
                    c.common.upstream_cx_pool_overflow.inc();
                }
                self.note_no_host(sid, cluster, true);
                let reply = LocalReply::failure(ResponseFlag::NoHealthyUpstream);
                self.local_reply(sid, None, reply);
                return None;
            }
            breaker.inc(Resource::Pools);
        }
        let state = &mut self.clusters[cluster];
        let slot = state.hosts.get_mut(host)?;
        slot.pool.created = true;
        if self.recorder.enabled() {
            let (name, address) = (state.name.clone(), slot.host.spec.address);
            if first_use {
                let name = name.clone();
                self.trace_stream(sid, || EventKind::PoolCreated {
                    cluster: name,
                    host: address,
                });
            }
            let (policy, why) = match provided {
                // An ORIGINAL_DST cluster: the host is where the request was addressed.
                Some(_) => (
                    "cluster_provided",
                    "the request's original destination".into(),
                ),
                None => self.clusters[cluster].hosts.explain_pick(hash),
            };
            self.trace_stream(sid, || EventKind::HostChosen {
                cluster: name,
                host: address,
                policy,
                why: why.into(),
            });
        }
        Some((cluster, host))
    }

    /// What a retry's pick must avoid: `previous_hosts` (how many more picks it may make)
    /// and, under `previous_priorities`, the priorities of the first attempts in whole
    /// multiples of `update_frequency` (Envoy recounts them that often). The previous
    /// attempt's host and priority are noted here. A first attempt costs no lookup.
    fn retry_constraints(&mut self, sid: Id) -> Option<(Option<u32>, Option<Vec<u32>>)> {
        if self.streams.get(sid)?.retry.attempts == 0 {
            return Some((None, None));
        }
        let (avoid, every) = match self.retry_policy_of(sid) {
            Some(p) => (
                (p.avoid_previous_hosts).then_some(p.host_selection_max_attempts),
                p.previous_priorities,
            ),
            None => (None, None),
        };
        let stream = self.streams.get(sid)?;
        let (cluster, previous) = (stream.cluster, stream.upstream_host);
        let previous_priority = previous
            .filter(|_| every.is_some())
            .and_then(|h| self.clusters[cluster].hosts.get(h))
            .map(|slot| slot.host.spec.placement.priority);
        let stream = self.streams.get_mut(sid)?;
        if let Some(previous) = previous {
            if avoid.is_some() && !stream.retry.tried.contains(&previous) {
                stream.retry.tried.push(previous);
            }
            if let Some(priority) = previous_priority {
                stream.retry.tried_priorities.push(priority);
            }
        }
        let tried_priorities = every.map(|every| {
            let tried = &stream.retry.tried_priorities;
            let counted = tried.len() - tried.len() % every.max(1) as usize;
            tried[..counted].to_vec()
        });
        Some((avoid, tried_priorities))
    }
}
