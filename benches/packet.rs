//! Outcome packet costs: encode, sign, decode, and the full intake `verify` (decode, bounds,
//! signature, time, replay) beside a bare `ed25519_dalek` verification of the same message, so
//! the overhead of everything that is not the signature check shows as a ratio.
//! `cargo bench --bench packet`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use qis_edge::packet::guard::decode;
use qis_edge::packet::{
    label, verify, BearingDefect, Direction, FailureMode, Feature, Fingerprint, Frequency, Outcome,
    OutcomeKind, PacketBody, ReplayGuard, SignalPattern, TrustPolicy, SIGNATURE_LEN, VERSION,
};
use std::hint::black_box;

const NOW: u64 = 1_795_000_000;

fn body() -> PacketBody {
    PacketBody {
        version: VERSION,
        fingerprint: Fingerprint([3; 16]),
        pattern: SignalPattern {
            feature: Feature::BearingDefect(BearingDefect::Bpfo),
            frequency: Frequency::At(107.36),
            threshold: 0.75,
            unit: label("unit", "g").unwrap(),
            direction: Direction::High,
        },
        outcome: Outcome {
            kind: OutcomeKind::FailureConfirmed,
            failure_mode: FailureMode::BearingOuterRace,
            label: label("label", "outer race spall").unwrap(),
        },
        confidence: 0.8,
        validations: 3,
        refutations: 1,
        lead_time_s: 1_209_600,
        issued_at: NOW,
        ttl_s: 2_592_000,
        seq: 42,
        source: [0; 32],
        equipment_label: label("equipment_label", "centrifugal pump").unwrap(),
    }
}

fn packet(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[5; 32]);
    let signed = body().sign(&key).unwrap();
    let bytes = signed.to_bytes().unwrap();
    let body_bytes = &bytes[..bytes.len() - SIGNATURE_LEN];
    let message = PacketBody::signing_message(body_bytes);
    let policy = TrustPolicy::default();

    let mut group = c.benchmark_group("outcome_packet");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| {
        b.iter(|| black_box(signed.body.encode().unwrap()))
    });
    group.bench_function("sign", |b| b.iter(|| black_box(body().sign(&key).unwrap())));
    group.bench_function("decode", |b| {
        b.iter(|| black_box(decode(black_box(&bytes)).unwrap()))
    });
    group.bench_function("bare_ed25519_verify", |b| {
        b.iter(|| {
            let vk = VerifyingKey::from_bytes(&signed.body.source).unwrap();
            let sig = Signature::from_bytes(&signed.signature);
            black_box(vk.verify_strict(black_box(&message), &sig).is_ok())
        })
    });
    group.bench_function("decode_and_verify", |b| {
        b.iter_batched(
            || ReplayGuard::new(1024),
            |mut guard| black_box(verify(black_box(&bytes), NOW, &mut guard, &policy).is_ok()),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, packet);
criterion_main!(benches);
