//! `layered_runtime` (static and admin layers) and the runtime keys routes read
//! (`match.runtime_fraction`), read as Envoy 1.40 reads them.

mod support;

use support::{parse_errors as errors, parse_ok as ok};

use weir_config::{Fraction, RuntimeFraction, RuntimeLayerKind};

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
          route_config:
            virtual_hosts:
            - name: vh
              domains: ["*"]
              routes:
              - match: { prefix: / }
                direct_response: { status: 200 }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#;

fn with_runtime(layers: &str) -> String {
    format!("{BASE}layered_runtime:\n  layers:\n{layers}")
}

fn with_match(matcher: &str) -> String {
    let from = "match: { prefix: / }";
    assert_eq!(BASE.matches(from).count(), 1);
    BASE.replacen(from, matcher, 1)
}

#[test]
fn without_layered_runtime_there_is_no_layer() {
    assert!(ok(BASE).runtime.layers.is_empty());
}

#[test]
fn a_static_layer_flattens_nested_maps_to_dotted_keys() {
    let b = ok(&with_runtime(
        r#"  - name: base
    static_layer:
      fault:
        http:
          abort: { abort_percent: 50 }
      a.b: hello
      flag: true
      half: 1.5
      frac: { numerator: 5, denominator: TEN_THOUSAND }
      empty: {}
  - name: admin
    admin_layer: {}
"#,
    ));
    let layers = &b.runtime.layers;
    assert_eq!(layers.len(), 2);
    assert_eq!(
        (layers[0].name.as_str(), layers[1].name.as_str()),
        ("base", "admin")
    );
    assert_eq!(layers[1].kind, RuntimeLayerKind::Admin);
    let RuntimeLayerKind::Static(values) = &layers[0].kind else {
        panic!("{:?}", layers[0]);
    };
    let keys: Vec<&str> = values.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "a.b",
            "empty",
            "fault.http.abort.abort_percent",
            "flag",
            "frac",
            "half"
        ]
    );
    let v = &values["fault.http.abort.abort_percent"];
    assert_eq!((v.raw.as_str(), v.integer), ("50", Some(50)));
    assert_eq!(values["flag"].boolean, Some(true));
    assert_eq!(values["half"].integer, Some(1));
    assert_eq!(values["a.b"].raw, "hello");
    let five_per_10k = Fraction {
        per_million: 500,
        denominator: 10_000,
    };
    assert_eq!(values["frac"].fraction, Some(five_per_10k));
    assert_eq!(values["empty"].fraction.map(|f| f.per_million), Some(0));
}

#[test]
fn disk_and_rtds_layers_are_not_supported_yet() {
    let e = errors(&with_runtime(
        "  - name: disk\n    disk_layer: { symlink_root: /srv/runtime }\n  - name: rtds\n    rtds_layer: { name: r }\n",
    ));
    assert_eq!(
        e,
        [
            "layered_runtime.layers[0].disk_layer: this Envoy field is not supported by weir yet",
            "layered_runtime.layers[1].rtds_layer: this Envoy field is not supported by weir yet",
        ]
    );
}

#[test]
fn bad_layers_are_errors_naming_their_path() {
    let e = errors(&with_runtime(
        r#"  - name: a
    static_layer: { k: [1, 2] }
  - name: a
    admin_layer: {}
  - name: b
    admin_layer: {}
  - name: c
  - name: d
    static_layer: {}
    admin_layer: {}
"#,
    ));
    assert_eq!(
        e,
        [
            "layered_runtime.layers[0].static_layer.k: invalid runtime value for `k`: a list (a runtime value is a string, number, bool or map)",
            "layered_runtime.layers[1]: duplicate layer name `a`",
            "layered_runtime.layers[2]: at most one admin layer may be specified (the first is layered_runtime.layers[1])",
            "layered_runtime.layers[3]: a layer needs one of `static_layer` or `admin_layer`",
            "layered_runtime.layers[4].admin_layer: a layer takes one of `static_layer` and `admin_layer`, not both",
        ]
    );
}

#[test]
fn a_route_match_reads_runtime_fraction() {
    let b = ok(&with_match(
        "match: { prefix: /, runtime_fraction: { default_value: { numerator: 25 }, runtime_key: routing.canary } }",
    ));
    let route = &b.listeners[0].filter_chains[0]
        .http_connection_manager
        .as_ref()
        .unwrap()
        .route_config
        .virtual_hosts[0]
        .routes[0];
    assert_eq!(
        route.matcher.runtime_fraction,
        Some(RuntimeFraction {
            default: Fraction {
                per_million: 250_000,
                denominator: 100
            },
            runtime_key: "routing.canary".into(),
        })
    );
    let e = errors(&with_match(
        "match: { prefix: /, runtime_fraction: { runtime_key: k } }",
    ));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].ends_with(
            "routes[0].match.runtime_fraction.default_value: `default_value` is required"
        ),
        "{e:?}"
    );
}
