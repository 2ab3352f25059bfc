//! The state database: one SQLite file, `state.db`, in the state directory, in WAL mode with
//! `synchronous = FULL`, so a commit is on the card before anything that depends on it is
//! acknowledged. The stages that own the data write their own tables ([`crate::outcomes`]:
//! alarms, answers, ledger, sequence number, outbox, alarm history; [`crate::intake`]: trust,
//! proposals, replay memory).
//!
//! Opening it decides what a damaged file means:
//! - not SQLite, truncated, failing its integrity check, another program's database, or a
//!   directory in its place: moved aside as `state.db.damaged-<unix time>` with one ERROR line,
//!   and the gateway starts empty (never a crash loop);
//! - written by a newer schema, or unreadable (permissions): refused with
//!   [`OpenError::Incurable`], which a restart cannot cure, so the unit does not restart on
//!   its exit code.
//!
//! Schema migrations are versioned in [`MIGRATIONS`] (`PRAGMA user_version`); the file carries
//! [`APPLICATION_ID`] so another program's SQLite file is recognised as foreign.

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{error, info};

/// The database's name in the state directory.
pub const FILE: &str = "state.db";
/// `PRAGMA application_id` of a qis-edge state database ("QISE").
pub const APPLICATION_ID: i64 = 0x5149_5345;
/// How long a writer waits for another connection's transaction (the uplink deletes outbox
/// rows while the core commits).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The WAL is truncated to this after a checkpoint, so it cannot grow without bound.
const JOURNAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

/// The schema, one step per version: `MIGRATIONS[n]` takes version `n` to `n + 1`.
pub const MIGRATIONS: &[&str] = &[
    include_str!("schema_v1.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
];

/// The schema version this build writes.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A restart cannot cure it: a newer schema, or a file the gateway may not read.
    #[error("{0}")]
    Incurable(String),
    /// A storage fault (disk full, read-only, I/O error) that may pass.
    #[error("{0}")]
    Storage(String),
}

/// A connection to the state database.
#[derive(Debug)]
pub struct Db {
    conn: Connection,
}

impl Db {
    /// Opens (creating or migrating) `state.db` in `dir`; a damaged or foreign file is moved
    /// aside first. Returns whether the database is new (nothing was in it).
    pub fn open(dir: &Path) -> Result<(Self, bool), OpenError> {
        let path = dir.join(FILE);
        std::fs::create_dir_all(dir).map_err(|e| {
            OpenError::Storage(format!(
                "cannot create the state directory {}: {e}",
                dir.display()
            ))
        })?;
        if path.exists() && !path.is_file() {
            move_aside(&path, "it is not a regular file");
        }
        match Self::open_checked(&path) {
            Ok(opened) => Ok(opened),
            Err(Damage::Damaged(why)) => {
                move_aside(&path, &why);
                Self::open_checked(&path).map_err(|d| match d {
                    Damage::Damaged(why) | Damage::Storage(why) => OpenError::Storage(why),
                    Damage::Incurable(why) => OpenError::Incurable(why),
                })
            }
            Err(Damage::Storage(why)) => Err(OpenError::Storage(why)),
            Err(Damage::Incurable(why)) => Err(OpenError::Incurable(why)),
        }
    }

    /// Another connection to a database [`Db::open`] has opened (the uplink's).
    pub fn connect(dir: &Path) -> Result<Self, OpenError> {
        let conn = Connection::open_with_flags(dir.join(FILE), OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| OpenError::Storage(format!("{}: {e}", dir.join(FILE).display())))?;
        configure(&conn).map_err(|e| OpenError::Storage(e.to_string()))?;
        Ok(Self { conn })
    }

    /// A read-only connection to a database [`Db::open`] has opened (the dashboard's history).
    pub fn reader(dir: &Path) -> Result<Self, OpenError> {
        let path = dir.join(FILE);
        let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| OpenError::Storage(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| OpenError::Storage(e.to_string()))?;
        Ok(Self { conn })
    }

    /// A database in memory, with the schema: for tests and for a gateway that keeps no state.
    pub fn memory() -> Self {
        let mut conn = Connection::open_in_memory().expect("SQLite in memory");
        migrate(&mut conn).expect("the schema applies to an empty database");
        Self { conn }
    }

