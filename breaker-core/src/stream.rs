//! Feature `stream`: streamed answers (SSE, chunked bodies, token streams) judged when the stream
//! ends, not when the call returns it.
//!
//! A call that returns a stream has only begun: the provider may fail mid-stream, stall after its
//! headers, or take 40 s to its first token. [`Guarded`] holds the call's [`Permit`] for the life
//! of the stream and records its outcome exactly once:
//!
//! | the stream | counts as |
//! |---|---|
//! | ends (`None`) after only `Ok` items | success; for the slow-call policy it lasted until its **first item** |
//! | yields an `Err` item | that error's classification, at once; later items pass unrecorded |
//! | is dropped before its first item | the config's `on_abandoned` (default failure: the provider hung) |
//! | is dropped after its first item, before its end | the config's `on_cancel` (default ignored: the client went away) |
//! | waits longer than `first_item_timeout` for its first item, or `idle_timeout` between two | a failure, when the late item (or end) arrives or when the stream is dropped, whichever is first (a wait may run past its limit by one tick of the coarse system clock, a few ms, before it counts: a clock read per item would cost more than the rest of the guard) |
//! | panics (its `poll_next`), or is dropped while a thread unwinds | `on_abandoned`, as a dropped permit |
//!
//! The stream itself is never altered: the same items in the same order, the same `size_hint`;
//! no item is injected or swallowed, and no timer task runs (a stream that never yields again is
//! judged when its consumer drops it: give the consumer a timeout). A half-open probe that
//! returns a stream stays the probe until the stream is judged; a stream that is never judged
//! (leaked, or held forever) does not wedge the circuit: the config's `probe_timeout` lets its
//! slot go as for any probe.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_core::stream::FusedStream;
/// The stream trait ([`futures_core::Stream`]), re-exported so that a guarded stream can be
/// named without a dependency of your own.
pub use futures_core::stream::Stream;

use crate::circuit::Permit;
use crate::classify::{Classify, Outcome};
use crate::contain::drop_payload;

pin_project_lite::pin_project! {
    /// A stream that holds its call's [`Permit`] and records the call's outcome when the stream
    /// is judged (see the [module docs](self) for the rules). It yields exactly what the inner
    /// stream yields, and is `Send`, `Sync` and `Unpin` when the inner stream (and the
    /// classifier `C`) are.
    ///
    /// Items are classified by `C`: by default ([`ByClassify`]) the stream yields
    /// `Result<T, E>` items with `E:` [`Classify`], and an `Err` item records `e.classify()`;
    /// [`with_classifier`](Guarded::with_classifier) takes a function of the error instead.
    ///
    /// ```
    /// use std::pin::Pin;
    /// use std::task::{Context, Poll, Waker};
    /// # use breaker_core as breaker;
    /// use breaker::stream::{Guarded, Stream};
    /// use breaker::{Circuit, Config, ErrorClass, State};
    ///
    /// /// Two tokens, then the provider's 503 mid-stream.
    /// struct Tokens(Vec<Result<&'static str, ErrorClass>>);
    /// impl Stream for Tokens {
    ///     type Item = Result<&'static str, ErrorClass>;
    ///     fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
    ///         Poll::Ready((!self.0.is_empty()).then(|| self.0.remove(0)))
    ///     }
    /// }
    ///
    /// let circuit = Circuit::new(Config::builder().consecutive_failures(1).build()?);
    /// let permit = circuit.try_acquire()?; // the call returned 200 and a body
    /// let mut tokens = Guarded::new(permit, Tokens(vec![Ok("Hel"), Ok("lo"), Err(ErrorClass::ServerError)]));
    ///
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let mut next = || Pin::new(&mut tokens).poll_next(&mut cx);
    /// assert_eq!(next(), Poll::Ready(Some(Ok("Hel"))));
    /// assert_eq!(next(), Poll::Ready(Some(Ok("lo"))));
    /// assert_eq!(circuit.state(), State::Closed, "not judged yet");
    /// assert_eq!(next(), Poll::Ready(Some(Err(ErrorClass::ServerError))));
    /// assert_eq!(circuit.state(), State::Open, "the failure mid-stream is recorded at once");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "streams do nothing unless polled; dropping one counts as `on_abandoned` or `on_cancel`"]
    pub struct Guarded<S, C = ByClassify> {
        // First, so that the outcome is recorded before the inner stream's own `Drop` (user code
        // that may panic) runs.
        watch: Watch,
        classify: C,
        #[pin]
        stream: S,
    }
}

