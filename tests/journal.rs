//! Under systemd the gateway writes native journal records: a real systemd-journald (the
//! machine's, or one this test starts when none runs) receives them, and `journalctl
//! DEVICE=<name>` finds the device's lines with their fields and level.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SOCKET: &str = "/run/systemd/journal/socket";

/// A journald to write to: the running one, or `systemd-journald` started here (as root).
struct Journal {
    own: Option<Child>,
}

impl Journal {
    fn open() -> Journal {
        if std::os::unix::net::UnixDatagram::unbound()
            .and_then(|s| s.connect(SOCKET))
            .is_ok()
        {
            return Journal { own: None };
        }
        let daemon = [
            "/lib/systemd/systemd-journald",
            "/usr/lib/systemd/systemd-journald",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("no journald runs and systemd-journald is not installed (Debian: systemd)");
        let child = Command::new(daemon)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start systemd-journald (needs root when none runs)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixDatagram::unbound()
            .and_then(|s| s.connect(SOCKET))
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "journald's socket did not appear"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Journal { own: Some(child) }
    }

    /// The journal's records with `DEVICE=device`, as JSON objects.
    fn records(&self, device: &str) -> Vec<serde_json::Value> {
        let out = Command::new("journalctl")
            .args(["--no-pager", "-o", "json", &format!("DEVICE={device}")])
            .output()
            .expect("run journalctl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Some(child) = &mut self.own {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_systemd_records_go_to_the_journal_with_their_fields() {
    let journal = Journal::open();
    let broker = mosquitto();
    let plc = modbus_server(&json!({}));
    let state = tempfile::tempdir().unwrap();
    // A device name no other run has used, so the journal holds only this run's records.
    let device = format!("press-{}-{}", std::process::id(), plc.port);
    let config = format!(
        "[site]\nid = \"journal\"\nstate_dir = \"{}\"\n\n[mqtt]\nport = {}\n\n\
         [[devices]]\ntype = \"modbus_tcp\"\nname = \"{device}\"\nhost = \"127.0.0.1\"\nport = {}\n\n\
         [[devices.points]]\nname = \"v\"\nregister = \"holding\"\naddress = 0\n",
        state.path().display(),
        broker.port,
        plc.port
    );
    let (_dir, path) = write_config(&config);
    // systemd sets JOURNAL_STREAM to the device and inode of the stream it gives as stderr.
    let log = state.path().join("stderr");
    let stderr = std::fs::File::create(&log).unwrap();
    let meta = stderr.metadata().unwrap();
    let mut gateway = Command::new(gateway_binary())
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let connected = loop {
        let records = journal.records(&device);
        if let Some(r) = records.into_iter().find(|r| r["MESSAGE"] == "Connected.") {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no journal record with DEVICE={device}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    signal(&gateway, "TERM");
    let _ = tokio::task::spawn_blocking(move || gateway.wait()).await;
    assert_eq!(connected["SYSLOG_IDENTIFIER"], "qis-edge");
    assert_eq!(connected["PRIORITY"], "5", "INFO is journald's notice");
    assert_eq!(connected["HOST"], "127.0.0.1");
    assert_eq!(connected["PORT"], plc.port.to_string());
    assert_eq!(
        connected["_TRANSPORT"], "journal",
        "a native record, not stdout text"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("Connected."),
        "records go to the journal only, not again as text:\n{text}"
    );
}
