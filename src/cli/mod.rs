//! The command line. `main.rs` calls [`main`]; everything here returns an exit code rather
//! than panicking on anything a user typed or wrote.

mod analyze;
mod packet;

use crate::config::{self, ConfigError};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// `EX_CONFIG` from sysexits.h: the configuration is wrong.
pub const EXIT_CONFIG: u8 = 78;
/// Anything else that stopped the gateway.
pub const EXIT_FAILURE: u8 = 1;
/// `EX_CANTCREAT` from sysexits.h: the state database cannot be used and a restart will not
/// change that (written by a newer version, no permission). The systemd unit does not restart
/// on it (`RestartPreventExitStatus`).
pub const EXIT_STATE: u8 = 73;

/// Industrial edge gateway: polls PLCs, raises alarms on the local MQTT broker.
#[derive(Debug, Parser)]
#[command(name = "qis-edge", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway with a configuration file (what systemd starts).
    Run {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file and print every error in it; exit 78 if it has any.
    Check {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a whole simulated plant: embedded MQTT broker, simulated Modbus devices, gateway.
    Demo {
        /// TCP port of the embedded MQTT broker on 127.0.0.1.
        #[arg(long, default_value_t = 1883, value_parser = clap::value_parser!(u16).range(1..))]
        mqtt_port: u16,
        /// TCP port of phoenix's dashboard on 127.0.0.1; stuttgart's is the next one.
        #[arg(long, default_value_t = 8080, value_parser = clap::value_parser!(u16).range(1..65535))]
        web_port: u16,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
    },
    /// Replay whole bearing lives across a fleet of gateways (one sensor and one gateway per
    /// life, on one broker) alone and sharing, and report lead times and false alarms.
    Sim(SimCli),
    /// Analyse recorded data offline (SPC over a CSV column).
    Analyze {
        #[command(subcommand)]
        command: analyze::AnalyzeCommand,
    },
    /// Write a new Ed25519 key pair for signing outcome packets.
    Keygen(packet::KeygenArgs),
    /// Build, sign, verify and print outcome packets.
    Packet {
        #[command(subcommand)]
        command: packet::PacketCommand,
    },
    /// Print the Argon2 hash of a dashboard password, for `password_hash` in `[[web.users]]`.
    /// On a terminal it asks twice without echo; otherwise it reads one line from standard input.
    Passwd,
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Check { config } => match config::load_file(&config) {
            Ok(c) => {
                if let Err(problem) = tls_usable(&c) {
                    eprintln!("{}: {problem}", config.display());
                    eprintln!("1 error(s); nothing was started.");
                    return ExitCode::from(EXIT_CONFIG);
                }
                let points: usize = c.devices.iter().map(|d| d.points().len()).sum();
                println!(
                    "{}: OK (site \"{}\", {} devices, {} points)",
                    config.display(),
                    c.site.id,
                    c.devices.len(),
                    points
                );
                ExitCode::SUCCESS
            }
            Err(e) => config_failure(&e),
        },
        Command::Run { config } => {
            let config = match config::load_file(&config) {
                Ok(c) => c,
                Err(e) => return config_failure(&e),
            };
            let runtime = match runtime() {
                Ok(r) => r,
                Err(code) => return code,
            };
            match runtime.block_on(crate::run::run(config, shutdown_signal(None))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(
                    e @ (crate::run::RunError::Mqtt(_)
                    | crate::run::RunError::Web(crate::web::WebError::Tls(_))),
                ) => {
                    eprintln!(
                        "qis-edge: {e}; fix the configuration (exit {EXIT_CONFIG}, not restarted)."
                    );
                    ExitCode::from(EXIT_CONFIG)
                }
                Err(e @ crate::run::RunError::StateIncurable(_)) => {
                    eprintln!("qis-edge: {e}; not starting (exit {EXIT_STATE}, not restarted).");
                    ExitCode::from(EXIT_STATE)
                }
                Err(e) => {
                    eprintln!("qis-edge: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Command::Demo {
            mqtt_port,
            web_port,
            duration,
        } => block_on(crate::demo::run(
            mqtt_port,
            web_port,
            shutdown_signal(duration),
        )),
        Command::Sim(args) => block_on(sim(args)),
        Command::Analyze { command } => analyze::analyze(command),
        Command::Keygen(args) => packet::keygen(args),
        Command::Packet { command } => packet::packet(command),
        Command::Passwd => passwd(),
    }
}

/// `qis-edge sim`'s options.
#[derive(Debug, clap::Args)]
pub struct SimCli {
    /// A folder of lives: trend CSVs (`snapshot,t_s,rms_g,peak_g,crest,kurtosis,band_2_6k_rms_g`),
    /// each with a json of the same name giving its `operating_condition`.
    #[arg(long, required_unless_present = "plants")]
    data: Option<PathBuf>,
    /// Time compression: life seconds per second (1–1 000; one 10 s snapshot per poll).
    #[arg(long, default_value_t = 1000.0)]
    speed: f64,
    /// The lives to run, in this order, comma-separated names (default: all, by name).
    #[arg(long, value_delimiter = ',')]
    order: Vec<String>,
    /// Run the plants alone only, without sharing.
    #[arg(long)]
    isolated: bool,
    /// Write report.md, report.json and the plants' state here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// An external broker, host:port (default: an embedded one).
    #[arg(long)]
    broker: Option<String>,
    /// A plant starts when the one before it has lived this share of its life (0–1).
    #[arg(long, default_value_t = 0.5)]
    stagger: f64,
    /// Every plant's `[synthesis] baseline_weight`: the weight of its own level against its
    /// peers' proposals (the product's default 1.0).
    #[arg(long, default_value_t = 1.0)]
    baseline_weight: f64,
    /// Every rule's `adapt.match`: `full` (plants of the same operating condition only, the
    /// default), or `mounting` (every plant: the condition is the one attribute that differs).
    #[arg(long = "match", default_value = "full", value_parser = parse_match)]
    match_level: crate::packet::MatchLevel,
    /// A scale run instead of lives: this many gateways (at most 2 000) over the broker, with
    /// contexts and match levels drawn so each confirmation must reach a known subset.
    #[arg(long, conflicts_with_all = ["data", "order", "isolated", "stagger"])]
    plants: Option<usize>,
    /// Scale run: the sources, each confirming one failure in turn.
    #[arg(long, default_value_t = 5)]
    confirmations: usize,
    /// Scale run: the fleet broker's nodes, host:port, comma-separated, tried in turn
    /// (default: the broker).
    #[arg(long, value_delimiter = ',')]
    uplink: Vec<String>,
    /// Scale run: the broker's process ids, comma-separated, whose CPU is reported.
    #[arg(long, value_delimiter = ',')]
    broker_pid: Vec<String>,
    /// Scale run: every plant asks for the fleet's live packets on joining
    /// (`[outcomes] join_requests`; for RabbitMQ).
    #[arg(long)]
    join_requests: bool,
}

fn parse_match(text: &str) -> Result<crate::packet::MatchLevel, String> {
    crate::packet::MatchLevel::ALL
        .into_iter()
        .find(|l| l.as_str() == text)
        .ok_or_else(|| format!("`{text}`: one of full, mounting, process, class"))
}

/// Runs `qis-edge sim` and prints its report.
async fn sim(a: SimCli) -> Result<(), String> {
    if let Some(plants) = a.plants {
        if let Some(out) = &a.out {
            std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        }
        let args = crate::sim::scale::ScaleArgs {
            plants,
            confirmations: a.confirmations,
            broker: a.broker,
            uplink: a.uplink,
            broker_pids: a.broker_pid,
            join_requests: a.join_requests,
            out: a.out,
        };
        println!("{}", crate::sim::scale::run(args).await?);
        return Ok(());
    }
    let args = crate::sim::SimArgs {
        data: a.data.unwrap_or_default(),
        speed: a.speed,
        order: a.order,
        isolated: a.isolated,
        out: a.out,
        broker: a.broker,
        stagger: a.stagger,
        baseline_weight: a.baseline_weight,
        match_level: a.match_level,
    };
    let report = crate::sim::run(args).await?;
    println!("{report}");
    Ok(())
}

/// Shortest dashboard password accepted, characters.
const MIN_PASSWORD_CHARS: usize = 8;

fn passwd() -> ExitCode {
    use std::io::IsTerminal;
    let read = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ").and_then(|first| {
            let again = rpassword::prompt_password("Again: ")?;
            Ok((first == again).then_some(first))
        })
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map(|_| Some(line.trim_end_matches(['\r', '\n']).to_string()))
    };
    let password = match read {
        Ok(Some(p)) => p,
        Ok(None) => {
            eprintln!("qis-edge passwd: the two passwords differ; nothing printed.");
            return ExitCode::from(EXIT_FAILURE);
        }
        Err(e) => {
            eprintln!("qis-edge passwd: cannot read the password: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    if password.chars().count() < MIN_PASSWORD_CHARS {
        eprintln!("qis-edge passwd: a password needs at least {MIN_PASSWORD_CHARS} characters; nothing printed.");
        return ExitCode::from(EXIT_FAILURE);
    }
    match crate::web::hash_password(&password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qis-edge passwd: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Loads the TLS files of both broker connections as `run` does, so `check` refuses what `run`
/// could not use (an empty CA file, a key that does not fit its certificate).
fn tls_usable(c: &config::Config) -> Result<(), String> {
    let links = [("mqtt", Some(&c.mqtt)), ("uplink", c.uplink.as_ref())];
    for (section, link) in links {
        if let Some(m) = link.filter(|m| m.tls.is_some()) {
            crate::mqtt::options::options(m, "check".into())
                .map_err(|e| format!("[{section}.tls]: {e}"))?;
        }
    }
    crate::web::tls_usable(&c.web).map_err(|e| e.to_string())
}

fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("{e}");
    if let ConfigError::Invalid { diagnostics, .. } = e {
        eprintln!("{} error(s); nothing was started.", diagnostics.len());
    }
    ExitCode::from(EXIT_CONFIG)
}

/// Two worker threads whatever the cores: the core task, the pollers and the broker clients
/// never wait on one another behind a long vibration window, and on a four-core Pi the other
/// two cores stay with the local broker and the system.
const WORKER_THREADS: usize = 2;

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::from(EXIT_FAILURE)
        })
}

