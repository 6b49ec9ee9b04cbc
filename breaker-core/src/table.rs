//! The table that holds one provider's circuits in a registry, keyed by tenant.
//!
//! Built for this one job because the general-purpose concurrent maps cost a hop and about
//! forty bytes a key more than needed (measured: papaya 62, dashmap 52, scc 55 bytes an entry
//! with 1M keys): at tenant scale every hop is a cache and TLB miss, and memory is the budget.
//!
//! - Slots hold the circuit itself (a handle is one pointer), so a lookup goes table slot →
//!   circuit, and the tenant name it compares sits in the circuit's first cache line.
//! - Slots come in groups of seven with one word of tags (a byte a slot: empty, deleted, or
//!   seven bits of the hash), one cache line a group: a lookup reads one line of the table,
//!   compares tags eight bytes at a time and follows only pointers whose tag matches. Groups
//!   fill to 7/8 before the table grows, about 17 bytes a circuit at a million circuits.
//! - Reads take no lock and write nothing shared: a seize guard (one thread-local store) keeps
//!   whatever they load alive. Writes (a new tenant, a removal, an idle sweep) are rare and
//!   take the table's mutex; they publish with release stores, and what they unlink (a circuit,
//!   an outgrown array) is retired to the guard's collector and freed once no reader can see
//!   it.
//! - A slot is never emptied in place, only marked deleted, so a reader's probe never stops
//!   early at a slot that was full when the key it looks for was inserted behind it. Deleted
//!   slots are reused by inserts and cleared when the table is rebuilt.

use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use seize::{Collector, Guard, LocalGuard};

use crate::circuit::{Circuit, Inner};

const SLOTS: usize = 7;
const EMPTY: u8 = 0;
const DELETED: u8 = 1;
/// The low bit of each slot's tag byte (bytes 0..7; byte 7 is unused and stays 0).
const LOW: u64 = 0x0001_0101_0101_0101;
/// The high bit of each slot's tag byte; set for full slots only.
const HIGH: u64 = 0x0080_8080_8080_8080;

/// One cache line: seven slots and their tags.
#[repr(C, align(64))]
struct Group {
    tags: AtomicU64,
    slots: [AtomicPtr<Inner>; SLOTS],
}

struct Array {
    mask: usize,
    groups: Box<[Group]>,
}

impl Array {
    fn new(groups: usize) -> Box<Array> {
        debug_assert!(groups.is_power_of_two());
        Box::new(Array {
            mask: groups - 1,
            groups: (0..groups)
                .map(|_| Group {
                    tags: AtomicU64::new(0),
                    slots: Default::default(),
                })
                .collect(),
        })
    }

    /// Full and deleted slots it may hold before it must be rebuilt; leaves at least one empty
    /// slot, so every probe ends.
    fn max_used(&self) -> usize {
        max_used(self.groups.len())
    }

    /// Every full slot: (group, slot index, circuit).
    fn full(&self) -> impl Iterator<Item = (&Group, usize, *mut Inner)> + '_ {
        self.groups.iter().flat_map(|g| {
            let tags = g.tags.load(Ordering::Acquire);
            (0..SLOTS).filter_map(move |i| {
                let p = g.slots[i].load(Ordering::Acquire);
                (tag_at(tags, i) & 0x80 != 0 && !p.is_null()).then_some((g, i, p))
            })
        })
    }
}

fn max_used(groups: usize) -> usize {
    groups * SLOTS * 7 / 8
}

fn tag_at(tags: u64, i: usize) -> u8 {
    (tags >> (8 * i)) as u8
}

fn with_tag(tags: u64, i: usize, tag: u8) -> u64 {
    (tags & !(0xff << (8 * i))) | (u64::from(tag) << (8 * i))
}

/// A bit set in byte i for every slot i whose tag may equal `tag` (a false positive is possible
/// right above a true match; callers compare the tenant anyway).
#[inline]
fn matching(tags: u64, tag: u8) -> u64 {
    let x = tags ^ (LOW * u64::from(tag));
    x.wrapping_sub(LOW) & !x & HIGH
}

