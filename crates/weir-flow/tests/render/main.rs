//! The renderers, over hand-built flows (see `fixtures`).

mod fixtures;
mod json;
mod perfetto;
mod phase;
mod text;
mod view;
