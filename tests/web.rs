//! The dashboard against a real gateway, mosquitto and a pymodbus PLC, over HTTP: logins and
//! their limits, sessions and CSRF, an alarm raised by the PLC reaching the page live, the page's
//! acknowledgement and confirmation going through the command path (the retained alert and the
//! outcome packet on MQTT), a viewer's limits, hostile requests, `/metrics` parsed by
//! prometheus_client, and the page staying live while the local broker is down.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const SITE: &str = "dash";

/// The CSRF token in a page.
fn csrf(page: &str) -> String {
    let start = page
        .find("name=\"csrf\" content=\"")
        .expect("the page carries a CSRF token")
        + 21;
    page[start..start + 64].to_string()
}

/// Logs in; returns the `Cookie` header value.
async fn login(port: u16, user: &str, password: &str) -> Result<String, HttpResponse> {
    let body = format!("user={user}&password={password}");
    let r = http(
        port,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .await;
    if r.status != 303 {
        return Err(r);
    }
    let set = r
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    Ok(set.split(';').next().unwrap().to_string())
}

async fn command(port: u16, cookie: &str, token: &str, name: &str, body: &Value) -> HttpResponse {
    http(
        port,
        "POST",
        &format!("/api/{name}"),
        &[
            ("Cookie", cookie),
            ("X-CSRF-Token", token),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
    .await
}

/// `/metrics` through prometheus_client's parser: (name, labels, value) of every sample.
fn parse_metrics(text: &str) -> Vec<(String, Value, f64)> {
    use std::io::Write;
    let mut child = std::process::Command::new(python())
        .arg(repo().join("tests/peers/openmetrics_parse.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["name"].as_str().unwrap().to_string(),
                v["labels"].clone(),
                v["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engineers_watch_and_answer_alarms_in_the_dashboard() {
    let mut broker = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let web = free_port();
    let text = Plant::new(SITE, state.path(), broker.port, plc.port)
        .extra(&dashboard_section(web, ""))
        .toml();
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    wait_http(web).await;

    // Nothing without a login.
    let r = http(web, "GET", "/alarms", &[], b"").await;
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    assert_eq!(http(web, "GET", "/metrics", &[], b"").await.status, 401);
    let cookie = login(web, "ana", "engineer-pass").await.unwrap();
    let page = http(web, "GET", "/alarms", &[("Cookie", &cookie)], b"").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("ana (engineer)"), "{}", page.body);
    assert!(page
        .header("content-security-policy")
        .is_some_and(|p| p.starts_with("default-src 'self'")));
    let token = csrf(&page.body);

    // An alarm raised by the PLC reaches the open page without a reload.
    let mut live = EventStream::open(web, "/live/alarms", &[("Cookie", &cookie)]).await;
    live.wait_for(
        "the first fragment",
        "fragment",
        Duration::from_secs(10),
        |_| true,
    )
    .await;
    write_holding(plc.port, 0, 90).await;
    let raised = observer
        .wait_for("the raise on MQTT", Duration::from_secs(20), |m| {
            m.json["type"] == "alarm" && m.json["to"] == "active"
        })
        .await;
    let id = raised.json["alarm_id"].as_str().unwrap().to_string();
    let fragment = live
        .wait_for(
            "the raise on the page",
            "fragment",
            Duration::from_secs(10),
            |d| d.contains(&format!("data-alarm=\"{id}\" data-state=\"active\"")),
        )
        .await;
    assert!(fragment.contains(&format!("data-command=\"ack\" data-alarm=\"{id}\"")));

    // Acknowledged from the page: refused without the CSRF token, then done, by ana.
    let ack = json!({"alarm_id": id});
    assert_eq!(
        command(web, &cookie, "wrong", "ack", &ack).await.status,
        403
    );
    let r = http(
        web,
        "POST",
        "/api/ack",
        &[("Cookie", &cookie), ("Content-Type", "application/json")],
        ack.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 403, "no token");
    let r = command(web, &cookie, &token, "ack", &ack).await;
    assert_eq!((r.status, r.body.as_str()), (200, "{\"ok\":true}"));
    let alert = observer
        .latest_or_wait_for(
            "the retained alert acknowledged",
            Duration::from_secs(10),
            &format!("qis/{SITE}/alerts/pump/bearing_temp"),
            |m| m.json["state"] == "acknowledged",
        )
        .await;
    assert_eq!(alert.json["acknowledged"], true);
    observer
        .saw_or_wait_for("the ack event by ana", Duration::from_secs(10), |m| {
            m.json["alarm_id"] == id.as_str()
                && m.json["to"] == "acknowledged"
                && m.json["by"] == "ana"
        })
        .await;

    // Confirmed with a failure mode: the outcome leaves as a packet; a second answer is refused
    // with the command path's own words.
    let r = command(web, &cookie, &token, "confirm", &json!({"alarm_id": id})).await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("failure_mode"), "{}", r.body);
    let answer = json!({"alarm_id": id, "failure_mode": "outer race <b>spall</b>", "note": "found on inspection"});
    let r = command(web, &cookie, &token, "confirm", &answer).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let outcome = observer
        .saw_or_wait_for("the outcome event", Duration::from_secs(10), |m| {
            m.json["type"] == "outcome" && m.json["alarm_id"] == id.as_str()
        })
        .await;
    assert_eq!(outcome.json["by"], "ana");
    observer
        .saw_or_wait_for("the outcome packet", Duration::from_secs(10), |m| {
            m.topic.starts_with("qis/v2/ctx/")
        })
        .await;
    let again = command(web, &cookie, &token, "refute", &json!({"alarm_id": id})).await;
    assert_eq!(again.status, 422, "{}", again.body);

    let r = command(
        web,
        &cookie,
        &token,
        "shelve",
        &json!({"alarm_id": id, "hours": 1000}),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("outside 0"), "{}", r.body);
    let r = command(web, &cookie, &token, "unshelve", &json!({"alarm_id": id})).await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("nothing is shelved"), "{}", r.body);
    history(web, &cookie, &id).await;

    let r = http(
        web,
        "GET",
        "/point/pump/bearing_temp",
        &[("Cookie", &cookie)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let trend = chart_data(&r.body, "trend").expect("the trend");
    let labels: Vec<&Value> = trend["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["label"])
        .collect();
    assert_eq!(labels, ["least", "greatest", "last", "high alarm"]);
    let last = trend["data"][3].as_array().unwrap();
    assert_eq!(
        last.last(),
        Some(&json!(90.0)),
        "the newest step's last value: {trend}"
    );
    assert!(trend["data"][4]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v == 80.0));
    assert_eq!(
        http(
            web,
            "GET",
            "/point/pump/nothing",
            &[("Cookie", &cookie)],
            b""
        )
        .await
        .status,
        404
    );
    let points = http(web, "GET", "/points", &[("Cookie", &cookie)], b"").await;
    assert!(
        points.body.contains(
            "<a href=\"/point/pump/bearing_temp\">pump/bearing_temp</a></td><td>90 °C</td><td class=\"good\">good</td>"
        ),
        "{}",
        points.body
    );

    viewer_and_hostile_requests(web, &cookie, &token).await;
    metrics(web, &cookie).await;

    // The local broker goes away: the page stays live from the gateway's own state.
    broker.kill();
    write_holding(plc.port, 0, 21).await;
    live.wait_for(
        "the new value with the broker down, and the page saying it is",
        "fragment",
        Duration::from_secs(20),
        |d| d.contains("<td>21 °C</td>") && d.contains("id=\"broker-down\""),
    )
    .await;
    let r = http(web, "GET", "/", &[("Cookie", &cookie)], b"").await;
    assert!(
        r.body.contains("<td>pump</td><td class=\"ok\">up</td>"),
        "{}",
        r.body
    );
    assert!(r
        .body
        .contains("<th>Local broker</th><td class=\"bad\">unreachable</td>"));
    // The host's health: the state directory's free space, as this machine reports it.
    let disk = r.body.split("<td id=\"disk\">").nth(1).unwrap_or_default();
    assert!(
        disk.split(" of ")
            .next()
            .is_some_and(|free| free.parse::<f64>().is_ok())
            && disk.contains(" MiB</td>"),
        "the state directory's free space: {}",
        r.body
    );

    wrong_passwords(web).await;
    stop(gateway).await;
}

/// Fetches `path` until its body contains `want` (the history is written at the tick).
async fn fetch_until(web: u16, cookie: &str, path: &str, want: &str) -> HttpResponse {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = http(web, "GET", path, &[("Cookie", cookie)], b"").await;
        if r.body.contains(want) {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never showed {want}:\n{}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// CSV read by Python's csv module: the rows.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    use std::io::Write;
    let mut child = std::process::Command::new(python())
        .args([
            "-c",
            "import csv, json, sys; print(json.dumps(list(csv.reader(sys.stdin))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The alarm's transitions and its answer in the history, on the page and as CSV.
async fn history(web: u16, cookie: &str, id: &str) {
    let page = fetch_until(web, cookie, "/history", "<td>acknowledged</td>").await;
    assert!(
        page.body.contains(&format!("<td><code>{id}</code></td>")),
        "{}",
        page.body
    );
    assert!(page.body.contains("<td>ana</td>"), "who acknowledged");
    let page = fetch_until(
        web,
        cookie,
        "/history?kind=outcomes&device=pump",
        "<td>confirmed</td>",
    )
    .await;
    assert!(
        page.body.contains("outer race &lt;b&gt;spall&lt;/b&gt;"),
        "escaped: {}",
        page.body
    );
    let r = http(
        web,
        "GET",
        "/history?kind=outcomes&format=csv",
        &[("Cookie", cookie)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-disposition").unwrap().contains(".csv"));
    let rows = parse_csv(&r.body);
    assert_eq!(rows[0][..3], ["raised", "alarm_id", "device"]);
    let row = rows
        .iter()
        .find(|r| r[1] == id)
        .expect("the alarm in the CSV");
    assert_eq!(
        (row[7].as_str(), row[9].as_str(), row[11].as_str()),
        ("confirmed", "outer race <b>spall</b>", "ana")
    );
    let r = http(
        web,
        "GET",
        "/history?format=csv&device=pump",
        &[("Cookie", cookie)],
        b"",
    )
    .await;
    let rows = parse_csv(&r.body);
    let transitions: Vec<&str> = rows
        .iter()
        .filter(|r| r[1] == id)
        .map(|r| r[6].as_str())
        .collect();
    assert!(
        transitions.contains(&"active") && transitions.contains(&"acknowledged"),
        "{rows:?}"
    );
    // Another device's history is empty; nonsense is refused with the reason.
    let r = http(
        web,
        "GET",
        "/history?device=press9",
        &[("Cookie", cookie)],
        b"",
    )
    .await;
    assert!(r.body.contains("0 rows"), "{}", r.body);
    for (query, why) in [
        ("from=yesterday", "is not a date"),
        ("kind=everything", "neither `events` nor `outcomes`"),
        ("format=xml", "neither `html` nor `csv`"),
    ] {
        let r = http(
            web,
            "GET",
            &format!("/history?{query}"),
            &[("Cookie", cookie)],
            b"",
        )
        .await;
        assert_eq!(r.status, 400, "{query}");
        assert!(r.body.contains(why), "{query}: {}", r.body);
    }
    assert_eq!(
        http(
            web,
            "GET",
            "/history?before=soon",
            &[("Cookie", cookie)],
            b""
        )
        .await
        .status,
        400
    );
    assert_eq!(http(web, "GET", "/history", &[], b"").await.status, 303);
}

async fn viewer_and_hostile_requests(web: u16, engineer: &str, engineer_token: &str) {
    let cookie = login(web, "vic", "viewer-pass").await.unwrap();
    let page = http(web, "GET", "/alarms", &[("Cookie", &cookie)], b"").await;
    assert!(page.body.contains("vic (viewer)"));
    assert!(
        !page.body.contains("data-command"),
        "a viewer gets no buttons"
    );
    let token = csrf(&page.body);
    assert_ne!(token, engineer_token);
    let r = command(
        web,
        &cookie,
        &token,
        "ack",
        &json!({"device": "pump", "point": "bearing_temp"}),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("viewer"), "{}", r.body);
    // Another session's token is refused.
    let r = command(web, &cookie, engineer_token, "ack", &json!({})).await;
    assert_eq!(r.status, 403);
    // Another site's page posting with the engineer's cookie.
    let r = http(
        web,
        "POST",
        "/api/ack",
        &[
            ("Cookie", engineer),
            ("X-CSRF-Token", engineer_token),
            ("Origin", "http://evil.example"),
        ],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 403);
    // Oversize, malformed and unknown.
    let big = format!("{{\"alarm_id\":\"{}\"}}", "x".repeat(20_000));
    assert_eq!(
        command(
            web,
            engineer,
            engineer_token,
            "ack",
            &serde_json::from_str(&big).unwrap()
        )
        .await
        .status,
        413
    );
    let r = http(
        web,
        "POST",
        "/api/ack",
        &[("Cookie", engineer), ("X-CSRF-Token", engineer_token)],
        b"{not json",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        command(web, engineer, engineer_token, "reboot", &json!({}))
            .await
            .status,
        404
    );
    for path in [
        "/assets/../Cargo.toml",
        "/assets/..%2f..%2fCargo.toml",
        "/assets/%2e%2e/%2e%2e/etc/passwd",
        "/assets/app.js/../../src/lib.rs",
        "/../../etc/passwd",
    ] {
        let r = http(web, "GET", path, &[], b"").await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(
            !r.body.contains("[package]") && !r.body.contains("root:"),
            "{path}"
        );
    }
    assert!(http(web, "GET", "/assets/app.js", &[], b"")
        .await
        .body
        .contains("EventSource"));
    // Logged out: the session is gone.
    let r = http(
        web,
        "POST",
        "/logout",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("csrf={token}").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        http(web, "GET", "/alarms", &[("Cookie", &cookie)], b"")
            .await
            .status,
        303
    );
}

async fn metrics(web: u16, cookie: &str) {
    let r = http(web, "GET", "/metrics", &[("Cookie", cookie)], b"").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let samples = parse_metrics(&r.body);
    let find = |name: &str, key: &str, value: &str| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l[key] == value)
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("{name}{{{key}={value}}} in:\n{}", r.body))
    };
    assert_eq!(find("qis_edge_point_value", "point", "bearing_temp"), 90.0);
    assert_eq!(
        find("qis_edge_point_quality", "qis_edge_point_quality", "good"),
        1.0
    );
    assert_eq!(find("qis_edge_device_link_up", "device", "pump"), 1.0);
    assert_eq!(find("qis_edge_alarm_rules", "state", "acknowledged"), 1.0);
    assert_eq!(find("qis_edge_build_info", "site", SITE), 1.0);
    assert!(samples
        .iter()
        .any(|(n, _, v)| n == "qis_edge_local_broker_connected" && *v == 1.0));
}

async fn wrong_passwords(web: u16) {
    for _ in 0..5 {
        let r = login(web, "ana", "guess").await.unwrap_err();
        assert_eq!(r.status, 401);
        assert!(r.body.contains("Wrong user name or password"));
    }
    let r = login(web, "ana", "engineer-pass").await.unwrap_err();
    assert_eq!(r.status, 429, "the right password waits too");
    assert!(r.body.contains("Too many failed logins"), "{}", r.body);
    let r = login(web, "nobody", "x").await.unwrap_err();
    assert_eq!(r.status, 429);
}

/// The thresholds page shows a level a peer moved, with the packet behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_thresholds_page_shows_where_a_level_came_from() {
    const SITE: &str = "levels";
    let broker = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let web = free_port();
    let hash = qis_edge::web::hash_password("viewer-pass").unwrap();
    let text = Plant::new(SITE, state.path(), broker.port, plc.port)
        .extra(&format!(
            "[web]\nenabled = true\nbind = \"127.0.0.1:{web}\"\n\
             [[web.users]]\nname = \"vic\"\nrole = \"viewer\"\npassword_hash = \"{hash}\"\n"
        ))
        .adapt("[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\n")
        .toml();
    let fp = qis_edge::config::parse_str(&text, "t").unwrap().devices[0]
        .context()
        .unwrap()
        .fingerprint()
        .unwrap();
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    observer.wait_uplink_subscribed(SITE).await;
    wait_http(web).await;
    let cookie = login(web, "vic", "viewer-pass").await.unwrap();
    let page = http(web, "GET", "/thresholds", &[("Cookie", &cookie)], b"").await;
    assert!(
        page.body.contains("pump/bearing_temp/high"),
        "{}",
        page.body
    );
    assert!(page.body.contains("at its baseline") && page.body.contains("No live proposal"));

    observer
        .publish_raw(&fp.topic(), signed_by(7, peer_body(fp, 1)))
        .await;
    let moved = observer
        .wait_for("the level moved", Duration::from_secs(20), |m| {
            m.topic == format!("qis/{SITE}/thresholds/pump/bearing_temp/high")
                && m.json["value"].as_f64().is_some_and(|v| v < 80.0)
        })
        .await;
    let level = moved.json["value"].as_f64().unwrap();
    let source = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes(),
    );
    let mut live = EventStream::open(web, "/live/thresholds", &[("Cookie", &cookie)]).await;
    let fragment = live
        .wait_for(
            "the moved level",
            "fragment",
            Duration::from_secs(10),
            // The change is recorded once the level has held for a second.
            |d| d.contains("moved from 80 by peers") && d.contains("<table class=\"changes\">"),
        )
        .await;
    let shown = format!("{level:.6}");
    assert!(
        fragment.contains(&format!(
            "<td class=\"level\">{} (moved",
            shown.trim_end_matches('0')
        )),
        "{fragment}"
    );
    assert!(
        fragment.contains(&format!("title=\"{source}\"")),
        "{fragment}"
    );
    assert!(
        fragment.contains("<td>72.5</td>") && fragment.contains("<td>applied</td>"),
        "{fragment}"
    );
    // The change is in the rule's history, once, and stays there across a restart (a level
    // restored equal to the last recorded is not a change).
    let change = format!("<td>{}</td><td>1</td></tr>", shown.trim_end_matches('0'));
    let changes = |html: &str| {
        let table = html
            .split("<table class=\"changes\">")
            .nth(1)
            .unwrap_or_else(|| panic!("no changes table: {html}"));
        table[..table.find("</table>").unwrap()]
            .matches(&change)
            .count()
    };
    assert_eq!(changes(&fragment), 1, "{fragment}");
    stop(gateway).await;
    let gateway = start(&text);
    wait_http(web).await;
    let cookie = login(web, "vic", "viewer-pass").await.unwrap();
    let page = http(web, "GET", "/thresholds", &[("Cookie", &cookie)], b"").await;
    assert!(
        page.body.contains("moved from 80 by peers"),
        "{}",
        page.body
    );
    assert_eq!(changes(&page.body), 1, "{}", page.body);
    stop(gateway).await;
}

/// A vibration point's page shows the latest amplitude and envelope spectra of a real
/// outer-race fault with the shaft orders and defect frequencies (computed here from the
/// bearing's geometry) as cursors, and the envelope's strongest line sits on BPFO or a
/// harmonic; a charted point's page shows its individuals and moving-range charts with the
/// limits of the configured centre and sigma and the rule a value beyond them broke.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_pages_show_spectra_with_defect_cursors_and_control_charts() {
    const SITE: &str = "charts";
    let broker = mosquitto();
    let plc = modbus_server(&json!({"registers": [
        {"table": "holding", "address": 0, "type": "u16", "value": 20},
        {"table": "holding", "address": 1, "type": "u16", "value": 50}
    ]}));
    let state = tempfile::tempdir().unwrap();
    let web = free_port();
    let text = Plant::new(SITE, state.path(), broker.port, plc.port)
        .extra(&dashboard_section(web, ""))
        .then(&charted_and_vibration(200))
        .toml();
    let gateway = start(&text);
    wait_http(web).await;
    let cookie = login(web, "vic", "viewer-pass").await.unwrap();

    // The vibration point.
    let shaft = 1796.0 / 60.0;
    let bpfo = 9.0 / 2.0 * shaft * (1.0 - 0.3126 / 1.537);
    let bpfi = 9.0 / 2.0 * shaft * (1.0 + 0.3126 / 1.537);
    let mut live = EventStream::open(web, "/live/point/fan/bpfo", &[("Cookie", &cookie)]).await;
    let fragment = live
        .wait_for("the spectra", "fragment", Duration::from_secs(30), |d| {
            d.contains("id=\"envelope-data\"")
        })
        .await;
    assert!(
        fragment.contains("ISO 10816 zone") && fragment.contains("outer_race"),
        "{fragment}"
    );
    let envelope = chart_data(&fragment, "envelope").unwrap();
    let cursor = |chart: &Value, label: &str| {
        chart["cursors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["label"] == label)
            .unwrap_or_else(|| panic!("no cursor {label}: {chart}"))["x"]
            .as_f64()
            .unwrap()
    };
    assert!((cursor(&envelope, "BPFO") - bpfo).abs() < 1e-9);
    assert!((cursor(&envelope, "2×BPFO") - 2.0 * bpfo).abs() < 1e-9);
    assert!((cursor(&envelope, "BPFI") - bpfi).abs() < 1e-9);
    let hz = envelope["data"][0].as_array().unwrap();
    let amplitude = envelope["data"][1].as_array().unwrap();
    assert_eq!(hz.len(), amplitude.len());
    let step = hz[1].as_f64().unwrap() - hz[0].as_f64().unwrap();
    let (strongest, _) = hz
        .iter()
        .zip(amplitude)
        .map(|(f, a)| (f.as_f64().unwrap(), a.as_f64().unwrap()))
        .filter(|(f, _)| *f > 0.5 * shaft)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert!(
        (1..=3).any(|k| (strongest - f64::from(k) * bpfo).abs() <= 2.0 * step),
        "the strongest envelope line, {strongest} Hz, is not on BPFO ({bpfo} Hz) or a harmonic"
    );
    let spectrum = chart_data(&fragment, "spectrum").unwrap();
    assert!((cursor(&spectrum, "1×") - shaft).abs() < 1e-9);
    assert!((cursor(&spectrum, "3×") - 3.0 * shaft).abs() < 1e-9);
    let band = spectrum["region"].as_array().unwrap();
    assert!(band[0].as_f64().unwrap() < band[1].as_f64().unwrap());

    // The charted point: 50 is on the centre line; 60 breaks rule 1 on both charts.
    let mut live =
        EventStream::open(web, "/live/point/pump/diameter", &[("Cookie", &cookie)]).await;
    live.wait_for("the chart", "fragment", Duration::from_secs(20), |d| {
        chart_data(d, "spc").is_some_and(|c| !c["data"][0].as_array().unwrap().is_empty())
    })
    .await;
    write_holding(plc.port, 1, 60).await;
    let beyond =
        |c: &Value| {
            c["marks"].as_array().unwrap().iter().any(|m| {
                m["y"] == 60.0 && m["label"].as_str().unwrap().split(',').any(|r| r == "1")
            })
        };
    let fragment = live
        .wait_for("rule 1 marked", "fragment", Duration::from_secs(20), |d| {
            chart_data(d, "spc").is_some_and(|c| beyond(&c))
        })
        .await;
    let chart = chart_data(&fragment, "spc").unwrap();
    let labels: Vec<&Value> = chart["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["label"])
        .collect();
    assert_eq!(labels, ["Individuals", "centre", "LCL", "UCL"]);
    for (series, want) in [(2, 50.0), (3, 47.0), (4, 53.0)] {
        assert!(
            chart["data"][series]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| (v.as_f64().unwrap() - want).abs() < 1e-9),
            "series {series} is not {want}: {chart}"
        );
    }
    assert!(chart["marks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["y"] == 60.0));
    let dispersion = chart_data(&fragment, "spc-dispersion").unwrap();
    // Moving range limits for a known sigma: centre d2·σ, upper D4·d2·σ (d2 1.128, D4 3.267).
    let ucl = dispersion["data"][4][0].as_f64().unwrap();
    assert!((ucl - 3.267 * 1.128).abs() < 2e-3, "{dispersion}");
    assert!(
        dispersion["marks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["y"] == 10.0 && m["label"] == "1"),
        "{dispersion}"
    );
    stop(gateway).await;
}

/// With the fleet link down, a confirmation's packet waits in the outbox: the overview and
/// `/metrics` count it; once the uplink broker comes and acknowledges it, they count none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_and_metrics_count_packets_waiting_for_the_fleet_link() {
    const SITE: &str = "waiting";
    let broker = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let web = free_port();
    let cloud = free_port();
    let text = Plant::new(SITE, state.path(), broker.port, plc.port)
        .extra(&format!(
            "[uplink]\nport = {cloud}\nkeep_alive_s = 5\nreconnect_max_ms = 500\n"
        ))
        .extra(&dashboard_section(web, ""))
        .toml();
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    wait_http(web).await;
    let cookie = login(web, "ana", "engineer-pass").await.unwrap();
    let token = csrf(
        &http(web, "GET", "/", &[("Cookie", &cookie)], b"")
            .await
            .body,
    );
    let mut live = EventStream::open(web, "/live/overview", &[("Cookie", &cookie)]).await;
    live.wait_for(
        "an empty outbox",
        "fragment",
        Duration::from_secs(10),
        |d| d.contains("id=\"outbox\">0 packets waiting"),
    )
    .await;

    write_holding(plc.port, 0, 90).await;
    let raised = observer
        .wait_for("the raise", Duration::from_secs(20), |m| {
            m.json["type"] == "alarm" && m.json["to"] == "active"
        })
        .await;
    let id = raised.json["alarm_id"].as_str().unwrap().to_string();
    let r = command(
        web,
        &cookie,
        &token,
        "confirm",
        &json!({"alarm_id": id, "failure_mode": "bearing_outer_race"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    live.wait_for(
        "one packet waiting",
        "fragment",
        Duration::from_secs(10),
        |d| d.contains("id=\"outbox\">1 packet waiting"),
    )
    .await;
    let waiting = |body: &str| {
        parse_metrics(body)
            .into_iter()
            .find(|(n, _, _)| n == "qis_edge_outbox_packets")
            .map(|(_, _, v)| v)
    };
    let r = http(web, "GET", "/metrics", &[("Cookie", &cookie)], b"").await;
    assert_eq!(waiting(&r.body), Some(1.0), "{}", r.body);

    // The fleet broker comes: the packet leaves and is acknowledged.
    let _cloud = mosquitto_on(cloud);
    live.wait_for(
        "the outbox emptied",
        "fragment",
        Duration::from_secs(20),
        |d| d.contains("id=\"outbox\">0 packets waiting"),
    )
    .await;
    let r = http(web, "GET", "/metrics", &[("Cookie", &cookie)], b"").await;
    assert_eq!(waiting(&r.body), Some(0.0), "{}", r.body);
    stop(gateway).await;
}

/// A request by Python's HTTPS client, verifying the server against `ca`.
fn https(ca: &std::path::Path, port: u16, method: &str, path: &str, body: Option<&str>) -> Value {
    let out = std::process::Command::new(python())
        .arg(repo().join("tests/peers/https_client.py"))
        .arg(ca)
        .arg(port.to_string())
        .args([method, path])
        .args(body)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `[web.tls]`: the dashboard answers HTTPS with its certificate chain (verified by Python's
/// ssl against the CA, for the name 127.0.0.1) and marks its session cookie `Secure`; a plain
/// HTTP request on the port gets no page, and the server goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_serves_https_with_its_certificate() {
    let broker = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let made = std::process::Command::new(python())
        .arg(repo().join("tests/peers/make_certificates.py"))
        .arg(certs.path())
        .status()
        .unwrap();
    assert!(made.success());
    let ca = certs.path().join("ca.pem");
    let web = free_port();
    let tls = format!(
        "[web.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        certs.path().join("server.pem").display(),
        certs.path().join("server.key").display()
    );
    let text = Plant::new("secure", state.path(), broker.port, plc.port)
        .extra(&dashboard_section(web, &tls))
        .toml();
    let gateway = start(&text);
    wait_listening(web, "the dashboard");

    let page = https(&ca, web, "GET", "/login", None);
    assert_eq!(page["status"], 200, "{page}");
    assert!(page["body"].as_str().unwrap().contains("Log in"));
    assert!(page["tls"].as_str().unwrap().starts_with("TLSv1."));
    let login = https(
        &ca,
        web,
        "POST",
        "/login",
        Some("user=ana&password=engineer-pass"),
    );
    assert_eq!(login["status"], 303, "{login}");
    let cookie = login["headers"]["set-cookie"].as_str().unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Secure"),
        "{cookie}"
    );

    // Plain HTTP on the HTTPS port: no page, and nothing breaks.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", web))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    plain
        .write_all(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), plain.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("Log in"),
        "a page over plain HTTP"
    );
    assert_eq!(https(&ca, web, "GET", "/login", None)["status"], 200);
    stop(gateway).await;
}
