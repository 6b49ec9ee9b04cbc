//! The rejection error.

use std::fmt;
use std::time::Duration;

use crate::classify::{Classify, Outcome};
use crate::name::Name;
use crate::state::State;

/// A call was rejected because its circuit is open.
///
/// Carries which circuit rejected it and, when known, how long until a probe may pass. Building
/// one never allocates and touches no shared memory: the provider name is interned and a tenant
/// name of up to 23 bytes is copied inline (a longer one is shared by reference count).
///
/// Functions annotated with `#[circuit_breaker]` return it through their own error type, which
/// must implement `From<CircuitOpen>`.
///
/// ```
/// # use breaker_core as breaker;
/// use std::time::Duration;
/// use breaker::{Circuit, Config, ManualClock, State};
///
/// let clock = ManualClock::new();
/// let circuit = Circuit::with_clock(Config::builder().consecutive_failures(1).build()?, clock.clone());
/// circuit.try_acquire()?.failure();
/// clock.advance(Duration::from_secs(20));
///
/// let err = circuit.try_acquire().unwrap_err();
/// assert_eq!(err.state(), State::Open);
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(10)));
/// assert_eq!(err.to_string(), "circuit open: retry after 10s");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct CircuitOpen {
    provider: &'static str,
    tenant: Name,
    state: State,
    /// What refused the call (in the padding after `state`: the error stays seven words).
    kind: Kind,
    /// Microseconds, or `UNKNOWN`: the `Duration` is made when asked for, off the hot path.
    retry_after_us: u64,
}

/// Why a [`CircuitOpen`] was made.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The circuit refused the call.
    Rejected,
    /// The call was admitted, and its deadline passed (`Config::timeout`).
    TimedOut,
    /// The circuit already had `max_in_flight` calls in flight.
    Full,
    /// The provider-wide circuit of the tenant's provider refused the call.
    ProviderWide,
}

impl CircuitOpen {
    /// `retry_after_us` of a rejection that does not know when a probe may pass.
    pub(crate) const UNKNOWN: u64 = u64::MAX;

    #[inline]
    pub(crate) fn new(
        provider: &'static str,
        tenant: Name,
        state: State,
        retry_after_us: u64,
    ) -> Self {
        CircuitOpen {
            provider,
            tenant,
            state,
            kind: Kind::Rejected,
            retry_after_us,
        }
    }

    /// A call admitted by the circuit whose deadline passed: `state` and `retry_after_us` are the
    /// circuit's after the timeout was recorded (open, with its retry-after, if it tripped it).
    pub(crate) fn timed_out(
        provider: &'static str,
        tenant: Name,
        state: State,
        retry_after_us: u64,
    ) -> Self {
        CircuitOpen {
            kind: Kind::TimedOut,
            ..CircuitOpen::new(provider, tenant, state, retry_after_us)
        }
    }

    /// A call refused because its circuit (closed) already had `max_in_flight` calls in flight.
    #[cold]
    pub(crate) fn full(provider: &'static str, tenant: Name) -> Self {
        CircuitOpen {
            kind: Kind::Full,
            ..CircuitOpen::new(provider, tenant, State::Closed, Self::UNKNOWN)
        }
    }

