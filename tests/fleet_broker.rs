//! The fleet broker as a distributed engine: a stream of 500 signed outcome packets from 500
//! peers reaches a gateway whole, each applied once, while every node of a three-node fleet
//! broker is stopped and started again in turn under it; the gateway's uplink goes on at the
//! next node of its `failover` list, its session with it.
//!
//! - A RabbitMQ cluster (its MQTT plugin, sessions as quorum queues), each node killed
//!   (SIGKILL): the session's queue is replicated, so a node's death loses nothing.
//! - mosquitto nodes bridged to a hub, each stopped in order (SIGTERM, persistence on): a
//!   mosquitto bridge keeps in memory what it has acknowledged but not yet forwarded, so only
//!   an orderly stop is lossless there (README, "A clustered fleet broker").
//!
//! The stream's publisher stands in for the peers' outboxes: it keeps each packet until a
//! node acknowledges it, trying the next node when one fails, so a packet may be published
//! twice; the gateway's replay memory makes that harmless.

mod common;

use common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::Duration;
use tokio::sync::watch;

const SITE: &str = "lyon";
const PACKETS: usize = 500;

/// A fleet broker of three nodes, each of which can be stopped and started again.
trait Fleet {
    fn ports(&self) -> Vec<u16>;
    fn stop(&mut self, node: usize);
    fn start(&mut self, node: usize);
}

impl Fleet for RabbitCluster {
    fn ports(&self) -> Vec<u16> {
        self.mqtt_ports()
    }
    fn stop(&mut self, node: usize) {
        self.kill(node);
    }
    fn start(&mut self, node: usize) {
        self.restart(node);
    }
}

/// Two mosquitto nodes bridged to a third, the hub: nodes 0 and 1 are the spokes, 2 the hub.
struct Bridged {
    nodes: Vec<Option<Peer>>,
    ports: Vec<u16>,
    dirs: Vec<tempfile::TempDir>,
}

impl Bridged {
    fn start() -> Self {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let hub = mosquitto_persistent(dirs[2].path());
        let mut fleet = Self {
            ports: vec![free_port(), free_port(), hub.port],
            nodes: vec![None, None, Some(hub)],
            dirs,
        };
        fleet.start(0);
        fleet.start(1);
        fleet
    }
}

impl Fleet for Bridged {
    fn ports(&self) -> Vec<u16> {
        self.ports.clone()
    }
    fn stop(&mut self, node: usize) {
        if let Some(mut peer) = self.nodes[node].take() {
            peer.terminate();
        }
    }
    fn start(&mut self, node: usize) {
        let dir = self.dirs[node].path();
        self.nodes[node] = Some(if node == 2 {
            mosquitto_persistent_on(self.ports[2], dir)
        } else {
            mosquitto_bridged_node_on(self.ports[node], self.ports[2], &format!("n{node}"), dir)
        });
    }
}

/// The stream: one packet from each of 500 peers (keys from their index), for the pump's
/// context at every level, as (topic, bytes).
fn stream(text: &str) -> Vec<(String, Vec<u8>)> {
    use qis_edge::packet::{Levels, PacketBody};
    let context = qis_edge::config::parse_str(text, "t").unwrap().devices[0]
        .context()
        .unwrap()
        .address()
        .unwrap();
    (0..PACKETS)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..2].copy_from_slice(&(i as u16).to_be_bytes());
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let body = PacketBody {
                levels: Levels::Known(context.general),
                source: key.verifying_key().to_bytes(),
                ..peer_body(context.full, 1)
            };
            let topic = body.topic();
            (topic, body.sign(&key).unwrap().to_bytes().unwrap())
        })
        .collect()
}

/// Publishes the stream retained at QoS 1, as far as `allowed` lets it, one packet at a time,
/// to the first node of `ports` that takes it; counts the acknowledged ones on `acked`.
async fn publish(
    ports: Vec<u16>,
    packets: Vec<(String, Vec<u8>)>,
    mut allowed: watch::Receiver<usize>,
    acked: watch::Sender<usize>,
) {
    let (mut next, mut node) = (0, 0);
    while next < packets.len() {
        let mut o = MqttOptions::new("qis-stream", "127.0.0.1", ports[node]);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut events) = AsyncClient::new(o, 10);
        let mut in_flight = false;
        loop {
            if !in_flight && next < *allowed.borrow() {
                let (topic, bytes) = &packets[next];
                let _ = client.try_publish(topic, QoS::AtLeastOnce, true, bytes.clone());
                in_flight = true;
            }
            tokio::select! {
                _ = allowed.changed() => {}
                event = events.poll() => match event {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        next += 1;
                        in_flight = false;
                        acked.send_replace(next);
                        if next == packets.len() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                },
            }
        }
        // This node is gone (or refused): the packet in flight goes again to the next one.
        node = (node + 1) % ports.len();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Streams the packets while stopping and restarting each node in turn, and checks that the
/// gateway accepted and applied every packet exactly once.
async fn stream_through(fleet: &mut impl Fleet) {
    let local = mosquitto();
    let plc = modbus_server(
        &serde_json::json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let ports = fleet.ports();
    let text = Plant::new(SITE, state.path(), local.port, plc.port)
        .adapt("[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\n")
        .extra(&format!(
            "[uplink]\nport = {}\nfailover = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n\
             keep_alive_s = 5\nreconnect_max_ms = 1000\n",
            ports[0], ports[1], ports[2]
        ))
        .toml();
    let packets = stream(&text);
    let mut observer = Observer::connect(local.port).await;
    let gateway = start(&text);
    observer.wait_uplink_subscribed(SITE).await;

    let (allow, allowed) = watch::channel(0);
    let (acked_tx, mut acked) = watch::channel(0);
    // The publisher starts on the second node, so it and the gateway are apart at first.
    let publisher_ports = vec![ports[1], ports[2], ports[0]];
    let publisher = tokio::spawn(publish(publisher_ports, packets, allowed, acked_tx));
    for (node, at) in [(0, 100), (1, 250), (2, 400)] {
        allow.send_replace(at + 50);
        acked.wait_for(|n| *n >= at).await.unwrap();
        tokio::task::block_in_place(|| fleet.stop(node));
        acked.wait_for(|n| *n >= at + 50).await.unwrap();
        tokio::task::block_in_place(|| fleet.start(node));
    }
    allow.send_replace(PACKETS);
    publisher.await.unwrap();

    let stats = format!("qis/{SITE}/stats/intake");
    let intake = observer
        .latest_or_wait_for(
            "every packet at the gateway",
            Duration::from_secs(120),
            &stats,
            |m| m.json["accepted"].as_u64() >= Some(PACKETS as u64),
        )
        .await;
    assert_eq!(
        intake.json["accepted"], PACKETS,
        "each packet accepted once: {}",
        intake.json
    );
    assert_eq!(
        intake.json["applied"], PACKETS,
        "each packet applied once: {}",
        intake.json
    );
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_cluster_loses_nothing_while_each_node_is_killed_in_turn() {
    let mut cluster = tokio::task::block_in_place(|| RabbitCluster::start(3));
    stream_through(&mut cluster).await;
    let queues = cluster.queue_types();
    assert!(
        queues
            .lines()
            .any(|l| l.contains("uplink") && l.ends_with("quorum")),
        "the gateway's session is a quorum queue:\n{queues}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridged_mosquitto_nodes_lose_nothing_while_each_is_restarted_in_turn() {
    let mut fleet = tokio::task::block_in_place(Bridged::start);
    stream_through(&mut fleet).await;
}
