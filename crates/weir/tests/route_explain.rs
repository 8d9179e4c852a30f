//! `weir route`: what it says a request gets is what the running proxy then does with the
//! same config and request (cluster, status, `location`); it says why routes were passed
//! over; `--expect` passes a right table and fails a wrong one.

mod differential_support;
mod support;

use std::net::SocketAddr;
use std::process::Command;

use differential_support::free_port;
use support::{Client, Origin, Reply, TempFile, Weir, endpoint_line, weir_bin};

/// Two clusters whose origins answer with their name; routes of every action kind.
fn config(port: u16, main: SocketAddr, canary: SocketAddr) -> String {
    let cluster = |name: &str, lb: &str, origin: SocketAddr| {
        format!(
            "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n    lb_policy: {lb}\n    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n",
            origin.port()
        )
    };
    format!(
        r#"admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }} }}
static_resources:
  listeners:
  - name: front
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - name: http
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
          route_config:
            virtual_hosts:
            - name: api
              domains: ["api.example.com", "api.example.com:*"]
              routes:
              - name: health
                match: {{ path: /healthz }}
                direct_response: {{ status: 200, body: {{ inline_string: "ok" }} }}
              - name: canary
                match: {{ prefix: /v1, headers: [ {{ name: x-canary, present_match: true }} ] }}
                route: {{ cluster: canary, hash_policy: [ {{ header: {{ header_name: x-user }} }} ] }}
              - name: v1
                match: {{ prefix: /v1/ }}
                route: {{ cluster: main, prefix_rewrite: /, timeout: 3s }}
                request_headers_to_add: [ {{ header: {{ key: x-route, value: v1 }} }} ]
              - name: old
                match: {{ prefix: /old }}
                redirect: {{ path_redirect: /new, response_code: FOUND }}
            - name: www
              domains: ["*"]
              routes:
              - name: to-https
                match: {{ prefix: /secure, headers: [ {{ name: x-forwarded-proto, string_match: {{ exact: http }} }} ] }}
                redirect: {{ https_redirect: true }}
              - match: {{ prefix: / }}
                route: {{ cluster: main, retry_policy: {{ retry_on: "5xx,reset", num_retries: 2 }} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
{}{}"#,
        cluster("main", "ROUND_ROBIN", main),
        cluster("canary", "RING_HASH", canary),
    )
}

/// `(method, path, host header, extra header)` of each request.
const REQUESTS: &[(&str, &str, &str, Option<&str>)] = &[
    ("GET", "/healthz", "api.example.com", None),
    ("GET", "/v1/items", "api.example.com", Some("x-canary: 1")),
    ("GET", "/v1/items", "api.example.com", None),
    ("POST", "/old/page?x=1", "api.example.com", None),
    ("GET", "/nothing", "api.example.com", None),
    ("GET", "/", "other.example.com", None),
    // Matched on the `x-forwarded-proto` the connection manager sets.
    ("GET", "/secure/x", "other.example.com", None),
];

fn weir_route(args: &[&str]) -> (i32, String) {
    let out = Command::new(weir_bin())
        .arg("route")
        .args(args)
        .output()
        .expect("weir route");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn what_weir_route_says_is_what_the_proxy_does() {
    let main = Origin::start(|_| Ok(Reply::text(200, "main")));
    let canary = Origin::start(|_| Ok(Reply::text(200, "canary")));
    let port = free_port();
    let file = TempFile::new("route.yaml", config(port, main.addr, canary.addr));
    let path = file.path().display().to_string();
    let weir = Weir::start(
        &config(port, main.addr, canary.addr),
        &["--concurrency", "1"],
    );
    for &(method, target, host, header) in REQUESTS {
        let url = format!("http://{host}:{port}{target}");
        let mut args = vec!["-c", &path, "--format", "json", method, &url];
        if let Some(h) = header {
            args.extend(["-H", h]);
        }
        let (code, out) = weir_route(&args);
        assert_eq!(code, 0, "{out}");
        let said: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
        // The same request, as curl would send it.
        let mut client = Client::connect(weir.addr()).expect("connect");
        let extra = header.map_or(String::new(), |h| format!("{h}\r\n"));
        let request = format!(
            "{method} {target} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-length: 0\r\n{extra}\r\n"
        );
        client.send(request.as_bytes()).expect("send");
        let got = client.read_response().expect("response");
        let body = got.text();
        match said["action"].as_str() {
            Some("forward") => {
                assert_eq!(got.status(), 200, "{url}");
                assert_eq!(said["cluster"], body.trim(), "{url}: {out}");
            }
            _ => {
                assert_eq!(said["status"], got.status(), "{url}: {out}");
                let location = got.head.header("location").map(str::to_owned);
                assert_eq!(
                    said["location"].as_str().map(str::to_owned),
                    location,
                    "{url}"
                );
            }
        }
    }
}

#[test]
fn the_text_says_why_routes_were_passed_over() {
    let port = free_port();
    let any = "127.0.0.1:9".parse().unwrap();
    let file = TempFile::new("route.yaml", config(port, any, any));
    let path = file.path().display().to_string();
    let url = format!("http://api.example.com:{port}/v1/items?q=1");
    let (code, out) = weir_route(&["-c", &path, &url, "-H", "x-user: alice"]);
    assert_eq!(code, 0, "{out}");
    for want in [
        "listener        front",
        "filter chain    http",
        "virtual host    api",
        "passed over     route #0 `health`: path /v1/items is not /healthz",
        "passed over     route #1 `canary`: header x-canary is absent",
        "route           #2 `v1`",
        "action          forward to cluster main",
        "upstream path   /items?q=1",
        "header set      x-route: v1",
        "timeout         3s",
    ] {
        assert!(out.contains(want), "no `{want}` in\n{out}");
    }
    // A ring hash cluster: the hash key; the catch-all: its retries.
    let (_, out) = weir_route(&[
        "-c",
        &path,
        &url,
        "-H",
        "x-canary: 1",
        "-H",
        "x-user: alice",
    ]);
    assert!(out.contains("hash key"), "{out}");
    let other = format!("http://other:{port}/");
    let (_, out) = weir_route(&["-c", &path, &other]);
    assert!(
        out.contains("retries         retry_on 5xx,reset (2 retries)"),
        "{out}"
    );
    // A listener named: the URL's port is the Host's only (80 here, no listener on it).
    let (code, out) = weir_route(&[
        "-c",
        &path,
        "--listener",
        "front",
        "http://api.example.com/healthz",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("action          direct response 200"), "{out}");
    // No listener on the port: said, and exit 1.
    let (code, out) = weir_route(&["-c", &path, "http://api.example.com:1/"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("no listener on port 1 (listeners: front on"),
        "{out}"
    );
}

#[test]
fn expect_passes_a_right_table_and_fails_a_wrong_one() {
    let port = free_port();
    let any = "127.0.0.1:9".parse().unwrap();
    let file = TempFile::new("route.yaml", config(port, any, any));
    let path = file.path().display().to_string();
    let table = |canary: &str| {
        format!(
            "# request => what it gets\n\
             GET http://api.example.com:{port}/healthz => 200\n\
             GET http://api.example.com:{port}/v1/a -H 'x-canary: yes' => cluster {canary}\n\
             {{\"method\": \"GET\", \"url\": \"http://api.example.com:{port}/v1/a\"}} => cluster main\n\
             POST http://api.example.com:{port}/old/x => 302 http://api.example.com:{port}/new\n\
             http://api.example.com:{port}/zzz => 404\n"
        )
    };
    let right = TempFile::new("expect-right.txt", table("canary"));
    let (code, out) = weir_route(&["-c", &path, "--expect", &right.path().display().to_string()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("5 checked, 0 wrong"), "{out}");
    let wrong = TempFile::new("expect-wrong.txt", table("main"));
    let (code, out) = weir_route(&["-c", &path, "--expect", &wrong.path().display().to_string()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("expected cluster main\n  got      cluster canary"),
        "{out}"
    );
    assert!(out.contains("5 checked, 1 wrong"), "{out}");
}

/// Admin `/route` on the running config: the same answer, plus the cluster's live hosts and,
/// for a ring hash cluster, the host the request's hash picks; a request sent with the same
/// hash input lands there.
#[test]
fn admin_route_shows_live_hosts_and_the_hash_pick() {
    let main = Origin::start(|_| Ok(Reply::text(200, "main")));
    let one = Origin::start(|_| Ok(Reply::text(200, "canary-1")));
    let two = Origin::start(|_| Ok(Reply::text(200, "canary-2")));
    let port = free_port();
    let endpoint = endpoint_line;
    let text = config(port, main.addr, one.addr).replace(
        &endpoint(one.addr),
        &format!("{}{}", endpoint(one.addr), endpoint(two.addr)),
    );
    let weir = Weir::start(&text, &["--concurrency", "1"]);
    for user in ["alice", "bob", "carol", "dave"] {
        let query = format!(
            "/route?host=api.example.com&path=/v1/a&header=x-canary:1&header=x-user:{user}&format=json"
        );
        let answer: serde_json::Value =
            serde_json::from_str(&support::get(weir.admin, &query).expect("/route").text())
                .expect("json");
        assert_eq!(answer["cluster"], "canary", "{answer}");
        assert_eq!(
            answer["hosts"].as_array().map(Vec::len),
            Some(2),
            "{answer}"
        );
        let picked = answer["hash_picks"].as_str().expect("a pick").to_owned();
        let mut client = Client::connect(weir.addr()).expect("connect");
        let request = format!(
            "GET /v1/a HTTP/1.1\r\nhost: api.example.com\r\nx-canary: 1\r\nx-user: {user}\r\n\r\n"
        );
        client.send(request.as_bytes()).expect("send");
        let body = client.read_response().expect("response").text();
        let served_by = if body.trim() == "canary-1" {
            one.addr
        } else {
            two.addr
        };
        assert_eq!(picked, served_by.to_string(), "{user}: {answer}");
    }
    let text = support::get(weir.admin, "/route?host=api.example.com&path=/healthz")
        .expect("/route")
        .text();
    assert!(
        text.contains("action          direct response 200"),
        "{text}"
    );
    let bad = support::get(weir.admin, "/route?path=/").expect("/route");
    assert_eq!(bad.status(), 400);
}
