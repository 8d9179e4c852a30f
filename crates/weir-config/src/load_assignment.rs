//! `load_assignment` (`config.endpoint.v3.ClusterLoadAssignment`): a cluster's endpoints with
//! their priority, locality and health, and its `policy`.

use std::sync::Arc;

use crate::model::{EndpointHealth, LoadSpread, Locality, Placement};
use crate::reader::{Cx, Field, Obj};

/// `config.endpoint.v3.LocalityLbEndpoints` fields weir does not support yet.
const LOCALITY_ENVOY: &[&str] = &[
    "metadata",
    "leds_cluster_locality_config",
    "proximity",
    "load_balancer_endpoints",
];

/// An `lb_endpoints[]` entry as read: its address (an IP and port for STATIC, a name and port
/// for DNS), weight, hostname, place and health.
pub(crate) struct LbEndpoint<A> {
    pub(crate) address: A,
    pub(crate) weight: u32,
    pub(crate) hostname: Option<String>,
    pub(crate) placement: Arc<Placement>,
    pub(crate) health: EndpointHealth,
}

/// How an endpoint's `address` is read.
pub(crate) type ReadAddress<'r, A> = &'r dyn Fn(&mut Cx, &Field<'_>) -> Option<A>;

/// `load_assignment`, flattened to endpoints in config order (each keeps its place), and the
/// load spread its `policy` sets (`locality_weighted` is `common_lb_config`'s, left false).
pub(crate) fn read<A>(
    cx: &mut Cx,
    f: &Field<'_>,
    address: ReadAddress<'_, A>,
) -> Option<(Vec<LbEndpoint<A>>, LoadSpread)> {
    let mut o = Obj::new(cx, f, &["named_endpoints"])?;
    let cluster_name = o.required_string(cx, "cluster_name");
    let mut endpoints = Some(Vec::new());
    for locality in o.list(cx, "endpoints") {
        let read = locality_endpoints(cx, &locality, address);
        match (&mut endpoints, read) {
            (Some(all), Some(more)) => all.extend(more),
            _ => endpoints = None,
        }
    }
    let policy = match o.get(cx, "policy") {
        Some(p) => policy(cx, &p),
        None => Some(LoadSpread::default()),
    };
    o.finish(cx);
    cluster_name?;
    Some((endpoints?, policy?))
}

/// `policy`: `overprovisioning_factor` and `weighted_priority_health`.
fn policy(cx: &mut Cx, f: &Field<'_>) -> Option<LoadSpread> {
    let mut o = Obj::new(cx, f, &["drop_overloads", "endpoint_stale_after"])?;
    let mut policy = LoadSpread::default();
    let mut ok = true;
    if let Some(factor) = o.get(cx, "overprovisioning_factor") {
        match factor.u32(cx) {
            Some(0) => {
                cx.error(&factor.path, "overprovisioning_factor must be above 0");
                ok = false;
            }
            Some(v) => policy.overprovisioning_factor = v,
            None => ok = false,
        }
    }
    match o.flag(cx, "weighted_priority_health") {
        Some(b) => policy.weighted_priority_health = b,
        None => ok = false,
    }
    ok &= o.finish(cx);
    ok.then_some(policy)
}

/// One `endpoints[]` entry (`LocalityLbEndpoints`).
fn locality_endpoints<A>(
    cx: &mut Cx,
    f: &Field<'_>,
    address: ReadAddress<'_, A>,
) -> Option<Vec<LbEndpoint<A>>> {
    let mut o = Obj::new(cx, f, LOCALITY_ENVOY)?;
    let mut ok = true;
    let priority = match o.get(cx, "priority") {
        Some(p) => p.u32(cx),
        None => Some(0),
    };
    let locality = match o.get(cx, "locality") {
        Some(l) => locality(cx, &l),
        None => Some(Locality::default()),
    };
    let locality_weight = match o.get(cx, "load_balancing_weight") {
        Some(w) => match w.u32(cx) {
            Some(0) => {
                cx.error(&w.path, "load_balancing_weight must be at least 1");
                None
            }
            w => w.map(Some),
        },
        None => Some(None),
    };
    let mut endpoints = Vec::new();
    let lb_endpoints = o.list(cx, "lb_endpoints");
    ok &= o.finish(cx);
    let placement = Arc::new(Placement {
        priority: priority?,
        locality: locality?,
        locality_weight: locality_weight?,
    });
    for e in lb_endpoints {
        match lb_endpoint(cx, &e, address, &placement) {
            Some(endpoint) => endpoints.push(endpoint),
            None => ok = false,
        }
    }
    ok.then_some(endpoints)
}

/// `locality`: `region`, `zone`, `sub_zone`.
fn locality(cx: &mut Cx, f: &Field<'_>) -> Option<Locality> {
    let mut o = Obj::new(cx, f, &[])?;
    let mut part = |o: &mut Obj<'_>, name| match o.get(cx, name) {
        Some(v) => v.string(cx),
        None => Some(String::new()),
    };
    let region = part(&mut o, "region");
    let zone = part(&mut o, "zone");
    let sub_zone = part(&mut o, "sub_zone");
    let ok = o.finish(cx);
    ok.then_some(Locality {
        region: region?,
        zone: zone?,
        sub_zone: sub_zone?,
    })
}

/// One `lb_endpoints[]` entry.
fn lb_endpoint<A>(
    cx: &mut Cx,
    f: &Field<'_>,
    read: ReadAddress<'_, A>,
    placement: &Arc<Placement>,
) -> Option<LbEndpoint<A>> {
    let mut o = Obj::new(cx, f, &["endpoint_name", "metadata"])?;
    let address = o.required(cx, "endpoint").and_then(|e| {
        let mut eo = Obj::new(
            cx,
            &e,
            &[
                "health_check_config",
                "additional_addresses",
                "observability_name",
            ],
        )?;
        let a = eo.required(cx, "address").and_then(|a| read(cx, &a));
        let hostname = eo.string(cx, "hostname").filter(|h| !h.is_empty());
        eo.finish(cx);
        Some((a?, hostname))
    });
    let health = match o.get(cx, "health_status") {
        Some(h) => h
            .enumeration(
                cx,
                "health status",
                &[
                    ("UNKNOWN", 0),
                    ("HEALTHY", 1),
                    ("UNHEALTHY", 2),
                    ("DRAINING", 3),
                    ("TIMEOUT", 4),
                    ("DEGRADED", 5),
                ],
            )
            .map(|s| match s {
                "UNHEALTHY" | "TIMEOUT" => EndpointHealth::Unhealthy,
                "DRAINING" => EndpointHealth::Draining,
                "DEGRADED" => EndpointHealth::Degraded,
                _ => EndpointHealth::Healthy,
            }),
        None => Some(EndpointHealth::Healthy),
    };
    let weight = match o.get(cx, "load_balancing_weight") {
        Some(w) => match w.u32(cx) {
            Some(0) => {
                cx.error(&w.path, "load_balancing_weight must be at least 1");
                None
            }
            w => w,
        },
        None => Some(1),
    };
    o.finish(cx);
    let (address, hostname) = address?;
    Some(LbEndpoint {
        address,
        weight: weight?,
        hostname,
        placement: placement.clone(),
        health: health?,
    })
}
