//! The kernel side, loaded and attached: `bpf/flow.bpf.o` (embedded), one tracepoint program
//! per syscall enter and exit, the traced PIDs in the `pids` map, records read from the ring
//! buffer.

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use aya::Ebpf;
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::TracePoint;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

/// The compiled kernel side; `bpf/build.sh --check` (CI) proves it is built from
/// `bpf/flow.bpf.c`.
static OBJECT: &[u8] = aya::include_bytes_aligned!("../bpf/flow.bpf.o");

/// The syscalls traced, each with an enter and an exit program named `enter_<name>` and
/// `exit_<name>`.
pub const SYSCALLS: [&str; 19] = [
    "accept",
    "accept4",
    "socket",
    "connect",
    "setsockopt",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "read",
    "readv",
    "recvfrom",
    "recvmsg",
    "write",
    "writev",
    "sendto",
    "sendmsg",
    "shutdown",
    "close",
];

/// Records handed out by one [`Tracer::read`] at most.
const MAX_PER_READ: usize = 65_536;

/// Why tracing cannot start: each says what is missing and how to fix it.
#[derive(Debug)]
pub enum Refusal {
    /// Not running as root.
    NotRoot,
    /// tracefs is not mounted.
    NoTracefs,
    /// PID 1 (init) asked for.
    Init,
    /// The tracer's own PID asked for.
    Itself,
    /// No such process.
    NoProcess(u32),
    /// The kernel refused to load or attach the programs.
    Bpf(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotRoot => write!(
                f,
                "loading eBPF programs needs root (CAP_BPF and CAP_PERFMON): run it with sudo"
            ),
            Refusal::NoTracefs => write!(
                f,
                "tracefs is not mounted: mount -t tracefs nodev /sys/kernel/tracing"
            ),
            Refusal::Init => write!(f, "refusing to trace PID 1 (init): pass the proxy's PID"),
            Refusal::Itself => write!(f, "refusing to trace weir trace itself"),
            Refusal::NoProcess(pid) => write!(f, "no process with PID {pid}"),
            Refusal::Bpf(why) => write!(
                f,
                "the kernel refused the eBPF programs ({why}): this needs a kernel with BPF \
                 syscall tracepoints and ring buffers (Linux 5.8 or later, CONFIG_BPF_SYSCALL, \
                 CONFIG_FTRACE_SYSCALLS)"
            ),
        }
    }
}

/// Checks what tracing `pid` needs before anything is loaded.
pub fn preflight(pid: u32) -> Result<(), Refusal> {
    if pid == 1 {
        return Err(Refusal::Init);
    }
    if pid == std::process::id() {
        return Err(Refusal::Itself);
    }
    if !crate::procfs::alive(pid) {
        return Err(Refusal::NoProcess(pid));
    }
    if effective_uid() != Some(0) {
        return Err(Refusal::NotRoot);
    }
    if tracefs().is_none() {
        return Err(Refusal::NoTracefs);
    }
    Ok(())
}

/// The effective uid, from `/proc/self/status` (`Uid: real effective saved fs`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Where tracefs is mounted (aya looks in the same two places).
fn tracefs() -> Option<&'static Path> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("events/syscalls").is_dir())
}

/// Records lost in the kernel, never hidden.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// The ring buffer was full (the reader fell behind).
    pub ring_full: u64,
    /// The per-thread in-flight table was full.
    pub inflight_full: u64,
}

/// The attached programs and the ring buffer they write.
pub struct Tracer {
    // Owns the programs: dropping it detaches them.
    _ebpf: Ebpf,
    ring: RingBuf<MapData>,
    pids: BpfHashMap<MapData, u32, u8>,
    drops: PerCpuArray<MapData, u64>,
    poll: Poll,
    events: Events,
    /// Syscalls whose tracepoints this kernel lacks (e.g. epoll_pwait2 before 5.11).
    pub missing: Vec<&'static str>,
}

