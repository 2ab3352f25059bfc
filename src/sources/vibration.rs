//! A vibration "device": a waveform analysed window by window, whose features become points.
//!
//! Windows come from a file (replayed at the recorded rate, or faster for tests and
//! commissioning) or live: from a block of registers in which a vibration module or PLC buffers
//! the latest samples (signed 16-bit counts times a scale), read in requests of up to 125
//! registers, or from an OPC UA array variable (`Double[N]` and the like) read in one Read. Analysis runs on the blocking thread pool so a 64k-sample window never stalls the
//! async runtime.

use crate::analysis::vibration::bearing::Verdict;
use crate::analysis::vibration::{VibrationAnalyzer, VibrationFeatures};
use crate::backoff::Backoff;
use crate::config::{
    OpcUaWaveformConfig, RegisterKind, ReplayPace, VibrationConfig, VibrationFeature,
    WaveformBlockConfig,
};
use crate::sources::replay::{read_waveform, WaveformFormat};
use crate::sources::{Quality, Sample, SourceEvent};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_modbus::client::{Context, Reader as _};
use tokio_modbus::Slave;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A downsampled amplitude spectrum and the window's headline results, for dashboards.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpectrumSnapshot {
    /// Hz between consecutive `amplitudes`.
    pub resolution_hz: f64,
    /// Peak-hold downsampled amplitude spectrum from 0 Hz, in the samples' unit.
    pub amplitudes: Vec<f64>,
    /// Velocity RMS, mm/s.
    pub velocity_rms_mm_s: f64,
    /// ISO 10816-3 zone.
    pub iso10816_zone: char,
    /// Bearing verdict, when a bearing is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearing_verdict: Option<Verdict>,
    /// Envelope band used, Hz.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envelope_band_hz: Option<[f64; 2]>,
}

/// Reads one feature out of an analysis.
pub fn feature_value(f: &VibrationFeatures, feature: VibrationFeature) -> Option<f64> {
    let score = |i: usize| {
        f.bearing
            .as_ref()
            .and_then(|b| b.diagnosis.get(i))
            .map(|d| d.score)
            .filter(|s| s.is_finite())
    };
    match feature {
        VibrationFeature::Rms => Some(f.rms),
        VibrationFeature::Peak => Some(f.peak),
        VibrationFeature::PeakToPeak => Some(f.peak_to_peak),
        VibrationFeature::CrestFactor => Some(f.crest_factor),
        VibrationFeature::Kurtosis => Some(f.kurtosis),
        VibrationFeature::Skewness => Some(f.skewness),
        VibrationFeature::VelocityRms => Some(f.velocity_rms_mm_s),
        VibrationFeature::IsoZone => Some(f64::from(f.iso10816_zone as u32 - 'A' as u32 + 1)),
        VibrationFeature::BandRms(n) => f.bands.get(n).map(|b| b.rms),
        VibrationFeature::Harmonic(order) => f
            .harmonics
            .iter()
            .find(|h| h.order == order)
            .map(|h| h.amplitude),
        VibrationFeature::OuterRaceScore => score(0),
        VibrationFeature::InnerRaceScore => score(1),
        VibrationFeature::BallScore => score(2),
        VibrationFeature::CageScore => score(3),
        VibrationFeature::BearingVerdict => f.bearing.as_ref().map(|b| match b.verdict {
            Verdict::None => 0.0,
            Verdict::OuterRace => 1.0,
            Verdict::InnerRace => 2.0,
            Verdict::Ball => 3.0,
            Verdict::Cage => 4.0,
        }),
    }
}

/// Peak-hold downsampling to at most `points` values.
pub fn downsample(spectrum: &[f64], resolution_hz: f64, points: usize) -> (f64, Vec<f64>) {
    if points == 0 || spectrum.is_empty() {
        return (resolution_hz, Vec::new());
    }
    let group = spectrum.len().div_ceil(points).max(1);
    let values = spectrum
        .chunks(group)
        .map(|c| c.iter().copied().fold(0.0, f64::max))
        .collect();
    (resolution_hz * group as f64, values)
}

