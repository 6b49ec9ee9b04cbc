//! `GET /events`: the feed's frames as server-sent events, each subscriber reading the feed's
//! bounded queue at its own pace.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

use super::feed::Frame;
use super::App;

/// Where one subscriber's stream stands.
enum Subscriber {
    /// The first event is still to be sent.
    Hello(App, Option<Receiver<Frame>>),
    /// Reading the feed; `dropped` frames lost so far.
    Live {
        app: App,
        rx: Receiver<Frame>,
        dropped: u64,
    },
    /// No feed: nothing more to send but keep-alive comments.
    Idle,
}

/// `GET /events`: `hello` (`{"live", "capacity"}`), then `transition` and `action` events as
/// the feed publishes them, and `dropped` (`{"dropped", "total"}`) when this subscriber fell
/// behind and lost the oldest frames.
pub(super) async fn events(
    State(app): State<App>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = app.0.feed.as_ref().map(|f| f.0.subscribe());
    let stream = stream::unfold(Subscriber::Hello(app, rx), |subscriber| async move {
        match subscriber {
            Subscriber::Hello(app, rx) => {
                let capacity = app.0.feed.as_ref().map_or(0, |f| f.capacity());
                let hello = json!({ "live": rx.is_some(), "capacity": capacity });
                let event = SseEvent::default().event("hello").data(hello.to_string());
                let next = match rx {
                    Some(rx) => Subscriber::Live {
                        app,
                        rx,
                        dropped: 0,
                    },
                    None => Subscriber::Idle,
                };
                Some((Ok(event), next))
            }
            Subscriber::Live {
                app,
                mut rx,
                mut dropped,
            } => match rx.recv().await {
                Ok(frame) => {
                    let event = SseEvent::default().event(frame.0).data(frame.1.as_str());
                    Some((Ok(event), Subscriber::Live { app, rx, dropped }))
                }
                Err(RecvError::Lagged(n)) => {
                    dropped += n;
                    if let Some(feed) = &app.0.feed {
                        feed.0.count_dropped(n);
                    }
                    let data = json!({ "dropped": n, "total": dropped });
                    let event = SseEvent::default().event("dropped").data(data.to_string());
                    Some((Ok(event), Subscriber::Live { app, rx, dropped }))
                }
                Err(RecvError::Closed) => None,
            },
            Subscriber::Idle => {
                std::future::pending::<()>().await;
                None
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
