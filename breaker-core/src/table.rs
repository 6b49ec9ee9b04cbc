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
//! - Reads take no lock and write nothing shared: an epoch pin (`epoch.rs`: a store to a slot
//!   the thread owns) keeps whatever they load alive. Writes (a new tenant, a removal, an idle
//!   sweep) are rare and take the table's mutex; they publish with release stores, and what
//!   they unlink (a circuit, an outgrown array) is retired to the epoch and freed once no pin
//!   can see it and no permit's hazard is on it.
//! - A slot is never emptied in place, only marked deleted, so a reader's probe never stops
//!   early at a slot that was full when the key it looks for was inserted behind it. Deleted
//!   slots are reused by inserts and cleared when the table is rebuilt.

pub(crate) mod epoch;

use std::hash::{BuildHasher, Hasher};
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr;
use std::sync::PoisonError;

use self::epoch::Guard;
use crate::circuit::{Circuit, Inner};
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};

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
    /// Marked instead of freed under loom, as `Inner::freed`.
    #[cfg(loom)]
    freed: std::sync::atomic::AtomicBool,
}

impl Array {
    fn new(groups: usize) -> Box<Array> {
        debug_assert!(groups.is_power_of_two());
        Box::new(Array {
            mask: groups - 1,
            groups: (0..groups)
                .map(|_| Group {
                    tags: AtomicU64::new(LOW * u64::from(EMPTY)),
                    slots: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
                })
                .collect(),
            #[cfg(loom)]
            freed: std::sync::atomic::AtomicBool::new(false),
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
    /// The table's owner needs it kept even when empty (see [`Circuits::hold_open`]).
    keep: bool,
    /// Found empty by the last [`close_if_idle`](Circuits::close_if_idle), with nothing stored
    /// since.
    seen_empty: bool,
}

/// One provider's circuits, keyed by tenant.
pub(crate) struct Circuits {
    array: AtomicPtr<Array>,
    writer: Mutex<Counts>,
    len: AtomicUsize,
    /// Set once, under the mutex, by [`close_if_idle`](Circuits::close_if_idle): the table
    /// takes no circuit from then on, so its owner may drop it without losing one.
    closed: AtomicBool,
    hasher: TenantHasher,
}

/// Seeded per table, so the layout is unpredictable from outside; fixed under loom, whose
/// models must run the same way each time.
#[cfg(not(loom))]
type TenantHasher = foldhash::fast::RandomState;
#[cfg(loom)]
type TenantHasher = foldhash::fast::FixedState;

/// A circuit found in a table, valid while the guard it was found under lives. Derefs to the
/// circuit; clone it (`Circuit::clone(&found)`) to keep it longer.
pub(crate) struct Found<'g> {
    circuit: ManuallyDrop<Circuit>,
    _guard: PhantomData<&'g ()>,
}

impl Found<'_> {
    /// # Safety
    /// `p` is a slot's circuit, loaded under a guard that outlives the result.
    #[inline]
    unsafe fn new(p: *mut Inner) -> Self {
        Found {
            // SAFETY: the table holds one strong count of `p` until the epoch has passed its
            // unlink, which waits for the guard's pin; `ManuallyDrop` never gives that count up.
            circuit: ManuallyDrop::new(unsafe { Circuit::from_raw(p) }),
            _guard: PhantomData,
        }
    }

    /// The circuit without the guard's lifetime.
    ///
    /// # Safety
    /// The caller keeps the guard's pin (or a pin taken before it) alive while it uses the
    /// result, and never drops the result's handle (`ManuallyDrop`).
    #[inline]
    pub(crate) unsafe fn detach(self) -> ManuallyDrop<Circuit> {
        self.circuit
    }
}

impl Deref for Found<'_> {
    type Target = Circuit;
    #[inline]
    fn deref(&self) -> &Circuit {
        &self.circuit
    }
}

/// Gives back the table's strong count of a circuit it unlinked, once no reader can see it and
/// no permit's hazard is on it (the last count then hands it back to the epoch, in case a
/// handle's permit took a hazard meanwhile).
///
/// # Safety
/// `p` came from `Circuit::into_raw` and is unreachable from the table.
unsafe fn reclaim(p: *mut Inner) {
    // SAFETY: the table's own count, given back exactly once.
    drop(unsafe { Circuit::from_raw(p) });
}

