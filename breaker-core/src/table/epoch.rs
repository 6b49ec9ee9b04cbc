//! Deferred freeing of what the registry unlinks, with protection that a permit can carry across
//! `.await` and threads and that keeps alive only the one circuit the permit uses.
//!
//! A registry lookup and the permit it hands out must keep the circuit's memory alive without a
//! shared write: a reference count is an atomic read-modify-write on the circuit's cache line
//! per call (tens of nanoseconds, and contention when threads share a tenant). So each thread
//! owns a few cache lines of *slots*, and a slot is in one of three states:
//!
//! - free (`0`);
//! - a *pin* of epoch `e` (`e << 1 | 1`), taken for a lookup: while it is there, nothing that was
//!   reachable when it was taken is freed (epoch-based reclamation: the lookup may follow any
//!   pointer of the table);
//! - a *hazard* on one object (its address): when a lookup has found the circuit a permit will
//!   use, the same slot is overwritten with the circuit's address, and from then on only that
//!   circuit is kept. A standalone circuit's permit stores its hazard directly (its handle keeps
//!   the circuit alive while it does).
//!
//! Taking a slot, storing into it and freeing it are plain loads and stores on lines the thread
//! owns (a permit released on another thread stores `0` into its slot from there). So a permit
//! that is never released (a hung call, a `mem::forget`) keeps exactly its own circuit: the
//! epoch still advances past it, and everything else is freed as usual.
//!
//! - To advance the epoch from `e` to `e + 1`, the advancer scans every slot and advances only if
//!   no pin of `e - 1` is left. A pin validates its epoch after storing it (it re-reads the epoch
//!   and retries on a change), so once the advancer's barrier has run, no pin of `e - 1` can
//!   still be accepted: one that read `e - 1` before the epoch moved is stored by then.
//! - Something unlinked while the epoch is `r` is past every pin once the epoch is `r + 2`: the
//!   two advances saw every pin of `r - 1` and of `r` gone (turned into hazards or freed), and a
//!   pin of `r + 1` or later reads the table after the unlink. It is then freed unless a slot
//!   holds a hazard on it; if one does, it waits (alone) until that hazard is gone.
//!
//! The ordering between a pin's store and the advancer's scan is the classic store-then-load
//! (Dekker) pattern. On Linux the pin side is a compiler fence and the advancer pays for both
//! with `membarrier(PRIVATE_EXPEDITED)`, the asymmetric barrier seize and the Linux kernel's
//! RCU use; elsewhere, where registering is refused, and under `--cfg loom` (loom does not model
//! membarrier), both sides use a `SeqCst` fence. A barrier can fail after registering (the
//! kernel returns `ENOMEM` when it cannot allocate its CPU mask); pins rely on it then, so that
//! attempt does not advance: what waits for an advance stays until a later attempt's barrier
//! succeeds (never freed early), and the process prints one line the first time. Objects that
//! need no advance (a circuit whose last handle is gone) are freed regardless.
//!
//! Pending objects are kept in batches, one per epoch, and freed batch by batch from the oldest,
//! so the work of `collect` is proportional to what it frees plus one scan of the slots (whose
//! number follows the permits outstanding), never to what stays pending. Frees run in `collect`,
//! called after the registry's writes and when a standalone circuit's last handle goes, outside
//! every lock. A free that panics (user code: a clock's or a listener's drop) does not stop the
//! others: every item of the batch is freed, and the panic is contained (reported by the panic
//! hook, its payload dropped under a catch of its own); it never reaches the caller, a registry
//! write or a handle's drop that has nothing to do with it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
#[cfg(not(loom))]
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::PoisonError;

use super::barrier;
#[cfg(not(loom))]
use crate::contain::drop_payload;
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};

/// A slot's value when it holds nothing.
const FREE: usize = 0;
/// Slots a chunk holds (a power of two); a few under loom, where every slot a scan reads is a
/// step to explore.
#[cfg(not(loom))]
const SLOTS: usize = 64;
#[cfg(loom)]
const SLOTS: usize = 2;

