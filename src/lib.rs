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
//!   time passed in, outputs queued; no I/O but its state files; the read model ([`core::View`]).
//! - [`mqtt`]: the local broker (commands in; metrics, alerts, events, thresholds out) and the
//!   uplink to the fleet broker; topics and JSON payloads.
//! - [`outcomes`]: answers to alarms, the ledger of evidence, packets made from them, and the
//!   durable outbox (a file store).
//! - [`intake`]: peers' packets in: the guard, the replay memory, counts, saving before
//!   acknowledging.
//! - [`synthesis`]: peers' proposals → effective levels, by trust; adaptation returns level
//!   changes; pure.
//! - [`packet`]: outcome packets: wire format, context fingerprints, keys, verification.
//! - [`config`]: the TOML file: typed, documented, every error reported with its position; data
//!   only.
//! - [`run`]: wiring: key and state, both MQTT links, sources, the core task, shutdown.
//! - [`store`], [`backoff`], [`watchdog`]: atomic state files; reconnect delays with jitter;
//!   systemd notification.
//! - [`cli`], [`demo`]: the command line (`main.rs` only calls [`cli::main`]); the
//!   self-contained demo.
//!
//! # What may import what
//!
//! A module imports only modules below it in this table (and the leaf modules `store`,
//! `backoff`, `watchdog`). `tests/layers.rs` reads every `use crate::…` and `crate::…` path in
//! `src/` and fails on an arrow that points up.
//!
//! | layer | modules | may also import |
//! |---|---|---|
//! | 0 | `analysis`, `store`, `backoff`, `watchdog` | nothing of the crate |
//! | 1 | `packet` | `store` |
//! | 2 | `config` | `analysis`, `packet` |
//! | 3 | `alarms` | `config` |
//! | 4 | `synthesis` | `alarms`, `config`, `packet` |
//! | 4 | `outcomes` | `alarms`, `config`, `packet`, `analysis` |
//! | 4 | `intake` | `synthesis`, `packet` |
//! | 5 | `sources` | `config`, `analysis` |
//! | 6 | `mqtt` | `sources` (`Quality`, `DeviceStats`), `outcomes`, `synthesis`, `intake`, `alarms`, `config`, `packet`, `analysis` |
//! | 7 | `core` | everything above but `mqtt::local` and `mqtt::uplink` |
//! | 8 | `run` | everything above |
//! | 9 | `cli`, `demo` | everything |

pub mod alarms;
pub mod analysis;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod core;
pub mod demo;
pub mod intake;
pub mod mqtt;
pub mod outcomes;
pub mod packet;
pub mod run;
pub mod sources;
pub mod store;
pub mod synthesis;
pub mod watchdog;

pub use run::run;
