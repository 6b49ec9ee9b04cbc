//! What the fleet applies to a circuit (`fleet.rs`): another replica's opening, close or operator
//! switch.

use super::inner::{micros, Inner};
use super::Circuit;
use crate::backoff::MAX_LEVEL;
use crate::event::Reason;
use crate::state::{self, State};
use crate::sync::Ordering;

impl Circuit {
    /// See `Inner::adopt_open` (the fleet's way in; `fleet.rs`).
    pub(crate) fn adopt_open(&self, left_us: u64, level: u32) {
        self.inner.adopt_open(left_us, level);
    }

    /// See `Inner::adopt_hold`.
    pub(crate) fn adopt_hold(&self, left_us: u64, level: u32) {
        self.inner.adopt_hold(left_us, level);
    }

    /// Calls rejected since the circuit was created (for a fleet: does this replica call it?).
    pub(crate) fn rejected(&self) -> u64 {
        self.inner.cold.get().map_or(0, |c| c.rejected.sum())
    }

    /// See `Inner::adopt_close`.
    pub(crate) fn adopt_close(&self) {
        self.inner.adopt_close();
    }

    /// An operator's switch made on another replica (`fleet.rs`): `ForcedOpen`, `Disabled`,
    /// `MetricsOnly`, or `Closed` for a reset; other states are not an operator's and change
    /// nothing.
    pub(crate) fn adopt_operator(&self, to: State) {
        let (tag, clear) = match to {
            State::ForcedOpen => (state::FORCED_OPEN, false),
            State::Disabled => (state::DISABLED, false),
            State::MetricsOnly => (state::METRICS_ONLY, false),
            State::Closed => (state::CLOSED, true),
            State::Open | State::HalfOpen => return,
        };
        self.inner.set(tag, clear, Reason::Fleet);
    }
}

impl Inner {
    /// Opens the circuit for `left_us` more at backoff `level`, as another replica's circuit did
    /// (see `fleet.rs`): a closed or half-open circuit opens (a probe in flight then belongs to a
    /// stay that is over), an open one takes the period if it is at a higher level or, at the
    /// same level, ends later; an operator's state wins.
    ///
    /// What the store said is bounded by what this circuit's own schedule can reach: a period
    /// by `Config::longest_open_for`, a level by the backoff's cap. A store that says "years"
    /// (hostile, or a bug) costs a circuit no more than its own worst open period.
    pub(crate) fn adopt_open(&self, left_us: u64, level: u32) {
        let longest = self.policy().config.longest_open_for();
        let left_us = left_us.min(u64::try_from(longest.as_micros()).unwrap_or(u64::MAX));
        let deadline = self.now_us().saturating_add(left_us);
        let level = level.min(MAX_LEVEL);
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            match state::tag(s) {
                state::CLOSED | state::HALF_OPEN => {}
                // A higher level is a newer opening (a probe failed since); at the same level,
                // the later end wins, so replicas converge whatever order facts arrive in.
                state::OPEN
                    if (state::level(s), state::deadline(s))
                        < (level, deadline.min(state::DEADLINE_MAX)) => {}
                _ => return,
            }
            let open = state::open(s, level, deadline);
            match self.cas(s, open) {
                Ok(()) => {
                    if state::tag(s) != state::OPEN {
                        self.cold_record()
                            .times_opened
                            .fetch_add(1, Ordering::Relaxed);
                        self.consecutive.store(0, Ordering::Relaxed);
                    }
                    return self.emit_transition(s, open, Reason::Fleet, Some(micros(left_us)));
                }
                Err(actual) => s = actual,
            }
        }
    }

    /// Makes an open circuit at `level` end its period `left_us` from now, sooner or later than
    /// it would (a fleet holding it open while it decides which replica probes, then letting the
    /// chosen one's go); any other state or level stays: a hold never opens a circuit, and never
    /// takes a probe in flight or a newer opening away.
    pub(crate) fn adopt_hold(&self, left_us: u64, level: u32) {
        let deadline = self.now_us().saturating_add(left_us);
        let mut s = self.state.load(Ordering::Acquire);
        while state::tag(s) == state::OPEN && state::level(s) == level.min(MAX_LEVEL) {
            match self.cas(s, state::open(s, state::level(s), deadline)) {
                Ok(()) => return,
                Err(actual) => s = actual,
            }
        }
    }

    /// Closes an open or half-open circuit because another replica's probes succeeded; any other
    /// state stays.
    pub(crate) fn adopt_close(&self) {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if !matches!(state::tag(s), state::OPEN | state::HALF_OPEN) {
                return;
            }
            // As on a local close: clear before publishing Closed, and only while `s` is still
            // the word read, so the first calls of the new stay are not wiped.
            if !self.clear_for_close(s) {
                s = self.state.load(Ordering::Acquire);
                continue;
            }
            let closed = state::with_stay(state::next(s, state::CLOSED), self.next_stay());
            match self.cas(s, closed) {
                Ok(()) => return self.emit_transition(s, closed, Reason::Fleet, None),
                Err(actual) => s = actual,
            }
        }
    }
}
