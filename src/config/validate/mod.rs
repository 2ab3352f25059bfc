//! Semantic checks of each component, after it deserialised: ranges, references, names that
//! become topic levels. Each returns its findings: the key path in the component, and the
//! message.

mod points;
mod sources;

pub(in crate::config) use points::*;
pub(in crate::config) use sources::*;

use super::*;

/// Reports `key = value is outside lo..=hi` followed by `note` (which starts with its own
/// space) when `value` is outside `range`.
pub(in crate::config) fn check_range<T: PartialOrd + std::fmt::Display>(
    key: &'static str,
    value: T,
    range: std::ops::RangeInclusive<T>,
    note: &str,
    out: &mut Vec<Finding>,
) {
    if !range.contains(&value) {
        out.push((
            vec![key],
            format!(
                "{key} = {value} is outside {}..={}{note}",
                range.start(),
                range.end()
            ),
        ));
    }
}

/// A semantic problem found in a component: the key path inside it, and the message.
pub(in crate::config) type Finding = (Vec<&'static str>, String);

/// Names that become MQTT topic levels: no wildcards, separators or spaces.
pub(in crate::config) fn check_topic_name(
    path: &'static str,
    what: &str,
    name: &str,
    out: &mut Vec<Finding>,
) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        out.push((
            vec![path],
            format!("{what} `{name}` must be 1–64 characters of letters, digits, `-`, `_` or `.` (it becomes an MQTT topic level)"),
        ));
    }
}

pub(in crate::config) fn validate_site(site: &SiteConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_topic_name("id", "site id", &site.id, &mut out);
    if site.state_dir.as_os_str().is_empty() {
        out.push((vec!["state_dir"], "state_dir must not be empty".into()));
    }
    out
}

pub(in crate::config) fn validate_mqtt(mqtt: &MqttConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    if mqtt.host.trim().is_empty() {
        out.push((vec!["host"], "host must not be empty".into()));
    }
    if mqtt.port == 0 {
        out.push((vec!["port"], "port 0 is not a valid broker port".into()));
    }
    check_range("keep_alive_s", mqtt.keep_alive_s, 5..=3600, "", &mut out);
    check_range(
        "max_message_bytes",
        mqtt.max_message_bytes,
        4096..=268_435_455,
        " (MQTT's largest packet is 268 435 455 bytes)",
        &mut out,
    );
    if mqtt.reconnect_max_ms < 500 {
        out.push((
            vec!["reconnect_max_ms"],
            format!(
                "reconnect_max_ms = {} is below the first retry delay of 500 ms",
                mqtt.reconnect_max_ms
            ),
        ));
    }
    if let Some(id) = &mqtt.client_id {
        if id.is_empty() || id.len() > 128 {
            out.push((
                vec!["client_id"],
                "client_id must be 1–128 characters".into(),
            ));
        }
    }
    for a in &mqtt.failover {
        if crate::config::mqtt::parse_address(a).is_none() {
            out.push((
                vec!["failover"],
                format!("failover entry `{a}` is not host:port (e.g. \"10.0.0.2:1883\")"),
            ));
        }
    }
    if mqtt.password.is_some() && mqtt.username.is_none() {
        out.push((
            vec!["password"],
            "password is set but username is not".into(),
        ));
    }
    if let Some(tls) = &mqtt.tls {
        for (key, path) in [
            ("ca_file", Some(&tls.ca_file)),
            ("client_cert_file", tls.client_cert_file.as_ref()),
            ("client_key_file", tls.client_key_file.as_ref()),
        ] {
            if let Some(path) = path {
                if !path.is_file() {
                    out.push((
                        vec!["tls", key],
                        format!("{key} `{}` does not exist or is not a file", path.display()),
                    ));
                }
            }
        }
        if tls.client_cert_file.is_some() != tls.client_key_file.is_some() {
            out.push((
                vec!["tls"],
                "client_cert_file and client_key_file must be given together".into(),
            ));
        }
    }
    out
}

