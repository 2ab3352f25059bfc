//! A full disk, on a real filesystem: the state directory on a 1 MiB tmpfs filled to the last
//! byte while the gateway runs against real mosquitto brokers and a pymodbus PLC. Polling and
//! alarms go on; an answer that cannot be stored is refused with the reason (never reported as
//! answered); the fault shows in `stats/storage` and the status; a packet the uplink acknowledged
//! but cannot delete is not sent again; once space returns the fault clears by itself, the
//! refused answer is taken, every acknowledged answer reaches peers exactly once, and no
//! temporary file is left behind. And while peers' packets cannot be saved, the core holds at
//! most 1 024 of them; the rest wait on the broker, and all are taken once space returns.
//!
//! Mounting the tmpfs needs root (CI runs as root); without it the test fails and says so.

mod common;

use common::*;
use qis_edge::packet::{self, TrustPolicy};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SITE: &str = "full";

/// A tmpfs of `size` mounted on a fresh directory; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the filesystem of `dir` to the last byte with `dir/filler`.
fn fill(dir: &Path) {
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0u8]).is_ok() {}
    let _ = f.sync_all();
}

/// Confirms `alarm_id`; returns Ok on its outcome event, Err(reason) on its rejection.
async fn confirm(observer: &mut Observer, alarm_id: &str) -> Result<(), String> {
    observer
        .publish(
            &format!("qis/{SITE}/cmd/confirm"),
            &json!({"alarm_id": alarm_id, "failure_mode": "lubrication"}).to_string(),
        )
        .await;
    let m = observer
        .wait_for(
            "the answer or its rejection",
            Duration::from_secs(20),
            |m| {
                (m.json["type"] == "outcome" && m.json["alarm_id"] == alarm_id)
                    || m.json["type"] == "command_rejected"
            },
        )
        .await;
    match m.json["type"].as_str() {
        Some("outcome") => Ok(()),
        _ => Err(m.json["reason"].as_str().unwrap_or_default().to_string()),
    }
}

