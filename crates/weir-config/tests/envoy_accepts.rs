//! Configs Envoy 1.40 accepts (checked with `envoy --mode validate`) that weir accepts too, read
//! the way Envoy reads them: enum names in any case, a repeated key (the last value wins, with a
//! warning naming its path), the `!ignore` tag, `TypedStruct`-wrapped typed configs, a chain or connection manager without filters (with a
//! warning), `retry_policy` without `retry_on`, and `internal_address_config`.

mod support;

use support::{parse_errors as errors, parse_ok as ok};

use weir_config::{CodecType, RetryOn, parse};

const BASE: &str = r#"static_resources:
  listeners:
  - name: l0
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          codec_type: AUTO
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: { prefix: / }
                redirect: { path_redirect: /x, response_code: FOUND }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: origin
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9 } } }
"#;

const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

/// BASE with `from` replaced by `to` (which must occur exactly once).
fn edit(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "{from:?}");
    BASE.replacen(from, to, 1)
}

#[test]
fn enum_names_in_any_case() {
    for (from, to) in [
        ("type: STATIC", "type: static"),
        ("type: STATIC", "type: Static"),
        ("lb_policy: ROUND_ROBIN", "lb_policy: round_robin"),
        ("lb_policy: ROUND_ROBIN", "lb_policy: Round_Robin"),
        ("codec_type: AUTO", "codec_type: auto"),
        ("response_code: FOUND", "response_code: found"),
    ] {
        ok(&edit(from, to));
    }
    let b = ok(&edit("codec_type: AUTO", "codec_type: http1"));
    assert_eq!(
        b.listeners[0].filter_chains[0]
            .http_connection_manager
            .as_ref()
            .unwrap()
            .codec_type,
        CodecType::Http1
    );
    // Case is all Envoy forgives: a name that is not one stays an error.
    assert_eq!(
        errors(&edit("lb_policy: ROUND_ROBIN", "lb_policy: roundrobin")),
        [
            "static_resources.clusters[0].lb_policy: `roundrobin` is not a valid lb_policy; expected one of ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV, CLUSTER_PROVIDED, LOAD_BALANCING_POLICY_CONFIG"
        ]
    );
    // An Envoy value weir lacks, in any case, is "not supported yet".
    assert_eq!(
        errors(&edit("type: STATIC", "type: eds")),
        ["static_resources.clusters[0].type: EDS is not supported yet"]
    );
}

#[test]
fn an_enum_error_lists_only_what_weir_supports() {
    assert_eq!(
        errors(&edit("type: STATIC", "type: STATICK")),
        [
            "static_resources.clusters[0].type: `STATICK` is not a valid cluster type; expected one of STATIC, STRICT_DNS, LOGICAL_DNS, ORIGINAL_DST"
        ]
    );
    assert_eq!(
        errors(&edit("codec_type: AUTO", "codec_type: HTTP11")),
        [format!(
            "{HCM}.codec_type: `HTTP11` is not a valid codec_type; expected one of AUTO, HTTP1"
        )]
    );
}

#[test]
fn a_repeated_key_keeps_the_last_value_with_a_warning() {
    let text = edit(
        "    lb_policy: ROUND_ROBIN\n",
        "    lb_policy: ROUND_ROBIN\n    connect_timeout: 1s\n    connect_timeout: 2s\n",
    );
    let b = ok(&text);
    assert_eq!(
        b.clusters[0].connect_timeout,
        std::time::Duration::from_secs(2)
    );
    let warnings: Vec<String> = b.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "static_resources.clusters[0].connect_timeout: this key is given more than once in its mapping; the last value is used (as Envoy does) and the others are ignored"
        ]
    );
    // The same in JSON.
    let json = r#"{"node": {"id": "a", "id": "b"}, "static_resources": {}}"#;
    let b = ok(json);
    assert_eq!(b.node.id, "b");
    assert_eq!(b.warnings[0].path, "node.id");
    // With errors, the warnings come too (the value kept may be the cause of an error).
    let text = edit(
        "    lb_policy: ROUND_ROBIN\n",
        "    lb_policy: ROUND_ROBIN\n    lb_policy: FASTEST\n",
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(e.warnings[0].path, "static_resources.clusters[0].lb_policy");
    let shown = e.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert!(
        lines[0].contains("`FASTEST` is not a valid lb_policy"),
        "{shown}"
    );
    assert!(
        lines[1].starts_with(
            "warning: static_resources.clusters[0].lb_policy: this key is given more than once"
        ),
        "{shown}"
    );
}

