//! The per-worker dispatcher's parts: generational tokens, the timer wheel, and readiness as
//! the handlers read it. The loop itself is `Worker::run`.

pub(crate) mod timer;
pub(crate) mod token;

use mio::Token;

/// What the poll said about one token. The loop converts mio's events into these; the
/// in-memory test network makes its own, so every handler runs the same without a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub(crate) token: Token,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The peer closed its write side (EPOLLRDHUP).
    pub(crate) read_closed: bool,
    /// Both sides are closed (EPOLLHUP).
    pub(crate) write_closed: bool,
    pub(crate) error: bool,
}

impl Readiness {
    pub(crate) fn of(event: &mio::event::Event) -> Readiness {
        Readiness {
            token: event.token(),
            readable: event.is_readable(),
            writable: event.is_writable(),
            read_closed: event.is_read_closed(),
            write_closed: event.is_write_closed(),
            error: event.is_error(),
        }
    }
}
