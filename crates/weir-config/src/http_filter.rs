//! The HTTP filters before the router (`http_filters[]`: fault, buffer, health_check) and
//! `typed_per_filter_config` on routes, virtual hosts and route configurations.
//!
//! Envoy picks a filter by its `typed_config."@type"`, and a per-route config by the type of its
//! `Any`; weir does the same, and additionally checks that a per-route config fits the filter its
//! key names (Envoy accepts a mismatch and ignores it at run time).

use serde_json::Value;

use crate::cluster::ClusterNames;
use crate::listener::{ROUTER_ENVOY, ROUTER_TYPE, type_name, type_url};
use crate::model::{
    AbortKind, BufferConfig, DelayKind, FaultAbort, FaultConfig, FaultDelay, FaultRuntime,
    FilterConfig, Fraction, HealthCheckConfig, HttpFilter, PerFilter, PerFilterConfig,
};
use crate::reader::{Cx, Field, Obj, describe, join};
use crate::route_match::header_matcher;

/// The `@type` of the fault filter's config (and of its per-route config).
pub(crate) const FAULT_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
/// The `@type` of the buffer filter's config.
pub(crate) const BUFFER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer";
/// The `@type` of the buffer filter's per-route config.
pub(crate) const BUFFER_PER_ROUTE_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute";
/// The `@type` of the health check filter's config.
pub(crate) const HEALTH_CHECK_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck";
/// The `@type` of `config.route.v3.FilterConfig`, the per-route wrapper any filter takes.
pub(crate) const FILTER_CONFIG_TYPE: &str =
    "type.googleapis.com/envoy.config.route.v3.FilterConfig";

/// `HTTPFault`'s `*_runtime` fields that weir reads nothing from: the response rate limit is
/// rejected, and a gRPC abort's status does not show over HTTP/1 (weir answers 200, as Envoy
/// does). They are checked to be strings and accepted.
const FAULT_UNUSED_RUNTIME_KEYS: &[&str] = &[
    "response_rate_limit_percent_runtime",
    "abort_grpc_status_runtime",
];

/// What kind of filter an `http_filters[]` entry is, by its `@type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Router,
    Fault,
    Buffer,
    HealthCheck,
    /// A type weir does not support (reported where `http_filters` is read).
    Other,
}

impl Kind {
    fn of(url: &str) -> Kind {
        let name = type_name(url);
        if name == type_name(ROUTER_TYPE) {
            Kind::Router
        } else if name == type_name(FAULT_TYPE) {
            Kind::Fault
        } else if name == type_name(BUFFER_TYPE) {
            Kind::Buffer
        } else if name == type_name(HEALTH_CHECK_TYPE) {
            Kind::HealthCheck
        } else {
            Kind::Other
        }
    }

    /// For messages: "the fault filter".
    fn describe(self) -> &'static str {
        match self {
            Kind::Router => "the router",
            Kind::Fault => "the fault filter",
            Kind::Buffer => "the buffer filter",
            Kind::HealthCheck => "the health_check filter",
            Kind::Other => "an unsupported filter",
        }
    }
}

/// The names of one connection manager's `http_filters`, with their kinds, read from the raw
/// document before `route_config` (which comes first in the manager) so that
/// `typed_per_filter_config` keys can be checked against them.
#[derive(Debug, Default)]
pub(crate) struct FilterNames {
    filters: Vec<(String, Kind)>,
}

impl FilterNames {
    /// The kinds of the filters named `name` (Envoy allows two filters with one name).
    fn kinds(&self, name: &str) -> Vec<Kind> {
        self.filters
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, k)| *k)
            .collect()
    }
}

/// `value.name` or `value.camelName`, whichever is there.
fn raw<'v>(value: &'v Value, snake: &str, camel: &str) -> Option<&'v Value> {
    value
        .get(snake)
        .filter(|v| !v.is_null())
        .or_else(|| value.get(camel))
}

