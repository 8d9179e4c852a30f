//! The main thread's side: bind every worker's listeners, start the workers and the admin
//! listener, and drain or stop them.
//!
//! Binding happens here, before any worker starts, so an address in use is an error returned
//! by [`Server::start`] rather than a worker dying later. With port 0 the first worker's
//! socket picks the port and the others bind the same one (SO_REUSEPORT).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Poll, Waker};
use weir_config::Bootstrap;
use weir_flow::Flow;

use crate::admin::{AdminHandle, AdminInfo};
use crate::event::token::{Kind, fixed, token};
use crate::network::listener::bind;
use crate::recorder::Recorder;
use crate::snapshot::Snapshot;
use crate::stats::WorkerStats;
use crate::worker::{ListenerSlot, Worker};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads (`--concurrency`).
    pub concurrency: usize,
    /// How long a drain waits for in-flight requests before closing what is left.
    pub drain_time: Duration,
    /// The command line, for `/server_info`.
    pub command_line: Vec<String>,
    /// Overrides the config's `weir.flow_trace.mode` (the `--flow-trace` flag).
    pub flow_trace: Option<weir_config::FlowTraceMode>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            drain_time: Duration::from_secs(10),
            command_line: Vec::new(),
            flow_trace: None,
        }
    }
}

/// What the main thread tells a worker (through its waker).
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) drain: AtomicBool,
    pub(crate) stop: AtomicBool,
    pub(crate) drain_time: Duration,
    /// Requests for the worker's recent flows: how many, and where to send them.
    pub(crate) flow_queries: Mutex<Vec<(usize, mpsc::Sender<Vec<Flow>>)>>,
    /// Set (under the `flow_queries` lock) when the worker has exited: nobody is left to
    /// answer, so a query must not wait for it (nor leave its sender behind).
    pub(crate) exited: AtomicBool,
}

/// Asks every worker for its recent flows. Cheap to clone; the admin listener holds one.
#[derive(Clone)]
pub(crate) struct FlowSource {
    workers: Vec<(Arc<Control>, Arc<Waker>)>,
}

impl FlowSource {
    /// Up to `limit` recent flows from all workers, newest first.
    pub(crate) fn flows(&self, limit: usize) -> Vec<Flow> {
        let (tx, rx) = mpsc::channel();
        let mut asked = 0;
        for (control, waker) in &self.workers {
            let mut queries = control
                .flow_queries
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // An exited worker's waker still "wakes" (its eventfd outlives the loop), but no
            // one answers: asking it cost every query the whole deadline after a drain.
            if control.exited.load(Ordering::Acquire) {
                continue;
            }
            queries.push((limit, tx.clone()));
            drop(queries);
            if waker.wake().is_ok() {
                asked += 1;
            }
        }
        drop(tx);
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut flows = Vec::new();
        for _ in 0..asked {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(mut some) => flows.append(&mut some),
                Err(_) => break,
            }
        }
        flows.sort_by_key(|f| std::cmp::Reverse(f.end));
        flows.truncate(limit);
        flows
    }
}

struct WorkerHandle {
    thread: JoinHandle<()>,
    control: Arc<Control>,
    waker: Arc<Waker>,
}

/// A running weir: its workers, listeners and admin listener.
pub struct Server {
    workers: Vec<WorkerHandle>,
    stats: Vec<Arc<WorkerStats>>,
    listeners: Vec<(String, SocketAddr)>,
    admin: Option<AdminHandle>,
    draining: Arc<AtomicBool>,
    flow_source: FlowSource,
}

const WAKER: usize = 0;

