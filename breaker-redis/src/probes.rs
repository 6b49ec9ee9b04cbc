//! One probe per fleet: which open circuits this replica races for the probe lease, and when.
//!
//! Shortly before the fleet's open period of a circuit ends, every replica that knows of it
//! tries `SET <probe key> NX PX <lease>`. The winner lets its own circuit go half-open as usual;
//! the others extend their open period to the lease's remaining TTL and [`HOLD`] more, so their
//! circuits keep rejecting until the winner's outcome is published (a close, or a new opening one
//! level up) or the lease lapses (a prober that died). They race again as the lease lapses: the
//! hold keeps every local circuit open until that race is decided, so a lapse never lets each
//! replica's circuit go half-open on its own; the new winner probes when its hold ends.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// (provider, tenant).
pub(crate) type Key = (String, String);

/// How long before the end of an open period the race runs: the loser's extension must reach
/// its circuit before the circuit's own period ends. Loopback round trips take well under 1 ms;
/// the rest is room for a busy replica whose background task runs late.
pub(crate) const LEAD: Duration = Duration::from_millis(200);

/// How much longer than a lease a loser's circuit stays open: the race at the lapse must be
/// decided within it, or a late replica would probe as well.
pub(crate) const HOLD: Duration = Duration::from_millis(200);

/// Most circuits tracked at once; beyond, circuits probe on each replica as without a fleet.
const MAX_TRACKED: usize = 1 << 16;

#[derive(Default)]
pub(crate) struct Probes {
    /// When to race, by circuit; stale entries (tracked again or untracked since) are skipped.
    due: BinaryHeap<Reverse<(Instant, Key)>>,
    /// Circuit → (when to race, backoff level of its opening).
    tracked: HashMap<Key, (Instant, u32)>,
}

impl Probes {
    /// Races for (provider, tenant)'s probe shortly before `deadline`, the end of its fleet-wide
    /// open period at `level`.
    pub(crate) fn track(&mut self, key: Key, deadline: Instant, level: u32) {
        let now = Instant::now();
        let lead = LEAD.min(deadline.saturating_duration_since(now) / 2);
        let when = deadline.checked_sub(lead).unwrap_or(deadline);
        self.race_at(key, when, level);
    }

    /// Races for (provider, tenant)'s probe at `when` (a lease's lapse).
    pub(crate) fn race_at(&mut self, key: Key, when: Instant, level: u32) {
        if self.tracked.len() >= MAX_TRACKED && !self.tracked.contains_key(&key) {
            return;
        }
        self.tracked.insert(key.clone(), (when, level));
        self.due.push(Reverse((when, key)));
        // Stale entries pile up when circuits are tracked again and again; rebuild from the
        // live ones before they outnumber them by much.
        if self.due.len() > 2 * self.tracked.len() + 64 {
            self.due = self
                .tracked
                .iter()
                .map(|(k, (when, _))| Reverse((*when, k.clone())))
                .collect();
        }
    }

    pub(crate) fn untrack(&mut self, key: &Key) {
        self.tracked.remove(key);
    }

    /// When the next race is due, if any.
    pub(crate) fn next_due(&mut self) -> Option<Instant> {
        while let Some(Reverse((when, key))) = self.due.peek() {
            if self.tracked.get(key).is_some_and(|(w, _)| w == when) {
                return Some(*when);
            }
            self.due.pop();
        }
        None
    }

    /// The circuits whose race is due at `now`, untracked (a race tracks the loser again).
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<(Key, u32)> {
        let mut out = Vec::new();
        while let Some(Reverse((when, _))) = self.due.peek() {
            if *when > now {
                break;
            }
            let Some(Reverse((when, key))) = self.due.pop() else {
                break;
            };
            if let Some(&(w, level)) = self.tracked.get(&key) {
                if w == when {
                    self.tracked.remove(&key);
                    out.push((key, level));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: &str) -> Key {
        ("openai".into(), t.into())
    }

    #[test]
    fn races_are_due_a_lead_before_the_deadline_and_tracking_again_replaces() {
        let mut p = Probes::default();
        let now = Instant::now();
        p.track(key("a"), now + Duration::from_secs(10), 0);
        p.track(key("b"), now + Duration::from_secs(5), 1);
        p.track(key("a"), now + Duration::from_secs(20), 2);
        assert_eq!(p.next_due(), Some(now + Duration::from_secs(5) - LEAD));
        assert!(p.take_due(now).is_empty());
        let due = p.take_due(now + Duration::from_secs(30));
        assert_eq!(
            due,
            [(key("b"), 1), (key("a"), 2)],
            "a's first race is stale"
        );
        assert_eq!(p.next_due(), None);
        p.track(key("c"), now + Duration::from_secs(1), 0);
        p.untrack(&key("c"));
        assert_eq!(p.next_due(), None);
    }
}
