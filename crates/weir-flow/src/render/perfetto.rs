//! Chrome trace-event JSON, the object format, for Perfetto and `chrome://tracing`.
//!
//! Perfetto binds a flow arrow (`s`, and `f` with `bp:"e"`) to the slice on top of its
//! track's stack when the arrow's event is read, and reads events sorted by timestamp,
//! keeping the given order among equal timestamps. So every arrow sits at the start of its
//! slice and is written after the slices and before the instants of that instant: the slice
//! it names is then the one on top.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::Micros;
use crate::{Event, EventKind, Flow, Lane, Phase};

pub(super) fn render(flows: &[Flow]) -> String {
    let mut trace = Trace::default();
    // Oldest first, so tracks are numbered in the order they appeared.
    for flow in flows.iter().rev() {
        trace.flow(flow);
    }
    trace.finish()
}

/// A track: a worker's event loop, or one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TrackKey {
    Loop(u16),
    Conn {
        worker: u16,
        lane: Lane,
        conn: u64,
        fd: i32,
    },
}

impl TrackKey {
    fn of(event: &Event) -> TrackKey {
        match event.lane {
            Lane::Worker => TrackKey::Loop(event.worker),
            lane => TrackKey::Conn {
                worker: event.worker,
                lane,
                conn: event.conn,
                fd: event.fd,
            },
        }
    }

    fn worker(self) -> u16 {
        match self {
            TrackKey::Loop(worker) | TrackKey::Conn { worker, .. } => worker,
        }
    }
}

/// The order of trace events sharing a timestamp: enclosing slices, then the arrows that
/// bind to them, then instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Slice,
    Arrow,
    Instant,
}

struct Record {
    ts: u64,
    rank: Rank,
    dur: u64,
    json: String,
}

/// One phase's consecutive events on one track, within one flow.
struct Run {
    key: TrackKey,
    phase: Phase,
    first: u64,
    last: u64,
    events: u32,
}

#[derive(Default)]
struct Trace {
    tids: HashMap<TrackKey, u64>,
    /// (pid, tid, name), in the order created.
    tracks: Vec<(u16, u64, String)>,
    workers: Vec<u16>,
    records: Vec<Record>,
    rounds: HashSet<(u16, u64)>,
    instants: HashSet<(TrackKey, u64, &'static str)>,
    flows: HashSet<(u16, u64, u64)>,
    arrows: u64,
}

impl Trace {
    fn tid(&mut self, key: TrackKey) -> u64 {
        if let Some(&tid) = self.tids.get(&key) {
            return tid;
        }
        let worker = key.worker();
        if !self.workers.contains(&worker) {
            self.workers.push(worker);
        }
        let name = match key {
            TrackKey::Loop(_) => "event loop (wake rounds)".to_owned(),
            TrackKey::Conn { lane, conn, fd, .. } => {
                // A worker's loop track comes before its connections.
                self.tid(TrackKey::Loop(worker));
                format!("{} fd {fd} (conn {conn})", lane.name())
            }
        };
        let tid = self.tracks.len() as u64 + 1;
        self.tracks.push((worker, tid, name));
        self.tids.insert(key, tid);
        tid
    }

    fn push(&mut self, rank: Rank, ts: u64, dur: Option<u64>, fields: Map<String, Value>) {
        let mut json = format!("{{\"ts\":{}", Micros(ts));
        if let Some(dur) = dur {
            let _ = write!(json, ",\"dur\":{}", Micros(dur));
        }
        let body = Value::Object(fields).to_string();
        match body.strip_prefix('{') {
            Some(rest) if rest != "}" => {
                json.push(',');
                json.push_str(rest);
            }
            _ => json.push('}'),
        }
        self.records.push(Record {
            ts,
            rank,
            dur: dur.unwrap_or(0),
            json,
        });
    }

