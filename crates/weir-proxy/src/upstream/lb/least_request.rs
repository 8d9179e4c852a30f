//! Envoy's LEAST_REQUEST: with equal weights, the best of `choice_count` hosts drawn at random
//! (power of two choices by default); with unequal weights, a weighted draw where each host's
//! weight is divided by `(active requests + 1) ^ active_request_bias`. Active requests are this
//! worker's (each worker balances its own load: no counter shared between threads).

/// One worker's least-request state for one cluster.
#[derive(Debug, Clone)]
pub(crate) struct LeastRequest {
    weights: Vec<u32>,
    equal: bool,
    choice_count: u32,
    bias: f64,
    /// The hosts the last equal-weights pick drew (for the flow trace).
    drawn: Vec<usize>,
}

impl LeastRequest {
    pub(crate) fn new(weights: Vec<u32>, choice_count: u32, bias: f64) -> LeastRequest {
        let equal = weights.windows(2).all(|w| w[0] == w[1]);
        LeastRequest {
            weights,
            equal,
            choice_count: choice_count.max(2),
            bias,
            drawn: Vec::new(),
        }
    }

    /// The next host; `active(i)` is host `i`'s active requests.
    pub(crate) fn pick(
        &mut self,
        active: &dyn Fn(usize) -> u64,
        rng: &mut fastrand::Rng,
    ) -> Option<usize> {
        let n = self.weights.len();
        if n == 0 {
            return None;
        }
        if self.equal {
            self.drawn.clear();
            let mut best = rng.usize(0..n);
            self.drawn.push(best);
            for _ in 1..self.choice_count {
                let other = rng.usize(0..n);
                self.drawn.push(other);
                if active(other) < active(best) {
                    best = other;
                }
            }
            return Some(best);
        }
        self.drawn.clear();
        let effective = |i: usize| {
            let weight = f64::from(self.weights[i]);
            #[allow(clippy::cast_precision_loss)]
            let load = (active(i) + 1) as f64;
            if self.bias == 0.0 {
                weight
            } else if self.bias == 1.0 {
                weight / load
            } else {
                weight / load.powf(self.bias)
            }
        };
        let total: f64 = (0..n).map(effective).sum();
        let mut ticket = rng.f64() * total;
        for i in 0..n {
            ticket -= effective(i);
            if ticket < 0.0 {
                return Some(i);
            }
        }
        Some(n - 1)
    }
}

impl LeastRequest {
    /// The hosts the last pick drew, when weights are equal (empty for a weighted pick).
    pub(crate) fn drawn(&self) -> &[usize] {
        &self.drawn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_choices_avoid_the_busy_host() {
        let mut lr = LeastRequest::new(vec![1, 1], 2, 1.0);
        let mut rng = fastrand::Rng::with_seed(7);
        let busy = |i: usize| if i == 0 { 10 } else { 0 };
        let picks: Vec<usize> = (0..1000).filter_map(|_| lr.pick(&busy, &mut rng)).collect();
        let to_busy = picks.iter().filter(|&&i| i == 0).count();
        // Host 0 wins only when both draws are 0: about a quarter.
        assert!((150..350).contains(&to_busy), "{to_busy}");
        assert_eq!(
            LeastRequest::new(vec![], 2, 1.0).pick(&busy, &mut rng),
            None
        );
    }

    #[test]
    fn unequal_weights_are_divided_by_the_load() {
        let mut lr = LeastRequest::new(vec![2, 1], 2, 1.0);
        let mut rng = fastrand::Rng::with_seed(7);
        let idle = |_: usize| 0;
        let first = (0..3000)
            .filter(|_| lr.pick(&idle, &mut rng) == Some(0))
            .count();
        assert!((1800..2200).contains(&first), "2:1 when idle: {first}");
        // Host 0 with 3 active: 2/4 against 1/1.
        let loaded = |i: usize| if i == 0 { 3 } else { 0 };
        let first = (0..3000)
            .filter(|_| lr.pick(&loaded, &mut rng) == Some(0))
            .count();
        assert!((800..1200).contains(&first), "1:2 when loaded: {first}");
    }
}
