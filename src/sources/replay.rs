//! Waveform files for replay: raw little-endian f32, CSV, WAV.

use std::path::Path;

pub use crate::config::WaveformFormat;

/// Samples and, for WAV, the recorded sample rate.
#[derive(Debug, Clone)]
pub struct Waveform {
    /// The samples.
    pub samples: Vec<f64>,
    /// Sample rate stored in the file, if the format has one.
    pub sample_rate: Option<f64>,
}

/// Reads a waveform file.
pub fn read_waveform(path: &Path, format: WaveformFormat) -> Result<Waveform, String> {
    let name = path.display();
    match format {
        WaveformFormat::F32 => {
            let bytes = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
            if bytes.len() % 4 != 0 {
                return Err(format!(
                    "{name}: {} bytes is not a whole number of f32 samples",
                    bytes.len()
                ));
            }
            let samples = bytes
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            Ok(Waveform {
                samples,
                sample_rate: None,
            })
        }
        WaveformFormat::Csv => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
            let mut samples = Vec::new();
            for (i, line) in text.lines().enumerate() {
                let field = line.split([',', ';', '\t']).next().unwrap_or("").trim();
                if field.is_empty() {
                    continue;
                }
                match field.parse::<f64>() {
                    Ok(v) => samples.push(v),
                    Err(_) if i == 0 => continue,
                    Err(_) => {
                        return Err(format!("{name}: line {}: `{field}` is not a number", i + 1))
                    }
                }
            }
            Ok(Waveform {
                samples,
                sample_rate: None,
            })
        }
        WaveformFormat::Wav => {
            let mut reader = hound::WavReader::open(path).map_err(|e| format!("{name}: {e}"))?;
            let spec = reader.spec();
            let channels = usize::from(spec.channels.max(1));
            let samples: Result<Vec<f64>, _> = match spec.sample_format {
                hound::SampleFormat::Float => reader
                    .samples::<f32>()
                    .step_by(channels)
                    .map(|s| s.map(f64::from))
                    .collect(),
                hound::SampleFormat::Int => {
                    let full_scale = f64::from(1u32 << (spec.bits_per_sample.clamp(1, 32) - 1));
                    reader
                        .samples::<i32>()
                        .step_by(channels)
                        .map(|s| s.map(|v| f64::from(v) / full_scale))
                        .collect()
                }
            };
            Ok(Waveform {
                samples: samples.map_err(|e| format!("{name}: {e}"))?,
                sample_rate: Some(f64::from(spec.sample_rate)),
            })
        }
    }
}
