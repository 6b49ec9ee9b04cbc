//! The table that holds one provider's circuits in a registry, keyed by tenant. Generic over
//! what it holds ([`Entry`]: a counted handle of one pointer with a key), so the table and its
//! reclamation (`epoch.rs`, `barrier.rs`, the pointer types of `shared.rs`) never learn what a
//! circuit is; they import nothing of the crate but `sync` and `contain`.
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
//!   fill to 7/8 before the table grows, and a rebuild sizes it to its circuits and a quarter
//!   more (any number of groups, not a power of two, past 4 KiB): from ten thousand circuits
//!   on, 10.5 to 13.1 bytes a circuit (doubling: up to 20.9), 10.6 at a million.
//! - Reads take no lock and write nothing shared: an epoch pin (`epoch.rs`: a store to a slot
//!   the thread owns) keeps whatever they load alive. Writes (a new tenant, a removal, an idle
//!   sweep) are rare and take the table's mutex; they publish with release stores, and what
//!   they unlink (a circuit, an outgrown array) is retired to the epoch and freed once no pin
//!   can see it and no permit's hazard is on it.
//! - A slot is never emptied in place, only marked deleted, so a reader's probe never stops
//!   early at a slot that was full when the key it looks for was inserted behind it. Deleted
//!   slots are reused by inserts and cleared when the table is rebuilt.

mod array;
mod barrier;
pub(crate) mod epoch;
pub(crate) mod shared;

use std::hash::{BuildHasher, Hasher};
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr;
use std::sync::PoisonError;

pub(crate) use self::array::Entry;
use self::array::{find, free_array, groups_for, max_used, place, with_tag, Array, Group, DELETED};
use self::epoch::Guard;
use crate::sync::{AtomicBool, AtomicPtr, AtomicUsize, Mutex, MutexGuard, Ordering};

/// Counts that only writers, under the table's mutex, read or change.
struct Counts {
    live: usize,
    deleted: usize,
    /// The table's owner needs it kept even when empty (see [`Table::hold_open`]).
    keep: bool,
    /// Found empty by the last [`close_if_idle`](Table::close_if_idle), with nothing stored
    /// since.
    seen_empty: bool,
}

/// One provider's circuits (or any other [`Entry`]), keyed by tenant.
pub(crate) struct Table<E: Entry> {
    array: AtomicPtr<Array<E::Raw>>,
    writer: Mutex<Counts>,
    len: AtomicUsize,
    /// Set once, under the mutex, by [`close_if_idle`](Table::close_if_idle): the table
    /// takes no circuit from then on, so its owner may drop it without losing one.
    closed: AtomicBool,
    hasher: TenantHasher,
    _entries: PhantomData<E>,
}

/// Seeded per table, so the layout is unpredictable from outside; fixed under loom, whose
/// models must run the same way each time.
#[cfg(not(loom))]
type TenantHasher = foldhash::fast::RandomState;
#[cfg(loom)]
type TenantHasher = foldhash::fast::FixedState;

/// An entry found in a table, valid while the guard it was found under lives. Derefs to the
/// entry; clone it (`E::clone(&found)`) to keep it longer.
pub(crate) struct Found<'g, E> {
    entry: ManuallyDrop<E>,
    _guard: PhantomData<&'g ()>,
}

impl<E: Entry> Found<'_, E> {
    /// # Safety
    /// `p` is a slot's entry, loaded under a guard that outlives the result.
    #[inline]
    unsafe fn new(p: *mut E::Raw) -> Self {
        Found {
            // SAFETY: the table holds one strong count of `p` until the epoch has passed its
            // unlink, which waits for the guard's pin; `ManuallyDrop` never gives that count up.
            entry: ManuallyDrop::new(unsafe { E::from_raw(p) }),
            _guard: PhantomData,
        }
    }

    /// The entry without the guard's lifetime.
    ///
    /// # Safety
    /// The caller keeps the guard's pin (or a pin taken before it) alive while it uses the
    /// result, and never drops the result's handle (`ManuallyDrop`).
    #[inline]
    pub(crate) unsafe fn detach(self) -> ManuallyDrop<E> {
        self.entry
    }
}

