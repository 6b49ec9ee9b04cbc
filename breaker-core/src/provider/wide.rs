//! A provider's provider-wide circuit: a real [`Circuit`] (under the reserved tenant
//! [`PROVIDER_WIDE_TENANT`]) above the tenant circuits of its provider, tripped by the pooled
//! outcomes of all of them ([`Pool`]) when the failures come from enough distinct tenants.
//!
//! The tenant circuits reach it through their policy's [`PoolHook`] (this file's [`WideCell`]),
//! the call path through the provider's pointer to it (`Provider::wide`).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use super::pool::{tenant_hash, Pool, Totals};
use super::settings::ProviderWide;
use crate::circuit::{Circuit, Policy, PoolHook};
use crate::classify::Outcome;
use crate::clock::Timebase;
use crate::config::Config;
use crate::event::{Reason, WideEvidence};
use crate::state;

/// The tenant name of every provider-wide circuit: in events, snapshots and a fleet's messages,
/// `(provider, "*")` is the provider-wide circuit of `provider`. The registry keeps it apart from
/// the tenant circuits (a tenant named `*` has its own circuit), but listeners and a fleet see
/// the same name, so do not name a tenant `*`.
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::{ProviderWide, Registry, PROVIDER_WIDE_TENANT};
///
/// let registry = Registry::builder().provider_wide("openai", ProviderWide::default()).build();
/// assert_eq!(registry.provider_circuit("openai").unwrap().tenant(), PROVIDER_WIDE_TENANT);
/// ```
pub const PROVIDER_WIDE_TENANT: &str = "*";

/// What every policy of a provider points at: its provider-wide circuit once configured, and
/// whether it is on. Lives as long as the provider or a circuit made by it.
pub(crate) struct WideCell {
    on: AtomicBool,
    pub(crate) wide: OnceLock<Wide>,
}

/// The provider-wide circuit and its pooled window.
pub(crate) struct Wide {
    pub(crate) circuit: Circuit,
    pub(crate) pool: Arc<Pool>,
    time: Arc<Timebase>,
    /// The thresholds, read by decisions (on failures) without a lock.
    rate_bits: AtomicU64,
    minimum_calls: AtomicU32,
    distinct_tenants: AtomicU32,
    /// The closed state word of the provider circuit the pool counts for: a new closed stay (a
    /// probe closed it, an operator reset it) starts from an empty pool.
    stay: AtomicU64,
    /// The settings in effect, for retunings and `Registry::provider_wide`.
    settings: Mutex<ProviderWide>,
}

impl WideCell {
    pub(crate) fn new() -> Self {
        WideCell {
            on: AtomicBool::new(false),
            wide: OnceLock::new(),
        }
    }

    /// The provider circuit, when on.
    pub(crate) fn on(&self) -> Option<&Wide> {
        if self.on.load(Ordering::SeqCst) {
            self.wide.get()
        } else {
            None
        }
    }

    /// Makes `settings` the provider's, creating the circuit with `make`'s policy on first use or
    /// retuning it (state kept), and turns pooling on. The caller serializes (the provider lock)
    /// and then brings its circuits' flags in line.
    pub(crate) fn configure(
        &self,
        settings: ProviderWide,
        time: &Arc<Timebase>,
        make: impl Fn(Config) -> Arc<Policy>,
    ) -> &Wide {
        let wide = match self.wide.get() {
            Some(wide) => {
                wide.retune(settings, make);
                wide
            }
            None => self.wide.get_or_init(|| {
                let circuit =
                    Circuit::from_policy(make(settings.circuit.clone()), PROVIDER_WIDE_TENANT);
                let pool = Arc::new(Pool::new(settings.window));
                Wide::new(circuit, pool, settings, time.clone())
            }),
        };
        self.on.store(true, Ordering::SeqCst);
        // The slow path of the next success checks the circuit's stay and resumes counting.
        wide.pool.pause();
        wide
    }

    /// Turns pooling off and empties the pool; the circuit keeps its state. Returns whether it
    /// was on.
    pub(crate) fn turn_off(&self) -> bool {
        let was = self.on.swap(false, Ordering::SeqCst);
        if let Some(wide) = self.wide.get() {
            wide.pool.clear();
        }
        was
    }
}

impl PoolHook for WideCell {
    fn is_on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }

    fn pool(&self) -> Option<Arc<Pool>> {
        self.wide.get().map(|w| w.pool.clone())
    }

    fn record(&self, tenant: &str, outcome: Outcome) -> bool {
        match self.on() {
            Some(wide) => wide.record(tenant, outcome),
            None => true,
        }
    }
}

impl fmt::Debug for WideCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WideCell")
            .field("on", &self.is_on())
            .finish_non_exhaustive()
    }
}

