//! Durable state files in the state directory.
//!
//! Every write is atomic: the new content goes to a temporary file that is fsynced, the current
//! file becomes `<name>.bak` (the last good copy), the temporary file is renamed into place and
//! the directory is fsynced. A power cut therefore leaves either the old or the new file, never
//! half of one. On load, a file that cannot be parsed is moved aside as
//! `<name>.corrupt-<unix time>` with an ERROR log line, and the last good copy is used, or an
//! empty state: never a crash loop.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::{error, warn};

/// Writes a file atomically with the given Unix mode.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{unique}.tmp", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".bak");
    PathBuf::from(name)
}

/// Saves `value` as JSON, keeping the previous version as `<name>.bak`.
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    if path.exists() {
        // Only a file that still parses becomes the last good copy.
        if fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some()
        {
            let _ = fs::copy(path, backup_path(path));
        }
    }
    write_atomic(path, &bytes, 0o600)
}

/// Loads JSON state, recovering from a corrupt or truncated file (see the module docs).
pub fn load_json<T: DeserializeOwned + Default>(path: &Path) -> T {
    match fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(value) => return value,
            Err(e) => {
                let stamp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let mut aside = path.as_os_str().to_owned();
                aside.push(format!(".corrupt-{stamp}"));
                let aside = PathBuf::from(aside);
                let moved = fs::rename(path, &aside).is_ok();
                error!(file = %path.display(), error = %e, moved_to = %aside.display(), moved, "State file is corrupt; moved aside, using the last good copy if there is one.");
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(file = %path.display(), error = %e, "Cannot read the state file."),
    }
    let backup = backup_path(path);
    if let Ok(bytes) = fs::read(&backup) {
        match serde_json::from_slice(&bytes) {
            Ok(value) => {
                warn!(file = %backup.display(), "Using the last good copy of the state.");
                return value;
            }
            Err(e) => {
                error!(file = %backup.display(), error = %e, "The last good copy is corrupt too; starting empty.")
            }
        }
    }
    T::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn state_round_trips_and_survives_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut a: BTreeMap<String, u32> = BTreeMap::new();
        a.insert("x".into(), 1);
        save_json(&path, &a).unwrap();
        a.insert("x".into(), 2);
        save_json(&path, &a).unwrap();
        assert_eq!(load_json::<BTreeMap<String, u32>>(&path)["x"], 2);
        // A torn write: the file is garbage. The last good copy (x = 1) is used and the
        // garbage kept aside for inspection.
        fs::write(&path, b"{\"x\": 2").unwrap();
        let recovered: BTreeMap<String, u32> = load_json(&path);
        assert_eq!(recovered["x"], 1);
        assert!(!path.exists());
        let aside = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains(".corrupt-"));
        assert!(aside);
        // Nothing usable at all: empty.
        fs::write(&path, b"\xff\xfe").unwrap();
        fs::write(backup_path(&path), b"also bad").unwrap();
        assert!(load_json::<BTreeMap<String, u32>>(&path).is_empty());
    }
}
