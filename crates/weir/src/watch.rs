//! `--watch`: reload when the config file changes. The file is looked at four times a second
//! (its modification time, size and inode, so an editor that writes a new file and renames it
//! over the old one counts too); a change is applied once the file has stayed the same for one
//! look, so a file written in several steps is read once, whole. Polling a file four times a
//! second costs nothing worth an inotify dependency.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use weir_proxy::ReloadHandle;

/// How often the file is looked at.
const EVERY: Duration = Duration::from_millis(250);

/// What tells one version of the file from another (`None`: it cannot be read now, as
/// between an editor's delete and its write).
pub(crate) type Stamp = Option<(i64, i64, u64, u64)>;

/// The file's [`Stamp`] now.
pub(crate) fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.mtime(), m.mtime_nsec(), m.len(), m.ino()))
}

/// Starts the thread that watches `path` and reloads through `reload` when it changes from
/// `loaded` (its stamp when weir read it at startup: a change made while weir started is
/// applied too).
pub(crate) fn start(path: PathBuf, loaded: Stamp, reload: ReloadHandle) {
    let mut applied = loaded;
    let mut seen = stamp(&path);
    std::thread::Builder::new()
        .name("weir-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EVERY);
                let now = stamp(&path);
                // Changed since the last reload, and settled since the last look.
                if now.is_some() && now != applied && now == seen {
                    tracing::info!(config = %path.display(), "the config file changed: reloading");
                    let _ = reload.reload();
                    applied = now;
                }
                seen = now;
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::error!("cannot start the config watcher: {e}"));
}
