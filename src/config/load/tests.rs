use super::*;

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse_str(text, "t.toml") {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { diagnostics, .. }) => diagnostics,
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn minimal_config_loads_with_defaults() {
    let c = parse_str("[site]\nid = \"p1\"\n", "t.toml").expect("valid");
    assert_eq!(c.site.id, "p1");
    assert_eq!(c.mqtt.port, 1883);
    assert_eq!(c.metrics.min_interval_ms, 1000);
    assert!(c.devices.is_empty());
}

#[test]
fn every_error_in_a_file_is_reported_with_its_position() {
    let text = r#"[site]
id = "bad site"
colour = "blue"

[mqtt]
port = "x"

[[devices]]
type = "modbus_tcp"
name = "plc1"
host = "10.0.0.1"
timeout_ms = 0
bogus = 1

[[devices.points]]
name = "t"
register = "holding"
address = 1
data_type = "f64x"

[[devices.points.alarms]]
kind = "high"
warning = 90.0
alarm = 80.0
"#;
    let errs = errors(text);
    let lines: Vec<(usize, &str)> = errs.iter().map(|d| (d.line, d.message.as_str())).collect();
    assert!(
        errs.iter()
            .any(|d| d.line == 2 && d.component == "site" && d.message.contains("bad site")),
        "{lines:?}"
    );
    assert!(
        errs.iter()
            .any(|d| d.line == 3 && d.message.contains("unknown field `colour`")),
        "{lines:?}"
    );
    assert!(
        errs.iter().any(|d| d.line == 6 && d.component == "mqtt"),
        "{lines:?}"
    );
    assert!(
        errs.iter().any(|d| d.line == 12
            && d.component == "device \"plc1\""
            && d.message.contains("timeout_ms")),
        "{lines:?}"
    );
    assert!(
        errs.iter()
            .any(|d| d.line == 13 && d.message.contains("bogus")),
        "{lines:?}"
    );
    assert!(
        errs.iter()
            .any(|d| d.line == 19 && d.component == "device \"plc1\" / point \"t\""),
        "{lines:?}"
    );
    assert!(
        errs.iter().any(|d| d.line == 23
            && d.component.ends_with("alarm \"high\"")
            && d.message.contains("below the alarm level")),
        "{lines:?}"
    );
    assert_eq!(errs.len(), 7, "{lines:?}");
}

#[test]
fn missing_required_fields_are_named() {
    let errs = errors("[site]\n[[devices]]\ntype = \"modbus_tcp\"\n");
    assert!(
        errs.iter()
            .any(|d| d.message.contains("missing field `id`")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|d| d.message.contains("missing field `name`")),
        "{errs:?}"
    );
}

#[test]
fn syntax_errors_carry_positions() {
    let errs = errors("[site]\nid = \"p1\"\nport = = 3\n");
    assert!(!errs.is_empty());
    assert!(errs.iter().all(|d| d.component == "syntax"));
    assert_eq!(errs[0].line, 3);
}