impl Circuits {
    pub(crate) fn new() -> Self {
        Circuits {
            array: AtomicPtr::new(Box::into_raw(Array::new(1))),
            writer: Mutex::new(Counts {
                live: 0,
                deleted: 0,
                keep: false,
                seen_empty: false,
            }),
            len: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            hasher: TenantHasher::default(),
        }
    }

    /// A guard to look circuits up under.
    #[inline]
    pub(crate) fn guard(&self) -> Guard {
        epoch::pin()
    }

    /// The hash of a tenant name. Written out rather than `hash_one`, which the compiler kept
    /// as a call on the lookup path; and without `str`'s `0xff` terminator, which only matters
    /// when several values share one hasher.
    #[inline(always)]
    fn hash(&self, tenant: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(tenant.as_bytes());
        h.finish()
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// The circuit of `tenant`, if stored.
    #[inline(always)]
    pub(crate) fn get<'g>(&'g self, tenant: &str, _guard: &'g Guard) -> Option<Found<'g>> {
        // SAFETY: the array pointer is never null, and an outgrown array is retired, so it
        // lives as long as the guard.
        let array = unsafe { &*self.array.load(Ordering::Acquire) };
        let (_, _, p) = find(array, self.hash(tenant), tenant)?;
        // SAFETY: a slot's circuit, loaded under `guard`.
        Some(unsafe { Found::new(p) })
    }

    /// The circuit of `tenant`, inserting `make()` if there is none (`make` runs under the
    /// table's mutex, at most once); `None` when the table is [closed](Self::close_if_idle).
    pub(crate) fn get_or_insert<'g>(
        &'g self,
        tenant: &str,
        make: impl FnOnce() -> Circuit,
        guard: &'g Guard,
    ) -> Option<Found<'g>> {
        let mut counts = self.lock();
        // Writers are serialised, so this look is exact.
        if let Some(found) = self.get(tenant, guard) {
            return Some(found);
        }
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        if counts.live + counts.deleted >= self.current().max_used() {
            self.rebuild(&mut counts);
        }
        let circuit = make();
        debug_assert_eq!(circuit.tenant(), tenant);
        let p = circuit.into_raw();
        if place(self.current(), self.hash(tenant), p) == DELETED {
            counts.deleted -= 1;
        }
        counts.live += 1;
        counts.seen_empty = false;
        self.len.store(counts.live, Ordering::Relaxed);
        // SAFETY: just stored; removals need the mutex this thread holds, and then wait for
        // `guard`.
        Some(unsafe { Found::new(p) })
    }

    /// Closes the table if the previous call found it empty too, nothing was stored since, and
    /// nobody asked to [keep](Self::hold_open) it; says whether it is closed. A closed table
    /// stays empty for good: its owner may unlink it without losing a circuit, and creators that
    /// still reach it are told to look again. Waiting for a second call (the registry's next
    /// sweep) spares a table that was just made, or whose last circuit was just dropped, while a
    /// creator is on its way to it.
    pub(crate) fn close_if_idle(&self) -> bool {
        let mut counts = self.lock();
        if counts.live == 0 && !counts.keep {
            if counts.seen_empty {
                self.closed.store(true, Ordering::Relaxed);
            }
            counts.seen_empty = true;
        }
        self.closed.load(Ordering::Relaxed)
    }

    /// Keeps the table open for good, even when empty; `false` if it is already closed.
    pub(crate) fn hold_open(&self) -> bool {
        let mut counts = self.lock();
        counts.keep = true;
        !self.closed.load(Ordering::Relaxed)
    }

    /// Whether the table is closed (a hint: the mutex decides).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Unlinks the circuit of `tenant`; says whether there was one.
    pub(crate) fn remove(&self, tenant: &str) -> bool {
        let mut counts = self.lock();
        let Some((group, i, p)) = find(self.current(), self.hash(tenant), tenant) else {
            return false;
        };
        self.unlink(&mut counts, group, i);
        // SAFETY: unlinked: unreachable for pins taken from now on; `reclaim` gives back the
        // table's count once the epoch has passed those taken before.
        unsafe { epoch::retire(p, reclaim) };
        true
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
        // A sweep that left the table mostly empty sizes it down at once; otherwise the deleted
        // marks are reused by inserts and the table keeps its peak size.
        let groups = array.groups.len();
        if groups > 1 && counts.live + counts.live / 2 < max_used(groups / 4) {
            self.rebuild(&mut counts);
        }
        // One by one: a permit's hazard then keeps its own circuit, not the whole sweep.
        // SAFETY: as in `remove`, for each of them.
        unsafe { epoch::retire_all(unlinked, reclaim) };
        evicted
    }

    /// Calls `f` with every stored circuit; circuits added or removed meanwhile may or may not
    /// be seen. `f` runs with no pin held (on handles taken under one), so a slow `f` delays
    /// no one's frees.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Circuit)) {
        let circuits: Vec<Circuit> = {
            let _guard = self.guard();
            // SAFETY: as in `get`.
            let array = unsafe { &*self.array.load(Ordering::Acquire) };
            // SAFETY: a slot's circuit, loaded under `guard`.
            array
                .full()
                .map(|(_, _, p)| Circuit::clone(&*unsafe { Found::new(p) }))
                .collect()
        };
        for c in &circuits {
            f(c);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
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
            let hash = self.hash(unsafe { Found::new(p) }.tenant());
            place(&fresh, hash, p);
        }
        counts.deleted = 0;
        // Publishing with release makes the fresh array's contents visible with it.
        let old = self.array.swap(Box::into_raw(fresh), Ordering::AcqRel);
        // SAFETY: unreachable for readers that start from now on; only the array is freed (its
        // slots are plain pointers, the circuits moved to the fresh array).
        unsafe { epoch::retire(old, free_array) };
    }
}

