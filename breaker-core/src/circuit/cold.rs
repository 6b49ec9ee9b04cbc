//! What a circuit keeps only once it has left closed or turned a call away ([`Cold`]), made at
//! the first such moment and kept for the circuit's life ([`ColdSlot`], a `OnceBox`).
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

use crate::once_box::OnceBox;
use crate::stripe::Counter;
use crate::sync::{AtomicU32, AtomicU64};

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
    pub(super) fn new() -> Cold {
        Cold {
            rejected: Counter::new(),
            times_opened: AtomicU32::new(0),
            stays: AtomicU32::new(0),
            probe_stamp: AtomicU64::new(0),
        }
    }
}

/// A circuit's [`Cold`] record: null until first needed, made once, dropped with the circuit.
pub(crate) type ColdSlot = OnceBox<Cold>;
