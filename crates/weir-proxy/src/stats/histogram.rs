//! A histogram one worker records into and any thread reads: log-linear buckets with two
//! significant decimal digits (the precision of Envoy's circllhist), so quantiles are within
//! 10 % and every one of Envoy's Prometheus bucket bounds (0.5, 1, 5, 10, 25 … 3 600 000) is a
//! bucket edge, which makes the `le` counts exact rather than interpolated.
//!
//! Values are integers (milliseconds or microseconds). Bucket 0 holds 0; bucket `1 + w` for
//! `w = v − 1 < 100` holds exactly `v`; above that, a bucket holds `(m·10^e, (m+1)·10^e]` for
//! a two-digit `m`. Buckets are allocated on the first value, so an unused histogram costs one
//! pointer.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Decades above 100 that get their own buckets: values up to 10^10 (115 days in ms).
const DECADES: u32 = 8;
/// Buckets: zero, 1..=100 exactly, 90 per decade, and one for anything larger.
pub(crate) const BUCKETS: usize = 1 + 100 + 90 * DECADES as usize + 1;
/// Envoy's default histogram bucket bounds (`stats_config.histogram_bucket_settings`).
pub(crate) const ENVOY_BOUNDS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];
/// The quantiles Envoy reports in `/stats`, in percent.
pub(crate) const QUANTILES: [f64; 10] =
    [0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 100.0];

/// See the module documentation. Written by one thread only (load + store, no locked add).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: OnceLock<Box<[AtomicU64]>>,
    sum: AtomicU64,
}

impl Histogram {
    /// Records one value.
    #[inline]
    pub(crate) fn record(&self, value: u64) {
        let buckets = self
            .buckets
            .get_or_init(|| (0..BUCKETS).map(|_| AtomicU64::new(0)).collect());
        let b = &buckets[bucket(value)];
        b.store(b.load(Relaxed).wrapping_add(1), Relaxed);
        self.sum
            .store(self.sum.load(Relaxed).wrapping_add(value), Relaxed);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.buckets
            .get()
            .map_or(0, |b| b.iter().map(|n| n.load(Relaxed)).sum())
    }

    /// Adds `from`'s counts to this one's (see `grow.rs`).
    pub(crate) fn absorb(&self, from: &Histogram) {
        if let Some(theirs) = from.buckets.get() {
            let ours = self
                .buckets
                .get_or_init(|| (0..BUCKETS).map(|_| AtomicU64::new(0)).collect());
            for (b, n) in ours.iter().zip(theirs.iter()) {
                b.store(b.load(Relaxed).wrapping_add(n.load(Relaxed)), Relaxed);
            }
        }
        let sum = self.sum.load(Relaxed).wrapping_add(from.sum.load(Relaxed));
        self.sum.store(sum, Relaxed);
    }

    /// Back to no value (its buckets stay allocated, for the next values).
    pub(crate) fn clear(&self) {
        if let Some(buckets) = self.buckets.get() {
            buckets.iter().for_each(|b| b.store(0, Relaxed));
        }
        self.sum.store(0, Relaxed);
    }

    /// Adds this histogram's counts into `into`.
    pub(crate) fn merge_into(&self, into: &mut Snapshot) {
        if let Some(buckets) = self.buckets.get() {
            into.counts.resize(BUCKETS, 0);
            for (sum, b) in into.counts.iter_mut().zip(buckets.iter()) {
                *sum += b.load(Relaxed);
            }
        }
        into.sum += self.sum.load(Relaxed);
    }
}

/// A histogram's counts at one moment, merged over workers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Per bucket; empty when nothing was ever recorded.
    pub(crate) counts: Vec<u64>,
    /// The sum of the values.
    pub sum: u64,
}

