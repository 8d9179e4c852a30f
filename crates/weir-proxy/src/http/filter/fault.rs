//! `envoy.filters.http.fault`: delays and aborts injected into a share of requests, as Envoy's
//! fault filter does, for testing how services fail.
//!
//! A request the filter applies to (its cluster, downstream node and headers match, and
//! `max_active_faults` is not reached) may be delayed (the filter holds it and asks to be
//! woken), then aborted (answered with a status and `fault filter abort`), or both, each with
//! its own percentage. `header_delay` and `header_abort` take the delay (ms) and the status
//! from the request's `x-envoy-fault-*` headers, whose `-percentage` headers can only lower
//! the configured share.

use std::borrow::Cow;
use std::time::Duration;

use weir_config::{AbortKind, DelayKind, FaultConfig, Fraction};
use weir_http1::RequestHead;

use super::{FilterEnv, Verdict};
use crate::http::local_reply::{LocalReply, ResponseFlag};
use crate::router::route_table::header_matches;
use crate::stats::FaultStats;

const DELAY_HEADER: &str = "x-envoy-fault-delay-request";
const DELAY_PERCENT_HEADER: &str = "x-envoy-fault-delay-request-percentage";
const ABORT_HEADER: &str = "x-envoy-fault-abort-request";
const ABORT_GRPC_HEADER: &str = "x-envoy-fault-abort-grpc-request";
const ABORT_PERCENT_HEADER: &str = "x-envoy-fault-abort-request-percentage";
const NODE_HEADER: &str = "x-envoy-downstream-service-node";
const CLUSTER_HEADER: &str = "x-envoy-downstream-service-cluster";

/// The fault filter on one stream.
///
/// ```text
///   Idle ── delay drawn ──> Delaying ── woken ──┬─ abort drawn ──> (answered)
///     │                                         └─ otherwise ────> (continues)
///     └── abort drawn ──> (answered)
/// ```
#[derive(Debug)]
pub(crate) struct Fault {
    config: FaultConfig,
    /// The request counts towards `active_faults` (once, whatever it was injected with).
    charged: bool,
    /// Holding the request for its delay.
    delaying: bool,
}

impl Fault {
    pub(crate) fn new(config: FaultConfig) -> Self {
        Fault {
            config,
            charged: false,
            delaying: false,
        }
    }

    pub(crate) fn decode_headers(
        &mut self,
        head: &RequestHead,
        env: &mut FilterEnv<'_>,
    ) -> Verdict {
        if !self.applies(head, env) {
            return Verdict::Continue;
        }
        if let Some(delay) = self.draw_delay(head, env) {
            // Past `max_active_faults` the request goes on with no fault at all.
            if !self.try_charge(env) {
                return Verdict::Continue;
            }
            env.fault_stats.delays_injected.inc();
            self.delaying = true;
            return Verdict::Stop {
                wake_after: Some(delay),
            };
        }
        self.maybe_abort(head, env)
    }

    /// Body while delaying is held (the connection manager bounds it).
    pub(crate) fn decode_data(&mut self) -> Verdict {
        if self.delaying {
            Verdict::Stop { wake_after: None }
        } else {
            Verdict::Continue
        }
    }

    /// The delay is over: the abort is drawn now, as Envoy draws it after the delay. Without
    /// one the request is no longer an active fault.
    pub(crate) fn on_wake(&mut self, head: &RequestHead, env: &mut FilterEnv<'_>) -> Verdict {
        self.delaying = false;
        let verdict = self.maybe_abort(head, env);
        if matches!(verdict, Verdict::Continue) {
            self.on_destroy(env.fault_stats);
        }
        verdict
    }

    pub(crate) fn on_destroy(&mut self, stats: &FaultStats) {
        if std::mem::take(&mut self.charged) {
            stats.active_faults.dec();
        }
    }

    fn applies(&self, head: &RequestHead, env: &FilterEnv<'_>) -> bool {
        let c = &self.config;
        if let Some(cluster) = &c.upstream_cluster
            && env.route_cluster != Some(cluster.as_str())
        {
            return false;
        }
        if !c.downstream_nodes.is_empty() {
            let node = head.headers.get(NODE_HEADER);
            if !node.is_some_and(|n| c.downstream_nodes.iter().any(|d| d.as_bytes() == &n[..])) {
                return false;
            }
        }
        c.headers
            .iter()
            .all(|m| header_matches(m, env.authority, env.scheme, head))
    }

