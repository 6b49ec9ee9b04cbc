//! The extension point through which the replicas of a service share what their circuits learn.
//!
//! A *fleet* is every registry, in every process, that joins the same store under the same
//! namespace. A store integration (`breaker::fleet::RedisFleet` with the facade's `redis`
//! feature) implements [`Fleet`] and is attached with
//! [`RegistryBuilder::fleet`](crate::RegistryBuilder::fleet). The two directions never touch a
//! call:
//!
//! - **local → fleet**: when one of the registry's circuits opens or closes, the thread that made
//!   the transition (already a slow path) hands a [`Change`] to [`Fleet::publish`], which must
//!   queue it and return (a bounded queue that drops and counts when full).
//! - **fleet → local**: the integration's background tasks apply what other replicas published
//!   through the [`FleetLink`] given to [`Fleet::attach`]: [`FleetLink::open`] for an open period
//!   with what is left of it and its backoff level, [`FleetLink::close`] when it ended with a
//!   success, [`FleetLink::operate`] for an operator's switch. A fact about a tenant that has no
//!   circuit here yet is kept (bounded) and applied when that circuit is created, so a replica
//!   that never called that tenant still rejects it.
//!
//! Nothing here knows about networks: a test can be a fleet of two registries in one process.
//!
//! ```
//! # use breaker_core as breaker;
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use breaker::fleet::{Change, Fleet, FleetLink};
//! use breaker::{Config, Registry, State};
//!
//! /// One end of a wire between two registries: what one publishes, the other applies.
//! type Slot = Arc<Mutex<Option<FleetLink>>>;
//! struct End { me: Slot, peer: Slot }
//!
//! impl Fleet for End {
//!     fn attach(&self, link: FleetLink) {
//!         *self.me.lock().unwrap() = Some(link);
//!     }
//!     fn publish(&self, change: &Change<'_>) {
//!         // A real fleet queues this for a background task; applying inline is only for show.
//!         let peer = self.peer.lock().unwrap().clone();
//!         if let (Some(peer), Change::Opened { provider, tenant, open_for, level, .. }) = (peer, change) {
//!             peer.open(provider, tenant, *open_for, *level);
//!         }
//!     }
//! }
//!
//! let (one, two) = (Slot::default(), Slot::default());
//! let config = Config::builder().consecutive_failures(1).open_for(Duration::from_secs(30)).build()?;
//! let a = Registry::builder().default_config(config.clone())
//!     .fleet(End { me: one.clone(), peer: two.clone() }).build();
//! let b = Registry::builder().default_config(config)
//!     .fleet(End { me: two, peer: one }).build();
//!
//! a.circuit("openai", "acme").try_acquire()?.failure();
//! // `b` never called acme, yet rejects it for what is left of `a`'s open period.
//! assert_eq!(b.circuit("openai", "acme").state(), State::Open);
//! assert!(b.circuit("openai", "acme").retry_after().is_some());
//! assert_eq!(b.circuit("openai", "globex").state(), State::Closed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use crate::circuit::Circuit;
use crate::circuit::Metrics;
use crate::clock::Timebase;
use crate::config::Config;
use crate::event::{Event, Reason, Sharer};
use crate::provider::settings::ProviderWide;
use crate::provider::Provider;
use crate::state::State;

/// The highest backoff level a circuit reaches: a store integration takes a stored level above it
/// for garbage (no replica wrote it), not for a newer opening.
///
/// ```
/// # use breaker_core as breaker;
/// assert_eq!(breaker::fleet::MAX_LEVEL, 31);
/// ```
pub const MAX_LEVEL: u32 = crate::backoff::MAX_LEVEL;

