//! A worker's side of a reload: a listener moves to its newest runtime at its next accept, a
//! connection to its chain's newest when its next request starts (no stream of it in flight
//! then), and a worker woken after a reload moves its listeners and idle connections at once,
//! so old versions are freed even where no connection arrives and no request starts. It
//! registers the sockets of listeners the reload added, and closes those of listeners it
//! removed, whose connections drain: each closes after its next response, and what is left
//! after the drain time is closed (Envoy's drain of a removed listener). A
//! connection whose chain the reload replaced (retired) stays on it and closes after its
//! next response (`Worker::drain_close`, Envoy's drain of a replaced filter chain): an idle
//! one is not cut, so a client never races a close with its next request. Before any of
//! that, the worker's stats take the scopes the reload added (`stats/grow.rs`).

use std::sync::Arc;

use crate::event::token::{Kind, fixed, token};
use crate::server::ListenerScope;
use crate::snapshot::{ChainRuntime, ListenerRuntime};
use crate::worker::{Downstream, ListenerSlot, TimerKey, Worker};

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
        self.follow_clusters();
        self.take_arrivals();
        for n in 0..self.listeners.len() {
            let slot = &mut self.listeners[n];
            if slot.removed {
                continue;
            }
            if !slot.runtime.retired() {
                slot.follow_reload();
            } else {
                slot.removed = true;
                slot.socket = None;
                tracing::info!(worker = self.index, listener = %slot.runtime.name, address = %slot.address, "listener removed; its connections drain");
                self.arm(self.control.server.drain_time, TimerKey::RemovedListener(n));
            }
        }
        for id in self.downstreams.ids() {
            if let Some(ds) = self.downstreams.get_mut(id) {
                ds.follow_reload();
            }
        }
        // Last: whatever this worker took above was published after the layout that makes
        // room for it, so the layout it reads now has that room (a reload that ran while
        // it followed the one before is covered too).
        self.grow_stats();
    }

    /// Registers the sockets of listeners a reload added, each at its number.
    fn take_arrivals(&mut self) {
        let arrivals =
            std::mem::take(&mut *(self.control.arrivals.lock()).unwrap_or_else(|e| e.into_inner()));
        for mut slot in arrivals {
            let n = slot.stats;
            // Numbers are handed out in order, and every worker gets every added listener.
            if n != self.listeners.len() {
                tracing::error!(worker = self.index, listener = %slot.runtime.name, "listener number {n} out of order; not listening");
                continue;
            }
            // A worker that is draining, or whose listeners an admin drain stopped, does not
            // start accepting again.
            let stopped = ListenerScope::load(&self.control.stop_listeners).covers(slot.inbound)
                || self.listener_drain.covers(slot.inbound);
            if self.draining || stopped {
                slot.socket = None;
            }
            if let Some(socket) = slot.socket.as_mut()
                && let Err(e) =
                    (self.net).register_listener(socket, token(Kind::Listener, fixed(n)))
            {
                tracing::error!(worker = self.index, listener = %slot.runtime.name, error = %e, "cannot watch the new listener");
                slot.socket = None;
            }
            self.listeners.push(slot);
        }
    }

    /// A removed listener's drain time is over: its connections that are left close, and
    /// what it ran is freed.
    pub(crate) fn close_listener_connections(&mut self, n: usize) {
        let on = |listener: usize| listener == n;
        for id in self.inspecting.ids() {
            if self.inspecting.get(id).is_some_and(|i| on(i.listener)) {
                self.close_inspecting(id, "listener removed");
            }
        }
        for id in self.downstreams.ids() {
            if self
                .downstreams
                .get(id)
                .is_some_and(|d| on(d.listener as usize))
            {
                self.close_downstream(id);
            }
        }
        for id in self.tcp.ids() {
            if self.tcp.get(id).is_some_and(|s| on(s.listener)) {
                self.close_tcp(id);
            }
        }
        if let Some(slot) = self.listeners.get_mut(n) {
            slot.runtime = slot.runtime.emptied();
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
    pub(super) fn grow_stats(&mut self) {
        let layout = self.control.server.stats.layout();
        self.grow_stats_to(&layout);
    }

    /// [`Worker::grow_stats`] to `layout` exactly (one the caller reads from too). The access
    /// log sets the reload registered are taken here too: whatever takes a reload's chains
    /// calls this first.
    pub(super) fn grow_stats_to(&mut self, layout: &crate::stats::Layout) {
        self.logs.follow();
        if let Some(grown) = self.stats.grown(layout) {
            self.stats = Arc::new(grown);
            self.control
                .server
                .stats
                .publish(self.index, self.stats.clone());
        }
    }
}