// The process-wide state: plain statics, or one per model execution under loom.
#[cfg(not(loom))]
static EPOCH: AtomicU64 = AtomicU64::new(0);
#[cfg(not(loom))]
static CHUNKS: Mutex<Chunks> = Mutex::new(Chunks::new());
#[cfg(not(loom))]
static RETIRED: Mutex<Retired> = Mutex::new(Retired::new());
/// Whether `RETIRED` holds anything, so that `collect` costs one load when it does not.
#[cfg(not(loom))]
static PENDING: AtomicBool = AtomicBool::new(false);
#[cfg(loom)]
loom::lazy_static! {
    static ref EPOCH: AtomicU64 = AtomicU64::new(0);
    static ref CHUNKS: Mutex<Chunks> = Mutex::new(Chunks::new());
    static ref RETIRED: Mutex<Retired> = Mutex::new(Retired::new());
    static ref PENDING: AtomicBool = AtomicBool::new(false);
}

/// The value of a pin of epoch `e`: odd, so never an object's (aligned) address. Epochs are
/// compared truncated to the bits that fit; two advances apart is all that is ever compared.
#[inline(always)]
fn pin_value(e: u64) -> usize {
    ((e as usize) << 1) | 1
}

/// Slots of one thread (or of the shared pool for threads whose locals are gone), on lines of
/// their own.
#[repr(align(128))]
struct Chunk {
    slots: [AtomicUsize; SLOTS],
}

impl Chunk {
    fn leak() -> &'static Chunk {
        Box::leak(Box::new(Chunk {
            slots: std::array::from_fn(|_| AtomicUsize::new(FREE)),
        }))
    }

    /// A free slot of this chunk and its index, if any. Only the chunk's owner (or the holder
    /// of [`CHUNKS`], for the shared pool) takes slots, so a slot seen free stays free until
    /// the taker stores into it.
    fn take_free(&self) -> Option<(usize, &AtomicUsize)> {
        self.slots.iter().enumerate().find(|(_, s)| {
            // Acquire: a permit released on another thread stored `FREE` after its last use of
            // what it protected; this taking (and whatever a scan later reads of it) comes after.
            s.load(Ordering::Acquire) == FREE
        })
    }
}

/// Every chunk ever made (leaked, so scans never race a free), the spare ones of threads that
/// exited, and the shared pool.
struct Chunks {
    all: Vec<&'static Chunk>,
    spare: Vec<&'static Chunk>,
    shared: Vec<&'static Chunk>,
}

impl Chunks {
    const fn new() -> Self {
        Chunks {
            all: Vec::new(),
            spare: Vec::new(),
            shared: Vec::new(),
        }
    }

