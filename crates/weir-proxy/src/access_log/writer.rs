//! Buffered, non-blocking access log output: workers format lines into per-worker buffers, one
//! flusher thread writes them out.
//!
//! ```text
//!   worker 0 ──format──▶ [sink 0 / worker 0 buffer] ─┐
//!   worker 1 ──format──▶ [sink 0 / worker 1 buffer] ─┼─ flusher: swap, writev ─▶ sink 0 (file)
//!   worker 0 ──format──▶ [sink 1 / worker 0 buffer] ─┘                        ─▶ sink 1 (stdout)
//! ```
//!
//! - **Workers never block on I/O.** A worker takes its own buffer's lock (nobody else takes it
//!   except the flusher, for the time of a pointer swap), formats the line straight into it and
//!   lets go. The only syscall a worker can cause is a futex wake, when its buffer passes
//!   [`FLUSH_THRESHOLD`] (Envoy's 64 KiB).
//! - **Bounded.** A buffer already holding [`MAX_BUFFER`] bytes (the flusher is behind, or the
//!   disk is stuck) drops the line and counts it in `write_dropped`.
//! - **One flusher thread for the whole server**, woken by a worker's buffer passing the
//!   threshold, by [`AccessLogs::reopen`], or every flush interval (Envoy's
//!   `--file-flush-interval-msec`, default [`ENVOY_FLUSH_INTERVAL`]). It swaps each buffer with a
//!   spare of its own and writes a sink's buffers with one `writev`. Buffers and spares keep
//!   their capacity, so the steady state allocates nothing per line.
//! - **Sinks are shared**: loggers naming the same file (or stdout) in several connection managers
//!   write to one handle; files are opened `O_APPEND | O_CREAT` when the config that names them
//!   is compiled (at startup, or by a reload: the tables grow, and each worker takes the
//!   larger ones as it follows the reload).
//! - **Counters** are Envoy's `filesystem.*` names. The data path touches no shared counter: it
//!   counts in its own buffer, and the flusher adds those counts to [`AccessLogStats`] when it
//!   swaps, so `write_buffered` and `write_dropped` trail by at most one flush interval.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::Path;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use weir_config::{AccessLog, AccessLogSink, LogFormat, Operator};

use super::format::{LogRecord, format};

/// A worker's buffer for one sink wakes the flusher when it holds this much (Envoy's
/// `MIN_FLUSH_SIZE`).
pub(crate) const FLUSH_THRESHOLD: usize = 64 * 1024;
/// A worker's buffer for one sink holding this much takes no more lines until it is flushed.
pub(crate) const MAX_BUFFER: usize = 4 * 1024 * 1024;
/// Envoy's default `--file-flush-interval-msec`.
pub(crate) const ENVOY_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Access log counters, named after Envoy's `filesystem.*` stats (summed over every sink), plus
/// weir's `write_dropped`.
#[derive(Debug, Default)]
pub(crate) struct AccessLogStats {
    /// Lines added to a buffer.
    pub(crate) write_buffered: AtomicU64,
    /// Successful writes to a sink (one per sink per flush that had data).
    pub(crate) write_completed: AtomicU64,
    /// Failed writes (the data of that flush is lost).
    pub(crate) write_failed: AtomicU64,
    /// Flushes due to the flush interval rather than a full buffer (per sink written).
    pub(crate) flushed_by_timer: AtomicU64,
    /// Files that could not be reopened by [`AccessLogs::reopen`] (the old handle is kept).
    pub(crate) reopen_failed: AtomicU64,
    /// Lines dropped because a buffer held [`MAX_BUFFER`] bytes.
    pub(crate) write_dropped: AtomicU64,
}

/// The access loggers of one connection manager, as [`LogsAdmin::register`] registered them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogSet(u32);

/// What the formats of a [`LogSet`] read from a request, so the data path collects only that.
#[derive(Debug, Default, Clone)]
pub(crate) struct Needs {
    /// Request headers to keep in [`LogRecord::request_headers`] (lower-case, each once; as
    /// `Bytes` so a record's copy of a name is a reference count, not an allocation).
    pub(crate) request_headers: Vec<Bytes>,
    /// Response headers to keep in [`LogRecord::response_headers`] (lower-case, each once).
    pub(crate) response_headers: Vec<Bytes>,
    /// Whether some format logs the upstream connection's local address.
    pub(crate) upstream_local_address: bool,
}

