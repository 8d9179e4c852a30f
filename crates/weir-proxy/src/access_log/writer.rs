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
//!   write to one handle; files are opened `O_APPEND | O_CREAT` when the server starts.
//! - **Counters** are Envoy's `filesystem.*` names. The data path touches no shared counter: it
//!   counts in its own buffer, and the flusher adds those counts to [`AccessLogStats`] when it
//!   swaps, so `write_buffered` and `write_dropped` trail by at most one flush interval.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
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

/// The access loggers of one connection manager, as [`Builder::add`] registered them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogSet(u32);

/// What the formats of a [`LogSet`] read from a request, so the data path collects only that.
#[derive(Debug, Default)]
pub(crate) struct Needs {
    /// Request headers to keep in [`LogRecord::request_headers`] (lower-case, each once; as
    /// `Bytes` so a record's copy of a name is a reference count, not an allocation).
    pub(crate) request_headers: Vec<Bytes>,
    /// Response headers to keep in [`LogRecord::response_headers`] (lower-case, each once).
    pub(crate) response_headers: Vec<Bytes>,
    /// Whether some format logs the upstream connection's local address.
    pub(crate) upstream_local_address: bool,
}

/// Registers the access loggers of each connection manager, opens their files, then starts the
/// flusher: `builder` → [`Builder::add`] per connection manager → [`Builder::start`].
#[derive(Debug)]
pub(crate) struct Builder {
    workers: usize,
    flush_interval: Duration,
    sets: Vec<SetEntry>,
    sinks: Vec<SinkWriter>,
}

/// Every access logger of the server, and the flusher thread.
#[derive(Debug)]
pub(crate) struct AccessLogs {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

/// What the admin listener reads and asks of the access logs.
#[derive(Debug, Clone)]
pub(crate) struct LogsAdmin {
    shared: Arc<Shared>,
}

impl LogsAdmin {
    /// The counters.
    pub(crate) fn stats(&self) -> &Arc<AccessLogStats> {
        &self.shared.stats
    }

    /// Bytes buffered and not yet written (Envoy's `filesystem.write_total_buffered`).
    pub(crate) fn buffered_bytes(&self) -> u64 {
        self.shared
            .buffers
            .iter()
            .flatten()
            .map(|slot| lock(&slot.0).data.len() as u64)
            .sum()
    }

    /// Reopens every file at the next flush, which happens now (`POST /reopen_logs`, after
    /// logrotate moved the files). Lines buffered until then go to the new files.
    pub(crate) fn reopen(&self) {
        self.shared.reopen.store(true, Relaxed);
        self.shared.wake_flusher();
    }
}

/// One worker's handle: cheap to clone, `Send`, and what the data path logs through.
#[derive(Debug, Clone)]
pub(crate) struct WorkerLogs {
    shared: Arc<Shared>,
    worker: usize,
}

#[derive(Debug)]
struct Shared {
    sets: Vec<SetEntry>,
    /// `[sink][worker]`.
    buffers: Vec<Vec<Slot>>,
    wake: Mutex<Wake>,
    cond: Condvar,
    reopen: AtomicBool,
    stats: Arc<AccessLogStats>,
}

#[derive(Debug)]
struct SetEntry {
    loggers: Vec<Logger>,
    needs: Needs,
}

#[derive(Debug)]
struct Logger {
    format: LogFormat,
    /// Index into `Shared::buffers`.
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
    /// Starts registering loggers for `workers` workers (at least 1); the flusher will write at
    /// least every `flush_interval` (Envoy's default: [`ENVOY_FLUSH_INTERVAL`]).
    pub(crate) fn builder(workers: usize, flush_interval: Duration) -> Builder {
        Builder {
            workers: workers.max(1),
            flush_interval,
            sets: Vec::new(),
            sinks: Vec::new(),
        }
    }

    /// The handle worker `index` (below the `workers` given to the builder) logs through.
    pub(crate) fn worker(&self, index: usize) -> WorkerLogs {
        assert!(
            index < self.shared.buffers.first().map_or(usize::MAX, Vec::len),
            "worker {index} out of range"
        );
        WorkerLogs {
            shared: Arc::clone(&self.shared),
            worker: index,
        }
    }

