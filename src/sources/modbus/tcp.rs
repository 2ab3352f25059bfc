//! Modbus TCP polling: one task per device.
//!
//! tokio-modbus separates the two kinds of failure, and so do we: a transport error (`Err`)
//! means the link is unusable, so every point turns bad and the task reconnects with backoff;
//! a device exception (`Ok(Err(code))`, e.g. 02 illegal data address) means only that point is
//! bad, and the link is kept. tokio-modbus has no timeouts of its own, so every connect and
//! request is wrapped in one.

use super::{decode_registers, engineering};
use crate::backoff::Backoff;
use crate::config::{DataType, ModbusTcpConfig, PointConfig, RegisterKind};
use crate::sources::{Quality, Sample, SourceEvent};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_modbus::client::{Client, Context, Reader};
use tokio_modbus::Slave;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Why one read failed.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The device answered with a Modbus exception; the link is fine.
    #[error(
        "register {address} ({kind:?}) on {device}: device answered exception {code} ({name})"
    )]
    Exception {
        device: String,
        kind: RegisterKind,
        address: u16,
        code: u8,
        name: String,
    },
    /// The link failed or the request timed out: reconnect.
    #[error("register {address} ({kind:?}) on {device}: {reason}")]
    Transport {
        device: String,
        kind: RegisterKind,
        address: u16,
        reason: String,
    },
}

/// Polls one Modbus TCP device until cancelled.
pub struct ModbusTcpPoller {
    index: usize,
    config: ModbusTcpConfig,
    events: mpsc::Sender<SourceEvent>,
}

impl ModbusTcpPoller {
    /// A poller for device number `index` of the configuration.
    pub fn new(index: usize, config: ModbusTcpConfig, events: mpsc::Sender<SourceEvent>) -> Self {
        Self {
            index,
            config,
            events,
        }
    }

