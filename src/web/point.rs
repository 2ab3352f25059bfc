//! The point page: value and quality, the rules with their levels, the trend (least, greatest
//! and last value per span, gaps where no good value was read) with each rule's levels; for a
//! vibration device's point its latest amplitude and envelope spectra with the shaft orders and
//! bearing defect frequencies as cursors and the ISO 10816 zone; for a charted point its control
//! chart with the limits each point was judged by and the rules it violated. Every chart is
//! drawn by uPlot from the JSON the fragment carries ([`chart`]).

use super::pages::{escape, label, number};
use super::Live;
use crate::alarms::Severity;
use crate::core::view::{AlarmsView, ChartKind, PointView, SpcChart, ThresholdView, Violations};
use crate::sources::vibration::{EnvelopeSnapshot, SpectrumSnapshot};
use serde_json::{json, Value};
use std::fmt::Write;
use std::time::SystemTime;

/// The live part of the point page of `device`/`point`.
pub fn point(live: &Live, device: &str, point: &str) -> String {
    let v = &live.view;
    let Some(p) = v
        .points
        .iter()
        .find(|p| p.device == device && p.name == point)
    else {
        return format!(
            "<section><h2>No point {}/{}</h2><p>This gateway has no such point.</p></section>",
            escape(device),
            escape(point)
        );
    };
    let alarms = v.alarms.iter().find(|a| a.point == p.id);
    let shown = p.text.as_deref().map_or_else(|| number(p.value), escape);
    let mut out = format!(
        "<section><h2>{device}/{name}</h2><table class=\"facts\">\
         <tr><th>Value</th><td id=\"value\">{shown} {unit}</td></tr>\
         <tr><th>Quality</th><td class=\"{quality}\">{quality}</td></tr>\
         <tr><th>Read</th><td>{read}</td></tr><tr><th>Error</th><td class=\"error\">{error}</td></tr></table>",
        device = escape(&p.device),
        name = escape(&p.name),
        unit = escape(&p.unit),
        quality = label(&p.quality),
        read = humantime::format_rfc3339_millis(p.read_at),
        error = escape(p.error.as_deref().unwrap_or("")),
    );
    if let Some(a) = alarms.filter(|a| !a.rules.is_empty()) {
        out.push_str(
            "<h3>Rules</h3><table><thead><tr><th>Rule</th><th>Warning</th><th>Alarm</th>\
             <th>State</th><th>Alarm id</th></tr></thead><tbody>",
        );
        for (r, l) in a.rules.iter().zip(&a.levels) {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                escape(&r.rule),
                number(l.warning),
                number(l.alarm),
                label(&r.state),
                escape(r.alarm_id.as_deref().unwrap_or("")),
            );
        }
        out.push_str("</tbody></table>");
    }
    let _ = write!(
        out,
        "<p class=\"note\">Trend: the last {} minutes, {} s per step: the band is the least \
         and greatest value read in each step, the line the last; gaps where no good value was read.</p>",
        p.trend.span_s as usize * crate::core::view::TREND_BUCKETS / 60,
        p.trend.span_s,
    );
    out.push_str(&chart("trend", "Trend", &trend(p, alarms, &v.thresholds)));
    if let Some(c) = &p.spc_chart {
        out.push_str(&control_chart(c));
    }
    let spectrum = v
        .devices
        .iter()
        .find(|d| d.name == p.device)
        .and_then(|d| d.spectrum.as_ref());
    if let Some((at, s)) = spectrum {
        out.push_str(&spectra(*at, s));
    }
    out.push_str("</section>");
    out
}

