//! A stream the test feeds by hand, and polling without a runtime: the tests decide when each
//! item arrives and move a `ManualClock` in between, so every judgement is deterministic.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use breaker::stream::Stream;
use breaker::ErrorClass;

pub type Item = Result<&'static str, ErrorClass>;

/// The test's end of a [`Fed`] stream.
#[derive(Clone, Default)]
pub struct Feed(Arc<Mutex<VecDeque<Option<Item>>>>);

impl Feed {
    pub fn push(&self, item: Item) {
        self.0.lock().unwrap().push_back(Some(item));
    }
    pub fn end(&self) {
        self.0.lock().unwrap().push_back(None);
    }
    pub fn stream(&self) -> Fed {
        Fed {
            feed: self.clone(),
            panic_on_poll: false,
            panic_on_drop: false,
        }
    }
}

/// Yields what its [`Feed`] was given, `Pending` while it has nothing.
pub struct Fed {
    feed: Feed,
    pub panic_on_poll: bool,
    pub panic_on_drop: bool,
}

impl Stream for Fed {
    type Item = Item;
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Item>> {
        assert!(!self.panic_on_poll, "the stream's poll panicked");
        match self.feed.0.lock().unwrap().pop_front() {
            Some(next) => Poll::Ready(next),
            None => Poll::Pending,
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (1, Some(7))
    }
}

impl Drop for Fed {
    fn drop(&mut self) {
        if self.panic_on_drop && !std::thread::panicking() {
            panic!("the stream's drop panicked");
        }
    }
}

/// One poll of `s`.
pub fn poll<S: Stream + Unpin>(s: &mut S) -> Poll<Option<S::Item>> {
    Pin::new(s).poll_next(&mut Context::from_waker(Waker::noop()))
}
