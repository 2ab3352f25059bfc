//! The gateway's configuration: one TOML file, checked completely before anything starts.
//!
//! Every field below carries a doc comment because this module *is* the user manual for the
//! file; `config/example.toml` shows each field in use. Loading and the collection of every
//! error with its position live in `load.rs`.

mod load;
mod synthesis;

pub use synthesis::SynthesisConfig;

pub use load::{load_file, parse_str, ConfigError, Diagnostic};

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[site]`: who this gateway is.
    pub site: SiteConfig,
    /// `[mqtt]`: the plant's local MQTT broker.
    pub mqtt: MqttConfig,
    /// `[metrics]`: how often polled values are published.
    pub metrics: MetricsConfig,
    /// `[[devices]]`: the field devices to poll, each tagged by `type`.
    pub devices: Vec<DeviceConfig>,
    /// `[uplink]`: the fleet broker outcome packets go to, with the same keys as `[mqtt]`.
    /// Absent: packets go to the local broker, for a bridge (e.g. mosquitto's) to carry.
    pub uplink: Option<MqttConfig>,
    /// `[outcomes]`: sharing confirmed outcomes with other plants.
    pub outcomes: OutcomesConfig,
    /// `[synthesis]`: how peers' packets move adaptable thresholds, and how trust moves.
    pub synthesis: SynthesisConfig,
}

impl Config {
    /// Every point with a context (its own, or its device's): device name, point name and the
    /// context's fingerprint. A context whose fingerprint cannot be computed is left out (the
    /// loader has reported it).
    pub fn point_contexts(
        &self,
    ) -> impl Iterator<
        Item = (
            &str,
            &str,
            &crate::packet::Context,
            crate::packet::Fingerprint,
        ),
    > + '_ {
        self.devices.iter().flat_map(|d| {
            d.points().iter().filter_map(move |p| {
                let context = p.context.as_ref().or(d.context())?;
                let fingerprint = context.fingerprint().ok()?;
                Some((d.name(), p.name.as_str(), context, fingerprint))
            })
        })
    }

    /// The uplink topics of every context here, each once: what the gateway subscribes to.
    pub fn context_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        for (_, _, _, f) in self.point_contexts() {
            if !topics.contains(&f.topic()) {
                topics.push(f.topic());
            }
        }
        topics
    }

    /// The fleet broker: `[uplink]`, or the local broker when it is absent.
    pub fn uplink_broker(&self) -> &MqttConfig {
        self.uplink.as_ref().unwrap_or(&self.mqtt)
    }
}

/// `[outcomes]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomesConfig {
    /// Turn answered alarms of points with a context into outcome packets. Default true.
    #[serde(default = "default_true")]
    pub share: bool,
    /// How long receivers apply a packet, days. Default 30.
    #[serde(default = "default_ttl_days")]
    pub ttl_days: u32,
    /// Packets kept in the outbox while the uplink is away. When full, the oldest packet is
    /// dropped, counted and logged at ERROR (it is the closest to expiry). Default 10 000.
    #[serde(default = "default_outbox_max")]
    pub outbox_max: usize,
    /// Accept packets only from `allowlist` sources. Default false.
    #[serde(default)]
    pub strict: bool,
    /// Public keys (64 hex digits, as in a peer's `outcome-key.pub`) accepted in strict mode.
    #[serde(default)]
    pub allowlist: Vec<String>,
    /// Clock difference tolerated when checking a packet's issue time and expiry, seconds.
    /// Default 300.
    #[serde(default = "default_clock_skew_s")]
    pub clock_skew_s: u64,
}

fn default_clock_skew_s() -> u64 {
    300
}

impl Default for OutcomesConfig {
    fn default() -> Self {
        Self {
            share: true,
            ttl_days: default_ttl_days(),
            outbox_max: default_outbox_max(),
            strict: false,
            allowlist: Vec::new(),
            clock_skew_s: default_clock_skew_s(),
        }
    }
}

fn default_ttl_days() -> u32 {
    30
}
fn default_outbox_max() -> usize {
    10_000
}

/// `[site]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Site identifier, used as the second level of every local MQTT topic
    /// (`qis/<id>/...`). Letters, digits, `-` and `_` only. Stays inside the plant.
    pub id: String,
    /// Directory for the gateway's persistent state (keys, ledger, outbox).
    /// Default `/var/lib/qis-edge`, which is systemd's `StateDirectory=qis-edge`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/qis-edge")
}

