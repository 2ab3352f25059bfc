//! Local validation: an alarm is a prediction, and an engineer's confirmation or refutation
//! is its outcome. The ledger counts, per equipment context and signal pattern, how often a
//! pattern's alarms were confirmed and refuted and with what lead time: the evidence that
//! outcome packets will carry to other plants.
//!
//! [`OutcomeState`] is the pure bookkeeping; [`Answers`] keeps it in the state database
//! ([`crate::db`]), one transaction per change.

pub mod answers;
pub mod history;
pub mod outbox;
pub mod pattern;
pub mod share;

pub use answers::Answers;
pub use pattern::{Pattern, Signal};
pub use share::Sharing;

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
    /// The rule's healthy level (`adapt.healthy`), when configured: its packets then carry
    /// the threshold relative to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<f64>,
    /// Engineering unit.
    pub unit: String,
    /// Context fingerprint (hex), when the point has a context.
    pub fingerprint: Option<String>,
    /// The signal pattern: what was watched and in which direction, e.g. `process_value:high`.
    pub pattern: Pattern,
    /// Where in the spectrum the watched feature lives: a band's edges, a bearing defect's or
    /// a harmonic's frequency at the configured shaft speed.
    #[serde(default, skip_serializing_if = "is_no_frequency")]
    pub frequency: crate::packet::Frequency,
    /// The engineer's answer, once given.
    pub answer: Option<Answer>,
    /// For alarms of the `spc` rule: the chart and the first rule violated at the raise.
    #[serde(default)]
    pub spc: Option<SpcRecord>,
    /// Peers (hex public keys) whose proposals had moved the rule's level when it was raised:
    /// the answer moves their trust.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}

/// What an SPC chart found when its alarm was raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpcRecord {
    /// The chart.
    pub chart: crate::analysis::spc::ChartKind,
    /// The rule set.
    pub rule_set: crate::analysis::spc::RuleSet,
    /// The first rule number violated.
    pub rule: u8,
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

impl Outcome {
    /// `confirmed` or `refuted`, as events and the state database name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Confirmed => "confirmed",
            Outcome::Refuted => "refuted",
        }
    }

    /// The outcome `text` names ([`Outcome::as_str`]), if any.
    pub fn parse(text: &str) -> Option<Self> {
        [Outcome::Confirmed, Outcome::Refuted]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
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
    /// Sequence number of the last outcome packet issued.
    #[serde(default)]
    pub last_seq: u64,
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
    /// Records a new raise, keeping at most [`MAX_ALARMS`].
    pub fn raised(&mut self, alarm_id: String, record: AlarmRecord) {
        self.raised_within(alarm_id, record, MAX_ALARMS);
    }

    /// Records a new raise, keeping at most `max` alarms: the oldest go first. Returns the ids
    /// of those forgotten.
    pub fn raised_within(
        &mut self,
        alarm_id: String,
        record: AlarmRecord,
        max: usize,
    ) -> Vec<String> {
        self.alarms.insert(alarm_id, record);
        let mut forgotten = Vec::new();
        while self.alarms.len() > max.max(1) {
            let oldest = self
                .alarms
                .iter()
                .min_by_key(|(_, r)| r.raised_at_ms)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.alarms.remove(&k);
                    forgotten.push(k);
                }
                None => break,
            }
        }
        forgotten
    }

    pub fn answer(
        &mut self,
        alarm_id: &str,
        answer: Answer,
    ) -> Result<(LedgerEntry, Option<u64>), AnswerError> {
        let planned = self.plan_answer(alarm_id, answer)?;
        let result = (planned.entry.clone(), planned.lead_time_s);
        self.apply_answer(planned);
        Ok(result)
    }

    /// What answering `alarm_id` would change, without changing anything (so it can be
    /// committed first and applied only once stored).
    pub fn plan_answer(
        &self,
        alarm_id: &str,
        answer: Answer,
    ) -> Result<PlannedAnswer, AnswerError> {
        let record = self
            .alarms
            .get(alarm_id)
            .ok_or_else(|| AnswerError::Unknown(alarm_id.to_string()))?;
        if let Some(previous) = &record.answer {
            return Err(AnswerError::Answered(
                alarm_id.to_string(),
                previous.outcome,
            ));
        }
        let key = ledger_key(record.fingerprint.as_deref(), &record.pattern);
        let lead = answer.at_ms.saturating_sub(record.raised_at_ms) / 1000;
        let mut entry = self.ledger.get(&key).cloned().unwrap_or_default();
        let lead_time_s = match answer.outcome {
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
        let mut record = record.clone();
        record.answer = Some(answer);
        Ok(PlannedAnswer {
            alarm_id: alarm_id.to_string(),
            record,
            key,
            entry,
            lead_time_s,
        })
    }

    /// Applies a planned answer.
    pub fn apply_answer(&mut self, planned: PlannedAnswer) {
        self.ledger.insert(planned.key, planned.entry);
        self.alarms.insert(planned.alarm_id, planned.record);
    }
}

