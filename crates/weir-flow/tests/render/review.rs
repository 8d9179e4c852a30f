//! Review regressions: renderers over flows the recorder never makes but a reader may hand in
//! (from JSON lines, say).

use crate::fixtures;

/// Events out of time order (a hand-edited or merged flow) render instead of panicking on a
/// negative duration.
#[test]
fn perfetto_survives_events_out_of_time_order() {
    let mut flow = fixtures::fresh();
    flow.events.reverse();
    let out = weir_flow::render::perfetto(&[flow]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert!(v["traceEvents"].as_array().is_some_and(|a| !a.is_empty()));
}
