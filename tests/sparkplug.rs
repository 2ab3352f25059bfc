//! The gateway as a Sparkplug B 3.0 edge node, against a real mosquitto and pymodbus server,
//! seen by a primary host built on pysparkplug and decoded a second time by Eclipse Tahu's
//! JavaScript decoder (npm `sparkplug-payload`): the birth order, aliases, datatypes and values
//! equal to the registers; `seq` continuous over 300 messages with a wrap; the NDEATH will
//! with the bdSeq of its birth when the gateway is SIGKILLed, and the next bdSeq on restart;
//! DDEATH and DBIRTH as the PLC goes and returns; rebirth on NCMD; waiting for the primary
//! host's STATE; an ack by DCMD reaching the alarm; garbage and wrong commands refused.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SITE: &str = "line7";
const GROUP: &str = "plant";

fn config(state: &Path, mqtt: u16, plc: u16, sparkplug: &str) -> String {
    Plant::new(SITE, state, mqtt, plc)
        .poll_ms(20)
        .adapt("[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\n")
        .extra(&format!(
            "[sparkplug]\nenabled = true\ngroup_id = \"{GROUP}\"\n{sparkplug}\n"
        ))
        .then(
            "[[devices.points]]\nname = \"pressure\"\nregister = \"holding\"\naddress = 1\n\
             data_type = \"i16\"\nunit = \"bar\"\n\n\
             [[devices.points]]\nname = \"flow\"\nregister = \"holding\"\naddress = 2\n\
             data_type = \"f32\"\nbyte_order = \"ABCD\"\nunit = \"m3/h\"\n",
        )
        .toml()
}

fn plc_spec() -> Value {
    json!({"registers": [
        {"table": "holding", "address": 0, "type": "u16", "value": 20},
        {"table": "holding", "address": 1, "type": "i16", "value": -5},
        {"table": "holding", "address": 2, "type": "f32", "value": 12.5, "order": "ABCD"}
    ]})
}

/// The gateway binary; SIGKILLed when dropped.
struct Process(Child);

