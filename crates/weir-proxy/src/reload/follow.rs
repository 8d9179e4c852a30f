//! A worker's side of a reload: a listener moves to its newest runtime at its next accept, a
//! connection to its chain's newest when its next request starts (no stream of it in flight
//! then), and a worker woken after a reload moves its listeners and idle connections at once,
//! so old versions are freed even where no connection arrives and no request starts.

use crate::snapshot::{ChainRuntime, ListenerRuntime};
use crate::worker::{Downstream, ListenerSlot, Worker};

impl ListenerSlot {
    /// Takes the newest version of its listener's runtime.
    pub(crate) fn follow_reload(&mut self) {
        if let Some(newest) = ListenerRuntime::newest(&self.runtime) {
            self.runtime = newest;
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
        for slot in &mut self.listeners {
            slot.follow_reload();
        }
        for id in self.downstreams.ids() {
            if let Some(ds) = self.downstreams.get_mut(id) {
                ds.follow_reload();
            }
        }
    }
}
