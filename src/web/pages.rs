//! The pages, rendered here with every value escaped: a layout, and per page the live part the
//! script replaces on each update (the same function renders both, so they cannot differ).

use super::auth::Session;
use super::host::Health;
use super::Live;
use crate::config::WebRole;
use crate::core::view::PointView;
use crate::mqtt::payload::RuleStatus;
use crate::outcomes::Answer;
use std::fmt::Write;

/// The page script: live updates, the command buttons and the confirm dialog.
pub const APP_JS: &str = include_str!("assets/app.js");
/// The style sheet.
pub const STYLE_CSS: &str = include_str!("assets/style.css");
/// uPlot 1.6.32 (MIT; `assets/vendor/uplot/`).
pub const UPLOT_JS: &str = include_str!("assets/vendor/uplot/uPlot.iife.min.js");
/// uPlot's style sheet.
pub const UPLOT_CSS: &str = include_str!("assets/vendor/uplot/uPlot.min.css");

/// A page of the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Page {
    /// Site, links, devices, points, counters.
    Overview,
    /// Active and recent alarms, with their commands.
    Alarms,
    /// Every point with its value and quality, linked to its page.
    Points,
    /// Adaptable levels with their provenance, and peers' trust.
    Thresholds,
    /// The alarm and outcome history from the state database (not live).
    History,
    /// One point: its value, rules and trend.
    Point {
        /// Device name.
        device: String,
        /// Point name.
        point: String,
    },
}

impl Page {
    /// The page at `path` (`/`, `/alarms`, `/point/<device>/<point>`).
    pub fn from_path(path: &str) -> Option<Self> {
        match path.trim_start_matches('/').split('/').collect::<Vec<_>>()[..] {
            [""] | ["overview"] => Some(Self::Overview),
            ["alarms"] => Some(Self::Alarms),
            ["thresholds"] => Some(Self::Thresholds),
            ["points"] => Some(Self::Points),
            ["history"] => Some(Self::History),
            ["point", device, point] if !device.is_empty() && !point.is_empty() => {
                Some(Self::Point {
                    device: device.to_string(),
                    point: point.to_string(),
                })
            }
            _ => None,
        }
    }

    /// Its address.
    fn path(&self) -> String {
        match self {
            Self::Overview => "/".into(),
            Self::Alarms => "/alarms".into(),
            Self::Thresholds => "/thresholds".into(),
            Self::Points => "/points".into(),
            Self::History => "/history".into(),
            Self::Point { device, point } => format!("/point/{device}/{point}"),
        }
    }

    /// The address of its live part.
    fn live_path(&self) -> String {
        match self {
            Self::Overview => "/live/overview".into(),
            Self::History => String::new(),
            other => format!("/live{}", other.path()),
        }
    }

    fn title(&self) -> String {
        match self {
            Self::Overview => "Overview".into(),
            Self::Alarms => "Alarms".into(),
            Self::Thresholds => "Thresholds".into(),
            Self::Points => "Points".into(),
            Self::History => "History".into(),
            Self::Point { device, point } => format!("{device}/{point}"),
        }
    }
}