    fn fresh(&mut self) -> &'static Chunk {
        self.spare.pop().unwrap_or_else(|| {
            let c = Chunk::leak();
            self.all.push(c);
            c
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves its data consistent at each step.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's chunks. Apart from [`Cursor`], which the fast path reads: a thread-local with
/// a destructor is reached through a check of its state on every access, one without none is
/// not, and this one needs its destructor (to hand its chunks on).
struct Local {
    owned: RefCell<Vec<&'static Chunk>>,
}

/// Where this thread looks for a free slot next: the chunk it took its last slot from and the
/// index after that slot. No destructor, so it is reachable for as long as the thread runs,
/// after [`Local`]'s is gone too (which empties it, so the slow path finds that out).
struct Cursor {
    current: Cell<Option<&'static Chunk>>,
    next: Cell<usize>,
}

impl Cursor {
    /// A free slot: the one after the last taken, when it is free (always, for calls that
    /// release their permit before the next one).
    #[inline(always)]
    fn take(&self) -> Option<&'static AtomicUsize> {
        let chunk = self.current.get()?;
        let i = self.next.get() & (SLOTS - 1);
        let slot = &chunk.slots[i];
        // Acquire: as in `Chunk::take_free`.
        if slot.load(Ordering::Acquire) == FREE {
            self.next.set(i + 1);
            return Some(slot);
        }
        None
    }
}

impl Local {
    #[cold]
    #[inline(never)]
    fn take_slow(&self, cursor: &Cursor) -> &'static AtomicUsize {
        barrier::detect();
        let Ok(mut owned) = self.owned.try_borrow_mut() else {
            // Only reachable if taking a slot re-entered itself (an allocator calling us).
            return take_shared();
        };
        // This thread's chunks first, from the current one on.
        let start = cursor
            .current
            .get()
            .and_then(|c| owned.iter().position(|o| std::ptr::eq(*o, c)))
            .unwrap_or(0);
        for k in 0..owned.len() {
            let chunk = owned[(start + k) % owned.len()];
            if let Some((i, slot)) = chunk.take_free() {
                cursor.current.set(Some(chunk));
                cursor.next.set(i + 1);
                return slot;
            }
        }
        // All taken (permits outstanding): one more chunk. A spare one may still have slots
        // taken by permits of the thread that owned it; those are skipped.
        loop {
            let chunk = lock(&CHUNKS).fresh();
            owned.push(chunk);
            if let Some((i, slot)) = chunk.take_free() {
                cursor.current.set(Some(chunk));
                cursor.next.set(i + 1);
                return slot;
            }
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // Slots still taken belong to permits that outlive the thread; they free them wherever
        // they are released, and the next owner of the chunk skips them until then. (Under loom
        // the model's statics may be gone when its main thread ends: the chunks are left.)
        let owned = std::mem::take(self.owned.get_mut());
        // The cursor outlives this (it has no destructor): a later take must not use a chunk
        // handed on below. Under loom the cursor may already be gone with the model's thread.
        let _ = CURSOR.try_with(|c| c.current.set(None));
        #[cfg(not(loom))]
        lock(&CHUNKS).spare.extend(owned);
        #[cfg(loom)]
        drop(owned);
    }
}

impl Local {
    const fn new() -> Self {
        Local {
            owned: RefCell::new(Vec::new()),
        }
    }
}

impl Cursor {
    const fn new() -> Self {
        Cursor {
            current: Cell::new(None),
            next: Cell::new(0),
        }
    }
}

#[cfg(not(loom))]
std::thread_local! {
    static LOCAL: Local = const { Local::new() };
    static CURSOR: Cursor = const { Cursor::new() };
    static COLLECTING: Cell<bool> = const { Cell::new(false) };
}
#[cfg(loom)]
loom::thread_local! {
    static LOCAL: Local = Local::new();
    static CURSOR: Cursor = Cursor::new();
    static COLLECTING: Cell<bool> = Cell::new(false);
}

/// A slot from the shared pool, for a thread whose locals are gone (a registry call from
/// another thread-local's destructor).
#[cold]
#[inline(never)]
fn take_shared() -> &'static AtomicUsize {
    barrier::detect();
    let mut chunks = lock(&CHUNKS);
    loop {
        for chunk in &chunks.shared {
            if let Some((_, slot)) = chunk.take_free() {
                // Taken under the lock; marked before the lock goes so no one else takes it.
                slot.store(pin_value(0), Ordering::Relaxed);
                return slot;
            }
        }
        let chunk = chunks.fresh();
        chunks.shared.push(chunk);
    }
}

#[inline(always)]
fn take() -> &'static AtomicUsize {
    CURSOR
        .try_with(Cursor::take)
        .ok()
        .flatten()
        .unwrap_or_else(take_slow)
}

/// No free slot at the cursor, or no chunk yet (the thread's first pin, or its locals gone).
/// Finds the thread-locals itself, so the fast path computes no address for it.
#[cold]
#[inline(never)]
fn take_slow() -> &'static AtomicUsize {
    CURSOR
        .try_with(|cursor| LOCAL.try_with(|local| local.take_slow(cursor)))
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(|| take_shared())
}

