//! The fake LLM provider of the SSE demos (`examples/sse_gateway.rs`, `examples/stream_reqwest.rs`
//! and their tests): an axum server on 127.0.0.1 whose `GET /v1/stream?mode=..` answers `200`
//! with `text/event-stream` headers at once, then streams the tokens of one answer as SSE events,
//! misbehaving as the request's [`Mode`] asks.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use axum::Router;
use breaker::stream::Stream;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio::time::sleep;

/// The answer the provider streams, one SSE event per token.
pub const ANSWER: [&str; 6] = ["The", "circuit", "judges", "the", "whole", "stream."];
/// How many tokens come before the failure of [`Mode::FailMidStream`].
pub const TOKENS_BEFORE_FAILURE: usize = 3;
/// The pause between two tokens of a healthy answer.
pub const TOKEN_GAP: Duration = Duration::from_millis(30);
/// How long [`Mode::SlowFirstToken`] keeps the client waiting for its first token.
pub const SLOW_FIRST_TOKEN: Duration = Duration::from_millis(1_000);

/// How the provider answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every token, [`TOKEN_GAP`] apart, then the end of the stream.
    Healthy,
    /// [`TOKENS_BEFORE_FAILURE`] tokens, then the connection breaks (the chunked body is never
    /// terminated): what a provider that crashes mid-answer looks like to its client.
    FailMidStream,
    /// The headers, then nothing, until the client hangs up.
    StallAfterHeaders,
    /// The whole answer, but the first token only after [`SLOW_FIRST_TOKEN`].
    SlowFirstToken,
    /// The first token, then nothing until [`Upstream::release`], then the rest: a long answer
    /// whose end the demo decides.
    Held,
}

impl Mode {
    /// The name in the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Healthy => "healthy",
            Mode::FailMidStream => "fail_mid_stream",
            Mode::StallAfterHeaders => "stall_after_headers",
            Mode::SlowFirstToken => "slow_first_token",
            Mode::Held => "held",
        }
    }
}

#[derive(Default)]
struct Shared {
    requests: AtomicU32,
    release: Notify,
}

/// The running provider.
pub struct Upstream {
    url: String,
    shared: Arc<Shared>,
}

impl Upstream {
    /// Serves on a free port of the loopback, until the runtime ends.
    pub async fn start() -> io::Result<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/v1/stream", get(answer))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Upstream { url, shared })
    }

    /// The provider's base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests received so far.
    pub fn requests(&self) -> u32 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Lets the (next) [`Mode::Held`] answer go on past its first token.
    pub fn release(&self) {
        self.shared.release.notify_one();
    }
}

/// The URL of an answer streamed as `mode` says, from the provider at `base`.
pub fn stream_url(base: &str, mode: Mode) -> String {
    format!("{base}/v1/stream?mode={}", mode.as_str())
}

#[derive(serde::Deserialize)]
struct Ask {
    mode: Mode,
}

async fn answer(State(shared): State<Arc<Shared>>, Query(ask): Query<Ask>) -> Sse<Tokens> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let (tx, rx) = mpsc::channel(ANSWER.len() + 1);
    tokio::spawn(script(ask.mode, tx, shared));
    Sse::new(Tokens(rx))
}

type Item = Result<Event, io::Error>;

/// The SSE events a [`script`] sends; its end is the end of the body.
struct Tokens(mpsc::Receiver<Item>);

impl Stream for Tokens {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.0.poll_recv(cx)
    }
}

/// Plays `mode` into `tx`; returns early once the client has gone.
async fn script(mode: Mode, tx: mpsc::Sender<Item>, shared: Arc<Shared>) {
    let send = |token: &str| tx.send(Ok(Event::default().data(token)));
    match mode {
        Mode::Healthy | Mode::SlowFirstToken | Mode::Held => {
            if mode == Mode::SlowFirstToken {
                sleep(SLOW_FIRST_TOKEN).await;
            }
            for (i, token) in ANSWER.into_iter().enumerate() {
                if i > 0 {
                    sleep(TOKEN_GAP).await;
                }
                if send(token).await.is_err() {
                    return;
                }
                if i == 0 && mode == Mode::Held {
                    shared.release.notified().await;
                }
            }
        }
        Mode::FailMidStream => {
            for token in &ANSWER[..TOKENS_BEFORE_FAILURE] {
                if send(token).await.is_err() {
                    return;
                }
                sleep(TOKEN_GAP).await;
            }
            // An error from the event stream makes the server drop the connection mid-body.
            let _ = tx.send(Err(io::Error::other("the model crashed"))).await;
        }
        Mode::StallAfterHeaders => tx.closed().await,
    }
}
