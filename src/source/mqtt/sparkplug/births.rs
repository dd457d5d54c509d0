//! What Sparkplug B birth certificates bound, kept across restarts, and the pacing of the
//! rebirth requests that recover a birth nobody kept.
//!
//! DATA messages name their metrics by alias; only the NBIRTH/DBIRTH before them says
//! which metric an alias is and of which datatype. A node publishes its births once per
//! session, so an agent that restarts while the node stays online would otherwise lose
//! every alias-only message until the node happens to rebirth. [`BirthLog`] writes each
//! birth (the aliases and datatypes of one node or device, and the node's `bdSeq`) to a
//! sled tree of the store's database and forgets it on the matching death, the same way
//! the decoder's memory does; at start the input restores them.
//!
//! Guarantees: every write first checks the store's [`Reserve`], so sled never meets a
//! full disk; a birth that cannot be written stays known in memory and is logged. A birth
//! is written before the samples of its own message go to the pipeline and the store
//! fsyncs the whole database, so the samples' acknowledgement implies a durable birth. A
//! birth whose message carried no sample is acknowledged at once and could be lost by a
//! `kill -9` within the flush interval; then, as for any alias no birth explains, the
//! input asks the node for a rebirth ([`Rebirths`] paces those requests per node).
//! A stored record that does not decode is skipped at start, not fatal.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::store::{Reserve, Store, StoreError};

/// The tree holding the births of every Sparkplug input.
const TREE: &str = "sparkplug_births";

/// Rebirth requests to one node are at least this far apart: a node answers with its
/// NBIRTH and every DBIRTH, and the DATA still in flight until then must not ask again.
pub const REBIRTH_EVERY: Duration = Duration::from_secs(5);

/// What a birth bound for one node or device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Names {
    /// Metric names by alias.
    pub by_alias: HashMap<u64, String>,
    /// Datatypes by metric name: DATA metrics may omit the datatype, and signed ints and
    /// DateTime need the birth's.
    pub datatypes: HashMap<String, u32>,
    /// Whether a birth (received or restored) stands behind these names; data of an
    /// unborn node or device asks for a rebirth.
    #[serde(skip)]
    pub born: bool,
}

/// A birth as stored: the node's `bdSeq` (node births only) and the names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    bd_seq: Option<u64>,
    names: Names,
}

/// The ids of a node, or a device of it (`device` is empty for the node itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub group: String,
    pub node: String,
    pub device: String,
}

/// How a decoded message changed what is known, for [`BirthLog::apply`].
#[derive(Debug, Clone, PartialEq)]
pub enum BirthChange {
    /// An NBIRTH: the node's devices are forgotten and its own names replaced.
    Node {
        at: Place,
        bd_seq: Option<u64>,
        names: Names,
    },
    /// A DBIRTH.
    Device { at: Place, names: Names },
    /// An NDEATH of the live session: the node and its devices are forgotten.
    NodeGone { at: Place },
    /// A DDEATH.
    DeviceGone { at: Place },
}

/// A birth read back at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    pub at: Place,
    pub bd_seq: Option<u64>,
    pub names: Names,
}

