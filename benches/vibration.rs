//! Vibration analysis per window beside the bare real FFT of the same window.
//! `cargo bench --bench vibration`; `benches/vibration_numpy.py` compares with numpy/scipy.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use qis_edge::analysis::vibration::bearing::BearingGeometry;
use qis_edge::analysis::vibration::{
    EnvelopeBand, VibrationAnalyzer, VibrationFeatures, VibrationSettings,
};
use realfft::RealFftPlanner;
use std::hint::black_box;

fn signal(n: usize, fs: f64) -> Vec<f64> {
    // Shaft line, an outer-race impact train ringing at 3.2 kHz, and deterministic noise.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|i| {
            let t = i as f64 / fs;
            let phase = (t * 107.36).fract() / 107.36;
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            0.05 * (2.0 * std::f64::consts::PI * 29.95 * t).sin()
                + 0.3 * (-phase * 900.0).exp() * (2.0 * std::f64::consts::PI * 3200.0 * phase).sin()
                + 0.05 * noise
        })
        .collect()
}

fn settings(n: usize, fs: f64, band: EnvelopeBand) -> VibrationSettings {
    let mut s = VibrationSettings::new(fs, n);
    s.shaft_hz = Some(29.95);
    s.bearing = Some(BearingGeometry {
        elements: 9,
        ball_diameter: 0.3126,
        pitch_diameter: 1.537,
        contact_angle_deg: 0.0,
    });
    s.bands_hz = vec![(100.0, 1500.0)];
    s.envelope_band = band;
    s
}

fn vibration(c: &mut Criterion) {
    let fs = 12_000.0;
    let mut group = c.benchmark_group("vibration");
    for n in [4096usize, 16_384, 65_536] {
        let x = signal(n, fs);
        group.throughput(Throughput::Elements(n as u64));
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        let mut input = fft.make_input_vec();
        let mut output = fft.make_output_vec();
        let mut scratch = fft.make_scratch_vec();
        group.bench_with_input(BenchmarkId::new("bare_real_fft", n), &x, |b, x| {
            b.iter(|| {
                input.copy_from_slice(x);
                fft.process_with_scratch(&mut input, &mut output, &mut scratch)
                    .unwrap();
                black_box(output[1])
            })
        });
        for (label, band) in [
            ("full_fixed_band", EnvelopeBand::Fixed(2000.0, 4500.0)),
            ("full_auto_band", EnvelopeBand::Auto),
        ] {
            let mut analyzer = VibrationAnalyzer::new(settings(n, fs, band)).unwrap();
            let mut out = VibrationFeatures::default();
            group.bench_with_input(BenchmarkId::new(label, n), &x, |b, x| {
                b.iter(|| {
                    analyzer.analyze(black_box(x), &mut out).unwrap();
                    black_box(out.velocity_rms_mm_s)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, vibration);
criterion_main!(benches);
