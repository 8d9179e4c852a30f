//! `filter_chain_match`, `listener_filters` and `listener_filters_timeout`: every field read,
//! every error with its path, and the overlap check.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{parse_errors, parse_ok};
use weir_config::{
    Bootstrap, CidrRange, ConnectionFacts, FilterChainMatch, ListenerFilter,
    ListenerFiltersTimeout, SourceType,
};

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TLS_INSPECTOR: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";
const HTTP_INSPECTOR: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector";
const PROXY_PROTOCOL: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol";
const CHAINS: &str = "static_resources.listeners[0].filter_chains";
const LISTENER: &str = "static_resources.listeners[0]";

/// A chain with this `filter_chain_match` (none for `null`).
fn chain(m: Value) -> Value {
    let mut chain = json!({
        "filters": [{
            "name": "hcm",
            "typed_config": {
                "@type": HCM_TYPE,
                "stat_prefix": "http",
                "route_config": {"virtual_hosts": [{
                    "name": "vh",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}]
                }]},
                "http_filters": [{
                    "name": "router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                }]
            }
        }]
    });
    if !m.is_null() {
        chain["filter_chain_match"] = m;
    }
    chain
}

/// A listener with chains for these matches, and these extra listener fields.
fn config(matches: &[Value], extra: Value) -> String {
    let mut listener = json!({
        "name": "l",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
        "filter_chains": matches.iter().cloned().map(chain).collect::<Vec<_>>(),
    });
    for (k, v) in extra.as_object().unwrap() {
        listener[k] = v.clone();
    }
    json!({"static_resources": {"listeners": [listener]}}).to_string()
}

fn inspector() -> Value {
    json!({"listener_filters": [{"name": "tls", "typed_config": {"@type": TLS_INSPECTOR}}]})
}

fn ok(matches: &[Value], extra: Value) -> Bootstrap {
    parse_ok(&config(matches, extra))
}

fn errors(matches: &[Value], extra: Value) -> Vec<String> {
    parse_errors(&config(matches, extra))
}

fn warnings(b: &Bootstrap) -> Vec<String> {
    b.warnings.iter().map(ToString::to_string).collect()
}

fn range(address: &str, prefix_len: u8) -> CidrRange {
    CidrRange {
        address: address.parse().unwrap(),
        prefix_len,
    }
}

#[test]
fn every_field_is_read() {
    let b = ok(
        &[json!({
            "destination_port": 443,
            "prefix_ranges": [{"address_prefix": "10.0.0.0", "prefix_len": 8}],
            "server_names": ["Www.Example.com", "*.example.org"],
            "transport_protocol": "tls",
            "application_protocols": ["h2", "http/1.1"],
            "direct_source_prefix_ranges": [{"address_prefix": "192.0.2.0", "prefix_len": 24}],
            "source_type": "EXTERNAL",
            "source_prefix_ranges": [{"address_prefix": "2001:db8::", "prefix_len": 32}, {"address_prefix": "198.51.100.7"}],
            "source_ports": [1234, "5678"]
        })],
        inspector(),
    );
    let m = &b.listeners[0].filter_chains[0].filter_chain_match;
    assert_eq!(
        *m,
        FilterChainMatch {
            destination_port: Some(443),
            prefix_ranges: vec![range("10.0.0.0", 8)],
            server_names: vec!["www.example.com".into(), "*.example.org".into()],
            transport_protocol: Some("tls".into()),
            application_protocols: vec!["h2".into(), "http/1.1".into()],
            direct_source_prefix_ranges: vec![range("192.0.2.0", 24)],
            source_type: SourceType::External,
            source_prefix_ranges: vec![range("2001:db8::", 32), range("198.51.100.7", 0)],
            source_ports: vec![1234, 5678],
        }
    );
    assert!(warnings(&b).is_empty(), "{:?}", warnings(&b));
}

