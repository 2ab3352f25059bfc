//! The simulation's report: per plant and in total, alone against each way of sharing, as
//! Markdown and JSON.

use super::fleet::{Mode, Options, PlantResult};
use super::life::Life;
use serde_json::{json, Value};
use std::fmt::Write;
use std::sync::Arc;

/// Each run's mode and what every plant lived in it, in the lives' order.
pub type Runs = [(Mode, Vec<PlantResult>)];

/// The engineer's rule, as the report states it.
pub fn rule(options: &Options) -> String {
    format!(
        "Each plant's engineer sets a `high` warning on RMS, kurtosis and the 2–6 kHz band RMS at \
         the mean + {k}·σ of that plant's own first hour of life, with no fleet knowledge; peers \
         may tighten it down to the healthy mean, never loosen it (`baseline_weight = {bw}`, \
         peers' packets taken from contexts matching at `{m}` level). \
         Sharing absolute levels, a peer's level is proposed as it is; sharing relative levels, \
         as its ratio to the peer's healthy mean times this plant's own. The end of life raises \
         the sensor's fault, which confirms the warnings still unanswered; a warning that \
         cleared and was not followed by the end of life within {w} s of life is refuted (a \
         false alarm). Lead time: from the first confirmed warning to the end of life.",
        k = options.k,
        bw = options.baseline_weight,
        m = options.match_level.as_str(),
        w = options.window_s
    )
}

fn side(r: &PlantResult, alone: &PlantResult) -> Value {
    let mut levels = serde_json::Map::new();
    for (point, at, value) in &r.levels {
        if let Value::Array(steps) = levels
            .entry(point.clone())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            steps.push(json!([at, value]));
        }
    }
    let warnings: Vec<Value> = r
        .warnings
        .iter()
        .map(|w| {
            json!({"point": w.point, "raised_s": w.raised_s, "cleared_s": w.cleared_s,
                   "confirmed": w.confirmed})
        })
        .collect();
    json!({
        "site": r.site,
        "lead_time_s": r.lead_time_s(),
        "gain_s": gain(r, alone),
        "false_alarms": r.false_alarms(),
        "packets_applied": r.applied,
        "warnings": warnings,
        "levels": levels,
    })
}

/// Seconds of lead time `r` gained over `alone`, where both warned.
pub fn gain(r: &PlantResult, alone: &PlantResult) -> Option<f64> {
    Some(r.lead_time_s()? - alone.lead_time_s()?)
}

/// The report as JSON: the rule, the options, and per plant its life and every run.
pub fn json(lives: &[Arc<Life>], options: &Options, runs: &Runs) -> Value {
    let plants: Vec<Value> = lives
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut plant = json!({
                "name": l.name,
                "condition": l.condition.id,
                "life_s": l.life_s(),
            });
            if let Some((_, alone)) = runs.first() {
                for (mode, r) in runs {
                    plant[mode.as_str()] = side(&r[i], &alone[i]);
                }
            }
            plant
        })
        .collect();
    json!({
        "rule": rule(options),
        "poll_interval_ms": options.poll_interval_ms,
        "stagger": options.stagger,
        "baseline_weight": options.baseline_weight,
        "match": options.match_level.as_str(),
        "runs": runs.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        "plants": plants,
    })
}

fn lead(s: Option<f64>) -> String {
    s.map_or_else(|| "none".into(), |s| format!("{s:.0} s"))
}

/// One cell per run, from `f` of that run's plant `i`, joined by ` | `.
fn cells(runs: &Runs, i: usize, f: impl Fn(&PlantResult) -> String) -> String {
    runs.iter()
        .map(|(_, r)| f(&r[i]))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The report as a Markdown table: lead time, false alarms and packets applied per run.
pub fn markdown(lives: &[Arc<Life>], options: &Options, runs: &Runs) -> String {
    let mut out = format!("{}\n\n", rule(options));
    let names: Vec<&str> = runs.iter().map(|(m, _)| m.as_str()).collect();
    let heads = |what: &str| {
        names
            .iter()
            .map(|n| format!("{what} {n}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let shared = &runs[runs.len().min(1)..];
    let _ = writeln!(
        out,
        "| plant | condition | life | {} | {} | {} |",
        heads("lead"),
        heads("false alarms"),
        shared
            .iter()
            .map(|(m, _)| format!("applied {}", m.as_str()))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let columns = 3 + 2 * runs.len() + shared.len();
    let _ = writeln!(out, "|{}", "---|".repeat(columns));
    for (i, l) in lives.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} s | {} | {} | {} |",
            l.name,
            l.condition.id,
            l.life_s(),
            cells(runs, i, |r| lead(r.lead_time_s())),
            cells(runs, i, |r| r.false_alarms().to_string()),
            cells(shared, i, |r| r.applied.to_string()),
        );
    }
    let total = |f: &dyn Fn(&PlantResult) -> f64| -> String {
        runs.iter()
            .map(|(_, r)| format!("{:.0}", r.iter().map(f).sum::<f64>()))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let _ = writeln!(
        out,
        "| **total** | | | {} | {} | {} |",
        total(&|r| r.lead_time_s().unwrap_or(0.0)),
        total(&|r| r.false_alarms() as f64),
        shared
            .iter()
            .map(|(_, r)| r.iter().map(|p| p.applied).sum::<u64>().to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    out
}
