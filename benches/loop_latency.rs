//! End-to-end latency of the outcome loop on loopback: from an engineer's confirmation at
//! plant A (`qis/a/cmd/confirm`) to the adapted threshold published at plant B
//! (`qis/b/thresholds/...`), through A's outbox, A's broker, a bridge, a cloud broker, a
//! bridge and B's broker, with B verifying and applying the packet. Prints p50/p90/p99/max.
//!
//! Needs the test peers (mosquitto, the pymodbus venv): run `./tests/run.sh` once, then
//! `cargo bench --bench loop_latency` (`QIS_LATENCY_SAMPLES`, default 200).

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

fn config(site: &str, state: &std::path::Path, mqtt: u16, plc: u16, adapt: &str) -> String {
    Plant::new(site, state, mqtt, plc)
        .poll_ms(20)
        .levels(Some(70.0), 95.0)
        .adapt(adapt)
        .toml()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("QIS_LATENCY_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let cloud = mosquitto();
    let broker_a = mosquitto_bridged(cloud.port, "a");
    let broker_b = mosquitto_bridged(cloud.port, "b");
    let spec =
        json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]});
    let (plc_a, plc_b) = (modbus_server(&spec), modbus_server(&spec));
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut obs_a = Observer::connect_filter(broker_a.port, "qis/a/events").await;
    let mut obs_b =
        Observer::connect_filter(broker_b.port, "qis/b/thresholds/pump/bearing_temp/high").await;
    let stop_a = start(&config("a", state_a.path(), broker_a.port, plc_a.port, ""));
    let stop_b = start(&config(
        "b",
        state_b.path(),
        broker_b.port,
        plc_b.port,
        "[devices.points.alarms.adapt]\nfloor = 50.0\nceiling = 70.0\n",
    ));
    obs_b
        .wait_for("B's first threshold", Duration::from_secs(10), |_| true)
        .await;
    // The bridges subscribe on the cloud once connected.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let wait = Duration::from_secs(20);
    let mut samples = Vec::with_capacity(n);
    let mut last_seq = 0u64;
    for i in 0..n {
        let id = raise_and_clear(&mut obs_a, "qis/a/events", plc_a.port, (90, 20), wait).await;
        let confirmed = tokio::time::Instant::now();
        obs_a
            .publish(
                "qis/a/cmd/confirm",
                &json!({"alarm_id": id, "failure_mode": "lubrication"}).to_string(),
            )
            .await;
        let applied = obs_b
            .wait_for(
                &format!("B's threshold after confirmation {i}"),
                wait,
                |m| {
                    m.json["provenance"][0]["seq"]
                        .as_u64()
                        .is_some_and(|s| s > last_seq)
                },
            )
            .await;
        last_seq = applied.json["provenance"][0]["seq"].as_u64().unwrap();
        samples.push(applied.at.saturating_duration_since(confirmed));
        obs_a.seen.clear();
        obs_b.seen.clear();
    }
    stop(stop_a).await;
    stop(stop_b).await;
    samples.sort();
    println!(
        "confirmation at A → threshold applied at B, {n} samples: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.9).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
    );
}
