//! A simulated plant: Modbus TCP servers (tokio-modbus) whose registers drift like real
//! process values, so the demo shows alarms being raised and cleared without any hardware.

use std::collections::HashMap;
use std::f64::consts::PI;
use std::future::Ready;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::{ExceptionCode, Request, Response};
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// The register image of one simulated device.
#[derive(Default)]
struct Image {
    holding: HashMap<u16, u16>,
    input: HashMap<u16, u16>,
    coils: HashMap<u16, bool>,
}

impl Image {
    fn set_f32_cdab(table: &mut HashMap<u16, u16>, address: u16, v: f32) {
        let bits = v.to_bits();
        table.insert(address, bits as u16);
        table.insert(address + 1, (bits >> 16) as u16);
    }
    fn set_u32_abcd(table: &mut HashMap<u16, u16>, address: u16, v: u32) {
        table.insert(address, (v >> 16) as u16);
        table.insert(address + 1, v as u16);
    }
}

#[derive(Clone)]
struct Service {
    image: Arc<Mutex<Image>>,
}

/// The quantity limits of the Modbus specification (1–125 registers, 1–2 000 coils): outside
/// them a server answers exception 03 (illegal data value), before looking at addresses.
fn check_quantity(count: u16, max: u16) -> Result<(), ExceptionCode> {
    if (1..=max).contains(&count) {
        Ok(())
    } else {
        Err(ExceptionCode::IllegalDataValue)
    }
}

fn read_words(
    table: &HashMap<u16, u16>,
    address: u16,
    count: u16,
) -> Result<Vec<u16>, ExceptionCode> {
    check_quantity(count, 125)?;
    (0..count)
        .map(|i| {
            address
                .checked_add(i)
                .and_then(|a| table.get(&a).copied())
                .ok_or(ExceptionCode::IllegalDataAddress)
        })
        .collect()
}

impl tokio_modbus::server::Service for Service {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;

    fn call(&self, request: Request<'static>) -> Self::Future {
        let image = match self.image.lock() {
            Ok(image) => image,
            Err(_) => return std::future::ready(Err(ExceptionCode::ServerDeviceFailure)),
        };
        let result = match request {
            Request::ReadHoldingRegisters(a, n) => {
                read_words(&image.holding, a, n).map(Response::ReadHoldingRegisters)
            }
            Request::ReadInputRegisters(a, n) => {
                read_words(&image.input, a, n).map(Response::ReadInputRegisters)
            }
            Request::ReadCoils(a, n) => check_quantity(n, 2000).and_then(|()| {
                (0..n)
                    .map(|i| {
                        a.checked_add(i)
                            .and_then(|a| image.coils.get(&a).copied())
                            .ok_or(ExceptionCode::IllegalDataAddress)
                    })
                    .collect::<Result<Vec<bool>, _>>()
                    .map(Response::ReadCoils)
            }),
            _ => Err(ExceptionCode::IllegalFunction),
        };
        std::future::ready(result)
    }
}

/// Addresses of the running simulated devices.
pub struct Plant {
    /// Phoenix's hydraulic press (holding registers and a coil).
    pub press: SocketAddr,
    /// Phoenix's cooling pump (input registers).
    pub pump: SocketAddr,
    /// Stuttgart's cooling pump, of the same class (input registers).
    pub stuttgart_pump: SocketAddr,
}

/// Starts the simulated devices on free loopback ports; they run until `cancel`.
pub async fn start(cancel: CancellationToken) -> std::io::Result<Plant> {
    let press = Arc::new(Mutex::new(Image::default()));
    let pump = Arc::new(Mutex::new(Image::default()));
    let stuttgart = Arc::new(Mutex::new(Image::default()));
    let started = Instant::now();
    simulate(&press, &pump, &stuttgart, 0.0);
    let press_addr = serve(press.clone(), cancel.clone()).await?;
    let pump_addr = serve(pump.clone(), cancel.clone()).await?;
    let stuttgart_addr = serve(stuttgart.clone(), cancel.clone()).await?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => simulate(&press, &pump, &stuttgart, started.elapsed().as_secs_f64()),
            }
        }
    });
    Ok(Plant {
        press: press_addr,
        pump: pump_addr,
        stuttgart_pump: stuttgart_addr,
    })
}

