//! Feature `serde`: configs from files, snapshots for admin endpoints.
//!
//! A [`Config`] deserializes from the attribute's argument names with the attribute's value
//! spellings (durations as `"30s"`), and goes through [`ConfigBuilder::build`], so a file is
//! checked by the same code as a builder or an attribute and an invalid value is an error naming
//! its field. Snapshots serialize with durations in milliseconds, the unit dashboards expect.

mod wide;

use std::time::Duration;

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::circuit::Metrics;
use crate::classify::Outcome;
use crate::config::{Config, ConfigBuilder, ConfigError, Window};
use crate::duration::{parse_duration, DURATION_FORMAT};
use crate::provider::settings::ProviderConfig;
use crate::registry::CircuitSnapshot;
use crate::state::State;

/// A config as written in a file: every key optional, unknown keys rejected (a misspelt key
/// silently falling back to a default is how outages are configured). Each value is parsed and
/// checked on its own as it is read, so a format (toml, json, yaml) that knows where the value is
/// reports the error at that key's line; only combinations (`max_open_for` shorter than
/// `open_for`, ...) are left to the whole table's [`ConfigBuilder::build`].
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default, deserialize_with = "consecutive_failures")]
    consecutive_failures: Option<u32>,
    #[serde(default, deserialize_with = "failure_rate")]
    failure_rate: Option<f64>,
    #[serde(default, deserialize_with = "window")]
    window: Option<Window>,
    #[serde(default, deserialize_with = "minimum_calls")]
    minimum_calls: Option<u32>,
    #[serde(default, deserialize_with = "slow_call")]
    slow_call: Option<Duration>,
    #[serde(default, deserialize_with = "slow_call_rate")]
    slow_call_rate: Option<f64>,
    #[serde(default, deserialize_with = "open_for")]
    open_for: Option<Duration>,
    #[serde(default, deserialize_with = "max_open_for")]
    max_open_for: Option<Duration>,
    #[serde(default, deserialize_with = "backoff")]
    backoff: Option<f64>,
    #[serde(default, deserialize_with = "jitter")]
    jitter: Option<f64>,
    #[serde(default, deserialize_with = "half_open_probes")]
    half_open_probes: Option<u32>,
    #[serde(default, deserialize_with = "half_open_successes")]
    half_open_successes: Option<u32>,
    #[serde(default, deserialize_with = "on_abandoned")]
    on_abandoned: Option<Outcome>,
    #[serde(default, deserialize_with = "probe_timeout")]
    probe_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "timeout")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "first_item_timeout")]
    first_item_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "idle_timeout")]
    idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "on_cancel")]
    on_cancel: Option<Outcome>,
    #[serde(default, deserialize_with = "max_in_flight")]
    max_in_flight: Option<u32>,
    /// A provider's table only (`ProviderConfig`): its provider-wide circuit.
    #[serde(default)]
    provider_wide: Option<wide::ProviderWideFile>,
}

/// `window = 100` (calls) or `window = "60s"` (time), as in the attribute.
#[derive(serde::Deserialize)]
#[serde(
    untagged,
    expecting = "a number of calls or a duration string such as \"60s\""
)]
enum WindowFile {
    Calls(u32),
    Time(String),
}

/// The slow-call rate when only `slow_call` is given: every call in the window slow.
const DEFAULT_SLOW_CALL_RATE: f64 = 1.0;

/// The error a file shows for `e`, under the attribute's name of the key.
fn file_error<E: serde::de::Error>(e: &ConfigError) -> E {
    // The builder names its own fields; a file uses the attribute's keys.
    let key = match e.field() {
        "slow_call_threshold" => "slow_call",
        "backoff_multiplier" => "backoff",
        other => other,
    };
    E::custom(format_args!(
        "invalid `{key}` = {}: {}",
        e.value(),
        e.reason()
    ))
}

fn parse_duration_at(field: &'static str, text: &str) -> Result<Duration, ConfigError> {
    parse_duration(text)
        .ok_or_else(|| ConfigError::new(field, format!("{text:?}"), DURATION_FORMAT))
}

/// The builder's verdict on one value, set beside the most permissive values of the keys it is
/// checked against (so `max_open_for = "10s"` is not judged against the default `open_for`): an
/// error here is about this value alone.
fn alone(field: &'static str, b: ConfigBuilder) -> Result<(), ConfigError> {
    match b.build() {
        Err(e) if e.field() == field => Err(e),
        _ => Ok(()),
    }
}

/// A `deserialize_with` function per key: reads the value as `$raw`, turns it into `$ty` with
/// `$make` and checks it with `$check`; every error is raised while the value is being read.
macro_rules! keys {
    ($($key:ident: $raw:ty => $ty:ty, |$v:ident| $make:expr, |$b:ident, $w:ident| $check:expr;)*) => {$(
        fn $key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$ty>, D::Error> {
            let $v: $raw = Deserialize::deserialize(d)?;
            let $w: $ty = $make.map_err(|e| file_error(&e))?;
            let $b = ConfigBuilder::default();
            $check.map_err(|e| file_error(&e))?;
            Ok(Some($w))
        }
    )*};
}

