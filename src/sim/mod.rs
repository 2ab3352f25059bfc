//! `qis-edge sim`: whole bearing lives replayed across a fleet of real gateway instances, to
//! measure how much earlier, and how much more falsely, each plant warns with and without its
//! peers. [`life`] reads and checks the lives, [`sensor`] replays one as a Modbus TCP vibration
//! sensor, [`engineer`] is the rule each plant's engineer follows to set its own levels.

pub mod engineer;
pub mod fleet;
pub mod life;
pub mod plant;
pub mod sensor;
