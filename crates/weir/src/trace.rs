//! `weir trace --pid PID`: the request flows of any event-driven proxy process, rebuilt from
//! the kernel's side (eBPF syscall tracepoints, crates/weir-ebpf) and drawn by the same
//! renderers as weir's own flow trace.

use std::io;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use signal_hook::consts::{SIGINT, SIGTERM};
use weir_ebpf::correlate::Correlator;
use weir_ebpf::procfs;
use weir_ebpf::record::Record;
use weir_ebpf::tracer::{Dropped, Tracer, preflight};
use weir_flow::Flow;

/// `weir trace` flags.
#[derive(Args, Debug)]
pub(crate) struct TraceArgs {
    /// The proxy process: its threads and the children it has now (nginx's and HAProxy's
    /// workers are children of their master).
    #[arg(long)]
    pid: u32,
    /// Also follow processes it forks while tracing (a reload's new workers).
    #[arg(long)]
    children: bool,
    /// Only flows whose listener port or upstream port is P (repeatable).
    #[arg(long = "port", value_name = "P")]
    ports: Vec<u16>,
    /// text (the seed's sectioned log), json (JSON lines), or perfetto (Chrome trace JSON,
    /// written when tracing ends).
    #[arg(long, default_value = "text", value_parser = ["text", "json", "perfetto"])]
    format: String,
    /// Stop after this many seconds (default: at Ctrl-C, or when the processes exit).
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Print every record as it comes (one line per syscall) instead of flows.
    #[arg(long)]
    raw: bool,
}

/// How long a read of the ring buffer waits for the kernel's wakeup (which comes only once
/// 256 KiB are pending, to keep the traced process's cost low).
const POLL: Duration = Duration::from_millis(50);

pub(crate) fn run(args: &TraceArgs) -> ExitCode {
    if let Err(refusal) = preflight(args.pid) {
        eprintln!("weir trace: cannot trace: {refusal}");
        return ExitCode::from(2);
    }
    // Never itself: a tracer that records its own reads of the ring feeds itself.
    let me = std::process::id();
    let pids: Vec<u32> = procfs::with_descendants(args.pid)
        .into_iter()
        .filter(|&p| p != me)
        .collect();
    let snapshot = match procfs::snapshot(&pids) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("weir trace: cannot trace: reading /proc/{}: {e}", args.pid);
            return ExitCode::from(2);
        }
    };
    let mut tracer = match Tracer::attach(&pids, args.children) {
        Ok(t) => t,
        Err(refusal) => {
            eprintln!("weir trace: cannot trace: {refusal}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("weir trace: cannot handle signal {signal}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if !tracer.missing.is_empty() {
        eprintln!(
            "weir trace: this kernel has no tracepoints for {}: those calls are not seen",
            tracer.missing.join(", ")
        );
    }
    eprintln!(
        "weir trace: tracing {} (pid {}; {} process{}: {}); Ctrl-C to stop",
        procfs::comm(args.pid),
        args.pid,
        pids.len(),
        if pids.len() == 1 { "" } else { "es" },
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    );
    let mut session = Session {
        correlator: Correlator::new(&snapshot, args.ports.clone()),
        format: args.format.clone(),
        raw: args.raw,
        kept: Vec::new(),
        workers_shown: 0,
        undecodable: 0,
        out: io::BufWriter::new(io::stdout().lock()),
        dropped: Dropped::default(),
    };
    let started = Instant::now();
    let deadline = args.duration.map(Duration::from_secs_f64);
    let mut last_record = Instant::now();
    let mut last_check = Instant::now();
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| started.elapsed() < d) {
        let before = session.correlator.counts().records + session.undecodable;
        if let Err(e) = tracer.read(POLL, |bytes| session.record(bytes)) {
            eprintln!("weir trace: reading the ring buffer: {e}");
            break;
        }
        if session.correlator.counts().records + session.undecodable > before {
            last_record = Instant::now();
        }
        let now = session.correlator.last_ns() + last_record.elapsed().as_nanos() as u64;
        session.correlator.tick(now);
        if let Err(e) = session.output() {
            result = Err(e);
            break;
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            session.check_drops(tracer.dropped());
            // An exited process's PID could be reused by an unrelated one: stop tracing it.
            let pids = tracer.pids();
            for &pid in pids.iter().filter(|&&p| !procfs::alive(p)) {
                tracer.forget(pid);
                session.correlator.exited(pid);
            }
            if pids.iter().all(|&p| !procfs::alive(p)) {
                eprintln!("weir trace: the traced processes have exited");
                break;
            }
        }
    }
    // What is still in the ring, then every flow still open.
    let _ = tracer.read(Duration::ZERO, |bytes| session.record(bytes));
    session.correlator.finish();
    session.check_drops(tracer.dropped());
    if let Err(e) = result
        .and_then(|()| session.output())
        .and_then(|()| session.end())
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        eprintln!("weir trace: writing the output: {e}");
        return ExitCode::FAILURE;
    }
    let counts = session.correlator.counts();
    let d = session.dropped;
    eprintln!(
        "weir trace: done: {} records, {} flows; lost {} records (ring buffer full {}, in-flight table full {}); {} undecodable; {} upstream writes not linked to a request",
        counts.records,
        counts.flows,
        d.ring_full + d.inflight_full,
        d.ring_full,
        d.inflight_full,
        session.undecodable,
        counts.unlinked_writes,
    );
    ExitCode::SUCCESS
}

