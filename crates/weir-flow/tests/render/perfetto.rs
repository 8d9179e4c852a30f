//! `render::perfetto`: a trace Perfetto and chrome://tracing load, with the tracks, slices,
//! instants and arrows the doc promises.

use std::collections::HashMap;

use serde_json::Value;
use weir_flow::{Phase, render};

use crate::fixtures;

fn trace() -> Value {
    let text = render::perfetto(&fixtures::both());
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn events(trace: &Value) -> &Vec<Value> {
    trace["traceEvents"].as_array().expect("traceEvents")
}

/// tid of the track with this `thread_name`.
fn tid(trace: &Value, name: &str) -> u64 {
    events(trace)
        .iter()
        .find(|e| e["ph"] == "M" && e["name"] == "thread_name" && e["args"]["name"] == name)
        .unwrap_or_else(|| panic!("no track named {name:?}"))["tid"]
        .as_u64()
        .unwrap()
}

fn ts(e: &Value) -> f64 {
    e["ts"].as_f64().expect("ts")
}

#[test]
fn is_the_object_format_with_named_processes_and_tracks() {
    let trace = trace();
    assert_eq!(trace["displayTimeUnit"], "ns");
    let process = events(&trace)
        .iter()
        .find(|e| e["ph"] == "M" && e["name"] == "process_name")
        .unwrap();
    assert_eq!(process["pid"], 0);
    assert_eq!(process["args"]["name"], "weir worker 0");
    let loop_tid = tid(&trace, "event loop (wake rounds)");
    let down = tid(&trace, "downstream fd 41 (conn 3)");
    let up = tid(&trace, "upstream fd 44 (conn 4)");
    assert!(loop_tid < down && down < up);
    for e in events(&trace) {
        assert_eq!(e["pid"], 0, "{e}");
    }
}

#[test]
fn wake_rounds_are_slices_on_the_loop_track() {
    let trace = trace();
    let loop_tid = tid(&trace, "event loop (wake rounds)");
    let rounds: Vec<&Value> = events(&trace)
        .iter()
        .filter(|e| e["ph"] == "X" && e["name"] == "wake round")
        .collect();
    assert_eq!(rounds.len(), 6);
    for round in &rounds {
        assert_eq!(round["tid"], loop_tid);
    }
    let first = rounds.iter().find(|r| r["args"]["round"] == 1).unwrap();
    // Ended 31.4µs after the accept, having run 33µs: started 1.6µs before it.
    let start_ns = fixtures::T0 + 31_400 - 33_000;
    assert!(
        (ts(first) - start_ns as f64 / 1000.0).abs() < 1e-6,
        "{first}"
    );
    assert!((first["dur"].as_f64().unwrap() - 33.0).abs() < 1e-9);
    assert_eq!(first["args"]["ready_fds"], 1);
    // Fractional microseconds keep the nanoseconds.
    let text = render::perfetto(&[fixtures::fresh()]);
    assert!(text.contains("\"ts\":999998.400,\"dur\":33.000,"), "{text}");
}

#[test]
fn each_phase_is_a_slice_on_its_connections_track() {
    let trace = trace();
    let down = tid(&trace, "downstream fd 41 (conn 3)");
    let up = tid(&trace, "upstream fd 44 (conn 4)");
    let has = |tid: u64, phase: Phase| {
        events(&trace).iter().any(|e| {
            e["ph"] == "X" && e["tid"] == tid && e["name"] == phase.title() && e["cat"] == "phase"
        })
    };
    assert!(has(down, Phase::DownstreamReadRequest));
    assert!(has(up, Phase::DownstreamReadRequest)); // connect started, registered
    assert!(has(up, Phase::UpstreamWriteRequest));
    assert!(has(up, Phase::UpstreamReadResponse));
    assert!(has(down, Phase::UpstreamReadResponse)); // read resumed
    assert!(has(down, Phase::DownstreamWriteResponse));
    assert!(!has(down, Phase::UpstreamWriteRequest));
    // The request itself encloses them.
    let request = events(&trace)
        .iter()
        .find(|e| e["ph"] == "X" && e["tid"] == down && e["name"] == "GET /index.html -> 200")
        .expect("request slice");
    assert!((ts(request) - fixtures::T0 as f64 / 1000.0).abs() < 1e-6);
    assert_eq!(request["args"]["stream"], 7);
}

#[test]
fn every_event_is_an_instant_with_its_fields() {
    let trace = trace();
    let instants: Vec<&Value> = events(&trace).iter().filter(|e| e["ph"] == "i").collect();
    let expected: usize = fixtures::both()
        .iter()
        .map(|f| {
            f.events
                .iter()
                .filter(|e| e.kind.name() != "wake_round")
                .count()
        })
        .sum();
    assert_eq!(instants.len(), expected);
    for instant in &instants {
        assert_eq!(instant["s"], "t");
        assert_eq!(instant["args"]["event"], instant["name"]);
    }
    let write = instants
        .iter()
        .find(|e| e["name"] == "write" && e["args"]["asked"] == 262)
        .unwrap();
    assert_eq!(write["args"]["written"], 262);
    assert_eq!(write["args"]["fd"], 44);
    assert_eq!(write["cat"], "upstream_write_request");
}

/// Checks every arrow of the trace of `flows` and returns their names, sorted: each `s` has
/// its `f`, with the same cat and name, and each binds to the phase slice the doc promises,
/// which is the last slice begun on its track before it, with nothing else in between.
fn arrows(flows: &[weir_flow::Flow]) -> Vec<String> {
    let trace: Value = serde_json::from_str(&render::perfetto(flows)).unwrap();
    let all = events(&trace);
    let down = tid(&trace, "downstream fd 41 (conn 3)");
    let up = tid(&trace, "upstream fd 44 (conn 4)");
    let mut pairs: HashMap<u64, (Option<usize>, Option<usize>)> = HashMap::new();
    for (i, e) in all.iter().enumerate() {
        match e["ph"].as_str() {
            Some("s") => pairs.entry(e["id"].as_u64().unwrap()).or_default().0 = Some(i),
            Some("f") => pairs.entry(e["id"].as_u64().unwrap()).or_default().1 = Some(i),
            _ => {}
        }
    }
    let mut names = Vec::new();
    for (id, pair) in &pairs {
        let (Some(s), Some(f)) = *pair else {
            panic!("arrow {id} is missing an end")
        };
        let (start, end) = (&all[s], &all[f]);
        assert_eq!(start["cat"], "flow");
        assert_eq!(end["cat"], "flow");
        assert_eq!(
            start["name"], end["name"],
            "Perfetto pairs s/f by id, cat and name"
        );
        assert_eq!(end["bp"], "e");
        assert!(ts(start) <= ts(end));
        let (from, to) = match start["name"].as_str().unwrap() {
            "request" => (
                (down, Phase::DownstreamReadRequest),
                (up, Phase::UpstreamWriteRequest),
            ),
            "response" => (
                (up, Phase::UpstreamReadResponse),
                (down, Phase::DownstreamWriteResponse),
            ),
            other => panic!("arrow {other}"),
        };
        names.push(start["name"].as_str().unwrap().to_owned());
        for (at, (tid, phase)) in [(s, from), (f, to)] {
            let arrow = &all[at];
            assert_eq!(arrow["tid"], tid, "{arrow}");
            let before = all[..at]
                .iter()
                .rev()
                .find(|e| e["tid"] == tid && e["ph"] != "M" && e["ph"] != "s" && e["ph"] != "f")
                .unwrap();
            assert_eq!(before["ph"], "X", "{before}");
            assert_eq!(before["name"], phase.title());
            assert_eq!(ts(before), ts(arrow));
        }
    }
    names.sort();
    names
}

#[test]
fn arrows_pair_up_and_bind_to_the_phase_slices() {
    // A request and a response arrow per flow.
    assert_eq!(
        arrows(&fixtures::both()),
        ["request", "request", "response", "response"]
    );
}

#[test]
fn a_request_never_written_upstream_has_no_request_arrow() {
    // The connect failed: weir answered 503 itself after the upstream socket's error.
    assert_eq!(arrows(&[fixtures::refused()]), ["response"]);
    let all = [fixtures::refused(), fixtures::reused(), fixtures::fresh()];
    assert_eq!(
        arrows(&all),
        ["request", "request", "response", "response", "response"]
    );
}

#[test]
fn timestamps_never_go_back_on_a_track() {
    let trace = trace();
    let mut last: HashMap<(u64, u64), f64> = HashMap::new();
    for e in events(&trace).iter().filter(|e| e["ph"] != "M") {
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        let t = ts(e);
        if let Some(&prev) = last.get(&key) {
            assert!(t >= prev, "{e} after ts {prev}");
        }
        last.insert(key, t);
    }
    assert_eq!(last.len(), 3);
}

#[test]
fn shared_events_are_drawn_once() {
    // A wake round or a stream-0 event (accept, register…) can be in two flows' lists: it is
    // drawn once. The same flow twice is drawn once.
    let mut next = fixtures::reused();
    let shared: Vec<_> = fixtures::fresh().events.into_iter().take(5).collect();
    next.events.splice(0..0, shared);
    let flows = [next, fixtures::fresh(), fixtures::fresh()];
    let trace: Value = serde_json::from_str(&render::perfetto(&flows)).unwrap();
    let rounds = events(&trace)
        .iter()
        .filter(|e| e["name"] == "wake round")
        .count();
    assert_eq!(rounds, 6);
    let instants = events(&trace).iter().filter(|e| e["ph"] == "i").count();
    assert_eq!(instants, 43);
    let arrows = events(&trace).iter().filter(|e| e["ph"] == "s").count();
    assert_eq!(arrows, 4);
}

#[test]
fn no_flows_is_an_empty_trace() {
    let trace: Value = serde_json::from_str(&render::perfetto(&[])).unwrap();
    assert_eq!(events(&trace).len(), 0);
}
