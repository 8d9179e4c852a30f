//! The load balancers as the criterion benchmark in `benches/lb_pick.rs` sees them, compiled
//! only with the `lb-bench` feature. Not an API: it exists so the crate-private balancers can
//! be measured without making them public.

#![cfg(feature = "lb-bench")]
#![doc(hidden)]

use weir_config::LbPolicy;

use crate::upstream::lb::{LoadBalancer, PickContext};

/// One worker's balancer over `hosts` hosts at 10.0.x.y:80 with weights 1, 2, 3, 1, 2, 3…
/// (or all 1 with `equal`).
pub struct Balancer {
    lb: LoadBalancer,
    rng: fastrand::Rng,
}

impl Balancer {
    pub fn new(policy: LbPolicy, hosts: usize, equal: bool) -> Balancer {
        let hosts: Vec<(String, u32)> = (0..hosts)
            .map(|i| {
                let weight = if equal { 1 } else { 1 + (i % 3) as u32 };
                (format!("10.0.{}.{}:80", i / 250, i % 250 + 1), weight)
            })
            .collect();
        Balancer {
            lb: LoadBalancer::new(policy, &hosts, 0),
            rng: fastrand::Rng::with_seed(1),
        }
    }

    /// One pick for a request with `hash`; host `i` has `i % 4` active requests.
    pub fn pick(&mut self, hash: Option<u64>) -> Option<usize> {
        let active = |i: usize| (i % 4) as u64;
        self.lb.pick(PickContext {
            hash,
            active: &active,
            rng: &mut self.rng,
        })
    }
}
