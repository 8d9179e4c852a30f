//! `weir route`: what weir would do with a request, worked out from a config without
//! sockets (`weir_proxy::explain`), for one request or a file of them; with `--expect`, a
//! table of requests and what they should get, for CI: exit 1 on any mismatch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use weir_proxy::explain::{RouteAnswer, RouteRequest, explain_route};

use crate::out;

#[derive(Args, Debug)]
pub(crate) struct RouteArgs {
    /// The Envoy v3 bootstrap (YAML or JSON).
    #[arg(short = 'c', long = "config-path")]
    config: PathBuf,
    /// The listener to reach, by name (default: the one on each URL's port).
    #[arg(long)]
    listener: Option<String>,
    /// `text` (default) or `json` (one object per request).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
    /// A file of requests, one per line in the command line's form, or a JSON object
    /// `{"method", "url", "headers": {name: value}}`.
    #[arg(long)]
    file: Option<PathBuf>,
    /// A file of `REQUEST => EXPECTED` lines (`cluster NAME`, or a status with a redirect's
    /// location after it): prints each mismatch and exits 1 on any.
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Requests: `"GET http://host:port/path?q"` (the method may be left out: GET), each
    /// followed by its `-H "name: value"` fields.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    requests: Vec<String>,
}

pub(crate) fn run(args: &RouteArgs) -> ExitCode {
    let bootstrap = match weir_config::load(&args.config) {
        Ok(b) => b,
        Err(errors) => {
            eprintln!("{}: invalid\n{errors}", args.config.display());
            return ExitCode::from(1);
        }
    };
    if let Some(path) = &args.expect {
        return expect(&bootstrap, path);
    }
    let mut requests = match requests_of(&args.requests) {
        Ok(r) => r,
        Err(e) => return usage(&e),
    };
    if let Some(path) = &args.file {
        match read(path).and_then(|text| lines(&text)) {
            Ok(more) => requests.extend(more),
            Err(e) => return usage(&e),
        }
    }
    if requests.is_empty() {
        return usage("no request given");
    }
    for request in &mut requests {
        request.listener.clone_from(&args.listener);
    }
    let mut failed = false;
    for request in &requests {
        match explain_route(&bootstrap, request) {
            Ok(answer) if args.format == "json" => {
                out::outln!("{}", serde_json::to_string(&answer).unwrap_or_default());
            }
            Ok(answer) => out::out!("{}", answer.text()),
            Err(e) => {
                eprintln!("{} {}: {e}", request.method, request.url);
                failed = true;
            }
        }
    }
    ExitCode::from(u8::from(failed))
}

fn usage(why: &str) -> ExitCode {
    eprintln!("weir route: {why}");
    ExitCode::from(2)
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A file's requests: a line per request (blank lines and `#` comments skipped).
fn lines(text: &str) -> Result<Vec<RouteRequest>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let request = request_line(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        out.push(request);
    }
    Ok(out)
}

/// One request as a line: shell-style words, or a JSON object.
fn request_line(line: &str) -> Result<RouteRequest, String> {
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let url = v["url"].as_str().ok_or("a JSON request needs \"url\"")?;
        let headers = match v["headers"].as_object() {
            Some(map) => (map.iter())
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect(),
            None => Vec::new(),
        };
        return Ok(RouteRequest {
            method: v["method"].as_str().unwrap_or("GET").to_owned(),
            url: url.to_owned(),
            headers,
            listener: None,
        });
    }
    let words = shlex::split(line).ok_or("unbalanced quotes")?;
    let mut requests = requests_of(&words)?;
    match (requests.pop(), requests.is_empty()) {
        (Some(r), true) => Ok(r),
        _ => Err("one request per line".to_owned()),
    }
}

/// Requests from words: `METHOD URL` (as one word or two) or `URL`, then `-H FIELD`s.
fn requests_of(words: &[String]) -> Result<Vec<RouteRequest>, String> {
    let mut out: Vec<RouteRequest> = Vec::new();
    let mut method: Option<String> = None;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if word == "-H" || word == "--header" {
            let field = words.next().ok_or("-H needs a `name: value`")?;
            let (name, value) =
                (field.split_once(':')).ok_or_else(|| format!("`{field}` is not `name: value`"))?;
            let last = out.last_mut().ok_or("-H before any request")?;
            last.headers
                .push((name.trim().to_owned(), value.trim().to_owned()));
            continue;
        }
        // `"GET http://…"` is one word on a command line.
        for piece in word.split_whitespace() {
            if piece.contains("://") {
                out.push(RouteRequest {
                    method: method.take().unwrap_or_else(|| "GET".to_owned()),
                    url: piece.to_owned(),
                    headers: Vec::new(),
                    listener: None,
                });
            } else if method.is_none() {
                method = Some(piece.to_owned());
            } else {
                return Err(format!("`{piece}`: expected a URL after the method"));
            }
        }
    }
    match method {
        Some(m) => Err(format!("`{m}` is not followed by a URL")),
        None => Ok(out),
    }
}

/// `--expect`: every line's request against what it should get.
fn expect(bootstrap: &weir_config::Bootstrap, path: &PathBuf) -> ExitCode {
    let text = match read(path) {
        Ok(t) => t,
        Err(e) => return usage(&e),
    };
    let (mut checked, mut wrong) = (0, 0);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((request, expected)) = line.rsplit_once("=>") else {
            return usage(&format!(
                "line {}: no `=>` between the request and what it expects",
                n + 1
            ));
        };
        let request = match request_line(request.trim()) {
            Ok(r) => r,
            Err(e) => return usage(&format!("line {}: {e}", n + 1)),
        };
        checked += 1;
        let got = match explain_route(bootstrap, &request) {
            Ok(answer) => outcome(&answer),
            Err(e) => format!("error: {e}"),
        };
        let expected = expected.split_whitespace().collect::<Vec<_>>().join(" ");
        if got != expected {
            wrong += 1;
            out::outln!(
                "line {}: {} {}\n  expected {expected}\n  got      {got}",
                n + 1,
                request.method,
                request.url
            );
        }
    }
    out::outln!("{checked} checked, {wrong} wrong");
    ExitCode::from(u8::from(wrong > 0))
}

/// What a request gets, in `--expect`'s words.
fn outcome(answer: &RouteAnswer) -> String {
    match answer.action {
        "forward" if !answer.weighted_clusters.is_empty() => {
            let names: Vec<&str> = answer
                .weighted_clusters
                .iter()
                .map(|(c, _)| c.as_str())
                .collect();
            format!("cluster {}", names.join("|"))
        }
        "forward" | "tcp_proxy" => format!("cluster {}", answer.cluster.as_deref().unwrap_or("")),
        _ => match &answer.location {
            Some(l) => format!("{} {l}", answer.status.unwrap_or(0)),
            None => answer.status.unwrap_or(0).to_string(),
        },
    }
}