#[test]
fn ignore_tag_drops_a_mapping_entry() {
    // Envoy's configs hold anchors in an `!ignore` entry and use them elsewhere.
    let text = format!(
        "!ignore defs:\n  ep: &ep {{ address: 127.0.0.1, port_value: 8081 }}\n{}",
        BASE.replace(
            "socket_address: { address: 127.0.0.1, port_value: 9 }",
            "socket_address: *ep"
        )
    );
    let b = ok(&text);
    assert_eq!(b.clusters[0].endpoints[0].address.port(), 8081);
    assert!(b.source.get("defs").is_none());
    // Without the tag the same entry is an unknown field.
    let e = errors(&text.replace("!ignore defs:", "defs:"));
    assert!(e[0].starts_with("defs: unknown field"), "{e:?}");
}

const TYPED_STRUCT_ROUTER: &str = r#"            typed_config:
              "@type": type.googleapis.com/udpa.type.v1.TypedStruct
              type_url: type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              value: {}"#;

const ROUTER: &str = r#"            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"#;

#[test]
fn typed_struct_wraps_a_typed_config() {
    ok(&edit(ROUTER, TYPED_STRUCT_ROUTER));
    // xds.type.v3's, and no `value` at all: an empty message.
    ok(&edit(
        ROUTER,
        r#"            typed_config:
              "@type": type.googleapis.com/xds.type.v3.TypedStruct
              type_url: type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"#,
    ));
    // The connection manager itself, wrapped: its fields are read from `value`.
    let hcm_open = r#"        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
"#;
    let wrapped = r#"        typed_config:
          "@type": type.googleapis.com/xds.type.v3.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          value:
"#;
    let start = BASE.find(hcm_open).unwrap() + hcm_open.len();
    let end = BASE.find("  clusters:").unwrap();
    let body: String = BASE[start..end]
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    let text = format!(
        "{}{wrapped}{body}{}",
        &BASE[..BASE.find(hcm_open).unwrap()],
        &BASE[end..]
    );
    let b = ok(&text);
    assert_eq!(
        b.listeners[0].filter_chains[0]
            .http_connection_manager
            .as_ref()
            .unwrap()
            .stat_prefix,
        "ingress"
    );
    // Errors inside name the path through `value`.
    let e = errors(&text.replace("stat_prefix: ingress", "stat_prefx: ingress"));
    assert!(
        e.iter().any(|l| l.starts_with(&format!(
            "{HCM}.value.stat_prefx: unknown field; did you mean `stat_prefix`?"
        ))),
        "{e:?}"
    );
}

#[test]
fn typed_struct_errors() {
    let filter = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config";
    // The wrapped type is checked like an `@type`, at `type_url`.
    assert_eq!(
        errors(&edit(
            ROUTER,
            &TYPED_STRUCT_ROUTER.replace("router.v3.Router", "cors.v3.Cors")
        )),
        [format!(
            "{filter}.type_url: HTTP filter type `type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors` is not supported yet (weir supports the router and, before it, the fault, buffer and health_check filters)"
        )]
    );
    // Unknown fields of the wrapped message are errors, as in Envoy.
    let e = errors(&edit(
        ROUTER,
        &TYPED_STRUCT_ROUTER.replace("value: {}", "value: {bogus: 1}"),
    ));
    assert!(
        e[0].starts_with(&format!("{filter}.value.bogus: unknown field")),
        "{e:?}"
    );
    // `value` holds the message's fields only (Envoy: "no such field: '@type'").
    assert_eq!(
        errors(&edit(
            ROUTER,
            &TYPED_STRUCT_ROUTER.replace("value: {}", "value: {\"@type\": x}")
        )),
        [format!(
            "{filter}.value.@type: a TypedStruct's `value` takes no `@type`: `type_url` names its type"
        )]
    );
    // So is anything beside type_url and value.
    let e = errors(&edit(
        ROUTER,
        &format!("{TYPED_STRUCT_ROUTER}\n              extra: 1"),
    ));
    assert!(
        e[0].starts_with(&format!("{filter}.extra: unknown field")),
        "{e:?}"
    );
    assert_eq!(
        errors(&edit(
            ROUTER,
            &TYPED_STRUCT_ROUTER.replace("type_url", "type_uri")
        )),
        [
            format!("{filter}.type_url: `type_url` is required"),
            format!(
                "{filter}.type_uri: unknown field; did you mean `type_url`? (fields weir supports here: @type, type_url, value)"
            ),
        ]
    );
}

