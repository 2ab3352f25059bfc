//! `[[devices.points]]`: a value read from a device, its register layout and its SPC chart.

use super::*;

/// A point of any device: its name, engineering scaling, alarms, SPC and context, and where
/// its value comes from.
#[derive(Debug, Clone)]
pub struct PointConfig {
    /// Point name: the `<point>` level of MQTT topics; unique within its device.
    pub name: String,
    /// Engineering value = raw × scale + offset.
    pub scale: f64,
    /// Added after scaling.
    pub offset: f64,
    /// Engineering unit shown with the value.
    pub unit: String,
    /// Alarm rules on the engineering value.
    pub alarms: Vec<AlarmRuleConfig>,
    /// Statistical process control on the point's values.
    pub spc: Option<SpcPointConfig>,
    /// The point's own context, overriding the device's.
    pub context: Option<crate::packet::Context>,
    /// Where the value comes from.
    pub address: PointAddress,
}

/// Where a point's value comes from, by the kind of its device.
#[derive(Debug, Clone)]
pub enum PointAddress {
    /// Modbus registers or bits.
    Register(RegisterAddress),
    /// An OPC UA node.
    Node(OpcUaNodeConfig),
    /// A feature of the vibration analysis.
    Feature(VibrationFeature),
}

/// Where a Modbus point lives and how its registers decode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegisterAddress {
    /// The table.
    pub register: RegisterKind,
    /// Protocol address, 0-based.
    pub address: u16,
    /// How the registers decode (the default for the table resolved).
    pub data_type: DataType,
    /// Byte and word order.
    pub byte_order: ByteOrder,
    /// For `bit`: which bit.
    pub bit: Option<u8>,
    /// For `string`: how many registers.
    pub length: Option<u16>,
}

impl RegisterAddress {
    /// Registers the point occupies.
    pub fn registers(&self) -> u16 {
        match self.data_type {
            DataType::String => self.length.unwrap_or(1),
            t => t.registers(),
        }
    }
}

impl PointConfig {
    /// The registers of a Modbus point.
    pub fn register(&self) -> Option<&RegisterAddress> {
        match &self.address {
            PointAddress::Register(r) => Some(r),
            PointAddress::Node(_) | PointAddress::Feature(_) => None,
        }
    }

    /// The node of an OPC UA point.
    pub fn node(&self) -> Option<&OpcUaNodeConfig> {
        match &self.address {
            PointAddress::Node(n) => Some(n),
            PointAddress::Register(_) | PointAddress::Feature(_) => None,
        }
    }

    /// The feature of a vibration point.
    pub fn feature(&self) -> Option<VibrationFeature> {
        match &self.address {
            PointAddress::Feature(f) => Some(*f),
            PointAddress::Register(_) | PointAddress::Node(_) => None,
        }
    }
}

impl From<RegisterPointConfig> for PointConfig {
    fn from(p: RegisterPointConfig) -> Self {
        let address = RegisterAddress {
            register: p.register,
            address: p.address,
            data_type: p.data_type(),
            byte_order: p.byte_order,
            bit: p.bit,
            length: p.length,
        };
        Self {
            name: p.name,
            scale: p.scale,
            offset: p.offset,
            unit: p.unit,
            alarms: p.alarms,
            spc: p.spc,
            context: p.context,
            address: PointAddress::Register(address),
        }
    }
}

/// `[[devices.points]]` of a Modbus device: one value read from registers or bits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterPointConfig {
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

pub(super) fn default_calibration() -> usize {
    25
}
pub(super) fn default_rule_set() -> crate::analysis::spc::RuleSet {
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

impl RegisterPointConfig {
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

pub(super) fn default_scale() -> f64 {
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
