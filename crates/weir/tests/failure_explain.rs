//! Admin `GET /explain` on a running weir over real sockets: a refused cluster retried until
//! its retries ran out, and an origin that answers 503, are told attempt by attempt, by
//! stream id, by `x-request-id` and in the list of the latest failures; requests that went
//! well are not in it; bad queries are refused.

mod differential_support;
mod support;

use support::{Client, Origin, Reply, Weir, proxy_config, refusing_address};

/// [`proxy_config`] with two more routes: `/dead` to a cluster nothing listens for (retried
/// on connect failure), `/busy` retried once on 5xx.
fn config(origin: std::net::SocketAddr, dead: std::net::SocketAddr) -> String {
    let routes = "              - match: { prefix: /dead }\n                route: { cluster: dead, retry_policy: { retry_on: connect-failure, num_retries: 2, retry_back_off: { base_interval: 0.005s } } }\n              - match: { prefix: /busy }\n                route: { cluster: origin, retry_policy: { retry_on: 5xx, num_retries: 1, retry_back_off: { base_interval: 0.005s } } }\n";
    let dead_cluster = format!(
        "  - name: dead\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: dead\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n",
        dead.port()
    );
    proxy_config(origin).replace(
        "              - match: { path: /local }\n",
        &format!("{routes}              - match: {{ path: /local }}\n"),
    ) + &dead_cluster
}

fn send(weir: &Weir, path: &str, request_id: &str) -> u16 {
    let mut client = Client::connect(weir.addr()).expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nhost: a\r\nx-request-id: {request_id}\r\n\r\n");
    client.send(request.as_bytes()).expect("send");
    client.read_response().expect("a response").head.status()
}

fn explain(weir: &Weir, query: &str) -> (u16, String) {
    let response = support::get(weir.admin, &format!("/explain{query}")).expect("/explain");
    (response.head.status(), response.text())
}

#[test]
fn explain_tells_each_failure_attempt_by_attempt() {
    let origin = Origin::start(|req| {
        Ok(match req.target() {
            "/busy" => Reply::text(503, "busy"),
            _ => Reply::text(200, "fine"),
        })
    });
    let (_held, dead) = refusing_address();
    let weir = Weir::start(&config(origin.addr, dead), &["--concurrency", "1"]);
    assert_eq!(send(&weir, "/fine", "ok-1"), 200);
    assert_eq!(send(&weir, "/dead", "dead-1"), 503);
    assert_eq!(send(&weir, "/busy", "busy-1"), 503);

    let (status, text) = explain(&weir, "?request_id=dead-1");
    assert_eq!(status, 200, "{text}");
    for line in [
        "request    GET a /dead (x-request-id dead-1)",
        "route      virtual host all, (unnamed route) -> cluster dead",
        "response   503, answered by weir",
        "flags      URX,UF",
        "details    upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
        "why        connection refused",
        "retried (retry 1 of 2) after a",
        "retried (retry 2 of 2) after a",
        "not retried: retries exhausted (num_retries 2)",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
    assert_eq!(
        text.matches("new connection: connection refused").count(),
        3,
        "{text}"
    );

    // The list: newest first, only failures.
    let (status, list) = explain(&weir, "?status=5xx");
    assert_eq!(status, 200);
    let lines: Vec<&str> = list.lines().filter(|l| l.contains(" stream=")).collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].contains("503 GET a/busy URX: the origin answered 503"),
        "{list}"
    );
    assert!(
        lines[1].contains("503 GET a/dead URX,UF: connection refused"),
        "{list}"
    );
    assert!(!list.contains("/fine"), "{list}");

    // One in full by its stream id, as JSON.
    let id = lines[0]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("stream="))
        .expect("a stream id");
    let (status, json) = explain(&weir, &format!("?stream={id}&format=json"));
    assert_eq!(status, 200, "{json}");
    let record: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(record["request_id"], "busy-1");
    assert_eq!(record["response_code_details"], "via_upstream");
    assert_eq!(record["response_flags"], "URX");
    let attempts = record["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{record}");
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[0]["retry"]["decision"], "retry");
    assert!(attempts[0]["retry"]["backoff_ms"].is_number(), "{record}");
    assert_eq!(attempts[1]["retry"]["decision"], "retries_exhausted");
    assert_eq!(attempts[1]["host"], origin.addr.to_string());

    // What is not there, and what is not a query.
    assert_eq!(explain(&weir, "?request_id=ok-1").0, 404);
    assert_eq!(explain(&weir, "?stream=123456789").0, 404);
    assert_eq!(explain(&weir, "?status=5x").0, 400);
    assert_eq!(explain(&weir, "?format=xml").0, 400);
    assert_eq!(explain(&weir, "?color=red").0, 400);
}
