//! One circuit: the lock-free state machine, its permits and its metrics. The handle
//! ([`Circuit`]) lives here; the state machine in the files below: `policy.rs` (the config a
//! circuit runs on), `inner.rs` (its state and shared steps), `admit.rs` (admission and
//! rejections), `record.rs` (outcomes, probes, abandoned permits), `adopt.rs` (what the fleet
//! applies), `flight.rs` (calls in flight: the bulkhead and calls found overdue) and `permit.rs`.

mod above;
mod admit;
mod adopt;
mod cold;
mod evidence;
mod flight;
mod inner;
mod permit;
mod policy;
mod record;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use self::cold::ColdSlot;
use self::inner::{micros, pooled, Inner};
pub use self::permit::{Permit, ScopedPermit};
pub(crate) use self::policy::{Policy, PoolHook};
use crate::clock::{Clock, SystemClock, Timebase};
use crate::config::Config;
use crate::error::CircuitOpen;
use crate::event::Reason;
use crate::name::Name;
use crate::state::{self, State};
use crate::sync::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use crate::table::epoch::Guard;
use crate::table::shared::{Counted, Shared};
use crate::window::WindowSlot;

/// How a [`Permit`] keeps its circuit alive (see `table/shared.rs`): a hazard, which a registry
/// lookup's pin turns into or a handle's [`try_acquire`](Circuit::try_acquire) stores, or a
/// strong count (a circuit the registry made but could not store, under its cap). Two words, so
/// a permit is four.
pub(crate) type Held = crate::table::shared::Held<Inner>;

/// What a handle points at: the state machine with its reference count (one allocation).
pub(crate) type Raw = Counted<Inner>;

/// A circuit breaker for one dependency (in a [`Registry`](crate::Registry): one
/// (provider, tenant) pair).
///
/// `Circuit` is a cheap handle: clones share one circuit. Every call takes a [`Permit`] with
/// [`try_acquire`](Circuit::try_acquire) and reports how it went through it:
///
/// ```
/// # use breaker_core as breaker;
/// use std::time::Duration;
/// use breaker::{Circuit, Config, ManualClock, State};
///
/// let clock = ManualClock::new();
/// let config = Config::builder().consecutive_failures(2).open_for(Duration::from_secs(10)).build()?;
/// let circuit = Circuit::with_clock(config, clock.clone());
///
/// circuit.try_acquire()?.failure();
/// circuit.try_acquire()?.failure();
/// assert_eq!(circuit.state(), State::Open);
///
/// let rejected = circuit.try_acquire().unwrap_err();
/// assert_eq!(rejected.retry_after(), Some(Duration::from_secs(10)));
///
/// clock.advance(Duration::from_secs(10));
/// circuit.try_acquire()?.success(); // the probe
/// assert_eq!(circuit.state(), State::Closed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Circuit {
    inner: Shared<Inner>,
}

impl Circuit {
    /// A standalone circuit on the system clock.
    pub fn new(config: Config) -> Circuit {
        Circuit::with_clock(config, SystemClock)
    }

