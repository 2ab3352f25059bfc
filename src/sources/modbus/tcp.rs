//! Modbus TCP polling: one task per device, so a dead or slow device never delays another. A
//! transport error or timeout drops the connection: every point turns bad and the task
//! reconnects with exponential backoff and jitter. The link counts as up, and the backoff
//! starts over, only after a good poll, and each change of the link is reported once.

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
        let mut link = Link {
            connections: 0,
            up: None,
            backoff: Backoff::new(
                Duration::from_millis(self.config.backoff_initial_ms),
                Duration::from_millis(self.config.backoff_max_ms),
            ),
        };
        let mut ctx: Option<Context> = None;
        let mut ticker = tokio::time::interval(Duration::from_millis(self.config.poll_interval_ms));
        // A late poll is not made up for with a burst: the next one keeps the cadence.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);

        loop {
            if ctx.is_none() {
                match self.open(&mut link).await {
                    Ok(c) => {
                        ctx = Some(c);
                        ticker.reset_immediately();
                    }
                    Err(delay) => tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => continue,
                    },
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
            if result.is_ok() && link.up != Some(true) {
                // Up, and the backoff back to its start, only once a poll succeeded: a device
                // that accepts connections and then fails is retried with growing delays.
                link.up = Some(true);
                link.backoff.reset();
                self.unit.link(true, None).await;
            }
            if let Err(failure) = result {
                let reason = failure.message;
                ctx = None;
                let delay = link.backoff.next_delay();
                if link.up != Some(false) {
                    warn!(device = %self.config.name, error = %reason, retry_in_ms = delay.as_millis() as u64, "Poll failed; reconnecting with backoff.");
                    link.up = Some(false);
                    self.unit.link(false, Some(reason.clone())).await;
                    self.unit.all_bad(&reason).await;
                } else {
                    debug!(device = %self.config.name, error = %reason, "Poll failed again.");
                }
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

    /// One connection attempt: the context, or how long to wait before the next attempt. A
    /// failure is reported once until the link is up again (after a good poll).
    async fn open(&mut self, link: &mut Link) -> Result<Context, Duration> {
        let c = &self.config;
        match connect(&c.host, c.port, c.unit_id, c.timeout_ms).await {
            Ok(ctx) => {
                link.connections += 1;
                if link.connections > 1 {
                    self.unit.stats_mut().reconnects += 1;
                }
                if link.up == Some(false) {
                    debug!(device = %c.name, host = %c.host, port = c.port, "Connected again.");
                } else {
                    info!(device = %c.name, host = %c.host, port = c.port, "Connected.");
                }
                Ok(ctx)
            }
            Err(reason) => {
                let delay = link.backoff.next_delay();
                if link.up != Some(false) {
                    warn!(device = %c.name, error = %reason, retry_in_ms = delay.as_millis() as u64, "Connect failed; retrying with backoff.");
                    link.up = Some(false);
                    self.unit.link(false, Some(reason.clone())).await;
                    self.unit.all_bad(&reason).await;
                } else {
                    debug!(device = %c.name, error = %reason, "Connect failed again.");
                }
                Err(delay)
            }
        }
    }
}

/// A device's connection history.
struct Link {
    /// Successful connections since start.
    connections: u64,
    /// Whether the link is up (None before the first attempt).
    up: Option<bool>,
    backoff: Backoff,
}

/// Connects to unit `unit_id` of the Modbus TCP server at `host:port`; name resolution and the
/// connection each get `timeout_ms`.
pub async fn connect(
    host: &str,
    port: u16,
    unit_id: u8,
    timeout_ms: u64,
) -> Result<Context, String> {
    let limit = Duration::from_millis(timeout_ms);
    let addr: SocketAddr = match timeout(limit, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(mut addrs)) => addrs
            .next()
            .ok_or_else(|| format!("host {host} resolved to no address"))?,
        Ok(Err(e)) => return Err(format!("cannot resolve {host}: {e}")),
        Err(_) => return Err(format!("resolving {host} timed out")),
    };
    match timeout(
        limit,
        tokio_modbus::client::tcp::connect_slave(addr, Slave(unit_id)),
    )
    .await
    {
        Ok(Ok(ctx)) => Ok(ctx),
        Ok(Err(e)) => Err(format!("cannot connect to {addr}: {e}")),
        Err(_) => Err(format!(
            "connecting to {addr} timed out after {timeout_ms} ms"
        )),
    }
}
