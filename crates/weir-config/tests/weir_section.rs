//! The `weir` top-level section: weir's own settings.

use weir_config::{FlowTraceMode, parse};

const BASE: &str = "static_resources: {}\n";

fn errors(yaml: &str) -> Vec<String> {
    match parse(yaml) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn flow_trace_defaults_to_off() {
    let b = parse(BASE).unwrap();
    assert_eq!(b.weir.flow_trace.mode, FlowTraceMode::Off);
    assert_eq!(b.weir.flow_trace.flows_kept, 256);
}

#[test]
fn flow_trace_modes() {
    let b = parse(&format!(
        "{BASE}weir: {{ flow_trace: {{ mode: SAMPLED, sample_one_in: 10, flows_kept: 32 }} }}"
    ))
    .unwrap();
    assert_eq!(
        b.weir.flow_trace.mode,
        FlowTraceMode::Sampled { one_in: 10 }
    );
    assert_eq!(b.weir.flow_trace.flows_kept, 32);
    let b = parse(&format!(
        "{BASE}weir: {{ flow_trace: {{ mode: SAMPLED }} }}"
    ))
    .unwrap();
    assert_eq!(
        b.weir.flow_trace.mode,
        FlowTraceMode::Sampled { one_in: 100 }
    );
    let b = parse(&format!("{BASE}weir: {{ flow_trace: {{ mode: HEADER }} }}")).unwrap();
    assert_eq!(b.weir.flow_trace.mode, FlowTraceMode::Header);
    let b = parse(&format!("{BASE}weir: {{ flow_trace: {{ mode: ALL }} }}")).unwrap();
    assert_eq!(b.weir.flow_trace.mode, FlowTraceMode::All);
}

#[test]
fn flow_trace_errors_name_their_path() {
    assert_eq!(
        errors(&format!(
            "{BASE}weir: {{ flow_trace: {{ mode: ALL, sample_one_in: 5 }} }}"
        )),
        ["weir.flow_trace.sample_one_in: `sample_one_in` applies only to mode SAMPLED"]
    );
    assert_eq!(
        errors(&format!(
            "{BASE}weir: {{ flow_trace: {{ mode: SAMPLED, sample_one_in: 0 }} }}"
        )),
        ["weir.flow_trace.sample_one_in: `sample_one_in` must be at least 1"]
    );
    let e = errors(&format!(
        "{BASE}weir: {{ flow_trace: {{ mode: SOMETIMES }} }}"
    ));
    assert!(
        e[0].starts_with("weir.flow_trace.mode: `SOMETIMES` is not a valid flow_trace mode"),
        "{e:?}"
    );
    let e = errors(&format!(
        "{BASE}weir: {{ flow_trace: {{ flows_kept: 0 }} }}"
    ));
    assert_eq!(
        e,
        ["weir.flow_trace.flows_kept: flows_kept 0 is out of range (1..=65536)"]
    );
    let e = errors(&format!("{BASE}weir: {{ tracing: {{}} }}"));
    assert!(e[0].starts_with("weir.tracing: unknown field"), "{e:?}");
}
