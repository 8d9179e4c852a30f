//! The writer's tests: lines from several workers, bounds, wake-ups, rotation, sharing,
//! registering after the flusher started.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::time::UNIX_EPOCH;

use super::*;

fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "weir-access-log-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Relaxed)
    ))
}

fn file_log(path: &Path, format: &str) -> AccessLog {
    AccessLog {
        name: "test".to_owned(),
        sink: AccessLogSink::File(path.to_owned()),
        format: LogFormat::text(format, false).unwrap(),
    }
}

fn record(bytes_sent: u64) -> LogRecord {
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    LogRecord {
        start: UNIX_EPOCH,
        request_headers: Vec::new(),
        response_headers: Vec::new(),
        protocol: "HTTP/1.1",
        response_code: 200,
        response_code_details: "",
        response_flags: "",
        bytes_received: 0,
        bytes_sent,
        duration: None,
        request_duration: None,
        response_duration: None,
        upstream_host: None,
        upstream_cluster: None,
        upstream_local: None,
        downstream_remote: addr,
        downstream_direct_remote: addr,
        downstream_local: addr,
        route_name: None,
        config_version: 1,
        tls: None,
        transport_failure: None,
    }
}

#[test]
fn two_workers_lose_no_line() {
    let path = temp_path("two-workers.log");
    let mut logs = AccessLogs::new(2, Duration::from_millis(10));
    let set = logs
        .admin()
        .register(&[file_log(
            &path,
            "%RESPONSE_CODE% %BYTES_SENT% %DOWNSTREAM_REMOTE_PORT%\n",
        )])
        .unwrap();
    const LINES: u64 = 20_000;
    let threads: Vec<_> = (0..2)
        .map(|w| {
            let worker = logs.worker(w);
            std::thread::spawn(move || {
                for i in 0..LINES {
                    let mut r = record(i);
                    r.downstream_remote.set_port(w as u16);
                    worker.log(set, &r);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    logs.stop();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut seen = [vec![false; LINES as usize], vec![false; LINES as usize]];
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line:?}");
        assert_eq!(fields[0], "200");
        let i: usize = fields[1].parse().unwrap();
        let w: usize = fields[2].parse().unwrap();
        assert!(!seen[w][i], "duplicate {line}");
        seen[w][i] = true;
    }
    assert!(seen.iter().flatten().all(|s| *s), "lines were lost");
    let admin = logs.admin();
    let stats = admin.stats();
    assert_eq!(stats.write_buffered.load(Relaxed), 2 * LINES);
    assert_eq!(stats.write_dropped.load(Relaxed), 0);
    assert_eq!(stats.write_failed.load(Relaxed), 0);
    assert!(stats.write_completed.load(Relaxed) >= 1);
    assert_eq!(logs.admin().buffered_bytes(), 0);
}

#[test]
fn full_buffer_drops_and_counts() {
    let path = temp_path("full.log");
    // A flush interval long enough that nothing is written before stop().
    let mut logs = AccessLogs::new(1, Duration::from_secs(3600));
    let set = logs
        .admin()
        .register(&[file_log(&path, "a line\n")])
        .unwrap();
    let worker = logs.worker(0);
    // Fill the buffer directly to the bound, as if the flusher were stuck on a slow disk.
    lock(&lock(&logs.shared.tables).buffers[0][0].0)
        .data
        .resize(MAX_BUFFER, b'\n');
    for _ in 0..5 {
        worker.log(set, &record(0));
    }
    logs.stop();
    let admin = logs.admin();
    let stats = admin.stats();
    assert_eq!(stats.write_dropped.load(Relaxed), 5);
    assert_eq!(stats.write_buffered.load(Relaxed), 0);
    let written = std::fs::metadata(&path).unwrap().len();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(written, MAX_BUFFER as u64);
}

#[test]
fn threshold_wakes_the_flusher_before_the_interval() {
    let path = temp_path("threshold.log");
    let mut logs = AccessLogs::new(1, Duration::from_secs(3600));
    let line = format!("{}\n", "y".repeat(1023));
    let set = logs.admin().register(&[file_log(&path, &line)]).unwrap();
    let worker = logs.worker(0);
    for _ in 0..(FLUSH_THRESHOLD / 1024) {
        worker.log(set, &record(0));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while logs.admin().stats().write_completed.load(Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the flusher was not woken");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        FLUSH_THRESHOLD as u64
    );
    assert_eq!(logs.admin().stats().flushed_by_timer.load(Relaxed), 0);
    logs.stop();
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn timer_flushes_and_reopen_follows_a_rename() {
    let path = temp_path("rotate.log");
    let rotated = temp_path("rotate.log.1");
    let mut logs = AccessLogs::new(1, Duration::from_millis(10));
    let set = logs
        .admin()
        .register(&[file_log(&path, "%BYTES_SENT%\n")])
        .unwrap();
    let worker = logs.worker(0);
    worker.log(set, &record(1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&path).unwrap().len() == 0 {
        assert!(Instant::now() < deadline, "the timer did not flush");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(logs.admin().stats().flushed_by_timer.load(Relaxed) >= 1);
    // logrotate: move the file away, then ask for a reopen.
    std::fs::rename(&path, &rotated).unwrap();
    logs.admin().reopen();
    while !path.exists() {
        assert!(Instant::now() < deadline, "the file was not reopened");
        std::thread::sleep(Duration::from_millis(1));
    }
    worker.log(set, &record(2));
    logs.stop();
    assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "1\n");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "2\n");
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&rotated).unwrap();
}

#[test]
fn sinks_are_shared_and_needs_are_merged() {
    let path = temp_path("shared.log");
    let mut logs = AccessLogs::new(1, Duration::from_millis(10));
    let a = logs
        .admin()
        .register(&[file_log(&path, "a %REQ(:PATH)% %REQ(USER-AGENT)%\n")])
        .unwrap();
    let b = logs
        .admin()
        .register(&[
            file_log(&path, "b %REQ(user-agent)% %UPSTREAM_LOCAL_ADDRESS%\n"),
            file_log(&path, "c %RESP(CONTENT-TYPE)%\n"),
        ])
        .unwrap();
    let none = logs.admin().register(&[]).unwrap();
    assert_eq!(lock(&logs.shared.tables).sinks.len(), 1);
    let worker = logs.worker(0);
    assert_eq!(
        worker.needs(a).request_headers,
        [
            Bytes::from_static(b":path"),
            Bytes::from_static(b"user-agent")
        ]
    );
    assert!(!worker.needs(a).upstream_local_address);
    assert_eq!(
        worker.needs(b).request_headers,
        [Bytes::from_static(b"user-agent")]
    );
    assert_eq!(
        worker.needs(b).response_headers,
        [Bytes::from_static(b"content-type")]
    );
    assert!(worker.needs(b).upstream_local_address);
    assert!(worker.is_empty(none) && !worker.is_empty(a));
    worker.log(a, &record(0));
    worker.log(b, &record(0));
    worker.log(none, &record(0));
    logs.stop();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "a - -\nb - -\nc -\n"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn unopenable_file_is_an_error_naming_it() {
    let path = temp_path("no-such-dir").join("access.log");
    let logs = AccessLogs::new(1, ENVOY_FLUSH_INTERVAL);
    let err = logs
        .admin()
        .register(&[file_log(&path, "x\n")])
        .unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(
        lock(&logs.shared.flusher).is_none(),
        "no flusher for nothing"
    );
    assert!(
        lock(&logs.shared.tables).sets.is_empty(),
        "nothing registered"
    );
}

#[test]
fn no_logger_no_thread() {
    let mut logs = AccessLogs::new(4, ENVOY_FLUSH_INTERVAL);
    let set = logs.admin().register(&[]).unwrap();
    assert!(lock(&logs.shared.flusher).is_none());
    logs.worker(3).log(set, &record(0));
    logs.stop();
}

#[test]
fn a_set_registered_later_gets_its_file_and_workers_take_it_when_they_follow() {
    let (first, later) = (temp_path("first.log"), temp_path("later.log"));
    let mut logs = AccessLogs::new(1, Duration::from_millis(10));
    let admin = logs.admin();
    let a = admin
        .register(&[file_log(&first, "a %BYTES_SENT%\n")])
        .unwrap();
    let mut worker = logs.worker(0);
    worker.log(a, &record(1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&first).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < deadline, "the first line was not written");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The flusher wrote: a reload registers a set with a new file, and one the same as the
    // first.
    let b = admin
        .register(&[file_log(&later, "b %BYTES_SENT%\n")])
        .unwrap();
    assert_eq!(
        admin
            .register(&[file_log(&first, "a %BYTES_SENT%\n")])
            .unwrap(),
        a
    );
    assert!(worker.is_empty(b), "not until it follows");
    worker.follow();
    assert!(!worker.is_empty(b));
    worker.log(b, &record(2));
    worker.log(a, &record(3));
    logs.stop();
    assert_eq!(std::fs::read_to_string(&first).unwrap(), "a 1\na 3\n");
    assert_eq!(std::fs::read_to_string(&later).unwrap(), "b 2\n");
    std::fs::remove_file(&first).unwrap();
    std::fs::remove_file(&later).unwrap();
}

#[test]
fn a_registration_after_stop_opens_nothing_and_says_so() {
    let path = temp_path("after-stop.log");
    let mut logs = AccessLogs::new(1, ENVOY_FLUSH_INTERVAL);
    logs.stop();
    let err = logs
        .admin()
        .register(&[file_log(&path, "x\n")])
        .unwrap_err();
    assert!(err.to_string().contains("stopped"), "{err}");
    let _ = std::fs::remove_file(&path);
}
