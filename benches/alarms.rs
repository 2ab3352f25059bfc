//! Per-sample cost of evaluating an alarm rule. `cargo bench --bench alarms` (register decoding:
//! `cargo bench --bench decode`).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use qis_edge::alarms::Rule;
use qis_edge::config::{AlarmKind, AlarmRuleConfig};
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

fn alarm(c: &mut Criterion) {
    let config = AlarmRuleConfig {
        name: None,
        kind: AlarmKind::High,
        warning: Some(80.0),
        alarm: Some(90.0),
        deadband: 2.0,
        on_delay_ms: 1000,
        adapt: None,
        confirmed_by: None,
    };
    // A value that swings through both levels, so raises, escalations and clears all occur.
    let values: Vec<f64> = (0..4096)
        .map(|i| 70.0 + 25.0 * (i as f64 * 0.01).sin())
        .collect();
    let start = Instant::now();
    let wall = SystemTime::now();
    let mut group = c.benchmark_group("alarm_rule");
    group.throughput(Throughput::Elements(values.len() as u64));
    group.bench_function("evaluate", |b| {
        b.iter_batched(
            || Rule::new(config.clone()),
            |mut rule| {
                let mut transitions = 0u32;
                for (i, v) in values.iter().enumerate() {
                    let dt = Duration::from_millis(i as u64 * 100);
                    if rule.evaluate(*v, start + dt, wall + dt).is_some() {
                        transitions += 1;
                    }
                }
                black_box(transitions)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, alarm);
criterion_main!(benches);
