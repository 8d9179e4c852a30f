//! The correlator's socket records: accept, socket, connect, `epoll_ctl`, close and fork,
//! which make and end the connections that flows are built on.

use super::*;

impl Correlator {
    pub(super) fn accepted(&mut self, r: &Record<'_>, at: u64) {
        if r.ret < 0 {
            return;
        }
        // A listener made after tracing began (`socket`, then `listen`, which is not traced).
        if !self.listeners.contains_key(&(r.tgid, r.fd))
            && let Some(id) = self.fds.remove(&(r.tgid, r.fd))
        {
            self.end_conn(id);
        }
        let local = self.listeners.get(&(r.tgid, r.fd)).copied();
        let id = self.open(
            r.tgid,
            r.ret as i32,
            Lane::Downstream,
            r.exit_ns,
            r.tid,
            local,
        );
        let unspecified = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0);
        let kind = EventKind::Accept {
            peer: sockaddr(r.data).unwrap_or(unspecified),
            local: local.unwrap_or(unspecified),
        };
        self.event(r.tid, id, Target::Pending(id), at, kind);
    }

    pub(super) fn socket(&mut self, r: &Record<'_>) {
        if r.ret < 0 {
            return;
        }
        let fd = r.ret as i32;
        if matches!(r.a[0], AF_INET | AF_INET6) && r.a[1] & 0xf == SOCK_STREAM {
            self.open(r.tgid, fd, Lane::Upstream, r.exit_ns, r.tid, None);
        } else {
            self.retire(r.tgid, fd);
            self.other.insert((r.tgid, fd));
        }
    }

    pub(super) fn connect(&mut self, r: &Record<'_>, at: u64) {
        let peer = sockaddr(r.data);
        let Some(peer) = peer else { return };
        if self.other.contains(&(r.tgid, r.fd)) {
            return; // a UDP socket (a DNS lookup) is no upstream
        }
        let id = match self.fds.get(&(r.tgid, r.fd)) {
            Some(&id)
                if self
                    .conns
                    .get(&id)
                    .is_some_and(|c| c.lane == Lane::Upstream) =>
            {
                id
            }
            _ => self.open(r.tgid, r.fd, Lane::Upstream, r.exit_ns, r.tid, None),
        };
        let failed = r.ret < 0 && r.ret != -EINPROGRESS;
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.addr = Some(peer);
            conn.connecting = r.ret == -EINPROGRESS;
            conn.failed |= failed;
        }
        self.bind(r.tid, id, None);
        let target = self.target(id, Dir::Out);
        self.event(
            r.tid,
            id,
            target,
            at,
            EventKind::ConnectStarted { host: peer },
        );
        if r.ret == 0 {
            self.connected(r.tid, id, at);
        }
    }

    /// The upstream connect completed: seen writable, or written to.
    pub(super) fn connected(&mut self, tid: u32, id: u64, at: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.connecting = false;
        let target = self.target(id, Dir::Out);
        self.event(tid, id, target, at, EventKind::Connected);
        self.event(
            tid,
            id,
            target,
            at,
            EventKind::StreamAttached { reused: false },
        );
    }

    pub(super) fn epoll_ctl(&mut self, r: &Record<'_>, at: u64) {
        if r.ret < 0 {
            return;
        }
        let fd = r.a[1] as i32;
        let mask = r.a[2] as u32;
        let key = (r.tgid, fd);
        let conn = self.fds.get(&key).copied();
        match r.a[0] {
            EPOLL_CTL_ADD | EPOLL_CTL_MOD => {
                if let Some(data) = r.epoll_data() {
                    self.register(r.tgid, r.fd, fd, data);
                }
                let before = self.interest.insert(key, mask);
                let Some(conn) = conn else { return };
                let kind = match before {
                    Some(old) if r.a[0] == EPOLL_CTL_MOD => {
                        match (old & EPOLLIN != 0, mask & EPOLLIN != 0) {
                            (true, false) => EventKind::ReadPaused { syscall: true },
                            (false, true) => EventKind::ReadResumed { syscall: true },
                            _ => return,
                        }
                    }
                    _ => EventKind::Registered {
                        readable: mask & EPOLLIN != 0,
                        writable: mask & EPOLLOUT != 0,
                        edge_triggered: mask & EPOLLET != 0,
                    },
                };
                let dir = match kind {
                    EventKind::ReadResumed { .. } => Dir::Out,
                    _ => Dir::In,
                };
                let target = self.target(conn, dir);
                self.event(r.tid, conn, target, at, kind);
            }
            EPOLL_CTL_DEL => {
                self.interest.remove(&key);
                self.unregister(r.tgid, fd, Some(r.fd));
            }
            _ => {}
        }
    }

    pub(super) fn close(&mut self, r: &Record<'_>, at: u64) {
        let key = (r.tgid, r.fd);
        let Some(&id) = self.fds.get(&key) else {
            self.listeners.remove(&key);
            self.interest.remove(&key);
            self.other.remove(&key);
            self.unregister(r.tgid, r.fd, None);
            return;
        };
        let conn = &self.conns[&id];
        // Another thread's accept or socket reused the fd after this close began: this close
        // was of the socket before, already retired.
        if conn.born_tid != r.tid && conn.born_ns > r.enter_ns {
            return;
        }
        let by = if conn.failed {
            Closer::Error
        } else if conn.read_eof {
            Closer::Peer
        } else {
            Closer::Local
        };
        self.interest.remove(&key);
        self.unregister(r.tgid, r.fd, None);
        let mut target = self.target(id, Dir::Out);
        // A close in a later round than the response's last write ends the connection, not
        // that exchange (a keep-alive client leaving), as weir's own recorder sees it.
        let round = self.threads.get(&r.tid).map_or(0, |t| t.round);
        if let Target::Flow(f) = target
            && self
                .flows
                .get(&f)
                .is_some_and(|b| b.answered && b.written_round != round)
        {
            target = Target::Pending(id);
        }
        self.event(r.tid, id, target, at, EventKind::Close { by });
        self.fds.remove(&key);
        self.end_conn(id);
    }

    pub(super) fn fork(&mut self, r: &Record<'_>) {
        let child = r.a[0] as u32;
        let parent = r.tgid;
        // The child inherits the listeners and the epoll registrations; its connections are
        // its own from here on.
        let listeners: Vec<_> = self
            .listeners
            .iter()
            .filter(|((t, _), _)| *t == parent)
            .map(|((_, fd), a)| (*fd, *a))
            .collect();
        for (fd, addr) in listeners {
            self.listeners.insert((child, fd), addr);
        }
        let epoll: Vec<_> = self
            .epoll_fd
            .iter()
            .filter(|((t, _, _), _)| *t == parent)
            .map(|((_, epfd, data), fd)| (*epfd, *data, *fd))
            .collect();
        for (epfd, data, fd) in epoll {
            self.register(child, epfd, fd, data);
        }
    }
}
