//! Features `tower` + `http`: [`CircuitBreakerLayer::until_body_end`], the layer that judges an
//! HTTP response by its body, not only its head. A status that is a failure (5xx, 429, a
//! `Retry-After`) is recorded at once; any other response is recorded when its body ends: a
//! success if it ends cleanly, a failure on an error frame, and, dropped early, as a guarded
//! stream is (`on_abandoned` before its first frame, `on_cancel` after, a failure past
//! `first_item_timeout` or `idle_timeout`): see [`breaker::stream`](crate::stream).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use breaker_core::stream::{ClassifyItem, Guarded, Stream};
use breaker_core::{CircuitOpen, Classify, Config, Outcome, Permit};
use http_body::{Body, Frame, SizeHint};
use tower_layer::Layer;
use tower_service::Service;

use super::{CircuitBreakerLayer, RegistryRef};

impl<K, C> CircuitBreakerLayer<K, C> {
    /// Judges each `http::Response` by its body: a failing status (5xx, 429, a `Retry-After`)
    /// is recorded at once, as [`ResponseClassifier`](super::ResponseClassifier) does; any other
    /// response is recorded when its body ends (an error frame is a failure, an early drop
    /// counts as a dropped stream does, see [`breaker::stream`](crate::stream)). The response
    /// body becomes a [`GuardedBody`]; an `Err` from the inner service is a failure.
    ///
    /// Choose this for streamed answers (SSE, chunked LLM completions): a 200 whose body stalls
    /// or breaks is the provider's failure. The plain layer (without this call) records at the
    /// response's head, which suits short answers, keeps the body type, and works for any
    /// response type.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::borrow::Cow;
    /// use breaker::tower::{CircuitBreakerLayer, GuardedBody};
    /// use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};
    /// # struct Full(Option<&'static [u8]>);
    /// # impl http_body::Body for Full {
    /// #     type Data = &'static [u8];
    /// #     type Error = BoxError;
    /// #     fn poll_frame(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>)
    /// #         -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, BoxError>>> {
    /// #         std::task::Poll::Ready(self.0.take().map(|d| Ok(http_body::Frame::data(d))))
    /// #     }
    /// # }
    ///
    /// let client = ServiceBuilder::new()
    ///     .layer(
    ///         CircuitBreakerLayer::new(|_: &http::Request<()>| (Cow::Borrowed("llm"), Cow::Borrowed("acme")))
    ///             .until_body_end(),
    ///     )
    ///     .service(service_fn(|_req: http::Request<()>| async {
    ///         Ok::<_, BoxError>(http::Response::new(Full(Some(b"data: hello\n\n"))))
    ///     }));
    ///
    /// let response: http::Response<GuardedBody<Full>> = client.oneshot(http::Request::new(())).await.unwrap();
    /// assert_eq!(response.status(), 200); // recorded when its body ends
    /// # }
    /// ```
    pub fn until_body_end(self) -> BodyEndLayer<K> {
        BodyEndLayer {
            key: self.key,
            registry: self.registry,
            config: self.config,
        }
    }
}

/// The layer of [`CircuitBreakerLayer::until_body_end`]: responses judged when their body ends.
pub struct BodyEndLayer<K> {
    key: K,
    registry: RegistryRef,
    config: Option<&'static Config>,
}

impl<K: Clone> Clone for BodyEndLayer<K> {
    fn clone(&self) -> Self {
        BodyEndLayer {
            key: self.key.clone(),
            registry: self.registry.clone(),
            config: self.config,
        }
    }
}

