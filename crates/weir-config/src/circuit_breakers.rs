//! A cluster's `circuit_breakers` (`config.cluster.v3.CircuitBreakers`): its limits per
//! priority, with Envoy's defaults for what is unset.

use crate::model::{CircuitBreakers, RetryBudget, Thresholds};
use crate::reader::{Cx, Field, Obj, percent_in_range};

/// Envoy's default `retry_budget.budget_percent` and `min_retry_concurrency`.
const DEFAULT_BUDGET_PERCENT: f64 = 20.0;
const DEFAULT_MIN_RETRY_CONCURRENCY: u32 = 3;

/// `circuit_breakers`; Envoy's defaults when it is absent.
pub(crate) fn read(cx: &mut Cx, f: Option<&Field<'_>>) -> Option<CircuitBreakers> {
    let mut breakers = CircuitBreakers::default();
    let Some(f) = f else {
        return Some(breakers);
    };
    let mut o = Obj::new(cx, f, &[])?;
    let mut ok = true;
    // Envoy takes the first entry of each priority.
    let mut seen = [false; 2];
    for t in o.list(cx, "thresholds") {
        match thresholds(cx, &t) {
            Some((p, th)) if !std::mem::replace(&mut seen[p], true) => {
                breakers.thresholds[p] = th;
            }
            Some(_) => {}
            None => ok = false,
        }
    }
    let mut seen = [false; 2];
    for t in o.list(cx, "per_host_thresholds") {
        match per_host(cx, &t) {
            Some((p, max)) if !std::mem::replace(&mut seen[p], true) => {
                breakers.per_host_max_connections[p] = max;
            }
            Some(_) => {}
            None => ok = false,
        }
    }
    ok &= o.finish(cx);
    ok.then_some(breakers)
}

/// `priority`: 0 for `DEFAULT` (also when absent), 1 for `HIGH`.
fn priority(cx: &mut Cx, o: &mut Obj<'_>) -> Option<usize> {
    match o.get(cx, "priority") {
        Some(p) => p
            .enumeration(cx, "routing priority", &[("DEFAULT", 0), ("HIGH", 1)])
            .map(|name| usize::from(name == "HIGH")),
        None => Some(0),
    }
}

/// One `thresholds[]` entry: its priority and limits.
fn thresholds(cx: &mut Cx, f: &Field<'_>) -> Option<(usize, Thresholds)> {
    let mut o = Obj::new(cx, f, &[])?;
    let priority = priority(cx, &mut o);
    let defaults = Thresholds::default();
    let mut limit = |cx: &mut Cx, name: &'static str, default: u32| match o.get(cx, name) {
        Some(v) => v.u32(cx),
        None => Some(default),
    };
    let max_connections = limit(cx, "max_connections", defaults.max_connections);
    let max_pending_requests = limit(cx, "max_pending_requests", defaults.max_pending_requests);
    let max_requests = limit(cx, "max_requests", defaults.max_requests);
    let max_retries = limit(cx, "max_retries", defaults.max_retries);
    let max_connection_pools = match o.get(cx, "max_connection_pools") {
        Some(v) => v.u32(cx).map(Some),
        None => Some(None),
    };
    let retry_budget = match o.get(cx, "retry_budget") {
        Some(b) => retry_budget(cx, &b).map(Some),
        None => Some(None),
    };
    let track_remaining = o.flag(cx, "track_remaining");
    let ok = o.finish(cx);
    let thresholds = Thresholds {
        max_connections: max_connections?,
        max_pending_requests: max_pending_requests?,
        max_requests: max_requests?,
        max_retries: max_retries?,
        max_connection_pools: max_connection_pools?,
        retry_budget: retry_budget?,
        track_remaining: track_remaining?,
    };
    ok.then_some((priority?, thresholds))
}

/// `retry_budget`: `budget_percent` (0–100, default 20) and `min_retry_concurrency` (default 3).
fn retry_budget(cx: &mut Cx, f: &Field<'_>) -> Option<RetryBudget> {
    let mut o = Obj::new(cx, f, &[])?;
    let budget_percent = match o.get(cx, "budget_percent") {
        Some(p) => percent_in_range(cx, &p, "budget_percent must be a number in 0..=100"),
        None => Some(DEFAULT_BUDGET_PERCENT),
    };
    let min_retry_concurrency = match o.get(cx, "min_retry_concurrency") {
        Some(v) => v.u32(cx),
        None => Some(DEFAULT_MIN_RETRY_CONCURRENCY),
    };
    let ok = o.finish(cx);
    let budget = RetryBudget {
        budget_percent: budget_percent?,
        min_retry_concurrency: min_retry_concurrency?,
    };
    ok.then_some(budget)
}

/// One `per_host_thresholds[]` entry: its priority and `max_connections` (the one limit Envoy
/// applies per host; it refuses the others).
fn per_host(cx: &mut Cx, f: &Field<'_>) -> Option<(usize, Option<u32>)> {
    let mut o = Obj::new(cx, f, &[])?;
    let priority = priority(cx, &mut o);
    let max = match o.get(cx, "max_connections") {
        Some(v) => v.u32(cx).map(Some),
        None => Some(None),
    };
    // Accepted and, as in Envoy, without effect per host (there are no per-host gauges).
    o.flag(cx, "track_remaining");
    for name in [
        "max_pending_requests",
        "max_requests",
        "max_retries",
        "retry_budget",
        "max_connection_pools",
    ] {
        o.reject(
            cx,
            name,
            "only max_connections applies per host (Envoy refuses the others too)",
        );
    }
    let ok = o.finish(cx);
    let (priority, max) = (priority?, max?);
    ok.then_some((priority, max))
}
