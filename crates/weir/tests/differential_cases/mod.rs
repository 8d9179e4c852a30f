//! The differential test's requests (`differential.rs`): a case is raw bytes (one request or
//! several pipelined) with a name; the battery is what every config gets: valid, edge and
//! malformed requests.

use crate::differential_support::Request;

/// A request the test sends to both proxies.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) request: Request,
}

/// A case of one request; `{host}` in `text` becomes the config's host.
pub(crate) fn case(name: &'static str, host: &str, text: &str) -> Case {
    cases_n(name, host, text, &[text.starts_with("HEAD ")])
}

/// A case whose bytes carry several requests (pipelined); `heads` says, per response, whether
/// it answers a HEAD.
pub(crate) fn cases_n(name: &'static str, host: &str, text: &str, heads: &[bool]) -> Case {
    Case {
        name,
        request: Request {
            bytes: text.replace("{host}", host).into_bytes(),
            heads: heads.to_vec(),
        },
    }
}

/// The cases every config gets: valid, edge and malformed requests to `host`.
pub(crate) fn battery(host: &str) -> Vec<Case> {
    let big = "a".repeat(8 * 1024);
    let huge = "a".repeat(70 * 1024);
    vec![
        case(
            "get",
            host,
            "GET /echo?q=1 HTTP/1.1\r\nHost: {host}\r\n\r\n",
        ),
        case("head", host, "HEAD /echo HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        case(
            "post-content-length",
            host,
            "POST /echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\r\nhello",
        ),
        case(
            "post-chunked",
            host,
            "POST /echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        ),
        case(
            "header-name-case",
            host,
            "GET /echo HTTP/1.1\r\nHost: {host}\r\nX-Mixed-Case: Value\r\nACCEPT: */*\r\n\r\n",
        ),
        case(
            "absolute-form",
            host,
            "GET http://{host}/abs?x=1 HTTP/1.1\r\nHost: {host}\r\n\r\n",
        ),
        case("missing-host", host, "GET /echo HTTP/1.1\r\n\r\n"),
        case("empty-host", host, "GET /echo HTTP/1.1\r\nHost:\r\n\r\n"),
        case("http10-no-host", host, "GET /echo HTTP/1.0\r\n\r\n"),
        cases_n(
            "http10-keep-alive",
            host,
            "GET /echo HTTP/1.0\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n\
             GET /echo2 HTTP/1.0\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n",
            &[false, false],
        ),
        cases_n(
            "pipelined",
            host,
            "GET /one HTTP/1.1\r\nHost: {host}\r\n\r\nHEAD /two HTTP/1.1\r\nHost: {host}\r\n\r\n\
             GET /three HTTP/1.1\r\nHost: {host}\r\n\r\n",
            &[false, true, false],
        ),
        case(
            "connection-close",
            host,
            "GET /echo HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        ),
        case(
            "bad-chunk-size",
            host,
            "POST /echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ),
        case(
            "content-length-and-chunked",
            host,
            "POST /echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\n",
        ),
        case(
            "two-content-lengths",
            host,
            "POST /echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        case(
            "gzip-chunked",
            host,
            "POST /echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ),
        case(
            "header-8k",
            host,
            &format!("GET /echo HTTP/1.1\r\nHost: {{host}}\r\nx-big: {big}\r\n\r\n"),
        ),
        case(
            "headers-70k",
            host,
            &format!("GET /echo HTTP/1.1\r\nHost: {{host}}\r\nx-huge: {huge}\r\n\r\n"),
        ),
        case(
            "target-70k",
            host,
            &format!("GET /{huge} HTTP/1.1\r\nHost: {{host}}\r\n\r\n"),
        ),
        case(
            "unknown-method",
            host,
            "FOO /echo HTTP/1.1\r\nHost: {host}\r\n\r\n",
        ),
        case(
            "query-and-escapes",
            host,
            "GET /a%20b/./c/../d?x=%2F&y HTTP/1.1\r\nHost: {host}\r\n\r\n",
        ),
        case(
            "options-star",
            host,
            "OPTIONS * HTTP/1.1\r\nHost: {host}\r\n\r\n",
        ),
        cases_n(
            "expect-100-continue",
            host,
            "POST /echo HTTP/1.1\r\nHost: {host}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
            &[false],
        ),
        case(
            "obs-fold",
            host,
            "GET /echo HTTP/1.1\r\nHost: {host}\r\nx-folded: a\r\n b\r\n\r\n",
        ),
        case(
            "space-in-target",
            host,
            "GET /a b HTTP/1.1\r\nHost: {host}\r\n\r\n",
        ),
        case(
            "http-2-0-version",
            host,
            "GET /echo HTTP/2.0\r\nHost: {host}\r\n\r\n",
        ),
        case(
            "space-before-colon",
            host,
            "GET /echo HTTP/1.1\r\nHost: {host}\r\nx-a : b\r\n\r\n",
        ),
        case(
            "nul-in-value",
            host,
            "GET /echo HTTP/1.1\r\nHost: {host}\r\nx-a: b\0c\r\n\r\n",
        ),
        case(
            "client-request-id-and-envoy-headers",
            host,
            "GET /echo HTTP/1.1\r\nHost: {host}\r\nx-request-id: client-chosen\r\n\
             x-envoy-max-retries: 3\r\nx-forwarded-for: 192.0.2.1\r\n\r\n",
        ),
        case(
            "client-envoy-headers",
            host,
            "GET /echo HTTP/1.1\r\nHost: {host}\r\nx-envoy-retry-on: 5xx\r\n\
             x-envoy-retry-grpc-on: cancelled\r\nx-envoy-retriable-status-codes: 409\r\n\
             x-envoy-retriable-header-names: x-a\r\nx-envoy-upstream-alt-stat-name: alt\r\n\
             x-envoy-upstream-rq-timeout-ms: 500\r\nx-envoy-upstream-rq-per-try-timeout-ms: 100\r\n\
             x-envoy-upstream-rq-timeout-alt-response: 204\r\nx-envoy-expected-rq-timeout-ms: 77\r\n\
             x-envoy-force-trace: 1\r\nx-envoy-ip-tags: t\r\nx-envoy-original-url: http://x/\r\n\
             x-envoy-hedge-on-per-try-timeout: true\r\nx-envoy-decorator-operation: op\r\n\
             x-envoy-downstream-service-cluster: dc\r\nx-envoy-downstream-service-node: dn\r\n\
             x-envoy-internal: true\r\nx-envoy-external-address: 192.0.2.66\r\n\
             x-envoy-original-path: /orig\r\nx-envoy-attempt-count: 9\r\nx-envoy-foo: bar\r\n\r\n",
        ),
        case(
            "upgrade-websocket",
            host,
            "GET /echo HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        ),
        case(
            "connection-names-a-header",
            host,
            "GET /echo HTTP/1.1\r\nHost: {host}\r\nConnection: x-hop\r\nx-hop: 1\r\nkeep-alive: 5\r\n\r\n",
        ),
    ]
}
