//! Storage health. A commit that fails (disk full, read-only, I/O error) puts the gateway in a
//! storage fault: a state, not a loop. Polling and alarming go on; answers are refused with a
//! reason; peers' packets stay unacknowledged (the broker keeps them); the fault is published
//! (`qis/<site>/status` lists it, `qis/<site>/stats/storage` tells what and since when); one
//! log line per interval, with a count; writes are retried with backoff, and the first that
//! commits ends the fault.

use super::{Core, Now};
use crate::backoff::Backoff;
use crate::db::StorageError;
use crate::intake::LogLimiter;
use crate::mqtt::payload::{timestamp, AnswerCommand};
use crate::mqtt::Qos;
use std::time::{Duration, Instant, SystemTime};
use tracing::{error, info};

/// At most one storage ERROR line per this interval while a fault lasts.
pub const STORAGE_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// PLC fault confirmations kept during a storage fault.
pub const MAX_KEPT: usize = 1024;
/// The first retry after a failed write.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// The fault, while it lasts.
#[derive(Debug, Clone)]
struct Fault {
    error: String,
    since: SystemTime,
    /// Failed writes since it began.
    failures: u64,
}

/// Whether the state database takes writes, and when to try again.
#[derive(Debug)]
pub struct Storage {
    fault: Option<Fault>,
    backoff: Backoff,
    retry_at: Option<Instant>,
    log: LogLimiter,
    /// PLC fault confirmations refused by the fault, given again once it ends.
    kept: Vec<AnswerCommand>,
}

/// `qis/<site>/stats/storage` (retained).
#[derive(Debug, serde::Serialize)]
struct StorageStats<'a> {
    state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    failed_writes: u64,
    ts: String,
}

impl Storage {
    /// Healthy, retrying at most every `retry_max` once faulted.
    pub fn new(retry_max: Duration) -> Self {
        Self {
            fault: None,
            backoff: Backoff::new(FIRST_RETRY, retry_max),
            retry_at: None,
            log: LogLimiter::new(STORAGE_LOG_INTERVAL),
            kept: Vec::new(),
        }
    }

    /// Keeps a PLC fault's confirmation until storage recovers (at most [`MAX_KEPT`]).
    pub fn keep(&mut self, cmd: AnswerCommand) {
        if self.kept.len() < MAX_KEPT && !self.kept.iter().any(|k| k.alarm_id == cmd.alarm_id) {
            self.kept.push(cmd);
        }
    }

    /// The fault's description, while there is one.
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_ref().map(|f| f.error.as_str())
    }

    /// Failed writes since the fault began (None while healthy).
    pub fn failed_writes(&self) -> Option<u64> {
        self.fault.as_ref().map(|f| f.failures)
    }

    /// Lets the next write be tried at once, backoff or not: at shutdown, the last chance to
    /// save what waits (peers' packets whose acknowledgements are held) before the process
    /// ends.
    pub fn retry_now(&mut self) {
        self.retry_at = None;
    }

    /// Whether a write may be tried at `now`: always when healthy, after the backoff when not.
    pub fn retry_due(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| now >= at)
    }
}

impl Core {
    /// A write (`what`) failed: enter or stay in the fault, schedule the retry, log (limited).
    pub(super) fn storage_failed(&mut self, what: &str, e: &StorageError, now: Now) {
        let s = &mut self.storage;
        s.retry_at = Some(now.mono + s.backoff.next_delay());
        let began = s.fault.is_none();
        let fault = s.fault.get_or_insert(Fault {
            error: e.to_string(),
            since: now.wall,
            failures: 0,
        });
        fault.failures += 1;
        fault.error = e.to_string();
        let failures = fault.failures;
        if let Some(held_back) = s.log.allow(now.mono) {
            error!(
                what,
                error = %e,
                failed_writes = failures,
                held_back,
                "Storage fault: cannot write the state database. Polling and alarms go on; \
                 answers are refused and peers' packets wait until it is writable again \
                 (retried with backoff; further failures within {}s are counted, not logged).",
                STORAGE_LOG_INTERVAL.as_secs()
            );
        }
        if began {
            self.publish_storage(now);
        }
    }

    /// A write committed: a fault, if any, is over.
    pub(super) fn storage_ok(&mut self, now: Now) {
        let s = &mut self.storage;
        s.backoff.reset();
        s.retry_at = None;
        if let Some(fault) = s.fault.take() {
            info!(failed_writes = fault.failures, since = %timestamp(fault.since), "Storage recovered: the state database takes writes again.");
            self.publish_storage(now);
        }
    }

    /// Queues `stats/storage` and the status, which lists a fault.
    pub(super) fn publish_storage(&mut self, now: Now) {
        self.publish_storage_stats(now);
        self.publish_status(now);
    }

    /// Queues the online status, listing a storage fault if there is one.
    pub(super) fn publish_status(&mut self, now: Now) {
        let faults: &[&str] = if self.storage.fault.is_some() {
            &["storage"]
        } else {
            &[]
        };
        let status = crate::mqtt::payload::status_payload(
            &self.out.site,
            true,
            None,
            Some(now.wall),
            faults,
        );
        let topic = self.out.topics.status();
        self.out.bytes(topic, status, Qos::AtLeastOnce, true);
    }

    /// Queues the retained `stats/storage`.
    pub(super) fn publish_storage_stats(&mut self, now: Now) {
        let fault = self.storage.fault.as_ref();
        let stats = StorageStats {
            state: if fault.is_some() { "fault" } else { "ok" },
            error: fault.map(|f| f.error.as_str()),
            since: fault.map(|f| timestamp(f.since)),
            failed_writes: fault.map_or(0, |f| f.failures),
            ts: timestamp(now.wall),
        };
        let topic = self.out.topics.storage_stats();
        self.out.json(topic, &stats, Qos::AtLeastOnce, true);
    }

    /// On a tick: while faulted, at the retry time, probe the disk; then write what waits
    /// (raises not stored, the alarm history).
    pub(super) fn storage_tick(&mut self, now: Now) {
        if !self.storage.retry_due(now.mono) {
            return;
        }
        if self.storage.fault.is_some() {
            match self.answers.probe() {
                Ok(()) => self.storage_ok(now),
                Err(e) => return self.storage_failed("probe", &e, now),
            }
        }
        if self.answers.flush_due() {
            match self.answers.flush(now.unix_ms()) {
                Ok(()) => self.storage_ok(now),
                Err(e) => return self.storage_failed("alarm history", &e, now),
            }
        }
        if self.storage.fault.is_none() {
            for cmd in std::mem::take(&mut self.storage.kept) {
                self.confirm_by_plc(cmd, now);
            }
        }
    }
}
