//! `qis-edge sim`: whole bearing lives replayed across a fleet of real gateway instances, to
//! measure how much earlier, and how much more falsely, each plant warns with and without its
//! peers. [`life`] reads and checks the lives, [`sensor`] replays one as a Modbus TCP vibration
//! sensor, [`engineer`] is the rule each plant's engineer follows to set its own levels,
//! [`plant`] a plant's gateway configuration, [`fleet`] runs them, [`report`] says what happened.

pub mod engineer;
pub mod fleet;
pub mod life;
pub mod plant;
pub mod report;
pub mod sensor;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What `qis-edge sim` was asked.
#[derive(Debug, Clone)]
pub struct SimArgs {
    /// A folder of lives.
    pub data: PathBuf,
    /// Time compression: life seconds per wall second.
    pub speed: f64,
    /// The lives to run, in order (names without `.csv`); default all, in name order.
    pub order: Vec<String>,
    /// Run the plants alone only.
    pub isolated: bool,
    /// Where to write `report.md` and `report.json`.
    pub out: Option<PathBuf>,
    /// An external broker, `host:port`; default an embedded one on a free port of 127.0.0.1.
    pub broker: Option<String>,
}

/// Snapshot spacing of the shared lives, seconds (10 s): one poll per snapshot.
const SNAPSHOT_S: f64 = 10.0;

/// Runs the simulation; prints the report. Errors are for the command line to print.
pub async fn run(args: SimArgs) -> Result<String, String> {
    let lives = select(&args)?;
    if !(args.speed.is_finite() && (1.0..=2000.0).contains(&args.speed)) {
        return Err(format!(
            "--speed {} is outside 1–2 000 (at 2 000 a 10 s snapshot is polled every 5 ms)",
            args.speed
        ));
    }
    let (host, port) = broker(args.broker.as_deref())?;
    let options = fleet::Options {
        broker_host: host,
        poll_interval_ms: (SNAPSHOT_S * 1000.0 / args.speed).round() as u64,
        stagger: 0.5,
        share: false,
        k: 3.0,
        window_s: 3600.0,
    };
    // A life polled every `poll` ms, all of them in turn: time enough for each, twice over.
    let snapshots: usize = lives.iter().map(|l| l.snapshots.len() + 1).sum();
    let limit = Duration::from_millis(options.poll_interval_ms * snapshots as u64 * 2 + 60_000);
    // The plants' state directories: under --out (kept, for inspection), else temporary.
    let state = match &args.out {
        Some(out) => out.join("state"),
        None => std::env::temp_dir().join(format!("qis-edge-sim-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&state);
    let result = runs(&lives, port, &state, &options, limit, args.isolated).await;
    if args.out.is_none() {
        let _ = std::fs::remove_dir_all(&state);
    }
    let (alone, shared) = result?;
    let markdown = report::markdown(&lives, &options, &alone, shared.as_deref());
    if let Some(out) = &args.out {
        let json = report::json(&lives, &options, &alone, shared.as_deref());
        for (file, text) in [
            ("report.md", markdown.clone()),
            (
                "report.json",
                serde_json::to_string_pretty(&json).unwrap_or_default(),
            ),
        ] {
            std::fs::write(out.join(file), text)
                .map_err(|e| format!("{}: {e}", out.join(file).display()))?;
        }
    }
    Ok(markdown)
}

/// The lives of `--data`, in `--order`.
fn select(args: &SimArgs) -> Result<Vec<Arc<life::Life>>, String> {
    let all = life::load_dir(&args.data).map_err(|e| e.to_string())?;
    let lives: Vec<Arc<life::Life>> = if args.order.is_empty() {
        all.into_iter().map(Arc::new).collect()
    } else {
        args.order
            .iter()
            .map(|name| {
                all.iter()
                    .find(|l| &l.name == name)
                    .cloned()
                    .map(Arc::new)
                    .ok_or_else(|| {
                        format!(
                            "--order: no life `{name}` in {} (there are: {})",
                            args.data.display(),
                            all.iter()
                                .map(|l| l.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
            })
            .collect::<Result<_, _>>()?
    };
    Ok(lives)
}

/// The broker of `--broker host:port`, or an embedded one on a free port.
fn broker(given: Option<&str>) -> Result<(String, u16), String> {
    Ok(match given {
        Some(b) => b
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            .filter(|(h, p)| !h.is_empty() && *p > 0)
            .ok_or_else(|| format!("--broker `{b}`: give host:port, e.g. 127.0.0.1:1883"))?,
        None => {
            let p = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port for the embedded broker: {e}"))?
                .port();
            crate::demo::broker::start(p)?;
            ("127.0.0.1".to_string(), p)
        }
    })
}

/// The fleet alone, then (unless `isolated`) sharing.
async fn runs(
    lives: &[Arc<life::Life>],
    port: u16,
    state: &std::path::Path,
    options: &fleet::Options,
    limit: Duration,
    isolated: bool,
) -> Result<(Vec<fleet::PlantResult>, Option<Vec<fleet::PlantResult>>), String> {
    std::fs::create_dir_all(state).map_err(|e| format!("{}: {e}", state.display()))?;
    let alone = fleet::run(lives, port, &state.join("alone"), options, limit)
        .await
        .map_err(|e| e.to_string())?;
    let shared = if isolated {
        None
    } else {
        let options = fleet::Options {
            share: true,
            ..options.clone()
        };
        Some(
            fleet::run(lives, port, &state.join("shared"), &options, limit)
                .await
                .map_err(|e| e.to_string())?,
        )
    };
    Ok((alone, shared))
}
