//! Permits: the right to make one call through a circuit, and how its outcome gets back.

use std::fmt;
use std::mem::ManuallyDrop;

use super::admit::Ticket;
use super::inner::Inner;
use crate::classify::Outcome;
use crate::error::CircuitOpen;
use crate::flight::MARKS;
use crate::sync::Ordering;
use crate::table::shared::Held;

/// The outcome methods, the abandon-on-drop rule and `Debug`, shared by both permit kinds, which
/// differ only in how they hold the circuit.
macro_rules! permit_impl {
    ($name:ident $(<$lt:lifetime>)?) => {
        impl$(<$lt>)? $name$(<$lt>)? {
            /// The call succeeded.
            #[inline]
            pub fn success(self) {
                self.record(Outcome::Success)
            }

            /// The call failed in a way that says the dependency is unhealthy.
            #[inline]
            pub fn failure(self) {
                self.record(Outcome::Failure)
            }

            /// The call proves nothing either way; it is counted nowhere.
            #[inline]
            pub fn ignore(self) {
                self.record(Outcome::Ignored)
            }

            /// Whether this permit is a half-open probe.
            pub fn is_probe(&self) -> bool {
                self.ticket.is_probe()
            }

            /// The deadline of this call ([`Config::timeout`](crate::Config::timeout)), if its
            /// circuit's config sets one: race the call against it and, when it passes, give
            /// the permit up with [`time_out`](Self::time_out).
            #[inline]
            pub fn deadline(&self) -> Option<std::time::Duration> {
                self.circuit.deadline()
            }

        }

        impl$(<$lt>)? Drop for $name$(<$lt>)? {
            fn drop(&mut self) {
                self.circuit.abandon(self.ticket);
            }
        }

        impl$(<$lt>)? fmt::Debug for $name$(<$lt>)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("provider", &self.circuit.head.provider)
                    .field("tenant", &self.circuit.tenant.as_str())
                    .field("probe", &self.is_probe())
                    .finish()
            }
        }
    };
}

/// The right to make one call through a circuit. Report the call's outcome with
/// [`success`](Permit::success), [`failure`](Permit::failure), [`ignore`](Permit::ignore) or
/// [`record`](Permit::record). A permit dropped without a report (a cancelled future, a panic)
/// counts as the config's `on_abandoned` outcome and always frees its half-open slot. Dropping
/// one never panics (so never aborts an unwinding thread): a panic of the user code it runs, a
/// clock or a listener, is contained there. A panic while recording an outcome reaches the caller
/// of `record`, with the probe slot, if any, freed first.
///
/// A permit is `Send + Sync + 'static`: hold it across `.await`. It keeps its circuit's memory
/// alive (not its place in a registry: a registry may drop a circuit idle for two sweeps while
/// a call on it still runs, and that call's outcome then goes to the dropped circuit) and
/// nothing else, so a permit that is never released (a hung call without a timeout) costs one
/// circuit, not the registry's ability to free what it drops.
#[must_use = "a permit records its outcome when consumed; dropping it counts as `on_abandoned`"]
pub struct Permit {
    pub(super) circuit: Held<Inner>,
    pub(super) ticket: Ticket,
}

permit_impl!(Permit);

impl Permit {
    /// A permit for the circuit `circuit` holds, or its rejection (the hold is let go either
    /// way: the rejection copies what it needs). Inlined whole: the fast path hands the permit
    /// over in registers.
    #[inline(always)]
    pub(crate) fn admit(circuit: Held<Inner>) -> Result<Permit, CircuitOpen> {
        let s = circuit.state.load(Ordering::Acquire);
        // The fast path builds its permit apart, so that no test for a rejection follows it:
        // behind one merged ticket the compiler tested every admitted call's tag again.
        if circuit.admits_at_once(s) {
            return Ok(Permit {
                circuit,
                ticket: Ticket::at_once(s),
            });
        }
        let ticket = circuit.admit_from(s);
        if ticket.is_rejection() {
            return Err(circuit.reject(ticket));
        }
        Ok(Permit { circuit, ticket })
    }

    /// Records `outcome` (for example from [`Classify::classify`](crate::Classify::classify)).
    /// Inlined always: moving the permit into a call copied it with wider loads than the stores
    /// that made it (a store-forwarding stall), and a success on a closed circuit is only two
    /// loads and the release of the hold.
    #[inline(always)]
    pub fn record(self, outcome: Outcome) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the hold is moved out of it exactly once and
        // released exactly once, when `circuit` goes out of scope here.
        let circuit = unsafe { std::ptr::read(&this.circuit) };
        circuit.record(this.ticket, outcome);
    }

    /// The call ran past its deadline (its caller's timer fired): recorded as a failure
    /// of the provider, told to the listeners as an
    /// [`Event::TimedOut`](crate::Event::TimedOut), and returned as the error for the
    /// caller, whose [`is_timeout`](CircuitOpen::is_timeout) is true and whose state and
    /// retry-after are the circuit's once the failure is counted.
    /// `#[circuit_breaker]` sites with `timeout = ..` call it when
    /// [`Config::timeout`](crate::Config::timeout) passes.
    pub fn time_out(self) -> CircuitOpen {
        let this = ManuallyDrop::new(self);
        // SAFETY: as in `record`: the hold is moved out exactly once and released here.
        let circuit = unsafe { std::ptr::read(&this.circuit) };
        circuit.time_out(this.ticket)
    }
}

/// What a wrapper that holds a permit past its call's return (a guarded stream) needs of it:
/// the circuit's clock and config, and the rule that the slow-call policy times such a call to
/// its first item.
impl Permit {
    /// The circuit's clock, in µs since its origin.
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn now_us(&self) -> u64 {
        self.circuit.now_us()
    }

