//! `type = "modbus_tcp"` and `type = "modbus_rtu"`: Modbus devices.

use super::*;

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
    #[serde(skip)]
    pub points: Vec<PointConfig>,
}

impl ModbusRtuConfig {
    /// The line settings units sharing a port must agree on.
    pub fn line(&self) -> (u32, Parity, u8, u8) {
        (self.baud, self.parity, self.data_bits, self.stop_bits)
    }
}

pub(super) fn default_baud() -> u32 {
    19_200
}
pub(super) fn default_data_bits() -> u8 {
    8
}
pub(super) fn default_stop_bits() -> u8 {
    1
}
pub(super) fn default_rtu_timeout_ms() -> u64 {
    500
}
pub(super) fn default_turnaround_ms() -> u64 {
    5
}
pub(super) fn default_rtu_backoff_initial_ms() -> u64 {
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
    /// `[[devices.points]]`: what to read ([`RegisterPointConfig`] each, checked on its own
    /// by the loader), each with [`PointAddress::Register`].
    #[serde(skip)]
    pub points: Vec<PointConfig>,
}

pub(super) fn default_max_registers() -> u16 {
    125
}
pub(super) fn default_max_bits() -> u16 {
    2000
}
pub(super) fn default_max_gap() -> u16 {
    8
}
pub(super) fn default_stats_interval_ms() -> u64 {
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

pub(super) fn default_modbus_port() -> u16 {
    502
}
pub(super) fn default_unit_id() -> u8 {
    1
}
pub(super) fn default_timeout_ms() -> u64 {
    1_000
}
pub(super) fn default_poll_interval_ms() -> u64 {
    1_000
}
pub(super) fn default_backoff_initial_ms() -> u64 {
    500
}
pub(super) fn default_backoff_max_ms() -> u64 {
    30_000
}