#[test]
fn source_types_and_unset_values() {
    let b = ok(
        &[
            json!({"source_type": "SAME_IP_OR_LOOPBACK"}),
            json!({"source_type": "ANY", "transport_protocol": "", "destination_port": 80}),
            json!({"source_type": 2, "destination_port": 81}),
        ],
        json!({}),
    );
    let chains = &b.listeners[0].filter_chains;
    assert_eq!(
        chains[0].filter_chain_match.source_type,
        SourceType::SameIpOrLoopback
    );
    assert_eq!(chains[1].filter_chain_match.source_type, SourceType::Any);
    assert_eq!(chains[1].filter_chain_match.transport_protocol, None);
    assert_eq!(
        chains[2].filter_chain_match.source_type,
        SourceType::External
    );
    assert_eq!(
        errors(&[json!({"source_type": "LOCAL"})], json!({})),
        [format!(
            "{CHAINS}[0].filter_chain_match.source_type: `LOCAL` is not a valid source_type; expected one of ANY, SAME_IP_OR_LOOPBACK, EXTERNAL"
        )]
    );
}

#[test]
fn field_errors_name_their_path() {
    let m = |v: Value| errors(&[v], json!({}));
    let at = |field: &str, message: &str| {
        vec![format!("{CHAINS}[0].filter_chain_match.{field}: {message}")]
    };
    assert_eq!(
        m(json!({"destination_port": 0})),
        at("destination_port", "port 0 is out of range (1..=65535)")
    );
    assert_eq!(
        m(json!({"destination_port": 65536})),
        at("destination_port", "port 65536 is out of range (1..=65535)")
    );
    assert_eq!(
        m(json!({"source_ports": [80, 0]})),
        at("source_ports[1]", "port 0 is out of range (1..=65535)")
    );
    assert_eq!(
        m(json!({"prefix_ranges": [{"address_prefix": "10.0.0.0", "prefix_len": 33}]})),
        at(
            "prefix_ranges[0].prefix_len",
            "prefix_len 33 is longer than the address (32 bits)"
        )
    );
    assert_eq!(
        m(json!({"direct_source_prefix_ranges": [{"address_prefix": "nope"}]})),
        at(
            "direct_source_prefix_ranges[0].address_prefix",
            "`nope` is not an IP address"
        )
    );
    assert_eq!(
        m(json!({"source_prefix_ranges": [{"prefix_len": 8}]})),
        at(
            "source_prefix_ranges[0].address_prefix",
            "`address_prefix` is required"
        )
    );
    for partial in ["foo*.com", "*", "a.*.com", "*example.com"] {
        assert_eq!(
            m(json!({"server_names": ["ok.com", partial]})),
            at(
                "server_names[1]",
                &format!(
                    "`{partial}`: partial wildcards are not supported in server_names (as in Envoy): a wildcard is a leading `*.`, as in `*.example.com`"
                )
            )
        );
    }
    assert_eq!(
        m(json!({"server_names": "a.com"})),
        at(
            "server_names",
            "expected a list, found the string \"a.com\""
        )
    );
    assert_eq!(
        m(json!({"application_protocols": [2]})),
        at(
            "application_protocols[0]",
            "expected a string, found the number 2 (quote it in YAML)"
        )
    );
    let unsupported = "this Envoy field is not supported by weir yet";
    assert_eq!(
        m(json!({"address_suffix": "::1"})),
        at("address_suffix", unsupported)
    );
    assert_eq!(m(json!({"suffix_len": 1})), at("suffix_len", unsupported));
}

#[test]
fn empty_names_and_unknown_transports_are_kept_with_a_warning() {
    let b = ok(
        &[
            json!({"server_names": [""], "application_protocols": [""], "transport_protocol": "TLS"}),
        ],
        inspector(),
    );
    let path = format!("{CHAINS}[0].filter_chain_match");
    assert_eq!(
        warnings(&b),
        [
            format!(
                "{path}.server_names[0]: an empty server name matches any connection, as if the list were empty (as in Envoy)"
            ),
            format!(
                "{path}.transport_protocol: `TLS` never matches: weir sets the transport protocol to `tls` or `raw_buffer` (Envoy accepts it too)"
            ),
            format!(
                "{path}.application_protocols[0]: an empty application protocol matches any connection, as if the list were empty (as in Envoy)"
            ),
        ]
    );
}

