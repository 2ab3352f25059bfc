use super::*;
use crate::packet::{self as pk, FailureMode, Frequency, SignalPattern};

fn body(source: u8, seq: u64, threshold: f32, validations: u32, kind: OutcomeKind) -> PacketBody {
    PacketBody {
        version: pk::VERSION,
        fingerprint: Fingerprint([3; 16]),
        pattern: SignalPattern {
            feature: Feature::BearingDefect(pk::BearingDefect::Bpfo),
            frequency: Frequency::None,
            threshold,
            unit: pk::label("unit", "dB").unwrap(),
            direction: Direction::High,
        },
        outcome: pk::Outcome {
            kind,
            failure_mode: FailureMode::BearingOuterRace,
            label: pk::label("label", "outer race").unwrap(),
        },
        confidence: 1.0,
        validations,
        refutations: 0,
        lead_time_s: 3600,
        issued_at: 1_000,
        ttl_s: 100,
        seq,
        source: [source; 32],
        equipment_label: pk::label("equipment_label", "pump").unwrap(),
        relative: pk::Relative::None,
        levels: pk::Levels::None,
    }
}

const RAILS: Rails = Rails {
    baseline: 14.0,
    floor: 6.0,
    ceiling: 16.0,
    direction: Direction::High,
    tighten_only: true,
    healthy: None,
    relative: false,
    accepts: pk::MatchLevel::Full,
};

fn key() -> TargetKey {
    Target::of_packet(&body(1, 1, 0.0, 1, OutcomeKind::DefectConfirmed)).key()
}

#[test]
fn the_target_key_names_context_feature_direction_and_unit() {
    assert_eq!(
        key().to_string(),
        "03030303030303030303030303030303/{\"bearing_defect\":\"bpfo\"}/high/dB"
    );
}

#[test]
fn a_band_is_part_of_the_target_and_a_defect_frequency_is_not() {
    let mut b = body(1, 1, 0.0, 1, OutcomeKind::DefectConfirmed);
    b.pattern.frequency = Frequency::At(107.3);
    assert_eq!(
        Target::of_packet(&b).key(),
        key(),
        "a defect matches by kind"
    );
    b.pattern.feature = Feature::BandAmplitude;
    let band = |lo, hi| {
        let mut b = b.clone();
        b.pattern.frequency = Frequency::Band { lo, hi };
        Target::of_packet(&b).key().to_string()
    };
    assert_eq!(
        band(100.0, 1500.5),
        "03030303030303030303030303030303/band_amplitude@100-1500.5Hz/high/dB"
    );
    assert_ne!(band(100.0, 1500.0), band(200.0, 1500.0));
    b.pattern.frequency = Frequency::None;
    assert!(!Target::of_packet(&b).key().to_string().contains('@'));
}

#[test]
fn a_proposal_moves_the_level_by_its_weight_and_keeps_its_provenance() {
    let s = SynthesisConfig::default();
    let mut st = SynthesisState::default();
    assert_eq!(
        st.offer(&key(), &body(1, 1, 8.0, 3, OutcomeKind::DefectConfirmed)),
        Offered::Proposed
    );
    let e = st.effective(&s, &key(), &RAILS);
    // weight = 0.5 × 1.0 × 3/4 = 0.375; (14 + 0.375 × 8) / 1.375
    let w = 0.375;
    assert!(
        (e.value - (14.0 + w * 8.0) / (1.0 + w)).abs() < 1e-12,
        "{}",
        e.value
    );
    assert_eq!(e.provenance.len(), 1);
    assert_eq!(e.provenance[0].status, Status::Applied);
    assert!((e.provenance[0].weight - w).abs() < 1e-12);
    assert_eq!(e.applied_sources(), vec![hex::encode([1u8; 32])]);
}

#[test]
fn absurd_proposals_stay_inside_the_rails_and_loosening_is_ignored() {
    let s = SynthesisConfig {
        baseline_weight: 0.01,
        ..SynthesisConfig::default()
    };
    let mut st = SynthesisState::default();
    st.offer(
        &key(),
        &body(1, 1, -1.0e30, 1_000, OutcomeKind::DefectConfirmed),
    );
    let e = st.effective(&s, &key(), &RAILS);
    assert!(
        e.value >= RAILS.floor && e.value < RAILS.baseline,
        "{}",
        e.value
    );
    assert_eq!(e.provenance[0].applied, RAILS.floor);

    let mut st = SynthesisState::default();
    st.offer(
        &key(),
        &body(2, 1, 1.0e30, 1_000, OutcomeKind::DefectConfirmed),
    );
    let e = st.effective(&s, &key(), &RAILS);
    assert_eq!(e.value, RAILS.baseline);
    assert_eq!(e.provenance[0].status, Status::WouldLoosen);

    let loose = Rails {
        tighten_only: false,
        ..RAILS
    };
    let e = st.effective(&s, &key(), &loose);
    assert!(
        e.value > RAILS.baseline && e.value <= RAILS.ceiling,
        "{}",
        e.value
    );
}

