//! What the bench programs share.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls a future that never waits, where it was built, as an `.await` in a caller does:
/// inlined always, because a call of this generic function, which the compiler made for the
/// annotated function's larger future (and not for the bare one's), first copied the future
/// just built with wide loads over its narrow stores, a stall that was half of what the
/// attribute measured in `provider_wide.rs` (issue 22).
#[inline(always)]
pub fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
