//! `GET /route`: how a request would route on the running config ([`crate::explain`]), and
//! the live hosts of the cluster it would go to: each host's health, priority and whether the
//! balancer may pick it; for ring hash and Maglev, the host the request's hash picks now.

use std::fmt::Write;

use super::handlers::{json, param, params, text};
use super::{AdminInfo, Reply};
use crate::explain::{RouteRequest, explain_with};
use crate::snapshot::Snapshot;
use crate::upstream::host_set::{HostClass, HostSlots};

/// `?method=GET&host=example.com&path=/p&header=name:value&scheme=http&listener=NAME&format=json`.
pub(super) fn route(query: &str, info: &AdminInfo) -> Result<Reply, Reply> {
    let params = params(
        query,
        &[
            "method", "host", "path", "header", "scheme", "listener", "format",
        ],
    )?;
    let host = param(&params, "host").ok_or_else(|| text(400, "`host` is required\n"))?;
    let path = param(&params, "path").unwrap_or("/");
    if !path.starts_with('/') {
        return Err(text(400, format!("`path` must start with /: `{path}`\n")));
    }
    let scheme = param(&params, "scheme").unwrap_or("http");
    let snapshot = info.snapshot();
    let bootstrap = &snapshot.bootstrap;
    let listener = match param(&params, "listener") {
        Some(name) => name.to_owned(),
        None => (bootstrap.listeners.first())
            .map(|l| l.name.clone())
            .ok_or_else(|| text(404, "no listener\n"))?,
    };
    let mut headers = Vec::new();
    for (k, v) in &params {
        if k == "header" {
            let (name, value) = (v.split_once(':'))
                .ok_or_else(|| text(400, format!("header `{v}` is not name:value\n")))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let request = RouteRequest {
        method: param(&params, "method").unwrap_or("GET").to_owned(),
        url: format!("{scheme}://{host}{path}"),
        headers,
        listener: Some(listener),
    };
    let runtime = info.state.runtime.snapshot().1;
    let answer =
        explain_with(bootstrap, &request, &runtime).map_err(|e| text(400, format!("{e}\n")))?;
    let hosts = answer
        .cluster_index
        .map(|c| live_hosts((info, &snapshot), c, answer.hash));
    match param(&params, "format") {
        Some("json") => {
            let mut value = serde_json::to_value(&answer).unwrap_or_default();
            if let Some((hosts, picked)) = &hosts {
                value["hosts"] = serde_json::Value::Array(hosts.iter().map(|h| h.json()).collect());
                value["hash_picks"] = picked.as_deref().into();
            }
            Ok(json(&value))
        }
        None | Some("text") => {
            let mut out = answer.text();
            if let Some((hosts, picked)) = &hosts {
                for h in hosts {
                    let _ = writeln!(out, "  {:<15} {}", "host", h.line());
                }
                if let Some(p) = picked {
                    let _ = writeln!(out, "  {:<15} {p}", "hash picks");
                }
            }
            Ok(text(200, out))
        }
        Some(other) => Err(text(
            400,
            format!("unknown format `{other}` (text or json)\n"),
        )),
    }
}

/// One live host as `/route` shows it.
struct LiveHost {
    address: String,
    priority: u32,
    class: &'static str,
}

impl LiveHost {
    fn line(&self) -> String {
        format!("{} priority {} {}", self.address, self.priority, self.class)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({"address": self.address, "priority": self.priority, "health": self.class})
    }
}

/// Cluster `c` (its place in `snapshot`'s config)'s hosts now, and for a hashing policy
/// the host `hash` picks.
fn live_hosts(
    (info, snapshot): (&AdminInfo, &Snapshot),
    c: usize,
    hash: Option<u64>,
) -> (Vec<LiveHost>, Option<String>) {
    let set = info.state.hosts.current(snapshot.clusters.number(c));
    let hosts = (set.hosts.iter())
        .map(|h| LiveHost {
            address: h.spec.address.to_string(),
            priority: h.spec.placement.priority,
            class: match h.class() {
                HostClass::Healthy => "healthy",
                HostClass::Degraded => "degraded",
                HostClass::Unhealthy => "unhealthy",
                HostClass::Excluded => "excluded (draining)",
            },
        })
        .collect();
    let cluster = &snapshot.bootstrap.clusters[c];
    let hashes = cluster.lb_policy.hashes();
    let picked = match (hashes, hash) {
        (true, Some(hash)) => {
            // The balancer every worker builds from this set: with a hash, the pick is the
            // same on each.
            let mut slots = HostSlots::new(
                set,
                cluster.lb_policy,
                cluster.load_spread,
                cluster.healthy_panic_threshold,
                0,
            );
            let mut rng = fastrand::Rng::with_seed(hash);
            let id = slots.pick(Some(hash), &mut rng, None);
            Some(
                id.and_then(|id| slots.address(id))
                    .map_or("no host".to_owned(), |a| a.to_string()),
            )
        }
        _ => None,
    };
    (hosts, picked)
}
