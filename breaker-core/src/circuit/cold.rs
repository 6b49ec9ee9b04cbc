//! What a circuit keeps only once it has left closed or turned a call away ([`Cold`]), made at
//! the first such moment and kept for the circuit's life ([`ColdSlot`]).
//!
//! A registry holds millions of circuits, most of which never trip: their state machine fits
//! one 64-byte allocation (72 with its reference count, an 80-byte chunk of the allocator) only
//! because the counts and stamps of trips, stays and rejections live here, behind one pointer
//! that stays null until needed (issue 22: at most 96 bytes a circuit, resident and allocated).
//! A circuit that has tripped once pays one more 24-byte allocation (a 32-byte chunk), which
//! the first of these makes: a trip, a rejection (its own or, while its provider-wide circuit
//! is open, that circuit's: it counts in the tenant's `rejected` too), an operator switch (a
//! reset of a closed circuit included: it numbers a new stay), or an opening or switch the
//! fleet applies. The hot paths that follow (every later rejection) find it made and allocate
//! nothing. So during a provider-wide outage every tenant that calls gets its record, as every
//! tenant that trips does: a million such circuits take about 107 bytes each, not 83.

use std::ptr;

use crate::stripe::Counter;
use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// The circuit's records of what happens off the closed, all-Ok path. None of it is read by a
/// call on a closed circuit.
pub(crate) struct Cold {
    /// Rejections: striped once two threads are seen rejecting at once, so an open circuit's
    /// fast-fail path writes no line another core writes (see `stripe.rs`).
    pub(super) rejected: Counter,
    pub(super) times_opened: AtomicU32,
    /// Numbers the closed-kind stays permits can be issued in, so a permit from an old stay never
    /// matches a new one once the 8-bit gen wraps (see `state`). Written only on transitions.
    pub(super) stays: AtomicU32,
    /// When the latest half-open probe was admitted (µs on the circuit's clock, low 48 bits) and
    /// the generation of the half-open word it was admitted under (high 8 bits), so that a stamp
    /// of another stay is never taken for this one's. Read only when a call finds every probe
    /// slot taken (`expire_probes`), written only when a probe is admitted.
    pub(super) probe_stamp: AtomicU64,
}

impl Cold {
    fn new() -> Cold {
        Cold {
            rejected: Counter::new(),
            times_opened: AtomicU32::new(0),
            stays: AtomicU32::new(0),
            probe_stamp: AtomicU64::new(0),
        }
    }
}

/// A circuit's [`Cold`] record: null until first needed, then made once (racing makers agree on
/// one; the others free theirs) and freed with the circuit.
pub(crate) struct ColdSlot {
    ptr: AtomicPtr<Cold>,
}

impl ColdSlot {
    pub(crate) fn new() -> ColdSlot {
        ColdSlot {
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The record, if it was made: what readers of counts use, since a record never made
    /// counts nothing.
    #[inline]
    pub(crate) fn get(&self) -> Option<&Cold> {
        // Acquire: the record's initial values before its address.
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: nothing stores into `ptr` but `make`'s compare-and-swap from null, so a
        // non-null address is the one record published from a `Box`, freed only by `drop`,
        // which `&self` rules out.
        unsafe { p.as_ref() }
    }

    /// The record, made now if this is the circuit's first need of it.
    #[inline]
    pub(crate) fn get_or_make(&self) -> &Cold {
        match self.get() {
            Some(cold) => cold,
            None => self.make(),
        }
    }

    #[cold]
    #[inline(never)]
    fn make(&self) -> &Cold {
        let fresh = Box::into_raw(Box::new(Cold::new()));
        // Release: the fresh record's values before its address; Acquire on failure: those of
        // the record another thread published.
        match self
            .ptr
            .compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: published just now; freed only by `drop`, which `&self` rules out.
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

impl Drop for ColdSlot {
    fn drop(&mut self) {
        let p = self.ptr.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: published by `make` from `Box::into_raw`; `&mut self` means no one holds a
            // reference to it any more.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_one_word_and_makes_its_record_once() {
        assert_eq!(std::mem::size_of::<ColdSlot>(), 8);
        let slot = ColdSlot::new();
        assert!(slot.get().is_none());
        let first: *const Cold = slot.get_or_make();
        slot.get_or_make().rejected.incr();
        assert_eq!(first, slot.get_or_make() as *const Cold);
        assert_eq!(slot.get().map(|c| c.rejected.sum()), Some(1));
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::thread;

    use super::*;

    /// Two threads need the record at once and count in it: both use the one record kept (the
    /// loser's is freed), and neither count is lost.
    #[test]
    fn racing_makers_share_one_record() {
        loom::model(|| {
            let slot = Arc::new(ColdSlot::new());
            let other = {
                let slot = slot.clone();
                thread::spawn(move || {
                    let cold = slot.get_or_make();
                    cold.times_opened.fetch_add(1, Ordering::Relaxed);
                    cold as *const Cold as usize
                })
            };
            let cold = slot.get_or_make();
            cold.times_opened.fetch_add(1, Ordering::Relaxed);
            let mine = cold as *const Cold as usize;
            assert_eq!(other.join().unwrap(), mine);
            let kept = slot.get().expect("made");
            assert_eq!(kept.times_opened.load(Ordering::Relaxed), 2);
        });
    }
}
