//! `render::json_lines`: a `flow` header, then that flow's events, one object per line.

use serde_json::Value;
use weir_flow::render;

use crate::fixtures;

fn lines() -> Vec<Value> {
    let mut out = String::new();
    render::json_lines(&fixtures::both(), &mut out);
    assert!(out.ends_with('\n'));
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn each_flow_is_a_header_followed_by_its_events() {
    let lines = lines();
    let (reused, fresh) = (fixtures::reused(), fixtures::fresh());
    assert_eq!(lines.len(), 2 + reused.events.len() + fresh.events.len());
    assert_eq!(lines[0]["event"], "flow");
    assert_eq!(lines[0]["stream"], 8);
    let second = 1 + reused.events.len();
    assert_eq!(lines[second]["event"], "flow");
    assert_eq!(lines[second]["stream"], 7);
    let headers = lines.iter().filter(|l| l["event"] == "flow").count();
    assert_eq!(headers, 2);
    // Between headers, events only; each event's own fields are there.
    for line in &lines[1..second] {
        assert_ne!(line["event"], "flow");
        assert!(line["at"].as_u64().unwrap() >= fixtures::T1);
    }
}

#[test]
fn header_has_every_flow_field() {
    let lines = lines();
    let header = lines[1 + fixtures::reused().events.len()]
        .as_object()
        .unwrap();
    let mut keys: Vec<&str> = header.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "downstream",
            "end",
            "event",
            "method",
            "path",
            "start",
            "status",
            "stream",
            "truncated",
            "worker"
        ]
    );
    assert_eq!(header["worker"], 0);
    assert_eq!(header["downstream"], fixtures::DOWN_CONN);
    assert_eq!(header["start"], fixtures::T0);
    assert_eq!(header["end"], fixtures::T0 + 5_430_000);
    assert_eq!(header["status"], 200);
    assert_eq!(header["method"], "GET");
    assert_eq!(header["path"], "/index.html");
    assert_eq!(header["truncated"], false);
}

#[test]
fn events_carry_stable_field_names() {
    let lines = lines();
    let find = |name: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        lines
            .iter()
            .find(|l| l["event"] == name && pred(l))
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    let accept = find("accept", &|_| true);
    assert_eq!(accept["lane"], "downstream");
    assert_eq!(accept["fd"], 41);
    assert_eq!(accept["conn"], 3);
    assert_eq!(accept["stream"], 0);
    assert_eq!(accept["phase"], "downstream_read_request");
    assert_eq!(accept["peer"], "10.0.0.1:58708");
    assert_eq!(accept["local"], "10.0.0.2:8080");

    let read = find("read", &|l| l["result"]["bytes"] == 89);
    assert_eq!(read["asked"], 65536);
    let eagain = find("read", &|l| l["result"] == "would_block");
    assert_eq!(eagain["fd"], 41);

    let write = find("write", &|l| l["fd"] == 44 && l["asked"] == 262);
    assert_eq!(write["written"], 262);
    assert_eq!(write["phase"], "upstream_write_request");

    let round = find("wake_round", &|l| l["round"] == 2);
    assert_eq!(round["lane"], "worker");
    assert_eq!(round["fd"], -1);
    assert_eq!(round["phase"], Value::Null);
    assert_eq!(round["ready"], 1);
    assert_eq!(round["waited_ns"], 218_600);
    assert_eq!(round["ran_ns"], 41_000);

    let registered = find("registered", &|l| l["lane"] == "upstream");
    assert_eq!(registered["readable"], true);
    assert_eq!(registered["writable"], true);
    assert_eq!(registered["edge_triggered"], true);

    let route = find("route_matched", &|l| l["route"] == "api");
    assert_eq!(route["vhost"], "local");
    assert_eq!(route["cluster"], "backend");
    assert_eq!(find("request_head", &|_| true)["path"], "/api/items?page=2");
    assert_eq!(find("stream_attached", &|_| true)["reused"], true);
    assert_eq!(find("response_head", &|_| true)["status"], 404);
}

#[test]
fn event_names_match_the_json_tag() {
    for line in lines().iter().filter(|l| l["event"] != "flow") {
        let name = line["event"].as_str().unwrap();
        assert!(
            name == "flow" || name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{name}"
        );
    }
    for flow in fixtures::both() {
        for event in &flow.events {
            let json = serde_json::to_value(event).unwrap();
            assert_eq!(json["event"], event.kind.name());
        }
    }
}

#[test]
fn format_md_documents_every_field() {
    let doc = include_str!("../../../../README.md");
    let mut out = String::new();
    render::json_lines(
        &[fixtures::refused(), fixtures::reused(), fixtures::fresh()],
        &mut out,
    );
    for line in out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
    {
        for key in line.as_object().unwrap().keys() {
            assert!(
                doc.contains(&format!("`{key}`")),
                "README.md does not document `{key}`"
            );
        }
        let name = line["event"].as_str().unwrap();
        assert!(
            name == "flow" || doc.contains(&format!("| `{name}` |")),
            "README.md has no row for `{name}`"
        );
    }
}
