//! Per-sample cost of the synchronous stages: decoding registers and evaluating an alarm rule.
//! `cargo bench --bench alarms`; compare each stage with its bare baseline in the same run.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use qis_edge::alarms::Rule;
use qis_edge::config::{AlarmKind, AlarmRuleConfig, ByteOrder, DataType};
use qis_edge::sources::modbus::decode_registers;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

fn decode(c: &mut Criterion) {
    let words: Vec<[u16; 2]> = (0..1024u32)
        .map(|i| {
            let b = (i as f32 * 0.37).to_bits();
            [(b >> 16) as u16, b as u16]
        })
        .collect();
    let mut group = c.benchmark_group("decode_f32");
    group.throughput(Throughput::Elements(words.len() as u64));
    group.bench_function("bare_from_be_bytes", |b| {
        b.iter(|| {
            let mut sum = 0.0f64;
            for w in &words {
                let [a, bb] = w[0].to_be_bytes();
                let [c2, d] = w[1].to_be_bytes();
                sum += f64::from(f32::from_be_bytes([a, bb, c2, d]));
            }
            black_box(sum)
        })
    });
    for order in [ByteOrder::Abcd, ByteOrder::Cdab] {
        group.bench_function(format!("decode_registers_{order:?}"), |b| {
            b.iter(|| {
                let mut sum = 0.0f64;
                for w in &words {
                    sum += decode_registers(black_box(w), DataType::F32, order).unwrap_or(0.0);
                }
                black_box(sum)
            })
        });
    }
    group.finish();
}

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

criterion_group!(benches, decode, alarm);
criterion_main!(benches);
