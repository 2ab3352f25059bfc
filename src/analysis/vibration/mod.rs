//! Vibration analysis of one acceleration window: time-domain statistics, the amplitude
//! spectrum, velocity RMS and its ISO 10816-3 zone, band and harmonic amplitudes, bearing
//! defect frequencies, and envelope analysis with a bearing diagnosis.
//!
//! Synchronous and free of I/O. FFT plans and buffers are made once per window length by
//! [`VibrationAnalyzer::new`]; [`VibrationAnalyzer::analyze`] then fills a reused
//! [`VibrationFeatures`] without allocating (except for the rare first call that grows its
//! output vectors).
//!
//! Conventions (the README gives them in full):
//! - time features are taken after removing the mean; kurtosis is Pearson's (3 for a normal
//!   distribution);
//! - the spectrum uses a periodic Hann window scaled so that a sine of amplitude A reads A at
//!   its bin (2|X|/Σw); with `welch_segment` it is the RMS average of 50 %-overlapping segments;
//! - band RMS = √(2/(L·Σw²)·Σ|X|²) over the band's bins (Parseval with the window's energy),
//!   so white noise and sines both read their true RMS;
//! - velocity is integrated in the frequency domain (V = A/2πf) and reported in mm/s RMS over
//!   `velocity_band_hz` (10–1000 Hz by default, ISO 10816);
//! - envelope analysis band-passes the whole window in the frequency domain, forms the analytic
//!   signal with an inverse FFT (Hilbert transform), and takes the amplitude spectrum of the
//!   squared envelope with its mean removed (Randall's squared envelope spectrum).

pub mod bearing;
mod features;

pub use features::find_peaks;
use features::{max_in, sum};

use bearing::{BearingGeometry, DefectFrequencies};
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Standard gravity, m/s² per g.
pub const G: f64 = 9.80665;

/// Unit of the acceleration samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccelerationUnit {
    /// Multiples of standard gravity.
    #[default]
    G,
    /// Metres per second squared.
    MetersPerSecondSquared,
}

impl AccelerationUnit {
    fn to_si(self) -> f64 {
        match self {
            AccelerationUnit::G => G,
            AccelerationUnit::MetersPerSecondSquared => 1.0,
        }
    }
}

/// ISO 10816-3 machine group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MachineGroup {
    /// Group 1: large machines, 300 kW – 50 MW.
    Large,
    /// Group 2: medium machines, 15 – 300 kW.
    #[default]
    Medium,
}

/// ISO 10816-3 foundation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Foundation {
    /// Rigid foundation.
    #[default]
    Rigid,
    /// Flexible foundation.
    Flexible,
}

/// The zone boundaries A/B, B/C and C/D in mm/s RMS (ISO 10816-3:2009, Table A.1/A.2).
pub fn iso10816_boundaries(group: MachineGroup, foundation: Foundation) -> [f64; 3] {
    match (group, foundation) {
        (MachineGroup::Large, Foundation::Rigid) => [2.3, 4.5, 7.1],
        (MachineGroup::Large, Foundation::Flexible) => [3.5, 7.1, 11.0],
        (MachineGroup::Medium, Foundation::Rigid) => [1.4, 2.8, 4.5],
        (MachineGroup::Medium, Foundation::Flexible) => [2.3, 4.5, 7.1],
    }
}

/// The ISO 10816-3 zone of a velocity RMS: A (new), B (unrestricted), C (restricted), D (damage).
pub fn iso10816_zone(velocity_rms_mm_s: f64, group: MachineGroup, foundation: Foundation) -> char {
    let [ab, bc, cd] = iso10816_boundaries(group, foundation);
    match velocity_rms_mm_s {
        v if v < ab => 'A',
        v if v < bc => 'B',
        v if v < cd => 'C',
        _ => 'D',
    }
}

/// How the envelope band is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EnvelopeBand {
    /// A fixed band, Hz.
    Fixed(f64, f64),
    /// The band of highest spectral kurtosis among dyadic candidates (a fast kurtogram).
    Auto,
}

/// What to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct VibrationSettings {
    /// Samples per second.
    pub sample_rate: f64,
    /// Samples per analysed window (1 024 – 65 536).
    pub window: usize,
    /// Average the spectrum over 50 %-overlapping segments of this length (Welch).
    pub welch_segment: Option<usize>,
    /// Unit of the samples.
    pub unit: AccelerationUnit,
    /// Band of the overall velocity RMS, Hz.
    pub velocity_band_hz: (f64, f64),
    /// ISO 10816-3 machine group.
    pub machine_group: MachineGroup,
    /// ISO 10816-3 foundation.
    pub foundation: Foundation,
    /// Extra bands whose RMS is reported, Hz.
    pub bands_hz: Vec<(f64, f64)>,
    /// Shaft speed, Hz (for harmonics and bearing frequencies).
    pub shaft_hz: Option<f64>,
    /// Orders of shaft speed to report (1× … N×).
    pub harmonics: u8,
    /// Relative tolerance of a harmonic's frequency.
    pub harmonic_tolerance: f64,
    /// Bearing geometry (for defect frequencies and the diagnosis).
    pub bearing: Option<BearingGeometry>,
    /// Envelope band.
    pub envelope_band: EnvelopeBand,
    /// Number of dominant spectral peaks to report.
    pub peaks: usize,
}

