//! `weir`: the top-level section for weir's own settings (Envoy's bootstrap has no such key, so
//! an Envoy config never collides with it).
//!
//! ```yaml
//! weir:
//!   flow_trace:
//!     mode: SAMPLED        # OFF (default) | SAMPLED | HEADER | ALL
//!     sample_one_in: 100   # SAMPLED only
//!     flows_kept: 256      # completed flows kept per worker for /flows
//! ```

use crate::model::{FlowTrace, FlowTraceMode, WeirSettings};
use crate::reader::{Cx, Field, Obj};

pub(crate) fn settings(cx: &mut Cx, f: &Field<'_>) -> WeirSettings {
    let Some(mut o) = Obj::new(cx, f, &[]) else {
        return WeirSettings::default();
    };
    let flow_trace = match o.get(cx, "flow_trace") {
        Some(f) => flow_trace(cx, &f),
        None => FlowTrace::default(),
    };
    o.finish(cx);
    WeirSettings { flow_trace }
}

fn flow_trace(cx: &mut Cx, f: &Field<'_>) -> FlowTrace {
    let mut trace = FlowTrace::default();
    let Some(mut o) = Obj::new(cx, f, &[]) else {
        return trace;
    };
    let mode = o.get(cx, "mode").and_then(|m| {
        m.enumeration(
            cx,
            "flow_trace mode",
            &[("OFF", 0), ("SAMPLED", 1), ("HEADER", 2), ("ALL", 3)],
        )
    });
    let one_in = o.get(cx, "sample_one_in");
    let sampled = mode == Some("SAMPLED");
    let n = match &one_in {
        Some(field) if !sampled => {
            cx.error(&field.path, "`sample_one_in` applies only to mode SAMPLED");
            None
        }
        Some(field) => field.u32(cx).and_then(|n| {
            if n == 0 {
                cx.error(&field.path, "`sample_one_in` must be at least 1");
                None
            } else {
                Some(n)
            }
        }),
        None => Some(100),
    };
    trace.mode = match mode {
        Some("SAMPLED") => FlowTraceMode::Sampled {
            one_in: n.unwrap_or(100),
        },
        Some("HEADER") => FlowTraceMode::Header,
        Some("ALL") => FlowTraceMode::All,
        _ => FlowTraceMode::Off,
    };
    if let Some(field) = o.get(cx, "flows_kept")
        && let Some(n) = field.u32(cx)
    {
        if (1..=65_536).contains(&n) {
            trace.flows_kept = n as usize;
        } else {
            cx.error(
                &field.path,
                format!("flows_kept {n} is out of range (1..=65536)"),
            );
        }
    }
    o.finish(cx);
    trace
}