impl<E> Deref for Found<'_, E> {
    type Target = E;
    #[inline]
    fn deref(&self) -> &E {
        &self.entry
    }
}

/// Gives back the table's strong count of an entry it unlinked, once no reader can see it and
/// no permit's hazard is on it (the last count then hands it back to the epoch, in case a
/// handle's permit took a hazard meanwhile).
///
/// # Safety
/// `p` came from `E::into_raw` and is unreachable from the table.
unsafe fn reclaim<E: Entry>(p: *mut E::Raw) {
    // SAFETY: the table's own count, given back exactly once.
    drop(unsafe { E::from_raw(p) });
}

impl<E: Entry> Table<E> {
    pub(crate) fn new() -> Self {
        Table {
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
            _entries: PhantomData,
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
    pub(crate) fn get<'g>(&'g self, tenant: &str, _guard: &'g Guard) -> Option<Found<'g, E>> {
        // SAFETY: the array pointer is never null, and an outgrown array is retired, so it
        // lives as long as the guard.
        let array = unsafe { &*self.array.load(Ordering::Acquire) };
        let (_, _, p) = find::<E>(array, self.hash(tenant), tenant)?;
        // SAFETY: a slot's circuit, loaded under `guard`.
        Some(unsafe { Found::new(p) })
    }

    /// The circuit of `tenant`, inserting `make()` if there is none (`make` runs under the
    /// table's mutex, at most once); `None` when the table is [closed](Self::close_if_idle).
    pub(crate) fn get_or_insert<'g>(
        &'g self,
        tenant: &str,
        make: impl FnOnce() -> E,
        guard: &'g Guard,
    ) -> Option<Found<'g, E>> {
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
        let entry = make();
        debug_assert_eq!(entry.key(), tenant);
        let p = entry.into_raw();
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
        let Some((group, i, p)) = find::<E>(self.current(), self.hash(tenant), tenant) else {
            return false;
        };
        self.unlink(&mut counts, group, i);
        // SAFETY: unlinked: unreachable for pins taken from now on; `reclaim` gives back the
        // table's count once the epoch has passed those taken before.
        unsafe { epoch::retire(p, reclaim::<E>) };
        true
    }

    /// Unlinks every circuit for which `evict` says so; returns how many.
    pub(crate) fn evict(&self, mut evict: impl FnMut(&E) -> bool) -> usize {
        let mut counts = self.lock();
        let array = self.current();
        let mut unlinked = Vec::new();
        for (group, i, p) in array.full() {
            // SAFETY: a slot's circuit, under the mutex (no one else unlinks it).
            if evict(&*unsafe { Found::<E>::new(p) }) {
                self.unlink(&mut counts, group, i);
                unlinked.push(p);
            }
        }
        let evicted = unlinked.len();
        // A sweep that left the table under a sixth of what it may hold sizes it down at once;
        // otherwise the deleted marks are reused by inserts and the table keeps its peak size.
        let groups = array.groups.len();
        if groups > 1 && counts.live.saturating_mul(6) < max_used(groups) {
            self.rebuild(&mut counts);
        }
        // One by one: a permit's hazard then keeps its own circuit, not the whole sweep.
        // SAFETY: as in `remove`, for each of them.
        unsafe { epoch::retire_all(unlinked, reclaim::<E>) };
        evicted
    }

