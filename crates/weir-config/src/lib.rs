//! The Envoy v3 bootstrap subset weir runs on: parsing, validation and the typed [`model`].
//!
//! [`parse`] (or [`load`]) turns an Envoy bootstrap, written in YAML or JSON, into a
//! [`Bootstrap`] in which every default is filled in and every cross-reference checked, or
//! into [`ConfigErrors`]: every problem found, each naming the path of the field at fault.
//!
//! ```text
//! static_resources.clusters[1].lb_policy: RING_HASH is not supported yet
//! static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix: `stat_prefix` is required
//! ```
//!
//! How it reads, in the order the code runs:
//! 1. `source`: text → a `serde_json::Value` tree (YAML via serde-saphyr, JSON via serde_json);
//!    a key repeated in a mapping keeps its last value, as in Envoy, with a warning.
//! 2. `reader`: typed reads over that tree that record errors with their paths and keep going.
//! 3. `bootstrap` → `listener` → `route` / `headers`, then `cluster`: one module per part of the
//!    Envoy API, each reading its messages straight into the model.
//!
//! Anything weir does not implement is an error rather than silently ignored: a config that
//! loads behaves the way Envoy would run it.

#![forbid(unsafe_code)]

pub mod model;

mod access_log;
mod bootstrap;
mod cert_info;
mod chain_select;
mod circuit_breakers;
mod cluster;
mod crypto;
mod dns;
mod hash_policy;
mod hcm;
mod hcm_headers;
mod headers;
mod health_check;
mod http_filter;
mod key_format;
mod lb;
mod listener;
mod listener_match;
mod load_assignment;
mod ocsp;
mod original_dst;
mod outlier;
mod overload;
mod reader;
mod retry;
mod route;
mod route_match;
mod runtime;
mod san_matcher;
mod sds;
mod source;
mod stats_sink;
mod tcp_proxy;
mod tickets;
mod tls;
mod tls_build;
mod tls_upstream;
mod verify;
mod weir;

use std::fmt;
use std::path::Path;

pub use access_log::{
    AccessLog, AccessLogSink, ENVOY_DEFAULT_FORMAT, FILE_ACCESS_LOG_TYPE, FormatKind,
    HeaderOperator, JsonField, JsonValue, LogFormat, Operator, PeerField, Piece,
    STDERR_ACCESS_LOG_TYPE, STDOUT_ACCESS_LOG_TYPE, TimeFormat, TimePiece,
};
pub use cert_info::{CertInfo, San};
pub use chain_select::{ChainSelector, ConnectionFacts};
pub use hcm_headers::DEFAULT_SERVER_NAME;
pub use model::*;
pub use runtime::{LayeredRuntime, RuntimeLayer, RuntimeLayerKind, RuntimeValue};
pub use san_matcher::{SanMatcher, SanType};
pub use sds::{CertRotation, Rotated};
pub use tls_build::{cipher_stat_name, group_stat_name};
pub use tls_upstream::server_name as upstream_server_name;

use crate::reader::{Cx, Field};
use crate::source::Format;

/// Parses an Envoy v3 bootstrap written in YAML or JSON (text starting with `{` is read as JSON
/// first, for serde_json's precise messages) and validates it into the model.
pub fn parse(text: &str) -> Result<Bootstrap, ConfigErrors> {
    parse_as(text, Format::Sniff)
}

/// Reads the file at `path` and parses it: `.json` as JSON, `.yaml` / `.yml` as YAML, anything
/// else by looking at the content as [`parse`] does.
pub fn load(path: &Path) -> Result<Bootstrap, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        errors: vec![ConfigError {
            path: String::new(),
            message: format!("cannot read {}: {e}", path.display()),
        }],
        warnings: Vec::new(),
    })?;
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
        Some(ext) if ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml") => {
            Format::Yaml
        }
        _ => Format::Sniff,
    };
    parse_as(&text, format)
}

fn parse_as(text: &str, format: Format) -> Result<Bootstrap, ConfigErrors> {
    let parsed = source::document(text, format).map_err(|e| ConfigErrors {
        errors: vec![e],
        warnings: Vec::new(),
    })?;
    let doc = parsed.doc;
    let mut cx = Cx::default();
    let bootstrap = bootstrap::read(&mut cx, &Field::root(&doc));
    let mut warnings = parsed.warnings;
    warnings.append(&mut cx.warnings);
    match bootstrap {
        Some(mut b) if cx.errors.is_empty() => {
            b.source = doc;
            b.warnings = warnings;
            Ok(b)
        }
        _ => {
            if cx.errors.is_empty() {
                // Every `None` above records why; this only guards that promise.
                cx.error("", "invalid config");
            }
            Err(ConfigErrors {
                errors: cx.errors,
                warnings,
            })
        }
    }
}

/// Every problem found in a config (as many as could be found in one pass, not just the first),
/// and the warnings found on the way (a warning may explain an error: a key given twice keeps
/// its last value, which may be the wrong one).
#[derive(Debug)]
pub struct ConfigErrors {
    /// The errors, in document order.
    pub errors: Vec<ConfigError>,
    /// The warnings, in document order.
    pub warnings: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    /// One error per line, then one line per warning, starting `warning: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        for warning in &self.warnings {
            write!(f, "\nwarning: {warning}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// One problem in a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The path of the field at fault, e.g. `static_resources.clusters[1].lb_policy`; keys appear
    /// as written in the file. Empty when the problem is the whole file (unreadable, not YAML).
    pub path: String,
    /// What is wrong, e.g. `RING_HASH is not supported yet`.
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `{path}: {message}`, or just the message when the path is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}
