//! A hierarchical timer wheel: O(1) insert and cancel, next deadline in O(levels).
//!
//! Every request arms and cancels a few timers (route timeout, request timeout, idle), so both
//! operations must be cheap and must not leave garbage behind. The wheel has six levels of 64
//! slots; a slot of level `l` spans `64^l` ticks of 1 ms, so the wheel reaches 64^6 ms (about
//! two years). A timer sits in the lowest level whose range still separates its deadline from
//! the current tick; when time reaches a higher-level slot its timers cascade down. Within a
//! level, slots at or after the current one are in deadline order, so the next deadline is the
//! earliest of six candidates, one per level (a scan of six bitmaps). It is not always in the
//! lowest occupied level: `expire` may move time to the very start of a higher-level slot
//! without cascading it, and timers inserted after that land in lower levels although they are
//! later. Deadlines are rounded up to the next tick: a timer never fires early.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use slab::Slab;

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const MAX_TICK: u64 = (1 << (SLOT_BITS as u64 * LEVELS as u64)) - 1;
const NIL: u32 = u32::MAX;

/// Names an armed timer; stale ids (already fired or cancelled) are ignored by `cancel`. The
/// generation is never zero, so `Option<TimerId>` (four per client connection) takes 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerId {
    key: u32,
    generation: NonZeroU32,
}

struct Node<K> {
    tick: u64,
    generation: NonZeroU32,
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
    next_generation: NonZeroU32,
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
            next_generation: NonZeroU32::MIN,
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
        self.next_generation = self
            .next_generation
            .checked_add(1)
            .unwrap_or(NonZeroU32::MIN);
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

    /// The next slot of one level: (slot, first tick the slot covers).
    fn level_next(&self, level: usize) -> Option<(usize, u64)> {
        let l = &self.levels[level];
        if l.occupied == 0 {
            return None;
        }
        let shift = level as u32 * SLOT_BITS;
        let current = ((self.elapsed >> shift) & (SLOTS as u64 - 1)) as u32;
        // Timers of a level never lie before its current slot (see module doc).
        let ahead = l.occupied >> current;
        if ahead == 0 {
            return None;
        }
        let slot = current + ahead.trailing_zeros();
        let range_mask = !((1u64 << (shift + SLOT_BITS)) - 1);
        let start = (self.elapsed & range_mask) + (u64::from(slot) << shift);
        Some((slot as usize, start.max(self.elapsed)))
    }

    /// The slot that starts first over all levels: (level, slot, first tick it covers). Not
    /// simply the lowest occupied level's: a higher-level slot that time reached without
    /// cascading it (see module doc) starts at `elapsed`, before any lower-level one.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        let mut best: Option<(usize, usize, u64)> = None;
        for level in 0..LEVELS {
            if let Some((slot, start)) = self.level_next(level)
                && best.is_none_or(|(_, _, b)| start < b)
            {
                best = Some((level, slot, start));
            }
        }
        best
    }

    /// The earliest deadline: the minimum over the levels of their next slot's earliest tick.
    fn next_tick(&self) -> Option<u64> {
        let mut earliest: Option<u64> = None;
        for level in 0..LEVELS {
            let Some((slot, start)) = self.level_next(level) else {
                continue;
            };
            let tick = if level == 0 {
                start
            } else {
                // A higher-level slot cascades at its start; the exact earliest tick in it is
                // close.
                let mut cursor = self.levels[level].heads[slot];
                let mut min = u64::MAX;
                let mut seen = 0;
                while cursor != NIL && seen < 8 {
                    let node = &self.nodes[cursor as usize];
                    min = min.min(node.tick);
                    cursor = node.next;
                    seen += 1;
                }
                if cursor == NIL { min } else { start }
            };
            earliest = Some(earliest.map_or(tick, |e| e.min(tick)));
        }
        earliest
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

    /// Review regression: `expire` at the tick just before a higher-level slot starts moved
    /// `elapsed` into that slot's range without cascading it, and a later timer inserted in a
    /// lower level was then found first: the earlier timer fired seconds late.
    #[test]
    fn a_slot_reached_between_rounds_is_not_overtaken_by_later_timers() {
        let t0 = crate::worker::clock();
        let mut w = TimerWheel::new(t0);
        w.insert(t0 + ms(4_106), 'a');
        let mut fired = Vec::new();
        w.expire(t0 + ms(4_095), &mut fired);
        assert!(fired.is_empty());
        w.insert(t0 + ms(8_096), 'b');
        assert_eq!(w.next_timeout(t0 + ms(4_095)), Some(ms(11)));
        w.expire(t0 + ms(4_106), &mut fired);
        assert_eq!(fired, vec!['a']);
    }

    /// Random inserts, cancels and expiries against a plain list: every timer fires in the
    /// first `expire` at or after its deadline tick, never before, and `next_timeout` never
    /// sleeps past the earliest one.
    #[test]
    fn matches_a_reference_model() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..40 {
            let t0 = crate::worker::clock();
            let mut w = TimerWheel::new(t0);
            let mut live: Vec<(TimerId, u64, u32)> = Vec::new();
            let mut now = 0u64;
            let mut fired = Vec::new();
            for key in 0..3_000u32 {
                match rng.u8(..10) {
                    0..=4 => {
                        let after = match rng.u8(..4) {
                            0 => rng.u64(..70),
                            1 => rng.u64(..5_000),
                            2 => rng.u64(..300_000),
                            _ => rng.u64(..20_000_000),
                        };
                        let id = w.insert(t0 + ms(now + after), key);
                        // A deadline in a tick already expired fires at the next `expire`.
                        live.push((id, (now + after).max(w.elapsed), key));
                    }
                    5 if !live.is_empty() => {
                        let (id, _, _) = live.swap_remove(rng.usize(..live.len()));
                        assert!(w.cancel(id));
                    }
                    _ => {
                        let earliest = live.iter().map(|&(_, d, _)| d).min();
                        let step = match (rng.bool(), w.next_timeout(t0 + ms(now))) {
                            // Sleep as the loop does, or wake early for I/O.
                            (true, Some(t)) => {
                                let t = t.as_millis() as u64;
                                assert!(now + t <= earliest.unwrap(), "sleeps past a timer");
                                t.max(1)
                            }
                            _ => rng.u64(1..200),
                        };
                        now += step;
                        w.expire(t0 + ms(now), &mut fired);
                        let mut got = std::mem::take(&mut fired);
                        got.sort_unstable();
                        let mut want: Vec<u32> = live
                            .iter()
                            .filter(|&&(_, d, _)| d <= now)
                            .map(|&(_, _, k)| k)
                            .collect();
                        want.sort_unstable();
                        assert_eq!(got, want, "at {now} ms");
                        live.retain(|&(_, d, _)| d > now);
                    }
                }
            }
            assert_eq!(w.len(), live.len());
        }
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
