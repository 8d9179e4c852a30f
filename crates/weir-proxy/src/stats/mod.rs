//! Stats with Envoy's names, kept per worker and merged on read.
//!
//! Every worker owns one [`WorkerStats`] and is the only thread that writes it, so an update is
//! a plain load and store on a cache line no other core writes (no locked instruction, no
//! contention); the admin thread and the stats sinks' flush thread sum the workers' values
//! when they read them ([`collect`]). Scopes follow Envoy's tree: `http.<stat_prefix>.`,
//! `listener.<address>.`, `cluster.<name>.`, `listener_manager.worker_<n>.dispatcher.`, plus
//! `server.*` gauges computed when read. `weir.syscalls.*` are weir's own (syscalls by kind,
//! counted where they are made).

pub(crate) mod flusher;
pub mod histogram;
pub(crate) mod render;
pub mod ssl;
pub(crate) mod statsd;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    /// Per host, in endpoint order.
    pub hosts: Box<[HostStats]>,
}

impl ClusterStats {
    fn new(hosts: usize) -> Self {
        ClusterStats {
            common: ClusterCommon::default(),
            codes: CODES.map(|_| Counter::default()).collect(),
            classes: Default::default(),
            hosts: (0..hosts).map(|_| HostStats::default()).collect(),
        }
    }

    /// Counts an upstream response status (`upstream_rq_<code>` and its class), and the host's
    /// success or error (5xx).
    pub(crate) fn charge(&self, host: usize, status: u16) {
        if let Some(c) = self
            .codes
            .get(usize::from(status.wrapping_sub(*CODES.start())))
        {
            c.inc();
        }
        if let Some(c) = self.classes.get(usize::from(status / 100).wrapping_sub(1)) {
            c.inc();
        }
        if let Some(h) = self.hosts.get(host) {
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
    /// Some listener has a TLS inspector (so `tls_inspector.*` exist).
    pub(crate) tls_inspector: bool,
    /// Cluster names and their hosts.
    pub(crate) clusters: Vec<(String, Vec<SocketAddr>)>,
    /// Per cluster: it speaks TLS to its hosts (so `cluster.<name>.ssl.*` exist).
    pub(crate) tls_clusters: Vec<bool>,
}

impl Layout {
    /// The stats a config makes: its HCM prefixes, its listeners at `listeners` (bound), its
    /// clusters and their hosts.
    pub(crate) fn of(snapshot: &crate::snapshot::Snapshot, listeners: Vec<SocketAddr>) -> Layout {
        Layout {
            http_prefixes: snapshot.http_prefixes.clone(),
            http_faults: snapshot.http_faults.clone(),
            tcp_prefixes: snapshot.tcp_prefixes.clone(),
            tls_listeners: snapshot
                .listeners
                .iter()
                .map(|l| l.terminates_tls())
                .collect(),
            tls_inspector: snapshot.listeners.iter().any(|l| l.tls_inspector.is_some()),
            listeners,
            clusters: snapshot
                .bootstrap
                .clusters
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.endpoints.iter().map(|e| e.address).collect(),
                    )
                })
                .collect(),
            tls_clusters: snapshot
                .bootstrap
                .clusters
                .iter()
                .map(|c| c.tls.is_some())
                .collect(),
        }
    }
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
    /// Per cluster.
    pub clusters: Box<[ClusterStats]>,
    /// Per cluster, its TLS handshakes with its hosts (used by TLS clusters only).
    pub cluster_ssl: Box<[SslStats]>,
    /// This worker's event loop.
    pub dispatcher: DispatcherStats,
    /// Syscalls by kind.
    pub syscalls: Syscalls,
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
            clusters: layout
                .clusters
                .iter()
                .map(|(_, hosts)| ClusterStats::new(hosts.len()))
                .collect(),
            cluster_ssl: layout
                .clusters
                .iter()
                .map(|_| SslStats::default())
                .collect(),
            dispatcher: DispatcherStats::default(),
            syscalls: Syscalls::default(),
        }
    }
}

/// A merged value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's total.
    Counter(u64),
    /// A gauge's sum.
    Gauge(i64),
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