/// What a set that is not (yet) in a worker's tables needs: nothing.
const NO_NEEDS: &Needs = &Needs {
    request_headers: Vec::new(),
    response_headers: Vec::new(),
    upstream_local_address: false,
};

/// Every access logger of the server, and the flusher thread: made with
/// [`AccessLogs::new`], filled by [`LogsAdmin::register`] (as the config compiles at startup
/// and at each reload), stopped by [`AccessLogs::stop`] or when dropped.
#[derive(Debug)]
pub(crate) struct AccessLogs {
    shared: Arc<Shared>,
}

/// What the admin listener and the config's compilation ask of the access logs.
#[derive(Debug, Clone)]
pub(crate) struct LogsAdmin {
    shared: Arc<Shared>,
}

/// One worker's handle: `Send`, and what the data path logs through. It reads the tables
/// it took last; [`WorkerLogs::follow`] takes the ones a reload's registrations made.
#[derive(Debug, Clone)]
pub(crate) struct WorkerLogs {
    shared: Arc<Shared>,
    tables: Arc<Tables>,
    /// The registrations `tables` has.
    generation: u64,
    worker: usize,
}

#[derive(Debug)]
struct Shared {
    workers: usize,
    flush_interval: Duration,
    /// What workers and the flusher index. A registration that adds to them replaces them
    /// with longer ones (indexes stay: nothing is removed), under this lock.
    tables: Mutex<Arc<Tables>>,
    /// Registrations that added to the tables so far.
    generation: AtomicU64,
    /// Sinks opened since the flusher last looked, in `tables` order.
    opened: Mutex<Vec<SinkWriter>>,
    /// Started with the first sink.
    flusher: Mutex<Option<JoinHandle<()>>>,
    /// [`AccessLogs::stop`] ran (under the `flusher` lock): no flusher starts again.
    stopped: AtomicBool,
    /// Serializes registrations.
    registering: Mutex<()>,
    wake: Mutex<Wake>,
    cond: Condvar,
    reopen: AtomicBool,
    stats: Arc<AccessLogStats>,
}

/// The sets and their sinks' buffers.
#[derive(Debug, Default, Clone)]
struct Tables {
    sets: Vec<SetEntry>,
    /// Per sink, a buffer per worker.
    buffers: Vec<Arc<[Slot]>>,
    /// Per sink, where it writes (loggers naming the same destination share it).
    sinks: Vec<AccessLogSink>,
    /// Each `access_log` registered, with its set (the same one registers once).
    known: Vec<(Vec<AccessLog>, LogSet)>,
}

#[derive(Debug, Clone)]
struct SetEntry {
    loggers: Vec<Logger>,
    needs: Needs,
}

#[derive(Debug, Clone)]
struct Logger {
    format: LogFormat,
    /// Index into `Tables::buffers`.
    sink: usize,
}

/// A worker's buffer for one sink, on its own cache lines so workers do not share them.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot(Mutex<Buffer>);

#[derive(Debug, Default)]
struct Buffer {
    data: Vec<u8>,
    /// Lines buffered since the flusher last looked.
    lines: u64,
    /// Lines dropped since the flusher last looked.
    dropped: u64,
}

#[derive(Debug, Default)]
struct Wake {
    /// A buffer passed the threshold, or a reopen was asked for.
    flush_now: bool,
    stop: bool,
}

/// The flusher's side of a sink.
#[derive(Debug)]
struct SinkWriter {
    sink: AccessLogSink,
    out: Output,
    /// One spare buffer per worker, swapped with the worker's buffer at each flush.
    spares: Vec<Vec<u8>>,
}

