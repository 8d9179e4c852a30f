//! Desync defence, proven on an outside corpus and on the classes it lacks.
//!
//! `corpus_cases_get_the_outcome_of_their_class` replays the 159 labelled requests that the
//! `http_desync_guardian` crate (AWS, Apache-2.0) ships under its `tests/` through weir to a
//! recording origin, and checks each against its class:
//!
//! - Severe: 400, the client connection closed, the origin received nothing;
//! - Ambiguous: rejected the same way (400, or 501/505 where the codec says), or forwarded as
//!   exactly one well-formed message after which the upstream connection is closed, not pooled;
//! - Compliant / Acceptable: forwarded as one message; the upstream connection is then reused.
//!   Where weir is stricter than the corpus because an RFC tells it to be, the case is listed in
//!   [`STRICTER`] with its reason, and must be rejected like a Severe one.
//!
//! Every case runs (a failure does not stop the others); the failures are listed by name at the
//! end, and a count by class and outcome is printed (`--nocapture`).
//!
//! The other tests are the classes the corpus lacks, one test per case, named for the case and
//! its outcome.

mod desync_support;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use desync_support::{
    Case, DEFAULT_HOST, Ending, RecordingOrigin, Resp, Talk, Tier, corpus, has_complete_request,
    one_message,
};
use support::{Config, Proxy, sleep_ms};

/// The longest wait for anything the proxy should do promptly.
const WAIT: Duration = Duration::from_secs(5);

/// How long the client listens for more (a second response, a close) when none is expected.
const QUIET: Duration = Duration::from_millis(100);

/// Compliant or Acceptable cases that weir rejects, because an RFC says it must or should:
/// `(file, case name, status, why)`.
const STRICTER: &[(&str, &str, u16, &str)] = &[
    // Whitespace between a field name and its colon: RFC 9112 §5.1, "A server MUST reject,
    // with a response status code of 400".
    (
        "acceptable",
        "No TE/CL headers, some others are non-compliant",
        400,
        "whitespace before a colon: RFC 9112 §5.1 MUST reject with 400",
    ),
    (
        "acceptable",
        "TE and some others are non-compliant",
        400,
        "whitespace before a colon: RFC 9112 §5.1 MUST reject with 400",
    ),
    (
        "acceptable",
        "CL and some others are non-compliant",
        400,
        "whitespace before a colon: RFC 9112 §5.1 MUST reject with 400",
    ),
    // Field names must be tokens (RFC 9110 §5.1); a control character makes the line invalid.
    (
        "acceptable",
        "A non-essential header with a non-printable character (x01)",
        400,
        "a control character in a field name: not a token (RFC 9110 §5.1)",
    ),
    (
        "bad-header-characters",
        "Some-Header\\x01",
        400,
        "a control character in a field name: not a token (RFC 9110 §5.1)",
    ),
    (
        "bad-header-characters",
        "\\x01Some-Header",
        400,
        "a control character in a field name: not a token (RFC 9110 §5.1)",
    ),
    // Field values: VCHAR, obs-text, SP and HTAB only (RFC 9110 §5.5).
    (
        "bad-header-characters",
        "Some-Header: \\x01value",
        400,
        "a control character in a field value (RFC 9110 §5.5)",
    ),
    (
        "bad-header-characters",
        "Some-Header: value\\x01",
        400,
        "a control character in a field value (RFC 9110 §5.5)",
    ),
    // Not an HTTP/1.x request line.
    (
        "acceptable",
        "Non-RFC, but OK HTTP/0.9",
        505,
        "HTTP/0.9 with fields is no HTTP version weir speaks (RFC 9110 §15.6.6: 505)",
    ),
    (
        "acceptable",
        "Empty version, which means HTTP/0.9",
        400,
        "a request line without a version (RFC 9112 §3: SHOULD answer 400)",
    ),
    (
        "uri-specific-test-cases",
        "Extra spaces in version",
        400,
        "an invalid request line (RFC 9112 §3: SHOULD answer 400, not autocorrect)",
    ),
    (
        "uri-specific-test-cases",
        "[space] in URI",
        400,
        "whitespace in the request-target (RFC 9112 §3.2: SHOULD answer 400)",
    ),
    // Request-targets: RFC 9112 §3.2 and RFC 3986 (no fragment, no raw non-ASCII, not empty).
    (
        "rfc-compliant",
        "Compliant URL",
        400,
        "`#`, `<`, `\"`, `{`, `|`… are not allowed in a request-target (RFC 3986, RFC 9112 §3.2)",
    ),
    (
        "rfc-compliant",
        "International in URI",
        400,
        "raw non-ASCII bytes in a request-target (RFC 3986 §2: percent-encode them)",
    ),
    (
        "rfc-compliant",
        "Empty URI",
        400,
        "an empty request-target (RFC 9112 §3.2)",
    ),
    // Transfer codings weir does not implement: RFC 9112 §6.1, "A server that receives a
    // request message with a transfer coding it does not understand SHOULD respond with 501".
    // weir re-frames bodies as plain chunked, so it cannot pass gzip/deflate/compress on.
    (
        "rfc-compliant",
        "Different Transfer-Encoding headers",
        501,
        "transfer codings other than chunked (RFC 9112 §6.1: SHOULD answer 501)",
    ),
    (
        "rfc-compliant",
        "Different Transfer-Encoding headers combined",
        501,
        "transfer codings other than chunked (RFC 9112 §6.1: SHOULD answer 501)",
    ),
    (
        "more-compliant-tests",
        "Correct TE OK",
        501,
        "transfer codings other than chunked (RFC 9112 §6.1: SHOULD answer 501)",
    ),
    (
        "more-compliant-tests",
        "Transfer-Encoding: identity and chunked OK",
        501,
        "transfer codings other than chunked (RFC 9112 §6.1: SHOULD answer 501)",
    ),
    (
        "more-compliant-tests",
        "Multiple transfer encoding headers in a single request OK",
        501,
        "transfer codings other than chunked (RFC 9112 §6.1: SHOULD answer 501)",
    ),
    // `chunked` has no parameters (RFC 9112 §7.1); `gzip ;` is not a transfer-parameter.
    (
        "rfc-compliant",
        "Transfer-Encoding with a param: chunked;custom_param",
        400,
        "`chunked;custom_param`: chunked takes no parameters (RFC 9112 §7.1)",
    ),
    (
        "more-compliant-tests",
        "TE with custom parameters OK",
        400,
        "`chunked;custom_param`: chunked takes no parameters (RFC 9112 §7.1)",
    ),
];

