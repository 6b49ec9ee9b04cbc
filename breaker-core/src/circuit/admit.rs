//! Admission: whether a call may go through a circuit, as a [`Ticket`] (a permit's, or a
//! rejection's), and the rejection a caller is given.

use super::inner::{Inner, ADMIT_SLOW, TIMED};
use crate::backoff::MAX_LEVEL;
use crate::classify::Outcome;
use crate::error::CircuitOpen;
use crate::event::{Event, Reason};
use crate::state::{self, State};
use crate::sync::Ordering;

impl Inner {
    /// The ticket of an admitted call, or a rejection ticket ([`Ticket::is_rejection`]), which
    /// the caller turns into a [`CircuitOpen`] with [`reject`](Self::reject). Two words, so
    /// both the inlined fast path and `admit_from` hand it over in registers: a
    /// `Result<Ticket, CircuitOpen>` went through memory, and so did every permit built from it.
    #[inline(always)]
    pub(super) fn admit(&self) -> Ticket {
        let s = self.state.load(Ordering::Acquire);
        if self.admits_at_once(s) {
            return Ticket::at_once(s);
        }
        self.admit_from(s)
    }

    /// Whether a call finding the state word `s` is admitted on the fast path: closed, untimed
    /// and unlimited, with the ticket [`Ticket::at_once`].
    #[inline(always)]
    pub(super) fn admits_at_once(&self, s: u64) -> bool {
        state::tag(s) == state::CLOSED && self.flags.load(Ordering::Relaxed) & ADMIT_SLOW == 0
    }

    /// Everything but the closed, untimed and unlimited fast path of [`admit`](Self::admit). An
    /// open circuit's rejection, the fast-fail path of a sick provider, is answered here before
    /// the loop: kept apart from it, it saves and restores none of the registers the loop needs.
    #[inline(never)]
    pub(super) fn admit_from(&self, s: u64) -> Ticket {
        if state::tag(s) == state::OPEN {
            if let Some(left) = self.head.time.until(state::deadline(s)) {
                return Ticket::rejection(state::OPEN, left);
            }
        }
        self.admit_loop(s)
    }

    #[inline(never)]
    fn admit_loop(&self, mut s: u64) -> Ticket {
        loop {
            match state::tag(s) {
                state::CLOSED | state::METRICS_ONLY => return self.closed_ticket(s),
                state::DISABLED => return self.ticket(s),
                state::OPEN => {
                    if let Some(left) = self.head.time.until(state::deadline(s)) {
                        return Ticket::rejection(state::OPEN, left);
                    }
                    // The open period is over: the first caller turns the circuit half-open and
                    // takes the first probe slot in the same CAS.
                    let probe = state::half_open(s, state::level(s), 1, 0);
                    // Numbered apart from `next_stay`: operator flapping then cannot bring an
                    // old half-open number back; only 2^16 half-open words can, each an open
                    // period or a probe timeout.
                    let probe = state::with_stay(probe, self.next_half_stay());
                    self.stamp_probe(probe);
                    // The clock (user code) is read before the CAS that takes the slot: a
                    // clock that panics after it would leave the slot taken with no permit to
                    // give it back.
                    let ticket = self.ticket(probe);
                    match self.cas(s, probe) {
                        Ok(()) => {
                            self.emit_transition(s, probe, Reason::OpenPeriodElapsed, None);
                            return ticket;
                        }
                        Err(actual) => s = actual,
                    }
                }
                state::HALF_OPEN => {
                    if state::in_flight(s) >= self.policy().config.half_open_probes {
                        match self.expire_probes(s) {
                            Some(moved) => {
                                s = moved;
                                continue;
                            }
                            None => {
                                return Ticket::rejection(state::HALF_OPEN, CircuitOpen::UNKNOWN)
                            }
                        }
                    }
                    let taken = state::reprobe(s, state::in_flight(s) + 1, state::successes(s));
                    self.stamp_probe(taken);
                    // As above: no user code between taking the slot and handing out its permit.
                    let ticket = self.ticket(taken);
                    match self.cas(s, taken) {
                        Ok(()) => return ticket,
                        Err(actual) => s = actual,
                    }
                }
                _ => return Ticket::rejection(state::FORCED_OPEN, CircuitOpen::UNKNOWN),
            }
        }
    }