/// Whether any slot of the group is empty (exact as a yes/no: a false positive needs a true
/// empty slot below it).
#[inline]
fn has_empty(tags: u64) -> bool {
    tags.wrapping_sub(LOW) & !tags & HIGH != 0
}

/// Counts that only writers, under the table's mutex, read or change.
struct Counts {
    live: usize,
    deleted: usize,
}

/// One provider's circuits, keyed by tenant.
pub(crate) struct Circuits {
    array: AtomicPtr<Array>,
    writer: Mutex<Counts>,
    len: AtomicUsize,
    hasher: foldhash::fast::RandomState,
    collector: Collector,
}

/// A circuit found in a table, valid while the guard it was found under lives. Derefs to the
/// circuit; clone it (`Circuit::clone(&found)`) to keep it longer.
pub(crate) struct Found<'g> {
    circuit: ManuallyDrop<Circuit>,
    _guard: PhantomData<&'g ()>,
}

impl Found<'_> {
    /// # Safety
    /// `p` is a slot's circuit, loaded under a guard that outlives the result.
    unsafe fn new(p: *mut Inner) -> Self {
        Found {
            // SAFETY: the table holds one strong count of `p` until the guard's collector
            // reclaims it, which waits for the guard; `ManuallyDrop` never gives that count up.
            circuit: ManuallyDrop::new(unsafe { Circuit::from_raw(p) }),
            _guard: PhantomData,
        }
    }

    /// The `Arc<Circuit>` the registry's API hands out for this circuit (made on the first
    /// request and kept with the circuit).
    pub(crate) fn shared(&self) -> std::sync::Arc<Circuit> {
        // SAFETY: found in a table under a live guard (the contract of `Circuit::shared`).
        unsafe { self.circuit.shared() }
    }
}

impl Deref for Found<'_> {
    type Target = Circuit;
    fn deref(&self) -> &Circuit {
        &self.circuit
    }
}

/// Gives back the table's strong count of a circuit it unlinked, once no reader can see it.
///
/// # Safety
/// `p` came from `Circuit::into_raw` and is unreachable from the table.
unsafe fn reclaim(p: *mut Inner, _: &Collector) {
    // SAFETY: the table's own count, given back exactly once.
    release(unsafe { Circuit::from_raw(p) });
}

/// Circuits unlinked together by one sweep, retired as one object (retiring costs a
/// process-wide barrier, so a sweep pays it once).
struct Unlinked(Vec<*mut Inner>);

/// # Safety
/// As [`reclaim`], for every circuit of a boxed [`Unlinked`].
unsafe fn reclaim_all(p: *mut Unlinked, _: &Collector) {
    // SAFETY: made by `Box::into_raw` in `evict`, reclaimed once.
    let unlinked = unsafe { Box::from_raw(p) };
    for &c in &unlinked.0 {
        // SAFETY: as in `reclaim`.
        release(unsafe { Circuit::from_raw(c) });
    }
}

fn release(circuit: Circuit) {
    // The handle the registry hands out points back at the circuit: drop it too, or the two
    // would keep each other alive.
    drop(circuit.take_shared());
}

impl Circuits {
    pub(crate) fn new(hasher: foldhash::fast::RandomState) -> Self {
        Circuits {
            array: AtomicPtr::new(Box::into_raw(Array::new(1))),
            writer: Mutex::new(Counts {
                live: 0,
                deleted: 0,
            }),
            len: AtomicUsize::new(0),
            hasher,
            // Retire at once rather than in batches of 32: writers are rare, and an outgrown
            // array must not wait for 31 more retirements before it can be freed (a million
            // circuits' table is 16 MiB).
            collector: Collector::new().batch_size(1),
        }
    }

