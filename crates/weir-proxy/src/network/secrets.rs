//! The secret watcher: certificates and CAs that SDS files give
//! (`tls_certificate_sds_secret_configs`, `validation_context_sds_secret_config`, on listeners
//! and clusters) are read again when their files change, on a thread of its own, so no worker
//! ever reads a file. A rotated secret serves the handshakes that start after it; connections
//! keep what they were made with. A file that fails to read or build keeps the old secret, and
//! the log says why. The watcher reads the config in force each time it looks, so the
//! secrets of chains a reload added are watched from then on.

use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use weir_config::{CertRotation, Rotated};

use crate::server::ServerState;
use crate::snapshot::Snapshot;

/// How often the files are looked at (their modification time and size).
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// See the module documentation.
pub(crate) struct SecretWatcher {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl SecretWatcher {
    /// Starts watching; `None` when no certificate comes from a file and no reload can
    /// bring one (weir did not start from a config file).
    pub(crate) fn start(state: Arc<ServerState>) -> io::Result<Option<SecretWatcher>> {
        let current = state.config.current().snapshot;
        if rotations(&current).is_empty() && !state.config.reloadable() {
            return Ok(None);
        }
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("weir:secrets".into())
            .spawn(move || run(&state, &stopped))?;
        Ok(Some(SecretWatcher { stop, thread }))
    }

    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// The certificates of listeners and clusters in force that SDS files rotate (a chain a
/// reload kept holds the context it was built with, not the reloaded config's copy).
fn rotations(snapshot: &Snapshot) -> Vec<Arc<CertRotation>> {
    let (listeners, clusters) = snapshot.tls_contexts();
    let listeners = listeners.into_iter().filter_map(|t| t.rotation.clone());
    let clusters = clusters.into_iter().filter_map(|t| t.rotation.clone());
    listeners.chain(clusters).collect()
}

fn run(state: &ServerState, stopped: &mpsc::Receiver<()>) {
    loop {
        match stopped.recv_timeout(CHECK_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let rotations = rotations(&state.config.current().snapshot);
        for outcome in rotations.iter().flat_map(|r| r.refresh()) {
            match outcome {
                Rotated::Updated { name } => {
                    tracing::info!(secret = %name, "secret rotated: new handshakes use it");
                }
                Rotated::Rejected { name, why } => {
                    tracing::warn!(secret = %name, %why, "secret file changed but is unusable; keeping the previous one");
                }
            }
        }
    }
}
