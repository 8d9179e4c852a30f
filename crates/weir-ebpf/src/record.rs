//! The records the kernel side writes (`bpf/flow.bpf.c`, `struct record`), decoded without
//! copying: a 64-byte little-endian header, then up to `len` bytes of data.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The size of `struct record`.
pub const HEADER: usize = 64;

/// What a record is about: the syscall (`SYS_*` in flow.bpf.c), or an event of the tracer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sys {
    /// `accept(fd, addr, addrlen)`: `ret` the new fd, data the peer's sockaddr.
    Accept,
    /// `accept4`: as `accept`; `a[0]` the flags.
    Accept4,
    /// `socket(domain, type, protocol)` in `a[0..3]`; `ret` the fd.
    Socket,
    /// `connect(fd, …)`: data the address.
    Connect,
    /// `setsockopt(fd, level, optname, …)`: `a[0]` level, `a[1]` optname, `a[2]` the value's
    /// first 4 bytes.
    Setsockopt,
    /// `epoll_ctl(epfd, op, fd, event)`: `a[0]` op, `a[1]` fd, `a[2]` the event mask, data the
    /// event's 8-byte `data`.
    EpollCtl,
    /// `epoll_wait(epfd, …)`: `a[0]` maxevents, `a[1]` the timeout in ms; data the ready
    /// events, 12 bytes each (at most 128; `ret` is the true count).
    EpollWait,
    /// `epoll_pwait`: as `epoll_wait`.
    EpollPwait,
    /// `epoll_pwait2`: as `epoll_wait`, timeout -2 (a timespec).
    EpollPwait2,
    /// `read(fd, buf, count)`: `a[0]` the size asked; data the first bytes read.
    Read,
    /// `readv`: `a[0]` the size asked (the first 8 iovecs), `a[1]` iovcnt.
    Readv,
    /// `recvfrom`: as `read`.
    Recvfrom,
    /// `recvmsg`: as `readv`; `a[2]` the flags.
    Recvmsg,
    /// `write(fd, buf, count)`: `a[0]` the size offered; data the first bytes written.
    Write,
    /// `writev`: as `readv`.
    Writev,
    /// `sendto`: as `write`.
    Sendto,
    /// `sendmsg`: as `recvmsg`.
    Sendmsg,
    /// `shutdown(fd, how)`: `a[0]` how.
    Shutdown,
    /// `close(fd)`.
    Close,
    /// A traced process forked: `a[0]` the child's pid, `a[1]` the clone flags.
    Fork,
    /// A thread entered the epoll_wait family (its wake round ended). `enter_ns` only.
    Wait,
}

impl Sys {
    fn from_u16(n: u16) -> Option<Sys> {
        use Sys::*;
        Some(match n {
            1 => Accept,
            2 => Accept4,
            3 => Socket,
            4 => Connect,
            5 => Setsockopt,
            6 => EpollCtl,
            7 => EpollWait,
            8 => EpollPwait,
            9 => EpollPwait2,
            10 => Read,
            11 => Readv,
            12 => Recvfrom,
            13 => Recvmsg,
            14 => Write,
            15 => Writev,
            16 => Sendto,
            17 => Sendmsg,
            18 => Shutdown,
            19 => Close,
            20 => Fork,
            21 => Wait,
            _ => return None,
        })
    }

    /// The syscall's name (for `--raw`).
    pub fn name(self) -> &'static str {
        use Sys::*;
        match self {
            Accept => "accept",
            Accept4 => "accept4",
            Socket => "socket",
            Connect => "connect",
            Setsockopt => "setsockopt",
            EpollCtl => "epoll_ctl",
            EpollWait => "epoll_wait",
            EpollPwait => "epoll_pwait",
            EpollPwait2 => "epoll_pwait2",
            Read => "read",
            Readv => "readv",
            Recvfrom => "recvfrom",
            Recvmsg => "recvmsg",
            Write => "write",
            Writev => "writev",
            Sendto => "sendto",
            Sendmsg => "sendmsg",
            Shutdown => "shutdown",
            Close => "close",
            Fork => "fork",
            Wait => "wait",
        }
    }

    /// A read of the socket's bytes.
    pub fn is_read(self) -> bool {
        matches!(self, Sys::Read | Sys::Readv | Sys::Recvfrom | Sys::Recvmsg)
    }

    /// A write of the socket's bytes.
    pub fn is_write(self) -> bool {
        matches!(self, Sys::Write | Sys::Writev | Sys::Sendto | Sys::Sendmsg)
    }

    /// One of the epoll_wait family.
    pub fn is_epoll_wait(self) -> bool {
        matches!(self, Sys::EpollWait | Sys::EpollPwait | Sys::EpollPwait2)
    }
}

/// One decoded record, borrowing its data from the ring buffer.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// When the syscall was entered (CLOCK_MONOTONIC, ns).
    pub enter_ns: u64,
    /// When it returned.
    pub exit_ns: u64,
    /// The process.
    pub tgid: u32,
    /// The thread.
    pub tid: u32,
    /// What it returned (`-errno` on failure).
    pub ret: i64,
    /// Which syscall.
    pub sys: Sys,
    /// Its file descriptor argument (-1 when it has none).
    pub fd: i32,
    /// Per-syscall arguments (see [`Sys`]).
    pub a: [u64; 3],
    /// Per-syscall data (see [`Sys`]).
    pub data: &'a [u8],
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header, or than its `len` says.
    Short,
    /// A `sys` number this reader does not know (object and reader out of step).
    UnknownSys(u16),
}

