//! A vibration "device": a waveform analysed window by window, whose features become points.
//!
//! Windows come from a file (replayed at the recorded rate, or faster for tests and
//! commissioning) or live: from a block of registers in which a vibration module or PLC buffers
//! the latest samples (signed 16-bit counts times a scale), read in requests of up to 125
//! registers, or from an OPC UA array variable (`Double[N]` and the like) read in one Read. Analysis runs on the blocking thread pool so a 64k-sample window never stalls the
//! async runtime.

mod acquire;
mod features;

pub use features::{downsample, feature_value, EnvelopeSnapshot, SpectrumSnapshot};

use crate::analysis::vibration::{VibrationAnalyzer, VibrationFeatures};
use crate::backoff::Backoff;
use crate::config::{ReplayPace, VibrationConfig, WaveformSource};
use crate::sources::replay::{read_waveform, WaveformFormat};
use crate::sources::{Quality, Sample, SourceEvent};
use acquire::{Acquisition, ModbusWindow, OpcUaWindow};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

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
        let (acquisition, fs) = match self.config.source() {
            Some(WaveformSource::File { path, format }) => self.open_file(path, format).await?,
            Some(WaveformSource::Modbus(block)) => {
                let window = ModbusWindow {
                    block: block.clone(),
                    device: self.config.name.clone(),
                    ctx: None,
                    words: Vec::with_capacity(n),
                };
                (
                    Acquisition::Modbus(Box::new(window)),
                    self.sample_rate("Modbus")?,
                )
            }
            Some(WaveformSource::OpcUa(waveform)) => {
                let node = waveform
                    .node
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{}` is not a node id", waveform.node))?;
                let window = OpcUaWindow {
                    waveform: waveform.clone(),
                    node,
                    pki: self.pki.clone(),
                    device: self.config.name.clone(),
                    connection: None,
                };
                (
                    Acquisition::OpcUa(Box::new(window)),
                    self.sample_rate("OPC UA")?,
                )
            }
            None => return Err("no waveform source configured".into()),
        };
        let analyzer =
            VibrationAnalyzer::new(self.config.settings(fs)).map_err(|e| e.to_string())?;
        Ok((acquisition, analyzer))
    }

    /// The configured sample rate of a live waveform from `what`.
    fn sample_rate(&self, what: &str) -> Result<f64, String> {
        self.config
            .sample_rate
            .ok_or_else(|| format!("no sample rate for the {what} waveform"))
    }

    /// Reads a recording to replay, with its sample rate (configured, or from the file).
    async fn open_file(
        &self,
        path: &Path,
        format: Option<WaveformFormat>,
    ) -> Result<(Acquisition, f64), String> {
        let n = self.config.window;
        let path = path.to_path_buf();
        let format = format
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
        info!(device = %self.config.name, samples = wave.samples.len(), "Replaying waveform.");
        let file = Acquisition::File {
            samples: Arc::new(wave.samples),
            position: 0,
            repeat: self.config.repeat,
        };
        Ok((file, fs))
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
                Err(e) => {
                    let reason = e.to_string();
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
        for (i, point) in self.config.points.iter().enumerate() {
            let value = point.feature().and_then(|f| feature_value(features, f));
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
                iso10816_boundaries_mm_s: crate::analysis::vibration::iso10816_boundaries(
                    self.config.machine_group,
                    self.config.foundation,
                ),
                shaft_hz: self.config.rpm.map(|rpm| rpm / 60.0),
                envelope: features.bearing.as_ref().map(|b| {
                    let (resolution_hz, amplitudes) = downsample(
                        &b.envelope_spectrum,
                        b.envelope_resolution_hz,
                        self.config.spectrum_points,
                    );
                    EnvelopeSnapshot {
                        resolution_hz,
                        amplitudes,
                        bpfo_hz: b.bpfo_hz,
                        bpfi_hz: b.bpfi_hz,
                        bsf_hz: b.bsf_hz,
                        ftf_hz: b.ftf_hz,
                        diagnosis: b.diagnosis.clone(),
                    }
                }),
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
