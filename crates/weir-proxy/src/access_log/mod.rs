//! Envoy's HTTP access logs: the file, stdout and stderr loggers of each connection manager's
//! `access_log`, with Envoy's formats (`weir_config` compiles them when the config loads).
//!
//! Two halves:
//! - [`format`]: sans-IO. A [`LogRecord`] (what happened to one request) rendered through a
//!   compiled `weir_config::LogFormat` into a byte buffer, exactly as Envoy would render it.
//! - [`writer`]: the I/O. Per-(sink, worker) buffers that workers format into without blocking,
//!   and one flusher thread for the whole server that writes them out.
//!
//! # How the server uses it
//!
//! ```text
//! // startup (main thread), after the config is loaded:
//! let mut logs = AccessLogs::new(workers, ENVOY_FLUSH_INTERVAL);
//! for each connection manager `hcm` (at startup, and in each chain a reload compiles):
//!     let set: LogSet = logs.admin().register(&hcm.access_log)?;  // opens new files (an
//!     // error names the path) and starts the flusher with the first; keep `set` with the
//!     // filter chain's runtime state
//! // give worker i `logs.worker(i)`: a WorkerLogs (Send); it calls `follow()` as it
//! // follows a reload, to take the sets the reload registered
//!
//! // data path (worker i), when a stream ends:
//! if !worker_logs.is_empty(set) {
//!     let needs = worker_logs.needs(set);   // request_headers, response_headers,
//!                                           // upstream_local_address: collect only these
//!     worker_logs.log(set, &record);        // formats into this worker's buffers; no I/O
//! }
//!
//! // admin: logs.admin() → stats() (filesystem.* counters), buffered_bytes(), reopen()
//! // shutdown, after the workers have stopped: logs.stop() (flushes everything, joins)
//! ```
//!
//! `format::rfc3339` renders a `SystemTime` the way `%START_TIME%` does, for other timestamps.

pub(crate) mod format;
pub(crate) mod writer;

pub(crate) use format::LogRecord;
pub(crate) use writer::{AccessLogs, ENVOY_FLUSH_INTERVAL, LogSet, LogsAdmin, WorkerLogs};
