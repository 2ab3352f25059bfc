//! Statistical process control: X̄-R, X̄-S and individuals/moving-range charts with phase I
//! calibration, Western Electric and Nelson run rules, tabular CUSUM, EWMA and capability.
//!
//! Streaming and O(1) per observation: [`SpcEngine::push`] takes one measurement at a time and
//! emits a [`SpcPoint`] whenever a subgroup completes. During calibration (phase I) statistics
//! are kept; when the last calibration subgroup arrives the limits are estimated and every
//! calibration point is emitted with its rule verdicts (as qcc reports them), after which each
//! new subgroup is judged against the fixed limits (phase II). Buffers are sized at
//! construction; nothing allocates per observation.
//!
//! The estimates are qcc's defaults: σ = R̄/d2 (X̄-R), s̄/c4 (X̄-S), MR̄/d2(2) (individuals); the
//! center is the size-weighted mean of the subgroup means. Sums are compensated (see
//! [`sum`]), so results agree with R to the last bits.

pub mod constants;
pub mod rules;
pub mod sum;

pub use rules::{RuleSet, RuleState, Violations, Zones};

use constants::{constants, Constants, MAX_SUBGROUP, MIN_SUBGROUP};
use serde::{Deserialize, Serialize};

/// Which chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChartKind {
    /// X̄ and range.
    #[serde(rename = "xbar-r")]
    XbarR,
    /// X̄ and standard deviation.
    #[serde(rename = "xbar-s")]
    XbarS,
    /// Individuals and moving range.
    #[serde(rename = "imr")]
    Imr,
}

/// Where the limits come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Calibration {
    /// Estimated from the first N subgroups (individual points for I-MR).
    FirstN(usize),
    /// Given: the process center and sigma of individual values.
    Given {
        /// Center line of the location chart.
        center: f64,
        /// Process standard deviation of individual values.
        sigma: f64,
    },
}

/// Tabular CUSUM parameters, in sigma units of the charted statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CusumSettings {
    /// Reference value k (half the shift to detect; qcc's `se.shift / 2`).
    pub k: f64,
    /// Decision interval h.
    pub h: f64,
}

/// EWMA parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EwmaSettings {
    /// Smoothing constant λ, 0 < λ ≤ 1.
    pub lambda: f64,
    /// Width of the limits in sigmas, L.
    pub l: f64,
}

/// Specification limits for capability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    /// Lower specification limit.
    pub lsl: f64,
    /// Upper specification limit.
    pub usl: f64,
    /// Target (default: the midpoint).
    pub target: Option<f64>,
}

/// Everything an SPC engine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SpcSettings {
    /// Chart kind.
    pub chart: ChartKind,
    /// Subgroup size (2–25 for X̄ charts; ignored for I-MR).
    pub subgroup_size: usize,
    /// Limits: estimated or given.
    pub calibration: Calibration,
    /// Run rules, if any.
    pub rules: Option<RuleSet>,
    /// Rule numbers switched on (all of the set when None).
    pub enabled_rules: Option<Vec<u8>>,
    /// Tabular CUSUM, if wanted.
    pub cusum: Option<CusumSettings>,
    /// EWMA, if wanted.
    pub ewma: Option<EwmaSettings>,
}

/// Why settings are unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpcError {
    /// Subgroup size outside the tables.
    #[error("subgroup size {0} is outside {MIN_SUBGROUP}..={MAX_SUBGROUP}")]
    SubgroupSize(usize),
    /// Too few calibration subgroups to estimate anything.
    #[error("calibration needs at least 2 subgroups (points for I-MR), got {0}")]
    Calibration(usize),
    /// Given limits that are not finite or a sigma that is not positive.
    #[error("given center and sigma must be finite and sigma positive")]
    GivenLimits,
    /// Bad CUSUM parameters.
    #[error("CUSUM k and h must be finite, k ≥ 0 and h > 0")]
    Cusum,
    /// Bad EWMA parameters.
    #[error("EWMA lambda must lie in (0, 1] and L be positive")]
    Ewma,
    /// A rule number outside the set.
    #[error("rule {rule} is not in the {set:?} set")]
    Rule {
        /// The number.
        rule: u8,
        /// The set.
        set: RuleSet,
    },
    /// A subgroup of the wrong size was given.
    #[error("subgroup of {got} values, the chart's subgroup size is {want}")]
    WrongSize {
        /// Values given.
        got: usize,
        /// Subgroup size.
        want: usize,
    },
}

/// Center and limits of one chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limits {
    /// Center line.
    pub center: f64,
    /// Lower control limit (3σ).
    pub lcl: f64,
    /// Upper control limit (3σ).
    pub ucl: f64,
}

