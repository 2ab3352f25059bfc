//! `qis-edge sim`: whole bearing lives replayed across a fleet of real gateway instances, to
//! measure how much earlier, and how much more falsely, each plant warns with and without its
//! peers. [`life`] reads and checks the lives, [`sensor`] replays one as a Modbus TCP vibration
//! sensor, [`engineer`] is the rule each plant's engineer follows to set its own levels,
//! [`plant`] a plant's gateway configuration, [`fleet`] runs them, [`report`] says what happened.

pub mod engineer;
pub mod fleet;
pub mod life;
pub mod plant;
pub mod plot;
pub mod report;
pub mod scale;
pub mod sensor;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Publishes `marker` (QoS 1) and hands every other message to `on` until the marker comes
/// back or `deadline` passes: everything published before it has then arrived. A broken
/// connection is retried (rumqttc reconnects on the next poll) until the deadline.
pub async fn drain_to_marker(
    client: &rumqttc::AsyncClient,
    events: &mut rumqttc::EventLoop,
    marker: &str,
    deadline: tokio::time::Instant,
    mut on: impl FnMut(&str, &[u8]),
) {
    use rumqttc::{Event, Packet};
    if client
        .publish(marker, rumqttc::QoS::AtLeastOnce, false, "{}")
        .await
        .is_err()
    {
        return;
    }
    while let Ok(event) = tokio::time::timeout_at(deadline, events.poll()).await {
        match event {
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == marker => return,
            Ok(Event::Incoming(Packet::Publish(p))) => on(&p.topic, &p.payload),
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One simulated plant's gateway, run in this process until the sender is used or dropped;
/// an error that stops it is logged with the plant's `name`.
pub fn spawn_gateway(
    config: crate::config::Config,
    name: String,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        if let Err(e) = crate::run::run(config, async move {
            let _ = stopped.await;
        })
        .await
        {
            tracing::error!(plant = %name, error = %e, "A simulated plant's gateway stopped.");
        }
    });
    (stop, task)
}

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
    /// A plant starts when the one before it has lived this share of its life (0–1).
    pub stagger: f64,
    /// The plants' `[synthesis] baseline_weight`.
    pub baseline_weight: f64,
    /// Every watched rule's `adapt.match`.
    pub match_level: crate::packet::MatchLevel,
}

/// Snapshot spacing of the shared lives, seconds (10 s): one poll per snapshot.
const SNAPSHOT_S: f64 = 10.0;
/// The fastest replay: one 10 s snapshot per 10 ms poll, the shortest poll interval a device
/// takes.
pub const MAX_SPEED: f64 = 1000.0;

/// Runs the simulation; prints the report. Errors are for the command line to print.
pub async fn run(args: SimArgs) -> Result<String, String> {
    let lives = select(&args)?;
    if !(args.speed.is_finite() && (1.0..=MAX_SPEED).contains(&args.speed)) {
        return Err(format!(
            "--speed {} is outside 1–1 000 (at 1 000 a 10 s snapshot is polled every 10 ms, \
             the gateway's fastest poll)",
            args.speed
        ));
    }
    if !(args.stagger.is_finite() && (0.0..=1.0).contains(&args.stagger)) {
        return Err(format!(
            "--stagger {} is outside 0–1 (the share of the previous plant's life)",
            args.stagger
        ));
    }
    if !(args.baseline_weight.is_finite() && args.baseline_weight > 0.0) {
        return Err(format!(
            "--baseline-weight {} must be a positive number",
            args.baseline_weight
        ));
    }
    let (host, port) = broker(args.broker.as_deref(), 100)?;
    let options = fleet::Options {
        broker_host: host,
        poll_interval_ms: (SNAPSHOT_S * 1000.0 / args.speed).round() as u64,
        stagger: args.stagger,
        mode: fleet::Mode::Alone,
        baseline_weight: args.baseline_weight,
        match_level: args.match_level,
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
    let results = result?;
    let markdown = report::markdown(&lives, &options, &results);
    if let Some(out) = &args.out {
        let json = report::json(&lives, &options, &results);
        let mut files = vec![
            ("report.md".to_string(), markdown.clone()),
            (
                "report.json".to_string(),
                serde_json::to_string_pretty(&json).unwrap_or_default(),
            ),
        ];
        for (i, life) in lives.iter().enumerate() {
            let runs: Vec<_> = results.iter().map(|(m, r)| (*m, &r[i])).collect();
            files.push((
                format!("{}.svg", life.name),
                plot::svg(life, options.k, &runs),
            ));
        }
        for (file, text) in files {
            std::fs::write(out.join(&file), text)
                .map_err(|e| format!("{}: {e}", out.join(&file).display()))?;
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

/// The broker of `--broker host:port`, or an embedded one on a free port taking
/// `connections` clients.
fn broker(given: Option<&str>, connections: usize) -> Result<(String, u16), String> {
    match given {
        Some(b) => host_port(b, "--broker"),
        None => {
            let p = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port for the embedded broker: {e}"))?
                .port();
            crate::demo::broker::start_sized(p, connections)?;
            Ok(("127.0.0.1".to_string(), p))
        }
    }
}

/// `host:port` of a command-line option.
fn host_port(text: &str, option: &str) -> Result<(String, u16), String> {
    text.rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .filter(|(h, p)| !h.is_empty() && *p > 0)
        .ok_or_else(|| format!("{option} `{text}`: give host:port, e.g. 127.0.0.1:1883"))
}

/// The fleet alone, then (unless `isolated`) sharing absolute levels, then relative ones.
async fn runs(
    lives: &[Arc<life::Life>],
    port: u16,
    state: &std::path::Path,
    options: &fleet::Options,
    limit: Duration,
    isolated: bool,
) -> Result<Vec<(fleet::Mode, Vec<fleet::PlantResult>)>, String> {
    use fleet::Mode;
    std::fs::create_dir_all(state).map_err(|e| format!("{}: {e}", state.display()))?;
    let modes: &[Mode] = if isolated {
        &[Mode::Alone]
    } else {
        &[Mode::Alone, Mode::Absolute, Mode::Relative]
    };
    let mut results = Vec::new();
    for &mode in modes {
        let options = fleet::Options {
            mode,
            ..options.clone()
        };
        let r = fleet::run(lives, port, &state.join(mode.as_str()), &options, limit)
            .await
            .map_err(|e| e.to_string())?;
        results.push((mode, r));
    }
    Ok(results)
}