/// Merges one scope: `walk` names a worker's copy of it field by field (the same order for
/// every worker); names get `prefix`, tag-extracted names `tag_prefix` (the prefix without
/// tag values: `cluster.` for `cluster.<name>.`), Prometheus names `envoy_` and the
/// tag-extracted name, and all get `labels`.
fn merge_scope<'w>(
    out: &mut Vec<Stat>,
    workers: &'w [Arc<WorkerStats>],
    walk: impl Fn(&'w WorkerStats, &mut dyn FnMut(&str, StatRef<'_>)),
    prefix: &str,
    tag_prefix: &str,
    labels: &[(&'static str, String)],
) {
    let start = out.len();
    for (w, worker) in workers.iter().enumerate() {
        let mut k = start;
        walk(worker, &mut |field, stat| {
            if w == 0 {
                let (tag_field, mut all) = tag_response_code(field);
                all.extend_from_slice(labels);
                let tag_name = format!("{tag_prefix}{tag_field}");
                out.push(Stat {
                    name: format!("{prefix}{field}"),
                    prom_name: sanitize(&format!("envoy_{tag_name}")),
                    tag_name,
                    labels: all,
                    value: match stat {
                        StatRef::Counter(_) => Value::Counter(0),
                        StatRef::Gauge(_) => Value::Gauge(0),
                        StatRef::Histogram(_) => Value::Histogram(histogram::Snapshot::default()),
                    },
                    used: false,
                });
            }
            if let Some(entry) = out.get_mut(k) {
                match (&mut entry.value, stat) {
                    (Value::Counter(v), StatRef::Counter(c)) => *v += c.get(),
                    (Value::Gauge(v), StatRef::Gauge(g)) => *v += g.get(),
                    (Value::Histogram(h), StatRef::Histogram(x)) => x.merge_into(h),
                    _ => {}
                }
            }
            k += 1;
        });
    }
    for s in &mut out[start..] {
        s.used = match &s.value {
            Value::Counter(v) => *v > 0,
            Value::Gauge(v) => *v != 0,
            Value::Histogram(h) => h.count() > 0,
        };
    }
}

/// Envoy's tag extraction for response codes: `upstream_rq_200` is metric `upstream_rq` with
/// `envoy_response_code="200"`; `upstream_rq_2xx` is `upstream_rq_xx` with
/// `envoy_response_code_class="2"`.
fn tag_response_code(field: &str) -> (String, Vec<(&'static str, String)>) {
    if let Some((stem, last)) = field.rsplit_once('_')
        && (stem.ends_with("_rq") || stem == "rq")
    {
        let b = last.as_bytes();
        if b.len() == 3 && b[0].is_ascii_digit() && &b[1..] == b"xx" {
            let class = (b[0] as char).to_string();
            return (
                format!("{stem}_xx"),
                vec![("envoy_response_code_class", class)],
            );
        }
        if b.len() == 3 && b.iter().all(u8::is_ascii_digit) {
            return (
                stem.to_string(),
                vec![("envoy_response_code", last.to_string())],
            );
        }
    }
    (field.to_string(), Vec::new())
}

/// Prometheus metric names allow `[a-zA-Z0-9_:]`; Envoy turns everything else into `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A listener address as Envoy writes it in stat names: `127.0.0.1_10000`, `[__1]_10000`.
pub(crate) fn listener_stat_name(address: &SocketAddr) -> String {
    match address {
        SocketAddr::V4(a) => format!("{}_{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]_{}", a.ip().to_string().replace(':', "_"), a.port()),
    }
}

/// Server-wide values computed when read (`server.*` and friends).
pub(crate) struct ServerGauges {
    pub(crate) live: bool,
    pub(crate) state: u8,
    pub(crate) uptime_s: u64,
    pub(crate) concurrency: usize,
    /// The access logs (`filesystem.*`).
    pub(crate) access_logs: crate::access_log::LogsAdmin,
}

/// A stat computed when read rather than kept by workers (no tags: its Prometheus name is
/// `envoy_` and its name).
fn computed(name: &str, value: Value) -> Stat {
    let used = !matches!(value, Value::Gauge(0) | Value::Counter(0));
    Stat {
        name: name.to_string(),
        tag_name: name.to_string(),
        prom_name: sanitize(&format!("envoy_{name}")),
        labels: Vec::new(),
        value,
        used,
    }
}

/// Every stat, merged over workers, sorted by name.
pub(crate) fn collect(
    layout: &Layout,
    workers: &[Arc<WorkerStats>],
    server: &ServerGauges,
) -> Vec<Stat> {
    let mut out = Vec::new();
    collect_http(&mut out, layout, workers);
    collect_listeners(&mut out, layout, workers);
    for (i, prefix) in layout.tcp_prefixes.iter().enumerate() {
        merge_scope(
            &mut out,
            workers,
            |w, f| {
                if let Some(t) = w.tcp.get(i) {
                    t.each_field(f);
                }
            },
            &format!("tcp.{prefix}."),
            "tcp.",
            &[("envoy_tcp_prefix", prefix.clone())],
        );
    }
    if layout.tls_inspector {
        merge_scope(
            &mut out,
            workers,
            |w, f| w.tls_inspector.each_field(f),
            "tls_inspector.",
            "tls_inspector.",
            &[],
        );
    }
    collect_clusters(&mut out, layout, workers);
    collect_workers(&mut out, workers);
    collect_computed(&mut out, layout, server);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `http.<prefix>.*` (and the fault filter's `http.<prefix>.fault.*`).
fn collect_http(out: &mut Vec<Stat>, layout: &Layout, workers: &[Arc<WorkerStats>]) {
    for (i, prefix) in layout.http_prefixes.iter().enumerate() {
        merge_scope(
            out,
            workers,
            |w, f| {
                let Some(scope) = w.http.get(i) else { return };
                scope.stats.each_field(f);
                for (c, counter) in scope.classes.iter().enumerate() {
                    f(
                        &format!("downstream_rq_{}xx", c + 1),
                        StatRef::Counter(counter),
                    );
                }
            },
            &format!("http.{prefix}."),
            "http.",
            &[("envoy_http_conn_manager_prefix", prefix.clone())],
        );
        if layout.http_faults.get(i).copied().unwrap_or(false) {
            merge_scope(
                out,
                workers,
                |w, f| {
                    if let Some(scope) = w.http.get(i) {
                        scope.fault.each_field(f);
                    }
                },
                &format!("http.{prefix}.fault."),
                "http.fault.",
                &[("envoy_http_conn_manager_prefix", prefix.clone())],
            );
        }
    }
}

/// `listener.<address>.*`.
fn collect_listeners(out: &mut Vec<Stat>, layout: &Layout, workers: &[Arc<WorkerStats>]) {
    for (i, address) in layout.listeners.iter().enumerate() {
        let name = listener_stat_name(address);
        merge_scope(
            out,
            workers,
            |w, f| {
                if let Some(l) = w.listeners.get(i) {
                    l.each_field(f);
                }
            },
            &format!("listener.{name}."),
            "listener.",
            &[("envoy_listener_address", name.clone())],
        );
        if layout.tls_listeners.get(i) == Some(&true) {
            let labels = [("envoy_listener_address", name.clone())];
            let prefix = format!("listener.{name}.");
            collect_ssl(out, |w| &w.ssl, i, (&prefix, "listener.", &labels), workers);
        }
    }
}

/// A scope's name, its tag-extracted form and its Prometheus labels.
type ScopeName<'a> = (&'a str, &'a str, &'a [(&'static str, String)]);

/// `listener.<address>.ssl.*` or `cluster.<name>.ssl.*`: the fixed counters, and those per
/// version, cipher and curve once used (Envoy creates them on use).
fn collect_ssl(
    out: &mut Vec<Stat>,
    ssl: fn(&WorkerStats) -> &[SslStats],
    i: usize,
    (prefix, tag_prefix, labels): ScopeName<'_>,
    workers: &[Arc<WorkerStats>],
) {
    merge_scope(
        out,
        workers,
        |w, f| {
            if let Some(s) = ssl(w).get(i) {
                s.each_fixed(f);
            }
        },
        prefix,
        tag_prefix,
        labels,
    );
    let mut named = Vec::new();
    merge_scope(
        &mut named,
        workers,
        |w, f| {
            if let Some(s) = ssl(w).get(i) {
                s.each_named(f);
            }
        },
        prefix,
        tag_prefix,
        labels,
    );
    out.extend(named.into_iter().filter(|s| s.used));
}

/// `cluster.<name>.*`: the fixed stats, the per-status counters used, membership.
fn collect_clusters(out: &mut Vec<Stat>, layout: &Layout, workers: &[Arc<WorkerStats>]) {
    for (i, (cluster, hosts)) in layout.clusters.iter().enumerate() {
        let labels = [("envoy_cluster_name", cluster.clone())];
        let prefix = format!("cluster.{cluster}.");
        merge_scope(
            out,
            workers,
            |w, f| {
                let Some(c) = w.clusters.get(i) else { return };
                c.common.each_field(f);
                for (k, counter) in c.classes.iter().enumerate() {
                    f(
                        &format!("upstream_rq_{}xx", k + 1),
                        StatRef::Counter(counter),
                    );
                }
            },
            &prefix,
            "cluster.",
            &labels,
        );
        // A status's counter exists once some worker counted it (Envoy creates them on use).
        let mut codes = Vec::new();
        merge_scope(
            &mut codes,
            workers,
            |w, f| {
                let Some(c) = w.clusters.get(i) else { return };
                for (code, counter) in CODES.zip(c.codes.iter()) {
                    f(&format!("upstream_rq_{code}"), StatRef::Counter(counter));
                }
            },
            &prefix,
            "cluster.",
            &labels,
        );
        out.extend(codes.into_iter().filter(|s| s.used));
        if layout.tls_clusters.get(i) == Some(&true) {
            collect_ssl(
                out,
                |w| &w.cluster_ssl,
                i,
                (&prefix, "cluster.", &labels),
                workers,
            );
        }
        let n = hosts.len() as i64;
        for name in ["membership_total", "membership_healthy"] {
            out.push(Stat {
                name: format!("{prefix}{name}"),
                tag_name: format!("cluster.{name}"),
                prom_name: format!("envoy_cluster_{name}"),
                labels: labels.to_vec(),
                value: Value::Gauge(n),
                used: n != 0,
            });
        }
    }
}

/// Each worker's dispatcher stats, and weir's syscall counters.
fn collect_workers(out: &mut Vec<Stat>, workers: &[Arc<WorkerStats>]) {
    for (i, worker) in workers.iter().enumerate() {
        merge_scope(
            out,
            std::slice::from_ref(worker),
            |w, f| w.dispatcher.each_field(f),
            &format!("listener_manager.worker_{i}.dispatcher."),
            "listener_manager.worker_dispatcher.",
            &[("envoy_worker_id", i.to_string())],
        );
    }
    merge_scope(
        out,
        workers,
        |w, f| w.syscalls.each(f),
        "weir.syscalls.",
        "weir.syscalls.",
        &[],
    );
}

/// Server-wide values computed when read (`server.*`, `filesystem.*`, …).
fn collect_computed(out: &mut Vec<Stat>, layout: &Layout, server: &ServerGauges) {
    let (allocated, heap) = crate::memory::usage();
    let total_connections: i64 = out
        .iter()
        .filter(|s| s.name.starts_with("listener.") && s.name.ends_with(".downstream_cx_active"))
        .map(|s| match s.value {
            Value::Gauge(v) => v,
            _ => 0,
        })
        .sum();
    let gauge = Value::Gauge;
    let logs = server.access_logs.stats();
    let load = |c: &AtomicU64| Value::Counter(c.load(Relaxed));
    let computed_stats = [
        ("server.live", gauge(server.live.into())),
        ("server.state", gauge(server.state.into())),
        ("server.uptime", gauge(server.uptime_s as i64)),
        ("server.concurrency", gauge(server.concurrency as i64)),
        ("server.memory_allocated", gauge(allocated)),
        ("server.memory_heap_size", gauge(heap)),
        ("server.total_connections", gauge(total_connections)),
        (
            "cluster_manager.active_clusters",
            gauge(layout.clusters.len() as i64),
        ),
        (
            "listener_manager.total_listeners_active",
            gauge(layout.listeners.len() as i64),
        ),
        ("filesystem.write_buffered", load(&logs.write_buffered)),
        ("filesystem.write_completed", load(&logs.write_completed)),
        ("filesystem.write_failed", load(&logs.write_failed)),
        ("filesystem.flushed_by_timer", load(&logs.flushed_by_timer)),
        ("filesystem.reopen_failed", load(&logs.reopen_failed)),
        // weir's own: lines a worker dropped because the flusher fell behind.
        ("filesystem.write_dropped", load(&logs.write_dropped)),
        (
            "filesystem.write_total_buffered",
            gauge(server.access_logs.buffered_bytes() as i64),
        ),
    ];
    out.extend(
        computed_stats
            .into_iter()
            .map(|(name, v)| computed(name, v)),
    );
}
