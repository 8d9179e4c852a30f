//! "How would this request route?", answered without sockets: the listener and filter chain a
//! request reaches, the virtual host, the route (and why each route before it did not match),
//! what the router does with it, the rewrites and header changes it makes, the timeout, the
//! retry policy, the HTTP filters that run and the hash key. The answer comes from the
//! proxy's own code (the chain selector, the route table, the router's decision, the hash
//! policies), so it is what weir would do, not a re-implementation; only the reasons for
//! passing routes over are worked out beside it. The request is taken to come from a client at
//! 127.0.0.1 (what `source_ip` hashing and `x-forwarded-for` see). `weir route` prints it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::BytesMut;
use serde::Serialize;
use weir_config::{
    Bootstrap, ChainSelector, ClusterTarget, ConnectionFacts, FilterChain, HeaderMatchRule,
    HttpConnectionManager, HttpFilter, PathMatch, PerFilter, RouteAction,
};
use weir_http1::{Limits, RequestDecoder, RequestEvent, RequestHead};

use crate::http::headers::{ForwardContext, set_forwarding_headers, strip_hop_by_hop};
use crate::router::route_table::{
    RouteRef, RouteTable, header_matches, path_matches, request_scheme,
};
use crate::router::{self, Decision};
use crate::runtime::{Runtime, RuntimeLoader};
use crate::upstream::lb::hash;

/// A request to explain: `GET http://host:port/path?q` and its header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRequest {
    /// `GET`, `POST`…
    pub method: String,
    /// An absolute URL: `http` or `https`, the authority, then the path and query.
    pub url: String,
    /// Header fields besides `host` (which the URL gives).
    pub headers: Vec<(String, String)>,
    /// The listener, by name (`None`: the one on the URL's port).
    pub listener: Option<String>,
}

/// What weir would do with a request.
#[derive(Debug, Clone, Serialize)]
pub struct RouteAnswer {
    /// `METHOD URL`.
    pub request: String,
    /// The listener on the URL's port.
    pub listener: String,
    /// The chain's name, or `#index` when it has none; `default_filter_chain` by that name.
    pub filter_chain: String,
    /// The virtual host's name (none matched the host: no route).
    pub virtual_host: Option<String>,
    /// The route chosen: its index in the virtual host and its name.
    pub route: Option<ChosenRoute>,
    /// The routes before it (or all, when none matched), each with why it did not match.
    pub passed_over: Vec<PassedOver>,
    /// What happens: `forward`, `redirect`, `direct_response`, `no_route`, or `tcp_proxy`.
    pub action: &'static str,
    /// The status a local answer has (redirect, direct response, no route).
    pub status: Option<u16>,
    /// A redirect's (or a 201/3xx direct response's) `location`.
    pub location: Option<String>,
    /// The cluster (`forward`, `tcp_proxy`); under weighted clusters, each with its weight.
    pub cluster: Option<String>,
    /// `weighted_clusters`: each cluster and its weight (one is drawn per request).
    pub weighted_clusters: Vec<(String, u32)>,
    /// The request as it would go upstream: its target, and the header fields the route
    /// added or changed, and removed.
    pub upstream_target: Option<String>,
    /// Header fields the route set or added (`name`, `value`).
    pub headers_set: Vec<(String, String)>,
    /// Header fields the route removed.
    pub headers_removed: Vec<String>,
    /// The route's timeout (`None`: disabled).
    pub timeout: Option<String>,
    /// The retry policy in force, summarised.
    pub retry: Option<String>,
    /// The HTTP filters before the router that run, with `per_route` when a
    /// `typed_per_filter_config` applies.
    pub http_filters: Vec<FilterRun>,
    /// The request's hash under the route's `hash_policy` (ring hash and Maglev clusters).
    pub hash_key: Option<String>,
    /// What else matters (runtime fractions…).
    pub notes: Vec<String>,
    /// The cluster's index in the config (`forward` to one cluster).
    #[serde(skip)]
    pub cluster_index: Option<usize>,
    /// The request's hash (ring hash and Maglev clusters, when a policy found its input).
    #[serde(skip)]
    pub hash: Option<u64>,
}

/// The route a request takes.
#[derive(Debug, Clone, Serialize)]
pub struct ChosenRoute {
    /// Its index in the virtual host's `routes`.
    pub index: usize,
    /// Its `name` (empty when unnamed).
    pub name: String,
}

