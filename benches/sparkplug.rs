//! Sparkplug B DDATA beside the JSON metric publication of the same sample: the cost of
//! encoding 100 changed points (one DDATA of 100 metrics by alias, against 100 JSON metric
//! payloads and their topics), and the bytes each puts on the wire (payload and topic; MQTT
//! adds a few bytes of header per message on top). `cargo bench --bench sparkplug`; compare
//! the two in the same run.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;
use qis_edge::mqtt::payload::Metric as JsonMetric;
use qis_edge::sources::Quality;
use qis_edge::sparkplug::proto::{Metric, Payload, Value};
use std::hint::black_box;

const POINTS: usize = 100;
const TS_MS: u64 = 1_796_350_634_481;

fn ddata(values: &[u16]) -> Vec<u8> {
    Payload {
        timestamp: Some(TS_MS),
        seq: Some(7),
        metrics: values
            .iter()
            .enumerate()
            .map(|(i, v)| Metric {
                alias: Some(3 + 6 * i as u64),
                timestamp: Some(TS_MS),
                value: Some(Value::Int(u32::from(*v))),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
    .encode_to_vec()
}

fn json(values: &[u16]) -> Vec<(String, Vec<u8>)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let m = JsonMetric {
                value: Some(f64::from(*v)),
                text: None,
                unit: "°C".into(),
                quality: Quality::Good,
                error: None,
                ts: "2026-12-04T02:17:14.481Z".into(),
            };
            (
                format!("qis/line7/metrics/pump/p{i}"),
                serde_json::to_vec(&m).unwrap(),
            )
        })
        .collect()
}

fn sparkplug(c: &mut Criterion) {
    let values: Vec<u16> = (0..POINTS as u16).map(|i| 200 + i).collect();
    let ddata_bytes = ddata(&values).len() + "spBv1.0/plant/DDATA/line7/pump".len();
    let json_bytes: usize = json(&values).iter().map(|(t, p)| t.len() + p.len()).sum();
    println!(
        "100 changed points: one DDATA {ddata_bytes} B (payload and topic) against 100 JSON \
         metric messages {json_bytes} B ({:.1}× the bytes, 100× the messages)",
        json_bytes as f64 / ddata_bytes as f64
    );
    let mut g = c.benchmark_group("100 changed points");
    g.throughput(Throughput::Elements(POINTS as u64));
    g.bench_function("sparkplug DDATA", |b| b.iter(|| ddata(black_box(&values))));
    g.bench_function("JSON metrics", |b| b.iter(|| json(black_box(&values))));
    g.finish();
}

criterion_group!(benches, sparkplug);
criterion_main!(benches);
