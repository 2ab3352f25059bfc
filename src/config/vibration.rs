//! `type = "vibration"`: accelerometer waveforms, where they come from and what is computed.

use super::*;

/// `type = "vibration"`: an accelerometer waveform analysed window by window; each configured
/// feature becomes a point with alarms like any register. The waveform comes from a file
/// (replayed), a block of Modbus registers or an OPC UA array variable (acquired live).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VibrationConfig {
    /// Device name: the `<device>` level of MQTT topics.
    pub name: String,
    /// Waveform file to replay. Give exactly one of `file`, `modbus` and `opcua`.
    pub file: Option<PathBuf>,
    /// Live acquisition: a block of registers holding the latest window of samples, read as one
    /// window every `interval_ms`: `{ host, port, unit_id, register, address, scale, timeout_ms }`.
    pub modbus: Option<WaveformBlockConfig>,
    /// `[devices.opcua]` live acquisition: an array variable (`Double[N]`, `Float[N]` or
    /// integers) holding the latest window, read every `interval_ms`. Keys: `node`, `scale`
    /// (default one) and the connection keys of an OPC UA device (`endpoint`,
    /// `security_policy`, `security_mode`, `[devices.opcua.identity]`,
    /// `trust_server_on_first_use`, `accept_host_mismatch`, `timeout_ms`, `backoff_initial_ms`,
    /// `backoff_max_ms`).
    #[serde(skip)]
    pub opcua: Option<Box<OpcUaWaveformConfig>>,
    /// `f32` (raw little-endian), `csv` or `wav`; default from the file's extension.
    pub format: Option<WaveformFormat>,
    /// Samples per second (WAV files carry their own; this overrides it).
    pub sample_rate: Option<f64>,
    /// Samples per analysed window, 1 024 – 262 144 (a Modbus block: at most the 65 536
    /// registers a unit has). Default 16 384.
    #[serde(default = "default_vibration_window")]
    pub window: usize,
    /// For files: `realtime`, one window per window duration, as if acquired live; `fast`, one
    /// window per `interval_ms`. Default `realtime`. Modbus blocks are read every `interval_ms`.
    #[serde(default)]
    pub replay: ReplayPace,
    /// With `replay = "fast"` or a Modbus block, milliseconds between windows. Default 100.
    #[serde(default = "default_replay_interval_ms")]
    pub interval_ms: u64,
    /// Start again at the beginning when the file ends. Default true.
    #[serde(default = "default_true")]
    pub repeat: bool,
    /// `g` or `meters_per_second_squared`. Default `g`.
    #[serde(default)]
    pub unit: crate::analysis::vibration::AccelerationUnit,
    /// Shaft speed, rpm (for harmonics and bearing frequencies).
    pub rpm: Option<f64>,
    /// Bearing geometry: `{ elements, ball_diameter, pitch_diameter, contact_angle_deg }`.
    pub bearing: Option<crate::analysis::vibration::bearing::BearingGeometry>,
    /// Envelope band `[lo, hi]` Hz; default: chosen by spectral kurtosis.
    pub envelope_band_hz: Option<[f64; 2]>,
    /// Band of the overall velocity RMS, Hz. Default `[10, 1000]` (ISO 10816).
    #[serde(default = "default_velocity_band")]
    pub velocity_band_hz: [f64; 2],
    /// ISO 10816-3 machine group: `medium` (15–300 kW, default) or `large`.
    #[serde(default)]
    pub machine_group: crate::analysis::vibration::MachineGroup,
    /// ISO 10816-3 foundation: `rigid` (default) or `flexible`.
    #[serde(default)]
    pub foundation: crate::analysis::vibration::Foundation,
    /// Bands whose RMS the `band_rms` feature reads, Hz: `[[100, 1500], …]`.
    #[serde(default)]
    pub bands_hz: Vec<[f64; 2]>,
    /// Orders of shaft speed to measure (1× … N×). Default 5.
    #[serde(default = "default_harmonics")]
    pub harmonics: u8,
    /// Points of the downsampled spectrum published on `qis/<site>/spectrum/<device>`.
    /// Default 256; 0 publishes none.
    #[serde(default = "default_spectrum_points")]
    pub spectrum_points: usize,
    /// `[devices.context]`: what a domain expert declares similar (equipment class, process,
    /// sensor kind, mounting, `[devices.context.attributes]`). Its fingerprint routes outcome
    /// packets between plants; points inherit it unless they declare their own.
    pub context: Option<crate::packet::Context>,
    /// `[[devices.points]]`: features as points (`feature` instead of `register`), each
    /// with [`PointAddress::Feature`].
    #[serde(skip)]
    pub points: Vec<PointConfig>,
}