impl Tracer {
    /// Loads the programs, traces `pids` (and, with `children`, processes they fork from
    /// now on), and attaches.
    pub fn attach(pids: &[u32], children: bool) -> Result<Tracer, Refusal> {
        let bpf_err = |e: &dyn fmt::Display| Refusal::Bpf(e.to_string());
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| bpf_err(&e))?;
        let mut pid_map: BpfHashMap<MapData, u32, u8> = ebpf
            .take_map("pids")
            .ok_or_else(|| Refusal::Bpf("no pids map in the object".into()))?
            .try_into()
            .map_err(|e| bpf_err(&e))?;
        for &pid in pids {
            pid_map.insert(pid, 1, 0).map_err(|e| bpf_err(&e))?;
        }
        let drops: PerCpuArray<MapData, u64> = ebpf
            .take_map("drops")
            .ok_or_else(|| Refusal::Bpf("no drops map in the object".into()))?
            .try_into()
            .map_err(|e| bpf_err(&e))?;
        let ring: RingBuf<MapData> = ebpf
            .take_map("events")
            .ok_or_else(|| Refusal::Bpf("no events map in the object".into()))?
            .try_into()
            .map_err(|e| bpf_err(&e))?;
        let root = tracefs().ok_or(Refusal::NoTracefs)?;
        let mut missing = Vec::new();
        for name in SYSCALLS {
            let events = root.join("events/syscalls");
            if !events.join(format!("sys_enter_{name}")).is_dir() {
                missing.push(name);
                continue;
            }
            for (prefix, event) in [("enter", "sys_enter"), ("exit", "sys_exit")] {
                attach_one(
                    &mut ebpf,
                    &format!("{prefix}_{name}"),
                    "syscalls",
                    &format!("{event}_{name}"),
                )?;
            }
        }
        if children {
            attach_one(&mut ebpf, "on_newtask", "task", "task_newtask")?;
        }
        let poll = Poll::new().map_err(|e| bpf_err(&e))?;
        let fd = ring.as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)
            .map_err(|e| bpf_err(&e))?;
        Ok(Tracer {
            _ebpf: ebpf,
            ring,
            pids: pid_map,
            drops,
            poll,
            events: Events::with_capacity(4),
            missing,
        })
    }

    /// Waits up to `timeout` for records, then hands each pending one to `f`.
    pub fn read(&mut self, timeout: Duration, mut f: impl FnMut(&[u8])) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        // Bounded, so that a reader that fell behind still returns to stop, report and print.
        for _ in 0..MAX_PER_READ {
            let Some(item) = self.ring.next() else { break };
            f(&item);
        }
        Ok(())
    }

    /// Stops tracing `pid` (it exited: its PID may be reused by an unrelated process).
    pub fn forget(&mut self, pid: u32) {
        let _ = self.pids.remove(&pid);
    }

    /// The processes traced now (forked children join while tracing with `children`).
    pub fn pids(&self) -> Vec<u32> {
        self.pids.keys().filter_map(Result::ok).collect()
    }

    /// Records lost so far, summed over CPUs.
    pub fn dropped(&self) -> Dropped {
        let sum = |i: u32| {
            self.drops
                .get(&i, 0)
                .map(|per_cpu| per_cpu.iter().sum())
                .unwrap_or(0)
        };
        Dropped {
            ring_full: sum(0),
            inflight_full: sum(1),
        }
    }
}

fn attach_one(ebpf: &mut Ebpf, program: &str, category: &str, event: &str) -> Result<(), Refusal> {
    let fail = |e: &dyn fmt::Display| Refusal::Bpf(format!("{program} on {category}/{event}: {e}"));
    let prog: &mut TracePoint = ebpf
        .program_mut(program)
        .ok_or_else(|| Refusal::Bpf(format!("no program {program} in the object")))?
        .try_into()
        .map_err(|e| fail(&e))?;
    prog.load().map_err(|e| fail(&e))?;
    prog.attach(category, event).map_err(|e| fail(&e))?;
    Ok(())
}
