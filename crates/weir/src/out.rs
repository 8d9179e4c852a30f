//! The binary's own output on stdout, ended quietly when its reader goes away.
//!
//! Rust starts every program with SIGPIPE ignored, so a write to a closed pipe
//! (`weir demo | head -1`) fails with EPIPE, and `println!` turns that into a panic. weir
//! keeps SIGPIPE ignored: it is a proxy, and its workers `writev` to sockets, where
//! `MSG_NOSIGNAL` is not available; restoring the default disposition would let any peer
//! that resets a connection kill the process (`weir demo` runs the proxy in-process too).
//! Instead, like ripgrep, a broken pipe on stdout is the reader saying it has seen enough:
//! weir exits 0 at once, printing nothing more.

use std::io::Write;

/// Writes `args` to stdout; on a closed pipe exits 0, on another error exits 1 with a line
/// on stderr.
pub(crate) fn write(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("weir: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// `print!` through [`write`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*)) };
}

/// `println!` through [`write`].
macro_rules! outln {
    () => { $crate::out::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::write(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {out, outln};