/// The filter names of the connection manager whose `typed_config` is `hcm`.
pub(crate) fn names(hcm: &Value) -> FilterNames {
    let mut names = FilterNames::default();
    let Some(Value::Array(items)) = raw(hcm, "http_filters", "httpFilters") else {
        return names;
    };
    for item in items {
        let Some(name) = item.get("name").and_then(Value::as_str) else {
            continue;
        };
        // A TypedStruct names the type it carries in `type_url`.
        let kind = raw(item, "typed_config", "typedConfig")
            .and_then(|t| {
                let url = t.get("@type").and_then(Value::as_str)?;
                if url.ends_with("TypedStruct") {
                    t.get("type_url").and_then(Value::as_str)
                } else {
                    Some(url)
                }
            })
            .map_or(Kind::Other, Kind::of);
        names.filters.push((name.to_owned(), kind));
    }
    names
}

/// One `http_filters[]` entry: the router or a filter weir supports, picked by its `@type`.
pub(crate) fn http_filter(
    cx: &mut Cx,
    f: &Field<'_>,
    clusters: &ClusterNames,
) -> Option<HttpFilter> {
    let mut o = Obj::new(cx, f, &["config_discovery"])?;
    let name = o.required_string(cx, "name");
    let typed_config = o.get(cx, "typed_config");
    // `is_optional` only lets Envoy skip a filter type it does not know; weir rejects types it
    // does not know either way, so the flag changes nothing.
    let is_optional_ok = o
        .get(cx, "is_optional")
        .is_none_or(|i| i.bool(cx).is_some());
    let disabled_field = o.get(cx, "disabled");
    let disabled = match &disabled_field {
        Some(d) => d.bool(cx),
        None => Some(false),
    };
    o.finish(cx);
    let Some(typed_config) = typed_config else {
        cx.error(
            &join(&f.path, "typed_config"),
            format!(
                "`typed_config` is required: weir picks the filter by its @type (the router's is {ROUTER_TYPE})"
            ),
        );
        return None;
    };
    let typed = crate::listener::open_typed_config(cx, &typed_config)?;
    let (url, typed_config) = (typed.url, typed.message);
    let config = match Kind::of(&url) {
        Kind::Router => {
            if disabled == Some(true)
                && let Some(d) = &disabled_field
            {
                cx.error(
                    &d.path,
                    "the router (the last, terminal filter) cannot be disabled",
                );
            }
            let mut router = Obj::new(cx, &typed_config, ROUTER_ENVOY)?;
            router.get(cx, "@type");
            let suppress = router.get(cx, "suppress_envoy_headers").map(|s| s.bool(cx));
            if !router.finish(cx) || disabled != Some(false) || !is_optional_ok {
                return None;
            }
            return Some(HttpFilter::Router {
                name: name?,
                suppress_envoy_headers: suppress.unwrap_or(Some(false))?,
            });
        }
        Kind::Fault => fault(cx, &typed_config, clusters).map(FilterConfig::Fault),
        Kind::Buffer => buffer(cx, &typed_config, true).map(FilterConfig::Buffer),
        Kind::HealthCheck => {
            health_check(cx, &typed_config, clusters).map(FilterConfig::HealthCheck)
        }
        Kind::Other => {
            cx.error(
                &typed.url_path,
                format!(
                    "HTTP filter type `{url}` is not supported yet (weir supports the router and, before it, the fault, buffer and health_check filters)"
                ),
            );
            None
        }
    };
    if !is_optional_ok {
        return None;
    }
    Some(HttpFilter::Filter {
        name: name?,
        disabled: disabled?,
        config: config?,
    })
}

