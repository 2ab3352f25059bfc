//! What an alarm watched, as a type: the point's signal and the rule's direction, or the SPC
//! chart of a signal. Saved and shown as text (`process_value:high`, `band_rms:0:high`,
//! `spc:kurtosis`), the form the stored alarm records and the `outcome` event have always used.

use crate::config::VibrationFeature;
use crate::packet::{self as pk, Direction, Feature};
use std::fmt;

/// What a point is: a PLC process value, or a feature of the vibration analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A value read from a PLC or an OPC UA server.
    ProcessValue,
    /// A feature of a vibration device.
    Vibration(VibrationFeature),
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signal::ProcessValue => f.write_str("process_value"),
            Signal::Vibration(v) => v.fmt(f),
        }
    }
}

impl std::str::FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "process_value" => Ok(Signal::ProcessValue),
            other => other.parse().map(Signal::Vibration),
        }
    }
}

/// The signal pattern of an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// A level rule: the signal crossed a level in a direction (`<signal>:<high|low>`).
    Level {
        /// What the point is.
        signal: Signal,
        /// The rule's direction.
        direction: Direction,
    },
    /// The point's SPC chart signalled (`spc:<signal>`).
    Spc {
        /// What the point is.
        signal: Signal,
    },
}

impl Pattern {
    /// The packet's feature and direction for this pattern; `spc` is the SPC record of an SPC
    /// alarm (its chart, rule set and first violated rule).
    pub fn to_feature(self, spc: Option<&super::SpcRecord>) -> (Feature, Direction) {
        match self {
            Pattern::Spc { .. } => (
                spc.map_or(Feature::ProcessValue, spc_feature),
                Direction::High,
            ),
            Pattern::Level { signal, direction } => (signal_feature(signal), direction),
        }
    }
}

fn signal_feature(signal: Signal) -> Feature {
    use VibrationFeature as V;
    match signal {
        Signal::ProcessValue => Feature::ProcessValue,
        Signal::Vibration(v) => match v {
            V::VelocityRms => Feature::VelocityRms,
            V::Rms => Feature::AccelerationRms,
            V::Kurtosis => Feature::Kurtosis,
            V::CrestFactor => Feature::CrestFactor,
            V::OuterRaceScore => Feature::BearingDefect(pk::BearingDefect::Bpfo),
            V::InnerRaceScore => Feature::BearingDefect(pk::BearingDefect::Bpfi),
            V::BallScore => Feature::BearingDefect(pk::BearingDefect::Bsf),
            V::CageScore => Feature::BearingDefect(pk::BearingDefect::Ftf),
            V::BandRms(_) => Feature::BandAmplitude,
            V::Harmonic(order) => Feature::Harmonic { order },
            V::Peak | V::PeakToPeak | V::Skewness | V::IsoZone | V::BearingVerdict => {
                Feature::ProcessValue
            }
        },
    }
}

fn spc_feature(s: &super::SpcRecord) -> Feature {
    use crate::analysis::spc::{ChartKind, RuleSet};
    Feature::SpcRule {
        chart: match s.chart {
            ChartKind::XbarR => pk::SpcChart::XbarR,
            ChartKind::XbarS => pk::SpcChart::XbarS,
            ChartKind::Imr => pk::SpcChart::Imr,
        },
        rules: match s.rule_set {
            RuleSet::WesternElectric => pk::SpcRuleSet::WesternElectric,
            RuleSet::Nelson => pk::SpcRuleSet::Nelson,
        },
        rule: s.rule,
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Level { signal, direction } => {
                let direction = match direction {
                    Direction::High => "high",
                    Direction::Low => "low",
                };
                write!(f, "{signal}:{direction}")
            }
            Pattern::Spc { signal } => write!(f, "spc:{signal}"),
        }
    }
}

impl std::str::FromStr for Pattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(signal) = s.strip_prefix("spc:") {
            return Ok(Pattern::Spc {
                signal: signal.parse()?,
            });
        }
        let (signal, direction) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("pattern `{s}` is not of the form <signal>:<high|low>"))?;
        let direction = match direction {
            "high" => Direction::High,
            "low" => Direction::Low,
            other => return Err(format!("pattern `{s}`: `{other}` is not high or low")),
        };
        Ok(Pattern::Level {
            signal: signal.parse()?,
            direction,
        })
    }
}

impl serde::Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_reads_back_as_written() {
        for text in [
            "process_value:high",
            "process_value:low",
            "band_rms:0:high",
            "harmonic:2:low",
            "outer_race_score:high",
            "spc:process_value",
            "spc:kurtosis",
            "spc:harmonic:3",
        ] {
            let p: Pattern = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
        }
        assert!("process_value".parse::<Pattern>().is_err());
        assert!("nonsense:high".parse::<Pattern>().is_err());
        assert!("process_value:up".parse::<Pattern>().is_err());
    }

    #[test]
    fn patterns_name_the_packet_feature() {
        let p: Pattern = "harmonic:2:high".parse().unwrap();
        assert_eq!(
            p.to_feature(None),
            (Feature::Harmonic { order: 2 }, Direction::High)
        );
        let p: Pattern = "rms:low".parse().unwrap();
        assert_eq!(
            p.to_feature(None),
            (Feature::AccelerationRms, Direction::Low)
        );
        let p: Pattern = "spc:rms".parse().unwrap();
        assert_eq!(p.to_feature(None), (Feature::ProcessValue, Direction::High));
    }
}
