//! Vibration analysis per window beside the bare real FFT of the same window, and beside
//! numpy/scipy running the same pipeline (`benches/vibration_numpy.py`, with the Python that
//! `QIS_BENCH_PYTHON` names), side by side in alternating rounds, 4 096 to 262 144 samples.
//! `cargo bench --bench vibration`.

mod side;

use qis_edge::analysis::vibration::bearing::BearingGeometry;
use qis_edge::analysis::vibration::{
    EnvelopeBand, VibrationAnalyzer, VibrationFeatures, VibrationSettings,
};
use realfft::RealFftPlanner;
use side::{compare, Side};
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

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

/// Samples analysed per side and round (at least one window).
const SAMPLES_PER_ROUND: usize = 1 << 22;

/// numpy/scipy in a child process: one request per round, answered when done.
struct Numpy {
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
    _child: std::process::Child,
}

impl Numpy {
    fn start() -> Option<Numpy> {
        let python = std::env::var("QIS_BENCH_PYTHON").ok()?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/vibration_numpy.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start benches/vibration_numpy.py");
        Some(Numpy {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            _child: child,
        })
    }

    fn run(&mut self, n: usize, reps: usize) {
        writeln!(self.stdin, "{n} {reps}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "done", "numpy side failed");
    }
}

fn main() {
    let fs = 12_000.0;
    let mut numpy = Numpy::start();
    if numpy.is_none() {
        println!("QIS_BENCH_PYTHON not set: no numpy side (see benches/vibration_numpy.py)");
    }
    for n in [4096usize, 16_384, 65_536, 131_072, 262_144] {
        let x = signal(n, fs);
        let reps = (SAMPLES_PER_ROUND / n).max(1);
        let items = (reps * n) as u64;
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        let mut input = fft.make_input_vec();
        let mut output = fft.make_output_vec();
        let mut scratch = fft.make_scratch_vec();
        let mut fixed =
            VibrationAnalyzer::new(settings(n, fs, EnvelopeBand::Fixed(2000.0, 4500.0))).unwrap();
        let mut auto = VibrationAnalyzer::new(settings(n, fs, EnvelopeBand::Auto)).unwrap();
        let (mut out_fixed, mut out_auto) =
            (VibrationFeatures::default(), VibrationFeatures::default());
        let mut sides = vec![
            Side::new("bare real FFT", || {
                for _ in 0..reps {
                    input.copy_from_slice(&x);
                    fft.process_with_scratch(&mut input, &mut output, &mut scratch)
                        .unwrap();
                    black_box(output[1]);
                }
                items
            }),
            Side::new("analysis, fixed envelope band", || {
                for _ in 0..reps {
                    fixed.analyze(black_box(&x), &mut out_fixed).unwrap();
                    black_box(out_fixed.velocity_rms_mm_s);
                }
                items
            }),
            Side::new("analysis, automatic band search", || {
                for _ in 0..reps {
                    auto.analyze(black_box(&x), &mut out_auto).unwrap();
                    black_box(out_auto.velocity_rms_mm_s);
                }
                items
            }),
        ];
        if let Some(py) = numpy.as_mut() {
            // Fewer windows for numpy: it is the slow side; ns per sample compares the same.
            let py_reps = (reps / 4).max(1);
            sides.push(Side::new("numpy/scipy, fixed band", move || {
                py.run(n, py_reps);
                (py_reps * n) as u64
            }));
        }
        let ratios = compare(
            &format!("vibration window of {n} samples, per sample"),
            5,
            &mut sides,
        );
        if let Some(numpy) = ratios.get(3) {
            println!(
                "  numpy/scipy ÷ fixed band: {:.1}× slower",
                numpy / ratios[1]
            );
        }
    }
}