/// Where a vibration device's windows come from: exactly one of `file`, `[devices.modbus]`
/// and `[devices.opcua]` (the loader refuses anything else).
#[derive(Debug, Clone, Copy)]
pub enum WaveformSource<'a> {
    /// A recording, replayed.
    File {
        /// The file.
        path: &'a std::path::Path,
        /// Its format, when `format` is set (else from the extension).
        format: Option<WaveformFormat>,
    },
    /// A block of registers.
    Modbus(&'a WaveformBlockConfig),
    /// An OPC UA array variable.
    OpcUa(&'a OpcUaWaveformConfig),
}

impl VibrationConfig {
    /// Where the windows come from; None when no source is configured (which the loader
    /// refuses).
    pub fn source(&self) -> Option<WaveformSource<'_>> {
        match (&self.file, &self.modbus, &self.opcua) {
            (Some(path), _, _) => Some(WaveformSource::File {
                path,
                format: self.format,
            }),
            (None, Some(block), _) => Some(WaveformSource::Modbus(block)),
            (None, None, Some(w)) => Some(WaveformSource::OpcUa(w)),
            (None, None, None) => None,
        }
    }

    /// Where in the spectrum a vibration feature of `device` lives: the configured band of
    /// `band_rms:N` and `velocity_rms`, and, with a shaft speed, a harmonic's frequency or (with
    /// the bearing geometry) the defect frequency a bearing score watches.
    pub fn frequency_of(&self, feature: VibrationFeature) -> crate::packet::Frequency {
        let device = self;
        use crate::packet::Frequency;
        use VibrationFeature as F;
        let band = |b: [f64; 2]| Frequency::Band {
            lo: b[0] as f32,
            hi: b[1] as f32,
        };
        let shaft_hz = device.rpm.map(|rpm| rpm / 60.0);
        let defects = || {
            device
                .bearing
                .as_ref()
                .and_then(|g| g.frequencies(shaft_hz?).ok())
        };
        let at = |hz: Option<f64>| hz.map_or(Frequency::None, |hz| Frequency::At(hz as f32));
        let frequency = match feature {
            F::BandRms(n) => device
                .bands_hz
                .get(n)
                .copied()
                .map_or(Frequency::None, band),
            F::VelocityRms => band(device.velocity_band_hz),
            F::Harmonic(order) => at(shaft_hz.map(|hz| hz * f64::from(order))),
            F::OuterRaceScore => at(defects().map(|d| d.bpfo)),
            F::InnerRaceScore => at(defects().map(|d| d.bpfi)),
            F::BallScore => at(defects().map(|d| d.bsf)),
            F::CageScore => at(defects().map(|d| d.ftf)),
            F::Rms
            | F::Peak
            | F::PeakToPeak
            | F::CrestFactor
            | F::Kurtosis
            | F::Skewness
            | F::IsoZone
            | F::BearingVerdict => Frequency::None,
        };
        // Peers refuse a packet naming a frequency out of bounds: leave it out instead.
        if frequency.in_bounds() {
            frequency
        } else {
            Frequency::None
        }
    }

    /// Analysis settings at a sample rate.
    pub fn settings(&self, sample_rate: f64) -> crate::analysis::vibration::VibrationSettings {
        use crate::analysis::vibration::{EnvelopeBand, VibrationSettings};
        let mut s = VibrationSettings::new(sample_rate, self.window);
        s.unit = self.unit;
        s.velocity_band_hz = (self.velocity_band_hz[0], self.velocity_band_hz[1]);
        s.machine_group = self.machine_group;
        s.foundation = self.foundation;
        s.bands_hz = self.bands_hz.iter().map(|b| (b[0], b[1])).collect();
        s.shaft_hz = self.rpm.map(|r| r / 60.0);
        s.harmonics = self.harmonics;
        s.bearing = self.bearing;
        s.envelope_band = match self.envelope_band_hz {
            Some([lo, hi]) => EnvelopeBand::Fixed(lo, hi),
            None => EnvelopeBand::Auto,
        };
        s
    }

    /// A point turns stale after three windows without analysis.
    pub fn stale_after(&self) -> Duration {
        let window_s = self.window as f64 / self.sample_rate.unwrap_or(1.0).max(1.0);
        let live = self.modbus.is_some() || self.opcua.is_some();
        let pace = match (self.replay, live) {
            (ReplayPace::Realtime, false) => window_s,
            _ => self.interval_ms as f64 / 1000.0,
        };
        Duration::from_secs_f64((3.0 * pace).max(1.0))
    }
}

