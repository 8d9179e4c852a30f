//! What the ring hash and Maglev tests share: hosts, keys, and where the keys land.

use super::maglev::Maglev;
use super::ring_hash::RingHash;

/// A hashing balancer, as the tests ask it.
pub(super) trait Pick {
    fn pick(&self, hash: u64) -> Option<usize>;
}

impl Pick for RingHash {
    fn pick(&self, hash: u64) -> Option<usize> {
        RingHash::pick(self, hash)
    }
}

impl Pick for Maglev {
    fn pick(&self, hash: u64) -> Option<usize> {
        Maglev::pick(self, hash)
    }
}

/// `n` hosts of weight 1 at 10.0.0.1:80, 10.0.0.2:80…
pub(super) fn hosts(n: usize) -> Vec<(String, u32)> {
    (1..=n).map(|i| (format!("10.0.0.{i}:80"), 1)).collect()
}

/// 100 000 request hashes, the same every run.
pub(super) fn keys() -> Vec<u64> {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    (0..100_000).map(|_| rng.u64(..)).collect()
}

/// Which host (by key, so removing a host does not shift the others) each request went to.
pub(super) fn owners<'a>(lb: &impl Pick, hosts: &'a [(String, u32)], keys: &[u64]) -> Vec<&'a str> {
    keys.iter()
        .map(|&k| hosts[lb.pick(k).unwrap()].0.as_str())
        .collect()
}

/// Each host's share of `keys`.
pub(super) fn shares(lb: &impl Pick, n: usize, keys: &[u64]) -> Vec<f64> {
    let mut counts = vec![0_u32; n];
    keys.iter().for_each(|&k| counts[lb.pick(k).unwrap()] += 1);
    counts
        .iter()
        .map(|&c| f64::from(c) / keys.len() as f64)
        .collect()
}
