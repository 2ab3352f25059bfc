//! Where a vibration device's windows come from: a file replayed window after window, a block
//! of Modbus registers (through the Modbus client of [`crate::sources::modbus`]), or an OPC UA
//! array variable (through a session of [`crate::sources::opcua`]).

use crate::config::{OpcUaWaveformConfig, WaveformBlockConfig};
use crate::sources::modbus::{tcp, unit};
use crate::sources::opcua::{self, Connection, LinkEvent};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;
use tokio_modbus::client::Context;

/// Why a window could not be acquired.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// A Modbus read failed (a device exception or a transport error).
    #[error("{0}")]
    Modbus(#[from] unit::ReadError),
    /// The Modbus connection could not be opened.
    #[error("{0}")]
    Connect(String),
    /// The OPC UA session or read failed.
    #[error("{0}")]
    OpcUa(String),
}

/// Where windows come from.
pub enum Acquisition {
    /// A file, replayed window after window.
    File {
        /// Every sample of the file.
        samples: Arc<Vec<f64>>,
        /// Where the next window starts.
        position: usize,
        /// Start again at the end.
        repeat: bool,
    },
    /// A block of registers read as one window.
    Modbus(Box<ModbusWindow>),
    /// An OPC UA array variable read as one window.
    OpcUa(Box<OpcUaWindow>),
}

/// A block of registers and the connection it is read through.
pub struct ModbusWindow {
    /// Where the block is.
    pub block: WaveformBlockConfig,
    /// The device name, for messages.
    pub device: String,
    /// The connection, once open.
    pub ctx: Option<Context>,
    /// The words of the last read.
    pub words: Vec<u16>,
}

/// An OPC UA array variable and the session it is read through.
pub struct OpcUaWindow {
    /// Where the array is.
    pub waveform: OpcUaWaveformConfig,
    /// Its node id, parsed.
    pub node: ::opcua::types::NodeId,
    /// The gateway's PKI folder.
    pub pki: PathBuf,
    /// The device name.
    pub device: String,
    /// The session, once open.
    pub connection: Option<Connection>,
}

impl Acquisition {
    /// Fills `window` with the next `n` samples. Ok(false) when a file has ended.
    pub async fn next_window(
        &mut self,
        n: usize,
        window: &mut Vec<f64>,
    ) -> Result<bool, AcquireError> {
        window.clear();
        match self {
            Acquisition::File {
                samples,
                position,
                repeat,
            } => {
                if *position + n > samples.len() {
                    if !*repeat {
                        return Ok(false);
                    }
                    *position = 0;
                }
                window.extend_from_slice(&samples[*position..*position + n]);
                *position += n;
                Ok(true)
            }
            Acquisition::Modbus(m) => m.read(n, window).await.map(|()| true),
            Acquisition::OpcUa(w) => w.read(n, window).await.map(|()| true),
        }
    }
}

impl ModbusWindow {
    /// Reads `n` registers as signed 16-bit counts times the block's scale. A transport error
    /// drops the connection (the next window connects again); a device exception keeps it.
    async fn read(&mut self, n: usize, window: &mut Vec<f64>) -> Result<(), AcquireError> {
        let b = &self.block;
        if self.ctx.is_none() {
            let ctx = tcp::connect(&b.host, b.port, b.unit_id, b.timeout_ms)
                .await
                .map_err(AcquireError::Connect)?;
            self.ctx = Some(ctx);
        }
        let Some(ctx) = self.ctx.as_mut() else {
            return Err(AcquireError::Connect("not connected".into()));
        };
        let limit = Duration::from_millis(b.timeout_ms);
        let read = unit::read_registers(ctx, b.register, b.address, n, limit, &mut self.words);
        if let Err(e) = read.await {
            if matches!(e, unit::ReadError::Transport { .. }) {
                self.ctx = None;
            }
            return Err(e.on(&self.device).into());
        }
        window.extend(self.words.iter().map(|w| f64::from(*w as i16) * b.scale));
        Ok(())
    }
}

impl OpcUaWindow {
    /// Reads the array and keeps its first `n` values, times the waveform's scale.
    async fn read(&mut self, n: usize, window: &mut Vec<f64>) -> Result<(), AcquireError> {
        let limit = Duration::from_millis(self.waveform.connection.timeout_ms);
        if self.connection.is_none() {
            self.connection = Some(self.open(limit).await.map_err(AcquireError::OpcUa)?);
        }
        let Some(c) = self.connection.as_mut() else {
            return Err(AcquireError::OpcUa("not connected".into()));
        };
        // A lost link makes the next read fail; a session that stopped is opened anew.
        while let Ok(event) = c.events.try_recv() {
            if let LinkEvent::Ended(reason) = event {
                self.connection = None;
                return Err(AcquireError::OpcUa(reason));
            }
        }
        let name = &self.waveform.node;
        opcua::read_array(c, &self.node, name, limit, window)
            .await
            .map_err(AcquireError::OpcUa)?;
        if window.len() < n {
            return Err(AcquireError::OpcUa(format!(
                "{name}: the array holds {} samples, fewer than the window of {n}",
                window.len()
            )));
        }
        window.truncate(n);
        window.iter_mut().for_each(|v| *v *= self.waveform.scale);
        Ok(())
    }

    /// Opens a session and waits for it to come up, or for why it does not.
    async fn open(&self, limit: Duration) -> Result<Connection, String> {
        let mut opened = opcua::open(&self.waveform.connection, &self.pki, &self.device)
            .await
            .map_err(|e| e.to_string())?;
        match timeout(limit, opened.events.recv()).await {
            Ok(Some(LinkEvent::Up)) => Ok(opened),
            Ok(Some(LinkEvent::Down(r) | LinkEvent::Retrying(r) | LinkEvent::Ended(r))) => Err(r),
            Ok(None) => Err("session task ended".into()),
            Err(_) => Err(format!("no session within {} ms", limit.as_millis())),
        }
    }
}
