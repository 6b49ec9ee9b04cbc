//! Validated circuit configuration. A [`Config`] can only be obtained from
//! [`ConfigBuilder::build`], so every circuit runs on values that were checked once, up front.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::classify::Outcome;

/// The longest duration any setting accepts. Far beyond any sensible open period, and small
/// enough that adding it to any instant a process can see never overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The largest count window ([`Window::Calls`]): one byte per call is kept.
pub const MAX_WINDOW_CALLS: u32 = 1_000_000;

/// The largest `max_in_flight`.
pub const MAX_IN_FLIGHT: u32 = 1_000_000_000;

/// The largest `half_open_probes` and `half_open_successes`.
pub const MAX_PROBES: u32 = u16::MAX as u32;

/// The window over which failure and slow-call rates are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// The last `n` recorded outcomes (count-based, truly sliding: each new outcome evicts the
    /// oldest one). Once threads record into one window at the same moment, it is split into
    /// per-core stripes so that cores never write the same cache line: `s` stripes (at most 16,
    /// and few enough that `n / s` holds `minimum_calls`), each the last `n / s` outcomes
    /// recorded through it, summed. With threads calling at similar rates that is still the
    /// last `n` calls; a thread that stops calling leaves its stripe's outcomes in the window
    /// until it calls again or the window is next cleared (a trip, a close, a reset). The
    /// window restarts empty when it splits, once for the circuit's life.
    Calls(u32),
    /// The outcomes of the last `d` (time-based). Kept in a fixed ring of buckets, never one
    /// record per call, so memory is bounded whatever the call rate. Once threads record into
    /// one window at the same moment, it keeps a ring per core (up to 16 of 384 bytes, made
    /// once for the circuit's life) so that cores never write the same cache line; its totals
    /// are the same sums, checked after every slow call, after the successes that may bring
    /// the window to `minimum_calls` (the only ones that could trip it), and after a failure
    /// whose bucket is at the failure-rate threshold, or one in four of those below it: the
    /// window's rate is its buckets' rates averaged by their calls, so a provider failing at
    /// the threshold is checked at every failure, and a crossing made only by buckets below it
    /// is caught a few failures late (missed, if the rate falls back first).
    Time(Duration),
}

impl Default for Window {
    fn default() -> Self {
        Window::Calls(100)
    }
}

/// A validated circuit configuration.
///
/// ```
/// # use breaker_core as breaker;
/// use std::time::Duration;
/// use breaker::{Config, Window};
///
/// let config = Config::builder()
///     .failure_rate(0.5, Window::Calls(20))
///     .minimum_calls(10)
///     .open_for(Duration::from_secs(10))
///     .build()?;
/// assert_eq!(config.open_for(), Duration::from_secs(10));
/// # Ok::<(), breaker::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) slow_call: Option<(Duration, f64)>,
    pub(crate) window: Window,
    pub(crate) minimum_calls: u32,
    pub(crate) open_for: Duration,
    pub(crate) max_open_for: Duration,
    pub(crate) backoff_multiplier: f64,
    pub(crate) jitter: f64,
    pub(crate) half_open_probes: u32,
    pub(crate) half_open_successes: u32,
    pub(crate) on_abandoned: Outcome,
    pub(crate) probe_timeout: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) first_item_timeout: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) on_cancel: Outcome,
    pub(crate) max_in_flight: Option<u32>,
}

