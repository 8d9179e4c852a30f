//! The router filter: the last HTTP filter. It matches the route table and decides whether the
//! request goes upstream (to which cluster, with which rewrites and timeout) or is answered
//! here (direct response, redirect, no route). It is a plain function of its inputs; the worker
//! carries the decision out.

pub(crate) mod forward;
pub(crate) mod internal_headers;
pub(crate) mod route_table;

use std::time::Duration;

use bytes::Bytes;
use weir_config::{ClusterTarget, PathMatch, RedirectPath, RouteAction};
use weir_http1::RequestHead;

use crate::http::local_reply::{LocalReply, ResponseFlag};
use route_table::{RouteRef, RouteTable};

/// What the router decided.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Forward to `cluster`; the head has been rewritten for the upstream.
    Forward {
        route: RouteRef,
        cluster: usize,
        timeout: Option<Duration>,
    },
    /// Answer locally (`route` is set when a route matched, for its response headers).
    Respond {
        route: Option<RouteRef>,
        reply: LocalReply,
    },
}

/// The cluster a forwarding route sends to: its own, or one of its weighted clusters drawn
/// now (before the HTTP filters run, so they see the cluster the request will go to, as in
/// Envoy). `None` for routes that answer locally.
pub(crate) fn pick_cluster(
    table: &RouteTable,
    r: RouteRef,
    rng: &mut fastrand::Rng,
) -> Option<usize> {
    match &table.route(r).action {
        RouteAction::Forward(forward) => Some(match &forward.target {
            ClusterTarget::Cluster(c) => *c,
            ClusterTarget::Weighted(weighted) => pick_weighted(weighted, rng),
        }),
        RouteAction::DirectResponse { .. } | RouteAction::Redirect(_) => None,
    }
}

/// What the router does with a request the filters passed on: no route is 404 (`NR`); a
/// forwarding route goes to `cluster` (from [`pick_cluster`]) with the route's path and host
/// rewrites and request header mutations applied to `head`. `authority` is the request's host
/// (absolute-form authority or Host). `envoy_headers`: the router adds its `x-envoy-*`
/// headers (false under `suppress_envoy_headers`).
pub(crate) fn decide(
    table: &RouteTable,
    route: Option<RouteRef>,
    cluster: Option<usize>,
    authority: &[u8],
    head: &mut RequestHead,
    envoy_headers: bool,
) -> Decision {
    let (Some(r), cluster) = (route, cluster) else {
        return Decision::Respond {
            route: None,
            reply: LocalReply::failure(ResponseFlag::NoRouteFound),
        };
    };
    let route = table.route(r);
    match &route.action {
        RouteAction::DirectResponse { status, body } => {
            let mut reply = LocalReply::new(*status, Bytes::from(body.clone()));
            // As Envoy's router: a 201 or 3xx direct response points at the request's own URL
            // (RFC 9110 §10.2.2).
            if *status == 201 || (300..400).contains(status) {
                let here = weir_config::RedirectAction {
                    scheme: None,
                    host: None,
                    port: None,
                    path: None,
                    status: *status,
                    strip_query: false,
                };
                reply.location = Some(redirect_location(
                    &here,
                    &route.matcher.path,
                    authority,
                    head,
                ));
            }
            Decision::Respond {
                route: Some(r),
                reply,
            }
        }
        RouteAction::Redirect(redirect) => {
            let location = redirect_location(redirect, &route.matcher.path, authority, head);
            let mut reply = LocalReply::new(redirect.status, Bytes::new());
            reply.location = Some(location);
            Decision::Respond {
                route: Some(r),
                reply,
            }
        }
        RouteAction::Forward(forward) => {
            let Some(cluster) = cluster else {
                return Decision::Respond {
                    route: Some(r),
                    reply: LocalReply::failure(ResponseFlag::NoRouteFound),
                };
            };
            if let Some(rewrite) = &forward.prefix_rewrite {
                let path = rewrite_path(&route.matcher.path, head.path(), rewrite);
                let target = match head.query() {
                    Some(q) => [path.as_slice(), b"?", q].concat(),
                    None => path,
                };
                // Envoy's router keeps the path the client sent (access logs' default format
                // reads it) unless told to suppress its headers.
                let original = std::mem::replace(&mut head.target, Bytes::from(target));
                if envoy_headers {
                    head.headers.set("x-envoy-original-path", original);
                }
            }
            if let Some(host) = &forward.host_rewrite_literal {
                // As Envoy's `updateAuthority`: the client's host is kept for the origin
                // unless the router suppresses its headers.
                let original = head.headers.get("host").filter(|h| !h.is_empty()).cloned();
                if let (Some(original), true) = (original, envoy_headers) {
                    head.headers.set("x-envoy-original-host", original);
                }
                head.headers.set("host", host.clone());
            }
            table.mutate_request(r, &mut head.headers);
            Decision::Forward {
                route: r,
                cluster,
                timeout: forward.timeout,
            }
        }
    }
}