#[test]
fn overlapping_chains_are_errors_at_the_later_chain() {
    let overlap = |first: usize, second: usize| {
        format!(
            "{CHAINS}[{second}].filter_chain_match: matches the same connections as filter_chains[{first}]; use default_filter_chain for a fallback"
        )
    };
    // The same name in another case, and a wildcard written without its `*`.
    assert_eq!(
        errors(
            &[
                json!({"server_names": ["a.com", "*.b.com"]}),
                json!({"server_names": ["A.COM"]}),
                json!({"server_names": [".b.com"]}),
            ],
            inspector()
        ),
        [overlap(0, 1), overlap(0, 2)]
    );
    // The same range written two ways; the same port as another chain.
    assert_eq!(
        errors(
            &[
                json!({"prefix_ranges": [{"address_prefix": "10.0.0.1", "prefix_len": 8}]}),
                json!({"prefix_ranges": [{"address_prefix": "10.0.0.0", "prefix_len": 8}]}),
                json!({"destination_port": 80, "source_ports": [1, 2]}),
                json!({"destination_port": 80, "source_ports": [2, 3]}),
            ],
            json!({})
        ),
        [overlap(0, 1), overlap(2, 3)]
    );
    // A chain without a match beside one whose match is empty.
    assert_eq!(
        errors(&[json!({}), Value::Null], json!({})),
        [format!(
            "{CHAINS}[1]: matches the same connections as filter_chains[0] (no filter_chain_match); use default_filter_chain for a fallback"
        )]
    );
    // A value listed twice.
    assert_eq!(
        errors(&[json!({"source_ports": [7, 7]})], json!({})),
        [format!(
            "{CHAINS}[0].filter_chain_match: lists a value twice (names compare in any case, ranges by their prefix): Envoy rejects this as an overlap too"
        )]
    );
}

#[test]
fn chains_that_differ_somewhere_load_and_select() {
    let b = ok(
        &[
            json!({"server_names": ["*.example.com"]}),
            json!({"server_names": ["www.example.com"], "application_protocols": ["h2"]}),
            json!({"prefix_ranges": [{"address_prefix": "0.0.0.0", "prefix_len": 0}]}),
            json!({}),
        ],
        inspector(),
    );
    let chains = &b.listeners[0].filter_chains;
    let matches: Vec<&FilterChainMatch> = chains.iter().map(|c| &c.filter_chain_match).collect();
    let selector = weir_config::ChainSelector::new(&matches).unwrap();
    assert!(selector.uses_tls_facts());
    assert!(selector.uses_destination_ip());
    let alpn = ["h2".to_owned()];
    let facts = ConnectionFacts {
        local: "127.0.0.1:10000".parse().unwrap(),
        direct_peer: "127.0.0.1:5000".parse().unwrap(),
        peer: "127.0.0.1:5000".parse().unwrap(),
        server_name: Some("www.example.com"),
        transport_protocol: "tls",
        application_protocols: &alpn,
    };
    // The IPv4 destination picks the explicit 0.0.0.0/0 first, where no name is listed.
    assert_eq!(selector.select(&facts), Some(2));
    let v6 = ConnectionFacts {
        local: "[::1]:10000".parse().unwrap(),
        ..facts
    };
    assert_eq!(selector.select(&v6), Some(1));
    let other = ConnectionFacts {
        server_name: Some("a.example.com"),
        ..v6
    };
    assert_eq!(selector.select(&other), Some(0));
}

#[test]
fn tls_facts_without_the_inspector_warn() {
    let b = ok(
        &[
            json!({"server_names": ["a.com"]}),
            json!({"transport_protocol": "tls", "application_protocols": ["h2"]}),
            json!({"transport_protocol": "raw_buffer"}),
        ],
        json!({}),
    );
    let message = |i: usize, what: &str| {
        format!(
            "{CHAINS}[{i}].filter_chain_match: matches on {what}, which only the TLS inspector learns, but the listener has no envoy.filters.listener.tls_inspector in listener_filters: its connections are all raw_buffer with no server name or ALPN (Envoy accepts this too)"
        )
    };
    assert_eq!(
        warnings(&b),
        [
            message(0, "server_names"),
            message(1, "transport_protocol tls, application_protocols")
        ]
    );
    let b = ok(&[json!({"server_names": ["a.com"]})], inspector());
    assert!(warnings(&b).is_empty());
}

