//! Operator actions: asked by `POST /circuits/{provider}/{tenant}/{action}`, done only when the
//! dashboard's hook allows them, and logged either way.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde::Serialize;
use serde_json::json;

use super::feed::now_ms;
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
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Action {
    /// What to do.
    pub kind: ActionKind,
    /// The circuit's provider.
    pub provider: String,
    /// The circuit's tenant.
    pub tenant: String,
}

/// The operator actions of the dashboard: the circuit's own switches.
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
}

impl ActionKind {
    const ALL: [ActionKind; 4] = [
        ActionKind::ForceOpen,
        ActionKind::Reset,
        ActionKind::Disable,
        ActionKind::MetricsOnly,
    ];

    /// The name in the action's URL: `force_open`, `reset`, `disable`, `metrics_only`.
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
        ActionKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown action {s:?}: expected one of force_open, reset, disable, metrics_only"
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
    /// `done`, `refused`, or `not_found` (allowed, but no such circuit).
    outcome: &'static str,
    /// The circuit's state after the action, when done.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    at_ms: u64,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `POST /circuits/{provider}/{tenant}/{action}`.
pub(super) async fn act(
    State(app): State<App>,
    Path((provider, tenant, action)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let kind = match action.parse::<ActionKind>() {
        Ok(kind) => kind,
        Err(message) => return error(StatusCode::NOT_FOUND, message),
    };
    let (parts, _body) = request.into_parts();
    let action = Action {
        kind,
        provider,
        tenant,
    };
    let allowed = app.0.allows(&parts, &action);
    let (outcome, state, response) = match allowed {
        None => (
            "refused",
            None,
            error(
                StatusCode::FORBIDDEN,
                "operator actions are off: this dashboard has no authorization hook \
                 (Dashboard::actions)",
            ),
        ),
        Some(false) => (
            "refused",
            None,
            error(
                StatusCode::FORBIDDEN,
                "the authorization hook refused this action",
            ),
        ),
        Some(true) => match app.0.registry.get(&action.provider, &action.tenant) {
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
    let record = Record {
        action: kind.as_str(),
        provider: action.provider,
        tenant: action.tenant,
        allowed: allowed == Some(true),
        outcome,
        state,
        at_ms: now_ms(),
    };
    log_action(&app, record);
    response
}

fn log_action(app: &App, record: Record) {
    #[cfg(feature = "tracing")]
    {
        let Record {
            action,
            provider,
            tenant,
            allowed,
            outcome,
            ..
        } = &record;
        let (provider, tenant) = (provider.as_str(), tenant.as_str());
        if *allowed {
            ::tracing::warn!(
                target: "breaker::dashboard", action, provider, tenant, allowed, outcome,
                "operator action from the dashboard"
            );
        } else {
            ::tracing::info!(
                target: "breaker::dashboard", action, provider, tenant, allowed, outcome,
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
