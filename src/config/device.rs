//! `[[devices]]`: the closed set of device kinds, tagged by `type`.

use super::*;

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