    /// A guard to look circuits up under.
    #[inline]
    pub(crate) fn guard(&self) -> LocalGuard<'_> {
        self.collector.enter()
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// The circuit of `tenant`, if stored.
    #[inline]
    pub(crate) fn get<'g>(&'g self, tenant: &str, guard: &'g LocalGuard<'_>) -> Option<Found<'g>> {
        let hash = self.hasher.hash_one(tenant);
        // SAFETY: the array pointer is never null, and an outgrown array is retired, so it
        // lives as long as the guard.
        let array = unsafe { &*guard.protect(&self.array, Ordering::Acquire) };
        let tag = tag_of(hash);
        let mut g = hash as usize & array.mask;
        loop {
            // `mask` is `groups.len() - 1`, so the index is in bounds.
            let group = &array.groups[g];
            let tags = group.tags.load(Ordering::Acquire);
            let mut m = matching(tags, tag);
            while m != 0 {
                let i = (m.trailing_zeros() / 8) as usize;
                let p = guard.protect(&group.slots[i], Ordering::Acquire);
                if !p.is_null() {
                    // SAFETY: a slot's circuit, loaded under `guard`.
                    let found = unsafe { Found::new(p) };
                    if found.tenant() == tenant {
                        return Some(found);
                    }
                }
                m &= m - 1;
            }
            if has_empty(tags) {
                return None;
            }
            g = (g + 1) & array.mask;
        }
    }

    /// The circuit of `tenant`, inserting `make()` if there is none (`make` runs under the
    /// table's mutex, at most once).
    pub(crate) fn get_or_insert<'g>(
        &'g self,
        tenant: &str,
        make: impl FnOnce() -> Circuit,
        guard: &'g LocalGuard<'_>,
    ) -> Found<'g> {
        let mut counts = self.lock();
        // Writers are serialised, so this look is exact.
        if let Some(found) = self.get(tenant, guard) {
            return found;
        }
        if counts.live + counts.deleted >= self.current().max_used() {
            self.rebuild(&mut counts);
        }
        let circuit = make();
        debug_assert_eq!(circuit.tenant(), tenant);
        let p = circuit.into_raw();
        let hash = self.hasher.hash_one(tenant);
        let array = self.current();
        let mut g = hash as usize & array.mask;
        loop {
            let group = &array.groups[g];
            let tags = group.tags.load(Ordering::Relaxed);
            if let Some(i) = (0..SLOTS).find(|&i| tag_at(tags, i) & 0x80 == 0) {
                if tag_at(tags, i) == DELETED {
                    counts.deleted -= 1;
                }
                counts.live += 1;
                // The circuit first, then the tag that makes readers look at it.
                group.slots[i].store(p, Ordering::Release);
                group
                    .tags
                    .store(with_tag(tags, i, tag_of(hash)), Ordering::Release);
                self.len.store(counts.live, Ordering::Relaxed);
                // SAFETY: just stored; removals need the mutex this thread holds, and then wait
                // for `guard`.
                return unsafe { Found::new(p) };
            }
            g = (g + 1) & array.mask;
        }
    }

    /// Unlinks the circuit of `tenant`; says whether there was one.
    pub(crate) fn remove(&self, tenant: &str) -> bool {
        let mut counts = self.lock();
        let array = self.current();
        let hash = self.hasher.hash_one(tenant);
        let tag = tag_of(hash);
        let mut g = hash as usize & array.mask;
        loop {
            let group = &array.groups[g];
            let tags = group.tags.load(Ordering::Relaxed);
            for i in 0..SLOTS {
                let p = group.slots[i].load(Ordering::Relaxed);
                if tag_at(tags, i) == tag
                    && !p.is_null()
                    // SAFETY: a slot's circuit, under the mutex (no one else unlinks it).
                    && unsafe { Found::new(p) }.tenant() == tenant
                {
                    self.unlink(&mut counts, group, i);
                    // SAFETY: unlinked: unreachable for readers that start from now on;
                    // `reclaim` gives back the table's count once those that started before
                    // are done.
                    unsafe { self.collector.retire(p, reclaim) };
                    return true;
                }
            }
            if has_empty(tags) {
                return false;
            }
            g = (g + 1) & array.mask;
        }
    }

    /// Unlinks every circuit for which `evict` says so; returns how many.
    pub(crate) fn evict(&self, mut evict: impl FnMut(&Circuit) -> bool) -> usize {
        let mut counts = self.lock();
        let array = self.current();
        let mut unlinked = Vec::new();
        for (group, i, p) in array.full() {
            // SAFETY: a slot's circuit, under the mutex (no one else unlinks it).
            if evict(&*unsafe { Found::new(p) }) {
                self.unlink(&mut counts, group, i);
                unlinked.push(p);
            }
        }
        let evicted = unlinked.len();
        if evicted > 0 {
            let unlinked = Box::into_raw(Box::new(Unlinked(unlinked)));
            // SAFETY: as in `remove`, for each of them.
            unsafe { self.collector.retire(unlinked, reclaim_all) };
        }
        evicted
    }

    /// Calls `f` with every stored circuit; circuits added or removed meanwhile may or may not
    /// be seen.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Circuit)) {
        let guard = self.guard();
        // SAFETY: as in `get`.
        let array = unsafe { &*guard.protect(&self.array, Ordering::Acquire) };
        for (_, _, p) in array.full() {
            // SAFETY: a slot's circuit, loaded under `guard`.
            f(&*unsafe { Found::new(p) });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts are updated after the slot they describe, by code that cannot panic.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current array, for a writer (holding the mutex, so no one else replaces it).
    fn current(&self) -> &Array {
        // SAFETY: only writers replace the array, and they hold the mutex the caller holds; a
        // replaced array is retired, not freed at once.
        unsafe { &*self.array.load(Ordering::Acquire) }
    }

    /// Marks slot `i` of `group` deleted; the caller retires its circuit.
    fn unlink(&self, counts: &mut Counts, group: &Group, i: usize) {
        let tags = group.tags.load(Ordering::Relaxed);
        group
            .tags
            .store(with_tag(tags, i, DELETED), Ordering::Release);
        group.slots[i].store(ptr::null_mut(), Ordering::Release);
        counts.live -= 1;
        counts.deleted += 1;
        self.len.store(counts.live, Ordering::Relaxed);
    }

    /// Moves every circuit into a fresh array sized for the live ones (grown, kept or shrunk),
    /// which drops the deleted marks.
    fn rebuild(&self, counts: &mut Counts) {
        let old = self.current();
        let mut groups = 1;
        while max_used(groups) <= counts.live + counts.live / 2 {
            groups *= 2;
        }
        let fresh = Array::new(groups);
        for (_, _, p) in old.full() {
            // SAFETY: a slot's circuit, under the mutex.
            let hash = self.hasher.hash_one(unsafe { Found::new(p) }.tenant());
            let mut g = hash as usize & fresh.mask;
            loop {
                let group = &fresh.groups[g];
                let tags = group.tags.load(Ordering::Relaxed);
                if let Some(i) = (0..SLOTS).find(|&i| tag_at(tags, i) == EMPTY) {
                    group.slots[i].store(p, Ordering::Relaxed);
                    group
                        .tags
                        .store(with_tag(tags, i, tag_of(hash)), Ordering::Relaxed);
                    break;
                }
                g = (g + 1) & fresh.mask;
            }
        }
        counts.deleted = 0;
        // Publishing with release makes the fresh array's contents visible with it.
        let old = self.array.swap(Box::into_raw(fresh), Ordering::AcqRel);
        // SAFETY: unreachable for readers that start from now on; only the array is freed (its
        // slots are plain pointers, the circuits moved to the fresh array).
        unsafe { self.collector.retire(old, seize::reclaim::boxed) };
    }
}

fn tag_of(hash: u64) -> u8 {
    0x80 | (hash >> 57) as u8
}

impl Drop for Circuits {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader or writer is left; the array was made by `Box`.
        let array = unsafe { Box::from_raw(*self.array.get_mut()) };
        for (_, _, p) in array.full() {
            // SAFETY: the table's own count of each stored circuit, given back once.
            release(unsafe { Circuit::from_raw(p) });
        }
        // The collector, dropped next, frees what was retired.
    }
}