/// A pin of the current epoch, for a lookup: while it lives, nothing that was reachable when it
/// was taken is freed. Dropping it unpins; [`protect`](Guard::protect) turns it into a hazard on
/// what the lookup found.
pub(crate) struct Guard {
    slot: &'static AtomicUsize,
}

impl Guard {
    /// Keeps `p` (found under this pin) alive, and nothing else, until the hazard goes. The
    /// same slot is overwritten, so there is no moment when neither protects `p`.
    #[inline(always)]
    pub(crate) fn protect<T>(self, p: NonNull<T>) -> Hazard {
        const { assert!(align_of::<T>() >= 2, "an odd address would read as a pin") };
        let slot = self.slot;
        std::mem::forget(self);
        // Release: a scan that reads it reads after the lookup that found `p`.
        slot.store(p.as_ptr().addr(), Ordering::Release);
        Hazard { slot }
    }
}

impl Drop for Guard {
    #[inline(always)]
    fn drop(&mut self) {
        self.slot.store(FREE, Ordering::Release);
    }
}

/// Keeps one object from being freed; released when dropped, on any thread.
pub(crate) struct Hazard {
    slot: &'static AtomicUsize,
}

impl Drop for Hazard {
    #[inline(always)]
    fn drop(&mut self) {
        // Release: every use of the object happens before a scan that reads the slot free.
        self.slot.store(FREE, Ordering::Release);
    }
}

/// Pins the current epoch.
#[inline(always)]
pub(crate) fn pin() -> Guard {
    let slot = take();
    loop {
        let e = EPOCH.load(Ordering::Relaxed);
        slot.store(pin_value(e), Ordering::Release);
        barrier::light();
        // Acquire: pairs with the advance that stored this epoch, so this pin sees
        // everything unlinked before it.
        if EPOCH.load(Ordering::Acquire) == e {
            return Guard { slot };
        }
    }
}

/// A hazard on `p`, which the caller keeps alive while this runs by other means (a handle's
/// reference count): the count's release, which comes after this store, orders it before the
/// scan that decides to free `p` (see [`retire_unreachable`]).
#[inline(always)]
pub(crate) fn protect<T>(p: NonNull<T>) -> Hazard {
    const { assert!(align_of::<T>() >= 2, "an odd address would read as a pin") };
    let slot = take();
    slot.store(p.as_ptr().addr(), Ordering::Release);
    Hazard { slot }
}

struct Deferred {
    ptr: *mut (),
    free: unsafe fn(*mut ()),
}

// SAFETY: what is retired here is `Send` (circuits, tables' arrays): `retire` requires it.
unsafe impl Send for Deferred {}

impl Deferred {
    fn new<T: Send>(ptr: *mut T, free: unsafe fn(*mut T)) -> Self {
        Deferred {
            ptr: ptr.cast(),
            // SAFETY: `fn(*mut T)` and `fn(*mut ())` have the same ABI for a sized `T`.
            free: unsafe { std::mem::transmute::<unsafe fn(*mut T), unsafe fn(*mut ())>(free) },
        }
    }
}

/// What waits to be freed: batches by the epoch they were unlinked in, oldest first, and what is
/// past every pin but may still be under a hazard.
struct Retired {
    batches: VecDeque<(u64, Vec<Deferred>)>,
    held: Vec<Deferred>,
    /// Items that went into `held` since its last check against the hazards.
    unchecked: usize,
    /// `collect` calls since the last attempt to advance or to check `held` again.
    idle: u32,
}

impl Retired {
    const fn new() -> Self {
        Retired {
            batches: VecDeque::new(),
            held: Vec::new(),
            unchecked: 0,
            idle: 0,
        }
    }
}

/// How many `collect` calls may pass without an attempt to advance (a barrier and a scan) while
/// something waits: spreads that cost over a few registry writes without delaying frees much.
const ATTEMPT_EVERY: u32 = 4;

