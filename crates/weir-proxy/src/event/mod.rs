//! The per-worker dispatcher's parts: generational tokens and the timer wheel. The loop itself
//! is `Worker::run`.

pub(crate) mod timer;
pub(crate) mod token;
