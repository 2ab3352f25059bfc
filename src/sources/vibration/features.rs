//! What a window yields: each feature's value for its point, and a downsampled spectrum for
//! dashboards.

use crate::analysis::vibration::bearing::{Diagnosis, Verdict};
use crate::analysis::vibration::VibrationFeatures;
use crate::config::VibrationFeature;

/// A downsampled amplitude spectrum and the window's headline results, for dashboards.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SpectrumSnapshot {
    /// Hz between consecutive `amplitudes`.
    pub resolution_hz: f64,
    /// Peak-hold downsampled amplitude spectrum from 0 Hz, in the samples' unit.
    pub amplitudes: Vec<f64>,
    /// Velocity RMS, mm/s.
    pub velocity_rms_mm_s: f64,
    /// ISO 10816-3 zone.
    pub iso10816_zone: char,
    /// Bearing verdict, when a bearing is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearing_verdict: Option<Verdict>,
    /// Envelope band used, Hz.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envelope_band_hz: Option<[f64; 2]>,
    /// Velocity RMS at the A/B, B/C and C/D zone boundaries of the configured machine class,
    /// mm/s.
    pub iso10816_boundaries_mm_s: [f64; 3],
    /// Shaft speed, Hz, when `rpm` is configured (the orders of the spectrum).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shaft_hz: Option<f64>,
    /// The squared envelope spectrum and the bearing's defect frequencies, when a bearing is
    /// configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envelope: Option<EnvelopeSnapshot>,
}

/// A downsampled squared envelope spectrum with the frequencies a bearing defect shows at.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EnvelopeSnapshot {
    /// Hz between consecutive `amplitudes`.
    pub resolution_hz: f64,
    /// Peak-hold downsampled squared envelope spectrum from 0 Hz, in the samples' unit squared.
    pub amplitudes: Vec<f64>,
    /// Ball pass frequency, outer race, Hz.
    pub bpfo_hz: f64,
    /// Ball pass frequency, inner race, Hz.
    pub bpfi_hz: f64,
    /// Ball spin frequency, Hz.
    pub bsf_hz: f64,
    /// Cage frequency, Hz.
    pub ftf_hz: f64,
    /// Evidence per defect: the line found near each frequency and its score, dB.
    pub diagnosis: Vec<Diagnosis>,
}

/// Reads one feature out of an analysis.
pub fn feature_value(f: &VibrationFeatures, feature: VibrationFeature) -> Option<f64> {
    let score = |i: usize| {
        f.bearing
            .as_ref()
            .and_then(|b| b.diagnosis.get(i))
            .map(|d| d.score)
            .filter(|s| s.is_finite())
    };
    match feature {
        VibrationFeature::Rms => Some(f.rms),
        VibrationFeature::Peak => Some(f.peak),
        VibrationFeature::PeakToPeak => Some(f.peak_to_peak),
        VibrationFeature::CrestFactor => Some(f.crest_factor),
        VibrationFeature::Kurtosis => Some(f.kurtosis),
        VibrationFeature::Skewness => Some(f.skewness),
        VibrationFeature::VelocityRms => Some(f.velocity_rms_mm_s),
        VibrationFeature::IsoZone => Some(f64::from(f.iso10816_zone as u32 - 'A' as u32 + 1)),
        VibrationFeature::BandRms(n) => f.bands.get(n).map(|b| b.rms),
        VibrationFeature::Harmonic(order) => f
            .harmonics
            .iter()
            .find(|h| h.order == order)
            .map(|h| h.amplitude),
        VibrationFeature::OuterRaceScore => score(0),
        VibrationFeature::InnerRaceScore => score(1),
        VibrationFeature::BallScore => score(2),
        VibrationFeature::CageScore => score(3),
        VibrationFeature::BearingVerdict => f.bearing.as_ref().map(|b| match b.verdict {
            Verdict::None => 0.0,
            Verdict::OuterRace => 1.0,
            Verdict::InnerRace => 2.0,
            Verdict::Ball => 3.0,
            Verdict::Cage => 4.0,
        }),
    }
}

/// Peak-hold downsampling to at most `points` values.
pub fn downsample(spectrum: &[f64], resolution_hz: f64, points: usize) -> (f64, Vec<f64>) {
    if points == 0 || spectrum.is_empty() {
        return (resolution_hz, Vec::new());
    }
    let group = spectrum.len().div_ceil(points).max(1);
    let values = spectrum
        .chunks(group)
        .map(|c| c.iter().copied().fold(0.0, f64::max))
        .collect();
    (resolution_hz * group as f64, values)
}
