//! The correlator's flows: binding upstream connections to waiting requests, adding events,
//! and handing out finished flows.

use super::*;

impl Correlator {
    /// Binds the upstream connection `id` to the request waiting on thread `tid`: the one
    /// whose request line is `head` (what the write carries; taken back from a connection
    /// that has not written it), else the oldest read in the current round, else the oldest
    /// waiting. False when none waits.
    pub(super) fn bind(&mut self, tid: u32, id: u64, head: Option<(&[u8], &[u8])>) -> bool {
        if let Some(head) = head {
            self.release_named(tid, id, head);
        }
        let thread = self.threads.get_mut(&tid).expect("registered");
        let round = thread.round;
        // Requests answered or gone meanwhile are not waiting any more.
        let flows = &self.flows;
        thread
            .unlinked
            .retain(|(_, f)| flows.get(f).is_some_and(|b| !b.linked));
        let named = head.and_then(|head| {
            thread
                .unlinked
                .iter()
                .position(|(_, f)| carries(&flows[f], head))
        });
        let pick = named
            .or_else(|| thread.unlinked.iter().position(|&(r, _)| r == round))
            .or(if thread.unlinked.is_empty() {
                None
            } else {
                Some(0)
            });
        // Nothing waits: the connection keeps the request it has (a body written after
        // an early response is still that request's).
        let Some(i) = pick else {
            return false;
        };
        let (_, flow) = thread.unlinked.remove(i).expect("position is in range");
        let conn = self.conns.get_mut(&id).expect("binding a known connection");
        if conn.bound.is_some() {
            conn.served += 1;
        }
        conn.bound = Some(flow);
        conn.sent = false;
        let pending = std::mem::take(&mut conn.pending);
        let port = conn.addr.map(|a| a.port());
        let b = self.flows.get_mut(&flow).expect("retained above");
        b.linked = true;
        b.ports.extend(port);
        for mut e in pending {
            e.stream = flow;
            b.flow.events.push(e);
        }
        true
    }

    /// Upstream connection `id`, bound at connect to `from`, writes the request line `head`
    /// of another request of thread `tid` (proxies do not forward in the order they read):
    /// the connection takes that request, with its events so far. If that request was bound
    /// to another connection that has not written yet, the two swap; else `from` waits again.
    pub(super) fn rebind(&mut self, tid: u32, id: u64, from: u64, head: (&[u8], &[u8])) {
        let flows = &self.flows;
        let waiting = self.threads.get(&tid).and_then(|t| {
            t.unlinked
                .iter()
                .map(|&(_, f)| f)
                .find(|f| flows.get(f).is_some_and(|b| !b.linked && carries(b, head)))
        });
        let (to, other) = match waiting {
            Some(to) => (to, None),
            None => {
                let Some((to, other)) = self.bound_unsent(tid, id, head) else {
                    return;
                };
                (to, Some(other))
            }
        };
        self.move_events(id, from, to);
        self.conns
            .get_mut(&id)
            .expect("rebinding a known connection")
            .bound = Some(to);
        if let Some(other) = other {
            self.move_events(other, to, from);
            self.conns.get_mut(&other).expect("found above").bound = Some(from);
        } else {
            if let Some(thread) = self.threads.get_mut(&tid) {
                thread.unlinked.retain(|&(_, f)| f != to);
            }
            self.flows.get_mut(&to).expect("found above").linked = true;
            self.unbound(from);
        }
        if let Some(thread) = self.threads.get_mut(&tid)
            && thread.round_start.is_some()
            && !thread.touched.contains(&Target::Flow(to))
        {
            thread.touched.push(Target::Flow(to));
        }
    }

    /// The request of thread `tid` whose request line is `head`, bound to a connection other
    /// than `id` that has not written it yet, and that connection.
    fn bound_unsent(&self, tid: u32, id: u64, head: (&[u8], &[u8])) -> Option<(u64, u64)> {
        self.conns.iter().find_map(|(&c, conn)| {
            let f = conn.bound.filter(|_| c != id && !conn.sent)?;
            let b = self.flows.get(&f)?;
            (b.tid == tid && !b.upstream_answered && carries(b, head)).then_some((f, c))
        })
    }