    /// The admin listener's view: counters, buffered bytes, reopening.
    pub(crate) fn admin(&self) -> LogsAdmin {
        LogsAdmin {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Writes everything buffered and stops the flusher; call it once the workers have stopped
    /// logging (lines logged afterwards are never written). Idempotent; dropping `AccessLogs`
    /// does it too.
    pub(crate) fn stop(&mut self) {
        if let Some(flusher) = self.flusher.take() {
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

impl Builder {
    /// Registers one connection manager's `access_log` and opens the files it names (a file
    /// another set already opened is shared). An error names the file that cannot be opened.
    pub(crate) fn add(&mut self, logs: &[AccessLog]) -> io::Result<LogSet> {
        let mut loggers = Vec::with_capacity(logs.len());
        let mut needs = Needs::default();
        for log in logs {
            let sink = match self.sinks.iter().position(|s| s.sink == log.sink) {
                Some(i) => i,
                None => {
                    let out = match &log.sink {
                        AccessLogSink::File(path) => Output::File(open(path)?),
                        AccessLogSink::Stdout => Output::Stdout,
                        AccessLogSink::Stderr => Output::Stderr,
                    };
                    self.sinks.push(SinkWriter {
                        sink: log.sink.clone(),
                        out,
                        spares: vec![Vec::new(); self.workers],
                    });
                    self.sinks.len() - 1
                }
            };
            let format = &log.format;
            for name in format.request_headers() {
                if !needs.request_headers.iter().any(|n| n == name.as_bytes()) {
                    needs
                        .request_headers
                        .push(Bytes::copy_from_slice(name.as_bytes()));
                }
            }
            for name in format.response_headers() {
                if !needs.response_headers.iter().any(|n| n == name.as_bytes()) {
                    needs
                        .response_headers
                        .push(Bytes::copy_from_slice(name.as_bytes()));
                }
            }
            needs.upstream_local_address |= format.uses(|op| {
                matches!(
                    op,
                    Operator::UpstreamLocalAddress
                        | Operator::UpstreamLocalAddressWithoutPort
                        | Operator::UpstreamLocalPort
                )
            });
            loggers.push(Logger {
                format: format.clone(),
                sink,
            });
        }
        let id =
            u32::try_from(self.sets.len()).map_err(|_| io::Error::other("too many log sets"))?;
        self.sets.push(SetEntry { loggers, needs });
        Ok(LogSet(id))
    }

    /// Starts the flusher thread (none when no logger was registered).
    pub(crate) fn start(self) -> io::Result<AccessLogs> {
        let Builder {
            workers,
            flush_interval,
            sets,
            sinks,
        } = self;
        let shared = Arc::new(Shared {
            sets,
            buffers: sinks
                .iter()
                .map(|_| (0..workers).map(|_| Slot::default()).collect())
                .collect(),
            wake: Mutex::new(Wake::default()),
            cond: Condvar::new(),
            reopen: AtomicBool::new(false),
            stats: Arc::new(AccessLogStats::default()),
        });
        let flusher = if sinks.is_empty() {
            None
        } else {
            let flusher = Flusher {
                shared: Arc::clone(&shared),
                sinks,
                interval: flush_interval,
            };
            Some(
                std::thread::Builder::new()
                    .name("weir-access-log".to_owned())
                    .spawn(move || flusher.run())?,
            )
        };
        Ok(AccessLogs { shared, flusher })
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
    /// Whether `set` has no logger (the data path can skip building a record).
    pub(crate) fn is_empty(&self, set: LogSet) -> bool {
        self.shared.sets[set.0 as usize].loggers.is_empty()
    }

    /// What `set`'s formats read from a request.
    pub(crate) fn needs(&self, set: LogSet) -> &Needs {
        &self.shared.sets[set.0 as usize].needs
    }

    /// Formats `record` for every logger of `set` into this worker's buffers. Never blocks on
    /// I/O and allocates nothing once the buffers have grown.
    pub(crate) fn log(&self, set: LogSet, record: &LogRecord) {
        for logger in &self.shared.sets[set.0 as usize].loggers {
            let slot = &self.shared.buffers[logger.sink][self.worker];
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
        for (sink, slots) in self.sinks.iter_mut().zip(&self.shared.buffers) {
            let mut bytes = 0;
            for (spare, slot) in sink.spares.iter_mut().zip(slots) {
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
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::atomic::AtomicUsize;
    use std::time::UNIX_EPOCH;

    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        std::env::temp_dir().join(format!(
            "weir-access-log-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Relaxed)
        ))
    }

    fn file_log(path: &Path, format: &str) -> AccessLog {
        AccessLog {
            name: "test".to_owned(),
            sink: AccessLogSink::File(path.to_owned()),
            format: LogFormat::text(format, false).unwrap(),
        }
    }

    fn record(bytes_sent: u64) -> LogRecord {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        LogRecord {
            start: UNIX_EPOCH,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            protocol: "HTTP/1.1",
            response_code: 200,
            response_code_details: "",
            response_flags: "",
            bytes_received: 0,
            bytes_sent,
            duration: None,
            request_duration: None,
            response_duration: None,
            upstream_host: None,
            upstream_cluster: None,
            upstream_local: None,
            downstream_remote: addr,
            downstream_direct_remote: addr,
            downstream_local: addr,
            route_name: None,
            config_version: 1,
            tls: None,
            transport_failure: None,
        }
    }

    #[test]
    fn two_workers_lose_no_line() {
        let path = temp_path("two-workers.log");
        let mut builder = AccessLogs::builder(2, Duration::from_millis(10));
        let set = builder
            .add(&[file_log(
                &path,
                "%RESPONSE_CODE% %BYTES_SENT% %DOWNSTREAM_REMOTE_PORT%\n",
            )])
            .unwrap();
        let mut logs = builder.start().unwrap();
        const LINES: u64 = 20_000;
        let threads: Vec<_> = (0..2)
            .map(|w| {
                let worker = logs.worker(w);
                std::thread::spawn(move || {
                    for i in 0..LINES {
                        let mut r = record(i);
                        r.downstream_remote.set_port(w as u16);
                        worker.log(set, &r);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        logs.stop();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut seen = [vec![false; LINES as usize], vec![false; LINES as usize]];
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 3, "{line:?}");
            assert_eq!(fields[0], "200");
            let i: usize = fields[1].parse().unwrap();
            let w: usize = fields[2].parse().unwrap();
            assert!(!seen[w][i], "duplicate {line}");
            seen[w][i] = true;
        }
        assert!(seen.iter().flatten().all(|s| *s), "lines were lost");
        let admin = logs.admin();
        let stats = admin.stats();
        assert_eq!(stats.write_buffered.load(Relaxed), 2 * LINES);
        assert_eq!(stats.write_dropped.load(Relaxed), 0);
        assert_eq!(stats.write_failed.load(Relaxed), 0);
        assert!(stats.write_completed.load(Relaxed) >= 1);
        assert_eq!(logs.admin().buffered_bytes(), 0);
    }

    #[test]
    fn full_buffer_drops_and_counts() {
        let path = temp_path("full.log");
        // A flush interval long enough that nothing is written before stop().
        let mut builder = AccessLogs::builder(1, Duration::from_secs(3600));
        let set = builder.add(&[file_log(&path, "a line\n")]).unwrap();
        let mut logs = builder.start().unwrap();
        let worker = logs.worker(0);
        // Fill the buffer directly to the bound, as if the flusher were stuck on a slow disk.
        lock(&logs.shared.buffers[0][0].0)
            .data
            .resize(MAX_BUFFER, b'\n');
        for _ in 0..5 {
            worker.log(set, &record(0));
        }
        logs.stop();
        let admin = logs.admin();
        let stats = admin.stats();
        assert_eq!(stats.write_dropped.load(Relaxed), 5);
        assert_eq!(stats.write_buffered.load(Relaxed), 0);
        let written = std::fs::metadata(&path).unwrap().len();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(written, MAX_BUFFER as u64);
    }

    #[test]
    fn threshold_wakes_the_flusher_before_the_interval() {
        let path = temp_path("threshold.log");
        let mut builder = AccessLogs::builder(1, Duration::from_secs(3600));
        let line = format!("{}\n", "y".repeat(1023));
        let set = builder.add(&[file_log(&path, &line)]).unwrap();
        let mut logs = builder.start().unwrap();
        let worker = logs.worker(0);
        for _ in 0..(FLUSH_THRESHOLD / 1024) {
            worker.log(set, &record(0));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while logs.admin().stats().write_completed.load(Relaxed) == 0 {
            assert!(Instant::now() < deadline, "the flusher was not woken");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            FLUSH_THRESHOLD as u64
        );
        assert_eq!(logs.admin().stats().flushed_by_timer.load(Relaxed), 0);
        logs.stop();
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn timer_flushes_and_reopen_follows_a_rename() {
        let path = temp_path("rotate.log");
        let rotated = temp_path("rotate.log.1");
        let mut builder = AccessLogs::builder(1, Duration::from_millis(10));
        let set = builder.add(&[file_log(&path, "%BYTES_SENT%\n")]).unwrap();
        let mut logs = builder.start().unwrap();
        let worker = logs.worker(0);
        worker.log(set, &record(1));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() == 0 {
            assert!(Instant::now() < deadline, "the timer did not flush");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(logs.admin().stats().flushed_by_timer.load(Relaxed) >= 1);
        // logrotate: move the file away, then ask for a reopen.
        std::fs::rename(&path, &rotated).unwrap();
        logs.admin().reopen();
        while !path.exists() {
            assert!(Instant::now() < deadline, "the file was not reopened");
            std::thread::sleep(Duration::from_millis(1));
        }
        worker.log(set, &record(2));
        logs.stop();
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "1\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "2\n");
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(&rotated).unwrap();
    }

    #[test]
    fn sinks_are_shared_and_needs_are_merged() {
        let path = temp_path("shared.log");
        let mut builder = AccessLogs::builder(1, Duration::from_millis(10));
        let a = builder
            .add(&[file_log(&path, "a %REQ(:PATH)% %REQ(USER-AGENT)%\n")])
            .unwrap();
        let b = builder
            .add(&[
                file_log(&path, "b %REQ(user-agent)% %UPSTREAM_LOCAL_ADDRESS%\n"),
                file_log(&path, "c %RESP(CONTENT-TYPE)%\n"),
            ])
            .unwrap();
        let none = builder.add(&[]).unwrap();
        assert_eq!(builder.sinks.len(), 1);
        let mut logs = builder.start().unwrap();
        let worker = logs.worker(0);
        assert_eq!(
            worker.needs(a).request_headers,
            [
                Bytes::from_static(b":path"),
                Bytes::from_static(b"user-agent")
            ]
        );
        assert!(!worker.needs(a).upstream_local_address);
        assert_eq!(
            worker.needs(b).request_headers,
            [Bytes::from_static(b"user-agent")]
        );
        assert_eq!(
            worker.needs(b).response_headers,
            [Bytes::from_static(b"content-type")]
        );
        assert!(worker.needs(b).upstream_local_address);
        assert!(worker.is_empty(none) && !worker.is_empty(a));
        worker.log(a, &record(0));
        worker.log(b, &record(0));
        worker.log(none, &record(0));
        logs.stop();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "a - -\nb - -\nc -\n"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn unopenable_file_is_a_startup_error_naming_it() {
        let path = temp_path("no-such-dir").join("access.log");
        let mut builder = AccessLogs::builder(1, ENVOY_FLUSH_INTERVAL);
        let err = builder.add(&[file_log(&path, "x\n")]).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn no_logger_no_thread() {
        let mut builder = AccessLogs::builder(4, ENVOY_FLUSH_INTERVAL);
        let set = builder.add(&[]).unwrap();
        let mut logs = builder.start().unwrap();
        assert!(logs.flusher.is_none());
        logs.worker(3).log(set, &record(0));
        logs.stop();
    }
}
