//! The alarms this gateway raised and what engineers (or PLC faults) said of them, with the
//! ledger and the sequence number, in the state database ([`crate::db`]). Memory holds the
//! working copy; every change is one transaction, and memory changes only once it committed:
//! an answer, its ledger counts, the next sequence number and the signed packet for the outbox
//! commit together or not at all.
//!
//! The alarm history (every transition) is buffered and written in one transaction per tick;
//! history and alarms are pruned to the [`crate::config::StorageConfig`] limits as they grow.

use super::outbox::{self, Queued};
use super::{AlarmRecord, Answer, AnswerError, LedgerEntry, OutcomeState, PlannedAnswer};
use crate::alarms::AlarmId;
use crate::config::StorageConfig;
use crate::db::{counter, put_counter, Db, StorageError};
use rusqlite::{params, Transaction};
use tracing::warn;

/// The file the state lived in before the state database: imported once, then kept aside.
pub const OUTCOMES_FILE: &str = "outcomes.json";

/// A change of an adaptable rule's level in use, for the thresholds page's history.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelChange {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// `<device>/<point>/<rule>`.
    pub rule: String,
    /// The level in use from then on.
    pub value: f64,
    /// Its baseline.
    pub baseline: f64,
    /// Live proposals behind it.
    pub proposals: usize,
}

/// A change of a peer's trust, with the answer that moved it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustChange {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// The peer's public key, hex.
    pub source: String,
    /// Its trust from then on.
    pub trust: f64,
    /// The alarm whose answer moved it.
    pub alarm_id: String,
    /// `confirmed` or `refuted`.
    pub outcome: super::Outcome,
}

/// One alarm transition, for the alarm history.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmEvent {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// The alarm's id, from its raise on.
    pub alarm_id: Option<String>,
    /// Device, point and rule.
    pub device: String,
    /// The point.
    pub point: String,
    /// The rule.
    pub rule: String,
    /// State before and after, as the events name them.
    pub from: String,
    /// State after.
    pub to: String,
    /// `warning` or `alarm` while raised.
    pub severity: Option<String>,
    /// The value that caused it.
    pub value: Option<f64>,
    /// The level it crossed.
    pub threshold: Option<f64>,
    /// Who acknowledged.
    pub by: Option<String>,
}

/// What an answer did.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The ledger entry with the answer counted.
    pub entry: LedgerEntry,
    /// Seconds from the raise to a confirmation.
    pub lead_time_s: Option<u64>,
    /// The packet queued for the uplink, if the alarm's point has a context.
    pub queued: Option<u64>,
}

