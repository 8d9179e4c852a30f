//! weir's data plane: an event-driven HTTP/1.1 reverse proxy shaped like Envoy.
//!
//! A request's path through these modules follows the seed's four socket events:
//! `network::listener` accepts, `http::conn_manager` decodes the request and runs the router
//! (`router`), `upstream::codec_client` takes a pooled connection or connects and writes the
//! request (upstream write), reads the response (upstream read), and the connection manager
//! encodes it to the client (downstream write). `worker` owns one thread's loop; `server`
//! starts the workers, the admin listener, and drains them.

mod access_log;
mod admin;
mod codec;
mod containment;
mod event;
pub mod explain;
pub mod fuzzing;
mod hot_restart;
pub mod http;
pub mod lb_bench;
mod memory;
mod network;
mod recorder;
mod reload;
mod router;
mod runtime;
mod server;
mod snapshot;
pub mod stats;
mod tcp_proxy;
#[cfg(test)]
mod testing;
mod upstream;
mod why;
mod worker;

pub use containment::panic_is_contained;
pub use server::{Exit, LogControl, Options, ReloadHandle, Server, SetLogLevel};
