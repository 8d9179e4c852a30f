//! Generational handles: slab slots are reused, so a handle carries (slot, generation) and a
//! late event or timer for a dead connection is dropped instead of reaching its successor.
//!
//! A `mio::Token` packs a handle with its kind: `[kind: 3 bits][generation: 29 bits][slot: 32 bits]`.

use mio::Token;
use slab::Slab;

/// A handle to a slab entry that is only valid while the entry it was made for lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Id {
    slot: u32,
    generation: u32,
}

impl Id {
    /// The slab slot, for display in traces and logs.
    pub(crate) fn slot(self) -> u32 {
        self.slot
    }
}

const GENERATION_MASK: u32 = (1 << 29) - 1;

/// What a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A worker's listener socket (slot = listener index).
    Listener,
    /// A downstream (client) connection.
    Downstream,
    /// An upstream (origin) connection.
    Upstream,
    /// The worker's waker (drain and shutdown requests from the main thread).
    Waker,
    /// An accepted connection its listener filters are still looking at.
    Inspecting,
    /// The downstream connection of a TCP proxy session.
    TcpDownstream,
    /// The upstream connection of a TCP proxy session (the same slot as its downstream).
    TcpUpstream,
}

impl Kind {
    fn bits(self) -> usize {
        match self {
            Kind::Listener => 0,
            Kind::Downstream => 1,
            Kind::Upstream => 2,
            Kind::Waker => 3,
            Kind::Inspecting => 4,
            Kind::TcpDownstream => 5,
            Kind::TcpUpstream => 6,
        }
    }
}

/// Packs a kind and a handle into a poll token.
pub(crate) fn token(kind: Kind, id: Id) -> Token {
    Token(kind.bits() << 61 | (id.generation as usize) << 32 | id.slot as usize)
}

/// Splits a poll token back into its kind and handle.
pub(crate) fn untoken(token: Token) -> (Kind, Id) {
    let kind = match token.0 >> 61 {
        0 => Kind::Listener,
        1 => Kind::Downstream,
        2 => Kind::Upstream,
        4 => Kind::Inspecting,
        5 => Kind::TcpDownstream,
        6 => Kind::TcpUpstream,
        _ => Kind::Waker,
    };
    let id = Id {
        slot: token.0 as u32,
        generation: (token.0 >> 32) as u32 & GENERATION_MASK,
    };
    (kind, id)
}

/// A plain handle for things that are never reused (listeners, the waker).
pub(crate) fn fixed(slot: usize) -> Id {
    Id {
        slot: slot as u32,
        generation: 0,
    }
}

struct Entry<T> {
    generation: u32,
    value: T,
}

/// Entries an empty slab may keep room for; past that, emptying it frees its memory.
const RELEASE_ABOVE: usize = 1024;

/// A slab whose handles carry a generation.
pub(crate) struct GenSlab<T> {
    entries: Slab<Entry<T>>,
    next_generation: u32,
}

impl<T> GenSlab<T> {
    pub(crate) fn new() -> Self {
        GenSlab {
            entries: Slab::new(),
            next_generation: 0,
        }
    }

    /// Inserts a value built from its own handle (so it can register itself with that token).
    pub(crate) fn insert_with(&mut self, build: impl FnOnce(Id) -> T) -> Id {
        self.next_generation = (self.next_generation + 1) & GENERATION_MASK;
        let entry = self.entries.vacant_entry();
        let id = Id {
            slot: u32::try_from(entry.key()).expect("fewer than 2^32 entries"),
            generation: self.next_generation,
        };
        entry.insert(Entry {
            generation: id.generation,
            value: build(id),
        });
        id
    }

    pub(crate) fn get(&self, id: Id) -> Option<&T> {
        match self.entries.get(id.slot as usize) {
            Some(e) if e.generation == id.generation => Some(&e.value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, id: Id) -> Option<&mut T> {
        match self.entries.get_mut(id.slot as usize) {
            Some(e) if e.generation == id.generation => Some(&mut e.value),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, id: Id) -> Option<T> {
        self.get(id)?;
        let value = self.entries.remove(id.slot as usize).value;
        // A burst grew it and it is empty again: give the memory back (handles stay unique,
        // the generation counter lives on).
        if self.entries.is_empty() && self.entries.capacity() > RELEASE_ABOVE {
            self.entries = Slab::new();
        }
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn ids(&self) -> Vec<Id> {
        self.entries
            .iter()
            .map(|(slot, e)| Id {
                slot: slot as u32,
                generation: e.generation,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_miss_reused_slots() {
        let mut slab = GenSlab::new();
        let a = slab.insert_with(|_| "a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert_with(|_| "b");
        assert_eq!(a.slot, b.slot);
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.remove(a), None);
    }

    #[test]
    fn a_slab_emptied_after_a_burst_gives_its_memory_back() {
        let mut slab = GenSlab::new();
        let ids: Vec<Id> = (0..RELEASE_ABOVE * 2)
            .map(|i| slab.insert_with(|_| i))
            .collect();
        assert!(slab.entries.capacity() > RELEASE_ABOVE);
        for &id in &ids {
            assert!(slab.remove(id).is_some());
        }
        assert_eq!(slab.entries.capacity(), 0);
        // Handles from before still miss: the slot comes back with a new generation.
        let again = slab.insert_with(|_| 0);
        assert_eq!(again.slot, ids[0].slot);
        assert_eq!(slab.get(ids[0]), None);
        assert_eq!(slab.get(again), Some(&0));
        // A small slab keeps its room (no churn under steady load).
        let few: Vec<Id> = (0..10).map(|i| slab.insert_with(|_| i)).collect();
        slab.remove(again);
        for id in few {
            slab.remove(id);
        }
        assert!(slab.entries.capacity() > 0);
    }

    #[test]
    fn tokens_round_trip() {
        let mut slab = GenSlab::new();
        let id = slab.insert_with(|_| ());
        for kind in [
            Kind::Listener,
            Kind::Downstream,
            Kind::Upstream,
            Kind::Waker,
            Kind::Inspecting,
            Kind::TcpDownstream,
            Kind::TcpUpstream,
        ] {
            assert_eq!(untoken(token(kind, id)), (kind, id));
        }
    }
}
