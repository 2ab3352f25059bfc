//! A plant's simulated vibration sensor: a Modbus TCP server (tokio-modbus) replaying one
//! bearing life, one snapshot per poll, as a wireless vibration sensor exposes its features in
//! holding registers. It moves in lockstep with the gateway that polls it, so the values a
//! gateway sees, and the snapshot it sees them at, do not depend on timing.
//!
//! | holding | what |
//! |---|---|
//! | 0–9 | RMS, peak (g), crest factor, kurtosis, 2–6 kHz band RMS (g): `f32`, ABCD |
//! | 10 | end of life: 0 running, 1 failed (the PLC fault that confirms alarms) |
//! | 11–12 | the snapshot shown, 1-based (`u32`, ABCD) |
//!
//! A read that starts at register 0 shows the next snapshot; after the last, it shows the last
//! values with the fault raised. Other reads (and other function codes, answered with exception
//! 01) change nothing.

use super::life::Life;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_modbus::{ExceptionCode, Request, Response};
use tokio_util::sync::CancellationToken;

/// Holding registers the sensor exposes.
pub const REGISTERS: u16 = 13;
/// The end-of-life register.
pub const END_OF_LIFE: u16 = 10;

/// A running sensor.
pub struct Sensor {
    /// Where it listens.
    pub address: SocketAddr,
    /// Snapshots shown so far, as it changes (0 before the first poll; `len + 1` once the
    /// fault is raised).
    pub progress: watch::Receiver<usize>,
}

#[derive(Clone)]
struct Service {
    life: Arc<Life>,
    progress: Arc<watch::Sender<usize>>,
}

impl Service {
    /// The register image at `shown` snapshots.
    fn image(&self, shown: usize) -> [u16; REGISTERS as usize] {
        let snapshots = &self.life.snapshots;
        let index = shown.clamp(1, snapshots.len()) - 1;
        let mut words = [0u16; REGISTERS as usize];
        for (i, v) in snapshots[index].features.iter().enumerate() {
            let bits = (*v as f32).to_bits();
            words[2 * i] = (bits >> 16) as u16;
            words[2 * i + 1] = bits as u16;
        }
        words[END_OF_LIFE as usize] = u16::from(shown > snapshots.len());
        let n = u32::try_from(index + 1).unwrap_or(u32::MAX);
        words[11] = (n >> 16) as u16;
        words[12] = n as u16;
        words
    }
}

impl tokio_modbus::server::Service for Service {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, request: Request<'static>) -> Self::Future {
        std::future::ready(match request {
            Request::ReadHoldingRegisters(address, count) => {
                let shown = if address == 0 {
                    // Past the end the count stops at len + 1: the fault stays raised.
                    let limit = self.life.snapshots.len() + 1;
                    let mut shown = limit;
                    self.progress.send_if_modified(|p| {
                        shown = (*p + 1).min(limit);
                        std::mem::replace(p, shown) != shown
                    });
                    shown
                } else {
                    *self.progress.borrow()
                };
                let image = self.image(shown);
                let end = usize::from(address) + usize::from(count);
                if count == 0 || count > 125 {
                    Err(ExceptionCode::IllegalDataValue)
                } else if end > image.len() {
                    Err(ExceptionCode::IllegalDataAddress)
                } else {
                    Ok(Response::ReadHoldingRegisters(
                        image[usize::from(address)..end].to_vec(),
                    ))
                }
            }
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

/// Starts a sensor replaying `life` on a free loopback port, until `cancel`.
pub async fn start(life: Arc<Life>, cancel: CancellationToken) -> std::io::Result<Sensor> {
    let (progress_tx, progress) = watch::channel(0);
    let service = Service {
        life,
        progress: Arc::new(progress_tx),
    };
    let address = crate::demo::plant::serve_on_free_port(service, cancel).await?;
    Ok(Sensor { address, progress })
}
