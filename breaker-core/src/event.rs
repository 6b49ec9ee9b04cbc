//! What a registry tells its listeners: state transitions, rejections and slow calls.
//!
//! Listeners are registered once, on the [`RegistryBuilder`](crate::RegistryBuilder), and reach
//! each circuit through the policy it shares with its provider's other circuits, so a circuit
//! knows nothing of the registry and one without listeners (every standalone [`Circuit`]) pays
//! one predictable branch on its cold paths and nothing on its hot one.
//!
//! [`Circuit`]: crate::Circuit

use std::cell::Cell;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::contain::drop_payload;
use crate::state::State;

/// Something that happened to one circuit of a [`Registry`](crate::Registry), as given to the
/// listeners of [`RegistryBuilder::listener`](crate::RegistryBuilder::listener).
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::{Config, Event, Reason, Registry, State};
/// use std::sync::{Arc, Mutex};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// let registry = Registry::builder()
///     .default_config(Config::builder().consecutive_failures(1).build()?)
///     .listener(move |event: &Event<'_>| {
///         if let Event::Transition { tenant, from, to, reason, .. } = event {
///             log.lock().unwrap().push(format!("{tenant}: {from} -> {to} ({reason})"));
///         }
///     })
///     .build();
///
/// registry.circuit("openai", "acme").try_acquire()?.failure();
/// assert_eq!(*seen.lock().unwrap(), ["acme: closed -> open (consecutive_failures)"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The circuit moved from one state to another. Emitted once per transition, by the thread
    /// that made it.
    #[non_exhaustive]
    Transition {
        /// The circuit's provider (interned: it lives as long as the process).
        provider: &'static str,
        /// The circuit's tenant.
        tenant: &'a str,
        /// The state it left.
        from: State,
        /// The state it entered.
        to: State,
        /// What made it move.
        reason: Reason,
        /// How long the circuit stays open before a probe may pass, when it entered `Open`: the
        /// period of this trip (compounded by re-trips, with any jitter). `None` for every other
        /// transition (`ForcedOpen` lasts until an operator resets it).
        open_for: Option<Duration>,
        /// Into `Open`: the backoff level of that period (0 for a trip from closed, one more per
        /// failed probe since); 0 for every other state.
        level: u32,
    },
    /// A call was refused (the same information as the [`CircuitOpen`](crate::CircuitOpen) the
    /// caller got).
    #[non_exhaustive]
    Rejected {
        /// The circuit's provider (interned: it lives as long as the process).
        provider: &'static str,
        /// The circuit's tenant.
        tenant: &'a str,
        /// The state that refused it: `Open`, `HalfOpen` (every probe in flight) or `ForcedOpen`.
        state: State,
        /// Time left until a probe may pass, when known.
        retry_after: Option<Duration>,
        /// Whether the provider-wide circuit refused it (then `state` and `retry_after` are
        /// that circuit's, and `tenant` is the caller's): see
        /// [`CircuitOpen::is_provider_wide`](crate::CircuitOpen::is_provider_wide).
        provider_wide: bool,
    },
    /// A call took longer than the config's slow-call threshold (only with that policy).
    #[non_exhaustive]
    SlowCall {
        /// The circuit's provider (interned: it lives as long as the process).
        provider: &'static str,
        /// The circuit's tenant.
        tenant: &'a str,
        /// How long the call took, on the circuit's clock.
        elapsed: Duration,
        /// The threshold it exceeded.
        threshold: Duration,
    },
    /// A call ran past its deadline ([`Config::timeout`](crate::Config::timeout), or a caller's
    /// own timer through [`Permit::time_out`](crate::Permit::time_out)) and was counted as a
    /// failure of the provider. Comes before the transition it may cause.
    #[non_exhaustive]
    TimedOut {
        /// The circuit's provider (interned: it lives as long as the process).
        provider: &'static str,
        /// The circuit's tenant.
        tenant: &'a str,
        /// The deadline that passed, when the circuit's config sets one.
        timeout: Option<Duration>,
    },
    /// A call was refused because the circuit already had its config's
    /// [`max_in_flight`](crate::ConfigBuilder::max_in_flight) calls in flight (the caller got a
    /// [`CircuitOpen`](crate::CircuitOpen) whose `is_full()` is true). Not recorded as an outcome.
    #[non_exhaustive]
    Full {
        /// The circuit's provider (interned: it lives as long as the process).
        provider: &'static str,
        /// The circuit's tenant.
        tenant: &'a str,
        /// The limit that was reached.
        max_in_flight: u32,
    },
    /// Calls still in flight were found older than the slow-call threshold at an admission, and
    /// counted as slow then, while they still hang (each once: its own outcome, when it comes,
    /// is not recorded). Comes before the transition it may cause.
    #[non_exhaustive]
    Overdue {
        /// The circuit's provider (interned: it lives as long as the process).
        provider: &'static str,
        /// The circuit's tenant.
        tenant: &'a str,
        /// How many calls were found.
        calls: u32,
        /// The slow-call threshold they passed.
        threshold: Duration,
    },
    /// A provider's `Retry-After` asked for longer than the config's `max_open_for`: the circuit
    /// opened for `applied` (the cap), not `asked`. Follows the trip's
    /// [`Transition`](Event::Transition).
    #[non_exhaustive]
    RetryAfterCapped {
        /// The circuit's provider (interned: it lives as long as the process).
        provider: &'static str,
        /// The circuit's tenant.
        tenant: &'a str,
        /// What the provider asked for.
        asked: Duration,
        /// The open period applied: `max_open_for`.
        applied: Duration,
    },
}