impl Config {
    /// Starts a builder with the defaults: trip after 5 consecutive failures, open for 30 s,
    /// doubling on each re-trip up to 300 s, one half-open probe, let go after 60 s if its call
    /// never returns.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// Failures in a row that trip the circuit, if that policy is active.
    pub fn consecutive_failures(&self) -> Option<u32> {
        self.consecutive_failures
    }
    /// Failure-rate threshold, if that policy is active.
    pub fn failure_rate(&self) -> Option<f64> {
        self.failure_rate
    }
    /// Slow-call threshold and rate, if that policy is active.
    pub fn slow_calls(&self) -> Option<(Duration, f64)> {
        self.slow_call
    }
    /// The window the rates are measured over.
    pub fn window(&self) -> Window {
        self.window
    }
    /// Outcomes needed in the window before a rate can trip the circuit.
    pub fn minimum_calls(&self) -> u32 {
        self.minimum_calls
    }
    /// The first open period.
    pub fn open_for(&self) -> Duration {
        self.open_for
    }
    /// The longest open period backoff can reach.
    pub fn max_open_for(&self) -> Duration {
        self.max_open_for
    }
    /// Factor applied to the open period on every re-trip from half-open.
    pub fn backoff_multiplier(&self) -> f64 {
        self.backoff_multiplier
    }
    /// Random spread of each open period, as a fraction (±).
    pub fn jitter(&self) -> f64 {
        self.jitter
    }
    /// The longest open period this config can give a circuit: [`max_open_for`](Self::max_open_for)
    /// stretched by the most [`jitter`](Self::jitter) can add. A circuit holds an opening that
    /// another replica shared ([`FleetLink::open`](crate::fleet::FleetLink::open)) no longer than
    /// this, whatever the store said.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use std::time::Duration;
    /// use breaker::Config;
    ///
    /// let config = Config::builder().max_open_for(Duration::from_secs(300)).jitter(0.2).build()?;
    /// assert_eq!(config.longest_open_for(), Duration::from_secs(360));
    /// # Ok::<(), breaker::ConfigError>(())
    /// ```
    pub fn longest_open_for(&self) -> Duration {
        // Both factors are validated (a duration of at most a year, a jitter below 1): no overflow.
        self.max_open_for
            .mul_f64(1.0 + self.jitter)
            .min(MAX_DURATION)
    }
    /// Calls admitted concurrently in half-open.
    pub fn half_open_probes(&self) -> u32 {
        self.half_open_probes
    }
    /// Probe successes needed to close.
    pub fn half_open_successes(&self) -> u32 {
        self.half_open_successes
    }
    /// What a permit dropped without a record counts as.
    pub fn on_abandoned(&self) -> Outcome {
        self.on_abandoned
    }
    /// How long a half-open probe may stay outstanding before it stops holding its slot.
    pub fn probe_timeout(&self) -> Duration {
        self.probe_timeout
    }
    /// The deadline of each call, if set (see [`ConfigBuilder::timeout`]).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    /// The longest wait for a guarded stream's first item, if set.
    pub fn first_item_timeout(&self) -> Option<Duration> {
        self.first_item_timeout
    }
    /// The longest gap between a guarded stream's items, if set.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }
    /// What a caller leaving counts as (see [`ConfigBuilder::on_cancel`]): a call dropped
    /// before its [`timeout`](Self::timeout), or a guarded stream dropped after its first item.
    pub fn on_cancel(&self) -> Outcome {
        self.on_cancel
    }
    /// The most calls a circuit lets run at once, if set (see [`ConfigBuilder::max_in_flight`]).
    pub fn max_in_flight(&self) -> Option<u32> {
        self.max_in_flight
    }
    /// A builder holding every value of this config, to change some and build again. Defaults
    /// the config took are set explicitly there: the default `consecutive_failures(5)` of a
    /// config without a rate policy stays on if a rate policy is added.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use std::time::Duration;
    /// use breaker::Config;
    ///
    /// let base = Config::builder().consecutive_failures(3).build()?;
    /// let bounded = base.to_builder().timeout(Duration::from_secs(30)).build()?;
    /// assert_eq!(bounded.consecutive_failures(), Some(3));
    /// assert_eq!(bounded.timeout(), Some(Duration::from_secs(30)));
    /// # Ok::<(), breaker::ConfigError>(())
    /// ```
    pub fn to_builder(&self) -> ConfigBuilder {
        ConfigBuilder {
            consecutive_failures: self.consecutive_failures,
            failure_rate: self.failure_rate,
            slow_call: self.slow_call,
            window: Some(self.window),
            minimum_calls: Some(self.minimum_calls),
            open_for: Some(self.open_for),
            max_open_for: Some(self.max_open_for),
            backoff_multiplier: Some(self.backoff_multiplier),
            jitter: Some(self.jitter),
            half_open_probes: Some(self.half_open_probes),
            half_open_successes: Some(self.half_open_successes),
            on_abandoned: Some(self.on_abandoned),
            probe_timeout: Some(self.probe_timeout),
            timeout: self.timeout,
            first_item_timeout: self.first_item_timeout,
            idle_timeout: self.idle_timeout,
            on_cancel: Some(self.on_cancel),
            max_in_flight: self.max_in_flight,
        }
    }
    /// Whether outcomes are kept in a window (a rate policy is active).
    pub(crate) fn has_window(&self) -> bool {
        self.failure_rate.is_some() || self.slow_call.is_some()
    }
}

