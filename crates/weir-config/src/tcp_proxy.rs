//! `envoy.filters.network.tcp_proxy`: a filter chain that forwards the connection's bytes to a
//! cluster, both ways, without reading them (with the TLS inspector and `server_names`, TLS
//! passthrough routed by SNI).

use std::time::Duration;

use crate::cluster::ClusterNames;
use crate::model::TcpProxy;
use crate::reader::{Cx, Field, Obj, join};

/// The `@type` of the TCP proxy's `typed_config`.
pub(crate) const TCP_PROXY_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

/// `TcpProxy` fields weir does not support yet.
const TCP_PROXY_ENVOY: &[&str] = &[
    "on_demand",
    "metadata_match",
    "downstream_idle_timeout",
    "upstream_idle_timeout",
    "hash_policy",
    "tunneling_config",
    "max_downstream_connection_duration",
    "access_log_flush_interval",
    "flush_access_log_on_connected",
    "access_log_options",
    "backoff_options",
    "proxy_protocol_tlvs",
    "max_early_data_bytes",
    "upstream_connect_mode",
];

/// Envoy's default `idle_timeout` for a TCP proxy: one hour.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The TCP proxy's `typed_config`.
pub(crate) fn tcp_proxy(cx: &mut Cx, f: &Field<'_>, clusters: &ClusterNames) -> Option<TcpProxy> {
    let mut o = Obj::new(cx, f, TCP_PROXY_ENVOY)?;
    o.get(cx, "@type");
    let access_log = match o.get(cx, "access_log") {
        Some(a) => crate::access_log::read_all(cx, &a),
        None => Some(Vec::new()),
    };
    let stat_prefix = o.required_string(cx, "stat_prefix");
    let cluster = o.get(cx, "cluster");
    let weighted = o.get(cx, "weighted_clusters");
    let clusters = match (cluster, weighted) {
        (Some(c), None) => clusters.resolve(cx, &c).map(|i| vec![(i, 1)]),
        (None, Some(w)) => weighted_clusters(cx, &w, clusters),
        (Some(_), Some(w)) => {
            cx.error(&w.path, "give `cluster` or `weighted_clusters`, not both");
            None
        }
        (None, None) => {
            cx.error(
                o.path(),
                "a TCP proxy needs `cluster` or `weighted_clusters`",
            );
            None
        }
    };
    let idle_timeout = match o.get(cx, "idle_timeout") {
        Some(t) => t.duration(cx).map(|d| (!d.is_zero()).then_some(d)),
        None => Some(Some(DEFAULT_IDLE_TIMEOUT)),
    };
    let max_connect_attempts = match o.get(cx, "max_connect_attempts") {
        Some(m) => match m.u32(cx) {
            Some(0) => {
                cx.error(&m.path, "max_connect_attempts must be at least 1");
                None
            }
            n => n,
        },
        None => Some(1),
    };
    o.finish(cx);
    Some(TcpProxy {
        stat_prefix: stat_prefix?,
        clusters: clusters?,
        idle_timeout: idle_timeout?,
        max_connect_attempts: max_connect_attempts?,
        access_log: access_log?,
    })
}

/// `weighted_clusters.clusters[]`: each `name` and `weight` (at least 1).
fn weighted_clusters(
    cx: &mut Cx,
    f: &Field<'_>,
    names: &ClusterNames,
) -> Option<Vec<(usize, u32)>> {
    let mut o = Obj::new(cx, f, &["runtime_key_prefix"])?;
    let items = o.list(cx, "clusters");
    o.finish(cx);
    if items.is_empty() {
        cx.error(&join(&f.path, "clusters"), "list at least one cluster");
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in &items {
        let Some(mut c) = Obj::new(cx, item, &["metadata_match"]) else {
            ok = false;
            continue;
        };
        let index = c.required(cx, "name").and_then(|n| names.resolve(cx, &n));
        let weight = match c.required(cx, "weight") {
            Some(w) => match w.u32(cx) {
                Some(0) => {
                    cx.error(&w.path, "weight must be at least 1");
                    None
                }
                n => n,
            },
            None => None,
        };
        c.finish(cx);
        match (index, weight) {
            (Some(i), Some(w)) => out.push((i, w)),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}