/// The estimated (or given) parameters of both charts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Process sigma (of individual values).
    pub sigma: f64,
    /// Location chart.
    pub location: Limits,
    /// Dispersion chart (R, S or MR).
    pub dispersion: Limits,
    location_zones: Zones,
    dispersion_zones: Zones,
}

/// CUSUM values at a point (qcc's standardized sums; `lower` ≤ 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CusumPoint {
    /// Upper sum.
    pub upper: f64,
    /// Lower sum, reported as qcc does: ≤ 0.
    pub lower: f64,
    /// `upper > h`.
    pub upper_violation: bool,
    /// `lower < −h`.
    pub lower_violation: bool,
}

/// EWMA values at a point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EwmaPoint {
    /// The smoothed statistic.
    pub z: f64,
    /// Its lower limit at this point.
    pub lcl: f64,
    /// Its upper limit at this point.
    pub ucl: f64,
    /// Outside the limits.
    pub violation: bool,
}

/// One charted point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpcPoint {
    /// 1-based index over all points, calibration first.
    pub index: usize,
    /// True for calibration (phase I) points.
    pub calibration: bool,
    /// X̄ of the subgroup, or the individual value.
    pub statistic: f64,
    /// R, s, or the moving range (None for the first individual).
    pub dispersion: Option<f64>,
    /// Rules violated on the location chart.
    pub violations: Violations,
    /// Rules violated on the dispersion chart.
    pub dispersion_violations: Violations,
    /// CUSUM, when configured.
    pub cusum: Option<CusumPoint>,
    /// EWMA, when configured.
    pub ewma: Option<EwmaPoint>,
}

/// Process capability indices.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    /// (USL − LSL) / 6σ
    pub cp: f64,
    /// (center − LSL) / 3σ
    pub cp_l: f64,
    /// (USL − center) / 3σ
    pub cp_u: f64,
    /// min(Cp_l, Cp_u)
    pub cpk: f64,
    /// (USL − LSL) / 6√(σ² + (center − target)²)
    pub cpm: f64,
}

/// Capability of a process with this center and sigma.
pub fn capability(center: f64, sigma: f64, spec: &Spec) -> Capability {
    let target = spec.target.unwrap_or((spec.lsl + spec.usl) / 2.0);
    let cp_l = (center - spec.lsl) / (3.0 * sigma);
    let cp_u = (spec.usl - center) / (3.0 * sigma);
    Capability {
        cp: (spec.usl - spec.lsl) / (6.0 * sigma),
        cp_l,
        cp_u,
        cpk: cp_l.min(cp_u),
        cpm: (spec.usl - spec.lsl) / (6.0 * (sigma * sigma + (center - target).powi(2)).sqrt()),
    }
}

/// A calibration statistic waiting for the limits.
#[derive(Debug, Clone, Copy)]
struct Stored {
    statistic: f64,
    dispersion: Option<f64>,
}

/// The streaming SPC engine of one measured quantity.
#[derive(Debug, Clone)]
pub struct SpcEngine {
    settings: SpcSettings,
    constants: Option<Constants>,
    subgroup: Vec<f64>,
    previous_value: Option<f64>,
    calibration: Vec<Stored>,
    estimate: Option<Estimate>,
    index: usize,
    location_rules: Option<RuleState>,
    dispersion_rules: Option<RuleState>,
    cusum: (f64, f64),
    ewma: Option<(f64, f64)>,
    failed_calibrations: u64,
}

impl SpcEngine {
    /// An engine for `settings`.
    pub fn new(settings: SpcSettings) -> Result<Self, SpcError> {
        let n = match settings.chart {
            ChartKind::Imr => 1,
            _ => settings.subgroup_size,
        };
        let constants = if settings.chart == ChartKind::Imr {
            constants(2)
        } else {
            Some(constants(n).ok_or(SpcError::SubgroupSize(n))?)
        };
        let capacity = match settings.calibration {
            Calibration::FirstN(k) if k < 2 => return Err(SpcError::Calibration(k)),
            Calibration::FirstN(k) => k,
            Calibration::Given { center, sigma } => {
                if !(center.is_finite() && sigma.is_finite() && sigma > 0.0) {
                    return Err(SpcError::GivenLimits);
                }
                0
            }
        };
        if let Some(c) = settings.cusum {
            if !(c.k.is_finite() && c.h.is_finite() && c.k >= 0.0 && c.h > 0.0) {
                return Err(SpcError::Cusum);
            }
        }
        if let Some(e) = settings.ewma {
            if !(e.lambda > 0.0 && e.lambda <= 1.0 && e.l.is_finite() && e.l > 0.0) {
                return Err(SpcError::Ewma);
            }
        }
        if let (Some(set), Some(rules)) = (settings.rules, &settings.enabled_rules) {
            if let Some(&rule) = rules.iter().find(|r| **r == 0 || **r > set.rules()) {
                return Err(SpcError::Rule { rule, set });
            }
        }
        let rule_state = || {
            settings
                .rules
                .map(|set| RuleState::new(set, settings.enabled_rules.as_deref()))
        };
        let mut engine = Self {
            constants,
            subgroup: Vec::with_capacity(n.max(1)),
            previous_value: None,
            calibration: Vec::with_capacity(capacity),
            estimate: None,
            index: 0,
            location_rules: rule_state(),
            dispersion_rules: rule_state(),
            cusum: (0.0, 0.0),
            ewma: None,
            failed_calibrations: 0,
            settings,
        };
        if let Calibration::Given { center, sigma } = engine.settings.calibration {
            engine.estimate = Some(engine.estimate_from(center, sigma, None));
        }
        Ok(engine)
    }

