//! `weir -c FILE` as a whole process: traffic through it with curl and a raw client, the admin
//! endpoints, several workers, and the ways startup fails.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use support::{Client, Origin, TempFile, Weir, curl, echo_fields, get, proxy_config, run_weir};

/// Splits `curl -i` output into (status, lower-cased head text, body).
fn split_curl(stdout: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head/body split in curl output:\n{text}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn curl_get_and_post_through_weir() {
    let origin = Origin::standard();
    let weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "1"]);
    let base = format!("http://{}", weir.addr());

    let out = curl(&["-i", &format!("{base}/hello/world?x=1")]);
    assert!(out.status.success(), "curl GET failed: {out:?}");
    let (status, head, body) = split_curl(&out.stdout);
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(head.contains("\r\nx-proxied-by: weir"), "{head}");
    assert!(head.contains("\r\nx-origin: test-origin"), "{head}");
    let seen = echo_fields(body.as_bytes());
    assert_eq!(seen["method"], "GET", "{body}");
    assert_eq!(seen["target"], "/hello/world?x=1", "{body}");
    assert_eq!(seen["body-bytes"], "0", "{body}");
    assert_eq!(
        seen["request-id"], "present",
        "weir generates x-request-id: {body}"
    );

    let out = curl(&[
        "-i",
        "-H",
        "content-type: text/plain",
        "--data-binary",
        "hello weir",
        &format!("{base}/submit"),
    ]);
    assert!(out.status.success(), "curl POST failed: {out:?}");
    let (status, head, body) = split_curl(&out.stdout);
    assert_eq!(status, 200, "{head}\n{body}");
    let seen = echo_fields(body.as_bytes());
    assert_eq!(seen["method"], "POST", "{body}");
    assert_eq!(seen["target"], "/submit", "{body}");
    assert_eq!(seen["body-bytes"], "10", "{body}");
    assert_eq!(seen["body"], "hello weir", "{body}");

    // A direct_response route never reaches the origin.
    let before = origin
        .stats
        .started
        .load(std::sync::atomic::Ordering::Relaxed);
    let out = curl(&["-i", &format!("{base}/local")]);
    let (status, _, body) = split_curl(&out.stdout);
    assert_eq!((status, body.as_str()), (200, "local\n"));
    assert_eq!(
        origin
            .stats
            .started
            .load(std::sync::atomic::Ordering::Relaxed),
        before
    );
}

#[test]
fn curl_post_with_expect_100_continue() {
    let origin = Origin::standard();
    let weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "1"]);
    let body: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    let mut sum = support::Checksum::default();
    sum.update(&body);
    let file = TempFile::new("post-body.bin", &body);
    let out = curl(&[
        "-i",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &format!("@{}", file.path().display()),
        &format!("http://{}/big-post", weir.addr()),
    ]);
    assert!(out.status.success(), "curl POST failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    // curl -i prints the interim 100 Continue head before the final one.
    let final_part = text.rsplit_once("HTTP/1.1 ").map_or(&*text, |(_, r)| r);
    assert!(final_part.starts_with("200"), "{text}");
    let seen = echo_fields(final_part.as_bytes());
    assert_eq!(seen["body-bytes"], body.len().to_string(), "{text}");
    assert_eq!(seen["body-sum"], sum.finish(), "{text}");
}

#[test]
fn keep_alive_requests_share_one_connection() {
    let origin = Origin::standard();
    let weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "1"]);
    let mut client = Client::connect(weir.addr()).expect("connect");
    for i in 0..5 {
        let response = client.get(&format!("/ka/{i}")).expect("response");
        assert_eq!(response.status(), 200);
        assert!(
            !response.head.connection_has("close"),
            "{:?}",
            response.head
        );
        assert_eq!(echo_fields(&response.body)["target"], format!("/ka/{i}"));
    }
    // weir pooled its upstream connection: the origin saw one connection for five requests.
    assert_eq!(
        origin
            .stats
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn close_delimited_origin_response_is_rechunked_and_completes() {
    let origin = Origin::standard();
    let weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "1"]);
    let mut client = Client::connect(weir.addr()).expect("connect");
    // The origin writes its response and FIN back to back; weir must see the FIN (the body's
    // only end) and finish the chunked response at once, not cut it at the 14 s route timeout.
    client
        .set_read_timeout(Duration::from_secs(5))
        .expect("timeout");
    for i in 0..3 {
        let target = format!("/cd/{i}?close_delimited=1");
        let response = client.get(&target).expect("a complete response");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.head.header("transfer-encoding"),
            Some("chunked"),
            "{:?}",
            response.head
        );
        assert!(
            !response.head.connection_has("close"),
            "{:?}",
            response.head
        );
        assert_eq!(echo_fields(&response.body)["target"], target);
    }
}

