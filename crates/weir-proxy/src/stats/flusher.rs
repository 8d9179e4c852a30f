//! The thread that ends each `stats_flush_interval` for the stats sinks: it merges the
//! workers' stats as the admin listener does and hands them to each sink, which sends its
//! datagrams over UDP. Envoy flushes on its main thread; weir's main thread waits for
//! signals, so this one has a thread of its own, off the workers' path.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weir_config::StatsSink;

use super::statsd::StatsdSink;
use crate::server::{ServerState, server_gauges};

/// What the flush thread reads: the same merged view as `/stats`.
pub(crate) struct Sources {
    pub(crate) state: Arc<ServerState>,
}

/// The running flush thread.
pub(crate) struct Flusher {
    /// Dropped to stop the thread (its wait ends at once).
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Flusher {
    /// Opens a UDP socket per sink and starts flushing; `None` when there are no sinks.
    pub(crate) fn start(
        sinks: &[StatsSink],
        interval: Duration,
        sources: Sources,
    ) -> io::Result<Option<Flusher>> {
        if sinks.is_empty() {
            return Ok(None);
        }
        let sinks = sinks
            .iter()
            .map(|config| {
                let any: SocketAddr = match config.address {
                    SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                    SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
                };
                let socket = UdpSocket::bind(any).map_err(|e| {
                    io::Error::new(e.kind(), format!("stats sink to {}: {e}", config.address))
                })?;
                Ok((StatsdSink::new(config.clone()), socket))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("weir:stats_flush".into())
            .spawn(move || run(sinks, interval, &sources, &stopped))?;
        Ok(Some(Flusher { stop, thread }))
    }

    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

fn run(
    mut sinks: Vec<(StatsdSink, UdpSocket)>,
    interval: Duration,
    sources: &Sources,
    stopped: &mpsc::Receiver<()>,
) {
    let mut next = Instant::now() + interval;
    loop {
        match stopped.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let pages = sources.state.stats.read();
        // Sinks get this process's counts only: the weir before a hot restart sent its own.
        let gauges = super::ServerGauges {
            carried: None,
            ..server_gauges(&sources.state)
        };
        let stats = super::collect(&pages.layout, &pages.workers, &gauges);
        for (sink, socket) in &mut sinks {
            let to = sink.address();
            sink.flush(&stats, &mut |datagram| {
                // Lost datagrams are statsd's way; Envoy does not report them either.
                if let Err(error) = socket.send_to(datagram, to) {
                    tracing::debug!(%to, %error, "stats sink send failed");
                }
            });
        }
        // Keep to the interval's grid; after a flush that overran it, start a fresh one.
        next += interval;
        let now = Instant::now();
        if next <= now {
            next = now + interval;
        }
    }
}
