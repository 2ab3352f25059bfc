//! The `qis-edge` binary as systemd and engineers use it: `check`, `run` with its last will
//! and clean shutdown, and `demo`.

mod common;

use common::*;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

const BROKEN: &str = r#"# A configuration with one mistake per component.
[site]
id = "plant 7"

[mqtt]
port = 70000
keep_alive_s = 1

[[devices]]
type = "modbus_tcp"
name = "press1"
host = "10.0.0.5"
poll_intervall_ms = 500

[[devices.points]]
name = "oil_temp"
register = "holding_register"
address = 0

[[devices.points]]
name = "pressure"
register = "holding"
address = 70000

[[devices.points.alarms]]
kind = "low"
warning = 5.0
alarm = 10.0

[[devices]]
type = "profinet"
name = "drive"
"#;

#[test]
fn check_reports_every_error_with_file_line_column_and_component_and_exits_78() {
    let (_dir, path) = write_config(BROKEN);
    let out = Command::new(gateway_binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run qis-edge check");
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for (line, column, component, fragment) in [
        (3, 6, "site", "plant 7"),
        (6, 8, "mqtt", "70000"),
        (7, 16, "mqtt", "keep_alive_s"),
        (
            13,
            1,
            "device \"press1\"",
            "unknown field `poll_intervall_ms`",
        ),
        (
            17,
            12,
            "device \"press1\" / point \"oil_temp\"",
            "unknown variant `holding_register`",
        ),
        (23, 11, "device \"press1\" / point \"pressure\"", "70000"),
        (
            27,
            11,
            "point \"pressure\" / alarm \"low\"",
            "must lie above the alarm level",
        ),
        (31, 8, "device \"drive\"", "unknown device type `profinet`"),
    ] {
        let wanted = format!("{file}:{line}:{column}: ");
        let hit = stderr
            .lines()
            .any(|l| l.starts_with(&wanted) && l.contains(component) && l.contains(fragment));
        assert!(
            hit,
            "expected `{wanted}… {component}: …{fragment}…` in:\n{stderr}"
        );
    }
    assert!(stderr.contains("8 error(s)"), "{stderr}");
}

#[test]
fn check_accepts_the_example_configuration() {
    let out = Command::new(gateway_binary())
        .args(["check", "--config"])
        .arg(repo().join("config/example.toml"))
        .output()
        .expect("run qis-edge check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn check_on_a_missing_or_binary_file_fails_cleanly() {
    let out = Command::new(gateway_binary())
        .args(["check", "--config", "/nonexistent/qis-edge.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let (_dir, path) = write_config("");
    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x9f, 0x92]).unwrap();
    let out = Command::new(gateway_binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"));
    assert!(
        stderr.contains(":1:1: config: byte 0xff is not UTF-8 text"),
        "the position of the first bad byte: {stderr}"
    );

    // A value with a newline cannot start a line of its own that reads like a diagnostic.
    let (_dir, path) = write_config("[site]\nid = \"x\\nother.toml:1:1: mqtt: forged\"\n");
    let out = Command::new(gateway_binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.lines().any(|l| l.starts_with("other.toml")),
        "{stderr}"
    );
    assert!(stderr.contains("\\nother.toml"), "{stderr}");
}

/// `check` loads TLS files as `run` does: an empty CA file and a client key that does not fit
/// its certificate are refused with exit 78, by `check` and by `run`.
#[test]
fn check_refuses_tls_files_that_run_could_not_use() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import sys, datetime
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
out = sys.argv[1]
def pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256()))
open(out + "/cert.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(out + "/other.key", "wb").write(pem_key(other))
open(out + "/empty.pem", "wb").write(b"")
"#;
    let status = Command::new(python())
        .args(["-c", script])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let d = dir.path().display();
    for (tls, says) in [
        (format!("ca_file = \"{d}/empty.pem\""), "no certificate in ca_file"),
        (
            format!(
                "ca_file = \"{d}/cert.pem\"\nclient_cert_file = \"{d}/cert.pem\"\nclient_key_file = \"{d}/other.key\""
            ),
            "do not fit",
        ),
    ] {
        let (_cfg, path) = write_config(&format!(
            "[site]\nid = \"t\"\nstate_dir = \"{d}/state\"\n[mqtt]\nport = 1\n[mqtt.tls]\n{tls}\n"
        ));
        for command in ["check", "run"] {
            let out = Command::new(gateway_binary())
                .args([command, "--config"])
                .arg(&path)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(78), "{command}: {stderr}");
            assert!(stderr.contains(says), "{command}: {stderr}");
        }
    }
}

