//! Deferred freeing of what the registry unlinks, with pins that cost two thread-local stores and
//! that a permit can carry across `.await` and threads.
//!
//! A registry lookup and the permit it hands out must keep the circuit's memory alive without a
//! shared write: a reference count is an atomic read-modify-write on the circuit's cache line
//! per call (tens of nanoseconds, and contention when threads share a tenant). seize, which the
//! table first used, guards a lookup well but its guards are tied to a thread, and a permit moves
//! with its future. So this is epoch-based reclamation, with three choices made for permits:
//!
//! - A pin adds one to a counter owned by the pinning thread, for the parity of the global
//!   epoch; unpinning subtracts one from a counter of the thread that unpins, which may be
//!   another one (a future woken on another worker). Each counter is written by its owner only,
//!   with plain load and store: no read-modify-write and no shared cache line on the hot path.
//!   Per thread the counts drift; summed over all threads they are the pins outstanding.
//! - To advance the epoch from `e` to `e + 1`, the advancer sums the counters of the other
//!   parity (the pins of `e - 1`) over all threads, and advances only at zero. A pin validates
//!   its epoch after counting itself (it re-reads the epoch and retries on a change), so once the
//!   advancer's barrier for the next advance has run, no pin of `e - 1` can still be accepted:
//!   one that read `e - 1` before the epoch moved is counted by then, and is seen by the sum.
//! - Something unlinked while the epoch is `r` is freed once the epoch is `r + 2`: the two
//!   advances saw every pin of `r - 1` and of `r` released, and a pin of `r + 1` or later reads
//!   the table after the unlink.
//!
//! The ordering between a pin's count and the advancer's sum is the classic store-then-load
//! (Dekker) pattern. On Linux the pin side is a compiler fence and the advancer pays for both
//! with `membarrier(PRIVATE_EXPEDITED)`, the asymmetric barrier seize and the Linux kernel's
//! RCU use; elsewhere, or where registering is refused, both sides use a `SeqCst` fence. Should
//! the barrier ever fail after registering (pins then rely on it), the advancer stops advancing:
//! nothing is freed from then on, rather than something freed early.
//!
//! A permit that is never dropped (`mem::forget`), or one held for a very long call, keeps its
//! epoch pinned, and until it goes nothing unlinked anywhere in the process is freed: memory
//! grows, nothing becomes unsafe. Frees run in `collect`, called after the registry's writes;
//! one that panics (user code in a drop) reaches that caller, and the rest of its batch is
//! still freed.

use std::cell::Cell;
use std::sync::atomic::{compiler_fence, fence, AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Pin counts of one thread (or of none, for [`FALLBACK`]), one per epoch parity. Padded to its
/// own cache lines so threads never share one.
#[repr(align(128))]
struct Counts {
    pins: [AtomicI64; 2],
}

impl Counts {
    const fn new() -> Self {
        Counts {
            pins: [AtomicI64::new(0), AtomicI64::new(0)],
        }
    }

    /// Adds `d` to the count of `parity`; only the owning thread calls it, so a plain load and
    /// store suffice (`Release`: what the pin protected happens before an advancer sees the
    /// count drop).
    #[inline]
    fn add(&self, parity: usize, d: i64) {
        let c = &self.pins[parity];
        c.store(c.load(Ordering::Relaxed) + d, Ordering::Release);
    }
}

/// Counts of every thread that ever pinned; leaked, reused by later threads when one exits.
struct Threads {
    all: Vec<&'static Counts>,
    free: Vec<&'static Counts>,
}

static THREADS: Mutex<Threads> = Mutex::new(Threads {
    all: Vec::new(),
    free: Vec::new(),
});

/// For pins and unpins made while the thread's own counts are gone (in another thread-local's
/// destructor at thread exit): shared, so changed with read-modify-writes.
static FALLBACK: Counts = Counts::new();

/// Unlinked objects waiting for the epoch to pass them.
struct Retired {
    items: Vec<(u64, Deferred)>,
}

static RETIRED: Mutex<Retired> = Mutex::new(Retired { items: Vec::new() });

/// Whether `RETIRED` holds anything, so that `collect` costs one load when it does not.
static PENDING: AtomicBool = AtomicBool::new(false);

struct Deferred {
    ptr: *mut (),
    free: unsafe fn(*mut ()),
}

// SAFETY: what is retired here is `Send` (circuits, tables' arrays): `retire` requires it.
unsafe impl Send for Deferred {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves its data consistent at each step.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's counts, taken on its first pin and given back when it exits.
struct Local {
    counts: Cell<Option<&'static Counts>>,
}

impl Local {
    #[inline]
    fn counts(&self) -> &'static Counts {
        match self.counts.get() {
            Some(c) => c,
            None => self.register(),
        }
    }

    #[cold]
    fn register(&self) -> &'static Counts {
        barrier::detect();
        let mut threads = lock(&THREADS);
        let counts = threads.free.pop().unwrap_or_else(|| {
            let c: &'static Counts = Box::leak(Box::new(Counts::new()));
            threads.all.push(c);
            c
        });
        self.counts.set(Some(counts));
        counts
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // The counts stay as they are (permits pinned here may be released elsewhere, and the
        // sum must stay right); the next thread to register continues them.
        if let Some(c) = self.counts.get() {
            lock(&THREADS).free.push(c);
        }
    }
}