    /// Whether the call was refused because its circuit already had
    /// [`max_in_flight`](crate::ConfigBuilder::max_in_flight) calls in flight (a bulkhead), not
    /// because it is open: the provider was not asked and nothing was recorded.
    /// [`state`](Self::state) is the circuit's (`Closed`) and [`retry_after`](Self::retry_after)
    /// is `None`: a place frees up when one of the calls in flight ends.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{Circuit, Config, State};
    ///
    /// let circuit = Circuit::new(Config::builder().max_in_flight(1).build()?);
    /// let hung = circuit.try_acquire()?;
    /// let full = circuit.try_acquire().unwrap_err();
    /// assert!(full.is_full() && !full.is_timeout());
    /// assert_eq!(full.state(), State::Closed);
    /// drop(hung); // a cancelled call gives its place back too
    /// assert!(circuit.try_acquire().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_full(&self) -> bool {
        self.kind == Kind::Full
    }

    /// Whether the call was admitted and then ran past its deadline
    /// ([`Config::timeout`](crate::Config::timeout)), rather than refused by the circuit. The
    /// timeout was recorded as a failure of the provider; [`state`](Self::state) and
    /// [`retry_after`](Self::retry_after) are the circuit's after it (open, with the time until
    /// a probe, when this timeout tripped it).
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use std::time::Duration;
    /// use breaker::{Circuit, Config, ManualClock, State};
    ///
    /// let clock = ManualClock::new();
    /// let config = Config::builder()
    ///     .consecutive_failures(1)
    ///     .timeout(Duration::from_secs(2))
    ///     .build()?;
    /// let circuit = Circuit::with_clock(config, clock.clone());
    /// let permit = circuit.try_acquire()?;
    /// // ... the call hangs; the caller's timer fires after 2 s:
    /// let err = permit.time_out();
    /// assert!(err.is_timeout());
    /// assert_eq!(err.state(), State::Open);
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    /// assert!(!circuit.try_acquire().unwrap_err().is_timeout());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.kind == Kind::TimedOut
    }

    /// A rejection of the provider-wide circuit above the circuit of `tenant`.
    #[cold]
    pub(crate) fn provider_wide(
        provider: &'static str,
        tenant: Name,
        state: State,
        retry_after_us: u64,
    ) -> Self {
        CircuitOpen {
            kind: Kind::ProviderWide,
            ..CircuitOpen::new(provider, tenant, state, retry_after_us)
        }
    }

    /// Whether the call was refused by its provider's provider-wide circuit (see
    /// [`ProviderWide`](crate::ProviderWide)) rather than by its tenant's own circuit:
    /// the provider is failing for many tenants, so retrying with another tenant's key will not
    /// help. [`tenant`](Self::tenant) is the caller's tenant; [`state`](Self::state) and
    /// [`retry_after`](Self::retry_after) are the provider circuit's.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{ManualClock, ProviderWide, Registry};
    ///
    /// let registry = Registry::builder()
    ///     .clock(ManualClock::new())
    ///     .provider_wide("openai", ProviderWide::default())
    ///     .build();
    /// registry.provider_circuit("openai").unwrap().force_open();
    /// let err = registry.acquire("openai", "acme", None).unwrap_err();
    /// assert!(err.is_provider_wide());
    /// assert_eq!(err.tenant(), "acme");
    /// ```
    pub fn is_provider_wide(&self) -> bool {
        self.kind == Kind::ProviderWide
    }

    /// The provider whose circuit rejected the call (empty for a standalone circuit).
    pub fn provider(&self) -> &str {
        self.provider
    }

    /// The tenant whose circuit rejected the call (empty for a standalone circuit).
    pub fn tenant(&self) -> &str {
        self.tenant.as_str()
    }

    /// The state that rejected the call: `Open`, `HalfOpen` (every probe slot taken) or
    /// `ForcedOpen` (`Closed` when [`is_full`](Self::is_full)).
    pub fn state(&self) -> State {
        self.state
    }

    /// Time left, at the moment of rejection, until a probe may pass. `None` when that is not
    /// known: half-open with its probes in flight, or forced open.
    pub fn retry_after(&self) -> Option<Duration> {
        Self::retry_after_of(self.retry_after_us)
    }

    /// `retry_after_us` (or `UNKNOWN`) as the `Duration` it stands for; also what a rejection
    /// event carries, built before the error itself.
    #[inline]
    pub(crate) fn retry_after_of(retry_after_us: u64) -> Option<Duration> {
        (retry_after_us != Self::UNKNOWN).then(|| Duration::from_micros(retry_after_us))
    }

    /// The rejection inside `err`: `err` itself, or the first error of its
    /// [`source`](std::error::Error::source) chain that is a `CircuitOpen`, so callers whose
    /// error type wraps the rejection (`ApiError::Open(CircuitOpen)` with a `source`, an
    /// `io::Error` made by `From<CircuitOpen>`, a boxed error) can still tell a rejection from a
    /// failure.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{Circuit, CircuitOpen, Config};
    ///
    /// let circuit = Circuit::new(Config::builder().consecutive_failures(1).build()?);
    /// circuit.try_acquire()?.failure();
    ///
    /// let err = std::io::Error::from(circuit.try_acquire().unwrap_err());
    /// assert!(CircuitOpen::find_in(&err).is_some());
    /// let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    /// assert!(CircuitOpen::find_in(&*boxed).is_some());
    /// assert!(CircuitOpen::find_in(&std::fmt::Error).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn find_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a CircuitOpen> {
        let mut next = Some(err);
        while let Some(err) = next {
            if let Some(open) = err.downcast_ref::<CircuitOpen>() {
                return Some(open);
            }
            // `io::Error::source` skips its own payload (it returns the payload's source), so
            // the payload is visited explicitly.
            next = match err
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(payload) => Some(payload),
                None => err.source(),
            };
        }
        None
    }
}