#[test]
fn a_low_rule_tightens_upward() {
    let rails = Rails {
        baseline: 10.0,
        floor: 8.0,
        ceiling: 14.0,
        direction: Direction::Low,
        tighten_only: true,
        healthy: None,
        relative: false,
        accepts: pk::MatchLevel::Full,
    };
    let mut b = body(1, 1, 12.0, 9, OutcomeKind::DefectConfirmed);
    b.pattern.direction = Direction::Low;
    let k = Target::of_packet(&b).key();
    let mut st = SynthesisState::default();
    st.offer(&k, &b);
    let e = st.effective(&SynthesisConfig::default(), &k, &rails);
    assert!(e.value > 10.0 && e.value < 12.0, "{}", e.value);
    b.seq = 2;
    b.pattern.threshold = 9.0;
    st.offer(&k, &b);
    assert_eq!(
        st.effective(&SynthesisConfig::default(), &k, &rails).value,
        10.0
    );
}

#[test]
fn light_proposals_false_alarms_old_packets_and_expiry_do_not_count() {
    let s = SynthesisConfig {
        min_weight: 0.3,
        ..SynthesisConfig::default()
    };
    let mut st = SynthesisState::default();
    // 0.5 × 1 × 1/2 = 0.25 < 0.3
    st.offer(&key(), &body(1, 5, 8.0, 1, OutcomeKind::DefectConfirmed));
    let e = st.effective(&s, &key(), &RAILS);
    assert_eq!(
        (e.value, e.provenance[0].status),
        (14.0, Status::BelowMinWeight)
    );
    assert_eq!(
        st.offer(&key(), &body(1, 4, 6.0, 99, OutcomeKind::DefectConfirmed)),
        Offered::Superseded,
        "an older packet does not replace a newer one"
    );
    assert_eq!(
        st.offer(&key(), &body(1, 6, 6.0, 99, OutcomeKind::DefectConfirmed)),
        Offered::Proposed
    );
    assert_eq!(
        st.offer(&key(), &body(1, 6, 6.0, 99, OutcomeKind::DefectConfirmed)),
        Offered::Duplicate
    );
    assert_eq!(
        st.applied, 3,
        "proposed, superseded, proposed; the duplicate not counted"
    );
    assert!(st.effective(&s, &key(), &RAILS).value < 14.0);
    assert_eq!(
        st.offer(&key(), &body(1, 7, 6.0, 99, OutcomeKind::FalseAlarm)),
        Offered::Withdrawn
    );
    let e = st.effective(&s, &key(), &RAILS);
    assert_eq!(
        (e.value, e.provenance[0].status),
        (14.0, Status::FalseAlarm)
    );

    st.offer(&key(), &body(2, 1, 6.0, 99, OutcomeKind::DefectConfirmed));
    assert_eq!(st.next_expiry(), Some(1_100));
    assert!(st.expire(1_099).is_empty());
    assert_eq!(st.expire(1_100), vec![key()]);
    assert!(st.proposals.is_empty());
    assert_eq!(st.effective(&s, &key(), &RAILS).value, 14.0);
}

#[test]
fn trust_rises_on_confirmation_falls_faster_on_refutation_and_stays_in_bounds() {
    let s = SynthesisConfig::default();
    let mut st = SynthesisState::default();
    let a = hex::encode([1u8; 32]);
    let c = st.answered(&s, std::slice::from_ref(&a), true);
    assert!((c[0].1 - 0.5).abs() < 1e-12 && (c[0].2 - 0.55).abs() < 1e-12);
    st.answered(&s, std::slice::from_ref(&a), false);
    assert!((st.trust(&s, &a) - 0.45).abs() < 1e-12);
    for _ in 0..20 {
        st.answered(&s, std::slice::from_ref(&a), false);
    }
    assert_eq!(st.trust(&s, &a), 0.0);
    st.offer(&key(), &body(1, 1, 6.0, 99, OutcomeKind::DefectConfirmed));
    let e = st.effective(&s, &key(), &RAILS);
    assert_eq!(e.value, 14.0, "a source without trust moves nothing");
    for _ in 0..40 {
        st.answered(&s, std::slice::from_ref(&a), true);
    }
    assert_eq!(st.trust(&s, &a), 1.0);
}

#[test]
fn proposals_per_target_are_bounded() {
    let mut st = SynthesisState::default();
    for i in 0..(MAX_PROPOSALS_PER_TARGET + 3) {
        let mut b = body(0, 1, 8.0, 1, OutcomeKind::DefectConfirmed);
        b.source[..8].copy_from_slice(&(i as u64).to_le_bytes());
        b.issued_at = 1_000 + i as u64;
        st.offer(&key(), &b);
    }
    assert_eq!(st.proposals[&key()].len(), MAX_PROPOSALS_PER_TARGET);
}

/// A rule of a point whose healthy level is 10, taking relative proposals.
const RELATIVE: Rails = Rails {
    healthy: Some(10.0),
    relative: true,
    ..RAILS
};

fn with_ratio(mut b: PacketBody, ratio: f32) -> PacketBody {
    b.relative = pk::Relative::Ratio(ratio);
    b
}

