//! Outbox drain rate: how many outcome packets a second the uplink publishes (QoS 1, one in
//! flight, each deleted on its PUBACK) to a real mosquitto while it is also subscribed to its
//! own context topic, as a gateway is, with `TCP_NODELAY` (what the gateway uses) and without.
//! The two run in alternating rounds; the median of the per-round ratios is reported.
//! `cargo bench --bench outbox_drain` (needs the peers `./tests/run.sh` installs).

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use qis_edge::config::MqttConfig;
use qis_edge::mqtt::uplink::{start_with, UplinkParts};
use qis_edge::outcomes::outbox::Outbox;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const PACKETS: u64 = 300;
const ROUNDS: usize = 3;

/// Packets a second to drain a full outbox of [`PACKETS`].
async fn drain(port: u16, nodelay: bool, round: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = Outbox::open(&dir.path().join("outbox"), 10_000).expect("outbox");
    let fingerprint = qis_edge::packet::Fingerprint([7; 16]);
    for seq in 1..=PACKETS {
        outbox
            .push(seq, &signed_by(3, peer_body(fingerprint, seq)))
            .expect("push");
    }
    let config = MqttConfig {
        port,
        ..MqttConfig::default()
    };
    let (_wake, wake_rx) = tokio::sync::mpsc::channel(16);
    let (incoming, mut incoming_rx) = tokio::sync::mpsc::channel(256);
    // The gateway's own packets come back on its subscription; they are acknowledged as the
    // core does: after its save, every 16 packets or on its 200 ms tick.
    tokio::spawn(async move {
        let mut acks = Vec::new();
        let mut tick = tokio::time::interval(qis_edge::core::TICK);
        loop {
            tokio::select! {
                i = incoming_rx.recv() => {
                    let Some(i) = i else { break };
                    let i: qis_edge::mqtt::uplink::Incoming = i;
                    acks.extend(i.ack);
                    if acks.len() >= qis_edge::intake::ACK_BATCH {
                        acks.drain(..).for_each(|a: qis_edge::mqtt::uplink::Ack| a.send());
                    }
                }
                _ = tick.tick() => acks.drain(..).for_each(|a| a.send()),
            }
        }
    });
    let parts = UplinkParts {
        outbox: outbox.clone(),
        wake: wake_rx,
        subscriptions: vec![fingerprint.topic()],
        incoming,
    };
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(nodelay);
    let cancel = CancellationToken::new();
    let id = format!("drain-{nodelay}-{round}-{}", std::process::id());
    let started = Instant::now();
    let uplink = start_with(&config, id, parts, network, cancel.clone()).expect("uplink");
    while !outbox.pending().is_empty() {
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
    let mut ratios = Vec::new();
    for round in 0..ROUNDS {
        let nagle = drain(broker.port, false, round).await;
        let nodelay = drain(broker.port, true, round).await;
        println!(
            "round {}: {PACKETS} packets, without TCP_NODELAY {nagle:.0}/s, with {nodelay:.0}/s, ratio {:.1}",
            round + 1,
            nodelay / nagle
        );
        ratios.push(nodelay / nagle);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "drain rate with / without TCP_NODELAY, median of {ROUNDS} rounds: {:.1} (spread {:.1}–{:.1})",
        ratios[ROUNDS / 2],
        ratios[0],
        ratios[ROUNDS - 1]
    );
}
