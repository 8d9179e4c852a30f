//! Listener filters in memory: a PROXY protocol header that arrives in pieces, then a TLS
//! inspector after it; the chain chosen by the client the header names; the header gone from
//! the bytes the chain reads; the flow naming each filter that ran.

use super::{Harness, answering_chain, status};

/// Two chains: `proxied` for clients in 203.0.113.0/24, `direct` for the rest; each answers
/// with its name. The listener runs `filters` (YAML list entries, indented 4).
fn config(filters: &str) -> String {
    config_matching(
        filters,
        "{ source_prefix_ranges: [{ address_prefix: 203.0.113.0, prefix_len: 24 }] }",
    )
}

/// [`config`] with the first chain's `filter_chain_match`.
fn config_matching(filters: &str, first: &str) -> String {
    let chain = |name: &str, matching: &str| answering_chain(name, matching, name, name);
    format!(
        r#"static_resources:
  listeners:
  - name: test
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
    listener_filters:
{filters}    filter_chains:
{}{}  clusters:
  - name: backend
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 9001 }} }} }}
weir:
  flow_trace:
    mode: ALL
"#,
        chain("proxied", &format!("      filter_chain_match: {first}\n")),
        chain("direct", ""),
    )
}

const PROXY_PROTOCOL: &str = "    - name: envoy.filters.listener.proxy_protocol\n      typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol }\n";
const TLS_INSPECTOR: &str = "    - name: envoy.filters.listener.tls_inspector\n      typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }\n";

#[test]
fn a_header_in_pieces_names_the_client_that_picks_the_chain() {
    let mut h = Harness::new(&config(&format!("{PROXY_PROTOCOL}{TLS_INSPECTOR}")));
    let client = h.client(0);
    client.send("PROXY TCP4 203.0.113.9 ");
    h.settle();
    assert!(client.take_text().is_empty(), "waits for the whole line");
    client.send("198.51.100.1 40000 80\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    let answer = client.take_text();
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(
        answer.ends_with("proxied"),
        "the header was consumed: {answer}"
    );
    assert_eq!(h.stat("proxy_proto.versions.v1.found"), 1);
    assert_eq!(
        h.stat("tls_inspector.tls_not_found"),
        1,
        "the inspector ran after it"
    );
    h.settle();
    let flow = h.worker.recorder.flows().next().expect("a flow");
    let filters: Vec<String> = (flow.events.iter())
        .filter_map(|e| match &e.kind {
            weir_flow::EventKind::ListenerFilter { name } => Some(name.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        filters,
        [
            "envoy.filters.listener.proxy_protocol",
            "envoy.filters.listener.tls_inspector"
        ]
    );
}

#[test]
fn without_a_header_the_connection_is_reset_and_a_direct_client_picks_its_chain() {
    let mut h = Harness::new(&config(PROXY_PROTOCOL));
    let client = h.client(0);
    client.send("GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    assert!(client.take_text().is_empty());
    assert!(client.was_reset(), "reset, as Envoy resets it");
    assert_eq!(h.stat("proxy_proto.not_found_disallowed"), 1);
    assert_eq!(h.stat("downstream_cx_proxy_proto_error"), 1);

    // A v2 LOCAL header keeps the connection's own client (127.0.0.1): the direct chain.
    let client = h.client(0);
    let mut local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec();
    local.extend(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    client.send(local);
    h.settle();
    let answer = client.take_text();
    assert!(answer.ends_with("direct"), "{answer}");
}

const HTTP_INSPECTOR: &str = "    - name: envoy.filters.listener.http_inspector\n      typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector }\n";

#[test]
fn the_http_inspector_picks_a_chain_by_http_version() {
    let first = "{ application_protocols: [http/1.0] }";
    let mut h = Harness::new(&config_matching(HTTP_INSPECTOR, first));
    let ask = |h: &mut Harness, request: &str| {
        let client = h.client(0);
        client.send(request);
        h.settle();
        client.take_text()
    };
    let ten = ask(&mut h, "GET / HTTP/1.0\r\nhost: a\r\n\r\n");
    assert!(ten.ends_with("proxied"), "{ten}");
    let eleven = ask(&mut h, "GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    assert!(eleven.ends_with("direct"), "{eleven}");
    // Not HTTP: the inspector lets it through to the chain without the protocol.
    let other = ask(&mut h, "hello there\r\n\r\n");
    assert_eq!(status(&other), 400, "{other}");
    assert_eq!(h.stat("http_inspector.http10_found"), 1);
    assert_eq!(h.stat("http_inspector.http11_found"), 1);
    assert_eq!(h.stat("http_inspector.http_not_found"), 1);
}

#[test]
fn an_original_dst_cluster_goes_where_the_header_says() {
    let yaml = config(PROXY_PROTOCOL)
        .replace(
            "direct_response: { status: 200, body: { inline_string: proxied } }",
            "route: { cluster: passthrough }",
        )
        .replace(
            "  clusters:\n",
            "  clusters:\n  - name: passthrough\n    type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED\n    connect_timeout: 1s\n",
        );
    let mut h = Harness::new(&yaml);
    let client = h.client(0);
    client
        .send("PROXY TCP4 203.0.113.9 127.0.0.1 40000 9001\r\nGET /x HTTP/1.1\r\nhost: a\r\n\r\n");
    h.settle();
    let origin = h.accept("127.0.0.1:9001");
    assert!(
        origin.take_text().starts_with("GET /x "),
        "the header's destination"
    );
    origin.send("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    h.settle();
    assert!(client.take_text().ends_with("ok"));
}