/// `[mqtt]`: connection to the plant's local broker, where engineers watch alarms.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or IP address. Default `127.0.0.1`.
    #[serde(default = "default_mqtt_host")]
    pub host: String,
    /// Broker TCP port. Default 1883 (8883 is usual with `[mqtt.tls]`).
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// MQTT client identifier. Default `qis-edge-<site id>`. Must be unique on the broker:
    /// a second client with the same id disconnects the first.
    pub client_id: Option<String>,
    /// User name, if the broker requires authentication.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<String>,
    /// MQTT keep-alive in seconds (5..=3600). The broker publishes the gateway's last will
    /// ("offline" on `qis/<site>/status`) after 1.5 × this without traffic. Default 30.
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: u64,
    /// Longest wait between reconnection attempts, in milliseconds; attempts start at
    /// 500 ms and double, with random jitter. Default 30 000.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// `[mqtt.tls]`: present to connect with TLS.
    pub tls: Option<TlsConfig>,
}

impl MqttConfig {
    /// The local connection's client id: `client_id`, or `qis-edge-<site>`.
    pub fn local_client_id(&self, site: &str) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("qis-edge-{site}"))
    }

    /// The uplink's client id: the local one with `-uplink` appended, so the two connections
    /// never take each other's session on a broker they share.
    pub fn uplink_client_id(&self, site: &str) -> String {
        format!("{}-uplink", self.local_client_id(site))
    }
}

fn default_mqtt_host() -> String {
    "127.0.0.1".into()
}
fn default_mqtt_port() -> u16 {
    1883
}
fn default_keep_alive_s() -> u64 {
    30
}
fn default_reconnect_max_ms() -> u64 {
    30_000
}

/// `[mqtt.tls]`: TLS for the broker connection (rustls; TLS 1.2 and 1.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate authorities that sign the broker's certificate.
    pub ca_file: PathBuf,
    /// PEM client certificate, for brokers that require mutual TLS. Needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

/// `[metrics]`: publication of polled values on `qis/<site>/metrics/<device>/<point>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// A point whose value changes is published at most once per this many milliseconds
    /// (its latest value wins). A change of quality is published at once. Default 1 000.
    #[serde(default = "default_metrics_min_interval_ms")]
    pub min_interval_ms: u64,
    /// A point whose value does not change is republished after this many milliseconds, so
    /// dashboards can tell "steady" from "gone". 0 publishes every poll. Default 60 000.
    #[serde(default = "default_metrics_max_interval_ms")]
    pub max_interval_ms: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            min_interval_ms: default_metrics_min_interval_ms(),
            max_interval_ms: default_metrics_max_interval_ms(),
        }
    }
}

fn default_metrics_min_interval_ms() -> u64 {
    1_000
}
fn default_metrics_max_interval_ms() -> u64 {
    60_000
}

/// One `[[devices]]` entry; the TOML key `type` selects the variant.
#[derive(Debug, Clone)]
pub enum DeviceConfig {
    /// `type = "modbus_tcp"`
    ModbusTcp(ModbusTcpConfig),
    /// `type = "vibration"`
    Vibration(VibrationConfig),
    /// `type = "modbus_rtu"`
    ModbusRtu(ModbusRtuConfig),
    /// `type = "opcua"`
    OpcUa(OpcUaConfig),
}

impl DeviceConfig {
    /// The device's configured name.
    pub fn name(&self) -> &str {
        match self {
            DeviceConfig::ModbusTcp(d) => &d.name,
            DeviceConfig::Vibration(d) => &d.name,
            DeviceConfig::ModbusRtu(d) => &d.name,
            DeviceConfig::OpcUa(d) => &d.name,
        }
    }

    /// The device's points.
    pub fn points(&self) -> &[PointConfig] {
        match self {
            DeviceConfig::ModbusTcp(d) => &d.points,
            DeviceConfig::Vibration(d) => &d.points,
            DeviceConfig::ModbusRtu(d) => &d.points,
            DeviceConfig::OpcUa(d) => &d.points,
        }
    }

    /// The device's context.
    pub fn context(&self) -> Option<&crate::packet::Context> {
        match self {
            DeviceConfig::ModbusTcp(d) => d.context.as_ref(),
            DeviceConfig::Vibration(d) => d.context.as_ref(),
            DeviceConfig::ModbusRtu(d) => d.context.as_ref(),
            DeviceConfig::OpcUa(d) => d.context.as_ref(),
        }
    }

    /// How long a point may go without a good value before it turns stale.
    pub fn stale_after(&self) -> Duration {
        match self {
            DeviceConfig::ModbusTcp(d) => d.stale_after(),
            DeviceConfig::Vibration(d) => d.stale_after(),
            DeviceConfig::ModbusRtu(d) => Duration::from_millis(
                d.stale_after_ms
                    .unwrap_or(d.poll_interval_ms.saturating_mul(3)),
            ),
            DeviceConfig::OpcUa(d) => d.stale_after(),
        }
    }
}