    /// A standalone circuit on `clock` (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn with_clock(config: Config, clock: impl Clock) -> Circuit {
        let time = Arc::new(Timebase::new(clock));
        Circuit::from_policy(Arc::new(Policy::new(config, time, "", None)), "")
    }

    pub(crate) fn from_policy(policy: Arc<Policy>, tenant: &str) -> Circuit {
        let current = policy.current();
        let window = WindowSlot::new(
            current.window_spec(),
            current.config.minimum_calls,
            current.keeps_flight(),
        );
        let flags = inner::flags_of(current, window.flight().is_some());
        // The striped counters' stripe count is fixed here, as it was when every circuit made
        // its rejected counter at once: the first reading of the available parallelism may
        // read cgroup files and allocate, which a trip (where the counter is made now) must
        // not. One relaxed load once it is fixed.
        crate::stripe::stripes();
        Circuit {
            inner: Shared::new(Inner {
                state: AtomicU64::new(state::next(u64::MAX, state::CLOSED)),
                consecutive: AtomicU32::new(0),
                cold: ColdSlot::new(),
                used: AtomicBool::new(true),
                flags: AtomicU8::new(inner::with_pool(flags, pooled(&policy))),
                half_stays: AtomicU16::new(0),
                head: policy,
                window,
                tenant: Name::new(tenant),
            }),
        }
    }

    /// Asks to make a call. `Ok` carries the permit to report the outcome through; `Err` means
    /// the circuit is open (or half-open with every probe slot taken) and the call must not be
    /// made.
    ///
    /// On a closed circuit this is one atomic load and two stores to a slot the thread owns
    /// (the permit's hazard, which keeps this one circuit alive without a reference count, so
    /// threads sharing a circuit never contend); see
    /// [`try_acquire_scoped`](Self::try_acquire_scoped) for a permit that borrows the circuit
    /// instead and stores nothing.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit, CircuitOpen> {
        let ticket = self.inner.admit();
        if ticket.is_rejection() {
            return Err(self.inner.reject(ticket));
        }
        Ok(Permit {
            // The handle keeps the circuit alive until the hazard is stored.
            circuit: self.inner.protect(),
            ticket,
        })
    }

    /// Like [`try_acquire`](Self::try_acquire), but the permit borrows the circuit. On a closed
    /// circuit this is one atomic load and writes nothing shared, so threads sharing a circuit
    /// never contend; use it when the call does not outlive the handle (a synchronous call, or
    /// an async block that borrows the circuit).
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{Circuit, Config};
    /// let circuit = Circuit::new(Config::default());
    /// let permit = circuit.try_acquire_scoped()?;
    /// permit.success();
    /// # Ok::<(), breaker::CircuitOpen>(())
    /// ```
    #[inline]
    pub fn try_acquire_scoped(&self) -> Result<ScopedPermit<'_>, CircuitOpen> {
        let ticket = self.inner.admit();
        if ticket.is_rejection() {
            return Err(self.inner.reject(ticket));
        }
        Ok(ScopedPermit {
            circuit: &self.inner,
            ticket,
        })
    }

    /// The current state. An open circuit whose open period has elapsed reports `HalfOpen`: the
    /// next call will be admitted as a probe.
    pub fn state(&self) -> State {
        let s = self.inner.state.load(Ordering::Acquire);
        if state::tag(s) == state::OPEN && self.inner.head.time.until(state::deadline(s)).is_none()
        {
            return State::HalfOpen;
        }
        State::from_tag(state::tag(s))
    }

    /// The state as stored, without reading the clock: `Open` until a call finds the period over
    /// and takes a probe, `HalfOpen` from then (for a fleet: is a probe in flight?).
    pub(crate) fn stored_state(&self) -> State {
        State::from_tag(state::tag(self.inner.state.load(Ordering::Acquire)))
    }

    /// Time left until a probe may pass, if the circuit is open; `None` otherwise (also when
    /// forced open, which never ends by itself).
    pub fn retry_after(&self) -> Option<Duration> {
        let s = self.inner.state.load(Ordering::Acquire);
        (state::tag(s) == state::OPEN)
            .then(|| micros(self.inner.head.time.until(state::deadline(s)).unwrap_or(0)))
    }

    /// A snapshot of the circuit's counters.
    pub fn metrics(&self) -> Metrics {
        let inner = &*self.inner;
        let totals = inner
            .window
            .get()
            .map(|w| w.totals(inner.now_us()))
            .unwrap_or_default();
        let cold = inner.cold.get();
        Metrics {
            state: self.state(),
            failure_rate: totals.failure_rate(),
            slow_rate: totals.slow_rate(),
            calls_in_window: totals.calls,
            failures_in_window: totals.failures,
            slow_in_window: totals.slow,
            consecutive_failures: inner.consecutive.load(Ordering::Relaxed),
            rejected: cold.map_or(0, |c| c.rejected.sum()),
            times_opened: cold.map_or(0, |c| c.times_opened.load(Ordering::Relaxed)),
            retry_after: self.retry_after(),
        }
    }

    /// Opens the circuit until [`reset`](Self::reset), whatever the outcomes.
    pub fn force_open(&self) {
        self.inner.set(state::FORCED_OPEN, false, Reason::Operator);
    }

    /// Passes every call and records nothing, until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.inner.set(state::DISABLED, false, Reason::Operator);
    }

    /// Passes every call and records outcomes (visible in [`metrics`](Self::metrics)) but never
    /// trips, until [`reset`](Self::reset). For trying a new policy in production.
    pub fn metrics_only(&self) {
        self.inner.set(state::METRICS_ONLY, false, Reason::Operator);
    }

    /// Back to closed with an empty window and the backoff schedule restarted.
    pub fn reset(&self) {
        self.inner.set(state::CLOSED, true, Reason::Operator);
    }

    /// The config this circuit runs on.
    pub fn config(&self) -> &Config {
        &self.inner.policy().config
    }

    /// The provider this circuit guards (empty for a standalone circuit).
    pub fn provider(&self) -> &str {
        self.inner.head.provider
    }

    /// The tenant this circuit belongs to (empty for a standalone circuit).
    #[inline]
    pub fn tenant(&self) -> &str {
        self.inner.tenant.as_str()
    }

    /// Marks the circuit as used since the registry's last idle sweep.
    #[inline]
    pub(crate) fn touch(&self) {
        if !self.inner.used.load(Ordering::Relaxed) {
            self.inner.used.store(true, Ordering::Relaxed);
        }
    }

    /// Clears the used mark and says whether the registry holding this circuit may drop it:
    /// closed (an open, half-open or operator-set circuit holds information that must not be
    /// lost), unused since the previous sweep, and with no handle alive but the registry's own
    /// (its table's): no clone and no permit of [`Circuit::try_acquire`] (each holds a strong
    /// count). Permits the registry hands out hold their circuit by a hazard, which no count
    /// shows: one taken before the previous sweep does not keep its circuit stored (its memory
    /// stays valid; see `Registry::evict_idle`). Rejections hold nothing (they copy the names).
    pub(crate) fn sweep_evictable(&self) -> bool {
        let was_used = self.inner.used.swap(false, Ordering::Relaxed);
        if was_used || state::tag(self.inner.state.load(Ordering::Acquire)) != state::CLOSED {
            return false;
        }
        self.inner.count() == 1
    }

    /// A hold on this circuit by a hazard that `guard`'s pin turns into, rather than by a
    /// reference count, for [`Permit::admit`].
    ///
    /// # Safety
    /// The circuit was found under `guard` in a registry's table (which retires what it unlinks
    /// to the epoch, so it is alive until the hazard is stored).
    #[inline(always)]
    pub(crate) unsafe fn pinned(&self, guard: Guard) -> Held {
        // SAFETY: the caller's contract.
        unsafe { self.inner.pinned(guard) }
    }

    /// A hold on this circuit by its reference count, for [`Permit::admit`].
    pub(crate) fn into_held(self) -> Held {
        self.inner.into_held()
    }

    /// The handle as a raw pointer carrying its strong count, for the registry's table.
    pub(crate) fn into_raw(self) -> *mut Raw {
        self.inner.into_raw()
    }

    /// Takes back a handle from [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    /// `p` came from `into_raw`, and its strong count is given back once (or the result is
    /// never dropped).
    #[inline]
    pub(crate) unsafe fn from_raw(p: *mut Raw) -> Circuit {
        Circuit {
            // SAFETY: the caller's contract.
            inner: unsafe { Shared::from_raw(p) },
        }
    }

    /// Brings the circuit onto its current policy after a retuning (see `Inner::retune`).
    pub(crate) fn retune(&self) {
        self.inner.retune();
    }

    /// A retuning of this circuit alone, as `Registry::configure` does it, for the loom models
    /// (`tests/loom.rs`), which cannot run a registry.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn __retune_for_loom(&self, config: Config) {
        let head = &self.inner.head;
        let new = Arc::new(Policy::new(
            config,
            head.time.clone(),
            head.provider,
            head.events.clone(),
        ));
        head.supersede(&new);
        self.inner.retune();
    }

    /// Whether both handles point at the same circuit.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{Circuit, Registry};
    ///
    /// let registry = Registry::default();
    /// let a = registry.circuit("openai", "acme");
    /// assert!(Circuit::ptr_eq(&a, &registry.circuit("openai", "acme")));
    /// assert!(!Circuit::ptr_eq(&a, &registry.circuit("openai", "globex")));
    /// ```
    pub fn ptr_eq(a: &Circuit, b: &Circuit) -> bool {
        Shared::ptr_eq(&a.inner, &b.inner)
    }
}