fn ok<T>(v: T) -> Result<T, ConfigError> {
    Ok(v)
}

keys! {
    consecutive_failures: u32 => u32, |v| ok(v),
        |b, n| alone("consecutive_failures", b.consecutive_failures(n));
    failure_rate: f64 => f64, |v| ok(v),
        |b, r| alone("failure_rate", b.failure_rate(r, Window::default()));
    window: WindowFile => Window, |v| match v {
            WindowFile::Calls(n) => Ok(Window::Calls(n)),
            WindowFile::Time(t) => parse_duration_at("window", &t).map(Window::Time),
        },
        |b, w| alone("window", b.window(w));
    minimum_calls: u32 => u32, |v| ok(v),
        |b, n| alone("minimum_calls", b.window(Window::Time(Duration::from_secs(1))).minimum_calls(n));
    slow_call: String => Duration, |v| parse_duration_at("slow_call", &v),
        |b, d| alone("slow_call_threshold", b.slow_calls(d, DEFAULT_SLOW_CALL_RATE));
    slow_call_rate: f64 => f64, |v| ok(v),
        |b, r| alone("slow_call_rate", b.slow_calls(Duration::from_secs(1), r));
    open_for: String => Duration, |v| parse_duration_at("open_for", &v),
        |b, d| alone("open_for", b.open_for(d));
    max_open_for: String => Duration, |v| parse_duration_at("max_open_for", &v),
        |b, d| alone("max_open_for", b.open_for(Duration::from_millis(1)).max_open_for(d));
    backoff: f64 => f64, |v| ok(v),
        |b, m| alone("backoff_multiplier", b.backoff_multiplier(m));
    jitter: f64 => f64, |v| ok(v),
        |b, j| alone("jitter", b.jitter(j));
    half_open_probes: u32 => u32, |v| ok(v),
        |b, n| alone("half_open_probes", b.half_open_probes(n));
    half_open_successes: u32 => u32, |v| ok(v),
        |b, n| alone("half_open_successes", b.half_open_probes(1).half_open_successes(n));
    on_abandoned: String => Outcome, |v| outcome_at("on_abandoned", &v),
        |b, o| alone("on_abandoned", b.on_abandoned(o));
    probe_timeout: String => Duration, |v| parse_duration_at("probe_timeout", &v),
        |b, d| alone("probe_timeout", b.probe_timeout(d));
    timeout: String => Duration, |v| parse_duration_at("timeout", &v),
        |b, d| alone("timeout", b.timeout(d));
    first_item_timeout: String => Duration, |v| parse_duration_at("first_item_timeout", &v),
        |b, d| alone("first_item_timeout", b.first_item_timeout(d));
    idle_timeout: String => Duration, |v| parse_duration_at("idle_timeout", &v),
        |b, d| alone("idle_timeout", b.idle_timeout(d));
    on_cancel: String => Outcome, |v| outcome_at("on_cancel", &v),
        |b, o| alone("on_cancel", b.on_cancel(o));
    max_in_flight: u32 => u32, |v| ok(v),
        |b, n| alone("max_in_flight", b.max_in_flight(n));
}

/// `"failure"`, `"ignored"` or `"success"`, as the attribute spells an outcome.
fn outcome_at(field: &'static str, v: &str) -> Result<Outcome, ConfigError> {
    match v {
        "failure" => Ok(Outcome::Failure),
        "ignored" => Ok(Outcome::Ignored),
        "success" => Ok(Outcome::Success),
        _ => Err(ConfigError::new(
            field,
            format!("{v:?}"),
            "must be \"failure\", \"ignored\" or \"success\"",
        )),
    }
}

impl ConfigFile {
    fn build(mut self) -> Result<Config, ConfigError> {
        self.provider_wide = None;
        let mut b = ConfigBuilder::default();
        if let Some(n) = self.consecutive_failures {
            b = b.consecutive_failures(n);
        }
        match (self.failure_rate, self.window) {
            (Some(r), w) => b = b.failure_rate(r, w.unwrap_or_default()),
            (None, Some(w)) => b = b.window(w),
            (None, None) => {}
        }
        if let Some(n) = self.minimum_calls {
            b = b.minimum_calls(n);
        }
        match (self.slow_call, self.slow_call_rate) {
            (Some(d), rate) => b = b.slow_calls(d, rate.unwrap_or(DEFAULT_SLOW_CALL_RATE)),
            (None, Some(rate)) => {
                return Err(ConfigError::new(
                    "slow_call_rate",
                    rate,
                    "needs `slow_call`, the duration above which a call is slow",
                ))
            }
            (None, None) => {}
        }
        if let Some(d) = self.open_for {
            b = b.open_for(d);
        }
        if let Some(d) = self.max_open_for {
            b = b.max_open_for(d);
        }
        if let Some(m) = self.backoff {
            b = b.backoff_multiplier(m);
        }
        if let Some(j) = self.jitter {
            b = b.jitter(j);
        }
        if let Some(n) = self.half_open_probes {
            b = b.half_open_probes(n);
        }
        if let Some(n) = self.half_open_successes {
            b = b.half_open_successes(n);
        }
        if let Some(d) = self.probe_timeout {
            b = b.probe_timeout(d);
        }
        if let Some(n) = self.max_in_flight {
            b = b.max_in_flight(n);
        }
        if let Some(o) = self.on_abandoned {
            b = b.on_abandoned(o);
        }
        if let Some(d) = self.timeout {
            b = b.timeout(d);
        }
        if let Some(d) = self.first_item_timeout {
            b = b.first_item_timeout(d);
        }
        if let Some(d) = self.idle_timeout {
            b = b.idle_timeout(d);
        }
        if let Some(o) = self.on_cancel {
            b = b.on_cancel(o);
        }
        b.build()
    }
}

