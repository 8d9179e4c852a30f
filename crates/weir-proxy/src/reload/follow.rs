//! A worker's side of a reload: a listener moves to its newest runtime at its next accept, a
//! connection to its chain's newest when its next request starts (no stream of it in flight
//! then), and a worker woken after a reload moves its listeners and idle connections at once,
//! so old versions are freed even where no connection arrives and no request starts. A
//! connection whose chain the reload replaced (retired) stays on it and closes after its
//! next response (`Worker::drain_close`, Envoy's drain of a replaced filter chain): an idle
//! one is not cut, so a client never races a close with its next request. Before any of
//! that, the worker's stats take the scopes the reload added (`stats/grow.rs`).

use std::sync::Arc;

use crate::snapshot::{ChainRuntime, ListenerRuntime};
use crate::worker::{Downstream, ListenerSlot, Worker};

impl ListenerSlot {
    /// Takes the newest version of its listener's runtime; true when there was one.
    pub(crate) fn follow_reload(&mut self) -> bool {
        match ListenerRuntime::newest(&self.runtime) {
            Some(newest) => {
                self.buffer_limit = newest.buffer_limit;
                self.inbound = newest.inbound;
                self.runtime = newest;
                true
            }
            None => false,
        }
    }
}

impl Downstream {
    /// Takes the newest version of its chain (a new route table), unless a stream is in
    /// flight on the one it has.
    pub(crate) fn follow_reload(&mut self) {
        if self.streams.is_empty()
            && let Some(newest) = ChainRuntime::newest(&self.chain)
        {
            self.chain = newest;
        }
    }
}

impl Worker {
    /// Follows the reload with config version `version`, once.
    pub(crate) fn follow_reload(&mut self, version: u64) {
        if version == self.config_version {
            return;
        }
        self.config_version = version;
        self.grow_stats();
        for slot in &mut self.listeners {
            slot.follow_reload();
        }
        for id in self.downstreams.ids() {
            if let Some(ds) = self.downstreams.get_mut(id) {
                ds.follow_reload();
            }
        }
    }

    /// Listener `index`'s newest runtime, before a connection is accepted on it.
    pub(crate) fn follow_listener(&mut self, index: usize) {
        if self.listeners[index].follow_reload() {
            self.grow_stats();
        }
    }

    /// Moves this worker's stats to the layout a reload published, when it added scopes
    /// that the new chains count into.
    fn grow_stats(&mut self) {
        let book = &self.control.server.stats;
        if let Some(grown) = self.stats.grown(&book.layout()) {
            self.stats = Arc::new(grown);
            book.publish(self.index, self.stats.clone());
        }
    }
}
