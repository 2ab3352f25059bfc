//! The simulation's report: per plant and in total, alone against with peers, as Markdown and
//! JSON.

use super::fleet::{Options, PlantResult};
use super::life::Life;
use serde_json::{json, Value};
use std::fmt::Write;

/// The engineer's rule, as the report states it.
pub fn rule(options: &Options) -> String {
    format!(
        "Each plant's engineer sets a `high` warning on RMS, kurtosis and the 2–6 kHz band RMS at \
         the mean + {k}·σ of that plant's own first hour of life, with no fleet knowledge; peers \
         may tighten it down to the healthy mean, never loosen it. The end of life raises the \
         sensor's fault, which confirms the warnings still unanswered; a warning that cleared and \
         was not followed by the end of life within {w} s of life is refuted (a false alarm). \
         Lead time: from the first confirmed warning to the end of life.",
        k = options.k,
        w = options.window_s
    )
}

fn side(r: &PlantResult) -> Value {
    let mut levels = serde_json::Map::new();
    for (point, at, value) in &r.levels {
        if let Value::Array(steps) = levels
            .entry(point.clone())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            steps.push(json!([at, value]));
        }
    }
    json!({
        "warnings": r.warnings.len(),
        "lead_time_s": r.lead_time_s(),
        "false_alarms": r.false_alarms(),
        "packets_applied": r.applied,
        "levels": levels,
    })
}

/// The report as JSON: the rule, the options, and per plant its life and both runs.
pub fn json(
    lives: &[std::sync::Arc<Life>],
    options: &Options,
    alone: &[PlantResult],
    shared: Option<&[PlantResult]>,
) -> Value {
    let plants: Vec<Value> = lives
        .iter()
        .zip(alone)
        .enumerate()
        .map(|(i, (l, a))| {
            json!({
                "name": l.name,
                "condition": l.condition.id,
                "life_s": l.life_s(),
                "alone": side(a),
                "with_peers": shared.and_then(|s| s.get(i)).map(side),
            })
        })
        .collect();
    json!({
        "rule": rule(options),
        "poll_interval_ms": options.poll_interval_ms,
        "stagger": options.stagger,
        "plants": plants,
    })
}

fn lead(s: Option<f64>) -> String {
    s.map_or_else(|| "none".into(), |s| format!("{s:.0} s"))
}

/// The report as a Markdown table.
pub fn markdown(
    lives: &[std::sync::Arc<Life>],
    options: &Options,
    alone: &[PlantResult],
    shared: Option<&[PlantResult]>,
) -> String {
    let mut out = format!("{}\n\n", rule(options));
    out.push_str(
        "| plant | condition | life | lead time alone | with peers | false alarms alone | with peers | packets applied |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (i, (l, a)) in lives.iter().zip(alone).enumerate() {
        let s = shared.and_then(|s| s.get(i));
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} s | {} | {} | {} | {} | {} |",
            l.name,
            l.condition.id,
            l.life_s(),
            lead(a.lead_time_s()),
            s.map_or_else(|| "–".into(), |s| lead(s.lead_time_s())),
            a.false_alarms(),
            s.map_or_else(|| "–".into(), |s| s.false_alarms().to_string()),
            s.map_or_else(|| "–".into(), |s| s.applied.to_string()),
        );
    }
    let total = |r: &[PlantResult]| -> (f64, usize) {
        (
            r.iter().filter_map(PlantResult::lead_time_s).sum(),
            r.iter().map(PlantResult::false_alarms).sum(),
        )
    };
    let (lead_alone, false_alone) = total(alone);
    let _ = writeln!(
        out,
        "| **total** | | | {lead_alone:.0} s | {} | {false_alone} | {} | |",
        shared.map_or_else(|| "–".into(), |s| format!("{:.0} s", total(s).0)),
        shared.map_or_else(|| "–".into(), |s| total(s).1.to_string()),
    );
    out
}
