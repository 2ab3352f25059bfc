//! The thresholds page: every adaptable rule's level in use, its baseline and rails, and every
//! live proposal behind it (the MQTT threshold message carries only the heaviest); then the
//! peers answered here, with their trust.

use super::pages::{escape, label, number};
use super::Live;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// The live part of the thresholds page.
pub fn thresholds(live: &Live) -> String {
    let v = &live.view;
    let mut out = String::from("<section><h2>Adaptable levels</h2>");
    if v.thresholds.is_empty() {
        out.push_str(
            "<p>No rule here has an <code>[devices.points.alarms.adapt]</code> section: peers move nothing.</p>",
        );
    }
    for t in &v.thresholds {
        let e = &t.effective;
        let moved = if (e.value - e.baseline).abs() > f64::EPSILON {
            format!("moved from {} by peers", number(Some(e.baseline)))
        } else {
            "at its baseline".into()
        };
        let _ = write!(
            out,
            "<article data-rule=\"{rule}\"><h3>{rule}</h3><table class=\"facts\">\
             <tr><th>In use</th><td class=\"level\">{} ({moved})</td></tr>\
             <tr><th>Baseline</th><td>{}</td></tr><tr><th>Rails</th><td>{} – {}{}</td></tr></table>",
            number(Some(e.value)),
            number(Some(e.baseline)),
            number(Some(e.floor)),
            number(Some(e.ceiling)),
            if e.tighten_only { ", toward earlier warning only" } else { "" },
            rule = escape(&t.rule),
        );
        changes(&mut out, t);
        if e.provenance.is_empty() {
            out.push_str("<p>No live proposal.</p></article>");
            continue;
        }
        out.push_str(
            "<table><thead><tr><th>Source</th><th>Seq</th><th>Proposed</th><th>Within rails</th>\
             <th>Trust</th><th>Confidence</th><th>Validations</th><th>Weight</th><th>Expires</th>\
             <th>Status</th></tr></thead><tbody>",
        );
        let mut provenance: Vec<_> = e.provenance.iter().collect();
        provenance.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        for c in provenance {
            let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(c.expires_at);
            let _ = write!(
                out,
                "<tr><td><code title=\"{source}\">{short}…</code></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
                c.seq,
                number(Some(c.proposed)),
                number(Some(c.applied)),
                c.trust,
                c.confidence,
                c.validations,
                c.weight,
                humantime::format_rfc3339_seconds(expires),
                label(&c.status),
                source = escape(&c.source),
                short = escape(c.source.get(..12).unwrap_or(&c.source)),
            );
        }
        out.push_str("</tbody></table></article>");
    }
    out.push_str("</section><section><h2>Peers' trust</h2>");
    trust(&mut out, v);
    out.push_str("</section>");
    out
}

/// The peers answered here, each with its trust and its last changes.
fn trust(out: &mut String, v: &crate::core::View) {
    if v.trust.is_empty() {
        out.push_str("<p>No peer's advice has been answered here yet; every peer starts at the configured trust.</p>");
    } else {
        out.push_str(
            "<table><thead><tr><th>Source</th><th>Trust</th><th>How it changed (newest first)</th></tr></thead><tbody>",
        );
        for (source, trust) in &v.trust {
            let steps = v
                .trust_history
                .iter()
                .find(|(s, _)| s == source)
                .map_or(&[][..], |(_, steps)| steps.as_slice());
            let mut history = String::new();
            for s in steps.iter().rev().take(SHOWN) {
                let _ = write!(
                    history,
                    "<li>{} → {:.3} ({} <code>{}</code>)</li>",
                    when(s.at_ms),
                    s.trust,
                    label(&s.outcome),
                    escape(&s.alarm_id)
                );
            }
            let _ = write!(
                out,
                "<tr data-source=\"{source}\"><td><code>{source}</code></td><td>{trust:.3}</td><td><ul class=\"steps\">{history}</ul></td></tr>",
                source = escape(source)
            );
        }
        out.push_str("</tbody></table>");
    }
}

/// Changes shown per rule and per peer (the gateway keeps up to 100 of each).
const SHOWN: usize = 10;

/// A Unix millisecond time, to the second.
fn when(at_ms: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_millis(at_ms))
        .to_string()
}

/// The rule's last level changes, newest first.
fn changes(out: &mut String, t: &crate::core::view::ThresholdView) {
    if t.history.is_empty() {
        out.push_str("<p class=\"note\">Its level has not changed since it was configured.</p>");
        return;
    }
    let _ = write!(
        out,
        "<table class=\"changes\"><thead><tr><th>Changed</th><th>To</th><th>Live proposals</th></tr></thead><tbody>"
    );
    for s in t.history.iter().rev().take(SHOWN) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            when(s.at_ms),
            number(Some(s.value)),
            s.proposals
        );
    }
    out.push_str("</tbody></table>");
}
