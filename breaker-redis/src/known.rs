//! What this replica knows to be in the store, and until when: the openings and operator's
//! switches it wrote or applied, each with the time its key should live to.
//!
//! A replica that was cut off misses the messages sent meanwhile. Openings and switches made
//! meanwhile are still in the store, and the resync finds them; but a close or a reset deletes
//! keys, and a resync cannot see what is no longer there. So after a reconnection to the same
//! store (no restart or failover, which may lose keys), a key that is gone before it should
//! have expired was ended by another replica: its circuit closes here (or resets) too.
//!
//! The same holds while connected, for an opening deleted without an announcement (by hand, by
//! a script, or by a replica whose message was lost): the task audits the openings it knows a
//! batch at a time, every ping, and ends those whose keys are gone.
//!
//! After a restart or failover, a missing key proves nothing; the openings known here are
//! written back instead (`restore.rs`), so that the race for one probe still has something to
//! race for. So each opening is known with what writing it again takes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// (provider, tenant).
pub(crate) type Key = (String, String);

/// Most keys of each kind remembered; beyond, a missed close is left to the circuit's own
/// period, as without this.
const MAX_KNOWN: usize = 1 << 16;

/// A key that should have lived this much longer is taken as deleted, not expired: room for
/// the time between a TTL read in the store and the instant taken here.
const SLACK: Duration = Duration::from_secs(1);

/// An opening the fleet has: when its key expires, and what a store that lost it needs to be
/// given it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Opening {
    /// When its key expires: the end of its period and the margin.
    pub(crate) until: Instant,
    /// When its open period ends.
    pub(crate) ends: Instant,
    /// When the circuit opened: the opening's age, which the store compares with the age of
    /// an end (an opening older than a close gives way to it).
    pub(crate) since: Instant,
    /// Its backoff level.
    pub(crate) level: u32,
}

impl Opening {
    /// An opening at `level` read (or written) at `now` with `left` of its period to run,
    /// `age` after its circuit opened, whose key outlives the period by `margin`.
    pub(crate) fn new(
        now: Instant,
        left: Duration,
        margin: Duration,
        age: Duration,
        level: u32,
    ) -> Self {
        Opening {
            until: now + left + margin,
            ends: now + left,
            since: now.checked_sub(age).unwrap_or(now),
            level,
        }
    }
}

#[derive(Default)]
pub(crate) struct Known {
    openings: HashMap<Key, Opening>,
    switches: HashMap<Key, Instant>,
    /// The openings of the current round of audits not checked yet.
    unaudited: Vec<Key>,
}

impl Known {
    /// The opening of `key` is in the store, until `opening.until`.
    pub(crate) fn opened(&mut self, key: Key, opening: Opening) {
        insert(&mut self.openings, key, opening, |o| o.until);
    }

    /// The opening of `key` ended (a close, or a reset).
    pub(crate) fn ended(&mut self, key: &Key) {
        self.openings.remove(key);
    }

    /// An operator's switch of `key` is in the store until `until`.
    pub(crate) fn switched(&mut self, key: Key, until: Instant) {
        insert(&mut self.switches, key, until, |u| *u);
    }

    /// The operator's switch of `key` is no longer in the store.
    pub(crate) fn unswitched(&mut self, key: &Key) {
        self.switches.remove(key);
    }

    /// `key` was reset: neither its opening nor a switch is in the store.
    pub(crate) fn reset(&mut self, key: &Key) {
        self.openings.remove(key);
        self.switches.remove(key);
    }

    /// Forgets everything (another store, or this one restarted), and returns the openings
    /// whose keys should still be in the store at `now` (their periods running, or in their
    /// margins, where the race at a lease's lapse still finds them): the store may have lost
    /// them, and they are written back.
    pub(crate) fn forget(&mut self, now: Instant) -> Vec<(Key, Opening)> {
        self.switches.clear();
        self.unaudited.clear();
        self.openings
            .drain()
            .filter(|(_, opening)| opening.until > now)
            .collect()
    }

    /// Up to `n` openings that should still be in the store at `now`, each in turn: a round
    /// goes through every opening known when it began (those that ended meanwhile skipped),
    /// then the next round begins.
    pub(crate) fn next_audit(&mut self, now: Instant, n: usize) -> Vec<Key> {
        if self.unaudited.is_empty() {
            self.unaudited = self.live(now).0;
        }
        let mut batch = Vec::with_capacity(n.min(self.unaudited.len()));
        while batch.len() < n {
            let Some(key) = self.unaudited.pop() else {
                break;
            };
            if self
                .openings
                .get(&key)
                .is_some_and(|o| o.until > now + SLACK)
            {
                batch.push(key);
            }
        }
        batch
    }

