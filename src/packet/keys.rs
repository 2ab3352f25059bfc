//! The gateway's Ed25519 signing key on disk.
//!
//! `<dir>/outcome-key.pem` holds the private key as PKCS#8 PEM (readable by
//! `openssl pkey -in outcome-key.pem -text`), mode 0600; `<dir>/outcome-key.pub` holds the
//! public key as 64 hex digits: the gateway's pseudonym, what peers put in their allowlists.
//! Both are written atomically (temporary file, fsync, rename, fsync of the directory), so a
//! power cut never leaves half a key.

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use rand::TryRngCore;
use std::fs;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// File name of the private key.
pub const PRIVATE_KEY_FILE: &str = "outcome-key.pem";
/// File name of the public key.
pub const PUBLIC_KEY_FILE: &str = "outcome-key.pub";

/// Problems with key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key exists and `--force` was not given.
    #[error("{} already exists; use --force to replace it (peers will then see a new source)", .0.display())]
    Exists(PathBuf),
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The private key file is not a PKCS#8 Ed25519 key.
    #[error("{}: not a PKCS#8 PEM Ed25519 private key ({reason}); restore it from a backup, or delete it to start with a new source identity", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The operating system's random source failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A new key from the operating system's random source.
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The public key as 64 lower-case hex digits.
pub fn public_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

/// A public key from 64 hex digits (surrounding whitespace ignored), as [`public_hex`] writes it.
pub fn parse_public_hex(text: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
    Some(bytes)
}

/// Writes `key` into `dir`, refusing to replace an existing key unless `force`.
pub fn write(dir: &Path, key: &SigningKey, force: bool) -> Result<(), KeyError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let private = dir.join(PRIVATE_KEY_FILE);
    if private.exists() && !force {
        return Err(KeyError::Exists(private));
    }
    let pem = key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| KeyError::Malformed {
            path: private.clone(),
            reason: e.to_string(),
        })?;
    write_atomic(&private, pem.as_bytes(), 0o600)?;
    let public = dir.join(PUBLIC_KEY_FILE);
    write_atomic(&public, format!("{}\n", public_hex(key)).as_bytes(), 0o644)?;
    Ok(())
}

/// Loads the key from `dir`.
pub fn load(dir: &Path) -> Result<SigningKey, KeyError> {
    let private = dir.join(PRIVATE_KEY_FILE);
    let pem = fs::read_to_string(&private).map_err(io(&private))?;
    #[cfg(unix)]
    if let Ok(meta) = fs::metadata(&private) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            warn!(file = %private.display(), "Private key is readable by others; chmod 600 it.");
        }
    }
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::Malformed {
        path: private,
        reason: e.to_string(),
    })
}

/// Loads the key from `dir`, or creates one there if there is none.
pub fn load_or_create(dir: &Path) -> Result<SigningKey, KeyError> {
    if dir.join(PRIVATE_KEY_FILE).exists() {
        return load(dir);
    }
    let key = generate()?;
    match write(dir, &key, false) {
        Ok(()) => {
            info!(dir = %dir.display(), source = %public_hex(&key), "Created a new outcome signing key.");
            Ok(key)
        }
        // Another process created one at the same moment: use that.
        Err(KeyError::Exists(_)) => load(dir),
        Err(e) => Err(e),
    }
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    crate::store::write_atomic(path, bytes, mode).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_are_not_overwritten_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate().unwrap();
        write(dir.path(), &key, false).unwrap();
        assert_eq!(load(dir.path()).unwrap().to_bytes(), key.to_bytes());
        let other = generate().unwrap();
        assert!(matches!(
            write(dir.path(), &other, false),
            Err(KeyError::Exists(_))
        ));
        assert_eq!(load(dir.path()).unwrap().to_bytes(), key.to_bytes());
        write(dir.path(), &other, true).unwrap();
        assert_eq!(load(dir.path()).unwrap().to_bytes(), other.to_bytes());
        let public = fs::read_to_string(dir.path().join(PUBLIC_KEY_FILE)).unwrap();
        assert_eq!(public.trim(), public_hex(&other));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(PRIVATE_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn load_or_create_creates_once_then_loads() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(&dir.path().join("state")).unwrap();
        let second = load_or_create(&dir.path().join("state")).unwrap();
        assert_eq!(first.to_bytes(), second.to_bytes());
    }

    #[test]
    fn a_corrupt_key_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(PRIVATE_KEY_FILE),
            "-----BEGIN PRIVATE KEY-----\ngarbage\n",
        )
        .unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(KeyError::Malformed { .. })
        ));
        assert!(fs::read_to_string(dir.path().join(PRIVATE_KEY_FILE))
            .unwrap()
            .contains("garbage"));
    }
}