impl<S> Guarded<S> {
    /// Guards `stream`, the answer of the call `permit` was taken for; its `Err` items are
    /// classified by [`Classify`]. The timeouts and `on_cancel` are those of the permit's
    /// circuit's config now; time to the first item counts from here.
    pub fn new(permit: Permit, stream: S) -> Guarded<S> {
        Guarded::with_classifier(permit, stream, ByClassify)
    }
}

impl<S, C> Guarded<S, C> {
    /// Guards `stream` with `classify` judging its items: a function of the error of an `Err`
    /// item (`fn(&E) -> Outcome`, or any [`ClassifyItem`]).
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::stream::Guarded;
    /// use breaker::{Circuit, Config, Outcome};
    ///
    /// fn by_code(code: &u16) -> Outcome {
    ///     if *code >= 500 { Outcome::Failure } else { Outcome::Success }
    /// }
    /// # struct Chunks;
    /// # impl breaker::stream::Stream for Chunks {
    /// #     type Item = Result<Vec<u8>, u16>;
    /// #     fn poll_next(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> { std::task::Poll::Ready(None) }
    /// # }
    /// let circuit = Circuit::new(Config::default());
    /// let body = Guarded::with_classifier(circuit.try_acquire()?, Chunks, by_code);
    /// # drop(body);
    /// # Ok::<(), breaker::CircuitOpen>(())
    /// ```
    pub fn with_classifier(permit: Permit, stream: S, classify: C) -> Guarded<S, C> {
        Guarded {
            watch: Watch::new(permit),
            classify,
            stream,
        }
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The inner stream, pinned.
    pub fn get_pin_mut(self: Pin<&mut Self>) -> Pin<&mut S> {
        self.project().stream
    }

    /// Whether the outcome has been recorded (the stream ended, failed or timed out).
    pub fn is_judged(&self) -> bool {
        self.watch.permit.is_none()
    }

    /// Whether this stream holds a half-open probe of its circuit (until it is judged).
    pub fn is_probe(&self) -> bool {
        self.watch.permit.as_ref().is_some_and(Permit::is_probe)
    }

    /// Judges the stream as if it had ended now (a success, or a failure if its end came
    /// later than its timeout allows), for wrappers that learn of the end other than by a
    /// `None`: an HTTP body whose `is_end_stream` says so is never polled to its end. Does
    /// nothing once judged.
    pub fn ended(self: Pin<&mut Self>) {
        self.project().watch.end();
    }
}

impl<S, C> Stream for Guarded<S, C>
where
    S: Stream,
    C: ClassifyItem<S::Item>,
{
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let item = ready!(this.stream.poll_next(cx));
        if this.watch.permit.is_some() {
            match &item {
                Some(item) => {
                    let outcome = this.classify.classify_item(item);
                    this.watch.item(outcome);
                }
                None => this.watch.end(),
            }
        }
        Poll::Ready(item)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, C> FusedStream for Guarded<S, C>
where
    S: FusedStream,
    C: ClassifyItem<S::Item>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}

impl<S, C> fmt::Debug for Guarded<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("permit", &self.watch.permit)
            .field("first_item_seen", &self.watch.seen_first)
            .finish_non_exhaustive()
    }
}

/// How a [`Guarded`] stream classifies its items: `None` for an item that decides nothing (an
/// `Ok`), `Some(outcome)` for one that ends the judgement (an `Err`: its classification,
/// recorded at once).
#[diagnostic::on_unimplemented(
    message = "a guarded stream cannot classify its items of type `{Item}`",
    label = "no way to tell a failed `{Item}` from a good one",
    note = "a guarded stream's items are `Result<T, E>` with `E: breaker::Classify`, or give a classifier: `Guarded::with_classifier(permit, stream, |e: &E| ..)` (the attribute's `classify_item = path`)"
)]
pub trait ClassifyItem<Item> {
    /// What `item` says of the provider, if anything.
    fn classify_item(&mut self, item: &Item) -> Option<Outcome>;
}

/// The default item classifier: `Ok` items decide nothing, `Err(e)` is `e.classify()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByClassify;

impl<T, E: Classify> ClassifyItem<Result<T, E>> for ByClassify {
    #[inline]
    fn classify_item(&mut self, item: &Result<T, E>) -> Option<Outcome> {
        match item {
            Ok(_) => None,
            Err(e) => Some(e.classify()),
        }
    }
}

/// A function of the error: `Ok` items decide nothing, `Err(e)` is `f(e)`.
impl<T, E, F: FnMut(&E) -> Outcome> ClassifyItem<Result<T, E>> for F {
    #[inline]
    fn classify_item(&mut self, item: &Result<T, E>) -> Option<Outcome> {
        match item {
            Ok(_) => None,
            Err(e) => Some(self(e)),
        }
    }
}

