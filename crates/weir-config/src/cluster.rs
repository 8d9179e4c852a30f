//! `static_resources.clusters[]` (`config.cluster.v3.Cluster`) and the name index routes use.

use std::collections::HashMap;
use std::time::Duration;

use crate::bootstrap::{Role, address, dns_address};
use crate::load_assignment;
use crate::model::{Cluster, Discovery, DnsDiscovery, DnsTarget, Endpoint, LbPolicy, LoadSpread};
use crate::reader::{Cx, Field, Obj, join};

/// `config.cluster.v3.Cluster` fields weir does not support yet.
const CLUSTER_ENVOY: &[&str] = &[
    "transport_socket_matches",
    "alt_stat_name",
    "eds_cluster_config",
    "max_requests_per_connection",
    "common_http_protocol_options",
    "http2_protocol_options",
    "wait_for_warm_on_init",
    "upstream_bind_config",
    "lb_subset_config",
    "metadata",
    "protocol_selection",
    "upstream_connection_options",
    "close_connections_on_host_health_failure",
    "ignore_health_on_host_removal",
    "filters",
    "lrs_server",
    "track_timeout_budgets",
    "upstream_config",
    "track_cluster_stats",
    "preconnect_policy",
    "connection_pool_per_downstream_connection",
    "transport_socket_matcher",
    "stats_matcher",
    "per_connection_buffer_high_watermark_timeout",
    "lrs_report_endpoint_metrics",
    "queuing_policies",
];

/// Envoy's default `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Envoy's default `per_connection_buffer_limit_bytes` (1 MiB).
pub(crate) const DEFAULT_BUFFER_LIMIT: u32 = 1024 * 1024;

/// Cluster names → indexes into `static_resources.clusters`, for routes.
#[derive(Debug, Default)]
pub(crate) struct ClusterNames {
    by_name: HashMap<String, usize>,
    in_order: Vec<String>,
}

impl ClusterNames {
    /// The index of the cluster `f` names, or an error at `f`'s path.
    pub(crate) fn resolve(&self, cx: &mut Cx, f: &Field<'_>) -> Option<usize> {
        let name = f.string(cx)?;
        if name.is_empty() {
            cx.error(&f.path, "the cluster name must not be empty");
            return None;
        }
        if let Some(&i) = self.by_name.get(&name) {
            return Some(i);
        }
        let known = if self.in_order.is_empty() {
            "static_resources.clusters is empty".to_owned()
        } else {
            format!(
                "static_resources.clusters has: {}",
                self.in_order.join(", ")
            )
        };
        cx.error(&f.path, format!("unknown cluster `{name}` ({known})"));
        None
    }
}