/// BASE's listener, named `name`, on `port`, with `extra` lines added to its HCM.
fn listener(name: &str, port: u16, hcm_extra: &str) -> String {
    let start = BASE.find("  - name: l0").unwrap();
    let end = BASE.find("  clusters:").unwrap();
    BASE[start..end]
        .replace("name: l0", &format!("name: {name}"))
        .replace("port_value: 10000", &format!("port_value: {port}"))
        .replace(
            "          stat_prefix: ingress\n",
            &format!("          stat_prefix: ingress\n{hcm_extra}"),
        )
}

#[test]
fn names_and_addresses_are_compared_in_the_first_run() {
    // The second listener has an error of its own: its name and address are still compared.
    let listeners = format!(
        "{}{}",
        listener("l0", 10000, ""),
        listener("l0", 10000, "          colour: red\n")
    );
    let text = BASE.replace(&listener("l0", 10000, ""), &listeners);
    let e = errors(&text);
    let l1 = "static_resources.listeners[1]";
    assert!(
        e.iter().any(|l| l.starts_with(&format!(
            "{l1}.filter_chains[0].filters[0].typed_config.colour: unknown field"
        ))),
        "{e:#?}"
    );
    assert!(
        e.contains(&format!(
            "{l1}.name: duplicate listener name `l0` (also the name of listeners[0])"
        )),
        "{e:#?}"
    );
    assert!(
        e.contains(&format!(
            "{l1}.address: 127.0.0.1:10000 is also the address of listeners[0]"
        )),
        "{e:#?}"
    );
    assert_eq!(e.len(), 3, "{e:#?}");
    // Clusters too.
    let cluster = &BASE[BASE.find("  - name: origin").unwrap()..];
    let text = format!(
        "{BASE}{}",
        cluster.replace("ROUND_ROBIN", "CLUSTER_PROVIDED")
    );
    assert_eq!(
        errors(&text),
        [
            "static_resources.clusters[1].lb_policy: lb_policy CLUSTER_PROVIDED is only for an ORIGINAL_DST cluster",
            "static_resources.clusters[1].name: duplicate cluster name `origin` (also the name of clusters[0])",
        ]
    );
}

#[test]
fn an_unsupported_match_claims_no_overlap() {
    let chain_start = BASE.find("    - filters:").unwrap();
    let chain_end = BASE.find("  clusters:").unwrap();
    let chain = &BASE[chain_start..chain_end];
    let chains = format!(
        "{}{}",
        chain.replace(
            "    - filters:",
            "    - name: a\n      filter_chain_match: { address_suffix: a.example }\n      filters:"
        ),
        chain.replace(
            "    - filters:",
            "    - name: a\n      filter_chain_match: { address_suffix: b.example }\n      filters:"
        ),
    );
    let text = BASE.replace(chain, &chains);
    let chains = "static_resources.listeners[0].filter_chains";
    assert_eq!(
        errors(&text),
        [
            format!(
                "{chains}[0].filter_chain_match.address_suffix: this Envoy field is not supported by weir yet"
            ),
            format!(
                "{chains}[1].filter_chain_match.address_suffix: this Envoy field is not supported by weir yet"
            ),
            format!(
                "{chains}[1].name: duplicate filter chain name `a` (also the name of filter_chains[0])"
            ),
        ]
    );
    // Two readable matches that are the same still are an error, even when a chain has
    // another error.
    let both = format!(
        "{}{}",
        chain,
        chain.replace(
            "stat_prefix: ingress",
            "stat_prefix: ingress\n          colour: red"
        )
    );
    let e = errors(&BASE.replace(chain, &both));
    assert!(e.contains(&format!("{chains}[1]: matches the same connections as filter_chains[0] (no filter_chain_match); use default_filter_chain for a fallback")), "{e:#?}");
}

