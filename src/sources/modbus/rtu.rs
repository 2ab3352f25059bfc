//! Modbus RTU: the units on one RS-485 line, polled in turn by one task.
//!
//! Only one request may be on a serial line at a time, so units sharing a port share a task.
//! A unit that does not answer is marked bad and skipped with exponential backoff (and
//! jitter) while the others keep their cadence; an I/O error of the port itself closes and
//! reopens it with backoff.

use super::unit::UnitPoller;
use crate::backoff::Backoff;
use crate::config::{ModbusRtuConfig, Parity};
use crate::sources::SourceEvent;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_modbus::client::{Client as _, Context};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::Slave;
use tokio_serial::SerialPortBuilderExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

struct Unit {
    config: ModbusRtuConfig,
    poller: UnitPoller,
    next_poll: Instant,
    backoff: Backoff,
    up: Option<bool>,
    stats_sent: Instant,
}

/// The units of one serial line.
pub struct RtuBus {
    port: String,
    units: Vec<Unit>,
}

impl RtuBus {
    /// A bus for `(device index, configuration)` pairs that share one port.
    pub fn new(devices: Vec<(usize, ModbusRtuConfig)>, events: mpsc::Sender<SourceEvent>) -> Self {
        let port = devices
            .first()
            .map(|(_, d)| d.port.display().to_string())
            .unwrap_or_default();
        let now = Instant::now();
        let units = devices
            .into_iter()
            .map(|(index, config)| Unit {
                poller: UnitPoller::new(
                    index,
                    &config.name,
                    config.timeout_ms,
                    config.points.clone(),
                    config.max_registers_per_request,
                    config.max_bits_per_request,
                    config.max_gap,
                    events.clone(),
                ),
                backoff: Backoff::new(
                    Duration::from_millis(config.backoff_initial_ms),
                    Duration::from_millis(config.backoff_max_ms),
                ),
                next_poll: now,
                up: None,
                stats_sent: now,
                config,
            })
            .collect();
        Self { port, units }
    }

    fn open(&self) -> Result<Context, String> {
        let first = self.units.first().ok_or("no units")?;
        let (baud, parity, data_bits, stop_bits) = first.config.line();
        let port = tokio_serial::new(&self.port, baud)
            .parity(match parity {
                Parity::Even => tokio_serial::Parity::Even,
                Parity::Odd => tokio_serial::Parity::Odd,
                Parity::None => tokio_serial::Parity::None,
            })
            .data_bits(if data_bits == 7 {
                tokio_serial::DataBits::Seven
            } else {
                tokio_serial::DataBits::Eight
            })
            .stop_bits(if stop_bits == 2 {
                tokio_serial::StopBits::Two
            } else {
                tokio_serial::StopBits::One
            })
            .open_native_async()
            .map_err(|e| format!("cannot open {}: {e}", self.port))?;
        Ok(tokio_modbus::client::rtu::attach_slave(
            port,
            Slave(first.config.unit_id),
        ))
    }

    /// Runs until `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut port_backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        'open: loop {
            let mut ctx = match self.open() {
                Ok(ctx) => {
                    info!(port = %self.port, units = self.units.len(), "Serial line open.");
                    port_backoff.reset();
                    ctx
                }
                Err(reason) => {
                    warn!(port = %self.port, error = %reason, "Cannot open the serial line; retrying with backoff.");
                    self.all_down(&reason, true).await;
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(port_backoff.next_delay()) => continue 'open,
                    }
                }
            };
            loop {
                // The unit due soonest.
                let Some(i) = (0..self.units.len()).min_by_key(|i| self.units[*i].next_poll) else {
                    return;
                };
                let due = self.units[i].next_poll;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(due) => {}
                }
                match self.poll_unit(i, &mut ctx, due).await {
                    Polled::Done => {}
                    Polled::Reopen => continue 'open,
                    Polled::LineFailed(message) => {
                        self.all_down(&message, false).await;
                        let _ = ctx.disconnect().await;
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(port_backoff.next_delay()) => continue 'open,
                        }
                    }
                }
                let u = &mut self.units[i];
                if u.stats_sent.elapsed() >= Duration::from_millis(u.config.stats_interval_ms) {
                    u.stats_sent = Instant::now();
                    u.poller.send_stats().await;
                }
                tokio::time::sleep(Duration::from_millis(u.config.turnaround_ms)).await;
            }
        }
    }

    /// Polls unit `i`, due at `due`. A unit that does not answer properly is skipped with
    /// backoff, and the line is reopened for the next one.
    async fn poll_unit(&mut self, i: usize, ctx: &mut Context, due: Instant) -> Polled {
        let u = &mut self.units[i];
        ctx.set_slave(Slave(u.config.unit_id));
        let result = u.poller.poll_once(ctx).await;
        let period = Duration::from_millis(u.config.poll_interval_ms);
        match result {
            Ok(()) => {
                u.backoff.reset();
                // Keep the cadence from the due time, not from when the poll ended.
                u.next_poll = (due + period).max(Instant::now());
                if u.up != Some(true) {
                    u.up = Some(true);
                    u.poller.link(true, None).await;
                }
                Polled::Done
            }
            Err(failure) if failure.timeout => {
                let delay = u.backoff.next_delay();
                if u.up != Some(false) {
                    warn!(device = %u.config.name, unit = u.config.unit_id, error = %failure, retry_in_ms = delay.as_millis() as u64, "Unit does not answer properly; skipping it with backoff.");
                    u.up = Some(false);
                    u.poller.link(false, Some(failure.message.clone())).await;
                    u.poller.all_bad(&failure.message).await;
                }
                u.next_poll = Instant::now() + delay.max(period);
                // A late or broken answer may still be on its way: start the next unit on a
                // freshly opened line so stray bytes cannot pass for its answer.
                let _ = ctx.disconnect().await;
                tokio::time::sleep(Duration::from_millis(u.config.timeout_ms)).await;
                match self.open() {
                    Ok(fresh) => {
                        *ctx = fresh;
                        Polled::Done
                    }
                    Err(reason) => {
                        warn!(port = %self.port, error = %reason, "Cannot reopen the serial line.");
                        Polled::Reopen
                    }
                }
            }
            Err(failure) => {
                warn!(port = %self.port, error = %failure, "Serial line failed; reopening.");
                Polled::LineFailed(failure.message)
            }
        }
    }

    /// Reports every unit's link down (with `only_changed`, only those not already down).
    async fn all_down(&mut self, reason: &str, only_changed: bool) {
        for u in &mut self.units {
            if !only_changed || u.up != Some(false) {
                u.up = Some(false);
                u.poller.link(false, Some(reason.to_string())).await;
                u.poller.all_bad(reason).await;
            }
        }
    }
}

/// What polling one unit left the line in.
enum Polled {
    /// The line is usable for the next unit.
    Done,
    /// The line could not be reopened: open it again with backoff.
    Reopen,
    /// The line itself failed: every unit is down.
    LineFailed(String),
}