#[test]
fn unknown_device_type_is_an_error() {
    let errs = errors("[site]\nid = \"p\"\n[[devices]]\ntype = \"profibus\"\nname = \"x\"\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].message.contains("profibus"));
    assert_eq!((errs[0].line, errs[0].column), (4, 8));
}

#[test]
fn bit_registers_require_bool() {
    let errs = errors("[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"x\"\nhost = \"h\"\n[[devices.points]]\nname = \"c\"\nregister = \"coil\"\naddress = 0\ndata_type = \"f32\"\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].line, 11);
}

#[test]
fn spc_sections_are_checked() {
    let base = "[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"x\"\nhost = \"h\"\n[[devices.points]]\nname = \"d\"\nregister = \"holding\"\naddress = 0\n";
    let ok = format!("{base}[devices.points.spc]\nchart = \"xbar-r\"\nsubgroup_size = 5\nrules = \"nelson\"\ncusum = {{ k = 0.5, h = 5 }}\n");
    let c = parse_str(&ok, "t.toml").expect("valid");
    assert!(c.devices[0].points()[0].spc.is_some());
    for (extra, fragment) in [
        ("chart = \"xbar-r\"\n", "subgroup_size"),
        (
            "chart = \"xbar-s\"\nsubgroup_size = 40\n",
            "subgroup size 40",
        ),
        ("chart = \"imr\"\nsubgroup_by = \"batch\"\n", "subgroup_by"),
        ("chart = \"imr\"\ncenter = 3.0\n", "together"),
        (
            "chart = \"imr\"\nrules = \"nelson\"\nenabled_rules = [9]\n",
            "rule 9",
        ),
        ("chart = \"pareto\"\n", "unknown variant"),
        ("chart = \"imr\"\nspec = { lsl = 5.0, usl = 1.0 }\n", "lsl"),
    ] {
        let text = format!("{base}[devices.points.spc]\n{extra}");
        let errs = errors(&text);
        assert!(
            errs.iter().any(|d| d.message.contains(fragment)),
            "{extra}: {errs:?}"
        );
    }
}

#[test]
fn opcua_devices_are_checked() {
    let device = "[site]\nid = \"p\"\n[[devices]]\ntype = \"opcua\"\nname = \"x\"\n";
    let point = "[[devices.points]]\nname = \"t\"\nnode = \"ns=2;s=T\"\n";
    let good = format!("{device}endpoint = \"opc.tcp://plc:4840\"\n{point}");
    let config = parse_str(&good, "t").unwrap();
    let DeviceConfig::OpcUa(d) = &config.devices[0] else {
        panic!("an OPC UA device")
    };
    assert_eq!(d.connection.endpoint, "opc.tcp://plc:4840");
    assert_eq!(d.connection.timeout_ms, 5_000);
    assert_eq!(d.points[0].node().unwrap().node, "ns=2;s=T");
    assert_eq!(d.points[0].name, "t");
    for (extra, points, fragment) in [
            ("endpoint = \"http://plc\"\n", point, "not an OPC UA TCP URL"),
            ("endpoint = \"opc.tcp://plc\"\nsecurity_mode = \"sign\"\n", point, "need security_policy"),
            ("endpoint = \"opc.tcp://plc\"\nsecurity_policy = \"basic256sha256\"\n", point, "needs security_mode"),
            ("endpoint = \"opc.tcp://plc\"\nidentity = { user = \"a\" }\n", point, "both `user` and `password`"),
            ("endpoint = \"opc.tcp://plc\"\nidentity = { user = \"a\", password = \"b\", certificate = \"c.der\" }\n", point, "not both"),
            ("endpoint = \"opc.tcp://plc\"\nidentity = { certificate = \"/nonexistent.der\", private_key = \"/nonexistent.pem\" }\n", point, "does not exist"),
            ("endpoint = \"opc.tcp://plc\"\nsecurity_policy = \"aes\"\n", point, "unknown variant"),
            ("endpoint = \"opc.tcp://plc\"\nregister = \"holding\"\n", point, "unknown field"),
            ("", point, "missing field `endpoint`"),
            ("endpoint = \"opc.tcp://plc\"\n", "[[devices.points]]\nname = \"t\"\nnode = \"Temperature\"\n", "not a node id"),
            ("endpoint = \"opc.tcp://plc\"\n", "[[devices.points]]\nname = \"t\"\nnode = \"i=1\"\ndeadband = -1.0\n", "deadband"),
            ("endpoint = \"opc.tcp://plc\"\n", "[[devices.points]]\nname = \"t\"\nnode = \"i=1\"\n[[devices.points]]\nname = \"t\"\nnode = \"i=2\"\n", "duplicate point name"),
        ] {
            let errs = errors(&format!("{device}{extra}{points}"));
            assert!(errs.iter().any(|d| d.message.contains(fragment)), "{extra}{points}: {errs:?}");
        }
    let wave = "[site]\nid = \"p\"\n[[devices]]\ntype = \"vibration\"\nname = \"v\"\nsample_rate = 25600.0\nwindow = 4096\n[devices.opcua]\nnode = \"ns=2;s=W\"\n";
    let errs = errors(wave);
    assert!(
        errs.iter()
            .any(|d| d.message.contains("missing field `endpoint`")),
        "{errs:?}"
    );
    let config = parse_str(
        &format!("{wave}endpoint = \"opc.tcp://vib:4840\"\nscale = 0.001\n"),
        "t",
    )
    .unwrap();
    let DeviceConfig::Vibration(v) = &config.devices[0] else {
        panic!("a vibration device")
    };
    let w = v.opcua.as_ref().unwrap();
    assert_eq!((w.node.as_str(), w.scale), ("ns=2;s=W", 0.001));
    assert_eq!(w.connection.endpoint, "opc.tcp://vib:4840");
}

#[test]
fn bits_and_strings_are_checked() {
    let base = "[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"x\"\nhost = \"h\"\n[[devices.points]]\nname = \"s\"\nregister = \"holding\"\naddress = 0\n";
    for (extra, fragment) in [
            ("data_type = \"bit\"\n", "needs `bit"),
            ("data_type = \"bit\"\nbit = 16\n", "outside 0..=15"),
            ("data_type = \"u16\"\nbit = 3\n", "applies only"),
            ("data_type = \"string\"\n", "needs `length`"),
            ("data_type = \"string\"\nlength = 200\n", "outside 1..=125"),
            ("data_type = \"string\"\nlength = 4\n[[devices.points.alarms]]\nkind = \"high\"\nalarm = 1.0\n", "string point has text"),
        ] {
            let errs = errors(&format!("{base}{extra}"));
            assert!(errs.iter().any(|d| d.message.contains(fragment)), "{extra}: {errs:?}");
        }
    assert!(parse_str(&format!("{base}data_type = \"string\"\nlength = 4\n"), "t").is_ok());
}

/// TCP and RTU devices refuse the same bad polling settings with the same messages.
#[test]
fn polling_settings_are_checked_alike_for_tcp_and_rtu_devices() {
    let bad = "poll_interval_ms = 1000\nstale_after_ms = 500\nbackoff_initial_ms = 0\n\
                   max_registers_per_request = 200\nmax_bits_per_request = 0\nstats_interval_ms = 50\n";
    let tcp = format!(
        "[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"d\"\nhost = \"h\"\n{bad}"
    );
    let rtu = format!(
            "[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_rtu\"\nname = \"d\"\nport = \"/dev/ttyUSB0\"\nunit_id = 1\n{bad}"
        );
    let messages = |text: &str| {
        let mut m: Vec<String> = errors(text).into_iter().map(|d| d.message).collect();
        m.sort();
        m
    };
    let tcp = messages(&tcp);
    for field in [
        "stale_after_ms",
        "backoff_initial_ms",
        "max_registers_per_request",
        "max_bits_per_request",
        "stats_interval_ms",
    ] {
        assert!(tcp.iter().any(|m| m.starts_with(field)), "{field}: {tcp:?}");
    }
    assert_eq!(tcp.len(), 5, "{tcp:?}");
    assert_eq!(messages(&rtu), tcp);
}

/// A Modbus point with one `high` rule with `levels` and `[devices.points.alarms.adapt]` `rails`.
fn adapt_rule(levels: &str, rails: &str) -> String {
    format!(
        "[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"d\"\nhost = \"h\"\n\
         [[devices.points]]\nname = \"t\"\nregister = \"holding\"\naddress = 0\n\
         [[devices.points.alarms]]\nkind = \"high\"\n{levels}\n[devices.points.alarms.adapt]\n{rails}\n"
    )
}

/// Each error's line and message.
fn messages(text: &str) -> Vec<(usize, String)> {
    errors(text)
        .iter()
        .map(|d| (d.line, d.message.clone()))
        .collect()
}

#[test]
fn adapt_rails_and_synthesis_settings_are_checked() {
    let rule = adapt_rule;
    assert!(messages(&rule(
        "warning = 80.0\nalarm = 95.0",
        "floor = 60.0\nceiling = 80.0"
    ))
    .is_empty());
    let m = messages(&rule("warning = 80.0", "floor = 81.0\nceiling = 90.0"));
    assert!(
        m.len() == 1 && m[0].1.contains("must hold the warning level 80"),
        "{m:?}"
    );
    let m = messages(&rule(
        "warning = 80.0\nalarm = 95.0",
        "floor = 60.0\nceiling = 95.0",
    ));
    assert!(
        m.len() == 1 && m[0].1.contains("below the alarm level (95)"),
        "{m:?}"
    );
    assert_eq!(m[0].0, 17, "the line of `ceiling`");
    let m = messages(&rule("alarm = 95.0", "floor = 60.0"));
    assert!(m.len() == 1 && m[0].1.contains("ceiling"), "{m:?}");
    let relative = |extra: &str| {
        messages(&rule(
            "warning = 80.0",
            &format!("floor = 60.0\nceiling = 80.0\n{extra}"),
        ))
    };
    assert!(relative("healthy = 50.0\nrelative = true").is_empty());
    let m = relative("relative = true");
    assert!(
        m.len() == 1 && m[0].1.contains("needs adapt.healthy"),
        "{m:?}"
    );
    for bad in ["healthy = 0.0", "healthy = -3.0", "healthy = nan"] {
        let m = relative(bad);
        assert!(m.len() == 1 && m[0].1.contains("above 0"), "{bad}: {m:?}");
    }

    let synthesis = |body: &str| messages(&format!("[site]\nid = \"p\"\n[synthesis]\n{body}\n"));
    assert!(synthesis("neutral_trust = 0.7\nbaseline_weight = 0.25").is_empty());
    // Every problem at once, each on its line.
    let m = synthesis("neutral_trust = 1.5\ntrust_loss = -0.1\nbaseline_weight = 0.0\nspeed = 1");
    assert_eq!(
        m.iter().map(|(line, _)| *line).collect::<Vec<_>>(),
        vec![4, 5, 6, 7],
        "{m:?}"
    );
    let text: Vec<&str> = m.iter().map(|(_, t)| t.as_str()).collect();
    assert!(text[3].starts_with("unknown field `speed`"), "{text:?}");
    assert!(text
        .iter()
        .any(|t| t.contains("neutral_trust = 1.5 is outside 0..=1")));
    assert!(text
        .iter()
        .any(|t| t.contains("trust_loss = -0.1 is outside 0..=1")));
    assert!(text
        .iter()
        .any(|t| t.contains("baseline_weight = 0 must be a positive number")));
}

#[test]
fn match_levels_and_their_factors_are_checked() {
    let relative = |extra: &str| {
        messages(&adapt_rule(
            "warning = 80.0",
            &format!("floor = 60.0\nceiling = 80.0\n{extra}"),
        ))
    };
    let synthesis = |body: &str| messages(&format!("[site]\nid = \"p\"\n[synthesis]\n{body}\n"));
    assert!(relative("match = \"process\"").is_empty());
    let m = relative("match = \"nearby\"");
    assert!(
        m.len() == 1 && m[0].1.contains("unknown variant `nearby`") && m[0].1.contains("class"),
        "{m:?}"
    );
    assert!(synthesis("[synthesis.match_weights]\nclass = 0.3").is_empty());
    let m = synthesis("[synthesis.match_weights]\nclass = 2.0");
    assert!(
        m.len() == 1
            && m[0].0 == 5
            && m[0]
                .1
                .contains("match_weights.class = 2 must be between 0 and 1"),
        "{m:?}"
    );
    let m = synthesis("[synthesis.match_weights]\nnear = 1.0");
    assert!(
        m.iter().any(|(_, t)| t.contains("unknown field `near`")),
        "{m:?}"
    );
}

#[test]
fn failover_addresses_are_host_and_port() {
    let text =
        |list: &str| format!("[site]\nid = \"p\"\n[uplink]\nhost = \"a\"\nfailover = {list}\n");
    assert!(errors(&text("[\"b:1883\", \"[::1]:8883\"]")).is_empty());
    let e = errors(&text("[\"b:1883\", \"c\", \"d:0\"]"));
    let m: Vec<&str> = e.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(
        m[0].contains("failover entry `c` is not host:port"),
        "{m:?}"
    );
    assert!(m[1].contains("`d:0`"), "{m:?}");
    let config = crate::config::parse_str(&text("[\"b:1884\", \"[::1]:8883\"]"), "t").unwrap();
    assert_eq!(
        config.uplink.unwrap().addresses(),
        vec![("a".into(), 1883), ("b".into(), 1884), ("::1".into(), 8883)]
    );
}

#[test]
fn a_fault_confirmation_must_name_another_point_of_the_device() {
    let text = |point: &str, equals: &str| {
        format!(
                "[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"d\"\nhost = \"h\"\n\
                 [[devices.points]]\nname = \"t\"\nregister = \"holding\"\naddress = 0\n\
                 [[devices.points.alarms]]\nkind = \"high\"\nalarm = 1.0\n\
                 [devices.points.alarms.confirmed_by]\npoint = \"{point}\"\nequals = {equals}\nfailure_mode = \"x\"\n\
                 [[devices.points]]\nname = \"fault\"\nregister = \"holding\"\naddress = 1\n"
            )
    };
    assert!(errors(&text("fault", "17")).is_empty());
    let errs = errors(&text("fualt", "17"));
    assert_eq!(errs.len(), 1);
    assert!(errs[0]
        .message
        .contains("confirmed_by.point names `fualt`, which is not another point of this device"));
    let errs = errors(&text("t", "17"));
    assert_eq!(errs.len(), 1, "not the rule's own point");
    let errs = errors(&text("fault", "nan"));
    assert!(errs[0].message.contains("finite"), "{:?}", errs[0].message);
}

#[test]
fn allowlist_entries_must_be_public_keys() {
    let good = "ab".repeat(32);
    let text = format!(
            "[site]\nid = \"p\"\n[outcomes]\nstrict = true\nallowlist = [\" {good} \", \"{}\", \"xyz\"]\n",
            "ab".repeat(31)
        );
    let errs = errors(&text);
    let messages: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(errs.len(), 2, "{messages:?}");
    assert!(messages
        .iter()
        .all(|m| m.ends_with("is not a public key of 64 hex digits")));
    assert!(messages.iter().any(|m| m.starts_with("`xyz`")));
    let ok = format!("[site]\nid = \"p\"\n[outcomes]\nstrict = true\nallowlist = [\"{good}\"]\n");
    assert!(errors(&ok).is_empty());
}

#[test]
fn storage_limits_are_checked_and_reserved_device_names_refused() {
    let errs = errors("[site]\nid = \"p\"\n[storage]\nalarms_max = 5\nretry_max_s = 0\nkeep = 1\n");
    let messages: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(errs.len(), 3, "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("unknown field `keep`")));
    assert!(messages.iter().any(|m| m.contains("alarms_max")));
    assert!(messages.iter().any(|m| m.contains("retry_max_s")));
    let device = "[site]\nid = \"p\"\n[[devices]]\ntype = \"modbus_tcp\"\nname = \"storage\"\nhost = \"127.0.0.1\"\n\
                  [[devices.points]]\nname = \"x\"\nregister = \"holding\"\naddress = 0\n";
    let errs = errors(device);
    assert!(
        errs.iter().any(|d| d.message.contains("reserved")),
        "{:?}",
        errs.iter().map(|d| &d.message).collect::<Vec<_>>()
    );
}

#[test]
fn arbitrary_garbage_never_panics() {
    for text in [
        "\u{0}\u{1}",
        "[[[",
        "devices = 3",
        "[site]\nid=1",
        "devices = [1, \"x\"]",
        "[[devices]]\npoints = 5\ntype=\"modbus_tcp\"",
    ] {
        assert!(parse_str(text, "t").is_err());
    }
}

#[test]
fn sparkplug_defaults_and_bad_ids_and_devices() {
    let c = parse_str(
        "[site]\nid = \"p1\"\n[sparkplug]\nenabled = true\n",
        "t.toml",
    )
    .unwrap();
    assert!(c.sparkplug.enabled);
    assert_eq!(c.sparkplug.group_id, "qis-edge");
    assert_eq!(c.sparkplug.edge_node_id, None);
    let errs = errors(
        "[site]\nid = \"p1\"\n[sparkplug]\nenabled = true\ngroup_id = \"a/b\"\n\
         primary_host_id = \"\"\ndevices = [\"nosuch\"]\n[sparkplug.broker]\nport = 0\n",
    );
    for want in ["group_id holds `/`", "primary_host_id is empty", "port 0"] {
        assert!(
            errs.iter().any(|d| d.message.contains(want)),
            "{want}: {errs:?}"
        );
    }
    let errs = errors(
        "[site]\nid = \"p1\"\n[sparkplug]\ndevices = [\"nosuch\"]\npoints = [\"a/b\", \"c\"]\n",
    );
    for want in ["no device `nosuch`", "no point `a/b`", "no point `c`"] {
        assert!(
            errs.iter().any(|d| d.message.contains(want)),
            "{want}: {errs:?}"
        );
    }
}
