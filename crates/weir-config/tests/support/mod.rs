//! Helpers the config tests share: parse a config that must parse, or one that must not and
//! give its errors, one line each.

#![allow(dead_code)]

use weir_config::{Bootstrap, parse};

/// The bootstrap `text` gives; panics with the errors (and the text) when it does not parse.
#[track_caller]
pub(crate) fn parse_ok(text: &str) -> Bootstrap {
    match parse(text) {
        Ok(b) => b,
        Err(e) => panic!("config should parse:\n{e}\n{text}"),
    }
}

/// The errors `text` gives, one string each; panics when it parses.
#[track_caller]
pub(crate) fn parse_errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("config should not parse:\n{text}"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}
