//! The retune action: `POST /providers/{provider}/retune` with the settings an operator changes
//! at 3 a.m., applied through [`Registry::configure`](crate::Registry::configure) (every circuit
//! of the provider keeps its state), and asked of the same hook as the circuits' switches.

use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use breaker_core::{Config, ConfigError, Registry};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::actions::{error, log_action, Action, ActionKind, Record};
use super::App;

/// The largest body a retune may send: a handful of numbers.
const MAX_BODY: usize = 16 * 1024;

/// The settings a [`Retune`](ActionKind::Retune) action changes, as its JSON body gives them:
/// each one left out keeps the provider's current value. The
/// [`actions`](super::Dashboard::actions) hook sees them in [`Action::retune`].
///
/// ```
/// use breaker::dashboard::{Action, ActionKind};
///
/// // On-call may lengthen open periods, nothing else.
/// fn allowed(action: &Action) -> bool {
///     match (&action.kind, &action.retune) {
///         (ActionKind::Retune, Some(r)) => r.open_for_ms.is_some() && r.failure_rate.is_none(),
///         _ => true,
///     }
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Retune {
    /// [`ConfigBuilder::consecutive_failures`](crate::ConfigBuilder::consecutive_failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// The threshold of [`ConfigBuilder::failure_rate`](crate::ConfigBuilder::failure_rate),
    /// in (0, 1], over the provider's current window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_rate: Option<f64>,
    /// [`ConfigBuilder::minimum_calls`](crate::ConfigBuilder::minimum_calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_calls: Option<u32>,
    /// [`ConfigBuilder::open_for`](crate::ConfigBuilder::open_for), in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_for_ms: Option<u64>,
    /// [`ConfigBuilder::max_open_for`](crate::ConfigBuilder::max_open_for), in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_open_for_ms: Option<u64>,
    /// [`ConfigBuilder::backoff_multiplier`](crate::ConfigBuilder::backoff_multiplier).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_multiplier: Option<f64>,
    /// [`ConfigBuilder::half_open_probes`](crate::ConfigBuilder::half_open_probes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_open_probes: Option<u32>,
    /// [`ConfigBuilder::half_open_successes`](crate::ConfigBuilder::half_open_successes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_open_successes: Option<u32>,
}

impl Retune {
    /// `base` with these changes, or the error of the setting that is out of range.
    fn apply(&self, base: &Config) -> Result<Config, ConfigError> {
        let mut b = base.to_builder();
        if let Some(n) = self.consecutive_failures {
            b = b.consecutive_failures(n);
        }
        if let Some(rate) = self.failure_rate {
            b = b.failure_rate(rate, base.window());
        }
        if let Some(n) = self.minimum_calls {
            b = b.minimum_calls(n);
        }
        if let Some(ms) = self.open_for_ms {
            b = b.open_for(Duration::from_millis(ms));
        }
        if let Some(ms) = self.max_open_for_ms {
            b = b.max_open_for(Duration::from_millis(ms));
        }
        if let Some(m) = self.backoff_multiplier {
            b = b.backoff_multiplier(m);
        }
        if let Some(n) = self.half_open_probes {
            b = b.half_open_probes(n);
        }
        if let Some(n) = self.half_open_successes {
            b = b.half_open_successes(n);
        }
        b.build()
    }
}

/// The body's name of a setting the config builder rejected.
fn body_field(builder_field: &str) -> String {
    match builder_field {
        "open_for" | "max_open_for" => format!("{builder_field}_ms"),
        other => other.to_owned(),
    }
}

/// What `provider`'s circuits run with now: its [`Registry::configured`] config, else the
/// config of one of its circuits (a call site's or the registry default); `None` when the
/// registry knows neither.
fn current(registry: &Registry, provider: &str) -> Option<Config> {
    if let Some(config) = registry.configured(provider) {
        return Some(config);
    }
    let mut found = None;
    registry.for_each(|c| {
        if found.is_none() && c.provider() == provider {
            found = Some(c.config().clone());
        }
    });
    found
}

/// The settings a retune may change, as they are in `config`.
fn shown(config: &Config) -> serde_json::Value {
    json!({
        "consecutive_failures": config.consecutive_failures(),
        "failure_rate": config.failure_rate(),
        "minimum_calls": config.minimum_calls(),
        "open_for_ms": u64::try_from(config.open_for().as_millis()).unwrap_or(u64::MAX),
        "max_open_for_ms": u64::try_from(config.max_open_for().as_millis()).unwrap_or(u64::MAX),
        "backoff_multiplier": config.backoff_multiplier(),
        "half_open_probes": config.half_open_probes(),
        "half_open_successes": config.half_open_successes(),
    })
}

/// `GET /providers/{provider}/config`: the settings a retune may change, as they are now.
pub(super) async fn config(State(app): State<App>, Path(provider): Path<String>) -> Response {
    match current(&app.0.registry, &provider) {
        Some(config) => {
            Json(json!({ "provider": provider, "config": shown(&config) })).into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            format!("no circuit or config for provider {provider:?}"),
        ),
    }
}

/// `POST /providers/{provider}/retune`.
pub(super) async fn retune(
    State(app): State<App>,
    Path(provider): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let parsed = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Retune::default()),
        Ok(bytes) => serde_json::from_slice::<Retune>(&bytes).map_err(|e| e.to_string()),
        Err(_) => Err(format!("the body is over {MAX_BODY} bytes")),
    };
    let mut action = Action::new(ActionKind::Retune, provider, String::new());
    let changes = match parsed {
        Ok(changes) => changes,
        Err(message) => {
            let message = format!("body: {message}");
            log_action(&app, Record::new(&action, false, "invalid", None));
            return error(StatusCode::BAD_REQUEST, message);
        }
    };
    action.retune = Some(changes.clone());
    let allowed = app.0.allows(&parts, &action);
    let refused = match allowed {
        None => Some(super::actions::NO_HOOK),
        Some(false) => Some(super::actions::REFUSED),
        Some(true) => None,
    };
    if let Some(message) = refused {
        log_action(&app, Record::new(&action, false, "refused", None));
        return error(StatusCode::FORBIDDEN, message);
    }
    let registry = &app.0.registry;
    let Some(base) = current(registry, &action.provider) else {
        log_action(&app, Record::new(&action, true, "not_found", None));
        return error(
            StatusCode::NOT_FOUND,
            format!("no circuit or config for provider {:?}", action.provider),
        );
    };
    let config = match changes.apply(&base) {
        Ok(config) => config,
        Err(e) => {
            log_action(&app, Record::new(&action, true, "invalid", None));
            let field = body_field(e.field());
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!("{field}: {e}"), "field": field })),
            )
                .into_response();
        }
    };
    let body = json!({
        "provider": action.provider,
        "action": ActionKind::Retune.as_str(),
        "config": shown(&config),
    });
    registry.configure(&action.provider, config);
    log_action(&app, Record::new(&action, true, "done", None));
    Json(body).into_response()
}
