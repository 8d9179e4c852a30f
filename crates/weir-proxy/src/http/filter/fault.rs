//! `envoy.filters.http.fault`: delays and aborts injected into a share of requests, as Envoy's
//! fault filter does, for testing how services fail.
//!
//! A request the filter applies to (its cluster, downstream node and headers match, and
//! `max_active_faults` is not reached) may be delayed (the filter holds it and asks to be
//! woken), then aborted (answered with a status and `fault filter abort`), or both, each with
//! its own percentage. `header_delay` and `header_abort` take the delay (ms) and the status
//! from the request's `x-envoy-fault-*` headers, whose `-percentage` headers can only lower
//! the configured share.

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
            .all(|m| header_matches(m, env.authority, head))
    }

    fn draw_delay(&self, head: &RequestHead, env: &mut FilterEnv<'_>) -> Option<Duration> {
        let delay = self.config.delay?;
        // The `-percentage` header lowers only a header-controlled fault's share (Envoy).
        let (duration, share) = match delay.kind {
            DelayKind::Fixed(d) => (d, delay.percentage),
            DelayKind::Header => (
                Duration::from_millis(header_number(head, DELAY_HEADER)?),
                lowered(delay.percentage, head, DELAY_PERCENT_HEADER),
            ),
        };
        (!duration.is_zero() && drawn(share, env)).then_some(duration)
    }

    fn maybe_abort(&mut self, head: &RequestHead, env: &mut FilterEnv<'_>) -> Verdict {
        let Some(abort) = self.config.abort else {
            return Verdict::Continue;
        };
        let status = match abort.kind {
            AbortKind::Http(status) => status,
            // Over HTTP/1 a gRPC abort is a 200 with the abort text, as Envoy 1.40 answers it.
            AbortKind::Grpc(_) => 200,
            AbortKind::Header => match (
                header_number(head, ABORT_HEADER),
                header_number(head, ABORT_GRPC_HEADER),
            ) {
                (Some(s), _) if (200..600).contains(&s) => s as u16,
                (_, Some(_)) => 200,
                _ => return Verdict::Continue,
            },
        };
        let share = match abort.kind {
            AbortKind::Header => lowered(abort.percentage, head, ABORT_PERCENT_HEADER),
            AbortKind::Http(_) | AbortKind::Grpc(_) => abort.percentage,
        };
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
        if let Some(max) = self.config.max_active_faults
            && env.fault_stats.active_faults.get() >= i64::from(max)
        {
            env.fault_stats.faults_overflow.inc();
            return false;
        }
        self.charged = true;
        env.fault_stats.active_faults.inc();
        true
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