#[derive(Debug)]
enum Output {
    File(File),
    Stdout,
    Stderr,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AccessLogs {
    /// No logger yet, for `workers` workers (at least 1); the flusher will write at least
    /// every `flush_interval` (Envoy's default: [`ENVOY_FLUSH_INTERVAL`]).
    pub(crate) fn new(workers: usize, flush_interval: Duration) -> AccessLogs {
        AccessLogs {
            shared: Arc::new(Shared {
                workers: workers.max(1),
                flush_interval,
                tables: Mutex::default(),
                generation: AtomicU64::new(0),
                opened: Mutex::default(),
                flusher: Mutex::default(),
                stopped: AtomicBool::new(false),
                registering: Mutex::default(),
                wake: Mutex::default(),
                cond: Condvar::new(),
                reopen: AtomicBool::new(false),
                stats: Arc::default(),
            }),
        }
    }

    /// The handle worker `index` (below the `workers` given to [`AccessLogs::new`]) logs
    /// through.
    pub(crate) fn worker(&self, index: usize) -> WorkerLogs {
        assert!(index < self.shared.workers, "worker {index} out of range");
        let mut logs = WorkerLogs {
            shared: Arc::clone(&self.shared),
            tables: Arc::default(),
            generation: u64::MAX,
            worker: index,
        };
        logs.follow();
        logs
    }

    /// The admin listener's and the config's view: counters, buffered bytes, reopening,
    /// registering.
    pub(crate) fn admin(&self) -> LogsAdmin {
        LogsAdmin {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Writes everything buffered and stops the flusher; call it once the workers have stopped
    /// logging (lines logged afterwards are never written). Idempotent; dropping `AccessLogs`
    /// does it too.
    pub(crate) fn stop(&mut self) {
        // The lock is let go before the join: the flusher's last pass may wait for a
        // registration that waits for this lock.
        let flusher = {
            let mut flusher = lock(&self.shared.flusher);
            self.shared.stopped.store(true, Relaxed);
            flusher.take()
        };
        if let Some(flusher) = flusher {
            lock(&self.shared.wake).stop = true;
            self.shared.cond.notify_one();
            if flusher.join().is_err() {
                tracing::error!("the access log flusher panicked");
            }
        }
    }
}

impl Drop for AccessLogs {
    fn drop(&mut self) {
        self.stop();
    }
}

impl LogsAdmin {
    /// The counters.
    pub(crate) fn stats(&self) -> &Arc<AccessLogStats> {
        &self.shared.stats
    }

    /// Bytes buffered and not yet written (Envoy's `filesystem.write_total_buffered`).
    pub(crate) fn buffered_bytes(&self) -> u64 {
        let tables = lock(&self.shared.tables).clone();
        (tables.buffers.iter())
            .flat_map(|slots| slots.iter())
            .map(|slot| lock(&slot.0).data.len() as u64)
            .sum()
    }

    /// Reopens every file at the next flush, which happens now (`POST /reopen_logs`, after
    /// logrotate moved the files). Lines buffered until then go to the new files.
    pub(crate) fn reopen(&self) {
        self.shared.reopen.store(true, Relaxed);
        self.shared.wake_flusher();
    }

    /// Registers one connection manager's `access_log` (at startup, or when a reload compiles
    /// a chain) and opens the files it names that no other logger has open (a file another
    /// set opened is shared; the same `access_log` is the same set). An error names the file
    /// that cannot be opened, and registers nothing. Workers see a new set once they follow
    /// the reload that made it ([`WorkerLogs::follow`]); a set is never removed.
    pub(crate) fn register(&self, logs: &[AccessLog]) -> io::Result<LogSet> {
        let shared = &self.shared;
        // One registration at a time; the tables' lock, which workers take as they follow
        // a reload, is not held while a file opens (a slow disk must not stall them).
        let _one = lock(&shared.registering);
        let tables = lock(&shared.tables).clone();
        if let Some((_, set)) = tables.known.iter().find(|(l, _)| l.as_slice() == logs) {
            return Ok(*set);
        }
        let mut next = Tables::clone(&tables);
        let mut opened = Vec::new();
        let mut entry = SetEntry {
            loggers: Vec::with_capacity(logs.len()),
            needs: Needs::default(),
        };
        for log in logs {
            let sink = match next.sinks.iter().position(|s| *s == log.sink) {
                Some(i) => i,
                None => {
                    let out = match &log.sink {
                        AccessLogSink::File(path) => Output::File(open(path)?),
                        AccessLogSink::Stdout => Output::Stdout,
                        AccessLogSink::Stderr => Output::Stderr,
                    };
                    opened.push(SinkWriter {
                        sink: log.sink.clone(),
                        out,
                        spares: vec![Vec::new(); shared.workers],
                    });
                    next.sinks.push(log.sink.clone());
                    next.buffers
                        .push((0..shared.workers).map(|_| Slot::default()).collect());
                    next.sinks.len() - 1
                }
            };
            entry.needs.add(&log.format);
            entry.loggers.push(Logger {
                format: log.format.clone(),
                sink,
            });
        }
        let id =
            u32::try_from(next.sets.len()).map_err(|_| io::Error::other("too many log sets"))?;
        if !opened.is_empty() {
            self.start_flusher()?;
        }
        next.sets.push(entry);
        next.known.push((logs.to_vec(), LogSet(id)));
        // The opened sinks in the order of the buffers, under the tables' lock (the flusher
        // takes `opened` before it reads the tables: its sinks are a prefix of the buffers).
        let mut tables = lock(&shared.tables);
        lock(&shared.opened).extend(opened);
        *tables = Arc::new(next);
        shared.generation.fetch_add(1, Release);
        Ok(LogSet(id))
    }

    /// Starts the flusher thread, unless it runs; not once the logs were stopped (a second
    /// flusher would not line its sinks up with the buffers).
    fn start_flusher(&self) -> io::Result<()> {
        let mut flusher = lock(&self.shared.flusher);
        if self.shared.stopped.load(Relaxed) {
            return Err(io::Error::other("the access logs were stopped"));
        }
        if flusher.is_none() {
            let run = Flusher {
                shared: Arc::clone(&self.shared),
                sinks: Vec::new(),
                interval: self.shared.flush_interval,
            };
            let thread = std::thread::Builder::new().name("weir-access-log".to_owned());
            *flusher = Some(thread.spawn(move || run.run())?);
        }
        Ok(())
    }
}

impl Needs {
    /// Adds what `format` reads.
    fn add(&mut self, format: &LogFormat) {
        for name in format.request_headers() {
            if !self.request_headers.iter().any(|n| n == name.as_bytes()) {
                self.request_headers
                    .push(Bytes::copy_from_slice(name.as_bytes()));
            }
        }
        for name in format.response_headers() {
            if !self.response_headers.iter().any(|n| n == name.as_bytes()) {
                self.response_headers
                    .push(Bytes::copy_from_slice(name.as_bytes()));
            }
        }
        self.upstream_local_address |= format.uses(|op| {
            matches!(
                op,
                Operator::UpstreamLocalAddress
                    | Operator::UpstreamLocalAddressWithoutPort
                    | Operator::UpstreamLocalPort
            )
        });
    }
}

/// Opens an access log file for appending, creating it if needed.
fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("access log {}: {e}", path.display())))
}

