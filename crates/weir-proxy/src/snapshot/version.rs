//! A runtime's versions across reloads (a listener's, a chain's).
//!
//! ```text
//!   first ──reload──▶ next ──reload──▶ next …      a holder on an older version moves to the
//!     │                                            newest when it is ready (one atomic load
//!     └──────────────reload──▶ retired             when nothing changed); a retired lineage
//!                                                  has no newest: its holders finish and close
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The generation of a lineage whose runtime a reload replaced by one its holders cannot
/// move to (a chain whose filters or TLS changed): they finish on what they have.
const RETIRED: u64 = u64::MAX;

/// A runtime's place among its versions: the lineage they share names the newest, held
/// weakly, so a version lives only as long as a snapshot, a worker or a connection holds it
/// (a connection left on the first version keeps that one, not every version since).
#[derive(Debug)]
pub(super) struct Version<T> {
    lineage: Arc<Lineage<T>>,
    generation: u64,
}

#[derive(Debug)]
struct Lineage<T> {
    generation: AtomicU64,
    newest: Mutex<Weak<T>>,
    /// The config version whose reload retired it (0: none has).
    retired_by: AtomicU64,
}

impl<T> Version<T> {
    /// The first version of a new lineage.
    pub(super) fn first() -> Version<T> {
        Version {
            lineage: Arc::new(Lineage {
                generation: AtomicU64::new(0),
                newest: Mutex::new(Weak::new()),
                retired_by: AtomicU64::new(0),
            }),
            generation: 0,
        }
    }

    /// The place of the version after this one (published with [`Version::publish`]).
    pub(super) fn next(&self) -> Version<T> {
        Version {
            lineage: self.lineage.clone(),
            generation: self.generation + 1,
        }
    }

    /// Both are versions of one runtime.
    pub(super) fn same_lineage(&self, other: &Version<T>) -> bool {
        Arc::ptr_eq(&self.lineage, &other.lineage)
    }

    /// `newest` is its lineage's newest from now on (already so: nothing changes).
    pub(super) fn publish(newest: &Arc<T>, version: impl Fn(&T) -> &Version<T>) {
        let place = version(newest);
        let lineage = &place.lineage;
        *lineage.newest.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(newest);
        lineage
            .generation
            .store(place.generation, Ordering::Release);
    }

    /// No version comes after this lineage's (config version `by` dropped it): its holders
    /// finish on what they have.
    pub(super) fn retire(&self, by: u64) {
        *(self.lineage.newest.lock()).unwrap_or_else(|e| e.into_inner()) = Weak::new();
        self.lineage.retired_by.store(by, Ordering::Release);
        self.lineage.generation.store(RETIRED, Ordering::Release);
    }

    /// A reload retired this lineage.
    #[inline]
    pub(super) fn retired(&self) -> bool {
        self.lineage.generation.load(Ordering::Acquire) == RETIRED
    }

    /// The newest config version this lineage is part of, given `current` (the version in
    /// force) and `since` (the one that made this version): the one before the reload that
    /// retired it, or `current` (never less than `since`: a holder may meet a new version a
    /// moment before its number is stored).
    pub(super) fn config_version(&self, current: u64, since: u64) -> u64 {
        match self.lineage.retired_by.load(Ordering::Acquire) {
            0 => current.max(since),
            by => by - 1,
        }
    }

    /// The newest version (`None`: this is it, or the lineage is retired). One atomic load
    /// when no reload replaced it.
    #[inline]
    pub(super) fn newest(&self) -> Option<Arc<T>> {
        if self.lineage.generation.load(Ordering::Acquire) == self.generation {
            return None;
        }
        let newest = self
            .lineage
            .newest
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        newest.upgrade()
    }
}