    fn draw_delay(&self, head: &RequestHead, env: &mut FilterEnv<'_>) -> Option<Duration> {
        let delay = self.config.delay?;
        let keys = &self.config.runtime;
        let cluster = downstream_cluster(head);
        // The `-percentage` header lowers only a header-controlled fault's share (Envoy).
        let (duration, share) = match delay.kind {
            DelayKind::Fixed(d) => (d, delay.percentage),
            DelayKind::Header => (
                Duration::from_millis(header_number(head, DELAY_HEADER)?),
                lowered(delay.percentage, head, DELAY_PERCENT_HEADER),
            ),
        };
        let share = match cluster {
            Some(c) => env
                .runtime
                .share(&cluster_key(c, "delay.fixed_delay_percent"), share),
            None => env.runtime.share(&keys.delay_percent, share),
        };
        if !drawn(share, env) {
            return None;
        }
        let configured = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let mut ms = env.runtime.integer(&keys.delay_duration, configured);
        if let Some(c) = cluster {
            ms = env
                .runtime
                .integer(&cluster_key(c, "delay.fixed_duration_ms"), ms);
        }
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    fn maybe_abort(&mut self, head: &RequestHead, env: &mut FilterEnv<'_>) -> Verdict {
        let Some(abort) = self.config.abort else {
            return Verdict::Continue;
        };
        // `None` for a gRPC abort: over HTTP/1 it is a 200 with the abort text, as Envoy 1.40
        // answers it, and no HTTP status key applies.
        let http_status = match abort.kind {
            AbortKind::Http(status) => Some(status),
            AbortKind::Grpc(_) => None,
            AbortKind::Header => match (
                header_number(head, ABORT_HEADER),
                header_number(head, ABORT_GRPC_HEADER),
            ) {
                (Some(s), _) if (200..600).contains(&s) => Some(s as u16),
                (_, Some(_)) => None,
                _ => return Verdict::Continue,
            },
        };
        let share = match abort.kind {
            AbortKind::Header => lowered(abort.percentage, head, ABORT_PERCENT_HEADER),
            AbortKind::Http(_) | AbortKind::Grpc(_) => abort.percentage,
        };
        let keys = &self.config.runtime;
        let cluster = downstream_cluster(head);
        let (share, status_key) = match cluster {
            Some(c) => (
                env.runtime
                    .share(&cluster_key(c, "abort.abort_percent"), share),
                Cow::Owned(cluster_key(c, "abort.http_status")),
            ),
            None => (
                env.runtime.share(&keys.abort_percent, share),
                Cow::Borrowed(keys.abort_http_status.as_str()),
            ),
        };
        let status = http_status.map_or(200, |s| runtime_status(env, &status_key, s));
        if !drawn(share, env) || !self.try_charge(env) {
            return Verdict::Continue;
        }
        env.fault_stats.aborts_injected.inc();
        let mut reply = LocalReply::new(status, "fault filter abort").because("fault_filter_abort");
        reply.flag = Some(ResponseFlag::FaultInjected);
        Verdict::Reply(reply)
    }

    /// Counts the request as an active fault (once, whatever it is injected with), unless
    /// `max_active_faults` are active already (`faults_overflow`): checked only as a fault is
    /// about to be injected, as Envoy does.
    fn try_charge(&mut self, env: &FilterEnv<'_>) -> bool {
        if self.charged {
            return true;
        }
        let configured = self.config.max_active_faults.map_or(u64::MAX, u64::from);
        let max = env
            .runtime
            .integer(&self.config.runtime.max_active_faults, configured);
        if u64::try_from(env.fault_stats.active_faults.get()).unwrap_or(0) >= max {
            env.fault_stats.faults_overflow.inc();
            return false;
        }
        self.charged = true;
        env.fault_stats.active_faults.inc();
        true
    }
}

/// `x-envoy-downstream-service-cluster`: when the request names its cluster, Envoy reads the
/// fault's shares, delay and status from `fault.http.<cluster>.*` keys (falling back to the
/// configured values, not to the general keys).
fn downstream_cluster(head: &RequestHead) -> Option<&str> {
    head.headers
        .get(CLUSTER_HEADER)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
}

fn cluster_key(cluster: &str, rest: &str) -> String {
    format!("fault.http.{cluster}.{rest}")
}

/// The abort status from the runtime when it holds one weir can answer with (200..=599), else
/// `configured`.
fn runtime_status(env: &FilterEnv<'_>, key: &str, configured: u16) -> u16 {
    match env.runtime.integer(key, u64::from(configured)) {
        s @ 200..=599 => s as u16,
        _ => configured,
    }
}

/// A header's value as a number, when it is one.
fn header_number(head: &RequestHead, name: &str) -> Option<u64> {
    let value = head.headers.get(name)?;
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The configured share, lowered by a `-percentage` header: its value is a numerator over the
/// configured denominator (here per million), never above the configured share.
fn lowered(configured: Fraction, head: &RequestHead, header: &str) -> Fraction {
    match header_number(head, header) {
        Some(n) => {
            let scale = u64::from(1_000_000 / configured.denominator.max(1));
            let per_million = n
                .saturating_mul(scale)
                .min(u64::from(configured.per_million));
            Fraction {
                per_million: per_million as u32,
                ..configured
            }
        }
        None => configured,
    }
}

/// Whether this request falls in `share`.
fn drawn(share: Fraction, env: &mut FilterEnv<'_>) -> bool {
    share.per_million >= 1_000_000 || env.rng.u32(0..1_000_000) < share.per_million
}
