//! The main thread's side: bind every worker's listeners, start the workers, the admin
//! listener and the stats flush thread, and drain or stop them.
//!
//! Binding happens here, before any worker starts, so an address in use is an error returned
//! by [`Server::start`] rather than a worker dying later. With port 0 the first worker's
//! socket picks the port and the others bind the same one (SO_REUSEPORT).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Poll, Waker};
use weir_config::Bootstrap;
use weir_flow::Flow;

use crate::access_log::{AccessLogs, ENVOY_FLUSH_INTERVAL, LogsAdmin};
use crate::admin::{AdminHandle, AdminInfo};
use crate::event::token::{Kind, fixed, token};
use crate::hot_restart::{Handover, Predecessor, Reach, Sockets};
use crate::network::Network;
use crate::network::listener::{adopt_workers, bind_workers, share};
use crate::network::secrets::SecretWatcher;
use crate::recorder::Recorder;
use crate::reload::ConfigState;
use crate::runtime::RuntimeLoader;
use crate::snapshot::Snapshot;
use crate::stats::flusher::{Flusher, Sources};
use crate::stats::{Book, Layout, ServerGauges, Stat, Value, WorkerStats};
use crate::upstream::dns::DnsClusters;
use crate::upstream::host_set::ClusterHosts;
use crate::upstream::probe_flows::ProbeFlows;
use crate::upstream::threads::HostThreads;
use crate::why::FailureRecord;
use crate::worker::{ListenerSlot, Reporting, Worker};

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
    /// Reads and sets the log level for `POST /logging` (the binary owns the logger).
    pub log_control: Option<LogControl>,
    /// How often access log files are written at the latest (Envoy's
    /// `--file-flush-interval-msec`, default 10 s); a worker's 64 KiB of lines go sooner.
    pub file_flush_interval: Duration,
    /// The config file (`-c`), which a reload reads again (`None`: an embedded config).
    pub config_path: Option<std::path::PathBuf>,
    /// `--hot-restart PATH`: take the listening sockets of the weir listening on PATH (it
    /// then drains and exits), and listen there for the next (`hot_restart.rs`).
    pub hot_restart: Option<std::path::PathBuf>,
}

/// Sets the log level (`Some("debug")`) or only reports it (`None`); answers with the level
/// now in force, or why the new one was refused.
pub type SetLogLevel = dyn Fn(Option<&str>) -> Result<String, String> + Send + Sync;

/// The binary's log level, as `POST /logging` reads and changes it.
#[derive(Clone)]
pub struct LogControl(pub Arc<SetLogLevel>);

impl std::fmt::Debug for LogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogControl")
    }
}

/// Why the process should end, as [`Server::wait_exit`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A signal (SIGTERM, SIGINT): drain, then exit.
    Signal(i32),
    /// `POST /quitquitquit`: exit now.
    Quit,
    /// A new weir took the listening sockets over (`--hot-restart`): drain, then exit.
    HandedOver,
}

/// What the whole server shares: its state as the admin listener reports and changes it.
#[derive(Debug)]
pub(crate) struct ServerState {
    pub(crate) started: Instant,
    /// The config in force (reloads replace it), its version and when it was applied.
    pub(crate) config: ConfigState,
    pub(crate) concurrency: usize,
    /// A drain (SIGTERM) is under way.
    pub(crate) draining: AtomicBool,
    /// `POST /healthcheck/fail`: Envoy's "health check failed" state, which reports DRAINING
    /// and makes every response close its connection, until `/healthcheck/ok`.
    pub(crate) health_check_failed: AtomicBool,
    /// The access logs' counters and controls.
    pub(crate) access_logs: LogsAdmin,
    /// `overload_manager`'s global limit on downstream connections, and the count it limits
    /// (kept only when there is a limit: it is the one counter workers share).
    pub(crate) max_connections: Option<u64>,
    pub(crate) connections: AtomicU64,
    /// `layered_runtime`, and the admin layer `/runtime_modify` changes.
    pub(crate) runtime: RuntimeLoader,
    /// Every cluster's current hosts.
    pub(crate) hosts: Arc<ClusterHosts>,
    /// The stats' layout and each worker's values, as readers see them.
    pub(crate) stats: Book,
    /// The listeners in force: names and bound addresses (a reload adds and removes).
    pub(crate) listeners: Mutex<Vec<(String, SocketAddr)>>,
    /// `--drain-time-s`: how long a drain (shutdown, a graceful `/drain_listeners`, a removed
    /// listener) waits for connections.
    pub(crate) drain_time: Duration,
    /// With `--hot-restart`: duplicates of the listeners' sockets, for a weir that takes
    /// over (reloads add and remove them; a drain drops them, so its sockets really close).
    pub(crate) handover: Option<Arc<Mutex<Vec<Sockets>>>>,
    /// The counters of the weir this one took over from (`--hot-restart`).
    pub(crate) carried: std::sync::OnceLock<Arc<std::collections::HashMap<String, u64>>>,
}

