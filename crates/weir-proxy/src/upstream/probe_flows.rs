//! Health-check probes as flows: the `weir:health` thread records each probe it is asked to
//! (every probe under `flow_trace: ALL`, one in N under `SAMPLED`; none under `HEADER`, as a
//! probe carries no header) as a flow of its own — the probe's start, connect, writes, reads,
//! the answer's status and the verdict — on the same clock as the workers' flows, and keeps the
//! last `flows_kept` for `/flows`. Only that thread writes; the admin reads under the lock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use weir_config::{FlowTrace, FlowTraceMode};

use crate::recorder::Recorder;
use weir_flow::{Event, EventKind, Flow, HEALTH_CHECKER, Lane, Name, Phase, ShortText};

/// The probes' flows, kept for the admin.
pub(crate) struct ProbeFlows {
    mode: FlowTraceMode,
    epoch: Instant,
    keep: usize,
    kept: Mutex<VecDeque<Flow>>,
}

impl ProbeFlows {
    pub(crate) fn new(config: FlowTrace, epoch: Instant) -> ProbeFlows {
        ProbeFlows {
            mode: config.mode,
            epoch,
            keep: config.flows_kept,
            kept: Mutex::new(VecDeque::new()),
        }
    }

    /// Up to `limit` recent probe flows, newest first.
    pub(crate) fn recent(&self, limit: usize) -> Vec<Flow> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().rev().take(limit).cloned().collect()
    }

    fn keep(&self, flow: Flow) {
        if self.keep == 0 {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == self.keep {
            kept.pop_front();
        }
        kept.push_back(flow);
    }
}

/// The thread's side: which probe to record, and their ids.
pub(crate) struct ProbeRecorder {
    probes: u64,
}

impl ProbeRecorder {
    pub(crate) fn new() -> ProbeRecorder {
        ProbeRecorder { probes: 0 }
    }

    /// A trace for the next probe, when the mode records it.
    pub(crate) fn begin(
        &mut self,
        flows: &ProbeFlows,
        cluster: &str,
        host: SocketAddr,
        checker: &'static str,
    ) -> Option<ProbeTrace> {
        self.probes += 1;
        let recorded = match flows.mode {
            FlowTraceMode::All => true,
            FlowTraceMode::Sampled { one_in } => Recorder::picked(self.probes, one_in),
            FlowTraceMode::Off | FlowTraceMode::Header => false,
        };
        if !recorded {
            return None;
        }
        let id = (u64::from(HEALTH_CHECKER) << 40) | self.probes;
        Some(ProbeTrace {
            id,
            epoch: flows.epoch,
            fd: -1,
            status: 0,
            events: Vec::new(),
            start: EventKind::HealthCheck {
                cluster: Name::from(cluster),
                host,
                checker,
            },
        })
    }
}

/// One probe's events as they happen.
pub(crate) struct ProbeTrace {
    id: u64,
    epoch: Instant,
    /// The probe's socket (-1 before it has one).
    fd: i32,
    /// The answer's status (HTTP checks).
    pub(crate) status: u16,
    events: Vec<Event>,
    /// The `health_check` event, recorded by [`ProbeTrace::started`] once the probe has its
    /// socket.
    start: EventKind,
}

impl ProbeTrace {
    /// The probe has its socket `fd` (-1: none could be opened): its first event.
    pub(crate) fn started(&mut self, fd: i32) {
        self.fd = fd;
        let start = self.start.clone();
        self.push(start);
    }

    pub(crate) fn push(&mut self, kind: EventKind) {
        let at = Instant::now()
            .saturating_duration_since(self.epoch)
            .as_nanos() as u64;
        // Opening or taking the probe's connection starts its request (in a proxied request
        // it happens while the downstream's request is routed).
        let opens = matches!(
            kind,
            EventKind::ConnectStarted { .. }
                | EventKind::Connected
                | EventKind::StreamAttached { .. }
        );
        let (fd, id) = (self.fd, self.id);
        let mut event = Event::new(at, HEALTH_CHECKER, Lane::Upstream, fd, id, id, kind);
        if opens {
            event.phase = Some(Phase::UpstreamWriteRequest);
        }
        self.events.push(event);
    }

    /// The probe is judged: its flow goes to `flows`.
    pub(crate) fn finish(self, flows: &ProbeFlows, method: &str, path: &str) {
        let (start, end) = match (self.events.first(), self.events.last()) {
            (Some(first), Some(last)) => (first.at, last.at),
            _ => return,
        };
        flows.keep(Flow {
            stream: self.id,
            worker: HEALTH_CHECKER,
            downstream: 0,
            start,
            end,
            status: self.status,
            method: ShortText::new(method.as_bytes()),
            path: ShortText::new(path.as_bytes()),
            truncated: false,
            events: self.events,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flows(mode: FlowTraceMode, keep: usize) -> ProbeFlows {
        let config = FlowTrace {
            mode,
            flows_kept: keep,
        };
        ProbeFlows::new(config, Instant::now())
    }

    fn probe(rec: &mut ProbeRecorder, flows: &ProbeFlows) -> bool {
        let host = "127.0.0.1:80".parse().unwrap();
        match rec.begin(flows, "c", host, "http") {
            Some(mut trace) => {
                trace.started(7);
                trace.status = 200;
                trace.push(EventKind::HealthCheckResult {
                    verdict: "healthy",
                    host_healthy: true,
                    changed: false,
                });
                trace.finish(flows, "GET", "/healthz");
                true
            }
            None => false,
        }
    }

    #[test]
    fn sampled_records_one_probe_in_n_and_keeps_the_newest() {
        let f = flows(FlowTraceMode::Sampled { one_in: 3 }, 2);
        let mut rec = ProbeRecorder::new();
        let recorded: Vec<bool> = (0..6).map(|_| probe(&mut rec, &f)).collect();
        assert_eq!(recorded, [true, false, false, true, false, false]);
        let all = flows(FlowTraceMode::All, 2);
        for _ in 0..3 {
            assert!(probe(&mut rec, &all));
        }
        let kept = all.recent(10);
        assert_eq!(kept.len(), 2, "flows_kept");
        assert!(kept[0].stream > kept[1].stream, "newest first");
        assert_eq!(kept[0].events.len(), 2);
        assert_eq!(kept[0].status, 200);
    }

    #[test]
    fn header_mode_records_no_probe() {
        let f = flows(FlowTraceMode::Header, 10);
        assert!(!probe(&mut ProbeRecorder::new(), &f));
    }
}
