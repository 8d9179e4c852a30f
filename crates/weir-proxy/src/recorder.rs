//! The flow recorder: one per worker, so it takes no lock and shares nothing.
//!
//! While recording is on, events go into a preallocated ring of sequence-numbered slots (no
//! allocation once it has filled). Each downstream connection keeps a chain through the ring:
//! every event about it, about its current stream, and about the upstream connection that
//! stream uses links back to the previous one. When a traced stream ends, its flow is the
//! chain walked back to where its request began, plus the worker's wake rounds in which one of
//! its events happened: work proportional to the flow, never a scan of the ring.
//!
//! Modes: off (every event site is one branch on `enabled`), sampled 1-in-N, requests carrying
//! `x-weir-trace: 1`, or all. SAMPLED draws at a request's first event, so an unpicked request
//! records nothing; HEADER records a request's first read or two speculatively until its head
//! is parsed, then only traced streams record.

use std::collections::VecDeque;
use std::time::Instant;

use weir_config::{FlowTrace, FlowTraceMode};
use weir_flow::{Event, EventKind, Flow, Lane, Phase, ShortText};

/// "No event": the end of a chain.
pub(crate) const NONE: u64 = u64::MAX;
/// Slots in the ring; a flow whose events were overwritten is marked truncated.
const RING: usize = 16 * 1024;

/// Whether a connection's current request is being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recording {
    /// Not recorded (the recorder is off, or this request was not picked).
    Off,
    /// Not decided yet: the request's first event decides. SAMPLED draws its sample then, so
    /// an unpicked request records nothing; HEADER records speculatively until the head says.
    Undecided,
    /// Recorded.
    On,
}

/// A downstream connection's place in the recorder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnTrace {
    /// The connection's id in traces (32 bits: every idle connection carries it; ids repeat
    /// only after four billion connections and streams).
    pub(crate) conn: u32,
    /// Whether its current request is recorded.
    pub(crate) recording: Recording,
    /// The sequence number where its current request began.
    pub(crate) start: u64,
    /// Its chain's newest event.
    pub(crate) last: u64,
}

/// A traced stream that ended and whose response is still being written: its flow is kept
/// once the last byte is handed to the kernel (or the connection closes), so the flow holds
/// the seed's fourth event too.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingFlow {
    pub(crate) stream: u64,
    pub(crate) status: u16,
    pub(crate) method: ShortText,
    pub(crate) path: ShortText,
    /// Where the request began in the connection's chain.
    pub(crate) start: u64,
}

struct Slot {
    seq: u64,
    prev: u64,
    event: Event,
}

/// See the module documentation.
pub(crate) struct Recorder {
    mode: FlowTraceMode,
    worker: u16,
    epoch: Instant,
    ring: Vec<Slot>,
    next: u64,
    flows: VecDeque<Flow>,
    keep: usize,
    requests: u64,
    ids: u64,
    wake_last: u64,
    /// Reused while assembling a flow: (sequence number, ring index), and event times.
    scratch: Vec<(u64, usize)>,
    times: Vec<u64>,
    /// Flows whose response left during this round: assembled once the round's own wake
    /// event is recorded, so each flow holds the round that finished it.
    finishing: Vec<(ConnTrace, PendingFlow)>,
}

impl Recorder {
    pub(crate) fn new(config: FlowTrace, worker: usize, epoch: Instant) -> Self {
        Recorder {
            mode: config.mode,
            worker: worker as u16,
            epoch,
            ring: Vec::new(),
            next: 0,
            flows: VecDeque::new(),
            keep: config.flows_kept,
            requests: 0,
            ids: 0,
            wake_last: NONE,
            scratch: Vec::new(),
            times: Vec::new(),
            finishing: Vec::new(),
        }
    }