/// The judgement of one guarded stream: the permit until its outcome is recorded, and the times
/// its timeouts run from. The clock is read only for a timeout (or the slow-call policy's first
/// item): a stream without them costs a branch per item.
struct Watch {
    /// `Some` until the outcome is recorded.
    permit: Option<Permit>,
    /// When the stream was guarded, then when its latest item came (µs on the circuit's clock);
    /// kept only when a timeout is set.
    since_us: u64,
    /// `first_item_timeout` and `idle_timeout` in µs, 0 for none.
    first_us: u64,
    idle_us: u64,
    on_cancel: Outcome,
    seen_first: bool,
}

impl Watch {
    fn new(permit: Permit) -> Watch {
        let config = permit.config();
        let first_us = micros(config.first_item_timeout());
        let idle_us = micros(config.idle_timeout());
        let on_cancel = config.on_cancel();
        let since_us = if first_us != 0 || idle_us != 0 {
            permit.now_us()
        } else {
            0
        };
        Watch {
            permit: Some(permit),
            since_us,
            first_us,
            idle_us,
            on_cancel,
            seen_first: false,
        }
    }

    /// The limit on the wait for the next item (or end), 0 for none.
    #[inline]
    fn limit_us(&self) -> u64 {
        if self.seen_first {
            self.idle_us
        } else {
            self.first_us
        }
    }

    /// Whether the wait that ends now, begun at `since_us`, was longer than `limit` (0: none);
    /// restarts the wait. While the limit is clearly ahead the time is the coarse clock's (a few
    /// ns, not a full clock read per item), which errs late by at most its resolution: a gap
    /// is never judged late early, and near its limit the precise clock decides.
    #[inline]
    fn late(since_us: &mut u64, limit: u64, permit: &Permit) -> bool {
        if limit == 0 {
            return false;
        }
        let (late, now) = permit.past(since_us.saturating_add(limit));
        *since_us = now;
        late
    }

    /// An item came, classified as `outcome`.
    #[inline]
    fn item(&mut self, outcome: Option<Outcome>) {
        if self.seen_first && self.idle_us == 0 && outcome.is_none() {
            // The common case: a good item in the middle of a stream without an idle timeout.
            return;
        }
        self.slow_item(outcome);
    }

    #[inline(never)]
    fn slow_item(&mut self, outcome: Option<Outcome>) {
        let limit = self.limit_us();
        let Some(permit) = self.permit.as_mut() else {
            return;
        };
        let late = Watch::late(&mut self.since_us, limit, permit);
        if !self.seen_first {
            self.seen_first = true;
            permit.first_item();
        }
        let outcome = match (late, outcome) {
            (true, _) => Outcome::Failure,
            (false, Some(outcome)) => outcome,
            // A good item on time: the permit stays where it is.
            (false, None) => return,
        };
        if let Some(permit) = self.permit.take() {
            permit.record(outcome);
        }
    }

    /// The stream ended (`None`): a success, unless the end came late.
    fn end(&mut self) {
        let limit = self.limit_us();
        let Some(mut permit) = self.permit.take() else {
            return;
        };
        let late = Watch::late(&mut self.since_us, limit, &permit);
        if !self.seen_first {
            permit.first_item();
        }
        if late {
            permit.failure()
        } else {
            permit.success()
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        if std::thread::panicking() {
            // The stream's `poll_next`, or its consumer, panicked: as for any permit a panic
            // drops, `on_abandoned` (contained by the permit's own drop).
            return drop(permit);
        }
        let limit = self.limit_us();
        // The clock is user code: a drop must not panic, so its panic is contained (and the
        // wait taken for on time).
        let late = limit != 0
            && match catch_unwind(AssertUnwindSafe(|| permit.now_us())) {
                Ok(now) => now.saturating_sub(self.since_us) > limit,
                Err(payload) => {
                    drop_payload(payload);
                    false
                }
            };
        let outcome = if late {
            Outcome::Failure
        } else if self.seen_first {
            self.on_cancel
        } else {
            // Before its first item: what a permit dropped without a report counts as.
            return drop(permit);
        };
        // Contained as above (listeners are user code); the recording gives a probe's slot back
        // however it ends.
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| permit.record(outcome))) {
            drop_payload(payload);
        }
    }
}

fn micros(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| {
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_traits<T: Send + Sync + Unpin>() {}

    #[test]
    fn guarded_is_send_sync_unpin_when_its_stream_is() {
        struct S;
        impl Stream for S {
            type Item = Result<u8, Outcome>;
            fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                Poll::Ready(None)
            }
        }
        assert_traits::<Guarded<S>>();
        assert_traits::<Guarded<S, fn(&Outcome) -> Outcome>>();
    }
}
