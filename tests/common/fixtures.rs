//! One configuration and one packet for the outcome tests: a plant with one pump whose bearing
//! temperature (holding register 0) has a `high` rule, in [`PUMP_CONTEXT`]; and a peer's
//! signed process-value packet for that context.

use super::*;

/// A plant's configuration; the builder methods change one thing each.
#[derive(Debug, Clone)]
pub struct Plant {
    site: String,
    state: PathBuf,
    mqtt: u16,
    plc: u16,
    poll_interval_ms: u64,
    warning: Option<f64>,
    alarm: f64,
    adapt: String,
    extra: String,
    after: String,
    context: String,
}

impl Plant {
    /// Site `site` with its state in `state`, on the local broker at `mqtt`, polling the PLC at
    /// `plc` every 100 ms; the rule alarms at 80 °C, with no warning level and no rails.
    pub fn new(site: &str, state: &Path, mqtt: u16, plc: u16) -> Self {
        Self {
            site: site.to_string(),
            state: state.to_path_buf(),
            mqtt,
            plc,
            poll_interval_ms: 100,
            warning: None,
            alarm: 80.0,
            adapt: String::new(),
            extra: String::new(),
            after: String::new(),
            context: PUMP_CONTEXT.to_string(),
        }
    }

    /// The pump's `[devices.context]` section (with its attributes), instead of
    /// [`PUMP_CONTEXT`].
    pub fn context(mut self, toml: &str) -> Self {
        self.context = format!("{toml}\n\n");
        self
    }

    /// Polls every `ms`.
    pub fn poll_ms(mut self, ms: u64) -> Self {
        self.poll_interval_ms = ms;
        self
    }

    /// The rule's levels.
    pub fn levels(mut self, warning: Option<f64>, alarm: f64) -> Self {
        self.warning = warning;
        self.alarm = alarm;
        self
    }

    /// TOML after the rule, e.g. its `[devices.points.alarms.adapt]` rails.
    pub fn adapt(mut self, toml: &str) -> Self {
        self.adapt = toml.to_string();
        self
    }

    /// TOML for `[mqtt]` keys and whole sections before the devices (`[uplink]`,
    /// `[synthesis]`, …).
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// TOML after the pump's rule: more points of the pump, then more devices.
    pub fn then(mut self, toml: &str) -> Self {
        self.after.push_str(toml);
        self.after.push('\n');
        self
    }

    /// The configuration text.
    pub fn toml(&self) -> String {
        let warning = self
            .warning
            .map(|w| format!("warning = {w:?}\n"))
            .unwrap_or_default();
        format!(
            "[site]\nid = \"{}\"\nstate_dir = \"{}\"\n[mqtt]\nport = {}\n{}\n\
             [[devices]]\ntype = \"modbus_tcp\"\nname = \"pump\"\nhost = \"127.0.0.1\"\nport = {}\npoll_interval_ms = {}\n\n{}\
             [[devices.points]]\nname = \"bearing_temp\"\nregister = \"holding\"\naddress = 0\nunit = \"°C\"\n\n\
             [[devices.points.alarms]]\nkind = \"high\"\n{warning}alarm = {:?}\n{}\n{}",
            self.site,
            self.state.display(),
            self.mqtt,
            self.extra,
            self.plc,
            self.poll_interval_ms,
            self.context,
            self.alarm,
            self.adapt,
            self.after
        )
    }
}

/// The Unix time now, seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A peer's packet for `fingerprint`: a confirmed failure at 72.5 °C (high), five validations
/// and one refutation, issued now, valid for a day, sequence number `seq`. Tests change the
/// fields they are about.
pub fn peer_body(
    fingerprint: qis_edge::packet::Fingerprint,
    seq: u64,
) -> qis_edge::packet::PacketBody {
    use qis_edge::packet::*;
    PacketBody {
        version: VERSION,
        fingerprint,
        pattern: SignalPattern {
            feature: Feature::ProcessValue,
            frequency: Frequency::None,
            threshold: 72.5,
            unit: label("unit", "°C").unwrap(),
            direction: Direction::High,
        },
        outcome: Outcome {
            kind: OutcomeKind::FailureConfirmed,
            failure_mode: FailureMode::Lubrication,
            label: label("l", "dry bearing").unwrap(),
        },
        confidence: 0.75,
        validations: 5,
        refutations: 1,
        lead_time_s: 7 * 86_400,
        issued_at: unix_now(),
        ttl_s: 86_400,
        seq,
        source: [0; 32],
        equipment_label: label("e", "centrifugal pump").unwrap(),
        relative: Relative::None,
        levels: Levels::None,
    }
}

/// The topic `body` belongs on once signed by the peer whose key is 32 bytes of `seed` (a v3
/// topic names its source).
pub fn topic_of(seed: u8, body: &qis_edge::packet::PacketBody) -> String {
    let source = ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
        .verifying_key()
        .to_bytes();
    qis_edge::packet::PacketBody {
        source,
        ..body.clone()
    }
    .topic()
}

/// `body` signed by the peer whose key is 32 bytes of `seed`, as wire bytes.
pub fn signed_by(seed: u8, body: qis_edge::packet::PacketBody) -> Vec<u8> {
    body.sign(&ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
        .unwrap()
        .to_bytes()
        .unwrap()
}

/// A second point of the plant's pump, `diameter` (holding register 1, mm), on an individuals
/// chart with a known centre 50 and sigma 1 (limits 47 and 53) judged by rule 1 only (a
/// steady value breaks the run rules of the moving-range chart), and a vibration device `fan`
/// replaying a real outer-race fault recording (CWRU 130, 12 kHz, 1 796 rpm, the drive-end
/// bearing's geometry) one window every `interval_ms`, with its outer-race score as a point:
/// for [`Plant::then`].
pub fn charted_and_vibration(interval_ms: u64) -> String {
    format!(
        "[[devices.points]]\nname = \"diameter\"\nregister = \"holding\"\naddress = 1\nunit = \"mm\"\n\
         [devices.points.spc]\nchart = \"imr\"\ncenter = 50.0\nsigma = 1.0\nenabled_rules = [1]\n\n\
         [[devices]]\ntype = \"vibration\"\nname = \"fan\"\nfile = \"{}\"\nsample_rate = 12000.0\n\
         window = 16384\nreplay = \"fast\"\ninterval_ms = {interval_ms}\nrpm = 1796\n\
         bearing = {{ elements = 9, ball_diameter = 0.3126, pitch_diameter = 1.537, contact_angle_deg = 0.0 }}\n\n\
         [[devices.points]]\nname = \"bpfo\"\nfeature = \"outer_race_score\"\n",
        super::repo()
            .join("../shared/data/bearings/cwru/cwru_130_DE.f32")
            .display()
    )
}
