//! The call-site cache: where one provider's circuits live in the registry a site calls.

use std::fmt;
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};

use super::Registry;
use crate::provider::Provider;

/// Where one provider's circuits live in a registry, remembered by a call site; see
/// [`Registry::acquire_cached`]. It remembers the first registry the site meets without keeping
/// that registry (or anything of it) alive: a registry dropped while a `static` cache still
/// names it is freed like any other.
pub struct ProviderCache {
    pub(super) slot: OnceLock<Cached>,
}

/// A provider entry of the registry `registry`, by address: the registry keeps the entry (it
/// is held open, never unlinked), so the address is valid exactly while a registry with that id
/// exists, which a caller holding `&Registry` with that id proves.
pub(super) struct Cached {
    pub(super) registry: u64,
    pub(super) provider: NonNull<Provider>,
    /// For `Debug`, which has no registry to prove the entry alive.
    name: &'static str,
}

// SAFETY: `Cached` is an id, an interned name and an address dereferenced only by the registry
// that owns the entry (`Provider` is `Send + Sync`), from any thread.
unsafe impl Send for Cached {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for Cached {}

impl ProviderCache {
    /// An empty cache, for a `static`.
    pub const fn new() -> Self {
        ProviderCache {
            slot: OnceLock::new(),
        }
    }
}

impl Default for ProviderCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ProviderCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let provider = self.slot.get().map(|c| c.name);
        f.debug_struct("ProviderCache")
            .field("provider", &provider)
            .finish()
    }
}

impl Registry {
    /// The provider entry for the first call of a site, which it caches, or for a call into
    /// another registry than the one its cache remembers (tests with their own registries).
    #[cold]
    #[inline(never)]
    pub(super) fn site_provider(&self, cache: &ProviderCache, provider: &str) -> Arc<Provider> {
        if cache.slot.get().is_some() {
            // The first registry a site meets stays cached; calls into another one look the
            // provider up every time.
            return self.provider(provider);
        }
        let p = loop {
            let p = self.provider(provider);
            // The cache points at the entry without owning it: keep the entry for as long as
            // this registry lives, so the pointer is valid whenever the ids match.
            if p.circuits.hold_open() {
                break p;
            }
        };
        let _ = cache.slot.set(Cached {
            registry: self.id,
            provider: NonNull::from(&*p),
            name: p.name,
        });
        p
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::tests::swept_by_hand;
    use super::*;

    #[test]
    fn a_cached_provider_entry_was_dropped_by_sweeps_that_emptied_it() {
        static SITE: ProviderCache = ProviderCache::new();
        let r = swept_by_hand();
        r.acquire_cached(&SITE, "anthropic", "acme", None)
            .unwrap()
            .success();
        // The circuit goes at the second sweep; an entry nothing keeps would go at the fourth.
        for _ in 0..4 {
            r.evict_idle();
        }
        assert_eq!(r.len(), 0);
        let providers = r.providers.pin();
        let entry = providers.get("anthropic").expect("the cached entry stays");
        // The cache's address is the registry's own, open entry: never dangling.
        assert_eq!(SITE.slot.get().unwrap().provider, NonNull::from(&**entry));
        assert!(!entry.circuits.is_closed());
    }
}