/// A store integration that shares circuit openings between the replicas of a service; see the
/// [module docs](self).
///
/// Both methods are called by the registry, never by users. Neither may block: `publish` runs on
/// the thread of the call whose outcome moved the circuit.
pub trait Fleet: Send + Sync + 'static {
    /// Called once, when the registry is built, with the link through which the fleet applies
    /// remote facts to that registry's circuits. The link stops working (its methods return
    /// `false`) when the registry is dropped: background tasks should then end.
    fn attach(&self, link: FleetLink);

    /// One of the registry's circuits changed in a way the fleet shares. Called right after the
    /// change is published, on the thread that made it, possibly inside a caller's request:
    /// queue it and return. Changes that the link applied (reason [`Reason::Fleet`]) are not
    /// published again. A panic here is contained; the call is unaffected.
    fn publish(&self, change: &Change<'_>);

    /// One of the registry's closed circuits recorded a failure: evidence the fleet may pool
    /// (so that the fleet trips on the fleet's failures, not each replica on its own). Called on
    /// the thread of the call whose failure it was, behind the call's outcome: like
    /// [`publish`](Self::publish), queue it (bounded, coalesced) and return. Successes are
    /// never told: a fleet that needs them reads the circuit's counters from its background
    /// task ([`FleetLink::metrics`]), so a healthy circuit costs nothing. The default ignores
    /// failures (a fleet that shares openings only). A panic here is contained.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use std::sync::{Arc, Mutex};
    /// use breaker::fleet::{Change, Evidence, Fleet, FleetLink};
    /// use breaker::{Config, Registry};
    ///
    /// #[derive(Clone, Default)]
    /// struct Tally(Arc<Mutex<Vec<(String, u32)>>>);
    /// impl Fleet for Tally {
    ///     fn attach(&self, _: FleetLink) {}
    ///     fn publish(&self, _: &Change<'_>) {}
    ///     fn failed(&self, evidence: &Evidence<'_>) {
    ///         self.0.lock().unwrap().push((evidence.tenant.to_owned(), evidence.streak));
    ///     }
    /// }
    ///
    /// let tally = Tally::default();
    /// let registry = Registry::builder()
    ///     .default_config(Config::builder().consecutive_failures(5).build()?)
    ///     .fleet(tally.clone())
    ///     .build();
    /// let acme = registry.circuit("openai", "acme");
    /// acme.try_acquire()?.success(); // not told
    /// acme.try_acquire()?.failure();
    /// acme.try_acquire()?.failure();
    /// assert_eq!(*tally.0.lock().unwrap(), [("acme".to_owned(), 1), ("acme".to_owned(), 2)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn failed(&self, evidence: &Evidence<'_>) {
        let _ = evidence;
    }
}

/// A closed circuit's failure, as given to [`Fleet::failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Evidence<'a> {
    /// The circuit's provider.
    pub provider: &'static str,
    /// The circuit's tenant.
    pub tenant: &'a str,
    /// The circuit's failure streak after this failure (0 without the consecutive policy): a
    /// streak no longer than the last one told means a success came in between.
    pub streak: u32,
}

/// What a provider-wide circuit pooled on one replica, from [`FleetLink::pooled`].
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::fleet::Pooled;
///
/// /// Whether one replica's window alone meets the thresholds (its circuit then trips by
/// /// itself): a fleet pools only what falls short.
/// fn alone(pooled: &Pooled) -> bool {
///     let s = &pooled.settings;
///     pooled.calls >= s.minimum_calls()
///         && f64::from(pooled.failures) >= s.failure_rate() * f64::from(pooled.calls)
///         && pooled.failing_tenants.len() >= s.distinct_tenants() as usize
/// }
/// # let _ = alone;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Pooled {
    /// Outcomes in the pooled window.
    pub calls: u32,
    /// Failures among them.
    pub failures: u32,
    /// A hash of each distinct tenant whose calls failed in the window (at most
    /// [`MAX_DISTINCT_TENANTS`](crate::MAX_DISTINCT_TENANTS)), the same for the same tenant
    /// name in every process: a fleet unions its replicas' sets to count the fleet's distinct
    /// failing tenants. Never 0.
    pub failing_tenants: Vec<u32>,
    /// The provider-wide settings in effect: the thresholds the fleet's pooled evidence is
    /// held to.
    pub settings: ProviderWide,
}