impl Default for Config {
    fn default() -> Self {
        match ConfigBuilder::default().build() {
            Ok(c) => c,
            // The defaults are constants checked by `defaults_are_valid` below.
            Err(e) => unreachable!("default config is invalid: {e}"),
        }
    }
}

/// Builds a [`Config`]; every value is checked by [`build`](ConfigBuilder::build).
///
/// ```
/// # use breaker_core as breaker;
/// use std::time::Duration;
/// use breaker::Config;
///
/// let err = Config::builder().failure_rate(1.5, Default::default()).build().unwrap_err();
/// assert_eq!(err.field(), "failure_rate");
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ConfigBuilder {
    consecutive_failures: Option<u32>,
    failure_rate: Option<f64>,
    slow_call: Option<(Duration, f64)>,
    window: Option<Window>,
    minimum_calls: Option<u32>,
    open_for: Option<Duration>,
    max_open_for: Option<Duration>,
    backoff_multiplier: Option<f64>,
    jitter: Option<f64>,
    half_open_probes: Option<u32>,
    half_open_successes: Option<u32>,
    on_abandoned: Option<Outcome>,
    probe_timeout: Option<Duration>,
    timeout: Option<Duration>,
    first_item_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    on_cancel: Option<Outcome>,
    max_in_flight: Option<u32>,
}