/// When to come back after a rejection: the [`CircuitOpen::retry_after`] of the rejection found
/// in `err` or its source chain (see [`CircuitOpen::find_in`]); `None` when `err` is no rejection
/// or the time is not known.
///
/// It is made for the "retry after" hooks of retry crates, which should not retry a rejection on
/// their own schedule: with [backon](https://docs.rs/backon), `.adjust(|e, backoff|
/// retry_after_hint(e).or(backoff))` sleeps until the circuit lets a probe through. Keep those
/// retries *outside* the breaker, and the retries of transient errors *inside* it (one permit
/// per logical call; see the README's "Retries" section).
///
/// ```
/// # use breaker_core as breaker;
/// use std::time::Duration;
/// use breaker::{retry_after_hint, Circuit, Config, ManualClock};
///
/// let clock = ManualClock::new();
/// let circuit = Circuit::with_clock(Config::builder().consecutive_failures(1).build()?, clock.clone());
/// circuit.try_acquire()?.failure();
/// clock.advance(Duration::from_secs(25));
///
/// let err = std::io::Error::from(circuit.try_acquire().unwrap_err());
/// assert_eq!(retry_after_hint(&err), Some(Duration::from_secs(5)));
/// assert_eq!(retry_after_hint(&std::io::Error::other("reset")), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn retry_after_hint(err: &(dyn std::error::Error + 'static)) -> Option<Duration> {
    CircuitOpen::find_in(err)?.retry_after()
}

impl fmt::Debug for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CircuitOpen");
        d.field("provider", &self.provider())
            .field("tenant", &self.tenant())
            .field("state", &self.state)
            .field("retry_after", &self.retry_after());
        if self.is_timeout() {
            d.field("timed_out", &true);
        }
        if self.is_full() {
            d.field("full", &true);
        }
        if self.is_provider_wide() {
            d.field("provider_wide", &true);
        }
        d.finish()
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.state) {
            (Kind::TimedOut, _) => f.write_str("call timed out")?,
            (Kind::Full, _) => f.write_str("circuit full: max_in_flight calls in flight")?,
            (Kind::ProviderWide, State::HalfOpen) => {
                f.write_str("provider-wide circuit half-open, its probe in flight")?
            }
            (Kind::ProviderWide, State::ForcedOpen) => {
                f.write_str("provider-wide circuit forced open")?
            }
            (Kind::ProviderWide, _) => f.write_str("provider-wide circuit open")?,
            (_, State::HalfOpen) => f.write_str("circuit half-open, all probes in flight")?,
            (_, State::ForcedOpen) => f.write_str("circuit forced open")?,
            _ => f.write_str("circuit open")?,
        }
        match (self.provider(), self.tenant()) {
            ("", "") => {}
            (p, "") => write!(f, " for provider `{p}`")?,
            (p, t) => write!(f, " for provider `{p}`, tenant `{t}`")?,
        }
        if let Some(d) = self.retry_after() {
            write!(f, ": retry after {d:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CircuitOpen {}

/// Lets functions returning `io::Result<T>` carry a rejection (as an [`io::ErrorKind::Other`]
/// error whose source is the `CircuitOpen`, recoverable with `get_ref()?.downcast_ref()`).
///
/// [`io::ErrorKind::Other`]: std::io::ErrorKind::Other
impl From<CircuitOpen> for std::io::Error {
    fn from(open: CircuitOpen) -> Self {
        std::io::Error::other(open)
    }
}

/// A rejection from a nested breaker says nothing about this call's dependency.
impl Classify for CircuitOpen {
    fn classify(&self) -> Outcome {
        Outcome::Ignored
    }
}