/// The process: the press's oil temperature swings through its alarm levels on a 50 s cycle
/// (warning at 80 °C after ~3 s, alarm at 88 °C after ~6 s, back below 78 °C after ~22 s);
/// the pump's vibration drifts slowly on an 80 s cycle.
///
/// A bearing outer race defect develops in both plants' pumps on a 120 s cycle: its envelope
/// level climbs 0.5 dB/s from 2 dB, at phoenix from 3 s into the cycle and at stuttgart from
/// 25 s; each bearing is replaced (back to 2 dB) 35 s after its fault began.
fn simulate(press: &Mutex<Image>, pump: &Mutex<Image>, stuttgart: &Mutex<Image>, t: f64) {
    let wobble = (t * 1.7).sin() * 0.3;
    if let Ok(mut p) = press.lock() {
        let oil = 70.0 + 25.0 * (2.0 * PI * t / 50.0).sin() + wobble;
        Image::set_f32_cdab(&mut p.holding, 0, oil as f32);
        let pressure = 150.0 + 5.0 * (2.0 * PI * t / 13.0).sin();
        p.holding
            .insert(2, ((pressure * 10.0).round() as i16) as u16);
        Image::set_u32_abcd(&mut p.holding, 3, (t / 2.5) as u32);
        let current = 12.0 + 1.5 * (2.0 * PI * t / 7.0).sin();
        p.holding.insert(5, (current * 100.0).round() as u16);
        p.coils.insert(0, true);
    }
    if let Ok(mut p) = pump.lock() {
        let velocity = 3.0 + 2.2 * (2.0 * PI * t / 80.0).sin() + wobble * 0.2;
        p.input
            .insert(0, ((velocity * 100.0).round() as i16) as u16);
        let temp = -5.0 + 2.0 * (2.0 * PI * t / 30.0).sin();
        p.input.insert(1, ((temp * 10.0).round() as i16) as u16);
        p.input.insert(2, tenths(bearing_db(t, 3.0) + wobble * 0.3));
    }
    if let Ok(mut p) = stuttgart.lock() {
        p.input
            .insert(2, tenths(bearing_db(t, 25.0) + wobble * 0.3));
    }
}

/// The envelope level of a bearing whose fault starts `onset` seconds into each 120 s cycle.
fn bearing_db(t: f64, onset: f64) -> f64 {
    let since = t % 120.0 - onset;
    if (0.0..35.0).contains(&since) {
        2.0 + 0.5 * since
    } else {
        2.0
    }
}

/// A value as an i16 register in tenths.
fn tenths(v: f64) -> u16 {
    ((v * 10.0).round() as i16) as u16
}

async fn serve(image: Arc<Mutex<Image>>, cancel: CancellationToken) -> std::io::Result<SocketAddr> {
    serve_on_free_port(Service { image }, cancel).await
}

/// Serves `service` (a simulated device's registers) on a free loopback port until `cancel`;
/// every connection gets a clone. Returns the address.
pub async fn serve_on_free_port<S>(
    service: S,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr>
where
    S: tokio_modbus::server::Service<
            Request = Request<'static>,
            Response = Response,
            Exception = ExceptionCode,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let server = Server::new(listener);
    tokio::spawn(async move {
        let new_service = |_peer: SocketAddr| Ok(Some(service.clone()));
        let on_connected = |stream, peer| {
            let accepted = accept_tcp_connection(stream, peer, new_service);
            async move { accepted }
        };
        let on_error = |e: std::io::Error| debug!(error = %e, "Simulated device connection ended.");
        let _ = server
            .serve_until(
                &on_connected,
                on_error,
                async move { cancel.cancelled().await },
            )
            .await;
    });
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_outside_the_specification_are_exception_03() {
        let table: HashMap<u16, u16> = (0..200).map(|a| (a, a)).collect();
        assert_eq!(
            read_words(&table, 0, 0),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            read_words(&table, 0, 126),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(read_words(&table, 0, 125).map(|w| w.len()), Ok(125));
        assert_eq!(
            read_words(&table, 150, 100),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            check_quantity(2001, 2000),
            Err(ExceptionCode::IllegalDataValue)
        );
    }
}
