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

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::circuit::{Circuit, Held, Metrics, Permit, Policy};
use crate::clock::{Clock, SystemClock, Timebase};
use crate::config::Config;
use crate::error::CircuitOpen;
use crate::event::{Event, Listener, Listeners};
use crate::fleet::{sharer, Fleet, Hub};
use crate::name::intern;
use crate::provider::Provider;
use crate::state::State;
use crate::table::epoch::{self, Guard};
use crate::table::Found;

static GLOBAL: OnceLock<Registry> = OnceLock::new();

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
}

/// Tenant ids are short strings; a fast seeded hash keeps a lookup's hashing to a few
/// nanoseconds while still randomising the table layout per registry.
type NameHasher = foldhash::fast::RandomState;

impl Registry {
    /// How long a closed circuit may stay unused before a registry built without
    /// [`idle_ttl`](RegistryBuilder::idle_ttl) drops it: one hour.
    ///
    /// Tenant names usually come from requests (a header, a token), so a registry that kept
    /// every circuit would grow with every name anyone sends. An hour keeps a tenant that calls
    /// even rarely (a circuit lives one to two TTLs after its last call), costs one sweep of the
    /// registry per hour, run by a call that creates a circuit, and forgets little: open,
    /// half-open and operator-set circuits, and those a caller holds, are never dropped; a
    /// closed one nobody called for an hour loses only its counts, and comes back closed.
    pub const DEFAULT_IDLE_TTL: Duration = Duration::from_secs(3600);

