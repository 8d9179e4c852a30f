//! A worker's side of a reload: when woken after one, it moves its listeners and its idle
//! connections to the new runtimes at once, so old versions are freed even where no
//! connection arrives and no request starts (a connection in the middle of a request moves
//! when its next one starts: `http/stream.rs`).

use crate::snapshot::{ChainRuntime, ListenerRuntime};
use crate::worker::Worker;

impl Worker {
    /// Follows the reload with config version `version`, once.
    pub(crate) fn follow_reload(&mut self, version: u64) {
        if version == self.config_version {
            return;
        }
        self.config_version = version;
        for slot in &mut self.listeners {
            if let Some(newest) = ListenerRuntime::newest(&slot.runtime) {
                slot.runtime = newest;
            }
        }
        for id in self.downstreams.ids() {
            let Some(ds) = self.downstreams.get_mut(id) else {
                continue;
            };
            if ds.streams.is_empty()
                && let Some(newest) = ChainRuntime::newest(&ds.chain)
            {
                ds.chain = newest;
            }
        }
    }
}
