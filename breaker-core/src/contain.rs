//! Containment of panics from user code (a clock, a listener, a `Drop`) that runs inside the
//! breaker: whatever a contained panic carries is dropped here, where its own panic cannot
//! escape either.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Drops a contained panic's payload, whose own `Drop` is user code and may panic too: that
/// second payload is leaked rather than let out of the call that contained the first.
pub(crate) fn drop_payload(payload: Box<dyn std::any::Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}