#[test]
fn client_half_close_after_request_gets_response_then_close() {
    let origin = Origin::standard();
    let weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "1"]);
    for i in 0..3 {
        let mut client = Client::connect(weir.addr()).expect("connect");
        client
            .set_read_timeout(Duration::from_secs(5))
            .expect("timeout");
        // Request and FIN leave together.
        client
            .send(format!("GET /hc/{i} HTTP/1.1\r\nhost: t\r\n\r\n").as_bytes())
            .expect("send");
        client.shutdown_write().expect("shutdown");
        let response = client.read_response().expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(echo_fields(&response.body)["target"], format!("/hc/{i}"));
        assert!(
            client.closed_by_peer(),
            "weir must close a half-closed connection once it has answered"
        );
    }
}

#[test]
fn admin_ready_and_server_info() {
    let origin = Origin::standard();
    let weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "1"]);

    let ready = get(weir.admin, "/ready").expect("GET /ready");
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().trim(), "LIVE");

    let out = curl(&["-i", &format!("http://{}/ready", weir.admin)]);
    let (status, _, body) = split_curl(&out.stdout);
    assert_eq!((status, body.trim()), (200, "LIVE"));

    let info = get(weir.admin, "/server_info").expect("GET /server_info");
    assert_eq!(info.status(), 200);
    assert_eq!(info.head.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&info.body)
        .unwrap_or_else(|e| panic!("/server_info is not JSON ({e}): {}", info.text()));
    assert_eq!(json["state"], "LIVE", "{json:#}");
    assert_eq!(json["node"]["id"], "weir-bintest", "{json:#}");
    assert_eq!(json["command_line_options"]["concurrency"], 1, "{json:#}");

    let missing = get(weir.admin, "/nope").expect("GET /nope");
    assert_eq!(missing.status(), 404);
}

