//! The features of one window: time statistics, the Hann power spectrum (one FFT of the whole
//! window, or Welch segments), band and velocity RMS, peaks and harmonics.

use super::*;

impl VibrationAnalyzer {
    pub(super) fn time_features(&self, x: &[f64], mean: f64, out: &mut VibrationFeatures) {
        let n = x.len() as f64;
        // Four independent accumulators per sum: the additions no longer wait on each other,
        // and the compiler can use vector registers.
        let (mut m2, mut m3, mut m4) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
        let (mut lo, mut hi) = ([f64::INFINITY; 4], [f64::NEG_INFINITY; 4]);
        let chunks = x.chunks_exact(4);
        let tail = chunks.remainder();
        for chunk in chunks.chain([tail]) {
            for (j, &v) in chunk.iter().enumerate() {
                let d = v - mean;
                let d2 = d * d;
                m2[j] += d2;
                m3[j] += d2 * d;
                m4[j] += d2 * d2;
                lo[j] = lo[j].min(v);
                hi[j] = hi[j].max(v);
            }
        }
        let (lo, hi) = (
            lo.iter().copied().fold(f64::INFINITY, f64::min),
            hi.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let peak = (hi - mean).max(mean - lo);
        let total = |a: [f64; 4]| (a[0] + a[1]) + (a[2] + a[3]);
        let (m2, m3, m4) = (total(m2) / n, total(m3) / n, total(m4) / n);
        out.rms = m2.sqrt();
        out.peak = peak;
        out.peak_to_peak = hi - lo;
        out.crest_factor = if out.rms > 0.0 { peak / out.rms } else { 0.0 };
        out.kurtosis = if m2 > 0.0 { m4 / (m2 * m2) } else { 0.0 };
        out.skewness = if m2 > 0.0 { m3 / m2.powf(1.5) } else { 0.0 };
    }

    /// |X_w|² per bin, averaged over the Welch segments (one segment = the whole window).
    pub(super) fn power_spectrum(&mut self, x: &[f64], mean: f64) {
        self.window_spectrum_ready = false;
        if self.segment == x.len() {
            self.window_power(x, mean);
            return;
        }
        let l = self.segment;
        let step = (l / 2).max(1);
        self.power.iter_mut().for_each(|p| *p = 0.0);
        let mut count = 0usize;
        let mut start = 0usize;
        while start + l <= x.len() {
            let seg = &x[start..start + l];
            let mean = sum(seg) / l as f64;
            for (i, b) in self.real_buf[..l].iter_mut().enumerate() {
                *b = (seg[i] - mean) * self.hann[i];
            }
            let spec = &mut self.spec_buf[..l / 2 + 1];
            // Lengths come from the plan itself, so the transform cannot fail.
            let _ = self.segment_fft.process_with_scratch(
                &mut self.real_buf[..l],
                spec,
                &mut self.scratch,
            );
            for (p, c) in self.power.iter_mut().zip(spec.iter()) {
                *p += c.norm_sqr();
            }
            count += 1;
            start += step;
        }
        let count = count.max(1) as f64;
        self.power.iter_mut().for_each(|p| *p /= count);
    }

    /// The spectrum of the whole window, its `mean` removed, without a window function.
    pub(super) fn window_spectrum(&mut self, x: &[f64], mean: f64) {
        for (b, v) in self.real_buf.iter_mut().zip(x) {
            *b = v - mean;
        }
        // Lengths come from the plan itself, so the transform cannot fail.
        let _ = self.window_fft.process_with_scratch(
            &mut self.real_buf,
            &mut self.full_spectrum,
            &mut self.scratch,
        );
        self.window_spectrum_ready = true;
    }

    /// The Hann power spectrum of one whole window from one FFT of it without a window
    /// function, which the demodulation needs too: the periodic Hann window is
    /// ½ − ¼e^{+jθ} − ¼e^{−jθ}, so X_w[k] = ½X[k] − ¼(X[k−1] + X[k+1]), the spectrum's
    /// neighbours beyond its ends being the conjugates of the real signal's mirror bins.
    fn window_power(&mut self, x: &[f64], mean: f64) {
        self.window_spectrum(x, mean);
        let s = &self.full_spectrum;
        let last = s.len() - 1;
        for (k, p) in self.power.iter_mut().enumerate() {
            let below = if k == 0 { s[1].conj() } else { s[k - 1] };
            let above = if k == last {
                s[last - 1].conj()
            } else {
                s[k + 1]
            };
            *p = (s[k] * 0.5 - (below + above) * 0.25).norm_sqr();
        }
    }

    pub(super) fn spectral_features(&self, out: &mut VibrationFeatures) {
        let s = &self.settings;
        let l = self.segment as f64;
        let df = s.sample_rate / l;
        let (s1, s2) = (self.hann_sum, self.hann_square_sum);
        out.resolution_hz = df;
        out.spectrum.clear();
        out.spectrum
            .extend(self.power.iter().enumerate().map(|(k, p)| {
                let a = p.sqrt() / s1;
                if k == 0 {
                    a
                } else {
                    2.0 * a
                }
            }));
        let band_power = |lo: f64, hi: f64, weight: &dyn Fn(f64) -> f64| -> f64 {
            let first = ((lo / df).ceil() as usize).max(1);
            let last = ((hi / df).floor() as usize).min(self.power.len() - 1);
            (first..=last)
                .map(|k| self.power[k] * weight(k as f64 * df))
                .sum::<f64>()
                * 2.0
                / (l * s2)
        };
        let si = s.unit.to_si();
        let (vlo, vhi) = s.velocity_band_hz;
        let velocity = band_power(vlo, vhi, &|f| {
            let v = si / (2.0 * std::f64::consts::PI * f);
            v * v
        });
        out.velocity_rms_mm_s = 1000.0 * velocity.sqrt();
        out.iso10816_zone = iso10816_zone(out.velocity_rms_mm_s, s.machine_group, s.foundation);
        out.bands.clear();
        for &(lo, hi) in &s.bands_hz {
            out.bands.push(BandRms {
                lo_hz: lo,
                hi_hz: hi,
                rms: band_power(lo, hi, &|_| 1.0).sqrt(),
            });
        }
        find_peaks(&out.spectrum, df, s.peaks, &mut out.peaks);
        out.harmonics.clear();
        if let Some(shaft) = s.shaft_hz {
            for order in 1..=s.harmonics {
                let f = shaft * f64::from(order);
                let tol = (s.harmonic_tolerance * f).max(df);
                if let Some((k, a)) = max_in(&out.spectrum, df, f - tol, f + tol) {
                    out.harmonics.push(Harmonic {
                        order,
                        frequency_hz: k as f64 * df,
                        amplitude: a,
                    });
                }
            }
        }
    }
}

/// Σx with four independent accumulators (a serial sum waits on every addition).
pub(super) fn sum(x: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = x.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for j in 0..4 {
            acc[j] += c[j];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Largest value (and its bin) in [lo, hi] Hz.
pub(super) fn max_in(values: &[f64], df: f64, lo: f64, hi: f64) -> Option<(usize, f64)> {
    let first = (lo / df).ceil().max(0.0) as usize;
    let last = ((hi / df).floor() as usize).min(values.len().saturating_sub(1));
    (first..=last)
        .filter(|k| *k < values.len())
        .map(|k| (k, values[k]))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The `count` largest local maxima (above 1 Hz), with frequencies interpolated by a parabola
/// through the log-amplitudes of the peak bin and its neighbours. Only the survivors are
/// interpolated (logarithms are the expensive part).
pub fn find_peaks(spectrum: &[f64], df: f64, count: usize, out: &mut Vec<Peak>) {
    out.clear();
    if spectrum.len() < 3 || count == 0 {
        return;
    }
    // While collecting, `frequency_hz` holds the bin index.
    let mut smallest = f64::NEG_INFINITY;
    let first = ((1.0 / df).ceil() as usize).max(1);
    for k in first..spectrum.len() - 1 {
        let b = spectrum[k];
        // Once `count` are kept, most bins are below the smallest of them: that test first
        // (predictable), the neighbours only for the rest.
        if b <= smallest || !(b > spectrum[k - 1] && b >= spectrum[k + 1] && b > 0.0) {
            continue;
        }
        let candidate = Peak {
            frequency_hz: k as f64,
            amplitude: b,
        };
        if out.len() < count {
            out.push(candidate);
        } else if let Some(min) = out
            .iter_mut()
            .min_by(|x, y| x.amplitude.total_cmp(&y.amplitude))
        {
            *min = candidate;
        }
        if out.len() == count {
            smallest = out
                .iter()
                .map(|p| p.amplitude)
                .fold(f64::INFINITY, f64::min);
        }
    }
    for p in out.iter_mut() {
        let k = p.frequency_hz as usize;
        let (a, b, c) = (spectrum[k - 1], spectrum[k], spectrum[k + 1]);
        let delta = if a > 0.0 && c > 0.0 {
            let (la, lb, lc) = (a.ln(), b.ln(), c.ln());
            let denom = la - 2.0 * lb + lc;
            if denom != 0.0 {
                0.5 * (la - lc) / denom
            } else {
                0.0
            }
        } else {
            0.0
        };
        p.frequency_hz = (k as f64 + delta) * df;
    }
    out.sort_by(|x, y| y.amplitude.total_cmp(&x.amplitude));
}