/// `envoy.extensions.filters.http.fault.v3.HTTPFault` (the filter's config, or a per-route one).
fn fault(cx: &mut Cx, f: &Field<'_>, clusters: &ClusterNames) -> Option<FaultConfig> {
    let mut o = Obj::new(cx, f, &[])?;
    o.get(cx, "@type");
    let delay = match o.get(cx, "delay") {
        Some(d) => fault_delay(cx, &d).map(Some),
        None => Some(None),
    };
    let abort = match o.get(cx, "abort") {
        Some(a) => fault_abort(cx, &a).map(Some),
        None => Some(None),
    };
    let upstream_cluster = match o.get(cx, "upstream_cluster") {
        Some(u) => match u.string(cx) {
            // proto3: an empty string is "not set".
            Some(name) if name.is_empty() => Some(None),
            Some(name) => clusters.resolve(cx, &u).map(|_| Some(name)),
            None => None,
        },
        None => Some(None),
    };
    let mut headers = Some(Vec::new());
    for h in o.list(cx, "headers") {
        match (header_matcher(cx, &h), &mut headers) {
            (Some(m), Some(list)) => list.push(m),
            _ => headers = None,
        }
    }
    let mut downstream_nodes = Some(Vec::new());
    for n in o.list(cx, "downstream_nodes") {
        match (n.string(cx), &mut downstream_nodes) {
            (Some(s), Some(list)) => list.push(s),
            _ => downstream_nodes = None,
        }
    }
    let max_active_faults = match o.get(cx, "max_active_faults") {
        Some(m) => m.u32(cx).map(Some),
        None => Some(None),
    };
    let mut ok = true;
    for key in FAULT_UNUSED_RUNTIME_KEYS {
        if let Some(k) = o.get(cx, key) {
            ok &= k.string(cx).is_some();
        }
    }
    let mut runtime = FaultRuntime::default();
    for (name, key) in [
        ("delay_percent_runtime", &mut runtime.delay_percent),
        ("abort_percent_runtime", &mut runtime.abort_percent),
        ("delay_duration_runtime", &mut runtime.delay_duration),
        ("abort_http_status_runtime", &mut runtime.abort_http_status),
        ("max_active_faults_runtime", &mut runtime.max_active_faults),
    ] {
        match o.get(cx, name).map(|k| k.string(cx)) {
            // proto3: an empty string is "not set", and Envoy's key applies.
            Some(Some(s)) if !s.is_empty() => *key = s,
            Some(None) => ok = false,
            _ => {}
        }
    }
    // Stats per downstream cluster (`fault.<cluster>.*`): weir keeps none, so turning them off
    // changes nothing.
    if let Some(d) = o.get(cx, "disable_downstream_cluster_stats") {
        ok &= d.bool(cx).is_some();
    }
    ok &= !o.reject(
        cx,
        "response_rate_limit",
        "`response_rate_limit` is not supported yet",
    );
    ok &= !o.reject(
        cx,
        "filter_metadata",
        "`filter_metadata` is not supported yet",
    );
    ok &= o.finish(cx);
    if !ok {
        return None;
    }
    Some(FaultConfig {
        delay: delay?,
        abort: abort?,
        upstream_cluster: upstream_cluster?,
        headers: headers?,
        downstream_nodes: downstream_nodes?,
        max_active_faults: max_active_faults?,
        runtime: std::sync::Arc::new(runtime),
    })
}

/// Exactly one of a oneof's fields: `None` (and an error) when none or several are set.
fn one_of<'a, 'v>(
    cx: &mut Cx,
    path: &str,
    given: &'a [(&'static str, Option<Field<'v>>)],
    what: &str,
) -> Option<(&'static str, &'a Field<'v>)> {
    let set: Vec<(&'static str, &Field<'v>)> = given
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v)))
        .collect();
    let names = given
        .iter()
        .map(|(k, _)| format!("`{k}`"))
        .collect::<Vec<_>>();
    match set.as_slice() {
        [one] => Some(*one),
        [] => {
            cx.error(path, format!("{what} needs one of {}", names.join(", ")));
            None
        }
        [_, (_, second), ..] => {
            cx.error(
                &second.path,
                format!("only one of {} may be set", names.join(", ")),
            );
            None
        }
    }
}

/// `common.fault.v3.FaultDelay`.
fn fault_delay(cx: &mut Cx, f: &Field<'_>) -> Option<FaultDelay> {
    let mut o = Obj::new(cx, f, &[])?;
    let given = [
        ("fixed_delay", o.get(cx, "fixed_delay")),
        ("header_delay", o.get(cx, "header_delay")),
    ];
    let kind = one_of(cx, o.path(), &given, "a delay").and_then(|(k, v)| match k {
        "fixed_delay" => v.duration(cx).and_then(|d| {
            if d.is_zero() {
                cx.error(&v.path, "fixed_delay must be greater than 0s");
                None
            } else {
                Some(DelayKind::Fixed(d))
            }
        }),
        _ => empty(cx, v).map(|()| DelayKind::Header),
    });
    let percentage = percentage(cx, &mut o);
    o.finish(cx);
    Some(FaultDelay {
        kind: kind?,
        percentage: percentage?,
    })
}

