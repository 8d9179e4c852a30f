//! A worker on an in-memory network and a virtual clock: the proxy's own handlers, codecs,
//! router, pools and timers, with clients and origins the test drives byte by byte, and time
//! that moves only when the test says. Timeouts, retries with back-off, pipelining and
//! back-pressure are tested without sockets or sleeps (quinn-proto's `Pair` is the model).
//!
//! ```text
//!   test ── Peer ══ pipe ══ End ─ Connection ─ Worker ─ Connection ─ End ══ pipe ══ Peer ── test
//!          (client)                 (the proxy under test)                       (origin)
//! ```

#[cfg(test)]
mod breaker_scenarios;
#[cfg(test)]
mod cluster_reload_scenarios;
#[cfg(test)]
mod filter_scenarios;
#[cfg(test)]
mod header_scenarios;
#[cfg(test)]
mod internal_scenarios;
#[cfg(test)]
mod key_case_scenarios;
#[cfg(test)]
mod listener_filter_scenarios;
pub(crate) mod pipe;
#[cfg(test)]
mod reload_scenarios;
#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod stream_scenarios;
#[cfg(test)]
mod tunnel_scenarios;
#[cfg(test)]
mod why_scenarios;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use crate::access_log::AccessLogs;
use crate::network::Network;
use crate::recorder::Recorder;
use crate::server::{Control, ServerState};
use crate::snapshot::Snapshot;
use crate::stats::{Layout, ServerGauges, Value, WorkerStats, collect};
use crate::upstream::host_set::ClusterHosts;
use crate::worker::{ListenerSlot, Reporting, Worker};

pub(crate) use pipe::{Listening, MemoryNet, Peer};

/// A bootstrap with one listener, `hcm` added to its connection manager (indented 10
/// spaces), `filters` before its router (list entries indented 10), one virtual host `*` whose
/// last route is `route` (to cluster `backend`; `routes` before it, indented 14), and `backend`
/// on `hosts`.
pub(crate) fn bootstrap(hcm: &str, filters: &str, route: &str, hosts: &[&str]) -> String {
    bootstrap_with_routes(hcm, filters, "", route, hosts)
}

