//! Alarm smoothing: turns the per-vector "over the threshold" bits of a model into alarms
//! that an operator can act on, so one fault is one alarm.
//!
//! An alarm is raised when at least `k` of the last `n` scored vectors were over the
//! threshold, and cleared only when none of the last `n` were and it has lasted at least
//! `min_duration` vectors. Memory is one `n`-bit window.

pub use crate::config::params::AlarmParams;

/// A change of the smoothed alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Raised,
    Cleared,
}

#[derive(Debug, Clone)]
pub struct AlarmFilter {
    p: AlarmParams,
    /// Last `n` bits, oldest first, as a ring.
    bits: Vec<bool>,
    next: usize,
    over: u32,
    /// Vectors since the alarm was raised, while it is.
    on_for: Option<u32>,
}

impl AlarmFilter {
    pub fn new(p: AlarmParams) -> Self {
        let n = p.n.max(1);
        AlarmFilter {
            p: AlarmParams {
                k: p.k.clamp(1, n),
                n,
                min_duration: p.min_duration,
            },
            bits: vec![false; n as usize],
            next: 0,
            over: 0,
            on_for: None,
        }
    }

    pub fn active(&self) -> bool {
        self.on_for.is_some()
    }

    /// Feeds one scored vector's bit; returns the transition it caused, if any.
    pub fn step(&mut self, over: bool) -> Option<Transition> {
        let old = std::mem::replace(&mut self.bits[self.next], over);
        self.next = (self.next + 1) % self.bits.len();
        self.over = self.over + u32::from(over) - u32::from(old);
        match self.on_for {
            None if self.over >= self.p.k => {
                self.on_for = Some(0);
                Some(Transition::Raised)
            }
            Some(d) => {
                let d = d.saturating_add(1);
                if self.over == 0 && d >= self.p.min_duration {
                    self.on_for = None;
                    Some(Transition::Cleared)
                } else {
                    self.on_for = Some(d);
                    None
                }
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: AlarmParams, bits: &str) -> String {
        let mut f = AlarmFilter::new(p);
        bits.chars()
            .map(|c| {
                f.step(c == '1');
                if f.active() {
                    '1'
                } else {
                    '0'
                }
            })
            .collect()
    }

    #[test]
    fn k_of_n_ignores_isolated_spikes() {
        let p = AlarmParams {
            k: 2,
            n: 3,
            min_duration: 0,
        };
        assert_eq!(run(p, "0100010000"), "0000000000");
        assert_eq!(run(p, "0110000000"), "0011100000");
    }

    #[test]
    fn one_fault_is_one_alarm() {
        let p = AlarmParams {
            k: 2,
            n: 3,
            min_duration: 10,
        };
        // A flickering fault: raised once, held through the gaps, cleared once.
        let got = run(p, "0011010110100000000000");
        assert_eq!(got.matches("01").count(), 1);
        assert_eq!(got.matches("10").count(), 1);
        assert!(got.ends_with('0'));
    }
}