/// `common.fault.v3.FaultAbort` (`http.fault.v3.FaultAbort`).
fn fault_abort(cx: &mut Cx, f: &Field<'_>) -> Option<FaultAbort> {
    let mut o = Obj::new(cx, f, &[])?;
    let given = [
        ("http_status", o.get(cx, "http_status")),
        ("grpc_status", o.get(cx, "grpc_status")),
        ("header_abort", o.get(cx, "header_abort")),
    ];
    let kind = one_of(cx, o.path(), &given, "an abort").and_then(|(k, v)| match k {
        "http_status" => v.u32(cx).and_then(|s| match u16::try_from(s) {
            Ok(s @ 200..=599) => Some(AbortKind::Http(s)),
            _ => {
                cx.error(
                    &v.path,
                    format!("http_status {s} is out of range (200..=599)"),
                );
                None
            }
        }),
        "grpc_status" => v.u32(cx).map(AbortKind::Grpc),
        _ => empty(cx, v).map(|()| AbortKind::Header),
    });
    let percentage = percentage(cx, &mut o);
    o.finish(cx);
    Some(FaultAbort {
        kind: kind?,
        percentage: percentage?,
    })
}

/// A message with no fields (`header_delay: {}`, `header_abort: {}`).
fn empty(cx: &mut Cx, f: &Field<'_>) -> Option<()> {
    let o = Obj::new(cx, f, &[])?;
    o.finish(cx).then_some(())
}

/// A fault's `percentage`. Absent, it is Envoy's default `FractionalPercent`: 0 %, so the fault
/// never fires.
fn percentage(cx: &mut Cx, o: &mut Obj<'_>) -> Option<Fraction> {
    match o.get(cx, "percentage") {
        Some(p) => fractional_percent(cx, &p),
        None => Some(Fraction {
            per_million: 0,
            denominator: 100,
        }),
    }
}

/// `type.v3.FractionalPercent`, as parts per million (capped at 100 %, as Envoy caps it).
pub(crate) fn fractional_percent(cx: &mut Cx, f: &Field<'_>) -> Option<Fraction> {
    let mut o = Obj::new(cx, f, &[])?;
    let numerator = match o.get(cx, "numerator") {
        Some(n) => n.u32(cx),
        None => Some(0),
    };
    let scale = match o.get(cx, "denominator") {
        Some(d) => d
            .enumeration(
                cx,
                "denominator",
                &[("HUNDRED", 0), ("TEN_THOUSAND", 1), ("MILLION", 2)],
            )
            .map(|name| match name {
                "HUNDRED" => 10_000,
                "TEN_THOUSAND" => 100,
                _ => 1,
            }),
        None => Some(10_000),
    };
    o.finish(cx);
    let scale = scale?;
    let per_million = (u64::from(numerator?) * scale).min(1_000_000);
    Some(Fraction {
        per_million: u32::try_from(per_million).unwrap_or(1_000_000),
        denominator: (1_000_000 / scale) as u32,
    })
}

/// `envoy.extensions.filters.http.buffer.v3.Buffer`; `any`: it is an `Any` (with `@type`), not
/// `BufferPerRoute.buffer`.
fn buffer(cx: &mut Cx, f: &Field<'_>, any: bool) -> Option<BufferConfig> {
    let mut o = Obj::new(cx, f, &[])?;
    if any {
        o.get(cx, "@type");
    }
    let max = o.required(cx, "max_request_bytes").and_then(|m| {
        let bytes = m.u32(cx)?;
        if bytes == 0 {
            cx.error(&m.path, "max_request_bytes must be greater than 0");
            return None;
        }
        Some(bytes)
    });
    o.finish(cx);
    Some(BufferConfig {
        max_request_bytes: max?,
    })
}

/// `envoy.extensions.filters.http.buffer.v3.BufferPerRoute`: `disabled: true` or `buffer`.
fn buffer_per_route(cx: &mut Cx, f: &Field<'_>) -> Option<PerFilter> {
    let mut o = Obj::new(cx, f, &[])?;
    o.get(cx, "@type");
    let given = [
        ("disabled", o.get(cx, "disabled")),
        ("buffer", o.get(cx, "buffer")),
    ];
    let config = one_of(cx, o.path(), &given, "BufferPerRoute").and_then(|(k, v)| match k {
        "disabled" => match v.bool(cx)? {
            true => Some(PerFilter::Disabled),
            false => {
                cx.error(
                    &v.path,
                    "`disabled` must be true (to override the config, use `buffer`)",
                );
                None
            }
        },
        _ => buffer(cx, v, false).map(PerFilter::Buffer),
    });
    o.finish(cx);
    config
}

