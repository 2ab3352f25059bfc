//! Knowledge on joining, against a real mosquitto and Modbus server: each gateway keeps its live
//! packets retained on the fleet broker, one topic per source and pattern, so a gateway that
//! subscribes for the first time receives the fleet's current advice at once; a packet that
//! expired is cleared by its source, so a later joiner receives nothing of it.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// Five patterns: one point per unit, so each is its own target (feature, unit, direction).
const UNITS: [&str; 5] = ["°C", "bar", "mm/s", "A", "%"];

/// A pump with five points (holding registers 0–4), one per unit of [`UNITS`], each with a
/// `high` rule at `warning` and 95, then `rule_extra`; `extra` goes before the devices.
fn pump(
    site: &str,
    state: &Path,
    mqtt: u16,
    plc: u16,
    warning: f64,
    rule_extra: &str,
    extra: &str,
) -> String {
    let mut t = format!(
        "[site]\nid = \"{site}\"\nstate_dir = \"{}\"\n[mqtt]\nport = {mqtt}\n{extra}\n\
         [[devices]]\ntype = \"modbus_tcp\"\nname = \"pump\"\nhost = \"127.0.0.1\"\nport = {plc}\n\
         poll_interval_ms = 50\n\n{PUMP_CONTEXT}",
        state.display()
    );
    for (i, unit) in UNITS.iter().enumerate() {
        t.push_str(&format!(
            "[[devices.points]]\nname = \"p{i}\"\nregister = \"holding\"\naddress = {i}\nunit = \"{unit}\"\n\
             [[devices.points.alarms]]\nkind = \"high\"\nwarning = {warning:?}\nalarm = 95.0\n{rule_extra}\n"
        ));
    }
    t
}

fn plc() -> Peer {
    let registers: Vec<Value> = (0..UNITS.len())
        .map(|i| json!({"table": "holding", "address": i, "type": "u16", "value": 50}))
        .collect();
    modbus_server(&json!({ "registers": registers }))
}

const RAILS: &str = "[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\n";

/// Raises a warning on each of the source's five points (90 on every register) and confirms
/// each; returns once the five packets have gone out on the uplink (here the broker itself),
/// as `fleet` saw them.
async fn confirm_five(
    obs: &mut Observer,
    fleet: &mut Observer,
    site: &str,
    plc: u16,
) -> Vec<String> {
    for i in 0..UNITS.len() as u16 {
        write_holding(plc, i, 90).await;
    }
    let events = format!("qis/{site}/events");
    let mut ids = Vec::new();
    while ids.len() < UNITS.len() {
        let m = obs
            .wait_for("the five warnings", Duration::from_secs(20), |m| {
                m.topic == events && m.json["type"] == "alarm" && m.json["to"] == "active"
            })
            .await;
        ids.push(m.json["alarm_id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        obs.publish(
            &format!("qis/{site}/cmd/confirm"),
            &json!({"alarm_id": id, "failure_mode": "bearing_outer_race"}).to_string(),
        )
        .await;
    }
    let mut topics = Vec::new();
    while topics.len() < UNITS.len() {
        let m = fleet
            .wait_for("the five packets", Duration::from_secs(20), |m| {
                !m.raw.is_empty()
            })
            .await;
        assert!(
            !topics.contains(&m.topic),
            "one topic per pattern: {}",
            m.topic
        );
        topics.push(m.topic);
    }
    topics
}

fn public_key(state: &Path) -> String {
    std::fs::read_to_string(state.join("outcome-key.pub"))
        .unwrap()
        .trim()
        .to_string()
}

/// A gateway with an empty state directory, started after another has confirmed five patterns,
/// receives and applies all five on subscribing: nobody publishes anything after it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_joining_later_receives_the_fleets_live_packets_at_once() {
    let broker = mosquitto();
    let (plc_a, plc_b) = (plc(), plc());
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut obs = Observer::connect(broker.port).await;
    let mut fleet = Observer::connect_filter(broker.port, "qis/v2/ctx/#").await;
    let a = start(&pump(
        "lyon",
        state_a.path(),
        broker.port,
        plc_a.port,
        65.0,
        "",
        "",
    ));
    obs.wait_uplink_subscribed("lyon").await;
    let topics = confirm_five(&mut obs, &mut fleet, "lyon", plc_a.port).await;
    let source = public_key(state_a.path());
    for t in &topics {
        assert!(t.contains(&source), "{t} names its source");
    }

    let b = start(&pump(
        "gent",
        state_b.path(),
        broker.port,
        plc_b.port,
        80.0,
        RAILS,
        "",
    ));
    for i in 0..UNITS.len() {
        let topic = format!("qis/gent/thresholds/pump/p{i}/high");
        let moved = obs
            .saw_or_wait_for("a joiner's adapted level", Duration::from_secs(20), |m| {
                m.topic == topic && m.json["value"].as_f64().is_some_and(|v| v < 80.0)
            })
            .await;
        // The five confirmations count on one ledger entry (the same context and pattern
        // kind), so the n-th packet carries n validations: weight = trust 0.5 × confidence
        // (v + 1) / (v + 2) × v / (v + 1).
        let p = &moved.json["provenance"][0];
        assert_eq!(p["source"], source.as_str());
        let v = p["validations"].as_f64().unwrap();
        let weight = 0.5 * (v + 1.0) / (v + 2.0) * v / (v + 1.0);
        let want = (80.0 + weight * 65.0) / (1.0 + weight);
        let value = moved.json["value"].as_f64().unwrap();
        assert!(
            (value - want).abs() < 1e-4,
            "p{i}: {value}, expected {want} (v = {v})"
        );
    }
    let stats = obs
        .latest_or_wait_for(
            "the joiner's intake",
            Duration::from_secs(10),
            "qis/gent/stats/intake",
            |m| m.json["applied"] == 5,
        )
        .await;
    assert_eq!(stats.json["accepted"], 5, "{}", stats.json);
    stop(b).await;
    stop(a).await;
}