/// What a registry tells its [`Fleet`] about one of its circuits.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Change<'a> {
    /// The circuit opened (a policy trip, a failed probe, or any other reason but an operator's
    /// `force_open`, which is [`Change::Operator`]).
    #[non_exhaustive]
    Opened {
        /// The circuit's provider.
        provider: &'static str,
        /// The circuit's tenant.
        tenant: &'a str,
        /// The open period it entered, jitter included: share it as a relative time (a TTL),
        /// never as a wall-clock deadline, since replicas' clocks differ.
        open_for: Duration,
        /// Its backoff level: 0 for a trip from closed, one more for each failed probe since.
        level: u32,
        /// Why it opened.
        reason: Reason,
    },
    /// The circuit closed after its probes succeeded.
    #[non_exhaustive]
    Closed {
        /// The circuit's provider.
        provider: &'static str,
        /// The circuit's tenant.
        tenant: &'a str,
    },
    /// An operator moved the circuit: `force_open` (`ForcedOpen`), `disable` (`Disabled`),
    /// `metrics_only` (`MetricsOnly`) or `reset` (`Closed`).
    #[non_exhaustive]
    Operator {
        /// The circuit's provider.
        provider: &'static str,
        /// The circuit's tenant.
        tenant: &'a str,
        /// The state the operator set.
        state: State,
    },
}

impl Change<'_> {
    /// The change a transition stands for, if the fleet shares it: openings, closings after
    /// probes, and operators' switches; not the move to half-open (each replica's own), and not
    /// what the fleet itself applied.
    pub(crate) fn of_transition<'a>(
        provider: &'static str,
        tenant: &'a str,
        to: State,
        reason: Reason,
        open_for: Option<Duration>,
        level: u32,
    ) -> Option<Change<'a>> {
        match (reason, to) {
            (Reason::Fleet, _) => None,
            (Reason::Operator, state) => Some(Change::Operator {
                provider,
                tenant,
                state,
            }),
            (reason, State::Open) => Some(Change::Opened {
                provider,
                tenant,
                open_for: open_for.unwrap_or_default(),
                level,
                reason,
            }),
            (Reason::ProbesSucceeded, State::Closed) => Some(Change::Closed { provider, tenant }),
            _ => None,
        }
    }
}

/// How a registry's events reach `fleet`: the sharer its builder connects to the listeners'
/// slot, which publishes the transitions the fleet shares (see [`Change::of_transition`]) and
/// hands it closed circuits' failures.
pub(crate) fn sharer(fleet: Arc<dyn Fleet>) -> Box<dyn Sharer> {
    Box::new(FleetSharer(fleet))
}

struct FleetSharer(Arc<dyn Fleet>);

impl Sharer for FleetSharer {
    fn transition(&self, event: &Event<'_>) {
        let &Event::Transition {
            provider,
            tenant,
            to,
            reason,
            open_for,
            level,
            ..
        } = event
        else {
            return;
        };
        if let Some(change) = Change::of_transition(provider, tenant, to, reason, open_for, level) {
            self.0.publish(&change);
        }
    }

    fn failed(&self, provider: &'static str, tenant: &str, streak: u32) {
        self.0.failed(&Evidence {
            provider,
            tenant,
            streak,
        });
    }
}

/// How a [`Fleet`] applies what other replicas published to the circuits of the registry it is
/// attached to. Cheap to clone; it does not keep the registry alive.
#[derive(Clone)]
pub struct FleetLink {
    hub: Weak<Hub>,
}

