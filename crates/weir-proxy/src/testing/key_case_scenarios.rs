//! `header_key_format` through the whole proxy, as Envoy 1.40 writes names (checked against it
//! by the differential test's `key_case_*.yaml`): the connection manager's `preserve_case`
//! keeps the client's names on their way to the origin, even on a retry; the cluster's keeps
//! the origin's names and reason phrase on their way back; `proper_case_words` is how each
//! side writes everything else, local replies included.

use super::{Harness, bootstrap, hcm};

const ORIGIN: &str = "127.0.0.1:9001";

/// A `header_key_format` with the preserve_case formatter and `options` in its config,
/// indented `indent` spaces as a field of an `Http1ProtocolOptions`.
fn preserve(indent: usize, options: &str) -> String {
    let pad = " ".repeat(indent);
    format!(
        "{pad}header_key_format:\n\
         {pad}  stateful_formatter:\n\
         {pad}    name: envoy.http.stateful_header_formatters.preserve_case\n\
         {pad}    typed_config:\n\
         {pad}      \"@type\": type.googleapis.com/envoy.extensions.http.header_formatters.preserve_case.v3.PreserveCaseFormatterConfig\n\
         {pad}      {options}\n"
    )
}

/// `yaml` with `options` (an `Http1ProtocolOptions`, indented 8) in the cluster's typed HTTP
/// protocol options.
fn with_cluster_options(yaml: String, options: &str) -> String {
    let at = "    connect_timeout: 1s\n";
    assert!(yaml.contains(at));
    yaml.replace(
        at,
        &format!(
            "{at}    typed_extension_protocol_options:\n      \
             envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \
             \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        \
             explicit_http_config:\n          http_protocol_options:\n{options}"
        ),
    )
}

/// The header names, as written, of the first head in `text`.
fn names(text: &str) -> Vec<String> {
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n")
        .skip(1)
        .map(|l| l.split_once(':').map_or(l, |(n, _)| n).to_string())
        .collect()
}

#[test]
fn preserved_names_cross_the_proxy_both_ways_and_survive_a_retry() {
    let http1 = format!(
        "{}\n{}",
        hcm("http_protocol_options:"),
        preserve(12, "formatter_type_on_envoy_headers: PROPER_CASE")
    );
    let route = ", retry_policy: { retry_on: 5xx, num_retries: 1 }";
    let yaml = with_cluster_options(
        bootstrap(&http1, "", route, &[ORIGIN]),
        &preserve(12, "forward_reason_phrase: true"),
    );
    let mut h = Harness::new(&yaml);
    let client = h.client(0);
    client.send("GET /a HTTP/1.1\r\nHost: a\r\nX-Client-Case: 1\r\nx-DUP: 1\r\nX-Dup: 2\r\n\r\n");
    h.settle();
    let mut expected_upstream = vec!["Host", "X-Client-Case", "x-DUP", "x-DUP"];
    expected_upstream.extend([
        "X-Forwarded-Proto",
        "X-Request-Id",
        "X-Envoy-Expected-Rq-Timeout-Ms",
    ]);
    let first = h.accept(ORIGIN);
    assert_eq!(names(&first.take_text()), expected_upstream);
    first.send("HTTP/1.1 503 Busy\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    h.advance(std::time::Duration::from_secs(1));
    let origin = h.accept(ORIGIN);
    let retried = origin.take_text();
    assert_eq!(names(&retried), expected_upstream, "{retried}");
    origin.send("HTTP/1.1 200 Fine Thanks\r\nX-Origin: o\r\nCONTENT-length: 2\r\n\r\nhi");
    h.settle();
    let response = client.take_text();
    assert!(
        response.starts_with("HTTP/1.1 200 Fine Thanks\r\n"),
        "{response}"
    );
    // The origin's names as sent; weir's own in lower case (the cluster's formatter's default).
    assert_eq!(
        names(&response),
        [
            "X-Origin",
            "CONTENT-length",
            "x-envoy-upstream-service-time",
            "date",
            "server"
        ]
    );
}

#[test]
fn proper_case_writes_every_name_so_local_replies_too() {
    let http1 = format!(
        "{}\n{}",
        hcm("http_protocol_options:"),
        hcm("  header_key_format: { proper_case_words: {} }")
    );
    let yaml = bootstrap(&http1, "", "", &[ORIGIN]);
    let mut h = Harness::new(&yaml);
    let client = h.client(0);
    client.send("GET /a HTTP/1.1\r\nHOST: a\r\nx-client_case: 1\r\n\r\n");
    h.settle();
    let origin = h.accept(ORIGIN);
    // The cluster has no format: what goes upstream is in lower case.
    let received = origin.take_text();
    assert_eq!(
        names(&received)[..2],
        ["host", "x-client_case"],
        "{received}"
    );
    origin.send("HTTP/1.1 200 Fine\r\nx-origin-NAME: o\r\ncontent-length: 0\r\n\r\n");
    h.settle();
    let response = client.take_text();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert_eq!(
        names(&response),
        [
            "X-Origin-Name",
            "Content-Length",
            "X-Envoy-Upstream-Service-Time",
            "Date",
            "Server"
        ]
    );
    // A local reply is written the same way.
    client.send("GET /a HTTP/9.9\r\n\r\n");
    h.settle();
    let reply = client.take_text();
    assert!(
        reply.contains("\r\nContent-Length: ") && reply.contains("\r\nConnection: close\r\n"),
        "{reply}"
    );
    assert!(
        !names(&reply)
            .iter()
            .any(|n| n.bytes().next().is_some_and(|b| b.is_ascii_lowercase())),
        "{reply}"
    );
}
