//! Per-worker counters, merged on read.
//!
//! Each worker owns one [`WorkerStats`] and is its only writer, so the atomics never contend
//! (relaxed adds on a cache line no other core writes); the admin listener and `weir demo` sum
//! the workers' values when asked. Envoy's full stat tree comes later; these are the counters
//! the foundation needs to prove its claims (connection reuse, syscalls per request).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Syscalls the worker made, by kind, counted where they are made.
#[derive(Debug, Default)]
pub struct Syscalls {
    /// `epoll_wait`.
    pub epoll_wait: AtomicU64,
    /// `read` on sockets.
    pub read: AtomicU64,
    /// `writev` on sockets.
    pub write: AtomicU64,
    /// `accept4`.
    pub accept: AtomicU64,
    /// `socket` + `connect` of upstream connections (counted as two).
    pub connect: AtomicU64,
    /// `epoll_ctl`: one per socket's life.
    pub epoll_ctl: AtomicU64,
    /// `setsockopt`, `shutdown`, `getsockopt`, `close` and anything else.
    pub other: AtomicU64,
}

impl Syscalls {
    pub(crate) fn read(&self) {
        self.read.fetch_add(1, Relaxed);
    }
    pub(crate) fn write(&self) {
        self.write.fetch_add(1, Relaxed);
    }
    pub(crate) fn other(&self) {
        self.other.fetch_add(1, Relaxed);
    }
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// All syscalls counted.
    pub fn total(&self) -> u64 {
        [
            &self.epoll_wait,
            &self.read,
            &self.write,
            &self.accept,
            &self.connect,
            &self.epoll_ctl,
            &self.other,
        ]
        .iter()
        .map(|c| c.load(Relaxed))
        .sum()
    }
}

/// One worker's counters. Names follow Envoy's stats where Envoy has one.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// `downstream_cx_total`.
    pub downstream_cx_total: AtomicU64,
    /// `downstream_cx_active`.
    pub downstream_cx_active: AtomicU64,
    /// `downstream_rq_total`.
    pub downstream_rq_total: AtomicU64,
    /// `downstream_rq_{1..5}xx`, indexed by class − 1.
    pub downstream_rq_class: [AtomicU64; 5],
    /// `upstream_cx_total`: upstream connections opened.
    pub upstream_cx_total: AtomicU64,
    /// `upstream_cx_active`.
    pub upstream_cx_active: AtomicU64,
    /// `upstream_cx_connect_fail`.
    pub upstream_cx_connect_fail: AtomicU64,
    /// `upstream_rq_total`: requests sent upstream.
    pub upstream_rq_total: AtomicU64,
    /// Requests that went out on a pooled (reused) connection.
    pub upstream_rq_reused: AtomicU64,
    /// `upstream_rq_retry`: stale keep-alive retries.
    pub upstream_rq_retry: AtomicU64,
    /// Wake rounds of the event loop (each `epoll_wait` that returned).
    pub wake_rounds: AtomicU64,
    /// Syscalls by kind.
    pub syscalls: Syscalls,
}

impl WorkerStats {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
    pub(crate) fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Relaxed);
    }
    pub(crate) fn response(&self, status: u16) {
        if let Some(c) = self
            .downstream_rq_class
            .get(usize::from(status / 100).wrapping_sub(1))
        {
            c.fetch_add(1, Relaxed);
        }
    }
}

/// The sum over workers of one counter.
pub fn sum(
    workers: &[std::sync::Arc<WorkerStats>],
    pick: impl Fn(&WorkerStats) -> &AtomicU64,
) -> u64 {
    workers.iter().map(|w| pick(w).load(Relaxed)).sum()
}