impl VibrationSettings {
    /// Defaults for a sample rate and window length.
    pub fn new(sample_rate: f64, window: usize) -> Self {
        Self {
            sample_rate,
            window,
            welch_segment: None,
            unit: AccelerationUnit::G,
            velocity_band_hz: (10.0, 1000.0),
            machine_group: MachineGroup::Medium,
            foundation: Foundation::Rigid,
            bands_hz: Vec::new(),
            shaft_hz: None,
            harmonics: 5,
            harmonic_tolerance: 0.02,
            bearing: None,
            envelope_band: EnvelopeBand::Auto,
            peaks: 10,
        }
    }
}

/// The shortest window analysed.
pub const MIN_WINDOW: usize = 1024;

/// The longest window analysed: 5.1 s of a 51.2 kHz accelerometer.
pub const MAX_WINDOW: usize = 262_144;

/// Why an analyzer cannot be built or a window not analysed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VibrationError {
    /// Window length outside [`MIN_WINDOW`] – [`MAX_WINDOW`].
    #[error("window of {0} samples is outside 1024..=262144")]
    Window(usize),
    /// Sample rate not positive.
    #[error("sample rate {0} Hz must be positive and finite")]
    SampleRate(f64),
    /// A Welch segment longer than the window or too short.
    #[error("welch segment {0} must lie between 256 and the window length")]
    Segment(usize),
    /// A band that is empty or beyond Nyquist.
    #[error("band {0}–{1} Hz must satisfy 0 ≤ lo < hi ≤ sample_rate/2")]
    Band(f64, f64),
    /// Too few samples for the window.
    #[error("{got} samples given, the window needs {want}")]
    Short {
        /// Samples given.
        got: usize,
        /// Window length.
        want: usize,
    },
    /// A non-finite sample.
    #[error("sample {0} is not a finite number")]
    NonFinite(usize),
    /// Bad bearing geometry.
    #[error("bearing geometry: {0}")]
    Bearing(String),
}

/// A spectral peak.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Peak {
    /// Frequency, Hz, interpolated between bins.
    pub frequency_hz: f64,
    /// Amplitude at the peak bin, in the samples' unit.
    pub amplitude: f64,
}

/// RMS in a band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BandRms {
    /// Lower edge, Hz.
    pub lo_hz: f64,
    /// Upper edge, Hz.
    pub hi_hz: f64,
    /// RMS in the band, in the samples' unit.
    pub rms: f64,
}

/// Amplitude at an order of shaft speed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Harmonic {
    /// The order (1 for 1×).
    pub order: u8,
    /// Frequency of the largest bin within the tolerance, Hz.
    pub frequency_hz: f64,
    /// Its amplitude.
    pub amplitude: f64,
}

/// Everything computed from one window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VibrationFeatures {
    /// RMS after removing the mean.
    pub rms: f64,
    /// Largest absolute deviation from the mean.
    pub peak: f64,
    /// Maximum minus minimum.
    pub peak_to_peak: f64,
    /// Peak / RMS.
    pub crest_factor: f64,
    /// Pearson kurtosis (3 for Gaussian noise).
    pub kurtosis: f64,
    /// Skewness.
    pub skewness: f64,
    /// Velocity RMS over `velocity_band_hz`, mm/s.
    pub velocity_rms_mm_s: f64,
    /// ISO 10816-3 zone, `A`–`D`.
    pub iso10816_zone: char,
    /// Dominant spectral peaks, largest first.
    pub peaks: Vec<Peak>,
    /// RMS in the configured bands.
    pub bands: Vec<BandRms>,
    /// Amplitudes at orders of shaft speed.
    pub harmonics: Vec<Harmonic>,
    /// Bearing frequencies and diagnosis, when geometry and speed are known.
    pub bearing: Option<bearing::BearingReport>,
    /// Frequency resolution of `spectrum`, Hz.
    #[serde(skip)]
    pub resolution_hz: f64,
    /// The amplitude spectrum (bin k at k × resolution), for dashboards.
    #[serde(skip)]
    pub spectrum: Vec<f64>,
}

