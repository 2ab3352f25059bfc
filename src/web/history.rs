//! `/history`: the alarm history (every transition) and the outcome history (every alarm with
//! its answer) from the state database, newest first, a page at a time, filtered by device,
//! point and time; the same as CSV with `format=csv`.

use super::auth::Session;
use super::pages::{escape, number, shell, Page};
use crate::db::Db;
use crate::outcomes::answers::AlarmEvent;
use crate::outcomes::history::{self, Filter, OutcomeRow};
use serde::Deserialize;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Rows on one page.
pub const PAGE_ROWS: usize = 200;
/// Rows in one CSV export at most.
pub const CSV_ROWS: usize = 100_000;

/// The request's query string.
#[derive(Debug, Default, Deserialize)]
pub struct Query {
    /// `events` (default) or `outcomes`.
    pub kind: Option<String>,
    pub device: Option<String>,
    pub point: Option<String>,
    /// A date (`2026-12-01`) or time (`2026-12-01T06:00:00Z`), UTC.
    pub from: Option<String>,
    /// The same; rows before it.
    pub to: Option<String>,
    /// The paging cursor: Unix milliseconds.
    pub before: Option<i64>,
    /// `csv` for the export.
    pub format: Option<String>,
}

/// What was asked for, checked.
struct Asked {
    outcomes: bool,
    csv: bool,
    filter: Filter,
}

fn parse_time(what: &str, text: &str) -> Result<i64, String> {
    let text = text.trim();
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    humantime::parse_rfc3339_weak(&full)
        .map_err(|_| {
            format!(
                "{what} `{}` is not a date (2026-12-01) or a UTC time (2026-12-01T06:00:00Z)",
                text.escape_debug()
            )
        })
        .map(|t| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        })
}

fn asked(q: &Query) -> Result<Asked, String> {
    let outcomes = match q.kind.as_deref().unwrap_or("events") {
        "events" => false,
        "outcomes" => true,
        other => {
            return Err(format!(
                "kind `{}` is neither `events` nor `outcomes`",
                other.escape_debug()
            ))
        }
    };
    let csv = match q.format.as_deref().unwrap_or("html") {
        "html" => false,
        "csv" => true,
        other => {
            return Err(format!(
                "format `{}` is neither `html` nor `csv`",
                other.escape_debug()
            ))
        }
    };
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let from_ms = nonempty(&q.from)
        .map(|t| parse_time("from", &t))
        .transpose()?;
    let to_ms = nonempty(&q.to).map(|t| parse_time("to", &t)).transpose()?;
    let before_ms = match (q.before, to_ms) {
        (Some(b), Some(t)) => Some(b.min(t)),
        (b, t) => b.or(t),
    };
    Ok(Asked {
        outcomes,
        csv,
        filter: Filter {
            device: nonempty(&q.device),
            point: nonempty(&q.point),
            from_ms,
            before_ms,
            limit: if csv { CSV_ROWS } else { PAGE_ROWS },
        },
    })
}

/// The rows asked for.
pub enum Rows {
    /// Alarm transitions.
    Events(Vec<AlarmEvent>),
    /// Alarms with their answers.
    Outcomes(Vec<OutcomeRow>),
}

/// The state database, opened read-only on first use.
pub struct HistoryDb {
    dir: PathBuf,
    db: Mutex<Option<Db>>,
}

impl HistoryDb {
    /// The database in `dir`, not opened yet.
    pub fn new(dir: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            dir,
            db: Mutex::new(None),
        })
    }

    /// Reads what `q` asks for, off the runtime: `Err(Bad)` for a query that makes no sense,
    /// `Err(Unavailable)` when the database cannot be read.
    pub async fn read(self: &Arc<Self>, q: &Query) -> Result<(bool, Rows, Filter), Refused> {
        let asked = asked(q).map_err(Refused::Bad)?;
        let me = Arc::clone(self);
        let filter = asked.filter.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = me.db.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_none() {
                *guard = Some(
                    Db::reader(&me.dir)
                        .map_err(|e| Refused::Unavailable(format!("the state database: {e}")))?,
                );
            }
            let db = guard.as_mut().expect("opened above");
            let rows = if asked.outcomes {
                history::outcomes(db, &asked.filter).map(Rows::Outcomes)
            } else {
                history::events(db, &asked.filter).map(Rows::Events)
            };
            rows.map(|r| (asked.csv, r, filter))
                .map_err(|e| Refused::Unavailable(format!("reading the history: {e}")))
        })
        .await
        .map_err(|e| Refused::Unavailable(e.to_string()))?
    }
}