/// Reads the keys of `#[circuit_breaker]` (`consecutive_failures`, `failure_rate`, `window`,
/// `minimum_calls`, `slow_call`, `slow_call_rate`, `open_for`, `max_open_for`, `backoff`,
/// `jitter`, `half_open_probes`, `half_open_successes`, `on_abandoned`, `probe_timeout`, `timeout`,
/// `first_item_timeout`, `idle_timeout`, `on_cancel`) with the same values;
/// missing keys take the builder's defaults, unknown keys are an error, and the result is checked
/// by [`ConfigBuilder::build`]: an invalid value is an error that names its key.
///
/// ```
/// # use breaker_core as breaker;
/// use std::time::Duration;
/// use breaker::Config;
///
/// let config: Config = serde_json::from_str(r#"{ "failure_rate": 0.5, "window": "60s", "open_for": "1m30s" }"#)?;
/// assert_eq!(config.open_for(), Duration::from_secs(90));
///
/// let err = serde_json::from_str::<Config>(r#"{ "jitter": 1.5 }"#).unwrap_err();
/// assert!(err.to_string().contains("invalid `jitter` = 1.5"), "{err}");
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let file = ConfigFile::deserialize(deserializer)?;
        if file.provider_wide.is_some() {
            return Err(serde::de::Error::custom(
                "`provider_wide` is a section of a provider's table: read the file as \
                 `ProviderConfig`s (and apply it with `Registry::configure_providers_from`)",
            ));
        }
        file.build().map_err(|e| file_error(&e))
    }
}

/// A provider's table: the keys of [`Config`], plus an optional `provider_wide` section with the
/// keys of [`ProviderWide`](crate::ProviderWide).
///
/// ```
/// # use breaker_core as breaker;
/// use std::collections::BTreeMap;
/// use breaker::{ProviderConfig, Registry};
///
/// let file = r#"{
///     "openai": { "consecutive_failures": 5, "provider_wide": { "distinct_tenants": 3, "open_for": "30s" } },
///     "anthropic": { "consecutive_failures": 3 }
/// }"#;
/// let configs: BTreeMap<String, ProviderConfig> = serde_json::from_str(file)?;
/// let registry = Registry::default();
/// registry.configure_providers_from(configs);
/// assert!(registry.provider_circuit("openai").is_some());
/// assert!(registry.provider_circuit("anthropic").is_none());
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<'de> Deserialize<'de> for ProviderConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut file = ConfigFile::deserialize(deserializer)?;
        let wide = match file.provider_wide.take() {
            Some(w) => Some(w.build().map_err(|e| wide::wide_error(&e))?),
            None => None,
        };
        let config = file.build().map_err(|e| file_error(&e))?;
        Ok(ProviderConfig::new(config, wide))
    }
}

/// Its lower-case name (`"half_open"`), as in logs and metric labels.
impl Serialize for State {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The names of [`State::as_str`] (and what [`FromStr`](std::str::FromStr) accepts), so a query
/// such as `?state=open` deserializes straight into a `State`.
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::State;
///
/// let state: State = serde_json::from_str(r#""half_open""#)?;
/// assert_eq!(state, State::HalfOpen);
/// assert!(serde_json::from_str::<State>(r#""shut""#).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Every counter, with `retry_after_ms` for the time left open (`null` when not open).
impl Serialize for Metrics {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Metrics", 10)?;
        s.serialize_field("state", &self.state)?;
        s.serialize_field("failure_rate", &self.failure_rate)?;
        s.serialize_field("slow_rate", &self.slow_rate)?;
        s.serialize_field("calls_in_window", &self.calls_in_window)?;
        s.serialize_field("failures_in_window", &self.failures_in_window)?;
        s.serialize_field("slow_in_window", &self.slow_in_window)?;
        s.serialize_field("consecutive_failures", &self.consecutive_failures)?;
        s.serialize_field("rejected", &self.rejected)?;
        s.serialize_field("times_opened", &self.times_opened)?;
        s.serialize_field("retry_after_ms", &self.retry_after.map(millis))?;
        s.end()
    }
}

/// `{ "provider", "tenant", "state", "metrics": { .. } }`.
impl Serialize for CircuitSnapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("CircuitSnapshot", 4)?;
        s.serialize_field("provider", &self.provider)?;
        s.serialize_field("tenant", &self.tenant)?;
        s.serialize_field("state", &self.state)?;
        s.serialize_field("metrics", &self.metrics)?;
        s.end()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
