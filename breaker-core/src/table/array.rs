//! The table's storage: arrays of groups (seven slots and a word of tags, one cache line a
//! group), the tag arithmetic, the sizing, and the probe that finds a key or a free slot. Knows
//! what an entry is only through [`Entry`].
//!
//! An array has any number of groups, not a power of two: a rebuild sizes it to its entries
//! and a quarter more ([`groups_for`]), where doubling would leave it up to half empty (at a
//! million circuits, 10.6 bytes a circuit of table against 16.8; from ten thousand circuits up,
//! at most 13.1 against 20.9). A probe starts at the group [`home`] scales the hash's low 32
//! bits to, and wraps from the last group to the first.

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
    /// At least one, at most 2^32 (`home`'s range).
    pub(super) groups: Box<[Group<R>]>,
    /// Marked instead of freed under loom, as a shared object's `freed`.
    #[cfg(loom)]
    pub(super) freed: crate::sync::Liveness,
}

impl<R> Array<R> {
    pub(super) fn new(groups: usize) -> Box<Array<R>> {
        // 2^32 groups are 256 GiB: no allocation gets this far.
        assert!(groups >= 1 && groups as u64 <= 1 << 32, "{groups} groups");
        Box::new(Array {
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

/// Full and deleted slots `groups` groups may hold: 7/8 of their slots, rounded down.
pub(super) fn max_used(groups: usize) -> usize {
    groups * SLOTS * 7 / 8
}

/// The groups a rebuild gives `live` entries: the fewest that hold them and a quarter more
/// before the next rebuild (`max_used(groups) > live * 1.25`). A large array then fills from
/// about 70 % of its slots to 7/8 between rebuilds (doubling: from 44 %), at the price of a
/// rebuild every quarter of growth rather than every doubling: to a million circuits, 41
/// rebuilds and 4.0 entries moved (each hashed again) per insert, against 18 and 1.6, all under
/// the writers' mutex and none on a reader's path. Probes stay as long at the 7/8 limit, but
/// average loads are higher: 7.6 % of hits lie past their home group at 76 % of slots full,
/// 1.8 % at 55 %.
///
/// Arrays of up to [`SMALL`] groups keep room for half their entries again, in a power of two
/// of groups, as all arrays had before: their memory is nothing, and their probes stay short
/// (16 circuits in 4 groups, not 3 groups 76 % full).
pub(super) fn groups_for(live: usize) -> usize {
    // The fewest groups with `max_used(g) > room`: `g * SLOTS * 7 / 8 >= room + 1` (an integer
    // compared with a floor).
    let fewest = |room: usize| room.saturating_add(1).saturating_mul(8).div_ceil(SLOTS * 7);
    let small = fewest(live.saturating_add(live / 2)).next_power_of_two();
    fewest(live.saturating_add(live / 4))
        .max(small.min(SMALL))
        .max(1)
}

/// The most groups an array sized as a power of two may have (4 KiB, 392 entries).
pub(super) const SMALL: usize = 64;

/// The group a probe for `hash` starts at, in `0..groups`: the hash's low 32 bits scaled to the
/// group count (a multiply and a shift, for any count). The tag is the hash's top seven bits,
/// none of these: entries that share a home group differ in their tags as much as any others.
#[inline(always)]
pub(super) fn home(hash: u64, groups: usize) -> usize {
    // `(x * groups) >> 32 < groups` for any `x < 2^32`.
    ((u64::from(hash as u32) * groups as u64) >> 32) as usize
}

/// The group after `g` in a probe: the next, or the first after the last.
#[inline(always)]
pub(super) fn next(g: usize, groups: usize) -> usize {
    let g = g + 1;
    if g == groups {
        0
    } else {
        g
    }
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
    let groups = array.groups.len();
    let mut g = home(hash, groups);
    loop {
        // SAFETY: `home` and `next` stay below `groups`, the array's length (unchecked: the
        // bounds check was two of the lookup's instructions).
        let group = unsafe { array.groups.get_unchecked(g) };
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
        g = next(g, groups);
    }
}

/// Stores `p` in the first free slot of its probe in `array` (the caller holds the mutex, or
/// owns an unpublished array); returns the tag the slot had (`EMPTY` or `DELETED`).
pub(super) fn place<R>(array: &Array<R>, hash: u64, p: *mut R) -> u8 {
    let groups = array.groups.len();
    let mut g = home(hash, groups);
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
        g = next(g, groups);
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

    /// The low 32 bits of a hash whose probe starts at group `g` of `groups` (the least such).
    fn homed_at(g: usize, groups: usize) -> u64 {
        ((g as u64) << 32).div_ceil(groups as u64)
    }

    #[test]
    fn every_group_is_some_hashs_home_and_none_is_out_of_range() {
        let mut rng = fastrand::Rng::with_seed(22);
        for groups in [
            1, 2, 3, 5, 7, 8, 11, 100, 184, 1_734, 3_389, 65_536, 188_272,
        ] {
            for g in 0..groups {
                let low = homed_at(g, groups);
                assert_eq!(home(low, groups), g, "{groups} groups");
                // The high bits (the tag's among them) change nothing.
                assert_eq!(home(low | 0xfe00_0000_0000_0000, groups), g);
                // Homes are contiguous ranges of the low bits, in order.
                if g > 0 {
                    assert_eq!(home(low - 1, groups), g - 1, "{groups} groups, group {g}");
                }
            }
            assert_eq!(home(0, groups), 0);
            assert_eq!(home(u64::from(u32::MAX), groups), groups - 1);
            for _ in 0..1_000 {
                assert!(home(rng.u64(..), groups) < groups);
            }
            assert_eq!(
                next(groups - 1, groups),
                0,
                "the last group wraps to the first"
            );
            if groups > 1 {
                assert_eq!(next(0, groups), 1);
                assert_eq!(next(groups - 2, groups), groups - 1);
            }
        }
        // The most groups an array may have: still in range.
        #[cfg(target_pointer_width = "64")]
        assert_eq!(home(u64::from(u32::MAX), 1 << 32), (1 << 32) - 1);
    }

    #[test]
    fn a_rebuild_leaves_room_for_a_quarter_more_in_the_fewest_groups() {
        let mut last = 1;
        for live in 0..20_000 {
            let g = groups_for(live);
            assert!(
                g >= last,
                "{live} circuits: {g} groups, {last} for one fewer"
            );
            last = g;
            assert!(max_used(g) > live + live / 4, "{live} circuits, {g} groups");
            if g > SMALL {
                assert!(
                    max_used(g - 1) <= live + live / 4,
                    "{live}: {g} not the fewest"
                );
            } else {
                // Small: the power of two of before, with room for half as many again.
                let mut old = 1;
                while max_used(old) <= live + live / 2 {
                    old *= 2;
                }
                assert_eq!(g, old.min(SMALL), "{live} circuits");
            }
        }
        let top = usize::BITS.min(40) - 1;
        for live in (10..top)
            .map(|i| 1usize << i)
            .flat_map(|n| [n - 1, n, n + 1])
        {
            let g = groups_for(live);
            assert!(max_used(g) > live + live / 4 && max_used(g - 1) <= live + live / 4);
        }
        assert_eq!(groups_for(0), 1);
        assert_eq!(groups_for(12), 4);
        assert_eq!(groups_for(1_000), 205);
        assert_eq!(groups_for(usize::MAX), usize::MAX.div_ceil(SLOTS * 7));
    }

    #[test]
    fn a_probe_that_fills_the_last_group_wraps_to_the_first() {
        use super::super::named::Named;
        use super::super::shared::Shared;
        let groups = 3;
        let array = Array::new(groups);
        // Eight names homed at the last group, and one at the first: the last group takes
        // seven, the eighth wraps to the first group and the ninth goes after it.
        let names: Vec<String> = (0..9).map(|i| format!("n{i}")).collect();
        let hash = |i: usize| {
            let g = if i < 8 { groups - 1 } else { 0 };
            // Distinct tags, so each find compares one name.
            ((i as u64) << 57) | homed_at(g, groups)
        };
        let ptrs: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let p = Named(Shared::new(n.as_str().into())).into_raw();
                assert_eq!(place(&array, hash(i), p), EMPTY);
                p
            })
            .collect();
        let full = array.full().map(|(g, i, _)| (ptr::from_ref(g), i));
        let at = |g: usize, i: usize| (ptr::from_ref(&array.groups[g]), i);
        let mut expected: Vec<_> = (0..7).map(|i| at(2, i)).collect();
        expected.extend([at(0, 0), at(0, 1)]);
        let mut seen: Vec<_> = full.collect();
        let key = |s: &(*const Group<_>, usize)| (s.0 as usize, s.1);
        seen.sort_by_key(key);
        expected.sort_by_key(key);
        assert_eq!(seen, expected);
        for (i, n) in names.iter().enumerate() {
            let (_, _, p) = find::<Named>(&array, hash(i), n).unwrap_or_else(|| panic!("{n}"));
            assert_eq!(p, ptrs[i]);
        }
        // A name never stored, homed at the full last group: the probe wraps and ends at the
        // first group, which has empty slots.
        assert!(find::<Named>(&array, homed_at(groups - 1, groups), "absent").is_none());
        for p in ptrs {
            // SAFETY: each from `into_raw`, given back once; the array is dropped unpublished.
            drop(unsafe { Named::from_raw(p) });
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
