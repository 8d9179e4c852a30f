//! The `weir` command: run a proxy from an Envoy v3 config, validate a config, or run the demo.

mod admin_client;
mod demo;
mod demo_tls;
mod flows;
mod out;
mod route;
mod trace;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use weir_config::FlowTraceMode;
use weir_proxy::{Exit, LogControl, Options, Server};

/// weir: an event-driven L7 reverse proxy configured with Envoy v3 YAML.
#[derive(Parser, Debug)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a config and exit 0 (valid) or 1 (with every error, each naming its path).
    Validate {
        /// The Envoy v3 bootstrap (YAML or JSON).
        #[arg(short = 'c', long = "config-path")]
        config: PathBuf,
    },
    /// Start weir with built-in origins, send real traffic through it, and show what happened.
    Demo(demo::DemoArgs),
    /// Print recent request flows from a running weir's admin listener.
    Flows(flows::FlowsArgs),
    /// Say what weir would do with requests under a config (listener, chain, virtual host,
    /// route and why, action, rewrites, timeout, retries, filters, hash key), without sockets.
    Route(route::RouteArgs),
    /// Rebuild the request flows of any proxy process (weir, nginx, HAProxy, Envoy) from
    /// eBPF syscall tracepoints (needs root).
    Trace(trace::TraceArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The Envoy v3 bootstrap to run (YAML or JSON).
    #[arg(short = 'c', long = "config-path")]
    config: Option<PathBuf>,
    /// Reload the config when its file changes (as SIGHUP and POST /reload do).
    #[arg(long)]
    watch: bool,
    /// Binary upgrade: take the listening sockets of the weir listening on this Unix socket
    /// path (it then drains and exits), and listen there for the next one.
    #[arg(long = "hot-restart", value_name = "PATH")]
    hot_restart: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

/// Flags shared by `weir -c` and `weir demo`.
#[derive(Args, Debug, Clone)]
pub(crate) struct CommonArgs {
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Log level, by Envoy's names: trace, debug, info, warning (or warn), error, critical, off.
    #[arg(short = 'l', long = "log-level", default_value = "info", value_parser = parse_log_level)]
    log_level: String,
    /// Seconds a drain (SIGTERM/SIGINT) waits for in-flight requests.
    #[arg(long = "drain-time-s", default_value_t = 10)]
    drain_time_s: u64,
    /// The flow recorder: off, all, header (requests with `x-weir-trace: 1`), or sampled:N
    /// (one request in N). Overrides the config's `weir.flow_trace.mode`.
    #[arg(long = "flow-trace", value_parser = parse_flow_trace)]
    flow_trace: Option<FlowTraceMode>,
    /// How often access logs are written to their files at the latest, in ms (Envoy's flag).
    #[arg(long = "file-flush-interval-msec", default_value_t = 10_000)]
    file_flush_interval_msec: u64,
}

fn parse_flow_trace(s: &str) -> Result<FlowTraceMode, String> {
    match s {
        "off" => Ok(FlowTraceMode::Off),
        "all" => Ok(FlowTraceMode::All),
        "header" => Ok(FlowTraceMode::Header),
        _ => match s.strip_prefix("sampled:").map(str::parse::<u32>) {
            Some(Ok(n)) if n >= 1 => Ok(FlowTraceMode::Sampled { one_in: n }),
            _ => Err("expected off, all, header or sampled:N (N >= 1)".into()),
        },
    }
}

impl CommonArgs {
    pub(crate) fn options(&self, log_control: Option<LogControl>) -> Options {
        let mut options = Options {
            drain_time: Duration::from_secs(self.drain_time_s),
            command_line: std::env::args().collect(),
            flow_trace: self.flow_trace,
            log_control,
            file_flush_interval: Duration::from_millis(self.file_flush_interval_msec.max(1)),
            ..Options::default()
        };
        if let Some(n) = self.concurrency {
            options.concurrency = n.max(1);
        }
        options
    }
}

/// Envoy's log level names, as `--log-level` takes them.
const LOG_LEVELS: [&str; 8] = [
    "trace", "debug", "info", "warning", "warn", "error", "critical", "off",
];

fn parse_log_level(s: &str) -> Result<String, String> {
    if LOG_LEVELS.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!("expected one of {}", LOG_LEVELS.join(", ")))
    }
}

/// Envoy's log level names (as `POST /logging?level=` takes them) in `tracing`'s terms.
fn tracing_level(envoy: &str) -> &str {
    match envoy {
        "warning" => "warn",
        "critical" => "error",
        other => other,
    }
}

