//! Local analysis stages: synchronous, free of I/O, and allocation-free per sample after
//! warm-up.
//!
//! - [`spc`]: statistical process control (Shewhart charts, run rules, CUSUM, EWMA, capability).
//! - [`vibration`]: FFT features, ISO 10816 severity, envelope analysis and bearing diagnosis.

pub mod spc;
pub mod vibration;
