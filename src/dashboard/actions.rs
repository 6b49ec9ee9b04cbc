//! Operator actions: asked by `POST /circuits/{provider}/{tenant}/{action}`, done only when the
//! dashboard's hook allows them, and logged either way.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use breaker_core::PROVIDER_WIDE_TENANT;
use http::StatusCode;
use serde::Serialize;
use serde_json::json;

use super::feed::now_ms;
use super::retune::Retune;
use super::App;

/// The last actions `GET /actions` lists.
const LOGGED: usize = 100;

/// What an operator asked the dashboard to do, as its [`actions`](super::Dashboard::actions)
/// hook sees it.
///
/// ```
/// use breaker::dashboard::{Action, ActionKind};
///
/// fn allowed(action: &Action) -> bool {
///     // Nobody switches the payment provider's circuits from the page.
///     action.provider != "payments" && action.kind != ActionKind::Disable
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Action {
    /// What to do.
    pub kind: ActionKind,
    /// The circuit's provider (for [`Retune`](ActionKind::Retune), the provider retuned).
    pub provider: String,
    /// The circuit's tenant: [`PROVIDER_WIDE_TENANT`](crate::PROVIDER_WIDE_TENANT) (`*`) for
    /// the provider-wide circuit; empty for [`Retune`](ActionKind::Retune), which retunes
    /// every circuit of the provider.
    pub tenant: String,
    /// For [`Retune`](ActionKind::Retune), the settings it changes.
    pub retune: Option<Retune>,
}

impl Action {
    pub(crate) fn new(kind: ActionKind, provider: String, tenant: String) -> Action {
        Action {
            kind,
            provider,
            tenant,
            retune: None,
        }
    }
}

/// The operator actions of the dashboard: the circuit's own switches, and retuning a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ActionKind {
    /// [`Circuit::force_open`](crate::Circuit::force_open).
    ForceOpen,
    /// [`Circuit::reset`](crate::Circuit::reset).
    Reset,
    /// [`Circuit::disable`](crate::Circuit::disable).
    Disable,
    /// [`Circuit::metrics_only`](crate::Circuit::metrics_only).
    MetricsOnly,
    /// [`Registry::configure`](crate::Registry::configure) of a provider with some of its
    /// settings changed ([`Retune`]), every circuit keeping its state:
    /// `POST /providers/{provider}/retune`.
    Retune,
}

impl ActionKind {
    /// The switches of one circuit: `POST /circuits/{provider}/{tenant}/{action}`.
    const SWITCHES: [ActionKind; 4] = [
        ActionKind::ForceOpen,
        ActionKind::Reset,
        ActionKind::Disable,
        ActionKind::MetricsOnly,
    ];

    /// The name in the action's URL: `force_open`, `reset`, `disable`, `metrics_only`,
    /// `retune`.
    ///
    /// ```
    /// use breaker::dashboard::ActionKind;
    ///
    /// assert_eq!(ActionKind::ForceOpen.as_str(), "force_open");
    /// assert_eq!("reset".parse::<ActionKind>(), Ok(ActionKind::Reset));
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::ForceOpen => "force_open",
            ActionKind::Reset => "reset",
            ActionKind::Disable => "disable",
            ActionKind::MetricsOnly => "metrics_only",
            ActionKind::Retune => "retune",
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the names of [`ActionKind::as_str`]; the error says which names would do.
impl FromStr for ActionKind {
    type Err = String;

    fn from_str(s: &str) -> Result<ActionKind, String> {
        ActionKind::SWITCHES
            .into_iter()
            .chain([ActionKind::Retune])
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown action {s:?}: expected one of force_open, reset, disable, \
                     metrics_only, retune"
                )
            })
    }
}

/// One action asked, as `GET /actions` and the feed's `action` events give it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Record {
    action: &'static str,
    provider: String,
    tenant: String,
    /// What the hook let through: `false` without a hook, when it refused or panicked.
    allowed: bool,
    /// `done`, `refused`, `not_found` (allowed, but no such circuit or provider), or
    /// `invalid` (a retune whose body or values were rejected).
    outcome: &'static str,
    /// The circuit's state after the action, when done.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    /// For a retune, the settings it changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    retune: Option<Retune>,
    at_ms: u64,
}

