//! `weir flows`: recent request flows from a running weir's admin listener.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::admin_client;
use crate::out::out;

/// `weir flows` flags.
#[derive(Args, Debug)]
pub(crate) struct FlowsArgs {
    /// The admin listener, `host:port`.
    #[arg(long)]
    admin: String,
    /// text (the seed's sectioned log), json (JSON lines), or perfetto (Chrome trace JSON).
    #[arg(long, default_value = "text", value_parser = ["text", "json", "perfetto"])]
    format: String,
    /// How many flows, newest first.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Only flows with this status (`404`) or class (`5xx`).
    #[arg(long)]
    status: Option<String>,
    /// Only flows that took at least this long.
    #[arg(long = "min-duration-ms")]
    min_duration_ms: Option<u64>,
    /// Keep polling and print flows as they complete (once a second).
    #[arg(long)]
    follow: bool,
}

pub(crate) fn run(args: &FlowsArgs) -> ExitCode {
    let mut filters = String::new();
    if let Some(s) = &args.status {
        filters.push_str(&format!("&status={s}"));
    }
    if let Some(ms) = args.min_duration_ms {
        filters.push_str(&format!("&min_duration_ms={ms}"));
    }
    let mut since = 0u64;
    loop {
        // The newest end first, then exactly the flows up to it: none is printed twice or
        // lost between the two requests.
        let until = if args.follow {
            newest_end(&args.admin, since, &filters)
        } else {
            u64::MAX
        };
        let path = format!(
            "/flows?format={}&limit={}&since={since}&until={until}{filters}",
            args.format, args.limit
        );
        match admin_client::get(&args.admin, &path) {
            Ok((200, body)) => out!("{}", String::from_utf8_lossy(&body)),
            Ok((status, body)) => {
                eprintln!(
                    "weir flows: {status}: {}",
                    String::from_utf8_lossy(&body).trim()
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("weir flows: {}: {e}", args.admin);
                return ExitCode::FAILURE;
            }
        }
        if !args.follow {
            return ExitCode::SUCCESS;
        }
        since = until;
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The newest flow end time the admin reports (JSON-lines `flow` headers), at least `since`.
fn newest_end(admin: &str, since: u64, filters: &str) -> u64 {
    let path = format!("/flows?format=json&limit=1&since={since}{filters}");
    let Ok((200, body)) = admin_client::get(admin, &path) else {
        return since;
    };
    String::from_utf8_lossy(&body)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["event"] == "flow")
        .filter_map(|v| v["end"].as_u64())
        .fold(since, u64::max)
}