impl FleetLink {
    /// Opens the circuit of (`provider`, `tenant`) for `remaining` (what is left of the open
    /// period another replica entered, measured by the store, never by wall clocks) at backoff
    /// `level`, with reason [`Reason::Fleet`]. A closed or half-open circuit opens; an open one
    /// takes the period if it is at a higher level (a probe failed since) or, at the same level,
    /// ends later; an operator's state (forced open, disabled, metrics only) is left alone. Without a circuit for that tenant yet, the fact is kept
    /// and applied when the circuit is created: open for what is left then, or, once the period
    /// has ended without a [`close`](Self::close), open with its period over, so that the
    /// tenant's first call here is a probe.
    ///
    /// Returns `false` when the registry is gone.
    pub fn open(&self, provider: &str, tenant: &str, remaining: Duration, level: u32) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        let deadline_us = hub
            .time
            .now_us()
            .saturating_add(u64::try_from(remaining.as_micros()).unwrap_or(u64::MAX));
        let fact = Fact::Open { deadline_us, level };
        let provider_entry = hub.note(provider, tenant, Some(fact));
        if let Some(circuit) = provider_entry.and_then(|p| p.find(tenant)) {
            hub.apply(&circuit, fact);
        }
        true
    }

    /// Holds the circuit of (`provider`, `tenant`) open for `remaining` from now, longer or
    /// shorter than its period, if it is open at backoff `level` (a kept opening at that level
    /// likewise), with no event: for a fleet that keeps its circuits open past the fleet's
    /// period until it has decided which replica probes, then lets the chosen one's circuit go
    /// at once. Unlike [`open`](Self::open), a hold never opens a closed circuit, never takes a
    /// probe in flight away (a half-open circuit stays), and never replaces another level's
    /// opening.
    ///
    /// Returns `false` when the registry is gone.
    pub fn hold(&self, provider: &str, tenant: &str, remaining: Duration, level: u32) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        let remaining_us = u64::try_from(remaining.as_micros()).unwrap_or(u64::MAX);
        let deadline_us = hub.time.now_us().saturating_add(remaining_us);
        let provider_entry = {
            let mut kept = hub.lock();
            let key = (Box::<str>::from(provider), Box::<str>::from(tenant));
            if let Some(Fact::Open {
                deadline_us: kept_us,
                level: kept_level,
            }) = kept.facts.get_mut(&key)
            {
                if *kept_level == level {
                    *kept_us = deadline_us;
                }
            }
            kept.providers.get(provider).cloned()
        };
        if let Some(circuit) = provider_entry.and_then(|p| p.find(tenant)) {
            circuit.adopt_hold(remaining_us, level);
        }
        true
    }

    /// How many calls the circuit of (`provider`, `tenant`) has rejected since it was created,
    /// if it exists here: for a fleet that lets only replicas that call a tenant probe it.
    pub fn rejected(&self, provider: &str, tenant: &str) -> Option<u64> {
        let hub = self.hub.upgrade()?;
        let provider = hub.lock().providers.get(provider).cloned()?;
        Some(provider.find(tenant)?.rejected())
    }

    /// Closes the circuit of (`provider`, `tenant`) if it is open or half-open (another replica's
    /// probes succeeded), with reason [`Reason::Fleet`], and forgets a kept opening of it. An
    /// operator's state is left alone.
    ///
    /// Returns `false` when the registry is gone.
    pub fn close(&self, provider: &str, tenant: &str) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        let entry = hub.note(provider, tenant, Some(Fact::Close));
        if let Some(circuit) = entry.and_then(|p| p.find(tenant)) {
            hub.apply(&circuit, Fact::Close);
        }
        true
    }

    /// Makes on (`provider`, `tenant`) the operator's switch another replica made: `ForcedOpen`,
    /// `Disabled`, `MetricsOnly`, or `Closed` for a reset (which also forgets a kept opening),
    /// with reason [`Reason::Fleet`]. Without a circuit for that tenant yet, the switch is kept
    /// (a reset drops it) and made when the circuit is created. `Open` and `HalfOpen` are no
    /// operator's switch and change nothing.
    ///
    /// Returns `false` when the registry is gone.
    pub fn operate(&self, provider: &str, tenant: &str, state: State) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        if matches!(state, State::Open | State::HalfOpen) {
            return true;
        }
        let fact = Fact::Operator(state);
        let keep = (state != State::Closed).then_some(fact);
        if let Some(circuit) = hub
            .note(provider, tenant, keep)
            .and_then(|p| p.find(tenant))
        {
            hub.apply(&circuit, fact);
        }
        true
    }

    /// The config of the circuit of (`provider`, `tenant`), if it exists here: for settings the
    /// fleet needs, such as how long a probe may take ([`Config::probe_timeout`]).
    pub fn config(&self, provider: &str, tenant: &str) -> Option<Config> {
        let hub = self.hub.upgrade()?;
        let provider = hub.lock().providers.get(provider).cloned()?;
        let circuit = provider.find(tenant)?;
        Some(circuit.config().clone())
    }

    /// The state of the circuit of (`provider`, `tenant`) as stored, if it exists here: for a
    /// fleet that must not disturb a probe in flight. Unlike [`Circuit::state`], an open circuit
    /// whose period is over reads `Open` until a call takes a probe; `HalfOpen` means one did.
    pub fn state(&self, provider: &str, tenant: &str) -> Option<State> {
        let hub = self.hub.upgrade()?;
        let provider = hub.lock().providers.get(provider).cloned()?;
        Some(provider.find(tenant)?.stored_state())
    }

    /// The counters of the circuit of (`provider`, `tenant`), if it exists here: for a fleet
    /// that pools evidence, read from its background task (a success is never told to
    /// [`Fleet::failed`]; its effect on the failure streak and the window shows here).
    pub fn metrics(&self, provider: &str, tenant: &str) -> Option<Metrics> {
        let hub = self.hub.upgrade()?;
        let provider = hub.lock().providers.get(provider).cloned()?;
        Some(provider.find(tenant)?.metrics())
    }

    /// What `provider`'s provider-wide circuit (see [`ProviderWide`]) pooled on this replica,
    /// if it has one on: for a fleet that pools the provider-wide evidence of its replicas as it
    /// pools a tenant circuit's, told of it by the failures of the provider's tenants
    /// ([`Fleet::failed`]). Its state and open-period settings are the circuit's, under the
    /// tenant [`PROVIDER_WIDE_TENANT`](crate::PROVIDER_WIDE_TENANT) ([`metrics`](Self::metrics),
    /// [`config`](Self::config)).
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use std::sync::{Arc, Mutex};
    /// use breaker::fleet::{Change, Fleet, FleetLink};
    /// use breaker::{ProviderWide, Registry};
    ///
    /// #[derive(Clone, Default)]
    /// struct Peek(Arc<Mutex<Option<FleetLink>>>);
    /// impl Fleet for Peek {
    ///     fn attach(&self, link: FleetLink) {
    ///         *self.0.lock().unwrap() = Some(link);
    ///     }
    ///     fn publish(&self, _: &Change<'_>) {}
    /// }
    ///
    /// let peek = Peek::default();
    /// let registry = Registry::builder()
    ///     .provider_wide("openai", ProviderWide::builder().distinct_tenants(3).build()?)
    ///     .fleet(peek.clone())
    ///     .build();
    /// registry.acquire("openai", "acme", None)?.failure();
    /// registry.acquire("openai", "globex", None)?.success();
    /// let link = peek.0.lock().unwrap().clone().unwrap();
    /// let pooled = link.pooled("openai").unwrap();
    /// assert_eq!((pooled.calls, pooled.failures, pooled.failing_tenants.len()), (2, 1, 1));
    /// assert_eq!(pooled.settings.distinct_tenants(), 3);
    /// assert!(link.pooled("anthropic").is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pooled(&self, provider: &str) -> Option<Pooled> {
        let hub = self.hub.upgrade()?;
        let provider = hub.lock().providers.get(provider).cloned()?;
        let (totals, failing_tenants, settings) = provider.wide_pooled()?;
        Some(Pooled {
            calls: totals.calls,
            failures: totals.failures,
            failing_tenants,
            settings,
        })
    }

    /// Whether the registry this link applies to still exists.
    pub fn is_alive(&self) -> bool {
        self.hub.strong_count() > 0
    }

    /// Facts kept for tenants without a circuit that were let go because too many were kept
    /// (more than 65,536 in force at once).
    pub fn dropped(&self) -> u64 {
        self.hub
            .upgrade()
            .map_or(0, |hub| hub.dropped.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for FleetLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetLink")
            .field("alive", &self.is_alive())
            .finish()
    }
}