/// A filter chain (a `filter_chains` entry, indented for a listener) named `name`, with
/// `matching` (a `filter_chain_match` line, or nothing) and a connection manager of stat prefix
/// `prefix` that answers every request 200 with `answer`.
pub(crate) fn answering_chain(name: &str, matching: &str, prefix: &str, answer: &str) -> String {
    format!(
        r#"    - name: {name}
{matching}      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {prefix}
          http_protocol_options: {{ accept_http_10: true }}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                direct_response: {{ status: 200, body: {{ inline_string: {answer} }} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
    )
}

/// `line` indented as a field of [`bootstrap`]'s connection manager.
pub(crate) fn hcm(line: &str) -> String {
    format!("          {line}")
}

/// The status of the first response in `text`.
pub(crate) fn status(text: &str) -> u16 {
    text.get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no response in {text:?}"))
}

/// [`bootstrap`] with more routes before the last.
pub(crate) fn bootstrap_with_routes(
    hcm: &str,
    filters: &str,
    routes: &str,
    route: &str,
    hosts: &[&str],
) -> String {
    let endpoints: String = hosts
        .iter()
        .map(|h| {
            let (ip, port) = h.split_once(':').expect("host:port");
            format!(
                "          - endpoint: {{ address: {{ socket_address: {{ address: {ip}, port_value: {port} }} }} }}\n"
            )
        })
        .collect();
    format!(
        r#"static_resources:
  listeners:
  - name: test
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: test
{hcm}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
{routes}
              - match: {{ prefix: / }}
                route: {{ cluster: backend{route} }}
          http_filters:
{filters}
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
  - name: backend
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
{endpoints}"#
    )
}

/// Most rounds one `settle` runs before it calls the worker stuck.
const MAX_ROUNDS: usize = 10_000;

/// See the module documentation.
pub(crate) struct Harness {
    pub(crate) worker: Worker,
    /// Keeps the access log flusher alive while the worker logs.
    logs: AccessLogs,
}

impl Harness {
    /// A worker running `yaml` (an Envoy bootstrap). Its listeners are not bound: clients
    /// arrive through [`Harness::client`]. Every cluster host listens (connects succeed)
    /// unless the test says otherwise with [`Harness::listen`].
    pub(crate) fn new(yaml: &str) -> Harness {
        let bootstrap = weir_config::parse(yaml).expect("a valid config");
        let logs = AccessLogs::new(1, Duration::from_secs(1));
        let snapshot = Arc::new(Snapshot::new(bootstrap, &logs.admin()).expect("a snapshot"));
        let listeners: Vec<ListenerSlot> = snapshot
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| ListenerSlot {
                socket: None,
                stats: i,
                address: l.address,
                runtime: l.clone(),
                buffer_limit: l.buffer_limit,
                inbound: l.inbound,
                removed: false,
            })
            .collect();
        let hosts = Arc::new(ClusterHosts::of(&snapshot.bootstrap.clusters, 1));
        let layout = Layout::of(
            &snapshot,
            listeners.iter().map(|l| l.address).collect(),
            hosts.clone(),
        );
        let stats = Arc::new(WorkerStats::new(&layout));
        let epoch = Instant::now();
        let state = Arc::new(ServerState {
            started: epoch,
            config: crate::reload::ConfigState::new(None, snapshot.clone()),
            concurrency: 1,
            draining: AtomicBool::new(false),
            health_check_failed: AtomicBool::new(false),
            access_logs: logs.admin(),
            max_connections: snapshot
                .bootstrap
                .overload
                .max_active_downstream_connections,
            connections: AtomicU64::new(0),
            runtime: crate::runtime::RuntimeLoader::new(&snapshot.bootstrap.runtime),
            hosts,
            stats: crate::stats::Book::new(layout, vec![stats.clone()]),
            listeners: std::sync::Mutex::new(
                (listeners.iter())
                    .map(|l| (l.runtime.name.clone(), l.address))
                    .collect(),
            ),
            drain_time: Duration::from_secs(5),
            handover: None,
            carried: std::sync::OnceLock::new(),
        });
        let control = Control::new(state);
        let mut net = MemoryNet::default();
        for cluster in &snapshot.bootstrap.clusters {
            for endpoint in &cluster.endpoints {
                net.listen(endpoint.address, Listening::Accept);
            }
        }
        let flow_trace = snapshot.bootstrap.weir.flow_trace;
        let reporting = Reporting {
            stats,
            recorder: Recorder::new(flow_trace, 0, epoch),
            logs: logs.worker(0),
        };
        let mut worker = Worker::new(
            0,
            Network::Memory(net),
            snapshot,
            listeners,
            control,
            reporting,
        );
        // Back-off delays and weighted picks repeat from run to run.
        worker.rng = fastrand::Rng::with_seed(7);
        Harness { worker, logs }
    }

    fn net(&mut self) -> &mut MemoryNet {
        match &mut self.worker.net {
            Network::Memory(net) => net,
            Network::Sockets(_) => unreachable!("a harness worker is on the memory network"),
        }
    }

    /// What listens at `address` from now on (`None`: nothing; connects are refused).
    pub(crate) fn listen(&mut self, address: &str, how: Option<Listening>) {
        let address: SocketAddr = address.parse().expect("an address");
        match how {
            Some(how) => self.net().listen(address, how),
            None => self.net().forget(address),
        }
    }

    /// A new client connection to listener `index`, accepted by the worker.
    pub(crate) fn client(&mut self, index: usize) -> Peer {
        let address = self.worker.listeners[index].address;
        let (conn, peer) = self.net().client(address);
        let from = SocketAddr::from(([127, 0, 0, 1], 50000));
        self.worker.admit(index, conn, from);
        self.settle();
        peer
    }

    /// The connections the worker opened to `address` since the last call.
    pub(crate) fn accepted(&mut self, address: &str) -> Vec<Peer> {
        let address = address.parse().expect("an address");
        self.net().accepted(address)
    }

    /// The one connection the worker opened to `address` since the last call.
    pub(crate) fn accept(&mut self, address: &str) -> Peer {
        let mut peers = self.accepted(address);
        assert_eq!(peers.len(), 1, "connections to {address}");
        peers.remove(0)
    }

    /// Runs wake rounds at the current time until no edge is left to deliver.
    pub(crate) fn settle(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let events = self.net().poll();
            if events.is_empty() && self.worker.deferred.is_empty() {
                return;
            }
            self.round(events.into_iter());
        }
        panic!("the worker did not settle in {MAX_ROUNDS} rounds");
    }

    /// One wake round, and the flows it finished kept, as the worker's loop does.
    fn round(&mut self, events: impl Iterator<Item = crate::event::Readiness>) {
        self.worker.round(events);
        self.worker.recorder.end_of_round();
    }

    /// Moves the clock forward by `by`, firing each timer at its own time, in order.
    pub(crate) fn advance(&mut self, by: Duration) {
        let until = self.worker.now + by;
        self.settle();
        for _ in 0..MAX_ROUNDS {
            match self.worker.poll_timeout() {
                Some(wait) if self.worker.now + wait <= until => {
                    // A timer wheel rounds to its tick: step at least one millisecond.
                    self.worker.now += wait.max(Duration::from_millis(1));
                    self.round(std::iter::empty());
                    self.settle();
                }
                _ => {
                    self.worker.now = until;
                    self.round(std::iter::empty());
                    self.settle();
                    return;
                }
            }
        }
        panic!("timers kept firing for {MAX_ROUNDS} rounds");
    }

    /// A reload to `yaml` (which adds no listener: the harness has no sockets to hand out),
    /// then the worker following it as its waker would make it.
    pub(crate) fn reload(&mut self, yaml: &str) -> crate::reload::Applied {
        let new = weir_config::parse(yaml).expect("a valid config");
        let state = self.worker.control.server.clone();
        let applied = (state.config.reload_from(&state, new)).expect("the reload applies");
        self.worker.follow_reload(state.config.version());
        // The round the waker makes: it follows host sets the reload changed.
        self.round(std::iter::empty());
        self.settle();
        applied
    }

    /// Writes every access log line logged so far and stops the log flusher (lines logged
    /// after it are lost): a test reads its log files after this.
    pub(crate) fn stop_access_logs(&mut self) {
        self.logs.stop();
    }

    /// `POST /healthcheck/fail`: the server's health check fails from now on.
    pub(crate) fn fail_health_check(&mut self) {
        self.worker
            .control
            .server
            .health_check_failed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The worker's counter or gauge `name` (`http.<prefix>.…`, `cluster.<name>.…`, …).
    pub(crate) fn stat(&self, name: &str) -> i64 {
        let server = ServerGauges {
            live: true,
            state: 0,
            uptime_s: 0,
            concurrency: 1,
            access_logs: self.logs.admin(),
            reloads: self.worker.control.server.config.counts(),
            carried: None,
        };
        let stats = collect(
            &self.worker.control.server.stats.layout(),
            std::slice::from_ref(&self.worker.stats),
            &server,
        );
        match stats.into_iter().find(|s| s.name == name).map(|s| s.value) {
            Some(Value::Counter(n)) => n as i64,
            Some(Value::Gauge(n)) => n as i64,
            _ => panic!("no counter or gauge {name}"),
        }
    }
}