thread_local! {
    static LOCAL: Local = const { Local { counts: Cell::new(None) } };
}

/// A pin of the current epoch: while it lives, nothing that was reachable when it was taken is
/// freed. Dropping it unpins; [`into_parity`](Guard::into_parity) hands it to a permit instead.
pub(crate) struct Guard {
    parity: u8,
}

impl Guard {
    /// Gives up the guard without unpinning; the caller unpins later with [`unpin`].
    #[inline]
    pub(crate) fn into_parity(self) -> u8 {
        let parity = self.parity;
        std::mem::forget(self);
        parity
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        unpin(self.parity);
    }
}

/// Pins the current epoch.
#[inline]
pub(crate) fn pin() -> Guard {
    let pinned = LOCAL.try_with(|local| {
        let counts = local.counts();
        loop {
            let e = EPOCH.load(Ordering::Relaxed);
            let parity = (e & 1) as usize;
            counts.add(parity, 1);
            barrier::light();
            // Acquire: pairs with the advance that stored this epoch, so this pin sees
            // everything unlinked before it.
            if EPOCH.load(Ordering::Acquire) == e {
                return parity as u8;
            }
            counts.add(parity, -1);
        }
    });
    let parity = pinned.unwrap_or_else(|_| pin_shared());
    Guard { parity }
}

#[cold]
fn pin_shared() -> u8 {
    loop {
        let e = EPOCH.load(Ordering::Relaxed);
        let parity = (e & 1) as usize;
        FALLBACK.pins[parity].fetch_add(1, Ordering::SeqCst);
        if EPOCH.load(Ordering::SeqCst) == e {
            return parity as u8;
        }
        FALLBACK.pins[parity].fetch_sub(1, Ordering::Release);
    }
}

/// Releases a pin of `parity`, from any thread.
#[inline]
pub(crate) fn unpin(parity: u8) {
    let parity = usize::from(parity & 1);
    if LOCAL
        .try_with(|local| local.counts().add(parity, -1))
        .is_err()
    {
        FALLBACK.pins[parity].fetch_sub(1, Ordering::Release);
    }
}

/// Frees `ptr` with `free` once no pin taken before this call is alive.
///
/// # Safety
/// `ptr` is unreachable for pins taken after this call (unlinked before it), `free(ptr)` is
/// sound once no pin can reach it, and what it points to is `Send`.
pub(crate) unsafe fn retire<T: Send>(ptr: *mut T, free: unsafe fn(*mut T)) {
    let mut retired = lock(&RETIRED);
    // Read under the lock that advances take, so an advance past this epoch happens after
    // the unlink and a pin that sees the advanced epoch sees the unlink.
    let epoch = EPOCH.load(Ordering::Acquire);
    retired.items.push((
        epoch,
        Deferred {
            ptr: ptr.cast(),
            // SAFETY: `fn(*mut T)` and `fn(*mut ())` have the same ABI for a sized `T`.
            free: unsafe { std::mem::transmute::<unsafe fn(*mut T), unsafe fn(*mut ())>(free) },
        },
    ));
    PENDING.store(true, Ordering::Relaxed);
}

