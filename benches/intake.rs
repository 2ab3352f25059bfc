//! A peer packet's intake beside a bare Ed25519 verification of it, by the number of live
//! sources proposing for the same target (1, 100, 1 000, 4 096), side by side in alternating
//! rounds: verification (decode, bounds, signature, time, replay), the proposal, the effective
//! level with its provenance updated for the packet's source, and the retained threshold's JSON with its bounded provenance.
//! The state database's commit is per tick, not per packet (`cargo bench --bench state_writes`).
//! `cargo bench --bench intake`.

mod side;

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use qis_edge::mqtt::payload::PROVENANCE_SHOWN;
use qis_edge::packet::{
    label, verify, Direction, FailureMode, Feature, Fingerprint, Frequency, Outcome, OutcomeKind,
    PacketBody, ReplayGuard, SignalPattern, TrustPolicy, SIGNATURE_LEN, VERSION,
};
use qis_edge::synthesis::{Rails, SynthesisConfig, SynthesisState, Target};
use side::{compare, Side};
use std::hint::black_box;

const NOW: u64 = 1_795_000_000;
/// Packets per side and round.
const PACKETS: usize = 2_000;

fn body(seq: u64, i: usize) -> PacketBody {
    PacketBody {
        version: VERSION,
        fingerprint: Fingerprint([3; 16]),
        pattern: SignalPattern {
            feature: Feature::ProcessValue,
            frequency: Frequency::None,
            threshold: 70.0 + (i % 13) as f32 * 0.25,
            unit: label("unit", "°C").unwrap(),
            direction: Direction::High,
        },
        outcome: Outcome {
            kind: OutcomeKind::FailureConfirmed,
            failure_mode: FailureMode::Lubrication,
            label: label("label", "dry bearing").unwrap(),
        },
        confidence: 0.8,
        validations: 3,
        refutations: 1,
        lead_time_s: 86_400,
        issued_at: NOW,
        ttl_s: 2_592_000 - (i as u32 % 1000),
        seq,
        source: [0; 32],
        equipment_label: label("equipment_label", "centrifugal pump").unwrap(),
        relative: qis_edge::packet::Relative::None,
        levels: qis_edge::packet::Levels::None,
    }
}

fn key(i: usize) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    SigningKey::from_bytes(&seed)
}

fn main() {
    let settings = SynthesisConfig::default();
    let rails = Rails {
        baseline: 80.0,
        floor: 60.0,
        ceiling: 80.0,
        direction: Direction::High,
        tighten_only: true,
        healthy: None,
        relative: false,
        accepts: qis_edge::packet::MatchLevel::Full,
    };
    let policy = TrustPolicy::default();
    for sources in [1usize, 100, 1000, 4096] {
        let keys: Vec<SigningKey> = (0..sources).map(key).collect();
        // Every source live, then a stream of newer packets from them in turn.
        let mut state = SynthesisState::default();
        let mut guard = ReplayGuard::new(8192);
        let target = Target::of_packet(&body(1, 0)).key();
        for (i, k) in keys.iter().enumerate() {
            let bytes = body(1, i).sign(k).unwrap().to_bytes().unwrap();
            let v = verify(&bytes, NOW, &mut guard, &policy).unwrap();
            state.offer(&target, v.body());
        }
        // Wire bytes, and for the bare side the signed message, public key and signature.
        type Signed = (Vec<u8>, Vec<u8>, [u8; 32], [u8; 64]);
        let stream: Vec<Signed> = (0..PACKETS * 8)
            .map(|n| {
                let i = n % sources;
                let seq = 2 + (n / sources) as u64;
                let p = body(seq, i).sign(&keys[i]).unwrap();
                let bytes = p.to_bytes().unwrap();
                let message = PacketBody::signing_message(&bytes[..bytes.len() - SIGNATURE_LEN]);
                (bytes, message, p.body.source, p.signature)
            })
            .collect();
        // The rule's level, kept between packets as the gateway keeps it.
        let mut effective = state.effective(&settings, &target, &rails);
        let mut bare_at = 0usize;
        let mut full_at = 0usize;
        let mut sides = [
            Side::new("bare Ed25519 verify", || {
                for _ in 0..PACKETS {
                    let (_, message, source, signature) = &stream[bare_at % stream.len()];
                    bare_at += 1;
                    let vk = VerifyingKey::from_bytes(source).unwrap();
                    black_box(
                        vk.verify_strict(message, &Signature::from_bytes(signature))
                            .is_ok(),
                    );
                }
                PACKETS as u64
            }),
            Side::new(format!("intake, {sources} live sources"), || {
                for _ in 0..PACKETS {
                    if full_at == stream.len() {
                        // The stream's sequence numbers are used up: start over on a fresh
                        // replay memory (outside the stream it counts as one more packet).
                        full_at = 0;
                        guard = ReplayGuard::new(8192);
                    }
                    let bytes = &stream[full_at].0;
                    full_at += 1;
                    let Ok(v) = verify(bytes, NOW, &mut guard, &policy) else {
                        continue;
                    };
                    state.offer(&target, v.body());
                    let source = hex::encode(v.body().source);
                    state.update_effective(&settings, &target, &rails, &mut effective, &source);
                    let (summary, total) = effective.summary(PROVENANCE_SHOWN);
                    black_box((serde_json::to_vec(&summary).unwrap(), total));
                }
                PACKETS as u64
            }),
        ];
        compare(
            &format!("peer packet intake, {sources} live sources"),
            5,
            &mut sides,
        );
    }
}
