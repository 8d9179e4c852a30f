//! The flow timeline, end to end: `weir --flow-trace all` serves `/flows/view`, headless
//! Chromium loads it, the page fetches the JSON lines and draws the swimlanes, and the dumped
//! DOM shows the known request's lanes (with its real fds), the four phases and the event
//! marks; a screenshot is kept for a human to look at. Also `weir flows` in its three formats.
//!
//! Chromium (`/usr/bin/chromium`, Debian package `chromium`) is required: `.ci/run` installs
//! it, and these tests fail rather than skip without it.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Origin, Weir, get, proxy_config, run_program, run_weir, wait_child, weir_bin};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(15);

/// The four phases' JSON names, in the seed's order.
const PHASES: [&str; 4] = [
    "downstream_read_request",
    "upstream_write_request",
    "upstream_read_response",
    "downstream_write_response",
];

/// A flow as the admin's JSON lines give it: the header object and its events.
struct JsonFlow {
    header: Value,
    events: Vec<Value>,
}

impl JsonFlow {
    fn stream(&self) -> u64 {
        self.header["stream"].as_u64().expect("stream")
    }

    /// The fd of the first event on `lane`.
    fn fd(&self, lane: &str) -> i64 {
        self.events
            .iter()
            .find(|e| e["lane"] == lane)
            .and_then(|e| e["fd"].as_i64())
            .unwrap_or_else(|| panic!("no {lane} event in the flow"))
    }
}

/// Parses JSON lines (every line must be a JSON object) into flows.
fn parse_json_lines(text: &str) -> Vec<JsonFlow> {
    let mut flows: Vec<JsonFlow> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {} is not JSON ({e}): {line:?}", i + 1));
        assert!(value.is_object(), "line {} is not an object: {line}", i + 1);
        if value["event"] == "flow" {
            flows.push(JsonFlow {
                header: value,
                events: Vec::new(),
            });
        } else {
            let flow = flows
                .last_mut()
                .unwrap_or_else(|| panic!("line {} comes before any flow header", i + 1));
            flow.events.push(value);
        }
    }
    flows
}

/// The admin's flows in JSON lines, once the one for `path` is there (≤ 5 s).
fn flows_with(weir: &Weir, path: &str) -> Vec<JsonFlow> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = get(weir.admin, "/flows?format=json&limit=50").expect("GET /flows");
        assert_eq!(resp.status(), 200, "{}", resp.text());
        let flows = parse_json_lines(&resp.text());
        if flows.iter().any(|f| f.header["path"] == path) || Instant::now() > deadline {
            return flows;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh, empty directory for Chromium's profile; removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = support::TempFile::unique_path(name);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs headless Chromium on `url` with `extra` flags (`--dump-dom`, `--screenshot=…`) and a
/// fresh profile. `--virtual-time-budget` makes it wait for the page's fetch: virtual time
/// does not advance while a network request is pending, so the DOM is dumped (or the
/// screenshot taken) after the page has drawn what it fetched.
fn chromium(url: &str, extra: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: these tests need Chromium (`apt-get install -y chromium`; .ci/run installs it)"
    );
    let profile = TempDir::new("chromium-profile");
    let data_dir = format!("--user-data-dir={}", profile.0.display());
    let mut args = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--disable-dev-shm-usage",
        &data_dir,
        "--virtual-time-budget=5000",
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let ran = run_program(CHROMIUM, &args, CHROMIUM_TIMEOUT);
    assert!(
        ran.status.success(),
        "chromium failed: {}\n--- stderr ---\n{}",
        ran.status,
        ran.stderr
    );
    ran.stdout
}

/// The DOM after the page's script ran; once more if the fetch had not landed yet.
fn dump_dom(url: &str) -> String {
    let dom = chromium(url, &["--dump-dom"]);
    if dom.contains("Loading…") || dom.contains("Loading&hellip;") {
        eprintln!("note: the page was still loading when the DOM was dumped; once more");
        return chromium(url, &["--dump-dom"]);
    }
    dom
}

/// The value of attribute `name` in an element's start tag (`<g class="lane" …>`).
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// The flow group of stream `stream`: from its `<details …data-stream=…>` to the next group.
fn flow_group(dom: &str, stream: u64) -> &str {
    let open = format!("data-stream=\"{stream}\"");
    let at = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no element with {open} in the DOM:\n{}", excerpt(dom)));
    let start = dom[..at].rfind('<').expect("a start tag");
    let end = dom[at..]
        .find("<details class=\"flow\"")
        .map_or(dom.len(), |n| at + n);
    &dom[start..end]
}