/// Text made safe for HTML content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Line breaks as references: a live fragment travels as one SSE field.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// The snake_case name serde gives a unit variant (`active`, `warning`, `good`).
pub(super) fn label<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(super) fn number(value: Option<f64>) -> String {
    value.filter(|v| v.is_finite()).map_or_else(
        || "–".into(),
        |v| {
            format!("{v:.6}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        },
    )
}

/// A whole live page for a logged-in user.
pub fn page(which: Page, live: &Live, session: &Session, host: &Health) -> String {
    shell(
        &which,
        &live.view.site,
        session,
        &fragment(&which, live, session, host),
    )
}

/// The layout around `body`: header, navigation, the confirm dialog and the scripts.
pub fn shell(which: &Page, site: &str, session: &Session, body: &str) -> String {
    let mut nav = String::new();
    for p in [
        Page::Overview,
        Page::Points,
        Page::Alarms,
        Page::Thresholds,
        Page::History,
    ] {
        let current = if &p == which {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{}\"{current}>{}</a>", p.path(), p.title());
    }
    let role = match session.role {
        WebRole::Engineer => "engineer",
        WebRole::Viewer => "viewer",
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"csrf\" content=\"{csrf}\"><title>{title} · {site} · qis-edge</title>\
         <link rel=\"stylesheet\" href=\"/assets/style.css\"></head><body>\
         <header><strong>qis-edge</strong> <span class=\"site\">{site}</span><nav>{nav}</nav>\
         <span id=\"connection\" class=\"connection\" data-state=\"live\">live</span>\
         <form method=\"post\" action=\"/logout\" class=\"logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <span class=\"user\">{user} ({role})</span> <button type=\"submit\">Log out</button></form></header>\
         <main id=\"live\" data-live=\"{live_path}\">{fragment}</main>\
         <dialog id=\"confirm\"><form method=\"dialog\"><h2>Confirm <span class=\"alarm\"></span></h2>\
         <label>Failure mode (what was found) <input name=\"failure_mode\" required maxlength=\"200\"></label>\
         <label>Note <textarea name=\"note\" maxlength=\"1000\"></textarea></label>\
         <p class=\"error\" role=\"alert\"></p>\
         <menu><button value=\"cancel\" formnovalidate>Cancel</button><button value=\"ok\" class=\"primary\">Confirm</button></menu></form></dialog>\
         <dialog id=\"shelve\"><form method=\"dialog\"><h2>Shelve <span class=\"alarm\"></span></h2>\
         <p>The rule still evaluates and records, but does not alert, until the time is up.</p>\
         <label>Hours (at most 720) <input name=\"hours\" type=\"number\" min=\"0.25\" max=\"720\" step=\"0.25\" value=\"8\" required></label>\
         <label>Why <input name=\"note\" maxlength=\"200\"></label>\
         <menu><button value=\"cancel\" formnovalidate>Cancel</button><button value=\"ok\" class=\"primary\">Shelve</button></menu></form></dialog>\
         {charts}<script src=\"/assets/app.js\"></script></body></html>",
        csrf = escape(&session.csrf),
        title = escape(&which.title()),
        site = escape(site),
        user = escape(&session.user),
        live_path = escape(&which.live_path()),
        fragment = body,
        charts = if matches!(which, Page::Point { .. }) {
            "<div id=\"charts\"></div>\
             <link rel=\"stylesheet\" href=\"/assets/uplot.css\"><script src=\"/assets/uplot.js\"></script>"
        } else {
            ""
        },
    )
}

/// The login page, with an error when the last attempt failed.
pub fn login(error: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))
    });
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Log in · qis-edge</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\
         <body class=\"login\"><form method=\"post\" action=\"/login\"><h1>qis-edge</h1>{error}\
         <label>User <input name=\"user\" autocomplete=\"username\" required maxlength=\"64\" autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required maxlength=\"200\"></label>\
         <button type=\"submit\" class=\"primary\">Log in</button></form></body></html>"
    )
}

/// The live part of a page, under a warning while the local broker is unreachable.
pub fn fragment(which: &Page, live: &Live, session: &Session, host: &Health) -> String {
    let banner = if live.local_broker {
        ""
    } else {
        "<p class=\"banner\" role=\"alert\" id=\"broker-down\">The local MQTT broker is unreachable: \
         this page shows the gateway's own state, but MQTT clients (SCADA, mosquitto_sub) see \
         nothing until it returns.</p>"
    };
    let body = match which {
        Page::Overview => overview(live) + &host_section(host),
        Page::Alarms => alarms(live, session),
        Page::Thresholds => super::thresholds::thresholds(live),
        Page::Points => points(live),
        Page::History => String::new(),
        Page::Point { device, point } => super::point::point(live, device, point),
    };
    format!("{banner}{body}")
}

