//! Circuit breakers as [tower](https://docs.rs/tower) middleware (feature `tower`).
//!
//! [`CircuitBreakerLayer`] wraps any `tower::Service` (a hyper or reqwest-style client, a tonic
//! channel, an axum handler stack): each request is keyed to a (provider, tenant) circuit of a
//! [`Registry`] by a closure over the request, takes a permit in `call`, and records the
//! classified result when the response future completes. While the circuit is open the inner
//! service is not called and the response is `Err(E::from(CircuitOpen))`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::borrow::Cow;
//! use breaker::tower::{CircuitBreakerLayer, ResponseClassifier};
//! use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};
//!
//! let client = ServiceBuilder::new()
//!     .layer(
//!         CircuitBreakerLayer::new(|req: &http::Request<String>| {
//!             let tenant = req.headers().get("x-tenant").and_then(|v| v.to_str().ok());
//!             (Cow::Borrowed("billing-api"), Cow::Borrowed(tenant.unwrap_or("")))
//!         })
//!         // An `Ok` response with a 5xx or 429 status counts as a failure.
//!         .classify(ResponseClassifier),
//!     )
//!     .service(service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, BoxError>(http::Response::new("hello".to_string()))
//!     }));
//!
//! let request = http::Request::builder().header("x-tenant", "acme").body(String::new()).unwrap();
//! let response = client.oneshot(request).await.unwrap();
//! assert_eq!(response.body(), "hello");
//! # }
//! ```
//!
//! # When `oneshot` or `call` "exists but its trait bounds were not satisfied"
//!
//! rustc reports a stack whose layer does not fit at the first method call on it, without naming
//! the bound that failed (`CircuitBreaker<..>: Service<_>` is not satisfied). It is one of these:
//!
//! - The inner service's error type cannot hold the rejection: it needs
//!   `impl From<breaker::CircuitOpen> for YourError`, or map the inner errors into a
//!   `tower::BoxError` (`.map_err(BoxError::from)` below the layer), which takes it as is.
//! - The key closure was bound with `let` before being given to [`CircuitBreakerLayer::new`]:
//!   a closure only gets the signature the layer needs, `Fn(&Req) -> (Cow<'_, str>,
//!   Cow<'_, str>)` for every borrow of the request, when written in the call. Write it in the
//!   call, or as a `fn` (`fn key(req: &Request) -> (Cow<'_, str>, Cow<'_, str>)`).
//! - The classifier does not fit the service: [`ResponseClassifier`] needs the response type to
//!   implement [`Classify`] (with the `http` feature, `http::Response` does).
//!
//! # Retries
//!
//! Put retries *inside* the breaker (`ServiceBuilder::new().layer(breaker).layer(retry)`), so
//! that one permit covers a request's whole retry budget and the circuit sees one outcome per
//! logical call; a rejection comes back as an error carrying
//! [`CircuitOpen::retry_after`] (see [`retry_after_hint`](crate::retry_after_hint)).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::time::Duration;

use breaker_core::{
    CircuitOpen, Classify, Config, ConfigBuilder, Outcome, Permit, Registry, MAX_DURATION,
    MAX_IN_FLIGHT,
};

use crate::__private::{bounded, Bounded};

pub use crate::registry_ref::RegistryRef;

#[cfg(feature = "http")]
mod body;
#[cfg(feature = "http")]
pub use body::{BodyEnd, BodyEndFuture, BodyEndLayer, GuardedBody};
use tower_layer::Layer;
use tower_service::Service;

/// How a service's result counts toward its circuit.
///
/// Implemented by [`ErrIsFailure`] (the default), [`ResponseClassifier`], and every
/// `Fn(&Result<Resp, E>) -> Outcome`, so a closure can decide:
///
/// ```
/// use breaker::tower::ClassifyResult;
/// use breaker::Outcome;
///
/// // A timeout error proves the provider sick; any other error is the caller's.
/// let classify = |result: &Result<u16, String>| match result {
///     Ok(_) => Outcome::Success,
///     Err(e) if e.contains("timed out") => Outcome::Failure,
///     Err(_) => Outcome::Ignored,
/// };
/// assert_eq!(classify.classify(&Err("timed out".to_string())), Outcome::Failure);
/// ```
pub trait ClassifyResult<Resp, E> {
    /// The outcome `result` stands for.
    fn classify(&self, result: &Result<Resp, E>) -> Outcome;
}

impl<F, Resp, E> ClassifyResult<Resp, E> for F
where
    F: Fn(&Result<Resp, E>) -> Outcome,
{
    fn classify(&self, result: &Result<Resp, E>) -> Outcome {
        self(result)
    }
}