    /// Idle connection `id` writes `head`, which names no waiting request but one bound at
    /// connect to another connection that has not written it: a pool that hands each request
    /// the first connection ready (Envoy's) sent it on this one. That request waits again,
    /// and the other connection keeps its events for the request it will carry.
    fn release_named(&mut self, tid: u32, id: u64, head: (&[u8], &[u8])) {
        let flows = &self.flows;
        let waiting = self.threads.get(&tid).is_some_and(|t| {
            t.unlinked
                .iter()
                .any(|(_, f)| flows.get(f).is_some_and(|b| !b.linked && carries(b, head)))
        });
        if waiting {
            return;
        }
        let Some((flow, other)) = self.bound_unsent(tid, id, head) else {
            return;
        };
        let moved = self.take_events(other, flow);
        let conn = self.conns.get_mut(&other).expect("found above");
        conn.bound = None;
        conn.pending.extend(moved.into_iter().map(|mut e| {
            e.stream = 0;
            e
        }));
        self.unbound(flow);
    }

    /// Moves upstream connection `conn`'s events (and its port) from flow `from` to `to`.
    pub(super) fn move_events(&mut self, conn: u64, from: u64, to: u64) {
        let moved = self.take_events(conn, from);
        let port = self.conns.get(&conn).and_then(|c| c.addr).map(|a| a.port());
        let Some(b) = self.flows.get_mut(&to) else {
            return;
        };
        b.ports.extend(port);
        b.flow.events.extend(moved.into_iter().map(|mut e| {
            e.stream = to;
            e
        }));
    }

    /// Takes upstream connection `conn`'s events (and its port) off flow `from`.
    fn take_events(&mut self, conn: u64, from: u64) -> Vec<Event> {
        let port = self.conns.get(&conn).and_then(|c| c.addr).map(|a| a.port());
        let Some(b) = self.flows.get_mut(&from) else {
            return Vec::new();
        };
        let (moved, kept): (Vec<Event>, Vec<Event>) = std::mem::take(&mut b.flow.events)
            .into_iter()
            .partition(|e| e.conn == conn);
        b.flow.events = kept;
        if let Some(i) = port.and_then(|p| b.ports.iter().position(|&x| x == p)) {
            b.ports.remove(i);
        }
        moved
    }

    pub(super) fn new_flow(&mut self, tid: u32, conn_id: u64, data: &[u8]) -> u64 {
        let id = self.next_flow;
        self.next_flow += 1;
        let worker = self.threads[&tid].worker;
        let conn = self.conns.get_mut(&conn_id).expect("a known connection");
        // The previous request has its response: it is done.
        let finished: Vec<u64> = conn
            .flows
            .iter()
            .copied()
            .filter(|f| self.flows.get(f).is_some_and(|b| b.answered))
            .collect();
        conn.flows.retain(|f| !finished.contains(f));
        conn.flows.push_back(id);
        let (method, path) = request_line(data).unwrap_or((b"", b""));
        let mut events = std::mem::take(&mut conn.pending);
        for e in &mut events {
            e.stream = id;
        }
        let ports = conn.addr.map(|a| a.port()).into_iter().collect();
        self.flows.insert(
            id,
            Building {
                flow: Flow {
                    stream: id,
                    worker,
                    downstream: conn_id,
                    start: 0,
                    end: 0,
                    status: 0,
                    method: ShortText::new(method),
                    path: ShortText::new(path),
                    truncated: false,
                    events,
                },
                tid,
                downstream: conn_id,
                linked: false,
                upstream_answered: false,
                answered: false,
                written_round: 0,
                last_ns: self.last_ns,
                ports,
            },
        );
        // Pending events' rounds now belong to the flow.
        let thread = self.threads.get_mut(&tid).expect("registered");
        for t in &mut thread.touched {
            if *t == Target::Pending(conn_id) {
                *t = Target::Flow(id);
            }
        }
        for f in finished {
            self.finishing(f);
        }
        id
    }

