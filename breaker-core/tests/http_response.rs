//! Feature `http`: a rejection as a 503 answer, `Retry-After` in whole seconds rounded up and
//! omitted when the circuit does not know when a probe may pass.
#![cfg(feature = "http")]

use std::time::Duration;

use breaker_core::{Circuit, CircuitOpen, Config, ManualClock};

/// The rejection of a circuit that opened for 10 s, `elapsed` ago.
fn rejection_after(elapsed: Duration) -> CircuitOpen {
    let clock = ManualClock::new();
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(10))
        .build()
        .unwrap();
    let circuit = Circuit::with_clock(config, clock.clone());
    circuit.try_acquire().unwrap().failure();
    clock.advance(elapsed);
    circuit.try_acquire().unwrap_err()
}

#[test]
fn retry_after_is_whole_seconds_rounded_up() {
    for (elapsed_ms, header) in [
        (0, "10"),
        (1, "10"),
        (999, "10"),
        (1_000, "9"),
        (9_999, "1"),
    ] {
        let open = rejection_after(Duration::from_millis(elapsed_ms));
        let response: http::Response<String> = open.http_response();
        assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[http::header::RETRY_AFTER],
            header,
            "{elapsed_ms} ms into a 10 s open period"
        );
        let built = open.http_response_builder().body(()).unwrap();
        assert_eq!(built.headers()[http::header::RETRY_AFTER], header);
    }
}

#[test]
fn an_unknown_retry_after_sends_no_header() {
    let circuit = Circuit::new(Config::default());
    circuit.force_open();
    let open = circuit.try_acquire().unwrap_err();
    assert_eq!(open.retry_after(), None);
    let response: http::Response<String> = open.http_response();
    assert_eq!(response.status(), 503);
    assert!(!response.headers().contains_key(http::header::RETRY_AFTER));
    assert!(!open
        .http_response_builder()
        .body(())
        .unwrap()
        .headers()
        .contains_key(http::header::RETRY_AFTER));
}

#[test]
fn the_body_is_short_plain_text() {
    let response: http::Response<String> = rejection_after(Duration::ZERO).http_response();
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    let body = response.into_body();
    assert!(
        !body.is_empty() && body.len() < 80 && body.ends_with('\n'),
        "{body:?}"
    );
}
