//! Message size limits against a real mosquitto: however many peers propose, the retained
//! threshold message stays bounded (its provenance summarised); oversize commands, retained or
//! not, and oversize packets on a context topic are rejected and counted, and the connections
//! stay up.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const SITE: &str = "lim";

fn plant(state: &std::path::Path, mqtt: u16, plc: u16) -> String {
    Plant::new(SITE, state, mqtt, plc)
        .adapt("[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\n")
        .toml()
}

fn fingerprint(text: &str) -> qis_edge::packet::Fingerprint {
    qis_edge::config::parse_str(text, "t").unwrap().devices[0]
        .context()
        .unwrap()
        .fingerprint()
        .unwrap()
}

/// Every `online` the gateway published, and every last will the broker published for it.
fn connections(observer: &Observer) -> (usize, usize) {
    let status = format!("qis/{SITE}/status");
    let of = |state: &str| {
        observer
            .seen
            .iter()
            .filter(|m| m.topic == status && !m.retained && m.json["status"] == state)
            .count()
    };
    (of("online"), of("offline"))
}

/// A plant on its own mosquitto, running, with its uplink subscribed.
struct Setup {
    _broker: Peer,
    plc: Peer,
    _state: tempfile::TempDir,
    text: String,
    fp: qis_edge::packet::Fingerprint,
    observer: Observer,
    gateway: Running,
}

async fn setup() -> Setup {
    let broker = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let text = plant(state.path(), broker.port, plc.port);
    let fp = fingerprint(&text);
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    observer.wait_uplink_subscribed(SITE).await;
    Setup {
        _broker: broker,
        plc,
        _state: state,
        text,
        fp,
        observer,
        gateway,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_peers_keep_the_threshold_message_bounded_and_the_connection_up() {
    let Setup {
        _broker,
        _state,
        fp,
        mut observer,
        gateway,
        plc: _plc,
        text: _text,
    } = setup().await;
    for seed in 1..=100u8 {
        let mut body = peer_body(fp, 1);
        body.validations = u32::from(seed);
        observer
            .publish_raw(&fp.topic(), signed_by(seed, body))
            .await;
    }
    let topic = format!("qis/{SITE}/thresholds/pump/bearing_temp/high");
    let last = observer
        .wait_for(
            "the threshold with 100 proposals",
            Duration::from_secs(30),
            |m| m.topic == topic && m.json["proposals"] == 100,
        )
        .await;
    let provenance = last.json["provenance"].as_array().unwrap();
    assert_eq!(provenance.len(), qis_edge::mqtt::payload::PROVENANCE_SHOWN);
    let weights: Vec<f64> = provenance
        .iter()
        .map(|p| p["weight"].as_f64().unwrap())
        .collect();
    assert!(
        weights.windows(2).all(|w| w[0] >= w[1]),
        "heaviest first: {weights:?}"
    );
    assert!(
        last.raw.len() < 8 * 1024,
        "{} bytes: far below any broker's limit",
        last.raw.len()
    );
    assert!(observer.seen.iter().all(|m| m.raw.len() < 8 * 1024));
    assert_eq!(
        connections(&observer),
        (1, 0),
        "one connection, never dropped"
    );
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_commands_and_packets_are_rejected_without_dropping_a_connection() {
    let Setup {
        _broker,
        plc,
        _state,
        text,
        fp,
        mut observer,
        gateway,
    } = setup().await;

    // A retained 20 kB command: rejected, the connection stays.
    let big =
        json!({"device": "pump", "point": "bearing_temp", "by": "x".repeat(20_000)}).to_string();
    observer
        .client
        .publish(
            format!("qis/{SITE}/cmd/ack"),
            rumqttc::QoS::AtLeastOnce,
            true,
            big,
        )
        .await
        .unwrap();
    let rejected = observer
        .wait_for("the rejection", Duration::from_secs(10), |m| {
            m.json["type"] == "command_rejected"
        })
        .await;
    assert!(rejected.json["reason"]
        .as_str()
        .unwrap()
        .contains("more than a command"));

    // A 20 kB packet on the context topic: counted as oversize; the next valid one is taken.
    observer.publish_raw(&fp.topic(), vec![7u8; 20_000]).await;
    observer
        .publish_raw(&fp.topic(), signed_by(3, peer_body(fp, 1)))
        .await;
    let stats = observer
        .wait_for("the intake counts", Duration::from_secs(10), |m| {
            m.topic == format!("qis/{SITE}/stats/intake") && m.json["accepted"] == 1
        })
        .await;
    assert_eq!(stats.json["rejected"]["oversize"], 1, "{}", stats.json);
    assert_eq!(connections(&observer), (1, 0));

    // After a restart the retained command is rejected once more, and that is all.
    stop(gateway).await;
    let gateway = start(&text);
    observer
        .wait_for("online again", Duration::from_secs(10), |m| {
            m.topic == format!("qis/{SITE}/status") && m.json["status"] == "online" && !m.retained
        })
        .await;
    observer
        .wait_for(
            "the retained command rejected again",
            Duration::from_secs(10),
            |m| m.json["type"] == "command_rejected",
        )
        .await;
    let ack = raise_and_clear(
        &mut observer,
        &format!("qis/{SITE}/events"),
        plc.port,
        (90, 20),
        Duration::from_secs(10),
    )
    .await;
    observer
        .publish(
            &format!("qis/{SITE}/cmd/ack"),
            &json!({"alarm_id": ack}).to_string(),
        )
        .await;
    observer
        .wait_for("the acknowledgement", Duration::from_secs(10), |m| {
            m.json["type"] == "alarm" && m.json["from"] == "cleared" && m.json["to"] == "normal"
        })
        .await;
    let rejections = observer
        .seen
        .iter()
        .filter(|m| m.json["type"] == "command_rejected")
        .count();
    assert_eq!(rejections, 2, "once per connection, no loop");
    let offline: Vec<_> = observer
        .seen
        .iter()
        .filter(|m| m.json["status"] == "offline")
        .map(|m| (m.retained, m.json.to_string()))
        .collect();
    assert_eq!(
        connections(&observer).1,
        1,
        "the one clean stop: {offline:?}"
    );
    stop(gateway).await;
}