/// Advances the epoch as far as the pins allow (at most twice) and frees what it passed.
/// The registry calls it after its rare writes (a new circuit, a removal, a sweep).
pub(crate) fn collect() {
    if !PENDING.load(Ordering::Relaxed) {
        return;
    }
    let ready = {
        let mut retired = lock(&RETIRED);
        for _ in 0..2 {
            if !try_advance() {
                break;
            }
        }
        let epoch = EPOCH.load(Ordering::Relaxed);
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut retired.items)
            .into_iter()
            .partition(|(r, _)| epoch >= r + 2);
        retired.items = waiting;
        PENDING.store(!retired.items.is_empty(), Ordering::Relaxed);
        ready
    };
    // Outside the lock: freeing a circuit may run user code (a listener's or a clock's drop).
    // If one of those panics, the guard still frees the rest of the batch while unwinding.
    let mut batch = Batch(ready.into_iter());
    batch.free_all();
}

/// Items whose epoch has passed, freed in order; dropping it frees whatever is left, so a panic
/// in one free (user code in a drop) leaks nothing else.
struct Batch(std::vec::IntoIter<(u64, Deferred)>);

impl Batch {
    fn free_all(&mut self) {
        for (_, d) in self.0.by_ref() {
            // SAFETY: the epoch passed it twice since it was unlinked (see the module docs),
            // and `by_ref` hands each item out once.
            unsafe { (d.free)(d.ptr) };
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.free_all();
    }
}

/// One advance, if no pin of the previous epoch is left. Called with `RETIRED` locked, which
/// serialises advances.
fn try_advance() -> bool {
    let e = EPOCH.load(Ordering::Relaxed);
    let old = ((e + 1) & 1) as usize;
    if !barrier::heavy() {
        // Pins may have relied on a barrier that did not happen: advancing now could free what
        // a pin still reads. Keep everything (memory held, never freed early).
        return false;
    }
    let mut sum = FALLBACK.pins[old].load(Ordering::Acquire);
    for c in &lock(&THREADS).all {
        sum += c.pins[old].load(Ordering::Acquire);
    }
    if sum != 0 {
        return false;
    }
    EPOCH.store(e + 1, Ordering::Release);
    true
}

/// The store-load ordering between a pin and an advance.
mod barrier {
    use super::*;

    /// Whether `membarrier(PRIVATE_EXPEDITED)` is registered for this process; decided once,
    /// before the first pin (every pin registers its thread first).
    static ASYMMETRIC: AtomicBool = AtomicBool::new(false);
    static DETECT: Once = Once::new();

    #[cfg(any(target_os = "linux", target_os = "android"))]
    mod sys {
        const QUERY: libc::c_int = 0;
        const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
        const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

        fn membarrier(cmd: libc::c_int) -> libc::c_long {
            // SAFETY: membarrier takes two integers and touches no memory of ours.
            unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_int) }
        }

        pub(super) fn register() -> bool {
            let supported = membarrier(QUERY);
            supported >= 0
                && supported & libc::c_long::from(PRIVATE_EXPEDITED) != 0
                && membarrier(REGISTER_PRIVATE_EXPEDITED) == 0
        }