impl Shared {
    fn wake_flusher(&self) {
        lock(&self.wake).flush_now = true;
        self.cond.notify_one();
    }
}

impl WorkerLogs {
    /// Takes the sets registered since it last looked (a worker calls it as it follows a
    /// reload, before it serves a chain the reload compiled).
    pub(crate) fn follow(&mut self) {
        let generation = self.shared.generation.load(Acquire);
        if generation != self.generation {
            self.tables = lock(&self.shared.tables).clone();
            self.generation = generation;
        }
    }

    /// Whether `set` has no logger (the data path can skip building a record).
    pub(crate) fn is_empty(&self, set: LogSet) -> bool {
        (self.tables.sets.get(set.0 as usize)).is_none_or(|s| s.loggers.is_empty())
    }

    /// What `set`'s formats read from a request.
    pub(crate) fn needs(&self, set: LogSet) -> &Needs {
        (self.tables.sets.get(set.0 as usize)).map_or(NO_NEEDS, |s| &s.needs)
    }

    /// Formats `record` for every logger of `set` into this worker's buffers. Never blocks on
    /// I/O and allocates nothing once the buffers have grown.
    pub(crate) fn log(&self, set: LogSet, record: &LogRecord) {
        let Some(entry) = self.tables.sets.get(set.0 as usize) else {
            debug_assert!(false, "log set {} used before the worker followed", set.0);
            return;
        };
        for logger in &entry.loggers {
            let slot = &self.tables.buffers[logger.sink][self.worker];
            let mut buffer = lock(&slot.0);
            let before = buffer.data.len();
            if before >= MAX_BUFFER {
                buffer.dropped += 1;
                continue;
            }
            format(&logger.format, record, &mut buffer.data);
            buffer.lines += 1;
            let after = buffer.data.len();
            drop(buffer);
            if before < FLUSH_THRESHOLD && after >= FLUSH_THRESHOLD {
                self.shared.wake_flusher();
            }
        }
    }
}

