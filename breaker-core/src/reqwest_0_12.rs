//! Feature `reqwest-0-12`: the classification of `client_errors.rs` for reqwest 0.12, for services
//! that have not moved to 0.13 (feature `reqwest`). reqwest 0.12 and 0.13 are different crates to
//! the compiler, so each needs its own impls, made by the same macro; both can be enabled at once.

crate::client_errors::classify_reqwest! {
    /// As for reqwest 0.13: timeouts are [`ErrorClass::Timeout`], connect, request and body
    /// failures [`ErrorClass::Network`] (a body broken off mid-stream too), an error with a
    /// status [`ErrorClass::from_status`], the rest [`ErrorClass::Unknown`].
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
    ///
    /// [`ErrorClass::Timeout`]: crate::ErrorClass::Timeout
    /// [`ErrorClass::Network`]: crate::ErrorClass::Network
    /// [`ErrorClass::from_status`]: crate::ErrorClass::from_status
    /// [`ErrorClass::Unknown`]: crate::ErrorClass::Unknown
    reqwest_0_12
}
