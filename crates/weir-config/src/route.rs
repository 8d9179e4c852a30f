//! `route_config` (`config.route.v3.RouteConfiguration`): virtual hosts, routes, matchers and
//! actions.

use std::collections::HashMap;
use std::time::Duration;

use crate::UpgradeConfig;
use crate::cluster::ClusterNames;
use crate::headers::{self, check_value};
use crate::http_filter::{self, FilterNames};
use crate::model::{
    ClusterTarget, DomainMatcher, ForwardAction, PathMatch, RedirectAction, RedirectPath,
    RetryPolicy, Route, RouteAction, RouteConfiguration, VirtualHost,
};
use crate::reader::{Cx, Field, Obj, has_any, index, join};
use crate::route_match::route_match;

/// `config.route.v3.RouteConfiguration` fields weir does not support yet.
const ROUTE_CONFIG_ENVOY: &[&str] = &[
    "vhds",
    "internal_only_headers",
    "most_specific_header_mutations_wins",
    "validate_clusters",
    "cluster_specifier_plugins",
    "request_mirror_policies",
    "ignore_port_in_host_matching",
    "ignore_path_parameters_in_path_matching",
    "metadata",
    "vhost_header",
    "route_specifiers",
];

/// `config.route.v3.VirtualHost` fields weir does not support yet.
const VIRTUAL_HOST_ENVOY: &[&str] = &[
    "matcher",
    "require_tls",
    "virtual_clusters",
    "rate_limits",
    "cors",
    "include_request_attempt_count",
    "include_attempt_count_in_response",
    "retry_policy_typed_config",
    "hedge_policy",
    "include_is_timeout_retry_header",
    "per_request_buffer_limit_bytes",
    "request_mirror_policies",
    "metadata",
    "request_body_buffer_limit",
    "route_specifiers",
];

/// `config.route.v3.Route` fields weir does not support yet.
const ROUTE_ENVOY: &[&str] = &[
    "filter_action",
    "non_forwarding_action",
    "metadata",
    "decorator",
    "tracing",
    "per_request_buffer_limit_bytes",
    "stat_prefix",
    "request_body_buffer_limit",
    "route_specifiers",
];

/// `config.route.v3.RouteAction` fields weir does not support yet.
const ROUTE_ACTION_ENVOY: &[&str] = &[
    "cluster_header",
    "cluster_specifier_plugin",
    "inline_cluster_specifier_plugin",
    "cluster_not_found_response_code",
    "metadata_match",
    "regex_rewrite",
    "path_rewrite_policy",
    "auto_host_rewrite",
    "host_rewrite_header",
    "host_rewrite_path_regex",
    "append_x_forwarded_host",
    "idle_timeout",
    "early_data_policy",
    "retry_policy_typed_config",
    "request_mirror_policies",
    "priority",
    "rate_limits",
    "include_vh_rate_limits",
    "cors",
    "max_grpc_timeout",
    "grpc_timeout_offset",
    "internal_redirect_policy",
    "internal_redirect_action",
    "max_internal_redirects",
    "hedge_policy",
    "max_stream_duration",
    "path_rewrite",
    "host_rewrite",
    "flush_timeout",
];

/// `config.route.v3.WeightedCluster.ClusterWeight` fields weir does not support yet.
const CLUSTER_WEIGHT_ENVOY: &[&str] = &[
    "cluster_header",
    "metadata_match",
    "request_headers_to_add",
    "request_headers_to_remove",
    "response_headers_to_add",
    "response_headers_to_remove",
    "typed_per_filter_config",
    "host_rewrite_literal",
];

/// Envoy's default route `timeout`.
const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);
/// Envoy's default `max_direct_response_body_size_bytes`.
const DEFAULT_MAX_DIRECT_RESPONSE_BODY: u32 = 4096;

/// What the routes of one route configuration need from around them.
struct Scope<'a> {
    clusters: &'a ClusterNames,
    /// The connection manager's `http_filters`, which `typed_per_filter_config` keys name.
    filters: &'a FilterNames,
    max_direct_response_body: usize,
    /// The enclosing virtual host's `retry_policy`.
    retry_policy: Option<RetryPolicy>,
}

