//! Per-sample cost of the core: a batch of 100 samples (one Modbus device's poll) through
//! `Core::handle` (point state, rule evaluation, metric rate limit and JSON), beside the floor
//! of the same work done bare: one `Rule::evaluate` and one metric serialised per sample.
//! Runs with no broker and no runtime, which the sans-IO core makes possible.
//! `cargo bench --bench core`; compare the two in the same run.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qis_edge::alarms::Rule;
use qis_edge::config::{AlarmKind, AlarmRuleConfig};
use qis_edge::core::{Core, Input, Now, Parts};
use qis_edge::intake::Intake;
use qis_edge::outcomes::Answers;
use qis_edge::sources::{Quality, Sample, SourceEvent};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

const POINTS: usize = 100;

fn config() -> qis_edge::config::Config {
    let mut text = String::from(
        "[site]\nid = \"b\"\n[metrics]\nmin_interval_ms = 0\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"d\"\nhost = \"127.0.0.1\"\n",
    );
    for i in 0..POINTS {
        let _ = write!(
            text,
            "[[devices.points]]\nname = \"p{i}\"\nregister = \"holding\"\naddress = {i}\n[[devices.points.alarms]]\nkind = \"high\"\nalarm = 1000000.0\n"
        );
    }
    qis_edge::config::parse_str(&text, "bench.toml").expect("valid")
}

fn samples(round: u64, at: SystemTime) -> Vec<Sample> {
    (0..POINTS)
        .map(|p| Sample::number(0, p, (round * 7 + p as u64) as f64 * 0.5, at))
        .collect()
}

fn core(c: &mut Criterion) {
    let config = config();
    let t0 = Now::current();
    let parts = Parts {
        answers: Answers::memory(),
        sharing: None,
        intake: Intake::new(qis_edge::packet::TrustPolicy::default(), [0; 32]),
        intake_store: None,
        synthesis: Default::default(),
    };
    let mut core = Core::new(&config, parts, t0);
    let mut group = c.benchmark_group("core_per_poll_of_100_points");
    group.throughput(Throughput::Elements(POINTS as u64));
    let mut round = 0u64;
    group.bench_function("core_handle", |b| {
        b.iter(|| {
            round += 1;
            let now = t0.after(Duration::from_millis(round));
            let batch = samples(round, now.wall);
            core.handle(Input::Source(SourceEvent::Samples(batch)), now);
            black_box(core.drain().publications.len())
        })
    });
    let mut rules: Vec<Rule> = (0..POINTS)
        .map(|_| {
            Rule::new(AlarmRuleConfig {
                name: None,
                kind: AlarmKind::High,
                warning: None,
                alarm: Some(1_000_000.0),
                deadband: 0.0,
                on_delay_ms: 0,
                adapt: None,
                confirmed_by: None,
            })
        })
        .collect();
    let mut bare = 0u64;
    group.bench_function("bare_evaluate_and_serialise", |b| {
        b.iter(|| {
            bare += 1;
            let now = t0.after(Duration::from_millis(bare));
            let mut bytes = 0usize;
            for (rule, s) in rules.iter_mut().zip(samples(bare, now.wall)) {
                let value = s.value.unwrap_or_default();
                black_box(rule.evaluate(value, now.mono, now.wall));
                let topic = format!("qis/b/metrics/d/p{}", s.point);
                let json = serde_json::json!({
                    "value": value, "unit": "", "quality": Quality::Good,
                    "ts": humantime::format_rfc3339_millis(s.at).to_string(),
                });
                bytes += topic.len() + serde_json::to_vec(&json).map_or(0, |v| v.len());
            }
            black_box(bytes)
        })
    });
    group.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);