    /// The process-wide registry that `#[circuit_breaker]` uses by default, created on first use
    /// with the default config and the system clock, unless [`set_global`](Self::set_global)
    /// installed one first.
    pub fn global() -> &'static Registry {
        GLOBAL.get_or_init(|| Registry::builder().build())
    }

    /// Installs `registry` as the one [`global`](Self::global) returns, so that call sites
    /// without a `registry = ..` argument get its listeners, clock and settings. Call it at
    /// startup: once `global` has been used (or another registry installed), it gives
    /// `registry` back (boxed: a registry is a few hundred bytes).
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{Event, Registry};
    ///
    /// let installed = Registry::set_global(
    ///     Registry::builder().listener(|event: &Event<'_>| eprintln!("{event:?}")).build(),
    /// );
    /// assert!(installed.is_ok());
    /// assert!(Registry::set_global(Registry::default()).is_err(), "only once");
    /// ```
    pub fn set_global(registry: Registry) -> Result<(), Box<Registry>> {
        GLOBAL.set(registry).map_err(Box::new)
    }

    /// Starts a builder (default config, system clock).
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

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
    /// [`max_circuits`]: RegistryBuilder::max_circuits
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

    /// Every circuit with its state and metrics, for admin tooling.
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
        let visit = |c: &Circuit| {
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
        match provider {
            None => self.for_each(visit),
            Some(name) => {
                let providers = self.pin_providers();
                if let Some(p) = providers.get(name) {
                    p.circuits.for_each(visit);
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

    /// Takes a permit from the circuit of (`provider`, `tenant`), creating it on first use with
    /// the call site's `config` unless the provider was [`configure`](Self::configure)d.
    ///
    /// This is what `#[circuit_breaker]` expands to; it is public for hand-written adapters.
    #[inline]
    pub fn acquire(
        &self,
        provider: &str,
        tenant: &str,
        site: Option<&'static Config>,
    ) -> Result<Permit, CircuitOpen> {
        {
            let providers = self.pin_providers();
            if let Some(p) = providers.get(provider) {
                return self.acquire_in(p, tenant, site);
            }
        }
        self.acquire_in(&self.provider(provider), tenant, site)
    }

    /// [`acquire`](Self::acquire) for a call site that always names the same provider: `cache`
    /// remembers where that provider's circuits live in this registry, so later calls skip the
    /// provider lookup and only look the tenant up. `#[circuit_breaker]` keeps one per site.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{ProviderCache, Registry};
    ///
    /// static SITE: ProviderCache = ProviderCache::new();
    /// let registry = Registry::global();
    /// registry.acquire_cached(&SITE, "anthropic", "acme", None)?.success();
    /// # Ok::<(), breaker::CircuitOpen>(())
    /// ```
    #[inline]
    pub fn acquire_cached(
        &self,
        cache: &ProviderCache,
        provider: &str,
        tenant: &str,
        site: Option<&'static Config>,
    ) -> Result<Permit, CircuitOpen> {
        // One call of `acquire_in` for both paths, so that the permit comes back in registers:
        // with a second, out-of-line path returning a whole `Result<Permit, _>`, the two
        // results met in memory, written with narrow stores and read back with a wide load (a
        // store-forwarding stall that cost the annotated call about 8 ns).
        let uncached;
        let p = match cache.slot.get() {
            // SAFETY: the entry was cached from this registry (ids are never reused) and kept
            // open when cached, so this registry never drops it, and `&self` is alive.
            Some(cached) if cached.registry == self.id => unsafe { cached.provider.as_ref() },
            _ => {
                uncached = self.site_provider(cache, provider);
                &*uncached
            }
        };
        self.acquire_in(p, tenant, site)
    }

    /// The provider entry for the first call of a site, which it caches, or for a call into
    /// another registry than the one its cache remembers (tests with their own registries).
    #[cold]
    #[inline(never)]
    fn site_provider(&self, cache: &ProviderCache, provider: &str) -> Arc<Provider> {
        if cache.slot.get().is_some() {
            // The first registry a site meets stays cached; calls into another one look the
            // provider up every time.
            return self.provider(provider);
        }
        let p = loop {
            let p = self.provider(provider);
            // The cache points at the entry without owning it: keep the entry for as long as
            // this registry lives, so the pointer is valid whenever the ids match.
            if p.circuits.hold_open() {
                break p;
            }
        };
        let _ = cache.slot.set(Cached {
            registry: self.id,
            provider: NonNull::from(&*p),
            name: p.name,
        });
        p
    }

    /// Inlined whole into the caller (the annotated function's future), so the permit stays
    /// in registers until it is stored where the future keeps it: a `Result<Permit, _>` returned
    /// through memory was reloaded with wider loads than its stores (a store-forwarding stall
    /// per call).
    #[inline(always)]
    fn acquire_in(
        &self,
        p: &Provider,
        tenant: &str,
        site: Option<&'static Config>,
    ) -> Result<Permit, CircuitOpen> {
        let guard = p.circuits.guard();
        let held = match p.circuits.get(tenant, &guard) {
            Some(c) => {
                c.touch();
                // SAFETY: found under `guard`, whose pin becomes the permit's hazard on it.
                unsafe { c.detach().pinned(guard) }
            }
            None => self.create_held(p, tenant, site, guard),
        };
        // One admission for found and new circuits alike, so the permit is built in one place.
        Permit::admit(held)
    }

    /// A tenant's first call (or its first after eviction): make its circuit, held by the
    /// guard's hazard when stored, by its reference count when not (its only handle). The pin
    /// is gone before collecting, so the epoch can advance: collecting under it could free
    /// nothing that a sweep run by this creation unlinked.
    #[cold]
    #[inline(never)]
    fn create_held(
        &self,
        p: &Provider,
        tenant: &str,
        site: Option<&'static Config>,
        guard: epoch::Guard,
    ) -> Held {
        let (created, swept) = self.create(p, tenant, site, &guard);
        let held = match created {
            // SAFETY: stored in the table (found under `guard`), which retires it to the epoch.
            Created::Mine(c, _) | Created::Theirs(c) => unsafe { c.detach().pinned(guard) },
            Created::Detached(detached) => {
                drop(guard);
                detached.into_held()
            }
            Created::Closed => {
                drop(guard);
                collect_after(swept);
                return self.create_held(&self.provider(p.name), tenant, site, epoch::pin());
            }
        };
        collect_after(swept);
        held
    }

    fn circuit_in(&self, p: &Provider, tenant: &str, site: Option<&'static Config>) -> Circuit {
        let guard = p.circuits.guard();
        if let Some(c) = p.circuits.get(tenant, &guard) {
            c.touch();
            return Circuit::clone(&c);
        }
        let (created, swept) = self.create(p, tenant, site, &guard);
        let circuit = match created {
            // Taken under the table's mutex: no sweep evicted it before this first use.
            Created::Mine(_, handle) => handle,
            Created::Theirs(c) => Circuit::clone(&c),
            Created::Detached(c) => c,
            Created::Closed => {
                drop(guard);
                collect_after(swept);
                return self.circuit_in(&self.provider(p.name), tenant, site);
            }
        };
        drop(guard);
        collect_after(swept);
        circuit
    }

    /// The circuit of `tenant` after a lookup missed: stored now (or by a racing creator), or
    /// not stored because the registry is at its cap with nothing evictable (fail open rather
    /// than refuse traffic; documented on the cap). Also says whether a sweep ran: it unlinks
    /// under the caller's pin, which keeps what it unlinked from being freed, so the caller
    /// collects once its pin is gone (see [`collect_after`]).
    #[cold]
    fn create<'g>(
        &self,
        p: &'g Provider,
        tenant: &str,
        site: Option<&'static Config>,
        guard: &'g Guard,
    ) -> (Created<'g>, bool) {
        let (created, swept) = self.create_unseen(p, tenant, site, guard);
        if let Some(hub) = &self.fleet {
            // After the insertion, so a fact the fleet notes meanwhile reaches this circuit
            // either here or through the table (`Hub::note`). A racing creator's circuit is
            // that creator's to report.
            let circuit = match &created {
                Created::Mine(_, handle) => Some(handle),
                Created::Detached(circuit) => Some(circuit),
                Created::Theirs(_) | Created::Closed => None,
            };
            let entry = self.pin_providers().get(p.name).cloned();
            if let (Some(circuit), Some(entry)) = (circuit, entry) {
                // Only the entry the circuit lives in: one a sweep closed is gone for good.
                if std::ptr::eq(Arc::as_ptr(&entry), p) {
                    hub.created(entry, circuit);
                } else {
                    hub.created_unstored(circuit);
                }
            }
        }
        (created, swept)
    }

    /// [`create`](Self::create) without telling the fleet.
    fn create_unseen<'g>(
        &self,
        p: &'g Provider,
        tenant: &str,
        site: Option<&'static Config>,
        guard: &'g Guard,
    ) -> (Created<'g>, bool) {
        let Some(policy) = p.policy_for(site, |config| self.policy(config, p.name)) else {
            return (Created::Closed, false);
        };
        let swept = self.sweep_if_due();
        let (reserved, swept_for_space) = self.reserve();
        let swept = swept || swept_for_space;
        if !reserved {
            // A racing creator may have stored it since the caller's lookup.
            let created = match p.circuits.get(tenant, guard) {
                Some(c) => Created::Theirs(c),
                // An entry closed meanwhile: its successor may have been configured since.
                None if p.circuits.is_closed() => Created::Closed,
                None => Created::Detached(Circuit::from_policy(policy, tenant)),
            };
            return (created, swept);
        }
        let mut mine = None;
        let found = p.circuits.get_or_insert(
            tenant,
            || {
                let c = Circuit::from_policy(policy.clone(), tenant);
                mine = Some(c.clone());
                c
            },
            guard,
        );
        let created = match (found, mine) {
            (Some(c), Some(handle)) => Created::Mine(c, handle),
            (found, None) => {
                // A racing creator's circuit, or the table closed: give the place back.
                self.count.fetch_sub(1, Ordering::Relaxed);
                match found {
                    Some(c) => Created::Theirs(c),
                    None => return (Created::Closed, swept),
                }
            }
            (None, Some(_)) => unreachable!("a closed table makes nothing"),
        };
        // Pairs with the fence in `Provider::configure`: a retuning that linked a new policy
        // after this circuit was made either visits it or is seen here.
        std::sync::atomic::fence(Ordering::SeqCst);
        if policy.current_is_newer() {
            if let Created::Mine(c, _) | Created::Theirs(c) = &created {
                p.retune(c);
            }
        }
        (created, swept)
    }

    /// The entry of provider `name`, made if missing or closed.
    fn provider(&self, name: &str) -> Arc<Provider> {
        let providers = self.pin_providers();
        if let Some(p) = providers.get(name) {
            if !p.circuits.is_closed() {
                return p.clone();
            }
            // Closed by a sweep that has not unlinked it yet: help.
            let _ = providers.remove_if(name, |_, v| Arc::ptr_eq(v, p));
        }
        let name = intern(name);
        let fresh = Arc::new(Provider::new(name, self.policy(self.default.clone(), name)));
        providers.get_or_insert(name, fresh).clone()
    }

    /// Unlinks `p` if it held no circuit at this sweep and the previous one, and nothing needs
    /// it kept (a config, an annotated call site's provider cache): a provider name seen once (a
    /// host a tower layer was keyed by, with or without a config of its own) then costs nothing
    /// once its circuits are gone, and sweeps stop visiting it.
    fn drop_if_idle(&self, providers: &ProviderMap<'_>, p: &Arc<Provider>) {
        if p.circuits.len() == 0 && p.circuits.close_if_idle() {
            let _ = providers.remove_if(p.name, |_, v| Arc::ptr_eq(v, p));
        }
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

    /// [`evict_idle`](Self::evict_idle) without the collection, for a creation that sweeps
    /// under its own pin and collects after it.
    fn sweep(&self) -> usize {
        self.last_sweep_us
            .store(self.time.now_us(), Ordering::Relaxed);
        self.detached_since_sweep.store(0, Ordering::Relaxed);
        let mut evicted = 0;
        let providers = self.pin_providers();
        for p in providers.values() {
            if p.circuits.len() > 0 {
                let n = p.circuits.evict(Circuit::sweep_evictable);
                self.count.fetch_sub(n, Ordering::Relaxed);
                evicted += n;
            }
            self.drop_if_idle(&providers, p);
        }
        evicted
    }

    /// Sweeps (without collecting) if the idle TTL has passed since the last sweep; says
    /// whether it did.
    fn sweep_if_due(&self) -> bool {
        let Some(ttl) = self.idle_ttl_us else {
            return false;
        };
        let now = self.time.now_us();
        let last = self.last_sweep_us.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= ttl
            && self
                .last_sweep_us
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep();
            return true;
        }
        false
    }

    /// Reserves a place for a new circuit, under the cap if there is one, sweeping for space
    /// when full; the caller gives it back if it stores nothing. Reserving before storing, by a
    /// compare-and-swap on the count, is what makes the cap exact under concurrency: racing
    /// creators that each saw room could overshoot it. Sweeps for space are spaced out by
    /// creations (one per 1/8 of the cap) so that a full registry of busy circuits does not
    /// sweep on every new tenant. The cap counts circuits in tables, so a sweep makes room as
    /// soon as it unlinks; freeing their memory is left to the caller's collection after its
    /// pin (the second value: whether it swept).
    fn reserve(&self) -> (bool, bool) {
        let Some(cap) = self.max_circuits else {
            self.count.fetch_add(1, Ordering::Relaxed);
            return (true, false);
        };
        let take = || {
            self.count
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < cap).then_some(n + 1)
                })
                .is_ok()
        };
        if take() {
            return (true, false);
        }
        let detached = self.detached_since_sweep.fetch_add(1, Ordering::Relaxed);
        if detached % (cap as u64 / 8 + 1) == 0 {
            self.sweep();
            return (take(), true);
        }
        (false, false)
    }
}