/// The slot of `array` holding the circuit of `tenant` (whose hash is `hash`), if any. Readers
/// call it under a pin, writers under the mutex.
#[inline(always)]
fn find<'a>(array: &'a Array, hash: u64, tenant: &str) -> Option<(&'a Group, usize, *mut Inner)> {
    #[cfg(loom)]
    assert!(
        !array.freed.load(std::sync::atomic::Ordering::SeqCst),
        "a table array was read after the epoch freed it"
    );
    let tag = tag_of(hash);
    let mut g = hash as usize & array.mask;
    loop {
        // `mask` is `groups.len() - 1`, so the index is in bounds.
        let group = &array.groups[g];
        let tags = group.tags.load(Ordering::Acquire);
        let mut m = matching(tags, tag);
        while m != 0 {
            let i = (m.trailing_zeros() / 8) as usize;
            let p = group.slots[i].load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: a slot's circuit, loaded under the caller's pin or mutex.
                let found = unsafe { Found::new(p) };
                if same_name(found.tenant().as_bytes(), tenant.as_bytes()) {
                    return Some((group, i, p));
                }
            }
            m &= m - 1;
        }
        // Every array keeps an empty slot (`max_used`), so the probe ends.
        if has_empty(tags) {
            return None;
        }
        g = (g + 1) & array.mask;
    }
}

/// Stores `p` in the first free slot of its probe in `array` (the caller holds the mutex, or
/// owns an unpublished array); returns the tag the slot had (`EMPTY` or `DELETED`).
fn place(array: &Array, hash: u64, p: *mut Inner) -> u8 {
    let mut g = hash as usize & array.mask;
    loop {
        let group = &array.groups[g];
        let tags = group.tags.load(Ordering::Relaxed);
        if let Some(i) = (0..SLOTS).find(|&i| tag_at(tags, i) & 0x80 == 0) {
            // The circuit first, then the tag that makes readers look at it.
            group.slots[i].store(p, Ordering::Release);
            group
                .tags
                .store(with_tag(tags, i, tag_of(hash)), Ordering::Release);
            return tag_at(tags, i);
        }
        g = (g + 1) & array.mask;
    }
}

