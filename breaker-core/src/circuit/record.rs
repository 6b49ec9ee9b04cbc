//! Recording: what an outcome does to a circuit (windows, streaks, trips), a probe's outcome,
//! and a permit dropped without one.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use super::admit::Ticket;
use super::inner::{micros, Inner, PLAIN, PLAIN_POOLED, POOLED};
use super::policy::Policy;
use crate::backoff::{jittered_period, MAX_LEVEL};
use crate::classify::Outcome;
use crate::config::Config;
use crate::contain::drop_payload;
use crate::error::CircuitOpen;
use crate::event::{Event, Reason};
use crate::state::{self, State};
use crate::sync::Ordering;
use crate::window::{Recorder, Totals};

impl Inner {
    #[inline(always)]
    pub(super) fn record(&self, ticket: Ticket, outcome: Outcome) {
        let flags = self.flags.load(Ordering::Relaxed);
        if flags & (PLAIN | PLAIN_POOLED) != 0 && self.settled(ticket, outcome) {
            // Nothing to count and nothing to reset: the common case reads two words and
            // returns, writing nothing (but the success a provider's pooled window counts).
            if flags & PLAIN_POOLED != 0 {
                self.pool_success();
            }
            return;
        }
        self.record_from(ticket, outcome)
    }

    /// Whether `outcome` is a success on a closed circuit in the stay its permit was issued in,
    /// with no failure streak: nothing for a plain circuit to count or reset.
    #[inline(always)]
    fn settled(&self, ticket: Ticket, outcome: Outcome) -> bool {
        outcome == Outcome::Success
            && state::tag(ticket.issued) == state::CLOSED
            // A closed state word has no payload: the same word is the same stay.
            && self.state.load(Ordering::Acquire) == ticket.issued
            && self.consecutive.load(Ordering::Relaxed) == 0
    }

    /// Everything but the fast path of [`record`](Self::record).
    #[inline(never)]
    fn record_from(&self, ticket: Ticket, outcome: Outcome) {
        // What the permit took of the calls in flight goes back first, whatever happens next.
        let Some(ticket) = self.land(ticket) else {
            return;
        };
        let episode = state::episode(ticket.issued);
        if state::tag(episode) == state::HALF_OPEN {
            return self.record_probe_from(ticket, outcome);
        }
        let started_us = ticket.started_us;
        let policy = self.policy();
        // A failure may trip: a circuit that was retuned (its chain's head is not its policy)
        // but that the registry did not visit (detached, removed) takes the window and flags of
        // its policy first. Successes never trip and skip this, so it costs nothing on the
        // success paths, nor on circuits never retuned.
        if matches!(outcome, Outcome::Failure | Outcome::RetryAfter(_))
            && !std::ptr::eq(policy, &*self.head)
        {
            self.catch_up(policy);
        }
        let window = self.window.get();
        // A time window takes a reading that may lag a little (the coarse clock); slow calls
        // are timed precisely.
        let now = match (policy.slow_us, window) {
            (Some(_), _) => self.now_us(),
            (None, Some(w)) => w
                .tolerance_us()
                .map_or(0, |t| self.head.time.now_us_within(t)),
            _ => 0,
        };
        // `started_us` is one more than the clock at admission, or 0 for a permit issued
        // untimed (see `ticket`).
        let elapsed = (now + 1).saturating_sub(started_us);
        let slow = started_us != 0 && policy.slow_us.is_some_and(|t| elapsed > t);
        match state::tag(episode) {
            state::CLOSED | state::METRICS_ONLY => {
                if self.flags.load(Ordering::Relaxed) & POOLED != 0 && !self.pool(outcome) {
                    return;
                }
                if slow {
                    self.emit_slow(elapsed);
                }
                self.record_closed(episode, outcome, slow, now, policy, window)
            }
            _ => {}
        }
    }

    /// [`record_from`](Self::record_from) for a probe. Its slot is given back however this
    /// ends: if the clock (user code) panics before the outcome is published, the guard frees
    /// the slot on the way out as an ignored outcome, which reads no clock; otherwise the
    /// circuit would stay half-open with a slot that no permit can free.
    #[cold]
    #[inline(never)]
    fn record_probe_from(&self, ticket: Ticket, outcome: Outcome) {
        let episode = state::episode(ticket.issued);
        let mut slot = ProbeSlot {
            circuit: self,
            episode,
            held: true,
        };
        // As in `record_from`: `started_us` is 0 for a permit issued untimed.
        let slow = match self.policy().slow_us {
            Some(threshold) if ticket.started_us != 0 => {
                let elapsed = (self.now_us() + 1).saturating_sub(ticket.started_us);
                if elapsed > threshold {
                    self.emit_slow(elapsed);
                }
                elapsed > threshold
            }
            _ => false,
        };
        self.record_probe(&mut slot, outcome, slow);
    }