/// How many objects past every pin may wait for the next due check against the hazards.
const CHECK_AT: usize = 64;

/// Frees `ptr` with `free` once no pin taken before this call is alive and no hazard is on it.
///
/// # Safety
/// `ptr` is unreachable for pins taken after this call (unlinked before it), `free(ptr)` is
/// sound once no pin or hazard can reach it, and what it points to is `Send`.
pub(crate) unsafe fn retire<T: Send>(ptr: *mut T, free: unsafe fn(*mut T)) {
    let mut retired = lock(&RETIRED);
    // Read under the lock that advances take, so an advance past this epoch happens after
    // the unlink and a pin that sees the advanced epoch sees the unlink.
    let epoch = EPOCH.load(Ordering::Acquire);
    let d = Deferred::new(ptr, free);
    match retired.batches.back_mut() {
        Some((e, items)) if *e == epoch => items.push(d),
        _ => retired.batches.push_back((epoch, vec![d])),
    }
    PENDING.store(true, Ordering::Relaxed);
}

/// [`retire`] for each of `ptrs`, under one lock.
///
/// # Safety
/// As [`retire`], for each of them.
pub(crate) unsafe fn retire_all<T: Send>(ptrs: Vec<*mut T>, free: unsafe fn(*mut T)) {
    if ptrs.is_empty() {
        return;
    }
    let mut retired = lock(&RETIRED);
    let epoch = EPOCH.load(Ordering::Acquire);
    let items = ptrs.into_iter().map(|p| Deferred::new(p, free));
    match retired.batches.back_mut() {
        Some((e, batch)) if *e == epoch => batch.extend(items),
        _ => retired.batches.push_back((epoch, items.collect())),
    }
    PENDING.store(true, Ordering::Relaxed);
}

/// Frees `ptr` with `free` once no hazard is on it. For what no pin can reach (a circuit whose
/// last handle is gone after it left its table, or that never was in one): only a permit's
/// hazard, taken while a handle kept it alive, can still see it.
///
/// # Safety
/// As [`retire`], and no pin alive can reach `ptr`.
pub(crate) unsafe fn retire_unreachable<T: Send>(ptr: *mut T, free: unsafe fn(*mut T)) {
    let mut retired = lock(&RETIRED);
    retired.held.push(Deferred::new(ptr, free));
    retired.unchecked += 1;
    PENDING.store(true, Ordering::Relaxed);
}

/// Objects waiting to be freed (tests of reclamation's bounds).
pub(crate) fn pending() -> usize {
    let retired = lock(&RETIRED);
    retired.batches.iter().map(|(_, b)| b.len()).sum::<usize>() + retired.held.len()
}

/// Advances the epoch as far as the pins allow (at most twice) and frees what is past every pin
/// and under no hazard. The registry calls it after its rare writes (a new circuit, a removal, a
/// sweep); a circuit's last handle calls it too.
pub(crate) fn collect() {
    collect_with(false);
}

/// [`collect`] that tries to advance at once, for writes that unlink many objects at a time (a
/// sweep, a table dropped), whose frees should not wait for later writes.
pub(crate) fn collect_now() {
    collect_with(true);
}

fn collect_with(now: bool) {
    if !PENDING.load(Ordering::Relaxed) {
        return;
    }
    // Freeing a table's circuit gives back its last count, which retires it again (for
    // hazards only) and calls this: the outer call frees those in its next pass instead.
    let Ok(outer) = COLLECTING.try_with(|c| !c.replace(true)) else {
        pass_and_free(now);
        return;
    };
    if !outer {
        return;
    }
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            let _ = COLLECTING.try_with(|c| c.set(false));
        }
    }
    let _done = Done;
    for _ in 0..3 {
        if !pass_and_free(now) {
            break;
        }
    }
}

