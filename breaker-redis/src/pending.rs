//! Local changes not written yet because the store is unreachable: kept, one per circuit and
//! kind, and written when the store returns, before the resync reads what the others wrote.
//!
//! Without this, an opening made during an outage would reach no other replica, and a close
//! (a probe that succeeded here) would leave the others open for the rest of the fleet's
//! period. Only the latest change of each circuit matters (a close after an opening makes the
//! opening moot), except that an operator's switch lives in its own key: the latest switch and
//! the latest opening or close are kept apart and written in the order they were made.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use breaker_core::State;

/// A local change waiting for the background task.
#[derive(Debug)]
pub(crate) enum Queued {
    Open {
        provider: &'static str,
        tenant: Box<str>,
        open_for: Duration,
        level: u32,
        /// When it opened: what is left of the period is written, not the whole of it.
        at: Instant,
        /// A failed probe's reopening: the fleet was open already, no quorum needed.
        reopened: bool,
    },
    Close {
        provider: &'static str,
        tenant: Box<str>,
        /// When it closed: an opening written after that (by another replica) must outlive it.
        at: Instant,
    },
    Operator {
        provider: &'static str,
        tenant: Box<str>,
        state: State,
        /// When the operator acted: a reset written late must not end what came after it.
        at: Instant,
    },
}

impl Queued {
    pub(crate) fn provider(&self) -> &'static str {
        match self {
            Queued::Open { provider, .. }
            | Queued::Close { provider, .. }
            | Queued::Operator { provider, .. } => provider,
        }
    }

    pub(crate) fn tenant(&self) -> &str {
        match self {
            Queued::Open { tenant, .. }
            | Queued::Close { tenant, .. }
            | Queued::Operator { tenant, .. } => tenant,
        }
    }

    /// Whether this is an opening whose period is over at `now`: nothing left to share.
    pub(crate) fn ended(&self, now: Instant) -> bool {
        matches!(self, Queued::Open { open_for, at, .. } if now.saturating_duration_since(*at) >= *open_for)
    }
}

/// (provider, tenant).
type Key = (&'static str, Box<str>);

/// The two slots of a circuit: (order, change).
#[derive(Default)]
struct Slots {
    operator: Option<(u64, Queued)>,
    circuit: Option<(u64, Queued)>,
}

pub(crate) struct Pending {
    slots: HashMap<Key, Slots>,
    /// Most circuits kept.
    capacity: usize,
    next: u64,
    /// When a full store last looked for ended openings: a full store of live changes is not
    /// scanned again for every change that comes (a storm would make that quadratic).
    purged: Option<Instant>,
}

/// How often a full store looks for room.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Pending {
    pub(crate) fn new(capacity: usize) -> Self {
        Pending {
            slots: HashMap::new(),
            capacity,
            next: 0,
            purged: None,
        }
    }

    /// Keeps `change`, replacing an older one of the same circuit and kind. Returns `false` when
    /// it was not kept (`capacity` circuits are kept already, none of whose openings has
    /// ended): the caller counts it as dropped.
    pub(crate) fn keep(&mut self, change: Queued) -> bool {
        let key = (change.provider(), Box::<str>::from(change.tenant()));
        if self.slots.len() >= self.capacity && !self.slots.contains_key(&key) {
            // An opening whose period ended has nothing left to share: make room with those.
            let now = Instant::now();
            if self
                .purged
                .is_some_and(|at| now.saturating_duration_since(at) < PURGE_EVERY)
            {
                return false;
            }
            self.purged = Some(now);
            self.slots.retain(|_, s| {
                if s.circuit.as_ref().is_some_and(|(_, c)| c.ended(now)) {
                    s.circuit = None;
                }
                s.operator.is_some() || s.circuit.is_some()
            });
            if self.slots.len() >= self.capacity {
                return false;
            }
        }
        let order = self.next;
        self.next += 1;
        let slots = self.slots.entry(key).or_default();
        let slot = if matches!(change, Queued::Operator { .. }) {
            &mut slots.operator
        } else {
            &mut slots.circuit
        };
        *slot = Some((order, change));
        true
    }

    /// Everything kept, in the order it was made; `self` is left empty.
    pub(crate) fn take(&mut self) -> Vec<Queued> {
        let mut all: Vec<(u64, Queued)> = self
            .slots
            .drain()
            .flat_map(|(_, s)| s.operator.into_iter().chain(s.circuit))
            .collect();
        all.sort_unstable_by_key(|(order, _)| *order);
        all.into_iter().map(|(_, change)| change).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use breaker_core::State;

    use super::*;

    fn open(tenant: &str, open_for: Duration) -> Queued {
        Queued::Open {
            provider: "openai",
            tenant: tenant.into(),
            open_for,
            level: 0,
            at: Instant::now(),
            reopened: false,
        }
    }

    fn close(tenant: &str) -> Queued {
        Queued::Close {
            provider: "openai",
            tenant: tenant.into(),
            at: Instant::now(),
        }
    }

    fn operator(tenant: &str, state: State) -> Queued {
        Queued::Operator {
            provider: "openai",
            tenant: tenant.into(),
            state,
            at: Instant::now(),
        }
    }

    fn names(changes: &[Queued]) -> Vec<String> {
        changes
            .iter()
            .map(|c| {
                let kind = match c {
                    Queued::Open { .. } => "open",
                    Queued::Close { .. } => "close",
                    Queued::Operator { state, .. } => state.as_str(),
                };
                format!("{kind} {}", c.tenant())
            })
            .collect()
    }

    #[test]
    fn the_latest_change_of_each_kind_is_kept_and_all_come_back_in_order() {
        let mut p = Pending::new(10);
        assert!(p.keep(open("acme", Duration::from_secs(30))));
        assert!(p.keep(operator("acme", State::ForcedOpen)));
        assert!(p.keep(open("globex", Duration::from_secs(30))));
        assert!(p.keep(close("acme")));
        assert!(p.keep(operator("acme", State::Closed)));
        let all = p.take();
        assert_eq!(names(&all), ["open globex", "close acme", "closed acme"]);
        assert!(p.take().is_empty());
    }

    #[test]
    fn a_full_store_makes_room_with_ended_openings_and_refuses_the_rest() {
        let mut p = Pending::new(2);
        assert!(p.keep(open("acme", Duration::ZERO)));
        assert!(p.keep(open("globex", Duration::from_secs(30))));
        assert!(
            p.keep(open("initech", Duration::from_secs(30))),
            "acme's period ended"
        );
        assert!(!p.keep(close("umbrella")), "full of live changes");
        assert!(
            p.keep(close("globex")),
            "a circuit already kept is replaced"
        );
        assert_eq!(names(&p.take()), ["open initech", "close globex"]);
    }
}
