//! Checks of vibration and OPC UA devices.

use super::*;

pub(in crate::config) fn validate_vibration(d: &VibrationConfig, has_opcua: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    check_context(d.context.as_ref(), &mut out);
    check_topic_name("name", "device name", &d.name, &mut out);
    match (&d.file, &d.modbus, has_opcua) {
        (None, None, true) => {
            if d.sample_rate.is_none() {
                out.push((
                    vec!["sample_rate"],
                    "`sample_rate` is needed for an OPC UA waveform".into(),
                ));
            }
        }
        (Some(file), None, false) => check_waveform_file(d, file, &mut out),
        (None, Some(block), false) => check_waveform_block(d, block, &mut out),
        _ => out.push((
            vec!["name"],
            "give exactly one waveform source: `file`, `modbus` or `opcua`".into(),
        )),
    }
    if d.modbus.is_some() || has_opcua || d.replay == ReplayPace::Fast {
        check_at_least_one("interval_ms", d.interval_ms, &mut out);
    }
    if let Some(rpm) = d.rpm {
        if !(rpm.is_finite() && rpm > 0.0) {
            out.push((vec!["rpm"], format!("rpm = {rpm} must be positive")));
        }
    }
    if let Some(fs) = d.sample_rate {
        if let Err(e) = crate::analysis::vibration::VibrationAnalyzer::new(d.settings(fs)) {
            let key = match e {
                crate::analysis::vibration::VibrationError::Window(_) => "window",
                crate::analysis::vibration::VibrationError::SampleRate(_) => "sample_rate",
                crate::analysis::vibration::VibrationError::Bearing(_) => "bearing",
                _ => "name",
            };
            out.push((vec![key], e.to_string()));
        }
    }
    out
}

pub(in crate::config) fn validate_opcua_connection(c: &OpcUaConnection) -> Vec<Finding> {
    use OpcUaSecurityMode as Mode;
    use OpcUaSecurityPolicy as Policy;
    let mut out = Vec::new();
    let rest = c.endpoint.strip_prefix("opc.tcp://");
    if rest.is_none_or(|r| r.is_empty() || r.starts_with('/') || r.starts_with(':')) {
        out.push((
            vec!["endpoint"],
            format!(
                "endpoint `{}` is not an OPC UA TCP URL such as `opc.tcp://10.0.0.5:4840`",
                c.endpoint
            ),
        ));
    }
    match (c.security_policy, c.security_mode) {
        (Policy::None, Mode::Sign | Mode::SignAndEncrypt) => out.push((
            vec!["security_mode"],
            "security_mode `sign` and `sign_and_encrypt` need security_policy = \"basic256sha256\"".into(),
        )),
        (Policy::Basic256sha256, Mode::None) => out.push((
            vec!["security_mode"],
            "security_policy `basic256sha256` needs security_mode = \"sign\" or \"sign_and_encrypt\"".into(),
        )),
        _ => {}
    }
    if let Some(id) = &c.identity {
        let user = id.user.is_some() || id.password.is_some();
        let cert = id.certificate.is_some() || id.private_key.is_some();
        if user && cert {
            out.push((
                vec!["identity"],
                "give either `user` and `password` or `certificate` and `private_key`, not both"
                    .into(),
            ));
        } else if user && (id.user.is_none() || id.password.is_none()) {
            out.push((
                vec!["identity"],
                "identity needs both `user` and `password`".into(),
            ));
        } else if cert {
            match (&id.certificate, &id.private_key) {
                (Some(c), Some(k)) => {
                    for (what, path) in [("certificate", c), ("private_key", k)] {
                        if !path.is_file() {
                            out.push((
                                vec!["identity"],
                                format!(
                                    "identity {what} `{}` does not exist or is not a file",
                                    path.display()
                                ),
                            ));
                        }
                    }
                }
                _ => out.push((
                    vec!["identity"],
                    "identity needs both `certificate` and `private_key`".into(),
                )),
            }
        } else if !user {
            out.push((
                vec!["identity"],
                "an empty identity: remove it for anonymous, or give `user` and `password`, or `certificate` and `private_key`".into(),
            ));
        }
    }
    check_at_least_one("timeout_ms", c.timeout_ms, &mut out);
    if c.backoff_initial_ms == 0 || c.backoff_initial_ms > c.backoff_max_ms {
        out.push((
            vec!["backoff_initial_ms"],
            "backoff_initial_ms must be at least 1 and at most backoff_max_ms".into(),
        ));
    }
    out
}

