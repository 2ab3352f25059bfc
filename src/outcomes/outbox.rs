//! The durable outbox, a table of the state database: a packet is committed with its answer
//! (see [`super::answers`]) before it is published, and its row is deleted only when the uplink
//! broker acknowledges it (PUBACK; the uplink task in [`crate::mqtt::uplink`] does the sending,
//! on its own connection). A broker outage, a crash or a power cut loses none; after one, the
//! remaining packets go out oldest first. Duplicates are harmless: receivers drop a source's
//! repeated sequence numbers.
//!
//! A packet whose row cannot be deleted (a read-only disk) is remembered as retired and not
//! sent again by this process: a sick gateway must not flood the fleet with one packet.
//!
//! A v3 packet goes out retained on its own topic (its context's levels, its source, its
//! pattern), so the broker hands each source's latest word on each pattern to a gateway that
//! subscribes later. The `retained` table remembers those topics with their expiry; once the
//! outbox is empty the uplink clears each expired one ([`Outbox::due_clear`]), also after a
//! restart. A newer packet on the same topic replaces the retained one and its expiry.

use crate::db::{Db, StorageError};
use crate::packet::guard::decode;
use rusqlite::{params, OptionalExtension, Transaction};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tracing::error;

/// The most live packets handed out in one answer to a joining gateway.
pub const LIVE_MAX: usize = 1024;

/// A packet to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    /// Its sequence number.
    pub seq: u64,
    /// The alarm it answers.
    pub alarm_id: String,
    /// Its topic on the uplink (the signed packet's: a v3 topic names its source).
    pub topic: String,
    /// The signed packet.
    pub bytes: Vec<u8>,
    /// Unix seconds the packet expires ([`crate::packet::PacketBody::expires_at`]).
    pub expires_at: u64,
    /// When it was queued, Unix milliseconds.
    pub at_ms: u64,
}

/// Inserts a packet in the caller's transaction. Beyond `max` packets the oldest are dropped
/// (they are the closest to expiry), with an ERROR line: data loss an operator should know of.
pub fn insert(tx: &Transaction<'_>, q: &Queued, max: usize) -> Result<(), StorageError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO outbox(seq, alarm_id, topic, packet, queued_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        q.seq as i64,
        q.alarm_id,
        q.topic,
        q.bytes,
        q.at_ms as i64
    ])?;
    if retained(&q.topic) {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO retained(topic, expires_at, packet) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![
            q.topic,
            q.expires_at.min(i64::MAX as u64) as i64,
            q.bytes
        ])?;
    }
    let n: i64 = tx.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
    let over = n.saturating_sub(i64::try_from(max).unwrap_or(i64::MAX));
    if over > 0 {
        tx.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?1)",
            [over],
        )?;
        error!(
            dropped = over,
            outbox_max = max,
            "Outbox full: the oldest outcome packets were dropped unsent."
        );
    }
    Ok(())
}

/// Whether packets on `topic` go out retained: v3 topics, one per source and pattern (a v1
/// topic is shared by every source of a context).
pub fn retained(topic: &str) -> bool {
    topic.starts_with("qis/v2/")
}

/// A retained packet to clear: its topic and the expiry it was kept for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clear {
    /// The topic.
    pub topic: String,
    /// Unix seconds it expired.
    pub expires_at: u64,
}

/// A packet read back from the outbox, ready to publish.
#[derive(Debug)]
pub struct Waiting {
    /// Its sequence number.
    pub seq: u64,
    /// The packet.
    pub bytes: Vec<u8>,
    /// Its context's topic on the uplink.
    pub topic: String,
}

/// The uplink's view of the outbox: its own connection, opened on first use.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    db: Option<Db>,
    /// Acknowledged packets whose rows could not be deleted yet.
    retired: BTreeSet<u64>,
}