/// Reads an inline `route_config`.
pub(crate) fn route_configuration(
    cx: &mut Cx,
    f: &Field<'_>,
    clusters: &ClusterNames,
    filters: &FilterNames,
) -> Option<RouteConfiguration> {
    let mut o = Obj::new(cx, f, ROUTE_CONFIG_ENVOY)?;
    let name = o.string(cx, "name");
    let max_body = match o.get(cx, "max_direct_response_body_size_bytes") {
        Some(m) => m.u32(cx),
        None => Some(DEFAULT_MAX_DIRECT_RESPONSE_BODY),
    };
    let scope = Scope {
        clusters,
        filters,
        max_direct_response_body: max_body.map_or(usize::MAX, |m| m as usize),
        retry_policy: None,
    };
    let hosts = o.list(cx, "virtual_hosts");
    let mut virtual_hosts = Some(Vec::with_capacity(hosts.len()));
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut domains: HashMap<String, usize> = HashMap::new();
    for (i, host) in hosts.iter().enumerate() {
        let vhost = virtual_host(cx, host, &scope);
        if let Some(vh) = &vhost {
            if let Some(first) = names.get(&vh.name) {
                cx.error(
                    &join(&host.path, "name"),
                    format!(
                        "duplicate virtual host name `{}` (also the name of virtual_hosts[{first}])",
                        vh.name
                    ),
                );
            } else {
                names.insert(vh.name.clone(), i);
            }
        }
        // Domains are checked even when the host has other errors, from the raw list.
        if let Some(list) = host.value.get("domains").and_then(|d| d.as_array()) {
            let domains_path = join(&host.path, "domains");
            for (j, d) in list.iter().enumerate() {
                let Some(d) = d.as_str() else { continue };
                let key = d.to_ascii_lowercase();
                match domains.get(&key) {
                    Some(&first) => cx.error(
                        &index(&domains_path, j),
                        format!("domain `{d}` is already used by virtual_hosts[{first}]; each domain may appear in only one virtual host"),
                    ),
                    None => {
                        domains.insert(key, i);
                    }
                }
            }
        }
        match (vhost, &mut virtual_hosts) {
            (Some(vh), Some(list)) => list.push(vh),
            _ => virtual_hosts = None,
        }
    }
    let mutations = headers::mutations(cx, &mut o);
    let per_filter = http_filter::per_filter_configs(cx, &mut o, filters, clusters);
    o.finish(cx);
    Some(RouteConfiguration {
        name: name.unwrap_or_default(),
        virtual_hosts: virtual_hosts?,
        headers: mutations?,
        per_filter: per_filter?,
    })
}

fn virtual_host(cx: &mut Cx, f: &Field<'_>, scope: &Scope<'_>) -> Option<VirtualHost> {
    let mut o = Obj::new(cx, f, VIRTUAL_HOST_ENVOY)?;
    let name = o.required_string(cx, "name");
    let domains = o.required(cx, "domains").and_then(|d| {
        let items = d.items(cx)?;
        if items.is_empty() {
            cx.error(
                &d.path,
                "`domains` needs at least one domain (use \"*\" to match any)",
            );
            return None;
        }
        let mut out = Some(Vec::with_capacity(items.len()));
        for item in &items {
            match (domain(cx, item), &mut out) {
                (Some(m), Some(list)) => list.push(m),
                _ => out = None,
            }
        }
        out
    });
    // The virtual host's retry policy applies to its routes that have none.
    let retry_policy = match o.get(cx, "retry_policy") {
        Some(r) => crate::retry::retry_policy(cx, &r).map(Some),
        None => Some(None),
    };
    let scope = &Scope {
        retry_policy: retry_policy.clone().flatten(),
        ..*scope
    };
    let mut routes = Some(Vec::new());
    for r in o.list(cx, "routes") {
        match (route(cx, &r, scope), &mut routes) {
            (Some(route), Some(list)) => list.push(route),
            _ => routes = None,
        }
    }
    let mutations = headers::mutations(cx, &mut o);
    let per_filter = http_filter::per_filter_configs(cx, &mut o, scope.filters, scope.clusters);
    o.finish(cx);
    Some(VirtualHost {
        name: name?,
        domains: domains?,
        routes: routes?,
        headers: mutations?,
        retry_policy: retry_policy?,
        per_filter: per_filter?,
    })
}