/// Each lane of a flow group: its start tag's attributes and its content (up to `</g>`).
fn lanes(group: &str) -> Vec<(HashMap<String, String>, &str)> {
    let mut out = Vec::new();
    let mut rest = group;
    while let Some(at) = rest.find("<g ") {
        let tag_end = at + rest[at..].find('>').expect("tag end");
        let tag = &rest[at..tag_end];
        let body_end = tag_end + rest[tag_end..].find("</g>").unwrap_or(rest.len() - tag_end);
        if attr(tag, "data-lane").is_some() {
            let attrs = ["data-lane", "data-fd", "data-conn", "class"]
                .iter()
                .filter_map(|n| attr(tag, n).map(|v| (n.to_string(), v.to_string())))
                .collect();
            out.push((attrs, &rest[tag_end..body_end]));
        }
        rest = &rest[tag_end..];
    }
    out
}

fn excerpt(dom: &str) -> String {
    let body = dom.find("<main").map_or(dom, |i| &dom[i..]);
    body.chars().take(3000).collect()
}

/// `data-event` values in a piece of DOM.
fn marks(content: &str) -> Vec<&str> {
    content
        .split("data-event=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect()
}

/// The PNG's width and height from its IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "not a PNG"
    );
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    (be(16), be(20))
}

fn screenshot(url: &str, path: &Path) -> Vec<u8> {
    let _ = std::fs::remove_file(path);
    let arg = format!("--screenshot={}", path.display());
    chromium(url, &[&arg, "--window-size=1400,900", "--hide-scrollbars"]);
    std::fs::read(path).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()))
}