/// `a == b`, without a call to `memcmp` for the short names tenants usually have (a call costs
/// more than the comparison on the lookup path).
#[inline]
fn same_name(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    let half = |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().unwrap_or([0; 4]));
    match n {
        // Two overlapping words (or halves) cover the name.
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

#[inline]
fn tag_of(hash: u64) -> u8 {
    0x80 | (hash >> 57) as u8
}

/// # Safety
/// `p` is an unlinked array from `Box::into_raw`.
unsafe fn free_array(p: *mut Array) {
    #[cfg(loom)]
    {
        // SAFETY: marked, not freed (see `Array::freed`).
        unsafe { &*p }
            .freed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        return;
    }
    // SAFETY: the caller's contract; its slots are plain pointers, freed with the array.
    #[allow(unreachable_code)]
    drop(unsafe { Box::from_raw(p) });
}

impl Drop for Circuits {
    fn drop(&mut self) {
        // Permits taken from this table may outlive it (they pin the epoch, not the table):
        // its circuits and its array are retired like anything else it unlinks.
        let array = self.array.load(Ordering::Acquire);
        // SAFETY: `&mut self`: the array is this table's and no writer is left.
        let live: Vec<*mut Inner> = unsafe { &*array }.full().map(|(_, _, p)| p).collect();
        // SAFETY: the table is gone, so nothing it held is reachable for a pin taken later;
        // each circuit's table count is given back once, the array freed once.
        unsafe {
            epoch::retire_all(live, reclaim);
            epoch::retire(array, free_array);
        }
        epoch::collect_now();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::circuit::Policy;
    use crate::clock::{SystemClock, Timebase};
    use crate::config::Config;

    fn policy() -> Arc<Policy> {
        let time = Arc::new(Timebase::new(SystemClock));
        Arc::new(Policy::new(Config::default(), time, "p", None))
    }

    fn table() -> Circuits {
        Circuits::new()
    }

    fn insert(t: &Circuits, policy: &Arc<Policy>, tenant: &str) -> Circuit {
        let guard = t.guard();
        let found = t
            .get_or_insert(
                tenant,
                || Circuit::from_policy(policy.clone(), tenant),
                &guard,
            )
            .expect("open");
        Circuit::clone(&found)
    }

    fn find(t: &Circuits, tenant: &str) -> Option<Circuit> {
        let guard = t.guard();
        t.get(tenant, &guard).map(|c| Circuit::clone(&c))
    }

    /// Collects until `done`: tests in other threads pin the epoch now and then.
    fn collect_until(done: impl Fn() -> bool) {
        for _ in 0..1_000_000 {
            epoch::collect();
            if done() {
                return;
            }
            std::thread::yield_now();
        }
        panic!("the epoch never passed what was retired");
    }

    fn groups(t: &Circuits) -> usize {
        let _writer = t.lock();
        t.current().groups.len()
    }

    #[test]
    fn tag_matching_agrees_with_a_byte_by_byte_reading() {
        let mut rng = fastrand::Rng::with_seed(6);
        let bytes = [EMPTY, DELETED, 0x80, 0x81, 0xfe, 0xff];
        for _ in 0..100_000 {
            let tags =
                (0..SLOTS).fold(0u64, |w, i| with_tag(w, i, bytes[rng.usize(..bytes.len())]));
            let tag = bytes[2 + rng.usize(..4)];
            let m = matching(tags, tag);
            for i in 0..SLOTS {
                if tag_at(tags, i) == tag {
                    assert_ne!(m & (0x80 << (8 * i)), 0, "{tags:#x} slot {i} missed");
                }
            }
            assert_eq!(m & !HIGH, 0);
            let empty = (0..SLOTS).any(|i| tag_at(tags, i) == EMPTY);
            assert_eq!(has_empty(tags), empty, "{tags:#x}");
        }
    }

    #[test]
    fn names_compare_equal_exactly_when_their_bytes_do() {
        let names = [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "abce",
            "bbcd",
            "abcdefg",
            "abcdefh",
            "tenant-1",
            "tenant-2",
            "uenant-1",
            "tenant-12",
            "tenant-13",
            "xenant-12",
            "tenant-1234567",
            "tenant-1234568",
            "tenant-123456789",
            "tenant-123456780",
            "tenant-1234567890",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_name(a.as_bytes(), b.as_bytes()), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn finds_every_tenant_it_holds_and_no_other() {
        let (t, policy) = (table(), policy());
        let names: Vec<String> = (0..20_000).map(|i| format!("tenant-{i}")).collect();
        let held: Vec<Circuit> = names.iter().map(|n| insert(&t, &policy, n)).collect();
        assert_eq!(t.len(), names.len());
        for (n, c) in names.iter().zip(&held) {
            let found = find(&t, n).unwrap_or_else(|| panic!("{n} lost"));
            assert!(Circuit::ptr_eq(&found, c));
            assert_eq!(found.tenant(), n);
        }
        assert!(find(&t, "tenant-20000").is_none());
        assert!(find(&t, "").is_none());
        // A second insert of a held tenant returns the circuit already there.
        assert!(Circuit::ptr_eq(&insert(&t, &policy, "tenant-7"), &held[7]));
        assert_eq!(t.len(), names.len());
        // 20,000 circuits fit in 4,096 groups of 7 at most 7/8 full.
        assert_eq!(groups(&t), 4096);
    }

    #[test]
    fn removed_tenants_are_gone_and_their_slots_are_reused() {
        let (t, policy) = (table(), policy());
        for i in 0..1000 {
            insert(&t, &policy, &format!("t{i}"));
        }
        let size = groups(&t);
        for round in 0..50 {
            for i in (0..1000).filter(|i| i % 2 == round % 2) {
                assert!(t.remove(&format!("t{i}")));
                assert!(!t.remove(&format!("t{i}")), "removed twice");
            }
            assert_eq!(t.len(), 500);
            for i in 0..1000 {
                let found = find(&t, &format!("t{i}")).is_some();
                assert_eq!(found, i % 2 != round % 2, "round {round} t{i}");
            }
            for i in (0..1000).filter(|i| i % 2 == round % 2) {
                insert(&t, &policy, &format!("t{i}"));
            }
            assert_eq!(t.len(), 1000);
        }
        // Deleted marks are reused or swept by rebuilds: churn does not grow the table.
        assert!(
            groups(&t) <= size,
            "{} groups, {size} at the start",
            groups(&t)
        );
    }

    #[test]
    fn a_sweep_that_empties_the_table_shrinks_it() {
        let (t, policy) = (table(), policy());
        for i in 0..10_000 {
            insert(&t, &policy, &format!("t{i}"));
        }
        assert_eq!(groups(&t), 2048);
        let evicted = t.evict(|c| c.tenant() != "t1");
        assert_eq!((evicted, t.len()), (9_999, 1));
        assert_eq!(groups(&t), 1, "a sweep that empties the table shrinks it");
        assert!(find(&t, "t1").is_some());
        for i in 0..10_000 {
            insert(&t, &policy, &format!("n{i}"));
            assert!(t.remove(&format!("n{i}")));
        }
        assert!(groups(&t) <= 2, "{} groups for one circuit", groups(&t));
        assert!(find(&t, "t1").is_some());
    }

    #[test]
    fn unlinked_and_dropped_circuits_give_back_the_tables_count() {
        let (t, policy) = (table(), policy());
        let kept = insert(&t, &policy, "removed");
        let swept = insert(&t, &policy, "swept");
        let dropped = insert(&t, &policy, "dropped");
        // Ours and the table's.
        assert_eq!(kept.handles(), 2);
        assert!(t.remove("removed"));
        assert_eq!(t.evict(|c| c.tenant() == "swept"), 1);
        // Given back once the epoch passes the unlink (other tests' pins may hold it a moment).
        collect_until(|| kept.handles() == 1 && swept.handles() == 1);
        assert_eq!(dropped.handles(), 2);
        drop(t);
        collect_until(|| dropped.handles() == 1);
    }

    #[test]
    fn readers_find_stable_tenants_while_writers_churn_and_grow_the_table() {
        let t = Arc::new(table());
        let policy = policy();
        let stable: Vec<String> = (0..500).map(|i| format!("stable-{i}")).collect();
        for n in &stable {
            insert(&t, &policy, n);
        }
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (t, stable, done) = (t.clone(), stable.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut rounds = 0u64;
                    while !done.load(Ordering::Relaxed) || rounds < 3 {
                        for n in stable.iter().skip(r) {
                            let guard = t.guard();
                            let found = t.get(n, &guard).unwrap_or_else(|| panic!("{n} lost"));
                            assert_eq!(found.tenant(), n);
                        }
                        rounds += 1;
                    }
                    rounds
                })
            })
            .collect();
        for round in 0..20 {
            for i in 0..2_000 {
                insert(&t, &policy, &format!("churn-{round}-{i}"));
            }
            let evicted = t.evict(|c| c.tenant().starts_with("churn-"));
            assert_eq!(evicted, 2_000);
        }
        done.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() >= 3);
        }
        assert_eq!(t.len(), stable.len());
    }
}

