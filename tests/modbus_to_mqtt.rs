//! The gateway, in-process, against a real Modbus server (pymodbus) and a real broker
//! (mosquitto): decoding, alarms, acknowledgement, device failure and recovery.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

fn header(site: &str, mqtt_port: u16) -> String {
    let state = std::env::temp_dir().join(format!("qis-edge-test-{site}-{}", std::process::id()));
    format!(
        "[site]\nid = \"{site}\"\nstate_dir = \"{}\"\n\n[mqtt]\nport = {mqtt_port}\nkeep_alive_s = 5\n\n[metrics]\nmin_interval_ms = 0\nmax_interval_ms = 0\n\n",
        state.display()
    )
}

/// (point name, register kind, address, data type, byte order, preset engineering value)
const TYPED_POINTS: &[(&str, &str, u16, &str, &str, f64)] = &[
    ("u16", "holding", 0, "u16", "ABCD", 54321.0),
    ("i16_neg", "holding", 1, "i16", "ABCD", -1234.0),
    ("i16_neg_badc", "holding", 2, "i16", "BADC", -2.0),
    ("u32_abcd", "holding", 10, "u32", "ABCD", 4_000_000_000.0),
    ("u32_cdab", "holding", 12, "u32", "CDAB", 70_000.0),
    ("i32_abcd", "holding", 14, "i32", "ABCD", -100_000.0),
    ("i32_cdab", "holding", 16, "i32", "CDAB", -7.0),
    ("i32_badc", "holding", 18, "i32", "BADC", -65_536.0),
    ("i32_dcba", "holding", 20, "i32", "DCBA", 123_456_789.0),
    ("f32_abcd", "holding", 30, "f32", "ABCD", -123.456),
    ("f32_cdab", "holding", 32, "f32", "CDAB", 85.3),
    ("f32_badc", "holding", 34, "f32", "BADC", 0.001),
    ("f32_dcba", "holding", 36, "f32", "DCBA", 1.5e6),
    ("in_i16", "input", 5, "i16", "ABCD", -300.0),
    ("in_f32_cdab", "input", 6, "f32", "CDAB", 21.75),
    (
        "u64_abcd",
        "holding",
        50,
        "u64",
        "ABCD",
        9_007_199_254_740_993.0,
    ),
    (
        "i64_cdab",
        "holding",
        54,
        "i64",
        "CDAB",
        -1_234_567_890_123.0,
    ),
    ("i64_badc", "holding", 58, "i64", "BADC", -5.0),
    (
        "f64_abcd",
        "holding",
        62,
        "f64",
        "ABCD",
        2.718281828459045e3,
    ),
    ("f64_cdab", "holding", 66, "f64", "CDAB", -2.5e-7),
    ("f64_badc", "holding", 70, "f64", "BADC", 1.0e12),
    ("f64_dcba", "holding", 74, "f64", "DCBA", -0.1),
    ("u64_dcba", "holding", 78, "u64", "DCBA", 4_294_967_296.0),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_data_type_and_byte_order_decodes_to_the_preset_value() {
    let broker = mosquitto();
    let mut registers: Vec<Value> = TYPED_POINTS
        .iter()
        .map(|(_, table, address, ty, order, value)| {
            json!({"table": table, "address": address, "type": ty, "order": order, "value": value})
        })
        .collect();
    // Raw 2500 scaled by 0.1 with offset -40: an engineering value of 210.
    registers.push(json!({"table": "holding", "address": 40, "type": "u16", "value": 2500}));
    // Status word 0b1010_0000_0000_0100: bits 2, 13 and 15 set.
    registers.push(json!({"table": "holding", "address": 41, "type": "u16", "value": 0xA004}));
    registers.push(json!({"table": "holding", "address": 90, "type": "string", "length": 5, "value": "PRESS-7"}));
    registers.push(json!({"table": "holding", "address": 96, "type": "string", "length": 3, "order": "BADC", "value": "AB12"}));
    let plc = modbus_server(&json!({
        "registers": registers,
        "coils": {"3": true},
        "discrete_inputs": {"4": true},
    }));

    let mut text = header("decode", broker.port);
    text += &format!(
        "[[devices]]\ntype = \"modbus_tcp\"\nname = \"plc\"\nhost = \"127.0.0.1\"\nport = {}\npoll_interval_ms = 200\ntimeout_ms = 1000\n\n",
        plc.port
    );
    for (name, table, address, ty, order, _) in TYPED_POINTS {
        text += &format!(
            "[[devices.points]]\nname = \"{name}\"\nregister = \"{table}\"\naddress = {address}\ndata_type = \"{ty}\"\nbyte_order = \"{order}\"\n\n"
        );
    }
    text += "[[devices.points]]\nname = \"scaled\"\nregister = \"holding\"\naddress = 40\nscale = 0.1\noffset = -40.0\nunit = \"°C\"\n\n";
    text += "[[devices.points]]\nname = \"coil\"\nregister = \"coil\"\naddress = 3\n\n";
    text +=
        "[[devices.points]]\nname = \"discrete\"\nregister = \"discrete_input\"\naddress = 4\n\n";
    text += "[[devices.points]]\nname = \"missing\"\nregister = \"holding\"\naddress = 500\n\n";
    for (name, bit) in [("bit2", 2), ("bit3", 3), ("bit15", 15)] {
        text += &format!("[[devices.points]]\nname = \"{name}\"\nregister = \"holding\"\naddress = 41\ndata_type = \"bit\"\nbit = {bit}\n\n");
    }
    text += "[[devices.points]]\nname = \"model\"\nregister = \"holding\"\naddress = 90\ndata_type = \"string\"\nlength = 5\n\n";
    text += "[[devices.points]]\nname = \"serial\"\nregister = \"holding\"\naddress = 96\ndata_type = \"string\"\nlength = 3\nbyte_order = \"BADC\"\n\n";

    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);

    let mut expected: HashMap<String, f64> = TYPED_POINTS
        .iter()
        .map(|(name, _, _, _, _, v)| (name.to_string(), *v))
        .collect();
    expected.insert("scaled".into(), 210.0);
    expected.insert("coil".into(), 1.0);
    expected.insert("discrete".into(), 1.0);
    expected.insert("bit2".into(), 1.0);
    expected.insert("bit3".into(), 0.0);
    expected.insert("bit15".into(), 1.0);
    let texts: HashMap<&str, &str> = HashMap::from([("model", "PRESS-7"), ("serial", "AB12")]);

    let mut got: HashMap<String, Value> = HashMap::new();
    let mut missing: Option<Value> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.len() < expected.len() + texts.len() || missing.is_none() {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = observer
            .wait_for("metrics of every point", remaining, |m| {
                m.topic.starts_with("qis/decode/metrics/plc/")
            })
            .await;
        let point = m.topic.rsplit('/').next().unwrap_or_default().to_string();
        if point == "missing" {
            missing = Some(m.json);
        } else if m.json["quality"] == "good" {
            got.insert(point, m.json);
        }
    }
    for (name, value) in &expected {
        let v = got[name]["value"].as_f64().expect("numeric value");
        assert_eq!(v, *value, "point {name}: decoded {v}, preset {value}");
    }
    for (name, text) in &texts {
        assert_eq!(got[*name]["text"], *text, "string point {name}");
    }
    assert!((got["scaled"]["value"].as_f64().unwrap() - 210.0).abs() < 1e-9);
    assert_eq!(got["scaled"]["unit"], "°C");

    // The exception marks only that point bad; the link stays up and the others stay good.
    let missing = missing.expect("metric for the missing register");
    assert_eq!(missing["quality"], "bad");
    let error = missing["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("exception 2") && error.contains("illegal data address"),
        "{error}"
    );
    let later = observer.collect(Duration::from_millis(800)).await;
    assert!(
        !later
            .iter()
            .chain(observer.seen.iter())
            .any(|m| m.json["type"] == "device" && m.json["link"] == "down"),
        "an exception must not drop the link"
    );
    assert!(later
        .iter()
        .any(|m| m.topic.ends_with("/plc/f32_cdab") && m.json["quality"] == "good"));
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_raises_after_its_on_delay_is_acknowledged_by_command_and_clears_past_its_deadband(
) {
    let broker = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 50}]}),
    );
    let text = header("line1", broker.port)
        + &format!(
            "[[devices]]\ntype = \"modbus_tcp\"\nname = \"press\"\nhost = \"127.0.0.1\"\nport = {}\npoll_interval_ms = 100\n\n\
             [[devices.points]]\nname = \"temp\"\nregister = \"holding\"\naddress = 0\nunit = \"°C\"\n\n\
             [[devices.points.alarms]]\nkind = \"high\"\nwarning = 80.0\nalarm = 100.0\ndeadband = 10.0\non_delay_ms = 1500\n",
            plc.port
        );
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    let alert_topic = "qis/line1/alerts/press/temp";

    observer
        .wait_for("initial normal alert", Duration::from_secs(10), |m| {
            m.topic == alert_topic && m.json["state"] == "normal" && m.json["quality"] == "good"
        })
        .await;

    write_holding(plc.port, 0, 120).await;
    let raised = observer
        .wait_for("the raise event", Duration::from_secs(10), |m| {
            m.topic == "qis/line1/events" && m.json["to"] == "active"
        })
        .await;
    assert_eq!(
        raised.json["severity"], "alarm",
        "120 is past both levels: {}",
        raised.json
    );
    assert_eq!(raised.json["threshold"], 100.0);
    assert_eq!(raised.json["value"], 120.0);
    assert_eq!(raised.json["alarm_id"], "press/temp/high/1");
    let since = humantime::parse_rfc3339(raised.json["condition_since"].as_str().unwrap()).unwrap();
    let at = humantime::parse_rfc3339(raised.json["ts"].as_str().unwrap()).unwrap();
    let held = at.duration_since(since).unwrap();
    assert!(
        held >= Duration::from_millis(1500),
        "raised after the condition held only {held:?}"
    );
    assert!(
        !observer.seen.iter().any(|m| m.topic == "qis/line1/events"
            && m.json["to"] == "active"
            && m.json["severity"] == "warning"),
        "the on-delay applies to the warning level too: 120 jumps straight to alarm"
    );
    observer
        .wait_for("the active alert", Duration::from_secs(5), |m| {
            m.topic == alert_topic && m.json["state"] == "active" && m.json["acknowledged"] == false
        })
        .await;

    // A malformed command is rejected, with a reason, on the events topic.
    observer
        .publish("qis/line1/cmd/ack", "{\"device\": \"press\"}")
        .await;
    let rejected = observer
        .wait_for("command_rejected", Duration::from_secs(5), |m| {
            m.json["type"] == "command_rejected"
        })
        .await;
    assert!(rejected.json["reason"].as_str().unwrap().contains("point"));

    observer
        .publish(
            "qis/line1/cmd/ack",
            r#"{"alarm_id": "press/temp/high/1", "by": "j.doe"}"#,
        )
        .await;
    let acked = observer
        .wait_for("the acknowledgement event", Duration::from_secs(5), |m| {
            m.topic == "qis/line1/events" && m.json["to"] == "acknowledged"
        })
        .await;
    assert_eq!(acked.json["by"], "j.doe");
    observer
        .wait_for("the acknowledged alert", Duration::from_secs(5), |m| {
            m.topic == alert_topic
                && m.json["state"] == "acknowledged"
                && m.json["acknowledged"] == true
        })
        .await;

    // 95 is below the alarm level but inside its 10-unit deadband: the alarm holds.
    write_holding(plc.port, 0, 95).await;
    let meanwhile = observer.collect(Duration::from_millis(1500)).await;
    assert!(
        meanwhile
            .iter()
            .any(|m| m.topic == "qis/line1/metrics/press/temp" && m.json["value"] == 95.0),
        "the gateway read the new value"
    );
    assert!(
        !meanwhile.iter().any(|m| m.topic == "qis/line1/events"),
        "nothing changes inside the deadband: {meanwhile:?}"
    );

    // 75 is past the alarm level's deadband (below 90) but inside the warning level's (above
    // 70): the alarm drops to a warning and stays acknowledged. 60 clears it.
    write_holding(plc.port, 0, 75).await;
    let lowered = observer
        .wait_for("de-escalation to warning", Duration::from_secs(5), |m| {
            m.topic == "qis/line1/events"
        })
        .await;
    assert_eq!(lowered.json["severity"], "warning", "{}", lowered.json);
    assert_eq!(lowered.json["to"], "acknowledged");
    write_holding(plc.port, 0, 60).await;
    let cleared = observer
        .wait_for("the clear event", Duration::from_secs(5), |m| {
            m.topic == "qis/line1/events" && m.json["to"] == "cleared"
        })
        .await;
    assert_eq!(cleared.json["value"], 60.0);

    // A newcomer (a dashboard opened later) gets the retained state.
    let mut late = Observer::connect_filter(broker.port, alert_topic).await;
    let retained = late
        .wait_for("the retained alert", Duration::from_secs(5), |m| {
            m.topic == alert_topic
        })
        .await;
    assert!(retained.retained);
    assert_eq!(retained.json["state"], "cleared");
    assert_eq!(retained.json["acknowledged"], true);
    assert_eq!(retained.json["site"], "line1");
    assert_eq!(retained.json["rules"][0]["rule"], "high");
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_modbus_server_marks_its_points_bad_and_recovers_while_other_devices_keep_their_cadence(
) {
    let broker = mosquitto();
    let spec =
        json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 7}]});
    let mut flaky = modbus_server(&spec);
    let healthy = modbus_server(&spec);
    // A device that accepts connections and never answers: every request times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let mut text = header("cadence", broker.port);
    for (name, port) in [
        ("flaky", flaky.port),
        ("healthy", healthy.port),
        ("healthy2", healthy.port),
        ("healthy3", healthy.port),
        ("silent", silent_port),
    ] {
        text += &format!(
            "[[devices]]\ntype = \"modbus_tcp\"\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\npoll_interval_ms = 200\ntimeout_ms = 700\nbackoff_initial_ms = 200\nbackoff_max_ms = 1000\n\n\
             [[devices.points]]\nname = \"v\"\nregister = \"holding\"\naddress = 0\n\n"
        );
    }
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    observer
        .wait_for("flaky good", Duration::from_secs(10), |m| {
            m.topic == "qis/cadence/metrics/flaky/v" && m.json["quality"] == "good"
        })
        .await;
    observer
        .wait_for("silent bad", Duration::from_secs(10), |m| {
            m.topic == "qis/cadence/metrics/silent/v" && m.json["quality"] == "bad"
        })
        .await;

    flaky.kill();
    let bad = observer
        .wait_for("flaky bad", Duration::from_secs(10), |m| {
            m.topic == "qis/cadence/metrics/flaky/v" && m.json["quality"] == "bad"
        })
        .await;
    assert_eq!(
        bad.json["value"], 7.0,
        "a bad point keeps its last good value"
    );
    observer
        .saw_or_wait_for("link down event", Duration::from_secs(5), |m| {
            m.json["type"] == "device" && m.json["device"] == "flaky" && m.json["link"] == "down"
        })
        .await;

    // While one device is dead and another times out on every request, the healthy ones are
    // read on their own cadence. Judged as ratios of their own intervals, not against the wall
    // clock, so a loaded machine cannot fail it: a shared poll loop would add the silent
    // device's 700 ms timeout to every 200 ms period (a worst gap ≥ 4.5× the median), and a
    // dead device delaying its neighbours would make their mean intervals part.
    let window = observer.collect(Duration::from_secs(3)).await;
    let intervals = |device: &str| -> Vec<f64> {
        let topic = format!("qis/cadence/metrics/{device}/v");
        let mut stamps: Vec<std::time::SystemTime> = window
            .iter()
            .filter(|m| m.topic == topic && m.json["quality"] == "good")
            .map(|m| humantime::parse_rfc3339(m.json["ts"].as_str().unwrap()).unwrap())
            .collect();
        stamps.sort();
        stamps
            .windows(2)
            .map(|w| w[1].duration_since(w[0]).unwrap_or_default().as_secs_f64())
            .collect()
    };
    let healthy = intervals("healthy");
    assert!(
        healthy.len() >= 11,
        "only {} healthy readings in 3 s at 200 ms",
        healthy.len() + 1
    );
    let mut sorted = healthy.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let worst = sorted[sorted.len() - 1];
    assert!(
        worst < 2.25 * median,
        "healthy device stalled: worst interval {worst:.3} s against a median of {median:.3} s"
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let reference = mean(&healthy);
    for device in ["healthy2", "healthy3"] {
        let m = mean(&intervals(device));
        assert!(
            (m / reference - 1.0).abs() <= 0.05,
            "{device}: mean poll interval {m:.4} s, healthy's {reference:.4} s (same 200 ms cadence)"
        );
    }
    let _flaky_again = modbus_server_on(flaky.port, &spec);
    observer
        .wait_for("flaky good again", Duration::from_secs(10), |m| {
            m.topic == "qis/cadence/metrics/flaky/v" && m.json["quality"] == "good"
        })
        .await;
    observer
        .saw_or_wait_for("link up event", Duration::from_secs(5), |m| {
            m.json["type"] == "device" && m.json["device"] == "flaky" && m.json["link"] == "up"
        })
        .await;
    drop(silent);
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_and_alarms_go_on_while_the_broker_is_away_and_state_is_republished_on_return() {
    let mut broker = mosquitto();
    let port = broker.port;
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 10}]}),
    );
    let text = header("outage", port)
        + &format!(
            "[[devices]]\ntype = \"modbus_tcp\"\nname = \"plc\"\nhost = \"127.0.0.1\"\nport = {}\npoll_interval_ms = 100\n\n\
             [[devices.points]]\nname = \"level\"\nregister = \"holding\"\naddress = 0\n\n\
             [[devices.points.alarms]]\nkind = \"high\"\nalarm = 50.0\n",
            plc.port
        );
    let mut observer = Observer::connect(port).await;
    let gateway = start(&text);
    observer
        .wait_for("normal", Duration::from_secs(10), |m| {
            m.topic == "qis/outage/alerts/plc/level" && m.json["state"] == "normal"
        })
        .await;

    broker.kill();
    write_holding(plc.port, 0, 80).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // mosquitto keeps nothing (persistence off): whatever arrives now was republished.
    let _broker = mosquitto_on(port);
    let mut fresh = Observer::connect(port).await;
    let alert = fresh
        .wait_for(
            "the alarm raised during the outage",
            Duration::from_secs(20),
            |m| m.topic == "qis/outage/alerts/plc/level" && m.json["state"] == "active",
        )
        .await;
    assert_eq!(alert.json["value"], 80.0);
    fresh
        .wait_for("status online again", Duration::from_secs(5), |m| {
            m.topic == "qis/outage/status" && m.json["status"] == "online"
        })
        .await;
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_spc_violation_raises_the_spc_alarm_with_chart_rule_and_statistic() {
    let broker = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 100}]}),
    );
    // Known process: center 100, sigma 2 (limits 94..106); every reading is one observation.
    let text = header("spc", broker.port)
        + &format!(
            "[[devices]]\ntype = \"modbus_tcp\"\nname = \"lathe\"\nhost = \"127.0.0.1\"\nport = {}\npoll_interval_ms = 100\n\n\
             [[devices.points]]\nname = \"diameter\"\nregister = \"holding\"\naddress = 0\nscale = 0.1\nunit = \"mm\"\n\n\
             [devices.points.spc]\nchart = \"imr\"\ncenter = 10.0\nsigma = 0.2\nrules = \"western-electric\"\n\
             ewma = {{ lambda = 0.2, l = 3.0 }}\nspec = {{ lsl = 9.4, usl = 10.6 }}\n",
            plc.port
        );
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    let metric = observer
        .wait_for("an SPC metric", Duration::from_secs(10), |m| {
            m.topic == "qis/spc/metrics/lathe/diameter/spc"
        })
        .await;
    assert_eq!(metric.json["chart"], "imr");
    assert_eq!(metric.json["center"], 10.0);
    assert!((metric.json["ucl"].as_f64().unwrap() - 10.6).abs() < 1e-12);
    assert!((metric.json["lcl"].as_f64().unwrap() - 9.4).abs() < 1e-12);
    assert!((metric.json["capability"]["cp"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(metric.json["violations"], json!([]));

    // 10.8 mm is beyond 3 sigma: Western Electric rule 1.
    write_holding(plc.port, 0, 108).await;
    let raised = observer
        .wait_for("the spc raise", Duration::from_secs(10), |m| {
            m.topic == "qis/spc/events" && m.json["rule"] == "spc" && m.json["to"] == "active"
        })
        .await;
    let spc = &raised.json["spc"];
    assert_eq!(spc["chart"], "imr");
    assert_eq!(spc["rule_set"], "western-electric");
    assert_eq!(spc["rules"], json!([1]));
    assert!((spc["statistic"].as_f64().unwrap() - 10.8).abs() < 1e-9);
    assert!((spc["ucl"].as_f64().unwrap() - 10.6).abs() < 1e-12);
    let alert = observer
        .wait_for("the spc alert", Duration::from_secs(5), |m| {
            m.topic == "qis/spc/alerts/lathe/diameter" && m.json["state"] == "active"
        })
        .await;
    assert_eq!(alert.json["rule"], "spc");
    assert_eq!(alert.json["spc"]["rules"], json!([1]));

    // Back in control (the EWMA still remembers the excursion for a while): the rule clears.
    write_holding(plc.port, 0, 100).await;
    observer
        .wait_for("the spc clear", Duration::from_secs(15), |m| {
            m.topic == "qis/spc/events" && m.json["rule"] == "spc" && m.json["to"] == "cleared"
        })
        .await;
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearby_points_are_read_in_as_few_requests_as_the_limits_allow() {
    let broker = mosquitto();
    let plc = modbus_server(&json!({"registers": [
        {"table": "holding", "address": 0, "type": "u16", "value": 1},
        {"table": "holding", "address": 3, "type": "f32", "value": 2.5},
        {"table": "holding", "address": 10, "type": "u16", "value": 3},
        {"table": "holding", "address": 120, "type": "u16", "value": 4},
        {"table": "holding", "address": 190, "type": "u16", "value": 5},
        {"table": "input", "address": 7, "type": "i16", "value": -6}
    ], "coils": {"1": true, "5": true}}));
    // Holding 0, 3–4 and 10 join (gaps of 2 and 5 ≤ 8); 120 is 109 registers on, beyond the
    // gap; 190 would stretch that request past 50 registers. Input 7 and the two coils are
    // their own tables: 5 requests per poll.
    let points = [
        ("a", "holding", 0, "u16"),
        ("b", "holding", 3, "f32"),
        ("c", "holding", 10, "u16"),
        ("d", "holding", 120, "u16"),
        ("e", "holding", 190, "u16"),
        ("f", "input", 7, "i16"),
        ("g", "coil", 1, "bool"),
        ("h", "coil", 5, "bool"),
    ];
    let mut text = header("batch", broker.port)
        + &format!(
            "[[devices]]\ntype = \"modbus_tcp\"\nname = \"plc\"\nhost = \"127.0.0.1\"\nport = {}\npoll_interval_ms = 100\n\
             max_registers_per_request = 50\nmax_gap = 8\nstats_interval_ms = 300\n\n",
            plc.port
        );
    for (name, table, address, ty) in points {
        text += &format!("[[devices.points]]\nname = \"{name}\"\nregister = \"{table}\"\naddress = {address}\ndata_type = \"{ty}\"\n\n");
    }
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    let b = observer
        .wait_for("b", Duration::from_secs(10), |m| {
            m.topic == "qis/batch/metrics/plc/b" && m.json["quality"] == "good"
        })
        .await;
    assert_eq!(b.json["value"], 2.5);
    let stats = observer
        .wait_for("stats after a few polls", Duration::from_secs(10), |m| {
            m.topic == "qis/batch/stats/plc" && m.json["polls"].as_u64().unwrap_or(0) >= 3
        })
        .await;
    assert_eq!(stats.json["requests_last_poll"], 5, "{}", stats.json);
    let (polls, requests) = (
        stats.json["polls"].as_u64().unwrap(),
        stats.json["requests"].as_u64().unwrap(),
    );
    assert_eq!(
        requests,
        5 * polls,
        "every poll costs 5 requests: {}",
        stats.json
    );
    assert_eq!(stats.json["exceptions"], 0);
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_in_a_batch_marks_only_the_offending_point_bad() {
    let broker = mosquitto();
    // The server's tables end at address 199: a batch reaching past it is refused (exception 2).
    let plc = modbus_server(&json!({"registers": [
        {"table": "holding", "address": 196, "type": "u16", "value": 11},
        {"table": "holding", "address": 198, "type": "u16", "value": 12}
    ]}));
    let text = header("fallback", broker.port)
        + &format!(
            "[[devices]]\ntype = \"modbus_tcp\"\nname = \"plc\"\nhost = \"127.0.0.1\"\nport = {}\npoll_interval_ms = 150\nstats_interval_ms = 300\n\n\
             [[devices.points]]\nname = \"x\"\nregister = \"holding\"\naddress = 196\n\n\
             [[devices.points]]\nname = \"y\"\nregister = \"holding\"\naddress = 198\n\n\
             [[devices.points]]\nname = \"beyond\"\nregister = \"holding\"\naddress = 202\n\n",
            plc.port
        );
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    let x = observer
        .wait_for("x good", Duration::from_secs(10), |m| {
            m.topic == "qis/fallback/metrics/plc/x" && m.json["quality"] == "good"
        })
        .await;
    assert_eq!(x.json["value"], 11.0);
    let y = observer
        .saw_or_wait_for("y good", Duration::from_secs(10), |m| {
            m.topic == "qis/fallback/metrics/plc/y" && m.json["quality"] == "good"
        })
        .await;
    assert_eq!(y.json["value"], 12.0);
    let beyond = observer
        .saw_or_wait_for("beyond bad", Duration::from_secs(10), |m| {
            m.topic == "qis/fallback/metrics/plc/beyond" && m.json["quality"] == "bad"
        })
        .await;
    assert!(beyond.json["error"]
        .as_str()
        .unwrap()
        .contains("exception 2"));
    let stats = observer
        .wait_for("stats", Duration::from_secs(10), |m| {
            m.topic == "qis/fallback/stats/plc" && m.json["polls"].as_u64().unwrap_or(0) >= 2
        })
        .await;
    // One failed batch, then three single reads, per poll; the link stays up.
    assert_eq!(stats.json["requests_last_poll"], 4, "{}", stats.json);
    assert_eq!(stats.json["reconnects"], 0);
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_units_on_one_line_are_polled_in_turn_and_an_absent_unit_is_skipped_with_backoff() {
    let broker = mosquitto();
    let line = serial_pair();
    let mut server = modbus_rtu_server(
        &line.b,
        &json!({
            "1": {"registers": [
                {"table": "holding", "address": 0, "type": "f32", "order": "CDAB", "value": 12.5},
                {"table": "holding", "address": 2, "type": "i16", "value": -7}
            ]},
            "2": {"registers": [{"table": "input", "address": 4, "type": "u32", "value": 70000}], "coils": {"1": true}}
        }),
    );
    let mut text = header("rtu", broker.port);
    for (name, unit, points) in [
        ("meter1", 1, "[[devices.points]]\nname = \"flow\"\nregister = \"holding\"\naddress = 0\ndata_type = \"f32\"\nbyte_order = \"CDAB\"\n\n[[devices.points]]\nname = \"temp\"\nregister = \"holding\"\naddress = 2\ndata_type = \"i16\"\n\n"),
        ("meter2", 2, "[[devices.points]]\nname = \"energy\"\nregister = \"input\"\naddress = 4\ndata_type = \"u32\"\n\n[[devices.points]]\nname = \"on\"\nregister = \"coil\"\naddress = 1\n\n"),
        ("meter3", 3, "[[devices.points]]\nname = \"gone\"\nregister = \"holding\"\naddress = 0\n\n"),
    ] {
        text += &format!(
            "[[devices]]\ntype = \"modbus_rtu\"\nname = \"{name}\"\nport = \"{}\"\nbaud = 19200\nparity = \"none\"\nstop_bits = 2\nunit_id = {unit}\n\
             timeout_ms = 300\npoll_interval_ms = 200\nbackoff_initial_ms = 2000\nstats_interval_ms = 500\n\n{points}",
            line.a.display()
        );
    }
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    for (topic, value) in [
        ("qis/rtu/metrics/meter1/flow", 12.5),
        ("qis/rtu/metrics/meter1/temp", -7.0),
        ("qis/rtu/metrics/meter2/energy", 70000.0),
        ("qis/rtu/metrics/meter2/on", 1.0),
    ] {
        let m = observer
            .saw_or_wait_for(topic, Duration::from_secs(15), |m| {
                m.topic == topic && m.json["quality"] == "good"
            })
            .await;
        assert_eq!(m.json["value"], value, "{topic}");
    }
    observer
        .saw_or_wait_for("meter3 bad", Duration::from_secs(10), |m| {
            m.topic == "qis/rtu/metrics/meter3/gone" && m.json["quality"] == "bad"
        })
        .await;
    observer
        .saw_or_wait_for("meter3 link down", Duration::from_secs(5), |m| {
            m.json["type"] == "device" && m.json["device"] == "meter3" && m.json["link"] == "down"
        })
        .await;
    // The silent unit costs a timeout only every few seconds: the others keep being read.
    let window = observer.collect(Duration::from_secs(3)).await;
    let flow = window
        .iter()
        .filter(|m| m.topic == "qis/rtu/metrics/meter1/flow" && m.json["quality"] == "good")
        .count();
    let seen: Vec<String> = window
        .iter()
        .filter(|m| m.topic.contains("meter1"))
        .map(|m| format!("{} {}", m.topic, m.json))
        .take(6)
        .collect();
    assert!(
        flow >= 10,
        "only {flow} readings of meter1 in 3 s at 200 ms: {seen:?}"
    );
    let stats = observer
        .wait_for("meter3 stats", Duration::from_secs(5), |m| {
            m.topic == "qis/rtu/stats/meter3"
        })
        .await;
    // pymodbus answers an absent unit with a malformed exception frame; whether a unit is
    // silent or answers garbage, it fails and is skipped with backoff, not asked every 200 ms.
    let failed =
        stats.json["timeouts"].as_u64().unwrap() + stats.json["transport_errors"].as_u64().unwrap();
    let requests = stats.json["requests"].as_u64().unwrap();
    assert!(failed >= 1 && failed == requests, "{}", stats.json);
    assert!(
        requests <= 5,
        "an absent unit must be backed off: {}",
        stats.json
    );
    let _ = server.kill();
    let _ = server.wait();
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_layout_publishes_each_poll_of_a_device_as_one_message() {
    let broker = mosquitto();
    // Two groups of registers far apart: two read requests per poll.
    let registers: Vec<Value> = (0..10u16)
        .map(|i| json!({"table": "holding", "address": i, "type": "u16", "value": 100 + i}))
        .chain((0..10u16).map(
            |i| json!({"table": "holding", "address": 500 + 2 * i, "type": "f32", "value": f64::from(i) + 0.1}),
        ))
        .collect();
    let plc = modbus_server(&json!({ "registers": registers, "size": 600 }));
    let mut text = header("layout", broker.port).replace(
        "max_interval_ms = 0\n",
        "max_interval_ms = 0\nlayout = \"device\"\n",
    );
    text += &format!(
        "[[devices]]\ntype = \"modbus_tcp\"\nname = \"plc\"\nhost = \"127.0.0.1\"\nport = {}\npoll_interval_ms = 200\n\n",
        plc.port
    );
    for i in 0..10 {
        text += &format!("[[devices.points]]\nname = \"count{i}\"\nregister = \"holding\"\naddress = {i}\nunit = \"pcs\"\n\n");
        text += &format!(
            "[[devices.points]]\nname = \"level{i}\"\nregister = \"holding\"\naddress = {}\ndata_type = \"f32\"\n\n",
            500 + 2 * i
        );
    }
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    let mut polls = Vec::new();
    while polls.len() < 3 {
        let m = observer
            .wait_for("a device message", Duration::from_secs(20), |m| {
                m.topic.starts_with("qis/layout/metrics/")
            })
            .await;
        assert_eq!(
            m.topic, "qis/layout/metrics/plc",
            "no per-point topics in the device layout"
        );
        polls.push(m.json);
    }
    stop(gateway).await;
    for poll in &polls {
        let points = poll["points"].as_object().expect("points by name");
        assert_eq!(
            points.len(),
            20,
            "both requests' points in one message: {poll}"
        );
        for i in 0..10 {
            let count = &points[&format!("count{i}")];
            assert_eq!(count["value"].as_f64(), Some(f64::from(100 + i)));
            assert_eq!(count["unit"], "pcs");
            assert_eq!(count["quality"], "good");
            let level = &points[&format!("level{i}")];
            assert_eq!(level["value"].as_f64(), Some(f64::from(i) + 0.1));
            assert!(level["ts"].as_str().unwrap() <= poll["ts"].as_str().unwrap());
        }
    }
}
