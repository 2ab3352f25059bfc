//! Zero loss through bridged brokers: plant A confirms a thousand alarms while the cloud broker
//! is restarted five times and each gateway is SIGKILLed once; plant B receives every packet and
//! applies each exactly once.
//!
//! The gateways run as processes (the release of a real deployment: SIGKILL, restart with the
//! same state directory). The cloud broker is restarted in order (SIGTERM), as maintenance
//! would: a broker killed outright can lose messages it has acknowledged but not yet delivered
//! or saved, which no client can recover.
//!
//! `QIS_ZERO_LOSS_ALARMS` sets the number of alarms (default 1000).

mod common;

use common::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn config(site: &str, state: &Path, mqtt: u16, plc: u16, adapt: &str) -> String {
    Plant::new(site, state, mqtt, plc)
        .extra("keep_alive_s = 5\nreconnect_max_ms = 1000")
        .poll_ms(20)
        .levels(Some(70.0), 95.0)
        .adapt(adapt)
        .toml()
}

/// A gateway process with its configuration file and log.
struct Gateway {
    child: Child,
    config: PathBuf,
    log: PathBuf,
}

impl Gateway {
    fn start(config: PathBuf, log: PathBuf) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(gateway_binary())
            .args(["run", "--config"])
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("QIS_ZERO_LOSS_LOG").unwrap_or("info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        Self { child, config, log }
    }