    fn fields(&mut self, ph: &str, key: TrackKey, name: &str, cat: &str) -> Map<String, Value> {
        let tid = self.tid(key);
        let mut fields = Map::new();
        fields.insert("ph".into(), ph.into());
        fields.insert("pid".into(), key.worker().into());
        fields.insert("tid".into(), tid.into());
        fields.insert("name".into(), name.into());
        fields.insert("cat".into(), cat.into());
        fields
    }

    fn slice(&mut self, key: TrackKey, ts: u64, dur: u64, name: &str, cat: &str, args: Value) {
        let mut fields = self.fields("X", key, name, cat);
        fields.insert("args".into(), args);
        self.push(Rank::Slice, ts, Some(dur), fields);
    }

    fn instant(&mut self, key: TrackKey, event: &Event) {
        let name = event.kind.name();
        if !self.instants.insert((key, event.at, name)) {
            return; // Already drawn for another flow that shares it.
        }
        let cat = event.phase.map_or("worker", Phase::name);
        let mut fields = self.fields("i", key, name, cat);
        fields.insert("s".into(), "t".into());
        fields.insert(
            "args".into(),
            serde_json::to_value(event).unwrap_or(Value::Null),
        );
        self.push(Rank::Instant, event.at, None, fields);
    }

    fn arrow(&mut self, name: &str, from: &Run, to: &Run) {
        self.arrows += 1;
        let id = self.arrows;
        let mut start = self.fields("s", from.key, name, "flow");
        start.insert("id".into(), id.into());
        self.push(Rank::Arrow, from.first, None, start);
        let mut end = self.fields("f", to.key, name, "flow");
        end.insert("id".into(), id.into());
        end.insert("bp".into(), "e".into());
        self.push(Rank::Arrow, to.first, None, end);
    }

    fn flow(&mut self, flow: &Flow) {
        if !self.flows.insert((flow.worker, flow.stream, flow.start)) {
            return; // The same flow twice.
        }
        let mut runs: Vec<Run> = Vec::new();
        let mut last_run: HashMap<TrackKey, usize> = HashMap::new();
        // Each connection's first and last event in this flow, in order of appearance.
        let mut spans: Vec<(TrackKey, u64, u64)> = Vec::new();
        for event in &flow.events {
            let key = TrackKey::of(event);
            if let EventKind::WakeRound {
                round,
                ready,
                waited_ns,
                ran_ns,
            } = event.kind
            {
                if self.rounds.insert((event.worker, round)) {
                    let args = json!({
                        "round": round,
                        "ready_fds": ready,
                        "waited_ns": waited_ns,
                        "ran_ns": ran_ns,
                    });
                    let loop_key = TrackKey::Loop(event.worker);
                    let start = event.at.saturating_sub(ran_ns);
                    self.slice(loop_key, start, ran_ns, "wake round", "worker", args);
                }
                continue;
            }
            self.instant(key, event);
            if let TrackKey::Loop(_) = key {
                continue;
            }
            match spans.iter_mut().find(|s| s.0 == key) {
                // min/max rather than "last seen": a flow handed in with its events out of
                // time order made `last - first` below underflow (a panic in debug builds).
                Some(span) => {
                    span.1 = span.1.min(event.at);
                    span.2 = span.2.max(event.at);
                }
                None => spans.push((key, event.at, event.at)),
            }
            let Some(phase) = event.phase else { continue };
            match last_run.get(&key) {
                Some(&i) if runs[i].phase == phase => {
                    runs[i].last = event.at;
                    runs[i].events += 1;
                }
                _ => {
                    last_run.insert(key, runs.len());
                    runs.push(Run {
                        key,
                        phase,
                        first: event.at,
                        last: event.at,
                        events: 1,
                    });
                }
            }
        }

        // The request on each of its connections, enclosing that connection's phase runs.
        let name = request_name(flow);
        for &(key, first, last) in &spans {
            let args = json!({
                "stream": flow.stream,
                "method": flow.method.as_str(),
                "path": flow.path.as_str(),
                "status": flow.status,
                "truncated": flow.truncated,
            });
            self.slice(key, first, last - first, &name, "request", args);
        }
        for run in &runs {
            let args = json!({
                "stream": flow.stream,
                "phase": run.phase.name(),
                "events": run.events,
            });
            // Saturating for the same reason: out-of-order events make `last < first`.
            let dur = run.last.saturating_sub(run.first);
            self.slice(run.key, run.first, dur, run.phase.title(), "phase", args);
        }

        let downstreams: Vec<TrackKey> = spans
            .iter()
            .map(|s| s.0)
            .filter(|k| {
                matches!(
                    k,
                    TrackKey::Conn {
                        lane: Lane::Downstream,
                        ..
                    }
                )
            })
            .collect();
        let downstream = downstreams
            .iter()
            .find(|k| matches!(k, TrackKey::Conn { conn, .. } if *conn == flow.downstream))
            .or(downstreams.first())
            .copied();
        let Some(down) = downstream else { return };
        let upstream = |run: &&Run| {
            matches!(
                run.key,
                TrackKey::Conn {
                    lane: Lane::Upstream,
                    ..
                }
            )
        };
        let read_request = runs
            .iter()
            .rfind(|r| r.key == down && r.phase == Phase::DownstreamReadRequest);
        let write_request = runs
            .iter()
            .filter(upstream)
            .find(|r| r.phase == Phase::UpstreamWriteRequest);
        if let (Some(from), Some(to)) = (read_request, write_request) {
            self.arrow("request", from, to);
        }
        let read_response = runs
            .iter()
            .filter(upstream)
            .rfind(|r| r.phase == Phase::UpstreamReadResponse);
        if let Some(from) = read_response {
            let write_response = runs.iter().find(|r| {
                r.key == down && r.phase == Phase::DownstreamWriteResponse && r.first >= from.first
            });
            if let Some(to) = write_response {
                self.arrow("response", from, to);
            }
        }
    }