impl ConfigBuilder {
    /// Trips after `n` consecutive recorded failures. This is the default policy (n = 5) when no
    /// rate policy is set; set explicitly, it stays active beside the rate policies.
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = Some(n);
        self
    }

    /// Trips when the failure rate over `window` reaches `threshold` (in (0, 1]) with at least
    /// [`minimum_calls`](Self::minimum_calls) outcomes in the window. Checked after every
    /// recorded outcome, successes included.
    pub fn failure_rate(mut self, threshold: f64, window: Window) -> Self {
        self.failure_rate = Some(threshold);
        self.window = Some(window);
        self
    }

    /// Sets the window on its own (used by the slow-call policy when no failure rate is set).
    pub fn window(mut self, window: Window) -> Self {
        self.window = Some(window);
        self
    }

    /// Outcomes needed in the window before either rate can trip (default: 10, or the count
    /// window's size when smaller).
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.minimum_calls = Some(n);
        self
    }

    /// A call slower than `threshold` is slow; trips when the slow-call rate over the window
    /// reaches `rate` (in (0, 1]).
    pub fn slow_calls(mut self, threshold: Duration, rate: f64) -> Self {
        self.slow_call = Some((threshold, rate));
        self
    }

    /// The first open period (default 30 s).
    pub fn open_for(mut self, d: Duration) -> Self {
        self.open_for = Some(d);
        self
    }

    /// The cap of the compounding open period (default 300 s).
    pub fn max_open_for(mut self, d: Duration) -> Self {
        self.max_open_for = Some(d);
        self
    }

    /// Factor of the open period on every re-trip from half-open (default 2.0, at least 1).
    pub fn backoff_multiplier(mut self, m: f64) -> Self {
        self.backoff_multiplier = Some(m);
        self
    }

    /// Spreads each open period uniformly by ±`fraction` (default 0, must be in [0, 1)).
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = Some(fraction);
        self
    }

    /// Calls admitted concurrently in half-open (default 1).
    pub fn half_open_probes(mut self, n: u32) -> Self {
        self.half_open_probes = Some(n);
        self
    }

    /// Probe successes needed to close (default: the number of probes).
    pub fn half_open_successes(mut self, n: u32) -> Self {
        self.half_open_successes = Some(n);
        self
    }

    /// What a permit dropped without a record counts as (default [`Outcome::Failure`]).
    pub fn on_abandoned(mut self, outcome: Outcome) -> Self {
        self.on_abandoned = Some(outcome);
        self
    }

    /// How long a half-open probe may stay outstanding (default 60 s). A probe
    /// whose call never returns and is never dropped (an HTTP call without a client timeout)
    /// would otherwise hold its slot, and keep the circuit half-open and refusing every call,
    /// forever. Once a probe has been outstanding this long, the next call that finds every
    /// probe slot taken counts it as [`on_abandoned`](Self::on_abandoned) (by default a failure:
    /// the circuit reopens on the next backoff step; `Ignored`: its slot is free for a new
    /// probe) and the probe's own outcome, whenever it comes, changes nothing.
    ///
    /// With several probe slots, the timeout runs from the latest probe's start: probes that
    /// started earlier are let go together with it.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use breaker_core as breaker;
    /// use breaker::{Circuit, Config, ManualClock, State};
    ///
    /// let clock = ManualClock::new();
    /// let config = Config::builder()
    ///     .consecutive_failures(1)
    ///     .open_for(Duration::from_secs(10))
    ///     .probe_timeout(Duration::from_secs(30))
    ///     .build()?;
    /// let circuit = Circuit::with_clock(config, clock.clone());
    /// circuit.try_acquire()?.failure();
    /// clock.advance(Duration::from_secs(10));
    /// let hung = circuit.try_acquire()?; // the probe, whose call never returns
    ///
    /// clock.advance(Duration::from_secs(30));
    /// let rejected = circuit.try_acquire().unwrap_err(); // the hung probe counted as a failure
    /// assert_eq!(rejected.retry_after(), Some(Duration::from_secs(20)), "reopened, backoff 2x");
    /// hung.success(); // too late: changes nothing
    /// assert_eq!(circuit.state(), State::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn probe_timeout(mut self, d: Duration) -> Self {
        self.probe_timeout = Some(d);
        self
    }

    /// A deadline for each call (default: none). A `#[circuit_breaker]` site that declares
    /// `timeout = ..` races its async body against it (the `tokio` feature: tokio's timer, paused
    /// time included), taking the value from its circuit's config, so a retuning through
    /// `Registry::configure` changes it: when it passes, the call is dropped, counted as a
    /// failure of the provider ([`Permit::time_out`](crate::Permit::time_out): the listeners get
    /// an [`Event::TimedOut`](crate::Event::TimedOut)), and the caller gets a [`CircuitOpen`]
    /// whose [`is_timeout`](crate::CircuitOpen::is_timeout) is true. A hung provider then trips the
    /// circuit after `consecutive_failures` deadlines, however patient the callers are.
    ///
    /// With a deadline set, a call its caller drops before the deadline is the caller leaving,
    /// not the provider failing: it counts as [`on_cancel`](Self::on_cancel) (ignored by
    /// default) instead of [`on_abandoned`](Self::on_abandoned), which keeps its meaning for
    /// panics and for circuits without a deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use breaker_core as breaker;
    /// use breaker::{Config, Outcome};
    ///
    /// let config = Config::builder().timeout(Duration::from_secs(2)).build()?;
    /// assert_eq!(config.timeout(), Some(Duration::from_secs(2)));
    /// assert_eq!(config.on_cancel(), Outcome::Ignored);
    /// # Ok::<(), breaker::ConfigError>(())
    /// ```
    ///
    /// [`CircuitOpen`]: crate::CircuitOpen
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Streams (feature `stream`): a guarded stream whose first item comes more than `d` after
    /// it was guarded (its call returned the stream: the answer's head) counts as a failure,
    /// recorded when that item arrives or the stream is dropped, whichever comes first (off by
    /// default). No timer runs: a stream that never yields is judged when its consumer drops it.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use breaker_core as breaker;
    /// use breaker::Config;
    ///
    /// let config = Config::builder()
    ///     .first_item_timeout(Duration::from_secs(10))
    ///     .idle_timeout(Duration::from_secs(30))
    ///     .build()?;
    /// assert_eq!(config.first_item_timeout(), Some(Duration::from_secs(10)));
    /// # Ok::<(), breaker::ConfigError>(())
    /// ```
    pub fn first_item_timeout(mut self, d: Duration) -> Self {
        self.first_item_timeout = Some(d);
        self
    }

    /// Streams (feature `stream`): a gap longer than `d` between two items of a guarded stream
    /// (or between its last item and its end) counts as a failure, recorded when the late item
    /// arrives or the stream is dropped, whichever comes first (off by default). The "silent
    /// stall after HTTP 200" of a streaming provider.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = Some(d);
        self
    }

    /// What a caller leaving counts as (default [`Outcome::Ignored`]: the caller went away, which
    /// says nothing about the provider):
    /// - with a [`timeout`](Self::timeout), a call its caller drops before the deadline (a
    ///   panic still counts as [`on_abandoned`](Self::on_abandoned));
    /// - a guarded stream (feature `stream`) its consumer drops after its first item and before
    ///   its end. Dropped before its first item, a stream counts as `on_abandoned` (the provider
    ///   may have hung).
    pub fn on_cancel(mut self, outcome: Outcome) -> Self {
        self.on_cancel = Some(outcome);
        self
    }

    /// A bulkhead: at most `n` calls in flight through a circuit at once (default: no limit).
    /// A call beyond `n` is refused at once with a [`CircuitOpen`](crate::CircuitOpen) whose
    /// [`is_full`](crate::CircuitOpen::is_full) is true: it says nothing about the provider, so it
    /// is not recorded, and the listeners get an [`Event::Full`](crate::Event::Full). A call
    /// holds its place from admission until its permit is recorded or dropped (a panic, a
    /// cancelled future, a timeout), so a provider that stopped answering holds `n` calls, not
    /// every call that comes. Admission stays lock-free. Half-open probes are not limited by it
    /// (`half_open_probes` bounds them).
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{Circuit, Config};
    ///
    /// let circuit = Circuit::new(Config::builder().max_in_flight(2).build()?);
    /// let (a, _b) = (circuit.try_acquire()?, circuit.try_acquire()?);
    /// assert!(circuit.try_acquire().unwrap_err().is_full());
    /// a.success(); // gives its place back
    /// assert!(circuit.try_acquire().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_in_flight(mut self, n: u32) -> Self {
        self.max_in_flight = Some(n);
        self
    }

    /// Checks every value and returns the config, or the first invalid field.
    pub fn build(self) -> Result<Config, ConfigError> {
        let window = self.window.unwrap_or_default();
        let has_rate = self.failure_rate.is_some() || self.slow_call.is_some();

        let consecutive_failures = match self.consecutive_failures {
            Some(0) => {
                return Err(ConfigError::new(
                    "consecutive_failures",
                    0,
                    "must be at least 1",
                ))
            }
            Some(n) => Some(n),
            None if has_rate => None,
            None => Some(5),
        };
        if let Some(t) = self.failure_rate {
            check_rate("failure_rate", t)?;
        }
        if let Some((threshold, rate)) = self.slow_call {
            check_duration("slow_call_threshold", threshold)?;
            check_rate("slow_call_rate", rate)?;
        }
        match window {
            Window::Calls(0) => {
                return Err(ConfigError::new(
                    "window",
                    "0 calls",
                    "must hold at least 1 call",
                ))
            }
            Window::Calls(n) if n > MAX_WINDOW_CALLS => {
                return Err(ConfigError::new(
                    "window",
                    format_args!("{n} calls"),
                    "must hold at most 1000000 calls",
                ))
            }
            Window::Calls(_) => {}
            Window::Time(d) => {
                if d < MIN_TIME_WINDOW {
                    return Err(ConfigError::new(
                        "window",
                        format_args!("{d:?}"),
                        "a time window must be at least 10ms",
                    ));
                }
                check_duration("window", d)?;
            }
        }
        let minimum_calls = match (self.minimum_calls, window) {
            (Some(0), _) => return Err(ConfigError::new("minimum_calls", 0, "must be at least 1")),
            (Some(m), Window::Calls(n)) if m > n => {
                return Err(ConfigError::new(
                    "minimum_calls",
                    m,
                    "exceeds the count window's size, so the rate could never trip",
                ))
            }
            (Some(m), _) => m,
            (None, Window::Calls(n)) => n.min(10),
            (None, Window::Time(_)) => 10,
        };

        let open_for = self.open_for.unwrap_or(Duration::from_secs(30));
        check_duration("open_for", open_for)?;
        let max_open_for = self
            .max_open_for
            .unwrap_or_else(|| open_for.max(Duration::from_secs(300)));
        check_duration("max_open_for", max_open_for)?;
        if max_open_for < open_for {
            // Say where `open_for` came from: set alone, `max_open_for = "10s"` failed against a
            // default the user never wrote.
            let reason = if self.open_for.is_some() {
                format!("must not be shorter than open_for ({open_for:?})")
            } else {
                format!(
                    "must not be shorter than open_for, which defaults to {open_for:?}: set \
                     open_for too"
                )
            };
            return Err(ConfigError::new(
                "max_open_for",
                format_args!("{max_open_for:?}"),
                reason,
            ));
        }
        let backoff_multiplier = self.backoff_multiplier.unwrap_or(2.0);
        if !backoff_multiplier.is_finite() || backoff_multiplier < 1.0 {
            return Err(ConfigError::new(
                "backoff_multiplier",
                backoff_multiplier,
                "must be a finite number of at least 1",
            ));
        }
        let jitter = self.jitter.unwrap_or(0.0);
        if !(0.0..1.0).contains(&jitter) {
            return Err(ConfigError::new("jitter", jitter, "must be in [0, 1)"));
        }
        let half_open_probes = self.half_open_probes.unwrap_or(1);
        check_probes("half_open_probes", half_open_probes)?;
        let half_open_successes = self.half_open_successes.unwrap_or(half_open_probes);
        check_probes("half_open_successes", half_open_successes)?;
        let probe_timeout = self.probe_timeout.unwrap_or(DEFAULT_PROBE_TIMEOUT);
        check_duration("probe_timeout", probe_timeout)?;
        if let Some(timeout) = self.timeout {
            check_duration("timeout", timeout)?;
        }
        if let Some(d) = self.first_item_timeout {
            check_duration("first_item_timeout", d)?;
        }
        if let Some(d) = self.idle_timeout {
            check_duration("idle_timeout", d)?;
        }
        match self.max_in_flight {
            Some(0) => return Err(ConfigError::new("max_in_flight", 0, "must be at least 1")),
            Some(n) if n > MAX_IN_FLIGHT => {
                return Err(ConfigError::new(
                    "max_in_flight",
                    n,
                    "must be at most 1000000000",
                ))
            }
            _ => {}
        }

        Ok(Config {
            consecutive_failures,
            failure_rate: self.failure_rate,
            slow_call: self.slow_call,
            window,
            minimum_calls,
            open_for,
            max_open_for,
            backoff_multiplier,
            jitter,
            half_open_probes,
            half_open_successes,
            on_abandoned: self.on_abandoned.unwrap_or(Outcome::Failure),
            probe_timeout,
            timeout: self.timeout,
            first_item_timeout: self.first_item_timeout,
            idle_timeout: self.idle_timeout,
            on_cancel: self.on_cancel.unwrap_or(Outcome::Ignored),
            max_in_flight: self.max_in_flight,
        })
    }
}

