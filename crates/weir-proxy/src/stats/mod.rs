//! Stats with Envoy's names, kept per worker and merged on read.
//!
//! Every worker owns one [`WorkerStats`] and is the only thread that writes it, so an update is
//! a plain load and store on a cache line no other core writes (no locked instruction, no
//! contention); the admin thread and the stats sinks' flush thread sum the workers' values
//! when they read them ([`collect`]). Scopes follow Envoy's tree: `http.<stat_prefix>.`,
//! `listener.<address>.`, `cluster.<name>.`, `listener_manager.worker_<n>.dispatcher.`, plus
//! `server.*` gauges computed when read. `weir.syscalls.*` are weir's own (syscalls by kind,
//! counted where they are made).

mod collect;
pub(crate) mod flusher;
mod grow;
pub mod histogram;
pub(crate) mod render;
pub mod ssl;
pub(crate) mod statsd;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::snapshot::ClusterEntry;
use crate::upstream::host_set::ClusterHosts;

pub(crate) use collect::{ServerGauges, collect};
pub(crate) use grow::Book;
pub use histogram::Histogram;
pub use ssl::SslStats;

/// A monotonically increasing count. Written by its worker only.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    #[inline]
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`. A load and a store, not `fetch_add`: the owning worker is the only writer.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    /// Back to zero (its scope is given to something else: see `grow.rs`).
    pub(crate) fn clear(&self) {
        self.0.store(0, Relaxed);
    }
}

/// A value that goes up and down (connections active, …). Written by its worker only; a
/// worker's share never goes below zero because it decrements only what it incremented.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Adds one.
    #[inline]
    pub(crate) fn inc(&self) {
        self.0.store(self.0.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// Subtracts one.
    #[inline]
    pub(crate) fn dec(&self) {
        self.0.store(self.0.load(Relaxed).wrapping_sub(1), Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed) as i64
    }

    /// Adds `from`'s value (see `grow.rs`).
    pub(crate) fn absorb(&self, from: &Gauge) {
        let sum = self.0.load(Relaxed).wrapping_add(from.0.load(Relaxed));
        self.0.store(sum, Relaxed);
    }

    /// Back to zero.
    pub(crate) fn clear(&self) {
        self.0.store(0, Relaxed);
    }
}

/// One stat of a scope, as the merge walks it.
pub(crate) enum StatRef<'a> {
    Counter(&'a Counter),
    Gauge(&'a Gauge),
    Histogram(&'a Histogram),
}

/// Declares a scope's struct and the walk that names its fields (so a stat's name is written
/// once, as its field).
macro_rules! scope {
    (
        $(#[$doc:meta])*
        $name:ident {
            counters: [$($c:ident),* $(,)?],
            gauges: [$($g:ident),* $(,)?],
            histograms: [$($h:ident),* $(,)?] $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        #[allow(missing_docs)]
        pub struct $name {
            $(pub $c: Counter,)*
            $(pub $g: Gauge,)*
            $(pub $h: Histogram,)*
        }

        impl $name {
            pub(crate) fn each_field(&self, f: &mut dyn FnMut(&str, StatRef<'_>)) {
                $(f(stringify!($c), StatRef::Counter(&self.$c));)*
                $(f(stringify!($g), StatRef::Gauge(&self.$g));)*
                $(f(stringify!($h), StatRef::Histogram(&self.$h));)*
            }

            /// Adds `from`'s values to this one's (see `grow.rs`). Not every scope is in a
            /// worker's stats (a host's live with it), hence the allowance.
            #[allow(dead_code)]
            pub(crate) fn absorb(&self, from: &Self) {
                $(self.$c.add(from.$c.get());)*
                $(self.$g.absorb(&from.$g);)*
                $(self.$h.absorb(&from.$h);)*
            }

            /// Every value back to zero (see `grow.rs`); the same allowance.
            #[allow(dead_code)]
            pub(crate) fn clear(&self) {
                $(self.$c.clear();)*
                $(self.$g.clear();)*
                $(self.$h.clear();)*
            }
        }
    };
}

scope! {
    /// `http.<stat_prefix>.*`: the HTTP connection manager's and the router's stats.
    HttpStats {
        counters: [
            downstream_cx_total, downstream_cx_destroy, downstream_cx_destroy_local,
            downstream_cx_destroy_remote, downstream_cx_destroy_active_rq,
            downstream_cx_http1_total, downstream_cx_rx_bytes_total, downstream_cx_tx_bytes_total,
            downstream_cx_protocol_error, downstream_cx_idle_timeout, downstream_cx_drain_close,
            downstream_cx_max_duration_reached, downstream_cx_max_requests_reached,
            downstream_rq_header_timeout,
            downstream_rq_total, downstream_rq_http1_total, downstream_rq_completed,
            downstream_rq_timeout, downstream_rq_idle_timeout, downstream_rq_rx_reset,
            downstream_rq_non_relative_path,
            no_route, no_cluster, rq_direct_response, rq_redirect, rq_total,
        ],
        gauges: [downstream_cx_active, downstream_cx_http1_active, downstream_rq_active],
        histograms: [downstream_cx_length_ms, downstream_rq_time],
    }
}

scope! {
    /// `http.<stat_prefix>.fault.*`: the fault filter's (when the HCM has one).
    FaultStats {
        counters: [aborts_injected, delays_injected, faults_overflow, response_rl_injected],
        gauges: [active_faults],
        histograms: [],
    }
}

scope! {
    /// `listener.<address>.*`.
    ListenerStats {
        counters: [
            downstream_cx_total, downstream_cx_destroy, downstream_global_cx_overflow,
            no_filter_chain_match, network_extension_config_missing, downstream_pre_cx_timeout,
            downstream_cx_transport_socket_connect_timeout,
        ],
        gauges: [downstream_cx_active, downstream_pre_cx_active],
        histograms: [downstream_cx_length_ms],
    }
}

scope! {
    /// `tcp.<stat_prefix>.*`: the TCP proxy's.
    TcpStats {
        counters: [
            downstream_cx_total, downstream_cx_no_route, downstream_cx_rx_bytes_total,
            downstream_cx_tx_bytes_total, idle_timeout,
        ],
        gauges: [],
        histograms: [],
    }
}

scope! {
    /// `tls_inspector.*`: what the TLS inspectors of all listeners found (one root scope, as
    /// Envoy has it).
    TlsInspectorStats {
        counters: [
            alpn_found, alpn_not_found, client_hello_too_large, sni_found, sni_not_found,
            tls_found, tls_not_found,
        ],
        gauges: [],
        histograms: [bytes_processed],
    }
}

scope! {
    /// `http_inspector.*`: what the HTTP inspectors of all listeners found.
    HttpInspectorStats {
        counters: [http10_found, http11_found, http2_found, http_not_found, read_error],
        gauges: [],
        histograms: [],
    }
}

scope! {
    /// `proxy_proto.*`: connections without a PROXY protocol header, let through or reset
    /// (one root scope for every listener's filter, as Envoy has it without a `stat_prefix`).
    ProxyProtoStats {
        counters: [not_found_allowed, not_found_disallowed],
        gauges: [],
        histograms: [],
    }
}

scope! {
    /// `proxy_proto.versions.v1.*` and `.v2.*`: headers of the version read, refused by
    /// `disallowed_versions`, or malformed.
    ProxyProtoVersionStats {
        counters: [found, disallowed, error],
        gauges: [],
        histograms: [],
    }
}

scope! {
    /// `downstream_cx_proxy_proto_error`: every connection a PROXY protocol filter reset.
    ProxyProtoErrors {
        counters: [downstream_cx_proxy_proto_error],
        gauges: [],
        histograms: [],
    }
}

scope! {
    /// `cluster.<name>.*` (besides the per-status counters, which [`ClusterStats`] adds).
    ClusterCommon {
        counters: [
            upstream_cx_total, upstream_cx_connect_fail, upstream_cx_connect_timeout,
            upstream_cx_destroy, upstream_cx_destroy_local, upstream_cx_destroy_remote,
            upstream_cx_destroy_with_active_rq, upstream_cx_destroy_local_with_active_rq,
            upstream_cx_destroy_remote_with_active_rq, upstream_cx_none_healthy,
            upstream_cx_protocol_error, upstream_cx_rx_bytes_total, upstream_cx_tx_bytes_total,
            upstream_rq_total, upstream_rq_completed, upstream_rq_pending_total,
            upstream_rq_timeout, upstream_rq_per_try_timeout, upstream_rq_retry,
            upstream_rq_retry_success, upstream_rq_retry_limit_exceeded,
            upstream_rq_rx_reset, upstream_rq_tx_reset,
            // Refused by a circuit breaker.
            upstream_cx_overflow, upstream_cx_pool_overflow, upstream_rq_active_overflow,
            upstream_rq_pending_overflow, upstream_rq_retry_overflow,
            // Picks made among all hosts, too few being healthy.
            lb_healthy_panic,
        ],
        gauges: [upstream_cx_active, upstream_rq_active, upstream_rq_pending_active],
        histograms: [upstream_cx_connect_ms, upstream_cx_length_ms, upstream_rq_time],
    }
}

scope! {
    /// One host's stats, as `/clusters` shows them (`<cluster>::<address>::<stat>`).
    HostStats {
        counters: [cx_connect_fail, cx_total, rq_error, rq_success, rq_timeout, rq_total],
        gauges: [cx_active, rq_active],
        histograms: [],
    }
}

scope! {
    /// `listener_manager.worker_<n>.dispatcher.*`: Envoy's opt-in event-loop stats, always on
    /// here.
    DispatcherStats {
        // weir's own: handler panics contained (each closed one connection).
        counters: [panics],
        gauges: [],
        histograms: [loop_duration_us, poll_delay_us],
    }
}

/// Statuses with their own `upstream_rq_<code>` counter.
const CODES: std::ops::RangeInclusive<u16> = 100..=599;

/// `cluster.<name>.*` for one worker.
#[derive(Debug)]
pub struct ClusterStats {
    /// The fixed counters, gauges and histograms.
    pub common: ClusterCommon,
    /// `upstream_rq_<code>`, indexed by code − 100; a code's stat exists once counted.
    codes: Box<[Counter]>,
    /// `upstream_rq_{1..5}xx`.
    classes: [Counter; 5],
}

impl ClusterStats {
    fn new() -> Self {
        ClusterStats {
            common: ClusterCommon::default(),
            codes: CODES.map(|_| Counter::default()).collect(),
            classes: Default::default(),
        }
    }

    /// Counts an upstream response status (`upstream_rq_<code>` and its class), and the host's
    /// success or error (5xx). Host stats live with their host (see `upstream::host_set`).
    pub(crate) fn charge(&self, host: Option<&HostStats>, status: u16) {
        if let Some(c) = self
            .codes
            .get(usize::from(status.wrapping_sub(*CODES.start())))
        {
            c.inc();
        }
        if let Some(c) = self.classes.get(usize::from(status / 100).wrapping_sub(1)) {
            c.inc();
        }
        if let Some(h) = host {
            if status >= 500 {
                &h.rq_error
            } else {
                &h.rq_success
            }
            .inc();
        }
    }
}

/// `http.<prefix>.downstream_rq_{1..5}xx` live beside [`HttpStats`].
#[derive(Debug, Default)]
pub struct HttpScope {
    /// The named stats.
    pub stats: HttpStats,
    /// The fault filter's.
    pub fault: FaultStats,
    /// `downstream_rq_{1..5}xx`.
    classes: [Counter; 5],
}

impl HttpScope {
    /// Counts a response sent downstream by its class.
    pub(crate) fn response(&self, status: u16) {
        if let Some(c) = self.classes.get(usize::from(status / 100).wrapping_sub(1)) {
            c.inc();
        }
    }
}

/// Syscalls the worker made, by kind, counted where they are made (`weir.syscalls.*`).
#[derive(Debug, Default)]
pub struct Syscalls {
    /// `epoll_wait`.
    pub epoll_wait: Counter,
    /// `read` on sockets.
    pub read: Counter,
    /// `writev` on sockets.
    pub write: Counter,
    /// `accept4`.
    pub accept: Counter,
    /// `socket` + `connect` of upstream connections (counted as two).
    pub connect: Counter,
    /// `epoll_ctl`: one per socket's life.
    pub epoll_ctl: Counter,
    /// `setsockopt`, `shutdown`, `getsockopt`, `close` and anything else.
    pub other: Counter,
}

impl Syscalls {
    pub(crate) fn read(&self) {
        self.read.inc();
    }
    pub(crate) fn write(&self) {
        self.write.inc();
    }
    pub(crate) fn other(&self) {
        self.other.inc();
    }

    fn each(&self, f: &mut dyn FnMut(&str, StatRef<'_>)) {
        for (name, c) in [
            ("epoll_wait", &self.epoll_wait),
            ("read", &self.read),
            ("write", &self.write),
            ("accept", &self.accept),
            ("connect", &self.connect),
            ("epoll_ctl", &self.epoll_ctl),
            ("other", &self.other),
        ] {
            f(name, StatRef::Counter(c));
        }
    }
}

/// The scopes every worker has, fixed when the server starts.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// Distinct HCM `stat_prefix`es (chains that share one share its stats, as in Envoy).
    pub(crate) http_prefixes: Vec<String>,
    /// Per prefix: one of its HCMs has a fault filter (so `http.<prefix>.fault.*` exist).
    pub(crate) http_faults: Vec<bool>,
    /// Distinct TCP proxy `stat_prefix`es.
    pub(crate) tcp_prefixes: Vec<String>,
    /// Listener addresses, bound (port 0 resolved).
    pub(crate) listeners: Vec<SocketAddr>,
    /// Per listener: one of its chains terminates TLS (so `ssl.*` exist).
    pub(crate) tls_listeners: Vec<bool>,
    /// Per listener: `None` while it is in the config in force; for one a reload removed,
    /// when its drain ends. Its stats show until then, as a draining listener's do in Envoy,
    /// and then leave `/stats` (so an address added again later does not show twice).
    pub(crate) removed_listeners: Vec<Option<std::time::Instant>>,
    /// Some listener has a TLS inspector (so `tls_inspector.*` exist).
    pub(crate) tls_inspector: bool,
    /// Some listener reads the PROXY protocol (so `proxy_proto.*` exist).
    pub(crate) proxy_protocol: bool,
    /// Some listener has an HTTP inspector (so `http_inspector.*` exist).
    pub(crate) http_inspector: bool,
    /// The clusters by number (a reload's retired ones too: see `collect_clusters`), with
    /// what their workers share (circuit breakers, outlier detector, health check stats).
    pub(crate) clusters: Vec<Arc<ClusterEntry>>,
    /// The numbers of the clusters in force in the config it was made for (a later reload,
    /// which publishes a later layout, may have retired them since).
    pub(crate) in_force: Vec<usize>,
    /// Their current hosts (which change at run time).
    pub(crate) hosts: Arc<ClusterHosts>,
}

impl Layout {
    /// The stats a config makes: its HCM prefixes, its listeners at `listeners` (bound), its
    /// clusters and their hosts.
    pub(crate) fn of(
        snapshot: &crate::snapshot::Snapshot,
        listeners: Vec<SocketAddr>,
        hosts: Arc<ClusterHosts>,
    ) -> Layout {
        let [tls_inspector, proxy_protocol, http_inspector] = filter_scopes(snapshot);
        Layout {
            http_prefixes: snapshot.http_prefixes.clone(),
            http_faults: snapshot.http_faults.clone(),
            tcp_prefixes: snapshot.tcp_prefixes.clone(),
            tls_listeners: snapshot
                .listeners
                .iter()
                .map(|l| l.terminates_tls())
                .collect(),
            removed_listeners: vec![None; snapshot.listeners.len()],
            tls_inspector,
            proxy_protocol,
            http_inspector,
            listeners,
            clusters: snapshot.clusters.all.clone(),
            in_force: snapshot.clusters.ids.clone(),
            hosts,
        }
    }
}

impl Layout {
    /// Listener `i` is shown at `now`: in force, or removed and still draining.
    pub(crate) fn listener_shown(&self, i: usize, now: std::time::Instant) -> bool {
        (self.removed_listeners.get(i)).is_none_or(|r| r.is_none_or(|end| now < end))
    }

    /// This layout with the scopes a reload's `snapshot` adds (its prefix lists extend
    /// this layout's; flags that make stats show only turn on) and its `added` listeners
    /// (number and bound address, numbered on from this layout's); the listeners it no
    /// longer has drain until `drain_end`.
    pub(crate) fn with_scopes_of(
        &self,
        snapshot: &crate::snapshot::Snapshot,
        added: &[(usize, SocketAddr)],
        drain_end: std::time::Instant,
    ) -> Layout {
        let mut layout = self.clone();
        layout.http_prefixes = snapshot.http_prefixes.clone();
        layout.http_faults = snapshot.http_faults.clone();
        layout.tcp_prefixes = snapshot.tcp_prefixes.clone();
        layout.clusters = snapshot.clusters.all.clone();
        layout.in_force = snapshot.clusters.ids.clone();
        for &(slot, address) in added {
            if slot == layout.listeners.len() {
                layout.listeners.push(address);
                layout.tls_listeners.push(false);
            }
        }
        let mut live = vec![false; layout.listeners.len()];
        for l in &snapshot.listeners {
            if let Some(tls) = layout.tls_listeners.get_mut(l.slot) {
                *tls |= l.terminates_tls();
            }
            if let Some(live) = live.get_mut(l.slot) {
                *live = true;
            }
        }
        layout.removed_listeners.resize(live.len(), None);
        for (removed, live) in layout.removed_listeners.iter_mut().zip(live) {
            *removed = match (live, *removed) {
                (true, _) => None,
                (false, None) => Some(drain_end),
                (false, since) => since,
            };
        }
        let [tls_inspector, proxy_protocol, http_inspector] = filter_scopes(snapshot);
        layout.tls_inspector |= tls_inspector;
        layout.proxy_protocol |= proxy_protocol;
        layout.http_inspector |= http_inspector;
        layout
    }
}

/// Some listener of `snapshot` runs a TLS inspector, a PROXY protocol filter, an HTTP
/// inspector (so their scopes exist).
fn filter_scopes(snapshot: &crate::snapshot::Snapshot) -> [bool; 3] {
    let any =
        |f: fn(&crate::snapshot::ListenerRuntime) -> bool| snapshot.listeners.iter().any(|l| f(l));
    [
        any(|l| l.tls_inspector().is_some()),
        any(|l| l.reads_proxy_protocol()),
        any(|l| l.inspects_http()),
    ]
}

/// One worker's stats. See the module documentation.
#[derive(Debug)]
pub struct WorkerStats {
    /// Per HCM stat prefix, in [`Layout`] order.
    pub http: Box<[HttpScope]>,
    /// Per TCP proxy stat prefix, in [`Layout`] order.
    pub tcp: Box<[TcpStats]>,
    /// Per listener.
    pub listeners: Box<[ListenerStats]>,
    /// Per listener, its TLS handshakes (used by TLS listeners only).
    pub ssl: Box<[SslStats]>,
    /// The TLS inspectors' (all listeners').
    pub tls_inspector: TlsInspectorStats,
    /// `http_inspector.*`.
    pub http_inspector: HttpInspectorStats,
    /// `proxy_proto.*`, `proxy_proto.versions.v1.*` and `.v2.*`, and the error total.
    pub proxy_proto: (
        ProxyProtoStats,
        [ProxyProtoVersionStats; 2],
        ProxyProtoErrors,
    ),
    /// Per cluster.
    pub clusters: Box<[ClusterStats]>,
    /// Per cluster, its TLS handshakes with its hosts (used by TLS clusters only).
    pub cluster_ssl: Box<[SslStats]>,
    /// This worker's event loop.
    pub dispatcher: DispatcherStats,
    /// Syscalls by kind.
    pub syscalls: Syscalls,
    /// Odd while the worker moves a cluster's counts to another (`grow.rs`): a reader that
    /// saw it odd or changed reads the clusters again, so a count never seems to go back.
    pub(crate) folds: AtomicU64,
}

impl WorkerStats {
    pub(crate) fn new(layout: &Layout) -> Self {
        WorkerStats {
            http: layout
                .http_prefixes
                .iter()
                .map(|_| HttpScope::default())
                .collect(),
            tcp: layout
                .tcp_prefixes
                .iter()
                .map(|_| TcpStats::default())
                .collect(),
            listeners: layout
                .listeners
                .iter()
                .map(|_| ListenerStats::default())
                .collect(),
            ssl: layout
                .listeners
                .iter()
                .map(|_| SslStats::default())
                .collect(),
            tls_inspector: TlsInspectorStats::default(),
            http_inspector: HttpInspectorStats::default(),
            proxy_proto: Default::default(),
            clusters: layout
                .clusters
                .iter()
                .map(|_| ClusterStats::new())
                .collect(),
            cluster_ssl: layout
                .clusters
                .iter()
                .map(|_| SslStats::default())
                .collect(),
            dispatcher: DispatcherStats::default(),
            syscalls: Syscalls::default(),
            folds: AtomicU64::new(0),
        }
    }
}

/// A merged value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's total.
    Counter(u64),
    /// A gauge's sum: wide enough for Envoy's unsigned 64-bit values (an unlimited
    /// `remaining_cx_pools` reads 2^64 − 1) and for a sum that is briefly negative (one
    /// worker's decrement of another's increment).
    Gauge(i128),
    /// A histogram's merged buckets.
    Histogram(histogram::Snapshot),
}

/// One stat, merged over workers: its Envoy name, its Prometheus name and labels (Envoy's tag
/// extraction, done by construction rather than by regex), and its value.
#[derive(Debug, Clone)]
pub struct Stat {
    /// The Envoy name, e.g. `cluster.backend.upstream_rq_200`.
    pub name: String,
    /// The name without its tags' values (Envoy's tag-extracted name), e.g.
    /// `cluster.upstream_rq`: what DogStatsD gets, with the labels as tags.
    pub tag_name: String,
    /// The Prometheus metric name, e.g. `envoy_cluster_upstream_rq`.
    pub prom_name: String,
    /// The Prometheus labels, e.g. `envoy_response_code="200"`, `envoy_cluster_name="backend"`.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: Value,
    /// Written at least once (Envoy's `usedonly`): a counter or histogram with any value, a
    /// gauge that is not zero.
    pub used: bool,
}