impl<'a> Record<'a> {
    /// Decodes one ring buffer item.
    pub fn decode(bytes: &'a [u8]) -> Result<Record<'a>, DecodeError> {
        if bytes.len() < HEADER {
            return Err(DecodeError::Short);
        }
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let u16_at = |i: usize| u16::from_le_bytes(bytes[i..i + 2].try_into().expect("2 bytes"));
        let sys_n = u16_at(32);
        let sys = Sys::from_u16(sys_n).ok_or(DecodeError::UnknownSys(sys_n))?;
        let len = usize::from(u16_at(34));
        let data = bytes.get(HEADER..HEADER + len).ok_or(DecodeError::Short)?;
        Ok(Record {
            enter_ns: u64_at(0),
            exit_ns: u64_at(8),
            tgid: u32_at(16),
            tid: u32_at(20),
            ret: u64_at(24) as i64,
            sys,
            fd: u32_at(36) as i32,
            a: [u64_at(40), u64_at(48), u64_at(56)],
            data,
        })
    }

    /// The ready events of an epoll_wait-family record: `(events mask, data)`.
    pub fn ready_events(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.data.chunks_exact(12).map(|e| {
            (
                u32::from_le_bytes(e[0..4].try_into().expect("4 bytes")),
                u64::from_le_bytes(e[4..12].try_into().expect("8 bytes")),
            )
        })
    }

    /// The 8-byte `data` of an `epoll_ctl` record's event.
    pub fn epoll_data(&self) -> Option<u64> {
        self.data
            .get(..8)
            .map(|d| u64::from_le_bytes(d.try_into().expect("8 bytes")))
    }
}

/// An IPv4 or IPv6 `struct sockaddr` (connect's argument, accept's peer).
pub fn sockaddr(data: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_le_bytes(data.get(0..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(data.get(2..4)?.try_into().ok()?);
    match i32::from(family) {
        2 => {
            let ip: [u8; 4] = data.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        10 => {
            let ip: [u8; 16] = data.get(8..24)?.try_into().ok()?;
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                0,
                0,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(sys: u16, len: u16, fd: i32, ret: i64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&10u64.to_le_bytes());
        b.extend_from_slice(&20u64.to_le_bytes());
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&ret.to_le_bytes());
        b.extend_from_slice(&sys.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&fd.to_le_bytes());
        for a in [1u64, 2, 3] {
            b.extend_from_slice(&a.to_le_bytes());
        }
        assert_eq!(b.len(), HEADER);
        b
    }

    #[test]
    fn decodes_a_read_with_its_head() {
        let mut b = header(10, 5, 12, 5);
        b.extend_from_slice(b"GET /xxxxxxxx");
        let r = Record::decode(&b).unwrap();
        assert_eq!(r.sys, Sys::Read);
        assert_eq!((r.tgid, r.tid, r.fd, r.ret), (7, 8, 12, 5));
        assert_eq!((r.enter_ns, r.exit_ns), (10, 20));
        assert_eq!(r.a, [1, 2, 3]);
        assert_eq!(r.data, b"GET /");
    }

    #[test]
    fn negative_returns_and_fds_keep_their_sign() {
        let r_bytes = header(14, 0, -1, -11);
        let r = Record::decode(&r_bytes).unwrap();
        assert_eq!((r.fd, r.ret), (-1, -11));
    }

    #[test]
    fn short_or_unknown_records_are_errors() {
        assert_eq!(Record::decode(&[0; 10]).unwrap_err(), DecodeError::Short);
        let b = header(10, 9, 1, 1);
        assert_eq!(Record::decode(&b).unwrap_err(), DecodeError::Short);
        let b = header(99, 0, 1, 1);
        assert_eq!(Record::decode(&b).unwrap_err(), DecodeError::UnknownSys(99));
    }

    #[test]
    fn epoll_events_are_packed_twelve_bytes() {
        let mut b = header(7, 24, 3, 2);
        for (mask, data) in [(1u32, 0x10u64), (4, 0x7f00_0000_0001)] {
            b.extend_from_slice(&mask.to_le_bytes());
            b.extend_from_slice(&data.to_le_bytes());
        }
        let r = Record::decode(&b).unwrap();
        let ready: Vec<_> = r.ready_events().collect();
        assert_eq!(ready, vec![(1, 0x10), (4, 0x7f00_0000_0001)]);
    }

    #[test]
    fn sockaddrs_v4_and_v6() {
        let mut v4 = vec![2, 0, 0x1f, 0x90, 127, 0, 0, 1];
        v4.extend_from_slice(&[0; 8]);
        assert_eq!(sockaddr(&v4), Some("127.0.0.1:8080".parse().unwrap()));
        let mut v6 = vec![10, 0, 0, 80, 0, 0, 0, 0];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        assert_eq!(sockaddr(&v6), Some("[::1]:80".parse().unwrap()));
        assert_eq!(sockaddr(&[1, 0, 0, 0]), None);
    }
}