impl Process {
    fn start(config: &str, dir: &Path) -> Self {
        let path = dir.join("qis-edge.toml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
        Self(
            Command::new(gateway_binary())
                .args(["run", "--config"])
                .arg(&path)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap(),
        )
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every DBIRTH metric has a name, a datatype and an alias unique across the node (the
/// NBIRTH's included); both decoders read the same names, aliases, datatypes and values.
fn check_birth(nbirth: &Value, dbirth: &Value, tahu: &mut TahuDecoder) {
    let mut aliases = std::collections::HashSet::new();
    for m in nbirth["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .chain(dbirth["metrics"].as_array().unwrap())
    {
        assert!(
            m["name"].is_string() && m["datatype"].as_u64() > Some(0),
            "{m}"
        );
        assert!(
            aliases.insert(m["alias"].as_u64().unwrap()),
            "alias twice: {m}"
        );
    }
    for message in [nbirth, dbirth] {
        let other = tahu.decode(message["hex"].as_str().unwrap());
        assert_eq!(other["seq"], message["seq"], "{other}");
        let theirs = other["metrics"].as_array().unwrap();
        for (m, t) in message["metrics"].as_array().unwrap().iter().zip(theirs) {
            assert_eq!(t["name"], m["name"]);
            assert_eq!(t["alias"], m["alias"]);
            if !m["is_null"].as_bool().unwrap_or(false) && m["value"].is_number() {
                let (a, b) = (m["value"].as_f64().unwrap(), t["value"].as_f64().unwrap());
                assert!((a - b).abs() < 1e-9, "{m} against {t}");
            } else if !m["is_null"].as_bool().unwrap_or(false) {
                assert_eq!(t["value"], m["value"], "{m} against {t}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn births_data_deaths_and_commands_as_a_sparkplug_host_sees_them() {
    let broker = mosquitto();
    let plc = modbus_server(&plc_spec());
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), broker.port, plc.port, "");
    let mut host = SparkplugHost::start(broker.port, GROUP, None).await;
    let mut tahu = TahuDecoder::start();
    let mut observer = Observer::connect(broker.port).await;
    let mut gateway = Process::start(&text, dir.path());

    // Birth: NBIRTH (seq 0, bdSeq 0, rebirth false), then the pump's DBIRTH with the registers.
    let nbirth = host.wait_kind("NBIRTH", None).await;
    assert_eq!(nbirth["seq"], 0);
    assert_eq!(metric(&nbirth, "bdSeq")["value"], 0);
    assert_eq!(metric(&nbirth, "Node Control/Rebirth")["value"], false);
    assert!(metric(&nbirth, "Gateway/Local Broker")["value"].is_boolean());
    assert_eq!(metric(&nbirth, "Gateway/Peer Packets Applied")["value"], 0);
    let dbirth = host.wait_kind("DBIRTH", Some("pump")).await;
    // seq runs on from the NBIRTH's 0 (an NDATA of a node metric that changed meanwhile may
    // come before the DBIRTH).
    let born: Vec<u64> = host
        .seen
        .iter()
        .skip_while(|v| v["type"] != "NBIRTH")
        .filter_map(|v| v["seq"].as_u64())
        .collect();
    for w in born.windows(2) {
        assert_eq!(w[1], (w[0] + 1) % 256, "seq from the NBIRTH: {born:?}");
    }
    let temp = metric(&dbirth, "bearing_temp");
    assert_eq!(temp["datatype"], 6, "UInt16");
    assert_eq!(temp["value"], 20);
    assert_eq!(temp["properties"]["Quality"], 192);
    assert_eq!(temp["properties"]["engUnit"], "°C");
    let pressure = metric(&dbirth, "pressure");
    assert_eq!(pressure["datatype"], 2, "Int16");
    assert_eq!(pressure["value"], -5);
    let flow = metric(&dbirth, "flow");
    assert_eq!(flow["datatype"], 9, "Float");
    assert_eq!(flow["value"], 12.5);
    assert_eq!(
        metric(&dbirth, "bearing_temp/Alarms/high/State")["value"],
        "normal"
    );
    let level = metric(&dbirth, "bearing_temp/Alarms/high/Level");
    assert_eq!(level["value"], 80.0);
    assert_eq!(level["properties"]["floor"], 60.0);
    assert_eq!(metric(&dbirth, "Device Health/Link")["value"], true);
    check_birth(&nbirth, &dbirth, &mut tahu);

    // Data by exception, aliases only: each new register value is one DDATA; seq runs on
    // past 255 to 0 without a gap over every message after the birth.
    let from = host.seen.len();
    for i in 0..300u16 {
        let value = 21 + i % 50;
        write_holding(plc.port, 0, value).await;
        host.wait_for("the new value in DDATA", Duration::from_secs(20), |v| {
            v["type"] == "DDATA"
                && v["metrics"].as_array().is_some_and(|m| {
                    m.iter()
                        .any(|m| m["name"] == "bearing_temp" && m["value"] == value)
                })
        })
        .await;
    }
    let mut last = dbirth["seq"].as_u64().unwrap();
    let mut wrapped = false;
    for m in &host.seen[from..] {
        if m["type"] != "DDATA" && m["type"] != "NDATA" {
            continue;
        }
        let seq = m["seq"].as_u64().unwrap();
        assert_eq!(seq, (last + 1) % 256, "seq after {last}: {m}");
        wrapped |= seq == 0;
        last = seq;
        let raw = tahu.decode(m["hex"].as_str().unwrap());
        assert_eq!(raw["seq"], m["seq"], "{raw}");
        for x in raw["metrics"].as_array().unwrap() {
            assert!(
                x["alias"].is_number() && x.get("name").is_none_or(Value::is_null),
                "DDATA by alias only: {raw}"
            );
        }
    }
    assert!(wrapped, "seq wrapped past 255");

    // The value moves: DDATA with it and the rule's state; an ack by DCMD reaches the alarm
    // and the retained local alert.
    write_holding(plc.port, 0, 90).await;
    host.wait_for("the alarm in DDATA", Duration::from_secs(20), |v| {
        v["type"] == "DDATA"
            && v["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == "bearing_temp/Alarms/high/State" && m["value"] == "active")
    })
    .await;
    host.send(json!({"cmd": "dcmd", "edge": SITE, "device": "pump",
        "metrics": [{"name": "bearing_temp/Alarms/high/Ack", "datatype": "BOOLEAN", "value": true}]}));
    observer
        .wait_for("the acknowledged alert", Duration::from_secs(20), |m| {
            m.topic == format!("qis/{SITE}/alerts/pump/bearing_temp")
                && m.json["rules"][0]["state"] == "acknowledged"
        })
        .await;

    // A peer's packet applied here: NDATA of the node's count.
    let fp = qis_edge::config::parse_str(&text, "t").unwrap().devices[0]
        .context()
        .unwrap()
        .fingerprint()
        .unwrap();
    observer
        .publish_raw(&fp.topic(), signed_by(7, peer_body(fp, 1)))
        .await;
    host.wait_for(
        "NDATA of the applied packet",
        Duration::from_secs(20),
        |v| {
            v["type"] == "NDATA"
                && v["metrics"].as_array().is_some_and(|m| {
                    m.iter()
                        .any(|m| m["name"] == "Gateway/Peer Packets Applied" && m["value"] == 1)
                })
        },
    )
    .await;

    // Garbage and wrong commands are refused; the node goes on (a rebirth still works).
    for (topic, hex) in [
        (
            format!("spBv1.0/{GROUP}/NCMD/{SITE}"),
            "ffffffff".to_string(),
        ),
        (
            format!("spBv1.0/{GROUP}/DCMD/{SITE}/pump"),
            "0a0b0c".to_string(),
        ),
        (format!("spBv1.0/{GROUP}/DCMD/{SITE}/nosuch"), String::new()),
    ] {
        host.send(json!({"cmd": "raw", "topic": topic, "hex": hex}));
    }
    host.send(json!({"cmd": "dcmd", "edge": SITE, "device": "pump",
        "metrics": [{"name": "bearing_temp", "datatype": "UINT16", "value": 5},
                    {"name": "bearing_temp/Alarms/high/Ack", "datatype": "STRING", "value": "yes"}]}));
    host.send(json!({"cmd": "rebirth", "edge": SITE}));
    let again = host.wait_kind("NBIRTH", None).await;
    assert_eq!(again["seq"], 0);
    assert_eq!(metric(&again, "bdSeq")["value"], 0, "the same connection");
    host.wait_kind("DBIRTH", Some("pump")).await;
    let log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap();
    assert!(
        log.matches("Sparkplug command refused").count() >= 5,
        "{log}"
    );

    // The PLC goes away: DDEATH; it returns: DBIRTH.
    let plc_port = plc.port;
    drop(plc);
    let ddeath = host.wait_kind("DDEATH", Some("pump")).await;
    let other = tahu.decode(ddeath["hex"].as_str().unwrap());
    assert_eq!(other["seq"], ddeath["seq"], "{other}");
    let plc = modbus_server_on(plc_port, &plc_spec());
    let reborn = host.wait_kind("DBIRTH", Some("pump")).await;
    assert_eq!(metric(&reborn, "bearing_temp")["value"], 20);

    // SIGKILL: the broker sends the will, NDEATH with this connection's bdSeq; the restarted
    // gateway births with the next.
    gateway.kill();
    let death = host.wait_kind("NDEATH", None).await;
    assert_eq!(metric(&death, "bdSeq")["value"], 0);
    let other = tahu.decode(death["hex"].as_str().unwrap());
    assert_eq!(other["metrics"][0]["name"], "bdSeq", "{other}");
    assert_eq!(other["metrics"][0]["value"], 0, "{other}");
    let _gateway = Process::start(&text, dir.path());
    let next = host.wait_kind("NBIRTH", None).await;
    assert_eq!(metric(&next, "bdSeq")["value"], 1);
    drop(plc);
}

/// With `primary_host_id`, nothing is born until the host's STATE says online; when the host
/// goes offline and comes back, the node births again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_node_waits_for_its_primary_host() {
    let broker = mosquitto();
    let plc = modbus_server(&plc_spec());
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        dir.path(),
        broker.port,
        plc.port,
        "primary_host_id = \"scada\"\n",
    );
    let mut host = SparkplugHost::start(broker.port, GROUP, Some("scada")).await;
    let mut observer = Observer::connect(broker.port).await;
    let _gateway = Process::start(&text, dir.path());
    // The gateway runs (its pump is polled) but births nothing while the host is silent.
    observer
        .wait_for("a poll", Duration::from_secs(20), |m| {
            m.topic == format!("qis/{SITE}/stats/pump") && m.json["polls"].as_u64() > Some(3)
        })
        .await;
    host.send(json!({"cmd": "state", "online": true}));
    host.wait_for("the STATE echo", Duration::from_secs(20), |v| {
        v["done"] == "state"
    })
    .await;
    let first = host.wait_kind("NBIRTH", None).await;
    assert!(
        !host
            .seen
            .iter()
            .take_while(|v| *v != &first)
            .any(|v| v["type"] == "DDATA" || v["type"] == "DBIRTH"),
        "nothing before the NBIRTH"
    );
    host.wait_kind("DBIRTH", Some("pump")).await;
    host.send(json!({"cmd": "state", "online": false}));
    host.send(json!({"cmd": "state", "online": true}));
    let again = host.wait_kind("NBIRTH", None).await;
    assert_eq!(again["seq"], 0);
}
