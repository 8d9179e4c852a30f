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

/// A config whose one listener's chain has `transport_socket: {socket}` (YAML flow or block,
/// indented for `transport_socket:`).
pub(crate) fn tls_listener(socket: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
    filter_chains:
    - transport_socket: {socket}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: {{ prefix: / }}
                direct_response: {{ status: 200 }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}
