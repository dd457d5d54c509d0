//! One value per sensor and millisecond within a message, as the store keeps them.
//!
//! The store holds millisecond timestamps and one value per sensor and millisecond (the
//! last written). Readings of one message that share both would otherwise vanish in the
//! store unseen while the input counted them as samples; collapsing them here lets the
//! input count what is stored and, separately, what collapsed.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use crate::base::sample::{Sample, SensorId};

/// The samples of one message, one per sensor and millisecond: a later sample of the same
/// sensor and millisecond replaces the earlier one, as the store would. Times are never
/// moved to keep both: that would invent a time the source never sent.
pub(super) struct OnePerMs {
    pub samples: Vec<Sample>,
    slots: HashMap<(SensorId, i64), usize>,
}

impl OnePerMs {
    pub fn with_capacity(n: usize) -> OnePerMs {
        OnePerMs {
            samples: Vec::with_capacity(n),
            slots: HashMap::with_capacity(n),
        }
    }

    /// Adds a sample; `true` when it replaced one of the same sensor and millisecond.
    pub fn push(&mut self, sample: Sample) -> bool {
        match self.slots.entry((sample.sensor, sample.ts_ms)) {
            Entry::Occupied(slot) => {
                self.samples[*slot.get()] = sample;
                true
            }
            Entry::Vacant(slot) => {
                slot.insert(self.samples.len());
                self.samples.push(sample);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_sensor_and_millisecond_the_last() {
        let mut s = OnePerMs::with_capacity(4);
        let pushed: Vec<bool> = [(1, 10, 1.0), (2, 10, 2.0), (1, 10, 3.0), (1, 11, 4.0), (1, 10, 5.0)]
            .into_iter()
            .map(|(id, ts, v)| s.push(Sample::good(id, ts, v)))
            .collect();
        assert_eq!(pushed, [false, false, true, false, true]);
        let got: Vec<(SensorId, i64, f64)> = s.samples.iter().map(|x| (x.sensor, x.ts_ms, x.value)).collect();
        assert_eq!(got, [(1, 10, 5.0), (2, 10, 2.0), (1, 11, 4.0)]);
    }
}
