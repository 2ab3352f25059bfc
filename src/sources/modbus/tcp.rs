//! Modbus TCP polling: one task per device.
//!
//! tokio-modbus separates the two kinds of failure, and so do we: a transport error (`Err`)
//! means the link is unusable, so every point turns bad and the task reconnects with backoff;
//! a device exception (`Ok(Err(code))`, e.g. 02 illegal data address) means only that point is
//! bad, and the link is kept. tokio-modbus has no timeouts of its own, so every connect and
//! request is wrapped in one.

use super::{decode_point, engineering, Decoded};
use crate::backoff::Backoff;
use crate::config::{ModbusTcpConfig, PointConfig, RegisterKind};
use crate::sources::{DeviceStats, Quality, Sample, SourceEvent};
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

/// One read request covering one or more points of the same table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The table.
    pub kind: RegisterKind,
    /// First address read.
    pub start: u16,
    /// Registers (or bits) read.
    pub count: u16,
    /// (point index, offset of the point within the batch).
    pub members: Vec<(usize, u16)>,
}

/// Groups points into as few requests as the limits allow: points of one table, sorted by
/// address, join a request while the gap before them is at most `max_gap` and the request
/// stays within `max_registers` (or `max_bits` for coils and discrete inputs).
pub fn plan_batches(
    points: &[PointConfig],
    max_registers: u16,
    max_bits: u16,
    max_gap: u16,
) -> Vec<Batch> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    let table = |k: RegisterKind| match k {
        RegisterKind::Holding => 0,
        RegisterKind::Input => 1,
        RegisterKind::Coil => 2,
        RegisterKind::DiscreteInput => 3,
    };
    order.sort_by_key(|i| (table(points[*i].register), points[*i].address));
    let mut batches: Vec<Batch> = Vec::new();
    for i in order {
        let p = &points[i];
        let (start, end) = (
            u32::from(p.address),
            u32::from(p.address) + u32::from(p.registers()),
        );
        let limit = u32::from(if p.register.is_bit() {
            max_bits
        } else {
            max_registers
        });
        if let Some(b) = batches.last_mut() {
            let b_start = u32::from(b.start);
            let b_end = b_start + u32::from(b.count);
            let fits = b.kind == p.register
                && start <= b_end + u32::from(max_gap)
                && end.max(b_end) - b_start <= limit;
            if fits {
                b.count = (end.max(b_end) - b_start) as u16;
                b.members.push((i, (start - b_start) as u16));
                continue;
            }
        }
        batches.push(Batch {
            kind: p.register,
            start: p.address,
            count: p.registers(),
            members: vec![(i, 0)],
        });
    }
    batches
}

/// What a read returned.
enum Block {
    Words(Vec<u16>),
    Bits(Vec<bool>),
}

/// Polls one Modbus TCP device until cancelled.
pub struct ModbusTcpPoller {
    index: usize,
    config: ModbusTcpConfig,
    events: mpsc::Sender<SourceEvent>,
    batches: Vec<Batch>,
    stats: DeviceStats,
    latency_sum_ms: f64,
}

