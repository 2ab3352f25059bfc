//! `qis-edge demo`: a whole plant on one machine: an embedded MQTT broker, simulated Modbus
//! devices whose values cross alarm levels within the first 30 s, and the gateway polling them
//! with the configuration in `config/demo.toml`.

mod broker;
mod plant;

use crate::config::{self, Config};
use std::future::Future;
use tokio_util::sync::CancellationToken;

/// The demo's configuration; `{...}` placeholders are filled in at start.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

/// Starts broker and plant, then runs the gateway until `shutdown`.
pub async fn run(mqtt_port: u16, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    broker::start(mqtt_port)?;
    let cancel = CancellationToken::new();
    let plant = plant::start(cancel.clone())
        .await
        .map_err(|e| format!("cannot start the simulated plant: {e}"))?;
    let config = demo_config(mqtt_port, plant.press.port(), plant.pump.port())?;
    println!(
        "qis-edge demo: site \"{}\", embedded MQTT broker on 127.0.0.1:{mqtt_port}",
        config.site.id
    );
    println!(
        "  simulated press1 on {}, pump1 on {} (Modbus TCP)",
        plant.press, plant.pump
    );
    println!("  watch:       mosquitto_sub -h 127.0.0.1 -p {mqtt_port} -t 'qis/#' -v");
    println!(
        "  acknowledge: mosquitto_pub -h 127.0.0.1 -p {mqtt_port} -t qis/{}/cmd/ack -m '{{\"device\":\"press1\",\"point\":\"oil_temp\"}}'",
        config.site.id
    );
    println!("  press1/oil_temp reaches its warning level after ~3 s and its alarm level after ~6 s, and clears after ~22 s. Ctrl-C stops.");
    let result = crate::gateway::run(config, shutdown)
        .await
        .map_err(|e| e.to_string());
    cancel.cancel();
    result
}

/// The demo configuration for the given ports.
pub fn demo_config(mqtt_port: u16, press_port: u16, pump_port: u16) -> Result<Config, String> {
    let state_dir = std::env::temp_dir().join("qis-edge-demo");
    let text = DEMO_CONFIG
        .replace("{MQTT_PORT}", &mqtt_port.to_string())
        .replace("{PRESS_PORT}", &press_port.to_string())
        .replace("{PUMP_PORT}", &pump_port.to_string())
        .replace(
            "{STATE_DIR}",
            &state_dir.display().to_string().replace('\\', "/"),
        );
    config::parse_str(&text, "config/demo.toml").map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_demo_config_is_valid() {
        let c = super::demo_config(1883, 5020, 5021).expect("valid demo config");
        assert_eq!(c.devices.len(), 2);
    }
}