impl ServerState {
    /// Takes a place for a new downstream connection; false when the global limit is reached.
    pub(crate) fn connection_opened(&self) -> bool {
        let Some(max) = self.max_connections else {
            return true;
        };
        if self.connections.fetch_add(1, Ordering::AcqRel) >= max {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Gives back a downstream connection's place.
    pub(crate) fn connection_closed(&self) {
        if self.max_connections.is_some() {
            self.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Envoy's `server.state`: 0 LIVE, 1 DRAINING.
    pub(crate) fn live(&self) -> bool {
        !self.draining.load(Ordering::Acquire) && !self.health_check_failed.load(Ordering::Acquire)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            drain_time: Duration::from_secs(10),
            command_line: Vec::new(),
            flow_trace: None,
            log_control: None,
            file_flush_interval: ENVOY_FLUSH_INTERVAL,
            config_path: None,
            hot_restart: None,
        }
    }
}

/// What the main thread tells a worker (through its waker).
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) drain: AtomicBool,
    /// The drain leaves idle connections open until their next request (answered with
    /// `connection: close`) or the drain time (a hand-over: see [`Server::drain_gently`]).
    pub(crate) gently: AtomicBool,
    pub(crate) stop: AtomicBool,
    /// What the admin asks of the worker's recent past: flows, failures.
    pub(crate) queries: Mutex<Vec<Query>>,
    /// Set (under the `queries` lock) when the worker has exited: nobody is left to
    /// answer, so a query must not wait for it (nor leave its sender behind).
    pub(crate) exited: AtomicBool,
    /// `POST /drain_listeners`: close the listener sockets now (a [`ListenerScope`]: which).
    pub(crate) stop_listeners: AtomicU8,
    /// `POST /drain_listeners?graceful`: close every connection of the listeners in scope
    /// after its response for the drain time, then close their sockets (a [`ListenerScope`]).
    pub(crate) drain_listeners: AtomicU8,
    /// The server's shared state (health check failed, …).
    pub(crate) server: Arc<ServerState>,
    /// Listeners a reload added, bound for this worker: it takes them when it follows the
    /// reload.
    pub(crate) arrivals: Mutex<Vec<ListenerSlot>>,
}

impl Control {
    pub(crate) fn new(server: Arc<ServerState>) -> Arc<Control> {
        Arc::new(Control {
            drain: AtomicBool::new(false),
            gently: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            queries: Mutex::new(Vec::new()),
            exited: AtomicBool::new(false),
            stop_listeners: AtomicU8::new(ListenerScope::None as u8),
            drain_listeners: AtomicU8::new(ListenerScope::None as u8),
            server,
            arrivals: Mutex::new(Vec::new()),
        })
    }
}

/// A question for a worker about its recent past, and where to send the answer.
#[derive(Debug)]
pub(crate) enum Query {
    /// Its last flows, at most this many, newest first.
    Flows(usize, mpsc::Sender<Vec<Flow>>),
    /// Its last failed requests, newest first.
    Failures(mpsc::Sender<Vec<FailureRecord>>),
}

/// Which listeners `/drain_listeners` acts on; a wider scope includes a narrower one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ListenerScope {
    None = 0,
    /// `?inboundonly`: the listeners whose `traffic_direction` is INBOUND.
    Inbound = 1,
    All = 2,
}

impl ListenerScope {
    /// The scope stored in a [`Control`] field.
    pub(crate) fn load(cell: &AtomicU8) -> ListenerScope {
        match cell.load(Ordering::Acquire) {
            0 => ListenerScope::None,
            1 => ListenerScope::Inbound,
            _ => ListenerScope::All,
        }
    }

