//! Configs Envoy 1.40 accepts (checked with `envoy --mode validate`) that weir accepts too, read
//! the way Envoy reads them: enum names in any case, a repeated key (the last value wins, with a
//! warning naming its path), the `!ignore` tag, and `TypedStruct`-wrapped typed configs.

mod support;

use support::{parse_errors as errors, parse_ok as ok};

use weir_config::{CodecType, parse};

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
            .codec_type,
        CodecType::Http1
    );
    // Case is all Envoy forgives: a name that is not one stays an error.
    assert_eq!(
        errors(&edit("lb_policy: ROUND_ROBIN", "lb_policy: roundrobin")),
        [
            "static_resources.clusters[0].lb_policy: `roundrobin` is not a valid lb_policy; expected ROUND_ROBIN"
        ]
    );
    // An Envoy value weir lacks, in any case, is "not supported yet".
    assert_eq!(
        errors(&edit("type: STATIC", "type: strict_dns")),
        ["static_resources.clusters[0].type: STRICT_DNS is not supported yet"]
    );
}

#[test]
fn an_enum_error_lists_only_what_weir_supports() {
    assert_eq!(
        errors(&edit("type: STATIC", "type: STATICK")),
        [
            "static_resources.clusters[0].type: `STATICK` is not a valid cluster type; expected STATIC"
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
    let text = format!("{BASE}{}", cluster.replace("ROUND_ROBIN", "MAGLEV"));
    assert_eq!(
        errors(&text),
        [
            "static_resources.clusters[1].lb_policy: MAGLEV is not supported yet",
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
            "    - name: a\n      filter_chain_match: { server_names: [a.example] }\n      filters:"
        ),
        chain.replace(
            "    - filters:",
            "    - name: a\n      filter_chain_match: { server_names: [b.example] }\n      filters:"
        ),
    );
    let text = BASE.replace(chain, &chains);
    let chains = "static_resources.listeners[0].filter_chains";
    assert_eq!(
        errors(&text),
        [
            format!(
                "{chains}[0].filter_chain_match.server_names: this Envoy field is not supported by weir yet"
            ),
            format!(
                "{chains}[1].filter_chain_match.server_names: this Envoy field is not supported by weir yet"
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