/// One entry of `domains`, classified for Envoy's precedence.
fn domain(cx: &mut Cx, f: &Field<'_>) -> Option<DomainMatcher> {
    let raw = f.string(cx)?;
    if raw.is_empty() {
        cx.error(&f.path, "a domain must not be empty");
        return None;
    }
    if raw.bytes().any(|b| b <= b' ' || b == 0x7f) {
        cx.error(&f.path, format!("{raw:?} is not a valid domain"));
        return None;
    }
    let d = raw.to_ascii_lowercase();
    if d == "*" {
        return Some(DomainMatcher::Any);
    }
    let (matcher, rest) = if let Some(suffix) = d.strip_prefix('*') {
        (DomainMatcher::Suffix(suffix.to_owned()), suffix)
    } else if let Some(prefix) = d.strip_suffix('*') {
        (DomainMatcher::Prefix(prefix.to_owned()), prefix)
    } else {
        (DomainMatcher::Exact(d.clone()), d.as_str())
    };
    if rest.contains('*') {
        cx.error(
            &f.path,
            format!("`{raw}`: a `*` wildcard is only allowed at the start or the end of a domain"),
        );
        return None;
    }
    Some(matcher)
}

fn route(cx: &mut Cx, f: &Field<'_>, scope: &Scope<'_>) -> Option<Route> {
    let mut o = Obj::new(cx, f, ROUTE_ENVOY)?;
    let name = o.string(cx, "name");
    let matcher = o.required(cx, "match").and_then(|m| route_match(cx, &m));
    let forward = o.get(cx, "route");
    let redirect = o.get(cx, "redirect");
    let direct = o.get(cx, "direct_response");
    let given: Vec<&Field<'_>> = [&forward, &redirect, &direct]
        .into_iter()
        .flatten()
        .collect();
    let action = match given.as_slice() {
        [] => {
            cx.error(
                o.path(),
                "a route needs one of `route`, `redirect` or `direct_response`",
            );
            None
        }
        [_] => {
            if let Some(r) = &forward {
                forward_action(cx, r, scope).map(RouteAction::Forward)
            } else if let Some(r) = &redirect {
                redirect_action(cx, r).map(RouteAction::Redirect)
            } else if let Some(d) = &direct {
                direct_response(cx, d, scope)
            } else {
                None
            }
        }
        [_, second, ..] => {
            cx.error(
                &second.path,
                "only one of `route`, `redirect` and `direct_response` may be set",
            );
            None
        }
    };
    let mutations = headers::mutations(cx, &mut o);
    let per_filter = http_filter::per_filter_configs(cx, &mut o, scope.filters, scope.clusters);
    o.finish(cx);
    // A CONNECT route either ends the CONNECT here (`connect_config`) or forwards it to an
    // upstream proxy; weir does the first only.
    if let (Some(m), Some(RouteAction::Forward(f)), Some(field)) = (&matcher, &action, &forward)
        && matches!(m.path, PathMatch::Connect)
        && !f
            .upgrade_configs
            .iter()
            .any(|u| u.upgrade_type == "connect" && u.enabled && u.terminate_connect)
    {
        cx.error(
            &join(&field.path, "upgrade_configs"),
            "forwarding CONNECT to the upstream is not supported yet: a `connect_matcher` route needs `upgrade_configs: [{ upgrade_type: CONNECT, connect_config: {} }]` (weir ends the CONNECT and tunnels to the cluster)",
        );
        return None;
    }
    Some(Route {
        name: name.unwrap_or_default(),
        matcher: matcher?,
        action: action?,
        headers: mutations?,
        per_filter: per_filter?,
    })
}

