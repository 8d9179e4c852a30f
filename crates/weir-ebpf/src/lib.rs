//! `weir trace`: rebuilds the request flows of any event-driven proxy process (weir, nginx,
//! HAProxy, Envoy) from eBPF syscall tracepoints, into `weir-flow`'s vocabulary so the same
//! renderers draw them.
//!
//! - [`tracer`]: the kernel side (C, `bpf/flow.bpf.c`, compiled and embedded), loaded with aya;
//!   one record per traced syscall, through a ring buffer.
//! - [`record`]: those records, decoded.
//! - [`procfs`]: what the processes had open before tracing started.
//! - [`correlate`]: records in, flows out (sans I/O).

pub mod correlate;
pub mod procfs;
pub mod record;
pub mod tracer;
