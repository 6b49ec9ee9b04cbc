//! What an outcome means for a provider's health. A pure mapping that everything may use.

use std::time::Duration;

/// How one call counts toward its circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The provider is healthy (it answered, even if the answer was the caller's fault).
    Success,
    /// The provider is sick: counts toward tripping the circuit.
    Failure,
    /// Proves nothing either way: counted nowhere; the permit's slot is released.
    Ignored,
    /// A failure for which the provider said when to come back (a 429 or 503 with a
    /// `Retry-After` header). Recorded on a closed or half-open circuit, it opens the circuit at
    /// once, whatever the thresholds, for exactly this long (capped at the config's
    /// `max_open_for`, never jittered); the backoff level moves as for any trip. It also counts
    /// as a failure in the failure streak and the window. `Duration::ZERO` is a plain
    /// [`Failure`](Outcome::Failure).
    ///
    /// ```
    /// use std::time::Duration;
    /// # use breaker_core as breaker;
    /// use breaker::{Circuit, Config, ManualClock, Outcome, State};
    ///
    /// let clock = ManualClock::new();
    /// let circuit = Circuit::with_clock(Config::default(), clock.clone());
    /// // One answer "429, Retry-After: 120" opens the circuit, although 5 failures would be needed.
    /// circuit.try_acquire()?.record(Outcome::RetryAfter(Duration::from_secs(120)));
    /// assert_eq!(circuit.state(), State::Open);
    /// assert_eq!(circuit.try_acquire().unwrap_err().retry_after(), Some(Duration::from_secs(120)));
    /// # Ok::<(), breaker_core::CircuitOpen>(())
    /// ```
    RetryAfter(Duration),
}

/// Classifies an error (or any result-like value) into an [`Outcome`].
///
/// Implement it for your error type so that `#[circuit_breaker]` and [`Permit::record`] count
/// only real provider failures:
///
/// ```
/// # use breaker_core as breaker;
/// use breaker::{Classify, ErrorClass, Outcome};
///
/// enum ApiError { Status(u16), Network }
///
/// impl Classify for ApiError {
///     fn classify(&self) -> Outcome {
///         match self {
///             ApiError::Status(code) => ErrorClass::from_status(*code).outcome(),
///             ApiError::Network => Outcome::Failure,
///         }
///     }
/// }
/// assert_eq!(ApiError::Status(401).classify(), Outcome::Success);
/// assert_eq!(ApiError::Status(503).classify(), Outcome::Failure);
/// ```
///
/// [`Permit::record`]: crate::Permit::record
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `Classify`: the circuit cannot tell whether it is the provider's fault",
    label = "no `Classify` impl",
    note = "`std::io`, `http` and `reqwest` errors implement it with breaker's features `io`, `http`, `reqwest` (reqwest 0.13) or `reqwest-0-12`",
    note = "otherwise implement `Classify` for `{Self}`, or pass a `classify = ..` function"
)]
pub trait Classify {
    /// The outcome this value stands for.
    fn classify(&self) -> Outcome;
}

/// The usual kinds of failure of a remote provider, and what each means for its circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 5xx: the provider is failing. Trips.
    ServerError,
    /// 429: the provider is shedding load. Trips, so we stop adding to it.
    RateLimited,
    /// Connect errors, resets, DNS: the provider is unreachable. Trips.
    Network,
    /// The call took too long (or 408). Trips.
    Timeout,
    /// 401/403: the caller's credentials. The provider answered: counts as a success.
    Auth,
    /// 400/404/422 and other 4xx: the caller's request. Counts as a success.
    InvalidRequest,
    /// The request exceeded the model's context (413 too). The caller's problem: a success.
    ContextOverflow,
    /// Unclassifiable: proves neither health nor sickness, so it is ignored.
    Unknown,
}

impl ErrorClass {
    /// Maps an HTTP status code. Statuses below 400 are not errors and map to `Unknown`.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{ErrorClass, Outcome};
    /// assert_eq!(ErrorClass::from_status(529), ErrorClass::ServerError);
    /// assert_eq!(ErrorClass::from_status(429).outcome(), Outcome::Failure);
    /// assert_eq!(ErrorClass::from_status(403).outcome(), Outcome::Success);
    /// ```
    pub fn from_status(status: u16) -> ErrorClass {
        match status {
            401 | 403 => ErrorClass::Auth,
            408 => ErrorClass::Timeout,
            413 => ErrorClass::ContextOverflow,
            429 => ErrorClass::RateLimited,
            400..=499 => ErrorClass::InvalidRequest,
            500..=599 => ErrorClass::ServerError,
            _ => ErrorClass::Unknown,
        }
    }

    /// What this class counts as for the circuit.
    pub fn outcome(self) -> Outcome {
        match self {
            ErrorClass::ServerError
            | ErrorClass::RateLimited
            | ErrorClass::Network
            | ErrorClass::Timeout => Outcome::Failure,
            ErrorClass::Auth | ErrorClass::InvalidRequest | ErrorClass::ContextOverflow => {
                Outcome::Success
            }
            ErrorClass::Unknown => Outcome::Ignored,
        }
    }
}

impl Classify for ErrorClass {
    fn classify(&self) -> Outcome {
        self.outcome()
    }
}

impl Classify for Outcome {
    fn classify(&self) -> Outcome {
        *self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_documented_classes() {
        for s in [500, 502, 503, 504, 529] {
            assert_eq!(ErrorClass::from_status(s), ErrorClass::ServerError, "{s}");
        }
        assert_eq!(ErrorClass::from_status(429), ErrorClass::RateLimited);
        for s in [401, 403] {
            assert_eq!(ErrorClass::from_status(s), ErrorClass::Auth);
        }
        for s in [400, 404, 422] {
            assert_eq!(ErrorClass::from_status(s), ErrorClass::InvalidRequest);
        }
        assert_eq!(ErrorClass::from_status(200), ErrorClass::Unknown);
    }

    #[test]
    fn only_provider_faults_trip() {
        use ErrorClass::*;
        for c in [ServerError, RateLimited, Network, Timeout] {
            assert_eq!(c.outcome(), Outcome::Failure);
        }
        for c in [Auth, InvalidRequest, ContextOverflow] {
            assert_eq!(c.outcome(), Outcome::Success);
        }
        assert_eq!(Unknown.outcome(), Outcome::Ignored);
    }
}
