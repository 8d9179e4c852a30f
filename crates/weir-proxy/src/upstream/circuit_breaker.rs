//! Circuit breakers: Envoy's resource manager. Per cluster and routing priority, how many
//! connections, pending requests, requests, retries and connection pools are in use, counted
//! by every worker in one place so a limit holds for the whole proxy, not per thread.
//!
//! A check and the increment after it are two steps, so two workers may both pass a check at
//! the limit and go one over it, as in Envoy; counts never drift, since every increment is
//! paired with one decrement by whoever made it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use weir_config::Thresholds;

/// What a circuit breaker limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// Open connections (`max_connections`).
    Connections,
    /// Requests waiting for a connection (`max_pending_requests`).
    Pending,
    /// Requests on connections (`max_requests`).
    Requests,
    /// Retries under way (`max_retries`, or the `retry_budget`).
    Retries,
    /// Connection pools, one per host and worker (`max_connection_pools`).
    Pools,
}

const RESOURCES: [Resource; 5] = [
    Resource::Connections,
    Resource::Pending,
    Resource::Requests,
    Resource::Retries,
    Resource::Pools,
];

/// One priority's limits and what is in use against them.
#[derive(Debug)]
pub(crate) struct Breaker {
    limits: Thresholds,
    in_use: [AtomicU64; 5],
}

impl Breaker {
    fn new(limits: Thresholds) -> Breaker {
        Breaker {
            limits,
            in_use: Default::default(),
        }
    }

    /// How many of `r` are in use.
    pub(crate) fn count(&self, r: Resource) -> u64 {
        self.in_use[r as usize].load(Relaxed)
    }

    /// The limit on `r` now: a retry budget's moves with the requests in flight (Envoy's:
    /// `budget_percent` of active and pending requests, at least `min_retry_concurrency`).
    pub(crate) fn max(&self, r: Resource) -> u64 {
        let l = &self.limits;
        match r {
            Resource::Connections => l.max_connections.into(),
            Resource::Pending => l.max_pending_requests.into(),
            Resource::Requests => l.max_requests.into(),
            Resource::Retries => match &l.retry_budget {
                Some(b) => {
                    let active = self.count(Resource::Requests) + self.count(Resource::Pending);
                    let share = (b.budget_percent / 100.0 * active as f64) as u64;
                    share.max(b.min_retry_concurrency.into())
                }
                None => l.max_retries.into(),
            },
            Resource::Pools => l.max_connection_pools.map_or(u64::MAX, u64::from),
        }
    }

    /// Whether one more `r` is within its limit.
    pub(crate) fn can_create(&self, r: Resource) -> bool {
        self.count(r) < self.max(r)
    }

