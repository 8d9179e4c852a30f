//! The renderers, over hand-built flows (see `fixtures`).

mod fixtures;
mod json;
mod perfetto;
mod phase;
mod review;
mod text;
mod view;
