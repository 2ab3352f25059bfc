use super::*;

#[test]
fn capability_indices_follow_their_definitions() {
    let spec = Spec {
        lsl: -3.0,
        usl: 3.0,
        target: None,
    };
    let centred = capability(0.0, 1.0, &spec);
    assert_eq!(
        (
            centred.cp,
            centred.cp_l,
            centred.cp_u,
            centred.cpk,
            centred.cpm
        ),
        (1.0, 1.0, 1.0, 1.0, 1.0)
    );
    let shifted = capability(1.0, 1.0, &spec);
    assert_eq!(
        (shifted.cp, shifted.cp_l, shifted.cp_u),
        (1.0, 4.0 / 3.0, 2.0 / 3.0)
    );
    assert_eq!(shifted.cpk, 2.0 / 3.0);
    assert!((shifted.cpm - 1.0 / 2f64.sqrt()).abs() < 1e-15);
    let targeted = capability(
        1.0,
        1.0,
        &Spec {
            target: Some(1.0),
            ..spec
        },
    );
    assert_eq!(targeted.cpm, 1.0);
}

#[test]
fn bad_settings_are_refused() {
    let base = SpcSettings {
        chart: ChartKind::XbarR,
        subgroup_size: 5,
        calibration: Calibration::FirstN(25),
        rules: Some(RuleSet::Nelson),
        enabled_rules: None,
        cusum: None,
        ewma: None,
    };
    assert!(SpcEngine::new(base.clone()).is_ok());
    assert_eq!(
        SpcEngine::new(SpcSettings {
            subgroup_size: 26,
            ..base.clone()
        })
        .unwrap_err(),
        SpcError::SubgroupSize(26)
    );
    assert_eq!(
        SpcEngine::new(SpcSettings {
            calibration: Calibration::FirstN(1),
            ..base.clone()
        })
        .unwrap_err(),
        SpcError::Calibration(1)
    );
    assert!(SpcEngine::new(SpcSettings {
        ewma: Some(EwmaSettings {
            lambda: 0.0,
            l: 3.0
        }),
        ..base.clone()
    })
    .is_err());
    assert!(SpcEngine::new(SpcSettings {
        enabled_rules: Some(vec![9]),
        ..base.clone()
    })
    .is_err());
    assert!(SpcEngine::new(SpcSettings {
        calibration: Calibration::Given {
            center: 0.0,
            sigma: 0.0
        },
        ..base
    })
    .is_err());
}

#[test]
fn a_calibration_without_spread_is_discarded_and_repeated() {
    let mut e = SpcEngine::new(SpcSettings {
        chart: ChartKind::Imr,
        subgroup_size: 1,
        calibration: Calibration::FirstN(5),
        rules: Some(RuleSet::WesternElectric),
        enabled_rules: None,
        cusum: None,
        ewma: None,
    })
    .unwrap();
    let mut out = Vec::new();
    (0..5).for_each(|_| e.push(7.0, &mut out));
    assert!(out.is_empty() && e.estimate().is_none());
    assert_eq!(e.failed_calibrations(), 1);
    [7.0, 7.2, 6.9, 7.1, 7.0]
        .iter()
        .for_each(|x| e.push(*x, &mut out));
    assert_eq!(out.len(), 5);
    assert!(e.estimate().unwrap().sigma > 0.0);
}

#[test]
fn given_limits_judge_from_the_first_subgroup() {
    let mut e = SpcEngine::new(SpcSettings {
        chart: ChartKind::Imr,
        subgroup_size: 1,
        calibration: Calibration::Given {
            center: 10.0,
            sigma: 1.0,
        },
        rules: Some(RuleSet::WesternElectric),
        enabled_rules: None,
        cusum: None,
        ewma: None,
    })
    .unwrap();
    let mut out = Vec::new();
    e.push(13.5, &mut out);
    assert_eq!(out.len(), 1);
    assert!(out[0].violations.has(1));
    assert_eq!(e.estimate().unwrap().location.ucl, 13.0);
}