/// `envoy.extensions.filters.http.health_check.v3.HealthCheck`.
fn health_check(cx: &mut Cx, f: &Field<'_>, clusters: &ClusterNames) -> Option<HealthCheckConfig> {
    let mut o = Obj::new(cx, f, &[])?;
    o.get(cx, "@type");
    let pass_through_mode = o.required(cx, "pass_through_mode").and_then(|p| p.bool(cx));
    let mut headers = Some(Vec::new());
    for h in o.list(cx, "headers") {
        match (header_matcher(cx, &h), &mut headers) {
            (Some(m), Some(list)) => list.push(m),
            _ => headers = None,
        }
    }
    let percentages = match o.get(cx, "cluster_min_healthy_percentages") {
        Some(p) => min_healthy_percentages(cx, &p, clusters),
        None => Some(Vec::new()),
    };
    let mut ok = true;
    if let Some(c) = o.get(cx, "cache_time") {
        ok = false;
        if pass_through_mode == Some(false) {
            cx.error(
                &c.path,
                "cache_time may only be set with pass_through_mode: true (Envoy rejects it otherwise)",
            );
        } else {
            cx.error(&c.path, "`cache_time` is not supported yet");
        }
    }
    ok &= o.finish(cx);
    if !ok {
        return None;
    }
    Some(HealthCheckConfig {
        pass_through_mode: pass_through_mode?,
        headers: headers?,
        cluster_min_healthy_percentages: percentages?,
    })
}

/// `cluster_min_healthy_percentages`: cluster name → `type.v3.Percent`.
fn min_healthy_percentages(
    cx: &mut Cx,
    f: &Field<'_>,
    clusters: &ClusterNames,
) -> Option<Vec<(String, f64)>> {
    let entries = f.entries(cx, "cluster name to {value: percent}")?;
    let mut out = Some(Vec::with_capacity(entries.len()));
    for (cluster, entry) in entries {
        let name = Value::String(cluster.clone());
        let known = clusters
            .resolve(
                cx,
                &Field {
                    value: &name,
                    path: entry.path.clone(),
                },
            )
            .is_some();
        let percent = percent(cx, &entry);
        match (known, percent, &mut out) {
            (true, Some(p), Some(list)) => list.push((cluster.clone(), p)),
            _ => out = None,
        }
    }
    out
}

