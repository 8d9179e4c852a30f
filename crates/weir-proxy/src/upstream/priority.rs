//! How a cluster's load spreads over its priority levels, as Envoy spreads it: each level is
//! offered load in proportion to its availability (its healthy share times the
//! overprovisioning factor, capped at 100 %), first to healthy hosts then to degraded ones;
//! a level below the panic threshold picks among all its hosts; when every level is in
//! panic, load follows host counts. Pure arithmetic, no hosts: `balancer.rs` applies it.

use weir_config::LoadSpread;

/// What one level holds, counted for the spread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LevelHealth {
    /// Every host of the level, excluded (draining) ones too: total panic spreads by these.
    pub(crate) all: u64,
    /// Hosts not excluded, and of them the healthy and the degraded ones.
    pub(crate) counted: u64,
    pub(crate) healthy: u64,
    pub(crate) degraded: u64,
    /// The same three summed as weights (`weighted_priority_health`).
    pub(crate) counted_weight: u64,
    pub(crate) healthy_weight: u64,
    pub(crate) degraded_weight: u64,
}

/// A level's availability in percent (each 0..=100).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Availability {
    pub(crate) healthy: u32,
    pub(crate) degraded: u32,
}

impl Availability {
    /// A level's availability: its healthy (and degraded) share times the factor, capped.
    pub(crate) fn of(level: &LevelHealth, spread: LoadSpread) -> Availability {
        let (healthy, degraded, total) = match spread.weighted_priority_health {
            true => (
                level.healthy_weight,
                level.degraded_weight,
                level.counted_weight,
            ),
            false => (level.healthy, level.degraded, level.counted),
        };
        if total == 0 {
            return Availability::default();
        }
        let factor = u64::from(spread.overprovisioning_factor);
        let share = |n: u64| (factor * n / total).min(100) as u32;
        Availability {
            healthy: share(healthy),
            degraded: share(degraded),
        }
    }
}

/// Percent of requests per level, to its healthy and to its degraded hosts; the whole sums
/// to 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PriorityLoad {
    pub(crate) healthy: Vec<u32>,
    pub(crate) degraded: Vec<u32>,
}

/// Which of a level's hosts a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Healthy,
    Degraded,
}

impl PriorityLoad {
    fn zero(levels: usize) -> PriorityLoad {
        PriorityLoad {
            healthy: vec![0; levels],
            degraded: vec![0; levels],
        }
    }

    /// The level and source for a request drawn as `draw` (a hash or a random number).
    pub(crate) fn choose(&self, draw: u64) -> (usize, Source) {
        let point = (draw % 100) as u32 + 1;
        let mut sum = 0;
        for (level, &load) in self.healthy.iter().enumerate() {
            sum += load;
            if point <= sum {
                return (level, Source::Healthy);
            }
        }
        for (level, &load) in self.degraded.iter().enumerate() {
            sum += load;
            if point <= sum {
                return (level, Source::Degraded);
            }
        }
        (0, Source::Healthy)
    }

    /// Load in proportion to availability, levels in order, healthy before degraded; what
    /// rounding leaves goes to the first level that has healthy (else degraded) hosts.
    /// `None` when nothing is available.
    pub(crate) fn distribute(availability: &[Availability]) -> Option<PriorityLoad> {
        let total: u32 = availability.iter().map(|a| a.healthy + a.degraded).sum();
        let total = total.min(100);
        if total == 0 {
            return None;
        }
        let mut load = PriorityLoad::zero(availability.len());
        let mut left = 100;
        for (i, a) in availability.iter().enumerate() {
            load.healthy[i] = left.min(a.healthy * 100 / total);
            left -= load.healthy[i];
        }
        for (i, a) in availability.iter().enumerate() {
            load.degraded[i] = left.min(a.degraded * 100 / total);
            left -= load.degraded[i];
        }
        if left > 0 {
            match availability.iter().position(|a| a.healthy > 0) {
                Some(i) => load.healthy[i] += left,
                None => {
                    let i = availability.iter().position(|a| a.degraded > 0)?;
                    load.degraded[i] += left;
                }
            }
        }
        Some(load)
    }