#[test]
fn two_workers_serve_many_short_connections() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 8;
    let origin = Origin::standard();
    let weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "2"]);
    let addr = weir.addr();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                (0..PER_THREAD)
                    .map(|i| {
                        let mut client = Client::connect(addr).expect("connect");
                        let target = format!("/short/{t}/{i}");
                        client
                            .send(
                                format!(
                                    "GET {target} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
                                )
                                .as_bytes(),
                            )
                            .expect("send");
                        let response = client.read_response().expect("response");
                        let ok = response.status() == 200
                            && response.head.connection_has("close")
                            && echo_fields(&response.body)["target"] == target;
                        (ok, client.closed_by_peer())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<(bool, bool)> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect();
    assert_eq!(results.len(), THREADS * PER_THREAD);
    assert!(results.iter().all(|(ok, _)| *ok), "some request failed");
    assert!(
        results.iter().all(|(_, closed)| *closed),
        "weir must close each `connection: close` connection"
    );

    let info = get(weir.admin, "/server_info").expect("GET /server_info");
    let json: serde_json::Value = serde_json::from_slice(&info.body).expect("JSON");
    assert_eq!(json["command_line_options"]["concurrency"], 2, "{json:#}");
    let total = THREADS * PER_THREAD;
    let stats = get(
        weir.admin,
        "/stats?filter=%5Ehttp.ingress.downstream_(cx%7Crq)_total%24",
    )
    .expect("GET /stats")
    .text();
    assert_eq!(
        stats,
        format!(
            "http.ingress.downstream_cx_total: {total}\nhttp.ingress.downstream_rq_total: {total}\n"
        )
    );
}

#[test]
fn run_with_an_invalid_config_exits_1() {
    let config = proxy_config("127.0.0.1:9".parse().expect("addr")).replacen(
        "lb_policy: ROUND_ROBIN",
        "lb_policy: CLUSTER_PROVIDED",
        1,
    );
    let file = TempFile::new("invalid-run.yaml", config);
    let ran = run_weir(
        &["-c", &file.path().to_string_lossy()],
        Duration::from_secs(15),
    );
    assert_eq!(ran.code(), Some(1), "{ran}");
    assert!(
        ran.stderr
            .contains(&format!("{}: invalid", file.path().display())),
        "{ran}"
    );
    assert!(
        ran.stderr.contains(
            "static_resources.clusters[0].lb_policy: lb_policy CLUSTER_PROVIDED is only for an ORIGINAL_DST cluster"
        ),
        "{ran}"
    );
    assert!(
        !ran.stderr.contains("listening"),
        "nothing may be bound: {ran}"
    );
}

#[test]
fn run_with_the_listener_port_in_use_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let config = proxy_config("127.0.0.1:9".parse().expect("addr")).replacen(
        "  - name: ingress\n    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }",
        &format!("  - name: ingress\n    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}"),
        1,
    );
    assert!(config.contains(&format!("port_value: {port}")));
    let file = TempFile::new("port-in-use.yaml", config);
    let ran = run_weir(
        &["-c", &file.path().to_string_lossy(), "--concurrency", "2"],
        Duration::from_secs(15),
    );
    assert_eq!(ran.code(), Some(1), "{ran}");
    assert!(
        ran.stderr
            .contains(&format!("listener ingress on 127.0.0.1:{port}")),
        "the error must name the listener and its address: {ran}"
    );
    assert!(ran.stderr.contains("in use"), "{ran}");
    drop(taken);
}

#[test]
fn run_with_the_admin_port_in_use_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let config = proxy_config("127.0.0.1:9".parse().expect("addr")).replacen(
        "admin:\n  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }",
        &format!(
            "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}"
        ),
        1,
    );
    assert!(config.contains(&format!("port_value: {port}")));
    let file = TempFile::new("admin-in-use.yaml", config);
    let ran = run_weir(
        &["-c", &file.path().to_string_lossy()],
        Duration::from_secs(15),
    );
    assert_eq!(ran.code(), Some(1), "{ran}");
    assert!(
        ran.stderr
            .contains(&format!("admin listener on 127.0.0.1:{port}")),
        "{ran}"
    );
    assert!(ran.stderr.contains("in use"), "{ran}");
    drop(taken);
}

#[test]
fn run_without_a_config_is_a_usage_error() {
    let ran = run_weir(&[], Duration::from_secs(15));
    assert_eq!(ran.code(), Some(2), "{ran}");
    assert!(ran.stderr.contains("no config given"), "{ran}");
}

#[test]
fn a_second_weir_on_a_port_another_weir_listens_on_fails_clearly() {
    let origin: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    // The first one shares its port between its two workers through SO_REUSEPORT.
    let first = support::Weir::start(&support::proxy_config(origin), &["--concurrency", "2"]);
    let port = first.addr().port();
    let config = support::proxy_config(origin);
    let listener = "    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n    filter_chains:";
    assert_eq!(config.matches(listener).count(), 1);
    let config = config.replace(
        listener,
        &listener.replace("port_value: 0", &format!("port_value: {port}")),
    );
    let file = support::TempFile::new("second.yaml", config);
    let ran = support::run_weir(
        &["-c", &file.path().to_string_lossy()],
        std::time::Duration::from_secs(15),
    );
    assert_eq!(ran.code(), Some(1), "{ran}");
    assert!(
        ran.stderr.contains(&format!(
            "listener ingress on 127.0.0.1:{port}: address in use: another process already listens on it"
        )),
        "{ran}"
    );
    drop(first);
}
