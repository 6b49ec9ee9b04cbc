//! A call site's `ProviderCache` (a `static` in every `#[circuit_breaker]` expansion) remembers
//! where its provider lives in the first registry it meets, without keeping that registry alive:
//! a registry dropped while the cache still names it is freed, listeners, clock and circuits
//! included.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use breaker_core::{Event, ProviderCache, Registry};

/// Sets its flag when dropped: captured by a listener, it is freed with the registry.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_call_sites_cache_kept_its_first_registry_alive_after_drop() {
    static SITE: ProviderCache = ProviderCache::new();
    let freed = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(freed.clone());
    let registry = Registry::builder()
        .listener(move |_: &Event<'_>| {
            let _ = &flag;
        })
        .build();
    for _ in 0..3 {
        // The first call caches the provider entry, the others hit the cache.
        registry
            .acquire_cached(&SITE, "openai", "acme", None)
            .unwrap()
            .success();
    }
    assert_eq!(registry.len(), 1);
    drop(registry);

    // What the registry held is freed once the epoch passes (other tests' pins may hold it a
    // moment); another registry's writes drive the collection.
    let other = Registry::default();
    for _ in 0..100_000 {
        if freed.load(Ordering::SeqCst) {
            break;
        }
        other.remove("openai", "acme");
        std::thread::yield_now();
    }
    assert!(
        freed.load(Ordering::SeqCst),
        "the registry (its listener) outlived its drop"
    );

    // The site still works, for any registry: the cache names the dropped one only by id.
    other
        .acquire_cached(&SITE, "openai", "acme", None)
        .unwrap()
        .success();
    assert_eq!(other.len(), 1);
    assert!(format!("{SITE:?}").contains("openai"));
}
