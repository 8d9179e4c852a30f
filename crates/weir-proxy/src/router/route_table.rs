//! The route table: virtual host selection by Host, then the first route whose matchers pass.
//!
//! Virtual hosts follow Envoy's precedence: exact domain, then the longest `*suffix` wildcard,
//! then the longest `prefix*` wildcard, then `*`. The Host is compared with its port, as Envoy
//! does by default. Routes are tried in order against the path without its query string.

use std::collections::HashMap;

use weir_config::{
    AppendAction, DomainMatcher, HeaderMatchRule, HeaderMatcher, HeaderMutations,
    HeaderValueOption, PathMatch, PerFilter, PerFilterConfig, RetryPolicy, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost,
};
use weir_http1::{Headers, RequestHead};

use crate::runtime::Runtime;

/// A route found for a request: indexes into the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteRef {
    pub(crate) vhost: usize,
    pub(crate) route: usize,
}

/// A compiled `route_config`.
#[derive(Debug)]
pub(crate) struct RouteTable {
    config: RouteConfiguration,
    /// Virtual host and route names, shared so a flow trace can name them without allocating.
    vhost_names: Vec<weir_flow::Name>,
    route_names: Vec<Vec<weir_flow::Name>>,
    exact: HashMap<String, usize>,
    /// (suffix, vhost), longest first.
    suffixes: Vec<(String, usize)>,
    /// (prefix, vhost), longest first.
    prefixes: Vec<(String, usize)>,
    any: Option<usize>,
}

impl RouteTable {
    pub(crate) fn new(config: RouteConfiguration) -> Self {
        let mut exact = HashMap::new();
        let mut suffixes = Vec::new();
        let mut prefixes = Vec::new();
        let mut any = None;
        for (index, vhost) in config.virtual_hosts.iter().enumerate() {
            for domain in &vhost.domains {
                match domain {
                    DomainMatcher::Exact(d) => {
                        exact.entry(d.clone()).or_insert(index);
                    }
                    DomainMatcher::Suffix(s) => suffixes.push((s.clone(), index)),
                    DomainMatcher::Prefix(p) => prefixes.push((p.clone(), index)),
                    DomainMatcher::Any => {
                        any.get_or_insert(index);
                    }
                }
            }
        }
        // Longest wins; the sort is stable so config order breaks ties.
        suffixes.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        RouteTable {
            vhost_names: config
                .virtual_hosts
                .iter()
                .map(|v| v.name.as_str().into())
                .collect(),
            route_names: config
                .virtual_hosts
                .iter()
                .map(|v| v.routes.iter().map(|r| r.name.as_str().into()).collect())
                .collect(),
            config,
            exact,
            suffixes,
            prefixes,
            any,
        }
    }

    pub(crate) fn vhost(&self, r: RouteRef) -> &VirtualHost {
        &self.config.virtual_hosts[r.vhost]
    }

    /// The retry policy of a forwarding route (its own, or its virtual host's).
    pub(crate) fn retry_policy(&self, r: RouteRef) -> Option<&RetryPolicy> {
        let route = self.vhost(r).routes.get(r.route)?;
        match &route.action {
            RouteAction::Forward(f) => f.retry_policy.as_ref(),
            _ => None,
        }
    }

    /// The `typed_per_filter_config` entry for filter `name` that applies on `route`: the
    /// route's own, else its virtual host's, else the route configuration's. Without a route
    /// none applies (as in Envoy).
    pub(crate) fn per_filter(&self, route: Option<RouteRef>, name: &str) -> Option<&PerFilter> {
        let find = |list: &'_ [PerFilterConfig]| -> Option<usize> {
            list.iter().position(|p| p.filter == name)
        };
        let r = route?;
        let own = &self.route(r).per_filter;
        if let Some(i) = find(own) {
            return Some(&own[i].config);
        }
        let vhost = &self.vhost(r).per_filter;
        if let Some(i) = find(vhost) {
            return Some(&vhost[i].config);
        }
        let top = &self.config.per_filter;
        find(top).map(|i| &top[i].config)
    }

    /// The names of a route's virtual host and route.
    pub(crate) fn names(&self, r: RouteRef) -> (weir_flow::Name, weir_flow::Name) {
        (
            self.vhost_names[r.vhost].clone(),
            self.route_names[r.vhost][r.route].clone(),
        )
    }

    pub(crate) fn route(&self, r: RouteRef) -> &Route {
        &self.config.virtual_hosts[r.vhost].routes[r.route]
    }

    /// The virtual host for a Host value (any case; a wildcard must match at least one byte).
    pub(crate) fn find_vhost(&self, host: &[u8]) -> Option<usize> {
        let host = String::from_utf8_lossy(host).to_ascii_lowercase();
        if let Some(&i) = self.exact.get(&host) {
            return Some(i);
        }
        let suffix = self
            .suffixes
            .iter()
            .find(|(s, _)| host.len() > s.len() && host.ends_with(s.as_str()));
        if let Some(&(_, i)) = suffix {
            return Some(i);
        }
        let prefix = self
            .prefixes
            .iter()
            .find(|(p, _)| host.len() > p.len() && host.starts_with(p.as_str()));
        if let Some(&(_, i)) = prefix {
            return Some(i);
        }
        self.any
    }

    /// The route for a request whose authority is `host`, on a connection whose scheme is
    /// `scheme` (`:scheme` matchers read it: [`request_scheme`]). `random` is the request's draw for
    /// every `runtime_fraction` on the way (one per request, as Envoy's stream id is), read
    /// against `runtime`.
    pub(crate) fn find(
        &self,
        host: &[u8],
        scheme: &[u8],
        head: &RequestHead,
        runtime: &Runtime,
        random: u64,
    ) -> Option<RouteRef> {
        let vhost = self.find_vhost(host)?;
        let path = head.path();
        let route = self.config.virtual_hosts[vhost]
            .routes
            .iter()
            .position(|route| {
                route_matches(route, path, host, scheme, head)
                    && route.matcher.runtime_fraction.as_ref().is_none_or(|f| {
                        let share = runtime.share(&f.runtime_key, f.default);
                        random % 1_000_000 < u64::from(share.per_million)
                    })
            })?;
        Some(RouteRef { vhost, route })
    }

    /// Applies request header mutations: route level, then virtual host, then route config,
    /// so the most general level has the last word (Envoy's default order).
    pub(crate) fn mutate_request(&self, r: RouteRef, headers: &mut Headers) {
        for level in self.levels(r) {
            apply(&level.request_remove, &level.request_add, headers);
        }
    }

    /// Applies response header mutations in the same order as requests.
    pub(crate) fn mutate_response(&self, r: RouteRef, headers: &mut Headers) {
        for level in self.levels(r) {
            apply(&level.response_remove, &level.response_add, headers);
        }
    }

    fn levels(&self, r: RouteRef) -> [&HeaderMutations; 3] {
        [
            &self.route(r).headers,
            &self.vhost(r).headers,
            &self.config.headers,
        ]
    }
}

