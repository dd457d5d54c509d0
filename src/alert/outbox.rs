//! The outbox: alert messages waiting for the broker's acknowledgement, in a sled tree
//! keyed by their sequence number, so iteration order is send order.
//!
//! [`Outbox::push`] assigns the next sequence number and stores the message in one
//! transaction, then fsyncs: when it returns, the alert survives a crash. Entries are
//! removed only by [`Outbox::remove`], which the publisher calls on PUBACK; storage
//! retention never touches this tree.

use std::ops::Bound;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::AlertMessage;
use crate::detect::AlertEvent;
use crate::store::StoreError;

const SEQ_KEY: &[u8] = b"alert_seq";

/// A message ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub topic: String,
    pub payload: Vec<u8>,
}

#[derive(Clone)]
pub struct Outbox {
    db: sled::Db,
    tree: sled::Tree,
    meta: sled::Tree,
}

fn encode(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + topic.len() + payload.len());
    v.extend_from_slice(&(topic.len() as u32).to_le_bytes());
    v.extend_from_slice(topic.as_bytes());
    v.extend_from_slice(payload);
    v
}

fn decode(seq: u64, v: &[u8]) -> Result<Entry, StoreError> {
    let bad = || StoreError::Corrupt(format!("outbox entry {seq}"));
    let len = u32::from_le_bytes(v.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
    let topic = v.get(4..4 + len).ok_or_else(bad)?;
    Ok(Entry {
        seq,
        topic: String::from_utf8_lossy(topic).into_owned(),
        payload: v[4 + len..].to_vec(),
    })
}

impl Outbox {
    pub fn open(db: &sled::Db) -> Result<Outbox, StoreError> {
        Ok(Outbox {
            db: db.clone(),
            tree: db.open_tree("outbox")?,
            meta: db.open_tree("alert_meta")?,
        })
    }

    /// Stores an alert durably; returns the message as it will be published.
    pub fn push(&self, agent: &str, topic: &str, event: &AlertEvent) -> Result<AlertMessage, StoreError> {
        let result: Result<AlertMessage, TransactionError<String>> =
            (&self.tree, &self.meta).transaction(|(tree, meta)| {
                let last = meta
                    .get(SEQ_KEY)?
                    .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
                    .unwrap_or(0);
                let seq = last + 1;
                let msg = AlertMessage::new(agent, seq, event);
                let payload =
                    serde_json::to_vec(&msg).map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                tree.insert(&seq.to_be_bytes()[..], encode(topic, &payload))?;
                meta.insert(SEQ_KEY, &seq.to_be_bytes()[..])?;
                Ok(msg)
            });
        let msg = result.map_err(|e| StoreError::Db(format!("outbox: {e:?}")))?;
        self.db.flush()?;
        Ok(msg)
    }

    /// The first entry after `after` (or the oldest, for `None`).
    pub fn next_after(&self, after: Option<u64>) -> Result<Option<Entry>, StoreError> {
        let lower = match after {
            Some(seq) => Bound::Excluded(seq.to_be_bytes()),
            None => Bound::Unbounded,
        };
        match self.tree.range((lower, Bound::Unbounded)).next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item?;
                let seq = u64::from_be_bytes(
                    k.as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("outbox key".into()))?,
                );
                decode(seq, &v).map(Some)
            }
        }
    }

    /// Forgets an acknowledged entry. Not fsynced: if the removal is lost in a crash the
    /// alert is sent again, which consumers absorb by `id`.
    pub fn remove(&self, seq: u64) -> Result<(), StoreError> {
        self.tree.remove(seq.to_be_bytes())?;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;
    use crate::detect::AlertState;

    fn event() -> AlertEvent {
        AlertEvent {
            asset: "line1/pump1".into(),
            rule: "hot".into(),
            state: AlertState::Raised,
            severity: Severity::Critical,
            sensor: "t".into(),
            value: 81.0,
            threshold: 80.0,
            ts_ms: 1_700_000_000_000,
            first_seen_ms: 1_700_000_000_000,
            score: None,
            contributions: Vec::new(),
        }
    }

    #[test]
    fn sequence_survives_reopen_and_order_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let ob = Outbox::open(&db).unwrap();
            assert_eq!(ob.push("gw", "t/1", &event()).unwrap().seq, 1);
            assert_eq!(ob.push("gw", "t/2", &event()).unwrap().seq, 2);
            ob.remove(1).unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let ob = Outbox::open(&db).unwrap();
        assert_eq!(ob.len(), 1);
        assert_eq!(ob.push("gw", "t/3", &event()).unwrap().seq, 3);
        let first = ob.next_after(None).unwrap().unwrap();
        assert_eq!((first.seq, first.topic.as_str()), (2, "t/2"));
        let msg: AlertMessage = serde_json::from_slice(&first.payload).unwrap();
        assert_eq!(msg.seq, 2);
        assert_eq!(ob.next_after(Some(2)).unwrap().unwrap().seq, 3);
        assert!(ob.next_after(Some(3)).unwrap().is_none());
    }
}
