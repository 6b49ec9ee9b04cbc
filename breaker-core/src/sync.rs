//! The atomics and locks of the state machine, the table and the reclamation scheme, swapped for
//! loom's under `--cfg loom` so the model tests explore every interleaving of the real code.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Under loom, what the reclamation scheme frees is marked, not freed, and this mark stands for
/// its memory: every use reads it through a loom cell and the free writes it, so loom fails a
/// model both when a use comes after the free and when the free does not *happen after* the last
/// use (a release or acquire that the scheme relies on, made relaxed), which the order of the
/// schedule alone cannot show.
#[cfg(loom)]
pub(crate) struct Liveness(loom::cell::UnsafeCell<bool>);

// SAFETY: the cell is only read by `check` and written by `free`, and loom checks every such
// access for a race; that is its purpose.
#[cfg(loom)]
unsafe impl Sync for Liveness {}

#[cfg(loom)]
impl Liveness {
    pub(crate) fn new() -> Self {
        Liveness(loom::cell::UnsafeCell::new(false))
    }

    /// A use of the object: fails if it was freed, or if loom finds the free racing it.
    #[track_caller]
    pub(crate) fn check(&self, what: &str) {
        // SAFETY: loom checks that no `free` races this read.
        let freed = self.0.with(|f| unsafe { *f });
        assert!(!freed, "{what} was used after the epoch freed it");
    }

    /// The free: fails if loom finds it racing a use (or another free).
    #[track_caller]
    pub(crate) fn free(&self, what: &str) {
        // SAFETY: loom checks that no `check` or other `free` races this write.
        let twice = self
            .0
            .with_mut(|f| unsafe { std::mem::replace(&mut *f, true) });
        assert!(!twice, "{what} was freed twice");
    }
}
