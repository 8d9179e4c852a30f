//! Sockets: listeners and the accept path, and connections with their edge-triggered rules.

pub(crate) mod connection;
pub(crate) mod listener;
pub(crate) mod transport;
