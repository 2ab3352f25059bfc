//! The plant's local MQTT broker: topics, JSON payloads, and the connection task.

pub mod mqtt;
pub mod payload;

/// Topic names on the local broker, all under `qis/<site>/`.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// Topics for one site.
    pub fn new(site: &str) -> Self {
        Self {
            prefix: format!("qis/{site}"),
        }
    }
    /// `qis/<site>/status`: retained gateway status, with the last will.
    pub fn status(&self) -> String {
        format!("{}/status", self.prefix)
    }
    /// `qis/<site>/alerts/<device>/<point>`: retained alarm state of a point.
    pub fn alert(&self, device: &str, point: &str) -> String {
        format!("{}/alerts/{device}/{point}", self.prefix)
    }
    /// `qis/<site>/events`: every alarm transition, device link change and rejected command.
    pub fn events(&self) -> String {
        format!("{}/events", self.prefix)
    }
    /// `qis/<site>/metrics/<device>/<point>`: polled values.
    pub fn metric(&self, device: &str, point: &str) -> String {
        format!("{}/metrics/{device}/{point}", self.prefix)
    }
    /// `qis/<site>/thresholds/<device>/<point>/<rule>`: retained effective level of an
    /// adaptable rule, with its provenance.
    pub fn threshold(&self, device: &str, point: &str, rule: &str) -> String {
        format!("{}/thresholds/{device}/{point}/{rule}", self.prefix)
    }
    /// `qis/<site>/cmd/#`: what the gateway subscribes to.
    pub fn commands(&self) -> String {
        format!("{}/cmd/#", self.prefix)
    }
    /// The command name in a command topic (`qis/<site>/cmd/<name>`), if it is one.
    pub fn command_name<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic.strip_prefix(&self.prefix)?.strip_prefix("/cmd/")
    }
}