impl Snapshot {
    /// Adds `other`'s counts to this one's.
    pub(crate) fn add(&mut self, other: &Snapshot) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
    }

    /// How many values.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was recorded since `earlier` (a snapshot of the same histogram).
    pub(crate) fn since(&self, earlier: &Snapshot) -> Snapshot {
        let counts = if earlier.counts.is_empty() {
            self.counts.clone()
        } else {
            let c: Vec<u64> = self
                .counts
                .iter()
                .zip(&earlier.counts)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect();
            if c.iter().all(|&n| n == 0) {
                Vec::new()
            } else {
                c
            }
        };
        Snapshot {
            counts,
            sum: self.sum.saturating_sub(earlier.sum),
        }
    }

    /// The value below which `percent` % of the values fall, interpolated linearly within its
    /// bucket; `None` when empty.
    pub fn quantile(&self, percent: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = percent / 100.0 * total as f64;
        let mut before = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (before + n) as f64 >= rank {
                let (low, high) = bounds(i);
                // Integer values in (low, high]: from low + 1 up to high.
                let first = if i == 0 { 0.0 } else { low + 1.0 };
                let frac = ((rank - before as f64) / n as f64).clamp(0.0, 1.0);
                return Some(significant(first + (high - first) * frac));
            }
            before += n;
        }
        self.counts
            .iter()
            .rposition(|&n| n > 0)
            .map(|i| bounds(i).1)
    }

    /// Each non-empty bucket as (a value standing for its values, how many): the value itself
    /// up to 100, the middle of the bucket above (within 5 % of every value in it). For sinks
    /// that take single values (statsd timers).
    pub(crate) fn values(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, &n)| (middle(i), n))
    }

    /// Cumulative counts at Envoy's bucket bounds (`le`), for Prometheus.
    pub(crate) fn cumulative(&self) -> [u64; ENVOY_BOUNDS.len()] {
        let mut out = [0u64; ENVOY_BOUNDS.len()];
        for (i, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let high = bounds(i).1;
            for (slot, &bound) in out.iter_mut().zip(&ENVOY_BOUNDS) {
                if high <= bound {
                    *slot += n;
                }
            }
        }
        out
    }
}

/// The bucket of a value.
fn bucket(value: u64) -> usize {
    if value == 0 {
        return 0;
    }
    let w = value - 1;
    if w < 100 {
        return 1 + w as usize;
    }
    // w has at least 3 digits: w = m·10^e + rest with m in 10..=99 and e ≥ 1.
    let mut e = 0u32;
    let mut m = w;
    while m >= 100 {
        m /= 10;
        e += 1;
    }
    if e > DECADES {
        return BUCKETS - 1;
    }
    101 + (e as usize - 1) * 90 + (m as usize - 10)
}

/// Significant digits a quantile keeps: its buckets are 1/90 of a decade wide, so more digits
/// would be interpolation noise, and fewer keep `232.79999999999998` from being printed for
/// 232.8 (the nearest double to a rounded decimal prints as that decimal).
const SIGNIFICANT_DIGITS: i32 = 6;

/// `v` rounded to [`SIGNIFICANT_DIGITS`] significant digits.
fn significant(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    #[allow(clippy::cast_possible_truncation)]
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = SIGNIFICANT_DIGITS - 1 - magnitude;
    if decimals >= 0 {
        let scale = 10f64.powi(decimals);
        (v * scale).round() / scale
    } else {
        let scale = 10f64.powi(-decimals);
        (v / scale).round() * scale
    }
}

/// The integer in the middle of a bucket's values (its low end for the open-ended last).
fn middle(index: usize) -> u64 {
    let (low, high) = bounds(index);
    if index == 0 {
        0
    } else if high.is_infinite() {
        low as u64
    } else {
        ((low + 1.0 + high) / 2.0).floor() as u64
    }
}

