//! One Modbus unit (a TCP device or a slave on an RTU line): its read plan, the decoding of
//! its points, and its request statistics. Shared by the TCP poller and the RTU bus.
//!
//! tokio-modbus separates the two kinds of failure, and so do we: a transport error (`Err`)
//! means the link (or, on RTU, the unit) is unusable; a device exception (`Ok(Err(code))`, e.g.
//! 02 illegal data address) means only the points read are bad. tokio-modbus has no timeouts
//! of its own, so every request is wrapped in one.

use super::{decode_point_remembered, engineering, Decoded, F32Memo};
use crate::config::{PointConfig, RegisterKind};
use crate::sources::{DeviceStats, Sample, SourceEvent};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_modbus::client::{Context, Reader};
use tracing::debug;

/// Why one read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
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
        /// True when the device did not answer in time or answered garbage (the link itself
        /// works: on a shared RTU line, only this unit is at fault).
        timeout: bool,
        /// True when it did not answer in time.
        timed_out: bool,
    },
}

impl ReadError {
    /// The error as it happened on `device`.
    pub fn on(mut self, device: &str) -> Self {
        match &mut self {
            ReadError::Exception { device: d, .. } | ReadError::Transport { device: d, .. } => {
                *d = device.to_string()
            }
        }
        self
    }
}

/// Why a poll stopped before reading every point.
#[derive(Debug, Clone)]
pub struct PollFailure {
    /// The unit did not answer in time, or answered something that is not Modbus (on a shared
    /// RTU line: skip the unit; on TCP: reconnect). False for I/O errors of the link itself.
    pub timeout: bool,
    /// What happened, for operators.
    pub message: String,
}