/// `type = "modbus_rtu"`: one unit (slave) on an RS-485 line. Devices naming the same `port`
/// share the line and are polled in turn by one task; they must agree on its settings. A unit
/// that does not answer is skipped with backoff while the others go on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusRtuConfig {
    /// Device name: the `<device>` level of MQTT topics.
    pub name: String,
    /// Serial device, e.g. `/dev/ttyAMA0` (Pi UART / RS-485 HAT) or `/dev/ttyUSB0`
    /// (see `boards/`).
    pub port: PathBuf,
    /// Baud rate. Default 19 200 (the Modbus over serial line specification's default).
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// `even` (default, as the specification asks), `odd` or `none` (then use 2 stop bits).
    #[serde(default)]
    pub parity: Parity,
    /// Data bits, 7 or 8. Default 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// Stop bits, 1 or 2. Default 1.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// Unit id (slave address), 1–247.
    pub unit_id: u8,
    /// Timeout per request, ms. Default 500.
    #[serde(default = "default_rtu_timeout_ms")]
    pub timeout_ms: u64,
    /// Poll interval of this unit, ms. Default 1 000.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Silence kept on the line after each unit's poll, ms, for slow transceivers to turn
    /// around (the 3.5-character frame gap itself is kept by the framing). Default 5.
    #[serde(default = "default_turnaround_ms")]
    pub turnaround_ms: u64,
    /// A point whose last good value is older than this turns `stale`. Default 3 polls.
    pub stale_after_ms: Option<u64>,
    /// First wait before asking a silent unit again, ms; doubles up to `backoff_max_ms`.
    /// Default 1 000.
    #[serde(default = "default_rtu_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Longest wait before asking a silent unit again, ms. Default 30 000.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// As for TCP devices.
    #[serde(default = "default_max_registers")]
    pub max_registers_per_request: u16,
    /// As for TCP devices.
    #[serde(default = "default_max_bits")]
    pub max_bits_per_request: u16,
    /// As for TCP devices.
    #[serde(default = "default_max_gap")]
    pub max_gap: u16,
    /// As for TCP devices.
    #[serde(default = "default_stats_interval_ms")]
    pub stats_interval_ms: u64,
    /// `[devices.context]`: what a domain expert declares similar (equipment class, process,
    /// sensor kind, mounting, `[devices.context.attributes]`). Its fingerprint routes outcome
    /// packets between plants; points inherit it unless they declare their own.
    pub context: Option<crate::packet::Context>,
    /// `[[devices.points]]`, as for TCP devices.
    #[serde(default)]
    pub points: Vec<PointConfig>,
}

impl ModbusRtuConfig {
    /// The line settings units sharing a port must agree on.
    pub fn line(&self) -> (u32, Parity, u8, u8) {
        (self.baud, self.parity, self.data_bits, self.stop_bits)
    }
}

fn default_baud() -> u32 {
    19_200
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}
fn default_rtu_timeout_ms() -> u64 {
    500
}
fn default_turnaround_ms() -> u64 {
    5
}
fn default_rtu_backoff_initial_ms() -> u64 {
    1_000
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    /// Even parity.
    #[default]
    Even,
    /// Odd parity.
    Odd,
    /// No parity.
    None,
}

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
    /// `trust_server_on_first_use`, `timeout_ms`, `backoff_initial_ms`, `backoff_max_ms`).
    #[serde(skip)]
    pub opcua: Option<Box<OpcUaWaveformConfig>>,
    /// `f32` (raw little-endian), `csv` or `wav`; default from the file's extension.
    pub format: Option<crate::sources::replay::WaveformFormat>,
    /// Samples per second (WAV files carry their own; this overrides it).
    pub sample_rate: Option<f64>,
    /// Samples per analysed window, 1 024 – 65 536. Default 16 384.
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
    /// `[[devices.points]]`: features as points (`feature` instead of `register`).
    #[serde(skip)]
    pub points: Vec<PointConfig>,
    /// The feature each point reads, parallel to `points`.
    #[serde(skip)]
    pub features: Vec<VibrationFeature>,
}