impl Event<'_> {
    /// The provider of the circuit the event is about.
    pub fn provider(&self) -> &'static str {
        match self {
            Event::Transition { provider, .. }
            | Event::Rejected { provider, .. }
            | Event::SlowCall { provider, .. }
            | Event::TimedOut { provider, .. }
            | Event::Full { provider, .. }
            | Event::Overdue { provider, .. }
            | Event::RetryAfterCapped { provider, .. } => provider,
        }
    }

    /// The tenant of the circuit the event is about.
    pub fn tenant(&self) -> &str {
        match self {
            Event::Transition { tenant, .. }
            | Event::Rejected { tenant, .. }
            | Event::SlowCall { tenant, .. }
            | Event::TimedOut { tenant, .. }
            | Event::Full { tenant, .. }
            | Event::Overdue { tenant, .. }
            | Event::RetryAfterCapped { tenant, .. } => tenant,
        }
    }
}

/// Why a circuit changed state, in an [`Event::Transition`].
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::Reason;
/// assert_eq!(Reason::FailureRate.to_string(), "failure_rate");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Closed → open: the consecutive-failure threshold was reached.
    ConsecutiveFailures,
    /// Closed → open: the failure rate over the window reached its threshold.
    FailureRate,
    /// Closed → open: the slow-call rate over the window reached its threshold.
    SlowCallRate,
    /// Open → half-open: the open period is over and a call came to probe.
    OpenPeriodElapsed,
    /// Half-open → open: a probe failed (or was slow), so the open period compounds.
    ProbeFailed,
    /// Half-open → open: a probe stayed outstanding for the config's `probe_timeout` and counted
    /// as a failure (its `on_abandoned` outcome), so the open period compounds.
    ProbeTimedOut,
    /// Half-open → closed: enough probes succeeded.
    ProbesSucceeded,
    /// An operator's switch: `force_open`, `disable`, `metrics_only` or `reset`.
    Operator,
    /// Closed or half-open → open: a call was recorded as [`Outcome::RetryAfter`]; the circuit
    /// opened at once for the time the provider asked for, given here (capped at
    /// `max_open_for`).
    ///
    /// [`Outcome::RetryAfter`]: crate::Outcome::RetryAfter
    RetryAfter(Duration),
    /// Another replica's circuit opened or closed, or an operator switched it there, applied
    /// through the registry's [`Fleet`](crate::fleet::Fleet).
    Fleet,
    /// Closed → open, a provider-wide circuit (see [`ProviderWide`](crate::ProviderWide)): the
    /// pooled outcomes of the provider's tenants met its thresholds, or enough distinct tenants
    /// got a `Retry-After` (then the circuit opened for that time).
    ProviderWide(WideEvidence),
}

/// What a provider-wide circuit tripped on ([`Reason::ProviderWide`]): the pooled window of all
/// the provider's tenants at the trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct WideEvidence {
    /// Outcomes in the pooled window.
    pub calls: u32,
    /// Failures among them.
    pub failures: u32,
    /// Distinct tenants whose calls failed in the window.
    pub failing_tenants: u32,
    /// The `Retry-After` it opened for, when a wave of them from distinct tenants tripped it.
    pub retry_after: Option<Duration>,
}

impl WideEvidence {
    pub(crate) fn new(
        calls: u32,
        failures: u32,
        failing_tenants: u32,
        retry_after: Option<Duration>,
    ) -> Self {
        WideEvidence {
            calls,
            failures,
            failing_tenants,
            retry_after,
        }
    }

