"""Reference values for the vibration analysis, computed independently with numpy and scipy.

Writes the test signals as raw little-endian f32 (tests/vectors/vib_*.f32), so both sides
analyse exactly the same samples, and tests/vectors/vibration_reference.json with what numpy
and scipy compute on them: time statistics (scipy.stats), the Hann amplitude spectrum and its
peaks, Welch averaging, band and velocity RMS, and the squared envelope spectrum through
scipy.signal.hilbert. The conventions are the README's ("Vibration analysis").

Run from the repository root: .venv/bin/python tests/peers/vibration_reference.py
"""

import json
import numpy as np
import scipy.signal
import scipy.stats

G = 9.80665
OUT = "tests/vectors"


def hann(n):
    return scipy.signal.get_window("hann", n)  # periodic (fftbins=True)


def power(x, seg):
    w = hann(seg)
    p = np.zeros(seg // 2 + 1)
    count = 0
    for start in range(0, len(x) - seg + 1, seg // 2):
        s = x[start : start + seg]
        p += np.abs(np.fft.rfft((s - s.mean()) * w)) ** 2
        count += 1
    return p / count, w


def amplitude(p, w):
    a = 2 * np.sqrt(p) / w.sum()
    a[0] /= 2
    return a


def peaks(a, df, count):
    found = []
    first = max(int(np.ceil(1.0 / df)), 1)
    for k in range(first, len(a) - 1):
        if a[k] > a[k - 1] and a[k] >= a[k + 1] and a[k] > 0:
            delta = 0.0
            if a[k - 1] > 0 and a[k + 1] > 0:
                la, lb, lc = np.log(a[k - 1]), np.log(a[k]), np.log(a[k + 1])
                d = la - 2 * lb + lc
                delta = 0.5 * (la - lc) / d if d != 0 else 0.0
            found.append({"frequency_hz": (k + delta) * df, "amplitude": a[k]})
    found.sort(key=lambda p: -p["amplitude"])
    return found[:count]


def band_rms(p, w, df, lo, hi, weight=None):
    seg = len(w)
    k = np.arange(len(p))
    sel = (k >= max(int(np.ceil(lo / df)), 1)) & (k <= min(int(np.floor(hi / df)), len(p) - 1))
    f = k[sel] * df
    vals = p[sel] if weight is None else p[sel] * weight(f)
    return np.sqrt(vals.sum() * 2 / (seg * (w**2).sum()))


def analyse(name, x, fs, seg=None, envelope=None):
    x = x.astype(np.float64)
    n = len(x)
    seg = seg or n
    d = x - x.mean()
    p, w = power(x, seg)
    df = fs / seg
    a = amplitude(p, w)
    ref = {
        "name": name,
        "file": f"vib_{name}.f32",
        "sample_rate": fs,
        "window": n,
        "welch_segment": seg if seg != n else None,
        "rms": float(np.sqrt(np.mean(d**2))),
        "peak": float(np.max(np.abs(d))),
        "peak_to_peak": float(x.max() - x.min()),
        "kurtosis": float(scipy.stats.kurtosis(x, fisher=False, bias=True)),
        "skewness": float(scipy.stats.skew(x, bias=True)),
        "peaks": peaks(a, df, 5),
        "velocity_rms_mm_s": float(1000 * band_rms(p, w, df, 10, 1000, lambda f: (G / (2 * np.pi * f)) ** 2)),
        "band_rms": {"lo": 100.0, "hi": 1500.0, "rms": float(band_rms(p, w, df, 100, 1500))},
    }
    ref["crest_factor"] = ref["peak"] / ref["rms"]
    if envelope:
        lo, hi = envelope
        X = np.fft.rfft(d)
        f = np.fft.rfftfreq(n, 1 / fs)
        X[(f < lo) | (f >= hi)] = 0
        analytic = scipy.signal.hilbert(np.fft.irfft(X, n))
        e = np.abs(analytic) ** 2
        ea = amplitude(np.abs(np.fft.rfft((e - e.mean()) * hann(n))) ** 2, hann(n))
        ref["envelope_band_hz"] = [lo, hi]
        ref["envelope_peaks"] = peaks(ea, fs / n, 5)
    x.astype("<f4").tofile(f"{OUT}/vib_{name}.f32")
    return ref


def main():
    rng = np.random.default_rng(20261122)
    refs = []
    fs, n = 10000.0, 16384
    t = np.arange(n) / fs
    sines = 0.5 * np.sin(2 * np.pi * 50 * t) + 0.2 * np.sin(2 * np.pi * 120.3 * t + 0.4) \
        + 0.05 * np.sin(2 * np.pi * 1000 * t) + 0.01 * rng.standard_normal(n) + 0.02
    sines = sines.astype(np.float32)
    refs.append(analyse("sines", sines, fs))
    refs.append(analyse("sines_welch", sines, fs, seg=4096))

    # Outer-race impacts at 107.36 Hz ringing a 3.2 kHz resonance, plus shaft 1x and noise.
    fs, n = 12000.0, 32768
    t = np.arange(n) / fs
    impacts = np.zeros(n)
    for t0 in np.arange(0.003, n / fs, 1 / 107.36):
        tau = t - t0
        m = tau >= 0
        impacts[m] += np.exp(-tau[m] * 900) * np.sin(2 * np.pi * 3200 * tau[m])
    bearing = 0.3 * impacts + 0.05 * np.sin(2 * np.pi * 29.95 * t) + 0.03 * rng.standard_normal(n)
    refs.append(analyse("bearing", bearing.astype(np.float32), fs, envelope=(2000.0, 4500.0)))
    with open(f"{OUT}/vibration_reference.json", "w", encoding="utf-8") as fh:
        json.dump({"generator": f"numpy {np.__version__}, scipy {scipy.__version__}", "signals": refs}, fh, indent=1)


if __name__ == "__main__":
    main()
