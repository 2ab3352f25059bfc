//! Outcome packets as a protocol: golden vectors from an independent implementation, every
//! rejection reason, and properties over arbitrary packets and bytes.

mod common;

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use qis_edge::packet::guard::{decode, RejectionKind, REPLAY_WINDOW};
use qis_edge::packet::{
    label, verify, BearingDefect, Context, Direction, FailureMode, Feature, Fingerprint, Frequency,
    Levels, Outcome, OutcomeKind, PacketBody, Rejection, Relative, ReplayGuard, SignalPattern,
    SpcChart, SpcRuleSet, TrustPolicy, MAX_PACKET_LEN, VERSION,
};
use serde_json::Value;
use std::collections::HashSet;

const NOW: u64 = 1_795_000_000;

/// The golden vectors of each version, v1 first.
const VECTOR_FILES: [&str; 3] = [
    "tests/vectors/outcome_v1.json",
    "tests/vectors/outcome_v2.json",
    "tests/vectors/outcome_v3.json",
];

fn vectors_of(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(common::repo().join(file)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn vectors() -> Vec<Value> {
    VECTOR_FILES.iter().flat_map(|f| vectors_of(f)).collect()
}

fn seed(v: &Value) -> SigningKey {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(v["seed_hex"].as_str().unwrap(), &mut seed).unwrap();
    SigningKey::from_bytes(&seed)
}

fn named<T: serde::de::DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap()
}

/// Builds the body a vector describes, through the gateway's own types.
fn body_from_vector(v: &Value) -> PacketBody {
    let context: Context = serde_json::from_value(v["context"].clone()).unwrap();
    let p = &v["pattern"];
    let f = &p["feature"];
    let feature = match f["kind"].as_str().unwrap() {
        "bearing_defect" => Feature::BearingDefect(named::<BearingDefect>(&f["defect"])),
        "spc_rule" => Feature::SpcRule {
            chart: named::<SpcChart>(&f["chart"]),
            rules: named::<SpcRuleSet>(&f["rules"]),
            rule: f["rule"].as_u64().unwrap() as u8,
        },
        other => panic!("vector feature {other} not mapped in this test"),
    };
    let frequency = match &p["frequency"] {
        Value::Null => Frequency::None,
        fr if fr.get("at_hz").is_some() => Frequency::At(fr["at_hz"].as_f64().unwrap() as f32),
        fr => Frequency::Band {
            lo: fr["band_hz"][0].as_f64().unwrap() as f32,
            hi: fr["band_hz"][1].as_f64().unwrap() as f32,
        },
    };
    let o = &v["outcome"];
    // The v1 file predates the field: its vectors are version 1.
    let version = v["version"].as_u64().unwrap_or(1) as u8;
    let address = context.address().unwrap();
    PacketBody {
        version,
        fingerprint: address.full,
        pattern: SignalPattern {
            feature,
            frequency,
            threshold: p["threshold"].as_f64().unwrap() as f32,
            unit: label("unit", p["unit"].as_str().unwrap()).unwrap(),
            direction: named::<Direction>(&p["direction"]),
        },
        outcome: Outcome {
            kind: named::<OutcomeKind>(&o["kind"]),
            failure_mode: named::<FailureMode>(&o["failure_mode"]),
            label: label("label", o["label"].as_str().unwrap()).unwrap(),
        },
        confidence: v["confidence"].as_f64().unwrap() as f32,
        validations: v["validations"].as_u64().unwrap() as u32,
        refutations: v["refutations"].as_u64().unwrap() as u32,
        lead_time_s: v["lead_time_s"].as_u64().unwrap() as u32,
        issued_at: v["issued_at"].as_u64().unwrap(),
        ttl_s: v["ttl_s"].as_u64().unwrap() as u32,
        seq: v["seq"].as_u64().unwrap(),
        source: [0; 32],
        equipment_label: label("equipment_label", v["equipment_label"].as_str().unwrap()).unwrap(),
        relative: match v["relative"]["ratio"].as_f64() {
            Some(r) => Relative::Ratio(r as f32),
            None => Relative::None,
        },
        levels: if version >= 3 && v["levels"] != Value::Bool(false) {
            Levels::Known(address.general)
        } else {
            Levels::None
        },
    }
}

#[test]
fn golden_vectors_encode_and_sign_byte_for_byte() {
    for v in vectors() {
        let name = v["name"].as_str().unwrap();
        let packet = body_from_vector(&v).sign(&seed(&v)).unwrap();
        let bytes = packet.to_bytes().unwrap();
        assert_eq!(
            hex::encode(&bytes),
            v["packet_hex"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            hex::encode(packet.signature),
            v["signature_hex"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            hex::encode(packet.body.source),
            v["source_hex"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            packet.body.fingerprint.to_string(),
            v["fingerprint_hex"].as_str().unwrap(),
            "{name}"
        );
        if let Some(topic) = v["topic"].as_str() {
            assert_eq!(packet.topic(), topic, "{name}");
        }
        let issued = packet.body.issued_at;
        let verified = verify(
            &bytes,
            issued,
            &mut ReplayGuard::new(8),
            &TrustPolicy::default(),
        )
        .unwrap_or_else(|r| panic!("{name}: {r}"));
        assert_eq!(verified.packet(), &packet);
    }
}

/// The committed vectors are reproduced by the independent Python encoder (struct, hashlib and
/// the `cryptography` package's Ed25519), so the format in the README is implementable.
#[test]
fn an_independent_python_encoder_reproduces_the_golden_vectors() {
    let python = std::env::var_os("QIS_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| common::repo().join(".venv/bin/python"));
    for file in VECTOR_FILES {
        let out = std::process::Command::new(&python)
            .arg(common::repo().join("tests/peers/outcome_vector.py"))
            .arg(common::repo().join(file))
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}; run ./tests/run.sh", python.display()));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reproduced: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let ours = vectors_of(file);
        assert_eq!(ours.len(), reproduced.len(), "{file}");
        for (ours, theirs) in ours.iter().zip(&reproduced) {
            assert_eq!(ours["packet_hex"], theirs["packet_hex"], "{}", ours["name"]);
            if ours.get("topic").is_some() {
                assert_eq!(ours["topic"], theirs["topic"], "{}", ours["name"]);
            }
        }
    }
}

/// A v1 packet (no relative level, no levels, the v1 signing domain) and a v2 packet (no
/// levels, the v2 domain) are still read, read their missing fields as `None`, route on the
/// v1 topic of their fingerprint and re-encode to their own bytes; a v1 body cannot carry a
/// ratio, neither v1 nor v2 the levels.
#[test]
fn version_one_and_two_packets_are_still_accepted() {
    for (version, file) in [(1, VECTOR_FILES[0]), (2, VECTOR_FILES[1])] {
        for v in vectors_of(file) {
            let bytes = hex::decode(v["packet_hex"].as_str().unwrap()).unwrap();
            assert_eq!(bytes[0], version);
            let issued = v["issued_at"].as_u64().unwrap();
            let verified = verify(
                &bytes,
                issued,
                &mut ReplayGuard::new(8),
                &TrustPolicy::default(),
            )
            .unwrap_or_else(|r| panic!("{}: {r}", v["name"]));
            if version == 1 {
                assert_eq!(verified.body().relative, Relative::None);
            }
            assert_eq!(verified.body().levels, Levels::None);
            assert_eq!(
                verified.packet().topic(),
                format!("qis/v1/ctx/{}", v["fingerprint_hex"].as_str().unwrap())
            );
            assert_eq!(verified.packet().to_bytes().unwrap(), bytes);
        }
    }
    for version in [1, 2] {
        let mut b = body();
        b.version = version;
        b.relative = Relative::None;
        b.levels = Levels::Known([Fingerprint([1; 16]); 3]);
        assert!(b.sign(&key()).is_err(), "a v{version} body with levels");
    }
    let mut b = body();
    b.version = 1;
    b.levels = Levels::None;
    b.relative = Relative::Ratio(1.5);
    assert!(b.sign(&key()).is_err(), "a v1 body with a ratio");
    // A v1 body signed under the v2 domain does not verify.
    let mut b = body();
    b.version = 1;
    b.levels = Levels::None;
    b.relative = Relative::None;
    let key = key();
    b.source = key.verifying_key().to_bytes();
    let encoded = b.encode().unwrap();
    let mut wrong = b"qis/outcome/v2\0".to_vec();
    wrong.extend_from_slice(&encoded);
    use ed25519_dalek::Signer;
    let mut bytes = encoded.clone();
    bytes.extend_from_slice(&key.sign(&wrong).to_bytes());
    assert_eq!(rejection(&bytes), Rejection::BadSignature);
}

// ---- Rejections: each test triggers exactly its reason. ----

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn body() -> PacketBody {
    PacketBody {
        version: VERSION,
        fingerprint: Fingerprint([1; 16]),
        pattern: SignalPattern {
            feature: Feature::BearingDefect(BearingDefect::Bpfi),
            frequency: Frequency::At(162.2),
            threshold: 0.5,
            unit: label("unit", "g").unwrap(),
            direction: Direction::High,
        },
        outcome: Outcome {
            kind: OutcomeKind::DefectConfirmed,
            failure_mode: FailureMode::BearingInnerRace,
            label: label("label", "inner race").unwrap(),
        },
        confidence: 0.6,
        validations: 2,
        refutations: 0,
        lead_time_s: 86_400,
        issued_at: NOW,
        ttl_s: 3600,
        seq: 10,
        source: [0; 32],
        equipment_label: label("equipment_label", "spindle").unwrap(),
        relative: Relative::Ratio(1.5),
        levels: Levels::Known([
            Fingerprint([4; 16]),
            Fingerprint([5; 16]),
            Fingerprint([6; 16]),
        ]),
    }
}

fn signed(body: PacketBody) -> Vec<u8> {
    body.sign(&key()).unwrap().to_bytes().unwrap()
}

fn rejection(bytes: &[u8]) -> Rejection {
    rejection_with(bytes, &mut ReplayGuard::new(8), &TrustPolicy::default())
}

fn rejection_with(bytes: &[u8], guard: &mut ReplayGuard, policy: &TrustPolicy) -> Rejection {
    let r = verify(bytes, NOW, guard, policy).expect_err("must be rejected");
    assert_eq!(guard.counts().get(r.kind()), 1, "{r} counted");
    assert_eq!(guard.counts().total(), 1, "{r} is the only reason counted");
    r
}

#[test]
fn a_valid_packet_is_accepted_and_counted() {
    let mut guard = ReplayGuard::new(8);
    verify(&signed(body()), NOW, &mut guard, &TrustPolicy::default()).unwrap();
    assert_eq!(guard.counts().accepted, 1);
    assert_eq!(guard.counts().total(), 0);
}

#[test]
fn rejects_oversize() {
    let mut bytes = signed(body());
    bytes.resize(MAX_PACKET_LEN + 1, 0);
    assert_eq!(
        rejection(&bytes),
        Rejection::Oversize {
            len: MAX_PACKET_LEN + 1
        }
    );
}

#[test]
fn rejects_truncated() {
    let bytes = signed(body());
    for cut in [0, 1, 30, bytes.len() - 64, bytes.len() - 1] {
        assert_eq!(
            rejection(&bytes[..cut]).kind(),
            RejectionKind::Truncated,
            "cut at {cut}"
        );
    }
}

#[test]
fn rejects_unknown_version() {
    let mut bytes = signed(body());
    bytes[0] = 4;
    assert_eq!(rejection(&bytes), Rejection::UnknownVersion { version: 4 });
}

#[test]
fn rejects_malformed() {
    let bytes = signed(body());
    // An enum tag past the last variant (the feature tag follows version and fingerprint).
    let mut bad_tag = bytes.clone();
    bad_tag[17] = 0x7f;
    assert_eq!(rejection(&bad_tag).kind(), RejectionKind::Malformed);
    // Trailing bytes between body and signature.
    let split = bytes.len() - 64;
    let mut trailing = bytes[..split].to_vec();
    trailing.push(0);
    trailing.extend_from_slice(&bytes[split..]);
    assert_eq!(rejection(&trailing).kind(), RejectionKind::Malformed);
}

#[test]
fn rejects_bad_signature() {
    let mut bytes = signed(body());
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    assert_eq!(rejection(&bytes), Rejection::BadSignature);
    // A body signed by one key but claiming another source.
    let mut forged = body().sign(&key()).unwrap();
    forged.body.source = SigningKey::from_bytes(&[10; 32]).verifying_key().to_bytes();
    assert_eq!(
        rejection(&forged.to_bytes().unwrap()),
        Rejection::BadSignature
    );
}

#[test]
fn rejects_expired_beyond_the_clock_skew() {
    let policy = TrustPolicy {
        clock_skew_s: 60,
        ..TrustPolicy::default()
    };
    let mut b = body();
    b.issued_at = NOW - 3600 - 60;
    assert!(
        verify(&signed(b.clone()), NOW, &mut ReplayGuard::new(8), &policy).is_ok(),
        "within the skew"
    );
    b.issued_at = NOW - 3600 - 61;
    b.seq += 1;
    assert_eq!(
        rejection_with(&signed(b), &mut ReplayGuard::new(8), &policy),
        Rejection::Expired { ago_s: 61 }
    );
}

#[test]
fn rejects_issue_times_too_far_in_the_future() {
    let policy = TrustPolicy {
        clock_skew_s: 60,
        ..TrustPolicy::default()
    };
    let mut b = body();
    b.issued_at = NOW + 60;
    assert!(verify(&signed(b.clone()), NOW, &mut ReplayGuard::new(8), &policy).is_ok());
    b.issued_at = NOW + 61;
    assert_eq!(
        rejection_with(&signed(b), &mut ReplayGuard::new(8), &policy),
        Rejection::FromTheFuture { ahead_s: 61 }
    );
}

/// A repeated sequence number is a replay; a late one (delivered out of order) is accepted
/// once while it is within the window of recent ones; one older than the window is a replay.
#[test]
fn rejects_repeated_and_too_old_sequences_and_accepts_late_ones_once() {
    let mut guard = ReplayGuard::new(8);
    let policy = TrustPolicy::default();
    let with_seq = |seq: u64| {
        let mut b = body();
        b.seq = seq;
        signed(b)
    };
    let first = signed(body());
    verify(&first, NOW, &mut guard, &policy).unwrap();
    assert_eq!(
        verify(&first, NOW, &mut guard, &policy),
        Err(Rejection::Replayed { seq: 10, last: 10 })
    );
    verify(&with_seq(9), NOW, &mut guard, &policy).expect("a late packet, once");
    assert_eq!(
        verify(&with_seq(9), NOW, &mut guard, &policy),
        Err(Rejection::Replayed { seq: 9, last: 10 })
    );
    for seq in 11..(11 + REPLAY_WINDOW as u64) {
        verify(&with_seq(seq), NOW, &mut guard, &policy).unwrap();
    }
    let last = 10 + REPLAY_WINDOW as u64;
    assert_eq!(
        verify(&with_seq(8), NOW, &mut guard, &policy),
        Err(Rejection::Replayed { seq: 8, last }),
        "older than the window"
    );
    assert_eq!(guard.counts().get(RejectionKind::Replayed), 3);
    assert_eq!(guard.counts().accepted, 2 + REPLAY_WINDOW as u64);
}

#[test]
fn the_replay_memory_is_bounded_and_forgets_the_least_recent_source() {
    let mut guard = ReplayGuard::new(3);
    let policy = TrustPolicy::default();
    for s in 0..5u8 {
        let k = SigningKey::from_bytes(&[s + 20; 32]);
        verify(
            &body().sign(&k).unwrap().to_bytes().unwrap(),
            NOW,
            &mut guard,
            &policy,
        )
        .unwrap();
    }
    assert_eq!(guard.len(), 3);
    let first = SigningKey::from_bytes(&[20; 32]).verifying_key().to_bytes();
    let last = SigningKey::from_bytes(&[24; 32]).verifying_key().to_bytes();
    assert_eq!(guard.last_seq(&first), None);
    assert_eq!(guard.last_seq(&last), Some(10));
}

/// A memory rebuilt from `remembered` rejects what the original rejected and keeps its
/// recency order, so the next eviction still drops the least recently heard-from source.
#[test]
fn the_replay_memory_can_be_rebuilt_from_what_it_remembers() {
    let mut guard = ReplayGuard::new(3);
    let policy = TrustPolicy::default();
    let keys: Vec<SigningKey> = (0..3u8)
        .map(|s| SigningKey::from_bytes(&[s + 40; 32]))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        let mut b = body();
        b.seq = 100 + i as u64;
        verify(
            &b.sign(k).unwrap().to_bytes().unwrap(),
            NOW,
            &mut guard,
            &policy,
        )
        .unwrap();
    }
    let saved = guard.remembered();
    assert_eq!(
        saved
            .iter()
            .map(|(_, seqs)| seqs.clone())
            .collect::<Vec<_>>(),
        [vec![100], vec![101], vec![102]],
        "least recent first"
    );

    let mut rebuilt = ReplayGuard::new(3);
    for (source, seqs) in &saved {
        seqs.iter().for_each(|seq| rebuilt.remember(*source, *seq));
    }
    assert_eq!(rebuilt.counts().accepted, 0, "restoring is not accepting");
    let mut again = body();
    again.seq = 101;
    assert_eq!(
        verify(
            &again.sign(&keys[1]).unwrap().to_bytes().unwrap(),
            NOW,
            &mut rebuilt,
            &policy
        ),
        Err(Rejection::Replayed {
            seq: 101,
            last: 101
        })
    );
    // A lower remembered sequence does not lower the highest.
    rebuilt.remember(keys[1].verifying_key().to_bytes(), 5);
    assert_eq!(
        rebuilt.last_seq(&keys[1].verifying_key().to_bytes()),
        Some(101)
    );
    // A fourth source evicts keys[0], the least recently heard from before the restart.
    let newcomer = SigningKey::from_bytes(&[60; 32]);
    verify(
        &body().sign(&newcomer).unwrap().to_bytes().unwrap(),
        NOW,
        &mut rebuilt,
        &policy,
    )
    .unwrap();
    assert_eq!(rebuilt.last_seq(&keys[0].verifying_key().to_bytes()), None);
    assert_eq!(
        rebuilt.last_seq(&keys[2].verifying_key().to_bytes()),
        Some(102)
    );
}

#[test]
fn rejects_out_of_range_values() {
    type Mutation = Box<dyn Fn(&mut PacketBody)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("confidence", Box::new(|b| b.confidence = 1.5)),
        ("confidence", Box::new(|b| b.confidence = -0.1)),
        ("confidence", Box::new(|b| b.confidence = f32::NAN)),
        (
            "pattern.threshold",
            Box::new(|b| b.pattern.threshold = f32::INFINITY),
        ),
        (
            "pattern.frequency",
            Box::new(|b| b.pattern.frequency = Frequency::At(-5.0)),
        ),
        (
            "pattern.frequency",
            Box::new(|b| b.pattern.frequency = Frequency::At(1.0e6)),
        ),
        (
            "pattern.frequency",
            Box::new(|b| {
                b.pattern.frequency = Frequency::Band {
                    lo: 500.0,
                    hi: 100.0,
                }
            }),
        ),
        (
            "pattern.feature.order",
            Box::new(|b| b.pattern.feature = Feature::Harmonic { order: 0 }),
        ),
        (
            "pattern.feature.rule",
            Box::new(|b| {
                b.pattern.feature = Feature::SpcRule {
                    chart: SpcChart::Imr,
                    rules: SpcRuleSet::WesternElectric,
                    rule: 5,
                }
            }),
        ),
        ("ttl_s", Box::new(|b| b.ttl_s = 0)),
        ("lead_time_s", Box::new(|b| b.lead_time_s = u32::MAX)),
        ("validations", Box::new(|b| b.validations = 0)),
        ("relative", Box::new(|b| b.relative = Relative::Ratio(0.0))),
        ("relative", Box::new(|b| b.relative = Relative::Ratio(-1.5))),
        (
            "relative",
            Box::new(|b| b.relative = Relative::Ratio(f32::NAN)),
        ),
        (
            "relative",
            Box::new(|b| b.relative = Relative::Ratio(2.0e6)),
        ),
        (
            "equipment_label",
            Box::new(|b| b.equipment_label = label("l", "a\u{7}b").unwrap()),
        ),
    ];
    for (field, mutate) in cases {
        let mut b = body();
        mutate(&mut b);
        assert_eq!(
            rejection(&signed(b)),
            Rejection::OutOfRange { field },
            "{field}"
        );
    }
}

#[test]
fn rejects_unknown_sources_in_strict_mode_only() {
    let bytes = signed(body());
    let strict = TrustPolicy {
        strict: true,
        allowlist: HashSet::new(),
        ..TrustPolicy::default()
    };
    assert_eq!(
        rejection_with(&bytes, &mut ReplayGuard::new(8), &strict),
        Rejection::UnknownSource
    );
    let allowed = TrustPolicy {
        strict: true,
        allowlist: HashSet::from([key().verifying_key().to_bytes()]),
        ..TrustPolicy::default()
    };
    assert!(verify(&bytes, NOW, &mut ReplayGuard::new(8), &allowed).is_ok());
}

// ---- Properties ----

fn arb_label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 äöüß°/-]{0,12}"
}

