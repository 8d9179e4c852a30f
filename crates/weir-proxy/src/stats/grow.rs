//! Stats that a reload adds to: a new `stat_prefix` (later, a new listener or cluster) is a new
//! scope, and every worker needs it before it serves a connection that counts into it.
//!
//! A worker's stats are fixed-size arrays it indexes without a bound it could outgrow, so a
//! reload does not resize them in place: it publishes a larger [`Layout`] in the [`Book`], and
//! each worker, when it follows the reload (before it takes the new config into use), moves
//! its values to stats of the new size and publishes those. The worker is the only writer of
//! its stats and does the move itself, between two wake rounds, so no count is lost; a reader
//! that still holds the old stats sees the same values, without the new scopes.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::fence;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{ClusterStats, Counter, HttpScope, Layout, Syscalls, WorkerStats};

/// The stats readers see (admin, stats sinks, health checks): the scopes' names, which a
/// reload may add to, and each worker's values (see the module documentation).
#[derive(Debug)]
pub(crate) struct Book {
    pages: Mutex<Pages>,
}

/// The layout and the workers' stats at one moment. A worker's stats may be shorter than the
/// layout for a moment after a reload: the missing scopes read as absent.
#[derive(Debug, Clone)]
pub(crate) struct Pages {
    pub(crate) layout: Arc<Layout>,
    pub(crate) workers: Vec<Arc<WorkerStats>>,
}