/// The collection after a creation, run once the creator's pin is gone (dropped, or turned
/// into a hazard on its circuit): at once and as far as the pins allow when the creation swept,
/// so that what the sweep unlinked is freed now rather than a few registry writes later.
fn collect_after(swept: bool) {
    if swept {
        epoch::collect_now();
    } else {
        epoch::collect();
    }
}

/// What [`Registry::create`] made of a lookup's miss.
enum Created<'g> {
    /// Stored by this call, with a handle taken before the table's mutex was let go: no sweep
    /// can evict a circuit between its creation and its creator's first use of it.
    Mine(Found<'g>, Circuit),
    /// Stored by a racing creator.
    Theirs(Found<'g>),
    /// Not stored: the registry is at its cap with nothing evictable.
    Detached(Circuit),
    /// The provider entry was closed by a sweep meanwhile: look it up again.
    Closed,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("circuits", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builder().build()
    }
}

/// Builds a [`Registry`].
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::{Config, ManualClock, Registry};
/// let clock = ManualClock::new();
/// let registry = Registry::builder()
///     .default_config(Config::builder().consecutive_failures(3).build()?)
///     .clock(clock.clone())
///     .build();
/// # Ok::<(), breaker::ConfigError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct RegistryBuilder {
    default_config: Option<Config>,
    time: Option<Timebase>,
    idle_ttl: Option<Duration>,
    max_circuits: Option<usize>,
    listeners: Vec<Listener>,
    fleet: Option<Arc<dyn Fleet>>,
}

