//! What the traced processes already have open when tracing starts, read from `/proc`: their
//! listening, accepted and connected TCP sockets, and what each epoll instance's `data`
//! stands for. Read before the tracepoints attach: classifying a socket on first sight would
//! race with the fd's reuse.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// A TCP socket one of the traced processes holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// A listening socket.
    Listener(SocketAddr),
    /// A connection accepted on one of the process's listeners, at this local address.
    Downstream(SocketAddr),
    /// A connection the process made, to this peer.
    Upstream(SocketAddr),
}

/// One socket: the process, the fd, what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownSocket {
    /// The process.
    pub tgid: u32,
    /// The descriptor.
    pub fd: i32,
    /// What it is.
    pub kind: SocketKind,
}

/// An epoll registration: in process `tgid`, `data` reported by epoll instance `epfd`
/// stands for `fd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpollData {
    /// The process.
    pub tgid: u32,
    /// The epoll instance.
    pub epfd: i32,
    /// The registration's data.
    pub data: u64,
    /// The registered fd.
    pub fd: i32,
    /// The registered event mask.
    pub events: u32,
}

/// The traced processes' state before tracing.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// TCP sockets.
    pub sockets: Vec<KnownSocket>,
    /// epoll registrations.
    pub epoll: Vec<EpollData>,
}

/// `pid` and its descendants (forked workers), `pid` first.
pub fn with_descendants(pid: u32) -> Vec<u32> {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some(ppid) = parent_of(child) {
                parents.entry(ppid).or_default().push(child);
            }
        }
    }
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        if let Some(children) = parents.get(&all[i]) {
            all.extend(children.iter().copied().filter(|c| *c != pid));
        }
        i += 1;
    }
    all
}

/// The parent's pid, from `/proc/PID/stat` (the field after the `(comm)`, which may hold
/// spaces and parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// The process's name (`/proc/PID/comm`).
pub fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_default()
}

/// Whether the process still exists.
pub fn alive(pid: u32) -> bool {
    fs::metadata(format!("/proc/{pid}")).is_ok()
}

/// Reads the sockets and epoll registrations of `pids`.
pub fn snapshot(pids: &[u32]) -> io::Result<Snapshot> {
    let mut snap = Snapshot::default();
    for &pid in pids {
        let tcp = tcp_table(pid);
        let listening: Vec<SocketAddr> =
            tcp.values().filter(|t| t.listen).map(|t| t.local).collect();
        let dir = match fs::read_dir(format!("/proc/{pid}/fd")) {
            Ok(dir) => dir,
            // A worker that exited between the listing and now.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in dir.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(target) = fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
            {
                let Some(t) = tcp.get(&inode) else { continue };
                let kind = if t.listen {
                    SocketKind::Listener(t.local)
                } else if listening.iter().any(|l| {
                    l.port() == t.local.port()
                        && (l.ip().is_unspecified() || l.ip() == t.local.ip())
                }) {
                    SocketKind::Downstream(t.local)
                } else {
                    SocketKind::Upstream(t.remote)
                };
                snap.sockets.push(KnownSocket {
                    tgid: pid,
                    fd,
                    kind,
                });
            } else if target == "anon_inode:[eventpoll]" {
                // Gone meanwhile (closed, or the process exited): nothing to learn from it.
                if let Ok(info) = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) {
                    snap.epoll.extend(parse_epoll_fdinfo(pid, fd, &info));
                }
            }
        }
    }
    Ok(snap)
}

/// One row of `/proc/PID/net/tcp{,6}`.
struct TcpRow {
    local: SocketAddr,
    remote: SocketAddr,
    listen: bool,
}

/// The process's network namespace's TCP sockets, by inode.
fn tcp_table(pid: u32) -> HashMap<u64, TcpRow> {
    let mut rows = HashMap::new();
    for file in ["tcp", "tcp6"] {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            if let Some((inode, row)) = parse_tcp_line(line) {
                rows.insert(inode, row);
            }
        }
    }
    rows
}

/// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …`
fn parse_tcp_line(line: &str) -> Option<(u64, TcpRow)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let local = parse_hex_addr(f.get(1)?)?;
    let remote = parse_hex_addr(f.get(2)?)?;
    let listen = *f.get(3)? == "0A";
    let inode = f.get(9)?.parse().ok()?;
    Some((
        inode,
        TcpRow {
            local,
            remote,
            listen,
        },
    ))
}

/// `0100007F:1F90` (IPv4, the address's bytes as a host-order u32) or 32 hex digits (IPv6,
/// four host-order u32s), then the port in hex.
fn parse_hex_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_le_bytes(),
        )
    };
    match ip.len() {
        8 => Some(SocketAddr::new(Ipv4Addr::from(word(0)?).into(), port)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(SocketAddr::new(Ipv6Addr::from(bytes).into(), port))
        }
        _ => None,
    }
}

/// `tfd:        5 events:       19 data:                5  pos:0 ino:…` lines (hex events
/// and data).
fn parse_epoll_fdinfo(tgid: u32, epfd: i32, info: &str) -> Vec<EpollData> {
    info.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() != Some(&"tfd:") {
                return None;
            }
            Some(EpollData {
                tgid,
                epfd,
                fd: f.get(1)?.parse().ok()?,
                events: u32::from_str_radix(f.get(3)?, 16).ok()?,
                data: u64::from_str_radix(f.get(5)?, 16).ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_rows_v4_and_v6() {
        let v4 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0";
        let (inode, row) = parse_tcp_line(v4).unwrap();
        assert_eq!(inode, 12345);
        assert!(row.listen);
        assert_eq!(row.local, "127.0.0.1:8080".parse().unwrap());
        let v6 = "   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 01 00000000:00000000 00:00000000 00000000     0        0 777 1";
        let (inode, row) = parse_tcp_line(v6).unwrap();
        assert_eq!(inode, 777);
        assert!(!row.listen);
        assert_eq!(row.local, "[::1]:80".parse().unwrap());
        assert_eq!(row.remote, "[::]:0".parse().unwrap());
    }

    #[test]
    fn epoll_fdinfo_maps_data_to_fds() {
        let info = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\ntfd:        5 events:       19 data:     7f12a0b0c010  pos:0 ino:3f1 sdev:8\ntfd:       12 events: 80000005 data:                c  pos:0 ino:3f2 sdev:8\n";
        let got = parse_epoll_fdinfo(9, 4, info);
        assert_eq!(
            got,
            vec![
                EpollData {
                    tgid: 9,
                    epfd: 4,
                    fd: 5,
                    events: 0x19,
                    data: 0x7f12_a0b0_c010
                },
                EpollData {
                    tgid: 9,
                    epfd: 4,
                    fd: 12,
                    events: 0x8000_0005,
                    data: 12
                },
            ]
        );
    }

    #[test]
    fn this_process_is_its_own_first_descendant() {
        let me = std::process::id();
        assert_eq!(with_descendants(me)[0], me);
        assert!(alive(me));
        assert!(!comm(me).is_empty());
    }
}
