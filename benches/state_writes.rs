//! What the state costs the card: bytes written to the state directory and commit latency per
//! answer and per accepted peer packet, the state database against the whole-file JSON saves
//! of the version before it (`outcomes.json` and an outbox file per answer, `intake.json` per
//! peer packet, each rewritten whole, fsynced and renamed, the old copy kept as `.bak`).
//! Side by side in alternating rounds; bytes are what the process hands to `write`
//! (`/proc/self/io` `wchar`), latency is wall time per operation, fsyncs included.
//!
//! `cargo bench --bench state_writes`

mod side;
use side::median;

use qis_edge::config::StorageConfig;
use qis_edge::db::Db;
use qis_edge::intake::state::IntakeStore;
use qis_edge::outcomes::outbox::Queued;
use qis_edge::outcomes::{AlarmRecord, Answer, Answers, Outcome, OutcomeState};
use qis_edge::packet::ReplayGuard;
use qis_edge::synthesis::{Proposal, SynthesisState};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

const ROUNDS: usize = 3;
const OPS: usize = 40;
const PEERS: usize = 100;

fn wchar() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar")
}

fn record(i: usize) -> AlarmRecord {
    AlarmRecord {
        device: "pump".into(),
        point: "bearing_temp".into(),
        rule: "high".into(),
        raised_at_ms: 1_796_000_000_000 + i as u64,
        threshold: Some(80.0),
        healthy: None,
        unit: "°C".into(),
        fingerprint: Some("66739cb8176782c9b63b70788d464486".into()),
        pattern: "process_value:high".parse().unwrap(),
        frequency: qis_edge::packet::Frequency::None,
        answer: None,
        spc: None,
        peers: vec!["a999f862df0a3572e3bdbf88fd8ce6736e546d2e6e2fba4a10ab481acb73575c".into()],
    }
}

fn state_with(alarms: usize) -> OutcomeState {
    let mut s = OutcomeState::default();
    for i in 0..alarms {
        s.raised(format!("pump/bearing_temp/high/{i}"), record(i));
        s.occurrences
            .insert("pump/bearing_temp/high".into(), i as u64);
    }
    s
}

fn answer(at_ms: u64) -> Answer {
    Answer {
        outcome: Outcome::Confirmed,
        failure_mode: Some("lubrication".into()),
        note: Some("greased".into()),
        by: Some("j.doe".into()),
        at_ms,
    }
}

/// (bytes per op, latencies in µs).
type Cost = (f64, Vec<f64>);

