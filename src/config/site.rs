//! `[site]`: who this gateway is and where it keeps its state.

use super::*;

/// `[site]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Site identifier, used as the second level of every local MQTT topic
    /// (`qis/<id>/...`). Letters, digits, `-` and `_` only. Stays inside the plant.
    pub id: String,
    /// Directory for the gateway's persistent state (keys, ledger, outbox).
    /// Default `/var/lib/qis-edge`, which is systemd's `StateDirectory=qis-edge`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
}

pub(super) fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/qis-edge")
}
