//! The fleet link under a broker that misbehaves: one that withholds a PUBACK (the gateway
//! times out, reconnects and sends the packet again instead of stalling its outbox), one that
//! floods the gateway with every queued packet at once (no in-flight window): flow control
//! takes them all, none dropped, none left unacknowledged; and one that dies: the uplink goes
//! on at the next broker of its `failover` list.

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SITE: &str = "upf";

/// Reads one MQTT control packet (fixed header, remaining length, body) from `r`.
async fn read_packet(r: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let mut packet = vec![r.read_u8().await.ok()?];
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let b = r.read_u8().await.ok()?;
        packet.push(b);
        len |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    let start = packet.len();
    packet.resize(start + len, 0);
    r.read_exact(&mut packet[start..]).await.ok()?;
    Some(packet)
}

/// A TCP proxy to mosquitto on `broker` that swallows the first `withhold` PUBACKs the broker
/// sends to the client; counts the client connections.
async fn puback_withholding_proxy(broker: u16, withhold: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let withheld = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let upstream = TcpStream::connect(("127.0.0.1", broker)).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut br, mut bw) = upstream.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut cr, &mut bw).await;
            });
            let withheld = withheld.clone();
            tokio::spawn(async move {
                while let Some(p) = read_packet(&mut br).await {
                    let is_puback = p[0] >> 4 == 4;
                    if is_puback && withheld.load(Ordering::SeqCst) < withhold {
                        withheld.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    if cw.write_all(&p).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_puback_times_out_and_the_packet_goes_again() {
    let broker = mosquitto();
    let cloud = mosquitto();
    let (proxy, connections) = puback_withholding_proxy(cloud.port, 1).await;
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let text = Plant::new(SITE, state.path(), broker.port, plc.port)
        .extra(&format!(
            "[uplink]\nport = {proxy}\nkeep_alive_s = 30\nreconnect_max_ms = 500\n\
             [outcomes]\npuback_timeout_s = 1\n"
        ))
        .toml();
    let mut observer = Observer::connect(broker.port).await;
    let mut fleet = Observer::connect_filter(cloud.port, "qis/+/ctx/#").await;
    let gateway = start(&text);
    observer.wait_uplink_subscribed(SITE).await;
    let id = raise_at(&mut observer, SITE, plc.port).await;
    observer
        .publish(
            &format!("qis/{SITE}/cmd/confirm"),
            &json!({"alarm_id": id, "failure_mode": "lubrication"}).to_string(),
        )
        .await;
    fleet
        .wait_for(
            "the packet on the fleet broker",
            Duration::from_secs(20),
            |_| true,
        )
        .await;
    // Its PUBACK never came: the gateway reconnects and sends it again; that one is
    // acknowledged and the outbox empties.
    wait_until(
        || outbox_rows(state.path()) == 0,
        "the outbox empties after the timeout",
    )
    .await;
    assert!(
        connections.load(Ordering::SeqCst) >= 2,
        "a new connection after the timeout"
    );
    stop(gateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_queued_packets_is_taken_whole_by_flow_control() {
    const SOURCES: u8 = 20;
    const PER_SOURCE: u64 = 30;
    let total = u64::from(SOURCES) * PER_SOURCE;
    // No in-flight window: the broker sends the whole backlog at once.
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
    let state = tempfile::tempdir().unwrap();
    let text = Plant::new(SITE, state.path(), broker.port, plc.port)
        .extra(&format!(
            "[uplink]\nport = {}\nkeep_alive_s = 30\n",
            cloud.port
        ))
        .adapt("[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\n")
        .toml();
    let fp = qis_edge::config::parse_str(&text, "t").unwrap().devices[0]
        .context()
        .unwrap()
        .fingerprint()
        .unwrap();
    let mut observer = Observer::connect(broker.port).await;
    // The gateway's session exists on the fleet broker; then it is stopped and the backlog
    // queued for it.
    let gateway = start(&text);
    observer.wait_uplink_subscribed(SITE).await;
    stop(gateway).await;
    let peer = Observer::connect(cloud.port).await;
    for seed in 1..=SOURCES {
        for seq in 1..=PER_SOURCE {
            peer.publish_raw(&fp.topic(), signed_by(seed, peer_body(fp, seq)))
                .await;
        }
    }
    let gateway = start(&text);
    let stats = observer
        .wait_for("every packet counted", Duration::from_secs(120), |m| {
            m.topic == format!("qis/{SITE}/stats/intake")
                && m.json["accepted"].as_u64() == Some(total)
        })
        .await;
    assert_eq!(stats.json["rejected"]["replayed"], 0, "{}", stats.json);
    stop(gateway).await;
    // Every one was acknowledged: after a restart nothing is delivered again.
    let gateway = start(&text);
    observer.wait_uplink_subscribed(SITE).await;
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

/// A fleet broker node that dies: the uplink tries the next address of its `failover` list,
/// subscribes there and delivers the outcome packets queued meanwhile to that node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uplink_fails_over_to_the_next_broker_of_its_list() {
    let broker = mosquitto();
    let mut first = mosquitto();
    let second = mosquitto();
    let plc = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 20}]}),
    );
    let state = tempfile::tempdir().unwrap();
    let text = Plant::new(SITE, state.path(), broker.port, plc.port)
        .extra(&format!(
            "[uplink]\nport = {}\nfailover = [\"127.0.0.1:{}\"]\nkeep_alive_s = 5\n\
             reconnect_max_ms = 1000\n",
            first.port, second.port
        ))
        .toml();
    let mut observer = Observer::connect(broker.port).await;
    let mut fleet = Observer::connect_filter(second.port, "qis/+/ctx/#").await;
    let gateway = start(&text);
    observer.wait_uplink_subscribed(SITE).await;
    first.kill();
    observer
        .wait_for("the uplink lost", Duration::from_secs(20), |m| {
            m.topic == format!("qis/{SITE}/uplink") && m.json["state"] == "disconnected"
        })
        .await;
    let id = raise_at(&mut observer, SITE, plc.port).await;
    observer
        .publish(
            &format!("qis/{SITE}/cmd/confirm"),
            &json!({"alarm_id": id, "failure_mode": "lubrication"}).to_string(),
        )
        .await;
    let m = fleet
        .wait_for(
            "the packet on the second broker",
            Duration::from_secs(20),
            |m| !m.raw.is_empty(),
        )
        .await;
    let packet = qis_edge::packet::guard::decode(&m.raw).expect("an outcome packet");
    assert_eq!(packet.topic(), m.topic);
    wait_until(|| outbox_rows(state.path()) == 0, "the outbox empties").await;
    stop(gateway).await;
}
