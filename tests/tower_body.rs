//! Features `tower` + `http`: `CircuitBreakerLayer::until_body_end` (issue 21). A failing status
//! is recorded at once; any other response when its body ends: a clean end is a success, an
//! error frame a failure, an early drop as a dropped stream (`on_abandoned` before the first
//! frame, `on_cancel` after); a body that says it is complete is not waited for.
#![cfg(all(feature = "tower", feature = "http"))]

use std::borrow::Cow;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use breaker::tower::{CircuitBreakerLayer, GuardedBody};
use breaker::{Config, Registry, Window};
use http_body::{Body, Frame};
use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};

/// One frame of a body, or its end (`None`).
type Next = Option<Result<Frame<&'static [u8]>, BoxError>>;
type Frames = Arc<Mutex<VecDeque<Next>>>;

/// A body the test feeds; `knows_end`: `is_end_stream` is true once only its end is left.
struct Fed {
    frames: Frames,
    knows_end: bool,
}

impl Body for Fed {
    type Data = &'static [u8];
    type Error = BoxError;
    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Next> {
        match self.frames.lock().unwrap().pop_front() {
            Some(next) => Poll::Ready(next),
            None => Poll::Pending,
        }
    }
    fn is_end_stream(&self) -> bool {
        let frames = self.frames.lock().unwrap();
        self.knows_end && matches!(frames.front(), Some(None))
    }
}

fn registry() -> Arc<Registry> {
    let registry = Registry::default();
    // Counts without tripping: (outcomes, failures) in the window.
    registry.configure(
        "llm",
        Config::builder()
            .failure_rate(1.0, Window::Calls(100))
            .minimum_calls(100)
            .build()
            .unwrap(),
    );
    Arc::new(registry)
}

fn counted(registry: &Registry) -> (u32, u32) {
    let m = registry.circuit("llm", "acme").metrics();
    (m.calls_in_window, m.failures_in_window)
}

/// One request through the layer to an upstream answering `status` with `frames`.
async fn call(
    registry: &Arc<Registry>,
    status: u16,
    frames: &Frames,
    knows_end: bool,
) -> http::Response<GuardedBody<Fed>> {
    let frames = frames.clone();
    let client = ServiceBuilder::new()
        .layer(
            CircuitBreakerLayer::new(|_: &http::Request<()>| {
                (Cow::Borrowed("llm"), Cow::Borrowed("acme"))
            })
            .registry(registry.clone())
            .until_body_end(),
        )
        .service(service_fn(move |_req: http::Request<()>| {
            let body = Fed {
                frames: frames.clone(),
                knows_end,
            };
            async move {
                Ok::<_, BoxError>(http::Response::builder().status(status).body(body).unwrap())
            }
        }));
    client.oneshot(http::Request::new(())).await.unwrap()
}

fn poll(body: &mut GuardedBody<Fed>) -> Poll<Next> {
    Pin::new(body).poll_frame(&mut Context::from_waker(Waker::noop()))
}

fn data(b: &'static [u8]) -> Next {
    Some(Ok(Frame::data(b)))
}

#[tokio::test]
async fn a_failing_status_is_recorded_at_once() {
    let registry = registry();
    let frames = Frames::default();
    let response = call(&registry, 503, &frames, false).await;
    assert_eq!(counted(&registry), (1, 1));
    assert!(!response.body().is_guarded());
}

#[tokio::test]
async fn a_success_status_is_recorded_when_its_body_ends() {
    let registry = registry();
    let frames = Frames::default();
    let mut response = call(&registry, 200, &frames, false).await;
    assert_eq!(counted(&registry), (0, 0), "not at the head");
    frames.lock().unwrap().extend([data(b"data: a\n\n"), None]);
    let body = response.body_mut();
    assert!(matches!(poll(body), Poll::Ready(Some(Ok(_)))));
    assert_eq!(counted(&registry), (0, 0));
    assert!(matches!(poll(body), Poll::Ready(None)));
    assert_eq!(counted(&registry), (1, 0));
}

#[tokio::test]
async fn an_error_frame_is_a_failure() {
    let registry = registry();
    let frames = Frames::default();
    let mut response = call(&registry, 200, &frames, false).await;
    frames
        .lock()
        .unwrap()
        .extend([data(b"data: a\n\n"), Some(Err("connection reset".into()))]);
    let body = response.body_mut();
    let _ = poll(body);
    assert!(matches!(poll(body), Poll::Ready(Some(Err(_)))));
    assert_eq!(counted(&registry), (1, 1));
}

#[tokio::test]
async fn an_early_drop_counts_as_a_dropped_stream() {
    let registry = registry();
    let frames = Frames::default();
    // Before the first frame: on_abandoned (a failure).
    drop(call(&registry, 200, &frames, false).await);
    assert_eq!(counted(&registry), (1, 1));
    // After it: on_cancel (ignored).
    let mut response = call(&registry, 200, &frames, false).await;
    frames.lock().unwrap().push_back(data(b"a"));
    let _ = poll(response.body_mut());
    drop(response);
    assert_eq!(counted(&registry), (1, 1));
}

#[tokio::test]
async fn a_body_that_knows_its_end_is_judged_at_its_last_frame() {
    let registry = registry();
    let frames = Frames::default();
    let mut response = call(&registry, 200, &frames, true).await;
    frames.lock().unwrap().extend([data(b"all of it"), None]);
    let _ = poll(response.body_mut());
    assert!(response.body().is_end_stream());
    // hyper stops here and drops the body: a success, not a cancellation.
    assert_eq!(counted(&registry), (1, 0));
    drop(response);
    assert_eq!(counted(&registry), (1, 0));

    // An empty body, complete from the start, at the head.
    frames.lock().unwrap().push_back(None);
    let response = call(&registry, 204, &frames, true).await;
    assert_eq!(counted(&registry), (2, 0));
    assert!(!response.body().is_guarded());
}