/// The settings every polled device has: cadence, staleness, reconnection backoff, request
/// batching and statistics.
pub(in crate::config) struct Polling {
    poll_interval_ms: u64,
    stale_after_ms: Option<u64>,
    backoff_initial_ms: u64,
    backoff_max_ms: u64,
    max_registers_per_request: u16,
    max_bits_per_request: u16,
    stats_interval_ms: u64,
}

impl Polling {
    fn of_tcp(d: &ModbusTcpConfig) -> Self {
        Self {
            poll_interval_ms: d.poll_interval_ms,
            stale_after_ms: d.stale_after_ms,
            backoff_initial_ms: d.backoff_initial_ms,
            backoff_max_ms: d.backoff_max_ms,
            max_registers_per_request: d.max_registers_per_request,
            max_bits_per_request: d.max_bits_per_request,
            stats_interval_ms: d.stats_interval_ms,
        }
    }

    fn of_rtu(d: &ModbusRtuConfig) -> Self {
        Self {
            poll_interval_ms: d.poll_interval_ms,
            stale_after_ms: d.stale_after_ms,
            backoff_initial_ms: d.backoff_initial_ms,
            backoff_max_ms: d.backoff_max_ms,
            max_registers_per_request: d.max_registers_per_request,
            max_bits_per_request: d.max_bits_per_request,
            stats_interval_ms: d.stats_interval_ms,
        }
    }
}

pub(in crate::config) fn check_polling(d: &Polling, out: &mut Vec<Finding>) {
    check_range(
        "poll_interval_ms",
        d.poll_interval_ms,
        10..=86_400_000,
        "",
        out,
    );
    if let Some(stale) = d.stale_after_ms {
        if stale < d.poll_interval_ms {
            out.push((vec!["stale_after_ms"], format!("stale_after_ms = {stale} is shorter than poll_interval_ms = {}: every point would turn stale between polls", d.poll_interval_ms)));
        }
    }
    check_range(
        "max_registers_per_request",
        d.max_registers_per_request,
        1..=125,
        " (Modbus limit)",
        out,
    );
    check_range(
        "max_bits_per_request",
        d.max_bits_per_request,
        1..=2000,
        " (Modbus limit)",
        out,
    );
    if d.stats_interval_ms < 100 {
        out.push((
            vec!["stats_interval_ms"],
            "stats_interval_ms must be at least 100".into(),
        ));
    }
    check_at_least_one("backoff_initial_ms", d.backoff_initial_ms, out);
    if d.backoff_max_ms < d.backoff_initial_ms {
        out.push((
            vec!["backoff_max_ms"],
            format!(
                "backoff_max_ms = {} is below backoff_initial_ms = {}",
                d.backoff_max_ms, d.backoff_initial_ms
            ),
        ));
    }
}

pub(in crate::config) fn validate_modbus_tcp(d: &ModbusTcpConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_context(d.context.as_ref(), &mut out);
    check_topic_name("name", "device name", &d.name, &mut out);
    if d.host.trim().is_empty() {
        out.push((vec!["host"], "host must not be empty".into()));
    }
    if d.port == 0 {
        out.push((vec!["port"], "port 0 is not a valid Modbus TCP port".into()));
    }
    check_range("timeout_ms", d.timeout_ms, 10..=600_000, "", &mut out);
    check_polling(&Polling::of_tcp(d), &mut out);
    out
}

pub(in crate::config) fn validate_modbus_rtu(d: &ModbusRtuConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_context(d.context.as_ref(), &mut out);
    check_topic_name("name", "device name", &d.name, &mut out);
    if d.port.as_os_str().is_empty() {
        out.push((vec!["port"], "port must name a serial device".into()));
    }
    check_range("baud", d.baud, 300..=4_000_000, "", &mut out);
    if !(7..=8).contains(&d.data_bits) {
        out.push((
            vec!["data_bits"],
            format!("data_bits = {} must be 7 or 8", d.data_bits),
        ));
    }
    if !(1..=2).contains(&d.stop_bits) {
        out.push((
            vec!["stop_bits"],
            format!("stop_bits = {} must be 1 or 2", d.stop_bits),
        ));
    }
    check_range(
        "unit_id",
        d.unit_id,
        1..=247,
        " (0 is broadcast, which nobody answers)",
        &mut out,
    );
    check_range("timeout_ms", d.timeout_ms, 10..=60_000, "", &mut out);
    check_polling(&Polling::of_rtu(d), &mut out);
    out
}