/// The default classifier: `Ok` is a success, `Err` a failure.
///
/// ```
/// use breaker::tower::{ClassifyResult, ErrIsFailure};
/// use breaker::Outcome;
///
/// assert_eq!(ErrIsFailure.classify(&Ok::<_, ()>(503)), Outcome::Success);
/// assert_eq!(ErrIsFailure.classify(&Err::<(), _>("refused")), Outcome::Failure);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrIsFailure;

impl<Resp, E> ClassifyResult<Resp, E> for ErrIsFailure {
    fn classify(&self, result: &Result<Resp, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// Classifies an `Ok` response by its own [`Classify`] impl and counts `Err` (the transport
/// failed: refused, reset, timed out) as a failure.
///
/// With the `http` feature, `http::Response` classifies by status: an `Ok` with a 5xx or a 429 is
/// a failure of the provider, other 4xx are the caller's and count as successes. With `reqwest`,
/// so does `reqwest::Response`.
///
/// ```
/// use breaker::tower::{ClassifyResult, ResponseClassifier};
/// use breaker::Outcome;
///
/// let unavailable = http::Response::builder().status(503).body(()).unwrap();
/// let not_found = http::Response::builder().status(404).body(()).unwrap();
/// assert_eq!(ResponseClassifier.classify(&Ok::<_, ()>(unavailable)), Outcome::Failure);
/// assert_eq!(ResponseClassifier.classify(&Ok::<_, ()>(not_found)), Outcome::Success);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseClassifier;

impl<Resp: Classify, E> ClassifyResult<Resp, E> for ResponseClassifier {
    fn classify(&self, result: &Result<Resp, E>) -> Outcome {
        match result {
            Ok(response) => response.classify(),
            Err(_) => Outcome::Failure,
        }
    }
}

/// A [`Layer`] that puts a circuit breaker, keyed per request, around a service.
///
/// - `key`: `Fn(&Req) -> (Cow<str>, Cow<str>)`, the request's (provider, tenant). Borrowing from
///   the request (a header, a path segment) or returning `&'static str`s allocates nothing; the
///   circuit is found without an owned key.
/// - the registry: [`Registry::global`] unless [`registry`](Self::registry) gives one.
/// - the classifier: [`ErrIsFailure`] unless [`classify`](Self::classify) gives one.
/// - rejections: the service's error type must implement `From<CircuitOpen>`; a `BoxError`
///   (`Box<dyn Error + Send + Sync>`) does.
///
/// The inner service's `poll_ready` is passed through; the permit is taken in `call` and recorded
/// when the response future completes. A response future dropped before it completes drops its
/// permit, which counts as the config's `on_abandoned` outcome (`on_cancel` when the config has
/// a [`timeout`](Self::timeout), which the layer races). [`max_in_flight`](Self::max_in_flight)
/// bounds the calls in flight per circuit.
///
/// ```
/// use std::borrow::Cow;
/// use std::sync::Arc;
/// use breaker::tower::CircuitBreakerLayer;
/// use breaker::Registry;
///
/// struct Request { tenant: String }
///
/// let layer = CircuitBreakerLayer::new(|req: &Request| {
///     (Cow::Borrowed("openai"), Cow::Borrowed(req.tenant.as_str()))
/// })
/// .registry(Arc::new(Registry::default()));
/// # let _ = layer;
/// ```
pub struct CircuitBreakerLayer<K, C = ErrIsFailure> {
    key: K,
    classify: C,
    registry: RegistryRef,
    config: Option<&'static Config>,
}

impl<K> CircuitBreakerLayer<K> {
    /// A layer keyed by `key`, on the global registry, with the [`ErrIsFailure`] classifier.
    ///
    /// Annotate the closure's argument (`|req: &Request| ..`): the layer does not know the
    /// request type until it wraps a service.
    pub fn new<Req>(key: K) -> Self
    where
        K: Fn(&Req) -> (Cow<'_, str>, Cow<'_, str>),
    {
        CircuitBreakerLayer {
            key,
            classify: ErrIsFailure,
            registry: Registry::global().into(),
            config: None,
        }
    }
}

impl<K, C> CircuitBreakerLayer<K, C> {
    /// Takes circuits from `registry` instead of the global one: a `&'static Registry`
    /// (`Registry::global()`, a `static`), a `&'static LazyLock<Registry>` or an
    /// `Arc<Registry>` (tests give one with a [`ManualClock`](crate::ManualClock)).
    pub fn registry(mut self, registry: impl Into<RegistryRef>) -> Self {
        self.registry = registry.into();
        self
    }

    /// The config of the circuits this layer creates, as the attribute's arguments are for its
    /// function: it applies when a circuit is created, unless
    /// [`Registry::configure`](crate::Registry::configure) set one for the provider (operations
    /// keep the last word). Without it, circuits take the registry's default.
    ///
    /// The config is kept for the rest of the process (circuits may outlive the layer), so build
    /// layers once, at startup, not per request.
    ///
    /// ```
    /// use std::borrow::Cow;
    /// use std::time::Duration;
    /// use breaker::tower::CircuitBreakerLayer;
    /// use breaker::Config;
    ///
    /// let layer = CircuitBreakerLayer::new(|tenant: &String| {
    ///     (Cow::Borrowed("search"), Cow::Borrowed(tenant.as_str()))
    /// })
    /// .config(Config::builder().consecutive_failures(3).open_for(Duration::from_secs(10)).build()?);
    /// # let _ = layer;
    /// # Ok::<(), breaker::ConfigError>(())
    /// ```
    pub fn config(mut self, config: Config) -> Self {
        // The registry keeps a site's config by `&'static` (the attribute's live in statics).
        self.config = Some(Box::leak(Box::new(config)));
        self
    }

    /// A deadline for each call (see [`ConfigBuilder::timeout`](crate::ConfigBuilder::timeout)):
    /// the layer races the inner service's response future against it (feature `tokio`; without
    /// it the call runs unbounded), and when it passes the future is dropped, a failure of the
    /// provider is recorded, and the response is `Err(E::from(open))` with
    /// [`open.is_timeout()`](CircuitOpen::is_timeout). A response future its caller drops before
    /// the deadline counts as `on_cancel` (ignored by default).
    ///
    /// Sets the timeout of this layer's [`config`](Self::config) (the default config if none was
    /// given: call [`config`](Self::config) first, it replaces the whole config). The deadline a
    /// call gets is its circuit's, so [`Registry::configure`] may change it. Like tower's own
    /// `timeout`, it cannot fail: a zero `d` is taken as 1 ms, one above
    /// [`crate::MAX_DURATION`] as that (a config built with
    /// [`ConfigBuilder::timeout`](crate::ConfigBuilder::timeout) rejects both instead).
    ///
    /// ```
    /// use std::borrow::Cow;
    /// use std::time::Duration;
    /// use breaker::tower::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::new(|tenant: &String| {
    ///     (Cow::Borrowed("llm"), Cow::Borrowed(tenant.as_str()))
    /// })
    /// .timeout(Duration::from_secs(30))
    /// .max_in_flight(64);
    /// # let _ = layer;
    /// ```
    pub fn timeout(self, d: Duration) -> Self {
        let d = d.clamp(Duration::from_millis(1), MAX_DURATION);
        self.retuned(|b| b.timeout(d))
    }

    /// A bulkhead (see [`ConfigBuilder::max_in_flight`](crate::ConfigBuilder::max_in_flight)):
    /// at most `n` calls in flight through each circuit of this layer; a request beyond them is
    /// answered at once with `Err(E::from(open))`, [`open.is_full()`](CircuitOpen::is_full),
    /// without calling the inner service and without recording anything. A place is held until
    /// the response future completes or is dropped.
    ///
    /// Sets `max_in_flight` in this layer's [`config`](Self::config), as
    /// [`timeout`](Self::timeout) does; it cannot fail either: 0 is taken as 1, a value above
    /// [`crate::MAX_IN_FLIGHT`] as that.
    pub fn max_in_flight(self, n: u32) -> Self {
        let n = n.clamp(1, MAX_IN_FLIGHT);
        self.retuned(|b| b.max_in_flight(n))
    }

    /// This layer with its config (or the default one) changed by `change`, which sets a value
    /// already in range: the build cannot fail (if it did, the config would stay as it was).
    fn retuned(mut self, change: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Self {
        let base = self.config.map_or_else(Config::builder, Config::to_builder);
        if let Ok(config) = change(base).build() {
            self.config = Some(Box::leak(Box::new(config)));
        }
        self
    }

    /// Classifies results with `classify`: a [`ClassifyResult`] such as [`ResponseClassifier`]
    /// or a closure `Fn(&Result<Resp, E>) -> Outcome`. It is cloned into every response future,
    /// so keep it cheap to clone (an `Arc` around a heavy one).
    pub fn classify<C2>(self, classify: C2) -> CircuitBreakerLayer<K, C2> {
        CircuitBreakerLayer {
            key: self.key,
            classify,
            registry: self.registry,
            config: self.config,
        }
    }
}

impl<K: Clone, C: Clone> Clone for CircuitBreakerLayer<K, C> {
    fn clone(&self) -> Self {
        CircuitBreakerLayer {
            key: self.key.clone(),
            classify: self.classify.clone(),
            registry: self.registry.clone(),
            config: self.config,
        }
    }
}

impl<K, C> fmt::Debug for CircuitBreakerLayer<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .finish_non_exhaustive()
    }
}

impl<S, K: Clone, C: Clone> Layer<S> for CircuitBreakerLayer<K, C> {
    type Service = CircuitBreaker<S, K, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            key: self.key.clone(),
            classify: self.classify.clone(),
            registry: self.registry.clone(),
            config: self.config,
        }
    }
}

