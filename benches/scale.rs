//! The fleet at scale: `qis-edge sim --plants N` at N = 10, 100 and 1 000 (override with
//! `QIS_SCALE_N=10,100`), five confirmations each, alternating rounds, each run on a fresh
//! mosquitto whose CPU it reads, or on the fleet broker nodes given as `QIS_SCALE_UPLINK`
//! (host:port,…, with `QIS_SCALE_BROKER_PID`=pid,… for their CPU; the local broker is then
//! a fresh mosquitto). Reports per N the median and spread over rounds of: confirmation →
//! applied p50 and p99, fleet-link bytes per confirmation (source) and per packet (receiver),
//! broker CPU per confirmation, memory per gateway instance and the late joiner's time, and
//! each figure's growth from the smallest N. Run: `cargo bench --bench scale`.

use serde_json::Value;
use std::process::{Command, Stdio};

const ROUNDS: usize = 3;

/// A fresh mosquitto on a free port; killed on drop.
struct Mosquitto(std::process::Child, u16);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mosquitto() -> Mosquitto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("m.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (apt install mosquitto)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Mosquitto(child, port)
}

/// One run at `n` plants: its scale.json.
fn run(n: usize) -> Value {
    let local = mosquitto();
    let out = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qis-edge"));
    cmd.args(["sim", "--plants", &n.to_string(), "--confirmations", "5"])
        .arg("--broker")
        .arg(format!("127.0.0.1:{}", local.1))
        .arg("--out")
        .arg(out.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    match std::env::var("QIS_SCALE_UPLINK") {
        Ok(uplink) => {
            cmd.arg("--uplink").arg(uplink);
            if let Ok(pids) = std::env::var("QIS_SCALE_BROKER_PID") {
                cmd.arg("--broker-pid").arg(pids);
            }
        }
        Err(_) => {
            cmd.arg("--broker-pid").arg(local.0.id().to_string());
        }
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "sim --plants {n}: {status}");
    serde_json::from_str(&std::fs::read_to_string(out.path().join("scale.json")).unwrap()).unwrap()
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The figures of one run, by name.
fn figures(r: &Value) -> Vec<(&'static str, f64)> {
    let mut latencies: Vec<f64> = r["confirmations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| {
            d["latencies_ms"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_f64)
        })
        .collect();
    let sent: Vec<f64> = r["confirmations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["uplink_bytes_sent"].as_f64())
        .collect();
    let delivered: f64 = r["confirmations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["delivered"].as_f64().unwrap())
        .sum();
    let expected: f64 = r["confirmations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["expected"].as_f64().unwrap())
        .sum();
    vec![
        ("deliveries / expected", delivered / expected.max(1.0)),
        ("applied p50, ms", quantile(&mut latencies, 0.5)),
        ("applied p99, ms", quantile(&mut latencies, 0.99)),
        (
            "source bytes per confirmation",
            sent.iter().sum::<f64>() / sent.len().max(1) as f64,
        ),
        (
            "receiver bytes per packet",
            r["receiver_bytes_per_packet"].as_f64().unwrap_or(f64::NAN),
        ),
        (
            "broker CPU per confirmation, ms",
            r["broker_cpu_ms_per_confirmation"]
                .as_f64()
                .unwrap_or(f64::NAN),
        ),
        (
            "memory per instance, KiB",
            r["rss_per_plant_kib"].as_f64().unwrap(),
        ),
        (
            "joiner to all 5, ms",
            r["joiner_ms"].as_f64().unwrap_or(f64::NAN),
        ),
        ("misrouted", r["misrouted"].as_f64().unwrap()),
    ]
}

fn main() {
    let sizes: Vec<usize> = std::env::var("QIS_SCALE_N")
        .unwrap_or_else(|_| "10,100,1000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("QIS_SCALE_N: numbers, comma-separated")
        })
        .collect();
    let mut runs: Vec<Vec<Vec<(&str, f64)>>> = vec![Vec::new(); sizes.len()];
    for round in 0..ROUNDS {
        for (i, &n) in sizes.iter().enumerate() {
            eprintln!("round {}/{ROUNDS}: {n} plants", round + 1);
            runs[i].push(figures(&run(n)));
        }
    }
    let names: Vec<&str> = runs[0][0].iter().map(|(n, _)| *n).collect();
    print!("| figure |");
    for n in &sizes {
        print!(" N = {n} (median, min–max) |");
    }
    println!(" growth, N = {} → {} |", sizes[0], sizes[sizes.len() - 1]);
    println!("|---|{}---|", "---|".repeat(sizes.len()));
    for (f, name) in names.iter().enumerate() {
        print!("| {name} |");
        let mut medians = Vec::new();
        for r in &runs {
            let mut v: Vec<f64> = r.iter().map(|fig| fig[f].1).collect();
            let m = quantile(&mut v, 0.5);
            medians.push(m);
            print!(" {m:.1} ({:.1}–{:.1}) |", v[0], v[v.len() - 1]);
        }
        println!(" {:.2}× |", medians[medians.len() - 1] / medians[0]);
    }
}
