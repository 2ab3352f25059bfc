//! mosquitto brokers: plain, persistent, bridged to a cloud broker.

use super::*;

/// A mosquitto broker on a free port.
pub fn mosquitto() -> Peer {
    spawn_peer_on_free_port("mosquitto", mosquitto_command)
}

/// A mosquitto broker on a given port (to restart one where it was).
pub fn mosquitto_on(port: u16) -> Peer {
    spawn_peer(port, "mosquitto", |dir| mosquitto_command(port, dir))
}

/// mosquitto with a configuration written into `dir`.
pub fn mosquitto_configured(dir: &Path, conf: String) -> Command {
    let path = dir.join("mosquitto.conf");
    std::fs::write(&path, conf).expect("write mosquitto.conf");
    let mut command = Command::new("mosquitto");
    command.arg("-c").arg(path);
    command
}

pub fn mosquitto_command(port: u16, dir: &Path) -> Command {
    mosquitto_configured(
        dir,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
}

/// A mosquitto broker on a free port that keeps sessions and queued messages in `dir` across
/// an orderly restart, queueing without a limit.
pub fn mosquitto_persistent(dir: &Path) -> Peer {
    spawn_peer_on_free_port("mosquitto (persistent)", |port, files| {
        mosquitto_persistent_command(port, dir, files)
    })
}

/// [`mosquitto_persistent`] on a given port (to restart one where it was).
pub fn mosquitto_persistent_on(port: u16, dir: &Path) -> Peer {
    spawn_peer(port, "mosquitto (persistent)", |files| {
        mosquitto_persistent_command(port, dir, files)
    })
}

pub fn mosquitto_persistent_command(port: u16, dir: &Path, files: &Path) -> Command {
    // Started as root, mosquitto drops to its own user, which must be able to save there.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
        .expect("open the persistence directory to the broker's user");
    mosquitto_configured(
        files,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nmax_queued_messages 0\n",
            dir.display()
        ),
    )
}

/// A fleet node: mosquitto on `port` keeping sessions, retained and queued messages in `dir`
/// across an orderly restart, bridged to the hub on `hub` for the uplink topics in both
/// directions (QoS 1, persistent bridge session).
pub fn mosquitto_bridged_node_on(port: u16, hub: u16, name: &str, dir: &Path) -> Peer {
    spawn_peer(port, "mosquitto (bridged, persistent)", |files| {
        let command = mosquitto_persistent_command(port, dir, files);
        let conf = files.join("mosquitto.conf");
        let mut text = std::fs::read_to_string(&conf).expect("mosquitto.conf");
        text.push_str(&format!(
            "connection hub-{name}\naddress 127.0.0.1:{hub}\ntopic qis/v2/ctx/# both 1\n\
             cleansession false\nremote_clientid bridge-{name}\nrestart_timeout 1 2\n\
             keepalive_interval 5\n"
        ));
        std::fs::write(&conf, text).expect("mosquitto.conf");
        command
    })
}

/// A plant's mosquitto broker on a free port, bridged to a cloud broker on `cloud` for the
/// uplink topics `qis/v1/ctx/#` and `qis/v2/ctx/#` in both directions (QoS 1, persistent bridge session), as a
/// plant would run it.
pub fn mosquitto_bridged(cloud: u16, name: &str) -> Peer {
    spawn_peer_on_free_port("mosquitto (bridged)", |port, dir| {
        mosquitto_configured(
            dir,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 0\nconnection cloud-{name}\naddress 127.0.0.1:{cloud}\n\
                 topic qis/v1/ctx/# both 1\ntopic qis/v2/ctx/# both 1\ncleansession false\nremote_clientid bridge-{name}\n\
                 restart_timeout 1 2\nkeepalive_interval 5\n"
            ),
        )
    })
}