const MIN_TIME_WINDOW: Duration = Duration::from_millis(10);

/// Twice the slowest sensible provider call (an LLM completion can take 30 s), so that only a
/// probe that is really stuck is let go.
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(60);

fn check_rate(field: &'static str, rate: f64) -> Result<(), ConfigError> {
    // NaN fails both comparisons and lands here too.
    if rate > 0.0 && rate <= 1.0 {
        Ok(())
    } else {
        Err(ConfigError::new(field, rate, "must be in (0, 1]"))
    }
}

fn check_duration(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        Err(ConfigError::new(field, "0s", "must be longer than zero"))
    } else if d > MAX_DURATION {
        Err(ConfigError::new(
            field,
            format_args!("{d:?}"),
            "must be at most 365 days",
        ))
    } else {
        Ok(())
    }
}

fn check_probes(field: &'static str, n: u32) -> Result<(), ConfigError> {
    if n == 0 {
        Err(ConfigError::new(field, n, "must be at least 1"))
    } else if n > MAX_PROBES {
        Err(ConfigError::new(field, n, "must be at most 65535"))
    } else {
        Ok(())
    }
}

/// An invalid configuration value: which field, what was given, and what is allowed.
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::Config;
/// let err = Config::builder().jitter(f64::NAN).build().unwrap_err();
/// assert_eq!(err.field(), "jitter");
/// assert_eq!(err.to_string(), "invalid `jitter` = NaN: must be in [0, 1)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    value: String,
    reason: Cow<'static, str>,
}