    #[cold]
    fn emit_slow(&self, elapsed_us: u64) {
        if let (Some(events), Some((threshold, _))) =
            (&self.head.events, self.policy().config.slow_call)
        {
            events.emit(&Event::SlowCall {
                provider: self.head.provider,
                tenant: self.tenant.as_str(),
                elapsed: micros(elapsed_us),
                threshold,
            });
        }
    }

    /// Records into `window` with `policy`, both as read when `now` was taken: a window read
    /// again here could be one a retuning swapped in meanwhile, of a kind `now` was not read
    /// for (a time window given the 0 of an untimed one would drop the outcome).
    fn record_closed(
        &self,
        episode: u64,
        outcome: Outcome,
        slow: bool,
        now: u64,
        policy: &Policy,
        window: Option<&Recorder>,
    ) {
        let s = self.state.load(Ordering::Acquire);
        if state::episode(s) != episode {
            // Issued before the circuit last moved: its outcome describes a past the circuit has
            // already acted on.
            return;
        }
        let (failure, asked) = match outcome {
            Outcome::Ignored => return,
            Outcome::Success => (false, None),
            Outcome::Failure => (true, None),
            Outcome::RetryAfter(d) => (true, (!d.is_zero()).then_some(d)),
        };
        let mut trip = None;
        if policy.consecutive != 0 {
            if failure {
                let n = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
                trip = (n >= policy.consecutive).then_some(Reason::ConsecutiveFailures);
            } else if self.consecutive.load(Ordering::Relaxed) != 0 {
                // Only write when there is something to reset: a success on a healthy circuit
                // leaves the cache line shared.
                self.consecutive.store(0, Ordering::Relaxed);
            }
        }
        if let Some(w) = window {
            // A striped window asks for the (cross-core) totals only when a trip may be due.
            if w.record_for(failure, slow, now, &policy.trips) {
                trip = trip.or_else(|| rates_exceeded(&policy.config, w.totals(now)));
            }
        }
        if state::tag(s) != state::CLOSED {
            return;
        }
        if failure {
            self.share_failure();
        }
        if let Some(asked) = asked {
            // The provider's time wins over any threshold and over the backoff schedule.
            self.trip_for_retry_after(s, 0, asked);
        } else if let Some(reason) = trip {
            self.trip(s, 0, reason);
        }
    }

    /// The open period for a provider's `Retry-After` of `d`: exactly that, up to the cap.
    pub(super) fn asked_period(&self, d: Duration) -> Duration {
        d.min(self.policy().config.max_open_for)
    }

    /// The call of `ticket` ran past its deadline: a failure of the provider, told to the
    /// listeners first ([`Event::TimedOut`]), and the error its caller gets: the circuit's state
    /// and retry-after once the failure is recorded.
    pub(super) fn time_out(&self, ticket: Ticket) -> CircuitOpen {
        if let Some(events) = &self.head.events {
            events.emit(&Event::TimedOut {
                provider: self.head.provider,
                tenant: self.tenant.as_str(),
                timeout: self.policy().config.timeout,
            });
        }
        self.record(ticket, Outcome::Failure);
        let s = self.state.load(Ordering::Acquire);
        let (state, retry_after_us) = match state::tag(s) {
            state::OPEN => match self.head.time.until(state::deadline(s)) {
                Some(left) => (State::Open, left),
                None => (State::HalfOpen, CircuitOpen::UNKNOWN),
            },
            tag => (State::from_tag(tag), CircuitOpen::UNKNOWN),
        };
        CircuitOpen::timed_out(
            self.head.provider,
            self.tenant.clone(),
            state,
            retry_after_us,
        )
    }

    /// [`trip_for`](Self::trip_for) the provider's `Retry-After` of `asked`: for exactly that
    /// long, or `max_open_for` when it asked for more, which the listeners are told of
    /// ([`Event::RetryAfterCapped`]): a client told to come back sooner than the provider said
    /// is a surprise worth a log line.
    fn trip_for_retry_after(&self, from: u64, level: u32, asked: Duration) -> bool {
        let period = self.asked_period(asked);
        let tripped = self.trip_for(from, level, period, Reason::RetryAfter(period));
        if tripped && period < asked {
            if let Some(events) = &self.head.events {
                events.emit(&Event::RetryAfterCapped {
                    provider: self.head.provider,
                    tenant: self.tenant.as_str(),
                    asked,
                    applied: period,
                });
            }
        }
        tripped
    }

    /// Moves `from` (closed or half-open) to open at backoff `level`. Only the CAS winner counts
    /// the trip and tells the listeners.
    pub(super) fn trip(&self, from: u64, level: u32, reason: Reason) -> bool {
        let period = jittered_period(&self.policy().config, level);
        self.trip_for(from, level, period, reason)
    }

