//! A cluster's `lb_policy` and the `*_lb_config` that goes with it.

use crate::model::LbPolicy;
use crate::reader::{Cx, Field, Obj, join, percent_in_range, typed_extension};

/// Envoy's defaults and limits (`ring_hash_lb_config`, `maglev_lb_config`).
const DEFAULT_MIN_RING: u64 = 1024;
const DEFAULT_MAX_RING: u64 = 8 * 1024 * 1024;
const DEFAULT_MAGLEV_TABLE: u64 = 65537;
const MAX_MAGLEV_TABLE: u64 = 5_000_011;

/// Reads `lb_policy` and every `*_lb_config` (each is checked even when another policy is in
/// force, where Envoy ignores it).
pub(crate) fn policy(cx: &mut Cx, o: &mut Obj<'_>) -> Option<LbPolicy> {
    let name = match o.get(cx, "lb_policy") {
        Some(p) => p.enumeration_subset(
            cx,
            "lb_policy",
            &[
                ("ROUND_ROBIN", 0),
                ("LEAST_REQUEST", 1),
                ("RING_HASH", 2),
                ("RANDOM", 3),
                ("MAGLEV", 5),
                ("CLUSTER_PROVIDED", 6),
                ("LOAD_BALANCING_POLICY_CONFIG", 7),
            ],
            &[
                "ROUND_ROBIN",
                "LEAST_REQUEST",
                "RING_HASH",
                "RANDOM",
                "MAGLEV",
                "CLUSTER_PROVIDED",
                "LOAD_BALANCING_POLICY_CONFIG",
            ],
        ),
        None => Some("ROUND_ROBIN"),
    };
    let least = match o.get(cx, "least_request_lb_config") {
        Some(f) => least_request(cx, &f, false),
        None => Some((2, 1.0)),
    };
    let ring = match o.get(cx, "ring_hash_lb_config") {
        Some(f) => ring_hash(cx, &f, false),
        None => Some((DEFAULT_MIN_RING, DEFAULT_MAX_RING)),
    };
    let maglev = match o.get(cx, "maglev_lb_config") {
        Some(f) => maglev(cx, &f, false),
        None => Some(DEFAULT_MAGLEV_TABLE),
    };
    if let Some(f) = o.get(cx, "round_robin_lb_config") {
        let o = Obj::new(cx, &f, &["slow_start_config"])?;
        o.finish(cx);
    }
    // `load_balancing_policy` (the typed form) takes the place of `lb_policy`, as in Envoy.
    if let Some(f) = o.get(cx, "load_balancing_policy") {
        return typed_policy(cx, &f);
    }
    if name == Some("LOAD_BALANCING_POLICY_CONFIG") {
        cx.error(
            o.path(),
            "lb_policy LOAD_BALANCING_POLICY_CONFIG needs `load_balancing_policy`",
        );
        return None;
    }
    Some(match name? {
        "LEAST_REQUEST" => {
            let (choice_count, active_request_bias) = least?;
            LbPolicy::LeastRequest {
                choice_count,
                active_request_bias,
            }
        }
        "RANDOM" => LbPolicy::Random,
        "RING_HASH" => {
            let (minimum_ring_size, maximum_ring_size) = ring?;
            LbPolicy::RingHash {
                minimum_ring_size,
                maximum_ring_size,
            }
        }
        "MAGLEV" => LbPolicy::Maglev {
            table_size: maglev?,
        },
        "CLUSTER_PROVIDED" => LbPolicy::ClusterProvided,
        _ => LbPolicy::RoundRobin,
    })
}

/// `least_request_lb_config`: `choice_count` (≥ 2) and `active_request_bias`.
fn least_request(cx: &mut Cx, f: &Field<'_>, typed: bool) -> Option<(u32, f64)> {
    let mut o = Obj::new(
        cx,
        f,
        &[
            "slow_start_config",
            "locality_lb_config",
            "selection_method",
            "enable_full_scan",
        ],
    )?;
    if typed {
        o.get(cx, "@type");
    }
    let choice_count = match o.get(cx, "choice_count") {
        Some(c) => c.u32(cx).and_then(|n| {
            if n < 2 {
                cx.error(&c.path, "choice_count must be at least 2");
                return None;
            }
            Some(n)
        }),
        None => Some(2),
    };
    let bias = match o.get(cx, "active_request_bias") {
        Some(b) => {
            let mut bo = Obj::new(cx, &b, &[])?;
            let value = bo.required(cx, "default_value");
            bo.string(cx, "runtime_key");
            bo.finish(cx);
            let value = value?;
            match value.value.as_f64() {
                Some(v) if v >= 0.0 && v.is_finite() => Some(v),
                _ => {
                    cx.error(&value.path, "active_request_bias must be a number ≥ 0");
                    None
                }
            }
        }
        None => Some(1.0),
    };
    o.finish(cx);
    Some((choice_count?, bias?))
}