    /// Whether a listener (`inbound`: its `traffic_direction` is INBOUND) is in scope.
    pub(crate) fn covers(self, inbound: bool) -> bool {
        match self {
            ListenerScope::None => false,
            ListenerScope::Inbound => inbound,
            ListenerScope::All => true,
        }
    }
}

/// Each worker's listener slots, and each listener's name and bound address.
type Bound = (Vec<Vec<ListenerSlot>>, Vec<(String, SocketAddr)>);

/// Binds every listener once per worker (SO_REUSEPORT: the kernel spreads accepts); the first
/// socket of a port-0 listener fixes the port for the others. A listener the weir handing
/// over had (same name and address) takes its sockets instead.
fn bind_listeners(
    snapshot: &Snapshot,
    concurrency: usize,
    mut predecessor: Option<&mut Predecessor>,
) -> io::Result<Bound> {
    let mut bound: Vec<Vec<ListenerSlot>> = (0..concurrency).map(|_| Vec::new()).collect();
    let mut listeners = Vec::new();
    for runtime in &snapshot.listeners {
        let inherited =
            (predecessor.as_deref_mut()).and_then(|p| p.take(&runtime.name, runtime.address));
        let (address, slots) = match inherited {
            Some(fds) => adopt_workers(runtime, fds, concurrency)?,
            None => bind_workers(runtime, concurrency)?,
        };
        for (worker, slot) in bound.iter_mut().zip(slots) {
            worker.push(slot);
        }
        listeners.push((runtime.name.clone(), address));
    }
    Ok((bound, listeners))
}

/// Every counter now, by name (what a weir that takes over carries on).
fn counters_of(state: &ServerState) -> std::collections::HashMap<String, u64> {
    let pages = state.stats.read();
    (crate::stats::collect(&pages.layout, &pages.workers, &server_gauges(state)).into_iter())
        .filter_map(|s| match s.value {
            Value::Counter(v) => Some((s.name, v)),
            _ => None,
        })
        .collect()
}

/// Duplicates of every listener's sockets (`bound[worker][listener]`), for a weir that takes
/// over.
fn shared_sockets(
    bound: &[Vec<ListenerSlot>],
    listeners: &[(String, SocketAddr)],
) -> io::Result<Vec<Sockets>> {
    (listeners.iter().enumerate())
        .map(|(i, (name, _))| share(name, bound.iter().filter_map(|w| w.get(i))))
        .collect()
}

/// The workers as other threads reach them: through each one's [`Control`] and waker. Cheap
/// to clone; the admin listener holds one.
#[derive(Clone)]
pub(crate) struct Workers {
    workers: Vec<(Arc<Control>, Arc<Waker>)>,
    /// The health checker's probes, recorded as flows of their own.
    probes: Arc<ProbeFlows>,
}

impl Workers {
    /// Sets something on every worker's control and wakes it to act on it.
    pub(crate) fn tell(&self, set: impl Fn(&Control)) {
        for (control, waker) in &self.workers {
            set(control);
            let _ = waker.wake();
        }
    }

    /// Where the health checker's probes are recorded.
    pub(crate) fn probes(&self) -> Arc<ProbeFlows> {
        self.probes.clone()
    }

    /// Gives each worker its sockets of listeners a reload added (one list per worker, in
    /// worker order); they take them when they follow the reload.
    pub(crate) fn hand(&self, slots: Vec<Vec<ListenerSlot>>) {
        for ((control, _), slots) in self.workers.iter().zip(slots) {
            let mut arrivals = control.arrivals.lock().unwrap_or_else(|e| e.into_inner());
            arrivals.extend(slots);
        }
    }

    /// Up to `limit` recent flows from all workers, newest first.
    pub(crate) fn flows(&self, limit: usize) -> Vec<Flow> {
        let mut flows = self.ask(|tx| Query::Flows(limit, tx));
        flows.extend(self.probes.recent(limit));
        flows.sort_by_key(|f| std::cmp::Reverse(f.end));
        flows.truncate(limit);
        flows
    }

    /// Every worker's recent failed requests, newest first.
    pub(crate) fn failures(&self) -> Vec<FailureRecord> {
        let mut failures = self.ask(Query::Failures);
        failures.sort_by_key(|f| std::cmp::Reverse(f.at));
        failures
    }

