//! Outcome packet costs: encode, sign, decode, and the full intake `verify` (decode, bounds,
//! signature, time, replay) beside a bare `ed25519_dalek` verification of the same message, so
//! the overhead of everything that is not the signature check shows as a ratio.
//!
//! `intake`: packets verified *and applied* (guard, target match, proposal, effective level
//! with its provenance over 16 live sources) per second on one core, beside a bare Ed25519
//! verification of the same packets.
//!
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
        relative: qis_edge::packet::Relative::None,
        levels: qis_edge::packet::Levels::None,
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

fn intake(c: &mut Criterion) {
    use qis_edge::synthesis::{Rails, SynthesisConfig, SynthesisState, Target};
    let keys: Vec<SigningKey> = (0..16u8)
        .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
        .collect();
    /// Wire bytes, signed message, public key, signature.
    type Signed = (Vec<u8>, Vec<u8>, [u8; 32], [u8; 64]);
    let packets: Vec<Signed> = (0..1024u64)
        .map(|i| {
            let mut b = body();
            b.seq = 100 + i;
            b.pattern.threshold = 0.5 + (i % 7) as f32 * 0.01;
            let p = b.sign(&keys[(i % 16) as usize]).unwrap();
            let bytes = p.to_bytes().unwrap();
            let message = PacketBody::signing_message(&bytes[..bytes.len() - SIGNATURE_LEN]);
            (bytes, message, p.body.source, p.signature)
        })
        .collect();
    let policy = TrustPolicy::default();
    let settings = SynthesisConfig::default();
    let rails = Rails {
        baseline: 0.75,
        floor: 0.4,
        ceiling: 0.75,
        direction: Direction::High,
        tighten_only: true,
        healthy: None,
        relative: false,
        accepts: qis_edge::packet::MatchLevel::Full,
    };

    let mut group = c.benchmark_group("intake");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("bare_ed25519_verify", |b| {
        b.iter(|| {
            let (_, message, source, signature) = &packets[i % packets.len()];
            i += 1;
            let vk = VerifyingKey::from_bytes(source).unwrap();
            black_box(
                vk.verify_strict(black_box(message), &Signature::from_bytes(signature))
                    .is_ok(),
            )
        })
    });
    let mut state = SynthesisState::default();
    let mut j = 0usize;
    group.bench_function("verify_and_apply", |b| {
        b.iter_batched(
            || {
                j += 1;
                (ReplayGuard::new(4096), &packets[j % packets.len()].0)
            },
            |(mut guard, bytes)| {
                let v = verify(black_box(bytes), NOW, &mut guard, &policy).unwrap();
                let key = Target::of_packet(v.body()).key();
                state.offer(&key, v.body());
                black_box(state.effective(&settings, &key, &rails).value)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, packet, intake);
criterion_main!(benches);
