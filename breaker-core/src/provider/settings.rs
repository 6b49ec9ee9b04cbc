//! [`ProviderWide`]: the validated settings of a provider-wide circuit, and their builder.

use std::time::Duration;

use crate::config::{Config, ConfigError, Window};

/// The largest [`distinct_tenants`](ProviderWideBuilder::distinct_tenants): the pooled window
/// remembers at most this many failing tenants (a fixed set, so its memory is bounded whatever
/// the number of tenants).
pub const MAX_DISTINCT_TENANTS: u32 = 64;

/// The default window: the last 50 calls of all tenants. A count window learns an outage after
/// about the same number of failing calls whatever the traffic (half of 50 at the default rate);
/// a time window needs half of its calls to fail, which at 1,000 calls a second over 10 s is
/// 5,000 failing calls.
const DEFAULT_WINDOW: Window = Window::Calls(50);

/// The smallest provider-wide count window: one call for each of the pooled window's eight
/// buckets (`pool.rs`).
const MIN_COUNT_WINDOW: u32 = 8;

/// The settings of a provider-wide circuit: one circuit above all the tenant circuits of a
/// provider, fed by their pooled outcomes, that opens only when the evidence says the provider
/// itself (not one tenant) is failing. Set it with
/// [`RegistryBuilder::provider_wide`](crate::RegistryBuilder::provider_wide) or, live,
/// [`Registry::configure_provider_wide`](crate::Registry::configure_provider_wide).
///
/// It trips when, over its [`window`](ProviderWideBuilder::window), the pooled failure rate of
/// all the provider's tenants reaches [`failure_rate`](ProviderWideBuilder::failure_rate), at
/// least [`minimum_calls`](ProviderWideBuilder::minimum_calls) were recorded, and the failures
/// came from at least [`distinct_tenants`](ProviderWideBuilder::distinct_tenants) tenants. While
/// it is open every tenant of the provider is rejected
/// ([`CircuitOpen::is_provider_wide`](crate::CircuitOpen::is_provider_wide)); after its open
/// period one probe, for the whole provider, decides.
///
/// Defaults: failure rate 0.5 over the last 50 calls (`Window::Calls(50)`), 20 calls at least,
/// 3 distinct failing tenants, open for 30 s doubling per failed probe up to 300 s, no jitter, one probe, let go
/// after 60 s.
///
/// ```
/// # use breaker_core as breaker;
/// use std::time::Duration;
/// use breaker::{ProviderWide, Window};
///
/// let wide = ProviderWide::builder()
///     .failure_rate(0.5)
///     .window(Window::Time(Duration::from_secs(10)))
///     .minimum_calls(20)
///     .distinct_tenants(3)
///     .open_for(Duration::from_secs(15))
///     .build()?;
/// assert_eq!(wide.distinct_tenants(), 3);
/// assert!(ProviderWide::builder().distinct_tenants(0).build().is_err());
/// # Ok::<(), breaker::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderWide {
    pub(crate) failure_rate: f64,
    pub(crate) window: Window,
    pub(crate) minimum_calls: u32,
    pub(crate) distinct_tenants: u32,
    /// The provider circuit's own config: the open-period settings (the rest never decides: it
    /// trips on the pooled evidence only).
    pub(crate) circuit: Config,
}

impl Default for ProviderWide {
    fn default() -> Self {
        ProviderWide::builder()
            .build()
            .expect("the defaults are valid")
    }
}

impl ProviderWide {
    /// Starts a builder with the defaults (see [`ProviderWide`]).
    pub fn builder() -> ProviderWideBuilder {
        ProviderWideBuilder::default()
    }

    /// The pooled failure rate at or above which it trips.
    pub fn failure_rate(&self) -> f64 {
        self.failure_rate
    }

    /// The window the pooled outcomes are counted over.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The fewest pooled outcomes in the window for a trip.
    pub fn minimum_calls(&self) -> u32 {
        self.minimum_calls
    }

    /// The fewest distinct tenants whose calls failed in the window for a trip.
    pub fn distinct_tenants(&self) -> u32 {
        self.distinct_tenants
    }

    /// The provider circuit's config: its open-period settings (`open_for`, `max_open_for`,
    /// `backoff_multiplier`, `jitter`, `half_open_probes`, `half_open_successes`,
    /// `probe_timeout`). [`Registry::provider_circuit`](crate::Registry::provider_circuit)'s
    /// `config()` is this one.
    pub fn circuit_config(&self) -> &Config {
        &self.circuit
    }
}

