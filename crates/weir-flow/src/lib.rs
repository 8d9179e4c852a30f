//! The flow vocabulary of weir: one set of events for what happens to a request across the
//! seed's four socket events, shared by the proxy's own recorder and the kernel-side tracer,
//! and the renderers that turn flows into the seed's sectioned text, JSON lines, and Chrome
//! trace-event JSON (Perfetto), plus the HTML timeline page.

mod event;
pub mod render;

pub use event::{
    Closer, Direction, Event, EventKind, Flow, HEALTH_CHECKER, Lane, Name, Nanos, Phase,
    ReadResult, ShortText, Thread,
};