    /// The settings.
    pub fn settings(&self) -> &SpcSettings {
        &self.settings
    }

    /// Center, sigma and limits, once calibrated.
    pub fn estimate(&self) -> Option<&Estimate> {
        self.estimate.as_ref()
    }

    /// Calibrations thrown away because the data had no spread (σ = 0).
    pub fn failed_calibrations(&self) -> u64 {
        self.failed_calibrations
    }

    /// Observations per subgroup.
    pub fn subgroup_size(&self) -> usize {
        match self.settings.chart {
            ChartKind::Imr => 1,
            _ => self.settings.subgroup_size,
        }
    }

    /// Adds one observation; appends the points it completes to `out` (none, one, or the whole
    /// calibration set when it completes the calibration).
    pub fn push(&mut self, value: f64, out: &mut Vec<SpcPoint>) {
        if !value.is_finite() {
            return;
        }
        self.subgroup.push(value);
        if self.subgroup.len() >= self.subgroup_size() {
            self.close_subgroup(out);
        }
    }

    /// Adds a whole subgroup at once (its size must be the chart's).
    pub fn push_subgroup(
        &mut self,
        values: &[f64],
        out: &mut Vec<SpcPoint>,
    ) -> Result<(), SpcError> {
        if values.len() != self.subgroup_size() {
            return Err(SpcError::WrongSize {
                got: values.len(),
                want: self.subgroup_size(),
            });
        }
        self.subgroup.clear();
        self.subgroup.extend_from_slice(values);
        self.close_subgroup(out);
        Ok(())
    }

    /// Drops a partial subgroup (e.g. when a counter moved on before it was complete);
    /// returns how many observations were dropped.
    pub fn discard_partial(&mut self) -> usize {
        let n = self.subgroup.len();
        self.subgroup.clear();
        n
    }

