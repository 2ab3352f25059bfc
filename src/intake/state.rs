//! `intake.json`: everything peers' packets change, saved as one atomic file in the state
//! directory: trust, live proposals and the replay memory. One file, so a packet's effect and
//! the memory that it was seen are never saved apart, and a packet is acknowledged to the
//! broker only after both.

use crate::packet::ReplayGuard;
use crate::synthesis::SynthesisState;
use std::path::PathBuf;
use tracing::{error, info, warn};

/// The file's name in the state directory.
pub const INTAKE_FILE: &str = "intake.json";

/// The file: trust and proposals, and the replay memory, each source's public key (hex) with
/// its recent accepted sequence numbers, least recently heard from first.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct IntakeFile {
    #[serde(flatten)]
    synthesis: SynthesisState,
    #[serde(default)]
    replay: Vec<ReplayEntry>,
}

/// [`IntakeFile`] as written, borrowing the state.
#[derive(serde::Serialize)]
struct IntakeFileRef<'a> {
    #[serde(flatten)]
    synthesis: &'a SynthesisState,
    replay: Vec<ReplayEntry>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ReplayEntry {
    source: String,
    /// The most recent accepted sequence numbers, ascending.
    seqs: Vec<u64>,
}

/// Where intake's state is saved, and whether the last save failed.
#[derive(Debug)]
pub struct IntakeStore {
    path: PathBuf,
    failing: bool,
}

impl IntakeStore {
    /// The store at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            failing: false,
        }
    }

    /// Loads the file (a corrupt one is moved aside, see [`crate::store`]): the replay memory
    /// goes into `guard`, trust and proposals are returned.
    pub fn load(&self, guard: &mut ReplayGuard) -> SynthesisState {
        let file: IntakeFile = crate::store::load_json(&self.path);
        let mut skipped = 0usize;
        for entry in &file.replay {
            match crate::packet::keys::parse_public_hex(&entry.source) {
                Some(source) => entry
                    .seqs
                    .iter()
                    .for_each(|seq| guard.remember(source, *seq)),
                None => skipped += 1,
            }
        }
        if skipped > 0 {
            warn!(file = %self.path.display(), skipped, "Replay memory entries with an invalid source key were skipped.");
        }
        if !guard.is_empty() {
            info!(sources = guard.len(), "Replay memory loaded.");
        }
        file.synthesis
    }

    /// Saves trust, proposals and the replay memory in one atomic write. A failure is logged
    /// once until a save succeeds again.
    pub fn save(&mut self, synthesis: &SynthesisState, guard: &ReplayGuard) -> bool {
        let file = IntakeFileRef {
            synthesis,
            replay: guard
                .remembered()
                .into_iter()
                .map(|(source, seqs)| ReplayEntry {
                    source: hex::encode(source),
                    seqs,
                })
                .collect(),
        };
        match crate::store::save_json(&self.path, &file) {
            Ok(()) => {
                self.failing = false;
                true
            }
            Err(e) => {
                if !self.failing {
                    error!(file = %self.path.display(), error = %e, "Cannot save peers' proposals, trust and replay memory; retrying. Peers' packets stay unacknowledged until it is saved.");
                }
                self.failing = true;
                false
            }
        }
    }
}