    /// Whether anything is recorded at all: the one branch an event site costs when off.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.mode != FlowTraceMode::Off
    }

    /// A new id for a connection or stream, unique in the process (worker in the top bits).
    pub(crate) fn new_id(&mut self) -> u64 {
        self.ids += 1;
        // 40 bits of count leave ids exact in JavaScript (< 2^53) up to 8192 workers.
        (u64::from(self.worker) << 40) | self.ids
    }

    /// The trace state of a newly accepted connection.
    pub(crate) fn new_conn(&mut self) -> ConnTrace {
        ConnTrace {
            conn: self.new_id() as u32,
            recording: self.fresh(),
            start: self.next,
            last: NONE,
        }
    }

    fn fresh(&self) -> Recording {
        if self.enabled() {
            Recording::Undecided
        } else {
            Recording::Off
        }
    }

    /// A request's first event: record it? (HEADER: yes, until its head says otherwise.)
    fn decide(&mut self) -> Recording {
        match self.mode {
            FlowTraceMode::Off => Recording::Off,
            FlowTraceMode::All | FlowTraceMode::Header => Recording::On,
            // Only a peek at the next request's draw: the draw itself is taken in `wants`,
            // once a request head is parsed. Taking it here let the events of a connection
            // between requests (its close after the last response, say) use up draws, so the
            // rate drifted from 1-in-N (every request picked at 1-in-2 with one request per
            // connection). A peek that turns out wrong only misses or wastes a request's
            // first events; the pick itself stays exact.
            FlowTraceMode::Sampled { one_in } => {
                if Self::picked(self.requests + 1, one_in) {
                    Recording::On
                } else {
                    Recording::Off
                }
            }
        }
    }

    /// Whether the `n`th of a sampled kind of thing (request, health-check probe) is
    /// recorded at 1 in `one_in`: the first, then every `one_in`th.
    pub(crate) fn picked(request: u64, one_in: u32) -> bool {
        request % u64::from(one_in) == 1 % u64::from(one_in)
    }

    /// Decides, once its head is parsed, whether the request is traced.
    pub(crate) fn wants(
        &mut self,
        chain: &mut ConnTrace,
        trace_header: impl FnOnce() -> bool,
    ) -> bool {
        if chain.recording == Recording::Undecided {
            chain.recording = self.decide();
        }
        let wanted = match self.mode {
            FlowTraceMode::Off => false,
            FlowTraceMode::All => true,
            FlowTraceMode::Header => trace_header(),
            FlowTraceMode::Sampled { one_in } => {
                self.requests += 1;
                Self::picked(self.requests, one_in)
            }
        };
        // Sampled: the peek may have said otherwise; the draw decides.
        chain.recording = if wanted {
            Recording::On
        } else {
            Recording::Off
        };
        wanted
    }

    /// Records an event on a connection's chain (nothing when that chain is off).
    #[inline]
    pub(crate) fn record(
        &mut self,
        chain: &mut ConnTrace,
        lane: Lane,
        fd: i32,
        conn: u64,
        stream: u64,
        kind: impl FnOnce() -> EventKind,
    ) {
        self.record_in(chain, None, lane, fd, conn, stream, kind);
    }

    /// Like `record`, with the phase given by the event site when only it knows (a writable
    /// edge with nothing to write is no part of writing a response).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn record_in(
        &mut self,
        chain: &mut ConnTrace,
        phase: Option<Phase>,
        lane: Lane,
        fd: i32,
        conn: u64,
        stream: u64,
        kind: impl FnOnce() -> EventKind,
    ) {
        match chain.recording {
            Recording::On => {}
            Recording::Off => return,
            Recording::Undecided => {
                chain.recording = self.decide();
                if chain.recording == Recording::Off {
                    return;
                }
            }
        }
        let mut event = Event::new(self.now(), self.worker, lane, fd, conn, stream, kind());
        if phase.is_some() {
            event.phase = phase;
        }
        chain.last = self.push(chain.last, event);
    }

    /// Records the end of a wake round (only while the recorder is enabled).
    pub(crate) fn wake_round(&mut self, round: u64, ready: u32, waited_ns: u64, ran_ns: u64) {
        if !self.enabled() {
            return;
        }
        let kind = EventKind::WakeRound {
            round,
            ready,
            waited_ns,
            ran_ns,
        };
        let event = Event::new(self.now(), self.worker, Lane::Worker, -1, 0, 0, kind);
        self.wake_last = self.push(self.wake_last, event);
    }

    /// Nanoseconds since the epoch, read now (only for recorded events).
    pub(crate) fn now(&self) -> u64 {
        crate::worker::clock()
            .saturating_duration_since(self.epoch)
            .as_nanos() as u64
    }

    fn push(&mut self, prev: u64, event: Event) -> u64 {
        let seq = self.next;
        self.next += 1;
        let slot = Slot { seq, prev, event };
        if self.ring.capacity() == 0 {
            // Allocated once, at its full size, when the first event arrives.
            self.ring.reserve_exact(RING);
        }
        if self.ring.len() < RING {
            self.ring.push(slot);
        } else {
            self.ring[(seq % RING as u64) as usize] = slot;
        }
        seq
    }

    fn get(&self, seq: u64) -> Option<&Slot> {
        if seq == NONE || seq >= self.next || self.next - seq > self.ring.len() as u64 {
            return None;
        }
        let slot = &self.ring[(seq % RING as u64) as usize];
        (slot.seq == seq).then_some(slot)
    }

    /// Marks where the connection's next request begins.
    pub(crate) fn next_request(&self, chain: &mut ConnTrace) {
        chain.start = self.next;
        chain.recording = self.fresh();
    }

    /// A traced stream's response has left: its flow is assembled at the end of this round.
    pub(crate) fn finish_later(&mut self, chain: ConnTrace, pending: PendingFlow) {
        self.finishing.push((chain, pending));
    }

    /// Called after the round's wake event is recorded: assembles the flows finished in it.
    pub(crate) fn end_of_round(&mut self) {
        if self.finishing.is_empty() {
            return;
        }
        let finishing = std::mem::take(&mut self.finishing);
        for (chain, pending) in &finishing {
            self.finish(chain, *pending);
        }
        self.finishing = finishing;
        self.finishing.clear();
    }

    /// Keeps the flow of a traced stream whose response has left: its connection's chain back
    /// to the request's start, plus the wake rounds that overlap those events.
    fn finish(&mut self, chain: &ConnTrace, pending: PendingFlow) {
        let PendingFlow {
            stream,
            status,
            method,
            path,
            start,
        } = pending;
        let mut flow = if self.flows.len() >= self.keep {
            self.flows.pop_back().expect("keep >= 1")
        } else {
            Flow {
                stream: 0,
                worker: self.worker,
                downstream: 0,
                start: 0,
                end: 0,
                status: 0,
                method,
                path,
                truncated: false,
                events: Vec::with_capacity(64),
            }
        };
        flow.events.clear();
        self.scratch.clear();
        let mut truncated = false;
        // The connection's own events first: they bound the flow in time.
        let mut seq = chain.last;
        while seq != NONE && seq >= start {
            match self.get(seq).map(|slot| slot.prev) {
                Some(prev) => {
                    self.scratch.push((seq, (seq % RING as u64) as usize));
                    seq = prev;
                }
                None => {
                    truncated = true;
                    break;
                }
            }
        }
        // The times of its own events, sorted, to find the rounds they happened in.
        self.times.clear();
        self.times
            .extend(self.scratch.iter().map(|&(_, i)| self.ring[i].event.at));
        self.times.sort_unstable();
        let first = self.times.first().copied().unwrap_or(0);
        let last = self.times.last().copied().unwrap_or(0);
        // Then the wake rounds in which the flow made progress (a round's `at` is its end). A
        // busy worker runs many rounds for other connections meanwhile; they are not this
        // flow's story, and keeping them would make each kept flow hundreds of events long.
        let mut seq = self.wake_last;
        while seq != NONE && seq >= start {
            let Some(slot) = self.get(seq) else {
                truncated = true;
                break;
            };
            let (end, prev) = (slot.event.at, slot.prev);
            if end < first {
                break; // rounds are chained newest first: all earlier ones ended before too
            }
            let ran = match slot.event.kind {
                EventKind::WakeRound { ran_ns, .. } => ran_ns,
                _ => 0,
            };
            let from = end.saturating_sub(ran);
            let i = self.times.partition_point(|&t| t < from);
            if self.times.get(i).is_some_and(|&t| t <= end) {
                self.scratch.push((seq, (seq % RING as u64) as usize));
            }
            seq = prev;
        }
        self.scratch.sort_unstable();
        flow.events.extend(
            self.scratch
                .iter()
                .map(|&(_, i)| self.ring[i].event.clone()),
        );
        flow.start = first;
        flow.end = last;
        flow.stream = stream;
        flow.downstream = u64::from(chain.conn);
        flow.status = status;
        flow.method = method;
        flow.path = path;
        flow.truncated = truncated;
        self.flows.push_front(flow);
    }

    /// The kept flows, newest first.
    pub(crate) fn flows(&self) -> impl Iterator<Item = &Flow> {
        self.flows.iter()
    }
}

