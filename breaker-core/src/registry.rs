//! The registry: circuits keyed by (provider, tenant), created on first use.
//!
//! Two levels of lock-free maps: provider name → provider entry, then tenant → circuit. A lookup
//! of an existing circuit hashes two `&str`s and allocates nothing; only the first call of a new
//! (provider, tenant) allocates.
//!
//! At tenant scale the registry must not grow without bound. With an idle time to live (one hour
//! unless set, [`Registry::DEFAULT_IDLE_TTL`]), circuits that stayed unused for that long are
//! dropped by a sweep that runs, at most once per TTL, when a new circuit is created (the only
//! moment the registry grows), or whenever [`Registry::evict_idle`] is called. Only closed
//! circuits that nobody holds are dropped: an open, half-open or operator-set circuit carries
//! information that must outlive idleness. Sweeps also drop provider entries left without
//! circuits. With a cap, see [`RegistryBuilder::max_circuits`].
//!
//! [`RegistryBuilder::max_circuits`]: crate::RegistryBuilder::max_circuits

mod acquire;
pub(crate) mod builder;
pub(crate) mod cache;
mod capacity;
mod providers;
mod wide;

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::circuit::{Circuit, Metrics, Policy};
use crate::clock::Timebase;
use crate::config::Config;
use crate::event::Listeners;
use crate::fleet::Hub;
use crate::provider::Provider;
use crate::state::State;
use crate::table::epoch;

/// The tenant of circuits that are keyed by provider only.
pub const DEFAULT_TENANT: &str = "default";

/// Circuits keyed by (provider, tenant). Tenants are isolated: one tenant's failures never change
/// another tenant's circuit, and the same tenant on two providers has two circuits.
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::{Config, Registry, State};
///
/// let registry = Registry::builder()
///     .default_config(Config::builder().consecutive_failures(1).build()?)
///     .build();
/// registry.circuit("openai", "acme").try_acquire()?.failure();
///
/// assert_eq!(registry.circuit("openai", "acme").state(), State::Open);
/// assert_eq!(registry.circuit("openai", "globex").state(), State::Closed);
/// assert_eq!(registry.circuit("anthropic", "acme").state(), State::Closed);
/// assert_eq!(registry.len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Registry {
    /// Unique per registry for the life of the process (addresses can be reused).
    id: u64,
    providers: papaya::HashMap<&'static str, Arc<Provider>, NameHasher>,
    default: Config,
    time: Arc<Timebase>,
    idle_ttl_us: Option<u64>,
    max_circuits: Option<usize>,
    /// Stored circuits, plus creations under way that have reserved their place: incremented
    /// before a circuit is stored, decremented after one is unlinked, so it never reads less
    /// than what the tables hold and `max_circuits` bounds both.
    count: AtomicUsize,
    /// Clock reading (µs) of the last idle sweep.
    last_sweep_us: AtomicU64,
    /// Circuits created detached (not stored) since the last sweep for space.
    detached_since_sweep: AtomicU64,
    /// Given to every policy, so each circuit finds its listeners without knowing the registry.
    events: Option<Arc<Listeners>>,
    /// With a fleet attached: where its link finds circuits, told of every circuit created.
    fleet: Option<Arc<Hub>>,
    /// Made by [`Registry::global`] because none was installed: it warns when a registry with a
    /// fleet exists beside it (see `builder::warn_if_a_fleet_is_unused`).
    made_by_global: bool,
}

/// Tenant ids are short strings; a fast seeded hash keeps a lookup's hashing to a few
/// nanoseconds while still randomising the table layout per registry.
type NameHasher = foldhash::fast::RandomState;

impl Registry {
    /// How long a closed circuit may stay unused before a registry built without
    /// [`idle_ttl`](crate::RegistryBuilder::idle_ttl) drops it: one hour.
    ///
    /// Tenant names usually come from requests (a header, a token), so a registry that kept
    /// every circuit would grow with every name anyone sends. An hour keeps a tenant that calls
    /// even rarely (a circuit lives one to two TTLs after its last call), costs one sweep of the
    /// registry per hour, run by a call that creates a circuit, and forgets little: open,
    /// half-open and operator-set circuits, and those a caller holds, are never dropped; a
    /// closed one nobody called for an hour loses only its counts, and comes back closed.
    pub const DEFAULT_IDLE_TTL: Duration = Duration::from_secs(3600);

