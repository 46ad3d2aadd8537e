//! Counter arithmetic shared by every source: turning raw counter values, which start from 0 whenever a proxy
//! restarts, into counts *since the source was created* that never go backwards and never count an event
//! twice. Pure, so the reset rules are unit-tested without a proxy.

use std::collections::BTreeMap;

/// How to count a series the first time it is seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstSeen {
    /// Its value predates the source (the source's first reading, or a proxy that was already running):
    /// take it as the starting point, count nothing yet.
    Baseline,
    /// It started after the source did (a new proxy, a new series): all of its value is new events.
    FromZero,
}

/// One counter series: its last raw value and what it has contributed since the source started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Track {
    last: u64,
    counted: u64,
}

impl Track {
    pub fn first(value: u64, first: FirstSeen) -> Track {
        let counted = match first {
            FirstSeen::Baseline => 0,
            FirstSeen::FromZero => value,
        };
        Track { last: value, counted }
    }

    /// Folds in a new raw value. A value below the last one means the counter restarted from 0 (a counter
    /// only grows), so all of the new value is new events; returns whether that happened.
    pub fn advance(&mut self, value: u64) -> bool {
        let reset = value < self.last;
        let new = if reset { value } else { value - self.last };
        self.counted = self.counted.saturating_add(new);
        self.last = value;
        reset
    }

    /// The process behind the series restarted: its next value counts from 0, even if it already exceeds the
    /// last one (a drop alone cannot show a restart that happened long enough ago).
    pub fn restart(&mut self) {
        self.last = 0;
    }

    /// Events since the source started.
    pub fn counted(&self) -> u64 {
        self.counted
    }
}

/// The counters of one process (one proxy): they restart together, so one dropped counter means all of them
/// count from 0 again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group<K: Ord> {
    tracks: BTreeMap<K, Track>,
}

impl<K: Ord + Clone> Default for Group<K> {
    fn default() -> Self {
        Group { tracks: BTreeMap::new() }
    }
}

impl<K: Ord + Clone> Group<K> {
    /// Folds in a fresh reading of the process's counters. `restarted`: the caller knows the process
    /// restarted since its last reading (e.g. its uptime went back); a counter that dropped shows it too.
    /// Counters missing from `values` keep what they counted (a dynamic counter is created again on its first
    /// event). Series seen for the first time count per `first`, or from 0 after a restart. Returns whether
    /// the process restarted.
    pub fn observe(&mut self, values: &BTreeMap<K, u64>, first: FirstSeen, restarted: bool) -> bool {
        let dropped = values.iter().any(|(k, v)| self.tracks.get(k).is_some_and(|t| *v < t.last));
        let reset = restarted || dropped;
        if reset {
            self.tracks.values_mut().for_each(Track::restart);
        }
        let first = if reset { FirstSeen::FromZero } else { first };
        for (key, &value) in values {
            match self.tracks.get_mut(key) {
                Some(track) => {
                    track.advance(value);
                }
                None => {
                    self.tracks.insert(key.clone(), Track::first(value, first));
                }
            }
        }
        reset
    }

    /// Events counted for `key` since the source started (0 for a key never seen).
    pub fn counted(&self, key: &K) -> u64 {
        self.tracks.get(key).map_or(0, Track::counted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn a_track_counts_growth_and_a_drop_as_a_fresh_start() {
        let mut t = Track::first(100, FirstSeen::Baseline);
        assert_eq!(t.counted(), 0);
        assert!(!t.advance(130));
        assert_eq!(t.counted(), 30);
        assert!(t.advance(5), "a drop is a reset");
        assert_eq!(t.counted(), 35, "the 5 after the restart are new, nothing subtracted");
        assert!(!t.advance(5));
        assert_eq!(t.counted(), 35, "no double count on an unchanged value");
        assert_eq!(Track::first(7, FirstSeen::FromZero).counted(), 7);
    }

    #[test]
    fn a_group_restarts_all_of_its_counters_together() {
        let mut g = Group::default();
        assert!(!g.observe(&values(&[("rq", 300), ("err", 10)]), FirstSeen::Baseline, false));
        assert!(!g.observe(&values(&[("rq", 400), ("err", 12)]), FirstSeen::Baseline, false));
        assert_eq!((g.counted(&"rq"), g.counted(&"err")), (100, 2));
        // Restarted: rq dropped; err had grown past its old value in the new process, which alone cannot show.
        assert!(g.observe(&values(&[("rq", 50), ("err", 20)]), FirstSeen::Baseline, false));
        assert_eq!((g.counted(&"rq"), g.counted(&"err")), (150, 22));
        // Known from elsewhere (uptime): both grew, still a restart.
        assert!(g.observe(&values(&[("rq", 60), ("err", 21)]), FirstSeen::Baseline, true));
        assert_eq!((g.counted(&"rq"), g.counted(&"err")), (210, 43));
    }

    #[test]
    fn missing_and_new_counters() {
        let mut g = Group::default();
        g.observe(&values(&[("rq", 10), ("err", 4)]), FirstSeen::Baseline, false);
        g.observe(&values(&[("rq", 20), ("err", 6)]), FirstSeen::Baseline, false);
        // After a restart Envoy has no 5xx counter until the first 5xx: err keeps its 2 and counts from 0 later.
        g.observe(&values(&[("rq", 3)]), FirstSeen::Baseline, false);
        assert_eq!((g.counted(&"rq"), g.counted(&"err")), (13, 2));
        g.observe(&values(&[("rq", 5), ("err", 1), ("slow", 2)]), FirstSeen::FromZero, false);
        assert_eq!((g.counted(&"rq"), g.counted(&"err"), g.counted(&"slow")), (15, 3, 2));
        // A series new in a running process, first seen as a baseline, counts only its growth.
        g.observe(&values(&[("rq", 5), ("other", 9)]), FirstSeen::Baseline, false);
        g.observe(&values(&[("rq", 5), ("other", 10)]), FirstSeen::Baseline, false);
        assert_eq!(g.counted(&"other"), 1);
    }
}
