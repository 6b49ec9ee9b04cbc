//! The gateway of `examples/gateway.rs`, shared with `tests/gateway.rs`: an axum router whose
//! `/complete` calls an upstream over HTTP under `#[circuit_breaker]` (one circuit per tenant),
//! and whose `/admin/circuits?state=open` lists circuits.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use breaker::{
    circuit_breaker, CircuitOpen, CircuitState, Classify, ErrorClass, Outcome, Registry,
};

/// The circuits' provider name.
pub const PROVIDER: &str = "upstream";

/// What the handlers share.
pub struct Gateway {
    pub client: reqwest::Client,
    /// The upstream's base URL, e.g. `http://127.0.0.1:8081`.
    pub upstream: String,
    pub registry: Arc<Registry>,
}

/// Why a call through the gateway failed.
#[derive(Debug)]
pub enum GatewayError {
    /// The tenant's circuit is open: the upstream was not called.
    Open(CircuitOpen),
    /// The upstream answered with an error status, or not at all.
    Upstream(reqwest::Error),
}

impl From<CircuitOpen> for GatewayError {
    fn from(open: CircuitOpen) -> Self {
        GatewayError::Open(open)
    }
}

impl From<reqwest::Error> for GatewayError {
    fn from(e: reqwest::Error) -> Self {
        GatewayError::Upstream(e)
    }
}

/// The upstream's faults trip; the rejection itself says nothing new.
impl Classify for GatewayError {
    fn classify(&self) -> Outcome {
        match self {
            GatewayError::Open(_) => Outcome::Ignored,
            GatewayError::Upstream(e) => ErrorClass::from(e).outcome(),
        }
    }
}

/// A rejection is the breaker's 503 with `Retry-After`; an upstream fault is a 502.
impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        match self {
            GatewayError::Open(open) => open.into_response(),
            GatewayError::Upstream(e) => {
                (StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response()
            }
        }
    }
}

#[circuit_breaker(
    provider = "upstream",
    registry = &gateway.registry,
    tenant = tenant,
    consecutive_failures = 3,
    open_for = "5s"
)]
async fn call_upstream(gateway: &Gateway, tenant: &str) -> Result<String, GatewayError> {
    let url = format!("{}/answer?tenant={tenant}", gateway.upstream);
    let response = gateway.client.get(url).send().await?.error_for_status()?;
    Ok(response.text().await?)
}

#[derive(serde::Deserialize)]
struct Caller {
    tenant: String,
}

async fn complete(
    State(gateway): State<Arc<Gateway>>,
    Query(caller): Query<Caller>,
) -> Result<String, GatewayError> {
    call_upstream(&gateway, &caller.tenant).await
}

/// `?state=open` deserializes straight into a `CircuitState` (`breaker::State` under a name that
/// does not clash with axum's `State` extractor).
#[derive(serde::Deserialize)]
struct Filter {
    state: Option<CircuitState>,
}

async fn circuits(
    State(gateway): State<Arc<Gateway>>,
    Query(filter): Query<Filter>,
) -> Json<Vec<breaker::CircuitSnapshot>> {
    Json(
        gateway
            .registry
            .snapshot_filtered(Some(PROVIDER), filter.state),
    )
}

/// The gateway's routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/complete", get(complete))
        .route("/admin/circuits", get(circuits))
        .with_state(gateway)
}
