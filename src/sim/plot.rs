//! A plant's life as an SVG: per watched feature, its value over the life (log scale), the
//! engineer's level and the healthy mean, the effective level of each sharing run, every
//! warning of every run (confirmed or refuted) and the end of life. Written by hand: a few
//! lines, tags and text, where a plotting crate would weigh more than the rest of `sim`.

use super::engineer;
use super::fleet::{Mode, PlantResult};
use super::life::{Life, FEATURES};
use super::plant::WATCHED;
use std::fmt::Write;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const PANEL: f64 = 190.0;
/// Height of one run's row of warning marks under a panel.
const ROW: f64 = 12.0;

/// A run's colour.
fn colour(mode: Mode) -> &'static str {
    match mode {
        Mode::Alone => "#555555",
        Mode::Absolute => "#1f77b4",
        Mode::Relative => "#e07b00",
    }
}

/// Maps life seconds and values onto one panel.
struct Axes {
    top: f64,
    life_s: f64,
    low: f64,
    high: f64,
}

impl Axes {
    fn x(&self, t: f64) -> f64 {
        LEFT + (WIDTH - LEFT - RIGHT) * (t / self.life_s.max(1e-9)).clamp(0.0, 1.0)
    }

    fn y(&self, v: f64) -> f64 {
        let f = (v.max(self.low).log10() - self.low.log10())
            / (self.high.log10() - self.low.log10()).max(1e-12);
        self.top + PANEL * (1.0 - f.clamp(0.0, 1.0))
    }
}

/// The SVG of `life` and what each of `runs` made of it.
pub fn svg(life: &Life, k: f64, runs: &[(Mode, &PlantResult)]) -> String {
    let block = PANEL + 30.0 + ROW * runs.len() as f64 + 20.0;
    let height = 40.0 + block * WATCHED.len() as f64 + 20.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/>\n<text x=\"{LEFT}\" y=\"20\" font-size=\"14\">{} (condition {}, \
         life {:.0} s): feature (grey), engineer's level (black dashes), healthy mean (dots), \
         effective level per run</text>\n",
        life.name,
        life.condition.id,
        life.life_s()
    );
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"34\">{}</text>",
        runs.iter()
            .map(|(m, _)| format!("<tspan fill=\"{}\">■ {}</tspan>", colour(*m), m.as_str()))
            .collect::<Vec<_>>()
            .join(" ")
            + " · marks: ▲ confirmed warning, ▼ refuted (false alarm)"
    );
    for (n, &feature) in WATCHED.iter().enumerate() {
        panel(&mut s, life, k, feature, 40.0 + block * n as f64, runs);
    }
    s.push_str("</svg>\n");
    s
}

/// One feature's panel, its top at `top`.
fn panel(
    s: &mut String,
    life: &Life,
    k: f64,
    feature: usize,
    top: f64,
    runs: &[(Mode, &PlantResult)],
) {
    let values = life.snapshots.iter().map(|p| p.features[feature]);
    let low = values
        .clone()
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let high = values.fold(f64::NEG_INFINITY, f64::max);
    let a = Axes {
        top: top + 10.0,
        life_s: life.life_s(),
        low: if low.is_finite() { low } else { 1e-3 },
        high: if high > low { high } else { low * 10.0 },
    };
    let point = FEATURES[feature];
    let bottom = a.top + PANEL;
    let _ = write!(
        s,
        "<text x=\"{LEFT}\" y=\"{:.1}\" font-weight=\"bold\">{point}</text>\n\
         <rect x=\"{LEFT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{PANEL}\" fill=\"none\" stroke=\"#ccc\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0} s</text>\n",
        a.top - 2.0,
        a.top,
        WIDTH - LEFT - RIGHT,
        LEFT - 4.0,
        a.top + 9.0,
        number(a.high),
        LEFT - 4.0,
        bottom,
        number(a.low),
        WIDTH - RIGHT,
        bottom + 12.0,
        a.life_s
    );
    let line: Vec<String> = life
        .snapshots
        .iter()
        .map(|p| format!("{:.1},{:.1}", a.x(p.t_s), a.y(p.features[feature])))
        .collect();
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#999\" stroke-width=\"0.8\" points=\"{}\"/>",
        line.join(" ")
    );
    let b = engineer::baseline(life, feature, k);
    for (level, dash) in [(b.warning, "6,3"), (b.mean, "1,3")] {
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"black\" \
             stroke-dasharray=\"{dash}\"/>",
            WIDTH - RIGHT,
            y = a.y(level)
        );
    }
    for (mode, r) in runs.iter().filter(|(m, _)| m.shares()) {
        levels(s, &a, point, *mode, r, b.warning);
    }
    for (row, (mode, r)) in runs.iter().enumerate() {
        marks(s, &a, point, *mode, r, bottom + 18.0 + ROW * row as f64);
    }
    let eol = a.x(a.life_s);
    let _ = writeln!(
        s,
        "<line x1=\"{eol:.1}\" x2=\"{eol:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c00\" \
         stroke-width=\"2\"><title>end of life</title></line>",
        a.top, bottom
    );
}

/// A run's effective level of `point` as steps, from `start` until its first change.
fn levels(s: &mut String, a: &Axes, point: &str, mode: Mode, r: &PlantResult, start: f64) {
    let mut steps = vec![(0.0, start)];
    steps.extend(
        r.levels
            .iter()
            .filter(|(p, _, _)| p == point)
            .map(|(_, t, v)| (*t, *v)),
    );
    steps.push((a.life_s, steps.last().map_or(start, |(_, v)| *v)));
    let mut points = Vec::new();
    for w in steps.windows(2) {
        points.push(format!("{:.1},{:.1}", a.x(w[0].0), a.y(w[0].1)));
        points.push(format!("{:.1},{:.1}", a.x(w[1].0), a.y(w[0].1)));
    }
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"><title>{} \
         effective level</title></polyline>",
        colour(mode),
        points.join(" "),
        mode.as_str()
    );
}

/// A run's warnings on `point` as marks on the row at `y`.
fn marks(s: &mut String, a: &Axes, point: &str, mode: Mode, r: &PlantResult, y: f64) {
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{}\">{}</text>",
        LEFT - 4.0,
        y + 4.0,
        colour(mode),
        mode.as_str()
    );
    for w in r.warnings.iter().filter(|w| w.point == point) {
        let glyph = match w.confirmed {
            Some(true) => "▲",
            Some(false) => "▼",
            None => "?",
        };
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{}\"><title>raised at \
             {:.0} s</title>{glyph}</text>",
            a.x(w.raised_s),
            y + 4.0,
            colour(mode),
            w.raised_s
        );
    }
}

/// A level as the axis labels show it.
fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}