#[derive(Debug, thiserror::Error)]
pub enum BirthError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sparkplug births: {0}")]
    Sled(#[from] sled::Error),
    #[error("sparkplug birth record: {0}")]
    Record(#[from] serde_json::Error),
}

/// One input's births in the store's database.
pub struct BirthLog {
    tree: sled::Tree,
    reserve: Reserve,
    /// The input's client id and a NUL: MQTT strings and topic levels cannot hold U+0000,
    /// so keys of different inputs, nodes and devices never run into each other.
    input: Vec<u8>,
}

fn key(input: &[u8], at: &Place, device: bool) -> Vec<u8> {
    let mut k = input.to_vec();
    for part in [&at.group, &at.node] {
        k.extend_from_slice(part.as_bytes());
        k.push(0);
    }
    if device {
        k.extend_from_slice(at.device.as_bytes());
    }
    k
}

impl BirthLog {
    pub fn open(store: &Store, input: &str) -> Result<BirthLog, BirthError> {
        let mut prefix = input.as_bytes().to_vec();
        prefix.push(0);
        Ok(BirthLog {
            tree: store.db().open_tree(TREE)?,
            reserve: store.reserve(),
            input: prefix,
        })
    }

    /// The births this input kept, and how many records did not decode (skipped).
    pub fn load(&self) -> Result<(Vec<Restored>, usize), BirthError> {
        let (mut out, mut bad) = (Vec::new(), 0);
        for item in self.tree.scan_prefix(&self.input) {
            let (k, v) = item?;
            let ids: Vec<&[u8]> = k[self.input.len()..].splitn(3, |&b| b == 0).collect();
            let parsed = match ids.as_slice() {
                [g, n, d] => (
                    String::from_utf8(g.to_vec()),
                    String::from_utf8(n.to_vec()),
                    String::from_utf8(d.to_vec()),
                ),
                _ => {
                    bad += 1;
                    continue;
                }
            };
            match (parsed, serde_json::from_slice::<Record>(&v)) {
                ((Ok(group), Ok(node), Ok(device)), Ok(record)) => out.push(Restored {
                    at: Place { group, node, device },
                    bd_seq: record.bd_seq,
                    names: Names {
                        born: true,
                        ..record.names
                    },
                }),
                _ => bad += 1,
            }
        }
        Ok((out, bad))
    }

    /// Writes what a message changed, in one atomic batch.
    pub fn apply(&self, change: &BirthChange) -> Result<(), BirthError> {
        self.reserve.check()?;
        let mut batch = sled::Batch::default();
        match change {
            BirthChange::Node { at, bd_seq, names } => {
                self.forget_node(at, &mut batch)?;
                let record = Record {
                    bd_seq: *bd_seq,
                    names: names.clone(),
                };
                batch.insert(key(&self.input, at, true), serde_json::to_vec(&record)?);
            }
            BirthChange::Device { at, names } => {
                let record = Record {
                    bd_seq: None,
                    names: names.clone(),
                };
                batch.insert(key(&self.input, at, true), serde_json::to_vec(&record)?);
            }
            BirthChange::NodeGone { at } => self.forget_node(at, &mut batch)?,
            BirthChange::DeviceGone { at } => batch.remove(key(&self.input, at, true)),
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    fn forget_node(&self, at: &Place, batch: &mut sled::Batch) -> Result<(), BirthError> {
        for item in self.tree.scan_prefix(key(&self.input, at, false)) {
            batch.remove(item?.0);
        }
        Ok(())
    }
}

/// When each node was last asked for a rebirth. Bounded: entries older than
/// [`REBIRTH_EVERY`] are dropped once there are many, so topics naming ever-new nodes
/// cannot grow it without end.
#[derive(Debug, Default)]
pub struct Rebirths {
    asked: HashMap<String, Instant>,
}

impl Rebirths {
    /// Whether the node whose NCMD topic is `topic` may be asked again at `now`; if so,
    /// `now` is recorded.
    pub fn due(&mut self, topic: &str, now: Instant) -> bool {
        if let Some(last) = self.asked.get(topic) {
            if now.saturating_duration_since(*last) < REBIRTH_EVERY {
                return false;
            }
        }
        if self.asked.len() >= 1024 {
            self.asked
                .retain(|_, last| now.saturating_duration_since(*last) < REBIRTH_EVERY);
        }
        self.asked.insert(topic.to_owned(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    fn place(node: &str, device: &str) -> Place {
        Place {
            group: "plant1".into(),
            node: node.into(),
            device: device.into(),
        }
    }

    fn names(pairs: &[(u64, &str, u32)]) -> Names {
        let mut n = Names::default();
        for (alias, name, dt) in pairs {
            n.by_alias.insert(*alias, (*name).to_owned());
            n.datatypes.insert((*name).to_owned(), *dt);
        }
        n
    }

    /// sled's background threads can outlive a dropped `Db` for a moment and still hold
    /// the directory's lock, so a reopen in the same process waits for them.
    fn open(dir: &std::path::Path) -> Store {
        for _ in 0..200 {
            match Store::open(dir, StoreOptions::default()) {
                Err(e) if e.to_string().contains("lock") => std::thread::sleep(Duration::from_millis(10)),
                store => return store.unwrap(),
            }
        }
        panic!("{} stayed locked for 2 s", dir.display());
    }

    fn born(mut n: Names) -> Names {
        n.born = true;
        n
    }

    #[test]
    fn births_survive_a_reopen_and_deaths_forget_them() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            let log = BirthLog::open(&store, "in-1").unwrap();
            let other = BirthLog::open(&store, "in-10").unwrap();
            let node = names(&[(1, "Temp", 9)]);
            let change = BirthChange::Node {
                at: place("edge1", ""),
                bd_seq: Some(3),
                names: node,
            };
            log.apply(&change).unwrap();
            let pump = names(&[(1, "Speed", 2)]);
            log.apply(&BirthChange::Device {
                at: place("edge1", "pump"),
                names: pump.clone(),
            })
            .unwrap();
            for dev in ["fan", "valve"] {
                log.apply(&BirthChange::Device {
                    at: place("edge2", dev),
                    names: pump.clone(),
                })
                .unwrap();
            }
            log.apply(&BirthChange::DeviceGone {
                at: place("edge2", "fan"),
            })
            .unwrap();
            // Another input's births are its own.
            other.apply(&BirthChange::NodeGone { at: place("edge1", "") }).unwrap();
            other
                .apply(&BirthChange::Device {
                    at: place("edge9", "x"),
                    names: pump,
                })
                .unwrap();
            store.flush().unwrap();
        }
        let store = open(dir.path());
        let log = BirthLog::open(&store, "in-1").unwrap();
        let (restored, bad) = log.load().unwrap();
        let got: Vec<(String, String, Option<u64>)> = restored
            .iter()
            .map(|r| (r.at.node.clone(), r.at.device.clone(), r.bd_seq))
            .collect();
        let want = [
            ("edge1", "", Some(3)),
            ("edge1", "pump", None),
            ("edge2", "valve", None),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(n, d, b)| (n.to_string(), d.to_string(), *b))
            .collect();
        assert_eq!((got, bad), (want, 0));
        assert_eq!(restored[1].names, born(names(&[(1, "Speed", 2)])));
        // A new NBIRTH drops the node's device births; an NDEATH drops the node.
        let change = BirthChange::Node {
            at: place("edge1", ""),
            bd_seq: Some(4),
            names: Names::default(),
        };
        log.apply(&change).unwrap();
        assert_eq!(log.load().unwrap().0.len(), 2);
        log.apply(&BirthChange::NodeGone { at: place("edge2", "") }).unwrap();
        let (left, _) = log.load().unwrap();
        assert_eq!((left.len(), left[0].bd_seq), (1, Some(4)));
        // A record that does not decode is skipped.
        log.tree.insert(b"in-1\0g\0n\0d", b"{".to_vec()).unwrap();
        assert_eq!(log.load().unwrap().1, 1);
    }

    #[test]
    fn rebirths_are_paced_per_node() {
        let mut r = Rebirths::default();
        let t0 = Instant::now();
        let a = "spBv1.0/g/NCMD/a";
        assert!(r.due(a, t0));
        assert!(!r.due(a, t0 + Duration::from_secs(4)));
        assert!(r.due("spBv1.0/g/NCMD/b", t0 + Duration::from_secs(1)));
        assert!(r.due(a, t0 + REBIRTH_EVERY));
        for i in 0..3000 {
            r.due(&format!("n{i}"), t0 + Duration::from_secs(10 + i / 100));
        }
        assert!(r.asked.len() <= 1024 + 100, "{}", r.asked.len());
    }
}