impl ModbusTcpPoller {
    /// A poller for device number `index` of the configuration.
    pub fn new(index: usize, config: ModbusTcpConfig, events: mpsc::Sender<SourceEvent>) -> Self {
        let batches = plan_batches(
            &config.points,
            config.max_registers_per_request,
            config.max_bits_per_request,
            config.max_gap,
        );
        Self {
            index,
            config,
            events,
            batches,
            stats: DeviceStats::default(),
            latency_sum_ms: 0.0,
        }
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
                            self.stats.reconnects += 1;
                        }
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
            let Some(mut c) = ctx.take() else { continue };
            let result = self.poll_once(&mut c).await;
            ctx = Some(c);
            if stats_sent.elapsed() >= stats_every {
                stats_sent = Instant::now();
                self.send(SourceEvent::Stats {
                    device: self.index,
                    stats: self.stats.clone(),
                })
                .await;
            }
            if let Err(reason) = result {
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

    /// Reads every point once, batch by batch. Returns `Err` on a transport failure
    /// (reconnect needed).
    async fn poll_once(&mut self, ctx: &mut Context) -> Result<(), String> {
        self.stats.polls += 1;
        let before = self.stats.requests;
        for b in 0..self.batches.len() {
            let batch = self.batches[b].clone();
            let at = SystemTime::now();
            match self
                .read_block(ctx, batch.kind, batch.start, batch.count)
                .await
            {
                Ok(block) => {
                    for (i, offset) in &batch.members {
                        let decoded = self.decode_member(&block, *i, *offset);
                        self.emit(*i, decoded, at).await;
                    }
                }
                Err(e @ ReadError::Exception { .. }) if batch.members.len() > 1 => {
                    // One bad address must not blank its neighbours: read them one by one.
                    debug!(device = %self.config.name, error = %e, "Batch answered with an exception; reading its points singly.");
                    for (i, _) in &batch.members {
                        let p = self.config.points[*i].clone();
                        let at = SystemTime::now();
                        match self
                            .read_block(ctx, p.register, p.address, p.registers())
                            .await
                        {
                            Ok(block) => {
                                let decoded = self.decode_member(&block, *i, 0);
                                self.emit(*i, decoded, at).await;
                            }
                            Err(e @ ReadError::Exception { .. }) => {
                                self.emit(*i, Err(e.to_string()), at).await
                            }
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                }
                Err(e @ ReadError::Exception { .. }) => {
                    for (i, _) in &batch.members {
                        self.emit(*i, Err(e.to_string()), at).await;
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        self.stats.requests_last_poll = self.stats.requests - before;
        Ok(())
    }

    fn decode_member(&self, block: &Block, i: usize, offset: u16) -> Result<Decoded, String> {
        let p = &self.config.points[i];
        let offset = usize::from(offset);
        let decoded = match block {
            Block::Words(words) => words.get(offset..).and_then(|w| decode_point(w, p)),
            Block::Bits(bits) => bits
                .get(offset)
                .map(|b| Decoded::Number(f64::from(u8::from(*b)))),
        };
        decoded.ok_or_else(|| {
            format!(
                "register {} ({:?}) on {}: the answer was too short",
                p.address, p.register, self.config.name
            )
        })
    }

    async fn emit(&self, i: usize, decoded: Result<Decoded, String>, at: SystemTime) {
        let p = &self.config.points[i];
        let sample = match decoded {
            Ok(Decoded::Number(raw)) => Sample {
                device: self.index,
                point: i,
                value: Some(engineering(p, raw)),
                text: None,
                quality: Quality::Good,
                error: None,
                at,
            },
            Ok(Decoded::Text(t)) => Sample {
                device: self.index,
                point: i,
                value: None,
                text: Some(t),
                quality: Quality::Good,
                error: None,
                at,
            },
            Err(e) => {
                debug!(device = %self.config.name, point = %p.name, error = %e, "Point read failed.");
                Sample {
                    device: self.index,
                    point: i,
                    value: None,
                    text: None,
                    quality: Quality::Bad,
                    error: Some(e),
                    at,
                }
            }
        };
        self.send(SourceEvent::Sample(sample)).await;
    }

    /// One read request with its timeout, counted in the statistics.
    async fn read_block(
        &mut self,
        ctx: &mut Context,
        kind: RegisterKind,
        address: u16,
        count: u16,
    ) -> Result<Block, ReadError> {
        let limit = Duration::from_millis(self.config.timeout_ms);
        let device = self.config.name.clone();
        let started = Instant::now();
        self.stats.requests += 1;
        let result = match kind {
            RegisterKind::Holding | RegisterKind::Input => {
                let request = async {
                    if kind == RegisterKind::Holding {
                        ctx.read_holding_registers(address, count).await
                    } else {
                        ctx.read_input_registers(address, count).await
                    }
                };
                match timeout(limit, request).await {
                    Err(_) => Err(None),
                    Ok(Err(e)) => Err(Some(e.to_string())),
                    Ok(Ok(Err(code))) => Ok(Err(code)),
                    Ok(Ok(Ok(words))) => Ok(Ok(Block::Words(words))),
                }
            }
            RegisterKind::Coil | RegisterKind::DiscreteInput => {
                let request = async {
                    if kind == RegisterKind::Coil {
                        ctx.read_coils(address, count).await
                    } else {
                        ctx.read_discrete_inputs(address, count).await
                    }
                };
                match timeout(limit, request).await {
                    Err(_) => Err(None),
                    Ok(Err(e)) => Err(Some(e.to_string())),
                    Ok(Ok(Err(code))) => Ok(Err(code)),
                    Ok(Ok(Ok(bits))) => Ok(Ok(Block::Bits(bits))),
                }
            }
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.latency_sum_ms += ms;
        self.stats.latency_ms_max = self.stats.latency_ms_max.max(ms);
        self.stats.latency_ms_avg = self.latency_sum_ms / self.stats.requests as f64;
        match result {
            Ok(Ok(block)) => Ok(block),
            Ok(Err(code)) => {
                self.stats.exceptions += 1;
                Err(ReadError::Exception {
                    device,
                    kind,
                    address,
                    code: u8::from(code),
                    name: exception_name(code),
                })
            }
            Err(None) => {
                self.stats.timeouts += 1;
                Err(ReadError::Transport {
                    device,
                    kind,
                    address,
                    reason: format!("no answer within {} ms", self.config.timeout_ms),
                })
            }
            Err(Some(reason)) => {
                self.stats.transport_errors += 1;
                Err(ReadError::Transport {
                    device,
                    kind,
                    address,
                    reason,
                })
            }
        }
    }

    async fn all_bad(&self, reason: &str) {
        let at = SystemTime::now();
        for i in 0..self.config.points.len() {
            self.send(SourceEvent::Sample(Sample {
                device: self.index,
                point: i,
                value: None,
                text: None,
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