#[test]
fn no_network_filters_or_http_filters_are_accepted_with_a_warning() {
    let http_filters = "          http_filters:\n          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n";
    for to in ["", "          http_filters: []\n"] {
        let b = ok(&edit(http_filters, to));
        let hcm = b.listeners[0].filter_chains[0]
            .http_connection_manager
            .as_ref()
            .unwrap();
        assert!(hcm.http_filters.is_empty());
        let warnings: Vec<String> = b.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [format!(
                "{HCM}.http_filters: no HTTP filters: nothing answers a request, which waits for `stream_idle_timeout` and then gets 504 (as in Envoy); end the list with envoy.filters.http.router"
            )]
        );
    }
    let start = BASE.find("    - filters:").unwrap();
    let end = BASE.find("  clusters:").unwrap();
    for chain in ["    - filters: []\n", "    - name: empty\n"] {
        let b = ok(&format!("{}{chain}{}", &BASE[..start], &BASE[end..]));
        assert!(
            b.listeners[0].filter_chains[0]
                .http_connection_manager
                .is_none()
        );
        assert_eq!(
            b.warnings[0].to_string(),
            "static_resources.listeners[0].filter_chains[0].filters: this filter chain has no network filter: its connections are closed as soon as they are accepted (as Envoy does)"
        );
    }
}

/// The first route's retry policy.
fn retry_policy(b: &weir_config::Bootstrap) -> weir_config::RetryPolicy {
    let hcm = b.listeners[0].filter_chains[0]
        .http_connection_manager
        .as_ref()
        .unwrap();
    match &hcm.route_config.virtual_hosts[0].routes[0].action {
        weir_config::RouteAction::Forward(f) => f.retry_policy.clone().unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_retry_policy_without_retry_on_and_grpc_conditions() {
    let route = "redirect: { path_redirect: /x, response_code: FOUND }";
    let b = ok(&edit(
        route,
        "route: { cluster: origin, retry_policy: { num_retries: 3, retriable_status_codes: [409] } }",
    ));
    let policy = retry_policy(&b);
    assert!(policy.retry_on.is_empty());
    assert_eq!(
        (policy.num_retries, policy.retriable_status_codes),
        (3, vec![409])
    );
    assert!(b.warnings.is_empty());

    let b = ok(&edit(
        route,
        "route: { cluster: origin, retry_policy: { retry_on: \"retriable-4xx, unavailable,cancelled\" } }",
    ));
    let on = retry_policy(&b).retry_on;
    assert!(on.any(RetryOn::RETRIABLE_4XX));
    assert!(on.covers_grpc_status(14) && on.covers_grpc_status(1));
    assert!(!on.covers_grpc_status(4) && !on.any(RetryOn::FIVE_XX));
}

#[test]
fn internal_address_config_cidr_ranges() {
    let b = ok(&edit(
        "          codec_type: AUTO\n",
        "          codec_type: AUTO\n          internal_address_config:\n            unix_sockets: true\n            cidr_ranges:\n            - { address_prefix: 10.0.0.0, prefix_len: 8 }\n            - { address_prefix: \"fd00::\", prefix_len: 8 }\n            - { address_prefix: 192.168.1.7 }\n",
    ));
    let ranges = &b.listeners[0].filter_chains[0]
        .http_connection_manager
        .as_ref()
        .unwrap()
        .internal_addresses;
    let internal = |ip: &str| ranges.iter().any(|r| r.contains(ip.parse().unwrap()));
    assert!(internal("10.1.2.3") && internal("::ffff:10.9.9.9") && internal("fd12::1"));
    // prefix_len defaults to 0: every address of the family.
    assert!(internal("8.8.8.8"));
    assert!(!internal("fe80::1"));

    let bad = errors(&edit(
        "          codec_type: AUTO\n",
        "          codec_type: AUTO\n          internal_address_config:\n            cidr_ranges:\n            - { address_prefix: 10.0.0.0, prefix_len: 33 }\n            - { address_prefix: ten, prefix_len: 8 }\n            - { prefix_len: 8 }\n",
    ));
    let at = format!("{HCM}.internal_address_config.cidr_ranges");
    assert_eq!(
        bad,
        [
            format!("{at}[0].prefix_len: prefix_len 33 is longer than the address (32 bits)"),
            format!("{at}[1].address_prefix: `ten` is not an IP address"),
            format!("{at}[2].address_prefix: `address_prefix` is required"),
        ]
    );
}