/// The service made by [`CircuitBreakerLayer`]; see there.
///
/// ```
/// use std::borrow::Cow;
/// use breaker::tower::{CircuitBreaker, CircuitBreakerLayer};
/// use tower::{service_fn, Layer, BoxError};
///
/// let layer = CircuitBreakerLayer::new(|tenant: &String| (Cow::Borrowed("search"), Cow::Borrowed(tenant.as_str())));
/// let service: CircuitBreaker<_, _> =
///     layer.layer(service_fn(|tenant: String| async move { Ok::<_, BoxError>(tenant.len()) }));
/// # let _ = service;
/// ```
pub struct CircuitBreaker<S, K, C = ErrIsFailure> {
    inner: S,
    key: K,
    classify: C,
    registry: RegistryRef,
    config: Option<&'static Config>,
}

impl<S: Clone, K: Clone, C: Clone> Clone for CircuitBreaker<S, K, C> {
    fn clone(&self) -> Self {
        CircuitBreaker {
            inner: self.inner.clone(),
            key: self.key.clone(),
            classify: self.classify.clone(),
            registry: self.registry.clone(),
            config: self.config,
        }
    }
}

impl<S: fmt::Debug, K, C> fmt::Debug for CircuitBreaker<S, K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, K, C, Req> Service<Req> for CircuitBreaker<S, K, C>
where
    S: Service<Req>,
    S::Error: From<CircuitOpen>,
    K: Fn(&Req) -> (Cow<'_, str>, Cow<'_, str>),
    C: ClassifyResult<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let acquired = {
            let (provider, tenant) = (self.key)(&req);
            self.registry.acquire(&provider, &tenant, self.config)
        };
        let kind = match acquired {
            Ok(permit) => Kind::Called {
                future: bounded(&permit, self.inner.call(req)),
                permit: Some(permit),
                classify: self.classify.clone(),
            },
            Err(open) => Kind::Rejected { open: Some(open) },
        };
        ResponseFuture { kind }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`CircuitBreaker`]: the inner service's future with the call's
    /// permit, or a rejection that is ready at once.
    ///
    /// ```
    /// use breaker::tower::{CircuitBreaker, ResponseFuture};
    /// use tower::Service;
    ///
    /// fn future_of<S, K, C, Req>(service: &mut CircuitBreaker<S, K, C>, req: Req) -> ResponseFuture<S::Future, C>
    /// where
    ///     CircuitBreaker<S, K, C>: Service<Req, Future = ResponseFuture<S::Future, C>>,
    ///     S: Service<Req>,
    /// {
    ///     service.call(req)
    /// }
    /// ```
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Called {
            // Raced against the permit's deadline, if its circuit's config sets one.
            #[pin]
            future: Bounded<F>,
            // Taken when the result is recorded; a future dropped before that drops the permit,
            // which records `on_abandoned`.
            permit: Option<Permit>,
            classify: C,
        },
        Rejected {
            open: Option<CircuitOpen>,
        },
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, C, Resp, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Resp, E>>,
    C: ClassifyResult<Resp, E>,
    E: From<CircuitOpen>,
{
    type Output = Result<Resp, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                permit,
                classify,
            } => {
                let result = match std::task::ready!(future.poll(cx)) {
                    Ok(result) => result,
                    // The deadline passed: the call is dropped with this future, and the
                    // timeout is the provider's failure.
                    Err(_late) => {
                        let permit = permit
                            .take()
                            .expect("ResponseFuture polled after completion");
                        return Poll::Ready(Err(E::from(permit.time_out())));
                    }
                };
                if let Some(permit) = permit.take() {
                    permit.record(classify.classify(&result));
                }
                Poll::Ready(result)
            }
            KindProj::Rejected { open } => {
                let open = open.take().expect("ResponseFuture polled after completion");
                Poll::Ready(Err(E::from(open)))
            }
        }
    }
}
