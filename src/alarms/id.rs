//! Names of points, rules and alarms between stages: indices where the gateway looks things up,
//! and the alarm id engineers see, typed instead of joined and split as text.

use std::fmt;

/// A point: its device's index in the configuration and its index among that device's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PointId {
    /// Index of the device.
    pub device: usize,
    /// Index of the point on its device.
    pub point: usize,
}

/// A rule of a point: the point and the rule's index among the point's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId {
    /// The point.
    pub point: PointId,
    /// Index of the rule on the point.
    pub rule: usize,
}

/// One raise of a rule, `<device>/<point>/<rule>/<occurrence>`, as engineers see it in alerts
/// and events and name it in commands. Occurrences count from 1 and survive restarts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlarmId {
    /// Device name.
    pub device: String,
    /// Point name.
    pub point: String,
    /// Rule name.
    pub rule: String,
    /// Which raise of the rule.
    pub occurrence: u64,
}

impl AlarmId {
    /// `<device>/<point>/<rule>`: the rule the alarm belongs to, the key its occurrence counter
    /// is saved under.
    pub fn rule_key(&self) -> String {
        format!("{}/{}/{}", self.device, self.point, self.rule)
    }
}

impl fmt::Display for AlarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.device, self.point, self.rule, self.occurrence
        )
    }
}

/// Why a text is not an alarm id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alarm_id `{0}` is not of the form device/point/rule/occurrence")]
pub struct BadAlarmId(pub String);

impl std::str::FromStr for AlarmId {
    type Err = BadAlarmId;
    fn from_str(s: &str) -> Result<Self, BadAlarmId> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [d, p, r, n] => Ok(Self {
                device: d.to_string(),
                point: p.to_string(),
                rule: r.to_string(),
                occurrence: n.parse().map_err(|_| BadAlarmId(s.to_string()))?,
            }),
            _ => Err(BadAlarmId(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alarm_id_reads_back_as_written_and_refuses_other_shapes() {
        let id: AlarmId = "press1/oil_temp/high/3".parse().unwrap();
        assert_eq!(id.to_string(), "press1/oil_temp/high/3");
        assert_eq!(id.rule_key(), "press1/oil_temp/high");
        assert!("press1/oil_temp/high".parse::<AlarmId>().is_err());
        assert!("a/b/c/d/1".parse::<AlarmId>().is_err());
        assert!("a/b/c/x".parse::<AlarmId>().is_err());
    }
}
