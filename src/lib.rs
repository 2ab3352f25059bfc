pub mod alarms;
pub mod backoff;
pub mod config;
pub mod sources;