impl VibrationConfig {
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

fn default_vibration_window() -> usize {
    16_384
}
fn default_replay_interval_ms() -> u64 {
    100
}
fn default_true() -> bool {
    true
}
fn default_velocity_band() -> [f64; 2] {
    [10.0, 1000.0]
}
fn default_harmonics() -> u8 {
    5
}
fn default_spectrum_points() -> usize {
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

fn default_block_register() -> RegisterKind {
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

/// `type = "opcua"`: an OPC UA server (a PLC's embedded server, SCADA, a historian) read over
/// one session, by subscription (the server reports changes) or by polled reads. The session
/// is re-established, and its subscription re-created, whenever the server comes back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaConfig {
    /// Device name: the `<device>` level of MQTT topics. Letters, digits, `-` and `_`;
    /// unique among devices.
    pub name: String,
    /// The server and how to reach it: `endpoint`, `security_policy`, `security_mode`,
    /// `[devices.identity]`, `trust_server_on_first_use`, `timeout_ms`, `backoff_initial_ms`,
    /// `backoff_max_ms` (keys of the device's own table).
    #[serde(skip)]
    pub connection: OpcUaConnection,
    /// `subscribe` (default): monitored items; the server samples each node every
    /// `sampling_interval_ms` and reports changes beyond the point's `deadband` once per
    /// `interval_ms`. `poll`: one Read of every node every `interval_ms`.
    #[serde(default)]
    pub read: OpcUaRead,
    /// Publishing interval (subscribe) or poll interval (poll), ms. Default 1 000.
    #[serde(default = "default_poll_interval_ms")]
    pub interval_ms: u64,
    /// A point whose last good value is older than this many milliseconds turns `stale`.
    /// Default: three intervals when polling; when subscribed, values arrive only when they
    /// change, so points turn stale only if this is set (a lost session marks them `bad` at once).
    pub stale_after_ms: Option<u64>,
    /// Milliseconds between request statistics on `qis/<site>/stats/<device>`. Default 10 000.
    #[serde(default = "default_stats_interval_ms")]
    pub stats_interval_ms: u64,
    /// `[devices.context]`: as for Modbus devices.
    pub context: Option<crate::packet::Context>,
    /// `[[devices.points]]`: one node each (`node` instead of `register`).
    #[serde(skip)]
    pub points: Vec<PointConfig>,
    /// What each point reads, parallel to `points`.
    #[serde(skip)]
    pub nodes: Vec<OpcUaNodeConfig>,
}

impl OpcUaConfig {
    /// `stale_after_ms`, or its default.
    pub fn stale_after(&self) -> Duration {
        match (self.stale_after_ms, self.read) {
            (Some(ms), _) => Duration::from_millis(ms),
            (None, OpcUaRead::Poll) => {
                Duration::from_millis(self.interval_ms.saturating_mul(3).max(1_000))
            }
            (None, OpcUaRead::Subscribe) => Duration::MAX,
        }
    }
}

/// How an OPC UA device's values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpcUaRead {
    /// Monitored items in one subscription.
    #[default]
    Subscribe,
    /// A Read of all nodes every interval.
    Poll,
}

/// The connection keys of an OPC UA device (and of `[devices.opcua]` of a vibration device).
///
/// The gateway's application instance certificate is created on first start in
/// `<state_dir>/pki/own/cert.der` (key in `<state_dir>/pki/private/`); give it to the server's
/// administrator to trust. A server certificate is trusted when it is in
/// `<state_dir>/pki/trusted/`; an unknown one is saved in `<state_dir>/pki/rejected/` and the
/// log says which file to move where.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaConnection {
    /// Endpoint URL, `opc.tcp://host:port[/path]`.
    pub endpoint: String,
    /// `none` (default) or `basic256sha256`.
    #[serde(default)]
    pub security_policy: OpcUaSecurityPolicy,
    /// `none` (default, with policy `none`), `sign` or `sign_and_encrypt` (with
    /// `basic256sha256`).
    #[serde(default)]
    pub security_mode: OpcUaSecurityMode,
    /// `[devices.identity]`: `user` and `password`, or `certificate` (DER or PEM) and
    /// `private_key` (PEM) of an X.509 user identity. Absent: anonymous.
    pub identity: Option<OpcUaIdentity>,
    /// Trust the server's certificate the first time this device connects and pin it: it is
    /// copied to `<state_dir>/pki/trusted/`, and a later, different certificate is refused like
    /// any unknown one. Default false: only certificates already in the trusted folder.
    #[serde(default)]
    pub trust_server_on_first_use: bool,
    /// Timeout for connecting and for each request, ms. Default 5 000.
    #[serde(default = "default_opcua_timeout_ms")]
    pub timeout_ms: u64,
    /// First wait before reconnecting, ms; doubles on each failure up to `backoff_max_ms`,
    /// with random jitter. Default 500.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Longest wait between reconnection attempts, ms. Default 30 000.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

impl OpcUaConnection {
    /// The keys of a device table that belong to the connection.
    pub const KEYS: &'static [&'static str] = &[
        "endpoint",
        "security_policy",
        "security_mode",
        "identity",
        "trust_server_on_first_use",
        "timeout_ms",
        "backoff_initial_ms",
        "backoff_max_ms",
    ];
}

