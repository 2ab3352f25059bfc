//! Local validation against a real broker and Modbus server: engineers confirm and refute
//! alarms on the local broker; the ledger counts them per context and pattern, survives
//! restarts and recovers from a damaged state database.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

fn config(state: &std::path::Path, mqtt: u16, plc: u16) -> String {
    Plant::new("val", state, mqtt, plc).toml()
}

/// Raises the alarm (value 90) and returns its id; lowers the value again afterwards.
async fn raise(observer: &mut Observer, plc: u16) -> String {
    raise_and_clear(
        observer,
        "qis/val/events",
        plc,
        (90, 20),
        Duration::from_secs(10),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmations_and_refutations_build_a_persistent_ledger() {
    let broker = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let text = config(state.path(), broker.port, plc.port);
    let fingerprint = qis_edge::config::parse_str(&text, "t").unwrap().devices[0]
        .context()
        .unwrap()
        .fingerprint()
        .unwrap()
        .to_string();

    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    let first = raise(&mut observer, plc.port).await;
    assert_eq!(first, "pump/bearing_temp/high/1");

    // A confirmation needs the failure mode.
    observer
        .publish(
            "qis/val/cmd/confirm",
            &json!({"alarm_id": first}).to_string(),
        )
        .await;
    let rejected = observer
        .wait_for("rejection", Duration::from_secs(5), |m| {
            m.json["type"] == "command_rejected"
        })
        .await;
    assert!(rejected.json["reason"]
        .as_str()
        .unwrap()
        .contains("failure_mode"));

    observer
        .publish("qis/val/cmd/confirm", &json!({"alarm_id": first, "failure_mode": "bearing_outer_race", "note": "spall on the outer race", "by": "j.doe"}).to_string())
        .await;
    let confirmed = observer
        .wait_for("outcome", Duration::from_secs(5), |m| {
            m.json["type"] == "outcome"
        })
        .await;
    assert_eq!(confirmed.json["outcome"], "confirmed");
    assert_eq!(confirmed.json["failure_mode"], "bearing_outer_race");
    assert_eq!(confirmed.json["fingerprint"], fingerprint.as_str());
    assert_eq!(confirmed.json["pattern"], "process_value:high");
    assert_eq!(
        (
            confirmed.json["validations"].as_u64(),
            confirmed.json["refutations"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert!(confirmed.json["lead_time_s"].as_u64().is_some());

    // Answering twice, or an unknown alarm, is refused with a reason.
    observer
        .publish(
            "qis/val/cmd/refute",
            &json!({"alarm_id": first}).to_string(),
        )
        .await;
    let twice = observer
        .wait_for("second answer refused", Duration::from_secs(5), |m| {
            m.json["type"] == "command_rejected"
        })
        .await;
    assert!(twice.json["reason"]
        .as_str()
        .unwrap()
        .contains("already answered"));
    observer
        .publish(
            "qis/val/cmd/refute",
            &json!({"alarm_id": "pump/bearing_temp/high/99"}).to_string(),
        )
        .await;
    observer
        .wait_for("unknown refused", Duration::from_secs(5), |m| {
            m.json["type"] == "command_rejected"
        })
        .await;
    stop(gateway).await;

    // After a restart the counter goes on (ids stay unique) and the ledger is kept.
    let gateway = start(&text);
    let second = raise(&mut observer, plc.port).await;
    assert_eq!(second, "pump/bearing_temp/high/2");
    observer
        .publish(
            "qis/val/cmd/refute",
            &json!({"alarm_id": second, "note": "sensor cable"}).to_string(),
        )
        .await;
    let refuted = observer
        .wait_for("refutation", Duration::from_secs(5), |m| {
            m.json["type"] == "outcome"
        })
        .await;
    assert_eq!(refuted.json["outcome"], "refuted");
    assert_eq!(
        (
            refuted.json["validations"].as_u64(),
            refuted.json["refutations"].as_u64()
        ),
        (Some(1), Some(1))
    );
    stop(gateway).await;

    assert_eq!(
        ledger_counts(state.path(), &format!("{fingerprint}/process_value:high")),
        Some((1, 1))
    );
}

/// A state database torn in half (a damaged card): moved aside with one clear line, and the
/// gateway starts with empty state instead of crash-looping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_state_database_is_moved_aside_and_the_gateway_starts_empty() {
    let broker = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let text = config(state.path(), broker.port, plc.port);
    let mut observer = Observer::connect(broker.port).await;

    let gateway = start(&text);
    let first = raise(&mut observer, plc.port).await;
    observer
        .publish(
            "qis/val/cmd/confirm",
            &json!({"alarm_id": first, "failure_mode": "lubrication"}).to_string(),
        )
        .await;
    observer
        .wait_for("outcome", Duration::from_secs(5), |m| {
            m.json["type"] == "outcome"
        })
        .await;
    stop(gateway).await;

    // A torn file: half of it, its WAL gone.
    let path = state.path().join("state.db");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let _ = std::fs::remove_file(state.path().join("state.db-wal"));

    let gateway = start(&text);
    observer
        .wait_for("online again", Duration::from_secs(10), |m| {
            m.topic == "qis/val/status" && m.json["status"] == "online" && !m.retained
        })
        .await;
    let second = raise(&mut observer, plc.port).await;
    assert_eq!(second, "pump/bearing_temp/high/1", "a fresh database");
    stop(gateway).await;
    let aside = files_starting(state.path(), "state.db.damaged-");
    assert!(!aside.is_empty(), "the damaged file is kept for inspection");
}

fn uplink_config(state: &std::path::Path, mqtt: u16, plc: u16, cloud: u16) -> String {
    Plant::new("val", state, mqtt, plc)
        .extra(&format!("[uplink]\nport = {cloud}\nkeep_alive_s = 5\n"))
        .toml()
}

fn pending(state: &std::path::Path) -> usize {
    outbox_rows(state)
}

/// An answer becomes a signed packet on the uplink topic of the point's context; everything
/// on the uplink is a valid packet and nothing else; an uplink outage loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_travel_as_signed_packets_through_a_durable_outbox() {
    let broker = mosquitto();
    // The fleet broker keeps sessions across its restart, so the peer (the uplink observer)
    // is sent what arrives while it reconnects, however fast the gateway is back.
    let cloud_dir = tempfile::tempdir().unwrap();
    let mut cloud = mosquitto_persistent(cloud_dir.path());
    let cloud_port = cloud.port;
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let text = uplink_config(state.path(), broker.port, plc.port, cloud_port);
    let fingerprint = qis_edge::config::parse_str(&text, "t").unwrap().devices[0]
        .context()
        .unwrap()
        .fingerprint()
        .unwrap();

    let mut observer = Observer::connect(broker.port).await;
    let mut uplink = Observer::connect_persistent(cloud_port, "#").await;
    let gateway = start(&text);
    let first = raise(&mut observer, plc.port).await;
    observer
        .publish("qis/val/cmd/confirm", &json!({"alarm_id": first, "failure_mode": "bearing_outer_race", "note": "plant secret", "by": "j.doe"}).to_string())
        .await;
    let source = std::fs::read_to_string(state.path().join("outcome-key.pub"))
        .unwrap()
        .trim()
        .to_string();

    let received = uplink_packets(&mut uplink, 1).await;
    let address = qis_edge::config::parse_str(&text, "t").unwrap().devices[0]
        .context()
        .unwrap()
        .address()
        .unwrap();
    assert!(
        received[0]
            .0
            .starts_with(&format!("{}/{source}/", address.topic())),
        "on its context's levels and its source: {}",
        received[0].0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut guard = qis_edge::packet::ReplayGuard::new(16);
    let p = qis_edge::packet::verify(
        &received[0].1,
        now,
        &mut guard,
        &qis_edge::packet::TrustPolicy::default(),
    )
    .expect("a valid packet");
    let b = p.body();
    assert_eq!(hex::encode(b.source), source);
    assert_eq!(b.fingerprint, fingerprint);
    assert_eq!(b.pattern.feature, qis_edge::packet::Feature::ProcessValue);
    assert_eq!(b.pattern.threshold, 80.0);
    assert_eq!(
        b.outcome.failure_mode,
        qis_edge::packet::FailureMode::BearingOuterRace
    );
    assert_eq!((b.validations, b.refutations), (1, 0));
    let text_of = String::from_utf8_lossy(&received[0].1).to_string();
    assert!(
        !text_of.contains("plant secret") && !text_of.contains("j.doe") && !text_of.contains("val"),
        "no note, name or site on the uplink"
    );
    wait_until(
        || pending(state.path()) == 0,
        "the outbox empties on PUBACK",
    )
    .await;

    // The uplink goes away: answers wait in the outbox, on disk, then all go out in order.
    cloud.terminate();
    let second = raise(&mut observer, plc.port).await;
    let third = raise(&mut observer, plc.port).await;
    observer
        .publish(
            "qis/val/cmd/refute",
            &json!({"alarm_id": second}).to_string(),
        )
        .await;
    observer
        .publish(
            "qis/val/cmd/confirm",
            &json!({"alarm_id": third, "failure_mode": "lubrication"}).to_string(),
        )
        .await;
    wait_until(|| pending(state.path()) == 2, "two packets wait on disk").await;
    let _cloud = mosquitto_persistent_on(cloud_port, cloud_dir.path());
    let later = uplink_packets(&mut uplink, 2).await;
    let bodies: Vec<_> = later
        .iter()
        .map(|(_, bytes)| {
            qis_edge::packet::verify(
                bytes,
                now,
                &mut guard,
                &qis_edge::packet::TrustPolicy::default(),
            )
            .expect("valid")
            .into_inner()
            .body
        })
        .collect();
    assert_eq!(
        bodies[0].outcome.kind,
        qis_edge::packet::OutcomeKind::FalseAlarm
    );
    assert_eq!((bodies[0].validations, bodies[0].refutations), (1, 1));
    assert_eq!(
        bodies[1].outcome.failure_mode,
        qis_edge::packet::FailureMode::Lubrication
    );
    assert!(bodies[0].seq < bodies[1].seq, "oldest first");
    wait_until(|| pending(state.path()) == 0, "the outbox empties again").await;
    stop(gateway).await;
}

/// Collects `n` messages from the uplink; every one must be a packet (the privacy check).
async fn uplink_packets(uplink: &mut Observer, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while out.len() < n {
        // Retained copies of packets already seen come again whenever the observer
        // subscribes (after the broker's restart): the packets sent are the live ones.
        let m = uplink
            .wait_for("an uplink message", Duration::from_secs(20), |m| {
                !m.retained
            })
            .await;
        let m = (m.topic, m.raw);
        assert!(
            m.0.starts_with("qis/v2/ctx/"),
            "only packets on the uplink, got topic {}",
            m.0
        );
        assert!(
            qis_edge::packet::guard::decode(&m.1).is_ok(),
            "not a packet on {}",
            m.0
        );
        out.push(m);
    }
    out
}

fn peer_packet(
    fingerprint: qis_edge::packet::Fingerprint,
    seq: u64,
    issued_at: u64,
    ttl_s: u32,
) -> Vec<u8> {
    let body = qis_edge::packet::PacketBody {
        issued_at,
        ttl_s,
        ..peer_body(fingerprint, seq)
    };
    signed_by(5, body)
}

/// Every packet on the uplink passes the intake guard: forged, replayed, expired, oversize and
/// garbage packets are rejected and counted by reason; a valid one from a peer reaches the
/// engineers as a `peer_outcome` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uplink_input_is_rejected_with_counted_reasons() {
    let broker = mosquitto();
    let cloud = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let text = uplink_config(state.path(), broker.port, plc.port, cloud.port);
    let fingerprint = qis_edge::config::parse_str(&text, "t").unwrap().devices[0]
        .context()
        .unwrap()
        .fingerprint()
        .unwrap();
    let topic = fingerprint.topic();
    let mut observer = Observer::connect(broker.port).await;
    let peer = Observer::connect_filter(cloud.port, "nothing/#").await;
    let gateway = start(&text);
    // The gateway subscribes once connected to the uplink; its status tells it is up.
    observer
        .wait_for("online", Duration::from_secs(10), |m| {
            m.topic == "qis/val/status" && m.json["status"] == "online"
        })
        .await;
    observer.wait_uplink_subscribed("val").await;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let valid = peer_packet(fingerprint, 10, now, 86_400);
    let mut forged = valid.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    for bytes in [
        valid.clone(),
        valid.clone(),                                            // replayed
        peer_packet(fingerprint, 11, now - 100 * 86_400, 86_400), // expired
        forged,                                                   // bad signature
        b"definitely not a packet".to_vec(),                      // garbage
        vec![1u8; 600],                                           // oversize
    ] {
        peer.publish_raw(&topic, bytes).await;
    }
    let event = observer
        .wait_for("peer outcome", Duration::from_secs(10), |m| {
            m.json["type"] == "peer_outcome"
        })
        .await;
    assert_eq!(
        event.json["source"],
        hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[5; 32])
                .verifying_key()
                .to_bytes()
        )
        .as_str()
    );
    assert_eq!(event.json["fingerprint"], fingerprint.to_string().as_str());
    assert_eq!(event.json["threshold"], 72.5);
    assert_eq!(event.json["failure_mode"], "lubrication");
    let stats = observer
        .wait_for("intake stats", Duration::from_secs(10), |m| {
            let r = &m.json["rejected"];
            m.topic == "qis/val/stats/intake"
                && r["oversize"] == 1
                && r["replayed"] == 1
                && r["expired"] == 1
                && r["bad_signature"] == 1
        })
        .await;
    assert_eq!(stats.json["accepted"], 1, "{}", stats.json);
    let r = &stats.json["rejected"];
    assert_eq!(
        r["truncated"].as_u64().unwrap()
            + r["malformed"].as_u64().unwrap()
            + r["unknown_version"].as_u64().unwrap(),
        1,
        "{}",
        stats.json
    );
    // Only one peer_outcome event: nothing rejected reached the engineers.
    let later = observer.collect(Duration::from_millis(500)).await;
    assert!(!later.iter().any(|m| m.json["type"] == "peer_outcome"));
    stop(gateway).await;

    // The replay memory survives a restart: the same packet is still a replay, and the peer's
    // next sequence number is still accepted.
    assert!(
        table_rows(state.path(), "replay") > 0,
        "the replay memory is stored"
    );
    let gateway = start(&text);
    observer
        .wait_for("online again", Duration::from_secs(10), |m| {
            m.topic == "qis/val/status" && m.json["status"] == "online"
        })
        .await;
    observer.wait_uplink_subscribed("val").await;
    peer.publish_raw(&topic, valid.clone()).await;
    peer.publish_raw(&topic, peer_packet(fingerprint, 12, now, 86_400))
        .await;
    let stats = observer
        .wait_for(
            "intake stats after the restart",
            Duration::from_secs(10),
            |m| {
                m.topic == "qis/val/stats/intake"
                    && m.json["rejected"]["replayed"] == 1
                    && m.json["accepted"] == 1
            },
        )
        .await;
    assert_eq!(stats.json["rejected"]["expired"], 0, "{}", stats.json);
    let seen: Vec<_> = observer
        .collect(Duration::from_millis(500))
        .await
        .into_iter()
        .chain(std::iter::once(stats))
        .filter(|m| m.json["type"] == "peer_outcome")
        .collect();
    assert!(
        seen.iter().all(|m| m.json["seq"] == 12),
        "only the new packet reaches the engineers: {:?}",
        seen.iter().map(|m| &m.json).collect::<Vec<_>>()
    );
    stop(gateway).await;
}

/// A PLC fault point confirms the alarms that predicted it: fault code 17 on the drive
/// confirms the unanswered bearing alarm raised before it, with the configured failure mode;
/// another code confirms nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plc_fault_code_confirms_the_alarms_that_predicted_it() {
    let broker = mosquitto();
    let plc = modbus_server(&json!({"registers": [
        {"table": "holding", "address": 0, "type": "u16", "value": 20},
        {"table": "holding", "address": 1, "type": "u16", "value": 0}
    ]}));
    let state = tempfile::tempdir().unwrap();
    let text = config(state.path(), broker.port, plc.port)
        + "[devices.points.alarms.confirmed_by]\npoint = \"fault_code\"\nequals = 17\nwithin_days = 14\nfailure_mode = \"bearing_outer_race\"\n\n\
           [[devices.points]]\nname = \"fault_code\"\nregister = \"holding\"\naddress = 1\n";
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    let id = raise(&mut observer, plc.port).await;

    write_holding(plc.port, 1, 5).await;
    let unrelated = observer.collect(Duration::from_millis(600)).await;
    assert!(
        !unrelated.iter().any(|m| m.json["type"] == "outcome"),
        "fault code 5 is not the predicted failure"
    );
    write_holding(plc.port, 1, 17).await;
    let confirmed = observer
        .wait_for("the automatic confirmation", Duration::from_secs(5), |m| {
            m.json["type"] == "outcome"
        })
        .await;
    assert_eq!(confirmed.json["alarm_id"], id.as_str());
    assert_eq!(confirmed.json["outcome"], "confirmed");
    assert_eq!(confirmed.json["failure_mode"], "bearing_outer_race");
    assert_eq!(confirmed.json["by"], "plc:pump/fault_code");
    assert_eq!(confirmed.json["note"], "fault_code = 17");

    // The fault going away and coming back does not answer the alarm twice.
    write_holding(plc.port, 1, 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    write_holding(plc.port, 1, 17).await;
    let again = observer.collect(Duration::from_millis(600)).await;
    assert!(!again.iter().any(|m| m.json["type"] == "outcome"));
    stop(gateway).await;
}

/// Copies `from` into `to`, recursively.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The JSON state of the version before the state database (`tests/vectors/state-v0`, made by
/// that version) is imported on the first start, in one go, and kept aside: alarms, answers,
/// ledger and sequence number, trust, applied count and replay memory, and the packet that was
/// waiting in the outbox, which then goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_state_of_the_earlier_version_is_imported_once_and_kept_aside() {
    let broker = mosquitto();
    let cloud = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("tests/vectors/state-v0"), state.path());
    std::fs::remove_file(state.path().join("README.md")).unwrap();
    std::fs::remove_file(state.path().join("made-with.toml")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let key = state.path().join("outcome-key.pem");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = Plant::new("imp", state.path(), broker.port, plc.port)
        .extra(&format!(
            "[uplink]\nport = {}\nkeep_alive_s = 5\n",
            cloud.port
        ))
        .adapt("[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\n")
        .toml();
    let mut observer = Observer::connect(broker.port).await;
    let mut uplink = Observer::connect_filter(cloud.port, "qis/+/ctx/#").await;
    let gateway = start(&text);

    // The packet that waited in the old outbox goes out: the refutation, sequence as named.
    let own = "ebfaae62d7f7cd077d077918efc3791fc1d6864eb5672c9927c0c73955250a65";
    let waiting = uplink
        .wait_for("the imported packet", Duration::from_secs(20), |m| {
            qis_edge::packet::guard::decode(&m.raw).is_ok_and(|p| hex::encode(p.body.source) == own)
        })
        .await;
    let body = qis_edge::packet::guard::decode(&waiting.raw).unwrap().body;
    assert_eq!(body.seq, 1_796_172_444_126);
    assert_eq!(body.outcome.kind, qis_edge::packet::OutcomeKind::FalseAlarm);
    assert_eq!(
        std::fs::read_to_string(state.path().join("outcome-key.pub"))
            .unwrap()
            .trim(),
        own,
        "the same signing key"
    );

    // Imported: the files are kept aside, the database holds what they held.
    for name in ["outcomes.json", "intake.json", "outbox"] {
        assert!(!state.path().join(name).exists(), "{name} moved aside");
        assert!(
            state.path().join(format!("{name}.imported")).exists(),
            "{name}.imported"
        );
    }
    let fingerprint = "66739cb8176782c9b63b70788d464486";
    assert_eq!(
        ledger_counts(state.path(), &format!("{fingerprint}/process_value:high")),
        Some((1, 1))
    );
    assert_eq!(state_counter(state.path(), "applied"), 1);
    assert_eq!(table_rows(state.path(), "replay"), 2);
    assert_eq!(table_rows(state.path(), "alarms"), 3);
    let peer = "a999f862df0a3572e3bdbf88fd8ce6736e546d2e6e2fba4a10ab481acb73575c";
    let trust: f64 = state_db(state.path())
        .query_row("SELECT trust FROM trust WHERE source = ?1", [peer], |r| {
            r.get(0)
        })
        .unwrap();
    assert!((trust - 0.45).abs() < 1e-9, "{trust}");

    // The unanswered alarm can be answered: the ledger goes on from the imported counts, the
    // peer whose advice had moved it gains trust, and alarm ids continue.
    observer
        .publish(
            "qis/imp/cmd/confirm",
            &json!({"alarm_id": "pump/bearing_temp/high/3", "failure_mode": "lubrication"})
                .to_string(),
        )
        .await;
    let outcome = observer
        .wait_for("the outcome", Duration::from_secs(10), |m| {
            m.json["type"] == "outcome"
        })
        .await;
    assert_eq!(
        (
            outcome.json["validations"].as_u64(),
            outcome.json["refutations"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let moved = observer
        .saw_or_wait_for("the trust event", Duration::from_secs(10), |m| {
            m.json["type"] == "trust"
        })
        .await;
    assert!((moved.json["from"].as_f64().unwrap() - 0.45).abs() < 1e-9);
    let next = raise_and_clear(
        &mut observer,
        "qis/imp/events",
        plc.port,
        (90, 20),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(next, "pump/bearing_temp/high/4");
    let confirmed = uplink
        .wait_for("the new packet", Duration::from_secs(20), |m| {
            qis_edge::packet::guard::decode(&m.raw)
                .is_ok_and(|p| hex::encode(p.body.source) == own && p.body.seq > 1_796_172_444_126)
        })
        .await;
    assert_eq!(
        qis_edge::packet::guard::decode(&confirmed.raw)
            .unwrap()
            .body
            .validations,
        2
    );
    stop(gateway).await;

    // A second start imports nothing again (the files are aside) and keeps the state.
    let gateway = start(&text);
    observer
        .wait_for("online again", Duration::from_secs(10), |m| {
            m.topic == "qis/imp/status" && m.json["status"] == "online" && !m.retained
        })
        .await;
    stop(gateway).await;
    assert_eq!(table_rows(state.path(), "alarms"), 4);
}
