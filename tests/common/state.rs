//! Reading a gateway's state database (`state.db`) the way an operator would with `sqlite3`:
//! a separate connection, read-only, while the gateway may still be running.

use super::*;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// A read-only connection to the state database in `dir`.
pub fn state_db(dir: &Path) -> Connection {
    let path = dir.join("state.db");
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

/// Packets waiting in the outbox (0 when there is no database yet).
pub fn outbox_rows(dir: &Path) -> usize {
    if !dir.join("state.db").exists() {
        return 0;
    }
    state_db(dir)
        .query_row("SELECT count(*) FROM outbox", [], |r| r.get::<_, i64>(0))
        .unwrap() as usize
}

/// A named counter (`last_seq`, `applied`).
pub fn state_counter(dir: &Path, name: &str) -> u64 {
    state_db(dir)
        .query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
            r.get::<_, i64>(0)
        })
        .optional()
        .unwrap()
        .unwrap_or(0) as u64
}

/// (validations, refutations) of a ledger key.
pub fn ledger_counts(dir: &Path, key: &str) -> Option<(u64, u64)> {
    state_db(dir)
        .query_row(
            "SELECT validations, refutations FROM ledger WHERE key = ?1",
            [key],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
        .optional()
        .unwrap()
}

/// Every live proposal: (target, source, proposal JSON).
pub fn proposals(dir: &Path) -> Vec<(String, String, Value)> {
    let conn = state_db(dir);
    let mut q = conn
        .prepare("SELECT target, source, proposal FROM proposals")
        .unwrap();
    q.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })
    .unwrap()
    .map(|r| {
        let (t, s, p) = r.unwrap();
        (t, s, serde_json::from_str(&p).unwrap())
    })
    .collect()
}

/// Rows in a table.
pub fn table_rows(dir: &Path, table: &str) -> usize {
    state_db(dir)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as usize
}

/// Files in `dir` whose names start with `prefix`.
pub fn files_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Polls `check` (a file or database condition, which sends no event) until it holds; fails
/// after 20 s.
pub async fn wait_until(check: impl Fn() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
