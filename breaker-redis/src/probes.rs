//! One probe per fleet: when this replica looks at each open circuit it knows of, and what for.
//!
//! [`AHEAD`] before the fleet's open period of a circuit ends, a replica holds its circuit open
//! past the end until the race for the probe is decided (early, so that a background task that
//! runs late, on a busy machine or behind a backlog of thousands of races, cannot let the circuit
//! go half-open unraced). [`LEAD`] before the end it looks at its own circuit. Only a replica
//! that *wants* the probe races for the lease: its circuit exists and rejected calls since it
//! last looked (it has traffic for that tenant). The others keep their circuit (and a kept
//! opening) held, so that a call coming later cannot probe beside the fleet's prober, and look
//! again soon ([`IDLE_FIRST`], doubling to [`IDLE_MAX`]); a call rejected meanwhile makes them
//! race then.
//!
//! The winner's circuit is let go at the period's end (at once, if the answer came later). Its
//! lease is a short claim: [`CLAIM`] past the period's end the winner looks again, and keeps the
//! lease for its circuit's `probe_timeout` if a probe started (or succeeded, its close not written
//! yet), or gives it back and holds its circuit like the others if no call came. The losers hold
//! their circuits until the lease lapses, and look again at the lapse.
//!
//! Every hold lasts past the next look by the command timeout per thousand circuits tracked, and
//! [`HOLD`] more (`race.rs`): a look that comes late must still find the circuit held, and the
//! winner's look at its claim must come before the lease lapses.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// (provider, tenant).
pub(crate) type Key = (String, String);

/// How long before the end of an open period the race runs: time for the answer (loopback round
/// trips take well under 1 ms), so that the winner's probe goes at the period's end.
pub(crate) const LEAD: Duration = Duration::from_millis(200);

/// How much longer than the store may take a hold lasts past the next look (see the module
/// docs).
pub(crate) const HOLD: Duration = Duration::from_millis(200);

/// How long after the period's end a winner has to start its probe before the lease passes on.
pub(crate) const CLAIM: Duration = Duration::from_millis(800);

/// How soon a replica that does not want the probe looks again, the first time; then twice as
/// long each time, up to [`IDLE_MAX`].
pub(crate) const IDLE_FIRST: Duration = Duration::from_millis(200);
pub(crate) const IDLE_MAX: Duration = Duration::from_secs(1);

/// Most circuits tracked at once; beyond, circuits probe on each replica as without a fleet.
const MAX_TRACKED: usize = 1 << 16;

/// How long before the end of an open period this replica holds its circuit open past it, until
/// the race is decided. At most half of what is left of the period when it is tracked, so that a
/// rejection's `retry_after` is the fleet's period for most of it.
pub(crate) const AHEAD: Duration = Duration::from_secs(1);

/// What to do when a tracked circuit is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Hold the circuit open past the period's end until its race is decided.
    Hold,
    /// Race for the lease if this replica wants the probe; hold the circuit otherwise.
    Race,
    /// This replica holds the lease: keep it if its probe started, give it back if not.
    Check,
}

/// One tracked circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) when: Instant,
    pub(crate) step: Step,
    /// Backoff level of the fleet's opening.
    pub(crate) level: u32,
    /// When the fleet's open period ends.
    pub(crate) ends: Instant,
    /// When the opening's key leaves the store (period and margin): with no lease either,
    /// nothing is left to race for.
    pub(crate) expires: Instant,
    /// The circuit's rejections when last looked at (none: it had no circuit here): more now
    /// means calls want a probe.
    pub(crate) seen: Option<u64>,
    /// How long the last idle wait was.
    pub(crate) idle: Duration,
}

impl Entry {
    /// Whether this replica wants the probe, given its circuit's rejections now (`None`: no
    /// circuit); remembers them for the next look.
    pub(crate) fn wants(&mut self, rejected: Option<u64>) -> bool {
        let wants = rejected.is_some_and(|r| r > self.seen.unwrap_or(0));
        self.seen = rejected.or(self.seen);
        wants
    }

    /// The next idle wait: [`IDLE_FIRST`], then twice the last, up to [`IDLE_MAX`].
    pub(crate) fn next_idle(&mut self) -> Duration {
        self.idle = (self.idle * 2).clamp(IDLE_FIRST, IDLE_MAX);
        self.idle
    }
}

#[derive(Default)]
pub(crate) struct Probes {
    /// When each circuit is due; stale entries (scheduled again or untracked since) are
    /// skipped.
    due: BinaryHeap<Reverse<(Instant, Key)>>,
    tracked: HashMap<Key, Entry>,
}