/// A route the request did not take, and why.
#[derive(Debug, Clone, Serialize)]
pub struct PassedOver {
    /// Its index in the virtual host's `routes`.
    pub index: usize,
    /// Its `name` (empty when unnamed).
    pub name: String,
    /// What in the request failed its match.
    pub why: String,
}

/// An HTTP filter on the request's way.
#[derive(Debug, Clone, Serialize)]
pub struct FilterRun {
    /// The filter's `name`.
    pub name: String,
    /// A `typed_per_filter_config` applies to it on this route.
    pub per_route: bool,
}

/// The client a request is taken to come from (the hash of `source_ip`, `x-forwarded-for`).
const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);

/// Works out what weir would do with `request` under `bootstrap` (its runtime as the config
/// gives it).
pub fn explain_route(bootstrap: &Bootstrap, request: &RouteRequest) -> Result<RouteAnswer, String> {
    let runtime = RuntimeLoader::new(&bootstrap.runtime).snapshot().1;
    explain_with(bootstrap, request, &runtime)
}

/// The same under the runtime `runtime` (the admin's: the live one).
pub(crate) fn explain_with(
    bootstrap: &Bootstrap,
    request: &RouteRequest,
    runtime: &Runtime,
) -> Result<RouteAnswer, String> {
    let url = Url::parse(&request.url)?;
    let (listener, chain, chain_name) = reach(bootstrap, &url, request.listener.as_deref())?;
    let mut answer = RouteAnswer {
        request: format!("{} {}", request.method, request.url),
        listener: listener.to_owned(),
        filter_chain: chain_name,
        virtual_host: None,
        route: None,
        passed_over: Vec::new(),
        action: "no_route",
        status: None,
        location: None,
        cluster: None,
        weighted_clusters: Vec::new(),
        upstream_target: None,
        headers_set: Vec::new(),
        headers_removed: Vec::new(),
        timeout: None,
        retry: None,
        http_filters: Vec::new(),
        hash_key: None,
        notes: Vec::new(),
        cluster_index: None,
        hash: None,
    };
    let Some(hcm) = &chain.http_connection_manager else {
        let proxy = chain
            .tcp_proxy
            .as_ref()
            .ok_or("the chain has no network filter")?;
        answer.action = "tcp_proxy";
        let names: Vec<&str> = (proxy.clusters.iter())
            .map(|(c, _)| bootstrap.clusters[*c].name.as_str())
            .collect();
        answer.cluster = Some(names.join(", "));
        return Ok(answer);
    };
    let mut head = request_head(request, &url)?;
    // What the connection manager does before routing: hop-by-hop fields go, the forwarding
    // headers are set (`x-forwarded-proto` from the chain, client `x-envoy-*` stripped…).
    strip_hop_by_hop(&mut head.headers);
    let connection_scheme: &'static [u8] = match chain.tls.is_some() {
        true => b"https",
        false => b"http",
    };
    let ctx = ForwardContext {
        remote: CLIENT,
        use_remote_address: hcm.use_remote_address,
        xff_num_trusted_hops: hcm.xff_num_trusted_hops,
        generate_request_id: hcm.generate_request_id,
        preserve_external_request_id: hcm.preserve_external_request_id,
        internal_addresses: &hcm.internal_addresses,
        scheme: connection_scheme,
    };
    set_forwarding_headers(&mut head.headers, &ctx, &mut fastrand::Rng::with_seed(0));
    let scheme = request_scheme(&head, connection_scheme);
    let env = RouteEnv {
        url: &url,
        scheme,
        runtime,
    };
    route(bootstrap, hcm, &env, &mut head, &mut answer);
    Ok(answer)
}