/// The earlier version: the whole `outcomes.json` and one outbox file per answer.
fn answers_json(dir: &Path, alarms: usize) -> Cost {
    let mut state = state_with(alarms);
    let path = dir.join("outcomes.json");
    qis_edge::store::save_json(&path, &state).unwrap();
    let outbox = dir.join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let (before, mut lat) = (wchar(), Vec::new());
    for i in 0..OPS {
        let t = Instant::now();
        let id = format!("pump/bearing_temp/high/{i}");
        state.answer(&id, answer(1_796_100_000_000)).unwrap();
        state.last_seq += 1;
        let packet = vec![0x5au8; 180];
        qis_edge::store::write_atomic(
            &outbox.join(format!("{:020}.pkt", state.last_seq)),
            &packet,
            0o600,
        )
        .unwrap();
        qis_edge::store::save_json(&path, &state).unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    ((wchar() - before) as f64 / OPS as f64, lat)
}

/// The state database: one transaction per answer.
fn answers_db(dir: &Path, alarms: usize) -> Cost {
    let (db, _) = Db::open(dir).unwrap();
    let mut answers = Answers::load(db, StorageConfig::default(), 10_000).unwrap();
    answers.import(state_with(alarms)).unwrap();
    let (before, mut lat) = (wchar(), Vec::new());
    for i in 0..OPS {
        let t = Instant::now();
        let id = format!("pump/bearing_temp/high/{i}");
        answers
            .answer(
                &id,
                answer(1_796_100_000_000),
                1_796_100_000_000,
                |p, seq| {
                    Some(Queued {
                        seq,
                        alarm_id: p.alarm_id.clone(),
                        topic: "qis/v1/ctx/66739cb8176782c9b63b70788d464486".into(),
                        bytes: vec![0x5a; 180],
                        expires_at: 1_798_692_000,
                        at_ms: 0,
                    })
                },
            )
            .unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    ((wchar() - before) as f64 / OPS as f64, lat)
}

fn proposal(seq: u64) -> Proposal {
    Proposal {
        seq,
        threshold: 72.5,
        ratio: None,
        confidence: 0.75,
        validations: 5,
        refutations: 1,
        lead_time_s: 3600,
        false_alarm: false,
        issued_at: 1_796_000_000,
        expires_at: 1_796_086_400,
        level: qis_edge::packet::MatchLevel::Full,
    }
}

/// `PEERS` sources with a live proposal each and a replay memory.
fn synthesis_with(guard: &mut ReplayGuard) -> SynthesisState {
    let mut s = SynthesisState::default();
    let mut by_source = BTreeMap::new();
    for p in 0..PEERS {
        let source = [p as u8; 32];
        for seq in 1..=10 {
            guard.remember(source, seq);
        }
        by_source.insert(hex::encode(source), proposal(10));
        s.trust.insert(hex::encode(source), 0.5);
    }
    let key = serde_json::from_value(serde_json::json!(
        "66739cb8176782c9b63b70788d464486/process_value/high/°C"
    ))
    .unwrap();
    s.proposals.insert(key, by_source);
    s
}

#[derive(serde::Serialize)]
struct IntakeJson<'a> {
    #[serde(flatten)]
    synthesis: &'a SynthesisState,
    replay: Vec<(String, Vec<u64>)>,
}

/// One peer packet accepted: a new sequence number from one source, its proposal replaced.
fn accept(s: &mut SynthesisState, guard: &mut ReplayGuard, i: usize) {
    let source = [(i % PEERS) as u8; 32];
    let seq = 100 + i as u64;
    guard.remember(source, seq);
    for by_source in s.proposals.values_mut() {
        by_source.insert(hex::encode(source), proposal(seq));
    }
    s.applied += 1;
}

fn intake_json(dir: &Path) -> Cost {
    let mut guard = ReplayGuard::new(4096);
    let mut s = synthesis_with(&mut guard);
    let path = dir.join("intake.json");
    let (before, mut lat) = (wchar(), Vec::new());
    for i in 0..OPS {
        let t = Instant::now();
        accept(&mut s, &mut guard, i);
        let file = IntakeJson {
            synthesis: &s,
            replay: guard
                .remembered()
                .into_iter()
                .map(|(k, v)| (hex::encode(k), v))
                .collect(),
        };
        qis_edge::store::save_json(&path, &file).unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    ((wchar() - before) as f64 / OPS as f64, lat)
}

fn intake_db(dir: &Path) -> Cost {
    let (db, _) = Db::open(dir).unwrap();
    drop(db);
    let mut store = IntakeStore::new(Db::connect(dir).unwrap());
    let mut guard = ReplayGuard::new(4096);
    let mut s = synthesis_with(&mut guard);
    store.save(&s, &mut guard).unwrap();
    let (before, mut lat) = (wchar(), Vec::new());
    for i in 0..OPS {
        let t = Instant::now();
        accept(&mut s, &mut guard, i);
        store.save(&s, &mut guard).unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    ((wchar() - before) as f64 / OPS as f64, lat)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    type Case = (&'static str, fn(&Path) -> Cost, fn(&Path) -> Cost);
    let cases: [Case; 3] = [
        (
            "answer, 200 alarms kept",
            |d| answers_json(d, 200),
            |d| answers_db(d, 200),
        ),
        (
            "answer, 1300 alarms kept",
            |d| answers_json(d, 1300),
            |d| answers_db(d, 1300),
        ),
        ("peer packet, 100 peers", intake_json, intake_db),
    ];
    for (what, old, new) in cases {
        let (mut bytes_ratio, mut p50_ratio, mut p99_ratio) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            // Alternate which goes first.
            let ((ob, mut ol), (nb, mut nl)) = if round % 2 == 0 {
                let o = old(a.path());
                (o, new(b.path()))
            } else {
                let n = new(b.path());
                (old(a.path()), n)
            };
            let (o50, o99, n50, n99) = (
                percentile(&mut ol, 0.5),
                percentile(&mut ol, 0.99),
                percentile(&mut nl, 0.5),
                percentile(&mut nl, 0.99),
            );
            println!(
                "{what}, round {}: JSON files {ob:.0} B/op p50 {o50:.0} µs p99 {o99:.0} µs; \
                 database {nb:.0} B/op p50 {n50:.0} µs p99 {n99:.0} µs",
                round + 1
            );
            bytes_ratio.push(ob / nb);
            p50_ratio.push(o50 / n50);
            p99_ratio.push(o99 / n99);
        }
        for (name, r) in [
            ("bytes written, JSON / database", bytes_ratio),
            ("p50 latency, JSON / database", p50_ratio),
            ("p99 latency, JSON / database", p99_ratio),
        ] {
            let (m, lo, hi) = median(r);
            println!("{what}: {name}: median {m:.2} (spread {lo:.2}–{hi:.2}) over {ROUNDS} rounds");
        }
    }
}
