//! `[storage]`: the state database's history limits and how a storage fault is retried.

use super::*;

/// `[storage]`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Alarms kept (with their answers: the outcome history); the oldest go first. An alarm
    /// forgotten can no longer be answered. Default 10 000.
    #[serde(default = "default_alarms_max")]
    pub alarms_max: usize,
    /// Alarm transitions kept (the alarm history). Default 100 000.
    #[serde(default = "default_events_max")]
    pub events_max: usize,
    /// Alarms and alarm transitions older than this are deleted, days. Default 365.
    #[serde(default = "default_history_days")]
    pub history_days: u32,
    /// Longest wait between retries while the disk is full or read-only, seconds. Default 60.
    #[serde(default = "default_retry_max_s")]
    pub retry_max_s: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            alarms_max: default_alarms_max(),
            events_max: default_events_max(),
            history_days: default_history_days(),
            retry_max_s: default_retry_max_s(),
        }
    }
}

fn default_alarms_max() -> usize {
    10_000
}
fn default_events_max() -> usize {
    100_000
}
fn default_history_days() -> u32 {
    365
}
fn default_retry_max_s() -> u64 {
    60
}
