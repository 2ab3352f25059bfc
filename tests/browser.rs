//! The dashboard in a real browser (Debian's Chromium, headless, driven by playwright-core)
//! against a real gateway, mosquitto and a pymodbus PLC: an engineer logs in, sees an alarm the
//! PLC raised appear without a reload, acknowledges it (the retained MQTT alert changes) and
//! confirms it with a failure mode (the outcome packet leaves); a viewer gets no buttons; with
//! the local broker stopped the page stays live and says so. Screenshots of each page go to
//! `target/screenshots/`.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const SITE: &str = "browser";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engineer_answers_an_alarm_in_the_browser() {
    let mut broker = mosquitto();
    let plc = modbus_server(&json!({"registers": [
        {"table": "holding", "address": 0, "type": "u16", "value": 20},
        {"table": "holding", "address": 1, "type": "u16", "value": 50}
    ]}));
    let state = tempfile::tempdir().unwrap();
    let web = free_port();
    let text = Plant::new(SITE, state.path(), broker.port, plc.port)
        .extra(&dashboard_section(web, "trend_minutes = 6\n"))
        .adapt("[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\n")
        .then(&charted_and_vibration(500))
        .toml();
    let fp = qis_edge::config::parse_str(&text, "t").unwrap().devices[0]
        .context()
        .unwrap()
        .fingerprint()
        .unwrap();
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    wait_http(web).await;
    // A peer's confirmed failure moves the alarm level before the story starts.
    observer.wait_uplink_subscribed(SITE).await;
    observer
        .publish_raw(&fp.topic(), signed_by(7, peer_body(fp, 1)))
        .await;
    let base = format!("http://127.0.0.1:{web}");
    let mut b = Browser::start().await;

    // Log in as the engineer.
    b.call("a page", json!({"cmd": "page", "name": "ana"}))
        .await;
    b.call(
        "the login page",
        json!({"cmd": "goto", "url": format!("{base}/alarms")}),
    )
    .await;
    b.call(
        "the user",
        json!({"cmd": "fill", "selector": "input[name=user]", "value": "ana"}),
    )
    .await;
    b.call(
        "the password",
        json!({"cmd": "fill", "selector": "input[name=password]", "value": "engineer-pass"}),
    )
    .await;
    let url = b
        .call(
            "log in",
            json!({"cmd": "submit", "selector": "button[type=submit]"}),
        )
        .await;
    assert_eq!(url, json!(format!("{base}/")));
    b.call(
        "the devices",
        json!({"cmd": "wait", "selector": "tr[data-device=pump]"}),
    )
    .await;
    b.screenshot("overview").await;

    // The alarm page is open when the PLC raises the alarm: it appears without a reload.
    b.call(
        "the alarms page",
        json!({"cmd": "goto", "url": format!("{base}/alarms")}),
    )
    .await;
    b.call(
        "live",
        json!({"cmd": "wait", "selector": "#connection[data-state=live]"}),
    )
    .await;
    write_holding(plc.port, 0, 90).await;
    let raised = observer
        .wait_for("the raise on MQTT", Duration::from_secs(20), |m| {
            m.json["type"] == "alarm"
                && m.json["point"] == "bearing_temp"
                && m.json["to"] == "active"
        })
        .await;
    let id = raised.json["alarm_id"].as_str().unwrap().to_string();
    let row = format!("tr[data-alarm=\"{id}\"]");
    b.call(
        "the raised alarm on the open page",
        json!({"cmd": "wait", "selector": format!("{row}[data-state=active]")}),
    )
    .await;
    b.screenshot("alarms-active").await;

    // Acknowledge from the page: the retained alert on MQTT changes.
    b.call(
        "ack",
        json!({"cmd": "click", "selector": format!("{row} button[data-command=ack]")}),
    )
    .await;
    observer
        .latest_or_wait_for(
            "the retained alert acknowledged",
            Duration::from_secs(10),
            &format!("qis/{SITE}/alerts/pump/bearing_temp"),
            |m| m.json["state"] == "acknowledged",
        )
        .await;
    b.call(
        "the row acknowledged",
        json!({"cmd": "wait", "selector": format!("{row}[data-state=acknowledged]")}),
    )
    .await;

    // Confirm with a failure mode: the outcome packet leaves for peers.
    b.call(
        "confirm",
        json!({"cmd": "click", "selector": format!("{row} button[data-command=confirm]")}),
    )
    .await;
    b.call(
        "the dialog",
        json!({"cmd": "wait", "selector": "dialog#confirm"}),
    )
    .await;
    b.call(
        "the failure mode",
        json!({"cmd": "fill", "selector": "dialog input[name=failure_mode]", "value": "outer race spall"}),
    )
    .await;
    b.screenshot("alarms-confirm").await;
    b.call(
        "confirm it",
        json!({"cmd": "click", "selector": "dialog button[value=ok]"}),
    )
    .await;
    let outcome = observer
        .saw_or_wait_for("the outcome", Duration::from_secs(10), |m| {
            m.json["type"] == "outcome" && m.json["alarm_id"] == id.as_str()
        })
        .await;
    assert_eq!(outcome.json["by"], "ana");
    assert_eq!(outcome.json["failure_mode"], "outer race spall");
    observer
        .saw_or_wait_for("the outcome packet", Duration::from_secs(10), |m| {
            m.topic.starts_with("qis/v2/ctx/")
        })
        .await;
    let dialogs = b.call("no error boxes", json!({"cmd": "dialogs"})).await;
    assert_eq!(dialogs, json!([]));

    // Shelved for two hours from the page: quiet, shown as shelved; then unshelved.
    b.call(
        "shelve",
        json!({"cmd": "click", "selector": format!("{row} button[data-command=shelve]")}),
    )
    .await;
    b.call(
        "the hours",
        json!({"cmd": "fill", "selector": "dialog#shelve input[name=hours]", "value": "2"}),
    )
    .await;
    b.call(
        "why",
        json!({"cmd": "fill", "selector": "dialog#shelve input[name=note]", "value": "sensor swap"}),
    )
    .await;
    b.call(
        "shelve it",
        json!({"cmd": "click", "selector": "dialog#shelve button[value=ok]"}),
    )
    .await;
    let shelved = observer
        .wait_for("the shelved event", Duration::from_secs(10), |m| {
            m.json["type"] == "shelved"
        })
        .await;
    assert_eq!(shelved.json["by"], "ana");
    assert_eq!(shelved.json["note"], "sensor swap");
    b.call(
        "the row shelved",
        json!({"cmd": "wait", "selector": format!("{row} .shelved")}),
    )
    .await;
    b.screenshot("alarms-shelved").await;
    b.call(
        "unshelve",
        json!({"cmd": "click", "selector": format!("{row} button[data-command=unshelve]")}),
    )
    .await;
    observer
        .wait_for("the unshelved event", Duration::from_secs(10), |m| {
            m.json["type"] == "unshelved" && m.json["reason"] == "engineer"
        })
        .await;
    b.call(
        "the row quiet no more",
        json!({"cmd": "gone", "selector": format!("{row} .shelved")}),
    )
    .await;

    // A viewer sees the alarm and no buttons.
    b.call("a viewer's page", json!({"cmd": "page", "name": "vic"}))
        .await;
    b.call(
        "login",
        json!({"cmd": "goto", "url": format!("{base}/login")}),
    )
    .await;
    b.call(
        "user",
        json!({"cmd": "fill", "selector": "input[name=user]", "value": "vic"}),
    )
    .await;
    b.call(
        "password",
        json!({"cmd": "fill", "selector": "input[name=password]", "value": "viewer-pass"}),
    )
    .await;
    b.call(
        "log in",
        json!({"cmd": "submit", "selector": "button[type=submit]"}),
    )
    .await;
    b.call(
        "alarms",
        json!({"cmd": "goto", "url": format!("{base}/alarms")}),
    )
    .await;
    b.call("the alarm", json!({"cmd": "wait", "selector": row.clone()}))
        .await;
    let buttons = b
        .call(
            "buttons",
            json!({"cmd": "count", "selector": "button[data-command]"}),
        )
        .await;
    assert_eq!(buttons, json!(0), "a viewer gets no buttons");
    b.screenshot("alarms-viewer").await;

    // The history: the alarm's transitions, with who acknowledged.
    b.call("back to ana", json!({"cmd": "use", "name": "ana"}))
        .await;
    b.call(
        "history",
        json!({"cmd": "goto", "url": format!("{base}/history")}),
    )
    .await;
    b.call(
        "the acknowledgement in the history",
        json!({"cmd": "wait", "selector": "td:has-text(\"ana\")"}),
    )
    .await;
    b.screenshot("history").await;
    b.call(
        "alarms",
        json!({"cmd": "goto", "url": format!("{base}/alarms")}),
    )
    .await;

    // The point page: its trend drawn, with the rule's alarm level.
    b.call("back to ana", json!({"cmd": "use", "name": "ana"}))
        .await;
    b.call(
        "the point page from the alarm",
        json!({"cmd": "submit", "selector": format!("{row} a[href=\"/point/pump/bearing_temp\"]")}),
    )
    .await;
    b.call(
        "the chart",
        json!({"cmd": "wait", "selector": "#trend .uplot canvas"}),
    )
    .await;
    let legend = b
        .call(
            "the legend",
            json!({"cmd": "text", "selector": "#trend .u-legend"}),
        )
        .await;
    assert!(legend.as_str().unwrap().contains("high alarm"), "{legend}");
    b.screenshot("point").await;

    // A vibration point: both spectra drawn with their cursors; a charted point: its charts,
    // with the value the PLC pushes beyond the limits marked.
    b.call(
        "the vibration point",
        json!({"cmd": "goto", "url": format!("{base}/point/fan/bpfo")}),
    )
    .await;
    for chart in ["#spectrum", "#envelope"] {
        b.call(
            "a spectrum",
            json!({"cmd": "wait", "selector": format!("{chart} .uplot canvas")}),
        )
        .await;
    }
    let legend = b
        .call(
            "the envelope's legend",
            json!({"cmd": "text", "selector": "#envelope .u-legend"}),
        )
        .await;
    assert!(legend.as_str().unwrap().contains("envelope"), "{legend}");
    b.screenshot("point-vibration").await;
    b.call(
        "the charted point",
        json!({"cmd": "goto", "url": format!("{base}/point/pump/diameter")}),
    )
    .await;
    b.call(
        "its control chart",
        json!({"cmd": "wait", "selector": "#spc .uplot canvas"}),
    )
    .await;
    write_holding(plc.port, 1, 60).await;
    b.call(
        "the violation counted",
        json!({"cmd": "wait", "selector": "p.note[data-violations]:not([data-violations=\"0\"])"}),
    )
    .await;
    b.call(
        "the dispersion chart",
        json!({"cmd": "wait", "selector": "#spc-dispersion .uplot canvas"}),
    )
    .await;
    b.screenshot("point-spc").await;
    b.call(
        "thresholds",
        json!({"cmd": "goto", "url": format!("{base}/thresholds")}),
    )
    .await;
    b.call(
        "the moved level",
        json!({"cmd": "wait", "selector": "article[data-rule=\"pump/bearing_temp/high\"] td:has-text(\"moved from 80 by peers\")"}),
    )
    .await;
    b.call(
        "the peer's trust raised by the confirmation, in its history",
        json!({"cmd": "wait", "selector": "tr[data-source] li:has-text(\"confirmed\")"}),
    )
    .await;
    b.screenshot("thresholds").await;
    b.call(
        "alarms again",
        json!({"cmd": "goto", "url": format!("{base}/alarms")}),
    )
    .await;

    // The local broker stops: the engineer's page stays live and says so.
    broker.kill();
    b.call(
        "the broker warning",
        json!({"cmd": "wait", "selector": "#broker-down"}),
    )
    .await;
    write_holding(plc.port, 0, 21).await;
    let value = b
        .call(
            "the new value with the broker down",
            json!({"cmd": "wait", "selector": format!("{row} td:has-text(\"21 °C\")")}),
        )
        .await;
    assert_eq!(value, json!(null));
    b.screenshot("alarms-broker-down").await;
    stop(gateway).await;
}