    /// Whether a wait that may last until `deadline_us` is over, and a time no earlier than
    /// now to measure the next from (the coarse clock's, while the deadline is clearly ahead).
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    #[inline]
    pub(crate) fn past(&self, deadline_us: u64) -> (bool, u64) {
        self.circuit.past(deadline_us)
    }

    /// The config the circuit decides on now.
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn config(&self) -> &crate::config::Config {
        &self.circuit.policy().config
    }

    /// The call's first item came now: for the slow-call policy the call lasted until here,
    /// whenever it is recorded. A call found not slow becomes untimed (a ticket started at 0 is
    /// never slow); a slow one keeps its start, so its duration at recording only grows past the
    /// threshold. Reads the clock only when the permit was timed (slow calls are a policy).
    #[cfg_attr(not(feature = "stream"), allow(dead_code))]
    pub(crate) fn first_item(&mut self) {
        self.circuit.first_item_landed(&mut self.ticket);
        let started_us = self.ticket.started_us & !MARKS;
        if started_us == 0 {
            return;
        }
        let elapsed = (self.circuit.now_us() + 1).saturating_sub(started_us);
        if self.circuit.policy().slow_us.is_none_or(|t| elapsed <= t) {
            self.ticket.started_us &= MARKS;
        }
    }
}

/// A [`Permit`] that borrows its circuit, from
/// [`Circuit::try_acquire_scoped`](crate::Circuit::try_acquire_scoped): the same methods and the
/// same drop rule, without a reference count.
#[must_use = "a permit records its outcome when consumed; dropping it counts as `on_abandoned`"]
pub struct ScopedPermit<'a> {
    pub(super) circuit: &'a Inner,
    pub(super) ticket: Ticket,
}

permit_impl!(ScopedPermit<'a>);

impl ScopedPermit<'_> {
    /// Records `outcome` (for example from [`Classify::classify`](crate::Classify::classify)).
    #[inline]
    pub fn record(self, outcome: Outcome) {
        // Recording consumes the permit: skip the drop rule that would record it again.
        let this = ManuallyDrop::new(self);
        this.circuit.record(this.ticket, outcome);
    }

    /// The call ran past its deadline (its caller's timer fired): recorded as a failure
    /// of the provider, told to the listeners as an
    /// [`Event::TimedOut`](crate::Event::TimedOut), and returned as the error for the
    /// caller, whose [`is_timeout`](CircuitOpen::is_timeout) is true and whose state and
    /// retry-after are the circuit's once the failure is counted.
    /// `#[circuit_breaker]` sites with `timeout = ..` call it when
    /// [`Config::timeout`](crate::Config::timeout) passes.
    pub fn time_out(self) -> CircuitOpen {
        let this = ManuallyDrop::new(self);
        this.circuit.time_out(this.ticket)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_permit_is_four_words_and_a_ticket_two() {
        // Two words come back from `admit` in registers; a bigger ticket went through memory
        // on the hot path (see `admit`). The hold is the circuit and its hazard's slot.
        assert_eq!(std::mem::size_of::<Ticket>(), 16);
        assert_eq!(std::mem::size_of::<Held<Inner>>(), 16);
        assert_eq!(std::mem::size_of::<Permit>(), 32);
        assert_eq!(std::mem::size_of::<Option<Permit>>(), 32);
    }
}

/// loom model of a registry-style permit against its table (`RUSTFLAGS="--cfg loom" cargo test
/// -p breaker-core --lib --release permit`): a lookup's pin turned into the permit's hazard
/// races the sweep that unlinks the circuit. Freed circuits are marked, not freed, under loom,
/// and every access asserts it is not marked (`Counted::freed`).
#[cfg(all(test, loom))]
mod loom_models {
    use std::sync::Arc as StdArc;

    use loom::sync::Arc;
    use loom::thread;

    use super::*;
    use crate::circuit::{Circuit, Policy};
    use crate::clock::{SystemClock, Timebase};
    use crate::config::Config;
    use crate::provider::Circuits;
    use crate::table::epoch;
    use crate::table::epoch::loom_models::model;

    fn table_of(tenants: &[&str]) -> (Arc<Circuits>, StdArc<Policy>) {
        let time = StdArc::new(Timebase::new(SystemClock));
        let policy = StdArc::new(Policy::new(Config::default(), time, "p", None));
        let t = Arc::new(Circuits::new());
        for n in tenants {
            let guard = t.guard();
            t.get_or_insert(n, || Circuit::from_policy(policy.clone(), n), &guard);
        }
        (t, policy)
    }

    /// A permit for `tenant`, as the registry takes one: a lookup whose pin becomes the hazard.
    fn permit(t: &Circuits, tenant: &str) -> Option<Permit> {
        let guard = t.guard();
        let found = t.get(tenant, &guard)?;
        // SAFETY: found under `guard`, whose pin becomes the hazard.
        let held = unsafe { found.detach().pinned(guard) };
        Permit::admit(held).ok()
    }

    /// A permit taken while a sweep unlinks its circuit, moved to another thread and recorded
    /// there after the sweep's frees: its circuit is kept until then.
    #[test]
    fn a_permit_moved_across_threads_outlives_the_sweep_that_unlinked_its_circuit() {
        model(|| {
            let (t, _policy) = table_of(&["a", "b"]);
            let holder = {
                let t = t.clone();
                thread::spawn(move || {
                    if let Some(p) = permit(&t, "a") {
                        thread::spawn(move || p.success()).join().unwrap();
                    }
                })
            };
            assert_eq!(t.evict(|c| c.tenant() == "a"), 1);
            epoch::collect_now();
            epoch::collect_now();
            holder.join().unwrap();
        });
    }
}