        pub(super) fn barrier() -> bool {
            membarrier(PRIVATE_EXPEDITED) == 0
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    mod sys {
        pub(super) fn register() -> bool {
            false
        }
        pub(super) fn barrier() -> bool {
            false
        }
    }

    pub(super) fn detect() {
        DETECT.call_once(|| ASYMMETRIC.store(sys::register(), Ordering::Relaxed));
    }

    #[inline]
    pub(super) fn light() {
        if ASYMMETRIC.load(Ordering::Relaxed) {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    /// The advancer's side; `false` if it could not be made, and then the advancer must not
    /// advance. With membarrier registered, pins fence only the compiler and rely on the barrier
    /// here: a fence on this side alone does not order their stores before our loads. The
    /// kernel keeps a registration, so a refusal should never happen (a sandbox could refuse);
    /// it then stops reclamation rather than make it unsound.
    #[must_use]
    pub(super) fn heavy() -> bool {
        detect();
        if ASYMMETRIC.load(Ordering::Relaxed) {
            return sys::barrier() || refused();
        }
        fence(Ordering::SeqCst);
        true
    }

    #[cold]
    fn refused() -> bool {
        static WARNED: Once = Once::new();
        WARNED.call_once(|| {
            eprintln!(
                "breaker: membarrier(PRIVATE_EXPEDITED) failed after registering; evicted \
                 circuits will no longer be freed in this process"
            )
        });
        false
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicPtr, AtomicUsize};
    use std::sync::{mpsc, Arc};

    use super::*;

    /// A retired object is "freed" by marking it dead (and leaking it), so a reader that sees
    /// a dead object it loaded under a pin proves the protocol wrong without undefined
    /// behaviour.
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
    fn a_panicking_free_does_not_leak_the_rest_of_its_batch() {
        static FREED: AtomicUsize = AtomicUsize::new(0);
        static PANICKED: AtomicBool = AtomicBool::new(false);
        /// Whether freeing it panics, as a listener's drop might when its circuit goes.
        struct Item(bool);
        unsafe fn free(p: *mut Item) {
            // SAFETY: from `Box::into_raw` below, freed once.
            let item = unsafe { Box::from_raw(p) };
            if item.0 {
                PANICKED.store(true, Ordering::Relaxed);
                panic!("a drop run by the collector panicked");
            }
            FREED.fetch_add(1, Ordering::Relaxed);
        }
        for panics in [false, true, false] {
            // SAFETY: never linked anywhere; `free` frees it once.
            unsafe { retire(Box::into_raw(Box::new(Item(panics))), free) };
        }
        for _ in 0..100_000 {
            // The panic reaches whoever collects; the other two are freed regardless.
            let _ = std::panic::catch_unwind(collect);
            if PANICKED.load(Ordering::Relaxed) && FREED.load(Ordering::Relaxed) == 2 {
                return;
            }
            std::thread::yield_now();
        }
        panic!(
            "freed {} of 2 (panicked: {})",
            FREED.load(Ordering::Relaxed),
            PANICKED.load(Ordering::Relaxed)
        );
    }

    #[test]
    fn a_pin_keeps_what_it_could_see_until_released_on_another_thread() {
        let obj = fresh();
        let guard = pin();
        // SAFETY: unlinked (it never was linked); `mark_dead` leaks.
        unsafe { retire(obj, mark_dead) };
        // SAFETY: leaked, so always readable.
        let dead = || unsafe { &*obj }.dead.load(Ordering::Relaxed);
        for _ in 0..100 {
            collect();
            assert!(!dead(), "freed under a pin taken before it was retired");
        }
        let parity = guard.into_parity();
        std::thread::spawn(move || unpin(parity)).join().unwrap();
        collect_until(dead);
    }

    #[test]
    fn readers_moving_pins_across_threads_never_see_a_freed_object() {
        let current = Arc::new(AtomicPtr::new(fresh()));
        let done = Arc::new(AtomicBool::new(false));
        // Readers pin, load, and hand the pin with the object to a second thread, which checks
        // it again and unpins there (as a future woken on another worker drops its permit).
        let (tx, rx) = mpsc::channel::<(usize, u8)>();
        let releaser = std::thread::spawn(move || {
            for (p, parity) in rx {
                // SAFETY: leaked objects stay readable.
                let obj = unsafe { &*(p as *const Obj) };
                assert!(!obj.dead.load(Ordering::Relaxed), "freed while pinned");
                unpin(parity);
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
                        // SAFETY: leaked objects stay readable.
                        let obj = unsafe { &*p };
                        assert!(!obj.dead.load(Ordering::Relaxed), "freed while pinned");
                        if n % 8 == 0 {
                            tx.send((p as usize, guard.into_parity())).unwrap();
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
