//! The state database under crashes: the gateway runs as a process and is SIGKILLed at random
//! moments, and aborted at the worst ones (`QIS_EDGE_CRASH_AT`: just before and just after an
//! answer's commit, just before a peer packet's commit), 20 times each, against a real
//! mosquitto on both links and a pymodbus PLC. Every answer the engineer saw acknowledged
//! reaches peers exactly once (one sequence number, one packet, validations counting up with no
//! gap and no repeat), no sequence number is reused, and each peer packet is applied once.

mod common;

use common::*;
use qis_edge::packet::{self, TrustPolicy};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SITE: &str = "dur";
const ROUNDS: usize = 20;

/// A gateway process; killed when dropped.
struct Gateway {
    child: Option<Child>,
}

impl Gateway {
    fn start(config: &Path, log: &Path, crash_at: Option<&str>) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut command = Command::new(gateway_binary());
        command
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(out));
        match crash_at {
            Some(point) => command.env("QIS_EDGE_CRASH_AT", point),
            None => command.env_remove("QIS_EDGE_CRASH_AT"),
        };
        Self {
            child: Some(command.spawn().unwrap()),
        }
    }

    /// SIGKILL, as a power cut.
    fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to end by itself (an abort at its crash point).
    async fn aborted(mut self) {
        let mut child = self.child.take().unwrap();
        let status = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || child.wait()),
        )
        .await
        .expect("the gateway reaches its crash point")
        .unwrap()
        .unwrap();
        assert!(!status.success(), "the crash point aborts the process");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until a gateway just started is online.
async fn wait_online(observer: &mut Observer) {
    let status = format!("qis/{SITE}/status");
    observer
        .wait_for("the gateway online", Duration::from_secs(20), |m| {
            m.topic == status && m.json["status"] == "online" && !m.retained
        })
        .await;
}

async fn confirm(observer: &Observer, alarm_id: &str) {
    observer
        .publish(
            &format!("qis/{SITE}/cmd/confirm"),
            &json!({"alarm_id": alarm_id, "failure_mode": "lubrication"}).to_string(),
        )
        .await;
}

/// Waits for the answer's outcome event (the engineer's acknowledgement) or its rejection;
/// true when acknowledged.
async fn answered(observer: &mut Observer, alarm_id: &str) -> bool {
    let m = observer
        .wait_for("the answer's outcome", Duration::from_secs(20), |m| {
            (m.json["type"] == "outcome" && m.json["alarm_id"] == alarm_id)
                || (m.json["type"] == "command_rejected")
        })
        .await;
    m.json["type"] == "outcome"
}

fn answered_in_db(state: &Path, alarm_id: &str) -> bool {
    state_db(state)
        .query_row(
            "SELECT outcome IS NOT NULL FROM alarms WHERE id = ?1",
            [alarm_id],
            |r| r.get::<_, bool>(0),
        )
        .unwrap_or(false)
}

struct Setup {
    _broker: Peer,
    _cloud: Peer,
    cloud_port: u16,
    plc: Peer,
    state: tempfile::TempDir,
    _dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    observer: Observer,
}

async fn setup() -> Setup {
    let broker = mosquitto();
    let cloud = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let text = Plant::new(SITE, state.path(), broker.port, plc.port)
        .extra(&format!(
            "[uplink]\nport = {}\nkeep_alive_s = 5\nreconnect_max_ms = 1000\n",
            cloud.port
        ))
        .poll_ms(20)
        .adapt("[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\n")
        .toml();
    let (dir, config) = write_config(&text);
    let log = dir.path().join("gateway.log");
    let observer = Observer::connect(broker.port).await;
    Setup {
        cloud_port: cloud.port,
        _broker: broker,
        _cloud: cloud,
        plc,
        state,
        _dir: dir,
        config,
        log,
        observer,
    }
}