fn default_opcua_timeout_ms() -> u64 {
    5_000
}

/// OPC UA security policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpcUaSecurityPolicy {
    /// No security: for isolated networks and testing only.
    #[default]
    None,
    /// Basic256Sha256 (RSA 2048–4096, SHA-256, AES-256).
    #[serde(alias = "Basic256Sha256")]
    Basic256sha256,
}

/// OPC UA message security mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpcUaSecurityMode {
    /// Messages neither signed nor encrypted.
    #[default]
    None,
    /// Messages signed.
    #[serde(alias = "Sign")]
    Sign,
    /// Messages signed and encrypted.
    #[serde(alias = "SignAndEncrypt")]
    SignAndEncrypt,
}

/// `[devices.identity]`: who the gateway is to the OPC UA server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaIdentity {
    /// User name (with `password`).
    pub user: Option<String>,
    /// Password (with `user`). Keep the configuration file readable by the gateway only.
    pub password: Option<String>,
    /// X.509 user certificate, DER or PEM (with `private_key`).
    pub certificate: Option<PathBuf>,
    /// Private key of the user certificate, PEM (with `certificate`).
    pub private_key: Option<PathBuf>,
}

/// `[[devices.points]]` of an OPC UA device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaPointConfig {
    /// Point name; unique within the device.
    pub name: String,
    /// Node id in OPC UA text form: `ns=2;s=Line1.Temperature`, `ns=3;i=1042`, `i=2258`.
    /// Numbers and booleans (as 0/1) are values; strings are text.
    pub node: String,
    /// Engineering value = value × scale + offset. Default 1.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Added after scaling. Default 0.
    #[serde(default)]
    pub offset: f64,
    /// Engineering unit shown with the value. Default empty.
    #[serde(default)]
    pub unit: String,
    /// Subscribe only: how often the server samples the node, ms. Default the device's
    /// `interval_ms`.
    pub sampling_interval_ms: Option<u64>,
    /// Subscribe only: an absolute deadband in the node's own unit (before scale); changes
    /// smaller than this are not reported. Default 0 (every change).
    #[serde(default)]
    pub deadband: f64,
    /// SPC on the point's values.
    pub spc: Option<SpcPointConfig>,
    /// This point's own context, overriding the device's.
    pub context: Option<crate::packet::Context>,
}

/// What one OPC UA point reads.
#[derive(Debug, Clone)]
pub struct OpcUaNodeConfig {
    /// Node id text.
    pub node: String,
    /// Sampling interval, ms (subscribe only).
    pub sampling_interval_ms: Option<u64>,
    /// Absolute deadband (subscribe only).
    pub deadband: f64,
}

/// `type = "modbus_tcp"`: a Modbus TCP server (PLC, gateway, meter), polled by its own task.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusTcpConfig {
    /// Device name: the `<device>` level of MQTT topics. Letters, digits, `-` and `_`;
    /// unique among devices.
    pub name: String,
    /// Host name or IP address of the Modbus TCP server.
    pub host: String,
    /// TCP port. Default 502.
    #[serde(default = "default_modbus_port")]
    pub port: u16,
    /// Modbus unit identifier (slave id), 0–255. Default 1. Gateways to serial buses route by
    /// it; most PLCs accept 1 or 255.
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// Timeout for connecting and for each request, in milliseconds. Default 1 000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Time between the starts of two polls of all points, in milliseconds. Default 1 000.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// A point whose last good value is older than this many milliseconds turns `stale`.
    /// Default three poll intervals.
    pub stale_after_ms: Option<u64>,
    /// First wait before reconnecting after a transport error, in milliseconds; it doubles
    /// on each failure up to `backoff_max_ms`, with random jitter. Default 500.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Longest wait between reconnection attempts, in milliseconds. Default 30 000.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Largest register read per request (function 03/04 allow 125). Points of one table
    /// that lie close together are read in as few requests as this allows. Default 125.
    #[serde(default = "default_max_registers")]
    pub max_registers_per_request: u16,
    /// Largest coil / discrete input read per request (functions 01/02 allow 2000). Default 2000.
    #[serde(default = "default_max_bits")]
    pub max_bits_per_request: u16,
    /// Largest run of unconfigured registers (or bits) worth reading through to join two
    /// points into one request; 0 joins only adjacent points. Default 8. Devices that answer
    /// exception 02 for gaps in their map are handled: a failed batch is read point by point.
    #[serde(default = "default_max_gap")]
    pub max_gap: u16,
    /// Milliseconds between request statistics on `qis/<site>/stats/<device>`. Default 10 000.
    #[serde(default = "default_stats_interval_ms")]
    pub stats_interval_ms: u64,
    /// `[devices.context]`: what a domain expert declares similar (equipment class, process,
    /// sensor kind, mounting, `[devices.context.attributes]`). Its fingerprint routes outcome
    /// packets between plants; points inherit it unless they declare their own.
    pub context: Option<crate::packet::Context>,
    /// `[[devices.points]]`: what to read.
    #[serde(default)]
    pub points: Vec<PointConfig>,
}

