//! A cluster's DNS fields (`dns_lookup_family`, `dns_refresh_rate`, the resolver…), read for
//! `STRICT_DNS` and `LOGICAL_DNS` clusters.

use std::time::Duration;

use crate::bootstrap::{Role, address};
use crate::model::{DnsLookupFamily, DnsResolverConfig};
use crate::reader::{Cx, Field, Obj, typed_extension};

/// Envoy's default `dns_refresh_rate`.
const DEFAULT_REFRESH_RATE: Duration = Duration::from_secs(5);
/// The shortest refresh Envoy accepts (`dns_refresh_rate` must be > 1 ms).
const MIN_REFRESH_RATE: Duration = Duration::from_millis(1);

const CARES_TYPE: &str =
    "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig";
const GETADDRINFO_TYPE: &str = "type.googleapis.com/envoy.extensions.network.dns_resolver.getaddrinfo.v3.GetAddrInfoDnsResolverConfig";

/// The DNS fields of a cluster, before its type says whether they apply.
pub(crate) struct DnsFields {
    pub(crate) lookup_family: DnsLookupFamily,
    pub(crate) refresh_rate: Duration,
    pub(crate) failure_refresh: Option<(Duration, Duration)>,
    pub(crate) respect_ttl: bool,
    pub(crate) jitter: Duration,
    pub(crate) resolver: DnsResolverConfig,
}

/// `Cluster.DnsLookupFamily`'s values.
const CLUSTER_FAMILIES: &[(&str, u64)] = &[
    ("AUTO", 0),
    ("V4_ONLY", 1),
    ("V6_ONLY", 2),
    ("V4_PREFERRED", 3),
    ("ALL", 4),
];
/// `clusters.common.dns.v3.DnsLookupFamily`'s (the `DnsCluster` extension's): the same names,
/// numbered from 1.
const DNS_CLUSTER_FAMILIES: &[(&str, u64)] = &[
    ("UNSPECIFIED", 0),
    ("AUTO", 1),
    ("V4_ONLY", 2),
    ("V6_ONLY", 3),
    ("V4_PREFERRED", 4),
    ("ALL", 5),
];

const DNS_CLUSTER_TYPE: &str = "type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster";

/// Reads a cluster's DNS fields from `o` (every one of them, so each is checked even on a
/// STATIC cluster, where Envoy ignores them).
pub(crate) fn fields(cx: &mut Cx, o: &mut Obj<'_>) -> Option<DnsFields> {
    let lookup_family = lookup_family(cx, o, CLUSTER_FAMILIES);
    let timing = timing(cx, o);
    let resolver = resolver(cx, o);
    let (refresh_rate, failure_refresh, respect_ttl, jitter) = timing?;
    Some(DnsFields {
        lookup_family: lookup_family?,
        refresh_rate,
        failure_refresh,
        respect_ttl,
        jitter,
        resolver: resolver?,
    })
}

/// `cluster_type` naming `envoy.clusters.dns` (`extensions.clusters.dns.v3.DnsCluster`):
/// whether it is logical (`all_addresses_in_single_endpoint`), and its DNS fields.
pub(crate) fn cluster_type(cx: &mut Cx, f: &Field<'_>) -> Option<(bool, DnsFields)> {
    let (typed, url) = typed_extension(cx, f)?;
    let url = url.as_str();
    if url != DNS_CLUSTER_TYPE {
        cx.error(
            &typed.path,
            format!("cluster_type `{url}` is not supported yet (weir supports envoy.clusters.dns: `{DNS_CLUSTER_TYPE}`)"),
        );
        return None;
    }
    let mut o = Obj::new(cx, &typed, &[])?;
    o.get(cx, "@type");
    let lookup_family = lookup_family(cx, &mut o, DNS_CLUSTER_FAMILIES);
    let timing = timing(cx, &mut o);
    let resolver = match o.get(cx, "typed_dns_resolver_config") {
        Some(t) => typed_resolver(cx, &t),
        None => Some(DnsResolverConfig::default()),
    };
    let logical = o.flag(cx, "all_addresses_in_single_endpoint");
    o.finish(cx);
    let (refresh_rate, failure_refresh, respect_ttl, jitter) = timing?;
    Some((
        logical?,
        DnsFields {
            lookup_family: lookup_family?,
            refresh_rate,
            failure_refresh,
            respect_ttl,
            jitter,
            resolver: resolver?,
        },
    ))
}