#[test]
fn the_tls_inspector_and_its_fields() {
    let b = ok(&[Value::Null], inspector());
    let l = &b.listeners[0];
    assert_eq!(
        l.listener_filters,
        [ListenerFilter::TlsInspector {
            name: "tls".into(),
            max_client_hello_size: 16384,
        }]
    );
    assert_eq!(
        l.listener_filters_timeout,
        ListenerFiltersTimeout::default()
    );
    let b = ok(
        &[Value::Null],
        json!({"listener_filters": [{
            "name": "envoy.filters.listener.tls_inspector",
            "typed_config": {
                "@type": TLS_INSPECTOR,
                "max_client_hello_size": 4096,
                "initial_read_buffer_size": 1024,
                "enable_ja3_fingerprinting": false,
                "enable_ja4_fingerprinting": false,
                "close_connection_on_client_hello_parsing_errors": false
            }
        }]}),
    );
    assert_eq!(
        b.listeners[0].listener_filters,
        [ListenerFilter::TlsInspector {
            name: "envoy.filters.listener.tls_inspector".into(),
            max_client_hello_size: 4096,
        }]
    );
}

#[test]
fn the_proxy_protocol_filter_and_its_fields() {
    let filter = |fields: Value| {
        let mut typed = json!({"@type": PROXY_PROTOCOL});
        for (k, v) in fields.as_object().expect("an object") {
            typed[k] = v.clone();
        }
        json!({"listener_filters": [{"name": "pp", "typed_config": typed}]})
    };
    let b = ok(&[Value::Null], filter(json!({})));
    assert_eq!(
        b.listeners[0].listener_filters,
        [ListenerFilter::ProxyProtocol {
            name: "pp".into(),
            allow_without: false,
            disallowed_versions: vec![],
        }]
    );
    let b = ok(
        &[Value::Null],
        filter(json!({
            "allow_requests_without_proxy_protocol": true,
            "disallowed_versions": ["V2"],
            "rules": [],
            "stat_prefix": ""
        })),
    );
    assert_eq!(
        b.listeners[0].listener_filters,
        [ListenerFilter::ProxyProtocol {
            name: "pp".into(),
            allow_without: true,
            disallowed_versions: vec![2],
        }]
    );
    let at = |field: &str, message: &str| {
        vec![format!(
            "{LISTENER}.listener_filters[0].typed_config{field}: {message}"
        )]
    };
    let err = |fields| errors(&[Value::Null], filter(fields));
    assert_eq!(
        err(json!({"disallowed_versions": ["V3"]})),
        at(
            ".disallowed_versions[0]",
            "`V3` is not a version (V1 or V2)"
        )
    );
    assert_eq!(
        err(json!({"rules": [{"tlv_type": 4, "on_tlv_present": {"key": "k"}}]})),
        at(
            ".rules",
            "TLVs as dynamic metadata (`rules`) are not supported by weir yet"
        )
    );
    assert_eq!(
        err(json!({"pass_through_tlvs": {"match_type": "INCLUDE_ALL"}})),
        at(
            ".pass_through_tlvs",
            "passing TLVs on (`pass_through_tlvs`) is not supported by weir yet"
        )
    );
    assert_eq!(
        err(json!({"stat_prefix": "edge"})),
        at(
            ".stat_prefix",
            "a stat_prefix is not supported by weir yet: its stats are proxy_proto.*"
        )
    );
    assert_eq!(
        err(json!({"allow_requests_without_proxy_protocol": "yes"})).len(),
        1
    );
}

#[test]
fn the_http_inspector_has_no_fields() {
    let b = ok(
        &[Value::Null],
        json!({"listener_filters": [{"name": "http", "typed_config": {"@type": HTTP_INSPECTOR}}]}),
    );
    assert_eq!(
        b.listeners[0].listener_filters,
        [ListenerFilter::HttpInspector {
            name: "http".into()
        }]
    );
    let errors = errors(
        &[Value::Null],
        json!({"listener_filters": [{"name": "http", "typed_config": {"@type": HTTP_INSPECTOR, "x": 1}}]}),
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("{LISTENER}.listener_filters[0].typed_config.x")),
        "{errors:?}"
    );
}