/// The flusher thread's state.
struct Flusher {
    shared: Arc<Shared>,
    sinks: Vec<SinkWriter>,
    interval: Duration,
}

impl Flusher {
    fn run(mut self) {
        loop {
            let (stop, by_timer) = self.wait();
            self.sinks.extend(lock(&self.shared.opened).drain(..));
            if self.shared.reopen.swap(false, Relaxed) {
                self.reopen();
            }
            self.flush(by_timer);
            if stop {
                return;
            }
        }
    }

    /// Waits for a wake-up or the interval; returns (stop, woken by the timer).
    fn wait(&self) -> (bool, bool) {
        let deadline = Instant::now() + self.interval;
        let mut wake = lock(&self.shared.wake);
        loop {
            if wake.stop || wake.flush_now {
                let stop = wake.stop;
                wake.flush_now = false;
                return (stop, false);
            }
            let now = Instant::now();
            if now >= deadline {
                return (false, true);
            }
            wake = self
                .shared
                .cond
                .wait_timeout(wake, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn reopen(&mut self) {
        for sink in &mut self.sinks {
            if let AccessLogSink::File(path) = &sink.sink {
                match open(path) {
                    Ok(file) => sink.out = Output::File(file),
                    Err(e) => {
                        self.shared.stats.reopen_failed.fetch_add(1, Relaxed);
                        tracing::warn!("cannot reopen {e}");
                    }
                }
            }
        }
    }

    /// Swaps every buffer out and writes each sink's with one `writev`.
    fn flush(&mut self, by_timer: bool) {
        let stats = &self.shared.stats;
        let tables = lock(&self.shared.tables).clone();
        for (sink, slots) in self.sinks.iter_mut().zip(&tables.buffers) {
            let mut bytes = 0;
            for (spare, slot) in sink.spares.iter_mut().zip(slots.iter()) {
                let mut buffer = lock(&slot.0);
                stats.write_buffered.fetch_add(buffer.lines, Relaxed);
                stats.write_dropped.fetch_add(buffer.dropped, Relaxed);
                buffer.lines = 0;
                buffer.dropped = 0;
                if !buffer.data.is_empty() {
                    std::mem::swap(&mut buffer.data, spare);
                    bytes += spare.len();
                }
            }
            if bytes == 0 {
                continue;
            }
            if by_timer {
                stats.flushed_by_timer.fetch_add(1, Relaxed);
            }
            match sink.write() {
                Ok(()) => stats.write_completed.fetch_add(1, Relaxed),
                Err(e) => {
                    tracing::warn!(sink = ?sink.sink, "access log write failed: {e}");
                    stats.write_failed.fetch_add(1, Relaxed)
                }
            };
            for spare in &mut sink.spares {
                spare.clear();
                // After a burst, give the memory back rather than keep twice the peak.
                if spare.capacity() > 2 * FLUSH_THRESHOLD {
                    spare.shrink_to(FLUSH_THRESHOLD);
                }
            }
        }
    }
}

impl SinkWriter {
    /// Writes the non-empty spares, in worker order.
    fn write(&mut self) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = self
            .spares
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| IoSlice::new(s))
            .collect();
        match &mut self.out {
            Output::File(file) => write_all_vectored(file, &mut slices),
            Output::Stdout => {
                let mut out = io::stdout().lock();
                write_all_vectored(&mut out, &mut slices)?;
                out.flush()
            }
            Output::Stderr => {
                let mut out = io::stderr().lock();
                write_all_vectored(&mut out, &mut slices)?;
                out.flush()
            }
        }
    }
}

/// `write_all` for several buffers.
fn write_all_vectored(out: &mut impl Write, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
