//! Devices that accept a connection and then misbehave, served raw over TCP so every byte is
//! the test's: the gateway says what happened in a few true words, reports the link down
//! once (not once per reconnection), and a healthy device beside them is untouched.

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SITE: &str = "dev";

/// What a misbehaving device does with each request.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Half an answer, then the connection closed.
    HalfAnswer,
    /// An answer with another function code (coils to a register read).
    WrongFunction,
}

/// A raw TCP "device" on a free port; counts the connections it accepted.
async fn misbehaving(how: Misbehaviour) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = [0u8; 12];
                while socket.read_exact(&mut request).await.is_ok() {
                    let (tid, unit) = ([request[0], request[1]], request[6]);
                    match how {
                        Misbehaviour::HalfAnswer => {
                            let _ = socket.write_all(&[tid[0], tid[1], 0, 0, 0]).await;
                            return;
                        }
                        Misbehaviour::WrongFunction => {
                            let frame = [tid[0], tid[1], 0, 0, 0, 4, unit, 1, 1, 0];
                            if socket.write_all(&frame).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (port, accepted)
}

fn device(name: &str, port: u16) -> String {
    format!(
        "[[devices]]\ntype = \"modbus_tcp\"\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         poll_interval_ms = 50\nstats_interval_ms = 200\ntimeout_ms = 500\nbackoff_initial_ms = 100\nbackoff_max_ms = 400\n\
         [[devices.points]]\nname = \"v\"\nregister = \"holding\"\naddress = 0\n\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_accepts_and_then_misbehaves_is_reported_once_in_plain_words() {
    let broker = mosquitto();
    let healthy = modbus_server(
        &json!({"registers": [{"table": "holding", "address": 0, "type": "u16", "value": 7}]}),
    );
    let (half, half_accepts) = misbehaving(Misbehaviour::HalfAnswer).await;
    let (wrong, wrong_accepts) = misbehaving(Misbehaviour::WrongFunction).await;
    let state = tempfile::tempdir().unwrap();
    let text = format!(
        "[site]\nid = \"{SITE}\"\nstate_dir = \"{}\"\n[mqtt]\nport = {}\n\n{}{}{}",
        state.path().display(),
        broker.port,
        device("healthy", healthy.port),
        device("half", half),
        device("wrong", wrong),
    );
    let mut observer = Observer::connect(broker.port).await;
    let gateway = start(&text);
    let events = format!("qis/{SITE}/events");
    let mut reasons = std::collections::BTreeMap::new();
    for name in ["half", "wrong"] {
        let down = observer
            .saw_or_wait_for("the link down", Duration::from_secs(20), |m| {
                m.topic == events && m.json["device"] == name && m.json["link"] == "down"
            })
            .await;
        reasons.insert(name, down.json["error"].as_str().unwrap().to_string());
    }
    assert!(
        reasons["half"].ends_with("the device closed the connection in the middle of an answer"),
        "{}",
        reasons["half"]
    );
    assert!(
        reasons["wrong"].ends_with("the device answered function 1 to a request with function 3"),
        "{}",
        reasons["wrong"]
    );
    assert!(reasons.values().all(|r| r.len() < 160), "{reasons:?}");

    // Five more reconnections each: still one link event per device, never an "up".
    while half_accepts.load(Ordering::SeqCst) < 6 || wrong_accepts.load(Ordering::SeqCst) < 6 {
        observer
            .wait_for(
                "the healthy device's next stats",
                Duration::from_secs(20),
                |m| m.topic == format!("qis/{SITE}/stats/healthy"),
            )
            .await;
    }
    for name in ["half", "wrong"] {
        let link_events: Vec<_> = observer
            .seen
            .iter()
            .filter(|m| m.topic == events && m.json["type"] == "device" && m.json["device"] == name)
            .collect();
        assert_eq!(link_events.len(), 1, "{name}: {link_events:?}");
    }
    let good = observer
        .latest_or_wait_for(
            "the healthy value",
            Duration::from_secs(10),
            &format!("qis/{SITE}/metrics/healthy/v"),
            |m| m.json["quality"] == "good",
        )
        .await;
    assert_eq!(good.json["value"], 7.0);
    stop(gateway).await;
}