/// One pass of [`collect`]; says whether it freed anything.
fn pass_and_free(now: bool) -> bool {
    let free = {
        let mut retired = lock(&RETIRED);
        let r = &mut *retired;
        r.idle += 1;
        let due = now || r.idle >= ATTEMPT_EVERY;
        let epoch = EPOCH.load(Ordering::Relaxed);
        if due && r.batches.front().is_some_and(|(e, _)| epoch < e + 2) {
            for _ in 0..2 {
                if !try_advance() {
                    break;
                }
            }
        }
        let epoch = EPOCH.load(Ordering::Relaxed);
        while r.batches.front().is_some_and(|(e, _)| epoch >= e + 2) {
            if let Some((_, items)) = r.batches.pop_front() {
                r.unchecked += items.len();
                r.held.extend(items);
            }
        }
        // Check against the hazards every few calls, or at once when much waits: a scan per
        // call would cost every registry write (and every circuit made over the cap, freed
        // when its call ends) a read of every slot.
        let mut free = Vec::new();
        if (due && !r.held.is_empty()) || r.unchecked >= CHECK_AT {
            let hazards = hazards();
            let (kept, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut r.held)
                .into_iter()
                .partition(|d| hazards.binary_search(&d.ptr.addr()).is_ok());
            r.held = kept;
            r.unchecked = 0;
            free = gone;
        }
        if due {
            r.idle = 0;
        }
        PENDING.store(
            !r.batches.is_empty() || !r.held.is_empty(),
            Ordering::Relaxed,
        );
        free
    };
    let freed = !free.is_empty();
    free_all(free);
    freed
}

/// Frees `items` outside every lock (freeing a circuit may run user code: a listener's or a
/// clock's drop). A free that panics is contained, after the panic hook has reported it, and
/// the others are still freed: two panicking drops in one batch would otherwise abort the
/// process, and the caller (any registry write) has nothing to do with them. The panic's
/// payload is dropped inside a catch too: it is user data, and its own drop may panic.
fn free_all(items: Vec<Deferred>) {
    for d in items {
        // SAFETY: past every pin and under no hazard (see the module docs); each item is
        // freed once, as `items` is consumed.
        let free = || unsafe { (d.free)(d.ptr) };
        // Under loom a free's panic is the model's failure (a free racing a use, see
        // `crate::sync::Liveness`): it must reach the model, not be contained here.
        #[cfg(loom)]
        free();
        #[cfg(not(loom))]
        if let Err(payload) = catch_unwind(AssertUnwindSafe(free)) {
            drop_payload(payload);
        }
    }
}

/// Every object under a hazard, sorted.
fn hazards() -> Vec<usize> {
    let chunks = lock(&CHUNKS);
    let mut out = Vec::new();
    for chunk in &chunks.all {
        for slot in &chunk.slots {
            let v = slot.load(Ordering::Acquire);
            if v != FREE && v & 1 == 0 {
                out.push(v);
            }
        }
    }
    out.sort_unstable();
    out
}