#[test]
fn listener_filter_errors() {
    let with = |filter: Value| errors(&[Value::Null], json!({"listener_filters": [filter]}));
    let at = |field: &str, message: &str| {
        vec![format!("{LISTENER}.listener_filters[0]{field}: {message}")]
    };
    let inspector_with = |fields: Value| {
        let mut typed = json!({"@type": TLS_INSPECTOR});
        for (k, v) in fields.as_object().unwrap() {
            typed[k] = v.clone();
        }
        with(json!({"name": "tls", "typed_config": typed}))
    };
    assert_eq!(
        inspector_with(json!({"max_client_hello_size": 16385})),
        at(
            ".typed_config.max_client_hello_size",
            "16385 is out of range (256..=16384)"
        )
    );
    assert_eq!(
        inspector_with(json!({"max_client_hello_size": 255})),
        at(
            ".typed_config.max_client_hello_size",
            "255 is out of range (256..=16384)"
        )
    );
    assert_eq!(
        inspector_with(json!({"initial_read_buffer_size": 65537})),
        at(
            ".typed_config.initial_read_buffer_size",
            "65537 is out of range (256..=65536)"
        )
    );
    for fingerprint in ["enable_ja3_fingerprinting", "enable_ja4_fingerprinting"] {
        assert_eq!(
            inspector_with(json!({fingerprint: true})),
            at(
                &format!(".typed_config.{fingerprint}"),
                "TLS fingerprinting is not supported by weir yet"
            )
        );
    }
    assert_eq!(
        inspector_with(json!({"close_connection_on_client_hello_parsing_errors": true})),
        at(
            ".typed_config.close_connection_on_client_hello_parsing_errors",
            "closing connections on ClientHello parse errors is not supported by weir yet"
        )
    );
    assert_eq!(
        with(json!({"name": "envoy.filters.listener.tls_inspector"})),
        at(
            ".typed_config",
            &format!(
                "`typed_config` is required: weir picks the listener filter by its @type (weir supports the TLS inspector, {TLS_INSPECTOR}, the HTTP inspector, {HTTP_INSPECTOR}, and the PROXY protocol filter, {PROXY_PROTOCOL})"
            )
        )
    );
    let original_dst =
        "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst";
    assert_eq!(
        with(json!({"name": "od", "typed_config": {"@type": original_dst}})),
        at(
            ".typed_config.@type",
            &format!(
                "listener filter `{original_dst}` is not supported by weir yet (weir supports the TLS inspector, {TLS_INSPECTOR}, the HTTP inspector, {HTTP_INSPECTOR}, and the PROXY protocol filter, {PROXY_PROTOCOL})"
            )
        )
    );
    assert_eq!(
        with(
            json!({"name": "tls", "typed_config": {"@type": TLS_INSPECTOR}, "filter_disabled": {"any_match": true}})
        ),
        at(
            ".filter_disabled",
            "this Envoy field is not supported by weir yet"
        )
    );
    assert_eq!(
        with(json!({"typed_config": {"@type": TLS_INSPECTOR}})),
        at(".name", "`name` is required")
    );
}

#[test]
fn listener_filters_timeout() {
    let timeout = |extra: Value| ok(&[Value::Null], extra).listeners[0].listener_filters_timeout;
    assert_eq!(
        timeout(
            json!({"listener_filters_timeout": "2.5s", "continue_on_listener_filters_timeout": true})
        ),
        ListenerFiltersTimeout {
            timeout: Some(Duration::from_millis(2500)),
            continue_on_timeout: true,
        }
    );
    assert_eq!(
        timeout(json!({"listener_filters_timeout": "0s"})),
        ListenerFiltersTimeout {
            timeout: None,
            continue_on_timeout: false,
        }
    );
    assert_eq!(
        errors(
            &[Value::Null],
            json!({"listener_filters_timeout": 5, "continue_on_listener_filters_timeout": "yes"})
        ),
        [
            format!(
                "{LISTENER}.listener_filters_timeout: expected a duration such as \"5s\" or \"0.25s\", found the number 5"
            ),
            format!(
                "{LISTENER}.continue_on_listener_filters_timeout: expected true or false, found the string \"yes\""
            ),
        ]
    );
}
