//! `qis-edge sim --plants 100` against a real mosquitto: 100 gateway instances, five sources
//! confirming in turn. Which plant must apply which confirmation is worked out here from the
//! configuration files the run leaves, independently of the run's own routing: a plant
//! hears a source when their contexts agree down to the level its rule accepts. Every such
//! plant applied it, no other did, each source sent one packet's worth of bytes (not a
//! fan-out), and a gateway joining afterwards with an empty state holds all five.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

/// A plant's context levels, general to specific, and the level its rule accepts (none for a
/// source).
struct Context {
    levels: [String; 4],
    accepts: Option<usize>,
}

fn context(path: &std::path::Path) -> Context {
    let text = std::fs::read_to_string(path).unwrap();
    let t: toml::Value = toml::from_str(&text).unwrap();
    let device = &t["devices"][0];
    let c = &device["context"];
    let s = |v: &toml::Value| v.as_str().unwrap().to_string();
    let accepts =
        device["points"][0]["alarms"][0]
            .get("adapt")
            .map(|a| match a["match"].as_str().unwrap() {
                "class" => 1,
                "process" => 2,
                "mounting" => 3,
                "full" => 4,
                other => panic!("unknown level {other}"),
            });
    Context {
        levels: [
            s(&c["equipment_class"]),
            s(&c["process"]),
            format!("{} / {}", s(&c["sensor_kind"]), s(&c["mounting"])),
            format!("{:?}", c["attributes"]),
        ],
        accepts,
    }
}

#[test]
fn a_hundred_gateways_each_apply_exactly_the_confirmations_their_level_lets_in() {
    let broker = mosquitto();
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(gateway_binary())
        .args(["sim", "--plants", "100", "--confirmations", "5", "--broker"])
        .arg(format!("127.0.0.1:{}", broker.port))
        .arg("--broker-pid")
        .arg(broker.child.id().to_string())
        .arg("--out")
        .arg(out.path())
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success(), "the scale run failed: {status}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("scale.json")).unwrap())
            .unwrap();
    let state = out.path().join("state");
    let plants: Vec<(String, Context)> = (0..100)
        .map(|i| {
            let site = format!("scale-{i}");
            let c = context(&state.join(&site).join("qis-edge.toml"));
            (site, c)
        })
        .collect();
    let confirmations = report["confirmations"].as_array().unwrap();
    assert_eq!(confirmations.len(), 5);
    let mut hearing_at = [0usize; 5];
    for d in confirmations {
        let source = &plants
            .iter()
            .find(|(site, _)| *site == d["source"])
            .unwrap()
            .1;
        assert!(source.accepts.is_none(), "a source has no adaptable rule");
        let expected: BTreeSet<String> = plants
            .iter()
            .filter(|(_, r)| {
                r.accepts
                    .is_some_and(|depth| r.levels[..depth] == source.levels[..depth])
            })
            .map(|(site, r)| {
                hearing_at[r.accepts.unwrap()] += 1;
                site.clone()
            })
            .collect();
        let reached: BTreeSet<String> = d["reached"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(reached, expected, "{}: who applied it", d["source"]);
        let sent = d["uplink_bytes_sent"].as_u64().unwrap();
        assert!(
            (1..=1024).contains(&sent),
            "{}: {sent} bytes to the fleet broker for one confirmation",
            d["source"]
        );
    }
    for (depth, n) in hearing_at.iter().enumerate().skip(1) {
        assert!(*n > 0, "no plant accepting level {depth} hears a source");
    }
    assert_eq!(report["misrouted"], 0, "{report}");
    assert_eq!(report["joiner_expected"], 5);
    assert_eq!(report["joiner_received"], 5, "{report}");
}