    fn close_subgroup(&mut self, out: &mut Vec<SpcPoint>) {
        let stored = match self.settings.chart {
            ChartKind::Imr => {
                let x = self.subgroup[0];
                let mr = self.previous_value.map(|p| (x - p).abs());
                self.previous_value = Some(x);
                Stored {
                    statistic: x,
                    dispersion: mr,
                }
            }
            ChartKind::XbarR => {
                let (lo, hi) = self
                    .subgroup
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                        (lo.min(*x), hi.max(*x))
                    });
                Stored {
                    statistic: sum::mean(&self.subgroup),
                    dispersion: Some(hi - lo),
                }
            }
            ChartKind::XbarS => Stored {
                statistic: sum::mean(&self.subgroup),
                dispersion: Some(sum::sd(&self.subgroup)),
            },
        };
        self.subgroup.clear();
        if let Some(e) = self.estimate {
            out.push(self.judge(stored, false, e));
            return;
        }
        self.calibration.push(stored);
        if let Calibration::FirstN(k) = self.settings.calibration {
            if self.calibration.len() >= k {
                let e = self.calibrate();
                // Identical readings (a register polled faster than it changes) give no spread:
                // charting with zero-width limits would flag everything. Start over instead.
                if !(e.sigma.is_finite() && e.sigma > 0.0) {
                    self.estimate = None;
                    self.calibration.clear();
                    self.failed_calibrations += 1;
                    return;
                }
                for i in 0..self.calibration.len() {
                    let s = self.calibration[i];
                    out.push(self.judge(s, true, e));
                }
            }
        }
    }

    fn calibrate(&mut self) -> Estimate {
        let n = self.subgroup_size() as f64;
        let mut weighted = sum::Sum::default();
        for s in &self.calibration {
            weighted.add(n * s.statistic);
        }
        let center = weighted.value() / (n * self.calibration.len() as f64);
        let dispersions: Vec<f64> = self
            .calibration
            .iter()
            .filter_map(|s| s.dispersion)
            .collect();
        let mean_dispersion = sum::mean(&dispersions);
        let k = self.constants;
        let sigma = match (self.settings.chart, k) {
            (ChartKind::XbarS, Some(k)) => {
                let mut s = sum::Sum::default();
                dispersions.iter().for_each(|d| s.add(d / k.c4));
                s.value() / dispersions.len() as f64
            }
            (_, Some(k)) => {
                let mut s = sum::Sum::default();
                dispersions.iter().for_each(|d| s.add(d / k.d2));
                s.value() / dispersions.len() as f64
            }
            (_, None) => f64::NAN,
        };
        let e = self.estimate_from(center, sigma, Some(mean_dispersion));
        self.estimate = Some(e);
        e
    }

    /// Limits for a center and sigma; the dispersion center is its expected value unless a
    /// calibration mean is given.
    fn estimate_from(&self, center: f64, sigma: f64, mean_dispersion: Option<f64>) -> Estimate {
        let se = sigma / (self.subgroup_size() as f64).sqrt();
        let location_zones = Zones {
            center,
            lower: [1.0, 2.0, 3.0].map(|k| center - k * se),
            upper: [1.0, 2.0, 3.0].map(|k| center + k * se),
        };
        let (d_center, expected, spread) = match (self.settings.chart, self.constants) {
            // S chart (qcc limits.S): c4σ ± kσ√(1 − c4²).
            (ChartKind::XbarS, Some(k)) => (
                mean_dispersion.unwrap_or(k.c4 * sigma),
                k.c4 * sigma,
                sigma * (1.0 - k.c4 * k.c4).sqrt(),
            ),
            // R and MR charts (qcc limits.R): R̄ ± k·d3·σ.
            (_, Some(k)) => {
                let c = mean_dispersion.unwrap_or(k.d2 * sigma);
                (c, c, k.d3 * sigma)
            }
            (_, None) => (f64::NAN, f64::NAN, f64::NAN),
        };
        let dispersion_zones = Zones {
            center: d_center,
            lower: [1.0, 2.0, 3.0].map(|k| (expected - k * spread).max(0.0)),
            upper: [1.0, 2.0, 3.0].map(|k| expected + k * spread),
        };
        Estimate {
            sigma,
            location: Limits {
                center,
                lcl: location_zones.lower[2],
                ucl: location_zones.upper[2],
            },
            dispersion: Limits {
                center: d_center,
                lcl: dispersion_zones.lower[2],
                ucl: dispersion_zones.upper[2],
            },
            location_zones,
            dispersion_zones,
        }
    }

    fn judge(&mut self, s: Stored, calibration: bool, e: Estimate) -> SpcPoint {
        self.index += 1;
        let violations = self
            .location_rules
            .as_mut()
            .map(|r| r.push(s.statistic, &e.location_zones))
            .unwrap_or_default();
        let dispersion_violations = match (s.dispersion, self.dispersion_rules.as_mut()) {
            (Some(d), Some(r)) => r.push(d, &e.dispersion_zones),
            _ => Violations::default(),
        };
        let se = e.sigma / (self.subgroup_size() as f64).sqrt();
        let cusum = self.settings.cusum.map(|c| {
            let z = (s.statistic - e.location.center) / se;
            let (pos, neg) = self.cusum;
            let pos = (pos + (z - c.k)).max(0.0);
            let neg = (neg - (z + c.k)).max(0.0);
            self.cusum = (pos, neg);
            // qcc reports the lower sum negated; 0 stays 0 rather than -0.
            let lower = if neg == 0.0 { 0.0 } else { -neg };
            CusumPoint {
                upper: pos,
                lower,
                upper_violation: pos > c.h,
                lower_violation: lower < -c.h,
            }
        });
        let ewma = self.settings.ewma.map(|w| {
            let (previous, decay) = self.ewma.unwrap_or((e.location.center, 1.0));
            let z = w.lambda * s.statistic + (1.0 - w.lambda) * previous;
            let decay = decay * (1.0 - w.lambda) * (1.0 - w.lambda);
            self.ewma = Some((z, decay));
            let width = w.l * (se * se * (w.lambda / (2.0 - w.lambda)) * (1.0 - decay)).sqrt();
            let (lcl, ucl) = (e.location.center - width, e.location.center + width);
            EwmaPoint {
                z,
                lcl,
                ucl,
                violation: z < lcl || z > ucl,
            }
        });
        SpcPoint {
            index: self.index,
            calibration,
            statistic: s.statistic,
            dispersion: s.dispersion,
            violations,
            dispersion_violations,
            cusum,
            ewma,
        }
    }
}

#[cfg(test)]
mod tests;