impl<K> fmt::Debug for BodyEndLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyEndLayer")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl<S, K: Clone> Layer<S> for BodyEndLayer<K> {
    type Service = BodyEnd<S, K>;

    fn layer(&self, inner: S) -> BodyEnd<S, K> {
        BodyEnd {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`BodyEndLayer`]: `http::Response<B>` becomes `http::Response<GuardedBody<B>>`.
pub struct BodyEnd<S, K> {
    inner: S,
    layer: BodyEndLayer<K>,
}

impl<S: Clone, K: Clone> Clone for BodyEnd<S, K> {
    fn clone(&self) -> Self {
        BodyEnd {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, K> fmt::Debug for BodyEnd<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyEnd")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, K, Req, B> Service<Req> for BodyEnd<S, K>
where
    S: Service<Req, Response = http::Response<B>>,
    S::Error: From<CircuitOpen>,
    K: Fn(&Req) -> (Cow<'_, str>, Cow<'_, str>),
    B: Body,
{
    type Response = http::Response<GuardedBody<B>>;
    type Error = S::Error;
    type Future = BodyEndFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let acquired = {
            let (provider, tenant) = (self.layer.key)(&req);
            (self.layer.registry).acquire(&provider, &tenant, self.layer.config)
        };
        match acquired {
            Ok(permit) => BodyEndFuture {
                future: Some(self.inner.call(req)),
                permit: Some(permit),
                open: None,
            },
            Err(open) => BodyEndFuture {
                future: None,
                permit: None,
                open: Some(open),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`BodyEnd`].
    pub struct BodyEndFuture<F> {
        #[pin]
        future: Option<F>,
        // Until the head arrives; a future dropped before drops it: `on_abandoned`.
        permit: Option<Permit>,
        open: Option<CircuitOpen>,
    }
}

impl<F> fmt::Debug for BodyEndFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyEndFuture")
            .field("rejected", &self.open.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for BodyEndFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: From<CircuitOpen>,
    B: Body,
{
    type Output = Result<http::Response<GuardedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(future) = this.future.as_pin_mut() else {
            // As `ResponseFuture`: a future polled after completion may panic (tower's contract).
            let open = this
                .open
                .take()
                .expect("BodyEndFuture polled after completion");
            return Poll::Ready(Err(E::from(open)));
        };
        let result = ready!(future.poll(cx));
        let Some(permit) = this.permit.take() else {
            return Poll::Ready(result.map(|r| r.map(GuardedBody::plain)));
        };
        Poll::Ready(match result {
            Err(e) => {
                permit.failure();
                Err(e)
            }
            Ok(response) => match response.classify() {
                // A body that is complete before its first frame (an empty one) may never be
                // polled (hyper stops at `is_end_stream`): it ended here.
                Outcome::Success if response.body().is_end_stream() => {
                    permit.success();
                    Ok(response.map(GuardedBody::plain))
                }
                Outcome::Success => Ok(response.map(|body| GuardedBody::guarded(permit, body))),
                other => {
                    permit.record(other);
                    Ok(response.map(GuardedBody::plain))
                }
            },
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body whose circuit is judged when it ends (see
    /// [`CircuitBreakerLayer::until_body_end`]); the frames pass untouched. Bodies of responses
    /// already judged by their status pass through unguarded.
    pub struct GuardedBody<B> {
        #[pin]
        state: State<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<B> {
        Guarded {
            #[pin]
            frames: Guarded<Frames<B>, ErrorFrameFails>,
        },
        Plain {
            #[pin]
            body: B,
        },
    }
}

impl<B> GuardedBody<B> {
    fn guarded(permit: Permit, body: B) -> Self {
        GuardedBody {
            state: State::Guarded {
                frames: Guarded::with_classifier(permit, Frames { body }, ErrorFrameFails),
            },
        }
    }

    fn plain(body: B) -> Self {
        GuardedBody {
            state: State::Plain { body },
        }
    }

    /// Whether the response's circuit is still waiting for this body's end.
    pub fn is_guarded(&self) -> bool {
        match &self.state {
            State::Guarded { frames } => !frames.is_judged(),
            State::Plain { .. } => false,
        }
    }
}

impl<B> fmt::Debug for GuardedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedBody")
            .field("guarded", &self.is_guarded())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        match self.project().state.project() {
            StateProj::Guarded { mut frames } => {
                let frame = ready!(frames.as_mut().poll_next(cx));
                // The last frame of a body that knows it is complete: hyper will not poll
                // again (it stops at `is_end_stream`), so its end is now, not a cancellation.
                if frame.is_some() && frames.get_ref().body.is_end_stream() {
                    frames.ended();
                }
                Poll::Ready(frame)
            }
            StateProj::Plain { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Guarded { frames } => frames.get_ref().body.is_end_stream(),
            State::Plain { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Guarded { frames } => frames.get_ref().body.size_hint(),
            State::Plain { body } => body.size_hint(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A body as the stream of its frames.
    struct Frames<B> {
        #[pin]
        body: B,
    }
}

impl<B: Body> Stream for Frames<B> {
    type Item = Result<Frame<B::Data>, B::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().body.poll_frame(cx)
    }
}

/// An error frame of a body is the provider's failure.
#[derive(Debug, Clone, Copy)]
struct ErrorFrameFails;

impl<D, E> ClassifyItem<Result<Frame<D>, E>> for ErrorFrameFails {
    fn classify_item(&mut self, item: &Result<Frame<D>, E>) -> Option<Outcome> {
        item.as_ref().err().map(|_| Outcome::Failure)
    }
}