fn block_on(task: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qis-edge: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn init_logging() {
    // rumqttd (the demo's embedded broker) logs ordinary client disconnects as errors; the
    // demo checks the broker's port itself, so its log is off unless RUST_LOG asks for it.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off,rumqttc=warn"));
    use tracing_subscriber::filter::{filter_fn, FilterExt};
    use tracing_subscriber::prelude::*;
    let quiet = filter_fn(|meta| !crate::sources::opcua::is_closing_noise(meta));
    // Under systemd, native journal records: each field its own (`journalctl -u qis-edge
    // DEVICE=press1`), the level as PRIORITY. Text on stderr otherwise, or if the journal's
    // socket cannot be opened.
    let journal = stderr_is_journal()
        .then(|| {
            tracing_journald::layer()
                .map_err(|e| {
                    eprintln!("Cannot open the journal's socket ({e}); logging to stderr.")
                })
                .ok()
        })
        .flatten()
        .map(|layer| {
            layer
                .with_field_prefix(None)
                .with_syslog_identifier("qis-edge".into())
        });
    let text = journal.is_none().then(|| {
        // Colour only on a terminal: escape codes in a file or a pipe are stored as text.
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    let _ = tracing_subscriber::registry()
        .with(journal.with_filter(filter.clone().and(quiet.clone())))
        .with(text.with_filter(filter.and(quiet)))
        .try_init();
}

/// Whether stderr is the journal stream systemd connected: `JOURNAL_STREAM` names its device
/// and inode (systemd.exec(5)), so a child whose stderr was redirected does not count.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// Completes on Ctrl-C, SIGTERM, or after `duration` seconds.
async fn shutdown_signal(duration: Option<u64>) {
    let timer = async {
        match duration {
            Some(s) => tokio::time::sleep(std::time::Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    let terminate = async {
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
        _ = timer => {}
    }
}