/// Why an answer was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerFailure {
    /// The answer is not valid (unknown alarm, answered before).
    #[error(transparent)]
    Refused(#[from] AnswerError),
    /// It could not be stored; nothing changed.
    #[error("not recorded: {0}; send it again once storage recovers")]
    Storage(#[from] StorageError),
}

/// Alarm records, answers and the ledger, in memory and in the database.
#[derive(Debug)]
pub struct Answers {
    state: OutcomeState,
    db: Db,
    limits: StorageConfig,
    outbox_max: usize,
    /// Raises not yet stored (the disk was full): written on the next successful flush.
    unsaved: Vec<String>,
    /// Alarm transitions waiting for the next flush.
    events: Vec<AlarmEvent>,
    /// Level changes waiting for the next flush.
    levels: Vec<LevelChange>,
    /// Trust changes waiting for the next flush.
    trusts: Vec<TrustChange>,
}

impl Answers {
    /// The state in `db`; rows that cannot be read are skipped with a WARN line.
    pub fn load(
        mut db: Db,
        limits: StorageConfig,
        outbox_max: usize,
    ) -> Result<Self, StorageError> {
        let state = read_state(&mut db)?;
        Ok(Self {
            state,
            db,
            limits,
            outbox_max: outbox_max.max(1),
            unsaved: Vec::new(),
            events: Vec::new(),
            levels: Vec::new(),
            trusts: Vec::new(),
        })
    }

    /// Empty state in memory only (tests, benches).
    pub fn memory() -> Self {
        Self::load(Db::memory(), StorageConfig::default(), 10_000).expect("an empty database")
    }

    /// Writes state imported from `outcomes.json` (first start on a database) in one
    /// transaction.
    pub fn import(&mut self, state: OutcomeState) -> Result<usize, StorageError> {
        let tx = self.db.conn().transaction()?;
        for (id, record) in &state.alarms {
            put_alarm(&tx, id, record)?;
        }
        for (key, n) in &state.occurrences {
            put_occurrence(&tx, key, *n)?;
        }
        for (key, entry) in &state.ledger {
            put_ledger(&tx, key, entry)?;
        }
        put_counter(&tx, "last_seq", state.last_seq)?;
        tx.commit()?;
        let n = state.alarms.len();
        self.state = state;
        Ok(n)
    }

    /// The connection, for the outbox import.
    pub fn db(&mut self) -> &mut Db {
        &mut self.db
    }

    /// How many times the rule `<device>/<point>/<rule>` was raised before.
    pub fn occurrences(&self, rule_key: &str) -> Option<u64> {
        self.state.occurrences.get(rule_key).copied()
    }

    /// Remembers a new raise (so it can be answered, also after a restart) and stores it. It
    /// is kept in memory either way; one that could not be stored is retried on
    /// [`Answers::flush`].
    pub fn raised(&mut self, id: &AlarmId, record: AlarmRecord) -> Result<(), StorageError> {
        let alarm_id = id.to_string();
        self.state.occurrences.insert(id.rule_key(), id.occurrence);
        let forgotten = self
            .state
            .raised_within(alarm_id.clone(), record, self.limits.alarms_max);
        let result = self.store_raises(std::slice::from_ref(&alarm_id), &forgotten);
        if result.is_err() {
            self.unsaved.push(alarm_id);
        }
        result
    }

    fn store_raises(&mut self, ids: &[String], forgotten: &[String]) -> Result<(), StorageError> {
        let tx = self.db.conn().transaction()?;
        for id in ids {
            let Some(record) = self.state.alarms.get(id) else {
                continue;
            };
            put_alarm(&tx, id, record)?;
            let key = format!("{}/{}/{}", record.device, record.point, record.rule);
            if let Some(n) = self.state.occurrences.get(&key) {
                put_occurrence(&tx, &key, *n)?;
            }
        }
        for id in forgotten {
            tx.execute("DELETE FROM alarms WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Answers an alarm: `share` turns the answered record, its ledger entry, lead time and a
    /// fresh sequence number into a packet for the outbox (None: nothing to share). The
    /// answer, the ledger, the sequence number and the packet commit in one transaction;
    /// nothing changes when it fails.
    pub fn answer(
        &mut self,
        alarm_id: &str,
        answer: Answer,
        now_ms: u64,
        share: impl FnOnce(&PlannedAnswer, u64) -> Option<Queued>,
    ) -> Result<Answered, AnswerFailure> {
        let planned = self.state.plan_answer(alarm_id, answer)?;
        let seq = (self.state.last_seq + 1).max(now_ms);
        let queued = share(&planned, seq);
        let tx = self.db.conn().transaction().map_err(StorageError::from)?;
        commit_answer(tx, &planned, queued.as_ref(), self.outbox_max)?;
        if queued.is_some() {
            self.state.last_seq = seq;
        }
        let answered = Answered {
            entry: planned.entry.clone(),
            lead_time_s: planned.lead_time_s,
            queued: queued.map(|q| q.seq),
        };
        self.state.apply_answer(planned);
        Ok(answered)
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

    /// Keeps an alarm transition for the history, written on the next [`Answers::flush`].
    pub fn history(&mut self, event: AlarmEvent) {
        // Bounded while storage is failing: the newest are kept.
        if self.events.len() >= self.limits.events_max {
            self.events.remove(0);
        }
        self.events.push(event);
    }

    /// Keeps a level change for the history, written on the next [`Answers::flush`].
    pub fn level_changed(&mut self, change: LevelChange) {
        if self.levels.len() >= self.limits.events_max {
            self.levels.remove(0);
        }
        self.levels.push(change);
    }

    /// Keeps a trust change for the history, written on the next [`Answers::flush`].
    pub fn trust_changed(&mut self, change: TrustChange) {
        if self.trusts.len() >= self.limits.events_max {
            self.trusts.remove(0);
        }
        self.trusts.push(change);
    }

    /// The last `per_rule` level changes of each rule, oldest first.
    pub fn recent_levels(&mut self, per_rule: usize) -> Result<Vec<LevelChange>, StorageError> {
        let conn = self.db.conn();
        let mut q = conn.prepare(
            "SELECT at_ms, rule, value, baseline, proposals FROM (SELECT *, row_number() OVER
             (PARTITION BY rule ORDER BY id DESC) AS n FROM level_events) WHERE n <= ?1 ORDER BY id",
        )?;
        let rows = q.query_map([per_rule as i64], |r| {
            Ok(LevelChange {
                at_ms: r.get::<_, i64>(0)?.max(0) as u64,
                rule: r.get(1)?,
                value: r.get(2)?,
                baseline: r.get(3)?,
                proposals: r.get::<_, i64>(4)?.max(0) as usize,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last `per_source` trust changes of each peer, oldest first (a row whose outcome
    /// does not read is skipped).
    pub fn recent_trust(&mut self, per_source: usize) -> Result<Vec<TrustChange>, StorageError> {
        let conn = self.db.conn();
        let mut q = conn.prepare(
            "SELECT at_ms, source, trust, alarm_id, outcome FROM (SELECT *, row_number() OVER
             (PARTITION BY source ORDER BY id DESC) AS n FROM trust_events) WHERE n <= ?1 ORDER BY id",
        )?;
        let rows = q.query_map([per_source as i64], |r| {
            let outcome: String = r.get(4)?;
            Ok((
                r.get::<_, i64>(0)?.max(0) as u64,
                r.get::<_, String>(1)?,
                r.get::<_, f64>(2)?,
                r.get::<_, String>(3)?,
                outcome,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (at_ms, source, trust, alarm_id, outcome) = row?;
            let Some(outcome) = super::Outcome::parse(&outcome) else {
                continue;
            };
            out.push(TrustChange {
                at_ms,
                source,
                trust,
                alarm_id,
                outcome,
            });
        }
        Ok(out)
    }

    /// Whether a flush has work.
    pub fn flush_due(&self) -> bool {
        !self.events.is_empty()
            || !self.unsaved.is_empty()
            || !self.levels.is_empty()
            || !self.trusts.is_empty()
    }

    /// Writes raises that could not be stored before and the buffered history, and prunes the
    /// history to its limits, in one transaction.
    pub fn flush(&mut self, now_ms: u64) -> Result<(), StorageError> {
        if !self.unsaved.is_empty() {
            let ids = self.unsaved.clone();
            self.store_raises(&ids, &[])?;
            self.unsaved.clear();
        }
        if self.events.is_empty() && self.levels.is_empty() && self.trusts.is_empty() {
            return Ok(());
        }
        let cutoff = now_ms.saturating_sub(u64::from(self.limits.history_days) * 86_400_000);
        let tx = self.db.conn().transaction()?;
        put_changes(&tx, &self.levels, &self.trusts)?;
        for table in ["level_events", "trust_events"] {
            tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE at_ms < ?1 OR id <= (SELECT max(id) FROM {table}) - ?2"
                ),
                params![cutoff as i64, self.limits.events_max as i64],
            )?;
        }
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO alarm_events(at_ms, alarm_id, device, point, rule, from_state,
                 to_state, severity, value, threshold, by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for e in &self.events {
                insert.execute(params![
                    e.at_ms as i64,
                    e.alarm_id,
                    e.device,
                    e.point,
                    e.rule,
                    e.from,
                    e.to,
                    e.severity,
                    e.value,
                    e.threshold,
                    e.by
                ])?;
            }
        }
        tx.execute(
            "DELETE FROM alarm_events WHERE at_ms < ?1
             OR id <= (SELECT max(id) FROM alarm_events) - ?2",
            params![cutoff as i64, self.limits.events_max as i64],
        )?;
        tx.execute(
            "DELETE FROM alarms WHERE raised_at_ms < ?1",
            [cutoff as i64],
        )?;
        tx.commit()?;
        self.events.clear();
        self.levels.clear();
        self.trusts.clear();
        self.state.alarms.retain(|_, r| r.raised_at_ms >= cutoff);
        Ok(())
    }

    /// Whether a write can commit now (see [`Db::probe`]).
    pub fn probe(&mut self) -> Result<(), StorageError> {
        self.db.probe()
    }
}

/// Writes level and trust changes in the caller's transaction.
fn put_changes(
    tx: &Transaction<'_>,
    levels: &[LevelChange],
    trusts: &[TrustChange],
) -> Result<(), StorageError> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO level_events(at_ms, rule, value, baseline, proposals)
             VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for l in levels {
        insert.execute(params![
            l.at_ms as i64,
            l.rule,
            l.value,
            l.baseline,
            l.proposals as i64
        ])?;
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO trust_events(at_ms, source, trust, alarm_id, outcome)
             VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for t in trusts {
        insert.execute(params![
            t.at_ms as i64,
            t.source,
            t.trust,
            t.alarm_id,
            t.outcome.as_str()
        ])?;
    }
    Ok(())
}

fn commit_answer(
    tx: Transaction<'_>,
    planned: &PlannedAnswer,
    queued: Option<&Queued>,
    outbox_max: usize,
) -> Result<(), StorageError> {
    put_alarm(&tx, &planned.alarm_id, &planned.record)?;
    put_ledger(&tx, &planned.key, &planned.entry)?;
    if let Some(q) = queued {
        put_counter(&tx, "last_seq", q.seq)?;
        outbox::insert(&tx, q, outbox_max)?;
    }
    crate::db::crash_point("answer-before-commit");
    tx.commit()?;
    crate::db::crash_point("answer-committed");
    Ok(())
}

fn put_alarm(tx: &Transaction<'_>, id: &str, r: &AlarmRecord) -> Result<(), StorageError> {
    let json = serde_json::to_string(r).map_err(|e| StorageError(e.to_string()))?;
    let outcome = r.answer.as_ref().map(|a| a.outcome.as_str());
    tx.prepare_cached(
        "INSERT INTO alarms(id, device, point, rule, raised_at_ms, outcome, answered_at_ms, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(id) DO UPDATE SET outcome = ?6, answered_at_ms = ?7, record = ?8",
    )?
    .execute(params![
        id,
        r.device,
        r.point,
        r.rule,
        r.raised_at_ms as i64,
        outcome,
        r.answer.as_ref().map(|a| a.at_ms as i64),
        json
    ])?;
    Ok(())
}

fn put_occurrence(tx: &Transaction<'_>, key: &str, n: u64) -> Result<(), StorageError> {
    tx.prepare_cached(
        "INSERT INTO occurrences(rule_key, n) VALUES (?1, ?2)
         ON CONFLICT(rule_key) DO UPDATE SET n = max(n, ?2)",
    )?
    .execute(params![key, n as i64])?;
    Ok(())
}

fn put_ledger(tx: &Transaction<'_>, key: &str, e: &LedgerEntry) -> Result<(), StorageError> {
    let leads = serde_json::to_string(&e.lead_times_s).unwrap_or_else(|_| "[]".into());
    tx.prepare_cached(
        "INSERT INTO ledger(key, validations, refutations, lead_times_s) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(key) DO UPDATE SET validations = ?2, refutations = ?3, lead_times_s = ?4",
    )?
    .execute(params![key, e.validations, e.refutations, leads])?;
    Ok(())
}

fn read_state(db: &mut Db) -> Result<OutcomeState, StorageError> {
    let mut state = OutcomeState {
        last_seq: counter(db, "last_seq")?,
        ..OutcomeState::default()
    };
    let conn = db.conn();
    let mut skipped = 0usize;
    let mut rows = conn.prepare("SELECT id, record FROM alarms")?;
    for row in rows.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (id, json) = row?;
        match serde_json::from_str::<AlarmRecord>(&json) {
            Ok(record) => {
                state.alarms.insert(id, record);
            }
            Err(_) => skipped += 1,
        }
    }
    let mut rows = conn.prepare("SELECT rule_key, n FROM occurrences")?;
    for row in rows.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (key, n) = row?;
        state.occurrences.insert(key, n.max(0) as u64);
    }
    let mut rows =
        conn.prepare("SELECT key, validations, refutations, lead_times_s FROM ledger")?;
    for row in rows.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, String>(3)?,
        ))
    })? {
        let (key, validations, refutations, leads) = row?;
        let lead_times_s = serde_json::from_str(&leads).unwrap_or_else(|_| {
            skipped += 1;
            Vec::new()
        });
        state.ledger.insert(
            key,
            LedgerEntry {
                validations,
                refutations,
                lead_times_s,
            },
        );
    }
    if skipped > 0 {
        warn!(
            skipped,
            "State database rows that cannot be read were skipped."
        );
    }
    Ok(state)
}