fn route_matches(
    route: &Route,
    path: &[u8],
    authority: &[u8],
    scheme: &[u8],
    head: &RequestHead,
) -> bool {
    let m = &route.matcher;
    path_matches(m, path, head.method.as_ref() == b"CONNECT")
        && m.headers
            .iter()
            .all(|h| header_matches(h, authority, scheme, head))
}

/// Whether a route's path matcher takes `path` (of a CONNECT request when `connect`).
pub(crate) fn path_matches(m: &RouteMatch, path: &[u8], connect: bool) -> bool {
    // A CONNECT has no path: only `connect_matcher` routes take it, and only it (Envoy).
    match &m.path {
        PathMatch::Connect => connect,
        _ if connect => false,
        PathMatch::Prefix(p) => {
            path.len() >= p.len() && bytes_eq(&path[..p.len()], p.as_bytes(), !m.case_sensitive)
        }
        PathMatch::Exact(p) => bytes_eq(path, p.as_bytes(), !m.case_sensitive),
        PathMatch::Regex(re) => std::str::from_utf8(path).is_ok_and(|p| re.compiled.is_match(p)),
    }
}

fn bytes_eq(a: &[u8], b: &[u8], ignore_case: bool) -> bool {
    if ignore_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// The request's `:scheme` as Envoy gives an HTTP/1 request one: its `x-forwarded-proto` when
/// that says `http` or `https` (the connection manager has set it, or trusts the client's),
/// else the connection's own (`https` on a TLS chain).
pub(crate) fn request_scheme<'a>(head: &RequestHead, connection: &'a [u8]) -> &'a [u8] {
    match head.headers.get("x-forwarded-proto").map(|v| &v[..]) {
        Some(p) if p.eq_ignore_ascii_case(b"https") => b"https",
        Some(p) if p.eq_ignore_ascii_case(b"http") => b"http",
        _ => connection,
    }
}

/// Envoy joins repeated headers with `,` before matching a value. HTTP/2-style pseudo-headers
/// name parts of the request line, as Envoy presents HTTP/1 requests to its matchers.
pub(crate) fn header_matches(
    matcher: &HeaderMatcher,
    authority: &[u8],
    scheme: &[u8],
    head: &RequestHead,
) -> bool {
    let pseudo: Option<&[u8]> = match matcher.name.as_str() {
        ":authority" => Some(authority),
        ":method" => Some(&head.method),
        ":path" => Some(&head.target),
        ":scheme" => Some(request_scheme(head, scheme)),
        _ => None,
    };
    let values: Vec<&[u8]> = match pseudo {
        Some(value) => vec![value],
        None => head
            .headers
            .get_all(&matcher.name)
            .map(|v| &v[..])
            .collect(),
    };
    let result = match &matcher.rule {
        HeaderMatchRule::Present(want) => values.is_empty() != *want,
        HeaderMatchRule::String(sm) => {
            if values.is_empty() {
                // An absent header never satisfies a value rule, inverted or not (Envoy).
                return false;
            }
            let joined = values
                .iter()
                .map(|v| String::from_utf8_lossy(v))
                .collect::<Vec<_>>()
                .join(",");
            sm.matches(&joined)
        }
    };
    result != matcher.invert_match
}

fn apply(remove: &[String], add: &[HeaderValueOption], headers: &mut Headers) {
    for name in remove {
        headers.remove(name);
    }
    for option in add {
        let key = option.key.as_str();
        let value = option.value.as_bytes().to_vec();
        match option.append_action {
            AppendAction::AppendIfExistsOrAdd => headers.append(key.to_owned(), value),
            AppendAction::AddIfAbsent => {
                if !headers.contains(key) {
                    headers.append(key.to_owned(), value);
                }
            }
            AppendAction::OverwriteIfExistsOrAdd => headers.set(key.to_owned(), value),
            AppendAction::OverwriteIfExists => {
                if headers.contains(key) {
                    headers.set(key.to_owned(), value);
                }
            }
        }
    }
}