/// A reusable analyzer for one window length and sample rate.
pub struct VibrationAnalyzer {
    settings: VibrationSettings,
    segment: usize,
    segment_fft: Arc<dyn RealToComplex<f64>>,
    window_fft: Arc<dyn RealToComplex<f64>>,
    /// Inverse FFTs of every power-of-two length up to the window, for band-limited
    /// (decimated) analytic signals in the kurtogram search.
    short_inverses: Vec<Arc<dyn Fft<f64>>>,
    /// Forward real FFTs and Hann windows of every power-of-two length up to the window, for
    /// the squared envelope spectrum at the demodulated band's rate.
    short_forwards: Vec<Arc<dyn RealToComplex<f64>>>,
    short_hanns: Vec<Vec<f64>>,
    /// Bins of `envelope_spectrum` in use.
    envelope_bins: usize,
    hann: Vec<f64>,
    /// Σw and Σw² of `hann`, for amplitude and power scaling.
    hann_sum: f64,
    hann_square_sum: f64,
    /// Whether `full_spectrum` holds this window's spectrum (mean removed, no window
    /// function): computed once for the Hann spectrum and the demodulation both.
    window_spectrum_ready: bool,
    real_buf: Vec<f64>,
    spec_buf: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    power: Vec<f64>,
    full_spectrum: Vec<Complex<f64>>,
    analytic: Vec<Complex<f64>>,
    envelope: Vec<f64>,
    envelope_spectrum: Vec<f64>,
    median_scratch: Vec<f64>,
    defects: Option<DefectFrequencies>,
}

fn periodic_hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

impl VibrationAnalyzer {
    /// Plans the FFTs and sizes every buffer.
    pub fn new(settings: VibrationSettings) -> Result<Self, VibrationError> {
        let n = settings.window;
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&n) {
            return Err(VibrationError::Window(n));
        }
        let fs = settings.sample_rate;
        if !(fs.is_finite() && fs > 0.0) {
            return Err(VibrationError::SampleRate(fs));
        }
        let segment = settings.welch_segment.unwrap_or(n);
        if !(256..=n).contains(&segment) {
            return Err(VibrationError::Segment(segment));
        }
        let nyquist = fs / 2.0;
        let mut bands = settings.bands_hz.clone();
        bands.push(settings.velocity_band_hz);
        if let EnvelopeBand::Fixed(lo, hi) = settings.envelope_band {
            bands.push((lo, hi));
        }
        for (lo, hi) in bands {
            if !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo < hi && hi <= nyquist) {
                return Err(VibrationError::Band(lo, hi));
            }
        }
        let defects = match (&settings.bearing, settings.shaft_hz) {
            (Some(b), Some(shaft)) => Some(b.frequencies(shaft).map_err(VibrationError::Bearing)?),
            _ => None,
        };
        let mut real = RealFftPlanner::<f64>::new();
        let segment_fft = real.plan_fft_forward(segment);
        let window_fft = real.plan_fft_forward(n);
        let mut planner = FftPlanner::<f64>::new();
        let short_inverses: Vec<Arc<dyn Fft<f64>>> = (4..=n.ilog2())
            .map(|p| planner.plan_fft_inverse(1 << p))
            .collect();
        let short_forwards: Vec<Arc<dyn RealToComplex<f64>>> = (4..=n.ilog2())
            .map(|p| real.plan_fft_forward(1 << p))
            .collect();
        let short_hanns: Vec<Vec<f64>> = (4..=n.ilog2()).map(|p| periodic_hann(1 << p)).collect();
        let scratch_len = short_inverses
            .iter()
            .map(|f| f.get_inplace_scratch_len())
            .chain(short_forwards.iter().map(|f| f.get_scratch_len()))
            .fold(
                segment_fft
                    .get_scratch_len()
                    .max(window_fft.get_scratch_len()),
                usize::max,
            );
        Ok(Self {
            segment,
            hann_sum: periodic_hann(segment).iter().sum(),
            hann_square_sum: periodic_hann(segment).iter().map(|w| w * w).sum(),
            window_spectrum_ready: false,
            hann: periodic_hann(segment),
            real_buf: vec![0.0; n],
            spec_buf: vec![Complex::default(); n / 2 + 1],
            scratch: vec![Complex::default(); scratch_len],
            power: vec![0.0; segment / 2 + 1],
            full_spectrum: vec![Complex::default(); n / 2 + 1],
            analytic: vec![Complex::default(); n],
            envelope: vec![0.0; n],
            envelope_spectrum: vec![0.0; n / 2 + 1],
            median_scratch: Vec::with_capacity(n / 2 + 1),
            segment_fft,
            window_fft,
            short_inverses,
            short_forwards,
            short_hanns,
            envelope_bins: 0,
            defects,
            settings,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &VibrationSettings {
        &self.settings
    }

    /// Analyses the first `window` samples of `x` into `out`.
    pub fn analyze(
        &mut self,
        x: &[f64],
        out: &mut VibrationFeatures,
    ) -> Result<(), VibrationError> {
        let n = self.settings.window;
        let Some(x) = x.get(..n) else {
            return Err(VibrationError::Short {
                got: x.len(),
                want: n,
            });
        };
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(VibrationError::NonFinite(i));
        }
        let mean = sum(x) / n as f64;
        self.time_features(x, mean, out);
        self.power_spectrum(x, mean);
        self.spectral_features(out);
        match self.defects {
            Some(defects) => {
                // Reuse the previous report's vectors: no allocation once warmed up.
                let report = out
                    .bearing
                    .get_or_insert_with(bearing::BearingReport::empty);
                self.bearing_report(x, defects, report);
            }
            None => out.bearing = None,
        }
        Ok(())
    }
}