    /// Notes that a probe is being admitted into the half-open word `probe`. Stored before the
    /// CAS that publishes `probe`, so a caller that sees the probe's slot taken (an acquire load
    /// of the state word) also sees this stamp or a later one; a stamp stored for a CAS that then
    /// failed is either of the same stay (a moment later than the real start: harmless) or
    /// carries another generation and is ignored.
    fn stamp_probe(&self, probe: u64) {
        let stamp = (state::gen(probe) << PROBE_GEN_SHIFT) | (self.now_us() & state::DEADLINE_MAX);
        self.cold_record()
            .probe_stamp
            .store(stamp, Ordering::Release);
    }

    /// Called when a call finds every probe slot of the half-open word `s` taken: if the latest
    /// probe has been outstanding for the config's `probe_timeout`, every probe in flight (all
    /// of them started no later) is let go and counted as `on_abandoned`, in a new state word so
    /// that their own outcomes, whenever they come, are stale. Returns the state to look at
    /// again, or `None` when the probes still hold their slots.
    #[cold]
    #[inline(never)]
    fn expire_probes(&self, s: u64) -> Option<u64> {
        let cold = self.cold_record();
        let stamp = cold.probe_stamp.load(Ordering::Acquire);
        if stamp >> PROBE_GEN_SHIFT != state::gen(s) {
            // Only a stamp stored late for a CAS that failed can be of another stay: time this
            // stay's probes from now rather than not at all.
            let now = self.now_us();
            let fresh = (state::gen(s) << PROBE_GEN_SHIFT) | (now & state::DEADLINE_MAX);
            let _ = cold.probe_stamp.compare_exchange(
                stamp,
                fresh,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            return None;
        }
        let started = stamp & state::DEADLINE_MAX;
        // `until` answers from the coarse clock while the timeout is clearly ahead, so the
        // rejections of a half-open circuit whose probes are out stay as cheap as an open one's.
        let expires = started.saturating_add(self.policy().probe_timeout_us);
        if self.head.time.until(expires).is_some() {
            return None;
        }
        let config = &self.policy().config;
        let level = state::level(s);
        let in_flight = state::in_flight(s);
        // The same half-open stay under a new number: probes admitted under `s` are stale. A
        // new gen alone would not do: 256 expiries in one stay would bring `s`'s episode back.
        let renewed = |successes: u32| {
            state::with_stay(
                state::half_open(s, level, 0, successes),
                self.next_half_stay(),
            )
        };
        let next_level = (level + 1).min(MAX_LEVEL);
        let next = match config.on_abandoned {
            Outcome::RetryAfter(d) if !d.is_zero() => {
                let period = self.asked_period(d);
                self.trip_for(s, next_level, period, Reason::ProbeTimedOut);
                return Some(self.state.load(Ordering::Acquire));
            }
            Outcome::Failure | Outcome::RetryAfter(_) => {
                self.trip(s, next_level, Reason::ProbeTimedOut);
                return Some(self.state.load(Ordering::Acquire));
            }
            Outcome::Ignored => renewed(state::successes(s)),
            Outcome::Success => {
                let successes = state::successes(s) + in_flight;
                if successes >= config.half_open_successes {
                    if !self.clear_for_close(s) {
                        return Some(self.state.load(Ordering::Acquire));
                    }
                    state::with_stay(state::next(s, state::CLOSED), self.next_stay())
                } else {
                    renewed(successes)
                }
            }
        };
        if self.cas(s, next).is_ok() {
            self.emit_transition(s, next, Reason::ProbesSucceeded, None);
        }
        Some(self.state.load(Ordering::Acquire))
    }

    #[inline]
    pub(super) fn ticket(&self, s: u64) -> Ticket {
        // One more than the clock, so that 0 means "not timed": a permit issued before a
        // retuning made slow calls a policy is then never taken for one that started at the
        // clock's origin.
        let started_us = if self.flags.load(Ordering::Relaxed) & TIMED != 0
            && state::tag(s) != state::DISABLED
        {
            self.now_us() + 1
        } else {
            0
        };
        Ticket {
            issued: s,
            started_us,
        }
    }

    /// Counts the rejection that `ticket` stands for and builds its error.
    #[cold]
    #[inline(never)]
    pub(super) fn reject(&self, ticket: Ticket) -> CircuitOpen {
        if ticket.is_full() {
            return self.reject_full();
        }
        self.cold_record().rejected.incr();
        let (state, retry_after_us) = ticket.rejected();
        if let Some(events) = &self.head.events {
            events.emit(&Event::Rejected {
                provider: self.head.provider,
                tenant: self.tenant.as_str(),
                state,
                retry_after: CircuitOpen::retry_after_of(retry_after_us),
                provider_wide: ticket.is_provider_wide(),
            });
        }
        if ticket.is_provider_wide() {
            return CircuitOpen::provider_wide(
                self.head.provider,
                self.tenant.clone(),
                state,
                retry_after_us,
            );
        }
        // Built last, straight into the caller's slot: a value built earlier and then moved
        // there was reloaded with wider loads than its stores, a store-forwarding stall.
        CircuitOpen::new(
            self.head.provider,
            self.tenant.clone(),
            state,
            retry_after_us,
        )
    }
}

/// In a rejection ticket's word: the bulkhead refused the call (beside the state's tag).
const FULL: u64 = 0b1000;

/// Where a probe stamp keeps the generation of its half-open word (above the 48-bit time).
const PROBE_GEN_SHIFT: u32 = 56;

/// What a permit remembers of its admission: the state it was issued under and, when slow calls
/// are a policy, when.
#[derive(Clone, Copy)]
pub(super) struct Ticket {
    /// The state word the permit was issued under.
    pub(super) issued: u64,
    pub(super) started_us: u64,
}

impl Ticket {
    /// The ticket of a call admitted on the fast path ([`Inner::admits_at_once`]): issued
    /// under `s`, untimed.
    #[inline(always)]
    pub(super) fn at_once(s: u64) -> Ticket {
        Ticket {
            issued: s,
            started_us: 0,
        }
    }