fn default_max_registers() -> u16 {
    125
}
fn default_max_bits() -> u16 {
    2000
}
fn default_max_gap() -> u16 {
    8
}
fn default_stats_interval_ms() -> u64 {
    10_000
}

impl ModbusTcpConfig {
    /// `stale_after_ms`, or its default.
    pub fn stale_after(&self) -> Duration {
        Duration::from_millis(
            self.stale_after_ms
                .unwrap_or(self.poll_interval_ms.saturating_mul(3)),
        )
    }
}

fn default_modbus_port() -> u16 {
    502
}
fn default_unit_id() -> u8 {
    1
}
fn default_timeout_ms() -> u64 {
    1_000
}
fn default_poll_interval_ms() -> u64 {
    1_000
}
fn default_backoff_initial_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    30_000
}

/// `[[devices.points]]`: one value read from a device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointConfig {
    /// Point name: the `<point>` level of MQTT topics; unique within its device.
    pub name: String,
    /// Modbus table: `holding` (function 03), `input` (04), `coil` (01) or
    /// `discrete_input` (02).
    pub register: RegisterKind,
    /// Protocol address, 0-based, as sent on the wire (0..=65535). Register 40001 in the
    /// traditional 1-based notation is `holding` address 0.
    pub address: u16,
    /// How the registers decode: `u16`, `i16`, `u32`, `i32`, `f32`, `u64`, `i64`, `f64`,
    /// `bit` (with `bit`), `string` (with `length`) for registers; `bool` for coils and discrete
    /// inputs. Default `u16` for registers, `bool` for bits.
    pub data_type: Option<DataType>,
    /// Byte and word order of multi-register values, written as the order of bytes A (most
    /// significant) to D (least): `ABCD` (big-endian, Modbus standard; alias `big`), `CDAB`
    /// (low word first, "word swap"; Schneider, many meters; alias `little_word`),
    /// `BADC` (byte swap; alias `byte_swap`), `DCBA` (little-endian; alias `little`).
    /// Single-register types use only the byte order (`BADC`/`DCBA` swap bytes). Default `ABCD`.
    #[serde(default)]
    pub byte_order: ByteOrder,
    /// For `data_type = "bit"`: which bit of the register, 0 (least significant) – 15.
    pub bit: Option<u8>,
    /// For `data_type = "string"`: registers of text (two ASCII characters each), 1–125.
    pub length: Option<u16>,
    /// Engineering value = raw × scale + offset. Default 1.
    #[serde(default = "default_scale")]
    pub scale: f64,
    /// Added after scaling. Default 0.
    #[serde(default)]
    pub offset: f64,
    /// Engineering unit shown with the value (e.g. `°C`, `bar`, `mm/s`). Default empty.
    #[serde(default)]
    pub unit: String,
    /// `[[devices.points.alarms]]`: alarm rules on this point's engineering value.
    #[serde(default)]
    pub alarms: Vec<AlarmRuleConfig>,
    /// `[devices.points.spc]`: statistical process control on this point's values.
    pub spc: Option<SpcPointConfig>,
    /// `[devices.points.context]`: this point's own context, overriding the device's.
    pub context: Option<crate::packet::Context>,
}

