//! The table's storage: arrays of groups (seven slots and a word of tags, one cache line a
//! group), the tag arithmetic, and the probe that finds a key or a free slot. Knows what an
//! entry is only through [`Entry`].

use std::mem::ManuallyDrop;
use std::ptr;

use crate::sync::{AtomicPtr, AtomicU64, Ordering};

/// What a table holds: a handle of one pointer that carries a reference count, keyed by a name.
///
/// # Safety
/// [`from_raw`](Entry::from_raw) of [`into_raw`](Entry::into_raw)'s pointer gives the handle
/// back with its count; the pointee stays valid while a count is alive, and the release of the
/// last count frees it only once no hazard of the epoch is on it (as `Shared` does). The table
/// relies on this to hand out handles that never give their count up (`Found`) while a pin
/// lives, and to give its own count back once the epoch has passed an unlink.
pub(crate) unsafe trait Entry: Sized {
    /// What a handle points at; retired to the epoch, so `Send`.
    type Raw: Send;
    /// The handle as a raw pointer carrying its count.
    fn into_raw(self) -> *mut Self::Raw;
    /// Takes back a handle from [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    /// `p` came from `into_raw`, and its count is given back once (or the result is never
    /// dropped).
    unsafe fn from_raw(p: *mut Self::Raw) -> Self;
    /// The name the entry is stored under.
    fn key(&self) -> &str;
}

pub(super) const SLOTS: usize = 7;
pub(super) const EMPTY: u8 = 0;
pub(super) const DELETED: u8 = 1;
/// The low bit of each slot's tag byte (bytes 0..7; byte 7 is unused and stays 0).
const LOW: u64 = 0x0001_0101_0101_0101;
/// The high bit of each slot's tag byte; set for full slots only.
pub(super) const HIGH: u64 = 0x0080_8080_8080_8080;

/// One cache line: seven slots and their tags.
#[repr(C, align(64))]
pub(super) struct Group<R> {
    pub(super) tags: AtomicU64,
    pub(super) slots: [AtomicPtr<R>; SLOTS],
}

pub(super) struct Array<R> {
    pub(super) mask: usize,
    pub(super) groups: Box<[Group<R>]>,
    /// Marked instead of freed under loom, as a shared object's `freed`.
    #[cfg(loom)]
    pub(super) freed: crate::sync::Liveness,
}

impl<R> Array<R> {
    pub(super) fn new(groups: usize) -> Box<Array<R>> {
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
            freed: crate::sync::Liveness::new(),
        })
    }

    /// Full and deleted slots it may hold before it must be rebuilt; leaves at least one empty
    /// slot, so every probe ends.
    pub(super) fn max_used(&self) -> usize {
        max_used(self.groups.len())
    }

    /// Every full slot: (group, slot index, entry).
    pub(super) fn full(&self) -> impl Iterator<Item = Slot<'_, R>> + '_ {
        self.groups.iter().flat_map(|g| {
            let tags = g.tags.load(Ordering::Acquire);
            (0..SLOTS).filter_map(move |i| {
                let p = g.slots[i].load(Ordering::Acquire);
                (tag_at(tags, i) & 0x80 != 0 && !p.is_null()).then_some((g, i, p))
            })
        })
    }
}

pub(super) fn max_used(groups: usize) -> usize {
    groups * SLOTS * 7 / 8
}

pub(super) fn tag_at(tags: u64, i: usize) -> u8 {
    (tags >> (8 * i)) as u8
}

pub(super) fn with_tag(tags: u64, i: usize, tag: u8) -> u64 {
    (tags & !(0xff << (8 * i))) | (u64::from(tag) << (8 * i))
}

/// A bit set in byte i for every slot i whose tag may equal `tag` (a false positive is possible
/// right above a true match; callers compare the key anyway).
#[inline]
pub(super) fn matching(tags: u64, tag: u8) -> u64 {
    let x = tags ^ (LOW * u64::from(tag));
    x.wrapping_sub(LOW) & !x & HIGH
}

/// Whether any slot of the group is empty (exact as a yes/no: a false positive needs a true
/// empty slot below it).
#[inline]
pub(super) fn has_empty(tags: u64) -> bool {
    tags.wrapping_sub(LOW) & !tags & HIGH != 0
}

/// A full slot: its group, its index in the group, and the entry it holds.
pub(super) type Slot<'a, R> = (&'a Group<R>, usize, *mut R);

/// The slot of `array` holding the entry of `key` (whose hash is `hash`), if any. Readers call
/// it under a pin, writers under the mutex.
#[inline(always)]
pub(super) fn find<'a, E: Entry>(
    array: &'a Array<E::Raw>,
    hash: u64,
    key: &str,
) -> Option<Slot<'a, E::Raw>> {
    #[cfg(loom)]
    array.freed.check("a table array");
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
                // SAFETY: a slot's entry, loaded under the caller's pin or mutex, whose count the
                // table holds until the epoch has passed its unlink; never given up here.
                let found = ManuallyDrop::new(unsafe { E::from_raw(p) });
                if same_name(found.key().as_bytes(), key.as_bytes()) {
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
pub(super) fn place<R>(array: &Array<R>, hash: u64, p: *mut R) -> u8 {
    let mut g = hash as usize & array.mask;
    loop {
        let group = &array.groups[g];
        let tags = group.tags.load(Ordering::Relaxed);
        if let Some(i) = (0..SLOTS).find(|&i| tag_at(tags, i) & 0x80 == 0) {
            // The entry first, then the tag that makes readers look at it.
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
pub(super) fn same_name(a: &[u8], b: &[u8]) -> bool {
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
pub(super) unsafe fn free_array<R>(p: *mut Array<R>) {
    #[cfg(loom)]
    {
        // SAFETY: marked, not freed (see `Array::freed`).
        unsafe { &*p }.freed.free("a table array");
        return;
    }
    // SAFETY: the caller's contract; its slots are plain pointers, freed with the array.
    #[allow(unreachable_code)]
    drop(unsafe { Box::from_raw(p) });
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

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
}
