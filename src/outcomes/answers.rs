//! The alarms this gateway raised and what engineers (or PLC faults) said of them, with the
//! ledger, saved in `outcomes.json` in the state directory.

use super::{AlarmRecord, Answer, AnswerError, LedgerEntry, OutcomeState};
use crate::alarms::AlarmId;
use std::path::PathBuf;
use tracing::error;

/// The file's name in the state directory.
pub const OUTCOMES_FILE: &str = "outcomes.json";

/// Alarm records, answers and the ledger, and where they are saved.
#[derive(Debug)]
pub struct Answers {
    state: OutcomeState,
    path: PathBuf,
}

impl Answers {
    /// Loads the saved state at `path` (a corrupt file is moved aside, see [`crate::store`]).
    pub fn load(path: PathBuf) -> Self {
        Self {
            state: crate::store::load_json(&path),
            path,
        }
    }

    /// Empty state that will be saved at `path`.
    pub fn empty(path: PathBuf) -> Self {
        Self {
            state: OutcomeState::default(),
            path,
        }
    }

    /// How many times the rule `<device>/<point>/<rule>` was raised before.
    pub fn occurrences(&self, rule_key: &str) -> Option<u64> {
        self.state.occurrences.get(rule_key).copied()
    }

    /// Remembers a new raise (so it can be answered, also after a restart) and saves.
    pub fn raised(&mut self, id: &AlarmId, record: AlarmRecord) {
        self.state.occurrences.insert(id.rule_key(), id.occurrence);
        self.state.raised(id.to_string(), record);
        self.save();
    }

    /// Records an answer in memory; the caller shares it, then [`Answers::save`]s.
    pub fn answer(
        &mut self,
        alarm_id: &str,
        answer: Answer,
    ) -> Result<(LedgerEntry, Option<u64>), AnswerError> {
        self.state.answer(alarm_id, answer)
    }

    /// The record of an alarm.
    pub fn record(&self, alarm_id: &str) -> Option<&AlarmRecord> {
        self.state.alarms.get(alarm_id)
    }

    /// The unanswered alarms of the rule `device/point/rule` raised at or after `since_ms`.
    pub fn unanswered(&self, device: &str, point: &str, rule: &str, since_ms: u64) -> Vec<String> {
        self.state
            .alarms
            .iter()
            .filter(|(_, r)| {
                r.device == device
                    && r.point == point
                    && r.rule == rule
                    && r.answer.is_none()
                    && r.raised_at_ms >= since_ms
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The sequence number of the last packet queued.
    pub fn last_seq(&self) -> u64 {
        self.state.last_seq
    }

    /// A packet with sequence number `seq` was queued.
    pub fn set_last_seq(&mut self, seq: u64) {
        self.state.last_seq = seq;
    }

    /// Saves the state; a failure is logged (answers given now may be lost on restart).
    pub fn save(&self) {
        if let Err(e) = crate::store::save_json(&self.path, &self.state) {
            error!(file = %self.path.display(), error = %e, "Cannot save the outcome state; answers given now may be lost on restart.");
        }
    }
}
