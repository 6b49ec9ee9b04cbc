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
/// A 429 or 503 that says when to come back (a `Retry-After` header) is
/// [`Outcome::RetryAfter`] of that time, which opens the circuit for exactly as long; see
/// [`retry_after_header`](crate::retry_after_header) for the header forms.
///
/// ```
/// use std::time::Duration;
/// # use breaker_core as breaker;
/// use breaker::{Classify, Outcome};
///
/// let response = http::Response::builder().status(503).body(()).unwrap();
/// assert_eq!(response.classify(), Outcome::Failure);
///
/// let response = http::Response::builder().status(429).header("retry-after", "120").body(()).unwrap();
/// assert_eq!(response.classify(), Outcome::RetryAfter(Duration::from_secs(120)));
/// ```
#[cfg(feature = "http")]
impl<B> Classify for http::Response<B> {
    fn classify(&self) -> Outcome {
        classify_response(self.status().as_u16(), self.headers())
    }
}

/// The outcome of a response with `status` and `headers`: its status's, or
/// [`Outcome::RetryAfter`] for a 429 or 503 with a usable `Retry-After`.
#[cfg(feature = "http")]
pub(crate) fn classify_response(status: u16, headers: &http::HeaderMap) -> Outcome {
    if matches!(status, 429 | 503) {
        if let Some(d) = retry_after_header(headers) {
            return Outcome::RetryAfter(d);
        }
    }
    if status < 400 {
        Outcome::Success
    } else {
        ErrorClass::from_status(status).outcome()
    }
}

/// The time a response's `Retry-After` header asks the client to wait (RFC 9110, 10.2.3), or
/// `None` without a usable one:
///
/// - delay-seconds (`Retry-After: 120`): that many seconds;
/// - an HTTP-date (`Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`): the time from the response's
///   own `Date` header to it, so a skew between the provider's clock and ours does not matter;
///   from our system clock's now when the response has no valid `Date`. A date already past is
///   `Duration::ZERO` (the provider says "now": a plain failure).
///
/// Anything else (a negative or fractional number, an unparsable date, several values) is
/// ignored: the response counts by its status alone.
///
/// ```
/// use std::time::Duration;
/// # use breaker_core as breaker;
/// use breaker::retry_after_header;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("date", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
/// headers.insert("retry-after", "Wed, 21 Oct 2015 07:30:30 GMT".parse().unwrap());
/// assert_eq!(retry_after_header(&headers), Some(Duration::from_secs(150)));
///
/// headers.insert("retry-after", "30".parse().unwrap());
/// assert_eq!(retry_after_header(&headers), Some(Duration::from_secs(30)));
/// ```
#[cfg(feature = "http")]
pub fn retry_after_header(headers: &http::HeaderMap) -> Option<std::time::Duration> {
    use std::time::{Duration, SystemTime};

    let mut values = headers.get_all(http::header::RETRY_AFTER).iter();
    let (value, None) = (values.next()?, values.next()) else {
        return None; // several values: no single time to trust
    };
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is "very long": the circuit caps it at `max_open_for`.
        return Some(Duration::from_secs(text.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    let base = headers
        .get(http::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
        .unwrap_or_else(SystemTime::now);
    Some(at.duration_since(base).unwrap_or(Duration::ZERO))
}

/// Whether an I/O error is among `e`'s causes. reqwest reports a body that breaks off while it
/// is read through `bytes_stream()` (and `chunk()`, `text()`, ...) as a *decode* error whose
/// cause is the connection's I/O error: that is the provider's network failure, unlike a body
/// that arrived whole and failed to decode (its cause is the decoder's own error).
#[cfg(any(feature = "reqwest", feature = "reqwest-0-12"))]
pub(crate) fn io_cause(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = e.source();
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The classification of one version of reqwest: `From<&Error> for ErrorClass`, documented by the
/// attributes given, and `Classify` for `Error` and `Response`. reqwest 0.12 and 0.13 are distinct
/// crates to the compiler with the same API, so each needs its own impls of the same logic.
#[cfg(any(feature = "reqwest", feature = "reqwest-0-12"))]
macro_rules! classify_reqwest {
    ($(#[$doc:meta])* $reqwest:ident) => {
        $(#[$doc])*
        impl From<&$reqwest::Error> for crate::classify::ErrorClass {
            fn from(e: &$reqwest::Error) -> crate::classify::ErrorClass {
                use crate::classify::ErrorClass;
                if e.is_timeout() {
                    ErrorClass::Timeout
                } else if let Some(status) = e.status() {
                    ErrorClass::from_status(status.as_u16())
                } else if e.is_connect()
                    || e.is_request()
                    || e.is_body()
                    || (e.is_decode() && crate::client_errors::io_cause(e))
                {
                    ErrorClass::Network
                } else {
                    ErrorClass::Unknown
                }
            }
        }

        /// The outcome of `ErrorClass::from(&reqwest::Error)` (see that impl).
        impl crate::classify::Classify for $reqwest::Error {
            fn classify(&self) -> crate::classify::Outcome {
                crate::classify::ErrorClass::from(self).outcome()
            }
        }

        /// A response counts as its status (see the `http::StatusCode` impl); a 429 or 503 with
        /// a `Retry-After` header is [`Outcome::RetryAfter`] of that time, as for
        /// `http::Response`.
        ///
        /// [`Outcome::RetryAfter`]: crate::Outcome::RetryAfter
        impl crate::classify::Classify for $reqwest::Response {
            fn classify(&self) -> crate::classify::Outcome {
                crate::client_errors::classify_response(self.status().as_u16(), self.headers())
            }
        }
    };
}
// For `reqwest_0_12.rs`.
#[cfg(feature = "reqwest-0-12")]
pub(crate) use classify_reqwest;

#[cfg(feature = "reqwest")]
classify_reqwest! {
    /// Timeouts are [`ErrorClass::Timeout`], connect failures [`ErrorClass::Network`], an error
    /// with a status (from `error_for_status`) [`ErrorClass::from_status`]; a failure while
    /// sending the request or reading the body is [`ErrorClass::Network`], a body that breaks
    /// off mid-stream included (reqwest calls it a decode error with an I/O cause, e.g. from
    /// `bytes_stream()`). Errors of the caller's side (building the request, redirect policy,
    /// decoding a whole body) say nothing about the provider: [`ErrorClass::Unknown`].
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
    reqwest
}
