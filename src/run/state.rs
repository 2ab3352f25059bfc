//! The state database at start: opened (a damaged one moved aside), and on its first start
//! next to the JSON state files of an earlier version, those imported in one go and kept aside
//! as `<name>.imported`.

use super::RunError;
use crate::config::Config;
use crate::db::{Db, OpenError};
use crate::intake::state::{legacy, IntakeStore, INTAKE_FILE};
use crate::outcomes::answers::OUTCOMES_FILE;
use crate::outcomes::outbox::{self, Queued};
use crate::outcomes::{Answers, OutcomeState};
use crate::packet::ReplayGuard;
use crate::synthesis::SynthesisState;
use std::path::Path;
use tracing::{info, warn};

/// The loaded state.
pub struct Loaded {
    /// Alarms, answers, ledger, sequence number.
    pub answers: Answers,
    /// Intake's tables.
    pub intake: IntakeStore,
    /// Trust and proposals.
    pub synthesis: SynthesisState,
}

/// Opens the database in the state directory and loads it; `guard` receives the replay
/// memory.
pub fn load(config: &Config, guard: &mut ReplayGuard) -> Result<Loaded, RunError> {
    let dir = &config.site.state_dir;
    let (db, new) = Db::open(dir).map_err(open_error)?;
    let second = Db::connect(dir).map_err(open_error)?;
    let storage = |e: crate::db::StorageError| RunError::State(e.to_string());
    let mut answers =
        Answers::load(db, config.storage, config.outcomes.outbox_max).map_err(storage)?;
    let mut intake = IntakeStore::new(second);
    if new {
        import_legacy(dir, &mut answers, &mut intake, guard).map_err(storage)?;
    }
    let synthesis = intake.load(guard).map_err(storage)?;
    Ok(Loaded {
        answers,
        intake,
        synthesis,
    })
}

fn open_error(e: OpenError) -> RunError {
    match e {
        OpenError::Incurable(why) => RunError::StateIncurable(why),
        OpenError::Storage(why) => RunError::State(why),
    }
}

/// Imports `outcomes.json`, `intake.json` and `outbox/*.pkt` when present.
fn import_legacy(
    dir: &Path,
    answers: &mut Answers,
    intake: &mut IntakeStore,
    guard: &mut ReplayGuard,
) -> Result<(), crate::db::StorageError> {
    let outcomes = dir.join(OUTCOMES_FILE);
    let intake_file = dir.join(INTAKE_FILE);
    let outbox_dir = dir.join("outbox");
    if !outcomes.exists() && !intake_file.exists() && !outbox_dir.is_dir() {
        return Ok(());
    }
    let state: OutcomeState = crate::store::load_json(&outcomes);
    let alarms = answers.import(state)?;
    let synthesis = legacy::read(&intake_file, guard);
    intake.save(&synthesis, guard)?;
    let packets = import_outbox(&outbox_dir, answers)?;
    for path in [outcomes, intake_file, outbox_dir] {
        if path.exists() {
            let mut aside = path.as_os_str().to_owned();
            aside.push(".imported");
            if let Err(e) = std::fs::rename(&path, &aside) {
                warn!(file = %path.display(), error = %e, "Imported, but cannot be moved aside.");
            }
        }
    }
    info!(alarms, sources = guard.len(), packets, "State of an earlier version imported into the state database; the files are kept as *.imported.");
    Ok(())
}

fn import_outbox(dir: &Path, answers: &mut Answers) -> Result<usize, crate::db::StorageError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut packets = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(seq) = name
            .strip_suffix(".pkt")
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let Ok(bytes) = std::fs::read(entry.path()) else {
            warn!(file = %entry.path().display(), "Unreadable outbox file; not imported.");
            continue;
        };
        match crate::packet::guard::decode(&bytes) {
            Ok(p) => packets.push(Queued {
                seq,
                alarm_id: String::new(),
                topic: p.topic(),
                bytes,
                expires_at: p.body.expires_at(),
                at_ms: 0,
            }),
            Err(r) => {
                warn!(file = %entry.path().display(), reason = %r, "Outbox file is not a packet; not imported.")
            }
        }
    }
    let tx = answers.db().conn().transaction()?;
    for q in &packets {
        outbox::insert(&tx, q, usize::MAX)?;
    }
    tx.commit()?;
    Ok(packets.len())
}
