//! `ORIGINAL_DST` clusters over real sockets, weir and Envoy 1.40 given the same config and the
//! same requests: each request goes to the destination its `x-envoy-original-dst-host` names,
//! a host appears per destination, and hosts left unused go after `cleanup_interval`.

mod differential_support;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use differential_support::{Envoy, envoy_or_skip, envoy_ports};
use support::{Client, Origin, Reply, Weir, get, proxy_config};

const TIMEOUT: Duration = Duration::from_secs(10);

fn config(any_origin: SocketAddr) -> String {
    let endpoints = format!(
        "    load_assignment:\n      cluster_name: origin\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n",
        any_origin.port()
    );
    proxy_config(any_origin)
        .replace(&endpoints, "")
        .replace("    type: STATIC\n", "    type: ORIGINAL_DST\n")
        .replace(
            "    lb_policy: ROUND_ROBIN\n",
            "    lb_policy: CLUSTER_PROVIDED\n    cleanup_interval: 0.2s\n    original_dst_lb_config: { use_http_header: true }\n",
        )
}

fn hosts(admin: SocketAddr) -> Vec<String> {
    let body = get(admin, "/clusters").expect("/clusters").text();
    let mut hosts: Vec<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("origin::")?.strip_suffix("::weight::1"))
        .map(str::to_owned)
        .collect();
    hosts.sort();
    hosts
}

#[derive(Debug, PartialEq)]
struct Outcome {
    answers: Vec<(u16, String)>,
    hosts: Vec<String>,
    after_cleanup: Vec<String>,
    /// After five cleanup intervals, a host whose connection stays pooled.
    pooled_stays: Vec<String>,
}

fn run(
    addr: SocketAddr,
    admin: SocketAddr,
    a: SocketAddr,
    b: SocketAddr,
    keeps: SocketAddr,
) -> Outcome {
    let mut client = Client::connect(addr).expect("connect");
    client.set_read_timeout(TIMEOUT).expect("timeout");
    let mut answers = Vec::new();
    for to in [a, b, a] {
        let request =
            format!("GET / HTTP/1.1\r\nhost: x\r\nx-envoy-original-dst-host: {to}\r\n\r\n");
        client.send(request.as_bytes()).expect("send");
        let r = client.read_response().expect("response");
        answers.push((r.status(), r.text().trim().to_owned()));
    }
    let hosts_now = hosts(admin);
    let deadline = Instant::now() + TIMEOUT;
    let mut after = hosts(admin);
    while !after.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = hosts(admin);
    }
    let request =
        format!("GET / HTTP/1.1\r\nhost: x\r\nx-envoy-original-dst-host: {keeps}\r\n\r\n");
    client.send(request.as_bytes()).expect("send");
    answers.push({
        let r = client.read_response().expect("response");
        (r.status(), r.text().trim().to_owned())
    });
    std::thread::sleep(Duration::from_secs(1));
    Outcome {
        answers,
        hosts: hosts_now,
        after_cleanup: after,
        pooled_stays: hosts(admin),
    }
}

#[test]
fn requests_go_where_their_header_says_as_in_envoy() {
    // Origins that close each connection: a host with pooled connections stays in use.
    let closing = |name: &'static str| {
        Origin::start(move |_| {
            let mut reply = Reply::text(200, name);
            reply.headers.push(("connection".into(), "close".into()));
            Ok(reply)
        })
    };
    let (a, b) = (closing("a"), closing("b"));
    let keeps = Origin::start(|_| Ok(Reply::text(200, "keeps")));
    let weir = Weir::start(&config(a.addr), &["--concurrency", "1"]);
    let ours = run(weir.addr(), weir.admin, a.addr, b.addr, keeps.addr);
    let answers: Vec<&str> = ours.answers.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(answers, ["a", "b", "a", "keeps"]);
    assert_eq!(ours.pooled_stays, [keeps.addr.to_string()]);
    let mut both = vec![a.addr.to_string(), b.addr.to_string()];
    both.sort();
    assert_eq!(ours.hosts, both);
    assert!(ours.after_cleanup.is_empty(), "unused hosts go: {ours:?}");

    let Some(envoy_bin) = envoy_or_skip() else {
        return;
    };
    drop(weir);
    let (envoy_config, port, admin) = envoy_ports(&config(a.addr));
    let _envoy = Envoy::start(&envoy_bin, "odst.yaml", &envoy_config, Some(admin), port);
    let local = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let envoys = run(local(port), local(admin), a.addr, b.addr, keeps.addr);
    assert_eq!(ours, envoys, "weir and Envoy differ");
}