    /// Runs until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.config.backoff_initial_ms),
            Duration::from_millis(self.config.backoff_max_ms),
        );
        let period = Duration::from_millis(self.config.poll_interval_ms);
        let mut link_up: Option<bool> = None;
        let mut ctx: Option<Context> = None;
        let mut ticker = tokio::time::interval(period);
        // A late poll is not made up for with a burst: the next one keeps the cadence.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);

        loop {
            if ctx.is_none() {
                match self.connect().await {
                    Ok(c) => {
                        info!(device = %self.config.name, host = %self.config.host, port = self.config.port, "Connected.");
                        ctx = Some(c);
                        backoff.reset();
                        if link_up != Some(true) {
                            link_up = Some(true);
                            self.send(SourceEvent::Link {
                                device: self.index,
                                up: true,
                                error: None,
                            })
                            .await;
                        }
                        ticker.reset_immediately();
                    }
                    Err(reason) => {
                        let delay = backoff.next_delay();
                        if link_up != Some(false) {
                            warn!(device = %self.config.name, error = %reason, retry_in_ms = delay.as_millis() as u64, "Connect failed; retrying with backoff.");
                            link_up = Some(false);
                            self.send(SourceEvent::Link {
                                device: self.index,
                                up: false,
                                error: Some(reason.clone()),
                            })
                            .await;
                            self.all_bad(&reason).await;
                        } else {
                            debug!(device = %self.config.name, error = %reason, "Connect failed again.");
                        }
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(delay) => continue,
                        }
                    }
                }
            }

            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let Some(c) = ctx.as_mut() else { continue };
            if let Err(reason) = self.poll_once(c).await {
                warn!(device = %self.config.name, error = %reason, "Poll failed; reconnecting.");
                ctx = None;
                link_up = Some(false);
                self.send(SourceEvent::Link {
                    device: self.index,
                    up: false,
                    error: Some(reason.clone()),
                })
                .await;
                self.all_bad(&reason).await;
                let delay = backoff.next_delay();
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
        if let Some(mut c) = ctx {
            let _ = timeout(Duration::from_millis(200), c.disconnect()).await;
        }
        debug!(device = %self.config.name, "Poller stopped.");
    }

    async fn connect(&self) -> Result<Context, String> {
        let limit = Duration::from_millis(self.config.timeout_ms);
        let target = (self.config.host.as_str(), self.config.port);
        let addr: SocketAddr = match timeout(limit, tokio::net::lookup_host(target)).await {
            Ok(Ok(mut addrs)) => addrs
                .next()
                .ok_or_else(|| format!("host {} resolved to no address", self.config.host))?,
            Ok(Err(e)) => return Err(format!("cannot resolve {}: {e}", self.config.host)),
            Err(_) => return Err(format!("resolving {} timed out", self.config.host)),
        };
        match timeout(
            limit,
            tokio_modbus::client::tcp::connect_slave(addr, Slave(self.config.unit_id)),
        )
        .await
        {
            Ok(Ok(ctx)) => Ok(ctx),
            Ok(Err(e)) => Err(format!("cannot connect to {addr}: {e}")),
            Err(_) => Err(format!(
                "connecting to {addr} timed out after {} ms",
                self.config.timeout_ms
            )),
        }
    }

    /// Reads every point once. Returns `Err` on a transport failure (reconnect needed).
    async fn poll_once(&self, ctx: &mut Context) -> Result<(), String> {
        for (i, point) in self.config.points.iter().enumerate() {
            let at = SystemTime::now();
            let sample = match self.read_point(ctx, point).await {
                Ok(value) => Sample {
                    device: self.index,
                    point: i,
                    value: Some(value),
                    quality: Quality::Good,
                    error: None,
                    at,
                },
                Err(e @ ReadError::Exception { .. }) => {
                    debug!(device = %self.config.name, point = %point.name, error = %e, "Point read answered with an exception.");
                    Sample {
                        device: self.index,
                        point: i,
                        value: None,
                        quality: Quality::Bad,
                        error: Some(e.to_string()),
                        at,
                    }
                }
                Err(e @ ReadError::Transport { .. }) => return Err(e.to_string()),
            };
            self.send(SourceEvent::Sample(sample)).await;
        }
        Ok(())
    }

    async fn read_point(&self, ctx: &mut Context, point: &PointConfig) -> Result<f64, ReadError> {
        let ty = point.data_type();
        let count = ty.registers();
        let limit = Duration::from_millis(self.config.timeout_ms);
        let transport = |reason: String| ReadError::Transport {
            device: self.config.name.clone(),
            kind: point.register,
            address: point.address,
            reason,
        };
        let exception = |code: tokio_modbus::ExceptionCode| ReadError::Exception {
            device: self.config.name.clone(),
            kind: point.register,
            address: point.address,
            code: u8::from(code),
            name: exception_name(code),
        };
        let started = Instant::now();
        let raw = match point.register {
            RegisterKind::Holding | RegisterKind::Input => {
                let request = async {
                    if point.register == RegisterKind::Holding {
                        ctx.read_holding_registers(point.address, count).await
                    } else {
                        ctx.read_input_registers(point.address, count).await
                    }
                };
                let words = match timeout(limit, request).await {
                    Err(_) => {
                        return Err(transport(format!(
                            "no answer within {} ms",
                            self.config.timeout_ms
                        )))
                    }
                    Ok(Err(e)) => return Err(transport(e.to_string())),
                    Ok(Ok(Err(code))) => return Err(exception(code)),
                    Ok(Ok(Ok(words))) => words,
                };
                decode_registers(&words, ty, point.byte_order).ok_or_else(|| {
                    transport(format!(
                        "device returned {} registers, expected {count}",
                        words.len()
                    ))
                })?
            }
            RegisterKind::Coil | RegisterKind::DiscreteInput => {
                let request = async {
                    if point.register == RegisterKind::Coil {
                        ctx.read_coils(point.address, 1).await
                    } else {
                        ctx.read_discrete_inputs(point.address, 1).await
                    }
                };
                let bits = match timeout(limit, request).await {
                    Err(_) => {
                        return Err(transport(format!(
                            "no answer within {} ms",
                            self.config.timeout_ms
                        )))
                    }
                    Ok(Err(e)) => return Err(transport(e.to_string())),
                    Ok(Ok(Err(code))) => return Err(exception(code)),
                    Ok(Ok(Ok(bits))) => bits,
                };
                debug_assert_eq!(ty, DataType::Bool);
                let bit = bits
                    .first()
                    .copied()
                    .ok_or_else(|| transport("device returned no bits".into()))?;
                f64::from(u8::from(bit))
            }
        };
        debug!(device = %self.config.name, point = %point.name, latency_us = started.elapsed().as_micros() as u64, "Read.");
        Ok(engineering(point, raw))
    }

    async fn all_bad(&self, reason: &str) {
        let at = SystemTime::now();
        for i in 0..self.config.points.len() {
            self.send(SourceEvent::Sample(Sample {
                device: self.index,
                point: i,
                value: None,
                quality: Quality::Bad,
                error: Some(reason.to_string()),
                at,
            }))
            .await;
        }
    }

    async fn send(&self, event: SourceEvent) {
        // Only fails when the core has stopped, i.e. during shutdown.
        let _ = self.events.send(event).await;
    }
}

fn exception_name(code: tokio_modbus::ExceptionCode) -> String {
    use tokio_modbus::ExceptionCode as E;
    match code {
        E::IllegalFunction => "illegal function",
        E::IllegalDataAddress => "illegal data address",
        E::IllegalDataValue => "illegal data value",
        E::ServerDeviceFailure => "server device failure",
        E::Acknowledge => "acknowledge",
        E::ServerDeviceBusy => "server device busy",
        E::MemoryParityError => "memory parity error",
        E::GatewayPathUnavailable => "gateway path unavailable",
        E::GatewayTargetDevice => "gateway target device failed to respond",
        _ => "non-standard exception",
    }
    .to_string()
}