/// Logs to stderr at `level`; the returned control changes the level at run time
/// (`POST /logging`).
fn init_logging(level: &str) -> LogControl {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_new(tracing_level(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let current = Arc::new(Mutex::new(filter.to_string()));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    tracing_subscriber::registry().with(filter).with(fmt).init();
    LogControl(Arc::new(move |level: Option<&str>| {
        let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(level) = level {
            let filter = tracing_subscriber::EnvFilter::try_new(tracing_level(level))
                .map_err(|e| format!("invalid level `{level}`: {e}"))?;
            handle
                .modify(|f| *f = filter)
                .map_err(|e| format!("cannot change the level: {e}"))?;
            *current = level.to_string();
        }
        Ok(current.clone())
    }))
}

fn main() -> ExitCode {
    // A panic outside a worker's handlers (a worker that died would leave its listener socket
    // accepting connections nobody serves) exits, so a supervisor restarts weir.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        // A panic in a worker's handler is contained there (its connection is closed);
        // anything else leaves weir in a state no one should trust.
        if !weir_proxy::panic_is_contained() {
            std::process::exit(70);
        }
    }));
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Validate { config }) => validate(&config),
        Some(Command::Demo(args)) => {
            let log = init_logging(&args.common.log_level);
            demo::run(&args, log)
        }
        Some(Command::Flows(args)) => flows::run(&args),
        Some(Command::Route(args)) => route::run(&args),
        Some(Command::Trace(args)) => trace::run(&args),
        None => {
            let log = init_logging(&cli.run.common.log_level);
            let Some(config) = &cli.run.config else {
                eprintln!(
                    "weir: no config given; use `weir -c FILE`, `weir validate -c FILE` or `weir demo`"
                );
                return ExitCode::from(2);
            };
            run(config, &cli.run, log)
        }
    }
}

fn validate(path: &std::path::Path) -> ExitCode {
    match weir_config::load(path) {
        Ok(bootstrap) => {
            for warning in &bootstrap.warnings {
                eprintln!("warning: {warning}");
            }
            out::outln!(
                "{}: valid ({} listener(s), {} cluster(s))",
                path.display(),
                bootstrap.listeners.len(),
                bootstrap.clusters.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{}: invalid", path.display());
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path, args: &RunArgs, log: LogControl) -> ExitCode {
    let common = &args.common;
    // The file as it is before it is read: `--watch` reloads on any change after this one,
    // even one made while weir starts.
    let loaded = watch::stamp(path);
    let bootstrap = match weir_config::load(path) {
        Ok(b) => {
            for warning in &b.warnings {
                tracing::warn!(config = %path.display(), "{warning}");
            }
            b
        }
        Err(errors) => {
            eprintln!("{}: invalid", path.display());
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    // Signals are set up before the workers start so none is missed.
    let mut signals = match Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("weir: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        config_path: Some(path.to_owned()),
        hot_restart: args.hot_restart.clone(),
        ..common.options(Some(log))
    };
    let server = match Server::start(bootstrap, options) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("weir: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.watch {
        watch::start(path.to_owned(), loaded, server.reload_handle());
    }
    let exit = server.exit_sender();
    let reloader = server.reload_handle();
    std::thread::spawn(move || {
        // SIGHUP reloads the config (the outcome is logged); the others end weir.
        for signal in signals.forever() {
            if signal == SIGHUP {
                let _ = reloader.reload();
                continue;
            }
            let _ = exit.send(Exit::Signal(signal));
            return;
        }
    });
    match server.wait_exit() {
        Exit::Signal(signal) => {
            tracing::info!(
                signal,
                "draining: no new connections, finishing in-flight requests"
            );
            server.drain();
            server.wait();
            tracing::info!("drained; exiting");
        }
        Exit::HandedOver => {
            tracing::info!("handed over to a new weir: draining");
            server.drain_gently();
            server.wait();
            tracing::info!("drained; exiting");
        }
        Exit::Quit => {
            tracing::info!("/quitquitquit: exiting");
            server.stop();
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_are_envoys() {
        for level in LOG_LEVELS {
            assert_eq!(parse_log_level(level).as_deref(), Ok(level));
            // Every one is a level `tracing` knows.
            tracing_subscriber::EnvFilter::try_new(tracing_level(level)).unwrap();
        }
        for bad in ["loud", "INFO", "warnings", "", "weir=debug"] {
            assert!(parse_log_level(bad).is_err(), "{bad}");
        }
    }
}
