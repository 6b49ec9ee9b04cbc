//! The pointer types of what a table holds: [`Shared`], a counted reference whose last release
//! hands the object to the epoch instead of freeing it, and [`Held`], how a permit keeps one
//! object alive (a hazard or a count). They sit beside the reclamation they rely on, as
//! crossbeam-epoch keeps `Owned`/`Shared` beside its collector; the state machine uses them
//! without reaching into the epoch.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use super::epoch::{self, Guard, Hazard};
use crate::sync::{AtomicUsize, Ordering};

/// An object with its reference count. `repr(C)` with the count last, so the object's own
/// first fields (what a lookup reads) start the allocation and the count sits out of that line.
#[repr(C)]
pub(crate) struct Counted<T> {
    value: T,
    /// Handles of the object ([`Shared`]): clones, a table's, the permits of an object the
    /// registry could not store. Besides keeping the object alive, its release orders a
    /// permit's hazard (stored while a handle kept the object alive) before the scan of the
    /// slots that decides to free it; so it is one of loom's atomics under loom, where the
    /// models check that.
    strong: AtomicUsize,
    /// Under loom, a freed object is marked and leaked instead of freed, and every access
    /// through a handle, a permit or a table checks the mark (see [`crate::sync::Liveness`]): a
    /// use after free, or a free not ordered after every use, fails the model there rather
    /// than going unseen.
    #[cfg(loom)]
    freed: crate::sync::Liveness,
}

impl<T> Counted<T> {
    /// The object; under loom, fails if the epoch freed it (see `freed`).
    #[inline(always)]
    fn value(&self) -> &T {
        #[cfg(loom)]
        self.freed.check("a shared object");
        &self.value
    }
}

/// A counted reference: an `Arc` whose last release does not free at once but hands the object
/// to the epoch (`epoch.rs`), which frees it when no permit's hazard is on it. That is what lets
/// permits hold an object with a hazard (thread-local stores) instead of a count. One word less
/// than an `Arc`'s header, too (no weak count).
pub(crate) struct Shared<T: Send + Sync> {
    ptr: NonNull<Counted<T>>,
}

// SAFETY: a shared reference to `T` (`Send + Sync`) with a thread-safe count, like `Arc<T>`.
unsafe impl<T: Send + Sync> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Shared<T> {}

impl<T: Send + Sync> Shared<T> {
    pub(crate) fn new(value: T) -> Shared<T> {
        Shared {
            ptr: NonNull::from(Box::leak(Box::new(Counted {
                value,
                strong: AtomicUsize::new(1),
                #[cfg(loom)]
                freed: crate::sync::Liveness::new(),
            }))),
        }
    }

    /// The handle as a raw pointer carrying its count, for a table's slot.
    pub(crate) fn into_raw(self) -> *mut Counted<T> {
        ManuallyDrop::new(self).ptr.as_ptr()
    }

    /// # Safety
    /// `p` came from [`into_raw`](Self::into_raw), whose count the result takes over.
    #[inline]
    pub(crate) unsafe fn from_raw(p: *mut Counted<T>) -> Shared<T> {
        Shared {
            // SAFETY: `into_raw` never returns null.
            ptr: unsafe { NonNull::new_unchecked(p) },
        }
    }

    /// Live handles of the object.
    pub(crate) fn count(&self) -> usize {
        self.counted().strong.load(Ordering::Acquire)
    }

    /// Whether both handles point at the same object.
    pub(crate) fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.ptr == b.ptr
    }

    #[inline(always)]
    fn counted(&self) -> &Counted<T> {
        // SAFETY: alive while this count is.
        unsafe { self.ptr.as_ref() }
    }

    /// A hold by a hazard stored directly (this handle keeps the object alive until it is;
    /// the count's release orders it before the scan that decides to free the object: see
    /// `epoch::retire_unreachable`).
    #[inline(always)]
    pub(crate) fn protect(&self) -> Held<T> {
        Held::protected(self.ptr, epoch::protect(self.ptr))
    }

    /// A hold by a hazard that `guard`'s pin turns into.
    ///
    /// # Safety
    /// The object was found under `guard` in a table (which retires what it unlinks to the
    /// epoch, so it is alive until the hazard is stored).
    #[inline(always)]
    pub(crate) unsafe fn pinned(&self, guard: Guard) -> Held<T> {
        Held::protected(self.ptr, guard.protect(self.ptr))
    }

    /// A hold by this handle's count.
    #[inline]
    pub(crate) fn into_held(self) -> Held<T> {
        // SAFETY: `into_raw` is never null.
        let ptr = unsafe { NonNull::new_unchecked(self.into_raw()) };
        Held { ptr, hazard: None }
    }
}

