//! The correlator's reads and writes: each becomes an event of the flow its connection is
//! bound to, opening flows on downstream request lines and binding upstreams on writes.

use super::*;

impl Correlator {
    pub(super) fn read(&mut self, r: &Record<'_>, at: u64) {
        let key = (r.tgid, r.fd);
        let id = match self.fds.get(&key) {
            Some(&id) => id,
            // A socket from between the /proc snapshot and the attach: its first bytes say
            // which side it is.
            None if r.ret > 0 && request_line(r.data).is_some() => {
                self.open(r.tgid, r.fd, Lane::Downstream, 0, 0, None)
            }
            None if r.ret > 0 && status_line(r.data).is_some() => {
                self.open(r.tgid, r.fd, Lane::Upstream, 0, 0, None)
            }
            None => return,
        };
        let result = match r.ret {
            n if n > 0 => ReadResult::Bytes(n as u32),
            0 => ReadResult::Eof,
            n if n == -EAGAIN => ReadResult::WouldBlock,
            n => ReadResult::Error(-n as i32),
        };
        let lane = self.conns[&id].lane;
        let conn = self.conns.get_mut(&id).expect("looked up above");
        match result {
            ReadResult::Eof => conn.read_eof = true,
            ReadResult::Error(_) => conn.failed = true,
            _ => {}
        }
        let kind = EventKind::Read {
            asked: r.a[0].min(u64::from(u32::MAX)) as u32,
            result,
        };
        if lane == Lane::Upstream {
            let target = self.target(id, Dir::In);
            self.event(r.tid, id, target, at, kind);
            if let (Target::Flow(f), ReadResult::Bytes(_)) = (target, result) {
                let b = self.flows.get_mut(&f).expect("target exists");
                let status = (!b.upstream_answered)
                    .then(|| status_line(r.data))
                    .flatten();
                if let Some(status) = status {
                    b.flow.events.push(with_kind(
                        &b.flow.events,
                        EventKind::ResponseHead { status },
                    ));
                    if b.flow.status == 0 || interim(b.flow.status) {
                        b.flow.status = status;
                    }
                }
                // A 100 Continue is not the response: the request's body follows it.
                b.upstream_answered |= !status.is_some_and(interim);
            }
            return;
        }
        // Downstream: a request line opens a flow; so do any bytes once the previous
        // response has started.
        let target = match result {
            ReadResult::Bytes(_) => {
                let conn = &self.conns[&id];
                let last = conn.flows.back().and_then(|f| self.flows.get(f));
                // After a 101 the connection is a tunnel: its bytes are the same exchange's.
                let starts = last.is_none()
                    || !conn.tunnel
                        && (request_line(r.data).is_some() || last.is_some_and(|b| b.answered));
                if starts {
                    Target::Flow(self.new_flow(r.tid, id, r.data))
                } else {
                    Target::Flow(*conn.flows.back().expect("checked above"))
                }
            }
            _ => self.target(id, Dir::In),
        };
        self.event(r.tid, id, target, at, kind);
        if let (Target::Flow(f), ReadResult::Bytes(_)) = (target, result) {
            if let Some((method, path)) = request_line(r.data)
                && let Some(b) = self.flows.get_mut(&f)
                && b.flow.method.as_str().is_empty()
            {
                b.flow.events.push(with_kind(
                    &b.flow.events,
                    EventKind::RequestHead {
                        method: ShortText::new(method),
                        path: ShortText::new(path),
                        config: 0,
                    },
                ));
            }
            let linked = self.flows.get(&f).is_none_or(|b| b.linked);
            if !linked {
                let thread = self.threads.get_mut(&r.tid).expect("registered");
                let round = thread.round;
                thread.unlinked.retain(|&(_, x)| x != f);
                thread.unlinked.push_back((round, f));
            }
        }
    }

    pub(super) fn write(&mut self, r: &Record<'_>, at: u64) {
        let Some(&id) = self.fds.get(&(r.tgid, r.fd)) else {
            return;
        };
        let conn = &self.conns[&id];
        let lane = conn.lane;
        if lane == Lane::Upstream {
            if conn.connecting {
                self.connected(r.tid, id, at);
            }
            // An idle connection, or one whose request has been answered: a new request.
            let conn = &self.conns[&id];
            let bound = conn.bound.and_then(|f| self.flows.get(&f).map(|b| (f, b)));
            let head = request_line(r.data);
            if bound.is_none_or(|(_, b)| b.upstream_answered) {
                let reused = conn.bound.is_some() || conn.served > 0;
                if self.bind(r.tid, id, head) {
                    let target = self.target(id, Dir::Out);
                    self.event(r.tid, id, target, at, EventKind::StreamAttached { reused });
                } else {
                    self.counts.unlinked_writes += 1;
                }
            } else if let (Some((f, b)), Some(head)) = (bound, head)
                && !conn.sent
                && !carries(b, head)
            {
                // Bound at connect to the oldest waiting request, but the request line
                // written names another.
                self.rebind(r.tid, id, f, head);
            }
            if r.ret > 0
                && let Some(conn) = self.conns.get_mut(&id)
            {
                conn.sent = true;
            }
        }
        let kind = EventKind::Write {
            asked: r.a[0].min(u64::from(u32::MAX)) as u32,
            written: r.ret,
        };
        if r.ret < 0 && r.ret != -EAGAIN {
            self.conns.get_mut(&id).expect("looked up").failed = true;
        }
        let target = self.target(id, Dir::Out);
        self.event(r.tid, id, target, at, kind);
        if lane == Lane::Downstream
            && r.ret > 0
            && let Target::Flow(f) = target
        {
            let b = self.flows.get_mut(&f).expect("target exists");
            b.written_round = self.threads.get(&r.tid).map_or(0, |t| t.round);
            let status = (!b.answered).then(|| status_line(r.data)).flatten();
            if status.is_some_and(interim) {
                // A 1xx interim response: the final one is still to come.
                if status == Some(101) {
                    self.conns.get_mut(&id).expect("looked up").tunnel = true;
                    b.flow.status = 101;
                    b.answered = true;
                }
            } else if !b.answered {
                b.answered = true;
                if let Some(status) = status {
                    b.flow.status = status;
                    if !b.linked {
                        // Answered without an upstream: the proxy replied itself.
                        b.flow.events.push(with_kind(
                            &b.flow.events,
                            EventKind::LocalReply { status, flag: "" },
                        ));
                    }
                }
                // Answered: no longer waiting for an upstream.
                let tid = b.tid;
                if let Some(thread) = self.threads.get_mut(&tid) {
                    thread.unlinked.retain(|&(_, x)| x != f);
                }
            }
            // Responses answer requests in order: an earlier request still open is done.
            let conn = self.conns.get_mut(&id).expect("looked up");
            let mut earlier = Vec::new();
            while conn.flows.front().is_some_and(|&x| x != f) {
                earlier.extend(conn.flows.pop_front());
            }
            for flow in earlier {
                self.finishing(flow);
            }
        }
    }
}