/// `[devices.points.spc]`: a control chart on a point. Every good reading is one observation;
/// a violation raises the point's alarm rule `spc`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpcPointConfig {
    /// `xbar-r`, `xbar-s` or `imr` (individuals and moving range).
    pub chart: crate::analysis::spc::ChartKind,
    /// Observations per subgroup, 2–25 (required for `xbar-r` and `xbar-s`).
    pub subgroup_size: Option<usize>,
    /// Another point on the same device whose value names the subgroup (a batch or part
    /// counter): when it changes, an incomplete subgroup is discarded, so no subgroup spans
    /// two batches.
    pub subgroup_by: Option<String>,
    /// Subgroups (points for `imr`) from which the limits are estimated (phase I). Default 25.
    #[serde(default = "default_calibration")]
    pub calibration: usize,
    /// Known process center: with `sigma`, limits are fixed from the start (phase II).
    pub center: Option<f64>,
    /// Known process standard deviation of individual values.
    pub sigma: Option<f64>,
    /// `western-electric` (rules 1–4, default) or `nelson` (rules 1–8).
    #[serde(default = "default_rule_set")]
    pub rules: crate::analysis::spc::RuleSet,
    /// Rule numbers to apply; default all of the set.
    pub enabled_rules: Option<Vec<u8>>,
    /// Tabular CUSUM: `{ k = 0.5, h = 5.0 }` (reference value and decision interval, sigmas).
    pub cusum: Option<CusumConfig>,
    /// EWMA: `{ lambda = 0.2, l = 3.0 }`.
    pub ewma: Option<EwmaConfig>,
    /// Specification limits for capability: `{ lsl = 73.95, usl = 74.05, target = 74.0 }`.
    pub spec: Option<SpecConfig>,
}

fn default_calibration() -> usize {
    25
}
fn default_rule_set() -> crate::analysis::spc::RuleSet {
    crate::analysis::spc::RuleSet::WesternElectric
}

/// Tabular CUSUM parameters.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CusumConfig {
    /// Reference value in sigmas (half the shift to detect).
    pub k: f64,
    /// Decision interval in sigmas.
    pub h: f64,
}

/// EWMA parameters.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EwmaConfig {
    /// Smoothing constant, 0 < λ ≤ 1.
    pub lambda: f64,
    /// Limit width in sigmas.
    pub l: f64,
}

/// Specification limits.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecConfig {
    /// Lower specification limit.
    pub lsl: f64,
    /// Upper specification limit.
    pub usl: f64,
    /// Target; default the midpoint.
    pub target: Option<f64>,
}

impl SpcPointConfig {
    /// The engine settings this configuration describes.
    pub fn settings(&self) -> crate::analysis::spc::SpcSettings {
        use crate::analysis::spc::{Calibration, CusumSettings, EwmaSettings, SpcSettings};
        SpcSettings {
            chart: self.chart,
            subgroup_size: self.subgroup_size.unwrap_or(1),
            calibration: match (self.center, self.sigma) {
                (Some(center), Some(sigma)) => Calibration::Given { center, sigma },
                _ => Calibration::FirstN(self.calibration),
            },
            rules: Some(self.rules),
            enabled_rules: self.enabled_rules.clone(),
            cusum: self.cusum.map(|c| CusumSettings { k: c.k, h: c.h }),
            ewma: self.ewma.map(|e| EwmaSettings {
                lambda: e.lambda,
                l: e.l,
            }),
        }
    }

    /// Capability specification, if configured.
    pub fn spec(&self) -> Option<crate::analysis::spc::Spec> {
        self.spec.map(|s| crate::analysis::spc::Spec {
            lsl: s.lsl,
            usl: s.usl,
            target: s.target,
        })
    }
}

/// Name of the alarm rule that SPC violations raise.
pub const SPC_RULE_NAME: &str = "spc";

impl PointConfig {
    /// Registers the point occupies.
    pub fn registers(&self) -> u16 {
        match self.data_type() {
            DataType::String => self.length.unwrap_or(1),
            t => t.registers(),
        }
    }

    /// The configured data type, or the default for the register kind.
    pub fn data_type(&self) -> DataType {
        self.data_type.unwrap_or(match self.register {
            RegisterKind::Coil | RegisterKind::DiscreteInput => DataType::Bool,
            RegisterKind::Holding | RegisterKind::Input => DataType::U16,
        })
    }
}

fn default_scale() -> f64 {
    1.0
}

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterKind {
    /// Holding registers, read with function code 03.
    Holding,
    /// Input registers, function code 04.
    Input,
    /// Coils, function code 01.
    Coil,
    /// Discrete inputs, function code 02.
    DiscreteInput,
}

impl RegisterKind {
    /// True for the 1-bit tables.
    pub fn is_bit(self) -> bool {
        matches!(self, RegisterKind::Coil | RegisterKind::DiscreteInput)
    }
}

/// How register contents decode into a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// One coil or discrete input: 0 or 1.
    Bool,
    /// One register, unsigned.
    U16,
    /// One register, two's complement.
    I16,
    /// Two registers, unsigned.
    U32,
    /// Two registers, two's complement.
    I32,
    /// Two registers, IEEE 754 single precision.
    F32,
    /// Four registers, unsigned.
    U64,
    /// Four registers, two's complement.
    I64,
    /// Four registers, IEEE 754 double precision.
    F64,
    /// One bit of a register (`bit` = 0 for the least significant), as 0 or 1.
    Bit,
    /// ASCII text over `length` registers, two characters each (high byte first unless the
    /// byte order swaps bytes); trailing NULs and spaces are dropped.
    String,
}

