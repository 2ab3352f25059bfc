//! Local validation: an alarm is a prediction, and an engineer's confirmation or refutation
//! is its outcome. The ledger counts, per equipment context and signal pattern, how often a
//! pattern's alarms were confirmed and refuted and with what lead time: the evidence that
//! outcome packets will carry to other plants.
//!
//! Pure bookkeeping, persisted by the caller through [`crate::store`] as `outcomes.json`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Raised alarms remembered for answers; the oldest are forgotten beyond this.
pub const MAX_ALARMS: usize = 10_000;
/// Lead times kept per ledger entry (the most recent).
pub const MAX_LEAD_TIMES: usize = 50;

/// A raised alarm, kept until answered (and after, as a record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRecord {
    /// Device name.
    pub device: String,
    /// Point name.
    pub point: String,
    /// Rule name.
    pub rule: String,
    /// When it was raised, Unix milliseconds.
    pub raised_at_ms: u64,
    /// The level that caught it.
    pub threshold: Option<f64>,
    /// Engineering unit.
    pub unit: String,
    /// Context fingerprint (hex), when the point has a context.
    pub fingerprint: Option<String>,
    /// The signal pattern: what was watched and in which direction, e.g. `process_value:high`.
    pub pattern: String,
    /// The engineer's answer, once given.
    pub answer: Option<Answer>,
}

/// What an engineer said about an alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// `confirmed` or `refuted`.
    pub outcome: Outcome,
    /// The failure mode found (confirmations), e.g. `bearing_outer_race`.
    pub failure_mode: Option<String>,
    /// Free text.
    pub note: Option<String>,
    /// Who answered.
    pub by: Option<String>,
    /// When, Unix milliseconds.
    pub at_ms: u64,
}

/// Confirmation or refutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The predicted failure or defect was real.
    Confirmed,
    /// False alarm.
    Refuted,
}

/// Evidence for one pattern in one context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Confirmations.
    pub validations: u32,
    /// Refutations.
    pub refutations: u32,
    /// Seconds from alarm to confirmation, most recent last.
    pub lead_times_s: Vec<u64>,
}

/// Everything persisted about outcomes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutcomeState {
    /// Last occurrence number per rule (`device/point/rule`), so alarm ids stay unique across
    /// restarts.
    pub occurrences: BTreeMap<String, u64>,
    /// Raised alarms by alarm id.
    pub alarms: BTreeMap<String, AlarmRecord>,
    /// Evidence by `<fingerprint>/<pattern>` (`-` for points without a context).
    pub ledger: BTreeMap<String, LedgerEntry>,
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// No such alarm (never raised, or forgotten).
    #[error("no alarm `{0}` is known")]
    Unknown(String),
    /// The alarm was answered before.
    #[error("alarm `{0}` was already answered ({1:?})")]
    Answered(String, Outcome),
}

impl OutcomeState {
    /// Records a new raise. Returns the alarm id's occurrence number.
    pub fn raised(&mut self, alarm_id: String, record: AlarmRecord) {
        self.alarms.insert(alarm_id, record);
        while self.alarms.len() > MAX_ALARMS {
            let oldest = self
                .alarms
                .iter()
                .min_by_key(|(_, r)| r.raised_at_ms)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.alarms.remove(&k);
                }
                None => break,
            }
        }
    }

    /// Applies an answer; returns the updated ledger entry and the lead time (confirmations).
    pub fn answer(
        &mut self,
        alarm_id: &str,
        answer: Answer,
    ) -> Result<(LedgerEntry, Option<u64>), AnswerError> {
        let record = self
            .alarms
            .get_mut(alarm_id)
            .ok_or_else(|| AnswerError::Unknown(alarm_id.to_string()))?;
        if let Some(previous) = &record.answer {
            return Err(AnswerError::Answered(
                alarm_id.to_string(),
                previous.outcome,
            ));
        }
        let key = ledger_key(record.fingerprint.as_deref(), &record.pattern);
        let lead = answer.at_ms.saturating_sub(record.raised_at_ms) / 1000;
        let entry = self.ledger.entry(key).or_default();
        let lead_time = match answer.outcome {
            Outcome::Confirmed => {
                entry.validations = entry.validations.saturating_add(1);
                entry.lead_times_s.push(lead);
                if entry.lead_times_s.len() > MAX_LEAD_TIMES {
                    entry.lead_times_s.remove(0);
                }
                Some(lead)
            }
            Outcome::Refuted => {
                entry.refutations = entry.refutations.saturating_add(1);
                None
            }
        };
        let snapshot = entry.clone();
        record.answer = Some(answer);
        Ok((snapshot, lead_time))
    }
}

/// `<fingerprint>/<pattern>`, `-` standing for "no context".
pub fn ledger_key(fingerprint: Option<&str>, pattern: &str) -> String {
    format!("{}/{pattern}", fingerprint.unwrap_or("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: u64) -> AlarmRecord {
        AlarmRecord {
            device: "d".into(),
            point: "p".into(),
            rule: "high".into(),
            raised_at_ms: at,
            threshold: Some(90.0),
            unit: "°C".into(),
            fingerprint: Some("ab".into()),
            pattern: "process_value:high".into(),
            answer: None,
        }
    }

    fn answer(outcome: Outcome, at_ms: u64) -> Answer {
        Answer {
            outcome,
            failure_mode: None,
            note: None,
            by: None,
            at_ms,
        }
    }

    #[test]
    fn answers_count_once_per_alarm_with_lead_times() {
        let mut s = OutcomeState::default();
        s.raised("d/p/high/1".into(), record(1_000));
        s.raised("d/p/high/2".into(), record(2_000));
        let (e, lead) = s
            .answer("d/p/high/1", answer(Outcome::Confirmed, 3_601_000))
            .unwrap();
        assert_eq!((e.validations, e.refutations, lead), (1, 0, Some(3600)));
        assert_eq!(
            s.answer("d/p/high/1", answer(Outcome::Refuted, 4_000_000)),
            Err(AnswerError::Answered(
                "d/p/high/1".into(),
                Outcome::Confirmed
            ))
        );
        let (e, lead) = s
            .answer("d/p/high/2", answer(Outcome::Refuted, 5_000))
            .unwrap();
        assert_eq!((e.validations, e.refutations, lead), (1, 1, None));
        assert!(matches!(
            s.answer("nope", answer(Outcome::Confirmed, 0)),
            Err(AnswerError::Unknown(_))
        ));
        assert_eq!(s.ledger["ab/process_value:high"].lead_times_s, vec![3600]);
    }

    #[test]
    fn the_alarm_memory_is_bounded() {
        let mut s = OutcomeState::default();
        for i in 0..(MAX_ALARMS as u64 + 5) {
            s.raised(format!("a/{i}"), record(i));
        }
        assert_eq!(s.alarms.len(), MAX_ALARMS);
        assert!(!s.alarms.contains_key("a/0"));
    }
}