use weir_flow::{Closer, Direction, ReadResult};

use crate::event::token::Id;
use crate::http::active_stream::Stream;
use crate::worker::Worker;

/// The event sites: each is one line in the data path and one branch when recording is off.
impl Worker {
    /// Records an event of the downstream connection `ds` (on its own lane and fd), as part of
    /// its stream when it has exactly one (HTTP/1's, whenever it has one); events of a known
    /// stream go through [`trace_stream`](Self::trace_stream).
    #[inline]
    pub(crate) fn trace_down(&mut self, ds: Id, kind: impl FnOnce() -> EventKind) {
        self.trace_down_in(ds, None, kind);
    }

    /// Like `trace_down`, with the phase decided by the event site.
    #[inline]
    pub(crate) fn trace_down_in(
        &mut self,
        ds: Id,
        phase: Option<Phase>,
        kind: impl FnOnce() -> EventKind,
    ) {
        if !self.recording(ds) {
            return;
        }
        let stream = self.stream_trace_id(self.downstreams.get(ds).and_then(|d| d.streams.sole()));
        self.record_down(ds, phase, stream, kind);
    }

    /// Records an event of stream `sid` on its downstream connection's lane.
    #[inline]
    pub(crate) fn trace_stream(&mut self, sid: Id, kind: impl FnOnce() -> EventKind) {
        if !self.recorder.enabled() {
            return;
        }
        let Some(stream) = self.streams.get(sid) else {
            return;
        };
        let (ds, trace_id) = (stream.downstream, stream.trace_id);
        if self.recording(ds) {
            self.record_down(ds, None, trace_id, kind);
        }
    }

