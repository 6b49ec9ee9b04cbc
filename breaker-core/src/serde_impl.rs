//! Feature `serde`: configs from files, snapshots for admin endpoints.
//!
//! A [`Config`] deserializes from the attribute's argument names with the attribute's value
//! spellings (durations as `"30s"`), and goes through [`ConfigBuilder::build`], so a file is
//! checked by the same code as a builder or an attribute and an invalid value is an error naming
//! its field. Snapshots serialize with durations in milliseconds, the unit dashboards expect.

use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error as _};
use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::circuit::Metrics;
use crate::classify::Outcome;
use crate::config::{Config, ConfigBuilder, ConfigError, Window};
use crate::duration::{parse_duration, DURATION_FORMAT};
use crate::registry::CircuitSnapshot;
use crate::state::State;

/// A config as written in a file: every key optional, unknown keys rejected (a misspelt key
/// silently falling back to a default is how outages are configured).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    consecutive_failures: Option<u32>,
    failure_rate: Option<f64>,
    window: Option<WindowFile>,
    minimum_calls: Option<u32>,
    slow_call: Option<String>,
    slow_call_rate: Option<f64>,
    open_for: Option<String>,
    max_open_for: Option<String>,
    backoff: Option<f64>,
    jitter: Option<f64>,
    half_open_probes: Option<u32>,
    half_open_successes: Option<u32>,
    on_abandoned: Option<String>,
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

fn duration(field: &'static str, text: Option<String>) -> Result<Option<Duration>, ConfigError> {
    text.map(|t| {
        parse_duration(&t).ok_or_else(|| ConfigError::new(field, format!("{t:?}"), DURATION_FORMAT))
    })
    .transpose()
}

impl ConfigFile {
    fn build(self) -> Result<Config, ConfigError> {
        let mut b = ConfigBuilder::default();
        if let Some(n) = self.consecutive_failures {
            b = b.consecutive_failures(n);
        }
        let window = match self.window {
            None => None,
            Some(WindowFile::Calls(n)) => Some(Window::Calls(n)),
            Some(WindowFile::Time(t)) => duration("window", Some(t))?.map(Window::Time),
        };
        match (self.failure_rate, window) {
            (Some(r), w) => b = b.failure_rate(r, w.unwrap_or_default()),
            (None, Some(w)) => b = b.window(w),
            (None, None) => {}
        }
        if let Some(n) = self.minimum_calls {
            b = b.minimum_calls(n);
        }
        match (duration("slow_call", self.slow_call)?, self.slow_call_rate) {
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
        if let Some(d) = duration("open_for", self.open_for)? {
            b = b.open_for(d);
        }
        if let Some(d) = duration("max_open_for", self.max_open_for)? {
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
        if let Some(o) = self.on_abandoned {
            b = b.on_abandoned(match o.as_str() {
                "failure" => Outcome::Failure,
                "ignored" => Outcome::Ignored,
                "success" => Outcome::Success,
                _ => {
                    return Err(ConfigError::new(
                        "on_abandoned",
                        format!("{o:?}"),
                        "must be \"failure\", \"ignored\" or \"success\"",
                    ))
                }
            });
        }
        b.build()
    }
}

/// Reads the keys of `#[circuit_breaker]` (`consecutive_failures`, `failure_rate`, `window`,
/// `minimum_calls`, `slow_call`, `slow_call_rate`, `open_for`, `max_open_for`, `backoff`,
/// `jitter`, `half_open_probes`, `half_open_successes`, `on_abandoned`) with the same values;
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
        file.build().map_err(|e| {
            // The builder names its own fields; a file uses the attribute's keys.
            let key = match e.field() {
                "slow_call_threshold" => "slow_call",
                "backoff_multiplier" => "backoff",
                other => other,
            };
            D::Error::custom(format_args!(
                "invalid `{key}` = {}: {}",
                e.value(),
                e.reason()
            ))
        })
    }
}

/// Its lower-case name (`"half_open"`), as in logs and metric labels.
impl Serialize for State {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
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
