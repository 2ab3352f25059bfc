//! qis-edge: firmware for industrial edge gateways.
//!
//! It polls PLCs, raises alarms that engineers watch on the plant's local MQTT broker, turns
//! confirmed failure signatures into signed outcome packets shared with peer plants, and applies
//! the packets peers send to its own adaptable alarm levels, weighted by trust.
//!
//! # Layout
//!
//! - [`config`]: the TOML file: typed, documented, every error reported with its position.
//! - [`sources`]: field device tasks (Modbus TCP and RTU, OPC UA, vibration) that emit samples
//!   with a quality.
//! - [`alarms`]: the alarm state machine (deadband, on-delay, acknowledgement); pure.
//! - [`analysis`]: local analysis: vibration features and bearing diagnosis, SPC charts, run
//!   rules, CUSUM, EWMA; synchronous and pure.
//! - [`outcomes`]: engineers' (and PLC faults') confirmations and refutations, the ledger of
//!   evidence, and the durable outbox.
//! - [`packet`]: outcome packets: wire format, context fingerprints, keys, the intake guard.
//! - [`routing`]: the local MQTT broker: topics, JSON payloads, the connection task.
//! - [`gateway`]: wiring: pollers → core (metrics, alarms, alerts) ← commands.
//! - [`demo`]: the self-contained demo: embedded broker, two simulated plants and gateways.
//! - [`cli`]: the command line; `main.rs` only calls [`cli::main`].
//! - [`synthesis`]: peers' packets → proposals → effective thresholds, by trust.
//! - [`store`]: atomic, corruption-tolerant state files.
//! - [`backoff`], [`watchdog`]: reconnect delays with jitter; systemd notification.

pub mod alarms;
pub mod analysis;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod outcomes;
pub mod packet;
pub mod routing;
pub mod sources;
pub mod store;
pub mod synthesis;
pub mod watchdog;

pub use gateway::run;
