//! The call of `examples/stream_reqwest.rs`, shared with `tests/stream_reqwest.rs`: a reqwest
//! response body read as `bytes_stream()`, guarded by the permit of its circuit.

use std::future::poll_fn;
use std::pin::pin;

use axum::body::Bytes;
use breaker::stream::{Guarded, Stream};
use breaker::{Circuit, CircuitOpen, Classify};

/// Why [`fetch`] has no whole body.
#[derive(Debug)]
pub enum FetchError {
    /// The circuit is open: nothing was sent.
    Open(CircuitOpen),
    /// No response, an error status, or a body that broke off.
    Http(reqwest::Error),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Open(open) => write!(f, "rejected: {open}"),
            FetchError::Http(e) => write!(f, "{e}"),
        }
    }
}

/// GETs `url` under `circuit` and reads its body to the end, chunk by chunk as it comes
/// (`on_chunk`). The call is judged by its body, not its status line: the body stream holds the
/// permit (`Guarded::new`) and records a success when it ends, a broken body at once (reqwest's
/// error classified by breaker's feature `reqwest`: a body error is a network failure), and a
/// late first chunk or a long gap as a failure when the config sets `first_item_timeout` or
/// `idle_timeout`. A caller that drops this future mid-body (a timeout of its own) drops the
/// guard: `on_abandoned` before the first chunk, `on_cancel` after, a failure past a timeout.
pub async fn fetch(
    client: &reqwest::Client,
    circuit: &Circuit,
    url: &str,
    mut on_chunk: impl FnMut(&Bytes),
) -> Result<Vec<Bytes>, FetchError> {
    let permit = circuit.try_acquire().map_err(FetchError::Open)?;
    let response = match client
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
    {
        Ok(response) => response,
        Err(e) => {
            // No stream to guard: judged now, like any call.
            permit.record(e.classify());
            return Err(FetchError::Http(e));
        }
    };
    let mut body = pin!(Guarded::new(permit, response.bytes_stream()));
    let mut chunks = Vec::new();
    while let Some(chunk) = poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        // An `Err` chunk is recorded by the guard as it passes.
        let chunk = chunk.map_err(FetchError::Http)?;
        on_chunk(&chunk);
        chunks.push(chunk);
    }
    Ok(chunks)
}
