//! Envoy's MAGLEV consistent hashing (Eisenbud et al., NSDI '16, section 3.4): a lookup table of
//! prime size that hosts fill by taking turns, each walking its own permutation of the slots.
//! Near-perfectly even (entry counts differ by at most one between equal hosts) and a pick is one
//! modulo; the price is a little more key movement than a ring when the host set changes.

use xxhash_rust::xxh64::xxh64;

/// A table slot nobody has claimed yet (host indices stay far below it).
const EMPTY: u32 = u32::MAX;

/// Envoy's MAGLEV (lookup table of prime size, xxHash64 offsets/skips, weighted as Envoy does).
#[derive(Debug, Clone)]
pub(crate) struct Maglev {
    /// Slot -> index into the hosts; 4 bytes a slot (256 KiB at the default 65537).
    table: Box<[u32]>,
}

/// One host's walk through the table while it is being filled.
struct Filler {
    host: u32,
    /// Where its permutation `offset + k * skip (mod size)` has got to, advanced one skip at a
    /// time (no multiplication to overflow) past claimed slots, its own included.
    slot: u64,
    skip: u64,
    weight: f64,
    /// The turn count (times the weight) at which it may claim its next slot.
    target: f64,
}

impl Maglev {
    /// `table_size` must be prime (Envoy default 65537; the caller validated it): a prime size
    /// makes every skip coprime to it, so each permutation visits every slot.
    pub(crate) fn new(hosts: &[(String, u32)], table_size: u64) -> Maglev {
        if hosts.is_empty() || table_size < 2 {
            return Maglev {
                table: Box::new([]),
            };
        }
        let total: u64 = hosts.iter().map(|(_, w)| u64::from((*w).max(1))).sum();
        let normalized = |w: u32| f64::from(w.max(1)) / total as f64;
        let max_weight = hosts
            .iter()
            .map(|(_, w)| normalized(*w))
            .fold(0.0, f64::max);

        // Envoy fills in key order, so the table does not depend on the order hosts arrive in
        // (the fill order decides who gets a contested slot).
        let mut order: Vec<usize> = (0..hosts.len()).collect();
        order.sort_by(|&a, &b| hosts[a].0.cmp(&hosts[b].0));
        let mut fillers: Vec<Filler> = (order.into_iter())
            .map(|i| {
                let key = hosts[i].0.as_bytes();
                Filler {
                    host: i as u32,
                    slot: xxh64(key, 0) % table_size,
                    skip: xxh64(key, 1) % (table_size - 1) + 1,
                    weight: normalized(hosts[i].1),
                    target: 0.0,
                }
            })
            .collect();

        let mut table = vec![EMPTY; table_size as usize];
        let mut filled = 0;
        // Weighting: a host of the heaviest weight takes a slot every turn, one of a third of
        // that weight every third turn (Envoy's target_weight_), until the table is full.
        let mut turn: u32 = 1;
        while filled < table.len() {
            for filler in &mut fillers {
                if filled == table.len() {
                    break;
                }
                if f64::from(turn) * filler.weight < filler.target {
                    continue;
                }
                filler.target += max_weight;
                while table[filler.slot as usize] != EMPTY {
                    filler.slot = (filler.slot + filler.skip) % table_size;
                }
                table[filler.slot as usize] = filler.host;
                filled += 1;
            }
            turn += 1;
        }
        Maglev {
            table: table.into_boxed_slice(),
        }
    }

