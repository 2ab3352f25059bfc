//! qis-edge: firmware for industrial edge gateways.
//!
//! It polls PLCs, raises alarms that engineers watch on the plant's local MQTT broker, turns
//! confirmed failure signatures into signed outcome packets shared with peer plants, and applies
//! the packets peers send to its own adaptable alarm levels, weighted by trust.
//!
//! # Layout
//!
//! The folders are the stages, in the order data flows through them:
//!
//! - [`sources`]: field device tasks (Modbus TCP and RTU, OPC UA, vibration) that emit samples
//!   with a quality.
//! - [`analysis`]: vibration features and bearing diagnosis, SPC charts, run rules, CUSUM,
//!   EWMA; synchronous and pure.
//! - [`alarms`]: the alarm state machine (deadband, on-delay, acknowledgement) and the ids of
//!   points, rules and alarms; pure.
//! - [`core`]: one input at a time (sample, command, peer packet, reconnection, tick) with the
//!   time passed in, outputs queued; no I/O but the state database; storage faults as a state;
//!   the read model ([`core::View`]).
//! - [`mqtt`]: the local broker (commands in; metrics, alerts, events, thresholds out) and the
//!   uplink to the fleet broker; topics and JSON payloads.
//! - [`outcomes`]: answers to alarms, the ledger of evidence, packets made from them, the alarm
//!   history, and the durable outbox (a table).
//! - [`intake`]: peers' packets in: the guard, the replay memory, counts, committing before
//!   acknowledging.
//! - [`synthesis`]: peers' proposals → effective levels, by trust; adaptation returns level
//!   changes; pure.
//! - [`packet`]: outcome packets: wire format, context fingerprints, keys, verification.
//! - [`config`]: the TOML file: typed, documented, every error reported with its position; data
//!   only.
//! - [`web`]: the dashboard (pages, live updates, commands through the core's command path)
//!   and `/metrics`, from the read model.
//! - [`run`]: wiring: key and state, both MQTT links, the dashboard, sources, the core task,
//!   shutdown.
//! - [`db`], [`store`], [`backoff`], [`watchdog`]: the state database (SQLite: open,
//!   migrations, damaged files, storage errors); atomic files (keys, certificates, the import
//!   of earlier JSON state); reconnect delays with jitter; systemd notification.
//! - [`cli`], [`demo`]: the command line (`main.rs` only calls [`cli::main`]); the
//!   self-contained demo.
//!
//! # What may import what
//!
//! A module imports only the modules its row names (and, but for `analysis`, `store` and `db`,
//! the leaves `store`, `db`, `backoff` and `watchdog`); `tests/layers.rs` reads every `crate::…`
//! path in `src/` and fails on any other arrow, so the layering cannot silently rot.
//!
//! | module | may import |
//! |---|---|
//! | `analysis`, `store`, `db`, `backoff`, `watchdog` | nothing of the crate |
//! | `packet` | `store` |
//! | `config` | `analysis`, `packet` |
//! | `alarms` | `config` |
//! | `synthesis` | `alarms`, `config`, `packet` |
//! | `outcomes` | `alarms`, `config`, `packet`, `analysis`, `store` |
//! | `intake` | `synthesis`, `packet`, `store` |
//! | `sources` | `config`, `analysis`, `backoff`, `store` |
//! | `mqtt` | `sources` (its `Quality` and `DeviceStats`), `outcomes`, `synthesis`, `intake`, `alarms`, `config`, `packet`, `analysis`, `backoff` |
//! | `core` | all of the above, but not `mqtt::local` or `mqtt::uplink` (it owns no connection) |
//! | `web` | `core`, `mqtt` (not its connections), `outcomes`, `sources`, `alarms`, `config`, `intake`, `synthesis` |
//! | `sparkplug` | `web` (its read model and command type), `core`, `mqtt` (not its connections), `sources`, `config`, `alarms`, `store`, `backoff` |
//! | `run` | all of the above |
//! | `cli`, `demo`, `sim` | everything |

pub mod alarms;
pub mod analysis;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod core;
pub mod db;
pub mod demo;
pub mod intake;
pub mod mqtt;
pub mod outcomes;
pub mod packet;
pub mod run;
pub mod sim;
pub mod sources;
pub mod sparkplug;
pub mod store;
pub mod synthesis;
pub mod watchdog;
pub mod web;

pub use run::run;