/// loom models of the table with the epoch (`RUSTFLAGS="--cfg loom" cargo test -p breaker-core
/// --lib --release table`): lookups and permits racing removals, sweeps and rebuilds. Freed
/// circuits and arrays are marked, not freed, under loom, and every access asserts it is not
/// marked (`Inner::freed`, `Array::freed`).
#[cfg(all(test, loom))]
mod loom_models {
    use std::sync::Arc as StdArc;

    use loom::sync::Arc;
    use loom::thread;

    use super::*;
    use crate::circuit::{Permit, Policy};
    use crate::clock::{SystemClock, Timebase};
    use crate::config::Config;
    use crate::table::epoch::loom_models::model;

    fn table_of(tenants: &[&str]) -> (Arc<Circuits>, StdArc<Policy>) {
        let time = StdArc::new(Timebase::new(SystemClock));
        let policy = StdArc::new(Policy::new(Config::default(), time, "p", None));
        let t = Arc::new(Circuits::new());
        for n in tenants {
            insert(&t, &policy, n);
        }
        (t, policy)
    }

    fn insert(t: &Circuits, policy: &StdArc<Policy>, tenant: &str) {
        let guard = t.guard();
        t.get_or_insert(
            tenant,
            || Circuit::from_policy(policy.clone(), tenant),
            &guard,
        );
    }

