//! The router filter: the last HTTP filter. It matches the route table and decides whether the
//! request goes upstream (to which cluster, with which rewrites and timeout) or is answered
//! here (direct response, redirect, no route). It is a plain function of its inputs; the worker
//! carries the decision out.

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

/// Routes a request. `authority` is the request's host (absolute-form authority or Host).
/// On `Forward`, applies the route's path and host rewrites and request header mutations to
/// `head`.
pub(crate) fn route(
    table: &RouteTable,
    authority: &[u8],
    head: &mut RequestHead,
    rng: &mut fastrand::Rng,
) -> Decision {
    let Some(r) = table.find(authority, head) else {
        return Decision::Respond {
            route: None,
            reply: LocalReply::failure(ResponseFlag::NoRouteFound),
        };
    };
    let route = table.route(r);
    match &route.action {
        RouteAction::DirectResponse { status, body } => Decision::Respond {
            route: Some(r),
            reply: LocalReply::new(*status, Bytes::from(body.clone())),
        },
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
            let cluster = match &forward.target {
                ClusterTarget::Cluster(c) => *c,
                ClusterTarget::Weighted(weighted) => pick_weighted(weighted, rng),
            };
            if let Some(rewrite) = &forward.prefix_rewrite {
                let path = rewrite_path(&route.matcher.path, head.path(), rewrite);
                let target = match head.query() {
                    Some(q) => [path.as_slice(), b"?", q].concat(),
                    None => path,
                };
                // Envoy's router keeps the path the client sent (access logs' default format
                // reads it) unless told to suppress its headers, which weir does not support.
                let original = std::mem::replace(&mut head.target, Bytes::from(target));
                head.headers.set("x-envoy-original-path", original);
            }
            if let Some(host) = &forward.host_rewrite_literal {
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
        PathMatch::Exact(_) | PathMatch::Regex(_) => rewrite.as_bytes().to_vec(),
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

fn redirect_location(
    redirect: &weir_config::RedirectAction,
    matcher: &PathMatch,
    authority: &[u8],
    head: &RequestHead,
) -> String {
    let authority = String::from_utf8_lossy(authority);
    let (orig_host, orig_port) = split_host_port(&authority);
    let scheme = redirect.scheme.clone().unwrap_or_else(|| "http".to_owned());
    let host = redirect
        .host
        .clone()
        .unwrap_or_else(|| orig_host.to_owned());
    // A scheme change drops the original port (it belonged to the old scheme).
    let port = match (redirect.port, redirect.scheme.is_some()) {
        (Some(p), _) => Some(p.to_string()),
        (None, true) => None,
        (None, false) => orig_port.map(str::to_owned),
    };
    let port = port.filter(|p| !(scheme == "http" && p == "80" || scheme == "https" && p == "443"));
    // The request's query follows the new path, unless `path_redirect` brings its own.
    let (mut path_and_query, own_query) = match &redirect.path {
        Some(RedirectPath::Path(p)) => (p.clone(), p.contains('?')),
        Some(RedirectPath::PrefixRewrite(rewrite)) => (
            String::from_utf8_lossy(&rewrite_path(matcher, head.path(), rewrite)).into_owned(),
            false,
        ),
        None => (String::from_utf8_lossy(head.path()).into_owned(), false),
    };
    if !own_query && let Some(q) = head.query() {
        path_and_query.push('?');
        path_and_query.push_str(&String::from_utf8_lossy(q));
    }
    if redirect.strip_query
        && let Some(i) = path_and_query.find('?')
    {
        path_and_query.truncate(i);
    }
    match port {
        Some(port) => format!("{scheme}://{host}:{port}{path_and_query}"),
        None => format!("{scheme}://{host}{path_and_query}"),
    }
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
