//! Names a rejection carries without allocating or touching a reference count: providers are
//! interned once per process, tenant names up to 23 bytes live inline.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// Interns a provider name for the life of the process. Providers are a handful of names fixed
/// by the code that calls them, so each distinct name is leaked once and shared by every
/// registry and rejection from then on.
pub(crate) fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    if name.is_empty() {
        return "";
    }
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(interned) = names.get(name) {
        return interned;
    }
    let leaked: &'static str = Box::leak(name.into());
    names.insert(leaked);
    leaked
}

const INLINE: usize = 23;
/// `len` of a name whose bytes are shared on the heap.
const SHARED: u8 = u8::MAX;

/// A tenant name: inline when short (the common case: ids, slugs), shared when long, so that
/// copying one into a rejection is a 24-byte copy or a reference-count increment, never an
/// allocation.
///
/// Flat rather than an enum so that a copy is three word moves: rejections copy the name on
/// their hot path, and the enum's clone compiled into byte-sized partial copies that stalled
/// store forwarding. The first 16 bytes are a union, so a shared name keeps its `Arc<str>` as a
/// pointer (with its provenance), not as integer bytes.
#[repr(C, align(8))]
pub(crate) struct Name {
    head: Head,
    /// Bytes 16..23 of an inline name.
    tail: [u8; INLINE - 16],
    /// The inline length, or `SHARED`.
    len: u8,
}

/// The first 16 bytes of an inline name, or the `Arc<str>` (from `Arc::into_raw`) of a shared
/// one, which the name owns one strong count of.
#[derive(Clone, Copy)]
#[repr(C)]
union Head {
    bytes: [u8; 16],
    shared: *const str,
}

const _: () = assert!(std::mem::size_of::<Name>() == 24);

impl Name {
    pub(crate) fn new(s: &str) -> Name {
        if s.len() > INLINE {
            return Name {
                head: Head {
                    shared: Arc::into_raw(Arc::<str>::from(s)),
                },
                tail: [0; INLINE - 16],
                len: SHARED,
            };
        }
        let (first, rest) = s.as_bytes().split_at(s.len().min(16));
        let mut head = [0; 16];
        head[..first.len()].copy_from_slice(first);
        let mut tail = [0; INLINE - 16];
        tail[..rest.len()].copy_from_slice(rest);
        Name {
            head: Head { bytes: head },
            tail,
            len: s.len() as u8,
        }
    }

    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        if self.len == SHARED {
            // SAFETY: a shared name's head is the `Arc<str>` it owns a strong count of (from
            // `new` or `clone`), released only by `drop`, so it outlives `&self`.
            unsafe { &*self.head.shared }
        } else {
            // Every registry lookup compares names: no re-validation on this path.
            // SAFETY: `repr(C)` lays `head` and `tail` out as 23 contiguous initialised bytes,
            // written only by `new` from all `len` (<= 23) bytes of a `&str` and never mutated,
            // so the first `len` are valid UTF-8 and live as long as `&self`.
            unsafe {
                let bytes = std::ptr::from_ref(self).cast::<u8>();
                std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                    bytes,
                    usize::from(self.len),
                ))
            }
        }
    }
}

impl Clone for Name {
    #[inline]
    fn clone(&self) -> Name {
        if self.len == SHARED {
            // SAFETY: a live strong count is owned by `self` (see `as_str`); the copy below
            // owns the one added here.
            unsafe { Arc::increment_strong_count(self.head.shared) }
        }
        Name {
            head: self.head,
            tail: self.tail,
            len: self.len,
        }
    }
}

impl Drop for Name {
    #[inline]
    fn drop(&mut self) {
        if self.len == SHARED {
            // SAFETY: the strong count this value owns, given back once.
            unsafe { Arc::decrement_strong_count(self.head.shared) }
        }
    }
}

// SAFETY: the bytes are plain data or an `Arc<str>`, which is `Send + Sync`.
unsafe impl Send for Name {}
// SAFETY: as above; `&Name` only reads.
unsafe impl Sync for Name {}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_names_round_trip() {
        let long = "x".repeat(300);
        for s in [
            "",
            "acme",
            "テナント",
            "exactly-23-bytes-long!!",
            "exactly-24-bytes-long!!!",
            long.as_str(),
        ] {
            let name = Name::new(s);
            assert_eq!(name.as_str(), s);
            let copy = name.clone();
            drop(name);
            assert_eq!(copy.as_str(), s);
        }
        assert_ne!(Name::new("exactly-23-bytes-long!!").len, SHARED);
        assert_eq!(Name::new("exactly-24-bytes-long!!!").len, SHARED);
        assert_eq!(std::mem::size_of::<Name>(), 24);
    }

    #[test]
    fn interning_returns_one_str_per_name() {
        let a = intern(&String::from("anthropic"));
        let b = intern("anthropic");
        assert!(std::ptr::eq(a, b));
        assert_eq!(intern(""), "");
    }
}