impl Default for RegistryBuilder {
    fn default() -> Self {
        RegistryBuilder {
            default_config: None,
            time: None,
            idle_ttl: Some(Registry::DEFAULT_IDLE_TTL),
            max_circuits: None,
            listeners: Vec::new(),
            fleet: None,
        }
    }
}

impl RegistryBuilder {
    /// The config of circuits whose provider has no [`Registry::configure`] and whose call site
    /// sets none.
    pub fn default_config(mut self, config: Config) -> Self {
        self.default_config = Some(config);
        self
    }

    /// The clock of every circuit in the registry.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.time = Some(Timebase::new(clock));
        self
    }

    /// Drops closed circuits that stayed unused for `ttl` (see [`Registry::evict_idle`]);
    /// [`Registry::DEFAULT_IDLE_TTL`] (one hour) unless set. `None` turns idle eviction off:
    /// the registry then keeps every circuit it ever created, which suits a fixed set of
    /// tenants, not tenant names that come from requests.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use std::time::Duration;
    /// use breaker::Registry;
    ///
    /// let short = Registry::builder().idle_ttl(Duration::from_secs(600)).build();
    /// let forever = Registry::builder().idle_ttl(None).build();
    /// ```
    pub fn idle_ttl(mut self, ttl: impl Into<Option<Duration>>) -> Self {
        self.idle_ttl = ttl.into();
        self
    }

    /// Caps the number of stored circuits: the registry never holds more than `n`, however many
    /// threads create circuits at once (each creation reserves its place before it stores), and
    /// [`Registry::len`] never reads more. No cap by default. When the registry is full, a new
    /// (provider, tenant) first triggers a sweep that drops closed, unheld circuits unused since
    /// the previous sweep (whatever the TTL); if that frees nothing, the call gets a fresh closed
    /// circuit that is not stored. Such tenants are then not protected until room frees up, but
    /// their calls are never refused because of the cap, and no stored circuit (open ones above
    /// all) is displaced. There is no default cap because of that trade (at the cap, new tenants
    /// go unprotected) and because only the application knows how many tenants it serves; the
    /// default [`idle_ttl`](Self::idle_ttl) bounds the registry by the rate of new tenants.
    pub fn max_circuits(mut self, n: usize) -> Self {
        self.max_circuits = Some(n);
        self
    }

    /// Calls `listener` with every [`Event`] of the registry's circuits: state transitions,
    /// rejections and slow calls. Listeners run in registration order, on the thread whose call
    /// raised the event, after the change is published and while nothing is locked, so they may
    /// call back into the registry and its circuits; events raised by those calls (on the same
    /// thread, while listeners run) are not delivered, so a listener cannot recurse into itself.
    /// A panicking listener is contained: the call that raised the event is unaffected.
    ///
    /// Keep listeners short (count, log, send to a channel): they run inside callers' requests.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use breaker::{Config, Event, Registry};
    ///
    /// let rejections = Arc::new(AtomicUsize::new(0));
    /// let count = rejections.clone();
    /// let registry = Registry::builder()
    ///     .default_config(Config::builder().consecutive_failures(1).build()?)
    ///     .listener(move |event: &Event<'_>| {
    ///         if matches!(event, Event::Rejected { .. }) {
    ///             count.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build();
    /// let circuit = registry.circuit("openai", "acme");
    /// circuit.try_acquire()?.failure();
    /// assert!(circuit.try_acquire().is_err());
    /// assert_eq!(rejections.load(Ordering::Relaxed), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listener(mut self, listener: impl Fn(&Event<'_>) + Send + Sync + 'static) -> Self {
        self.listeners.push(Box::new(listener));
        self
    }

    /// Shares this registry's circuit openings and closings with the other replicas of the
    /// service through `fleet` (for example `breaker::fleet::RedisFleet`, feature `redis`), and
    /// applies theirs. Calls never wait on it: see [`fleet`](crate::fleet). A later call replaces
    /// an earlier one.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::fleet::{Change, Fleet, FleetLink};
    /// use breaker::Registry;
    ///
    /// struct Quiet;
    /// impl Fleet for Quiet {
    ///     fn attach(&self, _link: FleetLink) {}
    ///     fn publish(&self, _change: &Change<'_>) {}
    /// }
    /// let registry = Registry::builder().fleet(Quiet).build();
    /// ```
    pub fn fleet(mut self, fleet: impl Fleet) -> Self {
        self.fleet = Some(Arc::new(fleet));
        self
    }

    /// Builds the registry.
    pub fn build(self) -> Registry {
        let time = Arc::new(self.time.unwrap_or_else(|| Timebase::new(SystemClock)));
        let idle_ttl_us = self
            .idle_ttl
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let hub = self
            .fleet
            .as_ref()
            .map(|_| Arc::new(Hub::new(time.clone())));
        if let (Some(fleet), Some(hub)) = (&self.fleet, &hub) {
            fleet.attach(hub.link());
        }
        Registry {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            providers: papaya::HashMap::with_hasher(NameHasher::default()),
            default: self.default_config.unwrap_or_default(),
            time,
            idle_ttl_us,
            max_circuits: self.max_circuits,
            count: AtomicUsize::new(0),
            last_sweep_us: AtomicU64::new(0),
            detached_since_sweep: AtomicU64::new(0),
            events: Listeners::new(self.listeners, self.fleet.map(sharer)).map(Arc::new),
            fleet: hub,
        }
    }
}