/// Collects cluster names without validating anything (that happens in [`read_all`]); the first
/// cluster of a name wins.
pub(crate) fn names(items: &[Field<'_>]) -> ClusterNames {
    let mut names = ClusterNames::default();
    for (i, item) in items.iter().enumerate() {
        if let Some(name) = item.value.get("name").and_then(|n| n.as_str())
            && !name.is_empty()
            && !names.by_name.contains_key(name)
        {
            names.by_name.insert(name.to_owned(), i);
            names.in_order.push(name.to_owned());
        }
    }
    names
}

/// Reads every cluster; checks names are unique.
pub(crate) fn read_all(cx: &mut Cx, items: &[Field<'_>]) -> Vec<Cluster> {
    let mut clusters = Vec::with_capacity(items.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let cluster = read(cx, item);
        // The name is checked even for a cluster with errors of its own, so that one run
        // reports everything (a missing or empty name was reported by `read`).
        let name = item
            .value
            .get("name")
            .and_then(|n| n.as_str())
            .filter(|n| !n.is_empty());
        if let Some(name) = name {
            if let Some(first) = seen.get(name) {
                cx.error(
                    &join(&item.path, "name"),
                    format!("duplicate cluster name `{name}` (also the name of clusters[{first}])"),
                );
            } else {
                seen.insert(name.to_owned(), i);
            }
        }
        clusters.extend(cluster);
    }
    clusters
}

fn read(cx: &mut Cx, f: &Field<'_>) -> Option<Cluster> {
    let mut o = Obj::new(cx, f, CLUSTER_ENVOY)?;
    let name = o.required_string(cx, "name");
    let has_type = f.value.get("type").is_some();
    let kind = match o.get(cx, "type") {
        Some(t) => t.enumeration_subset(
            cx,
            "cluster type",
            &[
                ("STATIC", 0),
                ("STRICT_DNS", 1),
                ("LOGICAL_DNS", 2),
                ("EDS", 3),
                ("ORIGINAL_DST", 4),
            ],
            &["STATIC", "STRICT_DNS", "LOGICAL_DNS", "ORIGINAL_DST"],
        ),
        None => Some("STATIC"),
    };
    // `cluster_type: envoy.clusters.dns` instead of `type` (Envoy's newer form).
    let typed_dns = o.get(cx, "cluster_type").map(|f| {
        if f.value.is_object() && has_type {
            cx.error(&f.path, "only one of `type` and `cluster_type` may be set");
            return None;
        }
        crate::dns::cluster_type(cx, &f)
    });
    let kind = match &typed_dns {
        Some(Some((true, _))) => Some("LOGICAL_DNS"),
        Some(Some((false, _))) => Some("STRICT_DNS"),
        Some(None) => None,
        None => kind,
    };
    let ok = kind.is_some();
    let dns = kind.is_some_and(|k| k.ends_with("_DNS"));
    let original_dst = kind == Some("ORIGINAL_DST");
    // An unsupported type's endpoints may be names: having reported the type, don't also
    // report each.
    let endpoint_role = if ok {
        Role::Endpoint
    } else {
        Role::EndpointOfRejectedCluster
    };
    let connect_timeout = match o.get(cx, "connect_timeout") {
        Some(t) => match t.duration(cx) {
            Some(d) if d.is_zero() => {
                cx.error(&t.path, "connect_timeout must be greater than 0s");
                None
            }
            d => d,
        },
        None => Some(DEFAULT_CONNECT_TIMEOUT),
    };
    let lb_policy = crate::lb::policy(cx, &mut o).and_then(|lb| {
        // Envoy's rule: CLUSTER_PROVIDED and ORIGINAL_DST go together.
        let provided = lb == LbPolicy::ClusterProvided;
        if provided != original_dst && ok {
            let path = join(o.path(), "lb_policy");
            let why = match provided {
                true => "lb_policy CLUSTER_PROVIDED is only for an ORIGINAL_DST cluster",
                false => "an ORIGINAL_DST cluster needs lb_policy CLUSTER_PROVIDED",
            };
            cx.error(&path, why);
            return None;
        }
        Some(lb)
    });
    let assignment = o.get(cx, "load_assignment");
    let mut load_spread = Some(LoadSpread::default());
    let (endpoints, discovery) = if dns {
        let targets = match &assignment {
            Some(la) => load_assignment::read(cx, la, &|cx, a| dns_address(cx, a)).map(
                |(targets, policy)| {
                    load_spread = Some(policy);
                    targets
                },
            ),
            None => Some(Vec::new()),
        };
        let logical = kind == Some("LOGICAL_DNS");
        let targets = targets.and_then(|targets| {
            if logical && targets.len() != 1 {
                let path = assignment.as_ref().map_or(o.path(), |a| &a.path).to_owned();
                cx.error(
                    &path,
                    "a LOGICAL_DNS cluster needs exactly one lb_endpoint (it is one logical host)",
                );
                return None;
            }
            Some(targets)
        });
        (Some(Vec::new()), targets.map(|t| (logical, t)))
    } else {
        let endpoints = match &assignment {
            Some(la) => load_assignment::read(cx, la, &|cx, a| address(cx, a, endpoint_role)).map(
                |(endpoints, policy)| {
                    load_spread = Some(policy);
                    endpoints
                },
            ),
            None => Some(Vec::new()),
        };
        let endpoints = endpoints.map(|all| {
            all.into_iter()
                .map(|e| Endpoint {
                    address: e.address,
                    weight: e.weight,
                    hostname: e.hostname,
                    placement: e.placement,
                    health: e.health,
                })
                .collect()
        });
        (endpoints, None)
    };
    if original_dst && endpoints.as_ref().is_some_and(|e| !e.is_empty()) {
        let path = join(o.path(), "load_assignment");
        cx.error(
            &path,
            "an ORIGINAL_DST cluster has no endpoints (its hosts are the requests' destinations)",
        );
    }
    let per_connection_buffer_limit_bytes = match o.get(cx, "per_connection_buffer_limit_bytes") {
        Some(b) => b.u32(cx),
        None => Some(DEFAULT_BUFFER_LIMIT),
    };
    let http = crate::key_format::cluster_http_options(cx, &mut o);
    let auto_san = http
        .as_ref()
        .and_then(|h| h.auto_sni.as_ref())
        .is_some_and(|a| a.san_validation);
    let tls = match o.get(cx, "transport_socket") {
        Some(t) => crate::tls_upstream::transport_socket(cx, &t, auto_san),
        None => Some(None),
    };
    let original = crate::original_dst::read(cx, &mut o);
    let circuit_breakers = o.get(cx, "circuit_breakers");
    let circuit_breakers = crate::circuit_breakers::read(cx, circuit_breakers.as_ref());
    let outlier_detection = match o.get(cx, "outlier_detection") {
        Some(f) => crate::outlier::read(cx, &f).map(Some),
        None => Some(None),
    };
    let mut health_checks = Some(Vec::new());
    let items = o.list(cx, "health_checks");
    if let Some(second) = items.get(1) {
        cx.error(
            &second.path,
            "one health check per cluster (Envoy supports no more)",
        );
        health_checks = None;
    }
    for item in items {
        match (crate::health_check::read(cx, &item), &mut health_checks) {
            (Some(h), Some(list)) => list.push(h),
            _ => health_checks = None,
        }
    }
    let common_lb = o.get(cx, "common_lb_config");
    let common_lb = crate::lb::common_lb_config(cx, common_lb.as_ref());
    // Read last, so the list of fields in an unknown-field error keeps its order.
    let dns_fields = crate::dns::fields(cx, &mut o);
    let dns_fields = match typed_dns {
        Some(typed) => dns_fields.and(typed.map(|(_, fields)| fields)),
        None => dns_fields,
    };
    o.finish(cx);
    if !ok {
        return None;
    }
    let discovery = match (dns, discovery, dns_fields) {
        (false, _, Some(_)) if original_dst => Discovery::OriginalDst(original?),
        (false, _, Some(_)) => Discovery::Static,
        (true, Some((logical, targets)), Some(d)) => Discovery::Dns(DnsDiscovery {
            logical,
            targets: targets
                .into_iter()
                .map(|e| DnsTarget {
                    name: e.address.0,
                    port: e.address.1,
                    weight: e.weight,
                    hostname: e.hostname,
                    placement: e.placement,
                    health: e.health,
                })
                .collect(),
            lookup_family: d.lookup_family,
            refresh_rate: d.refresh_rate,
            failure_refresh: d.failure_refresh,
            respect_ttl: d.respect_ttl,
            jitter: d.jitter,
            resolver: d.resolver,
        }),
        _ => return None,
    };
    Some(Cluster {
        name: name?,
        connect_timeout: connect_timeout?,
        lb_policy: lb_policy?,
        endpoints: endpoints?,
        discovery,
        per_connection_buffer_limit_bytes: per_connection_buffer_limit_bytes?,
        header_key_format: http.as_ref()?.header_key_format,
        auto_sni: http?.auto_sni,
        tls: tls?,
        circuit_breakers: circuit_breakers?,
        outlier_detection: outlier_detection?,
        healthy_panic_threshold: common_lb?.healthy_panic_threshold,
        load_spread: LoadSpread {
            locality_weighted: common_lb?.locality_weighted,
            ..load_spread?
        },
        health_checks: health_checks?,
    })
}
