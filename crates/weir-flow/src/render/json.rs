//! JSON lines: a `flow` header object per flow, then its events, one object per line.

use serde::Serialize;

use crate::{Flow, Nanos};

/// The line that opens a flow. Its fields are `Flow`'s, minus the events that follow it.
#[derive(Serialize)]
struct Header<'a> {
    event: &'static str,
    stream: u64,
    worker: u16,
    downstream: u64,
    start: Nanos,
    end: Nanos,
    status: u16,
    method: &'a str,
    path: &'a str,
    truncated: bool,
}

pub(super) fn render(flows: &[Flow], out: &mut String) {
    for flow in flows {
        let header = Header {
            event: "flow",
            stream: flow.stream,
            worker: flow.worker,
            downstream: flow.downstream,
            start: flow.start,
            end: flow.end,
            status: flow.status,
            method: flow.method.as_str(),
            path: flow.path.as_str(),
            truncated: flow.truncated,
        };
        line(&header, out);
        for event in &flow.events {
            line(event, out);
        }
    }
}

fn line(value: &impl Serialize, out: &mut String) {
    // Serializing these plain structs cannot fail: every map key is a string.
    if let Ok(json) = serde_json::to_string(value) {
        out.push_str(&json);
        out.push('\n');
    }
}
