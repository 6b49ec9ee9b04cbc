//! Classification of real clients' errors (features `io`, `http`, `reqwest` for reqwest 0.13;
//! 0.12's are in `reqwest_0_12.rs`): what a refused connection, a 503 or a reqwest timeout means
//! for the provider's circuit, so callers using these types need no `Classify` impl of their own.
//!
//! The impls live here, beside the trait, because Rust allows an impl of a trait for a foreign
//! type only in the trait's crate.

use crate::classify::{Classify, ErrorClass, Outcome};

/// Refused, reset, aborted or unreachable connections are [`ErrorClass::Network`], timeouts
/// [`ErrorClass::Timeout`] (all trip); anything else ([`NotFound`], [`InvalidInput`], ...) says
/// nothing about the provider and is [`ErrorClass::Unknown`].
///
/// ```
/// # use breaker_core as breaker;
/// use std::io::{Error, ErrorKind};
/// use breaker::{Classify, ErrorClass, Outcome};
///
/// assert_eq!(ErrorClass::from(&Error::from(ErrorKind::ConnectionRefused)), ErrorClass::Network);
/// assert_eq!(Error::from(ErrorKind::TimedOut).classify(), Outcome::Failure);
/// assert_eq!(Error::from(ErrorKind::InvalidInput).classify(), Outcome::Ignored);
/// ```
///
/// [`NotFound`]: std::io::ErrorKind::NotFound
/// [`InvalidInput`]: std::io::ErrorKind::InvalidInput
#[cfg(feature = "io")]
impl From<&std::io::Error> for ErrorClass {
    fn from(e: &std::io::Error) -> ErrorClass {
        use std::io::ErrorKind::*;
        match e.kind() {
            TimedOut => ErrorClass::Timeout,
            ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe
            | HostUnreachable | NetworkUnreachable | NetworkDown | AddrNotAvailable
            // The peer closed the connection mid-answer.
            | UnexpectedEof => ErrorClass::Network,
            _ => ErrorClass::Unknown,
        }
    }
}

/// The outcome of `ErrorClass::from(&io::Error)` (see that impl).
#[cfg(feature = "io")]
impl Classify for std::io::Error {
    fn classify(&self) -> Outcome {
        ErrorClass::from(self).outcome()
    }
}

/// [`ErrorClass::from_status`] of the code.
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::ErrorClass;
/// assert_eq!(ErrorClass::from(http::StatusCode::TOO_MANY_REQUESTS), ErrorClass::RateLimited);
/// ```
#[cfg(feature = "http")]
impl From<http::StatusCode> for ErrorClass {
    fn from(status: http::StatusCode) -> ErrorClass {
        ErrorClass::from_status(status.as_u16())
    }
}

/// A status as the result of a call: below 400 the provider answered, a success; from 400 on,
/// [`ErrorClass::from_status`] decides (5xx and 429 fail, other 4xx are the caller's and count as
/// successes).
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::{Classify, Outcome};
/// use http::StatusCode;
///
/// assert_eq!(StatusCode::OK.classify(), Outcome::Success);
/// assert_eq!(StatusCode::NOT_FOUND.classify(), Outcome::Success);
/// assert_eq!(StatusCode::SERVICE_UNAVAILABLE.classify(), Outcome::Failure);
/// ```
#[cfg(feature = "http")]
impl Classify for http::StatusCode {
    fn classify(&self) -> Outcome {
        if self.as_u16() < 400 {
            Outcome::Success
        } else {
            ErrorClass::from(*self).outcome()
        }
    }
}

/// A response counts as its status: an `Ok(response)` with a 503 is a failure of the provider.
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::{Classify, Outcome};
///
/// let response = http::Response::builder().status(503).body(()).unwrap();
/// assert_eq!(response.classify(), Outcome::Failure);
/// ```
#[cfg(feature = "http")]
impl<B> Classify for http::Response<B> {
    fn classify(&self) -> Outcome {
        self.status().classify()
    }
}

/// Timeouts are [`ErrorClass::Timeout`], connect failures [`ErrorClass::Network`], an error with
/// a status (from `error_for_status`) [`ErrorClass::from_status`]; a failure while sending the
/// request or reading the body is [`ErrorClass::Network`]. Errors of the caller's side (building
/// the request, redirect policy, decoding the body) say nothing about the provider:
/// [`ErrorClass::Unknown`].
///
/// ```
/// # use breaker_core as breaker;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use breaker::{Classify, ErrorClass, Outcome};
///
/// // Nothing listens on port 1 of the loopback: the connection is refused.
/// let err = reqwest::get("http://127.0.0.1:1/").await.unwrap_err();
/// assert_eq!(ErrorClass::from(&err), ErrorClass::Network);
/// assert_eq!(err.classify(), Outcome::Failure);
/// # }
/// ```
#[cfg(feature = "reqwest")]
impl From<&reqwest::Error> for ErrorClass {
    fn from(e: &reqwest::Error) -> ErrorClass {
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
#[cfg(feature = "reqwest")]
impl Classify for reqwest::Error {
    fn classify(&self) -> Outcome {
        ErrorClass::from(self).outcome()
    }
}

/// A response counts as its status (see the `http::StatusCode` impl).
#[cfg(feature = "reqwest")]
impl Classify for reqwest::Response {
    fn classify(&self) -> Outcome {
        let status = self.status().as_u16();
        if status < 400 {
            Outcome::Success
        } else {
            ErrorClass::from_status(status).outcome()
        }
    }
}
