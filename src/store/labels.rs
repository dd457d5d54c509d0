//! The operator labels of every asset (see [`crate::base::label`]), in the `labels` tree:
//! key the label's id (big-endian, so the tree reads in creation order), value its JSON.
//!
//! A label is durable when [`Store::add_label`] returns: the tree is flushed then, as
//! labels are rare and an operator who was told "saved" must not lose it to a power cut.
//! Retention never touches this tree: a label outlives the samples it describes.

use crate::base::label::{Label, NewLabel};

use super::{Store, StoreError};

const TREE: &str = "labels";
/// Key in `meta` of the last label id given.
const LABEL_SEQ: &[u8] = b"label_seq";

impl Store {
    fn labels_tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(TREE)?)
    }

    /// Stores `label`, made at `now_ms`, and returns it with its id. The caller has
    /// validated it ([`NewLabel::validate`]); an invalid one is refused here too.
    ///
    /// Ids are 1, 2, 3, …: short enough to type in `forewarn label --remove`, never reused
    /// (the counter lives in `meta` and only grows). The id is drawn and the label written
    /// in one transaction, so a reader never sees a label before one with a smaller id:
    /// the agent's announcement of labels upstream relies on it.
    pub fn add_label(&self, label: NewLabel, now_ms: i64) -> Result<Label, StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional;
        label.validate()?;
        self.inner.reserve.check()?;
        let tree = self.labels_tree()?;
        let result: Result<Label, TransactionError<String>> =
            (&self.inner.meta, &tree).transaction(|(meta, labels)| {
                let id = meta
                    .get(LABEL_SEQ)?
                    .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
                    .map_or(0, u64::from_be_bytes)
                    + 1;
                let stored = Label {
                    id,
                    span: label.clone(),
                    created_ms: now_ms,
                };
                let json =
                    serde_json::to_vec(&stored).map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                meta.insert(LABEL_SEQ, &id.to_be_bytes()[..])?;
                labels.insert(&id.to_be_bytes()[..], json)?;
                Ok(stored)
            });
        let stored = result.map_err(|e| StoreError::Db(format!("labels: {e:?}")))?;
        self.inner.db.flush()?;
        Ok(stored)
    }

    /// Every label, of `asset` only when given, in creation order. An entry that does not
    /// parse is an error naming its id, never skipped silently.
    pub fn labels(&self, asset: Option<&str>) -> Result<Vec<Label>, StoreError> {
        let mut out = Vec::new();
        for entry in self.labels_tree()?.iter() {
            let (key, value) = entry?;
            let label: Label = serde_json::from_slice(&value)
                .map_err(|e| StoreError::Corrupt(format!("label {:?}: {e}", key.as_ref())))?;
            if asset.is_none_or(|a| a == label.span.asset) {
                out.push(label);
            }
        }
        Ok(out)
    }

    /// Removes the label `id` (a label made by mistake); returns it if it existed.
    pub fn remove_label(&self, id: u64) -> Result<Option<Label>, StoreError> {
        let tree = self.labels_tree()?;
        let Some(old) = tree.remove(id.to_be_bytes())? else {
            return Ok(None);
        };
        tree.flush()?;
        let label = serde_json::from_slice(&old).map_err(|e| StoreError::Corrupt(format!("label {id}: {e}")))?;
        Ok(Some(label))
    }
}

#[cfg(test)]
mod tests {
    use crate::base::label::{LabelKind, NewLabel};
    use crate::store::{Store, StoreOptions};

    fn new(asset: &str, from: i64, kind: LabelKind) -> NewLabel {
        NewLabel {
            asset: asset.into(),
            from_ms: from,
            to_ms: from + 1000,
            kind,
            note: Some("seal replaced".into()),
            author: "anna".into(),
        }
    }

    #[test]
    fn labels_survive_a_reopen_in_creation_order_and_filter_by_asset() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            let a = store.add_label(new("pump", 5000, LabelKind::FalseAlarm), 7).unwrap();
            let b = store.add_label(new("fan", 0, LabelKind::Maintenance), 8).unwrap();
            assert_eq!((a.id, b.id), (1, 2));
            (a, b)
        };
        let store = crate::store::tests::reopen(dir.path(), StoreOptions::default());
        assert_eq!(store.labels(None).unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(store.labels(Some("pump")).unwrap(), vec![a.clone()]);
        assert_eq!(store.remove_label(a.id).unwrap(), Some(a.clone()));
        assert_eq!(store.remove_label(a.id).unwrap(), None);
        assert_eq!(store.labels(None).unwrap(), vec![b]);
        let c = store.add_label(new("pump", 0, LabelKind::Failure), 9).unwrap();
        assert!(c.id > a.id, "ids are never reused");
    }

    #[test]
    fn labels_made_at_once_from_several_threads_get_every_id_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let store = store.clone();
                s.spawn(move || {
                    for i in 0..25 {
                        store
                            .add_label(new("pump", t * 100 + i, LabelKind::Failure), 0)
                            .unwrap();
                    }
                });
            }
        });
        let ids: Vec<u64> = store.labels(None).unwrap().iter().map(|l| l.id).collect();
        assert_eq!(ids, (1..=100).collect::<Vec<u64>>());
    }

    #[test]
    fn an_invalid_label_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let mut bad = new("pump", 0, LabelKind::Failure);
        bad.to_ms = bad.from_ms;
        assert!(store.add_label(bad, 0).is_err());
        assert!(store.labels(None).unwrap().is_empty());
    }
}
