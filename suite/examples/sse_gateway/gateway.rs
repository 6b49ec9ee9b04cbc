//! The gateway of `examples/sse_gateway.rs`, shared with `tests/sse_gateway.rs`: an axum router
//! whose `GET /chat?mode=..` opens the provider's SSE stream with reqwest under
//! `#[circuit_breaker(stream, ..)]` and relays its bytes to the client as they come. The circuit
//! judges each answer when its stream ends, fails, stalls or arrives late, not when the headers
//! arrive.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use breaker::stream::Stream;
use breaker::{circuit_breaker, CircuitOpen, Classify, Outcome, Registry};
use tokio::time::{sleep, Instant, Sleep};

use crate::upstream::{stream_url, Mode};

/// The circuit's provider name (the attribute spells it as a literal).
pub const PROVIDER: &str = "llm";
/// The attribute's `first_item_timeout` and `idle_timeout`, for the demo's printout.
pub const FIRST_ITEM_TIMEOUT: Duration = Duration::from_millis(500);
pub const IDLE_TIMEOUT: Duration = Duration::from_millis(500);
/// The attribute's `open_for`.
pub const OPEN_FOR: Duration = Duration::from_secs(2);
/// How long the gateway waits for the provider's next bytes before it gives up on the stream
/// and tells its client. The breaker runs no timer: it judges a stalled stream when its consumer
/// drops it, so the consumer needs a limit of its own. Longer than the provider's slow first
/// token, which the gateway still relays (and the breaker still counts as a failure).
pub const STALL_CUTOFF: Duration = Duration::from_millis(2_500);

/// What the handlers share.
pub struct Gateway {
    pub client: reqwest::Client,
    /// The provider's base URL.
    pub upstream: String,
    pub registry: Arc<Registry>,
}

/// Why the gateway has no stream to relay.
#[derive(Debug)]
pub enum GatewayError {
    /// The circuit is open: the provider was not called.
    Open(CircuitOpen),
    /// The provider could not be reached, or answered with an error status.
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

/// Any fault of the provider before its stream begins trips; a rejection says nothing new.
impl Classify for GatewayError {
    fn classify(&self) -> Outcome {
        match self {
            GatewayError::Open(_) => Outcome::Ignored,
            GatewayError::Upstream(_) => Outcome::Failure,
        }
    }
}

/// A body that breaks after its headers is the provider's failure.
fn broken_body(_: &reqwest::Error) -> Outcome {
    Outcome::Failure
}

/// The provider's token stream, boxed.
pub type Tokens = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// Opens the provider's stream. The call returns at the headers; the returned stream holds the
/// call's permit (it is a `breaker::stream::Guarded`, boxed again) and records the outcome once:
/// a success at its end, a failure at a broken body, a first token later than 500 ms or a gap
/// over 500 ms (when the late token comes, or when the gateway drops the stalled stream).
/// The circuit trips when 3 of the last 4 answers failed.
#[circuit_breaker(
    provider = "llm",
    registry = &gateway.registry,
    failure_rate = 0.75,
    window = 10,
    minimum_calls = 4,
    open_for = "2s",
    stream,
    classify_item = broken_body,
    first_item_timeout = "500ms",
    idle_timeout = "500ms"
)]
pub async fn open_stream(gateway: &Gateway, mode: Mode) -> Result<Tokens, GatewayError> {
    let url = stream_url(&gateway.upstream, mode);
    let response = gateway.client.get(url).send().await?.error_for_status()?;
    Ok(Box::pin(response.bytes_stream()))
}

#[derive(serde::Deserialize)]
struct Ask {
    mode: Mode,
}

async fn chat(State(gateway): State<Arc<Gateway>>, Query(ask): Query<Ask>) -> Response {
    match open_stream(&gateway, ask.mode).await {
        Ok(tokens) => (
            [(header::CONTENT_TYPE, "text/event-stream")],
            Body::from_stream(Relay::new(tokens, STALL_CUTOFF)),
        )
            .into_response(),
        Err(GatewayError::Open(open)) => {
            let secs = open
                .retry_after()
                .map_or(1, |d| d.as_secs_f64().ceil() as u64);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, secs.max(1).to_string())],
                format!("{open}\n"),
            )
                .into_response()
        }
        Err(GatewayError::Upstream(e)) => {
            (StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response()
        }
    }
}

/// The gateway's routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new().route("/chat", get(chat)).with_state(gateway)
}

/// The provider's bytes, passed on as they come. A broken body, or no bytes for `cutoff`, ends
/// the client's stream with an SSE `error` event; either way the provider's (guarded) stream is
/// dropped at that moment, which is when a stall is judged.
pub struct Relay {
    tokens: Option<Tokens>,
    cutoff: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Relay {
    fn new(tokens: Tokens, cutoff: Duration) -> Relay {
        Relay {
            tokens: Some(tokens),
            cutoff,
            deadline: Box::pin(sleep(cutoff)),
        }
    }
}

/// An SSE event named `error`, for the client.
fn error_event(message: &str) -> Bytes {
    Bytes::from(format!("event: error\ndata: {message}\n\n"))
}

impl Stream for Relay {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(tokens) = this.tokens.as_mut() else {
            return Poll::Ready(None);
        };
        match tokens.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.deadline.as_mut().reset(Instant::now() + this.cutoff);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.tokens = None;
                Poll::Ready(Some(Ok(error_event(&format!(
                    "the provider broke off: {e}"
                )))))
            }
            Poll::Ready(None) => {
                this.tokens = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.tokens = None;
                Poll::Ready(Some(Ok(error_event("the provider stalled"))))
            }
        }
    }
}