impl Probes {
    /// Holds (provider, tenant)'s circuit open past `ends`, the end of its fleet-wide open
    /// period at `level`, shortly before it, and races for its probe shortly before it too, whose key leaves the store at `expires`; `seen`: its circuit's
    /// rejections now.
    pub(crate) fn track(
        &mut self,
        key: Key,
        ends: Instant,
        level: u32,
        expires: Instant,
        seen: Option<u64>,
    ) {
        let now = Instant::now();
        let half = ends.saturating_duration_since(now) / 2;
        let (ahead, step) = if half > LEAD {
            (AHEAD.min(half), Step::Hold)
        } else {
            (half, Step::Race)
        };
        let entry = Entry {
            when: ends.checked_sub(ahead).unwrap_or(ends),
            step,
            level,
            ends,
            expires,
            seen,
            idle: Duration::ZERO,
        };
        self.schedule(key, entry);
    }

    /// Tracks `entry` for `key`, due at `entry.when`, in place of what was tracked.
    pub(crate) fn schedule(&mut self, key: Key, entry: Entry) {
        if self.tracked.len() >= MAX_TRACKED && !self.tracked.contains_key(&key) {
            return;
        }
        self.due.push(Reverse((entry.when, key.clone())));
        self.tracked.insert(key, entry);
        // Stale entries pile up when circuits are tracked again and again; rebuild from the
        // live ones before they outnumber them by much.
        if self.due.len() > 2 * self.tracked.len() + 64 {
            self.due = self
                .tracked
                .iter()
                .map(|(k, e)| Reverse((e.when, k.clone())))
                .collect();
        }
    }

    /// How many circuits are tracked.
    pub(crate) fn len(&self) -> usize {
        self.tracked.len()
    }

    pub(crate) fn untrack(&mut self, key: &Key) {
        self.tracked.remove(key);
    }

    /// When the next circuit is due, if any.
    pub(crate) fn next_due(&mut self) -> Option<Instant> {
        while let Some(Reverse((when, key))) = self.due.peek() {
            if self.tracked.get(key).is_some_and(|e| e.when == *when) {
                return Some(*when);
            }
            self.due.pop();
        }
        None
    }

    /// The circuits due at `now`, untracked (the caller schedules each again, or not).
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<(Key, Entry)> {
        let mut out = Vec::new();
        while let Some(Reverse((when, _))) = self.due.peek() {
            if *when > now {
                break;
            }
            let Some(Reverse((when, key))) = self.due.pop() else {
                break;
            };
            if self.tracked.get(&key).is_some_and(|e| e.when == when) {
                if let Some(entry) = self.tracked.remove(&key) {
                    out.push((key, entry));
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
    fn holds_are_due_ahead_of_the_end_and_tracking_again_replaces() {
        let mut p = Probes::default();
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        p.track(key("a"), now + Duration::from_secs(10), 0, far, None);
        p.track(key("b"), now + Duration::from_secs(5), 1, far, Some(3));
        p.track(key("a"), now + Duration::from_secs(20), 2, far, None);
        assert_eq!(p.next_due(), Some(now + Duration::from_secs(5) - AHEAD));
        assert!(p.take_due(now).is_empty());
        let due: Vec<(Key, u32)> = p
            .take_due(now + Duration::from_secs(30))
            .into_iter()
            .map(|(k, e)| (k, e.level))
            .collect();
        assert_eq!(
            due,
            [(key("b"), 1), (key("a"), 2)],
            "a's first race is stale"
        );
        assert_eq!(p.next_due(), None);
        p.track(key("c"), now + Duration::from_secs(1), 0, far, None);
        p.untrack(&key("c"));
        assert_eq!(p.next_due(), None);
        // A short period: held at half of it; a very short one goes straight to its race.
        let (c, d) = (
            now + Duration::from_millis(1000),
            now + Duration::from_millis(300),
        );
        p.track(key("c"), c, 0, far, None);
        p.track(key("d"), d, 0, far, None);
        let due = p.take_due(now + Duration::from_secs(30));
        let due: Vec<(Instant, Step)> = due.iter().map(|(_, e)| (e.when, e.step)).collect();
        assert_eq!(due.len(), 2);
        assert!(
            due[0].0 <= d && due[0].0 >= d - Duration::from_millis(150) && due[0].1 == Step::Race
        );
        assert!(due[1].0 <= c - Duration::from_millis(450) && due[1].1 == Step::Hold);
    }

    #[test]
    fn only_rejections_since_the_last_look_want_a_probe() {
        let now = Instant::now();
        let mut e = Entry {
            when: now,
            step: Step::Race,
            level: 0,
            ends: now,
            expires: now,
            seen: None,
            idle: Duration::ZERO,
        };
        assert!(!e.wants(None), "no circuit here");
        assert!(!e.wants(Some(0)), "a circuit that rejected nothing");
        assert!(e.wants(Some(2)), "rejected calls since");
        assert!(!e.wants(Some(2)), "none since the last look");
        e.seen = Some(5);
        assert!(!e.wants(None), "the circuit went (swept)");
        assert_eq!(e.seen, Some(5));
        let idles: Vec<Duration> = (0..5).map(|_| e.next_idle()).collect();
        assert_eq!(
            idles,
            [200, 400, 800, 1000, 1000].map(Duration::from_millis),
            "doubling from IDLE_FIRST to IDLE_MAX"
        );
    }
}