    /// Sets the config of `provider`'s circuits: circuits created afterwards, and the
    /// provider's existing circuits from their next call on. It wins over a call site's
    /// attribute arguments (circuits made with them switch to it too), so operations can retune
    /// a provider without recompiling, hot tenants included.
    ///
    /// An existing circuit keeps its state: a running open period keeps its deadline, and the
    /// backoff level, the failure streak and the probes in flight are kept. Thresholds,
    /// durations, probe counts and the slow-call policy of the new config apply from the next
    /// decision on: a circuit at backoff level 2 that re-trips after a retuning to
    /// `open_for(5s)` opens for 5 s × 2² (not for its old `open_for` × 2²). A window whose kind
    /// or size changes restarts empty (a failure-rate window of 100 calls retuned to 50 calls
    /// starts counting again); one that stays the same keeps its outcomes. Retuning to an equal
    /// config does nothing.
    ///
    /// It visits every circuit of the provider once (under the provider's lock, which a new
    /// tenant's first call of that provider waits for); calls on existing circuits never wait.
    /// A circuit the registry no longer holds (made detached at [`max_circuits`], removed, or
    /// evicted while a caller kept its handle) is not visited: it takes the new thresholds from
    /// its next decision too, but its window and its slow-call timing at its next failure
    /// (successes before that count in its old window, if it had one, and its calls are timed
    /// for a new slow-call policy only from then).
    ///
    /// [`max_circuits`]: crate::RegistryBuilder::max_circuits
    /// The provider keeps only the last config; each config a retuning replaced (a few hundred
    /// bytes) stays alive only while a circuit made before that retuning lives (the circuit
    /// reads its config through it), and so does a window replaced in that circuit.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use breaker_core as breaker;
    /// use breaker::{Config, ManualClock, Registry, State};
    ///
    /// let registry = Registry::builder().clock(ManualClock::new()).build();
    /// registry.configure("openai", Config::builder().consecutive_failures(5).build()?);
    /// let circuit = registry.circuit("openai", "acme");
    /// circuit.try_acquire()?.failure();
    ///
    /// // 3 a.m.: trip sooner, including the tenants already running.
    /// registry.configure("openai", Config::builder().consecutive_failures(2).build()?);
    /// circuit.try_acquire()?.failure(); // the streak of 1 was kept: 2 now
    /// assert_eq!(circuit.state(), State::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn configure(&self, provider: &str, config: Config) {
        let p = loop {
            let p = self.provider(provider);
            // A configured provider is kept even without circuits; one that an idle sweep closed
            // meanwhile is about to go, so the config goes to its successor.
            if p.circuits.hold_open() {
                break p;
            }
        };
        p.configure(config, |config| self.policy(config, p.name));
    }

    /// [`configure`](Self::configure)s every provider of `configs`, for example a map read from
    /// a config file (with the `serde` feature, `Config` deserializes; see the README's TOML
    /// example), existing circuits included. Providers the map does not name keep their config;
    /// providers whose config did not change are left alone, so reloading a file on every change
    /// retunes only what changed.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use std::collections::BTreeMap;
    /// use breaker::{Config, Registry};
    ///
    /// let mut configs = BTreeMap::new();
    /// configs.insert("openai", Config::builder().consecutive_failures(3).build()?);
    /// configs.insert("anthropic", Config::builder().consecutive_failures(10).build()?);
    ///
    /// let registry = Registry::default();
    /// registry.configure_from(configs);
    /// assert_eq!(registry.circuit("openai", "acme").config().consecutive_failures(), Some(3));
    /// # Ok::<(), breaker::ConfigError>(())
    /// ```
    pub fn configure_from<K: AsRef<str>>(&self, configs: impl IntoIterator<Item = (K, Config)>) {
        for (provider, config) in configs {
            self.configure(provider.as_ref(), config);
        }
    }

    /// The config set for `provider` with [`configure`](Self::configure), if any.
    pub fn configured(&self, provider: &str) -> Option<Config> {
        let providers = self.pin_providers();
        providers.get(provider)?.configured()
    }

    /// The circuit of (`provider`, `tenant`), created on first use. Allocates nothing when it
    /// exists.
    ///
    /// A new circuit takes the provider's [`configure`](Self::configure)d config; failing that,
    /// the config of the provider's first `#[circuit_breaker]` call site that has run; failing
    /// that, the registry's default.
    ///
    /// A [`Circuit`] is a handle (one pointer; clones share the circuit): keep it, clone it, or
    /// compare two with [`Circuit::ptr_eq`]. A handle kept after the registry let the circuit
    /// go (removed, or evicted while idle: a handle keeps a circuit from idle eviction) still
    /// works, on a circuit the registry no longer hands out.
    pub fn circuit(&self, provider: &str, tenant: &str) -> Circuit {
        self.circuit_in(&self.provider(provider), tenant, None)
    }

    /// The circuit of (`provider`, `tenant`) if it exists. A look, not a use: it does not keep
    /// the circuit from being evicted as idle.
    pub fn get(&self, provider: &str, tenant: &str) -> Option<Circuit> {
        let providers = self.pin_providers();
        let p = providers.get(provider)?;
        let guard = p.circuits.guard();
        p.circuits.get(tenant, &guard).map(|c| Circuit::clone(&c))
    }

    /// Removes a circuit; handles and permits already out keep working on the removed one.
    pub fn remove(&self, provider: &str, tenant: &str) -> bool {
        let providers = self.pin_providers();
        let removed = match providers.get(provider) {
            Some(p) if p.circuits.remove(tenant) => {
                self.count.fetch_sub(1, Ordering::Relaxed);
                true
            }
            _ => false,
        };
        drop(providers);
        epoch::collect();
        removed
    }

    /// Number of circuits: one read, whatever the number of providers. While circuits are being
    /// created or removed on other threads it may count one whose creation is under way.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether the registry holds no circuit.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every circuit with its state and metrics, for admin tooling; a provider's provider-wide
    /// circuit is listed under the tenant [`PROVIDER_WIDE_TENANT`](crate::PROVIDER_WIDE_TENANT).
    pub fn snapshot(&self) -> Vec<CircuitSnapshot> {
        self.snapshot_filtered(None, None)
    }

    /// The circuits of [`snapshot`](Self::snapshot) of `provider` only (when given) and in
    /// `state` only (when given), as an admin endpoint lists them: "which tenants of openai are
    /// open right now". A provider filter visits that provider's circuits only.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{Config, Registry, State};
    ///
    /// let registry = Registry::builder()
    ///     .default_config(Config::builder().consecutive_failures(1).build()?)
    ///     .build();
    /// registry.circuit("openai", "acme").try_acquire()?.failure();
    /// registry.circuit("openai", "globex").try_acquire()?.success();
    /// registry.circuit("anthropic", "acme").try_acquire()?.failure();
    ///
    /// let open = registry.snapshot_filtered(Some("openai"), Some(State::Open));
    /// assert_eq!(open.len(), 1);
    /// assert_eq!((open[0].provider.as_str(), open[0].tenant.as_str()), ("openai", "acme"));
    /// assert_eq!(registry.snapshot_filtered(None, Some(State::Open)).len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot_filtered(
        &self,
        provider: Option<&str>,
        state: Option<State>,
    ) -> Vec<CircuitSnapshot> {
        let mut out = Vec::new();
        let mut visit = |c: &Circuit| {
            let metrics = c.metrics();
            if state.is_none_or(|s| s == metrics.state) {
                out.push(CircuitSnapshot {
                    provider: c.provider().to_owned(),
                    tenant: c.tenant().to_owned(),
                    state: metrics.state,
                    metrics,
                })
            }
        };
        // Provider-wide circuits are listed too, as tenant `PROVIDER_WIDE_TENANT`.
        let providers = self.pin_providers();
        match provider {
            None => {
                for p in providers.values() {
                    p.for_each_with_wide(&mut visit);
                }
            }
            Some(name) => {
                if let Some(p) = providers.get(name) {
                    p.for_each_with_wide(&mut visit);
                }
            }
        }
        out
    }

    /// Calls `f` with every circuit. Circuits created or removed meanwhile may or may not be seen.
    pub fn for_each(&self, mut f: impl FnMut(&Circuit)) {
        let providers = self.pin_providers();
        for p in providers.values() {
            p.circuits.for_each(&mut f);
        }
    }

    /// Drops every closed circuit that has not been used since the previous sweep and of which
    /// no caller holds a handle; returns how many were dropped. A permit taken before the
    /// previous sweep and still out (a call running longer than the TTL) does not keep its
    /// circuit: its outcome goes to the dropped circuit, whose memory is freed only after the
    /// permit is gone (that circuit alone: a permit held forever keeps nothing else).
    ///
    /// Runs by itself when circuits are created and an idle TTL is set; call it from a periodic
    /// task to shrink a registry that stopped growing.
    pub fn evict_idle(&self) -> usize {
        let evicted = self.sweep();
        epoch::collect_now();
        evicted
    }

    /// A new policy of this registry for `provider`'s circuits (its clock and listeners) with
    /// `config`.
    fn policy(&self, config: Config, provider: &'static str) -> Arc<Policy> {
        Arc::new(Policy::new(
            config,
            self.time.clone(),
            provider,
            self.events.clone(),
        ))
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("circuits", &self.len())
            .finish_non_exhaustive()
    }
}