/// `type.v3.Percent`: `value`, 0..=100.
fn percent(cx: &mut Cx, f: &Field<'_>) -> Option<f64> {
    let mut o = Obj::new(cx, f, &[])?;
    let value = match o.get(cx, "value") {
        Some(v) => {
            let number = match v.value {
                Value::Number(n) => n.as_f64(),
                // proto3 JSON allows a double as a string.
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match number {
                Some(p) if (0.0..=100.0).contains(&p) => Some(p),
                Some(p) => {
                    cx.error(&v.path, format!("{p} is out of range (0..=100)"));
                    None
                }
                None => {
                    cx.error(
                        &v.path,
                        format!("expected a number, found {}", describe(v.value)),
                    );
                    None
                }
            }
        }
        // proto3: an absent double is 0.
        None => Some(0.0),
    };
    o.finish(cx);
    value
}

/// Reads `typed_per_filter_config` of `o` (a route, virtual host or route configuration):
/// filter name → config. Empty when absent.
pub(crate) fn per_filter_configs(
    cx: &mut Cx,
    o: &mut Obj<'_>,
    filters: &FilterNames,
    clusters: &ClusterNames,
) -> Option<Vec<PerFilterConfig>> {
    let Some(f) = o.get(cx, "typed_per_filter_config") else {
        return Some(Vec::new());
    };
    let entries = f.entries(cx, "filter name to config")?;
    let mut out = Some(Vec::with_capacity(entries.len()));
    for (name, entry) in entries {
        match (per_filter(cx, name, &entry, filters, clusters), &mut out) {
            (Some(config), Some(list)) => list.push(PerFilterConfig {
                filter: name.clone(),
                config,
            }),
            _ => out = None,
        }
    }
    out
}

/// One `typed_per_filter_config` entry. A key that names no filter is accepted, as Envoy
/// accepts it (the same route configuration may serve other connection managers).
fn per_filter(
    cx: &mut Cx,
    name: &str,
    f: &Field<'_>,
    filters: &FilterNames,
    clusters: &ClusterNames,
) -> Option<PerFilter> {
    let url = type_url(cx, f)?;
    if type_name(&url) != type_name(FILTER_CONFIG_TYPE) {
        return typed_per_filter(cx, name, f, &url, filters, clusters);
    }
    let mut o = Obj::new(cx, f, &[])?;
    o.get(cx, "@type");
    // `is_optional` lets Envoy skip a config type it does not know; weir rejects types it does
    // not know either way.
    let is_optional_ok = o
        .get(cx, "is_optional")
        .is_none_or(|i| i.bool(cx).is_some());
    let disabled_field = o.get(cx, "disabled");
    let disabled = match &disabled_field {
        Some(d) => d.bool(cx),
        None => Some(false),
    };
    let config = o.get(cx, "config");
    if !o.finish(cx) || !is_optional_ok {
        return None;
    }
    if disabled? {
        // Envoy ignores `config` (it does not even check it) when the filter is disabled.
        if filters.kinds(name).contains(&Kind::Router)
            && let Some(d) = &disabled_field
        {
            cx.error(&d.path, "the router cannot be disabled");
            return None;
        }
        return Some(PerFilter::Disabled);
    }
    let Some(config) = config else {
        cx.error(
            &join(&f.path, "config"),
            "`config` is required unless `disabled` is true (`config: {}` enables a filter that is disabled in http_filters)",
        );
        return None;
    };
    // An `Any` with no type (`config: {}`): "enabled, with the filter's own config".
    if let Value::Object(map) = config.value
        && map
            .iter()
            .all(|(k, v)| k == "@type" && v.as_str() == Some(""))
    {
        return Some(PerFilter::Enabled);
    }
    let url = type_url(cx, &config)?;
    if type_name(&url) == type_name(FILTER_CONFIG_TYPE) {
        cx.error(
            &join(&config.path, "@type"),
            "a FilterConfig's `config` is the filter's own per-route config, not another FilterConfig",
        );
        return None;
    }
    typed_per_filter(cx, name, &config, &url, filters, clusters)
}

/// Reads one kind of per-route config.
type ReadPerFilter = fn(&mut Cx, &Field<'_>, &ClusterNames) -> Option<PerFilter>;

/// A filter's own per-route config (`HTTPFault`, `BufferPerRoute`), which must fit the filter
/// `name` names when it names one.
fn typed_per_filter(
    cx: &mut Cx,
    name: &str,
    f: &Field<'_>,
    url: &str,
    filters: &FilterNames,
    clusters: &ClusterNames,
) -> Option<PerFilter> {
    let type_path = join(&f.path, "@type");
    let (kind, read): (Kind, ReadPerFilter) = match Kind::of(url) {
        Kind::Fault => (Kind::Fault, |cx, f, clusters| {
            fault(cx, f, clusters).map(PerFilter::Fault)
        }),
        _ if type_name(url) == type_name(BUFFER_PER_ROUTE_TYPE) => {
            (Kind::Buffer, |cx, f, _| buffer_per_route(cx, f))
        }
        Kind::Buffer => {
            cx.error(
                &type_path,
                format!("the buffer filter's per-route config is {BUFFER_PER_ROUTE_TYPE}"),
            );
            return None;
        }
        kind @ (Kind::Router | Kind::HealthCheck) => {
            cx.error(
                &type_path,
                format!(
                    "{} takes no per-route config (a {FILTER_CONFIG_TYPE} can still disable it)",
                    kind.describe()
                ),
            );
            return None;
        }
        Kind::Other => {
            cx.error(
                    &type_path,
                    format!(
                        "per-route config type `{url}` is not supported yet (weir supports {FILTER_CONFIG_TYPE}, {FAULT_TYPE} and {BUFFER_PER_ROUTE_TYPE})"
                    ),
                );
            return None;
        }
    };
    let kinds = filters.kinds(name);
    if !kinds.is_empty() && !kinds.contains(&kind) {
        cx.error(
            &type_path,
            format!(
                "`{name}` is {} in http_filters, which does not take a {} config",
                kinds[0].describe(),
                type_name(url)
            ),
        );
        return None;
    }
    read(cx, f, clusters)
}