    /// Where an event of connection `id` goes. Downstream, `In` (readiness to read, a read
    /// with nothing) goes to the request being read, or waits for the next request once
    /// the last one is being answered; `Out` to the request being answered.
    pub(super) fn target(&self, id: u64, dir: Dir) -> Target {
        let Some(conn) = self.conns.get(&id) else {
            return Target::Pending(id);
        };
        match conn.lane {
            Lane::Upstream => match conn.bound {
                Some(f) if self.flows.contains_key(&f) => Target::Flow(f),
                _ => Target::Pending(id),
            },
            _ => match dir {
                Dir::Out => conn
                    .flows
                    .front()
                    .map_or(Target::Pending(id), |&f| Target::Flow(f)),
                Dir::In => match conn.flows.back() {
                    Some(&f) if self.flows.get(&f).is_some_and(|b| !b.answered) => Target::Flow(f),
                    _ => Target::Pending(id),
                },
            },
        }
    }

    pub(super) fn event(
        &mut self,
        tid: u32,
        conn_id: u64,
        target: Target,
        at: u64,
        kind: EventKind,
    ) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let thread = self.threads.get_mut(&tid).expect("registered");
        let stream = match target {
            Target::Flow(f) => f,
            Target::Pending(_) => 0,
        };
        let event = Event::new(at, thread.worker, conn.lane, conn.fd, conn_id, stream, kind);
        match target {
            Target::Flow(f) => {
                let Some(b) = self.flows.get_mut(&f) else {
                    return;
                };
                b.flow.events.push(event);
                b.last_ns = self.last_ns;
            }
            // Bounded: an idle connection's wake-ups (or a long stream's after its flow
            // was handed out) wait here for a flow that may never come.
            Target::Pending(_) if conn.pending.len() < PENDING_MAX => conn.pending.push(event),
            Target::Pending(_) => {}
        }
        if thread.round_start.is_some() && !thread.touched.contains(&target) {
            thread.touched.push(target);
        }
    }

    /// Sets the phase of the event just recorded for `target` on connection `conn`.
    pub(super) fn rephase(&mut self, target: Target, conn: u64, phase: Phase) {
        let last = match target {
            Target::Flow(f) => self
                .flows
                .get_mut(&f)
                .and_then(|b| b.flow.events.last_mut()),
            Target::Pending(_) => self.conns.get_mut(&conn).and_then(|c| c.pending.last_mut()),
        };
        if let Some(event) = last {
            event.phase = Some(phase);
        }
    }

    /// `flow` is complete: handed out when its thread's round ends (at once when the thread
    /// is not in a round).
    pub(super) fn finishing(&mut self, flow: u64) {
        let Some(b) = self.flows.get(&flow) else {
            return;
        };
        match self.threads.get_mut(&b.tid) {
            Some(thread) if thread.round_start.is_some() => {
                if !thread.finishing.contains(&flow) {
                    thread.finishing.push(flow);
                }
            }
            _ => self.emit(flow),
        }
    }

    pub(super) fn emit(&mut self, id: u64) {
        let Some(mut b) = self.flows.remove(&id) else {
            return;
        };
        if let Some(conn) = self.conns.get_mut(&b.downstream) {
            conn.flows.retain(|&f| f != id);
        }
        if let Some(thread) = self.threads.get_mut(&b.tid) {
            thread.unlinked.retain(|&(_, f)| f != id);
            thread.finishing.retain(|&f| f != id);
            thread.touched.retain(|&t| t != Target::Flow(id));
        }
        if !self.ports.is_empty() && !b.ports.iter().any(|p| self.ports.contains(p)) {
            return;
        }
        b.flow.events.sort_by_key(|e| e.at);
        b.flow.start = b.flow.events.first().map_or(0, |e| e.at);
        b.flow.end = b.flow.events.last().map_or(0, |e| e.at);
        self.counts.flows += 1;
        self.done.push(b.flow);
    }
}
