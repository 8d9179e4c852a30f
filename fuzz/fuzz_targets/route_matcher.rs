//! The router (weir-proxy's crate-private route table, reached through the `fuzzing` feature)
//! over a fixed config with every kind of domain, path and header matcher and every action
//! (`fuzz/configs/routes.yaml`), routing requests built from the input.
//!
//! Each input makes a request from dictionaries and raw bytes (method, target, Host, headers).
//! If weir's request decoder accepts it, it is routed the way the connection manager routes it
//! (authority from an absolute-form target, else Host), and then: a forwarded request names a
//! real cluster and still encodes to a request that decodes the same; a redirect's `location`
//! is a clean absolute URL (no control bytes: no header injection). Whatever the decoder says,
//! the raw head is also routed with an arbitrary authority: no panic on any bytes.
#![no_main]

use std::sync::{LazyLock, Mutex};

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use weir_http1::{
    BytesMut, Header, Headers, Limits, RequestDecoder, RequestEvent, RequestHead, Version,
};
use weir_proxy::fuzzing::{Outcome, Router};

const CONFIG: &str = include_str!("../configs/routes.yaml");

struct Fixture {
    router: Router,
    clusters: usize,
}

static FIXTURE: LazyLock<Mutex<Fixture>> = LazyLock::new(|| {
    let bootstrap = weir_config::parse(CONFIG).expect("fuzz/configs/routes.yaml is valid");
    Mutex::new(Fixture {
        router: Router::new(&bootstrap, 7),
        clusters: bootstrap.clusters.len(),
    })
});

const METHODS: &[&str] = &[
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "get",
];
const PATH_PIECES: &[&str] = &[
    "/",
    "/v1/",
    "/v2/",
    "/v3/",
    "/users/",
    "123",
    "/healthz",
    "/upload",
    "/UPLOAD",
    "/docs",
    "/moved",
    "/old/",
    "x",
    "/search",
    "/exact/path",
    "/Exact/Path",
    "/any",
    "?",
    "debug=1",
    "a=b",
    "&",
    "%2F",
    "..",
    "//",
    "#",
    ";",
    "http://",
    "https://",
    "HTTP://",
    "api.example.com",
    "www.example.com",
    ":10000",
    "*",
    "é",
];
const HOSTS: &[&str] = &[
    "api.example.com",
    "api.example.com:10000",
    "API.EXAMPLE.COM",
    "api.example.net",
    "www.example.com",
    "example.com",
    "example.com:80",
    "[::1]:10000",
    "[::1]",
    "127.0.0.1",
    "old.example.com",
    "x.old.example.com",
    ".old.example.com",
    "legacy-",
    "legacy-a",
    "a-legacy.net",
    "-legacy.net",
    "x",
    "xy",
    "docs.example.com",
    "",
    "unknown",
];
const NAMES: &[&str] = &[
    "x-canary",
    "x-tier",
    "accept",
    "user-agent",
    "content-type",
    "x-internal-debug",
    "x-remove-me",
    "x-api-gateway",
    "x-api-version",
    "x-trace",
    "connection",
    "content-length",
    "host",
    "x-envoy-original-path",
    "keep-alive",
    "te",
    "upgrade",
];
const VALUES: &[&str] = &[
    "1",
    "free",
    "FREE",
    "text/html",
    "application/json; q=1",
    "Mozilla bot",
    "BOT",
    "multipart/form-data",
    "MULTIPART/x",
    "close",
    "keep-alive",
    "0",
    "x-canary",
    "on",
    "",
];

fn pick<'a>(u: &mut Unstructured<'_>, dict: &[&'a str]) -> Result<Vec<u8>> {
    Ok(if u.ratio(1, 8)? {
        let n = u.int_in_range(0..=24)?;
        u.bytes(n)?.to_vec()
    } else {
        u.choose(dict)?.as_bytes().to_vec()
    })
}

struct Input {
    method: Vec<u8>,
    target: Vec<u8>,
    version: Version,
    host: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    raw_authority: Vec<u8>,
}