    /// The pooled failure rate: failures / calls.
    pub fn failure_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            f64::from(self.failures) / f64::from(self.calls)
        }
    }
}

impl Reason {
    /// Lower-case name, as used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ConsecutiveFailures => "consecutive_failures",
            Reason::FailureRate => "failure_rate",
            Reason::SlowCallRate => "slow_call_rate",
            Reason::OpenPeriodElapsed => "open_period_elapsed",
            Reason::ProbeFailed => "probe_failed",
            Reason::ProbeTimedOut => "probe_timed_out",
            Reason::ProbesSucceeded => "probes_succeeded",
            Reason::Operator => "operator",
            Reason::RetryAfter(_) => "retry_after",
            Reason::Fleet => "fleet",
            Reason::ProviderWide(_) => "provider_wide",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) type Listener = Box<dyn Fn(&Event<'_>) + Send + Sync + 'static>;

/// What a registry's fleet subscribes through (`fleet::sharer`), so that events know nothing of
/// fleets: the transitions it shares, and the failures of closed circuits (the evidence it
/// pools), both from cold paths.
pub(crate) trait Sharer: Send + Sync + 'static {
    /// Told of every transition, also of an operator's switch that moved nothing here.
    fn transition(&self, event: &Event<'_>);
    /// A closed circuit recorded a failure; `streak` is its failure streak after it (0 without
    /// the consecutive policy).
    fn failed(&self, provider: &'static str, tenant: &str, streak: u32);
}

/// The listeners of one registry, and the sharer its fleet subscribes through, shared by the
/// policies of all its circuits.
pub(crate) struct Listeners {
    listeners: Vec<Listener>,
    /// Told of every transition, also of an operator's switch that moved nothing here, outside
    /// the listeners' re-entry guard, and of the failures of closed circuits: the slot the
    /// registry builder connects its fleet to.
    sharer: Option<Box<dyn Sharer>>,
}

thread_local! {
    /// Set while this thread runs listeners: events raised by a listener's own calls into the
    /// registry are not delivered, so a listener that touches an open circuit on a rejection
    /// cannot recurse until the stack overflows.
    static EMITTING: Cell<bool> = const { Cell::new(false) };
}

impl Listeners {
    /// `None` when there is nothing to call, so circuits test one `Option` before building an
    /// event.
    pub(crate) fn new(listeners: Vec<Listener>, sharer: Option<Box<dyn Sharer>>) -> Option<Self> {
        (!listeners.is_empty() || sharer.is_some()).then_some(Listeners { listeners, sharer })
    }

    /// Hands a transition to the sharer (the fleet), then calls every listener with `event`.
    /// The caller holds no lock and has already published whatever the event reports. A
    /// panicking listener (or fleet) is contained here: the panic does not reach the call that
    /// raised the event, and the other listeners still run.
    #[cold]
    pub(crate) fn emit(&self, event: &Event<'_>) {
        self.share(event);
        if self.listeners.is_empty() || EMITTING.with(|e| e.replace(true)) {
            return;
        }
        for listener in &self.listeners {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| listener(event))) {
                drop_payload(payload);
            }
        }
        EMITTING.with(|e| e.set(false));
    }

    /// Hands a transition to the sharer (the fleet, which picks what it shares), without calling
    /// listeners: also for an operator's switch that moved nothing on this replica (a reset of a
    /// closed circuit), which may move the others.
    #[cold]
    pub(crate) fn share(&self, event: &Event<'_>) {
        if let (Some(sharer), Event::Transition { .. }) = (&self.sharer, event) {
            // Outside the re-entry guard: a transition a listener's own call makes is still the
            // fleet's business, and sharing never calls back into the registry.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| sharer.transition(event))) {
                drop_payload(payload);
            }
        }
    }

    /// Hands a closed circuit's failure to the sharer (the fleet queues it for its background
    /// task and returns); nothing without a fleet. A panic is contained here.
    #[cold]
    pub(crate) fn failed(&self, provider: &'static str, tenant: &str, streak: u32) {
        if let Some(sharer) = &self.sharer {
            if let Err(payload) =
                catch_unwind(AssertUnwindSafe(|| sharer.failed(provider, tenant, streak)))
            {
                drop_payload(payload);
            }
        }
    }
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} listener(s){}",
            self.listeners.len(),
            if self.sharer.is_some() {
                ", a fleet"
            } else {
                ""
            }
        )
    }
}