    /// Calls `f` with every stored circuit; circuits added or removed meanwhile may or may not
    /// be seen. `f` runs with no pin held (on handles taken under one), so a slow `f` delays
    /// no one's frees.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&E))
    where
        E: Clone,
    {
        let entries: Vec<E> = {
            let _guard = self.guard();
            // SAFETY: as in `get`.
            let array = unsafe { &*self.array.load(Ordering::Acquire) };
            // SAFETY: a slot's circuit, loaded under `guard`.
            array
                .full()
                .map(|(_, _, p)| E::clone(&*unsafe { Found::<E>::new(p) }))
                .collect()
        };
        for e in &entries {
            f(e);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // The counts are updated after the slot they describe, by code that cannot panic.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current array, for a writer (holding the mutex, so no one else replaces it).
    fn current(&self) -> &Array<E::Raw> {
        // SAFETY: only writers replace the array, and they hold the mutex the caller holds; a
        // replaced array is retired, not freed at once.
        unsafe { &*self.array.load(Ordering::Acquire) }
    }

    /// Marks slot `i` of `group` deleted; the caller retires its circuit.
    fn unlink(&self, counts: &mut Counts, group: &Group<E::Raw>, i: usize) {
        let tags = group.tags.load(Ordering::Relaxed);
        group
            .tags
            .store(with_tag(tags, i, DELETED), Ordering::Release);
        group.slots[i].store(ptr::null_mut(), Ordering::Release);
        counts.live -= 1;
        counts.deleted += 1;
        self.len.store(counts.live, Ordering::Relaxed);
    }

    /// Moves every circuit into a fresh array sized for the live ones and a quarter more
    /// ([`groups_for`]: grown, kept or shrunk), which drops the deleted marks.
    fn rebuild(&self, counts: &mut Counts) {
        let old = self.current();
        let fresh = Array::new(groups_for(counts.live));
        for (_, _, p) in old.full() {
            // SAFETY: a slot's circuit, under the mutex.
            let hash = self.hash(unsafe { Found::<E>::new(p) }.key());
            place(&fresh, hash, p);
        }
        counts.deleted = 0;
        // Publishing with release makes the fresh array's contents visible with it.
        let old = self.array.swap(Box::into_raw(fresh), Ordering::AcqRel);
        // SAFETY: unreachable for readers that start from now on; only the array is freed (its
        // slots are plain pointers, the circuits moved to the fresh array).
        unsafe { epoch::retire(old, free_array::<E::Raw>) };
    }
}

impl<E: Entry> Drop for Table<E> {
    fn drop(&mut self) {
        // Permits taken from this table may outlive it (each holds a hazard on its own
        // circuit, not on the table): its circuits and its array are retired like anything
        // else it unlinks.
        let array = self.array.load(Ordering::Acquire);
        // SAFETY: `&mut self`: the array is this table's and no writer is left.
        let live: Vec<*mut E::Raw> = unsafe { &*array }.full().map(|(_, _, p)| p).collect();
        // SAFETY: the table is gone, so nothing it held is reachable for a pin taken later;
        // each circuit's table count is given back once, the array freed once.
        unsafe {
            epoch::retire_all(live, reclaim::<E>);
            epoch::retire(array, free_array::<E::Raw>);
        }
        epoch::collect_now();
    }
}

/// The entry the table's tests and loom models store: a counted name, as a circuit is a counted
/// state machine keyed by its tenant.
#[cfg(test)]
mod named {
    use super::shared::{Counted, Shared};
    use super::Entry;

    #[derive(Clone)]
    pub(super) struct Named(pub(super) Shared<Box<str>>);

    // SAFETY: `Shared`'s raw pointer round trip, count and release through the epoch.
    unsafe impl Entry for Named {
        type Raw = Counted<Box<str>>;
        fn into_raw(self) -> *mut Self::Raw {
            self.0.into_raw()
        }
        unsafe fn from_raw(p: *mut Self::Raw) -> Self {
            // SAFETY: the caller's contract.
            Named(unsafe { Shared::from_raw(p) })
        }
        fn key(&self) -> &str {
            &self.0
        }
    }

    #[cfg_attr(loom, allow(dead_code))]
    impl Named {
        pub(super) fn ptr_eq(a: &Named, b: &Named) -> bool {
            Shared::ptr_eq(&a.0, &b.0)
        }
        pub(super) fn handles(&self) -> usize {
            self.0.count()
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::named::Named;
    use super::shared::Shared;
    use super::*;

    type Names = Table<Named>;

    fn table() -> Names {
        Table::new()
    }

    fn insert(t: &Names, tenant: &str) -> Named {
        let guard = t.guard();
        let found = t
            .get_or_insert(tenant, || Named(Shared::new(tenant.into())), &guard)
            .expect("open");
        Named::clone(&found)
    }

    fn find(t: &Names, tenant: &str) -> Option<Named> {
        let guard = t.guard();
        t.get(tenant, &guard).map(|c| Named::clone(&c))
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

    fn groups(t: &Names) -> usize {
        let _writer = t.lock();
        t.current().groups.len()
    }

    #[test]
    fn finds_every_tenant_it_holds_and_no_other() {
        let t = table();
        let names: Vec<String> = (0..20_000).map(|i| format!("tenant-{i}")).collect();
        let held: Vec<Named> = names.iter().map(|n| insert(&t, n)).collect();
        assert_eq!(t.len(), names.len());
        for (n, c) in names.iter().zip(&held) {
            let found = find(&t, n).unwrap_or_else(|| panic!("{n} lost"));
            assert!(Named::ptr_eq(&found, c));
            assert_eq!(found.key(), n);
        }
        assert!(find(&t, "tenant-20000").is_none());
        assert!(find(&t, "").is_none());
        // A second insert of a held tenant returns the circuit already there.
        assert!(Named::ptr_eq(&insert(&t, "tenant-7"), &held[7]));
        assert_eq!(t.len(), names.len());
        // Doubled to 64 groups, then grown by quarters (81, 102, 128, ..., 2,379, 2,974) to
        // 3,718 groups of 7, at most 7/8 full: 11.9 bytes of table a circuit (4,096 groups and
        // 13.1 bytes when every growth doubled).
        assert_eq!(groups(&t), 3718);
    }

    #[test]
    fn removed_tenants_are_gone_and_their_slots_are_reused() {
        let t = table();
        for i in 0..1000 {
            insert(&t, &format!("t{i}"));
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
                insert(&t, &format!("t{i}"));
            }
            assert_eq!(t.len(), 1000);
        }
        // Deleted marks are reused or swept by rebuilds: churn grows the table at most to the
        // size a rebuild gives its circuits (from 202 groups, which 1,000 circuits filled to
        // 81 % of what they may hold, to 205), not further.
        assert_eq!(size, 202);
        assert!(
            groups(&t) <= groups_for(1000),
            "{} groups, {size} at the start",
            groups(&t)
        );
    }

    #[test]
    fn a_sweep_that_empties_the_table_shrinks_it() {
        let t = table();
        for i in 0..10_000 {
            insert(&t, &format!("t{i}"));
        }
        assert_eq!(groups(&t), 1903);
        let evicted = t.evict(|c| c.key() != "t1");
        assert_eq!((evicted, t.len()), (9_999, 1));
        assert_eq!(groups(&t), 1, "a sweep that empties the table shrinks it");
        assert!(find(&t, "t1").is_some());
        for i in 0..10_000 {
            insert(&t, &format!("n{i}"));
            assert!(t.remove(&format!("n{i}")));
        }
        assert!(groups(&t) <= 2, "{} groups for one circuit", groups(&t));
        assert!(find(&t, "t1").is_some());
    }

    #[test]
    fn unlinked_and_dropped_circuits_give_back_the_tables_count() {
        let t = table();
        let kept = insert(&t, "removed");
        let swept = insert(&t, "swept");
        let dropped = insert(&t, "dropped");
        // Ours and the table's.
        assert_eq!(kept.handles(), 2);
        assert!(t.remove("removed"));
        assert_eq!(t.evict(|c| c.key() == "swept"), 1);
        // Given back once the epoch passes the unlink (other tests' pins may hold it a moment).
        collect_until(|| kept.handles() == 1 && swept.handles() == 1);
        assert_eq!(dropped.handles(), 2);
        drop(t);
        collect_until(|| dropped.handles() == 1);
    }

    #[test]
    fn growth_by_quarters_keeps_every_tenant_findable_with_deleted_slots_around() {
        let t = table();
        let mut live = std::collections::BTreeSet::new();
        let mut sizes = vec![groups(&t)];
        let check = |live: &std::collections::BTreeSet<String>, upto: usize, size: usize| {
            for j in 0..upto {
                let n = format!("t{j}");
                let found = find(&t, &n);
                assert_eq!(found.is_some(), live.contains(&n), "{n} at {size} groups");
                if let Some(found) = found {
                    assert_eq!(found.key(), n);
                }
            }
        };
        for i in 0..3_000 {
            let n = format!("t{i}");
            insert(&t, &n);
            live.insert(n);
            let size = groups(&t);
            assert!(max_used(size) >= t.len() && size <= groups_for(t.len()));
            if size != sizes[sizes.len() - 1] {
                // Just rebuilt, deleted marks dropped and live tenants moved to new homes.
                sizes.push(size);
                check(&live, i + 1, size);
            }
            // Every third tenant leaves again: deleted marks lie in the probes of tenants
            // inserted after them, and rebuilds find some of them there.
            if i % 3 == 2 {
                let gone = format!("t{}", i - 1);
                assert!(t.remove(&gone));
                live.remove(&gone);
            }
        }
        assert_eq!(t.len(), live.len());
        check(&live, 3_000, groups(&t));
        assert!(sizes.iter().any(|g| !g.is_power_of_two()), "{sizes:?}");
        // Each growth a quarter or so: never a doubling past the small sizes.
        for w in sizes.windows(2).filter(|w| w[0] >= array::SMALL) {
            assert!(w[1] * 4 <= w[0] * 6, "{sizes:?}");
        }
    }

    #[test]
    fn readers_find_stable_tenants_while_writers_churn_and_grow_the_table() {
        let t = Arc::new(table());
        let stable: Vec<String> = (0..500).map(|i| format!("stable-{i}")).collect();
        for n in &stable {
            insert(&t, n);
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
                            assert_eq!(found.key(), n);
                        }
                        rounds += 1;
                    }
                    rounds
                })
            })
            .collect();
        for round in 0..20 {
            for i in 0..2_000 {
                insert(&t, &format!("churn-{round}-{i}"));
            }
            let evicted = t.evict(|c| c.key().starts_with("churn-"));
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
/// --lib --release table`): lookups racing removals, sweeps and rebuilds. Freed entries and
/// arrays are marked, not freed, under loom, and every access asserts it is not marked
/// (`Counted::freed`, `Array::freed`). A permit's hazard racing a sweep is modelled with real
/// circuits in `circuit/permit.rs`.
#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::Arc;
    use loom::thread;

    use super::named::Named;
    use super::shared::Shared;
    use super::*;
    use crate::table::epoch::loom_models::model;

    fn table_of(tenants: &[&str]) -> Arc<Table<Named>> {
        let t = Arc::new(Table::new());
        for n in tenants {
            let guard = t.guard();
            t.get_or_insert(n, || Named(Shared::new((*n).into())), &guard);
        }
        t
    }

    /// Six entries fill the first array to its limit: a removal and one insert rebuild it.
    #[test]
    fn lookups_racing_a_removal_and_a_rebuild_never_read_freed_memory() {
        model(|| {
            let t = table_of(&["a", "b", "c", "d", "e", "f"]);
            let reader = {
                let t = t.clone();
                thread::spawn(move || {
                    let guard = t.guard();
                    let a = t.get("a", &guard).expect("a stable tenant is always found");
                    assert_eq!(a.key(), "a");
                    if let Some(b) = t.get("b", &guard) {
                        assert_eq!(b.key(), "b");
                    }
                })
            };
            assert!(t.remove("b"));
            let guard = t.guard();
            t.get_or_insert("g", || Named(Shared::new("g".into())), &guard);
            drop(guard);
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
            let t = table_of(&names);
            let reader = {
                let t = t.clone();
                thread::spawn(move || {
                    let guard = t.guard();
                    let a = t.get("a", &guard).expect("a kept tenant is always found");
                    assert_eq!(a.key(), "a");
                })
            };
            assert_eq!(t.evict(|c| c.key() != "a"), names.len() - 1);
            epoch::collect_now();
            epoch::collect_now();
            reader.join().unwrap();
        });
    }
}
