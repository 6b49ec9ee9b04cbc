//! The state a circuit keeps (`Inner`) and the steps every part of its state machine shares:
//! compare-and-swap of the state word, stay numbers, operator switches, retuning, and the events
//! a transition raises.

use std::sync::Arc;
use std::time::Duration;

use super::cold::{Cold, ColdSlot};
use super::policy::Policy;
use crate::event::{Event, Reason};
use crate::name::Name;
use crate::state::{self, State};
use crate::sync::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use crate::window::WindowSlot;

/// `repr(C)` to keep what a lookup and a call read (the tenant name that the registry compares,
/// the state word, the fast-path flags, the failure streak) first; its reference count follows
/// it (`Counted`). 64 bytes: what only a circuit that left closed needs is in its `cold` record,
/// so that a million circuits take an 80-byte chunk of the allocator each, not 96.
#[repr(C)]
pub(crate) struct Inner {
    pub(super) tenant: Name,
    pub(super) state: AtomicU64,
    pub(super) consecutive: AtomicU32,
    /// Set by every registry lookup, cleared by the registry's idle sweep: a circuit found
    /// clear at a sweep has not been used since the previous one. Written only when it changes,
    /// so a hot circuit's lookups stay read-only.
    pub(super) used: AtomicBool,
    /// The fast-path flags [`TIMED`], [`PLAIN`], [`DEADLINE`] and [`LIMITED`], copied out of the policy so
    /// the hot path does not follow that pointer; atomic only because a retuning rewrites them
    /// (a relaxed load is the same plain load). One byte for all, so `half_stays` fits beside it.
    pub(super) flags: AtomicU8,
    /// Numbers half-open words (16 bits in the word): bumped for every half-open word published,
    /// the first of a stay and each renewal by a probe expiry alike, so an old number comes back
    /// only after 2^16 of them, each an open period or a probe timeout.
    pub(super) half_stays: AtomicU16,
    /// Counts and stamps of trips, stays, probes and rejections: made at the circuit's first
    /// trip, rejection or switch, so that a circuit that never leaves closed is 64 bytes.
    pub(super) cold: ColdSlot,
    /// The head of the circuit's policy chain: its clock, provider and listeners, which every
    /// policy of a chain shares. Decisions read the config of [`policy`](Self::policy).
    pub(super) head: Arc<Policy>,
    pub(super) window: WindowSlot,
}

/// What `Shared<Inner>` (and the table's retired circuits) rely on.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Inner>();
};

impl Inner {
    /// The deadline of calls, if the policy sets one: the flag first (on the line admission
    /// read), the policy only when it is set.
    #[inline]
    pub(super) fn deadline(&self) -> Option<Duration> {
        if self.flags.load(Ordering::Relaxed) & DEADLINE == 0 {
            return None;
        }
        self.policy().config.timeout
    }

    /// The policy decisions are made on: the last of the circuit's chain.
    #[inline]
    pub(super) fn policy(&self) -> &Policy {
        self.head.current()
    }

    /// Makes the window and the fast-path flags those of the current policy, after a retuning.
    /// A window whose kind or size changes restarts empty; anything else (the state word, the
    /// failure streak, the probes in flight) is kept, but for the streak under a policy without
    /// one: its successes do not reset a streak nobody counts, so one kept would come back stale
    /// with a later consecutive policy (and `Metrics` would report it). A registry serializes
    /// its retunings of one circuit; [`catch_up`](Self::catch_up) may race them.
    pub(crate) fn retune(&self) {
        let policy = self.policy();
        if policy.consecutive == 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
        let window = policy.window_spec();
        self.window
            .set(window, policy.config.minimum_calls, policy.keeps_flight());
        self.flags.store(
            with_pool(
                flags_of(policy, self.window.flight().is_some()),
                pooled(&self.head),
            ),
            Ordering::Relaxed,
        );
    }

    /// [`retune`](Self::retune)s the circuit if its window, flags or streak are not those of
    /// `policy`: a registry retunes only the circuits it holds, so one it let go (detached at
    /// the cap, removed or evicted while a caller held it) catches up here, at its next failure.
    /// Racing retunings are harmless: the window is swapped by a compare-and-swap, and flags
    /// stored from an older policy meanwhile are caught up at the next failure.
    #[cold]
    #[inline(never)]
    pub(super) fn catch_up(&self, policy: &Policy) {
        let window = policy.window_spec();
        let flight = self.window.flight().is_some();
        if self.window.spec() != window
            || unpooled(self.flags.load(Ordering::Relaxed)) != flags_of(policy, flight)
            || (policy.keeps_flight() && !flight)
            || (policy.consecutive == 0 && self.consecutive.load(Ordering::Relaxed) != 0)
        {
            self.retune();
        }
    }

    #[inline]
    pub(super) fn now_us(&self) -> u64 {
        self.head.time.now_us()
    }

    /// See [`Timebase::past`](crate::clock::Timebase::past).
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    #[inline]
    pub(super) fn past(&self, deadline_us: u64) -> (bool, u64) {
        self.head.time.past(deadline_us)
    }

    #[inline]
    pub(super) fn cas(&self, current: u64, new: u64) -> Result<(), u64> {
        self.state
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }

    pub(super) fn clear_counts(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
        if let Some(w) = self.window.get() {
            w.clear();
        }
        self.forget_in_flight();
    }

    /// Clears the counts for the closed stay that the caller is about to publish in place of
    /// the half-open word `s`, unless `s` is gone already (then the caller's compare-and-swap
    /// would fail: it looks again). Cleared before the publishing CAS, so the new stay's first
    /// outcomes are not wiped by its own closer (nobody records into the window while
    /// half-open); the re-check keeps a closer that lost to another from wiping them: only one
    /// that read `s` a moment ago clears.
    pub(super) fn clear_for_close(&self, s: u64) -> bool {
        if self.state.load(Ordering::Acquire) != s {
            return false;
        }
        self.clear_counts();
        true
    }