/// Replaces the matched prefix (or, for exact and regex matches, the whole path).
fn rewrite_path(matcher: &PathMatch, path: &[u8], rewrite: &str) -> Vec<u8> {
    match matcher {
        PathMatch::Prefix(prefix) => {
            let rest = path.get(prefix.len()..).unwrap_or(b"");
            [rewrite.as_bytes(), rest].concat()
        }
        PathMatch::Exact(_) | PathMatch::Regex(_) | PathMatch::Connect => {
            rewrite.as_bytes().to_vec()
        }
    }
}

fn pick_weighted(weighted: &[(usize, u32)], rng: &mut fastrand::Rng) -> usize {
    let total: u64 = weighted.iter().map(|&(_, w)| u64::from(w)).sum();
    let mut ticket = rng.u64(0..total.max(1));
    for &(cluster, weight) in weighted {
        if ticket < u64::from(weight) {
            return cluster;
        }
        ticket -= u64::from(weight);
    }
    weighted.last().map_or(0, |&(c, _)| c)
}

/// The `location` of a redirect, built as Envoy builds it: the scheme is the redirect's or the
/// request's (`x-forwarded-proto`, set by then); `host_redirect` replaces the whole authority
/// (its port comes only from `port_redirect`); otherwise the request's authority is kept, and
/// its port dropped when `port_redirect` replaces it or when the scheme changes away from the
/// port's own default (`:80` for http, `:443` for https). A query in `path_redirect` replaces
/// the request's and is never stripped; otherwise the request's query follows unless
/// `strip_query`.
fn redirect_location(
    redirect: &weir_config::RedirectAction,
    matcher: &PathMatch,
    authority: &[u8],
    head: &RequestHead,
) -> String {
    let authority = String::from_utf8_lossy(authority);
    let request_scheme = head
        .headers
        .get("x-forwarded-proto")
        .map_or_else(|| "http".into(), |p| String::from_utf8_lossy(p));
    let scheme = redirect.scheme.as_deref().unwrap_or(&request_scheme);
    let port = redirect.port.map(|p| format!(":{p}")).unwrap_or_default();
    let host = match &redirect.host {
        Some(host) => host.as_str(),
        None => match split_host_port(&authority) {
            (host, Some(request_port)) => {
                let scheme_default = matches!(
                    (request_scheme.as_ref(), request_port),
                    ("http", "80") | ("https", "443")
                );
                if redirect.port.is_some() || (scheme != request_scheme && scheme_default) {
                    host
                } else {
                    &authority
                }
            }
            (_, None) => &authority,
        },
    };
    let (mut path_and_query, own_query) = match &redirect.path {
        Some(RedirectPath::Path(p)) => (p.clone(), p.contains('?')),
        Some(RedirectPath::PrefixRewrite(rewrite)) => (
            String::from_utf8_lossy(&rewrite_path(matcher, head.path(), rewrite)).into_owned(),
            false,
        ),
        None => (String::from_utf8_lossy(head.path()).into_owned(), false),
    };
    if !own_query
        && !redirect.strip_query
        && let Some(q) = head.query()
    {
        path_and_query.push('?');
        path_and_query.push_str(&String::from_utf8_lossy(q));
    }
    format!("{scheme}://{host}{port}{path_and_query}")
}

/// Splits `host[:port]`, keeping IPv6 literals (`[::1]:80`) whole.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    match authority.rfind(':') {
        Some(i)
            if !authority[i..].contains(']')
                && authority[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            (&authority[..i], Some(&authority[i + 1..]))
        }
        _ => (authority, None),
    }
}