impl Outbox {
    /// The outbox of the state database in `dir` (which [`Db::open`] has created).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            db: None,
            retired: BTreeSet::new(),
        }
    }

    fn db(&mut self) -> Result<&mut Db, StorageError> {
        if self.db.is_none() {
            self.db = Some(Db::connect(&self.dir).map_err(|e| StorageError(e.to_string()))?);
        }
        Ok(self.db.as_mut().expect("just opened"))
    }

    /// Packets waiting (retired ones not counted).
    pub fn pending(&mut self) -> Result<usize, StorageError> {
        let retired = self.retired.len();
        let n: i64 = self
            .db()?
            .conn()
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
        Ok((n.max(0) as usize).saturating_sub(retired))
    }

    /// The oldest packet not yet acknowledged; first retries deleting the retired ones (a
    /// failure there does not hold back the packets after them). A row that does not decode as
    /// a packet is deleted with an ERROR line.
    pub fn oldest(&mut self) -> Result<Option<Waiting>, StorageError> {
        let _ = self.retry_retired();
        let after = self.retired.last().map(|s| *s as i64).unwrap_or(-1);
        loop {
            let row: Option<(i64, Vec<u8>)> = self
                .db()?
                .conn()
                .query_row(
                    "SELECT seq, packet FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT 1",
                    [after],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((seq, bytes)) = row else {
                return Ok(None);
            };
            match decode(&bytes) {
                Ok(packet) => {
                    return Ok(Some(Waiting {
                        seq: seq as u64,
                        topic: packet.topic(),
                        bytes,
                    }))
                }
                Err(r) => {
                    error!(seq, reason = %r, "Unreadable packet in the outbox; deleted.");
                    self.db()?
                        .conn()
                        .execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
                }
            }
        }
    }

    /// This gateway's live packets (unexpired at `now_s`) of equipment class `class` (its
    /// fingerprint, 32 hex digits), as (topic, bytes): what it hands a gateway that asks on
    /// joining. At most [`LIVE_MAX`].
    pub fn live(
        &mut self,
        class: &str,
        now_s: u64,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let prefix = format!("qis/v2/ctx/{class}/");
        let db = self.db()?;
        let mut stmt = db.conn().prepare_cached(
            "SELECT topic, packet FROM retained
             WHERE packet IS NOT NULL AND expires_at > ?1 AND substr(topic, 1, ?2) = ?3
             ORDER BY topic LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![
                now_s.min(i64::MAX as u64) as i64,
                prefix.len() as i64,
                prefix,
                LIVE_MAX as i64
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The retained packet that expired first, if one has by `now_s` (Unix seconds).
    pub fn due_clear(&mut self, now_s: u64) -> Result<Option<Clear>, StorageError> {
        let row: Option<(String, i64)> = self
            .db()?
            .conn()
            .query_row(
                "SELECT topic, expires_at FROM retained WHERE expires_at <= ?1
                 ORDER BY expires_at LIMIT 1",
                [now_s.min(i64::MAX as u64) as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.map(|(topic, at)| Clear {
            topic,
            expires_at: at.max(0) as u64,
        }))
    }

    /// When the next retained packet expires, Unix seconds.
    pub fn next_clear(&mut self) -> Result<Option<u64>, StorageError> {
        let at: Option<i64> =
            self.db()?
                .conn()
                .query_row("SELECT min(expires_at) FROM retained", [], |r| r.get(0))?;
        Ok(at.map(|a| a.max(0) as u64))
    }

    /// The broker acknowledged a clear: forgets the topic, unless a newer packet has been
    /// queued on it since (its expiry is then another).
    pub fn cleared(&mut self, clear: &Clear) -> Result<(), StorageError> {
        self.db()?.conn().execute(
            "DELETE FROM retained WHERE topic = ?1 AND expires_at = ?2",
            params![clear.topic, clear.expires_at.min(i64::MAX as u64) as i64],
        )?;
        Ok(())
    }

    /// Deletes a packet the uplink acknowledged. When that fails it is retired: not sent again,
    /// its deletion retried before the next packet goes.
    pub fn remove(&mut self, seq: u64) -> Result<(), StorageError> {
        self.retired.insert(seq);
        self.retry_retired()
    }

    fn retry_retired(&mut self) -> Result<(), StorageError> {
        if self.retired.is_empty() {
            return Ok(());
        }
        let retired: Vec<u64> = self.retired.iter().copied().collect();
        let db = self.db()?;
        let tx = db.conn().transaction()?;
        for seq in &retired {
            tx.execute("DELETE FROM outbox WHERE seq = ?1", [*seq as i64])?;
        }
        tx.commit()?;
        self.retired.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(db: &mut Db, seqs: &[u64]) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let tx = db.conn().transaction().unwrap();
        for &seq in seqs {
            let mut body = crate::packet::tests::largest_body();
            body.version = crate::packet::VERSION;
            body.seq = seq;
            let packet = body.sign(&key).unwrap();
            let q = Queued {
                seq,
                alarm_id: format!("d/p/high/{seq}"),
                topic: packet.topic(),
                bytes: packet.to_bytes().unwrap(),
                expires_at: packet.body.expires_at(),
                at_ms: 0,
            };
            insert(&tx, &q, 2).unwrap();
        }
        tx.commit().unwrap();
    }

    /// Queues one packet issued at `issued_at` for `ttl_s`; returns its topic.
    fn queue_one(db: &mut Db, seq: u64, issued_at: u64, ttl_s: u32) -> String {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let mut body = crate::packet::tests::largest_body();
        (body.version, body.seq, body.issued_at, body.ttl_s) =
            (crate::packet::VERSION, seq, issued_at, ttl_s);
        let packet = body.sign(&key).unwrap();
        let q = Queued {
            seq,
            alarm_id: format!("d/p/high/{seq}"),
            topic: packet.topic(),
            bytes: packet.to_bytes().unwrap(),
            expires_at: packet.body.expires_at(),
            at_ms: 0,
        };
        let tx = db.conn().transaction().unwrap();
        insert(&tx, &q, 10).unwrap();
        tx.commit().unwrap();
        q.topic
    }

    /// A v3 packet's topic is remembered with its expiry; it is due for clearing only once
    /// expired; a newer packet on the same topic (the source's next word on the pattern) moves
    /// the expiry, so acknowledging the old clear does not forget the new packet.
    #[test]
    fn retained_packets_are_cleared_once_expired_unless_superseded() {
        let dir = tempfile::tempdir().unwrap();
        let (mut db, _) = Db::open(dir.path()).unwrap();
        let topic = queue_one(&mut db, 1, 1_000, 100);
        assert!(retained(&topic) && topic.starts_with("qis/v2/ctx/"));
        let mut outbox = Outbox::new(dir.path());
        assert_eq!(outbox.next_clear().unwrap(), Some(1_100));
        assert_eq!(outbox.due_clear(1_099).unwrap(), None);
        let due = outbox.due_clear(1_100).unwrap().unwrap();
        assert_eq!(
            due,
            Clear {
                topic: topic.clone(),
                expires_at: 1_100
            }
        );
        // The source speaks again on the same pattern before the clear is acknowledged.
        assert_eq!(
            queue_one(&mut db, 2, 1_050, 100),
            topic,
            "one topic per source and pattern"
        );
        outbox.cleared(&due).unwrap();
        assert_eq!(
            outbox.next_clear().unwrap(),
            Some(1_150),
            "the newer packet is kept"
        );
        let due = outbox.due_clear(1_200).unwrap().unwrap();
        outbox.cleared(&due).unwrap();
        assert_eq!(outbox.next_clear().unwrap(), None);
    }

    /// What a joiner is handed: the newest packet of each topic, of the class asked, while it
    /// lives.
    #[test]
    fn live_packets_are_the_unexpired_ones_of_the_class_asked() {
        let dir = tempfile::tempdir().unwrap();
        let (mut db, _) = Db::open(dir.path()).unwrap();
        let topic = queue_one(&mut db, 1, 1_000, 100);
        queue_one(&mut db, 2, 1_050, 100);
        let class = topic.split('/').nth(3).unwrap().to_string();
        let mut outbox = Outbox::new(dir.path());
        let live = outbox.live(&class, 1_100).unwrap();
        assert_eq!(live.len(), 1, "one per topic: the newer");
        assert_eq!(live[0].0, topic);
        let packet = decode(&live[0].1).unwrap();
        assert_eq!(packet.body.seq, 2);
        assert!(outbox.live(&class, 1_150).unwrap().is_empty(), "expired");
        assert!(
            outbox.live(&"0".repeat(32), 1_100).unwrap().is_empty(),
            "another class"
        );
    }

    #[test]
    fn a_full_outbox_drops_its_oldest_and_packets_go_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let (mut db, _) = Db::open(dir.path()).unwrap();
        queue(&mut db, &[5, 6, 7]);
        let mut outbox = Outbox::new(dir.path());
        assert_eq!(
            outbox.pending().unwrap(),
            2,
            "outbox_max 2: the oldest dropped"
        );
        assert_eq!(outbox.oldest().unwrap().unwrap().seq, 6);
        outbox.remove(6).unwrap();
        assert_eq!(outbox.oldest().unwrap().unwrap().seq, 7);
        outbox.remove(7).unwrap();
        assert!(outbox.oldest().unwrap().is_none());
    }

    /// On a read-only database an acknowledged packet cannot be deleted: it is retired (never
    /// returned again, so never resent), the next one still goes, and the deletion is done once
    /// the database takes writes again.
    #[test]
    fn a_packet_that_cannot_be_deleted_is_retired_not_resent() {
        let dir = tempfile::tempdir().unwrap();
        let (mut db, _) = Db::open(dir.path()).unwrap();
        queue(&mut db, &[1, 2]);
        let mut outbox = Outbox::new(dir.path());
        assert_eq!(outbox.oldest().unwrap().unwrap().seq, 1);
        let read_only = |outbox: &mut Outbox, on: bool| {
            outbox
                .db()
                .unwrap()
                .conn()
                .pragma_update(None, "query_only", on)
                .unwrap()
        };
        read_only(&mut outbox, true);
        let e = outbox.remove(1).unwrap_err();
        assert!(e.to_string().contains("read-only"), "{e}");
        for _ in 0..3 {
            assert_eq!(
                outbox.oldest().unwrap().unwrap().seq,
                2,
                "1 is not sent again"
            );
        }
        assert_eq!(outbox.pending().unwrap(), 1);
        read_only(&mut outbox, false);
        outbox.remove(2).unwrap();
        assert!(outbox.oldest().unwrap().is_none());
        let rows: i64 = db
            .conn()
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0, "both deleted once writable");
    }
}
