//! The point page: value and quality, the rules with their levels, and the trend (least,
//! greatest and last value per span, gaps where no good value was read) drawn by uPlot with each
//! rule's levels as lines.

use super::pages::{escape, label, number};
use super::Live;
use crate::core::view::{AlarmsView, PointView};
use std::fmt::Write;

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
        "<h3>Trend</h3><p class=\"note\">The last {} minutes, {} s per step: the band is the least \
         and greatest value read in each step, the line the last; gaps where no good value was read.</p>\
         <script type=\"application/json\" id=\"trend-data\">{}</script></section>",
        p.trend.span_s as usize * crate::core::view::TREND_BUCKETS / 60,
        p.trend.span_s,
        trend_json(p, alarms)
    );
    out
}

/// The trend as uPlot data, `{"unit", "series": [names], "data": [[x…], [y…]…]}`, made safe
/// inside a `<script>` element.
fn trend_json(p: &PointView, alarms: Option<&AlarmsView>) -> String {
    let span = p.trend.span_s.max(1);
    let mut x: Vec<f64> = Vec::new();
    let (mut min, mut max, mut last) = (Vec::new(), Vec::new(), Vec::new());
    let mut previous: Option<u32> = None;
    for b in &p.trend.buckets {
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
    let mut series = vec!["least".to_string(), "greatest".into(), "last".into()];
    let mut data = vec![
        serde_json::json!(x),
        serde_json::json!(min),
        serde_json::json!(max),
        serde_json::json!(last),
    ];
    if let Some(a) = alarms {
        for (r, l) in a.rules.iter().zip(&a.levels) {
            for (what, level) in [("warning", l.warning), ("alarm", l.alarm)] {
                if let Some(level) = level.filter(|v| v.is_finite()) {
                    series.push(format!("{} {what}", r.rule));
                    data.push(serde_json::json!(vec![level; x.len()]));
                }
            }
        }
    }
    let json = serde_json::json!({"unit": p.unit, "series": series, "data": data}).to_string();
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}
