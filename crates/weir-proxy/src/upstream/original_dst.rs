//! `ORIGINAL_DST` clusters: a host per destination the requests are addressed to (the
//! request's `x-envoy-original-dst-host` with `use_http_header`, else the downstream
//! connection's own address), made on first use, and removed by a sweep once it took no
//! request for a `cleanup_interval` and has no connection open (Envoy's pools keep their host
//! too).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::host_set::{ClusterHosts, HostId, HostSpec};
use crate::event::token::Id;
use crate::worker::Worker;

impl Worker {
    /// The stream's destination as a host of `cluster`, added to it on first use; `None`
    /// when the request gives no destination it can use.
    pub(super) fn original_dst_host(&mut self, sid: Id, cluster: usize) -> Option<Id> {
        let od = self.clusters.get(cluster)?.original_dst.as_ref()?;
        let stream = self.streams.get(sid)?;
        let from_header = od
            .use_http_header
            .then(|| {
                let value = stream
                    .retry
                    .head
                    .as_ref()?
                    .headers
                    .get(&od.http_header_name)?;
                std::str::from_utf8(value)
                    .ok()?
                    .trim()
                    .parse::<SocketAddr>()
                    .ok()
            })
            .flatten();
        let destination = match from_header {
            Some(address) => address,
            None => {
                let ds = self.downstreams.get(stream.downstream)?;
                match &ds.proxied {
                    Some(proxied) => proxied.local,
                    None => ds.conn.local_addr()?,
                }
            }
        };
        let destination = match od.upstream_port_override {
            Some(port) => SocketAddr::new(destination.ip(), port),
            None => destination,
        };
        if let Some(id) = self.clusters[cluster].hosts.find(destination) {
            return Some(id);
        }
        let spec = HostSpec::plain(destination, 1);
        if self.control.server.hosts.add(cluster, spec) {
            self.apply_host_sets();
        }
        self.clusters[cluster].hosts.find(destination)
    }
}

/// The sweep's thread (`weir:original-dst`): every `cleanup_interval`, a cluster's hosts that
/// took no request since the last sweep are removed.
pub(crate) struct OriginalDstCleanup {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl OriginalDstCleanup {
    /// `clusters`: each `ORIGINAL_DST` cluster's index and `cleanup_interval`; `None` when
    /// there are none. `wake` tells the workers a set changed.
    pub(crate) fn start(
        clusters: Vec<(usize, Duration)>,
        hosts: Arc<ClusterHosts>,
        wake: impl Fn() + Send + 'static,
    ) -> std::io::Result<Option<OriginalDstCleanup>> {
        if clusters.is_empty() {
            return Ok(None);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("weir:original-dst".into())
            .spawn(move || {
                let start = Instant::now();
                let mut due: Vec<Instant> = clusters.iter().map(|(_, i)| start + *i).collect();
                // Per cluster, each host's requests so far, at the last sweep.
                let mut seen: Vec<HashMap<HostId, u64>> = vec![HashMap::new(); clusters.len()];
                while !stopping.load(Relaxed) {
                    // Short naps, so that a stop is seen soon.
                    std::thread::sleep(Duration::from_millis(50));
                    let now = Instant::now();
                    let mut changed = false;
                    for (((cluster, interval), at), seen) in
                        clusters.iter().zip(&mut due).zip(&mut seen)
                    {
                        if *at > now {
                            continue;
                        }
                        *at = now + *interval;
                        let mut kept = HashMap::new();
                        changed |= hosts.retain(*cluster, |h| {
                            // Used: it took requests since the last sweep, or keeps
                            // connections open (pooled ones too, as Envoy's pools hold
                            // their host).
                            let total: u64 = h.stats.iter().map(|s| s.rq_total.get()).sum();
                            let open = h.stats.iter().any(|s| s.cx_active.get() > 0);
                            let used = open || seen.get(&h.id) != Some(&total);
                            if used {
                                kept.insert(h.id, total);
                            }
                            used
                        });
                        *seen = kept;
                    }
                    if changed {
                        wake();
                    }
                }
            })?;
        Ok(Some(OriginalDstCleanup { stop, thread }))
    }

    pub(crate) fn stop(self) {
        self.stop.store(true, Relaxed);
        let _ = self.thread.join();
    }
}