/// Most facts kept for tenants that have no circuit here yet.
const MAX_KEPT: usize = 1 << 16;

#[derive(Clone, Copy, Debug)]
enum Fact {
    /// Open until `deadline_us` on the registry's clock.
    Open {
        deadline_us: u64,
        level: u32,
    },
    Close,
    Operator(State),
}

impl Fact {
    /// Whether a kept fact still says something at `now_us`.
    fn in_force(self, now_us: u64) -> bool {
        match self {
            Fact::Open { deadline_us, .. } => deadline_us > now_us,
            Fact::Close => false,
            Fact::Operator(_) => true,
        }
    }
}

/// The registry's side of a [`FleetLink`]: the providers whose circuits facts may reach, and the
/// facts kept for circuits not created yet. Only remote facts and circuit creations take its
/// lock, never a call on an existing circuit.
pub(crate) struct Hub {
    time: Arc<Timebase>,
    kept: Mutex<Kept>,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Kept {
    /// Every provider that has circuits, added by the creation of its first one.
    providers: HashMap<&'static str, Arc<Provider>>,
    /// (provider, tenant) → an opening (deadline in µs on the registry's clock) or an
    /// operator's switch.
    facts: HashMap<(Box<str>, Box<str>), Fact>,
}

impl Hub {
    pub(crate) fn new(time: Arc<Timebase>) -> Self {
        Hub {
            time,
            kept: Mutex::new(Kept::default()),
            dropped: AtomicU64::new(0),
        }
    }

