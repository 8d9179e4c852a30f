//! A downstream connection's active streams, in memory: the codec's stream keys as the
//! connection manager keeps them, and what a connection-level event does to the active stream.

use super::{Harness, bootstrap, hcm, status};

const ORIGIN: &str = "127.0.0.1:9001";
const GET: &str = "GET / HTTP/1.1\r\nhost: a\r\n\r\n";

/// The codec's keys of the worker's active streams, on every downstream connection.
fn active_keys(h: &Harness) -> Vec<u32> {
    let mut keys = Vec::new();
    for id in h.worker.downstreams.ids() {
        let ds = h.worker.downstreams.get(id).expect("listed");
        for &(key, sid) in ds.streams.as_slice() {
            let stream = h.worker.streams.get(sid).expect("an active stream exists");
            assert_eq!(stream.key, key, "the stream knows its key");
            assert_eq!(stream.downstream, id);
            keys.push(key.0);
        }
    }
    keys
}

#[test]
fn pipelined_requests_become_streams_with_successive_keys() {
    let mut h = Harness::new(&bootstrap("", "", "", &[ORIGIN]));
    let client = h.client(0);
    assert_eq!(
        active_keys(&h),
        [0u32; 0],
        "an idle connection has no stream"
    );
    client.send(format!(
        "{GET}GET /two HTTP/1.1\r\nhost: a\r\n\r\nGET /three HTTP/1.1\r\nhost: a\r\n\r\n"
    ));
    h.settle();
    let origin = h.accept(ORIGIN);
    for key in 1..=3 {
        assert_eq!(active_keys(&h), [key], "HTTP/1: one stream at a time");
        origin.take_text();
        origin.send("HTTP/1.1 204 No Content\r\n\r\n");
        h.settle();
    }
    assert_eq!(active_keys(&h), [0u32; 0]);
    assert_eq!(client.take_text().matches("HTTP/1.1 204").count(), 3);
    let ds = h.worker.downstreams.ids()[0];
    let codec = &h.worker.downstreams.get(ds).expect("open").codec;
    assert_eq!(codec.streams_started(), 3);
    assert!(codec.may_start_stream());
    assert_eq!(h.stat("http.test.downstream_rq_total"), 3);
}

/// A connection-level event (here the client's reset) ends the active stream: it is logged
/// as abandoned by the client (`DC`), its upstream request is given up, and it is counted.
#[test]
fn a_connection_reset_ends_its_active_stream_logged_dc() {
    let path = std::env::temp_dir().join(format!("weir-streams-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let logger = format!(
        "access_log:\n          - name: envoy.access_loggers.file\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n              path: {}\n              log_format:\n                text_format_source:\n                  inline_string: \"%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %REQ(:PATH)%\\n\"",
        path.display()
    );
    let mut h = Harness::new(&bootstrap(&hcm(&logger), "", "", &[ORIGIN]));
    let client = h.client(0);
    client.send(format!(
        "{GET}POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\nabc"
    ));
    h.settle();
    let origin = h.accept(ORIGIN);
    origin.send("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    h.settle();
    assert_eq!(status(&client.take_text()), 200);
    assert_eq!(active_keys(&h), [2], "the upload is the active stream");
    client.reset();
    h.settle();
    assert!(origin.worker_closed(), "its upstream request is given up");
    assert_eq!(h.stat("http.test.downstream_rq_rx_reset"), 1);
    assert_eq!(h.stat("http.test.downstream_cx_destroy_active_rq"), 1);
    assert_eq!(h.stat("http.test.downstream_rq_active"), 0);
    assert_eq!(h.worker.streams.len(), 0, "no stream is left behind");
    h.stop_access_logs();
    let log = std::fs::read_to_string(&path).expect("the access log");
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "200 - via_upstream /",
            "0 DC downstream_remote_disconnect /upload"
        ]
    );
}