/// How many times the packet with sequence number `seq` from `source` has been seen.
fn deliveries(uplink: &Observer, source: [u8; 32], seq: u64) -> usize {
    uplink
        .seen
        .iter()
        // A retained copy is the broker's, sent again whenever the observer subscribes (after
        // the broker's restart), not a send by the gateway.
        .filter(|m| !m.retained)
        .filter_map(|m| packet::guard::decode(&m.raw).ok())
        .filter(|p| p.body.source == source && p.body.seq == seq)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_fault_state_that_loses_nothing_and_clears_by_itself() {
    let tmpfs = Tmpfs::mount("1m");
    let state = tmpfs.path().join("state");
    let broker = mosquitto();
    let cloud_dir = tempfile::tempdir().unwrap();
    let mut cloud = mosquitto_persistent(cloud_dir.path());
    let cloud_port = cloud.port;
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let text = Plant::new(SITE, &state, broker.port, plc.port)
        .extra(&format!(
            "[uplink]\nport = {cloud_port}\nkeep_alive_s = 5\nreconnect_max_ms = 500\n\
             [metrics]\nmin_interval_ms = 100\n[storage]\nretry_max_s = 2\n"
        ))
        .poll_ms(20)
        .toml();
    let mut observer = Observer::connect(broker.port).await;
    let mut uplink = Observer::connect_persistent(cloud_port, "qis/+/ctx/#").await;
    let gateway = start(&text);
    let stats = format!("qis/{SITE}/stats/storage");
    observer
        .wait_for("storage ok at start", Duration::from_secs(20), |m| {
            m.topic == stats && m.json["state"] == "ok"
        })
        .await;
    let source = {
        let hex = std::fs::read_to_string(state.join("outcome-key.pub")).unwrap();
        qis_edge::packet::keys::parse_public_hex(hex.trim()).unwrap()
    };

    // Answered while all is well; then one more while the fleet broker is away, which waits
    // in the outbox.
    let mut acknowledged = Vec::new();
    let a1 = raise_at(&mut observer, SITE, plc.port).await;
    confirm(&mut observer, &a1).await.unwrap();
    acknowledged.push(a1);
    uplink
        .wait_for("the first packet", Duration::from_secs(20), |_| true)
        .await;
    cloud.terminate();
    let a2 = raise_at(&mut observer, SITE, plc.port).await;
    confirm(&mut observer, &a2).await.unwrap();
    acknowledged.push(a2);
    let waiting_seq = state_counter(&state, "last_seq");

    // The disk fills. Alarms go on; answers are stored while the database's own slack lasts,
    // then refused with the reason, and the fault is published.
    fill(tmpfs.path());
    let mut refused = None;
    for _ in 0..10 {
        let id = raise_at(&mut observer, SITE, plc.port).await;
        match confirm(&mut observer, &id).await {
            Ok(()) => acknowledged.push(id),
            Err(reason) => {
                assert!(
                    reason.contains("not recorded") && reason.contains("disk is full"),
                    "{reason}"
                );
                refused = Some(id);
                break;
            }
        }
    }
    let refused = refused.expect("an answer on a full disk is refused");
    let fault = observer
        .latest_or_wait_for("the storage fault", Duration::from_secs(20), &stats, |m| {
            m.json["state"] == "fault"
        })
        .await;
    assert!(fault.json["error"]
        .as_str()
        .unwrap()
        .contains("disk is full"));
    observer
        .latest_or_wait_for(
            "the status listing it",
            Duration::from_secs(20),
            &format!("qis/{SITE}/status"),
            |m| m.json["faults"] == json!(["storage"]) && m.json["status"] == "online",
        )
        .await;

    // The fleet broker returns: the waiting packet goes out and is acknowledged, but its row
    // cannot be deleted; it is not sent again while the disk stays full. Thirty metrics later
    // (at least 100 ms apart: 3 s, beyond the longest backoff) it has still been delivered
    // once.
    let _cloud = mosquitto_persistent_on(cloud_port, cloud_dir.path());
    uplink
        .wait_for("the waiting packet", Duration::from_secs(30), |m| {
            packet::guard::decode(&m.raw).is_ok_and(|p| p.body.seq == waiting_seq)
        })
        .await;
    let metric = format!("qis/{SITE}/metrics/pump/bearing_temp");
    for v in 0..30u16 {
        let value = 21 - v % 2;
        write_holding(plc.port, 0, value).await;
        observer
            .wait_for("the next metric", Duration::from_secs(10), |m| {
                m.topic == metric && m.json["value"] == f64::from(value)
            })
            .await;
    }
    uplink.collect(Duration::from_millis(0)).await;
    assert_eq!(
        deliveries(&uplink, source, waiting_seq),
        1,
        "sent once while it cannot be deleted"
    );

    // Space returns: the fault clears by itself, the refused answer is taken.
    std::fs::remove_file(tmpfs.path().join("filler")).unwrap();
    observer
        .wait_for("the fault cleared", Duration::from_secs(30), |m| {
            m.topic == stats && m.json["state"] == "ok"
        })
        .await;
    confirm(&mut observer, &refused).await.unwrap();
    acknowledged.push(refused);

    // Every acknowledged answer reached peers exactly once: validations 1..=n, one packet each.
    let mut guard = packet::ReplayGuard::new(16);
    let mut validations = Vec::new();
    while validations.len() < acknowledged.len() {
        for m in std::mem::take(&mut uplink.seen) {
            if let Ok(p) = packet::verify(&m.raw, unix_now(), &mut guard, &TrustPolicy::default()) {
                if p.body().source == source {
                    validations.push(p.body().validations);
                }
            }
        }
        if validations.len() < acknowledged.len() {
            uplink
                .wait_for("the remaining packets", Duration::from_secs(30), |_| true)
                .await;
        }
    }
    let want: Vec<u32> = (1..=acknowledged.len() as u32).collect();
    assert_eq!(validations, want, "each acknowledged answer once, in order");
    wait_until(|| outbox_rows(&state) == 0, "the outbox empties").await;
    stop(gateway).await;
    let temp: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp") || n.starts_with('.'))
        .collect();
    assert!(temp.is_empty(), "temporary files left: {temp:?}");
}

/// The latest `stats/intake` `accepted` count seen, waiting for one if none was.
async fn accepted(
    observer: &mut Observer,
    site: &str,
    what: &str,
    want: impl Fn(u64) -> bool,
) -> u64 {
    let topic = format!("qis/{site}/stats/intake");
    observer
        .latest_or_wait_for(what, Duration::from_secs(60), &topic, |m| {
            m.json["accepted"].as_u64().is_some_and(&want)
        })
        .await
        .json["accepted"]
        .as_u64()
        .unwrap()
}

/// While peers' packets cannot be saved, the core takes at most 1 024 of them (their
/// acknowledgements held); the rest wait on a fleet broker with no in-flight window. Once space
/// returns, every packet is taken and acknowledged: after a restart none comes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_fault_peers_packets_beyond_the_held_bound_wait_on_the_broker() {
    const SITE: &str = "held";
    const HELD: u64 = 1024;
    const SOURCES: u8 = 40;
    const PER_SOURCE: u64 = 40;
    let flood = u64::from(SOURCES) * PER_SOURCE;
    let tmpfs = Tmpfs::mount("4m");
    let state = tmpfs.path().join("state");
    let cloud = spawn_peer_on_free_port("mosquitto (no in-flight limit)", |port, dir| {
        mosquitto_configured(
            dir,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_inflight_messages 0\nmax_queued_messages 0\n"
            ),
        )
    });
    let broker = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let text = Plant::new(SITE, &state, broker.port, plc.port)
        .extra(&format!(
            "[uplink]\nport = {}\nkeep_alive_s = 60\n[metrics]\nmin_interval_ms = 100\n\
             [storage]\nretry_max_s = 1\n",
            cloud.port
        ))
        .adapt("[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\n")
        .poll_ms(20)
        .toml();
    let fp = qis_edge::config::parse_str(&text, "t").unwrap().devices[0]
        .context()
        .unwrap()
        .fingerprint()
        .unwrap();
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    observer.wait_uplink_subscribed(SITE).await;
    let peer = Observer::connect(cloud.port).await;

    // The disk fills; packets from one source, one at a time, until saving them fails.
    fill(tmpfs.path());
    let stats = format!("qis/{SITE}/stats/storage");
    let mut seq = 0;
    while !observer
        .seen
        .iter()
        .any(|m| m.topic == stats && m.json["state"] == "fault")
    {
        seq += 1;
        assert!(
            seq < 200,
            "saving peers' packets never failed on a full disk"
        );
        peer.publish_raw(&fp.topic(), signed_by(SOURCES + 1, peer_body(fp, seq)))
            .await;
        accepted(&mut observer, SITE, "the next packet", |n| n == seq).await;
    }

    for seed in 1..=SOURCES {
        for seq in 1..=PER_SOURCE {
            peer.publish_raw(&fp.topic(), signed_by(seed, peer_body(fp, seq)))
                .await;
        }
    }
    accepted(&mut observer, SITE, "the bound reached", |n| n >= HELD).await;
    // Twenty metrics later (at least 100 ms apart) the core has taken no more.
    let metric = format!("qis/{SITE}/metrics/pump/bearing_temp");
    for v in 0..20u16 {
        let value = 21 - v % 2;
        write_holding(plc.port, 0, value).await;
        observer
            .wait_for("the next metric", Duration::from_secs(10), |m| {
                m.topic == metric && m.json["value"] == f64::from(value)
            })
            .await;
    }
    // Those saved before the fault were acknowledged; every one since is held.
    let first = ed25519_dalek::SigningKey::from_bytes(&[SOURCES + 1; 32])
        .verifying_key()
        .to_bytes();
    let saved: Vec<u64> = state_db(&state)
        .query_row(
            "SELECT seqs FROM replay WHERE source = ?1",
            [first.as_slice()],
            |r| r.get::<_, String>(0),
        )
        .map(|seqs| serde_json::from_str(&seqs).unwrap())
        .unwrap_or_default();
    assert!(
        saved.len() < seq as usize,
        "the packet that met the fault is not saved"
    );
    assert_eq!(
        accepted(&mut observer, SITE, "the count", |_| true).await,
        saved.len() as u64 + HELD,
        "at most {HELD} packets held"
    );

    // Space returns: the rest are taken, and every one is acknowledged.
    std::fs::remove_file(tmpfs.path().join("filler")).unwrap();
    let total = seq + flood;
    accepted(&mut observer, SITE, "every packet", |n| n == total).await;
    observer
        .latest_or_wait_for(
            "the storage fault over",
            Duration::from_secs(60),
            &stats,
            |m| m.json["state"] == "ok",
        )
        .await;
    stop(gateway).await;
    let gateway = start(&text);
    observer
        .wait_for(
            "the uplink subscribed again",
            Duration::from_secs(20),
            |m| m.topic == format!("qis/{SITE}/uplink") && m.json["state"] == "subscribed",
        )
        .await;
    peer.publish_raw(&fp.topic(), signed_by(1, peer_body(fp, PER_SOURCE + 1)))
        .await;
    let after = observer
        .wait_for("the marker packet", Duration::from_secs(20), |m| {
            m.topic == format!("qis/{SITE}/stats/intake") && m.json["accepted"] == 1
        })
        .await;
    assert_eq!(
        after.json["rejected"]["replayed"], 0,
        "nothing redelivered: {}",
        after.json
    );
    stop(gateway).await;
}