/// `route` (`config.route.v3.RouteAction`).
fn forward_action(cx: &mut Cx, f: &Field<'_>, scope: &Scope<'_>) -> Option<ForwardAction> {
    let mut o = Obj::new(cx, f, ROUTE_ACTION_ENVOY)?;
    let cluster = o.get(cx, "cluster");
    let weighted = o.get(cx, "weighted_clusters");
    let target = match (&cluster, &weighted) {
        (Some(c), None) => scope.clusters.resolve(cx, c).map(ClusterTarget::Cluster),
        (None, Some(w)) => weighted_clusters(cx, w, scope),
        (Some(_), Some(w)) => {
            cx.error(
                &w.path,
                "only one of `cluster` and `weighted_clusters` may be set",
            );
            None
        }
        (None, None) => {
            let other = has_any(
                f.value,
                &[
                    "cluster_header",
                    "cluster_specifier_plugin",
                    "inline_cluster_specifier_plugin",
                ],
            );
            if !other {
                cx.error(
                    o.path(),
                    "a route action needs `cluster` or `weighted_clusters`",
                );
            }
            None
        }
    };
    let timeout = match o.get(cx, "timeout") {
        Some(t) => t.duration(cx).map(|d| (!d.is_zero()).then_some(d)),
        None => Some(Some(DEFAULT_ROUTE_TIMEOUT)),
    };
    let prefix_rewrite = optional_value(cx, &mut o, "prefix_rewrite");
    let host_rewrite_literal = optional_value(cx, &mut o, "host_rewrite_literal");
    let retry_policy = match o.get(cx, "retry_policy") {
        Some(r) => crate::retry::retry_policy(cx, &r).map(Some),
        None => Some(scope.retry_policy.clone()),
    };
    let upgrade_configs = upgrade_configs(cx, &mut o, true);
    let hash_policy = crate::hash_policy::hash_policies(cx, &mut o);
    o.finish(cx);
    Some(ForwardAction {
        upgrade_configs: upgrade_configs?,
        hash_policy: hash_policy?,
        target: target?,
        timeout: timeout?,
        prefix_rewrite: prefix_rewrite?,
        host_rewrite_literal: host_rewrite_literal?,
        retry_policy: retry_policy?,
    })
}

/// An optional string sent in a header or request line: `Some(None)` when absent or empty
/// (proto3's "unset"), `None` after an error.
fn optional_value(cx: &mut Cx, o: &mut Obj<'_>, name: &'static str) -> Option<Option<String>> {
    match o.get(cx, name) {
        Some(v) => {
            let s = v.string(cx)?;
            if !check_value(cx, &v.path, &s) {
                return None;
            }
            Some((!s.is_empty()).then_some(s))
        }
        None => Some(None),
    }
}

fn weighted_clusters(cx: &mut Cx, f: &Field<'_>, scope: &Scope<'_>) -> Option<ClusterTarget> {
    let mut o = Obj::new(
        cx,
        f,
        &["runtime_key_prefix", "header_name", "use_hash_policy"],
    )?;
    let clusters = o.required(cx, "clusters");
    let mut targets = Some(Vec::new());
    let mut sum: u64 = 0;
    if let Some(items) = clusters.as_ref().and_then(|c| c.items(cx)) {
        if items.is_empty()
            && let Some(c) = &clusters
        {
            cx.error(&c.path, "`clusters` needs at least one cluster");
            targets = None;
        }
        for item in &items {
            let entry = cluster_weight(cx, item, scope);
            match (entry, &mut targets) {
                (Some((i, w)), Some(list)) => {
                    sum += u64::from(w);
                    list.push((i, w));
                }
                _ => targets = None,
            }
        }
    } else {
        targets = None;
    }
    let total = o.get(cx, "total_weight");
    let total_value = total.as_ref().and_then(|t| t.u32(cx));
    o.finish(cx);
    let targets = targets?;
    if let Some(t) = &total {
        let total_value = total_value?;
        if u64::from(total_value) != sum {
            cx.error(
                &t.path,
                format!("total_weight is {total_value} but the weights add up to {sum}"),
            );
            return None;
        }
    }
    if sum == 0 {
        cx.error(
            &join(&f.path, "clusters"),
            "the weights must add up to more than 0",
        );
        return None;
    }
    if sum > u64::from(u32::MAX) {
        cx.error(
            &join(&f.path, "clusters"),
            format!("the weights add up to {sum}, more than {}", u32::MAX),
        );
        return None;
    }
    Some(ClusterTarget::Weighted(targets))
}

fn cluster_weight(cx: &mut Cx, f: &Field<'_>, scope: &Scope<'_>) -> Option<(usize, u32)> {
    let mut o = Obj::new(cx, f, CLUSTER_WEIGHT_ENVOY)?;
    let cluster = o
        .required(cx, "name")
        .and_then(|n| scope.clusters.resolve(cx, &n));
    let weight = o.required(cx, "weight").and_then(|w| w.u32(cx));
    o.finish(cx);
    Some((cluster?, weight?))
}

