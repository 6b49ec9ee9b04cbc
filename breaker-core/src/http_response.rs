//! A rejection as an HTTP answer (features `http` and `axum`): `503 Service Unavailable`, with a
//! `Retry-After` in whole seconds rounded up when the circuit knows when a probe may pass, and a
//! short plain-text body. Every gateway in front of a provider writes this by hand otherwise.

use crate::error::CircuitOpen;

/// The body of the answer: short, plain text, and naming no provider or tenant (the client of a
/// gateway need not learn its upstreams).
#[cfg(feature = "http")]
const BODY_OPEN: &str = "service unavailable: an upstream is failing, try again later\n";

impl CircuitOpen {
    /// `Retry-After` as the header wants it: whole seconds, rounded up, so a client that waits
    /// that long finds the open period over (`None` when not known).
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use std::time::Duration;
    /// use breaker::{Circuit, Config, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let circuit = Circuit::with_clock(Config::builder().consecutive_failures(1).build()?, clock.clone());
    /// circuit.try_acquire()?.failure();
    /// clock.advance(Duration::from_millis(2_500));
    /// assert_eq!(circuit.try_acquire().unwrap_err().retry_after_secs(), Some(28)); // 27.5 s left
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after().map(|d| {
            let whole = d.as_secs();
            if d.subsec_nanos() > 0 {
                whole.saturating_add(1)
            } else {
                whole
            }
        })
    }

    /// A `503 Service Unavailable` builder with `Retry-After` (whole seconds, rounded up; absent
    /// when unknown) and a `text/plain` content type; add the body your framework uses.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::CircuitOpen;
    ///
    /// fn answer(open: &CircuitOpen) -> http::Response<String> {
    ///     open.http_response_builder()
    ///         .body(String::from("busy, come back later\n"))
    ///         .expect("a status and two valid headers")
    /// }
    /// ```
    #[cfg(feature = "http")]
    pub fn http_response_builder(&self) -> http::response::Builder {
        let builder = http::Response::builder()
            .status(http::StatusCode::SERVICE_UNAVAILABLE)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8");
        match self.retry_after_secs() {
            Some(secs) => builder.header(http::header::RETRY_AFTER, secs),
            None => builder,
        }
    }

    /// The whole answer: [`http_response_builder`](Self::http_response_builder) with a short
    /// plain-text body, for frameworks whose body type converts from a `String` (hyper's `Full`,
    /// axum's `Body`, `String` itself).
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use std::time::Duration;
    /// use breaker::{Circuit, Config, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let circuit = Circuit::with_clock(Config::builder().consecutive_failures(1).build()?, clock.clone());
    /// circuit.try_acquire()?.failure();
    /// clock.advance(Duration::from_millis(20_300));
    ///
    /// let response: http::Response<String> = circuit.try_acquire().unwrap_err().http_response();
    /// assert_eq!(response.status(), 503);
    /// assert_eq!(response.headers()["retry-after"], "10"); // 9.7 s, rounded up
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "http")]
    pub fn http_response<B: From<String>>(&self) -> http::Response<B> {
        let mut response = http::Response::new(B::from(BODY_OPEN.to_owned()));
        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

/// Feature `axum`: a handler may return the rejection (or `Result<_, CircuitOpen>`, or an error
/// type whose `IntoResponse` delegates to it) and the client gets
/// [`http_response`](CircuitOpen::http_response): 503, `Retry-After`, a short text body.
///
/// ```
/// # use breaker_core as breaker;
/// # use axum_core as axum;
/// use axum::response::{IntoResponse, Response};
/// use breaker::CircuitOpen;
///
/// enum GatewayError {
///     Open(CircuitOpen),
///     Upstream(String),
/// }
///
/// impl IntoResponse for GatewayError {
///     fn into_response(self) -> Response {
///         match self {
///             GatewayError::Open(open) => open.into_response(),
///             GatewayError::Upstream(e) => (http::StatusCode::BAD_GATEWAY, e).into_response(),
///         }
///     }
/// }
/// ```
#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for CircuitOpen {
    fn into_response(self) -> axum_core::response::Response {
        self.http_response()
    }
}