impl ConfigError {
    pub(crate) fn new(
        field: &'static str,
        value: impl fmt::Display,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        ConfigError {
            field,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The name of the invalid setting, as the builder method (and attribute argument) spells it.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The rejected value, rendered.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What the setting accepts.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid `{}` = {}: {}",
            self.field, self.value, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = ConfigBuilder::default().build().unwrap();
        assert_eq!(c.consecutive_failures(), Some(5));
        assert_eq!(c.open_for(), Duration::from_secs(30));
        assert_eq!(c.max_open_for(), Duration::from_secs(300));
        assert_eq!(c.half_open_probes(), 1);
        assert_eq!(c.half_open_successes(), 1);
        assert_eq!(c.on_abandoned(), Outcome::Failure);
        assert_eq!(c.probe_timeout(), Duration::from_secs(60));
        assert_eq!(c.first_item_timeout(), None);
        assert_eq!(c.idle_timeout(), None);
        assert_eq!(c.on_cancel(), Outcome::Ignored);
        assert!(!c.has_window());
    }

    #[test]
    fn to_builder_round_trips() {
        let configs = [
            Config::default(),
            Config::builder()
                .failure_rate(0.5, Window::Time(Duration::from_secs(60)))
                .slow_calls(Duration::from_secs(2), 0.8)
                .half_open_probes(3)
                .jitter(0.1)
                .timeout(Duration::from_secs(5))
                .max_in_flight(7)
                .build()
                .unwrap(),
        ];
        for c in configs {
            assert_eq!(c.to_builder().build().unwrap(), c);
        }
    }

    #[test]
    fn rate_policy_replaces_the_default_consecutive_policy() {
        let c = Config::builder()
            .failure_rate(0.5, Window::Calls(4))
            .build()
            .unwrap();
        assert_eq!(c.consecutive_failures(), None);
        assert_eq!(c.minimum_calls(), 4);
    }
}