/// Builds a [`ProviderWide`]; [`build`](Self::build) checks every value and names the first
/// invalid field, as [`ConfigBuilder`](crate::ConfigBuilder) does.
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ProviderWideBuilder {
    failure_rate: Option<f64>,
    window: Option<Window>,
    minimum_calls: Option<u32>,
    distinct_tenants: Option<u32>,
    open_for: Option<Duration>,
    max_open_for: Option<Duration>,
    backoff_multiplier: Option<f64>,
    jitter: Option<f64>,
    half_open_probes: Option<u32>,
    half_open_successes: Option<u32>,
    probe_timeout: Option<Duration>,
}

impl ProviderWideBuilder {
    /// Trip when failures / calls over the window, all tenants pooled, is at least `threshold`,
    /// in (0, 1]. Default 0.5.
    pub fn failure_rate(mut self, threshold: f64) -> Self {
        self.failure_rate = Some(threshold);
        self
    }

    /// The window of pooled outcomes: `Window::Calls(n)` (default 50; approximate: see the
    /// README's "Provider-wide circuits") or `Window::Time(d)`.
    pub fn window(mut self, window: Window) -> Self {
        self.window = Some(window);
        self
    }

    /// No trip before the window holds this many pooled outcomes. Default 20 (at most `n` for
    /// `Window::Calls(n)`).
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.minimum_calls = Some(n);
        self
    }

    /// No trip unless the failures in the window came from at least `n` distinct tenants, 1 to
    /// [`MAX_DISTINCT_TENANTS`]. Default 3: one tenant's own trouble (a revoked key, a spent
    /// quota) never opens the provider, and neither does a second one's at the same time.
    pub fn distinct_tenants(mut self, n: u32) -> Self {
        self.distinct_tenants = Some(n);
        self
    }

    /// The first open period. Default 30 s.
    pub fn open_for(mut self, d: Duration) -> Self {
        self.open_for = Some(d);
        self
    }

    /// The longest open period backoff may reach. Default 300 s (or `open_for` if longer).
    pub fn max_open_for(mut self, d: Duration) -> Self {
        self.max_open_for = Some(d);
        self
    }

    /// Each failed probe multiplies the open period by this. Default 2.
    pub fn backoff_multiplier(mut self, m: f64) -> Self {
        self.backoff_multiplier = Some(m);
        self
    }

    /// Random spread of open periods, a fraction in [0, 1). Default 0.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = Some(fraction);
        self
    }

    /// How many calls (of any tenants) may probe at once after an open period. Default 1.
    pub fn half_open_probes(mut self, n: u32) -> Self {
        self.half_open_probes = Some(n);
        self
    }

    /// How many probes must succeed to close it. Default `half_open_probes`.
    pub fn half_open_successes(mut self, n: u32) -> Self {
        self.half_open_successes = Some(n);
        self
    }

    /// A probe outstanding this long is let go (counted as a failure). Default 60 s.
    pub fn probe_timeout(mut self, d: Duration) -> Self {
        self.probe_timeout = Some(d);
        self
    }

    /// Checks every value and returns the settings, or the first invalid field.
    pub fn build(self) -> Result<ProviderWide, ConfigError> {
        let failure_rate = self.failure_rate.unwrap_or(0.5);
        let window = self.window.unwrap_or(DEFAULT_WINDOW);
        let minimum_calls = self.minimum_calls.unwrap_or(match window {
            Window::Calls(n) => n.min(20),
            Window::Time(_) => 20,
        });
        let distinct_tenants = self.distinct_tenants.unwrap_or(3);
        if distinct_tenants == 0 {
            return Err(ConfigError::new(
                "distinct_tenants",
                0,
                "must be at least 1",
            ));
        }
        if distinct_tenants > MAX_DISTINCT_TENANTS {
            return Err(ConfigError::new(
                "distinct_tenants",
                distinct_tenants,
                "must be at most 64",
            ));
        }
        if let Window::Calls(n) = window {
            if n < MIN_COUNT_WINDOW && n != 0 {
                return Err(ConfigError::new(
                    "window",
                    format_args!("{n} calls"),
                    "a provider-wide count window must hold at least 8 calls",
                ));
            }
        }
        // The rate, window and minimum are checked by the config builder, which names the same
        // fields; the circuit's own config keeps only the open-period settings.
        let mut check = Config::builder()
            .failure_rate(failure_rate, window)
            .minimum_calls(minimum_calls);
        let mut circuit = Config::builder().consecutive_failures(u32::MAX);
        macro_rules! both {
            ($($field:ident),*) => {$(
                if let Some(v) = self.$field {
                    check = check.$field(v);
                    circuit = circuit.$field(v);
                }
            )*};
        }
        both!(
            open_for,
            max_open_for,
            backoff_multiplier,
            jitter,
            half_open_probes,
            half_open_successes,
            probe_timeout
        );
        check.build()?;
        Ok(ProviderWide {
            failure_rate,
            window,
            minimum_calls,
            distinct_tenants,
            circuit: circuit.build()?,
        })
    }
}

