//! reqwest's `response.bytes_stream()` guarded by `breaker::stream::Guarded::new`, without the
//! attribute: the circuit judges each answer when its body ends, fails or arrives late.
//!
//! A fake LLM provider on 127.0.0.1 streams an SSE answer four ways: healthy, slow to its first
//! token (1 s, against a `first_item_timeout` of 500 ms), broken off after three tokens, and
//! stalled after its headers (the caller's own 2 s timeout drops the body). The circuit opens
//! after three failures in a row; the output shows the chunks as they come and the circuit after
//! each answer. `tests/stream_reqwest.rs` checks the same calls.
//!
//! ```text
//! cargo run -p breaker-suite --example stream_reqwest --features reqwest
//! ```

// Shared with tests/stream_reqwest.rs (and the provider with examples/sse_gateway.rs); under
// folders without `main.rs`, so Cargo does not take them for examples of their own.
#[path = "stream_reqwest/fetch.rs"]
mod fetch;
// The provider's `release` is for the gateway demo's held probe.
#[allow(dead_code)]
#[path = "sse_gateway/upstream.rs"]
mod upstream;

use std::time::Duration;

use breaker::{Circuit, Config, State};
use fetch::fetch;
use upstream::{stream_url, Mode, Upstream};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = Upstream::start().await?;
    let circuit = Circuit::new(
        Config::builder()
            .consecutive_failures(3)
            .first_item_timeout(Duration::from_millis(500))
            .idle_timeout(Duration::from_millis(500))
            .build()?,
    );
    let client = reqwest::Client::new();
    for mode in [
        Mode::Healthy,
        Mode::SlowFirstToken,
        Mode::FailMidStream,
        Mode::StallAfterHeaders,
    ] {
        println!("{}:", mode.as_str());
        let url = stream_url(provider.url(), mode);
        let call = fetch(&client, &circuit, &url, |chunk| {
            println!("  <- {:?}", String::from_utf8_lossy(chunk));
        });
        match tokio::time::timeout(Duration::from_secs(2), call).await {
            Ok(Ok(chunks)) => println!("  body complete, {} chunks", chunks.len()),
            Ok(Err(e)) => println!("  failed: {e}"),
            Err(_) => println!("  gave up after 2 s: the body is dropped"),
        }
        let m = circuit.metrics();
        match m.state {
            State::Closed => println!(
                "  circuit: closed, {} failures in a row\n",
                m.consecutive_failures
            ),
            state => println!("  circuit: {state}, tripped by the third failure in a row\n"),
        }
    }
    Ok(())
}
