//! Field sources: tasks that read devices and emit [`Sample`]s.
//!
//! Each device runs in its own task, so a dead or slow device never delays another; samples
//! reach the gateway core over one bounded channel (a full channel makes pollers wait, which
//! only happens if the core itself stalls).

pub mod modbus;
pub mod opcua;
pub mod replay;
pub mod vibration;

use crate::config::{DeviceConfig, ModbusRtuConfig};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Starts one task per device, and one per serial line for the Modbus RTU units that share it
/// (a line carries one request at a time). `state_dir` holds the OPC UA certificates. Returns
/// each task with a name for the shutdown log.
pub fn spawn(
    devices: &[DeviceConfig],
    state_dir: &Path,
    events: mpsc::Sender<SourceEvent>,
    cancel: &CancellationToken,
) -> Vec<(String, JoinHandle<()>)> {
    let pki = opcua::pki_dir(state_dir);
    let mut tasks = Vec::new();
    let mut lines: Vec<(PathBuf, Vec<(usize, ModbusRtuConfig)>)> = Vec::new();
    for (index, device) in devices.iter().enumerate() {
        let (events, stop) = (events.clone(), cancel.clone());
        let task = match device {
            DeviceConfig::ModbusTcp(d) => {
                tokio::spawn(modbus::ModbusTcpPoller::new(index, d.clone(), events).run(stop))
            }
            DeviceConfig::Vibration(d) => tokio::spawn(
                vibration::VibrationSource::new(index, d.clone(), pki.clone(), events).run(stop),
            ),
            DeviceConfig::OpcUa(d) => tokio::spawn(
                opcua::OpcUaSource::new(index, d.clone(), pki.clone(), events).run(stop),
            ),
            DeviceConfig::ModbusRtu(d) => {
                match lines.iter_mut().find(|(port, _)| *port == d.port) {
                    Some((_, units)) => units.push((index, d.clone())),
                    None => lines.push((d.port.clone(), vec![(index, d.clone())])),
                }
                continue;
            }
        };
        tasks.push((format!("device {}", device.name()), task));
    }
    for (port, units) in lines {
        let bus = modbus::RtuBus::new(units, events.clone());
        tasks.push((
            format!("serial line {}", port.display()),
            tokio::spawn(bus.run(cancel.clone())),
        ));
    }
    tasks
}

/// How far a value can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// Read successfully in the latest poll.
    Good,
    /// The latest read failed (exception, timeout, lost link); the value is the last good one.
    Bad,
    /// No successful read for longer than the device's `stale_after_ms`.
    Stale,
}

/// One reading (or failed reading) of one point.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Index of the device in the configuration.
    pub device: usize,
    /// Index of the point within its device.
    pub point: usize,
    /// Engineering value, when the read succeeded.
    pub value: Option<f64>,
    /// Text, for string points.
    pub text: Option<String>,
    /// Quality of this reading.
    pub quality: Quality,
    /// Why the reading is bad, for operators.
    pub error: Option<String>,
    /// When the reading was taken.
    pub at: SystemTime,
}

impl Sample {
    /// A good numeric reading.
    pub fn number(device: usize, point: usize, value: f64, at: SystemTime) -> Self {
        Self {
            device,
            point,
            value: Some(value),
            text: None,
            quality: Quality::Good,
            error: None,
            at,
        }
    }

    /// A good reading of a string point.
    pub fn text(device: usize, point: usize, text: String, at: SystemTime) -> Self {
        Self {
            device,
            point,
            value: None,
            text: Some(text),
            quality: Quality::Good,
            error: None,
            at,
        }
    }

    /// A failed reading, with why.
    pub fn bad(device: usize, point: usize, reason: String, at: SystemTime) -> Self {
        Self {
            device,
            point,
            value: None,
            text: None,
            quality: Quality::Bad,
            error: Some(reason),
            at,
        }
    }
}

/// Tells the core that a device's link came up or went down.
pub async fn report_link(
    events: &mpsc::Sender<SourceEvent>,
    device: usize,
    up: bool,
    error: Option<String>,
) {
    // Sending fails only when the core has stopped, i.e. during shutdown.
    let _ = events.send(SourceEvent::Link { device, up, error }).await;
}

/// Marks every one of a device's `points` bad for `reason`, in one message.
pub async fn report_all_bad(
    events: &mpsc::Sender<SourceEvent>,
    device: usize,
    points: usize,
    reason: &str,
) {
    let at = SystemTime::now();
    let samples = (0..points)
        .map(|i| Sample::bad(device, i, reason.to_string(), at))
        .collect();
    let _ = events.send(SourceEvent::Samples(samples)).await;
}

/// What sources tell the gateway core.
#[derive(Debug, Clone)]
pub enum SourceEvent {
    /// A point was read (or failed to be).
    Sample(Sample),
    /// Several points read by one request (one message instead of one per point).
    Samples(Vec<Sample>),
    /// A vibration window's spectrum, for dashboards.
    Spectrum {
        /// Index of the device in the configuration.
        device: usize,
        /// The downsampled spectrum and headline results.
        snapshot: Box<vibration::SpectrumSnapshot>,
        /// When the window was analysed.
        at: SystemTime,
    },
    /// Request statistics of a device.
    Stats {
        /// Index of the device in the configuration.
        device: usize,
        /// Counters since start.
        stats: DeviceStats,
    },
    /// A device's link came up or went down.
    Link {
        /// Index of the device in the configuration.
        device: usize,
        /// True when connected.
        up: bool,
        /// The reason, when down.
        error: Option<String>,
    },
}

/// Request statistics of one device since start, on `qis/<site>/stats/<device>`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeviceStats {
    /// Polls of all points.
    pub polls: u64,
    /// Requests sent.
    pub requests: u64,
    /// Requests answered with a Modbus exception.
    pub exceptions: u64,
    /// Requests not answered in time.
    pub timeouts: u64,
    /// Other transport failures (connection reset, refused, malformed answers).
    pub transport_errors: u64,
    /// Successful connections after the first.
    pub reconnects: u64,
    /// Mean request latency, ms.
    pub latency_ms_avg: f64,
    /// Largest request latency, ms.
    pub latency_ms_max: f64,
    /// Requests per poll in the latest poll.
    pub requests_last_poll: u64,
}