/// `ring_hash_lb_config`: ring sizes; xxHash only.
fn ring_hash(cx: &mut Cx, f: &Field<'_>, typed: bool) -> Option<(u64, u64)> {
    let mut o = Obj::new(
        cx,
        f,
        &[
            "use_hostname_for_hashing",
            "hash_balance_factor",
            "consistent_hashing_lb_config",
            "locality_weighted_lb_config",
        ],
    )?;
    if typed {
        o.get(cx, "@type");
    }
    let size =
        |cx: &mut Cx, o: &mut Obj<'_>, name: &'static str, default: u64| match o.get(cx, name) {
            Some(s) => s.u64(cx).and_then(|n| {
                if n == 0 || n > DEFAULT_MAX_RING {
                    cx.error(&s.path, format!("{name} must be in 1..={DEFAULT_MAX_RING}"));
                    return None;
                }
                Some((n, s.path))
            }),
            None => Some((default, String::new())),
        };
    let min = size(cx, &mut o, "minimum_ring_size", DEFAULT_MIN_RING);
    let max = size(cx, &mut o, "maximum_ring_size", DEFAULT_MAX_RING);
    if let Some(h) = o.get(cx, "hash_function") {
        let supported = h.enumeration_subset(
            cx,
            "hash_function",
            &[("XX_HASH", 0), ("MURMUR_HASH_2", 1)],
            &["XX_HASH"],
        );
        supported?;
    }
    o.finish(cx);
    let ((min, _), (max, max_path)) = (min?, max?);
    if min > max {
        cx.error(
            &max_path,
            "maximum_ring_size must be at least minimum_ring_size",
        );
        return None;
    }
    Some((min, max))
}

/// `maglev_lb_config`: `table_size`, a prime up to 5000011.
fn maglev(cx: &mut Cx, f: &Field<'_>, typed: bool) -> Option<u64> {
    let mut o = Obj::new(
        cx,
        f,
        &[
            "consistent_hashing_lb_config",
            "locality_weighted_lb_config",
        ],
    )?;
    if typed {
        o.get(cx, "@type");
    }
    let size = match o.get(cx, "table_size") {
        Some(t) => t.u64(cx).and_then(|n| {
            if n > MAX_MAGLEV_TABLE || !is_prime(n) {
                cx.error(
                    &t.path,
                    format!("table_size must be a prime number no larger than {MAX_MAGLEV_TABLE}"),
                );
                return None;
            }
            Some(n)
        }),
        None => Some(DEFAULT_MAGLEV_TABLE),
    };
    o.finish(cx);
    size
}

const TYPE_PREFIX: &str = "type.googleapis.com/envoy.extensions.load_balancing_policies.";

/// `load_balancing_policy.policies[]`: the first whose type weir supports is used (as Envoy
/// uses the first it supports); with none, an error listing what weir supports.
fn typed_policy(cx: &mut Cx, f: &Field<'_>) -> Option<LbPolicy> {
    let mut o = Obj::new(cx, f, &[])?;
    let policies = o.list(cx, "policies");
    o.finish(cx);
    for p in &policies {
        let mut po = Obj::new(cx, p, &[])?;
        let ext = po.required(cx, "typed_extension_config");
        po.finish(cx);
        let (typed, url) = typed_extension(cx, &ext?)?;
        let Some(kind) = url.strip_prefix(TYPE_PREFIX) else {
            continue;
        };
        let plain = |cx: &mut Cx| {
            let mut to = Obj::new(cx, &typed, &["slow_start_config", "locality_lb_config"])?;
            to.get(cx, "@type");
            to.finish(cx).then_some(())
        };
        return match kind {
            "round_robin.v3.RoundRobin" => plain(cx).map(|()| LbPolicy::RoundRobin),
            "random.v3.Random" => plain(cx).map(|()| LbPolicy::Random),
            "least_request.v3.LeastRequest" => {
                least_request(cx, &typed, true).map(|(choice_count, active_request_bias)| {
                    LbPolicy::LeastRequest {
                        choice_count,
                        active_request_bias,
                    }
                })
            }
            "ring_hash.v3.RingHash" => {
                ring_hash(cx, &typed, true).map(|(minimum_ring_size, maximum_ring_size)| {
                    LbPolicy::RingHash {
                        minimum_ring_size,
                        maximum_ring_size,
                    }
                })
            }
            "maglev.v3.Maglev" => {
                maglev(cx, &typed, true).map(|table_size| LbPolicy::Maglev { table_size })
            }
            _ => continue,
        };
    }
    cx.error(
        &join(&f.path, "policies"),
        "no policy weir supports (round_robin, least_request, random, ring_hash, maglev: \
         `envoy.extensions.load_balancing_policies.*.v3`)",
    );
    None
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// `common_lb_config` as read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommonLb {
    /// `healthy_panic_threshold` (a `Percent`, default 50).
    pub(crate) healthy_panic_threshold: f64,
    /// `locality_weighted_lb_config` is set.
    pub(crate) locality_weighted: bool,
}

impl Default for CommonLb {
    fn default() -> CommonLb {
        CommonLb {
            healthy_panic_threshold: 50.0,
            locality_weighted: false,
        }
    }
}

/// `common_lb_config`: the panic threshold and locality-weighted balancing.
pub(crate) fn common_lb_config(cx: &mut Cx, f: Option<&Field<'_>>) -> Option<CommonLb> {
    let Some(f) = f else {
        return Some(CommonLb::default());
    };
    let mut o = Obj::new(
        cx,
        f,
        &[
            "zone_aware_lb_config",
            "update_merge_window",
            "ignore_new_hosts_until_first_hc",
            "close_connections_on_host_set_change",
            "consistent_hashing_lb_config",
            "override_host_status",
        ],
    )?;
    let threshold = match o.get(cx, "healthy_panic_threshold") {
        Some(p) => percent_in_range(cx, &p, "healthy_panic_threshold must be in 0..=100"),
        None => Some(50.0),
    };
    // `LocalityWeightedLbConfig` has no fields: being there turns it on.
    let locality_weighted = match o.get(cx, "locality_weighted_lb_config") {
        Some(l) => Obj::new(cx, &l, &[]).map(|lo| lo.finish(cx)),
        None => Some(false),
    };
    let ok = o.finish(cx);
    Some(CommonLb {
        healthy_panic_threshold: threshold?,
        locality_weighted: locality_weighted?,
    })
    .filter(|_| ok)
}