/// weir records a known request; Chromium draws it: the flow's group, its downstream,
/// upstream and worker lanes with the real fds, a bar for each of the four phases, and a
/// mark for each kind of event the request went through. A screenshot is kept.
#[test]
fn chromium_draws_the_known_request_as_swimlanes() {
    let origin = Origin::standard();
    let weir = Weir::start(
        &proxy_config(origin.addr),
        &["--flow-trace", "all", "--concurrency", "1"],
    );
    let known = "/flow-view/known?id=42";
    // The known request first: a fresh upstream connection, so it connects.
    let resp = get(weir.addr(), known).expect("known request");
    assert_eq!(resp.status(), 200, "{}", resp.text());
    for path in ["/second", "/local"] {
        assert_eq!(get(weir.addr(), path).expect(path).status(), 200);
    }

    let flows = flows_with(&weir, known);
    let flow = flows
        .iter()
        .find(|f| f.header["path"] == known)
        .unwrap_or_else(|| panic!("no flow for {known} in /flows?format=json"));
    assert_eq!(flow.header["method"], "GET");
    assert_eq!(flow.header["status"], 200);
    let stream = flow.stream();
    let (ds_fd, up_fd) = (flow.fd("downstream"), flow.fd("upstream"));
    assert!(ds_fd >= 0 && up_fd >= 0 && ds_fd != up_fd);
    for phase in PHASES {
        assert!(
            flow.events.iter().any(|e| e["phase"] == phase),
            "the JSON flow has no {phase} event"
        );
    }
    let json_names: Vec<&str> = flow
        .events
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();

    let url = format!("http://{}/flows/view", weir.admin);
    let dom = dump_dom(&url);
    assert!(
        dom.contains("class=\"phase "),
        "the page drew no phase bars:\n{}",
        excerpt(&dom)
    );
    let error = dom
        .find("id=\"error\"")
        .map(|i| &dom[i..(i + 200).min(dom.len())]);
    assert!(
        error.is_some_and(|e| e.contains("hidden")),
        "the page shows an error: {error:?}"
    );
    let group = flow_group(&dom, stream);
    assert!(
        group.starts_with("<details class=\"flow\""),
        "{}",
        &group[..200.min(group.len())]
    );
    assert!(
        group.contains(&format!("GET {known}")),
        "the summary names the request:\n{group}"
    );

    let lanes = lanes(group);
    let lane = |name: &str| {
        lanes
            .iter()
            .find(|(a, _)| a["data-lane"] == name)
            .unwrap_or_else(|| panic!("no data-lane=\"{name}\" in the flow's group:\n{group}"))
    };
    let (down, down_body) = lane("downstream");
    let (up, up_body) = lane("upstream");
    let (worker, worker_body) = lane("worker");
    assert_eq!(down["data-fd"], ds_fd.to_string(), "downstream lane fd");
    assert_eq!(up["data-fd"], up_fd.to_string(), "upstream lane fd");
    assert_eq!(worker["data-fd"], "-1");
    assert_eq!(
        lanes.len(),
        3,
        "one downstream, one upstream, one worker lane"
    );
    assert!(down_body.contains(&format!("downstream fd {ds_fd}")));
    assert!(up_body.contains(&format!("upstream fd {up_fd}")));

    // A bar for each of the four phases.
    for phase in PHASES {
        assert!(
            group.contains(&format!("class=\"phase {phase}\"")),
            "no `phase {phase}` bar in the flow's group"
        );
    }
    assert!(down_body.contains("class=\"phase downstream_read_request\""));
    assert!(down_body.contains("class=\"phase downstream_write_response\""));
    assert!(up_body.contains("class=\"phase upstream_write_request\""));
    assert!(up_body.contains("class=\"phase upstream_read_response\""));

    // A mark for every event of the flow, on the lane it happened on.
    let down_marks = marks(down_body);
    let up_marks = marks(up_body);
    let worker_marks = marks(worker_body);
    for name in [
        "accept",
        "registered",
        "ready",
        "read",
        "request_head",
        "route_matched",
        "request_complete",
        "read_paused",
        "read_resumed",
        "write",
    ] {
        assert!(
            down_marks.contains(&name),
            "downstream mark {name}: {down_marks:?}"
        );
    }
    for name in [
        "connect_started",
        "registered",
        "ready",
        "connected",
        "stream_attached",
        "write",
        "read",
        "response_head",
        "response_complete",
    ] {
        assert!(
            up_marks.contains(&name),
            "upstream mark {name}: {up_marks:?}"
        );
    }
    assert!(!worker_marks.is_empty() && worker_marks.iter().all(|m| *m == "wake_round"));
    let mut drawn: Vec<&str> = marks(group);
    let mut recorded = json_names.clone();
    drawn.sort_unstable();
    recorded.sort_unstable();
    assert_eq!(drawn, recorded, "one mark per recorded event");

    // The other requests are drawn too (the local reply among them).
    let groups = dom.matches("<details class=\"flow\"").count();
    assert_eq!(groups, flows.len(), "one group per flow");
    assert!(dom.contains("GET /local"));

    // A screenshot for a human, and proof that it drew something: a 1400×900 PNG of some
    // size, larger than the same page showing no flows.
    let shot = std::env::temp_dir().join(format!("weir-flow-view-{}.png", std::process::id()));
    let png = screenshot(&url, &shot);
    assert_eq!(png_size(&png), (1400, 900));
    assert!(png.len() > 20_000, "a {} byte screenshot", png.len());
    let empty_path = support::TempFile::unique_path("flow-view-empty.png");
    let empty = screenshot(&format!("{url}?status=599"), &empty_path);
    let _ = std::fs::remove_file(&empty_path);
    assert_eq!(png_size(&empty), (1400, 900));
    assert!(
        png.len() > empty.len() + 5_000,
        "the timeline ({} bytes) should hold more than the empty page ({} bytes)",
        png.len(),
        empty.len()
    );
    eprintln!("flow timeline screenshot: {}", shot.display());
}

/// `weir flows` prints the seed's sectioned text, JSON lines, and Perfetto JSON.
#[test]
fn weir_flows_prints_text_json_and_perfetto() {
    let origin = Origin::standard();
    // One worker: "newest first" is then the order the requests were made (across workers
    // it is by each flow's last timestamp, which a preempted worker may take late).
    let weir = Weir::start(
        &proxy_config(origin.addr),
        &["--flow-trace", "all", "--concurrency", "1"],
    );
    for path in ["/cli/one", "/cli/two", "/local"] {
        assert_eq!(get(weir.addr(), path).expect(path).status(), 200);
    }
    flows_with(&weir, "/local");
    let admin = weir.admin.to_string();
    let flows = |format: &str, limit: &str| {
        let ran = run_weir(
            &[
                "flows", "--admin", &admin, "--format", format, "--limit", limit,
            ],
            Duration::from_secs(15),
        );
        assert_eq!(ran.code(), Some(0), "{ran}");
        ran.stdout
    };

    let text = flows("text", "1");
    assert_eq!(
        text.matches("======== Flow ").count(),
        1,
        "--limit 1:\n{text}"
    );
    assert!(text.contains("#### Downstream Read Request"), "{text}");
    assert!(text.contains("#### Downstream Write Response"), "{text}");
    let all = flows("text", "10");
    assert_eq!(all.matches("======== Flow ").count(), 3, "{all}");
    for phase in [
        "Downstream Read Request",
        "Upstream Write Request",
        "Upstream Read Response",
        "Downstream Write Response",
    ] {
        assert!(all.contains(&format!("#### {phase}")), "{phase} in\n{all}");
    }
    assert!(all.contains("GET /cli/one -> 200"), "{all}");

    let json = flows("json", "10");
    let parsed = parse_json_lines(&json);
    assert_eq!(parsed.len(), 3);
    assert!(json.ends_with('\n'));
    let paths: Vec<&str> = parsed
        .iter()
        .map(|f| f.header["path"].as_str().expect("path"))
        .collect();
    assert_eq!(
        paths,
        ["/local", "/cli/two", "/cli/one"],
        "newest first:\n{json}"
    );
    for flow in &parsed {
        assert!(!flow.events.is_empty());
        for e in &flow.events {
            for key in [
                "at", "worker", "lane", "fd", "conn", "stream", "phase", "event",
            ] {
                assert!(e.get(key).is_some(), "{key} missing in {e}");
            }
        }
    }

    let perfetto = flows("perfetto", "10");
    let trace: Value = serde_json::from_str(&perfetto).expect("perfetto output is JSON");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e["ph"].is_string()),
        "every event has ph"
    );
    for phase in [
        "Downstream Read Request",
        "Upstream Write Request",
        "Upstream Read Response",
        "Downstream Write Response",
    ] {
        assert!(
            events.iter().any(|e| e["name"] == phase && e["ph"] == "X"),
            "a {phase} slice"
        );
    }
}

