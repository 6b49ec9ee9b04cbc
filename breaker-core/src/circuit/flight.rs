//! The circuit's side of its calls in flight (`crate::flight`), for policies that keep them: the
//! bulkhead (`max_in_flight`) at admission, the calls found overdue there (in flight longer than
//! the slow-call threshold: counted as slow while they still hang), and what a permit gives back
//! when it is recorded or dropped. The state machine only learns in-flight counts and outcomes.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::admit::Ticket;
use super::inner::{Inner, ADMIT_SLOW};
use super::policy::Policy;
use super::record::rates_exceeded;
use crate::contain::drop_payload;
use crate::error::CircuitOpen;
use crate::event::Event;
use crate::flight::{overdue_after, Flight, Left, HELD, MARKS, SPENT, TRACKED};
use crate::state;
use crate::sync::Ordering;
use crate::window::Trips;

impl Inner {
    /// The ticket of a call admitted by a closed (or metrics-only) circuit: with its place in
    /// the bulkhead and its start epoch taken when the policy keeps calls in flight, or the
    /// bulkhead's rejection ([`Ticket::full`]).
    #[inline]
    pub(super) fn closed_ticket(&self, s: u64) -> Ticket {
        let ticket = self.ticket(s);
        if self.flags.load(Ordering::Relaxed) & ADMIT_SLOW == 0 {
            return ticket;
        }
        match self.window.flight() {
            Some(flight) => self.enter_flight(flight, ticket),
            None => ticket,
        }
    }

    #[inline(never)]
    fn enter_flight(&self, flight: &Flight, mut ticket: Ticket) -> Ticket {
        let policy = self.policy();
        // One more than the clock at admission, 0 when untimed (see `ticket`).
        let start = ticket.started_us;
        let mut epoch = None;
        if let (Some(slow_us), true) = (policy.slow_us, start != 0) {
            let epoch_us = flight.epoch_us(slow_us);
            let e = (start - 1) / epoch_us;
            let (tracked, reused) = flight.enter(e);
            if tracked {
                ticket.started_us |= TRACKED;
                epoch = Some(e);
            }
            let overdue = reused + flight.take_overdue(e, overdue_after(slow_us, epoch_us));
            if overdue > 0 {
                self.count_overdue(ticket.issued, overdue, start - 1, policy);
            }
        }
        if let Some(max) = policy.config.max_in_flight {
            // Metrics-only passes every call.
            if state::tag(ticket.issued) == state::CLOSED {
                if !flight.try_hold(max) {
                    if let Some(e) = epoch {
                        flight.leave(e);
                    }
                    return Ticket::full();
                }
                ticket.started_us |= HELD;
            }
        }
        ticket
    }

    /// The error of a call the bulkhead refused, told to the listeners ([`Event::Full`]). Not
    /// an outcome, and not in the circuit's `rejected` count (which counts what its state
    /// refused).
    #[cold]
    #[inline(never)]
    pub(super) fn reject_full(&self) -> CircuitOpen {
        if let Some(events) = &self.head.events {
            events.emit(&Event::Full {
                provider: self.head.provider,
                tenant: self.tenant.as_str(),
                max_in_flight: self.policy().config.max_in_flight.unwrap_or(0),
            });
        }
        CircuitOpen::full(self.head.provider, self.tenant.clone())
    }

    /// Counts `calls` found still in flight past the slow-call threshold as slow outcomes of the
    /// closed stay `s`, now, and trips the circuit if the slow-call rate says so. Listeners and
    /// the clock (user code) run here, in the middle of an admission that has taken its place
    /// in the ring: a panic of theirs is contained, as a dropped permit's is.
    #[cold]
    #[inline(never)]
    fn count_overdue(&self, s: u64, calls: u32, now: u64, policy: &Policy) {
        let counted = catch_unwind(AssertUnwindSafe(|| {
            if let (Some(events), Some((threshold, _))) =
                (&self.head.events, policy.config.slow_call)
            {
                events.emit(&Event::Overdue {
                    provider: self.head.provider,
                    tenant: self.tenant.as_str(),
                    calls,
                    threshold,
                });
            }
            let Some(window) = self.window.get() else {
                return;
            };
            for _ in 0..calls {
                // Slow calls: always a check, which follows for all of them at once.
                window.record_for(false, true, now, &Trips::ALWAYS);
            }
            if state::tag(s) != state::CLOSED || self.state.load(Ordering::Acquire) != s {
                return;
            }
            if let Some(reason) = rates_exceeded(&policy.config, window.totals(now)) {
                self.trip(s, 0, reason);
            }
        }));
        if let Err(payload) = counted {
            drop_payload(payload);
        }
    }

    /// Gives back what `ticket` took of the calls in flight, first thing when its permit is
    /// recorded or dropped (before any user code runs). `None` when its call was counted already
    /// (found overdue while in flight): its outcome is not recorded again.
    #[inline]
    pub(super) fn land(&self, ticket: Ticket) -> Option<Ticket> {
        if ticket.started_us & MARKS == 0 {
            return Some(ticket);
        }
        self.land_marked(ticket)
    }

    #[inline(never)]
    fn land_marked(&self, mut ticket: Ticket) -> Option<Ticket> {
        let marks = ticket.started_us & MARKS;
        ticket.started_us &= !MARKS;
        // A marked ticket was admitted with the flight, which the circuit keeps for its life.
        let Some(flight) = self.window.flight() else {
            return Some(ticket);
        };
        if marks & HELD != 0 {
            flight.release();
        }
        let mut spent = marks & SPENT != 0;
        if marks & TRACKED != 0 {
            spent |= self.leave_ring(flight, ticket.started_us);
        }
        (!spent).then_some(ticket)
    }

    /// A guarded stream's first item came: its call is no longer in flight for the slow-call
    /// policy (a long answer is not a hang), so its start epoch is given back now; its bulkhead
    /// place is kept until the stream ends.
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(super) fn first_item_landed(&self, ticket: &mut Ticket) {
        if ticket.started_us & TRACKED == 0 {
            return;
        }
        ticket.started_us &= !TRACKED;
        if let Some(flight) = self.window.flight() {
            if self.leave_ring(flight, ticket.started_us & !MARKS) {
                ticket.started_us |= SPENT;
            }
        }
    }

    /// Takes the call started at `start` (one more than the clock) out of the ring; whether it
    /// had been counted as overdue.
    fn leave_ring(&self, flight: &Flight, start: u64) -> bool {
        // Set before the ticket was marked, and never changed: the epoch it was counted in.
        let epoch_us = flight.epoch_len();
        flight.leave(start.saturating_sub(1) / epoch_us) == Left::Counted
    }

    /// The calls found in flight for the new stay are none: their outcomes belong to the old.
    pub(super) fn forget_in_flight(&self) {
        if let Some(flight) = self.window.flight() {
            flight.forget();
        }
    }
}