fn input(u: &mut Unstructured<'_>) -> Result<Input> {
    let method = pick(u, METHODS)?;
    let mut target = Vec::new();
    for _ in 0..u.int_in_range(1..=6)? {
        target.extend(pick(u, PATH_PIECES)?);
    }
    let version = if u.ratio(1, 8)? {
        Version::Http10
    } else {
        Version::Http11
    };
    let host = if u.ratio(1, 16)? {
        None
    } else {
        Some(pick(u, HOSTS)?)
    };
    let mut headers = Vec::new();
    for _ in 0..u.int_in_range(0..=6)? {
        headers.push((pick(u, NAMES)?, pick(u, VALUES)?));
    }
    let raw_authority = pick(u, HOSTS)?;
    Ok(Input {
        method,
        target,
        version,
        host,
        headers,
        raw_authority,
    })
}

fn wire(i: &Input) -> Vec<u8> {
    let mut w = Vec::new();
    w.extend_from_slice(&i.method);
    w.push(b' ');
    w.extend_from_slice(&i.target);
    w.push(b' ');
    w.extend_from_slice(i.version.as_str().as_bytes());
    w.extend_from_slice(b"\r\n");
    if let Some(host) = &i.host {
        w.extend_from_slice(b"host: ");
        w.extend_from_slice(host);
        w.extend_from_slice(b"\r\n");
    }
    for (n, v) in &i.headers {
        w.extend_from_slice(n);
        w.extend_from_slice(b": ");
        w.extend_from_slice(v);
        w.extend_from_slice(b"\r\n");
    }
    w.extend_from_slice(b"\r\n");
    w
}

fn decode(wire: &[u8]) -> Option<weir_http1::Request> {
    let mut buf = BytesMut::from(wire);
    match RequestDecoder::new(Limits::default()).decode(&mut buf) {
        Ok(Some(RequestEvent::Head(request))) => Some(*request),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(input) = input(&mut u) else { return };
    let mut fixture = FIXTURE.lock().unwrap();
    let clusters = fixture.clusters;

    // Any bytes at all: no panic.
    let mut raw = RequestHead {
        method: input.method.clone().into(),
        target: input.target.clone().into(),
        version: input.version,
        headers: input
            .headers
            .iter()
            .map(|(n, v)| Header {
                name: n.clone().into(),
                value: v.clone().into(),
            })
            .collect::<Headers>(),
    };
    let _ = fixture.router.route(0, &input.raw_authority, &mut raw);

    // What the decoder accepts, routed as the connection manager routes it.
    let Some(request) = decode(&wire(&input)) else {
        return;
    };
    let mut head = request.head;
    if head.method.as_ref() == b"CONNECT" {
        return;
    }
    let authority = match weir_proxy::fuzzing::absolute_form_split(&head.target) {
        Some((authority, origin_form)) => {
            head.headers.set("host", authority.clone());
            head.target = origin_form;
            authority
        }
        None => head.headers.get("host").cloned().unwrap_or_default(),
    };
    if !head.headers.contains("host") {
        return;
    }
    match fixture.router.route(0, &authority, &mut head) {
        Outcome::Forward { cluster, .. } => {
            assert!(cluster < clusters, "cluster {cluster} of {clusters}");
            // What goes upstream must still be a request that decodes the same.
            let mut out = Vec::new();
            weir_http1::encode_request_head(&head, false, &mut out);
            let again = decode(&out).unwrap_or_else(|| {
                panic!("forwarded head does not decode: {}", out.escape_ascii())
            });
            assert_eq!(again.head, head, "forwarded head decodes differently");
        }
        Outcome::Respond {
            status, location, ..
        } => {
            assert!((100..=599).contains(&status));
            if let Some(location) = location {
                assert!(
                    location.starts_with("http://") || location.starts_with("https://"),
                    "location {location:?}"
                );
                assert!(
                    !location.bytes().any(|b| b.is_ascii_control()),
                    "control byte in location {location:?}"
                );
            }
        }
    }
});
