//! `qis-edge demo`: two plants on one machine, sharing what they learn. An embedded MQTT
//! broker; simulated Modbus devices; and two gateways, "phoenix" (`config/demo.toml.in`: a press
//! and a pump) and "stuttgart" (`config/demo-stuttgart.toml.in`: a pump of the same class).
//!
//! A bearing fault develops at phoenix first; a simulated engineer confirms phoenix's alarm;
//! its outcome packet tightens stuttgart's adaptable warning level; stuttgart's own developing
//! fault is then caught earlier than its baseline would have caught it, and the demo prints
//! by how much (measured on stuttgart's published values, not computed).

pub mod broker;
pub mod plant;

use crate::config::{self, Config};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The first plant's configuration; `{...}` placeholders are filled in at start.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.toml.in");
/// The second plant's configuration.
pub const DEMO_STUTTGART_CONFIG: &str = include_str!("../../config/demo-stuttgart.toml.in");

/// Starts broker and plants, then runs both gateways until `shutdown`.
pub async fn run(
    mqtt_port: u16,
    web_port: u16,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    broker::start(mqtt_port)?;
    let web = Web::new(web_port)?;
    let cancel = CancellationToken::new();
    let plant = plant::start(cancel.clone())
        .await
        .map_err(|e| format!("cannot start the simulated plants: {e}"))?;
    // Fresh state each run, so the story starts from the baselines.
    let state = std::env::temp_dir().join(format!("qis-edge-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let phoenix = demo_config(
        mqtt_port,
        plant.press.port(),
        plant.pump.port(),
        &state.join("phoenix"),
        &web,
    )?;
    let stuttgart = stuttgart_config(
        mqtt_port,
        plant.stuttgart_pump.port(),
        &state.join("stuttgart"),
        &web.next(),
    )?;
    println!("qis-edge demo: sites \"phoenix\" and \"stuttgart\", embedded MQTT broker on 127.0.0.1:{mqtt_port}");
    println!(
        "  phoenix: press1 on {}, pump1 on {}; stuttgart: pump1 on {} (Modbus TCP)",
        plant.press, plant.pump, plant.stuttgart_pump
    );
    println!(
        "  dashboards:  http://127.0.0.1:{}/ (phoenix) and http://127.0.0.1:{}/ (stuttgart); user \"demo\", password \"{}\"",
        web.port,
        web.next().port,
        web.password
    );
    println!("  watch:       mosquitto_sub -h 127.0.0.1 -p {mqtt_port} -t 'qis/#' -v");
    println!(
        "  acknowledge: mosquitto_pub -h 127.0.0.1 -p {mqtt_port} -t qis/phoenix/cmd/ack -m '{{\"device\":\"press1\",\"point\":\"oil_temp\"}}'"
    );
    println!("  press1/oil_temp reaches its warning level after ~3 s and its alarm level after ~6 s, and clears after ~22 s.");
    println!("  A bearing fault develops at phoenix (from ~3 s) and at stuttgart (from ~25 s); watch the story below. Ctrl-C stops.");

    let stop = CancellationToken::new();
    tokio::spawn(narrate(mqtt_port, stop.clone()));
    let mut a = tokio::spawn(crate::run::run(phoenix, stop.clone().cancelled_owned()));
    let mut b = tokio::spawn(crate::run::run(stuttgart, stop.clone().cancelled_owned()));
    // Until asked to stop, or until a gateway ends on its own (it could not start).
    let (ended_a, ended_b) = tokio::select! {
        _ = shutdown => (None, None),
        r = &mut a => (Some(r), None),
        r = &mut b => (None, Some(r)),
    };
    stop.cancel();
    let ended_a = match ended_a {
        Some(r) => r,
        None => a.await,
    };
    let ended_b = match ended_b {
        Some(r) => r,
        None => b.await,
    };
    let result = match (ended_a, ended_b) {
        (Ok(Ok(())), Ok(Ok(()))) => Ok(()),
        (Ok(Err(e)), _) | (_, Ok(Err(e))) => Err(e.to_string()),
        (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
    };
    cancel.cancel();
    let _ = std::fs::remove_dir_all(&state);
    result
}

/// The demo's dashboards: phoenix's port (stuttgart's is the next), and the demo engineer's
/// password, new each run.
#[derive(Debug, Clone)]
pub struct Web {
    /// Phoenix's dashboard port.
    pub port: u16,
    /// The password of user `demo`.
    pub password: String,
    hash: String,
}

impl Web {
    /// A fresh password for dashboards from `port` on.
    pub fn new(port: u16) -> Result<Self, String> {
        use rand::Rng;
        let password: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(12)
            .map(char::from)
            .collect();
        let hash = crate::web::hash_password(&password)?;
        Ok(Self {
            port,
            password,
            hash,
        })
    }

    /// The same login on the next port.
    pub fn next(&self) -> Self {
        Self {
            port: self.port.wrapping_add(1),
            ..self.clone()
        }
    }
}

fn fill(text: &str, mqtt_port: u16, state_dir: &Path, web: &Web) -> String {
    text.replace("{MQTT_PORT}", &mqtt_port.to_string())
        .replace(
            "{STATE_DIR}",
            &state_dir.display().to_string().replace('\\', "/"),
        )
        .replace("{WEB_PORT}", &web.port.to_string())
        .replace("{PASSWORD_HASH}", &web.hash)
}

/// Phoenix's configuration for the given ports.
pub fn demo_config(
    mqtt_port: u16,
    press_port: u16,
    pump_port: u16,
    state_dir: &Path,
    web: &Web,
) -> Result<Config, String> {
    let text = fill(DEMO_CONFIG, mqtt_port, state_dir, web)
        .replace("{PRESS_PORT}", &press_port.to_string())
        .replace("{PUMP_PORT}", &pump_port.to_string());
    config::parse_str(&text, "config/demo.toml.in").map_err(|e| e.to_string())
}

/// Stuttgart's configuration for the given ports.
pub fn stuttgart_config(
    mqtt_port: u16,
    pump_port: u16,
    state_dir: &Path,
    web: &Web,
) -> Result<Config, String> {
    let text = fill(DEMO_STUTTGART_CONFIG, mqtt_port, state_dir, web)
        .replace("{PUMP_PORT}", &pump_port.to_string());
    config::parse_str(&text, "config/demo-stuttgart.toml.in").map_err(|e| e.to_string())
}

/// How long the simulated engineer takes to inspect and confirm phoenix's bearing alarm.
const INSPECTION: Duration = Duration::from_secs(2);

/// The simulated engineer at phoenix and the narrator: confirms phoenix's bearing alarm, and
/// prints how the packet moved stuttgart's level and how much earlier stuttgart's alarm came.
async fn narrate(port: u16, stop: CancellationToken) {
    let (client, mut eventloop) = listen(port).await;
    let began = Instant::now();
    let at = || began.elapsed().as_secs_f64();
    let mut confirm_at: Option<(Instant, String)> = None;
    // Stuttgart's raise: when, at what value, and the baseline it would otherwise have waited for.
    let mut caught: Option<(Instant, f64)> = None;
    let mut baseline = 14.0;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            _ = sleep_until(confirm_at.as_ref().map(|(t, _)| *t)) => {
                if let Some((_, id)) = confirm_at.take() {
                    confirm(&client, &id, at()).await;
                }
                continue;
            }
            event = eventloop.poll() => event,
        };
        let p = match event {
            Ok(Event::Incoming(Packet::Publish(p))) => p,
            Ok(_) => continue,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&p.payload) else {
            continue;
        };
        let bearing = json["device"] == "pump1" && json["point"] == "bearing_db";
        match p.topic.as_str() {
            "qis/phoenix/events"
                if bearing && json["to"] == "active" && json["from"] != "active" =>
            {
                let id = json["alarm_id"].as_str().unwrap_or_default().to_string();
                println!(
                    "[{:5.1} s] phoenix: pump1 bearing envelope {} dB reached its warning level {} dB ({id}).",
                    at(), json["value"], json["threshold"]
                );
                confirm_at = Some((Instant::now() + INSPECTION, id));
            }
            "qis/stuttgart/thresholds/pump1/bearing_db/high" => {
                baseline = print_level(&json, baseline, at());
            }
            "qis/stuttgart/events"
                if bearing && json["to"] == "active" && json["from"] != "active" =>
            {
                let value = json["value"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "[{:5.1} s] stuttgart: pump1 bearing envelope {value:.1} dB reached its warning level {:.2} dB.",
                    at(), json["threshold"].as_f64().unwrap_or(f64::NAN)
                );
                caught = Some((Instant::now(), value));
            }
            "qis/stuttgart/metrics/pump1/bearing_db" => {
                let Some((when, value)) = caught else {
                    continue;
                };
                if json["value"].as_f64().is_some_and(|v| v >= baseline) {
                    let earlier = when.elapsed().as_secs_f64();
                    println!(
                        "[{:5.1} s] stuttgart: the envelope reaches the baseline level {baseline} dB only now: peers' advice caught the fault {earlier:.1} s ({:.1} dB) earlier.",
                        at(), baseline - value
                    );
                    caught = None;
                }
            }
            _ => {}
        }
    }
}