/// Statuses a rejection may carry: 400, or the codec's more specific one.
const REJECTION_STATUSES: [u16; 3] = [400, 501, 505];

fn stricter(case: &Case) -> Option<(u16, &'static str)> {
    STRICTER
        .iter()
        .find(|(file, name, _, _)| *file == case.file && *name == case.name)
        .map(|&(_, _, status, why)| (status, why))
}

/// What weir did with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// An error status, the client connection closed, nothing reached the origin.
    Rejected(u16),
    /// 200 from the origin, which received exactly one well-formed message; `reused`: a second
    /// request went out on the same upstream connection.
    Forwarded { reused: bool },
}

impl Outcome {
    fn label(&self) -> String {
        match self {
            Outcome::Rejected(status) => format!("rejected {status}, closed, origin saw nothing"),
            Outcome::Forwarded { reused: true } => "forwarded once, upstream reused".into(),
            Outcome::Forwarded { reused: false } => "forwarded once, upstream closed after".into(),
        }
    }
}

fn start() -> (RecordingOrigin, Proxy) {
    let origin = RecordingOrigin::start();
    // HTTP/1.0 is served, so its framing is exercised too.
    let proxy = Config::forward_all(&[origin.addr()])
        .accept_http10()
        .start();
    (origin, proxy)
}

/// Sends `wire` on a fresh connection to a fresh weir and tells what happened, or what went
/// wrong in a way no class allows.
fn replay(wire: &[u8], head_request: bool) -> Result<Outcome, String> {
    let (origin, proxy) = start();
    let mut talk = Talk::open(proxy.addr);
    talk.send(wire);
    let resp = talk.final_response(head_request, WAIT)?;
    if resp.status != 200 {
        if head_request {
            // A request weir could not parse is not known to be HEAD: its error has a body.
            let len = resp.header("content-length").and_then(|n| n.parse().ok());
            talk.skip(len.unwrap_or(0), WAIT)?;
        }
        let ending = talk.ending(WAIT)?;
        if ending == Ending::Open {
            return Err(format!("{}, then the connection stayed open", resp.status));
        }
        // Anything forwarded would have been on its way before the rejection was written.
        sleep_ms(20);
        let received = origin.bytes_received();
        if received > 0 || !origin.connections().is_empty() {
            return Err(format!(
                "{}, but the origin received {received} bytes on {} connections",
                resp.status,
                origin.connections().len()
            ));
        }
        return Ok(Outcome::Rejected(resp.status));
    }
    // Forwarded: the origin answered, so it has the whole request; give stray bytes (a second,
    // smuggled message) a moment to arrive too.
    sleep_ms(20);
    let conns = origin.connections();
    if conns.len() != 1 {
        return Err(format!("200 over {} origin connections", conns.len()));
    }
    one_message(&conns[0].bytes).map_err(|e| format!("200, but the origin got: {e}"))?;
    // The client's connection may close (HTTP/1.0, `Connection: close`); that is no desync.
    // More bytes (a second response) would be.
    if let Err(e) = talk.ending(QUIET) {
        return Err(format!("200, then {e}"));
    }
    let mut second = Talk::open(proxy.addr);
    second.send(format!("GET /second HTTP/1.1\r\nHost: {DEFAULT_HOST}\r\n\r\n").as_bytes());
    let resp = second.final_response(false, WAIT)?;
    if resp.status != 200 {
        return Err(format!("the second request got {}", resp.status));
    }
    let reused = match origin.connections().len() {
        1 => true,
        2 if origin.wait_for(WAIT.as_millis() as u64, |c| c[0].closed) => false,
        2 => return Err("the first upstream connection was neither reused nor closed".into()),
        n => return Err(format!("{n} origin connections for two requests")),
    };
    Ok(Outcome::Forwarded { reused })
}