    /// [`trip`](Self::trip) for an open period of `period`. The deadline is kept in 48 bits of
    /// µs since the circuit's origin (8.9 years; `state::open` saturates there), and `period` is
    /// at most `max_open_for`, itself at most a year.
    pub(super) fn trip_for(&self, from: u64, level: u32, period: Duration, reason: Reason) -> bool {
        let deadline = self.now_us().saturating_add(period.as_micros() as u64);
        let open = state::open(from, level, deadline);
        let ok = self.cas(from, open).is_ok();
        if ok {
            self.cold_record()
                .times_opened
                .fetch_add(1, Ordering::Relaxed);
            self.consecutive.store(0, Ordering::Relaxed);
            self.emit_transition(from, open, reason, Some(period));
        }
        ok
    }

    fn record_probe(&self, slot: &mut ProbeSlot<'_>, outcome: Outcome, slow: bool) {
        let episode = slot.episode;
        let config = &self.policy().config;
        // A slow probe means the provider has not recovered, when slow calls are a policy.
        let outcome = match outcome {
            Outcome::Success if slow => Outcome::Failure,
            Outcome::RetryAfter(d) if d.is_zero() => Outcome::Failure,
            other => other,
        };
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if state::episode(s) != episode {
                // The half-open stay this probe belonged to is over; its slot went with it.
                slot.held = false;
                return;
            }
            let in_flight = state::in_flight(s).saturating_sub(1);
            let next = match outcome {
                Outcome::Failure => {
                    let level = (state::level(s) + 1).min(MAX_LEVEL);
                    if self.trip(s, level, Reason::ProbeFailed) {
                        slot.held = false;
                        return;
                    }
                    s = self.state.load(Ordering::Acquire);
                    continue;
                }
                Outcome::RetryAfter(d) => {
                    let level = (state::level(s) + 1).min(MAX_LEVEL);
                    if self.trip_for_retry_after(s, level, d) {
                        slot.held = false;
                        return;
                    }
                    s = self.state.load(Ordering::Acquire);
                    continue;
                }
                Outcome::Ignored => state::reprobe(s, in_flight, state::successes(s)),
                Outcome::Success => {
                    let successes = state::successes(s) + 1;
                    if successes >= config.half_open_successes {
                        if !self.clear_for_close(s) {
                            s = self.state.load(Ordering::Acquire);
                            continue;
                        }
                        state::with_stay(state::next(s, state::CLOSED), self.next_stay())
                    } else {
                        state::reprobe(s, in_flight, successes)
                    }
                }
            };
            match self.cas(s, next) {
                Ok(()) => {
                    slot.held = false;
                    return self.emit_transition(s, next, Reason::ProbesSucceeded, None);
                }
                Err(actual) => s = actual,
            }
        }
    }

    /// Frees a probe slot of the half-open stay `episode` without an outcome, if that stay
    /// still runs; reads no clock and raises no event.
    fn give_back_probe(&self, episode: u64) {
        let mut s = self.state.load(Ordering::Acquire);
        while state::episode(s) == episode && state::in_flight(s) > 0 {
            let next = state::reprobe(s, state::in_flight(s) - 1, state::successes(s));
            match self.cas(s, next) {
                Ok(()) => return,
                Err(actual) => s = actual,
            }
        }
    }

    /// A permit dropped without an outcome: its `on_abandoned` outcome. A drop also runs while
    /// unwinding, where a second panic (the clock's, a listener payload's drop) would abort the
    /// process: contained here, after the probe guard gave the slot back.
    #[cold]
    #[inline(never)]
    pub(super) fn abandon(&self, ticket: Ticket) {
        let config = &self.policy().config;
        // With a deadline, a permit dropped before it (and not by a panic) is its caller
        // leaving: the deadline would have counted a hang.
        let outcome = if config.timeout.is_some() && !std::thread::panicking() {
            config.on_cancel
        } else {
            config.on_abandoned
        };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.record(ticket, outcome))) {
            drop_payload(payload);
        }
    }
}

/// A probe's half-open slot while its outcome is being recorded: given back if the recording
/// unwinds before it published the outcome.
struct ProbeSlot<'a> {
    circuit: &'a Inner,
    episode: u64,
    /// Still this probe's to give back: cleared once a CAS published its outcome (or its stay
    /// ended).
    held: bool,
}

impl Drop for ProbeSlot<'_> {
    fn drop(&mut self) {
        if self.held {
            self.circuit.give_back_probe(self.episode);
        }
    }
}

/// Which rate of `c`'s, if any, has reached its threshold.
pub(super) fn rates_exceeded(c: &Config, t: Totals) -> Option<Reason> {
    if t.calls < c.minimum_calls {
        None
    } else if c.failure_rate.is_some_and(|r| t.failure_rate() >= r) {
        Some(Reason::FailureRate)
    } else if c.slow_call.is_some_and(|(_, r)| t.slow_rate() >= r) {
        Some(Reason::SlowCallRate)
    } else {
        None
    }
}
