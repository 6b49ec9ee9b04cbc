//! Feature `reqwest-0-12`: the classification of `client_errors.rs` for reqwest 0.12, for services
//! that have not moved to 0.13 (feature `reqwest`). reqwest 0.12 and 0.13 are different crates to
//! the compiler, so each needs its own impls; both can be enabled at once.

use crate::classify::{Classify, ErrorClass, Outcome};

/// As for reqwest 0.13: timeouts are [`ErrorClass::Timeout`], connect, request and body failures
/// [`ErrorClass::Network`], an error with a status [`ErrorClass::from_status`], the rest
/// [`ErrorClass::Unknown`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # use reqwest_0_12 as reqwest;
/// use breaker::{Classify, ErrorClass, Outcome};
/// # use breaker_core as breaker;
///
/// // Nothing listens on port 1 of the loopback: the connection is refused.
/// let err = reqwest::get("http://127.0.0.1:1/").await.unwrap_err();
/// assert_eq!(ErrorClass::from(&err), ErrorClass::Network);
/// assert_eq!(err.classify(), Outcome::Failure);
/// # }
/// ```
impl From<&reqwest_0_12::Error> for ErrorClass {
    fn from(e: &reqwest_0_12::Error) -> ErrorClass {
        if e.is_timeout() {
            ErrorClass::Timeout
        } else if let Some(status) = e.status() {
            ErrorClass::from_status(status.as_u16())
        } else if e.is_connect() || e.is_request() || e.is_body() {
            ErrorClass::Network
        } else {
            ErrorClass::Unknown
        }
    }
}

/// The outcome of `ErrorClass::from(&reqwest::Error)` (see that impl).
impl Classify for reqwest_0_12::Error {
    fn classify(&self) -> Outcome {
        ErrorClass::from(self).outcome()
    }
}

/// A response counts as its status: below 400 a success, from 400 on [`ErrorClass::from_status`];
/// a 429 or 503 with a `Retry-After` header is [`Outcome::RetryAfter`] of that time, as for
/// reqwest 0.13 and `http::Response`.
impl Classify for reqwest_0_12::Response {
    fn classify(&self) -> Outcome {
        crate::client_errors::classify_response(self.status().as_u16(), self.headers())
    }
}