/// `weir demo` (serving after its burst): the timeline page shows the burst's requests, and
/// says what is recorded and how to record more. A screenshot is kept.
#[test]
fn demo_timeline_shows_the_burst_and_says_what_is_recorded() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(weir_bin())
        .args(["demo", "--port", "0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn weir demo");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut admin = None;
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.expect("a line of stdout");
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line.trim().strip_prefix("admin on http://") {
            admin = rest.split_whitespace().next().map(str::to_owned);
        }
        if line.starts_with("serving until Ctrl-C") {
            break;
        }
    }
    // Keep reading stdout so weir never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let admin = admin.unwrap_or_else(|| panic!("no admin address in\n{seen}"));
    assert!(seen.contains("/flows/view"), "{seen}");

    let url = format!("http://{admin}/flows/view");
    let dom = dump_dom(&url);
    let groups = dom.matches("<details class=\"flow\"").count();
    // The page shows its default 20 requests, all from the burst.
    assert_eq!(groups, 20, "{}", excerpt(&dom));
    assert_eq!(
        dom.matches("GET /demo/").count(),
        groups,
        "{}",
        excerpt(&dom)
    );
    let note = dom
        .split("<p id=\"recording\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("no recording line:\n{dom}"));
    for words in [
        "Recording every request (flow_trace mode ALL)",
        "each worker keeps its last 1024",
        "flows_kept",
    ] {
        assert!(note.contains(words), "`{words}` not in: {note}");
    }

    let shot = std::env::temp_dir().join(format!("weir-demo-view-{}.png", std::process::id()));
    let png = screenshot(&url, &shot);
    assert_eq!(png_size(&png), (1400, 900));
    eprintln!("demo timeline screenshot: {}", shot.display());

    // SIGTERM: the demo drains and exits 0.
    let pid = child.id().to_string();
    run_program("kill", &["-TERM", &pid], Duration::from_secs(5));
    let status = wait_child(&mut child, Duration::from_secs(15)).expect("weir demo exits");
    assert!(status.success(), "{status}");
}

/// `weir flows … | head`: a reader that is gone ends `weir flows` quietly, status 0.
#[test]
fn weir_flows_into_a_closed_pipe_ends_quietly() {
    let origin = Origin::standard();
    let weir = Weir::start(
        &proxy_config(origin.addr),
        &["--flow-trace", "all", "--concurrency", "1"],
    );
    for i in 0..50 {
        let path = format!("/pipe/{i}");
        assert_eq!(get(weir.addr(), &path).expect("request").status(), 200);
    }
    flows_with(&weir, "/pipe/49");
    let mut child = std::process::Command::new(weir_bin())
        .args(["flows", "--admin", &weir.admin.to_string(), "--limit", "50"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn weir flows");
    drop(child.stdout.take());
    let mut stderr = child.stderr.take().expect("stderr");
    let status = wait_child(&mut child, Duration::from_secs(15)).expect("weir flows ended");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).expect("stderr");
    assert!(!err.contains("panicked"), "{status}\n{err}");
    assert_eq!(status.code(), Some(0), "{err}");
}