/// An answer's changes: the alarm's record with its answer and the ledger entry after it.
#[derive(Debug, Clone)]
pub struct PlannedAnswer {
    /// The alarm.
    pub alarm_id: String,
    /// Its record, answered.
    pub record: AlarmRecord,
    /// The ledger key of its context and pattern.
    pub key: String,
    /// The ledger entry with this answer counted.
    pub entry: LedgerEntry,
    /// Seconds from the raise to a confirmation.
    pub lead_time_s: Option<u64>,
}

#[allow(
    clippy::too_many_arguments,
    reason = "the packet's fields, each from its own source"
)]
pub fn packet_body(
    record: &AlarmRecord,
    answer: &Answer,
    entry: &LedgerEntry,
    lead_time_s: Option<u64>,
    issued_at: u64,
    ttl_s: u32,
    seq: u64,
    equipment_label: &str,
) -> Option<crate::packet::PacketBody> {
    use crate::packet as pk;
    let fingerprint: pk::Fingerprint = record.fingerprint.as_deref()?.parse().ok()?;
    let (feature, direction) = record.pattern.to_feature(record.spc.as_ref());
    let (kind, failure_mode) = match answer.outcome {
        Outcome::Confirmed => (
            pk::OutcomeKind::DefectConfirmed,
            answer
                .failure_mode
                .as_deref()
                .and_then(|m| {
                    serde_json::from_value::<pk::FailureMode>(serde_json::Value::String(
                        m.trim().to_lowercase(),
                    ))
                    .ok()
                })
                .unwrap_or(pk::FailureMode::Other),
        ),
        Outcome::Refuted => (pk::OutcomeKind::FalseAlarm, pk::FailureMode::None),
    };
    let label_text = answer.failure_mode.as_deref().unwrap_or("false alarm");
    let (v, r) = (entry.validations, entry.refutations);
    Some(pk::PacketBody {
        version: pk::VERSION,
        fingerprint,
        pattern: pk::SignalPattern {
            feature,
            frequency: record.frequency,
            threshold: record.threshold.unwrap_or(0.0) as f32,
            unit: pk::label("unit", &pk::fit(&record.unit, pk::UNIT_LEN)).ok()?,
            direction,
        },
        outcome: pk::Outcome {
            kind,
            failure_mode,
            label: pk::label("label", &pk::fit(label_text, pk::LABEL_LEN)).ok()?,
        },
        confidence: ((f64::from(v) + 1.0) / (f64::from(v) + f64::from(r) + 2.0)) as f32,
        validations: v,
        refutations: r,
        lead_time_s: lead_time_s
            .unwrap_or(0)
            .min(u64::from(crate::packet::guard::MAX_LEAD_TIME_S)) as u32,
        issued_at,
        ttl_s,
        seq,
        source: [0; 32],
        equipment_label: pk::label("equipment_label", &pk::fit(equipment_label, pk::LABEL_LEN))
            .ok()?,
        relative: relative(record),
        levels: pk::Levels::None,
    })
}

