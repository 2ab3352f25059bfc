//! Cost per observation of the SPC engine in phase II: an individuals chart with all eight
//! Nelson rules, tabular CUSUM and EWMA. `cargo bench --bench spc`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qis_edge::analysis::spc::{
    Calibration, ChartKind, CusumSettings, EwmaSettings, RuleSet, SpcEngine, SpcSettings,
};
use std::hint::black_box;

fn spc(c: &mut Criterion) {
    // A deterministic process with noise, drift and the odd excursion.
    let data: Vec<f64> = (0..10_000u32)
        .map(|i| {
            let x = i as f64;
            74.0 + 0.01 * (x * 0.7).sin()
                + 0.004 * (x * 0.13).cos()
                + if i % 997 == 0 { 0.05 } else { 0.0 }
        })
        .collect();
    let settings = SpcSettings {
        chart: ChartKind::Imr,
        subgroup_size: 1,
        calibration: Calibration::Given {
            center: 74.0,
            sigma: 0.01,
        },
        rules: Some(RuleSet::Nelson),
        enabled_rules: None,
        cusum: Some(CusumSettings { k: 0.5, h: 5.0 }),
        ewma: Some(EwmaSettings {
            lambda: 0.2,
            l: 3.0,
        }),
    };
    let mut engine = SpcEngine::new(settings).unwrap();
    let mut out = Vec::with_capacity(1);
    let mut group = c.benchmark_group("spc");
    group.throughput(Throughput::Elements(data.len() as u64));
    group.bench_function("imr_nelson_cusum_ewma_per_point", |b| {
        b.iter(|| {
            let mut flagged = 0u32;
            for x in &data {
                out.clear();
                engine.push(black_box(*x), &mut out);
                flagged += out.iter().filter(|p| !p.violations.is_empty()).count() as u32;
            }
            black_box(flagged)
        })
    });
    group.finish();
}

criterion_group!(benches, spc);
criterion_main!(benches);