pub(super) fn default_vibration_window() -> usize {
    16_384
}
pub(super) fn default_replay_interval_ms() -> u64 {
    100
}
pub(super) fn default_true() -> bool {
    true
}
pub(super) fn default_velocity_band() -> [f64; 2] {
    [10.0, 1000.0]
}
pub(super) fn default_harmonics() -> u8 {
    5
}
pub(super) fn default_spectrum_points() -> usize {
    256
}

/// A waveform buffered in a device's registers (vibration modules and PLCs that sample an
/// accelerometer keep the latest window there): `window` consecutive signed 16-bit samples.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveformBlockConfig {
    /// Host of the Modbus TCP server.
    pub host: String,
    /// TCP port. Default 502.
    #[serde(default = "default_modbus_port")]
    pub port: u16,
    /// Unit id. Default 1.
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// `holding` or `input`. Default `holding`.
    #[serde(default = "default_block_register")]
    pub register: RegisterKind,
    /// Address of the first sample.
    pub address: u16,
    /// Engineering value of one count (e.g. 0.001 for milli-g). Default 1.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Timeout per request, ms (a window takes ⌈window/125⌉ requests). Default 1 000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// `[devices.opcua]` of a vibration device: an array variable holding the latest window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaWaveformConfig {
    /// Node id of the array variable, e.g. `ns=2;s=Pump7.Waveform`.
    pub node: String,
    /// Engineering value of one array element (e.g. 0.001 for milli-g). Default 1.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// The server and how to reach it (keys of the same table).
    #[serde(skip)]
    pub connection: OpcUaConnection,
}

pub(super) fn default_block_register() -> RegisterKind {
    RegisterKind::Holding
}

/// How fast a waveform file is replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayPace {
    /// At the recorded rate.
    #[default]
    Realtime,
    /// One window per `interval_ms`.
    Fast,
}

/// `[[devices.points]]` of a vibration device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VibrationPointConfig {
    /// Point name; unique within the device.
    pub name: String,
    /// The feature: `rms`, `peak`, `peak_to_peak`, `crest_factor`, `kurtosis`, `skewness`,
    /// `velocity_rms` (mm/s), `iso_zone` (1–4 for A–D), `band_rms:N` (the N-th of `bands_hz`),
    /// `harmonic:N` (amplitude at N× shaft speed), `outer_race_score`, `inner_race_score`,
    /// `ball_score`, `cage_score` (envelope evidence, dB), `bearing_verdict` (0 none,
    /// 1 outer race, 2 inner race, 3 ball, 4 cage).
    pub feature: VibrationFeature,
    /// Unit shown with the value; default the feature's own.
    pub unit: Option<String>,
    /// Alarm rules, exactly as on a register.
    #[serde(default)]
    pub alarms: Vec<AlarmRuleConfig>,
    /// SPC on the feature's values.
    pub spc: Option<SpcPointConfig>,
    /// This point's own context, overriding the device's.
    pub context: Option<crate::packet::Context>,
}

/// A feature of the vibration analysis that a point can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VibrationFeature {
    /// RMS, in the samples' unit.
    Rms,
    /// Peak.
    Peak,
    /// Peak to peak.
    PeakToPeak,
    /// Crest factor.
    CrestFactor,
    /// Kurtosis.
    Kurtosis,
    /// Skewness.
    Skewness,
    /// Velocity RMS, mm/s.
    VelocityRms,
    /// ISO 10816-3 zone as 1–4.
    IsoZone,
    /// RMS of the N-th configured band.
    BandRms(usize),
    /// Amplitude at N× shaft speed.
    Harmonic(u8),
    /// Envelope evidence of an outer race defect, dB.
    OuterRaceScore,
    /// Envelope evidence of an inner race defect, dB.
    InnerRaceScore,
    /// Envelope evidence of a rolling element defect, dB.
    BallScore,
    /// Envelope evidence of a cage defect, dB.
    CageScore,
    /// The verdict as a number: 0 none, 1 outer race, 2 inner race, 3 ball, 4 cage.
    BearingVerdict,
}

