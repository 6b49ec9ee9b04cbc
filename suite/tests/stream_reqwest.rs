//! Feature `reqwest`: `examples/stream_reqwest.rs`'s call, `Guarded::new(permit,
//! response.bytes_stream())`, against the fake provider on the loopback. Checks are on the
//! circuit's counts, never on timings; the stall is ended by the caller's own timeout.
#![cfg(feature = "reqwest")]

#[path = "../examples/stream_reqwest/fetch.rs"]
mod fetch;
#[allow(dead_code)]
#[path = "../examples/sse_gateway/upstream.rs"]
mod upstream;

use std::time::Duration;

use breaker::{Circuit, Config, State};
use fetch::{fetch, FetchError};
use upstream::{stream_url, Mode, Upstream, ANSWER};

fn text(chunks: &[axum::body::Bytes]) -> String {
    chunks
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reqwest_body_is_judged_when_it_ends() {
    let provider = Upstream::start().await.expect("a loopback port");
    let circuit = Circuit::new(
        Config::builder()
            .consecutive_failures(3)
            .first_item_timeout(Duration::from_millis(500))
            .idle_timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let call = |mode| {
        let url = stream_url(provider.url(), mode);
        let (client, circuit) = (client.clone(), circuit.clone());
        async move { fetch(&client, &circuit, &url, |_| {}).await }
    };
    let failures = || circuit.metrics().consecutive_failures;

    // A failure first, so that the healthy answer's success shows (it resets the count).
    assert!(matches!(
        call(Mode::FailMidStream).await,
        Err(FetchError::Http(e)) if e.is_body() || e.is_decode()
    ));
    assert_eq!(failures(), 1, "the broken body, recorded as it passed");

    let body = text(&call(Mode::Healthy).await.expect("a whole body"));
    for token in ANSWER {
        assert!(body.contains(&format!("data: {token}\n")), "{body}");
    }
    assert_eq!(failures(), 0, "a success at the end of the body");

    let body = text(&call(Mode::SlowFirstToken).await.expect("a whole body"));
    assert!(body.contains("data: stream."), "every byte passes: {body}");
    assert_eq!(
        failures(),
        1,
        "its first chunk came after first_item_timeout"
    );

    // The caller gives up on a stalled body: dropping the guard judges it.
    let stalled = tokio::time::timeout(Duration::from_secs(1), call(Mode::StallAfterHeaders));
    assert!(stalled.await.is_err(), "no byte after the headers");
    assert_eq!(failures(), 2);
    assert_eq!(circuit.state(), State::Closed);
    assert!(call(Mode::FailMidStream).await.is_err());
    assert_eq!(circuit.state(), State::Open, "three failures in a row");
    assert!(matches!(
        call(Mode::Healthy).await,
        Err(FetchError::Open(_))
    ));
    assert_eq!(provider.requests(), 5, "the rejected call sent nothing");
}
