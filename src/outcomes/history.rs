//! Reading the alarm history (`alarm_events`) and the outcome history (`alarms`) back, newest
//! first, a page at a time, for the dashboard and its CSV export.

use super::answers::AlarmEvent;
use crate::db::{Db, StorageError};
use rusqlite::types::Value;

/// Which rows to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only this device.
    pub device: Option<String>,
    /// Only this point.
    pub point: Option<String>,
    /// From this time on, Unix milliseconds.
    pub from_ms: Option<i64>,
    /// Before this time, Unix milliseconds (a page's cursor, or the range's end).
    pub before_ms: Option<i64>,
    /// At most this many rows.
    pub limit: usize,
}

impl Filter {
    /// The WHERE clause on the time column `at` and its parameters.
    fn clause(&self, at: &str) -> (String, Vec<Value>) {
        let mut terms = Vec::new();
        let mut params = Vec::new();
        if let Some(d) = &self.device {
            terms.push("device = ?".to_string());
            params.push(Value::Text(d.clone()));
        }
        if let Some(p) = &self.point {
            terms.push("point = ?".to_string());
            params.push(Value::Text(p.clone()));
        }
        if let Some(t) = self.from_ms {
            terms.push(format!("{at} >= ?"));
            params.push(Value::Integer(t));
        }
        if let Some(t) = self.before_ms {
            terms.push(format!("{at} < ?"));
            params.push(Value::Integer(t));
        }
        let clause = if terms.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", terms.join(" AND "))
        };
        (clause, params)
    }
}

/// One alarm with its answer, if given.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRow {
    /// The alarm's id.
    pub alarm_id: String,
    /// Device name.
    pub device: String,
    /// Point name.
    pub point: String,
    /// Rule name.
    pub rule: String,
    /// When raised, Unix milliseconds.
    pub raised_at_ms: i64,
    /// The level that caught it.
    pub threshold: Option<f64>,
    /// Engineering unit.
    pub unit: String,
    /// `confirmed`, `refuted`, or none yet.
    pub outcome: Option<String>,
    /// When answered, Unix milliseconds.
    pub answered_at_ms: Option<i64>,
    /// What was found.
    pub failure_mode: Option<String>,
    /// The engineer's note.
    pub note: Option<String>,
    /// Who answered.
    pub by: Option<String>,
}

/// Alarm transitions matching `filter`, newest first.
pub fn events(db: &mut Db, filter: &Filter) -> Result<Vec<AlarmEvent>, StorageError> {
    let (clause, mut params) = filter.clause("at_ms");
    params.push(Value::Integer(filter.limit as i64));
    let sql = format!(
        "SELECT at_ms, alarm_id, device, point, rule, from_state, to_state, severity, value, \
         threshold, by FROM alarm_events {clause} ORDER BY at_ms DESC, id DESC LIMIT ?"
    );
    let conn = db.conn();
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(params), |r| {
        Ok(AlarmEvent {
            at_ms: r.get::<_, i64>(0)?.max(0) as u64,
            alarm_id: r.get(1)?,
            device: r.get(2)?,
            point: r.get(3)?,
            rule: r.get(4)?,
            from: r.get(5)?,
            to: r.get(6)?,
            severity: r.get(7)?,
            value: r.get(8)?,
            threshold: r.get(9)?,
            by: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Alarms matching `filter` (by when they were raised), newest first, with their answers.
pub fn outcomes(db: &mut Db, filter: &Filter) -> Result<Vec<OutcomeRow>, StorageError> {
    let (clause, mut params) = filter.clause("raised_at_ms");
    params.push(Value::Integer(filter.limit as i64));
    let sql = format!(
        "SELECT id, device, point, rule, raised_at_ms, outcome, answered_at_ms, record FROM alarms \
         {clause} ORDER BY raised_at_ms DESC, id DESC LIMIT ?"
    );
    let conn = db.conn();
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(params), |r| {
        let record: String = r.get(7)?;
        let record: Option<super::AlarmRecord> = serde_json::from_str(&record).ok();
        let answer = record.as_ref().and_then(|a| a.answer.clone());
        Ok(OutcomeRow {
            alarm_id: r.get(0)?,
            device: r.get(1)?,
            point: r.get(2)?,
            rule: r.get(3)?,
            raised_at_ms: r.get(4)?,
            threshold: record.as_ref().and_then(|a| a.threshold),
            unit: record.as_ref().map(|a| a.unit.clone()).unwrap_or_default(),
            outcome: r.get(5)?,
            answered_at_ms: r.get(6)?,
            failure_mode: answer.as_ref().and_then(|a| a.failure_mode.clone()),
            note: answer.as_ref().and_then(|a| a.note.clone()),
            by: answer.and_then(|a| a.by),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
