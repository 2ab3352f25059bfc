"""The vibration pipeline in numpy/scipy, a side of `cargo bench --bench vibration`, which
starts this script with the Python that `QIS_BENCH_PYTHON` names:

    python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install -r benches/requirements.txt
    QIS_BENCH_PYTHON=/tmp/bench-venv/bin/python cargo bench --bench vibration

The numpy pipeline does what `full_fixed_band` does: time statistics, Hann amplitude
spectrum and its peaks, velocity and band RMS, harmonics, band-pass + Hilbert envelope,
squared envelope spectrum and the defect scores. It is vectorised numpy throughout.
"""

import numpy as np
import scipy.signal
import scipy.stats

FS = 12000.0
G = 9.80665


def signal(n):
    t = np.arange(n) / FS
    phase = np.mod(t * 107.36, 1.0) / 107.36
    rng = np.random.default_rng(1)
    return (0.05 * np.sin(2 * np.pi * 29.95 * t)
            + 0.3 * np.exp(-phase * 900) * np.sin(2 * np.pi * 3200 * phase)
            + 0.05 * (rng.random(n) - 0.5))


def analyse(x):
    n = len(x)
    d = x - x.mean()
    rms = np.sqrt(np.mean(d * d))
    kurt = scipy.stats.kurtosis(x, fisher=False)
    skew = scipy.stats.skew(x)
    w = scipy.signal.get_window("hann", n)
    p = np.abs(np.fft.rfft(d * w)) ** 2
    a = 2 * np.sqrt(p) / w.sum()
    f = np.fft.rfftfreq(n, 1 / FS)
    local = np.flatnonzero((a[1:-1] > a[:-2]) & (a[1:-1] >= a[2:])) + 1
    top = local[np.argsort(a[local])[-10:]]
    la, lb, lc = np.log(a[top - 1]), np.log(a[top]), np.log(a[top + 1])
    peaks = (top + 0.5 * (la - lc) / (la - 2 * lb + lc)) * FS / n
    scale = 2 / (n * (w**2).sum())
    vb = (f >= 10) & (f <= 1000)
    velocity = 1000 * np.sqrt(scale * np.sum(p[vb] * (G / (2 * np.pi * f[vb])) ** 2))
    band = np.sqrt(scale * np.sum(p[(f >= 100) & (f <= 1500)]))
    harmonics = [a[np.abs(f - h * 29.95) <= max(0.02 * h * 29.95, FS / n)].max() for h in range(1, 6)]
    X = np.fft.rfft(d)
    X[(f < 2000) | (f >= 4500)] = 0
    e = np.abs(scipy.signal.hilbert(np.fft.irfft(X, n))) ** 2
    es = 2 * np.abs(np.fft.rfft((e - e.mean()) * w)) / w.sum()
    scores = []
    for fd in (107.36, 162.19, 70.58, 11.93):
        s = []
        for h in (1, 2, 3):
            fh = fd * h
            tol = max(0.015 * fh, 2 * FS / n)
            win = np.abs(f - fh) <= tol
            floor = np.median(es[(np.abs(f - fh) <= 0.25 * fd) & ~win])
            s.append(20 * np.log10(es[win].max() / floor))
        scores.append(np.mean(s))
    return rms, kurt, skew, peaks, velocity, band, harmonics, scores


def main():
    """Serves `cargo bench --bench vibration`: each line `n reps` on stdin analyses the window
    of n samples reps times and answers `done` when finished, so the bench times numpy beside
    the Rust sides in the same rounds."""
    import sys
    windows = {}
    for line in sys.stdin:
        n, reps = (int(v) for v in line.split())
        x = windows.setdefault(n, signal(n))
        for _ in range(reps):
            analyse(x)
        print("done", flush=True)


if __name__ == "__main__":
    main()
