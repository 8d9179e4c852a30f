//! Inputs the fuzz targets in `fuzz/` stopped on, as byte literals (the control bytes each target
//! reads first are stripped; each test says which target and what it found). Each is fed whole,
//! byte by byte and split at every point, and must decode as stated.

mod common;

use common::{Rq, X, assert_events, run_all_splits, server};
use weir_http1::{BodyKind, Version};

use X::{D, E, H};

/// chunked_decoder, crash-77964491…: a chunked body followed by a pipelined request. (The
/// decoder was right; the target's own check of where the body ends was wrong and was fixed.)
/// The body ends exactly after its empty trailer line; the next request is whole.
#[test]
fn chunked_body_then_pipelined_request() {
    let input = b"POST /upload HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n\
                  1\r\nx\r\n0\r\n\r\n\
                  GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let out = run_all_splits(server, input, true);
    assert_eq!(out.error, None);
    assert_events(
        "chunked then pipelined",
        &out.events,
        &[
            H(Rq(
                "POST",
                "/upload",
                Version::Http11,
                BodyKind::Chunked,
                true,
            )),
            D("x"),
            E,
            H(Rq("GET", "/", Version::Http11, BodyKind::Empty, true)),
            E,
        ],
        Rq::matches,
    );
    assert!(out.left.is_empty());
}

/// chunked_decoder, crash-97805b47…: empty lines after a chunked body are dropped as the empty
/// lines before a next request line (RFC 9112 §2.2), and EOF then is a clean close. (Again the
/// decoder was right and the target's expectation was fixed.)
#[test]
fn empty_lines_after_chunked_body_are_a_clean_close() {
    let input = b"POST /upload HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n\
                  1\r\nx\r\n0\r\n\r\n\r\n\r\n";
    let out = run_all_splits(server, input, true);
    assert_eq!(out.error, None);
    assert_events(
        "empty lines after body",
        &out.events,
        &[
            H(Rq(
                "POST",
                "/upload",
                Version::Http11,
                BodyKind::Chunked,
                true,
            )),
            D("x"),
            E,
        ],
        Rq::matches,
    );
    assert!(out.left.is_empty());
}
