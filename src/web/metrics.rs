//! `GET /metrics`: the live state in the OpenMetrics text format.

use super::pages::label;
use super::Live;
use std::fmt::Write;

/// A label value escaped as OpenMetrics requires (backslash, double quote, line feed).
fn value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition of `live`, ending with `# EOF`.
pub fn render(live: &Live) -> String {
    let v = &live.view;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# TYPE qis_edge_build info\n# HELP qis_edge_build The gateway's version."
    );
    let _ = writeln!(
        out,
        "qis_edge_build_info{{version=\"{}\",site=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        value(&v.site)
    );
    points(live, &mut out);
    let _ = writeln!(
        out,
        "# TYPE qis_edge_alarm_rules gauge\n# HELP qis_edge_alarm_rules Alarm rules by state."
    );
    for state in ["normal", "active", "acknowledged", "cleared"] {
        let n = v
            .alarms
            .iter()
            .flat_map(|a| &a.rules)
            .filter(|r| label(&r.state) == state)
            .count();
        let _ = writeln!(out, "qis_edge_alarm_rules{{state=\"{state}\"}} {n}");
    }
    devices(live, &mut out);
    let i = &v.intake;
    let _ = writeln!(out, "# TYPE qis_edge_intake_packets counter\n# HELP qis_edge_intake_packets Peers' packets by what became of them.");
    for (result, n) in [
        ("accepted", i.accepted),
        ("own", i.own),
        ("wrong_topic", i.wrong_topic),
        ("unmatched", i.unmatched),
    ] {
        let _ = writeln!(
            out,
            "qis_edge_intake_packets_total{{result=\"{result}\"}} {n}"
        );
    }
    for (reason, n) in &i.rejected {
        let _ = writeln!(
            out,
            "qis_edge_intake_packets_total{{result=\"rejected_{}\"}} {}",
            value(reason),
            n.as_u64().unwrap_or(0)
        );
    }
    let _ = writeln!(out, "# TYPE qis_edge_intake_applied counter\n# HELP qis_edge_intake_applied Peers' packets that set or withdrew a proposal, ever.");
    let _ = writeln!(out, "qis_edge_intake_applied_total {}", i.applied);
    let _ = writeln!(out, "# TYPE qis_edge_peer_trust gauge\n# HELP qis_edge_peer_trust Trust of each peer answered here, 0 to 1.");
    for (source, trust) in &v.trust {
        let _ = writeln!(
            out,
            "qis_edge_peer_trust{{source=\"{}\"}} {trust}",
            value(source)
        );
    }
    links(live, &mut out);
    out.push_str("# EOF\n");
    out
}

/// The fleet link, the outbox, the local broker and the state database.
fn links(live: &Live, out: &mut String) {
    let v = &live.view;
    let _ = writeln!(out, "# TYPE qis_edge_uplink_subscribed gauge\n# HELP qis_edge_uplink_subscribed 1 when the fleet link is up and subscribed.");
    let up = u8::from(label(&v.uplink) == "subscribed");
    let _ = writeln!(out, "qis_edge_uplink_subscribed {up}");
    if let Some(n) = live.outbox {
        let _ = writeln!(out, "# TYPE qis_edge_outbox_packets gauge\n# HELP qis_edge_outbox_packets Outcome packets waiting in the outbox for the uplink broker's acknowledgement.");
        let _ = writeln!(out, "qis_edge_outbox_packets {n}");
    }
    let _ = writeln!(out, "# TYPE qis_edge_local_broker_connected gauge\n# HELP qis_edge_local_broker_connected 1 while the local MQTT broker is connected.");
    let _ = writeln!(
        out,
        "qis_edge_local_broker_connected {}",
        u8::from(live.local_broker)
    );
    let _ = writeln!(out, "# TYPE qis_edge_storage_fault gauge\n# HELP qis_edge_storage_fault 1 while the state database cannot be written.");
    let _ = writeln!(
        out,
        "qis_edge_storage_fault {}",
        u8::from(live.storage_fault.is_some())
    );
}

fn points(live: &Live, out: &mut String) {
    let _ = writeln!(out, "# TYPE qis_edge_point_value gauge\n# HELP qis_edge_point_value A point's latest good value, in its unit.");
    for p in &live.view.points {
        if let Some(v) = p.value.filter(|v| v.is_finite()) {
            let _ = writeln!(
                out,
                "qis_edge_point_value{{device=\"{}\",point=\"{}\",unit=\"{}\"}} {v}",
                value(&p.device),
                value(&p.name),
                value(&p.unit)
            );
        }
    }
    let _ = writeln!(out, "# TYPE qis_edge_point_quality stateset\n# HELP qis_edge_point_quality The quality of a point's latest read.");
    for p in &live.view.points {
        let quality = label(&p.quality);
        for state in ["good", "bad", "stale"] {
            let _ = writeln!(
                out,
                "qis_edge_point_quality{{device=\"{}\",point=\"{}\",qis_edge_point_quality=\"{state}\"}} {}",
                value(&p.device),
                value(&p.name),
                u8::from(quality == state)
            );
        }
    }
}

fn devices(live: &Live, out: &mut String) {
    let _ = writeln!(out, "# TYPE qis_edge_device_link_up gauge\n# HELP qis_edge_device_link_up 1 while the device's link is up.");
    for d in &live.view.devices {
        if let Some(up) = d.link_up {
            let _ = writeln!(
                out,
                "qis_edge_device_link_up{{device=\"{}\"}} {}",
                value(&d.name),
                u8::from(up)
            );
        }
    }
    let _ = writeln!(out, "# TYPE qis_edge_device_requests counter\n# HELP qis_edge_device_requests Requests to the device by result.");
    for d in &live.view.devices {
        let Some(s) = &d.stats else { continue };
        let ok = s
            .requests
            .saturating_sub(s.exceptions + s.timeouts + s.transport_errors);
        for (result, n) in [
            ("ok", ok),
            ("exception", s.exceptions),
            ("timeout", s.timeouts),
            ("transport_error", s.transport_errors),
        ] {
            let _ = writeln!(
                out,
                "qis_edge_device_requests_total{{device=\"{}\",result=\"{result}\"}} {n}",
                value(&d.name)
            );
        }
    }
    let _ = writeln!(out, "# TYPE qis_edge_device_latency_ms gauge\n# HELP qis_edge_device_latency_ms Mean request latency in the latest statistics, ms.");
    for d in &live.view.devices {
        if let Some(s) = &d.stats {
            let _ = writeln!(
                out,
                "qis_edge_device_latency_ms{{device=\"{}\"}} {}",
                value(&d.name),
                s.latency_ms_avg
            );
        }
    }
}