impl Wide {
    fn new(circuit: Circuit, pool: Arc<Pool>, settings: ProviderWide, time: Arc<Timebase>) -> Wide {
        let wide = Wide {
            circuit,
            pool,
            time,
            rate_bits: AtomicU64::new(0),
            minimum_calls: AtomicU32::new(0),
            distinct_tenants: AtomicU32::new(0),
            stay: AtomicU64::new(0),
            settings: Mutex::new(settings.clone()),
        };
        wide.store_thresholds(&settings);
        wide
    }

    fn store_thresholds(&self, settings: &ProviderWide) {
        self.rate_bits
            .store(settings.failure_rate.to_bits(), Ordering::Relaxed);
        self.minimum_calls
            .store(settings.minimum_calls, Ordering::Relaxed);
        self.distinct_tenants
            .store(settings.distinct_tenants, Ordering::Relaxed);
    }

    /// The settings in effect.
    pub(crate) fn settings(&self) -> ProviderWide {
        lock(&self.settings).clone()
    }

    /// Applies `settings`, keeping the circuit's state: its open-period settings from its next
    /// decision (as `Registry::configure` does), the thresholds from the next failure; a window
    /// whose kind or size changes restarts empty.
    fn retune(&self, settings: ProviderWide, make: impl Fn(Config) -> Arc<Policy>) {
        let mut current = lock(&self.settings);
        if *current == settings {
            return;
        }
        if current.circuit != settings.circuit {
            self.circuit.retune_to(&make(settings.circuit.clone()));
        }
        if current.window != settings.window {
            self.pool.set_window(settings.window);
            self.pool.clear();
        }
        self.store_thresholds(&settings);
        *current = settings;
    }

    /// What the pooled window holds now: while the provider circuit is out of its closed stay,
    /// the evidence of the stay that ended; once a new closed stay began (a probe or an operator
    /// closed it), nothing until its first pooled outcome clears the old counts.
    pub(crate) fn totals(&self) -> Totals {
        let s = self.circuit.state_word();
        if state::tag(s) == state::CLOSED && self.stay.load(Ordering::Relaxed) != s {
            return Totals::default();
        }
        self.pool.totals_at(self.time.coarse_now_us())
    }

    /// What the pooled window holds now, with the hashes of its distinct failing tenants (for a
    /// fleet's report); nothing of a stay the pool no longer counts for (the provider circuit
    /// moved since its last pooled outcome: the next one clears it).
    pub(crate) fn pooled(&self) -> (Totals, Vec<u32>) {
        if self.stay.load(Ordering::Relaxed) != self.circuit.state_word() {
            return (Totals::default(), Vec::new());
        }
        let now = self.time.coarse_now_us();
        (self.pool.totals_at(now), self.pool.failing_at(now))
    }

    /// Pools `outcome` of `tenant`, trips the provider circuit when the evidence is there, and
    /// says whether the tenant circuit records the outcome too (not while the provider circuit is
    /// open or half-open: the provider's outage is not the tenant's).
    #[inline(never)]
    fn record(&self, tenant: &str, outcome: Outcome) -> bool {
        let s = self.circuit.state_word();
        match state::tag(s) {
            state::CLOSED | state::METRICS_ONLY => {}
            state::DISABLED => return true,
            _ => {
                self.pool.pause();
                return false;
            }
        }
        if self.stay.load(Ordering::Relaxed) != s && self.stay.swap(s, Ordering::Relaxed) != s {
            self.pool.clear();
        }
        if self.pool.is_paused() {
            // Closed in the stay the pool counts for: the call path counts successes again.
            self.pool.resume();
        }
        let (failure, asked) = match outcome {
            Outcome::Ignored => return true,
            Outcome::Success => (false, None),
            Outcome::Failure => (true, None),
            Outcome::RetryAfter(d) => (true, (!d.is_zero()).then_some(d)),
        };
        if !failure {
            self.pool.count_success(self.time.coarse_now_us());
            return true;
        }
        let now = self.time.coarse_now_us();
        let t = self.pool.failure(tenant_hash(tenant), asked.is_some(), now);
        if state::tag(s) != state::CLOSED {
            // Metrics-only: counted, never tripped.
            return true;
        }
        let distinct = self.distinct_tenants.load(Ordering::Relaxed);
        if let Some(asked) = asked.filter(|_| t.waving_tenants >= distinct) {
            let applied = asked.min(self.circuit.config().max_open_for());
            let evidence = evidence(t, Some(applied));
            if self
                .circuit
                .open_from(s, Reason::ProviderWide(evidence), Some(asked))
            {
                self.pool.pause();
            }
            return true;
        }
        let rate = f64::from_bits(self.rate_bits.load(Ordering::Relaxed));
        if t.calls >= self.minimum_calls.load(Ordering::Relaxed)
            && t.failing_tenants >= distinct
            && f64::from(t.failures) >= rate * f64::from(t.calls)
            && self
                .circuit
                .open_from(s, Reason::ProviderWide(evidence(t, None)), None)
        {
            self.pool.pause();
        }
        true
    }
}

fn evidence(t: Totals, retry_after: Option<Duration>) -> WideEvidence {
    WideEvidence::new(t.calls, t.failures, t.failing_tenants, retry_after)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
