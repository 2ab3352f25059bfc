//! The deployment files are real: the systemd unit passes `systemd-analyze verify`, and the
//! board profile, the unit and Cross.toml agree with each other and with the binary.

mod common;

use common::*;
use std::process::Command;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_systemd_unit_verifies_and_checks_the_config_before_start() {
    let unit = read("systemd/qis-edge.service");
    let check = unit_values(&unit, "ExecStartPre");
    let run = unit_values(&unit, "ExecStart");
    assert_eq!(check.len(), 1);
    assert_eq!(run.len(), 1);
    let check_config = check[0]
        .strip_prefix("/usr/local/bin/qis-edge check --config ")
        .expect("ExecStartPre runs check");
    let run_config = run[0]
        .strip_prefix("/usr/local/bin/qis-edge run --config ")
        .expect("ExecStart runs run");
    assert_eq!(
        check_config, run_config,
        "check and run must read the same file"
    );
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("DynamicUser", "yes"),
        ("CapabilityBoundingSet", ""),
        ("StateDirectory", "qis-edge"),
        ("DevicePolicy", "closed"),
        ("RestartPreventExitStatus", "78 73"),
        ("Type", "notify"),
    ] {
        assert_eq!(unit_values(&unit, key), vec![value], "{key}");
    }

    // systemd-analyze checks every directive; point it at the real binary.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qis-edge.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/qis-edge",
            &gateway_binary().display().to_string(),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd) is needed: run ./tests/run.sh");
    let report =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("qis-edge.service"))
        .collect();
    assert!(
        problems.is_empty() && out.status.success(),
        "systemd-analyze verify:\n{report}"
    );
}

#[test]
fn the_board_profile_matches_the_unit_and_the_cross_target() {
    let board: toml::Table =
        toml::from_str(&read("boards/rpi4b.toml")).expect("boards/rpi4b.toml parses");
    let unit = read("systemd/qis-edge.service");
    let cross: toml::Table = toml::from_str(&read("Cross.toml")).expect("Cross.toml parses");

    let target = board["board"]["target"].as_str().unwrap();
    assert_eq!(cross["build"]["default-target"].as_str(), Some(target));
    assert!(
        cross["target"].get(target).is_some(),
        "Cross.toml configures {target}"
    );

    let paths = &board["paths"];
    let state_dir = paths["state_dir"].as_str().unwrap();
    let state_name = unit_values(&unit, "StateDirectory")[0];
    assert_eq!(state_dir, format!("/var/lib/{state_name}"));
    let config = paths["config"].as_str().unwrap();
    let binary = paths["binary"].as_str().unwrap();
    assert!(unit_values(&unit, "ExecStart")[0] == format!("{binary} run --config {config}"));

    let allowed = unit_values(&unit, "DeviceAllow");
    for port in board["serial"].as_array().unwrap() {
        let class = port["class"].as_str().unwrap();
        let device = port["device"].as_str().unwrap();
        assert!(
            device.starts_with(&format!("/dev/{class}")),
            "{device} is not of class {class}"
        );
        assert!(
            allowed.contains(&format!("char-{class} rw").as_str()),
            "the unit must allow {class} devices"
        );
    }

    // The example configuration uses the board's state directory and passes `check`.
    let example =
        qis_edge::config::load_file(&repo().join("config/example.toml")).expect("example is valid");
    assert_eq!(example.site.state_dir, std::path::PathBuf::from(state_dir));
}