    fn finish(mut self) -> String {
        let mut out = String::from("{\"traceEvents\":[\n");
        let mut metadata: Vec<Value> = Vec::new();
        for &worker in &self.workers {
            metadata.push(json!({
                "ph": "M", "ts": 0, "cat": "__metadata", "pid": worker,
                "name": "process_name", "args": { "name": match worker {
                    crate::HEALTH_CHECKER => "weir health checker".to_owned(),
                    n => format!("weir worker {n}"),
                } },
            }));
            metadata.push(json!({
                "ph": "M", "ts": 0, "cat": "__metadata", "pid": worker,
                "name": "process_sort_index", "args": { "sort_index": worker },
            }));
        }
        for (pid, tid, name) in &self.tracks {
            metadata.push(json!({
                "ph": "M", "ts": 0, "cat": "__metadata", "pid": pid, "tid": tid,
                "name": "thread_name", "args": { "name": name },
            }));
            metadata.push(json!({
                "ph": "M", "ts": 0, "cat": "__metadata", "pid": pid, "tid": tid,
                "name": "thread_sort_index", "args": { "sort_index": tid },
            }));
        }
        // Stable: records of one timestamp and rank keep the order they were made in.
        self.records.sort_by_key(|r| (r.ts, r.rank, Reverse(r.dur)));
        let lines = metadata
            .iter()
            .map(Value::to_string)
            .chain(self.records.into_iter().map(|r| r.json));
        for (i, line) in lines.enumerate() {
            if i > 0 {
                out.push_str(",\n");
            }
            out.push_str(&line);
        }
        out.push_str("\n],\"displayTimeUnit\":\"ns\"}\n");
        out
    }
}

/// `GET /index.html -> 200`.
fn request_name(flow: &Flow) -> String {
    let mut name = if flow.method.as_str().is_empty() {
        "(no request head)".to_owned()
    } else {
        format!("{} {}", flow.method.as_str(), flow.path.as_str())
    };
    match flow.status {
        0 => name.push_str(" -> no response"),
        status => {
            let _ = write!(name, " -> {status}");
        }
    }
    name
}
