//! `GET /flows`: the flow recorder's recent flows, filtered and rendered.

use bytes::Bytes;

use weir_config::{FlowTrace, FlowTraceMode};

use super::{AdminInfo, Reply};

/// What the timeline page says about recording: what the recorder keeps, and how to record
/// more (`GET /flows/view`).
pub(super) fn recording_note(config: FlowTrace) -> String {
    let kept = config.flows_kept;
    let what = match config.mode {
        FlowTraceMode::Off => {
            "Recording nothing: the flow recorder is off (flow_trace mode OFF).".to_owned()
        }
        FlowTraceMode::Header => format!(
            "Recording only requests sent with the header x-weir-trace: 1 (flow_trace mode HEADER); each worker keeps its last {kept}."
        ),
        FlowTraceMode::Sampled { one_in } => format!(
            "Recording one request in {one_in} (flow_trace mode SAMPLED, sample_one_in: {one_in}); each worker keeps its last {kept}."
        ),
        FlowTraceMode::All => format!(
            "Recording every request (flow_trace mode ALL); each worker keeps its last {kept}, older ones drop off."
        ),
    };
    let more = match config.mode {
        FlowTraceMode::All => {
            "To keep more, raise weir.flow_trace.flows_kept in the config.".to_owned()
        }
        mode => {
            let header = if mode == FlowTraceMode::Header {
                " or send requests with x-weir-trace: 1"
            } else {
                ""
            };
            format!(
                "To record more, run weir with --flow-trace all (every request) or --flow-trace sampled:N (one in N){header}, or set weir.flow_trace (mode: ALL, SAMPLED with sample_one_in, or HEADER; flows_kept) in the config."
            )
        }
    };
    format!("{what} {more}")
}

/// `GET /flows`: recent flows, newest first, filtered and rendered.
pub(super) fn flows(query: &str, info: &AdminInfo) -> Reply {
    let mut format = "text";
    let mut limit = 20usize;
    let mut status: Option<(u16, bool)> = None;
    let mut min_duration_ns = 0u64;
    let mut since = 0u64;
    let mut until = u64::MAX;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = |what: &str| {
            let body = format!("bad {what}: `{value}`\n");
            (400, "text/plain", Bytes::from(body))
        };
        match key {
            "format" => {
                format = match value {
                    "text" => "text",
                    "json" => "json",
                    "perfetto" => "perfetto",
                    _ => return bad("format (text, json or perfetto)"),
                }
            }
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=10_000).contains(&n) => limit = n,
                _ => return bad("limit (1..=10000)"),
            },
            // `5xx` is a class, `404` an exact status.
            "status" => {
                let class = value.len() == 3 && value.ends_with("xx");
                let digits = if class { &value[..1] } else { value };
                match digits.parse::<u16>() {
                    Ok(n) => status = Some((n, class)),
                    Err(_) => return bad("status (e.g. 5xx or 404)"),
                }
            }
            // Only flows that ended in (since, until], recorder time in ns: `weir flows --follow`.
            "since" => match value.parse::<u64>() {
                Ok(ns) => since = ns,
                Err(_) => return bad("since"),
            },
            "until" => match value.parse::<u64>() {
                Ok(ns) => until = ns,
                Err(_) => return bad("until"),
            },
            "min_duration_ms" => match value.parse::<u64>() {
                Ok(ms) => min_duration_ns = ms.saturating_mul(1_000_000),
                Err(_) => return bad("min_duration_ms"),
            },
            _ => return bad("parameter"),
        }
    }
    // Filters apply before the limit, so ask the workers for enough to filter from.
    let filtered = status.is_some() || min_duration_ns > 0 || since > 0 || until < u64::MAX;
    let wanted = if filtered { limit.max(1024) } else { limit };
    let mut flows = info.workers.flows(wanted);
    flows.retain(|f| {
        let status_ok = match status {
            Some((class, true)) => f.status / 100 == class,
            Some((exact, false)) => f.status == exact,
            None => true,
        };
        status_ok
            && f.end.saturating_sub(f.start) >= min_duration_ns
            && f.end > since
            && f.end <= until
    });
    flows.truncate(limit);
    match format {
        "json" => {
            let mut out = String::new();
            weir_flow::render::json_lines(&flows, &mut out);
            (200, "application/x-ndjson", Bytes::from(out))
        }
        "perfetto" => (
            200,
            "application/json",
            Bytes::from(weir_flow::render::perfetto(&flows)),
        ),
        _ => {
            let mut out = String::new();
            weir_flow::render::text(&flows, &mut out);
            if flows.is_empty() {
                out.push_str(
                    "no flows recorded: enable the recorder (weir.flow_trace or --flow-trace)\n",
                );
            }
            (200, "text/plain; charset=utf-8", Bytes::from(out))
        }
    }
}
