//! Weighted round robin, smooth: hosts are interleaved by weight (weights 5,1,1 give
//! a a b a c a a, never a a a a a b c), and every host is visited once per `sum(weights)` picks.
//! Deterministic, so tests can count exactly which host served what. With equal weights that
//! order is plain rotation, kept as a counter: a pick is then O(1) rather than a walk over
//! every host.

/// One worker's round-robin state for one cluster.
#[derive(Debug, Clone)]
pub(crate) struct RoundRobin {
    /// Empty when every weight is equal (rotation: `next`).
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
    hosts: usize,
    next: usize,
}

impl RoundRobin {
    /// `offset` starts workers at different hosts so they do not all hit host 0 first.
    pub(crate) fn new(weights: impl IntoIterator<Item = u32>, offset: usize) -> Self {
        let mut weights: Vec<i64> = weights.into_iter().map(i64::from).collect();
        let hosts = weights.len();
        if weights.windows(2).all(|w| w[0] == w[1]) {
            weights.clear();
        }
        let total = weights.iter().sum();
        let mut rr = RoundRobin {
            current: vec![0; weights.len()],
            weights,
            total,
            hosts,
            next: 0,
        };
        for _ in 0..offset % hosts.max(1) {
            rr.pick();
        }
        rr
    }

    /// Every weight is equal: picks rotate.
    pub(crate) fn rotates(&self) -> bool {
        self.weights.is_empty()
    }

    /// The next host's index, `None` when the cluster has no host.
    pub(crate) fn pick(&mut self) -> Option<usize> {
        if self.weights.is_empty() {
            if self.hosts == 0 {
                return None;
            }
            let host = self.next;
            self.next = (host + 1) % self.hosts;
            return Some(host);
        }
        let mut best: Option<usize> = None;
        for i in 0..self.weights.len() {
            self.current[i] += self.weights[i];
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        self.current[best] -= self.total;
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_and_proportional() {
        let mut rr = RoundRobin::new([5, 1, 1], 0);
        let seq: Vec<usize> = (0..7).map(|_| rr.pick().unwrap()).collect();
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
        let mut counts = [0; 3];
        for _ in 0..700 {
            counts[rr.pick().unwrap()] += 1;
        }
        assert_eq!(counts, [500, 100, 100]);
    }

    #[test]
    fn equal_weights_alternate_and_empty_has_none() {
        let mut rr = RoundRobin::new([1, 1], 1);
        let seq: Vec<usize> = (0..4).map(|_| rr.pick().unwrap()).collect();
        assert_eq!(seq, vec![1, 0, 1, 0]);
        assert_eq!(RoundRobin::new([], 0).pick(), None);
        let mut rr = RoundRobin::new([3, 3, 3], 2);
        let seq: Vec<usize> = (0..4).map(|_| rr.pick().unwrap()).collect();
        assert_eq!(
            seq,
            vec![2, 0, 1, 2],
            "equal weights rotate from the offset"
        );
    }
}