    /// The connection.
    pub fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Whether the database can commit a write now: a one-row update, so a full or read-only
    /// disk is found without writing anything that matters.
    pub fn probe(&mut self) -> Result<(), StorageError> {
        self.conn
            .execute(
                "INSERT INTO counters(name, value) VALUES('probe', 1)
                 ON CONFLICT(name) DO UPDATE SET value = value + 1",
                [],
            )
            .map(|_| ())
            .map_err(StorageError::from)
    }
}

/// Sets a named counter in the caller's transaction.
pub fn put_counter(tx: &Transaction<'_>, name: &str, value: u64) -> Result<(), StorageError> {
    tx.prepare_cached(
        "INSERT INTO counters(name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = ?2",
    )?
    .execute(params![name, value as i64])?;
    Ok(())
}

/// Reads a named counter (0 when absent).
pub fn counter(db: &mut Db, name: &str) -> Result<u64, StorageError> {
    let v: Option<i64> = db
        .conn()
        .query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(v.unwrap_or(0).max(0) as u64)
}

/// What went wrong opening a file.
enum Damage {
    Damaged(String),
    Storage(String),
    Incurable(String),
}

impl Db {
    fn open_checked(path: &Path) -> Result<(Self, bool), Damage> {
        let exists = path.exists();
        if exists {
            if let Err(e) = std::fs::File::open(path) {
                return Err(Damage::Incurable(format!(
                    "cannot read {}: {e}; give the gateway's user access to it",
                    path.display()
                )));
            }
        }
        let mut conn = Connection::open(path).map_err(|e| classify(path, e))?;
        configure(&conn).map_err(|e| classify(path, e))?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| classify(path, e))?;
        if check != "ok" {
            return Err(Damage::Damaged(format!(
                "its integrity check failed: {check}"
            )));
        }
        let app: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| classify(path, e))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| classify(path, e))?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(|e| classify(path, e))?;
        if app != APPLICATION_ID && (app != 0 || tables > 0) {
            return Err(Damage::Damaged(format!(
                "it is another program's SQLite database (application id {app:#x})"
            )));
        }
        if version > schema_version() {
            return Err(Damage::Incurable(format!(
                "{} was written by a newer qis-edge (schema {version}; this version reads up to \
                 {}): install that version again, or move the file aside to start empty",
                path.display(),
                schema_version()
            )));
        }
        let new = tables == 0;
        migrate(&mut conn).map_err(|e| classify(path, e))?;
        if version < schema_version() && !new {
            info!(file = %path.display(), from = version, to = schema_version(), "State database migrated.");
        }
        Ok((Self { conn }, new))
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        return Err(rusqlite::Error::InvalidQuery);
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    Ok(())
}

/// Applies every migration the database has not had, in one transaction.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= schema_version() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for step in &MIGRATIONS[version.max(0) as usize..] {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", schema_version())?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.commit()
}

fn classify(path: &Path, e: rusqlite::Error) -> Damage {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            Damage::Damaged(format!("it is not a readable SQLite database ({e})"))
        }
        Some(ErrorCode::PermissionDenied | ErrorCode::AuthorizationForStatementDenied) => {
            Damage::Incurable(format!("{}: {e}", path.display()))
        }
        _ if e == rusqlite::Error::InvalidQuery => {
            Damage::Storage(format!("{}: cannot switch to WAL mode", path.display()))
        }
        _ => Damage::Storage(format!("{}: {}", path.display(), StorageError::from(e))),
    }
}