/// A chart for the page script: its JSON in a `<script>` element, made safe there.
///
/// The JSON: `title`; `x` (`time`, `hz` or `index`) and `xlabel`; `unit` of the y axis;
/// `series` (`label`, `colour`, optional `width`, `dash`, `stepped` for a level that holds until
/// the next point); `band` (the
/// indices of the upper and lower series of a shaded band); `data` (x, then one array per
/// series); `cursors` (vertical lines: `x`, `label`, `colour`); `region` (`[from, to]`, shaded);
/// `marks` (labelled points: `x`, `y`, `label`).
pub fn chart(id: &str, title: &str, spec: &Value) -> String {
    let json = spec
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    format!(
        "<script type=\"application/json\" class=\"chart-data\" id=\"{id}-data\" \
         data-chart=\"{id}\" data-title=\"{}\">{json}</script>",
        escape(title)
    )
}

/// The trend as a chart: the band of each step's least and greatest value, its last value, and
/// each rule's levels.
fn trend(p: &PointView, alarms: Option<&AlarmsView>, thresholds: &[ThresholdView]) -> Value {
    let span = p.trend.span_s.max(1);
    let mut x: Vec<f64> = Vec::new();
    let (mut min, mut max, mut last) = (Vec::new(), Vec::new(), Vec::new());
    let mut previous: Option<u32> = None;
    for b in p.trend.buckets() {
        // A missing span: one null point so the line breaks there.
        if previous.is_some_and(|s| b.start > s + span) {
            x.push(f64::from(previous.unwrap_or(0) + span));
            min.push(None);
            max.push(None);
            last.push(None);
        }
        x.push(f64::from(b.start));
        min.push(Some(f64::from(b.min)));
        max.push(Some(f64::from(b.max)));
        last.push(Some(f64::from(b.last)));
        previous = Some(b.start);
    }
    let light = "#7aa7e0";
    let mut series = vec![
        json!({"label": "least", "colour": light}),
        json!({"label": "greatest", "colour": light}),
        json!({"label": "last", "colour": "#1f6feb", "width": 2}),
    ];
    let mut data = vec![json!(x), json!(min), json!(max), json!(last)];
    if let Some(a) = alarms {
        for (r, l) in a.rules.iter().zip(&a.levels) {
            let name = format!("{}/{}/{}", p.device, p.name, r.rule);
            let adaptive = thresholds.iter().find(|t| t.rule == name);
            for (what, severity, level, colour) in [
                ("warning", Severity::Warning, l.warning, "#9a6700"),
                ("alarm", Severity::Alarm, l.alarm, "#b3261e"),
            ] {
                let Some(level) = level.filter(|v| v.is_finite()) else {
                    continue;
                };
                series.push(json!({"label": format!("{} {what}", r.rule), "colour": colour, "dash": [6, 4], "stepped": true}));
                // An adaptable level as it was at each step: where peers moved it shows.
                let values: Vec<f64> = match adaptive.filter(|t| t.severity == severity) {
                    Some(t) => x.iter().map(|&at| level_at(t, at, level)).collect(),
                    None => vec![level; x.len()],
                };
                data.push(json!(values));
            }
        }
    }
    json!({"x": "time", "unit": p.unit, "series": series, "band": [2, 1], "data": data})
}

/// The adaptable level in use at `at` (Unix seconds): the last change before it, the baseline
/// before the first, `now` after the last.
fn level_at(t: &ThresholdView, at: f64, now: f64) -> f64 {
    let ms = (at * 1000.0) as u64;
    match t.history.iter().rposition(|s| s.at_ms <= ms) {
        Some(i) if i + 1 == t.history.len() => now,
        Some(i) => t.history[i].value,
        None if t.history.is_empty() => now,
        None => t.effective.baseline,
    }
}