/// Where windows come from.
enum Acquisition {
    /// A file, replayed window after window.
    File {
        samples: Arc<Vec<f64>>,
        position: usize,
        repeat: bool,
    },
    /// A block of registers read as one window.
    Modbus {
        block: WaveformBlockConfig,
        ctx: Option<Context>,
    },
    /// An OPC UA array variable read as one window.
    OpcUa(Box<OpcUaWindow>),
}

/// An OPC UA array variable and the session it is read through.
struct OpcUaWindow {
    waveform: OpcUaWaveformConfig,
    node: opcua::types::NodeId,
    pki: PathBuf,
    device: String,
    connection: Option<crate::sources::opcua::Connection>,
}

impl Acquisition {
    /// Fills `window` with the next `n` samples. Ok(false) when a file has ended.
    async fn next_window(&mut self, n: usize, window: &mut Vec<f64>) -> Result<bool, String> {
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
            Acquisition::Modbus { block, ctx } => {
                let limit = Duration::from_millis(block.timeout_ms);
                if ctx.is_none() {
                    let target = (block.host.as_str(), block.port);
                    let addr = match timeout(limit, tokio::net::lookup_host(target)).await {
                        Ok(Ok(mut a)) => a
                            .next()
                            .ok_or_else(|| format!("{} resolved to no address", block.host))?,
                        Ok(Err(e)) => return Err(format!("cannot resolve {}: {e}", block.host)),
                        Err(_) => return Err(format!("resolving {} timed out", block.host)),
                    };
                    let connected = timeout(
                        limit,
                        tokio_modbus::client::tcp::connect_slave(addr, Slave(block.unit_id)),
                    )
                    .await
                    .map_err(|_| format!("connecting to {addr} timed out"))?
                    .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
                    *ctx = Some(connected);
                }
                let Some(c) = ctx.as_mut() else {
                    return Err("not connected".into());
                };
                let mut offset = 0usize;
                while offset < n {
                    let count = (n - offset).min(125) as u16;
                    let address = block.address.wrapping_add(offset as u16);
                    let request = async {
                        if block.register == RegisterKind::Input {
                            c.read_input_registers(address, count).await
                        } else {
                            c.read_holding_registers(address, count).await
                        }
                    };
                    let words = match timeout(limit, request).await {
                        Ok(Ok(Ok(words))) if words.len() == usize::from(count) => words,
                        Ok(Ok(Ok(words))) => {
                            return Err(format!(
                                "register {address}: {} registers returned, {count} asked",
                                words.len()
                            ))
                        }
                        Ok(Ok(Err(code))) => {
                            return Err(format!(
                                "register {address}: device answered exception {}",
                                u8::from(code)
                            ))
                        }
                        Ok(Err(e)) => {
                            *ctx = None;
                            return Err(format!("register {address}: {e}"));
                        }
                        Err(_) => {
                            *ctx = None;
                            return Err(format!(
                                "register {address}: no answer within {} ms",
                                block.timeout_ms
                            ));
                        }
                    };
                    window.extend(words.iter().map(|w| f64::from(*w as i16) * block.scale));
                    offset += usize::from(count);
                }
                Ok(true)
            }
            Acquisition::OpcUa(w) => {
                let OpcUaWindow {
                    waveform,
                    node,
                    pki,
                    device,
                    connection,
                } = &mut **w;
                use crate::sources::opcua::{numbers, LinkEvent};
                use opcua::types::{AttributeId, ReadValueId, TimestampsToReturn};
                let limit = Duration::from_millis(waveform.connection.timeout_ms);
                if connection.is_none() {
                    let mut opened = crate::sources::opcua::open(&waveform.connection, pki, device)
                        .await
                        .map_err(|e| e.to_string())?;
                    // Wait for the session to come up, or for why it does not.
                    match timeout(limit, opened.events.recv()).await {
                        Ok(Some(LinkEvent::Up)) => *connection = Some(opened),
                        Ok(Some(
                            LinkEvent::Down(r) | LinkEvent::Retrying(r) | LinkEvent::Ended(r),
                        )) => return Err(r),
                        Ok(None) => return Err("session task ended".into()),
                        Err(_) => {
                            return Err(format!("no session within {} ms", limit.as_millis()))
                        }
                    }
                }
                let Some(c) = connection.as_mut() else {
                    return Err("not connected".into());
                };
                // A lost link makes the next read fail; a session that stopped is opened anew.
                while let Ok(event) = c.events.try_recv() {
                    if let LinkEvent::Ended(reason) = event {
                        *connection = None;
                        return Err(reason);
                    }
                }
                let read = ReadValueId {
                    node_id: node.clone(),
                    attribute_id: AttributeId::Value as u32,
                    ..Default::default()
                };
                let result = timeout(
                    limit,
                    c.session.read(&[read], TimestampsToReturn::Neither, 0.0),
                )
                .await
                .map_err(|_| {
                    format!(
                        "{}: no answer within {} ms",
                        waveform.node,
                        limit.as_millis()
                    )
                })?
                .map_err(|e| format!("{}: read failed: {e}", waveform.node))?;
                let value = result
                    .first()
                    .ok_or_else(|| format!("{}: no value returned", waveform.node))?;
                if let Some(status) = value.status.filter(|s| s.is_bad()) {
                    return Err(format!("{}: the server reports {status}", waveform.node));
                }
                let variant = value
                    .value
                    .as_ref()
                    .ok_or_else(|| format!("{}: the server sent no value", waveform.node))?;
                numbers(variant, window).map_err(|e| format!("{}: {e}", waveform.node))?;
                if window.len() < n {
                    return Err(format!(
                        "{}: the array holds {} samples, fewer than the window of {n}",
                        waveform.node,
                        window.len()
                    ));
                }
                window.truncate(n);
                window.iter_mut().for_each(|v| *v *= waveform.scale);
                Ok(true)
            }
        }
    }
}