    pub(crate) fn inc(&self, r: Resource) {
        self.in_use[r as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn dec(&self, r: Resource) {
        let was = self.in_use[r as usize].fetch_sub(1, Relaxed);
        debug_assert!(was > 0, "{r:?} released more often than taken");
    }

    /// Envoy's `<resource>_open` gauge: 1 while the limit is reached. Envoy sets it when a
    /// count moves, so a resource whose limit is 0 and that was never taken reads 0.
    fn open(&self, r: Resource) -> bool {
        let n = self.count(r);
        n > 0 && n >= self.max(r)
    }
}

/// One cluster's breakers: `[DEFAULT, HIGH]`, and each host's connection limit.
#[derive(Debug)]
pub(crate) struct ClusterBreakers {
    priorities: [Breaker; 2],
    /// `per_host_thresholds`' `max_connections` of the default priority.
    per_host_max_connections: Option<u32>,
}

impl ClusterBreakers {
    pub(crate) fn new(config: &weir_config::CircuitBreakers) -> ClusterBreakers {
        let [default, high] = config.thresholds.clone();
        ClusterBreakers {
            priorities: [Breaker::new(default), Breaker::new(high)],
            per_host_max_connections: config.per_host_max_connections[0],
        }
    }

    /// The breaker of the default priority (routes have no other yet).
    pub(crate) fn default_priority(&self) -> &Breaker {
        &self.priorities[0]
    }

    /// Whether a host with `host_connections` open (on every worker) may have one more.
    pub(crate) fn host_allows(&self, host_connections: u64) -> bool {
        self.per_host_max_connections
            .is_none_or(|max| host_connections < u64::from(max))
    }

    /// `circuit_breakers.<priority>.*` as Envoy names them: the `*_open` gauges always, the
    /// `remaining_*` ones with `track_remaining`.
    pub(crate) fn gauges(&self, mut f: impl FnMut(&str, u64)) {
        for (priority, b) in ["default", "high"].into_iter().zip(&self.priorities) {
            for r in RESOURCES {
                let (open, remaining) = match r {
                    Resource::Connections => ("cx_open", "remaining_cx"),
                    Resource::Pending => ("rq_pending_open", "remaining_pending"),
                    Resource::Requests => ("rq_open", "remaining_rq"),
                    Resource::Retries => ("rq_retry_open", "remaining_retries"),
                    Resource::Pools => ("cx_pool_open", "remaining_cx_pools"),
                };
                f(&format!("{priority}.{open}"), b.open(r).into());
                if b.limits.track_remaining {
                    let left = b.max(r).saturating_sub(b.count(r));
                    f(&format!("{priority}.{remaining}"), left);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_config::{CircuitBreakers, RetryBudget};

    fn breakers(default: Thresholds) -> ClusterBreakers {
        ClusterBreakers::new(&CircuitBreakers {
            thresholds: [default, Thresholds::default()],
            per_host_max_connections: [Some(2), None],
        })
    }

    #[test]
    fn a_limit_is_reached_and_left() {
        let cb = breakers(Thresholds {
            max_connections: 2,
            track_remaining: true,
            ..Thresholds::default()
        });
        let b = cb.default_priority();
        assert!(b.can_create(Resource::Connections));
        b.inc(Resource::Connections);
        b.inc(Resource::Connections);
        assert!(!b.can_create(Resource::Connections));
        let mut seen = Vec::new();
        cb.gauges(|name, v| seen.push((name.to_owned(), v)));
        let get = |n: &str| seen.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        assert_eq!(get("default.cx_open"), Some(1));
        assert_eq!(get("default.remaining_cx"), Some(0));
        assert_eq!(get("default.remaining_pending"), Some(1024));
        assert_eq!(get("default.remaining_cx_pools"), Some(u64::MAX));
        assert_eq!(get("high.cx_open"), Some(0));
        assert_eq!(get("high.remaining_cx"), None, "high does not track");
        b.dec(Resource::Connections);
        assert!(b.can_create(Resource::Connections));
        assert!(cb.host_allows(1) && !cb.host_allows(2));
    }

    #[test]
    fn a_retry_budget_follows_the_requests_in_flight() {
        let cb = breakers(Thresholds {
            max_retries: 0,
            retry_budget: Some(RetryBudget {
                budget_percent: 25.0,
                min_retry_concurrency: 2,
            }),
            ..Thresholds::default()
        });
        let b = cb.default_priority();
        assert_eq!(b.max(Resource::Retries), 2, "the floor");
        for _ in 0..12 {
            b.inc(Resource::Requests);
        }
        for _ in 0..8 {
            b.inc(Resource::Pending);
        }
        assert_eq!(b.max(Resource::Retries), 5, "25 % of 20");
    }

    #[test]
    fn a_zero_limit_refuses_and_reads_closed_until_taken() {
        let cb = breakers(Thresholds {
            max_retries: 0,
            ..Thresholds::default()
        });
        let b = cb.default_priority();
        assert!(!b.can_create(Resource::Retries));
        assert!(!b.open(Resource::Retries));
    }
}
