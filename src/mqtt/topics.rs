//! Every topic on the local broker, all under `qis/<site>/`.

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
    /// `qis/<site>/metrics/<device>`: a device's polled values in one message.
    pub fn device_metrics(&self, device: &str) -> String {
        format!("{}/metrics/{device}", self.prefix)
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
    /// `qis/<site>/stats/storage`: the state database's health (retained).
    pub fn storage_stats(&self) -> String {
        format!("{}/stats/storage", self.prefix)
    }
    /// `qis/<site>/stats/<device>`: a device's poll statistics.
    pub fn stats(&self, device: &str) -> String {
        format!("{}/stats/{device}", self.prefix)
    }
    /// `qis/<site>/stats/intake`: counts of peers' packets by what became of them.
    pub fn intake_stats(&self) -> String {
        format!("{}/stats/intake", self.prefix)
    }
    /// `qis/<site>/uplink`: retained state of the fleet connection.
    pub fn uplink(&self) -> String {
        format!("{}/uplink", self.prefix)
    }
    /// `qis/<site>/spectrum/<device>`: a vibration device's downsampled spectrum.
    pub fn spectrum(&self, device: &str) -> String {
        format!("{}/spectrum/{device}", self.prefix)
    }
    /// `qis/<site>/metrics/<device>/<point>/spc`: a point's charted SPC statistic.
    pub fn spc(&self, device: &str, point: &str) -> String {
        format!("{}/spc", self.metric(device, point))
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