/// The listener named `name` (else the one on the URL's port) and its chain for the
/// connection the URL implies.
fn reach<'b>(
    bootstrap: &'b Bootstrap,
    url: &Url,
    name: Option<&str>,
) -> Result<(&'b str, &'b FilterChain, String), String> {
    let listener = (bootstrap.listeners.iter())
        .find(|l| match name {
            Some(name) => l.name == name,
            None => l.address.port() == url.port,
        })
        .ok_or_else(|| {
            if let Some(name) = name {
                return format!("no listener named {name}");
            }
            let ports: Vec<String> = (bootstrap.listeners.iter())
                .map(|l| format!("{} on {}", l.name, l.address.port()))
                .collect();
            format!(
                "no listener on port {} (listeners: {})",
                url.port,
                ports.join(", ")
            )
        })?;
    let matches: Vec<_> = (listener.filter_chains.iter())
        .map(|c| &c.filter_chain_match)
        .collect();
    let selector =
        ChainSelector::new(&matches).map_err(|_| "the listener's filter chains overlap")?;
    let local = match listener.address.ip().is_unspecified() {
        true => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listener.address.port()),
        false => listener.address,
    };
    let peer = CLIENT;
    let tls = url.scheme == "https";
    let alpn = ["http/1.1".to_owned()];
    let facts = ConnectionFacts {
        local,
        direct_peer: peer,
        peer,
        server_name: tls.then_some(url.host.as_str()),
        transport_protocol: if tls { "tls" } else { "raw_buffer" },
        application_protocols: if tls { &alpn } else { &[] },
    };
    let (chain, name) = match selector.select(&facts) {
        Some(i) => {
            let chain = &listener.filter_chains[i];
            let name = match chain.name.is_empty() {
                true => format!("#{i}"),
                false => chain.name.clone(),
            };
            (chain, name)
        }
        None => match &listener.default_filter_chain {
            Some(chain) => (chain, "default_filter_chain".to_owned()),
            None => {
                return Err(format!(
                    "no filter chain of listener {} takes this connection",
                    listener.name
                ));
            }
        },
    };
    Ok((listener.name.as_str(), chain, name))
}

/// What routing reads besides the request: its URL, its scheme as the router sees it, and
/// the runtime.
struct RouteEnv<'a> {
    url: &'a Url,
    scheme: &'a [u8],
    runtime: &'a Runtime,
}

/// The router's part: virtual host, route, decision, and what goes with it.
fn route(
    bootstrap: &Bootstrap,
    hcm: &HttpConnectionManager,
    env: &RouteEnv<'_>,
    head: &mut RequestHead,
    answer: &mut RouteAnswer,
) {
    let table = RouteTable::new(hcm.route_config.clone());
    let (url, scheme, runtime) = (env.url, env.scheme, env.runtime);
    let authority = url.authority.as_bytes();
    let vhost = table.find_vhost(authority);
    answer.virtual_host = vhost.map(|v| hcm.route_config.virtual_hosts[v].name.clone());
    // The route the proxy's own lookup finds (a draw of 0 takes every runtime fraction above
    // zero; the note below says when one applies).
    let found = table.find(authority, scheme, head, runtime, 0);
    if let Some(v) = vhost {
        let routes = &hcm.route_config.virtual_hosts[v].routes;
        let upto = found.map_or(routes.len(), |r| r.route);
        for (index, r) in routes.iter().enumerate().take(upto) {
            let why = why_not(r, head, authority, scheme);
            answer.passed_over.push(PassedOver {
                index,
                name: r.name.clone(),
                why,
            });
        }
    }
    if let Some(r) = found {
        let route = table.route(r);
        answer.route = Some(ChosenRoute {
            index: r.route,
            name: route.name.clone(),
        });
        if let Some(f) = &route.matcher.runtime_fraction {
            let share = runtime.share(&f.runtime_key, f.default);
            answer.notes.push(format!(
                "the route takes {}% of such requests (runtime_fraction `{}`); the rest go on to the routes after it",
                f64::from(share.per_million) / 10_000.0,
                f.runtime_key
            ));
        }
    }
    let cluster = found.and_then(|r| match &table.route(r).action {
        RouteAction::Forward(f) => Some(match &f.target {
            ClusterTarget::Cluster(c) => *c,
            ClusterTarget::Weighted(w) => {
                answer.weighted_clusters = (w.iter())
                    .map(|(c, weight)| (bootstrap.clusters[*c].name.clone(), *weight))
                    .collect();
                w.first().map_or(0, |(c, _)| *c)
            }
        }),
        _ => None,
    });
    let before = head.clone();
    let envoy_headers = !hcm.http_filters.iter().any(|f| {
        matches!(
            f,
            HttpFilter::Router {
                suppress_envoy_headers: true,
                ..
            }
        )
    });
    match router::decide(&table, found, cluster, authority, head, envoy_headers) {
        Decision::Forward {
            route: r,
            cluster,
            timeout,
        } => {
            answer.action = "forward";
            if answer.weighted_clusters.is_empty() {
                answer.cluster = Some(bootstrap.clusters[cluster].name.clone());
                answer.cluster_index = Some(cluster);
            }
            answer.timeout = Some(timeout.map_or("disabled".to_owned(), |t| format!("{t:?}")));
            answer.upstream_target = Some(String::from_utf8_lossy(&head.target).into_owned());
            header_changes(&before, head, answer);
            answer.retry = table.retry_policy(r).map(retry_summary);
            let c = &bootstrap.clusters[cluster];
            if c.lb_policy.hashes()
                && let RouteAction::Forward(f) = &table.route(r).action
            {
                hash_key(&f.hash_policy, head, url.port, answer);
            }
        }
        Decision::Respond { route: r, reply } => {
            answer.action = match r.map(|r| &table.route(r).action) {
                Some(RouteAction::Redirect(_)) => "redirect",
                Some(RouteAction::DirectResponse { .. }) => "direct_response",
                _ => "no_route",
            };
            answer.status = Some(reply.status);
            answer.location = reply.location.clone();
        }
    }
    answer.http_filters = filters(hcm, &table, found);
}

