//! Reading the stats: every worker's copy of each scope merged into one [`Stat`] per name,
//! with its tag-extracted and Prometheus names, in Envoy's tree order; and the `server.*` and
//! other gauges computed when read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::{CODES, Layout, SslStats, Stat, StatRef, Value, WorkerStats, histogram};
use crate::snapshot::ClusterEntry;
use crate::upstream::host_set::HostClass;

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
    for worker in workers {
        // The first worker that has the scope names its stats (one that has not grown to
        // a scope a reload added yet walks nothing).
        let fresh = out.len() == start;
        let mut k = start;
        walk(worker, &mut |field, stat| {
            if fresh {
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
                    (Value::Gauge(v), StatRef::Gauge(g)) => *v += i128::from(g.get()),
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

/// `proxy_proto.*` and `downstream_cx_proxy_proto_error`, as Envoy names them.
fn collect_proxy_protocol(out: &mut Vec<Stat>, workers: &[Arc<WorkerStats>]) {
    let root = "proxy_proto.";
    merge_scope(
        out,
        workers,
        |w, f| w.proxy_proto.0.each_field(f),
        root,
        root,
        &[],
    );
    for (i, version) in ["v1", "v2"].into_iter().enumerate() {
        let prefix = format!("proxy_proto.versions.{version}.");
        merge_scope(
            out,
            workers,
            |w, f| w.proxy_proto.1[i].each_field(f),
            &prefix,
            &prefix,
            &[],
        );
    }
    merge_scope(
        out,
        workers,
        |w, f| w.proxy_proto.2.each_field(f),
        "",
        "",
        &[],
    );
}

/// Server-wide values computed when read (`server.*` and friends).
pub(crate) struct ServerGauges {
    pub(crate) live: bool,
    pub(crate) state: u8,
    pub(crate) uptime_s: u64,
    pub(crate) concurrency: usize,
    /// The access logs (`filesystem.*`).
    pub(crate) access_logs: crate::access_log::LogsAdmin,
    /// Config reloads applied, refused, and when the last was applied (Unix seconds).
    pub(crate) reloads: [u64; 3],
    /// Counters the weir before this one had counted (`--hot-restart`), by name: each goes
    /// on from there, as Envoy's counters do across a hot restart.
    pub(crate) carried: Option<Arc<std::collections::HashMap<String, u64>>>,
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
    // Listener filters' scopes, each when some listener runs the filter.
    type Walk = fn(&WorkerStats, &mut dyn FnMut(&str, StatRef<'_>));
    let inspectors: [(bool, &str, Walk); 2] = [
        (layout.tls_inspector, "tls_inspector.", |w, f| {
            w.tls_inspector.each_field(f)
        }),
        (layout.http_inspector, "http_inspector.", |w, f| {
            w.http_inspector.each_field(f)
        }),
    ];
    for (present, prefix, walk) in inspectors {
        if present {
            merge_scope(&mut out, workers, walk, prefix, prefix, &[]);
        }
    }
    if layout.proxy_protocol {
        collect_proxy_protocol(&mut out, workers);
    }
    collect_clusters_settled(&mut out, layout, workers);
    collect_workers(&mut out, workers);
    collect_computed(&mut out, layout, server);
    if let Some(carried) = &server.carried {
        for stat in &mut out {
            if let (Value::Counter(v), Some(before)) = (&mut stat.value, carried.get(&stat.name)) {
                *v += before;
                stat.used |= *before != 0;
            }
        }
    }
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
    let now = std::time::Instant::now();
    for (i, address) in layout.listeners.iter().enumerate() {
        if !layout.listener_shown(i, now) {
            continue;
        }
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

/// `cluster.<name>.*`: the fixed stats, the per-status counters used, membership. A name
/// shows while a cluster of that name is in force; its workers' counts are those of every
/// number it had (a reload that replaced the cluster gave it another), so they go on across
/// reloads, as Envoy's stats, which are kept by name, do. What the workers share (circuit
/// breakers, outlier detection, health checks) and its membership are the one in force's.
fn collect_clusters(out: &mut Vec<Stat>, layout: &Layout, workers: &[Arc<WorkerStats>]) {
    // The retired numbers that may still hold counts (not yet released by every worker,
    // which folds them into the name's cluster in force), by name.
    let mut in_force = vec![false; layout.clusters.len()];
    for &n in &layout.in_force {
        if let Some(f) = in_force.get_mut(n) {
            *f = true;
        }
    }
    let mut before: HashMap<&str, Vec<&ClusterEntry>> = HashMap::new();
    for c in &layout.clusters {
        if !in_force[c.number] && !c.released_by(workers.len()) {
            before.entry(&c.config.name).or_default().push(c);
        }
    }
    for entry in layout
        .in_force
        .iter()
        .filter_map(|&n| layout.clusters.get(n))
    {
        let start = out.len();
        let mut codes = Vec::new();
        collect_cluster((out, &mut codes), layout, (entry, true), workers);
        for c in before.get(entry.config.name.as_str()).into_iter().flatten() {
            let (mut more, mut more_codes) = (Vec::new(), Vec::new());
            collect_cluster((&mut more, &mut more_codes), layout, (c, false), workers);
            add_counts(out, start, more);
            add_counts(&mut codes, 0, more_codes);
        }
        // A status's counter exists once some worker counted it (Envoy creates them on use).
        out.extend(codes.into_iter().filter(|s| s.used));
    }
}

/// [`collect_clusters`], read again while a worker moved a cluster's counts meanwhile (a
/// fold takes microseconds, and comes at most once per cluster a reload retired).
fn collect_clusters_settled(out: &mut Vec<Stat>, layout: &Layout, workers: &[Arc<WorkerStats>]) {
    let start = out.len();
    for _ in 0..1_000 {
        let before: Vec<u64> = workers.iter().map(|w| w.folding()).collect();
        collect_clusters(out, layout, workers);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let settled = before.iter().all(|seq| seq % 2 == 0)
            && (workers.iter().zip(&before)).all(|(w, seq)| w.folding() == *seq);
        if settled {
            return;
        }
        out.truncate(start);
        std::thread::yield_now();
    }
    collect_clusters(out, layout, workers);
}

/// Adds `more`'s values to the stats of the same name in `out[start..]`, or adds the stat
/// (one the cluster in force does not have, or has not counted on any worker yet).
fn add_counts(out: &mut Vec<Stat>, start: usize, more: Vec<Stat>) {
    let mut at: HashMap<String, usize> = (out[start..].iter().enumerate())
        .map(|(k, s)| (s.name.clone(), start + k))
        .collect();
    for stat in more {
        let Some(to) = at.get(&stat.name).map(|&k| &mut out[k]) else {
            at.insert(stat.name.clone(), out.len());
            out.push(stat);
            continue;
        };
        match (&mut to.value, stat.value) {
            (Value::Counter(a), Value::Counter(b)) => *a += b,
            (Value::Gauge(a), Value::Gauge(b)) => *a += b,
            (Value::Histogram(a), Value::Histogram(b)) => a.add(&b),
            _ => {}
        }
        to.used |= stat.used;
    }
}

/// The stats of cluster number `entry.number` into `out`, and every per-status counter
/// into `codes`; with `shared`, what the workers share and its membership too.
fn collect_cluster(
    (out, codes): (&mut Vec<Stat>, &mut Vec<Stat>),
    layout: &Layout,
    (entry, shared): (&ClusterEntry, bool),
    workers: &[Arc<WorkerStats>],
) {
    let (i, cluster) = (entry.number, &entry.config.name);
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
    merge_scope(
        codes,
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
    if entry.config.tls.is_some() {
        collect_ssl(
            out,
            |w| &w.cluster_ssl,
            i,
            (&prefix, "cluster.", &labels),
            workers,
        );
    }
    if !shared {
        return;
    }
    // Counts every worker shares: the circuit breakers', the outlier detector's and the
    // health checker's.
    let mut shared: Vec<(String, bool, u64)> = Vec::new();
    entry
        .breakers
        .gauges(|n, v| shared.push((format!("circuit_breakers.{n}"), true, v)));
    if let Some(d) = &entry.detector {
        d.each_stat(|n, gauge, v| shared.push((format!("outlier_detection.{n}"), gauge, v)));
    }
    if let Some(h) = &entry.health {
        h.each(|n, gauge, v| shared.push((format!("health_check.{n}"), gauge, v)));
    }
    for (name, gauge, v) in shared {
        out.push(Stat {
            name: format!("{prefix}{name}"),
            tag_name: format!("cluster.{name}"),
            prom_name: sanitize(&format!("envoy_cluster_{name}")),
            labels: labels.to_vec(),
            value: match gauge {
                true => Value::Gauge(v.into()),
                false => Value::Counter(v),
            },
            used: v != 0,
        });
    }
    let set = layout.hosts.current(i);
    let count = |class| set.hosts.iter().filter(|h| h.class() == class).count();
    for (name, n) in [
        ("membership_total", set.hosts.len()),
        ("membership_healthy", count(HostClass::Healthy)),
        ("membership_degraded", count(HostClass::Degraded)),
        ("membership_excluded", count(HostClass::Excluded)),
    ] {
        out.push(Stat {
            name: format!("{prefix}{name}"),
            tag_name: format!("cluster.{name}"),
            prom_name: format!("envoy_cluster_{name}"),
            labels: labels.to_vec(),
            value: Value::Gauge(n as i128),
            used: n != 0,
        });
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
    let total_connections: i128 = out
        .iter()
        .filter(|s| s.name.starts_with("listener.") && s.name.ends_with(".downstream_cx_active"))
        .map(|s| match s.value {
            Value::Gauge(v) => v,
            _ => 0,
        })
        .sum();
    let gauge = |v: i128| Value::Gauge(v);
    let (removed, now) = (&layout.removed_listeners, std::time::Instant::now());
    let logs = server.access_logs.stats();
    let load = |c: &AtomicU64| Value::Counter(c.load(Relaxed));
    let computed_stats = [
        ("server.live", gauge(server.live.into())),
        ("server.state", gauge(server.state.into())),
        ("server.uptime", gauge(server.uptime_s as i128)),
        ("server.concurrency", gauge(server.concurrency as i128)),
        (
            "server.config_reload_total",
            Value::Counter(server.reloads[0]),
        ),
        (
            "server.config_reload_failed",
            Value::Counter(server.reloads[1]),
        ),
        (
            "server.last_config_reload_time",
            gauge(server.reloads[2].into()),
        ),
        ("server.memory_allocated", gauge(allocated.into())),
        ("server.memory_heap_size", gauge(heap.into())),
        ("server.total_connections", gauge(total_connections)),
        (
            "cluster_manager.active_clusters",
            gauge(layout.in_force.len() as i128),
        ),
        (
            "listener_manager.total_listeners_active",
            gauge(removed.iter().filter(|r| r.is_none()).count() as i128),
        ),
        (
            "listener_manager.total_listeners_draining",
            gauge(removed.iter().flatten().filter(|end| now < **end).count() as i128),
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
            gauge(server.access_logs.buffered_bytes() as i128),
        ),
    ];
    out.extend(
        computed_stats
            .into_iter()
            .map(|(name, v)| computed(name, v)),
    );
}