/// Whether `outcome` is what the case's class allows; `Err` says what was expected.
fn judge(case: &Case, outcome: &Outcome) -> Result<(), String> {
    let ok = match (case.tier, outcome) {
        (Tier::Severe, Outcome::Rejected(400)) => true,
        (Tier::Severe, _) => false,
        (Tier::Ambiguous, Outcome::Rejected(s)) => REJECTION_STATUSES.contains(s),
        (Tier::Ambiguous, Outcome::Forwarded { reused }) => !reused,
        (Tier::Compliant | Tier::Acceptable, _) => match stricter(case) {
            Some((status, _)) => *outcome == Outcome::Rejected(status),
            None => *outcome == Outcome::Forwarded { reused: true },
        },
    };
    if ok {
        return Ok(());
    }
    let want = match case.tier {
        Tier::Severe => "rejected 400".to_owned(),
        Tier::Ambiguous => "rejected, or forwarded once with the upstream closed after".into(),
        _ => match stricter(case) {
            Some((status, why)) => format!("rejected {status} ({why})"),
            None => "forwarded once, upstream reused".into(),
        },
    };
    Err(format!("want {want}, got {}", outcome.label()))
}

#[test]
fn corpus_cases_get_the_outcome_of_their_class() {
    let cases = corpus();
    assert_eq!(cases.len(), 159, "the corpus has 159 cases");
    let mut counts: BTreeMap<Tier, BTreeMap<String, usize>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut stricter_seen = 0usize;
    for case in &cases {
        let wire = case.wire();
        let result = replay(&wire, case.is_head());
        let label = match &result {
            Ok(outcome) => outcome.label(),
            Err(_) => "broken".into(),
        };
        *counts
            .entry(case.tier)
            .or_default()
            .entry(label)
            .or_default() += 1;
        if stricter(case).is_some() {
            stricter_seen += 1;
        }
        let verdict = result.and_then(|outcome| judge(case, &outcome));
        if let Err(e) = verdict {
            failures.push(format!(
                "{case}: {e}\n    sent: {:?}",
                String::from_utf8_lossy(&wire[..wire.len().min(300)])
            ));
        }
    }
    println!("desync corpus: {} cases", cases.len());
    for (tier, outcomes) in &counts {
        let total: usize = outcomes.values().sum();
        println!("  {tier:?} ({total})");
        for (label, n) in outcomes {
            println!("    {n:3}  {label}");
        }
    }
    println!(
        "  ({stricter_seen} Compliant/Acceptable cases rejected on purpose: see STRICTER in tests/desync.rs)"
    );
    for (file, name, _, _) in STRICTER {
        if !cases.iter().any(|c| c.file == *file && c.name == *name) {
            failures.push(format!("STRICTER names no corpus case: {file}: {name}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers for the classes the corpus lacks
// ---------------------------------------------------------------------------------------------

const POST: &str = "POST /t HTTP/1.1\r\nHost: desync.test\r\n";

fn post(rest: &str) -> Vec<u8> {
    format!("{POST}{rest}").into_bytes()
}

const CHUNKED_POST: &str =
    "POST /t HTTP/1.1\r\nHost: desync.test\r\nTransfer-Encoding: chunked\r\n\r\n";

fn chunked(body: &str) -> Vec<u8> {
    format!("{CHUNKED_POST}{body}").into_bytes()
}

/// The request is answered `status` before anything reaches the origin, and the client
/// connection is closed.
fn assert_rejected(wire: &[u8], status: u16) {
    let outcome = replay(wire, false);
    assert_eq!(
        outcome,
        Ok(Outcome::Rejected(status)),
        "sent {:?}",
        String::from_utf8_lossy(wire)
    );
}

/// A request whose head was valid and whose body is not: `status`, the client connection
/// closed, and the origin — which may have received the head and the body up to the error —
/// never received a complete request, and its connection was closed.
fn assert_rejected_mid_body(wire: &[u8], status: u16) {
    let shown = String::from_utf8_lossy(wire).into_owned();
    let (origin, proxy) = start();
    let mut talk = Talk::open(proxy.addr);
    talk.send(wire);
    let resp = talk
        .final_response(false, WAIT)
        .unwrap_or_else(|e| panic!("{e}; sent {shown:?}"));
    assert_eq!(resp.status, status, "sent {shown:?}");
    let ending = talk.ending(WAIT).expect("nothing after the response");
    assert_ne!(ending, Ending::Open, "the client connection is closed");
    assert!(
        origin.wait_for(WAIT.as_millis() as u64, |conns| conns
            .iter()
            .all(|c| c.closed)),
        "every origin connection is closed"
    );
    for conn in origin.connections() {
        assert_eq!(conn.requests, 0, "sent {shown:?}");
        assert!(
            !has_complete_request(&conn.bytes),
            "the origin got a complete request: {:?}",
            String::from_utf8_lossy(&conn.bytes)
        );
    }
}

/// The request is forwarded: one 200 for the client, and the origin receives exactly one
/// well-formed message, whose bytes are returned.
fn assert_forwarded_once(wire: &[u8]) -> Vec<u8> {
    let shown = String::from_utf8_lossy(wire).into_owned();
    let (origin, proxy) = start();
    let mut talk = Talk::open(proxy.addr);
    talk.send(wire);
    let resp = talk
        .final_response(false, WAIT)
        .unwrap_or_else(|e| panic!("{e}; sent {shown:?}"));
    assert_eq!(resp.status, 200, "sent {shown:?}");
    sleep_ms(20);
    let conns = origin.connections();
    assert_eq!(conns.len(), 1, "sent {shown:?}");
    one_message(&conns[0].bytes).unwrap_or_else(|e| panic!("{e}; sent {shown:?}"));
    conns[0].bytes.clone()
}

/// The head of a forwarded message as text, and its body bytes.
fn split_message(bytes: &[u8]) -> (String, Vec<u8>) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    (
        String::from_utf8_lossy(&bytes[..end]).into_owned(),
        bytes[end..].to_vec(),
    )
}

/// The values of the header `name` in a head written as text.
fn header_values(head: &str, name: &str) -> Vec<String> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

/// Reads the next `n` final responses of a pipeline.
fn pipeline(talk: &mut Talk, n: usize) -> Vec<Resp> {
    (0..n)
        .map(|_| talk.final_response(false, WAIT).expect("a response"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// TE.TE: obfuscated Transfer-Encoding
// ---------------------------------------------------------------------------------------------

#[test]
fn te_space_before_colon_is_rejected_400() {
    assert_rejected(&post("Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"), 400);
}

#[test]
fn te_tab_before_colon_is_rejected_400() {
    assert_rejected(&post("Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n"), 400);
}

#[test]
fn te_vertical_tab_before_value_is_rejected_400() {
    assert_rejected(&post("Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"), 400);
}

#[test]
fn te_vertical_tab_after_value_is_rejected_400() {
    assert_rejected(
        &post("Transfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n"),
        400,
    );
}

#[test]
fn te_form_feed_in_value_is_rejected_400() {
    assert_rejected(
        &post("Transfer-Encoding: \x0cchunked\r\n\r\n0\r\n\r\n"),
        400,
    );
}

#[test]
fn te_obs_fold_is_rejected_400() {
    assert_rejected(
        &post("Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
        400,
    );
}

#[test]
fn te_lookalike_name_with_underscore_is_rejected_400() {
    assert_rejected(&post("Transfer_Encoding: chunked\r\n\r\n0\r\n\r\n"), 400);
}

#[test]
fn te_chunked_after_another_coding_in_a_list_is_rejected_501() {
    assert_rejected(
        &post("Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        501,
    );
}

#[test]
fn te_chunked_before_another_coding_in_a_list_is_rejected_400() {
    assert_rejected(
        &post("Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
        400,
    );
}

#[test]
fn te_chunked_in_a_second_field_after_an_unknown_coding_is_rejected_501() {
    assert_rejected(
        &post("Transfer-Encoding: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        501,
    );
}

#[test]
fn te_chunked_then_unknown_coding_in_a_second_field_is_rejected_400() {
    assert_rejected(
        &post("Transfer-Encoding: chunked\r\nTransfer-Encoding: cow\r\n\r\n0\r\n\r\n"),
        400,
    );
}

#[test]
fn te_duplicated_chunked_fields_are_rejected_400() {
    assert_rejected(
        &post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        400,
    );
}

#[test]
fn te_chunked_listed_twice_is_rejected_400() {
    assert_rejected(
        &post("Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
        400,
    );
}

#[test]
fn te_quoted_chunked_is_rejected_400() {
    assert_rejected(
        &post("Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n"),
        400,
    );
}

#[test]
fn te_with_content_length_is_rejected_400() {
    assert_rejected(
        &post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        400,
    );
}

#[test]
fn te_on_http10_is_rejected_400() {
    assert_rejected(
        b"POST /t HTTP/1.0\r\nHost: desync.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn te_mixed_case_is_forwarded_as_plain_chunked() {
    let got = assert_forwarded_once(&post(
        "tRANSFER-eNCODING: ChUnKeD\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ));
    let (head, body) = split_message(&got);
    assert_eq!(header_values(&head, "transfer-encoding"), ["chunked"]);
    assert_eq!(body, b"5\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn te_tab_as_whitespace_around_value_is_forwarded_as_plain_chunked() {
    let got = assert_forwarded_once(&post(
        "Transfer-Encoding:\tchunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ));
    let (head, body) = split_message(&got);
    assert_eq!(header_values(&head, "transfer-encoding"), ["chunked"]);
    assert_eq!(body, b"5\r\nhello\r\n0\r\n\r\n");
}

// ---------------------------------------------------------------------------------------------
// Chunk sizes and extensions
// ---------------------------------------------------------------------------------------------

#[test]
fn chunk_extension_with_bare_lf_is_rejected_400() {
    assert_rejected_mid_body(
        &chunked("5;ext\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\nhello\r\n0\r\n\r\n"),
        400,
    );
}

#[test]
fn chunk_extension_with_bare_cr_is_rejected_400() {
    assert_rejected_mid_body(&chunked("5;ext\rx\r\nhello\r\n0\r\n\r\n"), 400);
}

#[test]
fn chunk_line_longer_than_4_kib_is_rejected_400() {
    let ext = "a".repeat(5000);
    assert_rejected_mid_body(&chunked(&format!("5;{ext}\r\nhello\r\n0\r\n\r\n")), 400);
}

#[test]
fn chunk_size_of_17_hex_digits_is_rejected_400() {
    assert_rejected_mid_body(&chunked("10000000000000005\r\nhello\r\n0\r\n\r\n"), 400);
}

#[test]
fn chunk_size_past_u64_is_rejected_400() {
    assert_rejected_mid_body(&chunked("ffffffffffffffff0\r\nhello\r\n0\r\n\r\n"), 400);
}

#[test]
fn chunk_size_with_leading_plus_is_rejected_400() {
    assert_rejected_mid_body(&chunked("+5\r\nhello\r\n0\r\n\r\n"), 400);
}

#[test]
fn chunk_size_with_leading_minus_is_rejected_400() {
    assert_rejected_mid_body(&chunked("-5\r\nhello\r\n0\r\n\r\n"), 400);
}

#[test]
fn chunk_size_with_0x_prefix_is_rejected_400() {
    assert_rejected_mid_body(&chunked("0x5\r\nhello\r\n0\r\n\r\n"), 400);
}

#[test]
fn chunk_size_with_leading_space_is_rejected_400() {
    assert_rejected_mid_body(&chunked(" 5\r\nhello\r\n0\r\n\r\n"), 400);
}

#[test]
fn chunk_size_with_trailing_space_is_rejected_400() {
    assert_rejected_mid_body(&chunked("5 \r\nhello\r\n0\r\n\r\n"), 400);
}

#[test]
fn chunk_data_spilling_past_its_size_is_rejected_400() {
    assert_rejected_mid_body(
        &chunked("5\r\nhelloGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n0\r\n\r\n"),
        400,
    );
}

#[test]
fn chunk_data_shorter_than_its_size_is_rejected_400() {
    assert_rejected_mid_body(
        &chunked("10\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
        400,
    );
}

#[test]
fn last_chunk_trailer_with_bare_lf_is_rejected_400() {
    assert_rejected_mid_body(
        &chunked("5\r\nhello\r\n0\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n"),
        400,
    );
}

#[test]
fn chunk_extension_with_quoted_string_is_forwarded_without_it() {
    let got = assert_forwarded_once(&chunked("5;a=\"b;c\"\r\nhello\r\n0\r\n\r\n"));
    let (_, body) = split_message(&got);
    assert_eq!(body, b"5\r\nhello\r\n0\r\n\r\n");
}

// ---------------------------------------------------------------------------------------------
// 0.CL and CL.0 with Expect: 100-continue
// ---------------------------------------------------------------------------------------------

/// The client sends the body without waiting for 100 Continue, and a second request right
/// after it: weir frames the first by its Content-Length, answers 100 itself, and forwards two
/// separate messages; the body is never read as a request.
#[test]
fn cl_with_expect_100_continue_and_early_body_is_framed_by_content_length() {
    let (origin, proxy) = start();
    let mut talk = Talk::open(proxy.addr);
    let body = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    talk.send(
        format!(
            "POST /first HTTP/1.1\r\nHost: desync.test\r\nExpect: 100-continue\r\n\
             Content-Length: {}\r\n\r\n{body}\
             GET /second HTTP/1.1\r\nHost: desync.test\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let cont = talk.response(false, WAIT).expect("100 Continue");
    assert_eq!(cont.status, 100);
    let responses = pipeline(&mut talk, 2);
    assert!(responses.iter().all(|r| r.status == 200));
    assert_eq!(talk.ending(QUIET), Ok(Ending::Open));
    sleep_ms(20);
    let conns = origin.connections();
    assert_eq!(conns.len(), 1);
    let bytes = &conns[0].bytes;
    let first_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4 + body.len();
    let (method, target) = one_message(&bytes[..first_end]).expect("the first request");
    assert_eq!((method.as_str(), target.as_str()), ("POST", "/first"));
    let (head, forwarded) = split_message(&bytes[..first_end]);
    assert!(header_values(&head, "expect").is_empty(), "{head}");
    assert_eq!(forwarded, body.as_bytes());
    let (_, target) = one_message(&bytes[first_end..]).expect("the second request");
    assert_eq!(target, "/second");
}

/// `Content-Length: 0` with `Expect: 100-continue`: no body, so no 100 Continue, and what
/// follows is the next request, framed as such by weir and by the origin alike.
#[test]
fn cl_0_with_expect_100_continue_gets_no_100_and_the_next_request_stands_alone() {
    let (origin, proxy) = start();
    let mut talk = Talk::open(proxy.addr);
    talk.send(
        b"POST /zero HTTP/1.1\r\nHost: desync.test\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n\
          GET /second HTTP/1.1\r\nHost: desync.test\r\n\r\n",
    );
    let first = talk.response(false, WAIT).expect("a response");
    assert_eq!(first.status, 200, "no 100 Continue for an empty body");
    let second = talk.response(false, WAIT).expect("a response");
    assert_eq!(second.status, 200);
    assert_eq!(talk.ending(QUIET), Ok(Ending::Open));
    sleep_ms(20);
    let conns = origin.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].requests, 2);
}

/// An unknown expectation (`Expect: y 100-continue`) changes nothing about framing: the body
/// follows the head and is forwarded as the body.
#[test]
fn obfuscated_expect_with_content_length_is_forwarded_once_with_its_body() {
    let got = assert_forwarded_once(&post(
        "Expect: y 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    ));
    let (_, body) = split_message(&got);
    assert_eq!(body, b"hello");
}

/// CL.0 where weir answers before the body: a route answered locally never reads the body as a
/// request; weir answers once and closes, and the origin sees nothing.
#[test]
fn cl_with_expect_100_continue_answered_locally_never_parses_the_body_as_a_request() {
    let origin = RecordingOrigin::start();
    let routes = r#"
        virtual_hosts:
          - name: all
            domains: ["*"]
            routes:
              - match: { path: /blocked }
                direct_response: { status: 403, body: { inline_string: "no" } }
              - match: { prefix: / }
                route: { cluster: backend }
    "#;
    let proxy = Config::new()
        .cluster("backend", &[origin.addr()])
        .routes(routes)
        .start();
    let mut talk = Talk::open(proxy.addr);
    let body = "GET /smuggled HTTP/1.1\r\nHost: desync.test\r\n\r\n";
    talk.send(
        format!(
            "POST /blocked HTTP/1.1\r\nHost: desync.test\r\nExpect: 100-continue\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let resp = talk.final_response(false, WAIT).expect("a response");
    assert_eq!(resp.status, 403);
    assert_ne!(
        talk.ending(WAIT),
        Ok(Ending::Open),
        "one response, then close"
    );
    sleep_ms(20);
    assert_eq!(origin.bytes_received(), 0);
}

// ---------------------------------------------------------------------------------------------
// Connection naming framing fields
// ---------------------------------------------------------------------------------------------

#[test]
fn connection_naming_content_length_is_rejected_400() {
    assert_rejected(
        &post("Connection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"),
        400,
    );
}

#[test]
fn connection_naming_content_length_in_a_list_is_rejected_400() {
    assert_rejected(
        &post("Connection: keep-alive, content-length\r\nContent-Length: 5\r\n\r\nhello"),
        400,
    );
}

#[test]
fn connection_naming_transfer_encoding_is_rejected_400() {
    assert_rejected(
        &post("Connection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        400,
    );
}

#[test]
fn connection_naming_host_is_rejected_400() {
    assert_rejected(&post("Connection: Host\r\nContent-Length: 0\r\n\r\n"), 400);
}

// ---------------------------------------------------------------------------------------------
// Absolute-form targets and Host
// ---------------------------------------------------------------------------------------------

/// RFC 9112 §3.2.2: the target's authority wins over Host. weir routes by it and forwards
/// origin-form with exactly one Host, the target's.
#[test]
fn absolute_form_target_overrides_a_different_host_for_routing_and_forwarding() {
    let a = RecordingOrigin::start();
    let b = RecordingOrigin::start();
    let routes = r#"
        virtual_hosts:
          - name: a
            domains: ["a.example"]
            routes: [{ match: { prefix: / }, route: { cluster: a } }]
          - name: b
            domains: ["b.example"]
            routes: [{ match: { prefix: / }, route: { cluster: b } }]
    "#;
    let proxy = Config::new()
        .cluster("a", &[a.addr()])
        .cluster("b", &[b.addr()])
        .routes(routes)
        .start();
    let mut talk = Talk::open(proxy.addr);
    talk.send(b"GET http://a.example/p?q=1 HTTP/1.1\r\nHost: b.example\r\n\r\n");
    let resp = talk.final_response(false, WAIT).expect("a response");
    assert_eq!(resp.status, 200);
    sleep_ms(20);
    assert_eq!(b.bytes_received(), 0, "the Host's cluster saw nothing");
    let conns = a.connections();
    assert_eq!(conns.len(), 1);
    let (method, target) = one_message(&conns[0].bytes).expect("one request");
    assert_eq!((method.as_str(), target.as_str()), ("GET", "/p?q=1"));
    let (head, _) = split_message(&conns[0].bytes);
    assert_eq!(header_values(&head, "host"), ["a.example"]);
}

#[test]
fn absolute_form_target_with_userinfo_is_rejected_400() {
    assert_rejected(
        b"GET http://user@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
        400,
    );
}

#[test]
fn absolute_form_target_with_two_authorities_is_rejected_400() {
    assert_rejected(
        b"GET http://a.example,b.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
        400,
    );
}

#[test]
fn two_host_fields_are_rejected_400() {
    assert_rejected(
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        400,
    );
}

#[test]
fn two_identical_host_fields_are_rejected_400() {
    assert_rejected(
        b"GET / HTTP/1.1\r\nHost: a.example\r\nhost: a.example\r\n\r\n",
        400,
    );
}

#[test]
fn host_list_in_one_field_is_rejected_400() {
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a.example,b.example\r\n\r\n", 400);
}

#[test]
fn host_with_space_before_colon_is_rejected_400() {
    assert_rejected(
        b"GET / HTTP/1.1\r\nHost : a.example\r\nHost: b.example\r\n\r\n",
        400,
    );
}

#[test]
fn missing_host_is_rejected_400() {
    assert_rejected(b"GET / HTTP/1.1\r\nX-Host: a.example\r\n\r\n", 400);
}

// ---------------------------------------------------------------------------------------------
// NUL, CR and LF in values
// ---------------------------------------------------------------------------------------------

#[test]
fn nul_in_a_header_value_is_rejected_400() {
    assert_rejected(&post("X: a\0b\r\nContent-Length: 0\r\n\r\n"), 400);
}

#[test]
fn bare_cr_in_a_header_value_is_rejected_400() {
    assert_rejected(
        &post("X: a\rTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"),
        400,
    );
}

#[test]
fn bare_lf_in_a_header_value_is_rejected_400() {
    assert_rejected(
        &post("X: a\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"),
        400,
    );
}

#[test]
fn nul_in_the_target_is_rejected_400() {
    assert_rejected(b"GET /a\0b HTTP/1.1\r\nHost: desync.test\r\n\r\n", 400);
}

#[test]
fn nul_in_a_trailer_value_is_rejected_400() {
    assert_rejected_mid_body(&chunked("5\r\nhello\r\n0\r\nX: a\0b\r\n\r\n"), 400);
}

// ---------------------------------------------------------------------------------------------
// Pipelines after a request that closes
// ---------------------------------------------------------------------------------------------

/// Requests pipelined after `Connection: close` are never forwarded: one response, then the
/// connection closes.
#[test]
fn requests_after_connection_close_in_a_pipeline_are_not_forwarded() {
    let (origin, proxy) = start();
    let mut talk = Talk::open(proxy.addr);
    talk.send(
        b"GET /first HTTP/1.1\r\nHost: desync.test\r\nConnection: close\r\n\r\n\
          GET /second HTTP/1.1\r\nHost: desync.test\r\n\r\n\
          POST /third HTTP/1.1\r\nHost: desync.test\r\nContent-Length: 2\r\n\r\nhi",
    );
    let resp = talk.final_response(false, WAIT).expect("a response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_ne!(
        talk.ending(WAIT),
        Ok(Ending::Open),
        "closed after the first"
    );
    sleep_ms(20);
    let conns = origin.connections();
    assert_eq!(conns.iter().map(|c| c.requests).sum::<usize>(), 1);
    let (_, target) = one_message(&conns[0].bytes).expect("only the first request");
    assert_eq!(target, "/first");
}

#[test]
fn requests_after_a_body_with_connection_close_in_a_pipeline_are_not_forwarded() {
    let (origin, proxy) = start();
    let mut talk = Talk::open(proxy.addr);
    talk.send(
        b"POST /first HTTP/1.1\r\nHost: desync.test\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello\
          GET /second HTTP/1.1\r\nHost: desync.test\r\n\r\n",
    );
    let resp = talk.final_response(false, WAIT).expect("a response");
    assert_eq!(resp.status, 200);
    assert_ne!(
        talk.ending(WAIT),
        Ok(Ending::Open),
        "closed after the first"
    );
    sleep_ms(20);
    let conns = origin.connections();
    assert_eq!(conns.iter().map(|c| c.requests).sum::<usize>(), 1);
    let (_, target) = one_message(&conns[0].bytes).expect("only the first request");
    assert_eq!(target, "/first");
}

#[test]
fn requests_after_an_http10_request_without_keep_alive_are_not_forwarded() {
    let (origin, proxy) = start();
    let mut talk = Talk::open(proxy.addr);
    talk.send(
        b"GET /first HTTP/1.0\r\nHost: desync.test\r\n\r\n\
          GET /second HTTP/1.1\r\nHost: desync.test\r\n\r\n",
    );
    let resp = talk.final_response(false, WAIT).expect("a response");
    assert_eq!(resp.status, 200);
    assert_ne!(
        talk.ending(WAIT),
        Ok(Ending::Open),
        "closed after the first"
    );
    sleep_ms(20);
    assert_eq!(origin.requests(), 1);
}

#[test]
fn requests_after_a_rejected_request_in_a_pipeline_are_not_forwarded() {
    let (origin, proxy) = start();
    let mut talk = Talk::open(proxy.addr);
    talk.send(
        b"POST /first HTTP/1.1\r\nHost: desync.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello\
          GET /second HTTP/1.1\r\nHost: desync.test\r\n\r\n",
    );
    let resp = talk.final_response(false, WAIT).expect("a response");
    assert_eq!(resp.status, 400);
    assert_ne!(
        talk.ending(WAIT),
        Ok(Ending::Open),
        "closed after the rejection"
    );
    sleep_ms(20);
    assert_eq!(origin.bytes_received(), 0);
}

// ---------------------------------------------------------------------------------------------
// Ambiguous requests that weir forwards
// ---------------------------------------------------------------------------------------------

/// A body on GET is valid but has no defined semantics (RFC 9110 §9.3.1): weir forwards it as
/// one message and closes that upstream connection after the response, so an origin that
/// ignored the body cannot answer it as a second request on a pooled connection.
#[test]
fn get_with_a_body_is_forwarded_once_and_its_upstream_connection_is_not_reused() {
    let outcome = replay(
        b"GET /t HTTP/1.1\r\nHost: desync.test\r\nContent-Length: 5\r\n\r\nhello",
        false,
    );
    assert_eq!(outcome, Ok(Outcome::Forwarded { reused: false }));
}

#[test]
fn a_plain_get_keeps_its_upstream_connection_pooled() {
    let outcome = replay(b"GET /t HTTP/1.1\r\nHost: desync.test\r\n\r\n", false);
    assert_eq!(outcome, Ok(Outcome::Forwarded { reused: true }));
}

#[test]
fn duplicate_identical_content_lengths_are_rejected_400() {
    assert_rejected(
        &post("Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
        400,
    );
}

#[test]
fn content_length_list_of_identical_values_is_rejected_400() {
    assert_rejected(&post("Content-Length: 5, 5\r\n\r\nhello"), 400);
}

#[test]
fn content_length_with_leading_plus_is_rejected_400() {
    assert_rejected(&post("Content-Length: +5\r\n\r\nhello"), 400);
}

#[test]
fn content_length_lookalike_name_is_rejected_400() {
    assert_rejected(&post("Content_Length: 5\r\n\r\nhello"), 400);
}