impl DataType {
    /// Number of 16-bit registers a fixed-size type occupies (1 for bits; strings say their
    /// own length).
    pub fn registers(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 | DataType::Bit | DataType::String => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }
}

/// Byte order of a multi-byte value, named by the position of bytes A (most significant)
/// to D (least significant) as they arrive on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum ByteOrder {
    /// Big-endian, high word first: the Modbus standard.
    #[default]
    #[serde(rename = "ABCD", alias = "big", alias = "abcd")]
    Abcd,
    /// High byte first within each word, low word first ("word swap").
    #[serde(
        rename = "CDAB",
        alias = "little_word",
        alias = "word_swap",
        alias = "cdab"
    )]
    Cdab,
    /// Low byte first within each word, high word first ("byte swap").
    #[serde(rename = "BADC", alias = "byte_swap", alias = "badc")]
    Badc,
    /// Little-endian: low word first, low byte first.
    #[serde(rename = "DCBA", alias = "little", alias = "dcba")]
    Dcba,
}

/// `[[devices.points.alarms]]`: one alarm rule with up to two levels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmRuleConfig {
    /// Rule name, unique within the point (default: the `kind`, so one `high` and one `low`
    /// rule per point need no name).
    pub name: Option<String>,
    /// `high`: raised when the value reaches a level or above; `low`: at a level or below.
    pub kind: AlarmKind,
    /// Warning level (severity `warning`). Optional; at least one of `warning`/`alarm`.
    pub warning: Option<f64>,
    /// Alarm level (severity `alarm`). For `high` it must lie above `warning`, for `low` below.
    pub alarm: Option<f64>,
    /// Hysteresis in engineering units: a raised level clears only once the value is this far
    /// back on the normal side of it (below `level − deadband` for `high`). Default 0.
    #[serde(default)]
    pub deadband: f64,
    /// The condition must hold for this many milliseconds before the alarm is raised, so a
    /// single spike does not page anyone. Default 0.
    #[serde(default)]
    pub on_delay_ms: u64,
    /// `[devices.points.alarms.adapt]`: lets peers' outcome packets move this rule's first
    /// level (`warning` when set, else `alarm`) inside rails. Absent: peers never move it.
    pub adapt: Option<AdaptConfig>,
    /// `[devices.points.alarms.confirmed_by]`: a PLC fault point that confirms this rule's
    /// alarms automatically.
    pub confirmed_by: Option<FaultConfirmConfig>,
}

/// `[devices.points.alarms.confirmed_by]`: when a point of the same device takes a fault
/// value, every unanswered alarm of the rule raised within `within_days` before is confirmed
/// with `failure_mode`, as if an engineer had confirmed it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfirmConfig {
    /// A point of the same device, e.g. the drive's fault code or a spindle-stopped bit.
    pub point: String,
    /// The value that means the predicted failure happened (e.g. fault code 17; 1 for a bit).
    pub equals: f64,
    /// How long before the fault an alarm counts as having predicted it, days. Default 14.
    #[serde(default = "default_within_days")]
    pub within_days: u32,
    /// What the fault means, e.g. `bearing_outer_race` (required).
    pub failure_mode: String,
}

fn default_within_days() -> u32 {
    14
}

/// `[devices.points.alarms.adapt]`: the guard rails of an adaptable level.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptConfig {
    /// Lowest level peers may set.
    pub floor: f64,
    /// Highest level peers may set.
    pub ceiling: f64,
    /// Also let peers move the level toward later warning. Default false: only tightening.
    #[serde(default)]
    pub loosen: bool,
}

/// Which of a rule's two levels: `warning` or `alarm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The `warning` level.
    Warning,
    /// The `alarm` level.
    Alarm,
}

impl Level {
    /// `warning` or `alarm`, as in the file.
    pub fn name(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Alarm => "alarm",
        }
    }
}

impl AlarmRuleConfig {
    /// The level peers may adapt: the warning level when set, else the alarm level.
    pub fn adaptable_level(&self) -> Option<(Level, f64)> {
        self.warning
            .map(|w| (Level::Warning, w))
            .or(self.alarm.map(|a| (Level::Alarm, a)))
    }

    /// The rule's name: `name`, or the kind.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(match self.kind {
            AlarmKind::High => "high",
            AlarmKind::Low => "low",
        })
    }
}

/// Direction of an alarm rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// Alarm at or above the level.
    High,
    /// Alarm at or below the level.
    Low,
}
