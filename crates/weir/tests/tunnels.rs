//! Tunnels through a running weir with real peers: a WebSocket client and echo server (the
//! Python `websockets` package, in the virtualenv scripts/test.sh makes) through an upgrade,
//! and curl's `--proxytunnel` through a CONNECT weir ends itself. (The tunnel's rules — who
//! closes first, back-pressure, idle timeouts — are tested in memory in weir-proxy.)

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{Origin, Weir, run_program, wait_child};

const TIMEOUT: Duration = Duration::from_secs(20);

/// The virtualenv's Python with `websockets`, when scripts/test.sh installed it.
fn python() -> Option<PathBuf> {
    let python = match std::env::var("WEIR_PYTHON") {
        Ok(p) => PathBuf::from(p),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/envoy/bin/python"),
    };
    let ok = Command::new(&python)
        .args(["-c", "import websockets"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

/// No Python with `websockets`: a failure where scripts/test.sh promised one, else a skip.
fn missing(what: &str) {
    if std::env::var("WEIR_REQUIRE_ENVOY").is_ok_and(|v| v == "1") {
        panic!("{what} is missing (scripts/test.sh installs it)");
    }
    eprintln!("skipped: {what} is missing");
}

fn config(origin: SocketAddr) -> String {
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
static_resources:
  listeners:
  - name: ingress
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          upgrade_configs: [ {{ upgrade_type: websocket }}, {{ upgrade_type: CONNECT }} ]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ connect_matcher: {{}} }}
                route: {{ cluster: origin, upgrade_configs: [ {{ upgrade_type: CONNECT, connect_config: {{}} }} ] }}
              - match: {{ prefix: / }}
                route: {{ cluster: origin }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
  - name: origin
    connect_timeout: 2s
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}
"#,
        port = origin.port()
    )
}

/// A free port on 127.0.0.1 (bound and released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `websockets` echo server on `port`, killed on drop.
struct EchoServer(Child);

impl EchoServer {
    fn start(python: &Path, port: u16) -> EchoServer {
        let script = format!(
            "import asyncio, websockets\n\
             async def echo(ws):\n\
             \x20   async for m in ws:\n\
             \x20       await ws.send(m)\n\
             async def main():\n\
             \x20   async with websockets.serve(echo, '127.0.0.1', {port}):\n\
             \x20       print('ready', flush=True)\n\
             \x20       await asyncio.sleep(30)\n\
             asyncio.run(main())\n"
        );
        let mut child = Command::new(python)
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the echo server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("the echo server's ready line");
        assert_eq!(line.trim(), "ready");
        EchoServer(child)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = wait_child(&mut self.0, Duration::from_secs(5));
    }
}

#[test]
fn a_websocket_client_talks_to_its_server_through_weir() {
    let Some(python) = python() else {
        return missing("Python's websockets package");
    };
    let port = free_port();
    let _server = EchoServer::start(&python, port);
    let weir = Weir::start(&config(SocketAddr::from(([127, 0, 0, 1], port))), &[]);
    let client = format!(
        "import asyncio, websockets\n\
         async def main():\n\
         \x20   async with websockets.connect('ws://{addr}/chat') as ws:\n\
         \x20       for text in ['hello', 'x' * 70000, 'bye']:\n\
         \x20           await ws.send(text)\n\
         \x20           got = await ws.recv()\n\
         \x20           assert got == text, (len(got), len(text))\n\
         \x20       await ws.send(b'\\x00\\x01binary')\n\
         \x20       assert await ws.recv() == b'\\x00\\x01binary'\n\
         \x20   print('echoed')\n\
         asyncio.run(main())\n",
        addr = weir.addr()
    );
    let ran = run_program(
        python.to_str().expect("utf-8 path"),
        &["-c", &client],
        TIMEOUT,
    );
    assert_eq!(
        ran.stdout.trim(),
        "echoed",
        "the client failed: {}",
        ran.stderr
    );
}

#[test]
fn curl_tunnels_through_a_connect_weir_ends() {
    let origin = Origin::standard();
    let weir = Weir::start(&config(origin.addr), &[]);
    let proxy = format!("http://{}", weir.addr());
    // curl sends `CONNECT tunnel.test:80`, waits for weir's 200, then speaks HTTP through
    // the tunnel; weir's route takes it to the cluster's origin whatever the name says.
    let ran = run_program(
        "curl",
        &[
            "-s",
            "-i",
            "--max-time",
            "10",
            "-p",
            "-x",
            &proxy,
            "http://tunnel.test/echo?through=connect",
        ],
        TIMEOUT,
    );
    assert_eq!(ran.code(), Some(0), "curl failed: {}", ran.stderr);
    assert!(
        ran.stdout.starts_with("HTTP/1.1 200 OK\r\n"),
        "weir's answer to the CONNECT: {}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("target: /echo?through=connect"),
        "the origin's answer came through the tunnel: {}",
        ran.stdout
    );
    assert_eq!(origin.stats.served.load(Ordering::Relaxed), 1);
}