    /// In total panic: load by each level's share of all hosts.
    fn by_host_count(levels: &[LevelHealth]) -> PriorityLoad {
        let mut load = PriorityLoad::zero(levels.len());
        let all: u64 = levels.iter().map(|l| l.all).sum();
        let Some(first) = levels.iter().position(|l| l.all > 0) else {
            load.healthy[0] = 100;
            return load;
        };
        let mut left = 100;
        for (i, level) in levels.iter().enumerate() {
            load.healthy[i] = (100 * level.all / all) as u32;
            left -= load.healthy[i];
        }
        load.healthy[first] += left;
        load
    }
}

/// The spread of one cluster's levels: the load, and which levels are in panic.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spread {
    pub(crate) load: PriorityLoad,
    pub(crate) panic: Vec<bool>,
    /// Each level's availability, kept for retries that leave levels out.
    pub(crate) availability: Vec<Availability>,
}

impl Spread {
    /// `levels` must not be empty. `panic_threshold` is `healthy_panic_threshold` in percent.
    pub(crate) fn new(levels: &[LevelHealth], spread: LoadSpread, panic_threshold: f64) -> Spread {
        let availability: Vec<Availability> =
            levels.iter().map(|l| Availability::of(l, spread)).collect();
        let total = availability
            .iter()
            .map(|a| a.healthy + a.degraded)
            .sum::<u32>()
            .min(100);
        let load = PriorityLoad::distribute(&availability);
        let mut load = load.unwrap_or_else(|| PriorityLoad::zero(levels.len()));
        if panic_threshold <= 0.0 && total == 0 {
            // Panic is off and nothing is available: level 0 takes the load and finds no host.
            load.healthy[0] = 100;
            let panic = vec![false; levels.len()];
            return Spread {
                load,
                panic,
                availability,
            };
        }
        // A fully available cluster is never in panic, however thin one level is.
        let panic: Vec<bool> = levels
            .iter()
            .map(|l| total < 100 && in_panic(l, panic_threshold))
            .collect();
        if panic.iter().all(|&p| p) {
            load = PriorityLoad::by_host_count(levels);
        }
        Spread {
            load,
            panic,
            availability,
        }
    }

    /// The load with the levels in `tried` left out (`previous_priorities`), `None` when that
    /// leaves nothing available (the usual load applies then).
    pub(crate) fn without(&self, tried: impl Fn(usize) -> bool) -> Option<PriorityLoad> {
        let left: Vec<Availability> = (self.availability.iter().enumerate())
            .map(|(i, a)| {
                if tried(i) {
                    Availability::default()
                } else {
                    *a
                }
            })
            .collect();
        PriorityLoad::distribute(&left)
    }
}