    /// Asks every running worker, and gathers what they answer within two seconds.
    fn ask<T>(&self, query: impl Fn(mpsc::Sender<Vec<T>>) -> Query) -> Vec<T> {
        let (tx, rx) = mpsc::channel();
        let mut asked = 0;
        for (control, waker) in &self.workers {
            let mut queries = control.queries.lock().unwrap_or_else(|e| e.into_inner());
            // An exited worker's waker still "wakes" (its eventfd outlives the loop), but no
            // one answers: asking it cost every query the whole deadline after a drain.
            if control.exited.load(Ordering::Acquire) {
                continue;
            }
            queries.push(query(tx.clone()));
            drop(queries);
            if waker.wake().is_ok() {
                asked += 1;
            }
        }
        drop(tx);
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut all = Vec::new();
        for _ in 0..asked {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(mut some) => all.append(&mut some),
                Err(_) => break,
            }
        }
        all
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
    /// Shared with the hand-over thread, which stops it for a weir that takes over.
    admin: Arc<Mutex<Option<AdminHandle>>>,
    /// With `--hot-restart`: waits for a weir that takes over.
    handover: Mutex<Option<Handover>>,
    /// Sends the stats to `stats_sinks` (none without sinks).
    flusher: Option<Flusher>,
    /// Re-reads certificates that SDS files give when they change.
    secrets: Option<SecretWatcher>,
    state: Arc<ServerState>,
    handles: Workers,
    exit: (mpsc::Sender<Exit>, mpsc::Receiver<Exit>),
    access_logs: AccessLogs,
}

const WAKER: usize = 0;

