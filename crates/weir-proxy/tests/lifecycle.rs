//! The server's life and the data path's bounds: a graceful drain (in-flight requests finish
//! with `connection: close`, idle connections close, new connections are refused, `wait`
//! returns) and back-pressure (a 64 MiB response through a client that stalls first arrives
//! byte-exact without the proxy reading it all from the origin meanwhile).

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use support::{
    Config, IO_TIMEOUT, Origin, Reply, eventually, pattern_slice, raw_response, response, sleep_ms,
};

/// Connects once; true when the connection is refused (nothing listens any more).
fn refused(addr: std::net::SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Err(e) => e.kind() == ErrorKind::ConnectionRefused,
        Ok(_) => false,
    }
}

/// Runs `server.wait()` on a thread and waits for it at most 10 s.
fn wait_bounded(server: weir_proxy::Server) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        server.wait();
        let _ = tx.send(());
    });
    rx.recv_timeout(IO_TIMEOUT)
        .expect("Server::wait returned after the drain");
}

#[test]
fn drain_finishes_in_flight_requests_and_refuses_new_connections() {
    let origin = Origin::start(|req| {
        if req.target == "/slow" {
            Reply::after_ms(500, Reply::Send(response(200, &[], b"slow done")))
        } else {
            Reply::Send(response(200, &[], b"fast"))
        }
    });
    let mut proxy = Config::forward_all(&[origin.addr()]).start();
    let addr = proxy.addr;

    // An idle keep-alive connection, and one with a request in flight.
    let mut idle = proxy.client();
    assert_eq!(idle.get("/fast").status, 200);
    let mut busy = proxy.client();
    busy.send("GET /slow HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert!(
        eventually(2000, || origin.request_count() == 2),
        "the slow request reached the origin"
    );

    let server = proxy.take();
    server.drain();

    // New connections are refused once the workers have closed their listeners.
    assert!(
        eventually(2000, || refused(addr)),
        "connections are still accepted after the drain began"
    );
    // The idle connection is closed at once.
    idle.expect_closed();

    // The in-flight request completes, told that the connection closes.
    let resp = busy.read_response(false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"slow done");
    assert_eq!(resp.header("connection"), Some("close"));
    busy.expect_closed();

    wait_bounded(server);
    assert!(refused(addr));
}

#[test]
fn drain_of_an_idle_server_with_two_workers() {
    let origin = Origin::ok("ok");
    let mut proxy = Config::forward_all(&[origin.addr()]).start_with(2);
    let addr = proxy.addr;
    for _ in 0..4 {
        assert_eq!(proxy.client().get("/").status, 200);
    }
    let server = proxy.take();
    server.drain();
    // Every worker closes its SO_REUSEPORT socket: no connection lands anywhere.
    assert!(eventually(2000, || refused(addr)));
    for _ in 0..10 {
        assert!(refused(addr), "a worker still accepts");
    }
    wait_bounded(server);
}

#[test]
fn stop_drops_everything_at_once() {
    let origin = Origin::start(|_| Reply::Stall);
    let mut proxy = Config::forward_all(&[origin.addr()]).start();
    let addr = proxy.addr;
    let mut client = proxy.client();
    client.send("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert!(eventually(2000, || origin.request_count() == 1));
    let server = proxy.take();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        server.stop();
        let _ = tx.send(());
    });
    rx.recv_timeout(IO_TIMEOUT).expect("Server::stop returned");
    client.read_to_close();
    assert!(refused(addr));
}

/// The origin streams 64 MiB as fast as it can; the client reads nothing for a second, then
/// everything. The proxy stops reading the origin while the client's queue is over its
/// limit, so the origin gets blocked by TCP flow control instead of the proxy buffering the
/// body: what it managed to send meanwhile is bounded by socket buffers and the proxy's two
/// 1 MiB watermarks, far below the body's size. Then the body arrives byte-exact.
#[test]
fn large_response_with_a_slow_reader_is_streamed_with_back_pressure() {
    const LEN: usize = 64 << 20;
    let origin = Origin::start(|_| Reply::Stream {
        head: raw_response(200, &[("content-length", &LEN.to_string())], b""),
        len: LEN,
    });
    let proxy = Config::forward_all(&[origin.addr()]).start();
    let mut client = proxy.client();
    client.record_raw = false;
    client.send("GET /big HTTP/1.1\r\nHost: example.com\r\n\r\n");

    // Not reading: the pipeline fills up and stops.
    sleep_ms(1000);
    let sent_while_stalled = origin.bytes_sent();
    assert!(
        sent_while_stalled < LEN / 2,
        "the origin sent {sent_while_stalled} bytes while the client read nothing: \
         the proxy is not applying back-pressure"
    );
    sleep_ms(200);
    let later = origin.bytes_sent();
    assert!(later < LEN / 2, "still bounded: {later}");

    let mut received = 0usize;
    let mut mismatch = None;
    let resp = client.read_response_with(false, &mut |data| {
        if mismatch.is_none() {
            // Compare in pieces of at most 64 KiB against the pattern.
            let mut at = 0;
            while at < data.len() {
                let n = (data.len() - at).min(64 * 1024);
                if &data[at..at + n] != pattern_slice(received + at, n) {
                    mismatch = Some(received + at);
                    break;
                }
                at += n;
            }
        }
        received += data.len();
    });
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    assert_eq!(received, LEN);
    assert_eq!(mismatch, None, "the body differs from what the origin sent");
    assert_eq!(origin.accepted(), 1);
    // Counted when the stream ends, which may be just after its last byte reached the client.
    assert!(
        eventually(2000, || proxy.class(2) == 1),
        "2xx: {}",
        proxy.class(2)
    );
}