    pub(super) fn is_probe(self) -> bool {
        state::tag(self.issued) == state::HALF_OPEN
    }

    /// A call turned away in the state of tag `tag` (`OPEN`, `HALF_OPEN` or `FORCED_OPEN`),
    /// `retry_after_us` (or `CircuitOpen::UNKNOWN`) before a probe may pass. Never a permit's.
    #[inline]
    pub(super) fn rejection(tag: u64, retry_after_us: u64) -> Ticket {
        Ticket {
            issued: (state::REJECTED << state::TAG_SHIFT) | tag,
            started_us: retry_after_us,
        }
    }

    /// A call turned away by a closed circuit's bulkhead (`max_in_flight`).
    pub(super) fn full() -> Ticket {
        Ticket {
            issued: (state::REJECTED << state::TAG_SHIFT) | FULL | state::CLOSED,
            started_us: CircuitOpen::UNKNOWN,
        }
    }

    /// Whether this [`rejection`](Self::rejection) is the bulkhead's.
    pub(super) fn is_full(self) -> bool {
        self.issued & FULL != 0
    }

    #[inline]
    pub(super) fn is_rejection(self) -> bool {
        state::tag(self.issued) == state::REJECTED
    }

    /// The state and retry-after of a [`rejection`](Self::rejection).
    pub(super) fn rejected(self) -> (State, u64) {
        (State::from_tag(self.issued & 0b111), self.started_us)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn rejection_tickets_carry_their_state_and_retry_after() {
        for (tag, state) in [
            (state::OPEN, State::Open),
            (state::HALF_OPEN, State::HalfOpen),
            (state::FORCED_OPEN, State::ForcedOpen),
        ] {
            let t = Ticket::rejection(tag, 1234);
            assert!(t.is_rejection() && !t.is_probe());
            assert_eq!(t.rejected(), (state, 1234));
        }
        // No state word a circuit publishes reads as a rejection.
        for tag in 0..=state::METRICS_ONLY {
            let issued = tag << state::TAG_SHIFT | (u64::MAX >> 3);
            assert!(!Ticket {
                issued,
                started_us: 0
            }
            .is_rejection());
        }
    }
}