fn overview(live: &Live) -> String {
    let v = &live.view;
    let mut out = String::new();
    let storage = live.storage_fault.as_deref().map_or_else(
        || "<td class=\"ok\">ok</td>".to_string(),
        |f| format!("<td class=\"bad\">fault: {}</td>", escape(f)),
    );
    let _ = write!(
        out,
        "<section><h2>Gateway</h2><table class=\"facts\">\
         <tr><th>Site</th><td>{}</td></tr><tr><th>Local broker</th>{local}</tr><tr><th>Fleet link</th><td data-uplink=\"{uplink}\">{uplink}</td></tr>\
         <tr><th>Outbox</th><td id=\"outbox\">{outbox}</td></tr><tr><th>State database</th>{storage}</tr>\
         <tr><th>Peers' packets</th><td>{} accepted, {} applied, {} unmatched, {} rejected</td></tr>\
         <tr><th>Updated</th><td>{}</td></tr></table></section>",
        escape(&v.site),
        v.intake.accepted,
        v.intake.applied,
        v.intake.unmatched,
        v.intake.rejected.values().filter_map(|n| n.as_u64()).sum::<u64>(),
        humantime::format_rfc3339_seconds(live.at),
        uplink = label(&v.uplink),
        outbox = live.outbox.map_or_else(
            || "not readable".to_string(),
            |n| format!("{n} packet{} waiting for the fleet link", if n == 1 { "" } else { "s" })
        ),
        local = if live.local_broker {
            "<td class=\"ok\">connected</td>"
        } else {
            "<td class=\"bad\">unreachable</td>"
        },
    );
    out.push_str(
        "<section><h2>Devices</h2><table><thead><tr><th>Device</th><th>Link</th><th>Polls</th>\
         <th>Requests</th><th>Timeouts</th><th>Exceptions</th><th>Transport errors</th>\
         <th>Latency ms (mean / max)</th><th>Last error</th></tr></thead><tbody>",
    );
    for d in &v.devices {
        let link = match d.link_up {
            Some(true) => "<td class=\"ok\">up</td>",
            Some(false) => "<td class=\"bad\">down</td>",
            None => "<td>–</td>",
        };
        let stats = d.stats.as_ref().map_or_else(
            || "<td colspan=\"6\">no statistics yet</td>".to_string(),
            |s| {
                format!(
                    "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} / {:.1}</td>",
                    s.polls,
                    s.requests,
                    s.timeouts,
                    s.exceptions,
                    s.transport_errors,
                    s.latency_ms_avg,
                    s.latency_ms_max
                )
            },
        );
        let _ = write!(
            out,
            "<tr data-device=\"{name}\"><td>{name}</td>{link}{stats}<td class=\"error\">{}</td></tr>",
            escape(d.last_error.as_deref().unwrap_or("")),
            name = escape(&d.name),
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

/// The machine's health, for the overview.
fn host_section(h: &Health) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "–".into());
    format!(
        "<section><h2>Host</h2><table class=\"facts\">\
         <tr><th>CPU</th><td id=\"cpu\">{}</td></tr><tr><th>Load (1 min)</th><td>{}</td></tr>\
         <tr><th>Memory available</th><td>{}</td></tr><tr><th>Gateway memory</th><td>{}</td></tr>\
         <tr><th>State directory free</th><td id=\"disk\">{}</td></tr><tr><th>SoC temperature</th><td>{}</td></tr></table></section>",
        or_dash(h.cpu_percent.map(|c| format!("{c:.0} %"))),
        or_dash(h.load_1m.map(|l| format!("{l:.2}"))),
        or_dash(h.memory.map(|(a, t)| format!("{:.0} of {:.0} MiB", mib(a), mib(t)))),
        or_dash(h.gateway_rss.map(|r| format!("{:.1} MiB", mib(r)))),
        or_dash(h.disk.map(|(f, t)| format!("{:.0} of {:.0} MiB", mib(f), mib(t)))),
        or_dash(h.temperature_c.map(|c| format!("{c:.1} °C"))),
    )
}

/// Every point with its value, linked to its page.
fn points(live: &Live) -> String {
    let v = &live.view;
    let mut out = String::new();
    out.push_str(
        "<section><h2>Points</h2><table><thead><tr><th>Point</th><th>Value</th><th>Quality</th>\
         <th>Read</th><th>Error</th></tr></thead><tbody>",
    );
    for p in &v.points {
        let shown = p.text.as_deref().map_or_else(|| number(p.value), escape);
        let _ = write!(
            out,
            "<tr data-point=\"{device}/{name}\"><td><a href=\"/point/{device}/{name}\">{device}/{name}</a></td>\
             <td>{shown} {}</td><td class=\"{quality}\">{quality}</td><td>{}</td><td class=\"error\">{}</td></tr>",
            escape(&p.unit),
            humantime::format_rfc3339_millis(p.read_at),
            escape(p.error.as_deref().unwrap_or("")),
            device = escape(&p.device),
            name = escape(&p.name),
            quality = label(&p.quality),
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

fn alarms(live: &Live, session: &Session) -> String {
    let v = &live.view;
    let mut rows: Vec<(Option<&Answer>, &PointView, &RuleStatus)> = Vec::new();
    for a in &v.alarms {
        let Some(point) = v.points.iter().find(|p| p.id == a.point) else {
            continue;
        };
        for (i, r) in a.rules.iter().enumerate() {
            if r.alarm_id.is_some() {
                rows.push((a.answers.get(i).and_then(Option::as_ref), point, r));
            }
        }
    }
    // Those needing attention first: unacknowledged, then acknowledged, then cleared; newest first.
    rows.sort_by(|x, y| {
        rank(x.2)
            .cmp(&rank(y.2))
            .then_with(|| y.2.raised_at.cmp(&x.2.raised_at))
    });
    let mut out = format!(
        "<section><h2>Alarms</h2><p class=\"count\">{} active, {} acknowledged, {} cleared, {} shelved</p>\
         <table><thead><tr><th>Point</th><th>Rule</th><th>Severity</th><th>State</th><th>Value</th>\
         <th>Level</th><th>Raised</th><th>Alarm</th><th></th></tr></thead><tbody>",
        rows.iter().filter(|r| rank(r.2) == 0).count(),
        rows.iter().filter(|r| rank(r.2) == 1).count(),
        rows.iter().filter(|r| rank(r.2) == 2).count(),
        rows.iter().filter(|r| rank(r.2) == 3).count(),
    );
    for (answer, point, rule) in &rows {
        let id = rule.alarm_id.as_deref().unwrap_or_default();
        let actions = if session.role == WebRole::Engineer {
            actions(rule, *answer, id)
        } else {
            String::new()
        };
        let answered = answer.map_or_else(String::new, |a| {
            format!(
                "<br><span class=\"answer\">{}{}{}</span>",
                label(&a.outcome),
                a.failure_mode
                    .as_deref()
                    .map_or_else(String::new, |m| format!(" ({})", escape(m))),
                a.by.as_deref()
                    .map_or_else(String::new, |by| format!(" by {}", escape(by))),
            )
        });
        let _ = write!(
            out,
            "<tr data-alarm=\"{id}\" data-state=\"{state}\"><td><a href=\"/point/{device}/{name}\">{device}/{name}</a></td><td>{}</td><td class=\"{severity}\">{severity}</td>\
             <td>{state}{answered}{shelved}</td><td>{} {}</td><td>{}</td><td>{}</td><td><code>{id}</code></td><td class=\"actions\">{actions}</td></tr>",
            escape(&rule.rule),
            number(point.value),
            escape(&point.unit),
            number(rule.threshold),
            escape(rule.raised_at.as_deref().unwrap_or("")),
            id = escape(id),
            device = escape(&point.device),
            name = escape(&point.name),
            state = label(&rule.state),
            shelved = rule.shelved_until.as_deref().map_or_else(String::new, |until| format!(
                "<br><span class=\"shelved\">shelved until {}{}</span>",
                escape(until),
                rule.shelved_by.as_deref().map_or_else(String::new, |by| format!(" by {}", escape(by)))
            )),
            severity = rule.severity.as_ref().map(label).unwrap_or_default(),
        );
    }
    if rows.is_empty() {
        out.push_str(
            "<tr><td colspan=\"9\">No alarm has been raised since the gateway started.</td></tr>",
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

/// 0 needs attention (raised, not acknowledged), 1 acknowledged, 2 cleared, 3 shelved.
fn rank(rule: &RuleStatus) -> u8 {
    if rule.shelved_until.is_some() {
        return 3;
    }
    match label(&rule.state).as_str() {
        "active" => 0,
        "acknowledged" => 1,
        _ => 2,
    }
}

/// The commands an engineer may give on an alarm: an answered alarm takes no second answer.
fn actions(rule: &RuleStatus, answer: Option<&Answer>, id: &str) -> String {
    let id = escape(id);
    let mut out = String::new();
    if !rule.acknowledged {
        let _ = write!(
            out,
            "<button data-command=\"ack\" data-alarm=\"{id}\">Ack</button>"
        );
    }
    let (command, text) = if rule.shelved_until.is_some() {
        ("unshelve", "Unshelve")
    } else {
        ("shelve", "Shelve…")
    };
    let _ = write!(
        out,
        "<button data-command=\"{command}\" data-alarm=\"{id}\">{text}</button>"
    );
    if answer.is_none() {
        let _ = write!(
            out,
            "<button data-command=\"confirm\" data-alarm=\"{id}\">Confirm…</button>\
             <button data-command=\"refute\" data-alarm=\"{id}\">Refute</button>"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::view::DeviceView;
    use crate::core::View;
    use crate::intake::IntakeCounts;
    use crate::mqtt::UplinkState;

    fn live(error: &str) -> Live {
        Live {
            view: View {
                site: "a&b".into(),
                devices: vec![DeviceView {
                    name: "press1".into(),
                    link_up: Some(false),
                    last_error: Some(error.into()),
                    ..Default::default()
                }],
                points: Vec::new(),
                alarms: Vec::new(),
                thresholds: Vec::new(),
                trust: Vec::new(),
                trust_history: Vec::new(),
                intake: IntakeCounts {
                    accepted: 0,
                    own: 0,
                    wrong_topic: 0,
                    applied: 0,
                    unmatched: 0,
                    cleared: 0,
                    known: 0,
                    ack_failures: 0,
                    rejected: serde_json::Map::new(),
                },
                uplink: UplinkState::Disconnected,
            },
            outbox: Some(0),
            storage_fault: Some("<i>disk</i>".into()),
            local_broker: true,
            at: std::time::UNIX_EPOCH,
        }
    }

    #[test]
    fn what_devices_and_peers_say_is_escaped_and_stays_on_one_line() {
        let html = overview(&live("<script>alert('x')</script>\r\nforged: line"));
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#13;&#10;forged: line")
        );
        assert!(html.contains("fault: &lt;i&gt;disk&lt;/i&gt;"));
        assert!(html.contains("<td>a&amp;b</td>"));
        assert!(!html.contains("<script>") && !html.contains('\n') && !html.contains('\r'));
        assert_eq!(escape("\"'<>&"), "&quot;&#39;&lt;&gt;&amp;");
    }

    #[test]
    fn pages_are_found_by_path_only() {
        assert_eq!(Page::from_path("/"), Some(Page::Overview));
        assert_eq!(Page::from_path("/alarms"), Some(Page::Alarms));
        assert_eq!(
            Page::from_path("/point/pump/bearing_temp"),
            Some(Page::Point {
                device: "pump".into(),
                point: "bearing_temp".into()
            })
        );
        for bad in [
            "/point/pump",
            "/point//x",
            "/alarms/x",
            "/../alarms",
            "/point/a/b/c",
        ] {
            assert_eq!(Page::from_path(bad), None, "{bad}");
        }
    }
}
