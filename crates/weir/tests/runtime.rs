//! The runtime against a running `weir`: `layered_runtime`'s layers in `GET /runtime`, values
//! set by `POST /runtime_modify` (query or form body) flipping a route's `runtime_fraction`
//! and the fault filter on every worker, Envoy's answers when there is no admin layer, and
//! `/runtime` compared with Envoy 1.40's for the same config.

mod differential_support;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use differential_support::{Envoy, envoy_or_skip, free_port};
use support::{TIMEOUT, Weir, get};

/// A listener whose `/canary` route matches only the runtime's share `routing.canary`
/// (default 0 %), in front of a fault filter that never aborts unless the runtime says so.
const CONFIG: &str = r#"admin:
  address: { socket_address: { address: 127.0.0.1, port_value: ADMIN_PORT } }
layered_runtime:
  layers:
  - name: base
    static_layer:
      fault.http.abort.http_status: 418
      flags: { on: true, frac: { numerator: 5, denominator: TEN_THOUSAND } }
      text: hello
  - name: admin
    admin_layer: {}
static_resources:
  listeners:
  - name: ingress
    address: { socket_address: { address: 127.0.0.1, port_value: LISTENER_PORT } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: /canary, runtime_fraction: { default_value: { numerator: 0 }, runtime_key: routing.canary } }
                direct_response: { status: 200, body: { inline_string: "canary\n" } }
              - match: { prefix: / }
                direct_response: { status: 200, body: { inline_string: "stable\n" } }
          http_filters:
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: { http_status: 503, percentage: { numerator: 0 } }
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#;

fn config(admin: u16, listener: u16) -> String {
    CONFIG
        .replace("ADMIN_PORT", &admin.to_string())
        .replace("LISTENER_PORT", &listener.to_string())
}

/// One admin request on a fresh connection, with `body` sent as a form when given:
/// (status, body).
fn admin(addr: SocketAddr, method: &str, target: &str, form: Option<&str>) -> (u16, String) {
    let mut socket = TcpStream::connect(addr).expect("connect to admin");
    socket.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let body = form.unwrap_or_default();
    let content_type = match form {
        Some(_) => "content-type: application/x-www-form-urlencoded\r\n",
        None => "",
    };
    let request = format!(
        "{method} {target} HTTP/1.1\r\nhost: admin\r\n{content_type}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    socket.read_to_end(&mut raw).expect("read");
    let raw = String::from_utf8(raw).expect("utf-8");
    let (head, rest) = raw.split_once("\r\n\r\n").expect("a head");
    let status = head[9..12].parse().expect("status");
    // Envoy answers admin requests chunked; weir with a content-length.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

/// `GET path` on new connections, `n` times: the bodies.
fn bodies(weir: &Weir, path: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let response = get(weir.addr(), path).expect("request");
            format!("{} {}", response.status(), response.text())
        })
        .collect()
}