    pub(crate) fn link(self: &Arc<Self>) -> FleetLink {
        FleetLink {
            hub: Arc::downgrade(self),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `fact` (to keep; a close forgets a kept opening; `None` forgets whatever is kept)
    /// and returns the provider the
    /// circuit would live in, if it has any circuit. Together with [`created`](Self::created),
    /// which takes the same lock after inserting its circuit, a fact is applied to a circuit
    /// created concurrently by one side or the other (or both: applying is idempotent).
    fn note(&self, provider: &str, tenant: &str, fact: Option<Fact>) -> Option<Arc<Provider>> {
        let now = self.time.now_us();
        let mut kept = self.lock();
        let key = (Box::<str>::from(provider), Box::<str>::from(tenant));
        match fact {
            Some(Fact::Close) => {
                if let Some(Fact::Open { .. }) = kept.facts.get(&key) {
                    kept.facts.remove(&key);
                }
            }
            Some(fact) => {
                let present = kept.facts.contains_key(&key);
                if kept.facts.len() >= MAX_KEPT && !present {
                    kept.facts.retain(|_, f| f.in_force(now));
                }
                if kept.facts.len() < MAX_KEPT || present {
                    let entry = kept.facts.entry(key).or_insert(fact);
                    // As on a circuit: a kept opening gives way to a higher level or, at the
                    // same level, to a later end; never to an operator's switch.
                    *entry = match (*entry, fact) {
                        (
                            Fact::Open {
                                deadline_us: kept_us,
                                level: kept_level,
                            },
                            Fact::Open { deadline_us, level },
                        ) if (kept_level, kept_us) > (level, deadline_us) => *entry,
                        (Fact::Operator(_), Fact::Open { .. }) => *entry,
                        _ => fact,
                    };
                } else {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                kept.facts.remove(&key);
            }
        }
        kept.providers.get(provider).cloned()
    }

    /// A circuit was just created (and stored, unless the registry is full) in `provider`, the
    /// registry's current entry for that name: applies what is kept of it.
    pub(crate) fn created(&self, provider: Arc<Provider>, circuit: &Circuit) {
        self.created_in(Some(provider), circuit);
    }

    /// A circuit was just created in a provider entry that a sweep has closed since: applies
    /// what is kept of it, without remembering the entry.
    pub(crate) fn created_unstored(&self, circuit: &Circuit) {
        self.created_in(None, circuit);
    }

    fn created_in(&self, provider: Option<Arc<Provider>>, circuit: &Circuit) {
        let kept_fact = {
            let mut kept = self.lock();
            if let Some(provider) = provider {
                // Replaces an entry a sweep closed: facts must reach the live one.
                kept.providers.insert(provider.name, provider);
            }
            if kept.facts.is_empty() {
                return;
            }
            let key = (
                Box::<str>::from(circuit.provider()),
                Box::<str>::from(circuit.tenant()),
            );
            kept.facts.get(&key).copied()
        };
        match kept_fact {
            // A fleet-wide open period that ended before this replica met the tenant: the
            // tenant has not been seen to recover, so its first call here is a probe.
            Some(Fact::Open { deadline_us, level }) if self.time.until(deadline_us).is_none() => {
                circuit.adopt_open(0, level);
            }
            Some(fact) => self.apply(circuit, fact),
            None => {}
        }
    }

    fn apply(&self, circuit: &Circuit, fact: Fact) {
        match fact {
            Fact::Open { deadline_us, level } => {
                if let Some(left_us) = self.time.until(deadline_us) {
                    circuit.adopt_open(left_us, level);
                }
            }
            Fact::Close => circuit.adopt_close(),
            Fact::Operator(state) => circuit.adopt_operator(state),
        }
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}
