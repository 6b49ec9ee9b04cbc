//! Names a rejection carries without allocating or touching a reference count: providers are
//! interned once per process, tenant names up to 22 bytes live inline.

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

const INLINE: usize = 22;

/// A tenant name: inline when short (the common case: ids, slugs), shared when long, so that
/// copying one into a rejection is a memcpy or a reference-count increment, never an allocation.
#[derive(Clone)]
pub(crate) enum Name {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

impl Name {
    pub(crate) fn new(s: &str) -> Name {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Name::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Name::Shared(Arc::from(s))
        }
    }

    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Every registry lookup compares names: no re-validation on this path.
            // SAFETY: `Inline` is only built by `new`, from all `len` bytes of a `&str`, and is
            // never mutated, so `bytes[..len]` is valid UTF-8.
            Name::Inline { len, bytes } => unsafe {
                std::str::from_utf8_unchecked(bytes.get_unchecked(..usize::from(*len)))
            },
            Name::Shared(s) => s,
        }
    }
}

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
            "exactly-22-bytes-long!",
            long.as_str(),
        ] {
            assert_eq!(Name::new(s).as_str(), s);
        }
        assert!(matches!(
            Name::new("exactly-22-bytes-long!"),
            Name::Inline { .. }
        ));
        assert!(matches!(Name::new(&long), Name::Shared(_)));
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