/// The record's threshold over its healthy level, where both are known and the ratio is one
/// the intake guard accepts.
fn relative(record: &AlarmRecord) -> crate::packet::Relative {
    use crate::packet::Relative;
    match (record.threshold, record.healthy) {
        (Some(t), Some(h)) if h > 0.0 => Some(Relative::Ratio((t / h) as f32))
            .filter(|r| r.in_bounds())
            .unwrap_or(Relative::None),
        _ => Relative::None,
    }
}

fn is_no_frequency(f: &crate::packet::Frequency) -> bool {
    *f == crate::packet::Frequency::None
}

/// `<fingerprint>/<pattern>`, `-` standing for "no context".
pub fn ledger_key(fingerprint: Option<&str>, pattern: &Pattern) -> String {
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
            healthy: None,
            unit: "°C".into(),
            fingerprint: Some("ab".into()),
            pattern: "process_value:high".parse().unwrap(),
            frequency: crate::packet::Frequency::None,
            answer: None,
            spc: None,
            peers: Vec::new(),
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
    fn an_answer_becomes_a_packet_peers_accept_and_no_plant_data_travels() {
        let mut r = record(1_000);
        r.fingerprint = Some("2f548489892b5cc59e206b78afa95a7b".into());
        r.pattern = "outer_race_score:high".parse().unwrap();
        r.unit = "dB".into();
        r.threshold = Some(20.0);
        let a = Answer {
            outcome: Outcome::Confirmed,
            failure_mode: Some("Bearing_Outer_Race".into()),
            note: Some("secret note".into()),
            by: Some("j.doe".into()),
            at_ms: 5_000,
        };
        let e = LedgerEntry {
            validations: 3,
            refutations: 1,
            lead_times_s: vec![4],
        };
        let body = packet_body(
            &r,
            &a,
            &e,
            Some(4),
            1_795_000_000,
            86_400,
            7,
            "centrifugal pump",
        )
        .unwrap();
        assert_eq!(
            body.pattern.feature,
            crate::packet::Feature::BearingDefect(crate::packet::BearingDefect::Bpfo)
        );
        assert_eq!(
            body.outcome.failure_mode,
            crate::packet::FailureMode::BearingOuterRace
        );
        assert!((body.confidence - 4.0 / 6.0).abs() < 1e-6);
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let bytes = body.sign(&key).unwrap().to_bytes().unwrap();
        crate::packet::verify(
            &bytes,
            1_795_000_000,
            &mut crate::packet::ReplayGuard::new(4),
            &crate::packet::TrustPolicy::default(),
        )
        .expect("peers accept it");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("secret") && !text.contains("j.doe"),
            "notes and names stay in the plant"
        );
        r.pattern = "band_rms:0:high".parse().unwrap();
        r.frequency = crate::packet::Frequency::Band {
            lo: 100.0,
            hi: 1500.0,
        };
        let body = packet_body(&r, &a, &e, None, 0, 1, 1, "x").unwrap();
        assert_eq!(body.pattern.feature, crate::packet::Feature::BandAmplitude);
        assert_eq!(body.pattern.frequency, r.frequency);
        assert_eq!(
            body.relative,
            crate::packet::Relative::None,
            "no healthy level"
        );
        // With a healthy level the threshold travels relative to it: 20 dB / 16 dB = 1.25.
        r.healthy = Some(16.0);
        let body = packet_body(&r, &a, &e, None, 0, 1, 1, "x").unwrap();
        assert_eq!(body.relative, crate::packet::Relative::Ratio(1.25));
        r.fingerprint = None;
        assert!(
            packet_body(&r, &a, &e, None, 0, 1, 1, "x").is_none(),
            "no context, nothing to share"
        );
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