/// Packets that expired are cleared by their source (an empty retained message on each topic),
/// so a gateway joining afterwards receives none of them; a packet published after it joined
/// still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_joining_after_expiry_receives_none() {
    let broker = mosquitto();
    let (plc_a, plc_c) = (plc(), plc());
    let (state_a, state_c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut obs = Observer::connect(broker.port).await;
    let mut fleet = Observer::connect_filter(broker.port, "qis/v2/ctx/#").await;
    // Packets live two seconds.
    let short = "[outcomes]\nttl_days = 0.0000231\n";
    let a = start(&pump(
        "lyon",
        state_a.path(),
        broker.port,
        plc_a.port,
        65.0,
        "",
        short,
    ));
    obs.wait_uplink_subscribed("lyon").await;
    let mut topics = confirm_five(&mut obs, &mut fleet, "lyon", plc_a.port).await;
    while !topics.is_empty() {
        let m = fleet
            .wait_for("the five clears", Duration::from_secs(30), |m| {
                m.raw.is_empty()
            })
            .await;
        topics.retain(|t| *t != m.topic);
    }

    let c = start(&pump(
        "gent",
        state_c.path(),
        broker.port,
        plc_c.port,
        80.0,
        RAILS,
        "",
    ));
    obs.wait_uplink_subscribed("gent").await;
    // Published after the joiner subscribed, so it arrives after anything retained.
    let (topic, packet) = marker(31);
    fleet.publish_raw(&topic, packet).await;
    let seen = obs
        .wait_for("the marker at the joiner", Duration::from_secs(20), |m| {
            m.topic == "qis/gent/events" && m.json["type"] == "peer_outcome"
        })
        .await;
    let source = public_key(state_a.path());
    assert_ne!(
        seen.json["source"],
        source.as_str(),
        "an expired packet reached the joiner"
    );
    let stats = obs
        .latest_or_wait_for(
            "the joiner's intake",
            Duration::from_secs(10),
            "qis/gent/stats/intake",
            |m| m.json["accepted"] == 1,
        )
        .await;
    assert_eq!(stats.json["rejected"]["expired"], 0, "{}", stats.json);
    stop(c).await;
    stop(a).await;
}

/// A packet of the pump's context from the peer of key seed `seed`, as (topic, bytes): published
/// after a joiner subscribed, it arrives after anything the broker sends on subscribing.
fn marker(seed: u8) -> (String, Vec<u8>) {
    let context = qis_edge::config::parse_str(
        &pump("x", Path::new("/nonexistent"), 1883, 502, 80.0, "", ""),
        "t",
    )
    .unwrap()
    .devices[0]
        .context()
        .unwrap()
        .address()
        .unwrap();
    let marker = qis_edge::packet::PacketBody {
        levels: qis_edge::packet::Levels::Known(context.general),
        ..peer_body(context.full, 1)
    };
    (topic_of(seed, &marker), signed_by(seed, marker))
}

/// RabbitMQ's MQTT plugin does not deliver retained messages to wildcard subscriptions: a
/// joiner on another node of the cluster receives none of the five live packets (the marker
/// published after it subscribed arrives alone). With `[outcomes] join_requests` it asks, the
/// source answers with its live packets, and the joiner applies all five.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_rabbitmq_a_joiner_asks_for_the_live_packets_and_applies_them() {
    let cluster = tokio::task::block_in_place(|| RabbitCluster::start(2));
    let nodes = cluster.mqtt_ports();
    let broker = mosquitto();
    let (plc_a, plc_b) = (plc(), plc());
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut obs = Observer::connect(broker.port).await;
    let mut fleet = Observer::connect_filter(nodes[0], "qis/v2/ctx/#").await;
    let uplink = |node: u16, join: bool| {
        format!("[uplink]\nport = {node}\n[outcomes]\njoin_requests = {join}\n")
    };
    let a = start(&pump(
        "lyon",
        state_a.path(),
        broker.port,
        plc_a.port,
        65.0,
        "",
        &uplink(nodes[0], true),
    ));
    obs.wait_uplink_subscribed("lyon").await;
    confirm_five(&mut obs, &mut fleet, "lyon", plc_a.port).await;

    let joiner = |join: bool| {
        start(&pump(
            "gent",
            state_b.path(),
            broker.port,
            plc_b.port,
            80.0,
            RAILS,
            &uplink(nodes[1], join),
        ))
    };
    let b = joiner(false);
    obs.wait_uplink_subscribed("gent").await;
    let (topic, packet) = marker(31);
    Observer::connect(nodes[1])
        .await
        .publish_raw(&topic, packet)
        .await;
    let stats = obs
        .wait_for("the marker at the joiner", Duration::from_secs(20), |m| {
            m.topic == "qis/gent/stats/intake" && m.json["accepted"].as_u64() >= Some(1)
        })
        .await;
    assert_eq!(stats.json["accepted"], 1, "only the marker: {}", stats.json);
    stop(b).await;

    let b = joiner(true);
    let stats = obs
        .wait_for(
            "the answered packets at the joiner",
            Duration::from_secs(20),
            |m| m.topic == "qis/gent/stats/intake" && m.json["applied"].as_u64() >= Some(6),
        )
        .await;
    assert_eq!(
        stats.json["accepted"], 5,
        "the five, counted since this start: {}",
        stats.json
    );
    assert_eq!(
        stats.json["applied"], 6,
        "the marker and the five: {}",
        stats.json
    );
    stop(b).await;
    stop(a).await;
}
