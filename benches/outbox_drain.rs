//! Outbox drain rate: how many outcome packets a second the uplink publishes (QoS 1, one in
//! flight, each row deleted from the state database on its PUBACK) to a real mosquitto while it is also subscribed to its
//! own context topic, as a gateway is, so its own packets come back to it. Three ways, in
//! alternating rounds, medians of the per-round ratios reported:
//! - `held`: the echoes acknowledged with the next intake save (every 16 packets or 200 ms tick),
//!   as the gateway did before, without `TCP_NODELAY`;
//! - `held + nodelay`: the same with `TCP_NODELAY`;
//! - `now`: what the gateway does: `TCP_NODELAY`, and its own packets acknowledged at once
//!   (they change nothing that must be saved first).
//!
//! `cargo bench --bench outbox_drain` (needs the peers `./tests/run.sh` installs).

mod side;
use side::median;

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use qis_edge::config::MqttConfig;
use qis_edge::db::Db;
use qis_edge::mqtt::uplink::{start_with, UplinkParts};
use qis_edge::outcomes::outbox::{self, Outbox, Queued};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const PACKETS: u64 = 300;
const ROUNDS: usize = 3;

/// Packets a second to drain a full outbox of [`PACKETS`].
async fn drain(port: u16, nodelay: bool, hold_own: bool, round: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut db, _) = Db::open(dir.path()).expect("state database");
    let fingerprint = qis_edge::packet::Fingerprint([7; 16]);
    let tx = db.conn().transaction().expect("transaction");
    for seq in 1..=PACKETS {
        let body = peer_body(fingerprint, seq);
        let q = Queued {
            seq,
            alarm_id: format!("a/b/c/{seq}"),
            topic: fingerprint.topic(),
            expires_at: body.expires_at(),
            bytes: signed_by(3, body),
            at_ms: 0,
        };
        outbox::insert(&tx, &q, 10_000).expect("insert");
    }
    tx.commit().expect("commit");
    let mut outbox = Outbox::new(dir.path());
    let config = MqttConfig {
        port,
        ..MqttConfig::default()
    };
    let (_wake, wake_rx) = tokio::sync::mpsc::channel(16);
    let (incoming, mut incoming_rx) = tokio::sync::mpsc::channel(256);
    // The gateway's own packets come back on its subscription: acknowledged with the next save
    // (every 16 packets or on the 200 ms tick), or at once.
    tokio::spawn(async move {
        let mut acks = Vec::new();
        let mut tick = tokio::time::interval(qis_edge::core::TICK);
        loop {
            tokio::select! {
                i = incoming_rx.recv() => {
                    let Some(i) = i else { break };
                    let i: qis_edge::mqtt::uplink::Incoming = i;
                    acks.extend(i.ack);
                    if !hold_own || acks.len() >= qis_edge::intake::ACK_BATCH {
                        acks.drain(..).for_each(|a: qis_edge::mqtt::uplink::Ack| a.send());
                    }
                }
                _ = tick.tick() => acks.drain(..).for_each(|a| a.send()),
            }
        }
    });
    let parts = UplinkParts {
        outbox: Outbox::new(dir.path()),
        wake: wake_rx,
        subscriptions: vec![fingerprint.topic()],
        join: None,
        incoming,
        puback_timeout: Duration::from_secs(30),
    };
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(nodelay);
    let cancel = CancellationToken::new();
    let id = format!("drain-{nodelay}-{hold_own}-{round}-{}", std::process::id());
    let started = Instant::now();
    let uplink = start_with(&config, id, parts, network, cancel.clone()).expect("uplink");
    while outbox.pending().expect("outbox") > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = PACKETS as f64 / started.elapsed().as_secs_f64();
    cancel.cancel();
    let _ = uplink.task.await;
    rate
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let broker = mosquitto();
    let (mut nodelay_ratio, mut now_ratio) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let held = drain(broker.port, false, true, round).await;
        let held_nodelay = drain(broker.port, true, true, round).await;
        let now = drain(broker.port, true, false, round).await;
        println!(
            "round {}: {PACKETS} packets: held {held:.0}/s, held + nodelay {held_nodelay:.0}/s, now {now:.0}/s",
            round + 1
        );
        nodelay_ratio.push(held_nodelay / held);
        now_ratio.push(now / held);
    }
    for (what, ratios) in [
        ("held + nodelay / held", nodelay_ratio),
        ("now / held", now_ratio),
    ] {
        let (m, lo, hi) = median(ratios);
        println!("{what}, median of {ROUNDS} rounds: {m:.1} (spread {lo:.1}–{hi:.1})");
    }
}
