//! A hierarchical timer wheel: O(1) insert and cancel, next deadline in O(levels).
//!
//! Every request arms and cancels a few timers (route timeout, request timeout, idle), so both
//! operations must be cheap and must not leave garbage behind. The wheel has six levels of 64
//! slots; a slot of level `l` spans `64^l` ticks of 1 ms, so the wheel reaches 64^6 ms (about
//! two years). A timer sits in the lowest level whose range still separates its deadline from
//! the current tick; when time reaches a higher-level slot its timers cascade down. Because a
//! level-`l` timer always differs from "now" in a bit above level `l-1`'s range, the lowest
//! occupied level always holds the earliest deadline, which makes `next_deadline` a scan of six
//! bitmaps. Deadlines are rounded up to the next tick: a timer never fires early.

use std::time::{Duration, Instant};

use slab::Slab;

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const MAX_TICK: u64 = (1 << (SLOT_BITS as u64 * LEVELS as u64)) - 1;
const NIL: u32 = u32::MAX;

/// Names an armed timer; stale ids (already fired or cancelled) are ignored by `cancel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerId {
    key: u32,
    generation: u32,
}

struct Node<K> {
    tick: u64,
    generation: u32,
    level: u8,
    slot: u8,
    prev: u32,
    next: u32,
    key: K,
}

struct Level {
    occupied: u64,
    heads: [u32; SLOTS],
}

/// See the module documentation.
pub(crate) struct TimerWheel<K> {
    origin: Instant,
    /// Every timer with a tick below this has fired.
    elapsed: u64,
    levels: [Level; LEVELS],
    nodes: Slab<Node<K>>,
    next_generation: u32,
}

impl<K: Copy> TimerWheel<K> {
    /// A wheel whose tick 0 is `origin`.
    pub(crate) fn new(origin: Instant) -> Self {
        TimerWheel {
            origin,
            elapsed: 0,
            levels: std::array::from_fn(|_| Level {
                occupied: 0,
                heads: [NIL; SLOTS],
            }),
            nodes: Slab::new(),
            next_generation: 0,
        }
    }

    /// Number of armed timers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Arms a timer that fires at or after `deadline` with `key`.
    pub(crate) fn insert(&mut self, deadline: Instant, key: K) -> TimerId {
        let tick = self.tick_ceil(deadline).max(self.elapsed);
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let index = self.nodes.insert(Node {
            tick,
            generation,
            level: 0,
            slot: 0,
            prev: NIL,
            next: NIL,
            key,
        });
        let index = u32::try_from(index).expect("fewer than 2^32 timers");
        self.link(index);
        TimerId {
            key: index,
            generation,
        }
    }