    /// An operator's transition (here or, with `Reason::Fleet`, on another replica): always
    /// wins, whatever the circuit was doing.
    pub(super) fn set(&self, tag: u64, clear: bool, reason: Reason) {
        if clear {
            self.clear_counts();
        }
        let stay = self.next_stay();
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let next = state::with_stay(state::next(s, tag), stay);
            match self.cas(s, next) {
                Ok(()) => return self.emit_transition(s, next, reason, None),
                Err(actual) => s = actual,
            }
        }
    }

    /// Tells the registry's listeners that this thread moved the circuit from `from` to `to`
    /// (state words already published). Nothing is held here: listeners may call back into the
    /// circuit or its registry. A reset of a closed circuit is no transition and says nothing to
    /// listeners; the fleet is still told (see [`Listeners::share`]).
    /// `open_for` is the open period of a trip.
    #[inline]
    pub(super) fn emit_transition(
        &self,
        from: u64,
        to: u64,
        reason: Reason,
        open_for: Option<Duration>,
    ) {
        if let Some(events) = &self.head.events {
            let level = if state::tag(to) == state::OPEN {
                state::level(to)
            } else {
                0
            };
            let (from, to) = (state::tag(from), state::tag(to));
            let event = Event::Transition {
                provider: self.head.provider,
                tenant: self.tenant.as_str(),
                from: State::from_tag(from),
                to: State::from_tag(to),
                reason,
                open_for,
                level,
            };
            if from != to {
                events.emit(&event);
            } else if matches!(reason, Reason::Operator) {
                // An operator's switch to the state this circuit is in already moves nothing
                // here, but may elsewhere: a reset of a closed circuit still resets the fleet.
                events.share(&event);
            }
        }
    }

    /// The circuit's [`Cold`] record, made now if this is its first need of it.
    #[inline]
    pub(super) fn cold_record(&self) -> &Cold {
        self.cold.get_or_init(Cold::new)
    }

    /// A fresh stay number for a state word about to be published.
    #[inline]
    pub(super) fn next_stay(&self) -> u32 {
        self.cold_record()
            .stays
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
    }

    /// A fresh number for a half-open word about to be published (see `half_stays`).
    pub(super) fn next_half_stay(&self) -> u32 {
        u32::from(
            self.half_stays
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1),
        )
    }
}

/// [`Inner::flags`]: permits need their start time, slow calls are a policy.
pub(super) const TIMED: u8 = 1;
/// [`Inner::flags`]: neither timed nor windowed; a success on a closed circuit with no failure
/// streak changes nothing, and the inlined fast path of `record` returns at once.
pub(super) const PLAIN: u8 = 2;

/// [`Inner::flags`]: calls have a deadline (`Config::timeout`), which the attribute and the tower
/// layer race; read from the line the admission already loaded, so calls without one pay a
/// load and a test, not a walk to the policy.
pub(super) const DEADLINE: u8 = 4;

/// [`Inner::flags`]: calls are limited (`Config::max_in_flight`): admission takes a place in the
/// circuit's bulkhead (see `flight.rs`).
pub(super) const LIMITED: u8 = 8;

/// What admission takes the slow path for on a closed circuit.
pub(super) const ADMIT_SLOW: u8 = TIMED | LIMITED;

/// [`Inner::flags`]: the provider has a provider-wide circuit; outcomes also go to its pooled
/// window (`Policy::pool`). A plain circuit then has [`PLAIN_POOLED`] instead of [`PLAIN`], so
/// that the fast path of circuits without one tests one bit, as before provider-wide circuits.
pub(super) const POOLED: u8 = 16;

/// [`Inner::flags`]: [`PLAIN`], for a pooled circuit: the fast path of `record` counts the
/// success in the pool and returns.
pub(super) const PLAIN_POOLED: u8 = 32;

/// The flags `base` (of [`flags_of`]) with `pooled` ([`POOLED`] or 0) applied.
pub(super) fn with_pool(base: u8, pooled: u8) -> u8 {
    if pooled == 0 {
        base
    } else if base & PLAIN != 0 {
        (base & !PLAIN) | PLAIN_POOLED | POOLED
    } else {
        base | POOLED
    }
}

/// What [`with_pool`] was given: the flags of [`flags_of`] in `flags`.
pub(super) fn unpooled(flags: u8) -> u8 {
    if flags & PLAIN_POOLED != 0 {
        (flags & !(PLAIN_POOLED | POOLED)) | PLAIN
    } else {
        flags & !POOLED
    }
}

/// [`POOLED`] if the outcomes of circuits of `head`'s chain are pooled now.
pub(super) fn pooled(head: &Policy) -> u8 {
    if head.pool.get().is_some_and(|p| p.hook.is_on()) {
        POOLED
    } else {
        0
    }
}

/// The fast-path flags of a circuit on `policy`; `flight`: the circuit keeps its calls in flight
/// (then never `PLAIN`: every record gives back what its permit took).
pub(super) fn flags_of(policy: &Policy, flight: bool) -> u8 {
    let timed = policy.slow_us.is_some();
    let base = if timed {
        TIMED
    } else if policy.config.has_window() || flight {
        0
    } else {
        PLAIN
    };
    let deadline = if policy.config.timeout.is_some() {
        DEADLINE
    } else {
        0
    };
    let limited = if policy.config.max_in_flight.is_some() {
        LIMITED
    } else {
        0
    };
    base | deadline | limited
}

pub(super) fn micros(us: u64) -> Duration {
    Duration::from_micros(us)
}