/// One trace's output state.
struct Session<W: io::Write> {
    correlator: Correlator,
    format: String,
    raw: bool,
    /// Flows kept for the Perfetto file, written at the end.
    kept: Vec<Flow>,
    workers_shown: usize,
    undecodable: u64,
    out: W,
    dropped: Dropped,
}

impl<W: io::Write> Session<W> {
    fn record(&mut self, bytes: &[u8]) {
        match Record::decode(bytes) {
            Ok(r) => {
                if self.raw {
                    let _ = self.raw_line(&r);
                }
                self.correlator.push(&r);
            }
            Err(_) => self.undecodable += 1,
        }
    }

    fn raw_line(&mut self, r: &Record<'_>) -> io::Result<()> {
        if self.format == "json" {
            let line = serde_json::json!({
                "enter_ns": r.enter_ns, "exit_ns": r.exit_ns, "pid": r.tgid, "tid": r.tid,
                "syscall": r.sys.name(), "fd": r.fd, "ret": r.ret, "args": r.a,
                "data": String::from_utf8_lossy(r.data),
            });
            writeln!(self.out, "{line}")
        } else {
            writeln!(
                self.out,
                "{} pid={} tid={} {}(fd={}, {:?}) = {} {:?}",
                r.exit_ns,
                r.tgid,
                r.tid,
                r.sys.name(),
                r.fd,
                r.a,
                r.ret,
                String::from_utf8_lossy(r.data)
            )
        }
    }

    /// Writes the flows finished since the last call (and names new workers on stderr).
    fn output(&mut self) -> io::Result<()> {
        for w in &self.correlator.workers()[self.workers_shown..] {
            eprintln!(
                "weir trace: worker {} is {} pid {} thread {}",
                w.index,
                procfs::comm(w.tgid),
                w.tgid,
                w.tid
            );
        }
        self.workers_shown = self.correlator.workers().len();
        let flows = self.correlator.take_flows();
        if flows.is_empty() || self.raw {
            return self.out.flush();
        }
        let mut text = String::new();
        match self.format.as_str() {
            "json" => weir_flow::render::json_lines(&flows, &mut text),
            "perfetto" => {
                self.kept.extend(flows);
                return Ok(());
            }
            _ => {
                for flow in &flows {
                    weir_flow::render::text(std::slice::from_ref(flow), &mut text);
                    text.push('\n');
                }
            }
        }
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }

    /// The Perfetto file, at the end.
    fn end(&mut self) -> io::Result<()> {
        if self.format == "perfetto" && !self.raw {
            // The renderers take flows newest first.
            self.kept.reverse();
            self.out
                .write_all(weir_flow::render::perfetto(&self.kept).as_bytes())?;
        }
        self.out.flush()
    }

    /// Reports records lost in the kernel as soon as they are counted, and marks the flows
    /// open then as truncated.
    fn check_drops(&mut self, now: Dropped) {
        if now != self.dropped {
            self.correlator.records_lost();
        }
        if now.ring_full > self.dropped.ring_full {
            eprintln!(
                "weir trace: {} records lost: the ring buffer was full (the reader fell behind)",
                now.ring_full - self.dropped.ring_full
            );
        }
        if now.inflight_full > self.dropped.inflight_full {
            eprintln!(
                "weir trace: {} records lost: the in-flight table was full",
                now.inflight_full - self.dropped.inflight_full
            );
        }
        self.dropped = now;
    }
}