/// Moves a damaged database (and its WAL and shared-memory files) aside.
fn move_aside(path: &Path, why: &str) {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = suffixed(path, &format!(".damaged-{stamp}"));
    let moved = std::fs::rename(path, &aside);
    for extra in ["-wal", "-shm"] {
        let file = suffixed(path, extra);
        if file.exists() {
            let _ = std::fs::rename(&file, suffixed(&aside, extra));
        }
    }
    match moved {
        Ok(()) => {
            error!(file = %path.display(), reason = why, moved_to = %aside.display(), "The state database is damaged; moved aside, starting with empty state.")
        }
        Err(e) => {
            error!(file = %path.display(), reason = why, error = %e, "The state database is damaged and cannot be moved aside.")
        }
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Fault injection for the durability tests: with `QIS_EDGE_CRASH_AT=<name>` in the
/// environment the process aborts (no cleanup, as a power cut) when it reaches the point of
/// that name: `answer-before-commit`, `answer-committed`, `intake-before-commit`. Without the
/// variable this is one comparison.
pub fn crash_point(name: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT
        .get_or_init(|| std::env::var("QIS_EDGE_CRASH_AT").ok())
        .as_deref()
        == Some(name)
    {
        eprintln!("QIS_EDGE_CRASH_AT={name}: aborting here");
        std::process::abort();
    }
}

/// A write that did not commit, in the words an operator needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(pub String);

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        let what = match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => "the disk is full",
            Some(ErrorCode::ReadOnly) => "the state directory is read-only",
            Some(ErrorCode::SystemIoFailure) => "an I/O error on the state directory",
            Some(ErrorCode::CannotOpen) => "the database file cannot be opened",
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                "the database is locked by another process"
            }
            Some(ErrorCode::DatabaseCorrupt) => "the database is damaged",
            _ => return Self(e.to_string()),
        };
        Self(format!("{what} ({e})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_gets_the_schema_and_opens_again_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let (mut db, new) = Db::open(dir.path()).unwrap();
        assert!(new);
        db.probe().unwrap();
        drop(db);
        let (mut db, new) = Db::open(dir.path()).unwrap();
        assert!(!new);
        let v: i64 = db
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema_version());
        let mode: String = db
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_version_1_database_is_migrated_keeping_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join(FILE)).unwrap();
            c.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute("INSERT INTO trust(source, trust) VALUES ('ab', 0.75)", [])
                .unwrap();
        }
        let (mut db, new) = Db::open(dir.path()).unwrap();
        assert!(!new);
        let trust: f64 = db
            .conn()
            .query_row("SELECT trust FROM trust WHERE source = 'ab'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(trust, 0.75);
        let levels: i64 = db
            .conn()
            .query_row("SELECT count(*) FROM level_events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(levels, 0);
        let retained: i64 = db
            .conn()
            .query_row("SELECT count(*) FROM retained", [], |r| r.get(0))
            .unwrap();
        assert_eq!(retained, 0);
        let v: i64 = db
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, schema_version());
        assert_eq!(v, 4);
    }

    fn damaged_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.starts_with("state.db.damaged-")
                    && !name.ends_with("-wal")
                    && !name.ends_with("-shm")
            })
            .count()
    }

    #[test]
    fn damaged_and_foreign_files_are_moved_aside_and_a_newer_schema_is_refused() {
        type Make = fn(&Path);
        let cases: [(&str, Make); 4] = [
            ("random bytes", |p| {
                std::fs::write(p, [0x5au8; 8192]).unwrap()
            }),
            ("a directory", |p| std::fs::create_dir(p).unwrap()),
            ("another program's database", |p| {
                let c = Connection::open(p).unwrap();
                c.execute_batch("CREATE TABLE songs(title TEXT); INSERT INTO songs VALUES('x');")
                    .unwrap();
            }),
            ("a truncated database", |p| {
                let dir = p.parent().unwrap();
                drop(Db::open(dir).unwrap());
                let bytes = std::fs::read(p).unwrap();
                std::fs::write(p, &bytes[..bytes.len() / 2 + 100]).unwrap();
                let _ = std::fs::remove_file(suffixed(p, "-wal"));
            }),
        ];
        for (what, make) in cases {
            let dir = tempfile::tempdir().unwrap();
            make(&dir.path().join(FILE));
            let (mut db, new) = Db::open(dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(new, "{what}: starts empty");
            db.probe().unwrap();
            assert_eq!(damaged_files(dir.path()), 1, "{what}: moved aside");
        }
        let dir = tempfile::tempdir().unwrap();
        drop(Db::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join(FILE)).unwrap();
        c.pragma_update(None, "user_version", schema_version() + 1)
            .unwrap();
        drop(c);
        match Db::open(dir.path()) {
            Err(OpenError::Incurable(why)) => assert!(why.contains("newer qis-edge"), "{why}"),
            other => panic!("a newer schema must be refused, got {other:?}"),
        }
        assert_eq!(
            damaged_files(dir.path()),
            0,
            "a newer database is kept as it is"
        );
    }
}
