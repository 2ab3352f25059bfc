//! The SPC engine number for number with R qcc 2.7 on Montgomery's piston rings and viscosity
//! data (`../shared/reference/spc/`), through the library and through the CLI.

mod common;

use qis_edge::analysis::spc::{
    Calibration, ChartKind, CusumSettings, EwmaPoint, EwmaSettings, Limits, RuleSet, SpcEngine,
    SpcPoint, SpcSettings,
};
use serde_json::Value;
use std::process::Command;

fn shared(path: &str) -> std::path::PathBuf {
    common::repo().join("../shared/reference/spc").join(path)
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(shared("qcc_reference.json")).unwrap()).unwrap()
}

/// The 40 subgroups of 5 diameters.
fn pistonrings() -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(shared("pistonrings.csv")).unwrap();
    let mut groups: Vec<(u32, Vec<f64>)> = Vec::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        let d: f64 = cols[0].parse().unwrap();
        let s: u32 = cols[1].parse().unwrap();
        match groups.last_mut() {
            Some((k, g)) if *k == s => g.push(d),
            _ => groups.push((s, vec![d])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

fn close(got: f64, want: f64, what: &str) {
    let ok = if want == 0.0 {
        got.abs() < 1e-15
    } else {
        ((got - want) / want).abs() <= 1e-9
    };
    assert!(ok, "{what}: {got} vs qcc {want}");
}

fn close_all(got: &[f64], want: &Value, what: &str) {
    let want: Vec<f64> = want
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        close(*g, *w, &format!("{what}[{}]", i + 1));
    }
}

/// A chart's center line, sigma and 3σ limits against a qcc chart object.
fn close_limits(got: &Limits, sigma: f64, want: &Value, what: &str) {
    let first = |key: &str| want[key][0].as_f64().unwrap();
    close(got.center, first("center"), &format!("{what} center"));
    close(sigma, first("std_dev"), &format!("{what} sigma"));
    close(got.lcl, first("lcl"), &format!("{what} lcl"));
    close(got.ucl, first("ucl"), &format!("{what} ucl"));
}

/// Every point's EWMA statistic and limits against a qcc ewma object.
fn close_ewma(points: &[SpcPoint], want: &Value, what: &str) {
    let each = |f: fn(&EwmaPoint) -> f64| -> Vec<f64> {
        points.iter().map(|p| f(p.ewma.as_ref().unwrap())).collect()
    };
    close_all(&each(|e| e.z), &want["y"], &format!("{what} z"));
    close_all(&each(|e| e.lcl), &want["lcl"], &format!("{what} lcl"));
    close_all(&each(|e| e.ucl), &want["ucl"], &format!("{what} ucl"));
}

fn indices(v: &Value) -> Vec<usize> {
    let mut out: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    out.sort_unstable();
    out
}

fn run(
    chart: ChartKind,
    rules: RuleSet,
    groups: &[Vec<f64>],
    calibrate: usize,
    cusum: bool,
    ewma: Option<(f64, f64)>,
) -> (SpcEngine, Vec<SpcPoint>) {
    let mut engine = SpcEngine::new(SpcSettings {
        chart,
        subgroup_size: groups[0].len(),
        calibration: Calibration::FirstN(calibrate),
        rules: Some(rules),
        enabled_rules: None,
        cusum: cusum.then_some(CusumSettings { k: 0.5, h: 5.0 }),
        ewma: ewma.map(|(lambda, l)| EwmaSettings { lambda, l }),
    })
    .unwrap();
    let mut points = Vec::new();
    // One observation at a time, as the gateway feeds it.
    for g in groups {
        for x in g {
            engine.push(*x, &mut points);
        }
    }
    assert_eq!(points.len(), groups.len());
    (engine, points)
}

fn flagged(points: &[SpcPoint], rule: u8, dispersion: bool) -> Vec<usize> {
    points
        .iter()
        .filter(|p| {
            if dispersion {
                p.dispersion_violations.has(rule)
            } else {
                p.violations.has(rule)
            }
        })
        .map(|p| p.index)
        .collect()
}

fn check_rules(points: &[SpcPoint], r: &Value, dispersion: bool, nelson: bool, what: &str) {
    if nelson {
        for rule in 1..=8u8 {
            assert_eq!(
                flagged(points, rule, dispersion),
                indices(&r["nelson"][rule.to_string()]),
                "{what} Nelson {rule}"
            );
        }
    } else {
        for rule in 1..=4u8 {
            assert_eq!(
                flagged(points, rule, dispersion),
                indices(&r[format!("we{rule}")]),
                "{what} WE {rule}"
            );
        }
    }
}

#[test]
fn xbar_and_r_charts_match_qcc() {
    let r = reference();
    let groups = pistonrings();
    for nelson in [false, true] {
        let set = if nelson {
            RuleSet::Nelson
        } else {
            RuleSet::WesternElectric
        };
        let (engine, points) = run(ChartKind::XbarR, set, &groups, 25, true, Some((0.2, 3.0)));
        let e = engine.estimate().unwrap();
        let x = &r["xbar"];
        close_limits(&e.location, e.sigma, x, "xbar");
        close_all(
            &points.iter().map(|p| p.statistic).collect::<Vec<_>>(),
            &x["stats"],
            "xbar stats",
        );
        check_rules(&points, x, false, nelson, "xbar");

        let rr = &r["R"];
        close_limits(&e.dispersion, e.sigma, rr, "R");
        close_all(
            &points
                .iter()
                .map(|p| p.dispersion.unwrap())
                .collect::<Vec<_>>(),
            &rr["stats"],
            "R stats",
        );
        check_rules(&points, rr, true, nelson, "R");

        let c = &r["cusum_h5_k0.5"];
        close_all(
            &points
                .iter()
                .map(|p| p.cusum.unwrap().upper)
                .collect::<Vec<_>>(),
            &c["pos"],
            "cusum upper",
        );
        close_all(
            &points
                .iter()
                .map(|p| p.cusum.unwrap().lower)
                .collect::<Vec<_>>(),
            &c["neg"],
            "cusum lower",
        );
        let up: Vec<usize> = points
            .iter()
            .filter(|p| p.cusum.unwrap().upper_violation)
            .map(|p| p.index)
            .collect();
        let down: Vec<usize> = points
            .iter()
            .filter(|p| p.cusum.unwrap().lower_violation)
            .map(|p| p.index)
            .collect();
        assert_eq!(up, indices(&c["violations_upper"]));
        assert_eq!(down, indices(&c["violations_lower"]));

        let w = &r["ewma_l0.2_L3"];
        close_ewma(&points, w, "ewma");
        let v: Vec<usize> = points
            .iter()
            .filter(|p| p.ewma.unwrap().violation)
            .map(|p| p.index)
            .collect();
        assert_eq!(v, indices(&w["violations"]));
    }
}

#[test]
fn s_chart_matches_qcc() {
    let r = reference();
    for nelson in [false, true] {
        let set = if nelson {
            RuleSet::Nelson
        } else {
            RuleSet::WesternElectric
        };
        let (engine, points) = run(ChartKind::XbarS, set, &pistonrings(), 25, false, None);
        let e = engine.estimate().unwrap();
        let s = &r["S"];
        close_limits(&e.dispersion, e.sigma, s, "S");
        close_all(
            &points
                .iter()
                .map(|p| p.dispersion.unwrap())
                .collect::<Vec<_>>(),
            &s["stats"],
            "S stats",
        );
        check_rules(&points, s, true, nelson, "S");
    }
}

const VISCOSITY: [f64; 15] = [
    33.75, 33.05, 34.0, 33.81, 33.46, 34.02, 33.68, 33.27, 33.49, 33.2, 33.62, 33.0, 33.54, 33.12,
    33.84,
];

#[test]
fn individuals_chart_and_its_ewma_match_qcc() {
    let r = reference();
    let groups: Vec<Vec<f64>> = VISCOSITY.iter().map(|v| vec![*v]).collect();
    for nelson in [false, true] {
        let set = if nelson {
            RuleSet::Nelson
        } else {
            RuleSet::WesternElectric
        };
        let (engine, points) = run(ChartKind::Imr, set, &groups, 15, false, Some((0.2, 2.7)));
        let e = engine.estimate().unwrap();
        let v = &r["visc_I"];
        close_limits(&e.location, e.sigma, v, "I");
        close_all(
            &points.iter().map(|p| p.statistic).collect::<Vec<_>>(),
            &v["stats"],
            "I stats",
        );
        check_rules(&points, v, false, nelson, "I");
        let w = &r["ewma_visc_l0.2_L2.7"];
        close_ewma(&points, w, "visc ewma");
        assert!(indices(&w["violations"]).is_empty());
        assert!(points.iter().all(|p| !p.ewma.unwrap().violation));
    }
}

fn cli(args: &[&str]) -> Value {
    let out = Command::new(common::gateway_binary())
        .args(["analyze", "spc"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn the_cli_reproduces_qcc_on_the_piston_rings() {
    let r = reference();
    let input = shared("pistonrings.csv");
    let input = input.to_str().unwrap();
    for (rules, nelson) in [("western-electric", false), ("nelson", true)] {
        for (grouping, arg) in [("--subgroup", "sample"), ("--subgroup-size", "5")] {
            let j = cli(&[
                "--input",
                input,
                "--value",
                "diameter",
                grouping,
                arg,
                "--chart",
                "xbar-r",
                "--calibrate",
                "25",
                "--rules",
                rules,
                "--cusum",
                "0.5,5",
                "--ewma",
                "0.2,3",
                "--spec",
                "73.95,74.05",
                "--json",
            ]);
            let x = &r["xbar"];
            assert_eq!(j["chart"], "xbar-r");
            close(
                j["center"].as_f64().unwrap(),
                x["center"][0].as_f64().unwrap(),
                "center",
            );
            close(
                j["sigma"].as_f64().unwrap(),
                x["std_dev"][0].as_f64().unwrap(),
                "sigma",
            );
            close(
                j["lcl"].as_f64().unwrap(),
                x["lcl"][0].as_f64().unwrap(),
                "lcl",
            );
            close(
                j["ucl"].as_f64().unwrap(),
                x["ucl"][0].as_f64().unwrap(),
                "ucl",
            );
            close_all(&floats(&j["statistics"]), &x["stats"], "statistics");
            close(
                j["dispersion"]["center"].as_f64().unwrap(),
                r["R"]["center"][0].as_f64().unwrap(),
                "R center",
            );
            close(
                j["dispersion"]["ucl"].as_f64().unwrap(),
                r["R"]["ucl"][0].as_f64().unwrap(),
                "R ucl",
            );
            close_all(
                &floats(&j["dispersion"]["statistics"]),
                &r["R"]["stats"],
                "R statistics",
            );
            let rule_count = if nelson { 8 } else { 4 };
            assert_eq!(j["violations"].as_object().unwrap().len(), rule_count);
            for rule in 1..=rule_count {
                let want = if nelson {
                    indices(&x["nelson"][rule.to_string()])
                } else {
                    indices(&x[format!("we{rule}")])
                };
                assert_eq!(
                    indices(&j["violations"][rule.to_string()]),
                    want,
                    "{rules} rule {rule}"
                );
            }
            let c = &r["cusum_h5_k0.5"];
            close_all(&floats(&j["cusum"]["upper"]), &c["pos"], "cusum upper");
            close_all(&floats(&j["cusum"]["lower"]), &c["neg"], "cusum lower");
            assert_eq!(
                indices(&j["cusum"]["violations_upper"]),
                indices(&c["violations_upper"])
            );
            assert_eq!(
                indices(&j["cusum"]["violations_lower"]),
                indices(&c["violations_lower"])
            );
            let w = &r["ewma_l0.2_L3"];
            close_all(&floats(&j["ewma"]["z"]), &w["y"], "ewma z");
            close_all(&floats(&j["ewma"]["lcl"]), &w["lcl"], "ewma lcl");
            close_all(&floats(&j["ewma"]["ucl"]), &w["ucl"], "ewma ucl");
            assert_eq!(indices(&j["ewma"]["violations"]), indices(&w["violations"]));
            // Capability from the same center and sigma: (USL − LSL) / 6σ etc.
            let sigma = x["std_dev"][0].as_f64().unwrap();
            let center = x["center"][0].as_f64().unwrap();
            close(
                j["capability"]["cp"].as_f64().unwrap(),
                0.1 / (6.0 * sigma),
                "cp",
            );
            close(
                j["capability"]["cpk"].as_f64().unwrap(),
                (74.05 - center) / (3.0 * sigma),
                "cpk",
            );
        }
    }
    let s = cli(&[
        "--input",
        input,
        "--value",
        "diameter",
        "--subgroup",
        "sample",
        "--chart",
        "xbar-s",
        "--calibrate",
        "25",
        "--rules",
        "nelson",
        "--json",
    ]);
    close(
        s["dispersion"]["ucl"].as_f64().unwrap(),
        r["S"]["ucl"][0].as_f64().unwrap(),
        "S ucl",
    );
    close(
        s["sigma"].as_f64().unwrap(),
        r["S"]["std_dev"][0].as_f64().unwrap(),
        "S sigma",
    );
    assert_eq!(
        indices(&s["dispersion"]["violations"]["5"]),
        indices(&r["S"]["nelson"]["5"])
    );
    assert!(s.get("cusum").is_none() && s.get("ewma").is_none() && s.get("capability").is_none());
}

#[test]
fn the_cli_reproduces_qcc_on_viscosity_individuals() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("visc.csv");
    let mut text = String::from("batch,viscosity\n");
    for (i, v) in VISCOSITY.iter().enumerate() {
        text += &format!("{},{v}\n", i + 1);
    }
    std::fs::write(&path, text).unwrap();
    let j = cli(&[
        "--input",
        path.to_str().unwrap(),
        "--value",
        "viscosity",
        "--chart",
        "imr",
        "--calibrate",
        "15",
        "--ewma",
        "0.2,2.7",
        "--json",
    ]);
    let v = &r["visc_I"];
    close(
        j["sigma"].as_f64().unwrap(),
        v["std_dev"][0].as_f64().unwrap(),
        "sigma",
    );
    close(
        j["ucl"].as_f64().unwrap(),
        v["ucl"][0].as_f64().unwrap(),
        "ucl",
    );
    close_all(&floats(&j["statistics"]), &v["stats"], "statistics");
    assert!(
        j["dispersion"]["statistics"][0].is_null(),
        "no moving range for the first point"
    );
    close_all(
        &floats(&j["ewma"]["z"]),
        &r["ewma_visc_l0.2_L2.7"]["y"],
        "ewma",
    );
}

#[test]
fn the_cli_explains_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "x\n1\n2\nabc\n").unwrap();
    let out = Command::new(common::gateway_binary())
        .args([
            "analyze",
            "spc",
            "--input",
            path.to_str().unwrap(),
            "--value",
            "x",
            "--chart",
            "imr",
            "--calibrate",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4") && err.contains("abc"), "{err}");
    let out = Command::new(common::gateway_binary())
        .args([
            "analyze",
            "spc",
            "--input",
            path.to_str().unwrap(),
            "--value",
            "y",
            "--chart",
            "imr",
            "--calibrate",
            "2",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no column `y`"));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn engine(chart: ChartKind) -> SpcEngine {
        SpcEngine::new(SpcSettings {
            chart,
            subgroup_size: 4,
            calibration: Calibration::FirstN(10),
            rules: Some(RuleSet::Nelson),
            enabled_rules: None,
            cusum: Some(CusumSettings { k: 0.5, h: 4.0 }),
            ewma: Some(EwmaSettings {
                lambda: 0.25,
                l: 3.0,
            }),
        })
        .unwrap()
    }

    fn feed(chart: ChartKind, data: &[f64]) -> (SpcEngine, Vec<SpcPoint>) {
        let mut e = engine(chart);
        let mut out = Vec::new();
        data.iter().for_each(|x| e.push(*x, &mut out));
        (e, out)
    }

    fn near(a: f64, b: f64, scale: f64) -> bool {
        (a - b).abs() <= 1e-9 * scale.max(1.0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// x ↦ a + b·x moves center, statistics and EWMA with it, scales sigma and the
        /// dispersion by b, and leaves every rule verdict and the standardized CUSUM as they were.
        #[test]
        fn shifting_and_scaling_the_data_transforms_limits_and_keeps_violations(
            noise in prop::collection::vec(-1.0f64..1.0, 80),
            drift in -0.05f64..0.05,
            shift in -1000.0f64..1000.0,
            exponent in -6i32..7,
            imr in any::<bool>(),
        ) {
            let chart = if imr { ChartKind::Imr } else { ChartKind::XbarR };
            let scale = 2f64.powi(exponent);
            let data: Vec<f64> = noise.iter().enumerate().map(|(i, n)| 10.0 + n + drift * i as f64).collect();
            let moved: Vec<f64> = data.iter().map(|x| shift + scale * x).collect();
            let (e1, p1) = feed(chart, &data);
            let (e2, p2) = feed(chart, &moved);
            let (a, b) = (e1.estimate().unwrap(), e2.estimate().unwrap());
            let mag = shift.abs() + scale * 20.0;
            prop_assert!(near(b.location.center, shift + scale * a.location.center, mag));
            prop_assert!(near(b.location.ucl, shift + scale * a.location.ucl, mag));
            prop_assert!(near(b.sigma, scale * a.sigma, scale));
            prop_assert!(near(b.dispersion.ucl, scale * a.dispersion.ucl, scale));
            prop_assert_eq!(p1.len(), p2.len());
            for (x, y) in p1.iter().zip(&p2) {
                prop_assert!(near(y.statistic, shift + scale * x.statistic, mag));
                prop_assert_eq!(x.violations, y.violations, "point {}", x.index);
                prop_assert_eq!(x.dispersion_violations, y.dispersion_violations, "point {}", x.index);
                let (cx, cy) = (x.cusum.unwrap(), y.cusum.unwrap());
                prop_assert!(near(cx.upper, cy.upper, 10.0) && near(cx.lower, cy.lower, 10.0));
                prop_assert_eq!((cx.upper_violation, cx.lower_violation), (cy.upper_violation, cy.lower_violation));
                let (wx, wy) = (x.ewma.unwrap(), y.ewma.unwrap());
                prop_assert!(near(wy.z, shift + scale * wx.z, mag));
                prop_assert_eq!(wx.violation, wy.violation);
            }
        }
    }
}
