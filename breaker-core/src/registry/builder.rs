//! [`RegistryBuilder`], and the process-wide registry `#[circuit_breaker]` uses by default.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::{NameHasher, Registry};
use crate::clock::{Clock, SystemClock, Timebase};
use crate::config::Config;
use crate::event::{Event, Listener, Listeners};
use crate::fleet::{sharer, Fleet, Hub};
use crate::provider::settings::ProviderWide;

static GLOBAL: OnceLock<Registry> = OnceLock::new();

/// Registries alive that were built with a fleet: if the global registry was made by
/// [`Registry::global`] (so without one) while such a registry exists, call sites without
/// `registry = ..` do not share their circuits, which looks exactly like having no fleet.
static WITH_FLEET: AtomicUsize = AtomicUsize::new(0);
/// How many times that was warned about (once a process; for the tests).
static FLEET_UNUSED_WARNINGS: AtomicUsize = AtomicUsize::new(0);

/// [`Registry::set_global`] (or [`RegistryBuilder::install_global`]) found a global registry in
/// place already: [`Registry::global`] ran first (a call site without `registry = ..` was
/// called, say), or another registry was installed. The registry that could not be installed
/// comes back with [`into_registry`](Self::into_registry).
pub struct GlobalAlreadySet {
    registry: Box<Registry>,
}

impl GlobalAlreadySet {
    /// The registry that was not installed.
    pub fn into_registry(self) -> Registry {
        *self.registry
    }
}

impl fmt::Debug for GlobalAlreadySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalAlreadySet").finish_non_exhaustive()
    }
}

impl fmt::Display for GlobalAlreadySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the global registry is already in place (Registry::global() ran first, or another \
             registry was installed): install yours once, at startup, before any call site runs",
        )
    }
}

impl std::error::Error for GlobalAlreadySet {}

/// Called when the global registry that [`Registry::global`] made (no fleet, no listeners)
/// creates a provider entry, that is, when a call site without `registry = ..` is first used
/// for a provider: if a registry with a fleet exists meanwhile, it was most likely meant to be
/// the global one. Warned once a process, on standard error: nothing else is wired up at that
/// point (the global registry made here has no listeners).
pub(super) fn warn_if_a_fleet_is_unused() {
    if WITH_FLEET.load(Ordering::Relaxed) == 0 {
        return;
    }
    if FLEET_UNUSED_WARNINGS.fetch_add(1, Ordering::Relaxed) == 0 {
        eprintln!(
            "breaker: WARN a registry with a fleet exists, but call sites without `registry = ..` \
             use the global registry, which has none: their circuits are not shared with the \
             other replicas. Install the fleet's registry with RegistryBuilder::install_global() \
             (or Registry::set_global) before the first call."
        );
    }
}

/// How many call sites' providers met the warning above (only the first printed it).
pub(crate) fn fleet_unused_warnings() -> usize {
    FLEET_UNUSED_WARNINGS.load(Ordering::Relaxed)
}

// A registry built with a fleet is going away (see `WITH_FLEET`). Here, beside the count, rather
// than in `registry.rs`, which imports none of its children.
impl Drop for Registry {
    fn drop(&mut self) {
        if self.fleet.is_some() {
            WITH_FLEET.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Registry {
    /// The process-wide registry that `#[circuit_breaker]` uses by default, created on first use
    /// with the default config and the system clock, unless [`set_global`](Self::set_global)
    /// installed one first.
    #[inline]
    pub fn global() -> &'static Registry {
        // Inlined into every call site: once set, one load and a test rather than a call.
        match GLOBAL.get() {
            Some(registry) => registry,
            None => Self::global_init(),
        }
    }

    #[cold]
    #[inline(never)]
    fn global_init() -> &'static Registry {
        GLOBAL.get_or_init(|| {
            let mut registry = Registry::builder().build();
            registry.made_by_global = true;
            registry
        })
    }

    /// Installs `registry` as the one [`global`](Self::global) returns, so that call sites
    /// without a `registry = ..` argument get its listeners, clock, fleet and settings. Call it
    /// at startup: once `global` has been used (or another registry installed), it fails with
    /// [`GlobalAlreadySet`], which gives `registry` back. [`RegistryBuilder::install_global`]
    /// builds and installs in one step.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{Event, Registry};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     Registry::set_global(
    ///         Registry::builder().listener(|event: &Event<'_>| eprintln!("{event:?}")).build(),
    ///     )?;
    ///     assert!(Registry::set_global(Registry::default()).is_err(), "only once");
    ///     Ok(())
    /// }
    /// ```
    pub fn set_global(registry: Registry) -> Result<(), GlobalAlreadySet> {
        GLOBAL.set(registry).map_err(|registry| GlobalAlreadySet {
            registry: Box::new(registry),
        })
    }

    /// Starts a builder (default config, system clock).
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
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
    wide: Vec<(String, ProviderWide)>,
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
            wide: Vec::new(),
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

    /// Puts a provider-wide circuit above `provider`'s tenant circuits (see
    /// [`ProviderWide`]): a provider that fails for many tenants at once is then learned once,
    /// not once per tenant. The same as
    /// [`Registry::configure_provider_wide`] once built; a later call for the same provider
    /// replaces an earlier one.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{ProviderWide, Registry};
    ///
    /// let registry = Registry::builder()
    ///     .provider_wide("openai", ProviderWide::builder().distinct_tenants(3).build()?)
    ///     .build();
    /// assert!(registry.provider_circuit("openai").is_some());
    /// assert!(registry.provider_circuit("anthropic").is_none());
    /// # Ok::<(), breaker::ConfigError>(())
    /// ```
    pub fn provider_wide(mut self, provider: &str, settings: ProviderWide) -> Self {
        self.wide.retain(|(p, _)| p != provider);
        self.wide.push((provider.to_owned(), settings));
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
            WITH_FLEET.fetch_add(1, Ordering::Relaxed);
        }
        let registry = Registry {
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
            made_by_global: false,
        };
        for (provider, settings) in self.wide {
            registry.configure_provider_wide(&provider, settings);
        }
        registry
    }

    /// Builds the registry and installs it as the global one (see [`Registry::set_global`]):
    /// call sites without `registry = ..` then use its fleet, listeners and settings. The way to
    /// set up a fleet: a registry with a fleet that is only built, never installed, leaves those
    /// call sites on a global registry of their own, without it (warned once, on standard error).
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{Config, Registry};
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let registry = Registry::builder()
    ///         .default_config(Config::builder().consecutive_failures(3).build()?)
    ///         .install_global()?;
    ///     assert!(std::ptr::eq(registry, Registry::global()));
    ///     Ok(())
    /// }
    /// ```
    pub fn install_global(self) -> Result<&'static Registry, GlobalAlreadySet> {
        Registry::set_global(self.build())?;
        Ok(Registry::global())
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
            .field("provider_wide", &self.wide)
            .finish_non_exhaustive()
    }
}
