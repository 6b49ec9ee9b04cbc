//! Feature `serde`: the `provider_wide` section of a provider's table in a config file, read into
//! a [`ProviderWide`] through its builder, so an invalid value is an error naming its key.

use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error};

use crate::config::{ConfigError, Window};
use crate::duration::{parse_duration, DURATION_FORMAT};
use crate::provider::settings::{ProviderWide, ProviderWideBuilder};

/// `[openai.provider_wide]`: every key optional, unknown keys rejected.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProviderWideFile {
    failure_rate: Option<f64>,
    window: Option<WindowKey>,
    minimum_calls: Option<u32>,
    distinct_tenants: Option<u32>,
    open_for: Option<String>,
    max_open_for: Option<String>,
    backoff: Option<f64>,
    jitter: Option<f64>,
    half_open_probes: Option<u32>,
    half_open_successes: Option<u32>,
    probe_timeout: Option<String>,
}

/// `window = 50` (calls) or `window = "10s"` (time).
#[derive(serde::Deserialize)]
#[serde(
    untagged,
    expecting = "a number of calls or a duration string such as \"10s\""
)]
enum WindowKey {
    Calls(u32),
    Time(String),
}

fn duration(field: &'static str, text: &str) -> Result<Duration, ConfigError> {
    parse_duration(text)
        .ok_or_else(|| ConfigError::new(field, format!("{text:?}"), DURATION_FORMAT))
}

impl ProviderWideFile {
    pub(super) fn build(self) -> Result<ProviderWide, ConfigError> {
        let mut b: ProviderWideBuilder = ProviderWide::builder();
        if let Some(r) = self.failure_rate {
            b = b.failure_rate(r);
        }
        match self.window {
            Some(WindowKey::Calls(n)) => b = b.window(Window::Calls(n)),
            Some(WindowKey::Time(t)) => b = b.window(Window::Time(duration("window", &t)?)),
            None => {}
        }
        if let Some(n) = self.minimum_calls {
            b = b.minimum_calls(n);
        }
        if let Some(n) = self.distinct_tenants {
            b = b.distinct_tenants(n);
        }
        if let Some(d) = self.open_for {
            b = b.open_for(duration("open_for", &d)?);
        }
        if let Some(d) = self.max_open_for {
            b = b.max_open_for(duration("max_open_for", &d)?);
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
            b = b.probe_timeout(duration("probe_timeout", &d)?);
        }
        b.build()
    }
}

/// The error a file shows for `e` in a `provider_wide` section, under the file's key.
pub(super) fn wide_error<E: Error>(e: &ConfigError) -> E {
    let key = match e.field() {
        "backoff_multiplier" => "backoff",
        other => other,
    };
    E::custom(format_args!(
        "invalid `provider_wide.{key}` = {}: {}",
        e.value(),
        e.reason()
    ))
}

/// A `provider_wide` table on its own, with the keys of [`ProviderWideBuilder`] (`backoff` for
/// `backoff_multiplier`) and durations as strings; checked by
/// [`ProviderWideBuilder::build`].
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::{ProviderWide, Window};
///
/// let wide: ProviderWide = serde_json::from_str(r#"{ "window": 100, "distinct_tenants": 5, "open_for": "15s" }"#)?;
/// assert_eq!(wide.window(), Window::Calls(100));
/// assert_eq!(wide.distinct_tenants(), 5);
/// let err = serde_json::from_str::<ProviderWide>(r#"{ "distinct_tenants": 0 }"#).unwrap_err();
/// assert!(err.to_string().contains("invalid `provider_wide.distinct_tenants` = 0"), "{err}");
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<'de> Deserialize<'de> for ProviderWide {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ProviderWideFile::deserialize(deserializer)?
            .build()
            .map_err(|e| wide_error(&e))
    }
}
