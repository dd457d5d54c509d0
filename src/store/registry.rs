//! Sensor registry: a persistent map between sensor names and compact ids, kept in the
//! `meta` tree. Ids are never reused, so history stays attached to its name across
//! restarts and config changes.

use sled::Tree;

use super::StoreError;
use crate::base::sample::SensorId;

const NAME_PREFIX: &[u8] = b"sensor/name/";
const ID_PREFIX: &[u8] = b"sensor/id/";

fn name_key(name: &str) -> Vec<u8> {
    [NAME_PREFIX, name.as_bytes()].concat()
}

fn id_key(id: SensorId) -> Vec<u8> {
    [ID_PREFIX, &id.to_be_bytes()[..]].concat()
}

/// The id of `name`, allocating the next free one if the name is new.
pub fn id_for(meta: &Tree, name: &str) -> Result<SensorId, StoreError> {
    if let Some(id) = lookup(meta, name)? {
        return Ok(id);
    }
    let next = meta.scan_prefix(ID_PREFIX).count() as SensorId;
    let result = meta.transaction(|tx| {
        tx.insert(name_key(name), &next.to_be_bytes())?;
        tx.insert(id_key(next), name.as_bytes())?;
        Ok(())
    });
    result.map_err(|e: sled::transaction::TransactionError<()>| StoreError::Db(format!("{e:?}")))?;
    Ok(next)
}

pub fn lookup(meta: &Tree, name: &str) -> Result<Option<SensorId>, StoreError> {
    Ok(meta
        .get(name_key(name))?
        .and_then(|v| Some(SensorId::from_be_bytes(v.as_ref().try_into().ok()?))))
}

/// Every registered (id, name), by id.
pub fn all(meta: &Tree) -> Result<Vec<(SensorId, String)>, StoreError> {
    let mut out = Vec::new();
    for item in meta.scan_prefix(ID_PREFIX) {
        let (k, v) = item?;
        let id = SensorId::from_be_bytes(
            k[ID_PREFIX.len()..]
                .try_into()
                .map_err(|_| StoreError::Corrupt("sensor id key".into()))?,
        );
        out.push((id, String::from_utf8_lossy(&v).into_owned()));
    }
    Ok(out)
}