impl std::fmt::Display for PollFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ReadError> for PollFailure {
    fn from(e: ReadError) -> Self {
        let timeout = matches!(e, ReadError::Transport { timeout: true, .. });
        Self {
            timeout,
            message: e.to_string(),
        }
    }
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
    // Only register points are read; a Modbus device has no others.
    order.retain(|i| points[*i].register().is_some());
    order.sort_by_key(|i| {
        let r = points[*i].register();
        (r.map(|r| table(r.register)), r.map(|r| r.address))
    });
    let mut batches: Vec<Batch> = Vec::new();
    for i in order {
        let Some(p) = points[i].register() else {
            continue;
        };
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
pub enum Block {
    /// Holding or input registers.
    Words(Vec<u16>),
    /// Coils or discrete inputs.
    Bits(Vec<bool>),
}

/// Reads the points of one unit.
pub struct UnitPoller {
    index: usize,
    name: String,
    timeout_ms: u64,
    points: Vec<PointConfig>,
    batches: Vec<Batch>,
    events: mpsc::Sender<SourceEvent>,
    stats: DeviceStats,
    latency_sum_ms: f64,
    pending: Vec<Sample>,
    /// Per point, its last f32 registers and value.
    remembered: Vec<F32Memo>,
}

impl UnitPoller {
    /// A unit with its read plan.
    #[allow(clippy::too_many_arguments, reason = "a constructor of plain settings")]
    pub fn new(
        index: usize,
        name: &str,
        timeout_ms: u64,
        points: Vec<PointConfig>,
        max_registers: u16,
        max_bits: u16,
        max_gap: u16,
        events: mpsc::Sender<SourceEvent>,
    ) -> Self {
        Self {
            batches: plan_batches(&points, max_registers, max_bits, max_gap),
            remembered: vec![None; points.len()],
            index,
            name: name.to_string(),
            timeout_ms,
            points,
            events,
            stats: DeviceStats::default(),
            latency_sum_ms: 0.0,
            pending: Vec::new(),
        }
    }

    /// The unit's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Statistics so far.
    pub fn stats_mut(&mut self) -> &mut DeviceStats {
        &mut self.stats
    }

    /// Publishes the statistics.
    pub async fn send_stats(&self) {
        self.send(SourceEvent::Stats {
            device: self.index,
            stats: self.stats.clone(),
        })
        .await;
    }

    /// Reports the link state.
    pub async fn link(&self, up: bool, error: Option<String>) {
        crate::sources::report_link(&self.events, self.index, up, error).await;
    }

    /// Reads every point once, batch by batch. Returns `Err` on a transport failure
    /// (reconnect needed).
    pub async fn poll_once(&mut self, ctx: &mut Context) -> Result<(), PollFailure> {
        self.stats.polls += 1;
        let before = self.stats.requests;
        // The plan is borrowed out for the poll (no copy per poll) and put back after.
        let batches = std::mem::take(&mut self.batches);
        let result = self.poll_batches(ctx, &batches).await;
        self.batches = batches;
        result?;
        self.stats.requests_last_poll = self.stats.requests - before;
        Ok(())
    }

    async fn poll_batches(
        &mut self,
        ctx: &mut Context,
        batches: &[Batch],
    ) -> Result<(), PollFailure> {
        for batch in batches {
            self.pending.reserve_exact(batch.members.len());
            let at = SystemTime::now();
            match self
                .read_block(ctx, batch.kind, batch.start, batch.count)
                .await
            {
                Ok(block) => {
                    for (i, offset) in &batch.members {
                        let decoded = self.decode_member(&block, *i, *offset);
                        self.emit(*i, decoded, at);
                    }
                }
                Err(e @ ReadError::Exception { .. }) if batch.members.len() > 1 => {
                    // One bad address must not blank its neighbours: read them one by one.
                    debug!(device = %self.name, error = %e, "Batch answered with an exception; reading its points singly.");
                    for (i, _) in &batch.members {
                        let Some(p) = self.points[*i].register().copied() else {
                            continue;
                        };
                        let at = SystemTime::now();
                        match self
                            .read_block(ctx, p.register, p.address, p.registers())
                            .await
                        {
                            Ok(block) => {
                                let decoded = self.decode_member(&block, *i, 0);
                                self.emit(*i, decoded, at);
                            }
                            Err(e @ ReadError::Exception { .. }) => {
                                self.emit(*i, Err(e.to_string()), at)
                            }
                            Err(e) => {
                                self.flush().await;
                                return Err(e.into());
                            }
                        }
                    }
                }
                Err(e @ ReadError::Exception { .. }) => {
                    for (i, _) in &batch.members {
                        self.emit(*i, Err(e.to_string()), at);
                    }
                }
                Err(e) => {
                    self.flush().await;
                    return Err(e.into());
                }
            }
        }
        self.flush().await;
        Ok(())
    }

    fn decode_member(&mut self, block: &Block, i: usize, offset: u16) -> Result<Decoded, String> {
        let Some(p) = self.points[i].register() else {
            return Err(format!("point {} has no register", self.points[i].name));
        };
        let offset = usize::from(offset);
        let decoded = match block {
            Block::Words(words) => words
                .get(offset..)
                .and_then(|w| decode_point_remembered(w, p, &mut self.remembered[i])),
            Block::Bits(bits) => bits
                .get(offset)
                .map(|b| Decoded::Number(f64::from(u8::from(*b)))),
        };
        decoded.ok_or_else(|| {
            format!(
                "register {} ({:?}) on {}: the answer was too short",
                p.address, p.register, self.name
            )
        })
    }

    /// Queues a point's reading; `flush` sends the queue as one message.
    fn emit(&mut self, i: usize, decoded: Result<Decoded, String>, at: SystemTime) {
        let p = &self.points[i];
        let sample = match decoded {
            Ok(Decoded::Number(raw)) => Sample::number(self.index, i, engineering(p, raw), at),
            Ok(Decoded::Text(t)) => Sample::text(self.index, i, t, at),
            Err(e) => {
                debug!(device = %self.name, point = %p.name, error = %e, "Point read failed.");
                Sample::bad(self.index, i, e, at)
            }
        };
        self.pending.push(sample);
    }

    /// Sends the queued readings as one message (one per poll, not one per point or request):
    /// the core sees a poll's values together.
    async fn flush(&mut self) {
        if !self.pending.is_empty() {
            let samples = std::mem::take(&mut self.pending);
            self.send(SourceEvent::Samples(samples)).await;
        }
    }

    /// One read request with its timeout, counted in the statistics.
    async fn read_block(
        &mut self,
        ctx: &mut Context,
        kind: RegisterKind,
        address: u16,
        count: u16,
    ) -> Result<Block, ReadError> {
        let limit = Duration::from_millis(self.timeout_ms);
        let started = Instant::now();
        self.stats.requests += 1;
        let result = request(ctx, kind, address, count, limit).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.latency_sum_ms += ms;
        self.stats.latency_ms_max = self.stats.latency_ms_max.max(ms);
        self.stats.latency_ms_avg = self.latency_sum_ms / self.stats.requests as f64;
        match &result {
            Err(ReadError::Exception { .. }) => self.stats.exceptions += 1,
            Err(ReadError::Transport {
                timed_out: true, ..
            }) => self.stats.timeouts += 1,
            Err(ReadError::Transport { .. }) => self.stats.transport_errors += 1,
            Ok(_) => {}
        }
        result.map_err(|e| e.on(&self.name))
    }

    pub async fn all_bad(&self, reason: &str) {
        crate::sources::report_all_bad(&self.events, self.index, self.points.len(), reason).await;
    }

    pub async fn send(&self, event: SourceEvent) {
        // Only fails when the core has stopped, i.e. during shutdown.
        let _ = self.events.send(event).await;
    }
}

/// One read request of `count` registers (or bits) from `address`, answered within `limit`.
/// The error names no device yet: see [`ReadError::on`].
pub async fn request(
    ctx: &mut Context,
    kind: RegisterKind,
    address: u16,
    count: u16,
    limit: Duration,
) -> Result<Block, ReadError> {
    let request = async {
        Ok::<_, tokio_modbus::Error>(match kind {
            RegisterKind::Holding => ctx
                .read_holding_registers(address, count)
                .await?
                .map(Block::Words),
            RegisterKind::Input => ctx
                .read_input_registers(address, count)
                .await?
                .map(Block::Words),
            RegisterKind::Coil => ctx.read_coils(address, count).await?.map(Block::Bits),
            RegisterKind::DiscreteInput => ctx
                .read_discrete_inputs(address, count)
                .await?
                .map(Block::Bits),
        })
    };
    let transport = |reason: String, timeout: bool, timed_out: bool| ReadError::Transport {
        device: String::new(),
        kind,
        address,
        reason,
        timeout,
        timed_out,
    };
    match timeout(limit, request).await {
        Err(_) => Err(transport(
            format!("no answer within {} ms", limit.as_millis()),
            true,
            true,
        )),
        Ok(Err(e)) => Err(transport(
            describe(&e),
            matches!(e, tokio_modbus::Error::Protocol(_)),
            false,
        )),
        Ok(Ok(Ok(block))) => Ok(block),
        Ok(Ok(Err(code))) => Err(ReadError::Exception {
            device: String::new(),
            kind,
            address,
            code: u8::from(code),
            name: exception_name(code),
        }),
    }
}

/// A transport error as an engineer should read it: short and true. tokio-modbus reports a
/// mismatched answer with a debug dump of it, a connection closed mid-answer as "bytes
/// remaining on stream", and a closed connection with a stale errno ("Success (os error 0)").
pub fn describe(e: &tokio_modbus::Error) -> String {
    use std::io::ErrorKind;
    use tokio_modbus::ProtocolError;
    match e {
        tokio_modbus::Error::Protocol(ProtocolError::HeaderMismatch { message, .. }) => {
            format!(
                "the answer does not match the request ({})",
                fit(message, 80)
            )
        }
        tokio_modbus::Error::Protocol(ProtocolError::FunctionCodeMismatch { request, result }) => {
            let got = match result {
                Ok(r) => format!("function {}", r.function_code().value()),
                Err(x) => format!("exception to function {}", x.function.value()),
            };
            format!(
                "the device answered {got} to a request with function {}",
                request.value()
            )
        }
        tokio_modbus::Error::Transport(io) => {
            let text = io.to_string();
            if io.raw_os_error() == Some(0) || text.contains("os error 0") {
                "the device closed the connection".into()
            } else if text.contains("bytes remaining on stream")
                || io.kind() == ErrorKind::UnexpectedEof
            {
                "the device closed the connection in the middle of an answer".into()
            } else if io.kind() == ErrorKind::ConnectionReset {
                "the device reset the connection".into()
            } else if io.kind() == ErrorKind::BrokenPipe {
                "the connection to the device is broken".into()
            } else if io.kind() == ErrorKind::InvalidData {
                format!(
                    "the device sent a frame that is not Modbus ({})",
                    fit(&text, 80)
                )
            } else {
                fit(&text, 120)
            }
        }
    }
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
fn fit(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Reads `n` holding or input registers from `address` on, in requests of at most 125 (the
/// Modbus limit for function codes 03 and 04), into `words`.
pub async fn read_registers(
    ctx: &mut Context,
    kind: RegisterKind,
    address: u16,
    n: usize,
    limit: Duration,
    words: &mut Vec<u16>,
) -> Result<(), ReadError> {
    words.clear();
    while words.len() < n {
        let count = (n - words.len()).min(125) as u16;
        let at = address.wrapping_add(words.len() as u16);
        match request(ctx, kind, at, count, limit).await? {
            Block::Words(w) if w.len() == usize::from(count) => words.extend(w),
            Block::Words(w) => {
                return Err(ReadError::Transport {
                    device: String::new(),
                    kind,
                    address: at,
                    reason: format!("{} registers returned, {count} asked", w.len()),
                    timeout: true,
                    timed_out: false,
                })
            }
            Block::Bits(_) => {
                return Err(ReadError::Transport {
                    device: String::new(),
                    kind,
                    address: at,
                    reason: "bits returned where registers were asked".into(),
                    timeout: true,
                    timed_out: false,
                })
            }
        }
    }
    Ok(())
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