/// The control chart and its dispersion chart, each point with the limits it was judged by and
/// the numbers of the rules it violated.
fn control_chart(c: &SpcChart) -> String {
    let (location, dispersion) = match c.kind {
        ChartKind::XbarR => ("X̄", "R"),
        ChartKind::XbarS => ("X̄", "s"),
        ChartKind::Imr => ("Individuals", "Moving range"),
    };
    let x: Vec<usize> = c.points.iter().map(|p| p.index).collect();
    let line = |f: &dyn Fn(&crate::core::view::ChartPoint) -> Option<f64>| -> Vec<Option<f64>> {
        c.points.iter().map(f).collect()
    };
    let marks = |pick: &dyn Fn(&crate::core::view::ChartPoint) -> (Option<f64>, Violations)| {
        c.points
            .iter()
            .filter_map(|p| {
                let (y, v) = pick(p);
                let rules: Vec<String> = v.iter().map(|n| n.to_string()).collect();
                (!rules.is_empty()).then(|| json!({"x": p.index, "y": y, "label": rules.join(",")}))
            })
            .collect::<Vec<_>>()
    };
    let limits = |name: &str| {
        [
            json!({"label": format!("{name}"), "colour": "#1f6feb", "width": 2}),
            json!({"label": "centre", "colour": "#1b7f3b"}),
            json!({"label": "LCL", "colour": "#b3261e", "dash": [6, 4]}),
            json!({"label": "UCL", "colour": "#b3261e", "dash": [6, 4]}),
        ]
    };
    let violations: usize = c
        .points
        .iter()
        .filter(|p| !p.violations.is_empty() || !p.dispersion_violations.is_empty())
        .count();
    let first = c.points.iter().take_while(|p| p.calibration).count();
    let mut out = format!(
        "<h3>Control chart</h3><p class=\"note\" data-violations=\"{violations}\">The last {} \
         charted points ({} of them calibration), each with the limits it was judged by; a red \
         number is the rule a point broke ({violations} of them broke one).</p>",
        c.points.len(),
        first,
    );
    out.push_str(&chart(
        "spc",
        location,
        &json!({
            "x": "index", "xlabel": "point", "series": limits(location),
            "data": [x, line(&|p| Some(p.statistic)), line(&|p| Some(p.center)),
                     line(&|p| Some(p.lcl)), line(&|p| Some(p.ucl))],
            "marks": marks(&|p| (Some(p.statistic), p.violations)),
        }),
    ));
    out.push_str(&chart(
        "spc-dispersion",
        dispersion,
        &json!({
            "x": "index", "xlabel": "point", "series": limits(dispersion),
            "data": [x, line(&|p| p.dispersion), line(&|p| Some(p.dispersion_limits[0])),
                     line(&|p| Some(p.dispersion_limits[1])), line(&|p| Some(p.dispersion_limits[2]))],
            "marks": marks(&|p| (p.dispersion, p.dispersion_violations)),
        }),
    ));
    out
}

/// Cursor colours per defect.
const OUTER: &str = "#b3261e";
const INNER: &str = "#6e40c9";
const BALL: &str = "#9a6700";
const CAGE: &str = "#1b7f3b";

/// Frequencies `0, resolution, 2·resolution, …` for `n` values.
fn axis(resolution: f64, n: usize) -> Vec<f64> {
    (0..n).map(|k| k as f64 * resolution).collect()
}

/// The latest window's spectra, zone and diagnosis.
fn spectra(at: SystemTime, s: &SpectrumSnapshot) -> String {
    let mut out = vibration_facts(at, s);
    let top = s.resolution_hz * s.amplitudes.len().saturating_sub(1) as f64;
    let cursors: Vec<Value> = s
        .shaft_hz
        .into_iter()
        .flat_map(|f| (1..=10).map(move |k| (k, f * f64::from(k))))
        .filter(|&(_, f)| f <= top)
        .map(|(k, f)| json!({"x": f, "label": format!("{k}×"), "colour": "#57606a"}))
        .collect();
    out.push_str(&chart(
        "spectrum",
        "Amplitude spectrum",
        &json!({
            "x": "hz", "xlabel": "Hz",
            "series": [{"label": "amplitude", "colour": "#1f6feb"}],
            "data": [axis(s.resolution_hz, s.amplitudes.len()), s.amplitudes],
            "cursors": cursors,
            "region": s.envelope_band_hz,
        }),
    ));
    if let Some(e) = &s.envelope {
        out.push_str(&envelope(e));
    }
    out
}