fn runtime_json(addr: SocketAddr) -> serde_json::Value {
    let (status, body) = admin(addr, "GET", "/runtime", None);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn runtime_modify_flips_a_route_and_a_fault_on_every_worker() {
    let weir = Weir::start(&config(0, 0), &["--concurrency", "2"]);
    assert_eq!(bodies(&weir, "/canary", 4), vec!["200 stable\n"; 4]);

    let ok = admin(
        weir.admin,
        "POST",
        "/runtime_modify?routing.canary=100",
        None,
    );
    assert_eq!(ok, (200, "OK\n".to_string()));
    // New connections spread over both workers: each reads the new value.
    assert_eq!(bodies(&weir, "/canary", 8), vec!["200 canary\n"; 8]);

    // A form body, as Envoy takes it; the static layer's status 418 applies.
    let form = admin(
        weir.admin,
        "POST",
        "/runtime_modify",
        Some("fault.http.abort.abort_percent=100"),
    );
    assert_eq!(form, (200, "OK\n".to_string()));
    assert_eq!(bodies(&weir, "/", 4), vec!["418 fault filter abort"; 4]);

    let json = runtime_json(weir.admin);
    assert_eq!(json["layers"], serde_json::json!(["base", "admin"]));
    assert_eq!(
        json["entries"]["fault.http.abort.abort_percent"],
        serde_json::json!({"layer_values": ["", "100"], "final_value": "100"})
    );
    assert_eq!(
        json["entries"]["fault.http.abort.http_status"],
        serde_json::json!({"layer_values": ["418", ""], "final_value": "418"})
    );

    // An empty value removes the override.
    let removed = admin(
        weir.admin,
        "POST",
        "/runtime_modify?fault.http.abort.abort_percent=&routing.canary=",
        None,
    );
    assert_eq!(removed.0, 200);
    assert_eq!(bodies(&weir, "/canary", 4), vec!["200 stable\n"; 4]);
    let json = runtime_json(weir.admin);
    assert!(json["entries"].get("routing.canary").is_none(), "{json:#}");
}

#[test]
fn runtime_modify_answers_as_envoy_does() {
    let weir = Weir::start(&config(0, 0), &[]);
    let (status, body) = admin(weir.admin, "POST", "/runtime_modify", None);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "usage: /runtime_modify?key1=value1&key2=value2&keyN=valueN\n       \
         or send the parameters as form values\n\
         use an empty value to remove a previously added override"
    );
    let (status, body) = admin(weir.admin, "GET", "/runtime_modify?a=1", None);
    assert_eq!(
        (status, body.as_str()),
        (405, "Method GET not allowed, POST required.")
    );
    let long = format!("a={}", "x".repeat(70 * 1024));
    let (status, _) = admin(weir.admin, "POST", "/runtime_modify", Some(&long));
    assert_eq!(status, 413, "a form body past 64 KiB is refused, not cut");

    let bare = CONFIG.replace(
        CONFIG
            .split("static_resources:")
            .next()
            .and_then(|head| head.split_once("layered_runtime:"))
            .map(|(_, layers)| layers)
            .expect("the layered_runtime section"),
        " { layers: [] }\n",
    );
    let weir = Weir::start(
        &bare
            .replace("ADMIN_PORT", "0")
            .replace("LISTENER_PORT", "0"),
        &[],
    );
    let (status, body) = admin(weir.admin, "POST", "/runtime_modify?a=1", None);
    assert_eq!((status, body.as_str()), (503, "No admin layer specified"));
    assert_eq!(
        runtime_json(weir.admin),
        serde_json::json!({"layers": [], "entries": {}})
    );
}

/// Keys whose `/runtime` text differs from Envoy's: a map value, which Envoy prints in
/// protobuf's debug format (with a marker protobuf varies on purpose) and weir as JSON.
const MAP_VALUED: &[&str] = &["flags.frac"];

#[test]
fn runtime_output_matches_envoy() {
    let Some(bin) = envoy_or_skip() else {
        return;
    };
    let (admin_port, listener_port) = (free_port(), free_port());
    let _envoy = Envoy::start(
        &bin,
        "runtime.yaml",
        &config(admin_port, listener_port),
        Some(admin_port),
        listener_port,
    );
    let envoy_admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let envoy_listener: SocketAddr = ([127, 0, 0, 1], listener_port).into();
    let weir = Weir::start(&config(0, 0), &[]);
    let answer = |addr: SocketAddr, path: &str| {
        let response = get(addr, path).expect("request");
        format!("{} {}", response.status(), response.text())
    };
    for (addr, listener, name) in [
        (envoy_admin, envoy_listener, "envoy"),
        (weir.admin, weir.addr(), "weir"),
    ] {
        assert_eq!(answer(listener, "/canary"), "200 stable\n", "{name}");
        let query = "/runtime_modify?routing.canary=100&text=";
        let set = admin(addr, "POST", query, None);
        assert_eq!(set, (200, "OK\n".to_string()), "{name}");
        assert_eq!(answer(listener, "/canary"), "200 canary\n", "{name}");
        let form = Some("fault.http.abort.abort_percent=100");
        let set = admin(addr, "POST", "/runtime_modify", form);
        assert_eq!(set, (200, "OK\n".to_string()), "{name}");
        assert_eq!(answer(listener, "/"), "418 fault filter abort", "{name}");
    }
    let mut envoy = runtime_json(envoy_admin);
    let mut ours = runtime_json(weir.admin);
    for key in MAP_VALUED {
        for json in [&mut envoy, &mut ours] {
            let entry = json["entries"]
                .as_object_mut()
                .and_then(|e| e.remove(*key))
                .unwrap_or_else(|| panic!("no {key}"));
            assert_eq!(entry["layer_values"][1], "", "{key}");
        }
    }
    assert_eq!(ours, envoy);
}
