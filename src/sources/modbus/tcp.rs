//! Modbus TCP polling: one task per device, so a dead or slow device never delays another. A
//! transport error or timeout drops the connection: every point turns bad and the task
//! reconnects with exponential backoff and jitter.

use super::unit::UnitPoller;
use crate::backoff::Backoff;
use crate::config::ModbusTcpConfig;
use crate::sources::SourceEvent;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_modbus::client::{Client, Context};
use tokio_modbus::Slave;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Polls one Modbus TCP device until cancelled.
pub struct ModbusTcpPoller {
    config: ModbusTcpConfig,
    unit: UnitPoller,
}

impl ModbusTcpPoller {
    /// A poller for device number `index` of the configuration.
    pub fn new(index: usize, config: ModbusTcpConfig, events: mpsc::Sender<SourceEvent>) -> Self {
        let unit = UnitPoller::new(
            index,
            &config.name,
            config.timeout_ms,
            config.points.clone(),
            config.max_registers_per_request,
            config.max_bits_per_request,
            config.max_gap,
            events,
        );
        Self { config, unit }
    }

    /// Runs until `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let stats_every = Duration::from_millis(self.config.stats_interval_ms);
        let mut stats_sent = Instant::now();
        let mut connections = 0u64;
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
                        connections += 1;
                        if connections > 1 {
                            self.unit.stats_mut().reconnects += 1;
                        }
                        info!(device = %self.config.name, host = %self.config.host, port = self.config.port, "Connected.");
                        ctx = Some(c);
                        backoff.reset();
                        if link_up != Some(true) {
                            link_up = Some(true);
                            self.unit.link(true, None).await;
                        }
                        ticker.reset_immediately();
                    }
                    Err(reason) => {
                        let delay = backoff.next_delay();
                        if link_up != Some(false) {
                            warn!(device = %self.config.name, error = %reason, retry_in_ms = delay.as_millis() as u64, "Connect failed; retrying with backoff.");
                            link_up = Some(false);
                            self.unit.link(false, Some(reason.clone())).await;
                            self.unit.all_bad(&reason).await;
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
            let Some(mut c) = ctx.take() else { continue };
            let result = self.unit.poll_once(&mut c).await;
            ctx = Some(c);
            if stats_sent.elapsed() >= stats_every {
                stats_sent = Instant::now();
                self.unit.send_stats().await;
            }
            if let Err(failure) = result {
                let reason = failure.message;
                warn!(device = %self.config.name, error = %reason, "Poll failed; reconnecting.");
                ctx = None;
                link_up = Some(false);
                self.unit.link(false, Some(reason.clone())).await;
                self.unit.all_bad(&reason).await;
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
}