#[test]
fn a_relative_rule_proposes_the_ratio_times_its_own_healthy_level() {
    let s = SynthesisConfig::default();
    let mut st = SynthesisState::default();
    // The source warned at 30 (its unit) = 1.2 × its healthy 25: here 1.2 × 10 = 12.
    let b = with_ratio(body(1, 1, 30.0, 3, OutcomeKind::DefectConfirmed), 1.2);
    st.offer(&key(), &b);
    let e = st.effective(&s, &key(), &RELATIVE);
    let w = 0.375;
    let proposed = f64::from(1.2f32) * 10.0;
    assert!((e.provenance[0].proposed - proposed).abs() < 1e-12);
    assert_eq!(e.provenance[0].ratio, Some(f64::from(1.2f32)));
    assert_eq!(e.provenance[0].status, Status::Applied);
    assert!(
        (e.value - (14.0 + w * proposed) / (1.0 + w)).abs() < 1e-12,
        "{}",
        e.value
    );
    // The same packet, to a rule that takes absolute levels: 30 would loosen, ignored.
    let e = st.effective(&s, &key(), &RAILS);
    assert_eq!(e.provenance[0].status, Status::WouldLoosen);
    assert_eq!(e.value, RAILS.baseline);
}

#[test]
fn a_relative_rule_ignores_absolute_only_packets_and_keeps_ratios_inside_its_rails() {
    let s = SynthesisConfig {
        baseline_weight: 0.01,
        ..SynthesisConfig::default()
    };
    let mut st = SynthesisState::default();
    st.offer(
        &key(),
        &body(1, 1, 8.0, 1_000, OutcomeKind::DefectConfirmed),
    );
    let e = st.effective(&s, &key(), &RELATIVE);
    assert_eq!(e.provenance[0].status, Status::NoRatio);
    assert_eq!(e.value, RELATIVE.baseline);
    // 0.1 × 10 = 1, below the floor of 6: clamped; 5 × 10 = 50 would loosen: ignored.
    let mut st = SynthesisState::default();
    st.offer(
        &key(),
        &with_ratio(body(1, 1, 8.0, 1_000, OutcomeKind::DefectConfirmed), 0.1),
    );
    st.offer(
        &key(),
        &with_ratio(body(2, 1, 8.0, 1_000, OutcomeKind::DefectConfirmed), 5.0),
    );
    let e = st.effective(&s, &key(), &RELATIVE);
    assert_eq!(e.provenance[0].applied, RELATIVE.floor);
    assert_eq!(e.provenance[1].status, Status::WouldLoosen);
    let w = 0.5 * 1000.0 / 1001.0;
    let expected = (0.01 * RELATIVE.baseline + w * RELATIVE.floor) / (0.01 + w);
    assert!((e.value - expected).abs() < 1e-12, "{}", e.value);
}

proptest::proptest! {
    /// Updating the one contribution a packet changed gives exactly the full computation,
    /// however packets arrive: new sources, newer and older packets, withdrawals, trust set.
    #[test]
    fn an_updated_level_equals_the_full_computation(
        packets in proptest::collection::vec((0u8..12, 1u64..6, 6.0f32..18.0, 0u32..5, proptest::bool::ANY), 1..60),
    ) {
        let settings = SynthesisConfig::default();
        let mut state = SynthesisState::default();
        state.trust.insert(hex::encode([3u8; 32]), 0.9);
        state.trust.insert(hex::encode([5u8; 32]), 0.1);
        let mut effective = Effective::at_baseline(&RAILS);
        for (source, seq, threshold, validations, false_alarm) in packets {
            let kind = if false_alarm { OutcomeKind::FalseAlarm } else { OutcomeKind::DefectConfirmed };
            let b = body(source, seq, threshold, validations, kind);
            state.offer(&key(), &b);
            state.update_effective(&settings, &key(), &RAILS, &mut effective, &hex::encode(b.source));
            proptest::prop_assert_eq!(&effective, &state.effective(&settings, &key(), &RAILS));
        }
    }
}

#[test]
fn the_summary_keeps_the_heaviest_applied_in_source_order_among_equals() {
    let settings = SynthesisConfig::default();
    let mut state = SynthesisState::default();
    for (source, validations) in [(1, 1), (2, 4), (3, 4), (4, 2), (5, 4)] {
        state.offer(
            &key(),
            &body(source, 1, 10.0, validations, OutcomeKind::DefectConfirmed),
        );
    }
    // Source 6 would loosen: not applied, so last whatever its weight.
    state.offer(&key(), &body(6, 1, 15.0, 4, OutcomeKind::DefectConfirmed));
    let e = state.effective(&settings, &key(), &RAILS);
    let (summary, total) = e.summary(4);
    assert_eq!(total, 6);
    let sources: Vec<String> = summary
        .provenance
        .iter()
        .map(|c| c.source[..2].to_string())
        .collect();
    assert_eq!(sources, ["02", "03", "05", "04"]);
    assert_eq!(summary.value, e.value);
    assert_eq!(e.summary(0).0.provenance.len(), 0);
    assert_eq!(e.summary(10).0.provenance.len(), 6);
    assert_eq!(e.summary(10).0.provenance[5].status, Status::WouldLoosen);
}