    /// The openings and switches that should still be in the store at `now` (the others are
    /// forgotten: their keys expired, and a missing one says nothing).
    pub(crate) fn live(&mut self, now: Instant) -> (Vec<Key>, Vec<Key>) {
        self.openings.retain(|_, o| o.until > now + SLACK);
        self.switches.retain(|_, until| *until > now + SLACK);
        (
            self.openings.keys().cloned().collect(),
            self.switches.keys().cloned().collect(),
        )
    }
}

/// Inserts `value`, whose key lives until `until(value)`.
fn insert<V>(map: &mut HashMap<Key, V>, key: Key, value: V, until: impl Fn(&V) -> Instant) {
    if map.len() >= MAX_KNOWN && !map.contains_key(&key) {
        // A full map of live keys would be scanned on every insert: purge in one pass what
        // has expired, and when nothing has, make room by forgetting the soonest to expire
        // (its missed close would run to the end of its period: the loss is one probe).
        let now = Instant::now();
        map.retain(|_, v| until(v) > now);
        if map.len() >= MAX_KNOWN {
            let mut soonest: Vec<(Instant, Key)> =
                map.iter().map(|(k, v)| (until(v), k.clone())).collect();
            soonest.sort_unstable();
            for (_, k) in soonest.into_iter().take(MAX_KNOWN / 8) {
                map.remove(&k);
            }
        }
    }
    map.insert(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: &str) -> Key {
        ("openai".into(), t.into())
    }

    fn until(now: Instant, until: Duration) -> Opening {
        Opening::new(now, until, Duration::ZERO, Duration::ZERO, 0)
    }

    #[test]
    fn only_keys_that_should_still_live_are_checked() {
        let mut k = Known::default();
        let now = Instant::now();
        k.opened(key("acme"), until(now, Duration::from_secs(90)));
        k.opened(key("globex"), until(now, Duration::from_millis(500)));
        k.opened(key("initech"), until(now, Duration::from_secs(90)));
        k.ended(&key("initech"));
        k.switched(key("acme"), now + Duration::from_secs(3600));
        k.switched(key("umbrella"), now + Duration::from_secs(3600));
        k.reset(&key("umbrella"));
        let (openings, switches) = k.live(now);
        assert_eq!(
            openings,
            [key("acme")],
            "globex's key expires within the slack"
        );
        assert_eq!(switches, [key("acme")]);
        let (openings, _) = k.live(now + Duration::from_secs(100));
        assert!(openings.is_empty());
    }

    #[test]
    fn a_lost_store_hands_back_the_openings_whose_keys_should_be_there() {
        let mut k = Known::default();
        let now = Instant::now();
        let margin = Duration::from_secs(60);
        let running = Opening::new(
            now,
            Duration::from_secs(5),
            margin,
            Duration::from_secs(2),
            3,
        );
        k.opened(key("acme"), running);
        // Its period over, its key in its margin: given back too.
        let ended = Opening::new(now, Duration::ZERO, margin, Duration::ZERO, 0);
        k.opened(key("globex"), ended);
        // Its key expired: nothing to give back.
        let expired = Opening::new(now, Duration::ZERO, Duration::ZERO, Duration::ZERO, 0);
        k.opened(key("initech"), expired);
        k.switched(key("acme"), now + Duration::from_secs(3600));
        let mut lost = k.forget(now + Duration::from_millis(1));
        lost.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(lost, [(key("acme"), running), (key("globex"), ended)]);
        assert_eq!(running.ends - running.since, Duration::from_secs(7));
        assert_eq!(k.live(now), (vec![], vec![]), "everything is forgotten");
    }

    #[test]
    fn audits_go_round_every_live_opening_a_batch_at_a_time() {
        let mut k = Known::default();
        let now = Instant::now();
        for t in ["a", "b", "c", "d", "e"] {
            k.opened(key(t), until(now, Duration::from_secs(90)));
        }
        let first = k.next_audit(now, 2);
        assert_eq!(first.len(), 2);
        k.ended(&key("a"));
        k.ended(&key("b"));
        k.ended(&key("c"));
        let second = k.next_audit(now, 2);
        let mut round: Vec<Key> = first.iter().chain(&second).cloned().collect();
        round.sort();
        round.dedup();
        assert_eq!(
            first.len() + second.len(),
            round.len(),
            "nothing twice in a round"
        );
        assert!(
            second
                .iter()
                .all(|t| !first.contains(t) && k.openings.contains_key(t)),
            "the rest of the round, less what ended meanwhile: {second:?}"
        );
        // A new round begins with what is live then.
        let mut next = Vec::new();
        for _ in 0..3 {
            next.extend(k.next_audit(now, 2));
        }
        next.sort();
        next.dedup();
        assert_eq!(
            next.iter()
                .filter(|t| ["d", "e"].contains(&t.1.as_str()))
                .count(),
            2,
            "{next:?}"
        );
        assert!(k.next_audit(now + Duration::from_secs(100), 2).is_empty());
    }
}