impl Book {
    pub(crate) fn new(layout: Layout, workers: Vec<Arc<WorkerStats>>) -> Book {
        Book {
            pages: Mutex::new(Pages {
                layout: Arc::new(layout),
                workers,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pages> {
        self.pages.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The layout and the workers' stats now.
    pub(crate) fn read(&self) -> Pages {
        self.lock().clone()
    }

    /// The layout now.
    pub(crate) fn layout(&self) -> Arc<Layout> {
        self.lock().layout.clone()
    }

    /// A reload's layout (the old one with scopes added, never removed).
    pub(crate) fn set_layout(&self, layout: Layout) {
        self.lock().layout = Arc::new(layout);
    }

    /// Worker `index` moved its values to `stats`.
    pub(crate) fn publish(&self, index: usize, stats: Arc<WorkerStats>) {
        if let Some(slot) = self.lock().workers.get_mut(index) {
            *slot = stats;
        }
    }
}

impl WorkerStats {
    /// Stats the size of `layout` holding these values, or `None` when these already have
    /// every scope it names.
    pub(crate) fn grown(&self, layout: &Layout) -> Option<WorkerStats> {
        let fits = self.http.len() >= layout.http_prefixes.len()
            && self.tcp.len() >= layout.tcp_prefixes.len()
            && self.listeners.len() >= layout.listeners.len()
            && self.clusters.len() >= layout.clusters.len();
        if fits {
            return None;
        }
        let new = WorkerStats::new(layout);
        for (a, b) in new.http.iter().zip(self.http.iter()) {
            a.absorb(b);
        }
        for (a, b) in new.tcp.iter().zip(self.tcp.iter()) {
            a.absorb(b);
        }
        for (a, b) in new.listeners.iter().zip(self.listeners.iter()) {
            a.absorb(b);
        }
        for (a, b) in new.ssl.iter().zip(self.ssl.iter()) {
            a.absorb(b);
        }
        for (a, b) in new.clusters.iter().zip(self.clusters.iter()) {
            a.absorb(b);
        }
        for (a, b) in new.cluster_ssl.iter().zip(self.cluster_ssl.iter()) {
            a.absorb(b);
        }
        new.tls_inspector.absorb(&self.tls_inspector);
        new.http_inspector.absorb(&self.http_inspector);
        new.proxy_proto.0.absorb(&self.proxy_proto.0);
        for (a, b) in new.proxy_proto.1.iter().zip(self.proxy_proto.1.iter()) {
            a.absorb(b);
        }
        new.proxy_proto.2.absorb(&self.proxy_proto.2);
        new.dispatcher.absorb(&self.dispatcher);
        new.syscalls.absorb(&self.syscalls);
        Some(new)
    }
}

/// Adds each of `from`'s counts to the one in the same place of `into`.
pub(super) fn absorb_counters(into: &[Counter], from: &[Counter]) {
    for (a, b) in into.iter().zip(from) {
        a.add(b.get());
    }
}

impl HttpScope {
    fn absorb(&self, from: &HttpScope) {
        self.stats.absorb(&from.stats);
        self.fault.absorb(&from.fault);
        absorb_counters(&self.classes, &from.classes);
    }
}

impl ClusterStats {
    fn absorb(&self, from: &ClusterStats) {
        self.common.absorb(&from.common);
        absorb_counters(&self.codes, &from.codes);
        absorb_counters(&self.classes, &from.classes);
    }

    fn clear(&self) {
        self.common.clear();
        self.codes
            .iter()
            .chain(&self.classes)
            .for_each(Counter::clear);
    }
}

impl WorkerStats {
    /// Moves the counts of cluster number `n` to number `into` (the worker released a
    /// retired cluster: its counts go on under the cluster in force of the same name), or
    /// drops them (`None`), leaving `n`'s at zero for its next cluster. Readers see it done
    /// or not begun ([`WorkerStats::folding`]). Called by the worker that owns these.
    pub(crate) fn fold_cluster(&self, n: usize, into: Option<usize>) {
        let (Some(from), Some(from_ssl)) = (self.clusters.get(n), self.cluster_ssl.get(n)) else {
            return;
        };
        if into.is_some_and(|m| m >= self.clusters.len()) {
            // Not a number these stats have: the counts stay where they are.
            return;
        }
        let seq = self.folds.load(Relaxed);
        self.folds.store(seq.wrapping_add(1), Relaxed);
        fence(Release);
        if let Some(m) = into.filter(|&m| m != n) {
            if let Some(to) = self.clusters.get(m) {
                to.absorb(from);
            }
            if let Some(to) = self.cluster_ssl.get(m) {
                to.absorb(from_ssl);
            }
        }
        from.clear();
        from_ssl.clear();
        self.folds.store(seq.wrapping_add(2), Release);
    }

    /// Where the worker's folds stand: odd while one runs. A reader compares it before and
    /// after reading the clusters.
    pub(crate) fn folding(&self) -> u64 {
        self.folds.load(Acquire)
    }
}

impl Syscalls {
    fn absorb(&self, from: &Syscalls) {
        let ours = [
            &self.epoll_wait,
            &self.read,
            &self.write,
            &self.accept,
            &self.connect,
            &self.epoll_ctl,
            &self.other,
        ];
        let theirs = [
            &from.epoll_wait,
            &from.read,
            &from.write,
            &from.accept,
            &from.connect,
            &from.epoll_ctl,
            &from.other,
        ];
        for (a, b) in ours.into_iter().zip(theirs) {
            a.add(b.get());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Book;
    use crate::access_log::AccessLogs;
    use crate::snapshot::Snapshot;
    use crate::stats::{Layout, WorkerStats};
    use crate::upstream::host_set::ClusterHosts;

    fn layout() -> Layout {
        let yaml = crate::testing::bootstrap("", "", "", &["127.0.0.1:9001"]);
        let logs = AccessLogs::new(1, Duration::from_secs(1));
        let snapshot = Snapshot::new(weir_config::parse(&yaml).expect("valid"), &logs.admin())
            .expect("snapshot");
        let hosts = Arc::new(ClusterHosts::of(&snapshot.bootstrap.clusters, 1));
        let address = "127.0.0.1:10000".parse().expect("address");
        Layout::of(&snapshot, vec![address], hosts)
    }

    #[test]
    fn a_worker_that_grows_keeps_every_count_and_gains_the_new_scope() {
        let mut layout = layout();
        let old = Arc::new(WorkerStats::new(&layout));
        old.http[0].stats.downstream_rq_total.add(7);
        old.http[0].stats.downstream_cx_active.inc();
        old.http[0].stats.downstream_rq_time.record(12);
        old.http[0].response(503);
        old.clusters[0].charge(None, 200);
        old.listeners[0].downstream_cx_total.inc();
        old.syscalls.read.add(3);
        let book = Book::new(layout.clone(), vec![old.clone()]);
        assert!(old.grown(&layout).is_none(), "nothing to add");
        layout.http_prefixes.push("added".into());
        layout.http_faults.push(false);
        book.set_layout(layout.clone());
        assert_eq!(book.read().workers[0].http.len(), 1, "not moved yet");
        let grown = Arc::new(old.grown(&layout).expect("a larger layout"));
        book.publish(0, grown);
        let new = book.read().workers[0].clone();
        assert_eq!(new.http.len(), 2);
        assert_eq!(new.http[0].stats.downstream_rq_total.get(), 7);
        assert_eq!(new.http[0].stats.downstream_cx_active.get(), 1);
        assert_eq!(new.http[0].stats.downstream_rq_time.count(), 1);
        assert_eq!(new.http[0].classes[4].get(), 1, "one 5xx");
        assert_eq!(new.clusters[0].classes[1].get(), 1, "one 2xx");
        assert_eq!(new.listeners[0].downstream_cx_total.get(), 1);
        assert_eq!(new.syscalls.read.get(), 3);
        assert_eq!(new.http[1].stats.downstream_rq_total.get(), 0);
        assert_eq!(book.layout().http_prefixes, ["test", "added"]);
    }
}