/// Why no rows.
#[derive(Debug)]
pub enum Refused {
    /// The query makes no sense; says why.
    Bad(String),
    /// The database cannot be read now; says why.
    Unavailable(String),
}

fn time(ms: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

fn text(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// The history page.
pub fn page(site: &str, session: &Session, q: &Query, rows: &Rows, filter: &Filter) -> String {
    let outcomes = matches!(rows, Rows::Outcomes(_));
    let field = |v: &Option<String>| escape(v.as_deref().unwrap_or(""));
    let mut out = format!(
        "<section><h2>History</h2><form method=\"get\" action=\"/history\" class=\"filter\">\
         <label>Kind <select name=\"kind\"><option value=\"events\"{ev}>alarm transitions</option>\
         <option value=\"outcomes\"{oc}>alarms and answers</option></select></label>\
         <label>Device <input name=\"device\" value=\"{}\" maxlength=\"64\"></label>\
         <label>Point <input name=\"point\" value=\"{}\" maxlength=\"64\"></label>\
         <label>From <input name=\"from\" value=\"{}\" placeholder=\"2026-12-01\" maxlength=\"40\"></label>\
         <label>To <input name=\"to\" value=\"{}\" placeholder=\"2026-12-02T06:00:00Z\" maxlength=\"40\"></label>\
         <button type=\"submit\">Show</button></form>",
        field(&q.device),
        field(&q.point),
        field(&q.from),
        field(&q.to),
        ev = if outcomes { "" } else { " selected" },
        oc = if outcomes { " selected" } else { "" },
    );
    let (count, oldest) = match rows {
        Rows::Events(r) => (r.len(), r.last().map(|e| e.at_ms as i64)),
        Rows::Outcomes(r) => (r.len(), r.last().map(|o| o.raised_at_ms)),
    };
    let csv = query_string(q, None, true);
    let _ = write!(
        out,
        "<p class=\"count\">{count} rows, newest first. <a href=\"/history?{csv}\" download>Export CSV</a> (up to {CSV_ROWS} rows)</p>"
    );
    match rows {
        Rows::Events(r) => events_table(&mut out, r),
        Rows::Outcomes(r) => outcomes_table(&mut out, r),
    }
    if let Some(oldest) = oldest.filter(|_| count == filter.limit) {
        let _ = write!(
            out,
            "<p><a href=\"/history?{}\" rel=\"next\">Older</a></p>",
            query_string(q, Some(oldest), false)
        );
    }
    out.push_str("</section>");
    shell(&Page::History, site, session, &out)
}

/// The query string for the same filter, with a cursor or as CSV.
fn query_string(q: &Query, before: Option<i64>, csv: bool) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (key, value) in [
        ("kind", &q.kind),
        ("device", &q.device),
        ("point", &q.point),
        ("from", &q.from),
        ("to", &q.to),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{key}={}", percent(v)));
        }
    }
    if let Some(b) = before.or(q.before) {
        parts.push(format!("before={b}"));
    }
    if csv {
        parts.push("format=csv".into());
    }
    escape(&parts.join("&"))
}

