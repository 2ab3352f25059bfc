//! The durable outbox, a file store: a packet is on disk (fsynced) before it is published and
//! is deleted only when the uplink broker acknowledges it (PUBACK; the uplink task in
//! [`crate::mqtt::uplink`] does the sending). A broker outage, a crash or a power cut loses
//! none; after one, the remaining packets go out oldest first. Duplicates are harmless:
//! receivers drop a source's repeated sequence numbers.

use crate::packet::guard::decode;
use std::path::{Path, PathBuf};
use tracing::error;

/// Packets waiting for their PUBACK, one file each, named by sequence number.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
    max: usize,
}

impl Outbox {
    /// The outbox in `dir`, keeping at most `max` packets.
    pub fn open(dir: &Path, max: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max: max.max(1),
        })
    }

    /// Stores a packet durably. When the outbox is full the oldest packet is dropped (it is the
    /// closest to expiry), with an ERROR log line: data loss an operator should know about.
    pub fn push(&self, seq: u64, bytes: &[u8]) -> std::io::Result<()> {
        crate::store::write_atomic(&self.dir.join(format!("{seq:020}.pkt")), bytes, 0o600)?;
        let pending = self.pending();
        if pending.len() > self.max {
            for (old, path) in pending.iter().take(pending.len() - self.max) {
                if std::fs::remove_file(path).is_ok() {
                    error!(
                        seq = old,
                        outbox_max = self.max,
                        "Outbox full: the oldest outcome packet was dropped unsent."
                    );
                }
            }
        }
        Ok(())
    }

    /// Packets waiting, oldest first.
    pub fn pending(&self) -> Vec<(u64, PathBuf)> {
        let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        let seq = name.strip_suffix(".pkt")?.parse::<u64>().ok()?;
                        Some((seq, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

/// A packet read back from the outbox, ready to publish.
#[derive(Debug)]
pub struct Waiting {
    /// Its sequence number.
    pub seq: u64,
    /// Its file.
    pub path: PathBuf,
    /// The packet.
    pub bytes: Vec<u8>,
    /// Its context's topic on the uplink.
    pub topic: String,
}

impl Outbox {
    /// The oldest packet that can be read and decoded; an undecodable one is moved aside
    /// (`.bad`) with an ERROR line.
    pub fn next(&self) -> Option<Waiting> {
        for (seq, path) in self.pending() {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            match decode(&bytes) {
                Ok(packet) => {
                    return Some(Waiting {
                        seq,
                        path,
                        bytes,
                        topic: packet.topic(),
                    })
                }
                Err(r) => {
                    error!(file = %path.display(), reason = %r, "Unreadable packet in the outbox; moved aside.");
                    let _ = std::fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        None
    }

    /// Deletes a packet the uplink acknowledged.
    pub fn remove(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
    }
}