    /// The index into `hosts` for a request hash (`None` when there are no hosts).
    pub(crate) fn pick(&self, hash: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        Some(self.table[(hash % self.table.len() as u64) as usize] as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::super::hashing_tests::{hosts, keys, owners, shares};
    use super::*;

    const SIZE: u64 = 65537;

    fn entries(lb: &Maglev, n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        lb.table.iter().for_each(|&i| counts[i as usize] += 1);
        counts
    }

    #[test]
    fn empty_and_single_host() {
        let empty = Maglev::new(&[], SIZE);
        assert_eq!([0, 1, u64::MAX].map(|h| empty.pick(h)), [None; 3]);
        let one = Maglev::new(&hosts(1), SIZE);
        assert!(keys().iter().all(|&k| one.pick(k) == Some(0)));
    }

    #[test]
    fn table_entries_follow_envoy() {
        // Equal hosts differ by at most one entry.
        let equal = entries(&Maglev::new(&hosts(10), SIZE), 10);
        assert!(equal.iter().all(|&e| e == 6553 || e == 6554), "{equal:?}");
        // Envoy's docs: weights 1 and 2 get 21,846 and 43,691 of 65,537 entries.
        let weighted = [
            ("10.0.0.1:80".to_string(), 1),
            ("10.0.0.2:80".to_string(), 2),
        ];
        assert_eq!(entries(&Maglev::new(&weighted, SIZE), 2), [21_846, 43_691]);
        // A tie takes its turn (Envoy's `<`): in 3 slots, the lighter host, first in key order,
        // claims turns 1 and 2 and the table is full before the heavier host's second turn.
        assert_eq!(entries(&Maglev::new(&weighted, 3), 2), [2, 1]);
        // More hosts than slots: the table fills in the first turn, some hosts get nothing.
        let many = entries(&Maglev::new(&hosts(20), 13), 20);
        assert_eq!(
            (many.iter().sum::<usize>(), many.iter().max()),
            (13, Some(&1))
        );
    }

    #[test]
    fn each_host_starts_at_its_offset_and_steps_by_its_skip() {
        // Turn 1 claims each host's offset (seed 0), turn 2 one skip (seed 1) further; with 50
        // hosts in 65537 slots none of these 100 slots collide.
        let fifty = hosts(50);
        let lb = Maglev::new(&fifty, SIZE);
        for (i, (key, _)) in fifty.iter().enumerate() {
            let offset = xxh64(key.as_bytes(), 0) % SIZE;
            let skip = xxh64(key.as_bytes(), 1) % (SIZE - 1) + 1;
            assert_eq!(lb.pick(offset), Some(i), "{key}");
            assert_eq!(lb.pick((offset + skip) % SIZE), Some(i), "{key}");
        }
    }

    #[test]
    fn spread_is_near_perfect() {
        // The table is exact; what is left is sampling noise (about 1 % per host).
        let s = shares(&Maglev::new(&hosts(10), SIZE), 10, &keys());
        assert!(s.iter().all(|s| (s - 0.1).abs() < 0.005), "{s:?}");
    }

    #[test]
    fn weights_one_to_two() {
        let weighted = [
            ("10.0.0.1:80".to_string(), 1),
            ("10.0.0.2:80".to_string(), 2),
        ];
        let s = shares(&Maglev::new(&weighted, SIZE), 2, &keys());
        assert!((1.9..2.1).contains(&(s[1] / s[0])), "{s:?}");
    }

    #[test]
    fn adding_a_host() {
        let (ten, eleven, keys) = (hosts(10), hosts(11), keys());
        let before = owners(&Maglev::new(&ten, SIZE), &ten, &keys);
        let after = owners(&Maglev::new(&eleven, SIZE), &eleven, &keys);
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let to_new = after.iter().filter(|&&a| a == eleven[10].0).count();
        let n = keys.len() as f64;
        assert!(
            (0.5 / 11.0..1.6 / 11.0).contains(&(moved as f64 / n)),
            "{moved}"
        );
        assert!(
            (0.5 / 11.0..1.6 / 11.0).contains(&(to_new as f64 / n)),
            "{to_new}"
        );
    }

    #[test]
    fn removing_a_host() {
        let (ten, keys) = (hosts(10), keys());
        let nine: Vec<(String, u32)> = ten[..3].iter().chain(&ten[4..]).cloned().collect();
        let removed = ten[3].0.as_str();
        let before = owners(&Maglev::new(&ten, SIZE), &ten, &keys);
        let after = owners(&Maglev::new(&nine, SIZE), &nine, &keys);
        let on_removed = before.iter().filter(|&&b| b == removed).count();
        let others_moved = (before.iter().zip(&after))
            .filter(|(b, a)| b != a && **b != removed)
            .count();
        // Envoy's docs: Maglev moves about double the keys ring hash would, i.e. at most as many
        // survivors' keys as the removed host had. With 65537 slots for 10 hosts it is far
        // fewer (the fill order only changes for contested slots); allow a tenth.
        assert!(
            others_moved < on_removed / 10,
            "{others_moved} {on_removed}"
        );
    }

    #[test]
    fn deterministic_and_order_independent() {
        let ten = hosts(10);
        let (a, b) = (Maglev::new(&ten, SIZE), Maglev::new(&ten, SIZE));
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            let h = rng.u64(..);
            assert_eq!(a.pick(h), b.pick(h));
        }
        // Fill order only decides contested slots (a few dozen here), so compare every slot.
        let reversed: Vec<(String, u32)> = ten.iter().rev().cloned().collect();
        let c = Maglev::new(&reversed, SIZE);
        for slot in 0..SIZE {
            let name =
                |lb: &Maglev, hosts: &[(String, u32)]| hosts[lb.pick(slot).unwrap()].0.clone();
            assert_eq!(name(&a, &ten), name(&c, &reversed), "slot {slot}");
        }
    }
}