    /// Records an event of a stream that has just ended (it has left the slab) on its
    /// downstream connection's lane.
    pub(crate) fn trace_ended_stream(&mut self, stream: &Stream, kind: impl FnOnce() -> EventKind) {
        if self.recording(stream.downstream) {
            self.record_down(stream.downstream, None, stream.trace_id, kind);
        }
    }

    fn record_down(
        &mut self,
        ds: Id,
        phase: Option<Phase>,
        stream: u64,
        kind: impl FnOnce() -> EventKind,
    ) {
        if let Some(d) = self.downstreams.get_mut(ds) {
            let (fd, conn) = (d.conn.fd(), u64::from(d.trace.conn));
            self.recorder.record_in(
                &mut d.trace,
                phase,
                Lane::Downstream,
                fd,
                conn,
                stream,
                kind,
            );
        }
    }

    /// Records an event of an upstream connection on the chain of the downstream whose stream
    /// it carries (nothing when it carries none: an idle pooled connection is in no flow).
    #[inline]
    pub(crate) fn trace_up(&mut self, up: Id, kind: impl FnOnce() -> EventKind) {
        if !self.recorder.enabled() {
            return;
        }
        let Some(u) = self.upstreams.get(up) else {
            return;
        };
        let (fd, conn, sid) = (u.conn.fd(), u.trace_conn, u.stream);
        let Some(stream) = sid.and_then(|s| self.streams.get(s)) else {
            return;
        };
        let (trace_id, ds) = (stream.trace_id, stream.downstream);
        if let Some(d) = self.downstreams.get_mut(ds)
            && d.trace.recording != Recording::Off
        {
            self.recorder
                .record(&mut d.trace, Lane::Upstream, fd, conn, trace_id, kind);
        }
    }

