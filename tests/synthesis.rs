//! The outcome loop across plants, against real mosquitto brokers and Modbus servers: a
//! failure confirmed at one plant moves an adaptable threshold at another, with provenance,
//! inside its rails, weighted by trust that follows the local engineers' answers.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

const RULE: &str = "pump/bearing_temp/high";

/// A plant with one pump whose bearing temperature has a `high` rule. `adapt` adds rails and
/// `extra` further sections.
fn plant(
    site: &str,
    state: &Path,
    mqtt: u16,
    plc: u16,
    warning: f64,
    adapt: &str,
    extra: &str,
) -> String {
    Plant::new(site, state, mqtt, plc)
        .extra(extra)
        .poll_ms(50)
        .levels(Some(warning), 95.0)
        .adapt(adapt)
        .toml()
}

fn plc() -> Peer {
    modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 50}]}),
    )
}

fn public_key(state: &Path) -> String {
    std::fs::read_to_string(state.join("outcome-key.pub"))
        .unwrap()
        .trim()
        .to_string()
}

fn threshold_topic(site: &str) -> String {
    format!("qis/{site}/thresholds/pump/bearing_temp/high")
}

/// Replays the same slow rise (60 → 94 °C, 1 °C per 150 ms) into a plant's PLC until its rule
/// is raised; returns the value that raised it, how many degrees into the rise that was (the
/// sample's own value, not a wall-clock time, so a slow machine cannot change it), and the
/// alarm id. The value then falls back to 50 and the alarm clears.
async fn rise_until_raised(observer: &mut Observer, site: &str, plc: u16) -> (f64, f64, String) {
    const RISE_FROM: u16 = 60;
    let events = format!("qis/{site}/events");
    let mut raised = None;
    'rise: for v in RISE_FROM..=94u16 {
        write_holding(plc, 0, v).await;
        let step_end = Instant::now() + Duration::from_millis(150);
        while Instant::now() < step_end {
            let left = step_end.saturating_duration_since(Instant::now());
            if let Ok(m) = tokio::time::timeout(
                left,
                observer.wait_for("", Duration::from_secs(3600), |m| {
                    m.topic == events && m.json["type"] == "alarm" && m.json["to"] == "active"
                }),
            )
            .await
            {
                raised = Some(m);
                break 'rise;
            }
        }
    }
    let m = raised.unwrap_or_else(|| panic!("{site}: the rise to 94 °C raised no alarm"));
    let value = m.json["value"].as_f64().unwrap();
    let into_rise = value - f64::from(RISE_FROM);
    write_holding(plc, 0, 50).await;
    observer
        .wait_for("the clear", Duration::from_secs(10), |m| {
            m.topic == events && m.json["to"] == "cleared"
        })
        .await;
    (
        value,
        into_rise,
        m.json["alarm_id"].as_str().unwrap().to_string(),
    )
}

/// trust × confidence × v / (v + 1), and the weighted mean with the baseline (weight 1).
fn expected_level(baseline: f64, proposal: f64, trust: f64, confidence: f64, v: f64) -> f64 {
    let w = trust * confidence * v / (v + 1.0);
    (baseline + w * proposal) / (1.0 + w)
}

