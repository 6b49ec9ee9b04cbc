//! Streamed answers judged when they end: an axum gateway relays a fake LLM provider's SSE
//! token stream, and `#[circuit_breaker(stream, first_item_timeout = .., idle_timeout = ..)]`
//! judges each answer by its stream, not by its `200`.
//!
//! Both servers run in-process on 127.0.0.1. The gateway opens the provider's stream with reqwest
//! and guards `response.bytes_stream()`; the client reads the tokens as they come. The provider
//! misbehaves one way per request, and the output shows what the circuit made of each:
//!
//! - a healthy answer: a success, recorded at the end of the stream;
//! - a failure mid-stream (the connection breaks after three tokens): a failure, recorded at the
//!   broken chunk, while the client already holds the first tokens;
//! - a stall after the headers: a failure once the gateway gives up on the stream (the breaker
//!   runs no timer: it judges a stream its consumer drops, here after `STALL_CUTOFF`);
//! - slow to the first token (1 s against a `first_item_timeout` of 500 ms): the client gets the
//!   whole answer, and the circuit counts a failure when the late token arrives; 3 of 4 answers
//!   failed, so it trips;
//! - the next request is rejected at once (`503`, `Retry-After`), the provider never called;
//! - after the open period a probe passes. The provider holds its answer after the first token:
//!   the circuit stays half-open while the probe's stream is open (another request meanwhile is
//!   rejected), and closes when the stream ends.
//!
//! It ends on its own, in about 7 s. `tests/sse_gateway.rs` runs the same script and checks the
//! judgements.
//!
//! ```text
//! cargo run -p breaker-suite --example sse_gateway
//! ```

// Shared with tests/sse_gateway.rs (and the provider with examples/stream_reqwest.rs); under a
// folder without `main.rs`, so Cargo does not take them for examples of their own.
#[path = "sse_gateway/gateway.rs"]
mod gateway;
#[path = "sse_gateway/scenario.rs"]
mod scenario;
#[path = "sse_gateway/upstream.rs"]
mod upstream;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let demo = scenario::Demo::start(true).await?;
    let cases = demo.run().await;
    println!();
    println!(
        "{:<46} {:<36} {:<17} {:<15} circuit",
        "case", "the client got", "judged", "provider calls"
    );
    for case in &cases {
        println!(
            "{:<46} {:<36} {:<17} {:<15} {}",
            case.title,
            case.answer.to_string(),
            case.judged.to_string(),
            case.upstream_requests,
            case.state
        );
    }
    Ok(())
}