/// One advance, if no pin of the previous epoch is left. Called with `RETIRED` locked, which
/// serialises advances.
fn try_advance() -> bool {
    let e = EPOCH.load(Ordering::Relaxed);
    if !barrier::heavy() {
        // Pins may have relied on a barrier that did not happen: advancing now could free what
        // a pin still reads. Keep everything (memory held, never freed early).
        return false;
    }
    let current = pin_value(e);
    let chunks = lock(&CHUNKS);
    for chunk in &chunks.all {
        for slot in &chunk.slots {
            let v = slot.load(Ordering::Acquire);
            if v & 1 == 1 && v != current {
                return false;
            }
        }
    }
    EPOCH.store(e + 1, Ordering::Release);
    true
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};

    use super::*;

    /// A retired object is "freed" by marking it dead (and leaking it), so a reader that sees
    /// a dead object it loaded under a pin or hazard proves the protocol wrong without
    /// undefined behaviour. Aligned so its address never reads as a pin.
    #[repr(align(8))]
    struct Obj {
        dead: AtomicBool,
    }

    unsafe fn mark_dead(p: *mut Obj) {
        // SAFETY: objects are leaked, never deallocated.
        unsafe { (*p).dead.store(true, Ordering::Relaxed) };
    }

    fn fresh() -> *mut Obj {
        Box::into_raw(Box::new(Obj {
            dead: AtomicBool::new(false),
        }))
    }

    fn dead(p: *mut Obj) -> bool {
        // SAFETY: leaked, so always readable.
        unsafe { &*p }.dead.load(Ordering::Relaxed)
    }

    fn collect_until(done: impl Fn() -> bool) {
        for _ in 0..1_000_000 {
            collect();
            if done() {
                return;
            }
            std::thread::yield_now();
        }
        panic!("the epoch never passed what was retired");
    }

    #[test]
    fn two_panicking_frees_in_one_batch_neither_abort_nor_leak_the_rest() {
        static FREED: AtomicUsize = AtomicUsize::new(0);
        static PANICKED: AtomicUsize = AtomicUsize::new(0);
        /// Whether freeing it panics, as a listener's or a clock's drop might when its circuit
        /// goes.
        struct Item(bool);
        unsafe fn free(p: *mut Item) {
            // SAFETY: from `Box::into_raw` below, freed once.
            let item = unsafe { Box::from_raw(p) };
            if item.0 {
                PANICKED.fetch_add(1, Ordering::Relaxed);
                panic!("a drop run by the collector panicked");
            }
            FREED.fetch_add(1, Ordering::Relaxed);
        }
        for panics in [false, true, false, true, false] {
            // SAFETY: never linked anywhere; `free` frees it once.
            unsafe { retire_unreachable(Box::into_raw(Box::new(Item(panics))), free) };
        }
        // Contained: `collect` returns normally (here or in another test's thread, which may
        // be the one that frees them), and the other three are freed.
        collect_until(|| {
            PANICKED.load(Ordering::Relaxed) == 2 && FREED.load(Ordering::Relaxed) == 3
        });
    }

    #[test]
    fn a_pin_keeps_what_it_could_see_until_released_on_another_thread() {
        let obj = fresh();
        let guard = pin();
        // SAFETY: unlinked (it never was linked); `mark_dead` leaks.
        unsafe { retire(obj, mark_dead) };
        for _ in 0..100 {
            collect();
            assert!(!dead(obj), "freed under a pin taken before it was retired");
        }
        // The lookup found it: the pin becomes a hazard on it, released elsewhere.
        let hazard = guard.protect(NonNull::new(obj).unwrap());
        for _ in 0..100 {
            collect();
            assert!(!dead(obj), "freed under a hazard");
        }
        std::thread::spawn(move || drop(hazard)).join().unwrap();
        collect_until(|| dead(obj));
    }

    #[test]
    fn a_hazard_held_forever_keeps_only_its_own_object() {
        let kept = fresh();
        let hazard = pin().protect(NonNull::new(kept).unwrap());
        // SAFETY: as above.
        unsafe { retire(kept, mark_dead) };
        let others: Vec<*mut Obj> = (0..1000).map(|_| fresh()).collect();
        for &o in &others {
            // SAFETY: as above.
            unsafe { retire(o, mark_dead) };
            collect();
        }
        collect_until(|| others.iter().all(|&o| dead(o)));
        assert!(!dead(kept));
        std::mem::forget(hazard);
    }

    #[test]
    fn readers_moving_hazards_across_threads_never_see_a_freed_object() {
        let current = Arc::new(AtomicPtr::new(fresh()));
        let done = Arc::new(AtomicBool::new(false));
        // Readers pin, load, turn the pin into a hazard and hand it with the object to a second
        // thread, which checks it again and releases it there (as a future woken on another
        // worker drops its permit).
        let (tx, rx) = mpsc::channel::<(usize, Hazard)>();
        let releaser = std::thread::spawn(move || {
            for (p, hazard) in rx {
                assert!(!dead(p as *mut Obj), "freed under a hazard");
                drop(hazard);
            }
        });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (current, done, tx) = (current.clone(), done.clone(), tx.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !done.load(Ordering::Relaxed) {
                        let guard = pin();
                        let p = current.load(Ordering::Acquire);
                        assert!(!dead(p), "freed while pinned");
                        if n % 8 == 0 {
                            let hazard = guard.protect(NonNull::new(p).unwrap());
                            tx.send((p as usize, hazard)).unwrap();
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        drop(tx);
        for _ in 0..20_000 {
            let old = current.swap(fresh(), Ordering::AcqRel);
            // SAFETY: unlinked by the swap; `mark_dead` leaks.
            unsafe { retire(old, mark_dead) };
            collect();
        }
        done.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        releaser.join().unwrap();
    }
}

/// loom models of the real code above (`RUSTFLAGS="--cfg loom" cargo test -p breaker-core --lib
/// --release epoch`): membarrier is not modelled, so the `SeqCst`-fence fallback is what runs.
#[cfg(all(test, loom))]
pub(crate) mod loom_models {
    use loom::sync::atomic::{AtomicPtr, Ordering};
    use loom::sync::Arc;
    use loom::thread;

    use super::*;
    use crate::sync::Liveness;

    /// Freeing marks the object dead (and leaks it) through a loom cell, so a reader that sees
    /// it dead, or a free that does not happen after a reader's use, fails the model. Aligned
    /// so its address never reads as a pin.
    #[repr(align(8))]
    struct Obj {
        dead: Liveness,
    }

    fn fresh() -> *mut Obj {
        Box::into_raw(Box::new(Obj {
            dead: Liveness::new(),
        }))
    }

    unsafe fn mark_dead(p: *mut Obj) {
        // SAFETY: leaked, never deallocated.
        unsafe { &*p }.dead.free("an object");
    }

    #[track_caller]
    fn assert_alive(p: *mut Obj) {
        // SAFETY: leaked, so always readable.
        unsafe { &*p }.dead.check("an object");
    }

    pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(2);
        }
        builder.check(f);
    }

    /// `reader` runs on its own thread with a pin and the object it loaded under it, while this
    /// thread unlinks that object, retires it and collects as hard as it can.
    fn race_a_retire(reader: impl Fn(Guard, *mut Obj) + Send + Sync + 'static) {
        let reader = std::sync::Arc::new(reader);
        model(move || {
            let current = Arc::new(AtomicPtr::new(fresh()));
            let handle = {
                let (current, reader) = (current.clone(), reader.clone());
                thread::spawn(move || {
                    let guard = pin();
                    let p = current.load(Ordering::Acquire);
                    reader(guard, p);
                })
            };
            let old = current.swap(fresh(), Ordering::AcqRel);
            // SAFETY: unlinked by the swap; `mark_dead` leaks.
            unsafe { retire(old, mark_dead) };
            collect_now();
            collect_now();
            handle.join().unwrap();
        });
    }

    /// A writer unlinks and retires the object a reader may have loaded under its pin, and
    /// collects as hard as it can: never freed while the pin lives.
    #[test]
    fn a_retired_object_is_never_freed_under_a_pin_that_could_see_it() {
        race_a_retire(|guard, p| {
            assert_alive(p);
            drop(guard);
        });
    }

    /// A reader turns its pin into a hazard on what it found and releases it on another
    /// thread, while the writer collects: the object outlives the hazard, and only it.
    #[test]
    fn a_hazard_released_on_another_thread_keeps_its_object_until_then() {
        race_a_retire(|guard, p| {
            let hazard = guard.protect(NonNull::new(p).unwrap());
            let p = p as usize;
            thread::spawn(move || {
                assert_alive(p as *mut Obj);
                drop(hazard);
            })
            .join()
            .unwrap();
        });
    }
}