/// Acquires and analyses one vibration device until cancelled.
pub struct VibrationSource {
    index: usize,
    config: VibrationConfig,
    pki: PathBuf,
    events: mpsc::Sender<SourceEvent>,
}

impl VibrationSource {
    /// A source for device number `index`, with the gateway's OPC UA PKI folder.
    pub fn new(
        index: usize,
        config: VibrationConfig,
        pki: PathBuf,
        events: mpsc::Sender<SourceEvent>,
    ) -> Self {
        Self {
            index,
            config,
            pki,
            events,
        }
    }

    /// Opens the waveform source and plans the analysis.
    async fn prepare(&self) -> Result<(Acquisition, VibrationAnalyzer), String> {
        let n = self.config.window;
        match (&self.config.file, &self.config.modbus) {
            (Some(path), _) => {
                let path = path.clone();
                let format = self
                    .config
                    .format
                    .or_else(|| WaveformFormat::from_path(&path))
                    .ok_or_else(|| format!("{}: unknown format", path.display()))?;
                let shown = path.display().to_string();
                let wave = tokio::task::spawn_blocking(move || read_waveform(&path, format))
                    .await
                    .map_err(|e| e.to_string())??;
                let fs = self
                    .config
                    .sample_rate
                    .or(wave.sample_rate)
                    .ok_or("no sample rate for this file")?;
                if wave.samples.len() < n {
                    return Err(format!(
                        "{shown}: {} samples, fewer than one window of {n}",
                        wave.samples.len()
                    ));
                }
                let analyzer =
                    VibrationAnalyzer::new(self.config.settings(fs)).map_err(|e| e.to_string())?;
                info!(device = %self.config.name, samples = wave.samples.len(), "Replaying waveform.");
                Ok((
                    Acquisition::File {
                        samples: Arc::new(wave.samples),
                        position: 0,
                        repeat: self.config.repeat,
                    },
                    analyzer,
                ))
            }
            (None, Some(block)) => {
                let fs = self
                    .config
                    .sample_rate
                    .ok_or("no sample rate for the Modbus waveform")?;
                let analyzer =
                    VibrationAnalyzer::new(self.config.settings(fs)).map_err(|e| e.to_string())?;
                Ok((
                    Acquisition::Modbus {
                        block: block.clone(),
                        ctx: None,
                    },
                    analyzer,
                ))
            }
            (None, None) => {
                let Some(waveform) = &self.config.opcua else {
                    return Err("no waveform source configured".into());
                };
                let fs = self
                    .config
                    .sample_rate
                    .ok_or("no sample rate for the OPC UA waveform")?;
                let node = waveform
                    .node
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{}` is not a node id", waveform.node))?;
                let analyzer =
                    VibrationAnalyzer::new(self.config.settings(fs)).map_err(|e| e.to_string())?;
                Ok((
                    Acquisition::OpcUa(Box::new(OpcUaWindow {
                        waveform: (**waveform).clone(),
                        node,
                        pki: self.pki.clone(),
                        device: self.config.name.clone(),
                        connection: None,
                    })),
                    analyzer,
                ))
            }
        }
    }

    /// Runs until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
        let (mut acquisition, mut analyzer) = loop {
            match self.prepare().await {
                Ok(ready) => break ready,
                Err(reason) => {
                    warn!(device = %self.config.name, error = %reason, "Cannot open the waveform source; retrying.");
                    self.link(false, Some(reason.clone())).await;
                    self.all_bad(&reason).await;
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => continue,
                    }
                }
            }
        };
        let n = self.config.window;
        let fs = analyzer.settings().sample_rate;
        let pace = match (self.config.replay, &acquisition) {
            (ReplayPace::Realtime, Acquisition::File { .. }) => {
                Duration::from_secs_f64(n as f64 / fs)
            }
            _ => Duration::from_millis(self.config.interval_ms),
        };
        let mut ticker = tokio::time::interval(pace);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut features = VibrationFeatures::default();
        let mut window: Vec<f64> = Vec::with_capacity(n);
        let mut up: Option<bool> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            match acquisition.next_window(n, &mut window).await {
                Ok(true) => {
                    if up != Some(true) {
                        up = Some(true);
                        self.link(true, None).await;
                    }
                }
                Ok(false) => continue,
                Err(reason) => {
                    if up != Some(false) {
                        warn!(device = %self.config.name, error = %reason, "Waveform acquisition failed; retrying.");
                        up = Some(false);
                        self.link(false, Some(reason.clone())).await;
                    }
                    self.all_bad(&reason).await;
                    continue;
                }
            }
            let data = std::mem::take(&mut window);
            let result = tokio::task::spawn_blocking(move || {
                let r = analyzer.analyze(&data, &mut features);
                (analyzer, features, data, r)
            })
            .await;
            let Ok((a, f, data, r)) = result else { break };
            analyzer = a;
            features = f;
            window = data;
            let at = SystemTime::now();
            if let Err(e) = r {
                self.all_bad(&e.to_string()).await;
                continue;
            }
            self.publish(&features, at).await;
        }
    }

    async fn publish(&self, features: &VibrationFeatures, at: SystemTime) {
        for (i, feature) in self.config.features.iter().enumerate() {
            let value = feature_value(features, *feature);
            let sample = Sample {
                device: self.index,
                point: i,
                text: None,
                quality: if value.is_some() {
                    Quality::Good
                } else {
                    Quality::Bad
                },
                error: value
                    .is_none()
                    .then(|| "feature not available for this window".to_string()),
                value,
                at,
            };
            let _ = self.events.send(SourceEvent::Sample(sample)).await;
        }
        if self.config.spectrum_points > 0 {
            let (resolution_hz, amplitudes) = downsample(
                &features.spectrum,
                features.resolution_hz,
                self.config.spectrum_points,
            );
            let snapshot = SpectrumSnapshot {
                resolution_hz,
                amplitudes,
                velocity_rms_mm_s: features.velocity_rms_mm_s,
                iso10816_zone: features.iso10816_zone,
                bearing_verdict: features.bearing.as_ref().map(|b| b.verdict),
                envelope_band_hz: features.bearing.as_ref().map(|b| b.envelope_band_hz),
            };
            let _ = self
                .events
                .send(SourceEvent::Spectrum {
                    device: self.index,
                    snapshot: Box::new(snapshot),
                    at,
                })
                .await;
        }
    }

    async fn link(&self, up: bool, error: Option<String>) {
        crate::sources::report_link(&self.events, self.index, up, error).await;
    }

    async fn all_bad(&self, reason: &str) {
        crate::sources::report_all_bad(&self.events, self.index, self.config.points.len(), reason)
            .await;
    }
}