pub(in crate::config) fn validate_storage(s: &StorageConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_range("alarms_max", s.alarms_max, 100..=1_000_000, "", &mut out);
    check_range("events_max", s.events_max, 100..=10_000_000, "", &mut out);
    check_range("history_days", s.history_days, 1..=3650, "", &mut out);
    check_range("retry_max_s", s.retry_max_s, 1..=3600, "", &mut out);
    out
}

pub(in crate::config) fn validate_sparkplug(s: &crate::config::SparkplugConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let ids = [
        ("group_id", Some(&s.group_id)),
        ("edge_node_id", s.edge_node_id.as_ref()),
        ("primary_host_id", s.primary_host_id.as_ref()),
    ];
    for (key, id) in ids {
        if let Some(problem) = id.and_then(|id| crate::config::id_problem(id)) {
            out.push((vec![key], format!("{key} {problem}")));
        }
    }
    for name in &s.devices {
        if let Some(problem) = crate::config::id_problem(name) {
            out.push((vec!["devices"], format!("device `{name}` {problem}")));
        }
    }
    if let Some(broker) = &s.broker {
        for (mut path, message) in validate_mqtt(broker) {
            path.insert(0, "broker");
            out.push((path, message));
        }
    }
    out
}

pub(in crate::config) fn validate_web(w: &WebConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    check_range(
        "session_idle_min",
        w.session_idle_min,
        1..=43_200,
        " (30 days)",
        &mut out,
    );
    check_range(
        "trend_minutes",
        w.trend_minutes,
        1..=1440,
        " (a day)",
        &mut out,
    );
    if let Some(tls) = &w.tls {
        for (key, path) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
            if !path.is_file() {
                out.push((
                    vec!["tls", key],
                    format!("{key} `{}` does not exist or is not a file", path.display()),
                ));
            }
        }
    }
    if w.enabled && w.users.is_empty() {
        out.push((
            vec!["users"],
            "the dashboard is enabled but has no [[web.users]]: there is no default password; \
             add a user with the hash `qis-edge passwd` prints"
                .into(),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for user in &w.users {
        let ok = (1..=64).contains(&user.name.len())
            && user
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
        if !ok {
            out.push((
                vec!["users"],
                format!(
                    "user name `{}` must be 1–64 letters, digits, `.`, `-`, `_` or `@`",
                    user.name
                ),
            ));
        } else if !seen.insert(user.name.as_str()) {
            out.push((
                vec!["users"],
                format!("user `{}` is listed twice", user.name),
            ));
        }
        if let Err(e) = crate::config::web::check_hash(&user.password_hash) {
            out.push((
                vec!["users"],
                format!(
                    "user `{}`: password_hash {e}; make one with `qis-edge passwd`",
                    user.name
                ),
            ));
        }
    }
    out
}

pub(in crate::config) fn validate_outcomes(o: &OutcomesConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    if !(o.ttl_days.is_finite() && o.ttl_days > 0.0 && o.ttl_days <= 366.0) {
        out.push((
            vec!["ttl_days"],
            format!("ttl_days = {} must be above 0 and at most 366", o.ttl_days),
        ));
    }
    check_at_least_one("outbox_max", o.outbox_max as u64, &mut out);
    check_range(
        "clock_skew_s",
        o.clock_skew_s,
        0..=86_400,
        " (a day)",
        &mut out,
    );
    check_range(
        "puback_timeout_s",
        o.puback_timeout_s,
        1..=3600,
        "",
        &mut out,
    );
    for key in &o.allowlist {
        if crate::packet::keys::parse_public_hex(key).is_none() {
            out.push((
                vec!["allowlist"],
                format!("`{key}` is not a public key of 64 hex digits"),
            ));
        }
    }
    if o.strict && o.allowlist.is_empty() {
        out.push((
            vec!["strict"],
            "strict mode with an empty allowlist would accept no packet".into(),
        ));
    }
    out
}
