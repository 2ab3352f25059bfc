//! The fleet simulation's cost: all six shared lives replayed alone (`qis-edge sim --isolated`,
//! full compression) against the shortest life alone, alternating rounds. Reports the wall time
//! of six lives against the 60 s budget and against the replay's own length (the staggered
//! lives' span at 1 000×: the floor set by one snapshot per 10 ms poll), and the peak resident
//! memory per simulated plant: (six lives − one life) / 5. Run: `cargo bench --bench sim`.

mod side;
use side::median;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const ROUNDS: usize = 3;
const SPEED: f64 = 1000.0;

fn lives() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/bearings/run-to-failure/femto")
}

/// Peak resident memory of a process, KiB, from its `VmHWM`.
fn hwm_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// One `sim --isolated` run of `order` (empty: all): wall seconds and peak RSS, KiB.
fn run(order: &str) -> (f64, u64) {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qis-edge"));
    cmd.args(["sim", "--isolated", "--data"])
        .arg(lives())
        .arg("--out")
        .arg(out.path())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if !order.is_empty() {
        cmd.args(["--order", order]);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("qis-edge sim");
    let mut peak = 0;
    // Sampled while it runs: VmHWM only grows, so the last reading is within one sample of the
    // peak.
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(hwm_kib(child.id()).unwrap_or(0));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let wall = started.elapsed().as_secs_f64();
    assert!(child.wait().unwrap().success(), "sim {order} failed");
    (wall, peak)
}

/// The span of the staggered replay of all lives by name, life seconds / speed: each starts
/// when the one before it has lived half its life.
fn replay_span_s() -> f64 {
    let all = qis_edge::sim::life::load_dir(&lives()).unwrap();
    let mut start = 0.0f64;
    let mut end = 0.0f64;
    for l in &all {
        end = end.max(start + l.life_s());
        start += 0.5 * l.life_s();
    }
    end / SPEED
}

fn main() {
    let span = replay_span_s();
    let (mut six_wall, mut six_rss, mut one_rss) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate which goes first, so drift on a shared machine falls on both.
        let order: [bool; 2] = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for six in order {
            if six {
                let (w, r) = run("");
                six_wall.push(w);
                six_rss.push(r as f64);
            } else {
                let (_, r) = run("femto_Bearing3_1");
                one_rss.push(r as f64);
            }
        }
    }
    let (w, wlo, whi) = median(six_wall.clone());
    println!(
        "six lives alone at {SPEED}×: {w:.1} s median (spread {wlo:.1}–{whi:.1}) over {ROUNDS} rounds; \
         {:.2} of the 60 s budget; {:.2}× the replay's own span of {span:.1} s",
        w / 60.0,
        w / span
    );
    let per_plant: Vec<f64> = six_rss
        .iter()
        .zip(&one_rss)
        .map(|(s, o)| (s - o) / 5.0 / 1024.0)
        .collect();
    let (p, plo, phi) = median(per_plant);
    let (s, _, _) = median(six_rss);
    let (o, _, _) = median(one_rss);
    println!(
        "peak RSS: six plants {:.1} MiB, one plant {:.1} MiB; per added plant {p:.1} MiB median \
         (spread {plo:.1}–{phi:.1}); six plants {:.2}× one",
        s / 1024.0,
        o / 1024.0,
        s / o
    );
}
