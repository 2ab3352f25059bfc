//! What peers' packets change, in the state database: trust, live proposals, the count of
//! applied packets and the replay memory, committed in one transaction before the packets they
//! account for are acknowledged to the broker. Only what changed since the last commit is
//! written: a packet from one peer rewrites that peer's rows, not the whole memory.
//!
//! `intake.json`, the file this lived in before the database, is imported once ([`legacy`]).

use crate::db::{Db, StorageError};
use crate::packet::ReplayGuard;
use crate::synthesis::{Proposal, SynthesisState, TargetKey};
use rusqlite::params;
use tracing::{info, warn};

/// The file intake's state lived in before the state database.
pub const INTAKE_FILE: &str = "intake.json";

/// Intake's tables, and what was last committed to them.
#[derive(Debug)]
pub struct IntakeStore {
    db: Db,
    /// Trust, proposals and the applied count as last committed.
    written: SynthesisState,
}

impl IntakeStore {
    /// The store on `db`, with nothing committed yet (see [`IntakeStore::load`]).
    pub fn new(db: Db) -> Self {
        Self {
            db,
            written: SynthesisState::default(),
        }
    }

    /// Reads the saved state: the replay memory goes into `guard`, trust and proposals are
    /// returned. Rows that cannot be read are skipped with a WARN line.
    pub fn load(&mut self, guard: &mut ReplayGuard) -> Result<SynthesisState, StorageError> {
        let mut state = SynthesisState {
            applied: crate::db::counter(&mut self.db, "applied")?,
            ..SynthesisState::default()
        };
        let mut skipped = 0usize;
        let conn = self.db.conn();
        let mut rows = conn.prepare("SELECT source, trust FROM trust")?;
        for row in rows.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))? {
            let (source, trust) = row?;
            state.trust.insert(source, trust);
        }
        let mut rows = conn.prepare("SELECT target, source, proposal FROM proposals")?;
        for row in rows.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (target, source, json) = row?;
            let target = serde_json::from_value::<TargetKey>(target.into());
            match (target, serde_json::from_str::<Proposal>(&json)) {
                (Ok(target), Ok(p)) => {
                    state.proposals.entry(target).or_default().insert(source, p);
                }
                _ => skipped += 1,
            }
        }
        let mut rows = conn.prepare("SELECT source, seqs, used FROM replay ORDER BY used")?;
        for row in rows.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })? {
            let (source, seqs, used) = row?;
            match (
                <[u8; 32]>::try_from(source),
                serde_json::from_str::<Vec<u64>>(&seqs),
            ) {
                (Ok(source), Ok(seqs)) => guard.restore(source, &seqs, used.max(0) as u64),
                _ => skipped += 1,
            }
        }
        guard.saved();
        if skipped > 0 {
            warn!(
                skipped,
                "Intake rows in the state database that cannot be read were skipped."
            );
        }
        if !guard.is_empty() {
            info!(sources = guard.len(), "Replay memory loaded.");
        }
        self.written = state.clone();
        Ok(state)
    }

    /// Commits what changed in trust, proposals, the applied count and the replay memory, in
    /// one transaction. On failure nothing is marked saved, so the next commit writes it all.
    pub fn save(
        &mut self,
        synthesis: &SynthesisState,
        guard: &mut ReplayGuard,
    ) -> Result<(), StorageError> {
        let tx = self.db.conn().transaction()?;
        for (source, trust) in &synthesis.trust {
            if self.written.trust.get(source) != Some(trust) {
                tx.prepare_cached(
                    "INSERT INTO trust(source, trust) VALUES (?1, ?2)
                     ON CONFLICT(source) DO UPDATE SET trust = ?2",
                )?
                .execute(params![source, trust])?;
            }
        }
        for source in self.written.trust.keys() {
            if !synthesis.trust.contains_key(source) {
                tx.execute("DELETE FROM trust WHERE source = ?1", [source])?;
            }
        }
        save_proposals(&tx, &self.written, synthesis)?;
        if synthesis.applied != self.written.applied {
            crate::db::put_counter(&tx, "applied", synthesis.applied)?;
        }
        let (changed, forgotten) = guard.changes();
        for (source, seqs, used) in &changed {
            let seqs = serde_json::to_string(seqs).unwrap_or_else(|_| "[]".into());
            tx.prepare_cached(
                "INSERT INTO replay(source, seqs, used) VALUES (?1, ?2, ?3)
                 ON CONFLICT(source) DO UPDATE SET seqs = ?2, used = ?3",
            )?
            .execute(params![source.as_slice(), seqs, *used as i64])?;
        }
        for source in &forgotten {
            tx.execute("DELETE FROM replay WHERE source = ?1", [source.as_slice()])?;
        }
        crate::db::crash_point("intake-before-commit");
        tx.commit()?;
        guard.saved();
        self.written = synthesis.clone();
        Ok(())
    }
}

fn save_proposals(
    tx: &rusqlite::Transaction<'_>,
    written: &SynthesisState,
    now: &SynthesisState,
) -> Result<(), StorageError> {
    for (target, by_source) in &now.proposals {
        let before = written.proposals.get(target);
        for (source, p) in by_source {
            if before.and_then(|b| b.get(source)) == Some(p) {
                continue;
            }
            let json = serde_json::to_string(p).map_err(|e| StorageError(e.to_string()))?;
            tx.prepare_cached(
                "INSERT INTO proposals(target, source, proposal) VALUES (?1, ?2, ?3)
                 ON CONFLICT(target, source) DO UPDATE SET proposal = ?3",
            )?
            .execute(params![target.to_string(), source, json])?;
        }
    }
    for (target, by_source) in &written.proposals {
        let after = now.proposals.get(target);
        for source in by_source.keys() {
            if after.is_none_or(|a| !a.contains_key(source)) {
                tx.execute(
                    "DELETE FROM proposals WHERE target = ?1 AND source = ?2",
                    params![target.to_string(), source],
                )?;
            }
        }
    }
    Ok(())
}

/// The JSON state files of earlier versions, read once for the import into the database.
pub mod legacy {
    use crate::packet::ReplayGuard;
    use crate::synthesis::SynthesisState;
    use std::path::Path;
    use tracing::warn;

    /// `intake.json`: trust and proposals, and the replay memory.
    #[derive(Debug, Default, serde::Deserialize)]
    struct IntakeFile {
        #[serde(flatten)]
        synthesis: SynthesisState,
        #[serde(default)]
        replay: Vec<ReplayEntry>,
    }

    #[derive(Debug, serde::Deserialize)]
    struct ReplayEntry {
        source: String,
        seqs: Vec<u64>,
    }

    /// Reads `intake.json` (or its last good copy): the replay memory goes into `guard`.
    pub fn read(path: &Path, guard: &mut ReplayGuard) -> SynthesisState {
        let file: IntakeFile = crate::store::load_json(path);
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
            warn!(file = %path.display(), skipped, "Replay memory entries with an invalid source key were skipped.");
        }
        file.synthesis
    }
}
