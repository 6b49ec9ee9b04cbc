//! One circuit: the lock-free state machine, its permits and its metrics.

use std::fmt;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use crate::backoff::{jittered_period, MAX_LEVEL};
use crate::classify::Outcome;
use crate::clock::{Clock, SystemClock, Timebase};
use crate::config::Config;
use crate::error::CircuitOpen;
use crate::event::{Event, Listeners, Reason};
use crate::name::Name;
use crate::state::{self, State};
use crate::sync::{
    AtomicBool, AtomicPtr, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use crate::window::{Recorder, Totals, WindowSlot};

/// A validated config with the clock its circuits read. Shared by every circuit built from it, so
/// a circuit carries one pointer for both.
///
/// Retuning (`Registry::configure`) never changes a policy: it links a new one after it
/// ([`supersede`](Self::supersede)), and circuits read the config of the last policy of their
/// chain ([`current`](Self::current)). A circuit keeps the head of its chain, which keeps every
/// later policy alive, so a `&Config` read from any of them stays valid as long as the circuit.
/// The registry holds only a provider's last policy (its chain's tail), so a policy that a
/// retuning replaced costs its few hundred bytes only while a circuit made before that retuning
/// lives.
#[derive(Debug)]
pub(crate) struct Policy {
    pub(crate) config: Config,
    pub(crate) time: Arc<Timebase>,
    /// The provider of every circuit on this policy: kept here, once, rather than per circuit.
    pub(crate) provider: &'static str,
    /// The registry's listeners; `None` for standalone circuits and registries without any, so
    /// the cold paths that raise events test one `Option` and build nothing.
    pub(crate) events: Option<Arc<Listeners>>,
    slow_us: Option<u64>,
    consecutive: u32,
    probe_timeout_us: u64,
    /// The policy that replaced this one, if any.
    next: std::sync::OnceLock<Arc<Policy>>,
    /// A later policy of the chain (the last one when it was linked), or null: a shortcut so
    /// that reaching the current policy does not walk every retuning since this one. Only ever
    /// points at a policy reachable from this one through `next`.
    latest: AtomicPtr<Policy>,
}

impl Policy {
    pub(crate) fn new(
        config: Config,
        time: Arc<Timebase>,
        provider: &'static str,
        events: Option<Arc<Listeners>>,
    ) -> Self {
        let slow_us = config
            .slow_call
            .map(|(d, _)| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let consecutive = config.consecutive_failures.unwrap_or(0);
        let probe_timeout_us = u64::try_from(config.probe_timeout.as_micros()).unwrap_or(u64::MAX);
        Policy {
            config,
            time,
            provider,
            events,
            slow_us,
            consecutive,
            probe_timeout_us,
            next: std::sync::OnceLock::new(),
            latest: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The policy circuits made from this one run on now: this one unless it was superseded.
    #[inline]
    pub(crate) fn current(&self) -> &Policy {
        if self.next.get().is_none() {
            return self;
        }
        self.current_slow()
    }

    #[cold]
    #[inline(never)]
    fn current_slow(&self) -> &Policy {
        let latest = self.latest.load(Ordering::Acquire);
        // SAFETY: `latest` is null or points at a policy reachable from `self` through `next`
        // (stored only after that link was made), and links are never undone: `self` keeps it
        // alive as long as `&self` lives.
        let mut p = unsafe { latest.as_ref() }.unwrap_or(self);
        let start: *const Policy = p;
        while let Some(next) = p.next.get() {
            p = next;
        }
        if !std::ptr::eq(start, p) {
            // The registry links a retuning at the tail only (it no longer holds the chain's
            // earlier policies to update their shortcut): the first decision after it updates
            // this one, so later ones take one step again. Reachable from `self`, as required.
            self.latest
                .store(std::ptr::from_ref(p).cast_mut(), Ordering::Release);
        }
        p
    }

    /// Links `new` at the end of this policy's chain (unless it is there already), so that
    /// circuits made from any policy of the chain run on `new` from their next decision. The
    /// caller serializes retunings of one chain (the registry holds its provider's lock).
    pub(crate) fn supersede(&self, new: &Arc<Policy>) {
        let mut tail: &Policy = self;
        loop {
            if std::ptr::eq(tail, &**new) {
                break;
            }
            match tail.next.get() {
                Some(next) => tail = next,
                None => match tail.next.set(new.clone()) {
                    Ok(()) => break,
                    // Linked meanwhile by someone else: go on from there.
                    Err(_) => continue,
                },
            }
        }
        let target = Arc::as_ptr(new).cast_mut();
        let mut p: &Policy = self;
        while !std::ptr::eq(p, &**new) {
            p.latest.store(target, Ordering::Release);
            match p.next.get() {
                Some(next) => p = next,
                None => break,
            }
        }
    }

    /// Whether this policy was superseded.
    pub(crate) fn current_is_newer(&self) -> bool {
        self.next.get().is_some()
    }

    /// The window a circuit on this policy keeps, if any.
    fn window_spec(&self) -> Option<crate::config::Window> {
        self.config.has_window().then_some(self.config.window)
    }
}

impl Drop for Policy {
    /// Unlinks the chain one policy at a time: a long chain dropped recursively could overflow
    /// the stack.
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(policy) = next {
            next = match Arc::try_unwrap(policy) {
                Ok(mut policy) => policy.next.take(),
                Err(_) => None,
            };
        }
    }
}

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
    inner: Shared,
}

/// `repr(C)` to keep what a lookup and a call read (the tenant name that the registry compares,
/// the state word, the fast-path flags, the failure streak) in the first 64 bytes of the
/// allocation (the reference count is last), so a lookup of a cold circuit misses once.
#[repr(C)]
pub(crate) struct Inner {
    tenant: Name,
    state: AtomicU64,
    consecutive: AtomicU32,
    /// Set by every registry lookup, cleared by the registry's idle sweep: a circuit found
    /// clear at a sweep has not been used since the previous one. Written only when it changes,
    /// so a hot circuit's lookups stay read-only.
    used: AtomicBool,
    /// The fast-path flags [`TIMED`] and [`PLAIN`], copied out of the policy so the hot path
    /// does not follow that pointer; atomic only because a retuning rewrites them (a relaxed
    /// load is the same plain load). One byte for both, so `half_stays` fits beside it.
    flags: AtomicU8,
    /// Numbers half-open words (16 bits in the word): bumped for every half-open word published,
    /// the first of a stay and each renewal by a probe expiry alike, so an old number comes back
    /// only after 2^16 of them, each an open period or a probe timeout.
    half_stays: AtomicU16,
    times_opened: AtomicU32,
    /// Numbers the closed-kind stays permits can be issued in, so a permit from an old stay never
    /// matches a new one once the 8-bit gen wraps (see `state`). Written only on transitions.
    stays: AtomicU32,
    rejected: AtomicU64,
    /// When the latest half-open probe was admitted (µs on the circuit's clock, low 48 bits) and
    /// the generation of the half-open word it was admitted under (high 8 bits), so that a stamp
    /// of another stay is never taken for this one's. Read only when a call finds every probe
    /// slot taken (`expire_probes`), written only when a probe is admitted.
    probe_stamp: AtomicU64,
    /// The head of the circuit's policy chain: its clock, provider and listeners, which every
    /// policy of a chain shares. Decisions read the config of [`policy`](Self::policy).
    head: Arc<Policy>,
    window: WindowSlot,
    /// Handles of this circuit ([`Shared`]): clones, a registry table's, the permits of a
    /// circuit the registry could not store. Last, out of the line a lookup reads. Besides
    /// keeping the circuit alive, its release orders a [`try_acquire`](Circuit::try_acquire)
    /// permit's hazard (stored while a handle kept the circuit alive) before the scan of the
    /// slots that decides to free it; so it is one of loom's atomics under loom, where the
    /// models check that.
    strong: AtomicUsize,
    /// Under loom, a freed circuit is marked and leaked instead of freed, and every access
    /// through a handle, a permit or a table checks the mark (see [`crate::sync::Liveness`]): a
    /// use after free, or a free not ordered after every use, fails the model there rather
    /// than going unseen.
    #[cfg(loom)]
    freed: crate::sync::Liveness,
}

impl Inner {
    /// Under loom, fails if the epoch freed this circuit (see `freed`).
    #[inline(always)]
    pub(crate) fn assert_alive(&self) {
        #[cfg(loom)]
        self.freed.check("a circuit");
    }
}

/// A counted reference to a circuit: an `Arc` whose last release does not free at once but
/// hands the circuit to the epoch (`epoch.rs`), which frees it when no permit's hazard is on
/// it. That is what lets permits hold a circuit with a hazard (thread-local stores) instead of
/// a count. One word less than an `Arc`'s header, too (no weak count).
struct Shared {
    ptr: NonNull<Inner>,
}

// SAFETY: a shared reference to `Inner` (`Send + Sync`, asserted below) with a thread-safe
// count, like `Arc<Inner>`.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    fn new(inner: Inner) -> Shared {
        Shared {
            ptr: NonNull::from(Box::leak(Box::new(inner))),
        }
    }

    fn into_raw(self) -> *mut Inner {
        ManuallyDrop::new(self).ptr.as_ptr()
    }

    /// # Safety
    /// `p` came from [`into_raw`](Self::into_raw), whose count the result takes over.
    #[inline]
    unsafe fn from_raw(p: *mut Inner) -> Shared {
        Shared {
            // SAFETY: `into_raw` never returns null.
            ptr: unsafe { NonNull::new_unchecked(p) },
        }
    }

    fn count(&self) -> usize {
        self.strong.load(Ordering::Acquire)
    }
}