/// One worker per `bound` slot set: its poll with the listeners registered, its waker and
/// stats (those of the book), on a thread of its own.
fn spawn_workers(
    bound: Vec<Vec<ListenerSlot>>,
    snapshot: &Arc<Snapshot>,
    state: &Arc<ServerState>,
    (flow_trace, epoch): (weir_config::FlowTrace, Instant),
    access_logs: &AccessLogs,
) -> io::Result<Vec<WorkerHandle>> {
    let mut workers = Vec::new();
    let stats = state.stats.read().workers;
    for ((index, mut slots), worker_stats) in bound.into_iter().enumerate().zip(stats) {
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
        let control = Control::new(state.clone());
        let worker = Worker::new(
            index,
            Network::Sockets(poll),
            snapshot.clone(),
            slots,
            control.clone(),
            Reporting {
                stats: worker_stats,
                recorder: Recorder::new(flow_trace, index, epoch),
                logs: access_logs.worker(index),
            },
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
    Ok(workers)
}

impl Server {
    /// Binds everything and starts the workers.
    pub fn start(bootstrap: Bootstrap, options: Options) -> io::Result<Server> {
        crate::memory::fix_mmap_threshold();
        let concurrency = options.concurrency.max(1);
        let mut flow_trace = bootstrap.weir.flow_trace;
        if let Some(mode) = options.flow_trace {
            flow_trace.mode = mode;
        }
        let epoch = crate::worker::clock();
        let access_logs = AccessLogs::new(concurrency, options.file_flush_interval);
        let snapshot = Arc::new(Snapshot::new(bootstrap, &access_logs.admin())?);
        let mut predecessor = match &options.hot_restart {
            Some(path) => crate::hot_restart::take_over(path)?,
            None => None,
        };
        let (bound, listeners) = bind_listeners(&snapshot, concurrency, predecessor.as_mut())?;
        let handover = match options.hot_restart {
            Some(_) => Some(Arc::new(Mutex::new(shared_sockets(&bound, &listeners)?))),
            None => None,
        };
        let hosts = Arc::new(ClusterHosts::of(&snapshot.bootstrap.clusters, concurrency));
        // DNS clusters get their first hosts before the workers start (Envoy warms its
        // clusters before its listeners take traffic).
        let mut dns = DnsClusters::of(snapshot.clusters.all.iter().map(|c| (c.number, &c.config)))?;
        if let Some(dns) = &mut dns {
            dns.refresh_due(&hosts);
        }
        let layout = Layout::of(
            &snapshot,
            listeners.iter().map(|(_, a)| *a).collect(),
            hosts.clone(),
        );
        let worker_stats = (0..concurrency)
            .map(|_| Arc::new(WorkerStats::new(&layout)))
            .collect();
        let state = Arc::new(ServerState {
            started: epoch,
            config: ConfigState::new(options.config_path.clone(), snapshot.clone()),
            concurrency,
            draining: AtomicBool::new(false),
            health_check_failed: AtomicBool::new(false),
            access_logs: access_logs.admin(),
            max_connections: snapshot
                .bootstrap
                .overload
                .max_active_downstream_connections,
            connections: AtomicU64::new(0),
            runtime: crate::runtime::RuntimeLoader::new(&snapshot.bootstrap.runtime),
            hosts,
            stats: Book::new(layout, worker_stats),
            listeners: Mutex::new(listeners),
            drain_time: options.drain_time,
            handover,
            carried: std::sync::OnceLock::new(),
        });
        let workers = spawn_workers(bound, &snapshot, &state, (flow_trace, epoch), &access_logs)?;
        let probe_flows = Arc::new(ProbeFlows::new(flow_trace, epoch));
        let handles = Workers {
            workers: workers
                .iter()
                .map(|w| (w.control.clone(), w.waker.clone()))
                .collect(),
            probes: probe_flows.clone(),
        };
        let (exit_tx, exit_rx) = mpsc::channel();
        if let Some(predecessor) = predecessor.as_mut() {
            predecessor.release_admin()?;
        }
        let admin = match &snapshot.bootstrap.admin {
            Some(admin) => Some(AdminHandle::start(
                admin.address,
                AdminInfo {
                    command_line: options.command_line.clone(),
                    state: state.clone(),
                    workers: handles.clone(),
                    exit: exit_tx.clone(),
                    log_control: options.log_control.clone(),
                    flow_trace,
                },
            )?),
            None => None,
        };
        let flusher = Flusher::start(
            &snapshot.bootstrap.stats_sinks,
            snapshot.bootstrap.stats_flush_interval,
            Sources {
                state: state.clone(),
            },
        )?;
        let secrets = SecretWatcher::start(state.clone())?;
        // DNS refreshes, outlier sweeps, health checks and ORIGINAL_DST cleanups; a reload
        // that adds clusters starts theirs beside these.
        let threads = HostThreads::start(&snapshot.clusters.all, &state, &handles, dns)?;
        state.config.keep_threads(threads);
        let admin = Arc::new(Mutex::new(admin));
        // Everything runs: the weir handing over drains, and this one waits for the next.
        if let Some(mut predecessor) = predecessor {
            // Its counters go on here (what it counts while it drains is not carried).
            match predecessor.counters() {
                Ok(counters) => {
                    let _ = state.carried.set(Arc::new(counters));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "hot restart: the counters of the weir before are not carried")
                }
            }
            predecessor.drain()?;
        }
        let handover = match (&options.hot_restart, &state.handover) {
            (Some(path), Some(sockets)) => {
                let admin = admin.clone();
                let counting = state.clone();
                let reach = Reach {
                    counters: Box::new(move || counters_of(&counting)),
                    sockets: sockets.clone(),
                    stop_admin: Box::new(move || {
                        let handle = admin.lock().unwrap_or_else(|e| e.into_inner()).take();
                        if let Some(handle) = handle {
                            handle.stop();
                        }
                    }),
                    exit: exit_tx.clone(),
                };
                // The weir before is draining already: failing here would leave no weir.
                match Handover::start(path.clone(), reach) {
                    Ok(handover) => Some(handover),
                    Err(e) => {
                        tracing::error!(error = %e, "hot restart: cannot wait for the next weir; serving without");
                        None
                    }
                }
            }
            _ => None,
        };
        Ok(Server {
            workers,
            admin,
            handover: Mutex::new(handover),
            flusher,
            secrets,
            state,
            handles,
            exit: (exit_tx, exit_rx),
            access_logs,
        })
    }

    /// What reloads the config from another thread (the binary's `SIGHUP`).
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle {
            state: self.state.clone(),
            workers: self.handles.clone(),
        }
    }

    /// Each listener's name and bound address (with the real port when the config said 0).
    pub fn listener_addresses(&self) -> Vec<(String, SocketAddr)> {
        (self.state.listeners.lock())
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The admin listener's bound address.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        let admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        admin.as_ref().map(|a| a.address())
    }

    /// Up to `limit` recently completed flows (requests the flow recorder kept), newest first.
    pub fn flows(&self, limit: usize) -> Vec<Flow> {
        self.handles.flows(limit)
    }

    /// Each worker's own stats, unmerged (for tests and tools that look at one worker).
    pub fn worker_stats(&self) -> Vec<Arc<WorkerStats>> {
        self.state.stats.read().workers
    }

    /// Worker threads.
    pub fn concurrency(&self) -> usize {
        self.state.concurrency
    }

    /// Every stat, merged over workers and sorted by name (what `/stats` shows).
    pub fn stats(&self) -> Vec<Stat> {
        let pages = self.state.stats.read();
        crate::stats::collect(&pages.layout, &pages.workers, &server_gauges(&self.state))
    }

    /// A counter's or gauge's merged value by its Envoy name
    /// (`cluster.backend.upstream_cx_total`); `None` for an unknown name or a histogram.
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.stats()
            .into_iter()
            .find(|s| s.name == name)
            .and_then(|s| match s.value {
                Value::Counter(v) => Some(v),
                Value::Gauge(v) => u64::try_from(v).ok(),
                Value::Histogram(_) => None,
            })
    }

    /// Where a signal handler (or anything else) asks the server to end; see [`Server::wait_exit`].
    pub fn exit_sender(&self) -> mpsc::Sender<Exit> {
        self.exit.0.clone()
    }

    /// Blocks until a signal arrives (through [`Server::exit_sender`]) or the admin listener is
    /// told `POST /quitquitquit`.
    pub fn wait_exit(&self) -> Exit {
        // The server holds a sender itself, so the channel never disconnects.
        self.exit.1.recv().unwrap_or(Exit::Quit)
    }

    /// Starts a graceful drain: workers stop accepting, finish in-flight requests with
    /// `connection: close`, and exit when their connections are gone or the drain time is up.
    pub fn drain(&self) {
        // No weir takes over a draining one, and its sockets close for good.
        self.stop_handover();
        if let Some(sockets) = &self.state.handover {
            sockets.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        self.state.draining.store(true, Ordering::Release);
        self.handles
            .tell(|c| c.drain.store(true, Ordering::Release));
    }

    /// Stops waiting for a weir to take over (`--hot-restart`).
    fn stop_handover(&self) {
        let handover = self
            .handover
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handover) = handover {
            handover.stop();
        }
    }

    /// A drain after a new weir took the listening sockets over: as [`Server::drain`], but
    /// an idle connection is not closed at once (its client could be sending a request
    /// that moment): it closes after its next response, or at the drain time.
    pub fn drain_gently(&self) {
        self.handles
            .tell(|c| c.gently.store(true, Ordering::Release));
        self.drain();
    }

    /// Waits for every worker to exit (after a drain), then stops the admin listener.
    pub fn wait(mut self) {
        for w in self.workers.drain(..) {
            let _ = w.thread.join();
        }
        self.stop_handover();
        let admin = self.admin.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(admin) = admin {
            admin.stop();
        }
        if let Some(secrets) = self.secrets.take() {
            secrets.stop();
        }
        for threads in self.state.config.take_threads() {
            threads.stop();
        }
        if let Some(flusher) = self.flusher.take() {
            flusher.stop();
        }
        // The workers have stopped logging: write out what they left.
        self.access_logs.stop();
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

/// Reloads a running server's config (see [`Server::reload_handle`]).
#[derive(Clone)]
pub struct ReloadHandle {
    state: Arc<ServerState>,
    workers: Workers,
}

impl ReloadHandle {
    /// Reads the config file again and applies what changed; the answer says what was
    /// applied, or why nothing was (it is logged too).
    pub fn reload(&self) -> Result<String, String> {
        crate::reload::run(&self.state, &self.workers)
            .map(|a| a.text())
            .map_err(|r| r.text())
    }
}

/// The `server.*` gauges' inputs.
pub(crate) fn server_gauges(state: &ServerState) -> ServerGauges {
    ServerGauges {
        live: state.live(),
        state: u8::from(!state.live()),
        uptime_s: crate::worker::clock()
            .saturating_duration_since(state.started)
            .as_secs(),
        concurrency: state.concurrency,
        access_logs: state.access_logs.clone(),
        reloads: state.config.counts(),
        carried: state.carried.get().cloned(),
    }
}