    /// The TLS records a downstream read (`In`) or write (`Out`) moved, beside it; after a
    /// read, also what the session wrote in answer (handshake flights). The session counts
    /// them either way; they are taken (and the count restarted) only when recording.
    pub(crate) fn trace_down_tls(&mut self, ds: Id, direction: Direction) {
        if !self.recording(ds) {
            return;
        }
        for &way in ways(direction) {
            let Some(d) = self.downstreams.get_mut(ds) else {
                return;
            };
            if let Some(bytes) = tls_bytes(d.conn.take_tls_wire(way)) {
                self.trace_down(ds, || EventKind::TlsRecords {
                    direction: way,
                    bytes,
                });
            }
        }
    }

    /// The same for an upstream connection.
    pub(crate) fn trace_up_tls(&mut self, up: Id, direction: Direction) {
        if !self.recorder.enabled() {
            return;
        }
        for &way in ways(direction) {
            let Some(u) = self.upstreams.get_mut(up) else {
                return;
            };
            if let Some(bytes) = tls_bytes(u.conn.take_tls_wire(way)) {
                self.trace_up(up, || EventKind::TlsRecords {
                    direction: way,
                    bytes,
                });
            }
        }
    }

    /// Whether an event of this connection would be recorded (or decide it): checked before
    /// any other lookup, so an unpicked request costs a branch or two per event site.
    #[inline]
    fn recording(&self, ds: Id) -> bool {
        self.recorder.enabled()
            && self
                .downstreams
                .get(ds)
                .is_some_and(|d| d.trace.recording != Recording::Off)
    }

    fn stream_trace_id(&self, sid: Option<Id>) -> u64 {
        sid.and_then(|s| self.streams.get(s))
            .map_or(0, |s| s.trace_id)
    }

    /// The response of the connection's last stream has left (or the connection is closing):
    /// keep its flow if it was traced, and start the next request's span.
    pub(crate) fn trace_response_sent(&mut self, ds: Id) {
        if !self.recorder.enabled() {
            return;
        }
        if let Some(d) = self.downstreams.get_mut(ds) {
            if let Some(pending) = d.pending_flow.take() {
                self.recorder.finish_later(d.trace, *pending);
            }
            self.recorder.next_request(&mut d.trace);
        }
    }
}

/// What a read returned, in the trace's terms.
pub(crate) fn read_result(outcome: &crate::network::connection::ReadOutcome) -> ReadResult {
    use crate::network::connection::ReadOutcome;
    match outcome {
        ReadOutcome::Data(n) => ReadResult::Bytes(*n as u32),
        ReadOutcome::Drained => ReadResult::WouldBlock,
        ReadOutcome::Eof => ReadResult::Eof,
        ReadOutcome::Failed(e) => ReadResult::Error(e.raw_os_error().unwrap_or(0)),
    }
}

/// What a read (records in, and any the session wrote in answer) or a write moved.
fn ways(direction: Direction) -> &'static [Direction] {
    match direction {
        Direction::In => &[Direction::In, Direction::Out],
        Direction::Out => &[Direction::Out],
    }
}

/// A count of TLS bytes as an event carries it, when there are any.
fn tls_bytes(bytes: u64) -> Option<u32> {
    (bytes > 0).then(|| u32::try_from(bytes).unwrap_or(u32::MAX))
}

/// A `writev` in the trace's terms: bytes taken, or the negated errno.
pub(crate) fn write_event(asked: usize, result: &std::io::Result<usize>) -> EventKind {
    EventKind::Write {
        asked: asked as u32,
        written: match result {
            Ok(n) => *n as i64,
            Err(e) => -i64::from(e.raw_os_error().unwrap_or(0)),
        },
    }
}

/// Who closed, judged by what the connection saw.
pub(crate) fn closer(read_eof: bool, failed: bool) -> Closer {
    match (failed, read_eof) {
        (true, _) => Closer::Error,
        (false, true) => Closer::Peer,
        (false, false) => Closer::Local,
    }
}