impl std::ops::Deref for Shared {
    type Target = Inner;
    #[inline(always)]
    fn deref(&self) -> &Inner {
        // SAFETY: alive while this count is.
        let inner = unsafe { self.ptr.as_ref() };
        inner.assert_alive();
        inner
    }
}

impl Clone for Shared {
    fn clone(&self) -> Shared {
        // Relaxed, as `Arc`: a new count comes from an existing one, which keeps it alive.
        let old = self.strong.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            // Only reachable by leaking counts (`mem::forget` in a loop), as `Arc` guards.
            std::process::abort();
        }
        Shared { ptr: self.ptr }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.strong.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Acquire: every use through another count happens before the free, as in `Arc`, and so
        // does every hazard stored while another count kept the circuit alive.
        crate::sync::fence(Ordering::Acquire);
        // SAFETY: the last count is gone, so no table holds it (a table holds a count while the
        // circuit is linked) and no pin can reach it; permits' hazards, taken while a count kept
        // it alive, are ordered before this by the counts' release.
        unsafe { crate::table::epoch::retire_unreachable(self.ptr.as_ptr(), free_inner) };
        crate::table::epoch::collect();
    }
}

/// # Safety
/// `p` is the `Box` of a [`Shared`] whose last count is gone and that no hazard protects.
unsafe fn free_inner(p: *mut Inner) {
    #[cfg(loom)]
    {
        // SAFETY: marked, not freed (see `Inner::freed`).
        let inner = unsafe { &*p };
        inner.freed.free("a circuit");
        return;
    }
    // SAFETY: the caller's contract.
    #[allow(unreachable_code)]
    drop(unsafe { Box::from_raw(p) });
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
        let window = current.window_spec();
        let timed = current.slow_us.is_some();
        Circuit {
            inner: Shared::new(Inner {
                state: AtomicU64::new(state::next(u64::MAX, state::CLOSED)),
                consecutive: AtomicU32::new(0),
                times_opened: AtomicU32::new(0),
                rejected: AtomicU64::new(0),
                probe_stamp: AtomicU64::new(0),
                stays: AtomicU32::new(0),
                used: AtomicBool::new(true),
                flags: AtomicU8::new(flags(timed, window.is_some())),
                half_stays: AtomicU16::new(0),
                head: policy,
                window: WindowSlot::new(window),
                tenant: Name::new(tenant),
                strong: AtomicUsize::new(1),
                #[cfg(loom)]
                freed: crate::sync::Liveness::new(),
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
        let inner = self.inner.ptr;
        Ok(Permit {
            // The handle keeps the circuit alive until the hazard is stored.
            circuit: Held::protected(inner, crate::table::epoch::protect(inner)),
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
        Metrics {
            state: self.state(),
            failure_rate: totals.failure_rate(),
            slow_rate: totals.slow_rate(),
            calls_in_window: totals.calls,
            failures_in_window: totals.failures,
            slow_in_window: totals.slow,
            consecutive_failures: inner.consecutive.load(Ordering::Relaxed),
            rejected: inner.rejected.load(Ordering::Relaxed),
            times_opened: inner.times_opened.load(Ordering::Relaxed),
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
    pub(crate) unsafe fn pinned(&self, guard: crate::table::epoch::Guard) -> Held {
        let inner = self.inner.ptr;
        Held::protected(inner, guard.protect(inner))
    }

    /// A hold on this circuit by its reference count, for [`Permit::admit`].
    pub(crate) fn into_held(self) -> Held {
        Held::owned(self.inner)
    }

    /// The handle as a raw pointer carrying its strong count, for the registry's table.
    pub(crate) fn into_raw(self) -> *mut Inner {
        self.inner.into_raw()
    }

    /// Takes back a handle from [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    /// `p` came from `into_raw`, and its strong count is given back once (or the result is
    /// never dropped).
    #[inline]
    pub(crate) unsafe fn from_raw(p: *mut Inner) -> Circuit {
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

    /// Live handles of this circuit (the table's, clones, owned permits').
    #[cfg(all(test, not(loom)))]
    pub(crate) fn handles(&self) -> usize {
        self.inner.count()
    }

    /// See `Inner::adopt_open` (the fleet's way in; `fleet.rs`).
    pub(crate) fn adopt_open(&self, left_us: u64, level: u32) {
        self.inner.adopt_open(left_us, level);
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
        a.inner.ptr == b.inner.ptr
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

impl Inner {
    /// The ticket of an admitted call, or a rejection ticket ([`Ticket::is_rejection`]), which
    /// the caller turns into a [`CircuitOpen`] with [`reject`](Self::reject). Two words, so
    /// both the inlined fast path and `admit_from` hand it over in registers: a
    /// `Result<Ticket, CircuitOpen>` went through memory, and so did every permit built from it.
    #[inline(always)]
    fn admit(&self) -> Ticket {
        let s = self.state.load(Ordering::Acquire);
        if state::tag(s) == state::CLOSED && self.flags.load(Ordering::Relaxed) & TIMED == 0 {
            return Ticket {
                issued: s,
                started_us: 0,
            };
        }
        self.admit_from(s)
    }

    /// Everything but the closed, untimed fast path of [`admit`](Self::admit).
    #[inline(never)]
    fn admit_from(&self, mut s: u64) -> Ticket {
        loop {
            match state::tag(s) {
                state::CLOSED | state::METRICS_ONLY | state::DISABLED => return self.ticket(s),
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
        self.probe_stamp.store(stamp, Ordering::Release);
    }

    /// Called when a call finds every probe slot of the half-open word `s` taken: if the latest
    /// probe has been outstanding for the config's `probe_timeout`, every probe in flight (all
    /// of them started no later) is let go and counted as `on_abandoned`, in a new state word so
    /// that their own outcomes, whenever they come, are stale. Returns the state to look at
    /// again, or `None` when the probes still hold their slots.
    #[cold]
    #[inline(never)]
    fn expire_probes(&self, s: u64) -> Option<u64> {
        let stamp = self.probe_stamp.load(Ordering::Acquire);
        if stamp >> PROBE_GEN_SHIFT != state::gen(s) {
            // Only a stamp stored late for a CAS that failed can be of another stay: time this
            // stay's probes from now rather than not at all.
            let now = self.now_us();
            let fresh = (state::gen(s) << PROBE_GEN_SHIFT) | (now & state::DEADLINE_MAX);
            let _ = self.probe_stamp.compare_exchange(
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
    fn ticket(&self, s: u64) -> Ticket {
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
    fn reject(&self, ticket: Ticket) -> CircuitOpen {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let (state, retry_after_us) = ticket.rejected();
        if let Some(events) = &self.head.events {
            events.emit(&Event::Rejected {
                provider: self.head.provider,
                tenant: self.tenant.as_str(),
                state,
                retry_after: CircuitOpen::retry_after_of(retry_after_us),
            });
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

    /// The policy decisions are made on: the last of the circuit's chain.
    #[inline]
    fn policy(&self) -> &Policy {
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
        self.window.set(window);
        self.flags.store(
            flags(policy.slow_us.is_some(), window.is_some()),
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
    fn catch_up(&self, policy: &Policy) {
        let window = policy.window_spec();
        if self.window.spec() != window
            || self.flags.load(Ordering::Relaxed)
                != flags(policy.slow_us.is_some(), window.is_some())
            || (policy.consecutive == 0 && self.consecutive.load(Ordering::Relaxed) != 0)
        {
            self.retune();
        }
    }

    #[inline]
    fn now_us(&self) -> u64 {
        self.head.time.now_us()
    }

    #[inline]
    fn cas(&self, current: u64, new: u64) -> Result<(), u64> {
        self.state
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }

    fn clear_counts(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
        if let Some(w) = self.window.get() {
            w.clear();
        }
    }

    /// Clears the counts for the closed stay that the caller is about to publish in place of
    /// the half-open word `s`, unless `s` is gone already (then the caller's compare-and-swap
    /// would fail: it looks again). Cleared before the publishing CAS, so the new stay's first
    /// outcomes are not wiped by its own closer (nobody records into the window while
    /// half-open); the re-check keeps a closer that lost to another from wiping them: only one
    /// that read `s` a moment ago clears.
    fn clear_for_close(&self, s: u64) -> bool {
        if self.state.load(Ordering::Acquire) != s {
            return false;
        }
        self.clear_counts();
        true
    }

    /// An operator's transition (here or, with `Reason::Fleet`, on another replica): always
    /// wins, whatever the circuit was doing.
    fn set(&self, tag: u64, clear: bool, reason: Reason) {
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
    fn emit_transition(&self, from: u64, to: u64, reason: Reason, open_for: Option<Duration>) {
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

    /// Opens the circuit for `left_us` more at backoff `level`, as another replica's circuit did
    /// (see `fleet.rs`): a closed or half-open circuit opens (a probe in flight then belongs to a
    /// stay that is over), an open one takes the period if it is at a higher level or, at the
    /// same level, ends later; an operator's state wins.
    pub(crate) fn adopt_open(&self, left_us: u64, level: u32) {
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
                        self.times_opened.fetch_add(1, Ordering::Relaxed);
                        self.consecutive.store(0, Ordering::Relaxed);
                    }
                    return self.emit_transition(s, open, Reason::Fleet, Some(micros(left_us)));
                }
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

    /// A fresh stay number for a state word about to be published.
    #[inline]
    fn next_stay(&self) -> u32 {
        self.stays.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }

    /// A fresh number for a half-open word about to be published (see `half_stays`).
    fn next_half_stay(&self) -> u32 {
        u32::from(
            self.half_stays
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1),
        )
    }

    #[inline]
    fn record(&self, ticket: Ticket, outcome: Outcome) {
        if self.flags.load(Ordering::Relaxed) & PLAIN != 0
            && outcome == Outcome::Success
            && state::tag(ticket.issued) == state::CLOSED
            // A closed state word has no payload: the same word is the same stay.
            && self.state.load(Ordering::Acquire) == ticket.issued
            && self.consecutive.load(Ordering::Relaxed) == 0
        {
            // Nothing to count and nothing to reset: the common case reads two words and
            // returns, writing nothing.
            return;
        }
        self.record_from(ticket, outcome)
    }

    /// Everything but the fast path of [`record`](Self::record).
    #[inline(never)]
    fn record_from(&self, ticket: Ticket, outcome: Outcome) {
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
        let now = match (policy.slow_us, window) {
            (Some(_), _) => self.now_us(),
            (None, Some(w)) if w.is_timed() => self.now_us(),
            _ => 0,
        };
        // `started_us` is one more than the clock at admission, or 0 for a permit issued
        // untimed (see `ticket`).
        let elapsed = (now + 1).saturating_sub(started_us);
        let slow = started_us != 0 && policy.slow_us.is_some_and(|t| elapsed > t);
        match state::tag(episode) {
            state::CLOSED | state::METRICS_ONLY => {
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
            Outcome::RetryAfter(d) => (true, (!d.is_zero()).then(|| self.asked_period(d))),
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
            w.record(failure, slow, now);
            trip = trip.or_else(|| rates_exceeded(&policy.config, w.totals(now)));
        }
        if state::tag(s) != state::CLOSED {
            return;
        }
        if let Some(period) = asked {
            // The provider's time wins over any threshold and over the backoff schedule.
            self.trip_for(s, 0, period, Reason::RetryAfter(period));
        } else if let Some(reason) = trip {
            self.trip(s, 0, reason);
        }
    }

    /// The open period for a provider's `Retry-After` of `d`: exactly that, up to the cap.
    fn asked_period(&self, d: Duration) -> Duration {
        d.min(self.policy().config.max_open_for)
    }

    /// Moves `from` (closed or half-open) to open at backoff `level`. Only the CAS winner counts
    /// the trip and tells the listeners.
    fn trip(&self, from: u64, level: u32, reason: Reason) -> bool {
        let period = jittered_period(&self.policy().config, level);
        self.trip_for(from, level, period, reason)
    }

    /// [`trip`](Self::trip) for an open period of `period`. The deadline is kept in 48 bits of
    /// µs since the circuit's origin (8.9 years; `state::open` saturates there), and `period` is
    /// at most `max_open_for`, itself at most a year.
    fn trip_for(&self, from: u64, level: u32, period: Duration, reason: Reason) -> bool {
        let deadline = self.now_us().saturating_add(period.as_micros() as u64);
        let open = state::open(from, level, deadline);
        let ok = self.cas(from, open).is_ok();
        if ok {
            self.times_opened.fetch_add(1, Ordering::Relaxed);
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
                    let period = self.asked_period(d);
                    if self.trip_for(s, level, period, Reason::RetryAfter(period)) {
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
    fn abandon(&self, ticket: Ticket) {
        let outcome = self.policy().config.on_abandoned;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.record(ticket, outcome))) {
            crate::event::drop_payload(payload);
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
fn rates_exceeded(c: &Config, t: Totals) -> Option<Reason> {
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

/// [`Inner::flags`]: permits need their start time, slow calls are a policy.
const TIMED: u8 = 1;
/// [`Inner::flags`]: neither timed nor windowed; a success on a closed circuit with no failure
/// streak changes nothing, and the inlined fast path of `record` returns at once.
const PLAIN: u8 = 2;

fn flags(timed: bool, windowed: bool) -> u8 {
    if timed {
        TIMED
    } else if windowed {
        0
    } else {
        PLAIN
    }
}

/// Where a probe stamp keeps the generation of its half-open word (above the 48-bit time).
const PROBE_GEN_SHIFT: u32 = 56;

fn micros(us: u64) -> Duration {
    Duration::from_micros(us)
}

/// What a permit remembers of its admission: the state it was issued under and, when slow calls
/// are a policy, when.
#[derive(Clone, Copy)]
struct Ticket {
    /// The state word the permit was issued under.
    issued: u64,
    started_us: u64,
}

impl Ticket {
    fn is_probe(self) -> bool {
        state::tag(self.issued) == state::HALF_OPEN
    }

    /// A call turned away in the state of tag `tag` (`OPEN`, `HALF_OPEN` or `FORCED_OPEN`),
    /// `retry_after_us` (or `CircuitOpen::UNKNOWN`) before a probe may pass. Never a permit's.
    #[inline]
    fn rejection(tag: u64, retry_after_us: u64) -> Ticket {
        Ticket {
            issued: (state::REJECTED << state::TAG_SHIFT) | tag,
            started_us: retry_after_us,
        }
    }

    #[inline]
    fn is_rejection(self) -> bool {
        state::tag(self.issued) == state::REJECTED
    }

    /// The state and retry-after of a [`rejection`](Self::rejection).
    fn rejected(self) -> (State, u64) {
        (State::from_tag(self.issued & 0b111), self.started_us)
    }
}

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
    circuit: Held,
    ticket: Ticket,
}

permit_impl!(Permit);

impl Permit {
    /// A permit for the circuit `circuit` holds, or its rejection (the hold is let go either
    /// way: the rejection copies what it needs). Inlined whole: the fast path hands the permit
    /// over in registers.
    #[inline(always)]
    pub(crate) fn admit(circuit: Held) -> Result<Permit, CircuitOpen> {
        let ticket = circuit.admit();
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
}

/// How a [`Permit`] keeps its circuit alive: a hazard (`epoch.rs`: a slot the acquiring thread
/// owns holds the circuit's address; a registry's lookup pin turns into it, or a handle's
/// [`try_acquire`](Circuit::try_acquire) stores it), which costs plain stores instead of two
/// read-modify-writes on the circuit's cache line and keeps this one circuit alive and nothing
/// else; or a strong count (a circuit the registry made but could not store, under its cap).
/// Two words, so a permit is four.
pub(crate) struct Held {
    inner: NonNull<Inner>,
    /// `None` when `inner` carries a strong count.
    hazard: Option<crate::table::epoch::Hazard>,
}

impl Held {
    #[inline(always)]
    fn protected(inner: NonNull<Inner>, hazard: crate::table::epoch::Hazard) -> Held {
        Held {
            inner,
            hazard: Some(hazard),
        }
    }

    #[inline]
    fn owned(inner: Shared) -> Held {
        // SAFETY: `into_raw` is never null.
        let inner = unsafe { NonNull::new_unchecked(inner.into_raw()) };
        Held {
            inner,
            hazard: None,
        }
    }
}

impl std::ops::Deref for Held {
    type Target = Inner;
    #[inline(always)]
    fn deref(&self) -> &Inner {
        // SAFETY: kept alive by the hazard or the strong count this value owns.
        let inner = unsafe { self.inner.as_ref() };
        inner.assert_alive();
        inner
    }
}

impl Drop for Held {
    #[inline]
    fn drop(&mut self) {
        if self.hazard.is_none() {
            // SAFETY: the strong count this value owns, from `Shared::into_raw`.
            drop(unsafe { Shared::from_raw(self.inner.as_ptr()) });
        }
        // A hazard is released by its own drop, right after this.
    }
}

/// What the `unsafe impl`s below (and the table's retired circuits) rely on.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Inner>();
};

// SAFETY: `Held` is a shared reference to `Inner` (which is `Send + Sync`) kept alive by a strong
// count or a hazard, and both may be released from any thread.
unsafe impl Send for Held {}
// SAFETY: as above; `&Held` only gives `&Inner`.
unsafe impl Sync for Held {}

/// A [`Permit`] that borrows its circuit, from [`Circuit::try_acquire_scoped`]: the same
/// methods and the same drop rule, without a reference count.
#[must_use = "a permit records its outcome when consumed; dropping it counts as `on_abandoned`"]
pub struct ScopedPermit<'a> {
    circuit: &'a Inner,
    ticket: Ticket,
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
    fn a_circuit_is_88_bytes() {
        // Asserted because the registry's per-circuit budget depends on it (tests/memory.rs).
        assert_eq!(std::mem::size_of::<Inner>(), 88);
    }

    #[test]
    fn a_permit_is_four_words_and_a_ticket_two() {
        // Two words come back from `admit` in registers; a bigger ticket went through memory
        // on the hot path (see `admit`). The hold is the circuit and its hazard's slot.
        assert_eq!(std::mem::size_of::<Ticket>(), 16);
        assert_eq!(std::mem::size_of::<Held>(), 16);
        assert_eq!(std::mem::size_of::<Permit>(), 32);
        assert_eq!(std::mem::size_of::<Option<Permit>>(), 32);
    }

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