/// What peers received from the gateway: sequence number → packet bytes. A sequence number
/// carried by two different packets fails here.
async fn packets_from(
    uplink: &mut Observer,
    source: [u8; 32],
    n: usize,
    log: &Path,
) -> BTreeMap<u64, Vec<u8>> {
    let mut by_seq: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for m in uplink.seen.clone() {
        take(&mut by_seq, &m.raw, source);
    }
    while by_seq.len() < n {
        let got = tokio::time::timeout(
            Duration::from_secs(30),
            uplink.wait_for("a packet", Duration::from_secs(3600), |_| true),
        )
        .await;
        match got {
            Ok(m) => take(&mut by_seq, &m.raw, source),
            Err(_) => panic!(
                "peers received {} of {n} packets; gateway log:\n{}",
                by_seq.len(),
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }
    by_seq
}

fn take(by_seq: &mut BTreeMap<u64, Vec<u8>>, raw: &[u8], source: [u8; 32]) {
    let Ok(p) = packet::guard::decode(raw) else {
        return;
    };
    if p.body.source != source {
        return;
    }
    if let Some(before) = by_seq.insert(p.body.seq, raw.to_vec()) {
        assert_eq!(before, raw, "sequence number {} reused", p.body.seq);
    }
}

fn own_key(state: &Path) -> [u8; 32] {
    let hex = std::fs::read_to_string(state.join("outcome-key.pub")).unwrap();
    qis_edge::packet::keys::parse_public_hex(hex.trim()).unwrap()
}

/// Checks what peers received: `n` packets, validations 1..=n in sequence order (each
/// confirmation counted once, none lost), and a fresh receiver applies each exactly once.
fn check_exactly_once(by_seq: &BTreeMap<u64, Vec<u8>>, n: usize) {
    let mut guard = packet::ReplayGuard::new(16);
    let now = unix_now();
    let validations: Vec<u32> = by_seq
        .values()
        .map(|raw| {
            packet::verify(raw, now, &mut guard, &TrustPolicy::default())
                .expect("a valid packet")
                .body()
                .validations
        })
        .collect();
    let want: Vec<u32> = (1..=n as u32).collect();
    assert_eq!(validations, want, "one packet per confirmation, in order");
    assert_eq!(guard.counts().accepted, n as u64);
}

/// SIGKILL at random moments around answers: before the command is handled, between its
/// commit and the engineer's acknowledgement, while its packet is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_at_random_moments_loses_and_doubles_no_answer() {
    let mut s = setup().await;
    let mut uplink = Observer::connect_filter(s.cloud_port, "qis/+/ctx/#").await;
    let mut acknowledged = BTreeSet::new();
    let mut alarms: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        let gateway = Gateway::start(&s.config, &s.log, None);
        wait_online(&mut s.observer).await;
        // An answer the last crash cut short is given again, as an engineer would.
        for id in &alarms {
            if !answered_in_db(s.state.path(), id) {
                confirm(&s.observer, id).await;
                assert!(answered(&mut s.observer, id).await, "{id} answered again");
                acknowledged.insert(id.clone());
            }
        }
        let id = raise_at(&mut s.observer, SITE, s.plc.port).await;
        alarms.push(id.clone());
        confirm(&s.observer, &id).await;
        // Every other round waits for the engineer's acknowledgement before the kill.
        if round % 2 == 0 && answered(&mut s.observer, &id).await {
            acknowledged.insert(id.clone());
        }
        let delay = rand::random::<u64>() % 30;
        let _ =
            tokio::time::timeout(Duration::from_millis(delay), std::future::pending::<()>()).await;
        gateway.kill();
    }
    let gateway = Gateway::start(&s.config, &s.log, None);
    wait_online(&mut s.observer).await;
    for id in &alarms {
        if !answered_in_db(s.state.path(), id) {
            assert!(
                !acknowledged.contains(id),
                "{id} was acknowledged and is lost"
            );
            confirm(&s.observer, id).await;
            assert!(answered(&mut s.observer, id).await);
        }
    }
    let source = own_key(s.state.path());
    let by_seq = packets_from(&mut uplink, source, alarms.len(), &s.log).await;
    check_exactly_once(&by_seq, alarms.len());
    wait_until(|| outbox_rows(s.state.path()) == 0, "the outbox empties").await;
    assert_eq!(
        state_counter(s.state.path(), "last_seq"),
        *by_seq.keys().last().unwrap()
    );
    gateway.kill();
}

