//! weir under resource exhaustion: out of file descriptors (EMFILE), the accept loop backs off
//! instead of spinning, established connections keep working, and accepting resumes when
//! descriptors free up.

mod support;

use std::net::TcpStream;
use std::time::Duration;

use support::{Client, Origin, TIMEOUT, Weir, proxy_config};

/// CPU seconds (user + system) weir's process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // Linux's USER_HZ is 100 on every architecture weir builds for.
    ticks / 100.0
}

#[test]
fn out_of_file_descriptors_the_accept_loop_backs_off_and_recovers() {
    let origin = Origin::standard();
    // 64 descriptors: weir's own (epoll, eventfds, listeners, admin, logs) leave room for a
    // few dozen connections.
    let weir = Weir::start_under(
        &["prlimit", "--nofile=64:64"],
        &proxy_config(origin.addr),
        &["--concurrency", "1"],
    );
    let mut kept = Client::connect(weir.addr()).expect("connect");
    assert_eq!(kept.get("/before").expect("served").status(), 200);
    // Far more connections than descriptors: the kernel queues them; weir accepts until
    // EMFILE, then retries every 100 ms instead of spinning on a readable listener.
    let flood: Vec<TcpStream> = (0..120)
        .filter_map(|_| TcpStream::connect_timeout(&weir.addr(), Duration::from_secs(1)).ok())
        .collect();
    assert!(
        weir.wait_for_log("accept failed; retrying in 100 ms", TIMEOUT)
            .is_some(),
        "weir ran out of descriptors"
    );
    let before = cpu_seconds(weir.pid());
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_seconds(weir.pid()) - before;
    println!("CPU while out of descriptors: {spent:.2} s in 1 s");
    assert!(
        spent < 0.5,
        "the accept loop spins: {spent:.2} CPU seconds in 1 s"
    );
    // The connection weir holds still works.
    assert_eq!(kept.get("/during").expect("served").status(), 200);
    // Descriptors free up: new connections are served again.
    drop(flood);
    let mut fresh = Client::connect(weir.addr()).expect("connect");
    fresh.set_read_timeout(TIMEOUT).expect("timeout");
    assert_eq!(
        fresh
            .get("/after")
            .expect("served once descriptors are back")
            .status(),
        200
    );
}

/// A bug that panics while handling one request (injected here by the `fault-injection`
/// feature, which only test builds have) costs that connection, not the worker: the same worker
/// goes on serving, and the process does not exit.
#[test]
fn a_panic_in_a_handler_closes_its_connection_and_the_worker_goes_on() {
    let origin = Origin::standard();
    let weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "1"]);
    let mut kept = Client::connect(weir.addr()).expect("connect");
    assert_eq!(kept.get("/before").expect("served").status(), 200);
    let mut doomed = Client::connect(weir.addr()).expect("connect");
    doomed
        .send(b"GET /boom HTTP/1.1\r\nhost: t\r\nx-weir-fault: panic\r\n\r\n")
        .expect("send");
    assert!(
        doomed.read_response().is_err(),
        "no response on the connection whose handler panicked"
    );
    assert!(weir.wait_for_log("a handler panicked", TIMEOUT).is_some());
    // The one worker still serves the other connection, and new ones.
    assert_eq!(kept.get("/after").expect("served").status(), 200);
    assert_eq!(
        support::get(weir.addr(), "/fresh")
            .expect("served")
            .status(),
        200
    );
    let stats = support::get(weir.admin, "/stats?filter=dispatcher.panics")
        .expect("stats")
        .text();
    assert_eq!(stats, "listener_manager.worker_0.dispatcher.panics: 1\n");
}

/// Twenty clients ask for 50 MB each and do not read: weir holds at most its per-connection
/// buffer limit (1 MiB) for each, pausing the origin, instead of buffering the bodies; a
/// client that then reads gets every byte.
#[test]
fn slow_readers_do_not_grow_memory_past_the_buffer_limits() {
    const CLIENTS: u64 = 20;
    const SIZE: u64 = 50_000_000;
    let origin = Origin::standard();
    let weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "1"]);
    let baseline = weir.proc_status_kib("VmRSS");
    let mut clients: Vec<(Client, support::Head)> = (0..CLIENTS)
        .map(|_| {
            let mut c = Client::connect(weir.addr()).expect("connect");
            c.send(format!("GET /big?bytes={SIZE} HTTP/1.1\r\nhost: t\r\n\r\n").as_bytes())
                .expect("send");
            let head = c.read_head().expect("head");
            assert_eq!(head.status(), 200);
            (c, head)
        })
        .collect();
    // Long enough for every origin and every buffer to fill up to where back-pressure stops it.
    std::thread::sleep(Duration::from_millis(1500));
    let held = weir.proc_status_kib("VmHWM").saturating_sub(baseline);
    let bound = CLIENTS * 2 * 1024 + 16 * 1024;
    println!("weir held {held} kB for {CLIENTS} clients that do not read (bound {bound} kB)");
    assert!(held < bound, "{held} kB held: bodies are being buffered");
    // One of them reads now: all of it arrives.
    let (mut client, head) = clients.pop().expect("a client");
    let mut received = support::Checksum::default();
    client
        .read_body_each(&head, &mut |piece| received.update(piece))
        .expect("body");
    assert_eq!(received.finish(), support::generated_checksum(SIZE));
}

/// A client pipelines requests that weir answers itself (no upstream, so no upstream queue
/// to push back) and never reads: weir stops reading it once its replies fill the listener's
/// buffer limit (1 MiB) instead of queueing every reply, and when the client reads, every
/// request it sent whole has its answer.
#[test]
fn pipelined_local_replies_to_a_client_that_does_not_read_are_bounded() {
    use std::io::{Read, Write};
    const REQUEST: &[u8] = b"GET /local HTTP/1.1\r\nhost: t\r\n\r\n";
    const SENT_AT_MOST: usize = 8 << 20;
    let origin = Origin::standard();
    let weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "1"]);
    let baseline = weir.proc_status_kib("VmRSS");
    let mut socket = TcpStream::connect(weir.addr()).expect("connect");
    // Writes block once weir stops reading and the kernel's buffers are full.
    socket
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let batch = REQUEST.repeat(1024);
    let mut sent = 0;
    while sent < SENT_AT_MOST {
        match socket.write(&batch[sent % batch.len()..]) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let held = weir.proc_status_kib("VmHWM").saturating_sub(baseline);
    // The replies to 8 MiB of these requests are over 30 MiB.
    println!("weir held {held} kB answering {sent} bytes of requests nobody reads");
    assert!(
        held < 8 * 1024,
        "{held} kB held: replies are queued without bound"
    );
    // Now the client reads: one answer per whole request it sent.
    let whole = sent / REQUEST.len();
    let end = b"\r\n\r\nlocal\n";
    let mut answers = 0;
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0; 1 << 16];
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    while answers < whole {
        let n = socket.read(&mut buf).expect("read answers");
        assert!(n > 0, "closed after {answers} of {whole} answers");
        carry.extend_from_slice(&buf[..n]);
        answers += carry.windows(end.len()).filter(|w| w == end).count();
        let keep = carry.len().min(end.len() - 1);
        carry.drain(..carry.len() - keep);
    }
    assert_eq!(answers, whole);
}
