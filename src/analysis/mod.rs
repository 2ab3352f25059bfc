//! Local analysis stages: synchronous, free of I/O, and allocation-free per sample after
//! warm-up.
//!
//! - [`spc`]: statistical process control (Shewhart charts, run rules, CUSUM, EWMA, capability).

pub mod spc;