impl<T: Send + Sync> std::ops::Deref for Shared<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        self.counted().value()
    }
}

impl<T: Send + Sync> Clone for Shared<T> {
    fn clone(&self) -> Shared<T> {
        // Relaxed, as `Arc`: a new count comes from an existing one, which keeps it alive.
        let old = self.counted().strong.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            // Only reachable by leaking counts (`mem::forget` in a loop), as `Arc` guards.
            std::process::abort();
        }
        Shared { ptr: self.ptr }
    }
}

impl<T: Send + Sync> Drop for Shared<T> {
    fn drop(&mut self) {
        if self.counted().strong.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Acquire: every use through another count happens before the free, as in `Arc`, and so
        // does every hazard stored while another count kept the object alive.
        crate::sync::fence(Ordering::Acquire);
        // SAFETY: the last count is gone, so no table holds it (a table holds a count while the
        // object is linked) and no pin can reach it; permits' hazards, taken while a count kept
        // it alive, are ordered before this by the counts' release.
        unsafe { epoch::retire_unreachable(self.ptr.as_ptr(), free::<T>) };
        epoch::collect();
    }
}

/// # Safety
/// `p` is the `Box` of a [`Shared`] whose last count is gone and that no hazard protects.
unsafe fn free<T>(p: *mut Counted<T>) {
    #[cfg(loom)]
    {
        // SAFETY: marked, not freed (see `Counted::freed`).
        let counted = unsafe { &*p };
        counted.freed.free("a shared object");
        return;
    }
    // SAFETY: the caller's contract.
    #[allow(unreachable_code)]
    drop(unsafe { Box::from_raw(p) });
}

/// How a permit keeps its object alive: a hazard (`epoch.rs`: a slot the acquiring thread owns
/// holds the object's address; a table lookup's pin turns into it, or a handle's
/// [`protect`](Shared::protect) stores it), which costs plain stores instead of two
/// read-modify-writes on the object's cache line and keeps this one object alive and nothing
/// else; or a strong count (an object a registry made but could not store, under its cap).
/// Two words.
pub(crate) struct Held<T: Send + Sync> {
    ptr: NonNull<Counted<T>>,
    /// `None` when `ptr` carries a strong count.
    hazard: Option<Hazard>,
}

impl<T: Send + Sync> Held<T> {
    #[inline(always)]
    fn protected(ptr: NonNull<Counted<T>>, hazard: Hazard) -> Held<T> {
        Held {
            ptr,
            hazard: Some(hazard),
        }
    }
}

impl<T: Send + Sync> std::ops::Deref for Held<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: kept alive by the hazard or the strong count this value owns.
        unsafe { self.ptr.as_ref() }.value()
    }
}

impl<T: Send + Sync> Drop for Held<T> {
    #[inline]
    fn drop(&mut self) {
        if self.hazard.is_none() {
            // SAFETY: the strong count this value owns, from `Shared::into_raw`.
            drop(unsafe { Shared::from_raw(self.ptr.as_ptr()) });
        }
        // A hazard is released by its own drop, right after this.
    }
}

// SAFETY: `Held` is a shared reference to `T` (which is `Send + Sync`) kept alive by a strong
// count or a hazard, and both may be released from any thread.
unsafe impl<T: Send + Sync> Send for Held<T> {}
// SAFETY: as above; `&Held` only gives `&T`.
unsafe impl<T: Send + Sync> Sync for Held<T> {}