impl Record {
    pub(crate) fn new(
        action: &Action,
        allowed: bool,
        outcome: &'static str,
        state: Option<&'static str>,
    ) -> Record {
        Record {
            action: action.kind.as_str(),
            provider: action.provider.clone(),
            tenant: action.tenant.clone(),
            allowed,
            outcome,
            state,
            retune: action.retune.clone(),
            at_ms: now_ms(),
        }
    }
}

/// Why an action was refused: no hook.
pub(crate) const NO_HOOK: &str =
    "operator actions are off: this dashboard has no authorization hook (Dashboard::actions)";
/// Why an action was refused: the hook said no.
pub(crate) const REFUSED: &str = "the authorization hook refused this action";

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `POST /circuits/{provider}/{tenant}/{action}`.
pub(super) async fn act(
    State(app): State<App>,
    Path((provider, tenant, action)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let kind = match action.parse::<ActionKind>() {
        Ok(ActionKind::Retune) => {
            return error(
                StatusCode::NOT_FOUND,
                "retune applies to a provider's circuits: POST /providers/{provider}/retune",
            )
        }
        Ok(kind) => kind,
        Err(message) => return error(StatusCode::NOT_FOUND, message),
    };
    let (parts, _body) = request.into_parts();
    let action = Action::new(kind, provider, tenant);
    let allowed = app.0.allows(&parts, &action);
    let (outcome, state, response) = match allowed {
        None => ("refused", None, error(StatusCode::FORBIDDEN, NO_HOOK)),
        Some(false) => ("refused", None, error(StatusCode::FORBIDDEN, REFUSED)),
        Some(true) => match find(&app, &action.provider, &action.tenant) {
            None => (
                "not_found",
                None,
                error(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no circuit for provider {:?} and tenant {:?}",
                        action.provider, action.tenant
                    ),
                ),
            ),
            Some(circuit) => {
                match kind {
                    ActionKind::ForceOpen => circuit.force_open(),
                    ActionKind::Reset => circuit.reset(),
                    ActionKind::Disable => circuit.disable(),
                    ActionKind::MetricsOnly => circuit.metrics_only(),
                    // Answered above: a provider's action, not a circuit's.
                    ActionKind::Retune => {}
                }
                let state = circuit.state().as_str();
                let body = json!({
                    "provider": action.provider,
                    "tenant": action.tenant,
                    "action": kind.as_str(),
                    "state": state,
                });
                ("done", Some(state), Json(body).into_response())
            }
        },
    };
    log_action(
        &app,
        Record::new(&action, allowed == Some(true), outcome, state),
    );
    response
}

/// The circuit an action on (`provider`, `tenant`) switches: tenant
/// [`PROVIDER_WIDE_TENANT`] (`*`) is the provider's provider-wide circuit when it has one (as
/// for a fleet), else a tenant circuit of that name, if any. Never creates a circuit.
fn find(app: &App, provider: &str, tenant: &str) -> Option<breaker_core::Circuit> {
    let registry = &app.0.registry;
    if tenant == PROVIDER_WIDE_TENANT {
        if let Some(wide) = registry.provider_circuit(provider) {
            return Some(wide);
        }
    }
    registry.get(provider, tenant)
}

pub(crate) fn log_action(app: &App, record: Record) {
    #[cfg(feature = "tracing")]
    {
        let Record {
            action,
            provider,
            tenant,
            allowed,
            outcome,
            retune,
            ..
        } = &record;
        let (provider, tenant) = (provider.as_str(), tenant.as_str());
        if *allowed {
            ::tracing::warn!(
                target: "breaker::dashboard", action, provider, tenant, allowed, outcome, ?retune,
                "operator action from the dashboard"
            );
        } else {
            ::tracing::info!(
                target: "breaker::dashboard", action, provider, tenant, allowed, outcome, ?retune,
                "operator action refused"
            );
        }
    }
    if let Some(feed) = &app.0.feed {
        if let Ok(data) = serde_json::to_string(&record) {
            feed.0.publish(Arc::new(("action", data)));
        }
    }
    let mut log = app.0.log.lock().unwrap_or_else(|e| e.into_inner());
    if log.len() == LOGGED {
        log.pop_front();
    }
    log.push_back(record);
}

/// `GET /actions`: whether actions are on, and the last ones asked, newest last.
pub(super) async fn log(State(app): State<App>) -> Response {
    let log: Vec<Record> = app
        .0
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect();
    Json(json!({ "enabled": app.0.hook.is_some(), "log": log })).into_response()
}