/// A retry policy in a line: its conditions, retries and per-try timeout.
fn retry_summary(p: &weir_config::RetryPolicy) -> String {
    let on: Vec<&str> = (weir_config::RetryOn::HTTP_NAMES.iter())
        .filter(|(_, c)| p.retry_on.any(*c))
        .map(|(n, _)| *n)
        .collect();
    let per_try = (p.per_try_timeout).map_or(String::new(), |t| format!(", per try {t:?}"));
    let retries = p.num_retries;
    format!("retry_on {} ({retries} retries{per_try})", on.join(","))
}

/// The request's hash under `policies`, as the router computes it.
fn hash_key(
    policies: &[weir_config::HashPolicy],
    head: &RequestHead,
    port: u16,
    answer: &mut RouteAnswer,
) {
    let conn = hash::Connection {
        remote: CLIENT,
        local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
    };
    let hashed = hash::request_hash(policies, head, conn);
    answer.hash = hashed.hash;
    answer.hash_key = Some(match hashed.hash {
        Some(h) => format!("{h:016x}"),
        None => "none (no hash policy found its input: a random pick)".to_owned(),
    });
}

/// Why a route did not take the request.
fn why_not(
    route: &weir_config::Route,
    head: &RequestHead,
    authority: &[u8],
    scheme: &[u8],
) -> String {
    let m = &route.matcher;
    let path = String::from_utf8_lossy(head.path());
    let connect = head.method.as_ref() == b"CONNECT";
    // The proxy's own path match decides; this only says what failed.
    if !path_matches(m, head.path(), connect) {
        let case = if m.case_sensitive { "" } else { " (any case)" };
        return match &m.path {
            PathMatch::Connect => "it takes CONNECT requests only".to_owned(),
            _ if connect => "a CONNECT request goes only to a connect_matcher route".to_owned(),
            PathMatch::Prefix(p) => format!("path {path} does not start with {p}{case}"),
            PathMatch::Exact(p) => format!("path {path} is not {p}{case}"),
            PathMatch::Regex(re) => {
                format!("path {path} does not match regex {}", re.compiled.as_str())
            }
        };
    }
    for h in &m.headers {
        if !header_matches(h, authority, scheme, head) {
            let what = match &h.rule {
                HeaderMatchRule::Present(true) => "is absent".to_owned(),
                HeaderMatchRule::Present(false) => "is present".to_owned(),
                HeaderMatchRule::String(s) => format!("does not match {:?}", s.kind),
            };
            let invert = if h.invert_match {
                " (inverted match)"
            } else {
                ""
            };
            return format!("header {} {what}{invert}", h.name);
        }
    }
    "its runtime_fraction left the request out".to_owned()
}

/// The header fields the router set or changed, and removed.
fn header_changes(before: &RequestHead, after: &RequestHead, answer: &mut RouteAnswer) {
    for h in after.headers.iter() {
        let name = String::from_utf8_lossy(&h.name).to_ascii_lowercase();
        let old: Vec<&[u8]> = before.headers.get_all(&name).map(|v| &v[..]).collect();
        if !old.contains(&&h.value[..]) {
            let value = String::from_utf8_lossy(&h.value).into_owned();
            answer.headers_set.push((name, value));
        }
    }
    for h in before.headers.iter() {
        let name = String::from_utf8_lossy(&h.name).to_ascii_lowercase();
        if !after.headers.contains(&name) && !answer.headers_removed.contains(&name) {
            answer.headers_removed.push(name);
        }
    }
}