fn arb_body() -> impl Strategy<Value = PacketBody> {
    let feature = prop_oneof![
        Just(Feature::BandAmplitude),
        (1u8..=64).prop_map(|order| Feature::Harmonic { order }),
        prop_oneof![
            Just(BearingDefect::Bpfo),
            Just(BearingDefect::Bpfi),
            Just(BearingDefect::Bsf),
            Just(BearingDefect::Ftf)
        ]
        .prop_map(Feature::BearingDefect),
        Just(Feature::VelocityRms),
        Just(Feature::Kurtosis),
        Just(Feature::CrestFactor),
        (1u8..=8).prop_map(|rule| Feature::SpcRule {
            chart: SpcChart::Ewma,
            rules: SpcRuleSet::Nelson,
            rule
        }),
        Just(Feature::ProcessValue),
    ];
    let frequency = prop_oneof![
        Just(Frequency::None),
        (0.0f32..100_000.0).prop_map(Frequency::At),
        (0.0f32..1000.0, 1000.0f32..100_000.0).prop_map(|(lo, hi)| Frequency::Band { lo, hi }),
    ];
    let outcome = prop_oneof![
        Just((OutcomeKind::FailureConfirmed, FailureMode::BearingOuterRace)),
        Just((OutcomeKind::DefectConfirmed, FailureMode::Imbalance)),
        Just((OutcomeKind::FalseAlarm, FailureMode::None)),
    ];
    (
        (
            any::<[u8; 16]>(),
            feature,
            frequency,
            -1.0e6f32..1.0e6,
            arb_label(),
            any::<bool>(),
        ),
        (
            outcome,
            arb_label(),
            0.0f32..=1.0,
            1u32..1000,
            1u32..1000,
            0u32..10_000_000,
        ),
        (
            NOW - 1000..NOW + 100,
            1000u32..10_000_000,
            any::<u64>(),
            arb_label(),
            prop_oneof![Just(None), (1.0e-3f32..1.0e3).prop_map(Some)],
            prop_oneof![Just(None), any::<[[u8; 16]; 3]>().prop_map(Some)],
        ),
    )
        .prop_map(|(p, o, t)| PacketBody {
            version: VERSION,
            fingerprint: Fingerprint(p.0),
            pattern: SignalPattern {
                feature: p.1,
                frequency: p.2,
                threshold: p.3,
                unit: label("unit", &p.4.chars().take(4).collect::<String>()).unwrap(),
                direction: if p.5 { Direction::High } else { Direction::Low },
            },
            outcome: Outcome {
                kind: o.0 .0,
                failure_mode: o.0 .1,
                label: label("l", &o.1).unwrap(),
            },
            confidence: o.2,
            validations: o.3,
            refutations: o.4,
            lead_time_s: o.5,
            issued_at: t.0,
            ttl_s: t.1,
            seq: t.2,
            source: [0; 32],
            equipment_label: label("e", &t.3).unwrap(),
            relative: t.4.map_or(Relative::None, Relative::Ratio),
            levels: t
                .5
                .map_or(Levels::None, |l| Levels::Known(l.map(Fingerprint))),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn valid_packets_round_trip_within_512_bytes(b in arb_body()) {
        let packet = b.sign(&key()).unwrap();
        let bytes = packet.to_bytes().unwrap();
        prop_assert!(bytes.len() <= MAX_PACKET_LEN);
        prop_assert_eq!(&decode(&bytes).unwrap(), &packet);
        let verified = verify(&bytes, NOW, &mut ReplayGuard::new(4), &TrustPolicy::default()).unwrap();
        prop_assert_eq!(verified.packet(), &packet);
    }

    #[test]
    fn flipping_any_single_bit_fails_verification(b in arb_body(), bit in any::<prop::sample::Index>()) {
        let bytes = b.sign(&key()).unwrap().to_bytes().unwrap();
        let mut flipped = bytes.clone();
        let i = bit.index(bytes.len() * 8);
        flipped[i / 8] ^= 1 << (i % 8);
        prop_assert!(verify(&flipped, NOW, &mut ReplayGuard::new(4), &TrustPolicy::default()).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        let _ = decode(&bytes);
        let _ = verify(&bytes, NOW, &mut ReplayGuard::new(4), &TrustPolicy { strict: false, ..TrustPolicy::default() });
    }

    #[test]
    fn version_prefixed_garbage_never_panics(version in 1..=VERSION, tail in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut bytes = vec![version];
        bytes.extend(tail);
        let _ = decode(&bytes);
        let _ = verify(&bytes, NOW, &mut ReplayGuard::new(4), &TrustPolicy::default());
    }
}