/// A bucket's range `(low, high]` (bucket 0 is `[0, 0]`, the last is open-ended).
fn bounds(index: usize) -> (f64, f64) {
    match index {
        0 => (0.0, 0.0),
        1..=100 => ((index - 1) as f64, index as f64),
        _ if index == BUCKETS - 1 => {
            let top = 10f64.powi(DECADES as i32 + 2);
            (top, f64::INFINITY)
        }
        _ => {
            let k = index - 101;
            let e = (k / 90) as i32 + 1;
            let m = (k % 90) as f64 + 10.0;
            let scale = 10f64.powi(e);
            (m * scale, (m + 1.0) * scale)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(values: &[u64]) -> Snapshot {
        let h = Histogram::default();
        for &v in values {
            h.record(v);
        }
        let mut s = Snapshot::default();
        h.merge_into(&mut s);
        s
    }

    #[test]
    fn every_value_lands_in_the_bucket_whose_range_holds_it() {
        let mut probes: Vec<u64> = (0..=2000).collect();
        for e in 3..=11 {
            let p = 10u64.pow(e);
            probes.extend([p - 1, p, p + 1, 25 * p / 10, 99 * p / 10]);
        }
        for v in probes {
            let i = bucket(v);
            let (low, high) = bounds(i);
            let v = v as f64;
            assert!(
                (i == 0 && v == 0.0) || (low < v && v <= high),
                "{v} in bucket {i} ({low}, {high}]"
            );
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn envoy_bounds_are_bucket_edges_so_le_counts_are_exact() {
        let values = [
            0, 1, 2, 5, 6, 10, 11, 25, 26, 250, 251, 1000, 1001, 3_600_000, 3_600_001,
        ];
        let s = snapshot(&values);
        let got = s.cumulative();
        for (i, bound) in ENVOY_BOUNDS.iter().enumerate() {
            let want = values.iter().filter(|&&v| v as f64 <= *bound).count() as u64;
            assert_eq!(got[i], want, "le={bound}");
        }
        assert_eq!(s.sum, values.iter().sum::<u64>());
    }

    #[test]
    fn quantiles_are_within_two_significant_digits() {
        let values: Vec<u64> = (1..=10_000).collect();
        let s = snapshot(&values);
        for p in QUANTILES {
            let want = (p / 100.0 * 10_000.0).max(1.0);
            let got = s.quantile(p).expect("non-empty");
            assert!(
                (got - want).abs() <= want * 0.1 + 1.0,
                "P{p}: {got} vs {want}"
            );
        }
        assert_eq!(snapshot(&[7, 7, 7]).quantile(50.0), Some(7.0));
        assert_eq!(snapshot(&[0, 0]).quantile(100.0), Some(0.0));
        assert_eq!(snapshot(&[]).quantile(50.0), None);
    }

    #[test]
    fn quantiles_print_without_floating_point_noise() {
        assert_eq!(format!("{}", significant(232.799_999_999_999_98)), "232.8");
        assert_eq!(format!("{}", significant(0.1 + 0.2)), "0.3");
        assert_eq!(format!("{}", significant(1_234_567.0)), "1234570");
        assert_eq!(significant(7.0), 7.0);
        // Every quantile of many shapes prints in at most 6 significant digits.
        for top in [3u64, 17, 233, 999, 4_321, 65_536, 1_000_003] {
            let values: Vec<u64> = (1..=top).step_by((top / 50).max(1) as usize).collect();
            let s = snapshot(&values);
            for p in QUANTILES {
                let shown = format!("{}", s.quantile(p).unwrap());
                let digits = shown.trim_start_matches(['0', '.']).replace('.', "");
                let digits = digits.trim_end_matches('0');
                assert!(digits.len() <= 6, "P{p} of 1..={top}: {shown}");
            }
        }
    }

    #[test]
    fn since_subtracts_an_earlier_snapshot() {
        let h = Histogram::default();
        h.record(3);
        let mut first = Snapshot::default();
        h.merge_into(&mut first);
        h.record(40);
        let mut second = Snapshot::default();
        h.merge_into(&mut second);
        let interval = second.since(&first);
        assert_eq!(interval.count(), 1);
        assert_eq!(interval.quantile(100.0), Some(40.0));
        assert!(first.since(&first).counts.is_empty());
    }

    #[test]
    fn values_are_exact_to_100_and_within_5_percent_above() {
        let s = snapshot(&[0, 7, 7, 100, 101, 109, 110, 25_000, 20_000_000_000]);
        let values: Vec<(u64, u64)> = s.values().collect();
        assert_eq!(
            values,
            [
                (0, 1),
                (7, 2),
                (100, 1),
                (105, 3),
                (24_500, 1),
                (10_000_000_000, 1)
            ]
        );
        assert_eq!(Snapshot::default().values().count(), 0);
    }
}