/// A client of the demo's broker, subscribed to what the narrator tells.
async fn listen(port: u16) -> (AsyncClient, rumqttc::EventLoop) {
    let mut options = MqttOptions::new(
        format!("demo-engineer-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    options.set_keep_alive(Duration::from_secs(10));
    let (client, eventloop) = AsyncClient::new(options, 64);
    for topic in [
        "qis/phoenix/events",
        "qis/stuttgart/events",
        "qis/stuttgart/thresholds/pump1/bearing_db/high",
        "qis/stuttgart/metrics/pump1/bearing_db",
    ] {
        let _ = client.subscribe(topic, QoS::AtLeastOnce).await;
    }
    (client, eventloop)
}

/// The simulated engineer confirms phoenix's alarm `id`, `at` seconds into the demo.
async fn confirm(client: &AsyncClient, id: &str, at: f64) {
    let body = serde_json::json!({
        "alarm_id": id,
        "failure_mode": "bearing_outer_race",
        "note": "outer race spall found at inspection",
        "by": "demo engineer",
    });
    let _ = client
        .publish(
            "qis/phoenix/cmd/confirm",
            QoS::AtLeastOnce,
            false,
            body.to_string(),
        )
        .await;
    println!("[{:5.1} s] phoenix: the engineer confirms {id}: outer race spall. The outcome packet goes to peers of the same context.", at);
}

/// Prints stuttgart's moved level with the sources that moved it; returns the baseline.
fn print_level(json: &serde_json::Value, baseline: f64, at: f64) -> f64 {
    let baseline = json["baseline"].as_f64().unwrap_or(baseline);
    let value = json["value"].as_f64().unwrap_or(baseline);
    if value != baseline {
        let sources: Vec<String> = json["provenance"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["status"] == "applied")
            .map(|c| {
                format!(
                    "source {}… seq {} proposing {} dB, weight {:.3}",
                    &c["source"].as_str().unwrap_or_default()
                        [..12.min(c["source"].as_str().unwrap_or_default().len())],
                    c["seq"],
                    c["proposed"],
                    c["weight"].as_f64().unwrap_or(0.0)
                )
            })
            .collect();
        println!(
            "[{:5.1} s] stuttgart: pump1 bearing warning level {baseline} → {value:.2} dB (rails {}–{} dB), from {}.",
            at, json["floor"], json["ceiling"], sources.join("; ")
        );
    }
    baseline
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_demo_configs_are_valid() {
        let dir = std::path::Path::new("/tmp/x");
        let web = super::Web::new(8080).unwrap();
        let c = super::demo_config(1883, 5020, 5021, dir, &web).expect("valid phoenix config");
        assert_eq!(c.devices.len(), 2);
        let s =
            super::stuttgart_config(1883, 5022, dir, &web.next()).expect("valid stuttgart config");
        assert_eq!(c.web.bind.port(), 8080);
        assert_eq!(s.web.bind.port(), 8081);
        assert!(crate::web::verify_password(
            &c.web.users[0].password_hash,
            &web.password
        ));
        assert_eq!(
            c.devices[1].context().unwrap().fingerprint().unwrap(),
            s.devices[0].context().unwrap().fingerprint().unwrap(),
            "the two pumps share a context"
        );
    }
}
