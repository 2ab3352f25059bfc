//! A simulated plant's gateway configuration: the same TOML a plant would write, for the same
//! `run` code. One Modbus TCP device (the plant's [`super::sensor`]) with the five features as
//! points; on the features the engineer watches, a `high` warning at the engineer's level
//! ([`super::engineer`]) that peers may tighten down to the healthy mean, confirmed by the
//! sensor's end-of-life fault; the context names the test rig and the operating condition, so
//! packets route between plants of the same condition, and the run (its mode and the process),
//! so packets one run left retained on the broker never reach the next.

use super::engineer::{self, Baseline};
use super::life::{Life, FEATURES};
use std::fmt::Write;
use std::path::PathBuf;

/// The features each plant's engineer sets a warning on, by index into [`FEATURES`]: the
/// overall level, the impulsiveness and the high-frequency band that bearing wear raises.
pub const WATCHED: [usize; 3] = [0, 3, 4];

/// The failure mode the end-of-life fault confirms.
pub const FAILURE_MODE: &str = "bearing_end_of_life";

/// What one plant's gateway needs to know.
#[derive(Debug, Clone)]
pub struct Plant<'a> {
    /// Its life.
    pub life: &'a Life,
    /// Site id.
    pub site: String,
    /// Its state directory.
    pub state_dir: PathBuf,
    /// The broker every plant uses, locally and as the fleet link: its host.
    pub broker_host: String,
    /// Its port.
    pub broker_port: u16,
    /// Its sensor's port.
    pub sensor_port: u16,
    /// Milliseconds between polls (one snapshot each).
    pub poll_interval_ms: u64,
    /// Whether it shares outcomes with its peers and applies theirs, and how its levels travel.
    pub mode: super::fleet::Mode,
    /// Its `[synthesis] baseline_weight`.
    pub baseline_weight: f64,
    /// Its watched rules' `adapt.match`.
    pub match_level: crate::packet::MatchLevel,
    /// The engineer's warning at `k` sigma over the healthy mean.
    pub k: f64,
}

impl Plant<'_> {
    /// The engineer's baselines of the watched features.
    pub fn baselines(&self) -> Vec<(usize, Baseline)> {
        WATCHED
            .iter()
            .map(|&f| (f, engineer::baseline(self.life, f, self.k)))
            .collect()
    }

    /// The gateway configuration.
    pub fn toml(&self) -> String {
        let mut t = format!(
            "[site]\nid = \"{}\"\nstate_dir = \"{}\"\n\n\
             [mqtt]\nhost = \"{}\"\nport = {}\nkeep_alive_s = 30\n\n\
             [metrics]\nmin_interval_ms = 0\nmax_interval_ms = 3600000\n\n\
             [outcomes]\nshare = {share}\n\n[synthesis]\napply = {share}\nbaseline_weight = {:?}\n\n",
            self.site,
            self.state_dir.display().to_string().replace('\\', "\\\\"),
            self.broker_host,
            self.broker_port,
            self.baseline_weight,
            share = self.mode.shares(),
        );
        let relative = self.mode == super::fleet::Mode::Relative;
        let _ = write!(
            t,
            "[[devices]]\ntype = \"modbus_tcp\"\nname = \"sensor\"\nhost = \"127.0.0.1\"\nport = {}\n\
             poll_interval_ms = {}\ntimeout_ms = 1000\n\n\
             [devices.context]\nequipment_class = \"rolling element bearing\"\n\
             process = \"accelerated run to failure\"\nsensor_kind = \"accelerometer\"\n\
             mounting = \"housing, horizontal\"\n\
             [devices.context.attributes]\ncondition = \"{}\"\nsimulation_run = \"{}-{}\"\n\n",
            self.sensor_port,
            self.poll_interval_ms,
            self.life.condition.id,
            self.mode.as_str(),
            std::process::id()
        );
        let baselines = self.baselines();
        for (i, name) in FEATURES.iter().enumerate() {
            let _ = write!(
                t,
                "[[devices.points]]\nname = \"{name}\"\nregister = \"holding\"\naddress = {}\ndata_type = \"f32\"\n",
                2 * i
            );
            if let Some((_, b)) = baselines.iter().find(|(f, _)| *f == i) {
                let _ = write!(
                    t,
                    "\n[[devices.points.alarms]]\nkind = \"high\"\nwarning = {:?}\n\
                     [devices.points.alarms.adapt]\nfloor = {:?}\nceiling = {:?}\nmatch = \"{}\"\n",
                    b.warning,
                    b.mean,
                    b.warning,
                    self.match_level.as_str()
                );
                if relative {
                    let _ = write!(t, "healthy = {:?}\nrelative = true\n", b.mean);
                }
                let _ = write!(
                    t,
                    "[devices.points.alarms.confirmed_by]\npoint = \"failed\"\nequals = 1\n\
                     within_days = 366\nfailure_mode = \"{FAILURE_MODE}\"\n"
                );
            }
            t.push('\n');
        }
        t.push_str("[[devices.points]]\nname = \"failed\"\nregister = \"holding\"\naddress = 10\n");
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_str, DeviceConfig};
    use crate::sim::life::{Condition, Snapshot};

    #[test]
    fn a_plant_is_a_gateway_configuration_with_the_engineers_levels() {
        let life = Life {
            name: "b".into(),
            condition: Condition {
                id: 3,
                rpm: 1500.0,
                radial_load_n: 5000.0,
            },
            snapshots: (0..400)
                .map(|i| Snapshot {
                    t_s: f64::from(i) * 10.0,
                    features: [1.0 + f64::from(i % 3) * 0.1; 5],
                })
                .collect(),
        };
        let plant = Plant {
            life: &life,
            site: "b".into(),
            state_dir: "/tmp/b".into(),
            broker_host: "127.0.0.1".into(),
            broker_port: 1883,
            sensor_port: 5020,
            poll_interval_ms: 10,
            mode: crate::sim::fleet::Mode::Relative,
            baseline_weight: 0.5,
            match_level: crate::packet::MatchLevel::Mounting,
            k: 3.0,
        };
        let config = parse_str(&plant.toml(), "b.toml").unwrap_or_else(|e| panic!("{e}"));
        let DeviceConfig::ModbusTcp(d) = &config.devices[0] else {
            panic!("a Modbus TCP sensor")
        };
        assert_eq!(d.points.len(), FEATURES.len() + 1);
        let b = engineer::baseline(&life, 0, 3.0);
        let rule = &d.points[0].alarms[0];
        assert_eq!(rule.warning, Some(b.warning));
        assert!(rule.confirmed_by.is_some());
        let adapt = rule.adapt.as_ref().expect("adaptable");
        assert_eq!(adapt.healthy, Some(b.mean));
        assert!(adapt.relative);
        assert_eq!(adapt.match_level, crate::packet::MatchLevel::Mounting);
        assert_eq!(config.synthesis.baseline_weight, 0.5);
        assert!(d.points[1].alarms.is_empty(), "peak is not watched");
        assert_eq!(
            config.devices[0]
                .context()
                .unwrap()
                .attributes
                .get("condition")
                .map(String::as_str),
            Some("3")
        );
    }
}