    /// SIGKILL, as a power cut would, then the same gateway again.
    fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = Self::start(self.config.clone(), self.log.clone());
    }

    fn stop(mut self) {
        signal(&self.child, "TERM");
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Restarts the cloud broker in a thread: SIGTERM, 1.5 s down, start on the same port with the
/// same persistence directory.
fn restart_in_background(mut cloud: Peer, dir: PathBuf) -> std::thread::JoinHandle<Peer> {
    std::thread::spawn(move || {
        let port = cloud.port;
        cloud.terminate();
        std::thread::sleep(Duration::from_millis(1500));
        mosquitto_persistent_on(port, &dir)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_confirmations_arrive_once_through_cloud_restarts_and_crashes() {
    let n: usize = std::env::var("QIS_ZERO_LOSS_ALARMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let cloud_dir = tempfile::tempdir().unwrap();
    let cloud = mosquitto_persistent(cloud_dir.path());
    let broker_a = mosquitto_bridged(cloud.port, "a");
    let broker_b = mosquitto_bridged(cloud.port, "b");
    let spec =
        json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]});
    let (plc_a, plc_b) = (modbus_server(&spec), modbus_server(&spec));
    let work = tempfile::tempdir().unwrap();
    let (state_a, state_b) = (work.path().join("a"), work.path().join("b"));
    let write = |name: &str, text: String| {
        let path = work.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let config_a = write(
        "a.toml",
        config("a", &state_a, broker_a.port, plc_a.port, ""),
    );
    let config_b = write(
        "b.toml",
        config(
            "b",
            &state_b,
            broker_b.port,
            plc_b.port,
            "[devices.points.alarms.adapt]\nfloor = 50.0\nceiling = 70.0\n",
        ),
    );
    let mut obs_a = Observer::connect_filter(broker_a.port, "qis/a/events").await;
    let mut obs_b = Observer::connect_filter(broker_b.port, "qis/b/events").await;
    let mut a = Gateway::start(config_a, work.path().join("a.log"));
    let mut b = Gateway::start(config_b, work.path().join("b.log"));

    let mut cloud = Some(cloud);
    let mut restarting: Option<std::thread::JoinHandle<Peer>> = None;
    let mut restarts = 0;
    let events = Duration::from_secs(20);
    for i in 1..=n {
        // Five cloud restarts spread over the run, while confirmations go on.
        if i % (n / 6).max(1) == 0 && restarts < 5 {
            if let Some(handle) = restarting.take() {
                cloud = Some(handle.join().unwrap());
            }
            if let Some(c) = cloud.take() {
                restarting = Some(restart_in_background(c, cloud_dir.path().to_path_buf()));
                restarts += 1;
            }
        }
        if i == n * 3 / 10 {
            a.kill_and_restart();
        }
        if i == n * 11 / 20 {
            b.kill_and_restart();
        }
        let id = raise_and_clear(&mut obs_a, "qis/a/events", plc_a.port, (90, 20), events).await;
        obs_a
            .publish(
                "qis/a/cmd/confirm",
                &json!({"alarm_id": id, "failure_mode": "lubrication"}).to_string(),
            )
            .await;
        obs_a
            .wait_for(&format!("outcome {i}"), events, |m| {
                m.json["type"] == "outcome" && m.json["alarm_id"] == id.as_str()
            })
            .await;
        obs_a.seen.clear();
    }
    if let Some(handle) = restarting.take() {
        cloud = Some(handle.join().unwrap());
    }
    assert_eq!(restarts, 5.min(n));

    // Every packet reaches B; a delivery repeated after B's crash shows again as an event but
    // must not count twice in what B saved.
    let source = std::fs::read_to_string(state_a.join("outcome-key.pub"))
        .unwrap()
        .trim()
        .to_string();
    let mut seqs = BTreeSet::new();
    // A's ledger counts its confirmations: packet i carries validations = i.
    let mut counts = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while seqs.len() < n && tokio::time::Instant::now() < deadline {
        for m in obs_b.collect(Duration::from_millis(500)).await {
            if m.json["type"] != "peer_outcome" {
                continue;
            }
            assert_eq!(m.json["source"], source.as_str());
            // Empty when the packet changed nothing: delivered again after B's crash with its
            // effect already saved, or late behind a newer one from the same source.
            let applied_to = &m.json["applied_to"];
            assert!(
                *applied_to == json!(["pump/bearing_temp/high"]) || *applied_to == json!([]),
                "{applied_to}"
            );
            seqs.insert(m.json["seq"].as_u64().unwrap());
            counts.insert(m.json["validations"].as_u64().unwrap());
        }
    }
    let missing: Vec<u64> = (1..=n as u64).filter(|v| !counts.contains(v)).collect();
    if seqs.len() != n || !missing.is_empty() {
        if let Ok(keep) = std::env::var("QIS_ZERO_LOSS_KEEP") {
            for log in ["a.log", "b.log"] {
                let _ = std::fs::copy(work.path().join(log), Path::new(&keep).join(log));
            }
        }
        let warnings = |log: &str| -> String {
            std::fs::read_to_string(work.path().join(log))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("started"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "B received {} of {n} packets; missing those with validations {missing:?}\n\
             A's warnings:\n{}\nB's warnings:\n{}",
            seqs.len(),
            warnings("a.log"),
            warnings("b.log")
        );
    }
    let outbox = outbox_rows(&state_a);
    assert_eq!(outbox, 0, "{outbox} packets left in A's outbox");
    a.stop();
    b.stop();

    assert_eq!(
        state_counter(&state_b, "applied"),
        n as u64,
        "B applied each of the {n} packets exactly once"
    );
    let proposals = proposals(&state_b);
    assert_eq!(proposals.len(), 1);
    assert_eq!(proposals[0].1, source, "the proposal is A's");
    let latest = proposals[0].2["seq"].as_u64().unwrap();
    assert_eq!(
        Some(&latest),
        seqs.last(),
        "the latest packet is the live proposal"
    );
    let replayed: String = state_db(&state_b)
        .query_row("SELECT seqs FROM replay", [], |r| r.get(0))
        .unwrap();
    let replayed: Vec<u64> = serde_json::from_str(&replayed).unwrap();
    assert_eq!(
        replayed.last(),
        Some(&latest),
        "the replay memory, committed with the proposals"
    );
    drop(cloud);
}