/// A multiplier that can turn a raw value into an engineering one.
pub(in crate::config) fn check_scale(
    key: &'static str,
    label: &str,
    scale: f64,
    out: &mut Vec<Finding>,
) {
    if !(scale.is_finite() && scale != 0.0) {
        out.push((
            vec![key],
            format!("{label} = {scale} must be finite and non-zero"),
        ));
    }
}

/// A count or duration that must not be zero.
pub(in crate::config) fn check_at_least_one(key: &'static str, value: u64, out: &mut Vec<Finding>) {
    if value == 0 {
        out.push((vec![key], format!("{key} must be at least 1")));
    }
}

pub(in crate::config) fn check_node(node: &str, out: &mut Vec<Finding>) {
    if node.trim().parse::<::opcua::types::NodeId>().is_err() {
        out.push((
            vec!["node"],
            format!(
                "`{node}` is not a node id such as `ns=2;s=Line1.Temperature` or `ns=3;i=1042`"
            ),
        ));
    }
}

pub(in crate::config) fn validate_opcua(d: &OpcUaConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_context(d.context.as_ref(), &mut out);
    check_topic_name("name", "device name", &d.name, &mut out);
    check_at_least_one("interval_ms", d.interval_ms, &mut out);
    check_at_least_one("stats_interval_ms", d.stats_interval_ms, &mut out);
    out
}

pub(in crate::config) fn validate_opcua_point(p: &OpcUaPointConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_context(p.context.as_ref(), &mut out);
    check_topic_name("name", "point name", &p.name, &mut out);
    check_node(&p.node, &mut out);
    check_scale("scale", "scale", p.scale, &mut out);
    if !p.offset.is_finite() {
        out.push((vec!["offset"], "offset must be finite".into()));
    }
    if !(p.deadband.is_finite() && p.deadband >= 0.0) {
        out.push((vec!["deadband"], "deadband must be zero or positive".into()));
    }
    if let Some(ms) = p.sampling_interval_ms {
        check_at_least_one("sampling_interval_ms", ms, &mut out);
    }
    out
}

pub(in crate::config) fn validate_opcua_waveform(w: &OpcUaWaveformConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_node(&w.node, &mut out);
    check_scale("scale", "scale", w.scale, &mut out);
    out
}

/// A vibration device's `file`.
fn check_waveform_file(d: &VibrationConfig, file: &std::path::Path, out: &mut Vec<Finding>) {
    if !file.is_file() {
        out.push((
            vec!["file"],
            format!("file `{}` does not exist or is not a file", file.display()),
        ));
    }
    let format = d.format.or_else(|| super::WaveformFormat::from_path(file));
    match format {
        None => out.push((
            vec!["format"],
            "cannot tell the format from the file name: give `format` (f32, csv or wav)".into(),
        )),
        Some(f) if f != super::WaveformFormat::Wav && d.sample_rate.is_none() => out.push((
            vec!["sample_rate"],
            "`sample_rate` is needed for raw and CSV files".into(),
        )),
        _ => {}
    }
}

/// A vibration device's `[devices.modbus]` register block.
fn check_waveform_block(d: &VibrationConfig, block: &WaveformBlockConfig, out: &mut Vec<Finding>) {
    if d.sample_rate.is_none() {
        out.push((
            vec!["sample_rate"],
            "`sample_rate` is needed for a Modbus waveform".into(),
        ));
    }
    if block.register.is_bit() {
        out.push((
            vec!["modbus"],
            "a waveform lives in holding or input registers".into(),
        ));
    }
    if u32::from(block.address) + d.window as u32 > 65_536 {
        out.push((
            vec!["modbus"],
            format!(
                "address {} + window {} runs past 65535",
                block.address, d.window
            ),
        ));
    }
    if block.host.trim().is_empty() || block.port == 0 {
        out.push((
            vec!["modbus"],
            "modbus.host and modbus.port must name a server".into(),
        ));
    }
    check_scale("modbus", "modbus.scale", block.scale, out);
}