impl fmt::Debug for RegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryBuilder")
            .field("default_config", &self.default_config)
            .field("idle_ttl", &self.idle_ttl)
            .field("max_circuits", &self.max_circuits)
            .field("listeners", &self.listeners.len())
            .field("fleet", &self.fleet.is_some())
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

/// Where one provider's circuits live in a registry, remembered by a call site; see
/// [`Registry::acquire_cached`]. It remembers the first registry the site meets without keeping
/// that registry (or anything of it) alive: a registry dropped while a `static` cache still
/// names it is freed like any other.
pub struct ProviderCache {
    slot: OnceLock<Cached>,
}

/// A provider entry of the registry `registry`, by address: the registry keeps the entry (it
/// is held open, never unlinked), so the address is valid exactly while a registry with that id
/// exists, which a caller holding `&Registry` with that id proves.
struct Cached {
    registry: u64,
    provider: NonNull<Provider>,
    /// For `Debug`, which has no registry to prove the entry alive.
    name: &'static str,
}

// SAFETY: `Cached` is an id, an interned name and an address dereferenced only by the registry
// that owns the entry (`Provider` is `Send + Sync`), from any thread.
unsafe impl Send for Cached {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for Cached {}

/// The pinned provider map the registry's walks share.
type ProviderMap<'m> =
    papaya::HashMapRef<'m, &'static str, Arc<Provider>, NameHasher, papaya::LocalGuard<'m>>;

impl Registry {
    /// The provider map, pinned. papaya pins through seize's thread-local, which a registry call
    /// from another thread-local's destructor may outlive (a pool's or a logger's, at thread
    /// exit): seize then panics on its first use, after registering the thread anew, and its
    /// next use succeeds. The panic is contained here and the pin taken again, so such a call
    /// works instead of aborting the process ("thread local panicked on drop"); the panic hook
    /// still reports that first panic, once per such thread. Elsewhere this is a plain pin.
    #[inline]
    fn pin_providers(&self) -> ProviderMap<'_> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.providers.pin())) {
            Ok(map) => map,
            Err(_) => self.providers.pin(),
        }
    }
}