/// The HTTP filters before the router that run on this route.
fn filters(
    hcm: &HttpConnectionManager,
    table: &RouteTable,
    route: Option<RouteRef>,
) -> Vec<FilterRun> {
    (hcm.http_filters.iter())
        .filter_map(|f| match f {
            HttpFilter::Filter { name, disabled, .. } => {
                let per_route = table.per_filter(route, name);
                let runs = match per_route {
                    Some(PerFilter::Disabled) => false,
                    Some(_) => true,
                    None => !disabled,
                };
                runs.then(|| FilterRun {
                    name: name.clone(),
                    per_route: per_route.is_some(),
                })
            }
            HttpFilter::Router { .. } => None,
        })
        .collect()
}

/// The request head the connection manager would hand the router.
fn request_head(request: &RouteRequest, url: &Url) -> Result<RequestHead, String> {
    let mut raw = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\n",
        request.method, url.target, url.authority
    );
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("host") {
            return Err("give the host in the URL, not as a header".to_owned());
        }
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    let mut buf = BytesMut::from(raw.as_bytes());
    match RequestDecoder::new(Limits::default()).decode(&mut buf) {
        Ok(Some(RequestEvent::Head(request))) => Ok(request.head),
        Ok(_) => Err("an incomplete request".to_owned()),
        Err(e) => Err(format!("not a valid request: {e}")),
    }
}

/// An absolute `http` or `https` URL, split.
struct Url {
    scheme: String,
    /// `host[:port]` as written (the request's `host`).
    authority: String,
    host: String,
    port: u16,
    /// The path and query (`/` when the URL has none).
    target: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, String> {
        let bad = || format!("`{url}` is not an http:// or https:// URL");
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad()),
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(end);
        if authority.is_empty() {
            return Err(bad());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, p.parse::<u16>().map_err(|_| bad())?),
            _ => (authority, default_port),
        };
        let target = match target {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        };
        Ok(Url {
            scheme,
            authority: authority.to_owned(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            target,
        })
    }
}

impl RouteAnswer {
    /// The answer as lines of text.
    pub fn text(&self) -> String {
        let mut out = format!("{}\n", self.request);
        let mut line = |k: &str, v: &str| out.push_str(&format!("  {k:<15} {v}\n"));
        line("listener", &self.listener);
        line("filter chain", &self.filter_chain);
        if self.action == "tcp_proxy" {
            line("tcp_proxy", self.cluster.as_deref().unwrap_or(""));
            return out;
        }
        line(
            "virtual host",
            self.virtual_host
                .as_deref()
                .unwrap_or("(none matches the host)"),
        );
        for p in &self.passed_over {
            line(
                "passed over",
                &format!("route #{} {}: {}", p.index, quoted(&p.name), p.why),
            );
        }
        match &self.route {
            Some(r) => line("route", &format!("#{} {}", r.index, quoted(&r.name))),
            None => line("route", "(none)"),
        }
        let action = match self.action {
            "forward" if !self.weighted_clusters.is_empty() => {
                let each: Vec<String> = self
                    .weighted_clusters
                    .iter()
                    .map(|(c, w)| format!("{c} ({w})"))
                    .collect();
                format!("forward to one of {}, by weight", each.join(", "))
            }
            "forward" => format!(
                "forward to cluster {}",
                self.cluster.as_deref().unwrap_or("")
            ),
            "redirect" | "direct_response" => {
                let location = self
                    .location
                    .as_ref()
                    .map_or(String::new(), |l| format!(", location {l}"));
                format!(
                    "{} {}{location}",
                    self.action.replace('_', " "),
                    self.status.unwrap_or(0)
                )
            }
            _ => format!("no route: {} (NR)", self.status.unwrap_or(404)),
        };
        line("action", &action);
        if let Some(t) = &self.upstream_target {
            line("upstream path", t);
        }
        for (n, v) in &self.headers_set {
            line("header set", &format!("{n}: {v}"));
        }
        for n in &self.headers_removed {
            line("header removed", n);
        }
        if let Some(t) = &self.timeout {
            line("timeout", t);
        }
        if let Some(r) = &self.retry {
            line("retries", r);
        }
        for f in &self.http_filters {
            let per = if f.per_route {
                " (per-route config)"
            } else {
                ""
            };
            line("http filter", &format!("{}{per}", f.name));
        }
        if let Some(h) = &self.hash_key {
            line("hash key", h);
        }
        for n in &self.notes {
            line("note", n);
        }
        out
    }
}

fn quoted(name: &str) -> String {
    match name.is_empty() {
        true => "(unnamed)".to_owned(),
        false => format!("`{name}`"),
    }
}
