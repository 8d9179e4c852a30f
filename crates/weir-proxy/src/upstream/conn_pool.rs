//! Per-worker connection pools: one per (cluster, host), holding idle keep-alive connections.
//!
//! A connection's codec says how many more requests it can take (`streams_available`); HTTP/1.1
//! carries one at a time, so a pool is a stack of idle connections: the most recently used one is taken first (warm in caches, least likely to
//! have been closed by the origin's idle timer). Connections in use belong to their stream;
//! the pool only sees them again when they are released.

use crate::event::token::Id;

/// Idle connections of one upstream host on one worker.
#[derive(Debug, Default)]
pub(crate) struct ConnPool {
    idle: Vec<Id>,
    /// This worker has used the pool (for the flow trace's "pool created").
    pub(crate) created: bool,
}

impl ConnPool {
    /// Takes the most recently released idle connection that `fits` (connections opened for
    /// another SNI stay).
    pub(crate) fn take_idle_where(&mut self, fits: impl Fn(Id) -> bool) -> Option<Id> {
        let at = self.idle.iter().rposition(|&id| fits(id))?;
        Some(self.idle.remove(at))
    }

    /// Returns a connection to the pool after a complete response.
    pub(crate) fn release(&mut self, id: Id) {
        self.idle.push(id);
    }

    /// Empties the pool (its host left the cluster): the idle connections, to close.
    pub(crate) fn drain(&mut self) -> Vec<Id> {
        std::mem::take(&mut self.idle)
    }

    /// Forgets a connection that closed while idle.
    pub(crate) fn remove(&mut self, id: Id) {
        self.idle.retain(|&i| i != id);
    }
}