/// Everything a config file says about one provider: its circuits' [`Config`] and, if its table
/// has a `provider_wide` section, its provider-wide circuit. Applied with
/// [`Registry::configure_provider`](crate::Registry::configure_provider) or, for a whole file,
/// [`Registry::configure_providers_from`](crate::Registry::configure_providers_from). With the
/// `serde` feature it deserializes from a provider's table: the keys of `Config`, plus an
/// optional `provider_wide` table with the keys of [`ProviderWideBuilder`] (`backoff` for
/// `backoff_multiplier`, durations as `"30s"`).
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::{Config, ProviderConfig, ProviderWide};
///
/// let plain = ProviderConfig::from(Config::default());
/// assert!(plain.provider_wide.is_none());
/// let wide = ProviderConfig::new(Config::default(), Some(ProviderWide::default()));
/// assert_eq!(wide.provider_wide.unwrap().distinct_tenants(), 3);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// The config of the provider's circuits.
    pub config: Config,
    /// Its provider-wide circuit; `None`: none (applying it turns an existing one off).
    pub provider_wide: Option<ProviderWide>,
}

impl ProviderConfig {
    /// A provider's config and provider-wide circuit.
    pub fn new(config: Config, provider_wide: Option<ProviderWide>) -> Self {
        ProviderConfig {
            config,
            provider_wide,
        }
    }
}

impl From<Config> for ProviderConfig {
    fn from(config: Config) -> Self {
        ProviderConfig::new(config, None)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_field() {
        let field = |b: ProviderWideBuilder| b.build().unwrap_err().field();
        assert_eq!(
            field(ProviderWide::builder().failure_rate(0.0)),
            "failure_rate"
        );
        assert_eq!(
            field(ProviderWide::builder().failure_rate(f64::NAN)),
            "failure_rate"
        );
        assert_eq!(
            field(ProviderWide::builder().window(Window::Calls(0))),
            "window"
        );
        assert_eq!(
            field(ProviderWide::builder().window(Window::Calls(4))),
            "window"
        );
        assert_eq!(
            field(ProviderWide::builder().window(Window::Time(Duration::ZERO))),
            "window"
        );
        assert_eq!(
            field(ProviderWide::builder().minimum_calls(0)),
            "minimum_calls"
        );
        assert_eq!(
            field(
                ProviderWide::builder()
                    .window(Window::Calls(10))
                    .minimum_calls(11)
            ),
            "minimum_calls"
        );
        assert_eq!(
            field(ProviderWide::builder().distinct_tenants(0)),
            "distinct_tenants"
        );
        assert_eq!(
            field(ProviderWide::builder().distinct_tenants(65)),
            "distinct_tenants"
        );
        assert_eq!(
            field(ProviderWide::builder().open_for(Duration::ZERO)),
            "open_for"
        );
        assert_eq!(field(ProviderWide::builder().jitter(1.0)), "jitter");
        assert_eq!(
            field(ProviderWide::builder().half_open_probes(0)),
            "half_open_probes"
        );
        assert_eq!(
            field(ProviderWide::builder().backoff_multiplier(0.5)),
            "backoff_multiplier"
        );
        assert_eq!(
            field(ProviderWide::builder().probe_timeout(Duration::ZERO)),
            "probe_timeout"
        );
    }

    #[test]
    fn the_circuit_config_carries_the_open_period_settings() {
        let w = ProviderWide::builder()
            .open_for(Duration::from_secs(7))
            .half_open_probes(2)
            .build()
            .unwrap();
        assert_eq!(w.circuit_config().open_for(), Duration::from_secs(7));
        assert_eq!(w.circuit_config().half_open_probes(), 2);
        assert_eq!(w.circuit_config().max_open_for(), Duration::from_secs(300));
        assert_eq!(ProviderWide::default().minimum_calls(), 20);
    }
}