    /// A permit for `tenant`, as the registry takes one: a lookup whose pin becomes the hazard.
    fn permit(t: &Circuits, tenant: &str) -> Option<Permit> {
        let guard = t.guard();
        let found = t.get(tenant, &guard)?;
        // SAFETY: found under `guard`, whose pin becomes the hazard.
        let held = unsafe { found.detach().pinned(guard) };
        Permit::admit(held).ok()
    }

    /// Six circuits fill the first array to its limit: a removal and one insert rebuild it.
    #[test]
    fn lookups_racing_a_removal_and_a_rebuild_never_read_freed_memory() {
        model(|| {
            let (t, policy) = table_of(&["a", "b", "c", "d", "e", "f"]);
            let reader = {
                let t = t.clone();
                thread::spawn(move || {
                    let guard = t.guard();
                    let a = t.get("a", &guard).expect("a stable tenant is always found");
                    assert_eq!(a.tenant(), "a");
                    if let Some(b) = t.get("b", &guard) {
                        assert_eq!(b.tenant(), "b");
                    }
                })
            };
            assert!(t.remove("b"));
            insert(&t, &policy, "g");
            epoch::collect_now();
            epoch::collect_now();
            reader.join().unwrap();
        });
    }

    /// A sweep that leaves the table mostly empty shrinks it (a rebuild) while a lookup reads it.
    #[test]
    fn lookups_racing_a_sweep_that_shrinks_the_table_never_read_freed_memory() {
        model(|| {
            let names = [
                "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m",
            ];
            let (t, _policy) = table_of(&names);
            let reader = {
                let t = t.clone();
                thread::spawn(move || {
                    let guard = t.guard();
                    let a = t.get("a", &guard).expect("a kept tenant is always found");
                    assert_eq!(a.tenant(), "a");
                })
            };
            assert_eq!(t.evict(|c| c.tenant() != "a"), names.len() - 1);
            epoch::collect_now();
            epoch::collect_now();
            reader.join().unwrap();
        });
    }

    /// A permit taken while a sweep unlinks its circuit, moved to another thread and recorded
    /// there after the sweep's frees: its circuit is kept until then.
    #[test]
    fn a_permit_moved_across_threads_outlives_the_sweep_that_unlinked_its_circuit() {
        model(|| {
            let (t, _policy) = table_of(&["a", "b"]);
            let holder = {
                let t = t.clone();
                thread::spawn(move || {
                    if let Some(p) = permit(&t, "a") {
                        thread::spawn(move || p.success()).join().unwrap();
                    }
                })
            };
            assert_eq!(t.evict(|c| c.tenant() == "a"), 1);
            epoch::collect_now();
            epoch::collect_now();
            holder.join().unwrap();
        });
    }
}