/// Aborts just before and just after an answer's commit, 20 times each: an answer stored is
/// sent once and cannot be given twice; one not stored can be given again, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_crashing_at_its_commit_is_stored_once_or_not_at_all() {
    let mut s = setup().await;
    let mut uplink = Observer::connect_filter(s.cloud_port, "qis/+/ctx/#").await;
    let mut alarms: Vec<String> = Vec::new();
    for round in 0..2 * ROUNDS {
        let point = if round % 2 == 0 {
            "answer-committed"
        } else {
            "answer-before-commit"
        };
        let gateway = Gateway::start(&s.config, &s.log, Some(point));
        wait_online(&mut s.observer).await;
        let id = raise_at(&mut s.observer, SITE, s.plc.port).await;
        confirm(&s.observer, &id).await;
        gateway.aborted().await;
        assert_eq!(
            answered_in_db(s.state.path(), &id),
            point == "answer-committed",
            "{point}: {id}"
        );
        alarms.push(id);
    }
    let gateway = Gateway::start(&s.config, &s.log, None);
    wait_online(&mut s.observer).await;
    for id in &alarms {
        let stored = answered_in_db(s.state.path(), id);
        confirm(&s.observer, id).await;
        assert_eq!(
            answered(&mut s.observer, id).await,
            !stored,
            "{id}: a stored answer is refused as already given, a lost one accepted"
        );
    }
    let source = own_key(s.state.path());
    let by_seq = packets_from(&mut uplink, source, alarms.len(), &s.log).await;
    check_exactly_once(&by_seq, alarms.len());
    wait_until(|| outbox_rows(s.state.path()) == 0, "the outbox empties").await;
    gateway.kill();
}

/// Aborts between a peer packet's arrival and its commit, 20 times: the broker delivers it
/// again (it was never acknowledged) and it is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_packet_crashing_before_its_commit_is_applied_exactly_once() {
    let mut s = setup().await;
    let fingerprint = qis_edge::config::load_file(&s.config).unwrap().devices[0]
        .context()
        .unwrap()
        .fingerprint()
        .unwrap();
    let peer = Observer::connect(s.cloud_port).await;
    // The first start creates the gateway's persistent session on the fleet broker.
    let gateway = Gateway::start(&s.config, &s.log, None);
    wait_online(&mut s.observer).await;
    s.observer.wait_uplink_subscribed(SITE).await;
    gateway.kill();
    let applied = format!("qis/{SITE}/stats/intake");
    for seq in 1..=ROUNDS as u64 {
        peer.publish_raw(
            &fingerprint.topic(),
            signed_by(9, peer_body(fingerprint, seq)),
        )
        .await;
        let gateway = Gateway::start(&s.config, &s.log, Some("intake-before-commit"));
        gateway.aborted().await;
        let gateway = Gateway::start(&s.config, &s.log, None);
        s.observer
            .wait_for("the packet applied", Duration::from_secs(20), |m| {
                m.topic == applied && m.json["applied"].as_u64() == Some(seq)
            })
            .await;
        gateway.kill();
        assert_eq!(
            state_counter(s.state.path(), "applied"),
            seq,
            "applied once"
        );
    }
    let proposals = proposals(s.state.path());
    assert_eq!(proposals.len(), 1);
    assert_eq!(proposals[0].2["seq"], ROUNDS as u64);
}

/// A database written by a newer version cannot be cured by a restart: `run` refuses it with
/// exit 73, which the systemd unit does not restart on, and leaves the file as it is.
#[test]
fn a_database_of_a_newer_version_is_refused_with_the_exit_code_the_unit_does_not_restart_on() {
    let state = tempfile::tempdir().unwrap();
    let db = rusqlite::Connection::open(state.path().join("state.db")).unwrap();
    db.execute_batch(&format!(
        "PRAGMA application_id = {}; PRAGMA user_version = 99; CREATE TABLE future(x);",
        qis_edge::db::APPLICATION_ID
    ))
    .unwrap();
    drop(db);
    let text = Plant::new(SITE, state.path(), free_port(), free_port()).toml();
    let (_dir, config) = write_config(&text);
    let out = Command::new(gateway_binary())
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(73), "{stderr}");
    assert!(stderr.contains("newer qis-edge"), "{stderr}");
    let unit = std::fs::read_to_string(repo().join("systemd/qis-edge.service")).unwrap();
    assert!(unit.contains("RestartPreventExitStatus=78 73"));
    let version: i64 = state_db(state.path())
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 99, "left as it is");
}
