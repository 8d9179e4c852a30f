//! Panic containment: a handler that panics (a bug; bad input is answered, never panicked on)
//! takes down only the connection it worked on, never the worker and its other connections.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;

use crate::event::token::Id;
use crate::worker::{TimerKey, Worker};

thread_local! {
    /// Set while a worker runs a handler whose panic it contains.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is inside a worker handler whose panic weir contains (closing the
/// connection it was for). The binary's panic hook reads it: such a panic is logged, not fatal.
pub fn panic_is_contained() -> bool {
    CONTAINED.with(Cell::get)
}

/// What a handler works on, so a panic in it can end just that.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope {
    Downstream(Id),
    Upstream(Id),
    Stream(Id),
    Worker,
}

impl TimerKey {
    pub(crate) fn scope(self) -> Scope {
        match self {
            TimerKey::DownstreamIdle(id)
            | TimerKey::Linger(id)
            | TimerKey::RequestHeaders(id)
            | TimerKey::MaxDuration(id)
            | TimerKey::Handshake(id) => Scope::Downstream(id),
            TimerKey::Connect(id) => Scope::Upstream(id),
            TimerKey::Route(id)
            | TimerKey::Request(id)
            | TimerKey::StreamIdle(id)
            | TimerKey::Retry(id)
            | TimerKey::PerTry(id)
            | TimerKey::FilterWake(id) => Scope::Stream(id),
            TimerKey::AcceptRetry(_)
            | TimerKey::DrainDeadline
            | TimerKey::StopListeners
            | TimerKey::RemovedListener(_)
            | TimerKey::RetiredCluster(..)
            | TimerKey::ListenerFilters(_)
            | TimerKey::TcpIdle(_)
            | TimerKey::TcpConnect(_)
            | TimerKey::TcpHandshake(_) => Scope::Worker,
        }
    }
}

impl Worker {
    /// Runs one handler. A panic in it (a bug: bad input is answered, never panicked on) must
    /// not take the worker and its other connections down: the connection the handler worked on
    /// is closed (a reset, so the client sees an error) and the worker goes on.
    pub(crate) fn contained(&mut self, scope: Scope, handler: impl FnOnce(&mut Worker)) {
        // What to close is found before the handler runs: a panic may leave its stream half
        // removed, and its connection must still be found.
        let (downstream, upstream) = match scope {
            Scope::Downstream(id) => (Some(id), None),
            Scope::Stream(sid) => (self.streams.get(sid).map(|s| s.downstream), None),
            Scope::Upstream(id) => {
                let sid = self.upstreams.get(id).and_then(|u| u.stream);
                let ds = sid.and_then(|s| self.streams.get(s)).map(|s| s.downstream);
                (ds, Some(id))
            }
            Scope::Worker => (None, None),
        };
        CONTAINED.with(|c| c.set(true));
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| handler(self)));
        if result.is_err() {
            self.stats.dispatcher.panics.inc();
            tracing::error!(
                worker = self.index,
                ?scope,
                "a handler panicked; closing its connection"
            );
            // Still contained: a panic while closing is logged, and the worker goes on.
            let closed = std::panic::catch_unwind(AssertUnwindSafe(|| {
                if let Some(id) = upstream {
                    self.close_upstream(id);
                }
                if let Some(id) = downstream {
                    if let Some(ds) = self.downstreams.get(id) {
                        ds.conn.reset_on_close();
                    }
                    self.close_downstream(id);
                }
            }));
            if closed.is_err() {
                tracing::error!(worker = self.index, "closing after a panic panicked too");
            }
        }
        CONTAINED.with(|c| c.set(false));
    }
}