impl fmt::Debug for Circuit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Circuit")
            .field("provider", &self.provider())
            .field("tenant", &self.tenant())
            .field("state", &self.state())
            .finish()
    }
}

/// A snapshot of one circuit's counters, from [`Circuit::metrics`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// The state at the time of the snapshot (see [`Circuit::state`]).
    pub state: State,
    /// Failures / calls in the window (0 without a rate policy or before any call).
    pub failure_rate: f64,
    /// Slow calls / calls in the window.
    pub slow_rate: f64,
    /// Outcomes currently in the window (0 without a rate policy).
    pub calls_in_window: u32,
    /// Failures currently in the window.
    pub failures_in_window: u32,
    /// Slow calls currently in the window.
    pub slow_in_window: u32,
    /// Failures since the last success (0 without the consecutive policy).
    pub consecutive_failures: u32,
    /// Calls rejected since the circuit was created.
    pub rejected: u64,
    /// How many times the circuit has tripped open (forced opens excluded).
    pub times_opened: u32,
    /// Time left until a probe may pass, when open.
    pub retry_after: Option<Duration>,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn assert_send_sync_static<T: Send + Sync + 'static>() {}

    #[test]
    fn a_rejection_is_seven_words() {
        // `Result<Permit, CircuitOpen>` comes back from every admission: the timeout's kind sits
        // in the padding after the state, not in a word of its own.
        assert_eq!(std::mem::size_of::<CircuitOpen>(), 56);
    }

    #[test]
    fn a_circuit_is_72_bytes() {
        // Asserted because the registry's per-circuit budget depends on it (tests/memory.rs):
        // the state machine and its reference count, one allocation (an 80-byte chunk of
        // glibc's allocator; 88 bytes would take 96). Its `Cold` record is apart.
        assert_eq!(std::mem::size_of::<Inner>(), 64);
        assert_eq!(std::mem::size_of::<Counted<Inner>>(), 72);
    }

    #[test]
    fn handles_and_permits_are_send_sync_static() {
        assert_send_sync_static::<Circuit>();
        assert_send_sync_static::<Permit>();
    }

    #[test]
    fn stale_probe_never_touches_a_new_half_open_stay() {
        let clock = crate::ManualClock::new();
        let c = Circuit::with_clock(
            Config::builder()
                .consecutive_failures(1)
                .half_open_probes(2)
                .build()
                .unwrap(),
            clock.clone(),
        );
        c.try_acquire().unwrap().failure();
        clock.advance(Duration::from_secs(30));
        let stale = c.try_acquire().unwrap();
        c.try_acquire().unwrap().failure(); // reopens; `stale` belongs to the old stay
        clock.advance(Duration::from_secs(60));
        let fresh = c.try_acquire().unwrap();
        drop(stale); // counts as failure for a stay that is gone: no effect
        assert_eq!(c.state(), State::HalfOpen);
        let s = c.inner.state.load(Ordering::Acquire);
        assert_eq!(state::in_flight(s), 1);
        fresh.success();
        assert_eq!(c.state(), State::HalfOpen, "2 successes needed");
    }
}

/// loom model of a standalone circuit's permit (`RUSTFLAGS="--cfg loom" cargo test -p
/// breaker-core --lib --release circuit`): the handle count and its fence are loom's under
/// loom, so the model sees the order they give between a permit's hazard and the scan that
/// decides to free the circuit.
#[cfg(all(test, loom))]
mod loom_models {
    use loom::thread;

    use super::*;
    use crate::table::epoch;
    use crate::table::epoch::loom_models::model;

    /// A permit of `try_acquire` outlives its circuit's last handle, dropped on another thread
    /// that then collects as hard as it can; the permit is recorded on a third thread: its
    /// hazard keeps the circuit until then.
    #[test]
    fn a_permit_outlives_the_last_handle_dropped_on_another_thread() {
        model(|| {
            let c = Circuit::new(Config::default());
            let c2 = c.clone();
            let holder = thread::spawn(move || {
                let permit = c2.try_acquire().unwrap();
                drop(c2);
                // A step between the drop and the permit's use, where the other thread's free
                // may fall.
                thread::spawn(move || permit.success()).join().unwrap();
            });
            drop(c);
            epoch::collect_now();
            holder.join().unwrap();
        });
    }
}
