//! Wiring: the signing key and state files, both MQTT links, the field sources and the core
//! task, and a shutdown with a deadline that names the tasks still running.

mod core_task;
mod state;

use crate::config::Config;
use crate::core::{Core, Now, Parts};
use crate::intake::Intake;
use crate::mqtt::{self, uplink::UplinkParts, MqttSetupError};
use crate::outcomes::{outbox::Outbox, Sharing};
use crate::packet::keys;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long tasks get to finish after shutdown begins.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// Samples buffered between the sources and the core. Sources wait when it is full.
const SAMPLE_CAPACITY: usize = 1024;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Broker connection setup failed.
    #[error(transparent)]
    Mqtt(#[from] MqttSetupError),
    /// The outcome signing key could not be loaded or created.
    #[error("outcome signing key: {0}")]
    Key(#[from] keys::KeyError),
    /// The state directory is unusable.
    #[error("state: {0}")]
    State(String),
    /// The state database cannot be used and a restart will not change that (a newer schema,
    /// no permission): the command line exits with [`crate::cli::EXIT_STATE`].
    #[error("state: {0}")]
    StateIncurable(String),
    /// The dashboard cannot listen on its address.
    #[error(transparent)]
    Web(#[from] crate::web::WebError),
}

/// Runs the gateway until `shutdown` completes, then stops every task within
/// [`SHUTDOWN_DEADLINE`], publishing the `offline` status first.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let listener = crate::web::bind(&config.web).await?;
    let key = keys::load_or_create(&config.site.state_dir)?;
    let public = keys::public_hex(&key);
    info!(source = %public, "Outcome signing key loaded.");
    let state = core_parts(&config, key)?;
    let cancel = CancellationToken::new();
    let (commands, commands_rx) = mpsc::channel(mqtt::local::COMMAND_CAPACITY);
    let local = mqtt::local::start(&config.mqtt, &config.site.id, commands, cancel.clone())?;
    let (events, events_rx) = mpsc::channel(SAMPLE_CAPACITY);
    let mut tasks = crate::sources::spawn(&config.devices, &config.site.state_dir, events, &cancel);
    for (device, point, _, a) in config.point_contexts() {
        info!(device, point = %point.name, fingerprint = %a.full, topic = %a.topic(), "Context.");
    }
    info!(site = %config.site.id, devices = config.devices.len(), broker = %mqtt::options::broker(&config.mqtt), "Gateway started.");
    let (wake, wake_rx) = mpsc::channel(16);
    let (peers, peers_rx) = mpsc::channel(256);
    let join = config.outcomes.join_requests.then(|| {
        let (ask, hear) = config.join_classes();
        mqtt::join::Join::new(ask, hear, &public)
    });
    let mut subscriptions = config.context_topics();
    subscriptions.extend(join.iter().flat_map(|j| j.subscriptions()));
    let parts = UplinkParts {
        outbox: Outbox::new(&config.site.state_dir),
        wake: wake_rx,
        subscriptions,
        join,
        incoming: peers,
        puback_timeout: Duration::from_secs(config.outcomes.puback_timeout_s),
    };
    let uplink = mqtt::uplink::start(
        config.uplink_broker(),
        config.mqtt.uplink_client_id(&config.site.id),
        parts,
        cancel.clone(),
    )?;
    let core = Core::new(&config, state, Now::current());
    let web = (listener.is_some() || config.sparkplug.enabled).then(|| {
        let initial = core_task::snapshot(&core, &local.up, &uplink.outbox);
        readers(listener, &config, initial, &cancel, &mut tasks)
    });
    let web = match web {
        Some(r) => Some(r?),
        None => None,
    };
    let channels = core_task::Channels {
        events: events_rx,
        commands: commands_rx,
        peers: peers_rx,
        connections: local.connections,
        local_up: local.up.clone(),
        uplink: uplink.state,
        outbox: uplink.outbox,
        publisher: local.publisher,
        wake,
        web,
    };
    tasks.push(("uplink".into(), uplink.task));
    tasks.push((
        "core".into(),
        tokio::spawn(core_task::run(core, channels, cancel.clone())),
    ));
    tasks.push(("mqtt".into(), local.task));
    crate::watchdog::ready();
    shutdown.await;
    info!("Shutting down.");
    cancel.cancel();
    stop(tasks).await;
    info!("Stopped.");
    Ok(())
}

/// Starts what reads the live state besides MQTT: the dashboard on `listener` and the
/// Sparkplug edge node, as configured; their tasks join `tasks`, and their side of the core
/// task is returned.
fn readers(
    listener: Option<crate::web::Listener>,
    config: &Config,
    initial: crate::web::Live,
    cancel: &CancellationToken,
    tasks: &mut Vec<(String, JoinHandle<()>)>,
) -> Result<core_task::Dashboard, RunError> {
    let (mut side, live, commands) = core_task::Dashboard::new(initial);
    side.every_tick = config.sparkplug.enabled;
    if config.sparkplug.enabled {
        let parts = crate::sparkplug::Parts {
            live: live.clone(),
            commands: commands.clone(),
        };
        let node = crate::sparkplug::start(config, parts, cancel.clone())?;
        tasks.push(("sparkplug".into(), node));
    }
    if let Some(listener) = listener {
        let server = crate::web::start(
            listener,
            &config.web,
            &config.site.id,
            &config.site.state_dir,
            live,
            commands,
            cancel.clone(),
        );
        tasks.push(("web".into(), server));
    }
    Ok(side)
}

/// The core's state, loaded from the state database.
fn core_parts(config: &Config, key: ed25519_dalek::SigningKey) -> Result<Parts, RunError> {
    let policy = crate::packet::TrustPolicy {
        strict: config.outcomes.strict,
        allowlist: config
            .outcomes
            .allowlist
            .iter()
            .filter_map(|k| keys::parse_public_hex(k))
            .collect(),
        clock_skew_s: config.outcomes.clock_skew_s,
    };
    let mut intake = Intake::new(policy, key.verifying_key().to_bytes());
    let loaded = state::load(config, intake.guard_mut())?;
    let sharing = config.outcomes.share.then(|| Sharing {
        key,
        ttl_s: config.outcomes.ttl_s(),
        equipment: config
            .point_contexts()
            .map(|(_, _, c, a)| (a.full.to_string(), c.equipment_class.trim().to_string()))
            .collect(),
        levels: config
            .point_contexts()
            .map(|(_, _, _, a)| (a.full, a.general))
            .collect(),
    });
    Ok(Parts {
        answers: loaded.answers,
        sharing,
        intake,
        intake_store: Some(loaded.intake),
        synthesis: loaded.synthesis,
    })
}

/// Waits for every task until the shutdown deadline; aborts, naming them, those still running.
async fn stop(tasks: Vec<(String, JoinHandle<()>)>) {
    let deadline = tokio::time::Instant::now() + SHUTDOWN_DEADLINE;
    for (name, mut task) in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            warn!(task = %name, "Task did not stop within the shutdown deadline; aborting it.");
            task.abort();
        }
    }
}