impl Server {
    /// Binds everything and starts the workers.
    pub fn start(bootstrap: Bootstrap, options: Options) -> io::Result<Server> {
        let concurrency = options.concurrency.max(1);
        let mut flow_trace = bootstrap.weir.flow_trace;
        if let Some(mode) = options.flow_trace {
            flow_trace.mode = mode;
        }
        let epoch = crate::worker::clock();
        let snapshot = Arc::new(Snapshot::new(bootstrap));
        // Bind per worker, per listener; the first socket of a port-0 listener fixes the port.
        let mut bound: Vec<Vec<ListenerSlot>> = (0..concurrency).map(|_| Vec::new()).collect();
        let mut listeners = Vec::new();
        for runtime in &snapshot.listeners {
            let mut address = runtime.address;
            for slots in bound.iter_mut() {
                let socket = bind(address).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("listener {} on {address}: {e}", runtime.name),
                    )
                })?;
                address = socket.local_addr()?;
                slots.push(ListenerSlot {
                    socket: Some(socket),
                    address,
                    chain: runtime.select(address.port()),
                    buffer_limit: runtime.buffer_limit,
                });
            }
            tracing::info!(listener = %runtime.name, %address, "listening");
            listeners.push((runtime.name.clone(), address));
        }
        let draining = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        let mut stats = Vec::new();
        for (index, mut slots) in bound.into_iter().enumerate() {
            let poll = Poll::new()?;
            for (i, slot) in slots.iter_mut().enumerate() {
                if let Some(socket) = slot.socket.as_mut() {
                    poll.registry().register(
                        socket,
                        token(Kind::Listener, fixed(i)),
                        mio::Interest::READABLE,
                    )?;
                }
            }
            let waker = Arc::new(Waker::new(
                poll.registry(),
                token(Kind::Waker, fixed(WAKER)),
            )?);
            let control = Arc::new(Control {
                drain: AtomicBool::new(false),
                stop: AtomicBool::new(false),
                drain_time: options.drain_time,
                flow_queries: Mutex::new(Vec::new()),
                exited: AtomicBool::new(false),
            });
            let worker_stats = Arc::new(WorkerStats::default());
            stats.push(worker_stats.clone());
            let worker = Worker::new(
                index,
                poll,
                snapshot.clone(),
                slots,
                worker_stats,
                control.clone(),
                Recorder::new(flow_trace, index, epoch),
            );
            let thread = std::thread::Builder::new()
                .name(format!("weir:worker_{index}"))
                .spawn(move || worker.run())?;
            workers.push(WorkerHandle {
                thread,
                control,
                waker,
            });
        }
        let flow_source = FlowSource {
            workers: workers
                .iter()
                .map(|w| (w.control.clone(), w.waker.clone()))
                .collect(),
        };
        let admin = match &snapshot.bootstrap.admin {
            Some(admin) => Some(AdminHandle::start(
                admin.address,
                AdminInfo {
                    node: snapshot.bootstrap.node.clone(),
                    concurrency,
                    command_line: options.command_line.clone(),
                    draining: draining.clone(),
                    stats: stats.clone(),
                    flows: flow_source.clone(),
                },
            )?),
            None => None,
        };
        Ok(Server {
            workers,
            stats,
            listeners,
            admin,
            draining,
            flow_source,
        })
    }

    /// Each listener's name and bound address (with the real port when the config said 0).
    pub fn listener_addresses(&self) -> &[(String, SocketAddr)] {
        &self.listeners
    }

    /// The admin listener's bound address.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.address())
    }

    /// Up to `limit` recently completed flows (requests the flow recorder kept), newest first.
    pub fn flows(&self, limit: usize) -> Vec<Flow> {
        self.flow_source.flows(limit)
    }

    /// Per-worker counters.
    pub fn stats(&self) -> &[Arc<WorkerStats>] {
        &self.stats
    }

    /// Starts a graceful drain: workers stop accepting, finish in-flight requests with
    /// `connection: close`, and exit when their connections are gone or the drain time is up.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        for w in &self.workers {
            w.control.drain.store(true, Ordering::Release);
            let _ = w.waker.wake();
        }
    }

    /// Waits for every worker to exit (after a drain), then stops the admin listener.
    pub fn wait(self) {
        for w in self.workers {
            let _ = w.thread.join();
        }
        if let Some(admin) = self.admin {
            admin.stop();
        }
    }

    /// Stops at once: workers exit at their next wake-up, dropping every connection.
    pub fn stop(self) {
        for w in &self.workers {
            w.control.stop.store(true, Ordering::Release);
            let _ = w.waker.wake();
        }
        self.wait();
    }
}