/// `direct_response`.
fn direct_response(cx: &mut Cx, f: &Field<'_>, scope: &Scope<'_>) -> Option<RouteAction> {
    let mut o = Obj::new(cx, f, &["body_format"])?;
    let status = o.required(cx, "status").and_then(|s| {
        let code = s.u32(cx)?;
        match u16::try_from(code) {
            // Envoy's proto allows 1xx, but a 1xx is never a final response.
            Ok(code @ 200..=599) => Some(code),
            _ => {
                cx.error(
                    &s.path,
                    format!("status {code} is out of range (a final status, 200..=599)"),
                );
                None
            }
        }
    });
    let body = match o.get(cx, "body") {
        Some(b) => data_source(cx, &b).and_then(|body| {
            if body.len() > scope.max_direct_response_body {
                cx.error(
                    &b.path,
                    format!(
                        "the body is {} bytes; the maximum is {} (route_config.max_direct_response_body_size_bytes)",
                        body.len(),
                        scope.max_direct_response_body
                    ),
                );
                return None;
            }
            Some(body)
        }),
        None => Some(Vec::new()),
    };
    o.finish(cx);
    Some(RouteAction::DirectResponse {
        status: status?,
        body: body?,
    })
}

/// `config.core.v3.DataSource`: `inline_string` or `inline_bytes` (base64).
pub(crate) fn data_source(cx: &mut Cx, f: &Field<'_>) -> Option<Vec<u8>> {
    let mut o = Obj::new(
        cx,
        f,
        &["filename", "environment_variable", "watched_directory"],
    )?;
    let string = o.get(cx, "inline_string");
    let bytes = o.get(cx, "inline_bytes");
    let body = match (&string, &bytes) {
        (Some(s), None) => s.string(cx).map(String::into_bytes),
        (None, Some(b)) => b.string(cx).and_then(|text| match base64_decode(&text) {
            Some(bytes) => Some(bytes),
            None => {
                cx.error(&b.path, "inline_bytes must be base64");
                None
            }
        }),
        (Some(_), Some(b)) => {
            cx.error(
                &b.path,
                "only one of `inline_string` and `inline_bytes` may be set",
            );
            None
        }
        (None, None) => {
            let other = has_any(f.value, &["filename", "environment_variable"]);
            if !other {
                cx.error(o.path(), "a body needs `inline_string` or `inline_bytes`");
            }
            None
        }
    };
    o.finish(cx);
    body
}

/// Decodes standard or URL-safe base64, padded or not (proto3 JSON accepts both).
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, config);
    let url_safe = GeneralPurpose::new(&base64::alphabet::URL_SAFE, config);
    standard
        .decode(text)
        .or_else(|_| url_safe.decode(text))
        .ok()
}

