//! HTTP on a downstream connection: the connection manager, header rules, local replies.

pub(crate) mod active_stream;
pub(crate) mod active_streams;
pub(crate) mod conn_manager;
pub(crate) mod filter;
pub(crate) mod headers;
pub mod local_reply;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;
pub(crate) mod stream_log;