fn run_config(state: &std::path::Path, mqtt_port: u16, plc_port: u16) -> String {
    format!(
        "[site]\nid = \"lwt\"\nstate_dir = \"{}\"\n\n[mqtt]\nport = {mqtt_port}\nkeep_alive_s = 5\n\n\
         [[devices]]\ntype = \"modbus_tcp\"\nname = \"plc\"\nhost = \"127.0.0.1\"\nport = {plc_port}\npoll_interval_ms = 200\n\n\
         [[devices.points]]\nname = \"v\"\nregister = \"holding\"\naddress = 0\n",
        state.display()
    )
}

/// `qis-edge run --config <path>` as a child process, its output discarded.
fn run_gateway(path: &std::path::Path) -> std::process::Child {
    Command::new(gateway_binary())
        .args(["run", "--config"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_gateway_makes_the_broker_publish_its_last_will() {
    let broker = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 1}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let (_dir, path) = write_config(&run_config(state.path(), broker.port, plc.port));
    let mut observer = Observer::connect(broker.port).await;
    let mut gateway = run_gateway(&path);
    let online = observer
        .wait_for("status online", Duration::from_secs(15), |m| {
            m.topic == "qis/lwt/status" && m.json["status"] == "online"
        })
        .await;
    assert_eq!(online.json["site"], "lwt");
    assert!(online.json["version"].is_string() && online.json["ts"].is_string());
    gateway.kill().unwrap();
    let _ = gateway.wait();
    let will = observer
        .wait_for("the last will", Duration::from_secs(15), |m| {
            m.topic == "qis/lwt/status" && m.json["status"] == "offline"
        })
        .await;
    assert_eq!(will.json["reason"], "connection_lost");
    // The will is retained: a dashboard opened now still sees the gateway offline.
    let mut late = Observer::connect_filter(broker.port, "qis/lwt/status").await;
    let retained = late
        .wait_for("retained status", Duration::from_secs(5), |_| true)
        .await;
    assert!(retained.retained);
    assert_eq!(retained.json["status"], "offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_publishes_offline_and_exits_cleanly() {
    let broker = mosquitto();
    let plc = modbus_server(&json!({}));
    let state = tempfile::tempdir().unwrap();
    let (_dir, path) = write_config(&run_config(state.path(), broker.port, plc.port));
    let mut observer = Observer::connect(broker.port).await;
    // Its log goes to a file, as under systemd to the journal: no terminal.
    let log = state.path().join("gateway.log");
    let mut gateway = Command::new(gateway_binary())
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        // Inherited from a unit while stderr was redirected: not the journal, so text.
        .env("JOURNAL_STREAM", "1:1")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    observer
        .wait_for("status online", Duration::from_secs(15), |m| {
            m.topic == "qis/lwt/status" && m.json["status"] == "online"
        })
        .await;
    signal(&gateway, "TERM");
    let offline = observer
        .wait_for("status offline", Duration::from_secs(10), |m| {
            m.topic == "qis/lwt/status" && m.json["status"] == "offline"
        })
        .await;
    assert_eq!(
        offline.json["reason"], "shutdown",
        "a clean stop is not a lost connection"
    );
    let status = tokio::task::spawn_blocking(move || gateway.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Gateway started."), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no colour escape codes when stderr is not a terminal:\n{text}"
    );
    // On its first start the gateway created its outcome signing key in the state directory.
    use std::os::unix::fs::PermissionsExt;
    let key = state.path().join("outcome-key.pem");
    let mode = std::fs::metadata(&key)
        .expect("key created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let public = std::fs::read_to_string(state.path().join("outcome-key.pub")).unwrap();
    assert_eq!(public.trim().len(), 64);
}

/// The demo runs two plants: phoenix shows status, metrics and an alarm that is raised and
/// clears; its confirmed bearing failure tightens stuttgart's level, with provenance, and
/// stuttgart's developing fault is caught before its baseline level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_alarms_and_one_plant_warning_the_other_earlier() {
    let port = free_port();
    let web = free_port();
    let mut demo = Command::new(gateway_binary())
        .args([
            "demo",
            "--mqtt-port",
            &port.to_string(),
            "--web-port",
            &web.to_string(),
            "--duration",
            "58",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port, "the demo's embedded broker");
    let start = tokio::time::Instant::now();
    let within =
        |from: tokio::time::Instant| Duration::from_secs(60).saturating_sub(from.elapsed());
    let mut observer = Observer::connect(port).await;
    observer
        .wait_for("status online", within(start), |m| {
            m.topic == "qis/phoenix/status" && m.json["status"] == "online"
        })
        .await;
    observer
        .wait_for("a metric", within(start), |m| {
            m.topic.starts_with("qis/phoenix/metrics/") && m.json["quality"] == "good"
        })
        .await;
    let raised = observer
        .wait_for("an alarm raise", within(start), |m| {
            m.topic == "qis/phoenix/events" && m.json["to"] == "active"
        })
        .await;
    let id = raised.json["alarm_id"].as_str().unwrap().to_string();
    observer
        .saw_or_wait_for("that alarm clearing", within(start), |m| {
            m.topic == "qis/phoenix/events"
                && m.json["to"] == "cleared"
                && m.json["alarm_id"] == id.as_str()
        })
        .await;
    let tightened = observer
        .saw_or_wait_for("stuttgart's level tightened", within(start), |m| {
            m.topic == "qis/stuttgart/thresholds/pump1/bearing_db/high"
                && m.json["value"].as_f64().is_some_and(|v| v < 14.0)
        })
        .await;
    assert_eq!(tightened.json["provenance"][0]["status"], "applied");
    assert_eq!(tightened.json["provenance"][0]["proposed"], 8.0);
    let caught = observer
        .saw_or_wait_for("stuttgart's early warning", within(start), |m| {
            m.topic == "qis/stuttgart/events"
                && m.json["point"] == "bearing_db"
                && m.json["to"] == "active"
        })
        .await;
    assert!(
        caught.json["value"].as_f64().unwrap() < 14.0,
        "{}",
        caught.json
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = demo.wait();
        (status, demo)
    })
    .await
    .unwrap();
    let (status, mut demo) = status;
    assert!(status.unwrap().success());
    let mut story = String::new();
    if let Some(mut out) = demo.stdout.take() {
        use std::io::Read;
        let _ = out.read_to_string(&mut story);
    }
    assert!(
        story.contains(&format!(
            "mosquitto_sub -h 127.0.0.1 -p {port} -t 'qis/#' -v"
        )),
        "{story}"
    );
    assert!(story.contains("peers' advice caught the fault"), "{story}");
    assert!(
        story.contains(&format!(
            "dashboards:  http://127.0.0.1:{web}/ (phoenix) and http://127.0.0.1:{}/ (stuttgart); user \"demo\", password \"",
            web + 1
        )),
        "{story}"
    );
}

/// `passwd` prints an Argon2 hash `check` accepts; `check` refuses a dashboard without users
/// and a hash that is not one.
#[test]
fn passwd_prints_a_hash_and_check_guards_the_web_section() {
    use std::io::Write;
    let passwd = |input: &str| {
        let mut child = Command::new(gateway_binary())
            .arg("passwd")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = passwd("correct horse battery\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(qis_edge::web::verify_password(
        &hash,
        "correct horse battery"
    ));
    assert!(!qis_edge::web::verify_password(
        &hash,
        "correct horse battery\n"
    ));
    let short = passwd("short\n");
    assert_eq!(short.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8 characters"));

    let site = "[site]\nid = \"w\"\nstate_dir = \"/tmp/w\"\n";
    let check = |text: &str| {
        let (_dir, path) = write_config(text);
        let out = Command::new(gateway_binary())
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let good = format!(
        "{site}[web]\nenabled = true\n[[web.users]]\nname = \"ana\"\nrole = \"engineer\"\npassword_hash = \"{hash}\"\n"
    );
    assert_eq!(check(&good).0, Some(0), "{}", check(&good).1);
    let (code, err) = check(&format!("{site}[web]\nenabled = true\n"));
    assert_eq!(code, Some(78));
    assert!(
        err.contains("no [[web.users]]") && err.contains("qis-edge passwd"),
        "{err}"
    );
    let (code, err) = check(&good.replace(&hash, "secret"));
    assert_eq!(code, Some(78));
    assert!(
        err.contains("password_hash is not a password hash"),
        "{err}"
    );
    let (code, err) = check(&good.replace("engineer", "admin"));
    assert_eq!(code, Some(78));
    assert!(err.contains("admin"), "{err}");
}

fn qis(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(gateway_binary())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run qis-edge")
}

const CONTEXT: &str = "equipment_class = \"CNC spindle\"\nprocess = \"milling\"\nsensor_kind = \"accelerometer\"\nmounting = \"spindle nose, axial\"\n[attributes]\nbearing = \"SKF 7014\"\n";

#[test]
fn keygen_writes_a_private_key_only_the_owner_can_read_and_never_overwrites_silently() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = qis(&["keygen", "--out", "keys"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(public.len(), 64);
    let private = dir.path().join("keys/outcome-key.pem");
    assert_eq!(
        std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keys/outcome-key.pub"))
            .unwrap()
            .trim(),
        public
    );
    let before = std::fs::read(&private).unwrap();

    let again = qis(&["keygen", "--out", "keys"], dir.path());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(
        std::fs::read(&private).unwrap(),
        before,
        "the key is untouched"
    );

    let forced = qis(&["keygen", "--out", "keys", "--force"], dir.path());
    assert!(forced.status.success());
    assert_ne!(std::fs::read(&private).unwrap(), before);
}

#[test]
fn packet_make_then_inspect_prints_every_field_and_inspect_rejects_damage() {
    let dir = tempfile::tempdir().unwrap();
    assert!(qis(&["keygen", "--out", "keys"], dir.path())
        .status
        .success());
    let source = std::fs::read_to_string(dir.path().join("keys/outcome-key.pub")).unwrap();
    std::fs::write(dir.path().join("ctx.toml"), CONTEXT).unwrap();
    let made = qis(
        &[
            "packet",
            "make",
            "--key",
            "keys",
            "--context-file",
            "ctx.toml",
            "--pattern",
            "bpfi",
            "--frequency",
            "162.19",
            "--threshold",
            "0.42",
            "--ratio",
            "1.4",
            "--unit",
            "g",
            "--outcome",
            "failure-confirmed",
            "--failure-mode",
            "bearing-inner-race",
            "--failure-label",
            "inner race spall",
            "--confidence",
            "0.7",
            "--validations",
            "4",
            "--refutations",
            "1",
            "--lead-time-s",
            "604800",
            "--seq",
            "77",
            "--out",
            "p.bin",
        ],
        dir.path(),
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let inspected = qis(&["packet", "inspect", "p.bin"], dir.path());
    assert!(
        inspected.status.success(),
        "{}",
        String::from_utf8_lossy(&inspected.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    let context: qis_edge::packet::Context = toml::from_str(CONTEXT).unwrap();
    let address = context.address().unwrap();
    let fingerprint = address.full.to_string();
    assert_eq!(j["valid"], true);
    assert_eq!(j["version"], 3);
    assert_eq!(j["relative"]["ratio"], 1.4);
    assert_eq!(j["fingerprint"], fingerprint.as_str());
    let [class, process, mounting] = address.general.map(|f| f.to_string());
    let pattern_id = j["pattern_id"].as_str().unwrap();
    assert!(pattern_id.len() == 16 && pattern_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        j["topic"],
        format!(
            "qis/v2/ctx/{class}/{process}/{mounting}/{fingerprint}/{}/{pattern_id}",
            source.trim()
        )
        .as_str()
    );
    assert_eq!(j["levels"]["class"], class.as_str());
    assert_eq!(j["levels"]["process"], process.as_str());
    assert_eq!(j["levels"]["mounting"], mounting.as_str());
    assert_eq!(j["source"], source.trim());
    assert_eq!(j["seq"], 77);
    assert_eq!(j["pattern"]["feature"]["bearing_defect"], "bpfi");
    assert_eq!(j["pattern"]["frequency"]["at_hz"], 162.19);
    assert_eq!(j["pattern"]["threshold"], 0.42);
    assert_eq!(j["pattern"]["unit"], "g");
    assert_eq!(j["pattern"]["direction"], "high");
    assert_eq!(j["outcome"]["kind"], "failure_confirmed");
    assert_eq!(j["outcome"]["failure_mode"], "bearing_inner_race");
    assert_eq!(j["outcome"]["label"], "inner race spall");
    assert_eq!(j["confidence"], 0.7);
    assert_eq!(
        (j["validations"].as_u64(), j["refutations"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(j["lead_time_s"], 604800);
    assert_eq!(j["ttl_s"], 30 * 24 * 3600);
    assert_eq!(j["equipment_label"], "CNC spindle");
    assert_eq!(j["signature"].as_str().unwrap().len(), 128);

    // The same bytes through standard input; then damaged ones.
    let bytes = std::fs::read(dir.path().join("p.bin")).unwrap();
    let stdin = |data: Vec<u8>| {
        let mut child = Command::new(gateway_binary())
            .args(["packet", "inspect", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&data).unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(stdin(bytes.clone()).status.success());
    let mut flipped = bytes.clone();
    flipped[40] ^= 0x10;
    let bad = stdin(flipped);
    assert_eq!(bad.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("rejected"));
    let j: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(j["valid"], false);
    assert!(j["rejection"].is_string());
    let garbage = stdin(b"not a packet at all".to_vec());
    assert_eq!(garbage.status.code(), Some(65));
    let expired = qis(
        &["packet", "inspect", "p.bin", "--at", "99999999999"],
        dir.path(),
    );
    assert_eq!(expired.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&expired.stdout).contains("\"rejection\": \"expired\""));
}

#[test]
fn packet_make_refuses_values_peers_would_reject() {
    let dir = tempfile::tempdir().unwrap();
    assert!(qis(&["keygen", "--out", "keys"], dir.path())
        .status
        .success());
    std::fs::write(dir.path().join("ctx.toml"), CONTEXT).unwrap();
    let out = qis(
        &[
            "packet",
            "make",
            "--key",
            "keys",
            "--context-file",
            "ctx.toml",
            "--pattern",
            "harmonic:2",
            "--threshold",
            "3",
            "--outcome",
            "defect-confirmed",
            "--confidence",
            "1.5",
            "--out",
            "p.bin",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("confidence"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("p.bin").exists());
}

/// `[web.tls]` with a key that does not fit its certificate, or a missing file: `check` and
/// `run` say which, and exit 78 (configuration; systemd does not restart).
#[test]
fn an_unusable_dashboard_certificate_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new(python())
        .arg(repo().join("tests/peers/make_certificates.py"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(made.success());
    let d = dir.path().display();
    let hash = qis_edge::web::hash_password("engineer-pass").unwrap();
    for (tls, says) in [
        (
            format!("cert_file = \"{d}/server.pem\"\nkey_file = \"{d}/other.key\""),
            "certificate and key do not fit",
        ),
        (
            format!("cert_file = \"{d}/missing.pem\"\nkey_file = \"{d}/server.key\""),
            "cert_file `",
        ),
    ] {
        let (_cfg, path) = write_config(&format!(
            "[site]\nid = \"t\"\nstate_dir = \"{d}/state\"\n[mqtt]\nport = 1\n\
             [web]\nenabled = true\nbind = \"127.0.0.1:1\"\n[web.tls]\n{tls}\n\
             [[web.users]]\nname = \"ana\"\nrole = \"engineer\"\npassword_hash = \"{hash}\"\n"
        ));
        for command in ["check", "run"] {
            let out = Command::new(gateway_binary())
                .args([command, "--config"])
                .arg(&path)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(78), "{command}: {stderr}");
            assert!(stderr.contains(says), "{command}: {stderr}");
        }
    }
}

/// `qis-edge sim` on a life it cannot replay says which file and line, and starts nothing.
#[test]
fn sim_refuses_a_bad_life_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b.csv"),
        "snapshot,t_s,rms_g,peak_g,crest,kurtosis,band_2_6k_rms_g\n1,0,1,1,1,1,1\n2,0,1,1,1,1,1\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.json"),
        r#"{"operating_condition": {"id": 1, "rpm": 1800, "radial_load_N": 4000}}"#,
    )
    .unwrap();
    let out = Command::new(gateway_binary())
        .args(["sim", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("b.csv:3: t_s 0 does not follow 0 (time must increase)"),
        "{stderr}"
    );
    assert!(!stderr.contains("Gateway started"), "{stderr}");
}
