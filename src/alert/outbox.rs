//! The outbox: alert messages waiting for the broker's acknowledgement, in a sled tree
//! keyed by their sequence number, so iteration order is send order (and so order per
//! asset is kept).
//!
//! [`Outbox::commit`] assigns the next sequence numbers, stores the messages and the
//! alert lifecycle records that caused them in one transaction, then fsyncs: when it
//! returns, the alerts survive a crash and a restart knows they were raised. Entries are
//! removed only by [`Outbox::remove`], which the publisher calls on PUBACK; storage
//! retention never touches these trees. The depth is kept in a counter, so reporting it
//! costs nothing on the publisher's hot path.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::event::AlertEvent;
use super::labelled::{LabelMessage, LabelNotice};
use super::AlertMessage;
use crate::store::{Reserve, Store, StoreError};

const SEQ_KEY: &[u8] = b"alert_seq";
/// The highest label id announced ([`super::labelled`]).
const LABEL_MARK_KEY: &[u8] = b"label_mark";

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
    /// Checked before every write, as the store's own writers do.
    reserve: Reserve,
    tree: sled::Tree,
    meta: sled::Tree,
    /// Lifecycle records of the alarms (`alert::lifecycle`).
    states: sled::Tree,
    depth: Arc<AtomicU64>,
}

/// A lifecycle record write: key, and value or `None` to delete.
pub type StateWrite = (Vec<u8>, Option<Vec<u8>>);