impl ProviderCache {
    /// An empty cache, for a `static`.
    pub const fn new() -> Self {
        ProviderCache {
            slot: OnceLock::new(),
        }
    }
}

impl Default for ProviderCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ProviderCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let provider = self.slot.get().map(|c| c.name);
        f.debug_struct("ProviderCache")
            .field("provider", &provider)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::LazyLock;

    use super::*;
    use crate::ManualClock;

    fn providers(r: &Registry) -> usize {
        r.providers.len()
    }

    #[test]
    fn provider_entries_without_circuits_were_never_freed() {
        static SITE: LazyLock<Config> =
            LazyLock::new(|| Config::builder().consecutive_failures(7).build().unwrap());
        let r = Registry::builder()
            .clock(ManualClock::new())
            .idle_ttl(Duration::from_secs(60))
            .build();
        static CACHE: ProviderCache = ProviderCache::new();
        r.configure("configured", Config::default());
        r.acquire_cached(&CACHE, "annotated", "t", Some(&*SITE))
            .unwrap()
            .success();
        for i in 0..10_000 {
            r.acquire(&format!("host-{i}"), "t", None)
                .unwrap()
                .success();
        }
        assert_eq!((providers(&r), r.len()), (10_002, 10_001));
        // Used since creation: the first sweep keeps them, the second drops them.
        assert_eq!(r.evict_idle(), 0);
        assert_eq!(r.evict_idle(), 10_001);
        assert_eq!(r.len(), 0);
        // Empty at two sweeps in a row: the entries go, but for those something keeps.
        assert_eq!(providers(&r), 10_002);
        r.evict_idle();
        assert_eq!(
            providers(&r),
            2,
            "the configured and the annotated provider stay"
        );
        assert!(r.configured("configured").is_some());
        assert_eq!(
            r.circuit("annotated", "by-name")
                .config()
                .consecutive_failures(),
            Some(7),
            "the first site's config still applies to circuits asked for by name"
        );
        // Removing a provider's last circuit leaves its entry to the sweeps.
        r.circuit("once", "t");
        assert!(r.remove("once", "t"));
        assert_eq!(providers(&r), 3);
        r.evict_idle();
        r.evict_idle();
        assert_eq!(providers(&r), 2);
        // And a provider name seen again gets a fresh entry.
        r.acquire("host-1", "t", None).unwrap().success();
        assert!(r.get("host-1", "t").is_some());
        // (The circuit asked for by name went with those two sweeps.)
        assert_eq!((providers(&r), r.len()), (3, 1));
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

    /// Regression: a call-site config held its provider's entry open for good, and a tower
    /// layer with `.config(c)` passes one for every provider (host) its key closure names.
    #[test]
    fn provider_entries_reached_with_a_site_config_were_never_dropped() {
        static LAYER: LazyLock<Config> =
            LazyLock::new(|| Config::builder().consecutive_failures(3).build().unwrap());
        let r = Registry::builder()
            .clock(ManualClock::new())
            .idle_ttl(Duration::from_secs(60))
            .build();
        for i in 0..1000 {
            r.acquire(&format!("host-{i}"), "t", Some(&*LAYER))
                .unwrap()
                .success();
        }
        for _ in 0..4 {
            r.evict_idle();
        }
        assert_eq!((r.len(), providers(&r)), (0, 0));
        // A host seen again registers its site anew: its circuits keep the layer's config.
        r.acquire("host-1", "t", Some(&*LAYER)).unwrap().success();
        let c = r.circuit("host-1", "by-name");
        assert_eq!(c.config().consecutive_failures(), Some(3));
        // And a configure of such a provider wins over the site as before.
        r.configure(
            "host-1",
            Config::builder().consecutive_failures(9).build().unwrap(),
        );
        assert_eq!(c.config().consecutive_failures(), Some(9));
    }

    #[test]
    fn a_cached_provider_entry_was_dropped_by_sweeps_that_emptied_it() {
        static SITE: ProviderCache = ProviderCache::new();
        let r = Registry::builder()
            .clock(ManualClock::new())
            .idle_ttl(Duration::from_secs(60))
            .build();
        r.acquire_cached(&SITE, "anthropic", "acme", None)
            .unwrap()
            .success();
        // The circuit goes at the second sweep; an entry nothing keeps would go at the fourth.
        for _ in 0..4 {
            r.evict_idle();
        }
        assert_eq!(r.len(), 0);
        let providers = r.providers.pin();
        let entry = providers.get("anthropic").expect("the cached entry stays");
        // The cache's address is the registry's own, open entry: never dangling.
        assert_eq!(SITE.slot.get().unwrap().provider, NonNull::from(&**entry));
        assert!(!entry.circuits.is_closed());
    }

    #[test]
    fn creators_racing_the_sweep_that_drops_their_provider_lose_no_circuit() {
        let r = Registry::builder().build();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let sweeper = s.spawn(|| {
                let mut sweeps = 0;
                while !done.load(Ordering::Relaxed) {
                    r.evict_idle();
                    sweeps += 1;
                }
                sweeps
            });
            let workers: Vec<_> = (0..2)
                .map(|w| {
                    let r = &r;
                    s.spawn(move || {
                        for i in 0..5_000 {
                            let provider = format!("p{}", i % 7);
                            let tenant = format!("{w}-{i}");
                            let c = r.circuit(&provider, &tenant);
                            c.force_open();
                            // Stored in the entry the registry keeps, not in one it dropped:
                            // the forced-open circuit is never evicted, so it must still be there.
                            assert!(
                                Circuit::ptr_eq(&c, &r.get(&provider, &tenant).unwrap()),
                                "{provider}/{tenant} lost"
                            );
                            assert!(r.remove(&provider, &tenant));
                        }
                    })
                })
                .collect();
            let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
            done.store(true, Ordering::Relaxed);
            for r in results {
                r.unwrap();
            }
            assert!(sweeper.join().unwrap() > 0);
        });
        r.evict_idle();
        r.evict_idle();
        assert_eq!((r.len(), providers(&r)), (0, 0));
    }

    /// What the tables hold, read from their own counts: exact for one provider at any moment.
    fn stored(r: &Registry) -> usize {
        let providers = r.providers.pin();
        providers.values().map(|p| p.circuits.len()).sum()
    }

    #[test]
    fn max_circuits_was_overshot_by_racing_new_tenants() {
        for cap in [1, 2, 16, 20] {
            let r = Registry::builder().max_circuits(cap).build();
            // Kept, so `stored` reads one table, whose count is exact at any moment: an entry
            // dropped and made again between two reads of a walk could count twice.
            r.configure("p", Config::default());
            let done = AtomicBool::new(false);
            std::thread::scope(|s| {
                let watcher = s.spawn(|| {
                    let mut seen = 0;
                    while !done.load(Ordering::Relaxed) {
                        let (tables, len) = (stored(&r), r.len());
                        assert!(tables <= cap, "cap {cap}: the table holds {tables}");
                        assert!(len <= cap, "cap {cap}: len() {len}");
                        seen = seen.max(tables);
                    }
                    seen
                });
                let workers: Vec<_> = (0..4)
                    .map(|w| {
                        let r = &r;
                        s.spawn(move || {
                            for i in 0..10_000 {
                                let tenant = format!("{w}-{i}");
                                r.acquire("p", &tenant, None).unwrap().success();
                                // Room comes back by removals and by sweeps for space.
                                if i % 3 == 0 {
                                    r.remove("p", &format!("{w}-{}", i / 2));
                                }
                            }
                        })
                    })
                    .collect();
                let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
                done.store(true, Ordering::Relaxed);
                for r in results {
                    r.unwrap();
                }
                assert!(watcher.join().unwrap() > 0);
            });
            assert!(r.len() <= cap && r.len() == stored(&r), "cap {cap}");
            let mut visited = 0;
            r.for_each(|_| visited += 1);
            assert_eq!(visited, r.len());
        }
    }
}
