//! What each plant's engineer does without fleet knowledge, written down as the rule the
//! simulation follows: a feature's warning level is its healthy mean plus `k` standard
//! deviations over the plant's own first hour of life.
//!
//! It is the common practice for a new machine (a statistical alarm from its own baseline),
//! and it is biased where the first hour is not healthy-steady: several shared lives start
//! with high 2–6 kHz energy that falls as the bearing runs in (the data's README, "Doubts" 3),
//! which raises that feature's level. The simulation keeps that bias rather than hiding it.

use super::life::{Life, FEATURES};

/// Seconds of life the engineer's baseline is taken from.
pub const BASELINE_S: f64 = 3600.0;

/// A feature's healthy baseline and the warning level set from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    /// Mean over the baseline window.
    pub mean: f64,
    /// Sample standard deviation over it.
    pub sigma: f64,
    /// Snapshots it was taken from.
    pub snapshots: usize,
    /// `mean + k·sigma`.
    pub warning: f64,
}

/// The baseline of feature `feature` (an index into [`FEATURES`]) over the first
/// [`BASELINE_S`] of `life` (at least its first two snapshots), with the warning at `k` sigma.
pub fn baseline(life: &Life, feature: usize, k: f64) -> Baseline {
    assert!(
        feature < FEATURES.len(),
        "feature {feature} of {}",
        FEATURES.len()
    );
    let window: Vec<f64> = life
        .snapshots
        .iter()
        .enumerate()
        .take_while(|(i, s)| *i < 2 || s.t_s < BASELINE_S)
        .map(|(_, s)| s.features[feature])
        .collect();
    let n = window.len() as f64;
    let mean = window.iter().sum::<f64>() / n;
    let sigma = (window.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    Baseline {
        mean,
        sigma,
        snapshots: window.len(),
        warning: mean + k * sigma,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::life::{Condition, Snapshot};

    #[test]
    fn the_warning_is_the_first_hours_mean_plus_k_sigma() {
        let snapshots = (0..720)
            .map(|i| Snapshot {
                t_s: f64::from(i) * 10.0,
                // 1, 3, 1, 3, … in the first hour (mean 2, sample sigma just over 1), then 50.
                features: [if i >= 360 {
                    50.0
                } else {
                    f64::from(1 + 2 * (i % 2))
                }; 5],
            })
            .collect();
        let life = Life {
            name: "b".into(),
            condition: Condition {
                id: 1,
                rpm: 1800.0,
                radial_load_n: 4000.0,
            },
            snapshots,
        };
        let b = baseline(&life, 0, 3.0);
        assert_eq!(b.snapshots, 360);
        assert_eq!(b.mean, 2.0);
        let sigma = (360.0f64 / 359.0).sqrt();
        assert!((b.sigma - sigma).abs() < 1e-12);
        assert!((b.warning - (2.0 + 3.0 * sigma)).abs() < 1e-12);
    }
}
