//! RANDOM, weighted: each host's share is its weight over the total.

/// One cluster's weights, summed for a draw.
#[derive(Debug, Clone)]
pub(crate) struct Random {
    /// Running sums of the weights: host `i` owns `[cumulative[i-1], cumulative[i])`.
    cumulative: Vec<u64>,
}

impl Random {
    pub(crate) fn new(weights: &[u32]) -> Random {
        let cumulative = weights
            .iter()
            .scan(0u64, |sum, &w| {
                *sum += u64::from(w);
                Some(*sum)
            })
            .collect();
        Random { cumulative }
    }

    pub(crate) fn pick(&self, rng: &mut fastrand::Rng) -> Option<usize> {
        let total = *self.cumulative.last()?;
        let ticket = rng.u64(0..total.max(1));
        Some(self.cumulative.partition_point(|&end| end <= ticket))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_the_weights() {
        let random = Random::new(&[1, 3]);
        let mut rng = fastrand::Rng::with_seed(3);
        let second = (0..4000)
            .filter(|_| random.pick(&mut rng) == Some(1))
            .count();
        assert!((2800..3200).contains(&second), "{second}");
        assert_eq!(Random::new(&[]).pick(&mut rng), None);
        assert_eq!(Random::new(&[5]).pick(&mut rng), Some(0));
    }
}