/// One circuit as seen by [`Registry::snapshot`]. With the `serde` feature it serializes as
/// `{"provider", "tenant", "state", "metrics": {.., "retry_after_ms"}}` for an admin endpoint.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CircuitSnapshot {
    /// The provider.
    pub provider: String,
    /// The tenant.
    pub tenant: String,
    /// Its state.
    pub state: State,
    /// Its counters.
    pub metrics: Metrics,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::LazyLock;

    use super::*;
    use crate::ManualClock;

    /// A registry that sweeps only when a test calls `evict_idle`: its clock never moves.
    pub(super) fn swept_by_hand() -> Registry {
        Registry::builder()
            .clock(ManualClock::new())
            .idle_ttl(Duration::from_secs(60))
            .build()
    }

    /// How many provider entries `r` holds.
    pub(super) fn providers(r: &Registry) -> usize {
        r.providers.len()
    }

    /// Regression: every `configure` kept its policy for the registry's whole life (the
    /// provider's default headed a chain through all of them, and configured entries are held
    /// open); now one lives only as long as the provider's head or a circuit made before it.
    #[test]
    fn retunings_kept_every_policy_for_the_registrys_life() {
        fn head(r: &Registry) -> std::sync::Weak<Policy> {
            head_of(r, "p")
        }
        fn head_of(r: &Registry, provider: &str) -> std::sync::Weak<Policy> {
            r.pin_providers().get(provider).unwrap().head()
        }
        let consecutive = |n| Config::builder().consecutive_failures(n).build().unwrap();
        let r = Registry::builder().clock(ManualClock::new()).build();
        // With no circuit made from them, replaced policies go at once.
        r.configure("p", consecutive(1));
        let first = head(&r);
        r.configure("p", consecutive(2));
        assert!(
            first.upgrade().is_none(),
            "the registry let the first config go"
        );
        // A circuit made before a retuning keeps the policy it was made from (and, through it,
        // the later ones), and runs on the last.
        let second = head(&r);
        let c = r.circuit("p", "t");
        for n in 3..=100 {
            r.configure("p", consecutive(n));
        }
        assert!(
            second.upgrade().is_some(),
            "held by the circuit made from it"
        );
        assert_eq!(c.config().consecutive_failures(), Some(100));
        let last = head(&r);
        assert!(last.upgrade().is_some(), "the provider's head stays");
        // Sites' policies and the default are let go by the first retuning too.
        static SITE: LazyLock<Config> =
            LazyLock::new(|| Config::builder().consecutive_failures(4).build().unwrap());
        let site = r.circuit("q", "by-name");
        let default = head_of(&r, "q");
        r.acquire("q", "t", Some(&*SITE)).unwrap().success();
        r.configure("q", consecutive(9));
        assert_eq!(site.config().consecutive_failures(), Some(9));
        assert!(default.upgrade().is_some(), "held by `site`");
        assert!(
            r.pin_providers().get("q").unwrap().has_no_sites(),
            "the sites' policies are let go"
        );
    }
}
