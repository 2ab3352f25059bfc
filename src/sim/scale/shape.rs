//! The fleet's shape for a scale run: which plant has which context and accepts which match
//! level, drawn so that each confirmation must reach a known subset of the fleet by each
//! level, and each plant's gateway configuration.

use crate::packet::MatchLevel;
use std::fmt::Write;
use std::path::Path;

/// One plant's context, as the indices of its levels, and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub class: u8,
    pub process: u8,
    pub mounting: u8,
    pub variant: u16,
    /// The level its rule accepts (`adapt.match`); sources have no adaptable rule.
    pub level: MatchLevel,
    /// A source confirms a failure and shares it; the others receive.
    pub source: bool,
}

impl Shape {
    /// Whether a packet from `source` reaches this plant: their contexts agree down to the
    /// level this plant accepts (class, then process, then sensor and mounting, then the
    /// attributes).
    pub fn hears(&self, source: &Shape) -> bool {
        if self.source {
            return false;
        }
        let depth = match self.level {
            MatchLevel::Class => 1,
            MatchLevel::Process => 2,
            MatchLevel::Mounting => 3,
            MatchLevel::Full => 4,
        };
        let mine = [
            u16::from(self.class),
            u16::from(self.process),
            u16::from(self.mounting),
            self.variant,
        ];
        let theirs = [
            u16::from(source.class),
            u16::from(source.process),
            u16::from(source.mounting),
            source.variant,
        ];
        mine[..depth] == theirs[..depth]
    }
}

/// SplitMix64: a fixed, well-mixed sequence, so a run's fleet is the same every time.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `plants` shapes: the first `sources` are sources of class 0, each of its own variant and a
/// mix of processes and mountings; the receivers draw two classes, processes and mountings,
/// a variant among the sources' and two no source has, and a match level.
pub fn fleet(plants: usize, sources: usize) -> Vec<Shape> {
    (0..plants)
        .map(|i| {
            if i < sources {
                return Shape {
                    class: 0,
                    process: (i % 2) as u8,
                    mounting: ((i / 2) % 2) as u8,
                    variant: i as u16,
                    level: MatchLevel::Full,
                    source: true,
                };
            }
            let r = mix(i as u64);
            Shape {
                class: (r & 1) as u8,
                process: ((r >> 1) & 1) as u8,
                mounting: ((r >> 2) & 1) as u8,
                variant: ((r >> 3) % (sources as u64 + 2)) as u16,
                level: MatchLevel::ALL[((r >> 16) % 4) as usize],
                source: false,
            }
        })
        .collect()
}

/// The joiner: a receiver of class 0 accepting class-level packets, so it hears every source.
pub fn joiner(sources: usize) -> Shape {
    Shape {
        class: 0,
        process: 0,
        mounting: 0,
        variant: sources as u16 + 1,
        level: MatchLevel::Class,
        source: false,
    }
}

/// Where a plant's gateway connects and what it polls.
pub struct Links<'a> {
    pub site: &'a str,
    pub state_dir: &'a Path,
    /// The local broker.
    pub mqtt: (&'a str, u16),
    /// The fleet broker's nodes, tried in turn.
    pub uplink: &'a [(String, u16)],
    /// The simulated PLC, and the holding register of this plant's temperature.
    pub plc: u16,
    pub register: u16,
    /// Names this run's contexts, so that retained packets of another run never match.
    pub run: &'a str,
    /// `[outcomes] join_requests`.
    pub join_requests: bool,
}

/// The gateway configuration of a plant of `shape`: one pump with a bearing temperature; a
/// source warns at 65 °C, a receiver at 80 °C with adaptable levels between 60 and 80.
pub fn toml(shape: &Shape, links: &Links) -> String {
    let (first, rest) = links
        .uplink
        .split_first()
        .expect("at least one uplink node");
    let failover: Vec<String> = rest.iter().map(|(h, p)| format!("\"{h}:{p}\"")).collect();
    let mut t = format!(
        "[site]\nid = \"{}\"\nstate_dir = \"{}\"\n\n\
         [mqtt]\nhost = \"{}\"\nport = {}\nkeep_alive_s = 30\n\n\
         [uplink]\nhost = \"{}\"\nport = {}\nfailover = [{}]\nkeep_alive_s = 30\n\n\
         [outcomes]\njoin_requests = {}\n\n\
         [[devices]]\ntype = \"modbus_tcp\"\nname = \"pump\"\nhost = \"127.0.0.1\"\nport = {}\n\
         poll_interval_ms = 1000\n\n\
         [devices.context]\nequipment_class = \"scale pump {} ({})\"\nprocess = \"process {}\"\n\
         sensor_kind = \"temperature\"\nmounting = \"mounting {}\"\n\
         [devices.context.attributes]\nvariant = \"{}\"\n\n\
         [[devices.points]]\nname = \"bearing_temp\"\nregister = \"holding\"\naddress = {}\nunit = \"°C\"\n\n\
         [[devices.points.alarms]]\nkind = \"high\"\nalarm = 95.0\n",
        links.site,
        links.state_dir.display().to_string().replace('\\', "\\\\"),
        links.mqtt.0,
        links.mqtt.1,
        first.0,
        first.1,
        failover.join(", "),
        links.join_requests,
        links.plc,
        shape.class,
        links.run,
        shape.process,
        shape.mounting,
        shape.variant,
        links.register,
    );
    if shape.source {
        t.push_str("warning = 65.0\n");
    } else {
        let _ = write!(
            t,
            "warning = 80.0\n[devices.points.alarms.adapt]\nfloor = 60.0\nceiling = 80.0\nmatch = \"{}\"\n",
            shape.level.as_str()
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_has_receivers_and_the_joiner_hears_every_source() {
        let shapes = fleet(100, 5);
        for level in MatchLevel::ALL {
            let hearing = shapes
                .iter()
                .filter(|r| r.level == level && shapes.iter().any(|s| s.source && r.hears(s)))
                .count();
            assert!(hearing > 0, "no receiver hears a source at {level:?}");
        }
        let deaf = shapes
            .iter()
            .filter(|r| !r.source && !shapes.iter().any(|s| s.source && r.hears(s)))
            .count();
        assert!(deaf > 0, "some receivers hear nobody");
        let joiner = joiner(5);
        assert!(shapes[..5].iter().all(|s| joiner.hears(s)));
    }

    #[test]
    fn a_plant_configuration_parses_with_its_level() {
        let shape = fleet(10, 2)[7];
        let text = toml(
            &shape,
            &Links {
                site: "scale-7",
                state_dir: Path::new("/tmp/x"),
                mqtt: ("127.0.0.1", 1883),
                uplink: &[("127.0.0.1".into(), 1884), ("127.0.0.1".into(), 1885)],
                plc: 502,
                register: 7,
                run: "r",
                join_requests: true,
            },
        );
        let config = crate::config::parse_str(&text, "t").unwrap();
        assert_eq!(config.devices.len(), 1);
        assert!(text.contains(&format!("match = \"{}\"", shape.level.as_str())));
    }
}
