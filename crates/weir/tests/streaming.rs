//! 100 MiB through weir in each direction without weir holding it: peak RSS stays far below
//! the body size (per_connection_buffer_limit_bytes defaults to 1 MiB per connection).
//!
//! The receiving side pauses before it starts reading, so weir's buffers fill and its
//! back-pressure (not just a fast reader) is what keeps memory bounded.

mod support;

use std::time::Duration;

use support::{
    Checksum, Client, Origin, Weir, echo_fields, generate, generated_checksum, proxy_config,
};

const SIZE: u64 = 100 * 1024 * 1024;
/// Peak RSS weir may reach: well under the 100 MiB that buffering a body would take.
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// Sends a 100 MiB POST (head already written by `head`, pieces framed by `frame`) and checks
/// the origin's count and checksum.
fn upload(client: &mut Client, head: &str, frame: impl Fn(&[u8]) -> Vec<Vec<u8>>, trailer: &[u8]) {
    client.send(head.as_bytes()).expect("send head");
    let mut sent = Checksum::default();
    generate(SIZE, |piece| {
        sent.update(piece);
        for part in frame(piece) {
            client.send(&part)?;
        }
        Ok(())
    })
    .expect("upload body");
    client.send(trailer).expect("send trailer");
    let response = client.read_response().expect("upload response");
    assert_eq!(response.status(), 200, "{}", response.text());
    let seen = echo_fields(&response.body);
    assert_eq!(seen["body-bytes"], SIZE.to_string(), "{}", response.text());
    assert_eq!(
        seen["body-sum"],
        sent.finish(),
        "the origin got different bytes"
    );
}

#[test]
fn hundred_mib_upload_and_download_with_bounded_rss() {
    let origin = Origin::standard();
    let weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "1"]);
    let baseline = weir.proc_status_kib("VmHWM");
    let mut client = Client::connect(weir.addr()).expect("connect");

    // Upload: content-length framed, written from the generator in 64 KiB pieces; the origin
    // waits 300 ms before reading it.
    upload(
        &mut client,
        &format!(
            "POST /upload?pause_ms=300 HTTP/1.1\r\nhost: t\r\ncontent-type: application/octet-stream\r\ncontent-length: {SIZE}\r\n\r\n"
        ),
        |piece| vec![piece.to_vec()],
        b"",
    );
    let after_upload = weir.proc_status_kib("VmHWM");

    // Download on the same (keep-alive) connection; the client waits 300 ms after the head,
    // then reads and counts the body as it arrives.
    client
        .send(format!("GET /download?bytes={SIZE} HTTP/1.1\r\nhost: t\r\n\r\n").as_bytes())
        .expect("send download request");
    let head = client.read_head().expect("download head");
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.header("content-length"),
        Some(SIZE.to_string().as_str())
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut received = Checksum::default();
    client
        .read_body_each(&head, &mut |piece| received.update(piece))
        .expect("download body");
    assert_eq!(received.count(), SIZE);
    assert_eq!(
        received.finish(),
        generated_checksum(SIZE),
        "the client got different bytes"
    );

    let peak = weir.proc_status_kib("VmHWM");
    let now = weir.proc_status_kib("VmRSS");
    eprintln!(
        "weir VmHWM: {baseline} kB at start, {after_upload} kB after the 100 MiB upload, \
         {peak} kB after the 100 MiB download (VmRSS now {now} kB; bound {RSS_BOUND_KIB} kB)"
    );
    assert!(
        peak < RSS_BOUND_KIB,
        "weir's peak RSS {peak} kB is not below {RSS_BOUND_KIB} kB: bodies are being buffered"
    );
}

#[test]
fn hundred_mib_chunked_upload_with_bounded_rss() {
    let origin = Origin::standard();
    let weir = Weir::start(&proxy_config(origin.addr), &["--concurrency", "1"]);
    let mut client = Client::connect(weir.addr()).expect("connect");
    upload(
        &mut client,
        "POST /upload-chunked?pause_ms=300 HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n",
        |piece| {
            vec![
                format!("{:x}\r\n", piece.len()).into_bytes(),
                piece.to_vec(),
                b"\r\n".to_vec(),
            ]
        },
        b"0\r\n\r\n",
    );
    let peak = weir.proc_status_kib("VmHWM");
    eprintln!("weir VmHWM after a 100 MiB chunked upload: {peak} kB (bound {RSS_BOUND_KIB} kB)");
    assert!(
        peak < RSS_BOUND_KIB,
        "weir's peak RSS {peak} kB is not below {RSS_BOUND_KIB} kB: the body is being buffered"
    );
}