    /// Disarms a timer; returns false if it had already fired or been cancelled.
    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        match self.nodes.get(id.key as usize) {
            Some(node) if node.generation == id.generation => {
                self.unlink(id.key);
                self.nodes.remove(id.key as usize);
                true
            }
            _ => false,
        }
    }

    /// How long until the earliest timer is due, `None` when no timer is armed.
    pub(crate) fn next_timeout(&self, now: Instant) -> Option<Duration> {
        let tick = self.next_tick()?;
        let at = self.origin + Duration::from_millis(tick);
        Some(at.saturating_duration_since(now))
    }

    /// Removes every timer due at `now` and appends its key to `fired` (timers due in the same
    /// call come in no particular order).
    pub(crate) fn expire(&mut self, now: Instant, fired: &mut Vec<K>) {
        let now_tick = self.tick_floor(now);
        while let Some((level, slot, start)) = self.next_slot() {
            if start > now_tick {
                break;
            }
            self.elapsed = self.elapsed.max(start);
            // Take the whole slot, then fire or cascade each timer in it.
            let mut cursor = self.levels[level].heads[slot];
            self.levels[level].heads[slot] = NIL;
            self.levels[level].occupied &= !(1u64 << slot);
            while cursor != NIL {
                let node = &mut self.nodes[cursor as usize];
                let next = node.next;
                if node.tick <= now_tick {
                    let node = self.nodes.remove(cursor as usize);
                    fired.push(node.key);
                } else {
                    self.link(cursor);
                }
                cursor = next;
            }
        }
        self.elapsed = self.elapsed.max(now_tick + 1).min(MAX_TICK);
    }

    fn tick_floor(&self, at: Instant) -> u64 {
        let ms = at.saturating_duration_since(self.origin).as_millis();
        u64::try_from(ms).unwrap_or(MAX_TICK).min(MAX_TICK)
    }

    fn tick_ceil(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        let ms = since.as_millis() + u128::from(!since.subsec_nanos().is_multiple_of(1_000_000));
        u64::try_from(ms).unwrap_or(MAX_TICK).min(MAX_TICK)
    }

    /// The level a tick belongs in, relative to `elapsed`.
    fn level_for(&self, tick: u64) -> usize {
        let masked = (self.elapsed ^ tick) | (SLOTS as u64 - 1);
        let significant = 63 - masked.leading_zeros() as usize;
        (significant / SLOT_BITS as usize).min(LEVELS - 1)
    }

    fn link(&mut self, index: u32) {
        let tick = self.nodes[index as usize].tick.max(self.elapsed);
        let level = self.level_for(tick);
        let slot = ((tick >> (level as u32 * SLOT_BITS)) & (SLOTS as u64 - 1)) as usize;
        let head = self.levels[level].heads[slot];
        {
            let node = &mut self.nodes[index as usize];
            node.level = level as u8;
            node.slot = slot as u8;
            node.prev = NIL;
            node.next = head;
        }
        if head != NIL {
            self.nodes[head as usize].prev = index;
        }
        self.levels[level].heads[slot] = index;
        self.levels[level].occupied |= 1u64 << slot;
    }

    fn unlink(&mut self, index: u32) {
        let (level, slot, prev, next) = {
            let n = &self.nodes[index as usize];
            (n.level as usize, n.slot as usize, n.prev, n.next)
        };
        if prev == NIL {
            self.levels[level].heads[slot] = next;
            if next == NIL {
                self.levels[level].occupied &= !(1u64 << slot);
            }
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
    }

    /// The lowest occupied level's next slot: (level, slot, first tick the slot covers).
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        for (level, l) in self.levels.iter().enumerate() {
            if l.occupied == 0 {
                continue;
            }
            let shift = level as u32 * SLOT_BITS;
            let current = ((self.elapsed >> shift) & (SLOTS as u64 - 1)) as u32;
            // Timers of this level never lie before the current slot (see module doc).
            let ahead = l.occupied >> current;
            if ahead == 0 {
                continue;
            }
            let slot = current + ahead.trailing_zeros();
            let range_mask = !((1u64 << (shift + SLOT_BITS)) - 1);
            let start = (self.elapsed & range_mask) + (u64::from(slot) << shift);
            return Some((level, slot as usize, start.max(self.elapsed)));
        }
        None
    }

    fn next_tick(&self) -> Option<u64> {
        let (level, slot, start) = self.next_slot()?;
        if level == 0 {
            return Some(start);
        }
        // A higher-level slot cascades at its start; the exact earliest tick in it is close.
        let mut cursor = self.levels[level].heads[slot];
        let mut earliest = u64::MAX;
        let mut seen = 0;
        while cursor != NIL && seen < 8 {
            let node = &self.nodes[cursor as usize];
            earliest = earliest.min(node.tick);
            cursor = node.next;
            seen += 1;
        }
        Some(if cursor == NIL { earliest } else { start })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fires_in_order_never_early() {
        let t0 = crate::worker::clock();
        let mut w = TimerWheel::new(t0);
        for d in [5u64, 1, 300, 70, 4_100, 64, 65, 4_096, 262_144 + 3] {
            w.insert(t0 + ms(d), d);
        }
        let mut fired = Vec::new();
        for now in (0..270_000u64).step_by(7) {
            let before = fired.len();
            w.expire(t0 + ms(now), &mut fired);
            fired[before..].sort_unstable();
            for &d in &fired[before..] {
                assert!(d <= now, "timer {d} fired early at {now}");
                assert!(now - d < 7, "timer {d} fired late at {now}");
            }
        }
        assert_eq!(fired, vec![1, 5, 64, 65, 70, 300, 4_096, 4_100, 262_147]);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn cancel_is_exact_and_stale_ids_are_ignored() {
        let t0 = crate::worker::clock();
        let mut w = TimerWheel::new(t0);
        let a = w.insert(t0 + ms(10), 'a');
        let b = w.insert(t0 + ms(10), 'b');
        let c = w.insert(t0 + ms(10_000), 'c');
        assert!(w.cancel(b));
        assert!(!w.cancel(b));
        assert!(w.cancel(c));
        let mut fired = Vec::new();
        w.expire(t0 + ms(20_000), &mut fired);
        assert_eq!(fired, vec!['a']);
        assert!(!w.cancel(a), "fired timers cannot be cancelled");
        // A new timer reusing a's slab slot is not cancelled by a's stale id.
        let d = w.insert(t0 + ms(30_000), 'd');
        assert!(!w.cancel(a));
        assert!(w.cancel(d));
    }

    #[test]
    fn next_timeout_tracks_the_earliest() {
        let t0 = crate::worker::clock();
        let mut w = TimerWheel::new(t0);
        assert_eq!(w.next_timeout(t0), None);
        w.insert(t0 + ms(15_000), 1);
        let far = w.next_timeout(t0).unwrap();
        assert!(far <= ms(15_000) && far > ms(0));
        w.insert(t0 + ms(3), 2);
        assert_eq!(w.next_timeout(t0), Some(ms(3)));
        let mut fired = Vec::new();
        w.expire(t0 + ms(3), &mut fired);
        assert_eq!(fired, vec![2]);
        // Repeatedly sleeping for next_timeout reaches the far timer without firing early.
        let mut now = t0 + ms(3);
        let mut wakes = 0;
        while fired.len() < 2 {
            now += w.next_timeout(now).unwrap().max(ms(1));
            w.expire(now, &mut fired);
            wakes += 1;
            assert!(wakes < 20, "too many wake-ups to reach a 15 s timer");
        }
        assert!(now >= t0 + ms(15_000) && now < t0 + ms(15_002));
    }

    #[test]
    fn many_timers_with_cancellation_keep_no_garbage() {
        let t0 = crate::worker::clock();
        let mut w = TimerWheel::new(t0);
        let mut ids = Vec::new();
        for i in 0..10_000u64 {
            ids.push(w.insert(t0 + ms(15_000 + i % 977), i));
        }
        for id in ids.drain(..).step_by(2) {
            assert!(w.cancel(id));
        }
        assert_eq!(w.len(), 5_000);
        let mut fired = Vec::new();
        w.expire(t0 + ms(20_000), &mut fired);
        assert_eq!(fired.len(), 5_000);
        assert_eq!(w.len(), 0);
    }
}