impl VibrationFeature {
    /// The feature's natural unit.
    pub fn unit(self) -> &'static str {
        match self {
            VibrationFeature::VelocityRms => "mm/s",
            VibrationFeature::OuterRaceScore
            | VibrationFeature::InnerRaceScore
            | VibrationFeature::BallScore
            | VibrationFeature::CageScore => "dB",
            VibrationFeature::Rms
            | VibrationFeature::Peak
            | VibrationFeature::PeakToPeak
            | VibrationFeature::BandRms(_)
            | VibrationFeature::Harmonic(_) => "g",
            _ => "",
        }
    }
}

impl std::fmt::Display for VibrationFeature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VibrationFeature::Rms => f.write_str("rms"),
            VibrationFeature::Peak => f.write_str("peak"),
            VibrationFeature::PeakToPeak => f.write_str("peak_to_peak"),
            VibrationFeature::CrestFactor => f.write_str("crest_factor"),
            VibrationFeature::Kurtosis => f.write_str("kurtosis"),
            VibrationFeature::Skewness => f.write_str("skewness"),
            VibrationFeature::VelocityRms => f.write_str("velocity_rms"),
            VibrationFeature::IsoZone => f.write_str("iso_zone"),
            VibrationFeature::BandRms(n) => write!(f, "band_rms:{n}"),
            VibrationFeature::Harmonic(n) => write!(f, "harmonic:{n}"),
            VibrationFeature::OuterRaceScore => f.write_str("outer_race_score"),
            VibrationFeature::InnerRaceScore => f.write_str("inner_race_score"),
            VibrationFeature::BallScore => f.write_str("ball_score"),
            VibrationFeature::CageScore => f.write_str("cage_score"),
            VibrationFeature::BearingVerdict => f.write_str("bearing_verdict"),
        }
    }
}

impl std::str::FromStr for VibrationFeature {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let index = |what: &str, n: &str| {
            n.parse::<usize>()
                .map_err(|_| format!("`{what}:{n}`: {n} is not a number"))
        };
        Ok(match s.split_once(':') {
            Some(("band_rms", n)) => VibrationFeature::BandRms(index("band_rms", n)?),
            Some(("harmonic", n)) => {
                let order = index("harmonic", n)?;
                if !(1..=64).contains(&order) {
                    return Err(format!("harmonic order {order} is outside 1..=64"));
                }
                VibrationFeature::Harmonic(order as u8)
            }
            _ => match s {
                "rms" => VibrationFeature::Rms,
                "peak" => VibrationFeature::Peak,
                "peak_to_peak" => VibrationFeature::PeakToPeak,
                "crest_factor" => VibrationFeature::CrestFactor,
                "kurtosis" => VibrationFeature::Kurtosis,
                "skewness" => VibrationFeature::Skewness,
                "velocity_rms" => VibrationFeature::VelocityRms,
                "iso_zone" => VibrationFeature::IsoZone,
                "outer_race_score" => VibrationFeature::OuterRaceScore,
                "inner_race_score" => VibrationFeature::InnerRaceScore,
                "ball_score" => VibrationFeature::BallScore,
                "cage_score" => VibrationFeature::CageScore,
                "bearing_verdict" => VibrationFeature::BearingVerdict,
                _ => {
                    return Err(format!(
                        "unknown feature `{s}`, expected one of rms, peak, peak_to_peak, crest_factor, kurtosis, skewness, velocity_rms, iso_zone, band_rms:N, harmonic:N, outer_race_score, inner_race_score, ball_score, cage_score, bearing_verdict"
                    ))
                }
            },
        })
    }
}

impl<'de> Deserialize<'de> for VibrationFeature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Waveform file formats (`format` of a file source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveformFormat {
    /// Raw little-endian IEEE f32, one channel, no header.
    F32,
    /// One value per line (the first column); a header line is allowed.
    Csv,
    /// RIFF WAV, integer or float samples; the first channel is used.
    Wav,
}

impl WaveformFormat {
    /// The format a file name suggests.
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "f32" | "bin" | "raw" => Some(WaveformFormat::F32),
            "csv" | "txt" => Some(WaveformFormat::Csv),
            "wav" => Some(WaveformFormat::Wav),
            _ => None,
        }
    }
}
