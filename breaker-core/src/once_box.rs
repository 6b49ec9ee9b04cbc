//! A value made on first need and published once, behind one pointer that stays null until then
//! ([`OnceBox`]): what a circuit keeps only after it leaves closed (`circuit/cold.rs`) and a
//! count window's stripes (`window/count.rs`) are made this way, so the many circuits and
//! windows that never need them pay one word.
//!
//! This file is a leaf: it knows nothing of circuits or windows. Not `once_cell::race::OnceBox`:
//! its atomics are std's, which the loom models (the crate's own atomics under `--cfg loom`)
//! would not see.

use std::fmt;
use std::marker::PhantomData;
use std::ptr;

use crate::sync::{AtomicPtr, Ordering};

/// A `T` made on first need (racing makers agree on one; the others drop theirs) and dropped
/// with the box. `T: Send + Sync` because any thread that shares the box may make it, and the
/// owner drops it.
pub(crate) struct OnceBox<T: Send + Sync> {
    ptr: AtomicPtr<T>,
    _owns: PhantomData<Box<T>>,
}

impl<T: Send + Sync> OnceBox<T> {
    pub(crate) fn new() -> Self {
        OnceBox {
            ptr: AtomicPtr::new(ptr::null_mut()),
            _owns: PhantomData,
        }
    }

    /// The value, if it was made.
    #[inline]
    pub(crate) fn get(&self) -> Option<&T> {
        // Acquire: the value's initial state before its address.
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: nothing stores into `ptr` but `init`'s compare-and-swap from null, so a
        // non-null address is the one value published from a `Box`, dropped only by `drop`,
        // which `&self` rules out.
        unsafe { p.as_ref() }
    }

    /// The value, made by `make` now if this is the first need of it.
    #[inline]
    pub(crate) fn get_or_init(&self, make: impl FnOnce() -> T) -> &T {
        match self.get() {
            Some(value) => value,
            None => self.init(make),
        }
    }

    #[cold]
    #[inline(never)]
    fn init(&self, make: impl FnOnce() -> T) -> &T {
        let fresh = Box::into_raw(Box::new(make()));
        // Release: the fresh value before its address; Acquire on failure: the value another
        // thread published.
        match self
            .ptr
            .compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: published just now; dropped only by `drop`, which `&self` rules out.
            Ok(_) => unsafe { &*fresh },
            Err(made) => {
                // SAFETY: `fresh` came from `Box::into_raw` above and was never published.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: as in `get`: `made` is non-null, since only null is replaced.
                unsafe { &*made }
            }
        }
    }
}

impl<T: Send + Sync> Drop for OnceBox<T> {
    fn drop(&mut self) {
        let p = self.ptr.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: published by `init` from `Box::into_raw`; `&mut self` means no one holds a
            // reference to it any more.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

impl<T: Send + Sync + fmt::Debug> fmt::Debug for OnceBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OnceBox").field(&self.get()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::AtomicU32;

    #[test]
    fn one_word_made_once() {
        assert_eq!(std::mem::size_of::<OnceBox<AtomicU32>>(), 8);
        let slot = OnceBox::new();
        assert!(slot.get().is_none());
        let first: *const AtomicU32 = slot.get_or_init(|| AtomicU32::new(1));
        let again = slot.get_or_init(|| AtomicU32::new(2));
        assert_eq!(first, again as *const AtomicU32);
        assert_eq!(slot.get().map(|v| v.load(Ordering::Relaxed)), Some(1));
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;
    use crate::sync::AtomicU32;

    /// Two threads need the value at once and count in it: both use the one value kept (the
    /// loser's is dropped), and neither count is lost.
    #[test]
    fn racing_makers_share_one_value() {
        loom::model(|| {
            let slot = Arc::new(OnceBox::new());
            let other = {
                let slot = slot.clone();
                thread::spawn(move || {
                    let v = slot.get_or_init(|| AtomicU32::new(0));
                    v.fetch_add(1, Ordering::Relaxed);
                    v as *const AtomicU32 as usize
                })
            };
            let v = slot.get_or_init(|| AtomicU32::new(0));
            v.fetch_add(1, Ordering::Relaxed);
            let mine = v as *const AtomicU32 as usize;
            assert_eq!(other.join().unwrap(), mine);
            let kept = slot.get().expect("made");
            assert_eq!(kept.load(Ordering::Relaxed), 2);
        });
    }
}