/// A stored lifecycle record: key and value.
pub type StateRecord = (Vec<u8>, Vec<u8>);

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
    /// The outbox in the store's database, behind the store's write reserve.
    pub fn open(store: &Store) -> Result<Outbox, StoreError> {
        Outbox::open_in(store.db(), store.reserve())
    }

    fn open_in(db: &sled::Db, reserve: Reserve) -> Result<Outbox, StoreError> {
        let tree = db.open_tree("outbox")?;
        let depth = Arc::new(AtomicU64::new(tree.len() as u64));
        Ok(Outbox {
            db: db.clone(),
            reserve,
            tree,
            meta: db.open_tree("alert_meta")?,
            states: db.open_tree("alert_state")?,
            depth,
        })
    }

    /// Stores one alert durably; returns the message as it will be published.
    pub fn push(&self, agent: &str, topic: &str, event: &AlertEvent) -> Result<AlertMessage, StoreError> {
        let mut msgs = self.commit(agent, &[(topic.to_string(), event.clone())], &[])?;
        msgs.pop().ok_or_else(|| StoreError::Db("outbox: empty commit".into()))
    }

    /// Stores alerts (in order) and lifecycle records in one transaction; fsyncs when
    /// there are alerts. Returns the messages as they will be published.
    pub fn commit(
        &self,
        agent: &str,
        alerts: &[(String, AlertEvent)],
        states: &[StateWrite],
    ) -> Result<Vec<AlertMessage>, StoreError> {
        self.commit_with(alerts, |seq, e| AlertMessage::new(agent, seq, e), states, None)
    }

    /// Stores label events (in order) and raises the label mark to `mark` in one
    /// transaction, then fsyncs ([`super::labelled`]: every label announced once).
    pub fn commit_labels(
        &self,
        agent: &str,
        notices: &[(String, LabelNotice)],
        mark: Option<u64>,
    ) -> Result<Vec<LabelMessage>, StoreError> {
        self.commit_with(notices, |seq, n| LabelMessage::new(agent, seq, n), &[], mark)
    }

    /// The highest label id announced so far (0 before any).
    pub fn label_mark(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(LABEL_MARK_KEY)?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    /// One transaction: each item becomes the message `make` builds with the next
    /// sequence number; the states are written and the label mark raised to `mark`.
    fn commit_with<T, M: serde::Serialize>(
        &self,
        items: &[(String, T)],
        make: impl Fn(u64, &T) -> M,
        states: &[StateWrite],
        mark: Option<u64>,
    ) -> Result<Vec<M>, StoreError> {
        self.reserve.check()?;
        let result: Result<Vec<M>, TransactionError<String>> =
            (&self.tree, &self.meta, &self.states).transaction(|(tree, meta, state_tree)| {
                let read = |key: &[u8]| -> Result<u64, sled::transaction::UnabortableTransactionError> {
                    Ok(meta
                        .get(key)?
                        .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
                        .unwrap_or(0))
                };
                let mut seq = read(SEQ_KEY)?;
                let mut msgs = Vec::with_capacity(items.len());
                for (topic, item) in items {
                    seq += 1;
                    let msg = make(seq, item);
                    let payload =
                        serde_json::to_vec(&msg).map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                    tree.insert(&seq.to_be_bytes()[..], encode(topic, &payload))?;
                    msgs.push(msg);
                }
                if !items.is_empty() {
                    meta.insert(SEQ_KEY, &seq.to_be_bytes()[..])?;
                }
                if let Some(mark) = mark.filter(|&m| m > 0) {
                    let old = read(LABEL_MARK_KEY)?;
                    meta.insert(LABEL_MARK_KEY, &mark.max(old).to_be_bytes()[..])?;
                }
                for (k, v) in states {
                    match v {
                        Some(v) => state_tree.insert(k.as_slice(), v.as_slice())?,
                        None => state_tree.remove(k.as_slice())?,
                    };
                }
                Ok(msgs)
            });
        let msgs = result.map_err(|e| StoreError::Db(format!("outbox: {e:?}")))?;
        self.depth.fetch_add(msgs.len() as u64, Ordering::Relaxed);
        if !msgs.is_empty() || mark.is_some() {
            self.db.flush()?;
        }
        Ok(msgs)
    }

    /// Every stored lifecycle record.
    pub fn load_states(&self) -> Result<Vec<StateRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.states.iter() {
            let (k, v) = item?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
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
        self.reserve.check()?;
        if self.tree.remove(seq.to_be_bytes())?.is_some() {
            // Saturating: a commit's increment can land just after its entries are acked.
            let _ = self
                .depth
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| Some(d.saturating_sub(1)));
        }
        Ok(())
    }

    /// Alerts waiting for the broker.
    pub fn len(&self) -> usize {
        self.depth.load(Ordering::Relaxed) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertState;
    use crate::config::Severity;

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
            ..Default::default()
        }
    }

    /// sled's background threads can outlive a dropped `Db` for a moment and still hold
    /// the directory's lock, so a reopen in the same process waits for them.
    fn open(dir: &std::path::Path) -> sled::Db {
        let config = sled::Config::new().path(dir).flush_every_ms(None);
        for _ in 0..200 {
            match config.open() {
                Err(sled::Error::Io(e)) if e.to_string().contains("lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                db => return db.unwrap(),
            }
        }
        panic!("{} stayed locked for 2 s", dir.display());
    }

    #[test]
    fn alerts_and_states_commit_together_and_depth_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path());
            let ob = Outbox::open_in(&db, Reserve::of(dir.path())).unwrap();
            let alerts = vec![("t/a".to_string(), event()), ("t/b".to_string(), event())];
            let states = vec![
                (b"a".to_vec(), Some(b"1".to_vec())),
                (b"b".to_vec(), Some(b"2".to_vec())),
            ];
            let msgs = ob.commit("gw", &alerts, &states).unwrap();
            assert_eq!(msgs.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2]);
            assert_eq!(ob.len(), 2);
            ob.remove(1).unwrap();
            ob.remove(1).unwrap();
            assert_eq!(ob.len(), 1);
            ob.commit("gw", &[], &[(b"b".to_vec(), None)]).unwrap();
            db.flush().unwrap();
        }
        let db = open(dir.path());
        let ob = Outbox::open_in(&db, Reserve::of(dir.path())).unwrap();
        assert_eq!(ob.len(), 1);
        assert_eq!(ob.load_states().unwrap(), vec![(b"a".to_vec(), b"1".to_vec())]);
    }

    #[test]
    fn label_events_share_the_sequence_and_the_mark_only_rises() {
        use crate::alert::labelled::{LabelEvent, LabelNotice};
        use crate::base::label::{Label, LabelKind};
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let ob = Outbox::open_in(&db, Reserve::of(dir.path())).unwrap();
        assert_eq!(ob.label_mark().unwrap(), 0);
        ob.push("gw", "t/a", &event()).unwrap();
        let notice = |id| LabelNotice {
            label: Label::for_test(id, "a", 0, 1, LabelKind::Maintenance),
            event: LabelEvent::Labelled,
            asset_path: Vec::new(),
            model_version: None,
            ts_ms: 0,
        };
        let msgs = ob.commit_labels("gw", &[("t/a".into(), notice(4))], Some(4)).unwrap();
        assert_eq!((msgs[0].seq, ob.label_mark().unwrap(), ob.len()), (2, 4, 2));
        ob.commit_labels("gw", &[], Some(3)).unwrap();
        assert_eq!(ob.label_mark().unwrap(), 4, "a lower mark never lowers it");
        let entry = ob.next_after(Some(1)).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&entry.payload).unwrap();
        assert_eq!(
            (v["event"].as_str(), v["label_id"].as_u64()),
            (Some("labelled"), Some(4))
        );
    }

    #[test]
    fn sequence_survives_reopen_and_order_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path());
            let ob = Outbox::open_in(&db, Reserve::of(dir.path())).unwrap();
            assert_eq!(ob.push("gw", "t/1", &event()).unwrap().seq, 1);
            assert_eq!(ob.push("gw", "t/2", &event()).unwrap().seq, 2);
            ob.remove(1).unwrap();
        }
        let db = open(dir.path());
        let ob = Outbox::open_in(&db, Reserve::of(dir.path())).unwrap();
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