fn lookup_family(
    cx: &mut Cx,
    o: &mut Obj<'_>,
    values: &[(&'static str, u64)],
) -> Option<DnsLookupFamily> {
    match o.get(cx, "dns_lookup_family") {
        Some(f) => f
            .enumeration(cx, "dns_lookup_family", values)
            .map(|name| match name {
                "V4_ONLY" => DnsLookupFamily::V4Only,
                "V6_ONLY" => DnsLookupFamily::V6Only,
                "V4_PREFERRED" => DnsLookupFamily::V4Preferred,
                "ALL" => DnsLookupFamily::All,
                _ => DnsLookupFamily::Auto,
            }),
        None => Some(DnsLookupFamily::Auto),
    }
}

/// When to look again: `dns_refresh_rate`, `dns_failure_refresh_rate`, `respect_dns_ttl`,
/// `dns_jitter`.
type Timing = (Duration, Option<(Duration, Duration)>, bool, Duration);

fn timing(cx: &mut Cx, o: &mut Obj<'_>) -> Option<Timing> {
    let refresh_rate = match o.get(cx, "dns_refresh_rate") {
        Some(f) => f.duration(cx).and_then(|d| {
            if d < MIN_REFRESH_RATE {
                cx.error(&f.path, "dns_refresh_rate must be at least 1ms");
                None
            } else {
                Some(d)
            }
        }),
        None => Some(DEFAULT_REFRESH_RATE),
    };
    let failure_refresh = match o.get(cx, "dns_failure_refresh_rate") {
        Some(f) => failure_rate(cx, &f).map(Some),
        None => Some(None),
    };
    let respect_ttl = o.flag(cx, "respect_dns_ttl");
    let jitter = match o.get(cx, "dns_jitter") {
        Some(f) => f.duration(cx),
        None => Some(Duration::ZERO),
    };
    Some((refresh_rate?, failure_refresh?, respect_ttl?, jitter?))
}

/// `dns_failure_refresh_rate` (`Cluster.RefreshRate`): the back-off's base and maximum.
fn failure_rate(cx: &mut Cx, f: &Field<'_>) -> Option<(Duration, Duration)> {
    let mut o = Obj::new(cx, f, &[])?;
    let base = o.required(cx, "base_interval").and_then(|b| {
        let d = b.duration(cx)?;
        if d < MIN_REFRESH_RATE {
            cx.error(&b.path, "base_interval must be at least 1ms");
            return None;
        }
        Some(d)
    });
    let max = o.get(cx, "max_interval").map(|m| (m.duration(cx), m.path));
    o.finish(cx);
    let base = base?;
    match max {
        None => Some((base, base * 10)),
        Some((Some(max), path)) => {
            if max < base {
                cx.error(&path, "max_interval must be at least base_interval");
                return None;
            }
            Some((base, max))
        }
        Some((None, _)) => None,
    }
}

/// The resolver from whichever of Envoy's three forms the cluster uses (the newest wins, as
/// in Envoy: `typed_dns_resolver_config`, then `dns_resolution_config`, then the deprecated
/// `dns_resolvers` and `use_tcp_for_dns_lookups`).
fn resolver(cx: &mut Cx, o: &mut Obj<'_>) -> Option<DnsResolverConfig> {
    let mut deprecated = DnsResolverConfig::default();
    let mut ok = true;
    for a in o.list(cx, "dns_resolvers") {
        match address(cx, &a, Role::Resolver) {
            Some(server) => deprecated.servers.push(server),
            None => ok = false,
        }
    }
    match o.flag(cx, "use_tcp_for_dns_lookups") {
        Some(tcp) => deprecated.use_tcp = tcp,
        None => ok = false,
    }
    let resolution = o
        .get(cx, "dns_resolution_config")
        .map(|f| resolution_config(cx, &f));
    let typed = o
        .get(cx, "typed_dns_resolver_config")
        .map(|f| typed_resolver(cx, &f));
    if !ok {
        return None;
    }
    match (typed, resolution) {
        (Some(typed), _) => typed,
        (None, Some(resolution)) => resolution,
        (None, None) => Some(deprecated),
    }
}

/// `config.core.v3.DnsResolutionConfig`: `resolvers` and `dns_resolver_options`.
fn resolution_config(cx: &mut Cx, f: &Field<'_>) -> Option<DnsResolverConfig> {
    let mut o = Obj::new(cx, f, &[])?;
    let config = resolvers_and_options(cx, &mut o);
    o.finish(cx);
    config
}

fn resolvers_and_options(cx: &mut Cx, o: &mut Obj<'_>) -> Option<DnsResolverConfig> {
    let mut config = DnsResolverConfig::default();
    let mut ok = true;
    for a in o.list(cx, "resolvers") {
        match address(cx, &a, Role::Resolver) {
            Some(server) => config.servers.push(server),
            None => ok = false,
        }
    }
    if let Some(options) = o.get(cx, "dns_resolver_options") {
        let mut oo = Obj::new(cx, &options, &[])?;
        config.use_tcp = oo.flag(cx, "use_tcp_for_dns_lookups")?;
        config.no_default_search_domain = oo.flag(cx, "no_default_search_domain")?;
        oo.finish(cx);
    }
    ok.then_some(config)
}

/// `typed_dns_resolver_config`: c-ares' config (its resolvers and options, and its query
/// timeout and tries), or getaddrinfo's (the system resolver).
fn typed_resolver(cx: &mut Cx, f: &Field<'_>) -> Option<DnsResolverConfig> {
    let (typed, url) = typed_extension(cx, f)?;
    let url = url.as_str();
    match url {
        CARES_TYPE => {
            let mut o = Obj::new(
                cx,
                &typed,
                &[
                    "use_resolvers_as_fallback",
                    "filter_unroutable_families",
                    "udp_max_queries",
                    "rotate_nameservers",
                    "edns0_max_payload_size",
                    "max_udp_channel_duration",
                    "reinit_channel_on_timeout",
                ],
            )?;
            o.get(cx, "@type");
            let config = resolvers_and_options(cx, &mut o);
            let timeout = match o.get(cx, "query_timeout_seconds") {
                Some(t) => t.u64(cx).map(|s| Some(Duration::from_secs(s.max(1)))),
                None => Some(None),
            };
            let tries = match o.get(cx, "query_tries") {
                Some(t) => t.u32(cx).map(|n| Some(n.max(1))),
                None => Some(None),
            };
            o.finish(cx);
            Some(DnsResolverConfig {
                query_timeout: timeout?,
                query_tries: tries?,
                ..config?
            })
        }
        GETADDRINFO_TYPE => {
            let mut o = Obj::new(cx, &typed, &["num_resolver_threads"])?;
            o.get(cx, "@type");
            o.get(cx, "num_retries");
            o.finish(cx);
            Some(DnsResolverConfig::default())
        }
        other => {
            cx.error(
                &typed.path,
                format!(
                    "DNS resolver type `{other}` is not supported (weir supports c-ares' \
                     `CaresDnsResolverConfig` and `GetAddrInfoDnsResolverConfig`)"
                ),
            );
            None
        }
    }
}