/// Velocity RMS, the ISO zone and its boundaries, the verdict and the envelope band.
fn vibration_facts(at: SystemTime, s: &SpectrumSnapshot) -> String {
    let [ab, bc, cd] = s.iso10816_boundaries_mm_s;
    let mut out = format!(
        "<h3>Vibration</h3><table class=\"facts\">\
         <tr><th>Window</th><td>{}</td></tr>\
         <tr><th>Velocity RMS</th><td>{} mm/s</td></tr>\
         <tr><th>ISO 10816 zone</th><td class=\"zone zone-{zone}\">{zone}</td></tr>\
         <tr><th>Zone boundaries</th><td>A/B {ab} · B/C {bc} · C/D {cd} mm/s</td></tr>",
        humantime::format_rfc3339_millis(at),
        number(Some(s.velocity_rms_mm_s)),
        zone = escape(&s.iso10816_zone.to_string()),
    );
    if let Some(v) = s.bearing_verdict {
        let _ = write!(
            out,
            "<tr><th>Bearing verdict</th><td>{}</td></tr>",
            label(&v)
        );
    }
    if let Some([lo, hi]) = s.envelope_band_hz {
        let _ = write!(
            out,
            "<tr><th>Envelope band</th><td>{} – {} Hz</td></tr>",
            number(Some(lo)),
            number(Some(hi))
        );
    }
    out.push_str("</table>");
    out
}

/// The defect table and the squared envelope spectrum with the defect frequencies' cursors.
fn envelope(e: &EnvelopeSnapshot) -> String {
    let mut out = String::from(
        "<table><thead><tr><th>Defect</th><th>Frequency</th><th>Line found</th><th>Score</th></tr></thead><tbody>",
    );
    for (name, f, d) in [
        ("Outer race (BPFO)", e.bpfo_hz, e.diagnosis.first()),
        ("Inner race (BPFI)", e.bpfi_hz, e.diagnosis.get(1)),
        ("Ball (BSF)", e.bsf_hz, e.diagnosis.get(2)),
        ("Cage (FTF)", e.ftf_hz, e.diagnosis.get(3)),
    ] {
        let _ = write!(
            out,
            "<tr><td>{name}</td><td>{} Hz</td><td>{} Hz</td><td>{} dB</td></tr>",
            number(Some(f)),
            number(d.map(|d| d.frequency_hz)),
            number(d.map(|d| d.score)),
        );
    }
    out.push_str("</tbody></table>");
    let top = e.resolution_hz * e.amplitudes.len().saturating_sub(1) as f64;
    let cursors: Vec<Value> = [
        ("BPFO", e.bpfo_hz, OUTER, 3),
        ("BPFI", e.bpfi_hz, INNER, 3),
        ("BSF", e.bsf_hz, BALL, 2),
        ("FTF", e.ftf_hz, CAGE, 1),
    ]
    .into_iter()
    .flat_map(|(name, f, colour, harmonics)| {
        (1..=harmonics).map(move |k| {
            let label = if k == 1 {
                name.to_string()
            } else {
                format!("{k}×{name}")
            };
            (label, f * f64::from(k), colour)
        })
    })
    .filter(|(_, f, _)| f.is_finite() && *f <= top)
    .map(|(label, f, colour)| json!({"x": f, "label": label, "colour": colour}))
    .collect();
    out.push_str(&chart(
        "envelope",
        "Squared envelope spectrum",
        &json!({
            "x": "hz", "xlabel": "Hz",
            "series": [{"label": "envelope", "colour": "#1f6feb"}],
            "data": [axis(e.resolution_hz, e.amplitudes.len()), e.amplitudes],
            "cursors": cursors,
        }),
    ));
    out
}