/// A level is in panic when its healthy and degraded hosts are fewer than the threshold's
/// share of its hosts (an empty level is).
fn in_panic(level: &LevelHealth, threshold: f64) -> bool {
    let available = match level.counted {
        0 => 0.0,
        n => 100.0 * (level.healthy + level.degraded) as f64 / n as f64,
    };
    available < threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(all: u64, healthy: u64, degraded: u64) -> LevelHealth {
        LevelHealth {
            all,
            counted: all,
            healthy,
            degraded,
            counted_weight: all,
            healthy_weight: healthy,
            degraded_weight: degraded,
        }
    }

    fn spread(levels: &[LevelHealth]) -> Spread {
        Spread::new(levels, LoadSpread::default(), 50.0)
    }

    #[test]
    fn a_healthy_first_level_takes_everything() {
        let s = spread(&[level(4, 4, 0), level(4, 4, 0)]);
        assert_eq!(s.load.healthy, [100, 0]);
        assert_eq!(s.panic, [false, false]);
    }

    #[test]
    fn overprovisioning_keeps_load_until_health_drops_below_a_share() {
        // 3 of 4 healthy: 75 % × 1.4 = 105 % → still all of it.
        assert_eq!(
            spread(&[level(4, 3, 0), level(2, 2, 0)]).load.healthy,
            [100, 0]
        );
        // 2 of 4: 70 % to level 0, the rest to level 1.
        let s = spread(&[level(4, 2, 0), level(2, 2, 0)]);
        assert_eq!(s.load.healthy, [70, 30]);
        assert_eq!(s.panic, [false, false], "fully available overall");
    }

    #[test]
    fn envoy_worked_example_with_degraded_hosts() {
        // Envoy's example: health 10/20/10 %, degraded 20/10/0 % → 16/28/14 healthy and
        // 28/14/0 degraded (rounding's 2 % to the first healthy level).
        let availability = [
            Availability {
                healthy: 10,
                degraded: 20,
            },
            Availability {
                healthy: 20,
                degraded: 10,
            },
            Availability {
                healthy: 10,
                degraded: 0,
            },
        ];
        let load = PriorityLoad::distribute(&availability).unwrap();
        assert_eq!(load.healthy, [16, 28, 14]);
        assert_eq!(load.degraded, [28, 14, 0]);
    }

    #[test]
    fn degraded_hosts_take_what_healthy_ones_cannot() {
        // One level: 1 healthy, 1 degraded of 2 → 70 % healthy, 30 % degraded.
        let s = spread(&[level(2, 1, 1)]);
        assert_eq!((s.load.healthy[0], s.load.degraded[0]), (70, 30));
        assert_eq!(s.load.choose(69), (0, Source::Healthy));
        assert_eq!(s.load.choose(70), (0, Source::Degraded));
    }

    #[test]
    fn a_thin_level_panics_only_when_the_cluster_is_short() {
        // Level 0: 1 of 4 healthy (35 %), level 1: 1 of 2 (70 %): 105 % overall, no panic.
        let s = spread(&[level(4, 1, 0), level(2, 1, 0)]);
        assert_eq!(s.panic, [false, false]);
        // Level 1 smaller: 35 % + 14 % < 100 %: level 0 (25 % healthy) panics, level 1
        // (1 of 10) too: total panic, load by host count (4 and 10 of 14).
        let s = spread(&[level(4, 1, 0), level(10, 1, 0)]);
        assert_eq!(s.panic, [true, true]);
        assert_eq!(s.load.healthy, [29, 71]);
        // Only level 0 thin (20 % healthy): it panics, load still by availability (28 %
        // and 70 % of 98 %, rounding's 1 % to level 0).
        let s = spread(&[level(10, 2, 0), level(10, 5, 0)]);
        assert_eq!(s.panic, [true, false]);
        assert_eq!(s.load.healthy, [29, 71]);
    }

    #[test]
    fn no_panic_threshold_and_no_host_sends_load_nowhere_in_particular() {
        let s = Spread::new(&[level(2, 0, 0)], LoadSpread::default(), 0.0);
        assert_eq!(s.load.healthy, [100]);
        assert_eq!(s.panic, [false]);
    }

    #[test]
    fn weighted_priority_health_counts_weights() {
        let mut l = level(2, 1, 0);
        (l.counted_weight, l.healthy_weight) = (10, 1);
        let weighted = LoadSpread {
            weighted_priority_health: true,
            ..LoadSpread::default()
        };
        let s = Spread::new(&[l, level(1, 1, 0)], weighted, 50.0);
        assert_eq!(s.load.healthy, [14, 86]);
    }

    #[test]
    fn a_retry_leaves_tried_levels_out_until_none_is_left() {
        let s = spread(&[level(4, 4, 0), level(4, 4, 0), level(4, 0, 0)]);
        assert_eq!(s.without(|i| i == 0).unwrap().healthy, [0, 100, 0]);
        assert_eq!(s.without(|i| i < 2), None);
    }
}