/// `text` percent-encoded for a query string value.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn events_table(out: &mut String, rows: &[AlarmEvent]) {
    out.push_str(
        "<table><thead><tr><th>When</th><th>Point</th><th>Rule</th><th>From</th><th>To</th>\
         <th>Severity</th><th>Value</th><th>Level</th><th>By</th><th>Alarm</th></tr></thead><tbody>",
    );
    for e in rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            time(e.at_ms as i64),
            escape(&e.device),
            escape(&e.point),
            escape(&e.rule),
            escape(&e.from),
            escape(&e.to),
            escape(text(&e.severity)),
            number(e.value),
            number(e.threshold),
            escape(text(&e.by)),
            escape(text(&e.alarm_id)),
        );
    }
    out.push_str("</tbody></table>");
}

fn outcomes_table(out: &mut String, rows: &[OutcomeRow]) {
    out.push_str(
        "<table><thead><tr><th>Raised</th><th>Alarm</th><th>Level</th><th>Answer</th>\
         <th>Answered</th><th>Failure mode</th><th>Note</th><th>By</th></tr></thead><tbody>",
    );
    for o in rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time(o.raised_at_ms),
            escape(&o.alarm_id),
            number(o.threshold),
            escape(&o.unit),
            escape(o.outcome.as_deref().unwrap_or("unanswered")),
            o.answered_at_ms.map(time).unwrap_or_default(),
            escape(text(&o.failure_mode)),
            escape(text(&o.note)),
            escape(text(&o.by)),
        );
    }
    out.push_str("</tbody></table>");
}

/// A text cell a spreadsheet will not run: one starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return gets a leading `'`.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

fn float(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The rows as CSV, with a header line.
pub fn csv(rows: &Rows) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let result = match rows {
        Rows::Events(r) => {
            let header = [
                "time", "alarm_id", "device", "point", "rule", "from", "to", "severity", "value",
                "level", "by",
            ];
            w.write_record(header).and_then(|()| {
                r.iter().try_for_each(|e| {
                    w.write_record([
                        time(e.at_ms as i64),
                        cell(text(&e.alarm_id)),
                        cell(&e.device),
                        cell(&e.point),
                        cell(&e.rule),
                        e.from.clone(),
                        e.to.clone(),
                        cell(text(&e.severity)),
                        float(e.value),
                        float(e.threshold),
                        cell(text(&e.by)),
                    ])
                })
            })
        }
        Rows::Outcomes(r) => {
            let header = [
                "raised",
                "alarm_id",
                "device",
                "point",
                "rule",
                "level",
                "unit",
                "answer",
                "answered",
                "failure_mode",
                "note",
                "by",
            ];
            w.write_record(header).and_then(|()| {
                r.iter().try_for_each(|o| {
                    w.write_record([
                        time(o.raised_at_ms),
                        cell(&o.alarm_id),
                        cell(&o.device),
                        cell(&o.point),
                        cell(&o.rule),
                        float(o.threshold),
                        cell(&o.unit),
                        o.outcome.clone().unwrap_or_default(),
                        o.answered_at_ms.map(time).unwrap_or_default(),
                        cell(text(&o.failure_mode)),
                        cell(text(&o.note)),
                        cell(text(&o.by)),
                    ])
                })
            })
        }
    };
    result.map_err(|e| e.to_string())?;
    w.into_inner().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_are_defused() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("outer race"), "outer race");
    }

    #[test]
    fn queries_are_checked() {
        let q = Query {
            from: Some("2026-12-01".into()),
            to: Some("2026-12-02T06:00:00Z".into()),
            before: Some(i64::MAX),
            ..Query::default()
        };
        let a = asked(&q).unwrap();
        assert_eq!(a.filter.from_ms, Some(1_796_083_200_000));
        assert_eq!(
            a.filter.before_ms,
            Some(1_796_191_200_000),
            "the earlier of to and before"
        );
        assert_eq!(a.filter.limit, PAGE_ROWS);
        assert!(!a.outcomes && !a.csv);
        let e = asked(&Query {
            from: Some("1 Dec".into()),
            ..Query::default()
        });
        assert!(e.is_err_and(|e| e.contains("`1 Dec` is not a date")));
        assert_eq!(percent("a b&c"), "a%20b%26c");
    }
}