/// Two plants and a cloud: three brokers, the plants' bridged to the cloud. Phoenix confirms an
/// alarm its tighter warning level caught; Stuttgart's adaptable level moves toward it with
/// Phoenix's packet as provenance, and the same rise raises Stuttgart's alarm earlier than
/// before. Stuttgart's engineer confirms that alarm: Phoenix's trust there rises, and the level
/// follows. Everything that crossed the cloud is a valid outcome packet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_confirmed_at_one_plant_warns_another_earlier() {
    let cloud = mosquitto();
    let mut cloud_observer = Observer::connect_filter(cloud.port, "#").await;
    let broker_a = mosquitto_bridged(cloud.port, "phoenix");
    let broker_b = mosquitto_bridged(cloud.port, "stuttgart");
    let (plc_a, plc_b) = (plc(), plc());
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let text_a = plant(
        "phoenix",
        state_a.path(),
        broker_a.port,
        plc_a.port,
        65.0,
        "",
        "",
    );
    let text_b = plant(
        "stuttgart",
        state_b.path(),
        broker_b.port,
        plc_b.port,
        80.0,
        "[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\n",
        "",
    );
    let mut obs_a = Observer::connect(broker_a.port).await;
    let mut obs_b = Observer::connect(broker_b.port).await;
    let a = start(&text_a);
    let b = start(&text_b);

    // Stuttgart publishes its level, at the baseline, without provenance.
    let initial = obs_b
        .wait_for("the initial threshold", Duration::from_secs(10), |m| {
            m.topic == threshold_topic("stuttgart")
        })
        .await;
    assert_eq!(initial.json["value"], 80.0);
    assert_eq!(initial.json["baseline"], 80.0);
    assert_eq!(initial.json["level"], "warning");
    assert_eq!(initial.json["provenance"], json!([]));

    // Without peers' advice the rise raises Stuttgart's warning at 80 °C.
    let (before, before_after, _) = rise_until_raised(&mut obs_b, "stuttgart", plc_b.port).await;
    assert!(before >= 80.0, "raised at {before}");

    // Phoenix's tighter level catches a rise; its engineer confirms the bearing failure.
    let (caught, _, alarm_a) = rise_until_raised(&mut obs_a, "phoenix", plc_a.port).await;
    assert!((65.0..80.0).contains(&caught), "phoenix raised at {caught}");
    obs_a
        .publish(
            "qis/phoenix/cmd/confirm",
            &json!({"alarm_id": alarm_a, "failure_mode": "bearing_outer_race", "note": "spall"})
                .to_string(),
        )
        .await;

    // Stuttgart's level moves toward 65 with Phoenix's packet as its provenance.
    let phoenix = public_key(state_a.path());
    let moved = obs_b
        .wait_for("the adapted threshold", Duration::from_secs(20), |m| {
            m.topic == threshold_topic("stuttgart") && m.json["value"].as_f64() != Some(80.0)
        })
        .await;
    let want = expected_level(80.0, 65.0, 0.5, 2.0 / 3.0, 1.0);
    let level = moved.json["value"].as_f64().unwrap();
    assert!(
        (level - want).abs() < 1e-5,
        "level {level}, expected {want}"
    );
    let provenance = moved.json["provenance"].as_array().unwrap();
    assert_eq!(provenance.len(), 1, "{}", moved.json);
    let p = &provenance[0];
    assert_eq!(p["source"], phoenix.as_str());
    assert_eq!(p["status"], "applied");
    assert_eq!(p["proposed"], 65.0);
    assert_eq!(p["validations"], 1);
    assert!((p["trust"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    let peer_event = obs_b
        .saw_or_wait_for("the peer outcome event", Duration::from_secs(5), |m| {
            m.json["type"] == "peer_outcome"
        })
        .await;
    assert_eq!(peer_event.json["applied_to"], json!([RULE]));

    // The same rise now raises Stuttgart's warning earlier.
    let (after, after_after, alarm_b) =
        rise_until_raised(&mut obs_b, "stuttgart", plc_b.port).await;
    assert!(
        after >= level && after < 80.0,
        "raised at {after} with level {level}"
    );
    assert!(
        after_after < before_after,
        "raised {after_after} °C into the rise, before advice {before_after} °C"
    );

    // Stuttgart's engineer confirms: the peer whose advice moved the alarm gains trust, and the
    // level follows the new weight.
    obs_b
        .publish(
            "qis/stuttgart/cmd/confirm",
            &json!({"alarm_id": alarm_b, "failure_mode": "bearing_outer_race"}).to_string(),
        )
        .await;
    let trust = obs_b
        .wait_for("the trust event", Duration::from_secs(5), |m| {
            m.json["type"] == "trust"
        })
        .await;
    assert_eq!(trust.json["source"], phoenix.as_str());
    assert!((trust.json["from"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    assert!((trust.json["to"].as_f64().unwrap() - 0.55).abs() < 1e-12);
    let want = expected_level(80.0, 65.0, 0.55, 2.0 / 3.0, 1.0);
    obs_b
        .wait_for(
            "the level after the trust change",
            Duration::from_secs(5),
            |m| {
                m.topic == threshold_topic("stuttgart")
                    && m.json["value"]
                        .as_f64()
                        .is_some_and(|v| (v - want).abs() < 1e-5)
            },
        )
        .await;

    // Stuttgart's own confirmation travelled too: Phoenix has no adaptable rule, so it only
    // shows it to its engineers.
    let back = obs_a
        .wait_for(
            "stuttgart's packet at phoenix",
            Duration::from_secs(20),
            |m| m.json["type"] == "peer_outcome",
        )
        .await;
    assert_eq!(back.json["source"], public_key(state_b.path()).as_str());
    assert_eq!(back.json["applied_to"], json!([]));

    stop(a).await;
    stop(b).await;

    // Privacy: the cloud saw outcome packets and nothing else.
    let crossed = cloud_observer.collect(Duration::from_millis(300)).await;
    assert!(
        crossed.len() >= 2,
        "{} messages crossed the cloud",
        crossed.len()
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for m in &crossed {
        assert!(
            m.topic.starts_with("qis/v2/ctx/"),
            "{} crossed the cloud",
            m.topic
        );
        let mut guard = qis_edge::packet::ReplayGuard::new(8);
        let packet = qis_edge::packet::verify(
            &m.raw,
            now,
            &mut guard,
            &qis_edge::packet::TrustPolicy::default(),
        )
        .unwrap_or_else(|r| panic!("not a valid packet on {}: {r}", m.topic));
        assert_eq!(packet.packet().topic(), m.topic);
        let text = String::from_utf8_lossy(&m.raw);
        for secret in ["phoenix", "stuttgart", "spall", "pump/", "bearing_temp"] {
            assert!(!text.contains(secret), "`{secret}` crossed the cloud");
        }
    }
}

/// Starts a gateway whose first device has a context, with an observer on its broker; returns
/// once the gateway is online and its uplink (here the local broker) has had time to subscribe.
async fn start_listening(
    text: &str,
    site: &str,
    broker: u16,
) -> (qis_edge::packet::Fingerprint, Observer, Running) {
    let fingerprint = qis_edge::config::parse_str(text, "t").unwrap().devices[0]
        .context()
        .unwrap()
        .fingerprint()
        .unwrap();
    let mut obs = Observer::connect(broker).await;
    let gateway = start(text);
    let status = format!("qis/{site}/status");
    obs.wait_for("the gateway online", Duration::from_secs(10), |m| {
        m.topic == status && m.json["status"] == "online"
    })
    .await;
    obs.wait_uplink_subscribed(site).await;
    (fingerprint, obs, gateway)
}

/// Signs a process-value proposal for the pump's context as a given peer.
fn proposal(
    seed: u8,
    fingerprint: qis_edge::packet::Fingerprint,
    seq: u64,
    threshold: f32,
) -> Vec<u8> {
    use qis_edge::packet::*;
    let pattern = SignalPattern {
        feature: Feature::ProcessValue,
        frequency: Frequency::None,
        threshold,
        unit: label("unit", "°C").unwrap(),
        direction: Direction::High,
    };
    signed(seed, fingerprint, seq, pattern)
}

/// Signs a confirmed-failure packet with a pattern as a given peer: a thousand validations,
/// valid for a day from now.
fn signed(
    seed: u8,
    fingerprint: qis_edge::packet::Fingerprint,
    seq: u64,
    pattern: qis_edge::packet::SignalPattern,
) -> Vec<u8> {
    use qis_edge::packet::*;
    let body = PacketBody {
        pattern,
        outcome: Outcome {
            kind: OutcomeKind::FailureConfirmed,
            failure_mode: FailureMode::BearingOuterRace,
            label: label("l", "outer race").unwrap(),
        },
        confidence: 1.0,
        validations: 1_000,
        refutations: 0,
        lead_time_s: 86_400,
        equipment_label: label("e", "Centrifugal pump").unwrap(),
        ..peer_body(fingerprint, seq)
    };
    signed_by(seed, body)
}

/// Spectral patterns say where in the spectrum they live. A band proposal moves only the rule
/// watching that band, not one on another band of the same machine; a confirmed bearing alarm
/// goes out naming its defect frequency, which matches the CWRU bearing's documented order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn band_proposals_move_only_their_band_and_packets_name_their_frequency() {
    use qis_edge::packet::{Direction, Feature, Frequency, SignalPattern};
    let broker = mosquitto();
    let state = tempfile::tempdir().unwrap();
    let shared = repo().join("../shared/data/bearings/cwru");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(shared.join("cwru_130_DE.json")).unwrap())
            .unwrap();
    let band_rule = "[[devices.points.alarms]]\nkind = \"high\"\nwarning = 50.0\nalarm = 60.0\n\
                     [devices.points.alarms.adapt]\nfloor = 1.0\nceiling = 50.0\n\n";
    let text = format!(
        "[site]\nid = \"vib\"\nstate_dir = \"{}\"\n[mqtt]\nport = {}\n\
         [synthesis]\nbaseline_weight = 0.01\n\n\
         [[devices]]\ntype = \"vibration\"\nname = \"pump\"\nfile = \"{}\"\nsample_rate = 12000.0\n\
         window = 16384\nreplay = \"fast\"\ninterval_ms = 50\nrpm = {}\n\
         bearing = {{ elements = 9, ball_diameter = 0.3126, pitch_diameter = 1.537, contact_angle_deg = 0.0 }}\n\
         bands_hz = [[100, 1500], [1500, 5000]]\n\n{PUMP_CONTEXT}\
         [[devices.points]]\nname = \"low_band\"\nfeature = \"band_rms:0\"\n\n{band_rule}\
         [[devices.points]]\nname = \"high_band\"\nfeature = \"band_rms:1\"\n\n{band_rule}\
         [[devices.points]]\nname = \"bpfo\"\nfeature = \"outer_race_score\"\n\n\
         [[devices.points.alarms]]\nkind = \"high\"\nalarm = 20.0\n",
        state.path().display(),
        broker.port,
        shared.join("cwru_130_DE.f32").display(),
        meta["rpm_recorded"],
    );
    let (fingerprint, mut obs, gateway) = start_listening(&text, "vib", broker.port).await;

    let band = |seq, lo, hi| {
        signed(
            7,
            fingerprint,
            seq,
            SignalPattern {
                feature: Feature::BandAmplitude,
                frequency: Frequency::Band { lo, hi },
                threshold: 10.0,
                unit: qis_edge::packet::label("unit", "g").unwrap(),
                direction: Direction::High,
            },
        )
    };
    // A band this plant does not watch matches nothing; then the low band.
    obs.publish_raw(&fingerprint.topic(), band(1, 200.0, 1500.0))
        .await;
    obs.publish_raw(&fingerprint.topic(), band(2, 100.0, 1500.0))
        .await;
    let low = "qis/vib/thresholds/pump/low_band/high";
    let high = "qis/vib/thresholds/pump/high_band/high";
    let moved = obs
        .wait_for("the low band's level moved", Duration::from_secs(10), |m| {
            m.topic == low && m.json["value"].as_f64() != Some(50.0)
        })
        .await;
    let level = moved.json["value"].as_f64().unwrap();
    assert!((1.0..50.0).contains(&level), "{level}");
    assert_eq!(moved.json["provenance"].as_array().unwrap().len(), 1);
    assert_eq!(moved.json["provenance"][0]["proposed"], 10.0);
    let intake = obs
        .wait_for("intake statistics", Duration::from_secs(10), |m| {
            m.topic == "qis/vib/stats/intake" && m.json["unmatched"].as_u64() >= Some(1)
        })
        .await;
    assert_eq!(intake.json["unmatched"], 1, "{}", intake.json);
    let high_levels: Vec<&Value> = obs
        .seen
        .iter()
        .filter(|m| m.topic == high)
        .map(|m| &m.json["value"])
        .collect();
    assert!(!high_levels.is_empty());
    assert!(
        high_levels.iter().all(|v| v.as_f64() == Some(50.0)),
        "the other band moved: {high_levels:?}"
    );

    // The envelope alarm on the outer race, confirmed: its packet names BPFO in Hz.
    let raised = obs
        .saw_or_wait_for("the envelope alarm", Duration::from_secs(20), |m| {
            m.topic == "qis/vib/events" && m.json["point"] == "bpfo" && m.json["to"] == "active"
        })
        .await;
    let id = raised.json["alarm_id"].as_str().unwrap().to_string();
    obs.publish(
        "qis/vib/cmd/confirm",
        &json!({"alarm_id": id, "failure_mode": "bearing_outer_race"}).to_string(),
    )
    .await;
    let own = public_key(state.path());
    let sent = obs
        .wait_for("the gateway's packet", Duration::from_secs(10), |m| {
            m.topic.starts_with("qis/v2/ctx/")
                && m.topic.contains(&format!("/{fingerprint}/{own}/"))
                && qis_edge::packet::guard::decode(&m.raw)
                    .is_ok_and(|p| hex::encode(p.body.source) == own)
        })
        .await;
    let packet = qis_edge::packet::guard::decode(&sent.raw).unwrap();
    let pattern = &packet.body.pattern;
    assert_eq!(
        pattern.feature,
        Feature::BearingDefect(qis_edge::packet::BearingDefect::Bpfo)
    );
    let bpfo =
        meta["fault_orders_x_shaft"]["BPFO"].as_f64().unwrap() * meta["shaft_hz"].as_f64().unwrap();
    match pattern.frequency {
        Frequency::At(hz) => assert!(
            (f64::from(hz) - bpfo).abs() < 1e-3 * bpfo,
            "BPFO {hz} Hz, documented {bpfo} Hz"
        ),
        other => panic!("expected the defect frequency, got {other:?}"),
    }
    stop(gateway).await;
}

/// A peer that turns malicious and proposes absurd thresholds moves the level no further than
/// its rail; as the alarms it caused are refuted its trust falls until its advice weighs
/// nothing and the level is back at its baseline. Trust and proposals survive a restart, and a
/// damaged state database is moved aside and the gateway starts empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malicious_peer_stays_inside_the_rails_and_loses_its_trust() {
    let broker = mosquitto();
    let plc = plc();
    let state = tempfile::tempdir().unwrap();
    let text = plant(
        "stuttgart",
        state.path(),
        broker.port,
        plc.port,
        80.0,
        "[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\n",
        "[synthesis]\nbaseline_weight = 0.01\n",
    );
    let (fingerprint, mut obs, gateway) = start_listening(&text, "stuttgart", broker.port).await;

    // Absurd: far below the floor, from a source claiming a thousand validations.
    obs.publish_raw(&fingerprint.topic(), proposal(9, fingerprint, 1, -1.0e6))
        .await;
    let moved = obs
        .wait_for("the level at its floor", Duration::from_secs(10), |m| {
            m.topic == threshold_topic("stuttgart") && m.json["value"].as_f64() != Some(80.0)
        })
        .await;
    let level = moved.json["value"].as_f64().unwrap();
    assert!(
        (60.0..80.0).contains(&level),
        "level {level} left its rails"
    );
    assert_eq!(moved.json["provenance"][0]["applied"], 60.0);
    assert_eq!(moved.json["provenance"][0]["proposed"], -1.0e6);

    // Far above the ceiling: the level only tightens, so this is ignored.
    obs.publish_raw(&fingerprint.topic(), proposal(8, fingerprint, 1, 1.0e6))
        .await;
    let both = obs
        .wait_for("the second proposal", Duration::from_secs(10), |m| {
            m.topic == threshold_topic("stuttgart")
                && m.json["provenance"]
                    .as_array()
                    .is_some_and(|p| p.len() == 2)
        })
        .await;
    assert_eq!(both.json["value"].as_f64(), Some(level));
    let statuses: Vec<&Value> = both.json["provenance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["status"])
        .collect();
    assert!(statuses.contains(&&json!("would_loosen")), "{statuses:?}");

    // Restart: trust and proposals are kept, the level comes back the same.
    stop(gateway).await;
    let gateway = start(&text);
    let again = obs
        .wait_for("the level after restart", Duration::from_secs(10), |m| {
            m.topic == threshold_topic("stuttgart") && !m.retained
        })
        .await;
    assert_eq!(again.json["value"].as_f64(), Some(level));

    // Each alarm the malicious advice raises is refuted; its trust falls by 0.10 each time
    // until its weight is below the minimum and the level reverts to the baseline.
    let mut trust = 0.5;
    let mut current = level;
    for round in 0..5 {
        let (at, _, id) = rise_until_raised(&mut obs, "stuttgart", plc.port).await;
        assert!(
            at < 80.0 && at >= current,
            "round {round}: raised at {at}, level {current}"
        );
        obs.publish(
            "qis/stuttgart/cmd/refute",
            &json!({"alarm_id": id, "note": "nothing found"}).to_string(),
        )
        .await;
        let event = obs
            .wait_for("the trust event", Duration::from_secs(5), |m| {
                m.json["type"] == "trust"
            })
            .await;
        let to = event.json["to"].as_f64().unwrap();
        assert!(
            (to - (trust - 0.1_f64).max(0.0)).abs() < 1e-9,
            "round {round}: trust {to}"
        );
        trust = to;
        let next = obs
            .wait_for("the level after refutation", Duration::from_secs(5), |m| {
                m.topic == threshold_topic("stuttgart")
            })
            .await;
        current = next.json["value"].as_f64().unwrap();
        assert!((60.0..=80.0).contains(&current));
        if trust < 0.05 {
            assert_eq!(current, 80.0, "a distrusted peer moves nothing");
            break;
        }
    }
    assert_eq!(current, 80.0, "trust {trust}");
    stop(gateway).await;

    // The lost trust is stored.
    let stored: f64 = state_db(state.path())
        .query_row("SELECT trust FROM trust", [], |r| r.get(0))
        .unwrap();
    assert!(
        (stored - trust).abs() < 1e-9,
        "stored trust {stored}, trust {trust}"
    );

    // A damaged database (random bytes over it): moved aside, the gateway starts empty (the
    // baseline, no provenance), nothing crashes.
    std::fs::write(state.path().join("state.db"), [0xa5u8; 4096]).unwrap();
    let _ = std::fs::remove_file(state.path().join("state.db-wal"));
    let gateway = start(&text);
    let after = obs
        .wait_for(
            "the level after a damaged database",
            Duration::from_secs(10),
            |m| m.topic == threshold_topic("stuttgart") && !m.retained,
        )
        .await;
    assert_eq!(after.json["value"].as_f64(), Some(80.0));
    assert_eq!(after.json["provenance"], json!([]));
    stop(gateway).await;
    assert!(
        !files_starting(state.path(), "state.db.damaged-").is_empty(),
        "the damaged file was moved aside"
    );
}

/// A pump context: class `Centrifugal pump`, with the given process, mounting and bearing.
fn pump_context(process: &str, mounting: &str, bearing: &str) -> String {
    format!(
        "[devices.context]\nequipment_class = \"Centrifugal pump\"\nprocess = \"{process}\"\n\
         sensor_kind = \"temperature\"\nmounting = \"{mounting}\"\n\
         [devices.context.attributes]\nbearing = \"{bearing}\""
    )
}

/// The address (fingerprints at every level) of a `[devices.context]` section.
fn address_of(context_toml: &str) -> qis_edge::packet::Address {
    let text = Plant::new("x", Path::new("/nonexistent"), 1883, 502)
        .context(context_toml)
        .toml();
    qis_edge::config::parse_str(&text, "t").unwrap().devices[0]
        .context()
        .unwrap()
        .address()
        .unwrap()
}

/// Packets reach plants with similar equipment, at the weight of how deep their contexts
/// match. Rotterdam confirms a failure its 65 °C warning caught. Three plants take it: one
/// whose pumps share only the class (`match = "class"`), one the class and process
/// (`match = "process"`), one the whole context; each level moves by the configured factor
/// of the weight. A plant sharing the class but accepting only its full context never hears
/// of it. A valid packet on a topic whose levels are not its own is rejected and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_reach_similar_plants_at_the_weight_of_their_match() {
    let broker = mosquitto();
    let (plc_source, plc) = (plc(), plc());
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    // Factors other than the defaults, so the test sees the configured ones; every weight
    // counts however light.
    let synthesis = "[synthesis]\nmin_weight = 0.0\n\
                     [synthesis.match_weights]\nfull = 0.9\nmounting = 0.6\nprocess = 0.4\nclass = 0.2\n";
    let rails = |level: &str| {
        format!(
            "[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\nmatch = \"{level}\"\n"
        )
    };
    let source_context = pump_context("cooling water", "bearing housing", "SKF 6205");
    let source = Plant::new("rotterdam", dirs[0].path(), broker.port, plc_source.port)
        .poll_ms(50)
        .levels(Some(65.0), 95.0)
        .context(&source_context)
        .toml();
    // (site, context, match, factor of the level it matches at)
    let receivers = [
        (
            "class",
            pump_context("boiler feed", "motor end", "SKF 6310"),
            "class",
            0.2,
        ),
        (
            "process",
            pump_context("cooling water", "motor end", "SKF 6310"),
            "process",
            0.4,
        ),
        ("full", source_context.clone(), "full", 0.9),
        (
            "strict",
            pump_context("boiler feed", "motor end", "SKF 6310"),
            "full",
            0.0,
        ),
    ];
    let mut obs = Observer::connect(broker.port).await;
    let a = start(&source);
    let mut running = Vec::new();
    for (i, (site, context, level, _)) in receivers.iter().enumerate() {
        let text = Plant::new(site, dirs[i + 1].path(), broker.port, plc.port)
            .poll_ms(50)
            .levels(Some(80.0), 95.0)
            .adapt(&rails(level))
            .context(context)
            .extra(synthesis)
            .toml();
        running.push(start(&text));
        obs.wait_uplink_subscribed(site).await;
    }
    obs.wait_uplink_subscribed("rotterdam").await;

    let (caught, _, alarm) = rise_until_raised(&mut obs, "rotterdam", plc_source.port).await;
    assert!((65.0..80.0).contains(&caught), "raised at {caught}");
    obs.publish(
        "qis/rotterdam/cmd/confirm",
        &json!({"alarm_id": alarm, "failure_mode": "bearing_outer_race"}).to_string(),
    )
    .await;
    let source_key = public_key(dirs[0].path());
    for (site, _, level, factor) in receivers.iter().take(3) {
        let moved = obs
            .saw_or_wait_for("the adapted threshold", Duration::from_secs(20), |m| {
                m.topic == threshold_topic(site) && m.json["value"].as_f64() != Some(80.0)
            })
            .await;
        let p = &moved.json["provenance"][0];
        assert_eq!(p["source"], source_key.as_str(), "{site}");
        assert_eq!(p["match"], *level, "{site}");
        assert_eq!(p["status"], "applied", "{site}");
        let weight = 0.5 * (2.0 / 3.0) * 0.5 * factor;
        let got = p["weight"].as_f64().unwrap();
        assert!(
            (got - weight).abs() < 1e-6,
            "{site}: weight {got}, expected {weight}"
        );
        let want = (80.0 + weight * 65.0) / (1.0 + weight);
        let value = moved.json["value"].as_f64().unwrap();
        assert!(
            (value - want).abs() < 1e-4,
            "{site}: level {value}, expected {want}"
        );
    }

    // The strict plant: a packet for its own full context, published after Rotterdam's went
    // round, arrives; Rotterdam's never did.
    let strict = address_of(&receivers[3].1);
    let marker = qis_edge::packet::PacketBody {
        levels: qis_edge::packet::Levels::Known(strict.general),
        ..peer_body(strict.full, 1)
    };
    obs.publish_raw(&topic_of(21, &marker), signed_by(21, marker))
        .await;
    let events = obs
        .wait_for(
            "the marker at the strict plant",
            Duration::from_secs(20),
            |m| {
                m.topic == "qis/strict/events"
                    && m.json["type"] == "peer_outcome"
                    && m.json["seq"] == 1
            },
        )
        .await;
    assert_ne!(events.json["source"], source_key.as_str());
    assert!(
        !obs.seen().iter().any(|m| m.topic == "qis/strict/events"
            && m.json["type"] == "peer_outcome"
            && m.json["source"] == source_key.as_str()),
        "a plant accepting its full context only heard of a class-level match"
    );

    // A forged level: a valid packet of the class plant's context, on a topic whose process
    // level is Rotterdam's, reaches the class plant (its filter covers it) and is rejected and
    // counted.
    let class = address_of(&receivers[0].1);
    let forged_body = qis_edge::packet::PacketBody {
        levels: qis_edge::packet::Levels::Known(class.general),
        ..peer_body(class.full, 7)
    };
    let forged_topic = topic_of(22, &forged_body).replace(
        &class.general[1].to_string(),
        &address_of(&source_context).general[1].to_string(),
    );
    obs.publish_raw(&forged_topic, signed_by(22, forged_body))
        .await;
    obs.wait_for("the forged level counted", Duration::from_secs(20), |m| {
        m.topic == "qis/class/stats/intake" && m.json["wrong_topic"] == 1
    })
    .await;

    stop(a).await;
    for r in running {
        stop(r).await;
    }
}