/// The other direction: a client uploads 64 MiB to an origin that reads nothing for a
/// second. The proxy stops reading the client while the upstream queue is over its limit, so
/// the client's writes block instead of the proxy buffering the body. Then the whole body
/// arrives at the origin byte-exact.
#[test]
fn large_upload_to_a_slow_origin_is_streamed_with_back_pressure() {
    const LEN: usize = 64 << 20;
    // A hand-written origin: it accepts, waits a second, then reads the request.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin_addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let (done_tx, done_rx) = mpsc::channel::<Result<usize, String>>();
    std::thread::spawn(move || {
        let mut conn = None;
        for _ in 0..1000 {
            match listener.accept() {
                Ok((c, _)) => {
                    conn = Some(c);
                    break;
                }
                Err(_) => sleep_ms(10),
            }
        }
        let Some(mut conn) = conn else {
            let _ = done_tx.send(Err("the proxy never connected".into()));
            return;
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        sleep_ms(1000);
        let mut buf = vec![0u8; 64 * 1024];
        let mut head = Vec::new();
        let mut body = 0usize;
        let mut error = None;
        while body < LEN {
            let n = match conn.read(&mut buf) {
                Ok(0) => {
                    error = Some(format!("EOF after {body} body bytes"));
                    break;
                }
                Ok(n) => n,
                Err(e) => {
                    error = Some(format!("read failed after {body} body bytes: {e}"));
                    break;
                }
            };
            let mut data = &buf[..n];
            if !head.ends_with(b"\r\n\r\n") {
                let take = (0..data.len())
                    .find(|&i| {
                        [head.as_slice(), &data[..=i]]
                            .concat()
                            .ends_with(b"\r\n\r\n")
                    })
                    .map_or(data.len(), |i| i + 1);
                head.extend_from_slice(&data[..take]);
                data = &data[take..];
            }
            if !data.is_empty() && data != pattern_slice(body, data.len()) {
                error = Some(format!("body differs at or after byte {body}"));
                break;
            }
            body += data.len();
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        if error.is_none() && !head.contains(&format!("content-length: {LEN}")) {
            error = Some(format!("unexpected head: {head}"));
        }
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        let _ = done_tx.send(error.map_or(Ok(body), Err));
    });

    let proxy = Config::forward_all(&[origin_addr]).start();
    let mut client = proxy.client();
    let written = Arc::new(AtomicUsize::new(0));
    let mut writer = client.stream().try_clone().unwrap();
    let counter = written.clone();
    let upload = std::thread::spawn(move || {
        writer
            .write_all(
                format!("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: {LEN}\r\n\r\n").as_bytes(),
            )
            .unwrap();
        let mut sent = 0;
        while sent < LEN {
            let n = (64 * 1024).min(LEN - sent);
            if writer.write_all(pattern_slice(sent, n)).is_err() {
                return;
            }
            sent += n;
            counter.store(sent, SeqCst);
        }
    });

    sleep_ms(800);
    let while_stalled = written.load(SeqCst);
    assert!(
        while_stalled < LEN / 2,
        "the client wrote {while_stalled} bytes while the origin read nothing: \
         the proxy is not applying back-pressure"
    );
    let resp = client.read_response(false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"ok");
    let outcome = done_rx
        .recv_timeout(IO_TIMEOUT)
        .expect("the origin finished");
    assert_eq!(outcome, Ok(LEN));
    upload.join().unwrap();
    assert_eq!(written.load(SeqCst), LEN);
}

#[test]
fn drain_deadline_closes_what_is_left() {
    let origin = Origin::start(|_| Reply::Stall);
    let mut proxy = support::Proxy::start(
        &Config::forward_all(&[origin.addr()])
            .route_all_with_timeout("backend", "0s")
            .yaml(),
        1,
        Duration::from_millis(300),
    );
    let mut client = proxy.client();
    client.send("GET /forever HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(eventually(2000, || origin.request_count() == 1));
    let server = proxy.take();
    server.drain();
    // The stalled request cannot finish; the drain time closes it.
    let (rest, _) = client.read_to_close();
    assert!(
        rest.is_empty(),
        "no response was sent: {:?}",
        String::from_utf8_lossy(&rest)
    );
    wait_bounded(server);
}

/// A response that had started before the drain began (so it went out without
/// `connection: close`) still ends its connection when it completes, rather than leaving an
/// idle keep-alive connection for the drain deadline. The drain time here is longer than
/// every wait in the test, so only a prompt close passes.
#[test]
fn drain_closes_connections_when_their_response_completes() {
    let origin = Origin::start(|_| Reply::Trickle {
        pieces: vec![
            raw_response(200, &[("content-length", "9")], b"first"),
            b"-end".to_vec(),
        ],
        gap: Duration::from_millis(500),
    });
    let mut proxy = support::Proxy::start(
        &Config::forward_all(&[origin.addr()]).yaml(),
        1,
        Duration::from_secs(60),
    );
    let mut client = proxy.client();
    client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(eventually(2000, || origin.request_count() == 1));
    sleep_ms(100);
    let server = proxy.take();
    server.drain();
    let resp = client.read_response(false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"first-end");
    assert!(resp.complete);
    client.expect_closed();
    wait_bounded(server);
}