/// `redirect` (`config.route.v3.RedirectAction`).
fn redirect_action(cx: &mut Cx, f: &Field<'_>) -> Option<RedirectAction> {
    let mut o = Obj::new(cx, f, &["regex_rewrite", "path_rewrite"])?;
    let mut ok = true;
    let https = o.get(cx, "https_redirect");
    let scheme_field = o.get(cx, "scheme_redirect");
    let scheme = match (&https, &scheme_field) {
        (Some(_), Some(s)) => {
            cx.error(
                &s.path,
                "only one of `https_redirect` and `scheme_redirect` may be set",
            );
            ok = false;
            None
        }
        (Some(h), None) => match h.bool(cx) {
            Some(b) => b.then(|| "https".to_owned()),
            None => {
                ok = false;
                None
            }
        },
        (None, Some(s)) => match s.string(cx) {
            Some(v) if v.is_empty() => None,
            Some(v) => {
                let mut bytes = v.bytes();
                let valid = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
                    && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
                if !valid {
                    cx.error(&s.path, format!("`{v}` is not a valid URL scheme"));
                    ok = false;
                }
                Some(v.to_ascii_lowercase())
            }
            None => {
                ok = false;
                None
            }
        },
        (None, None) => None,
    };
    let host = optional_value(cx, &mut o, "host_redirect");
    let port = match o.get(cx, "port_redirect") {
        Some(p) => p.u32(cx).and_then(|port| match u16::try_from(port) {
            Ok(0) => Some(None),
            Ok(port) => Some(Some(port)),
            Err(_) => {
                cx.error(&p.path, format!("port {port} is out of range (1..=65535)"));
                None
            }
        }),
        None => Some(None),
    };
    let path_field = o.get(cx, "path_redirect");
    let prefix_field = o.get(cx, "prefix_rewrite");
    let path = match (&path_field, &prefix_field) {
        (Some(_), Some(p)) => {
            cx.error(
                &p.path,
                "only one of `path_redirect` and `prefix_rewrite` may be set",
            );
            None
        }
        (Some(p), None) => redirect_path(cx, p).map(|s| s.map(RedirectPath::Path)),
        (None, Some(p)) => redirect_path(cx, p).map(|s| s.map(RedirectPath::PrefixRewrite)),
        (None, None) => Some(None),
    };
    let status = match o.get(cx, "response_code") {
        Some(c) => c
            .enumeration(
                cx,
                "response_code",
                &[
                    ("MOVED_PERMANENTLY", 0),
                    ("FOUND", 1),
                    ("SEE_OTHER", 2),
                    ("TEMPORARY_REDIRECT", 3),
                    ("PERMANENT_REDIRECT", 4),
                ],
            )
            .map(|name| match name {
                "FOUND" => 302,
                "SEE_OTHER" => 303,
                "TEMPORARY_REDIRECT" => 307,
                "PERMANENT_REDIRECT" => 308,
                _ => 301,
            }),
        None => Some(301),
    };
    let strip_query = match o.get(cx, "strip_query") {
        Some(q) => q.bool(cx),
        None => Some(false),
    };
    o.finish(cx);
    if !ok {
        return None;
    }
    Some(RedirectAction {
        scheme,
        host: host?,
        port: port?,
        path: path?,
        status: status?,
        strip_query: strip_query?,
    })
}

fn redirect_path(cx: &mut Cx, f: &Field<'_>) -> Option<Option<String>> {
    let s = f.string(cx)?;
    if !check_value(cx, &f.path, &s) {
        return None;
    }
    Some((!s.is_empty()).then_some(s))
}

/// `upgrade_configs[]` of a connection manager or (`route: true`) a route action.
pub(crate) fn upgrade_configs(
    cx: &mut Cx,
    o: &mut Obj<'_>,
    route: bool,
) -> Option<Vec<UpgradeConfig>> {
    let mut configs = Some(Vec::new());
    for item in o.list(cx, "upgrade_configs") {
        let config = upgrade_config(cx, &item, route);
        match (config, &mut configs) {
            (Some(c), Some(list)) => list.push(c),
            _ => configs = None,
        }
    }
    configs
}

fn upgrade_config(cx: &mut Cx, f: &Field<'_>, route: bool) -> Option<UpgradeConfig> {
    // The connection manager's entries may carry `filters`; a route's `connect_config`.
    let unsupported: &[&str] = if route { &[] } else { &["filters"] };
    let mut o = Obj::new(cx, f, unsupported)?;
    let upgrade_type = o.required(cx, "upgrade_type").and_then(|t| t.string(cx));
    let enabled = match o.get(cx, "enabled") {
        Some(e) => e.bool(cx),
        None => Some(true),
    };
    let mut terminate_connect = false;
    if route && let Some(c) = o.get(cx, "connect_config") {
        // `proxy_protocol_config` and `allow_post` change what a terminated CONNECT sends.
        if let Some(c) = Obj::new(cx, &c, &["proxy_protocol_config", "allow_post"]) {
            c.finish(cx);
        }
        terminate_connect = true;
    }
    o.finish(cx);
    let upgrade_type = upgrade_type?.to_ascii_lowercase();
    if terminate_connect && upgrade_type != "connect" {
        cx.error(
            &join(&f.path, "connect_config"),
            "`connect_config` applies to `upgrade_type: CONNECT` only",
        );
        return None;
    }
    Some(UpgradeConfig {
        upgrade_type,
        enabled: enabled?,
        terminate_connect,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("/+8=").unwrap(), vec![0xff, 0xef]);
        assert_eq!(base64_decode("_-8").unwrap(), vec![0xff, 0xef]);
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a b=").is_none());
        assert!(base64_decode("aGVsbG8===").is_none());
    }
}
