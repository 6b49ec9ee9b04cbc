//! The registry's map of providers by name: entries made on first use, and dropped by sweeps
//! once nothing needs them.

use std::sync::Arc;

use super::{NameHasher, Registry};
use crate::name::intern;
use crate::provider::Provider;

/// The pinned provider map the registry's walks share.
pub(super) type ProviderMap<'m> =
    papaya::HashMapRef<'m, &'static str, Arc<Provider>, NameHasher, papaya::LocalGuard<'m>>;

impl Registry {
    /// The provider map, pinned. papaya pins through seize's thread-local, which a registry call
    /// from another thread-local's destructor may outlive (a pool's or a logger's, at thread
    /// exit): seize then panics on its first use, after registering the thread anew, and its
    /// next use succeeds. The panic is contained here and the pin taken again, so such a call
    /// works instead of aborting the process ("thread local panicked on drop"); the panic hook
    /// still reports that first panic, once per such thread. Elsewhere this is a plain pin.
    #[inline]
    pub(super) fn pin_providers(&self) -> ProviderMap<'_> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.providers.pin())) {
            Ok(map) => map,
            Err(_) => self.providers.pin(),
        }
    }

    /// The entry of provider `name`, made if missing or closed.
    pub(super) fn provider(&self, name: &str) -> Arc<Provider> {
        let providers = self.pin_providers();
        if let Some(p) = providers.get(name) {
            if !p.circuits.is_closed() {
                return p.clone();
            }
            // Closed by a sweep that has not unlinked it yet: help.
            let _ = providers.remove_if(name, |_, v| Arc::ptr_eq(v, p));
        }
        if self.made_by_global {
            super::builder::warn_if_a_fleet_is_unused();
        }
        let name = intern(name);
        let fresh = Arc::new(Provider::new(name, self.policy(self.default.clone(), name)));
        providers.get_or_insert(name, fresh).clone()
    }

    /// Unlinks `p` if it held no circuit at this sweep and the previous one, and nothing needs
    /// it kept (a config, an annotated call site's provider cache): a provider name seen once (a
    /// host a tower layer was keyed by, with or without a config of its own) then costs nothing
    /// once its circuits are gone, and sweeps stop visiting it.
    pub(super) fn drop_if_idle(&self, providers: &ProviderMap<'_>, p: &Arc<Provider>) {
        if p.circuits.len() == 0 && p.circuits.close_if_idle() {
            let _ = providers.remove_if(p.name, |_, v| Arc::ptr_eq(v, p));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::LazyLock;

    use super::super::cache::ProviderCache;
    use super::super::tests::{providers, swept_by_hand};
    use super::*;
    use crate::config::Config;

    /// One call of tenant `t` of each provider `host-0`, `host-1`, ... up to `hosts`.
    fn call_hosts(r: &Registry, hosts: usize, site: Option<&'static Config>) {
        for i in 0..hosts {
            r.acquire(&format!("host-{i}"), "t", site)
                .unwrap()
                .success();
        }
    }

    #[test]
    fn provider_entries_without_circuits_were_never_freed() {
        static SITE: LazyLock<Config> =
            LazyLock::new(|| Config::builder().consecutive_failures(7).build().unwrap());
        let r = swept_by_hand();
        static CACHE: ProviderCache = ProviderCache::new();
        r.configure("configured", Config::default());
        r.acquire_cached(&CACHE, "annotated", "t", Some(&*SITE))
            .unwrap()
            .success();
        call_hosts(&r, 10_000, None);
        assert_eq!((providers(&r), r.len()), (10_002, 10_001));
        // Used since creation: the first sweep keeps them, the second drops them.
        assert_eq!(r.evict_idle(), 0);
        assert_eq!(r.evict_idle(), 10_001);
        assert_eq!(r.len(), 0);
        // Empty at two sweeps in a row: the entries go, but for those something keeps.
        assert_eq!(providers(&r), 10_002);
        r.evict_idle();
        assert_eq!(
            providers(&r),
            2,
            "the configured and the annotated provider stay"
        );
        assert!(r.configured("configured").is_some());
        assert_eq!(
            r.circuit("annotated", "by-name")
                .config()
                .consecutive_failures(),
            Some(7),
            "the first site's config still applies to circuits asked for by name"
        );
        // Removing a provider's last circuit leaves its entry to the sweeps.
        r.circuit("once", "t");
        assert!(r.remove("once", "t"));
        assert_eq!(providers(&r), 3);
        r.evict_idle();
        r.evict_idle();
        assert_eq!(providers(&r), 2);
        // And a provider name seen again gets a fresh entry.
        r.acquire("host-1", "t", None).unwrap().success();
        assert!(r.get("host-1", "t").is_some());
        // (The circuit asked for by name went with those two sweeps.)
        assert_eq!((providers(&r), r.len()), (3, 1));
    }

    /// Regression: a call-site config held its provider's entry open for good, and a tower
    /// layer with `.config(c)` passes one for every provider (host) its key closure names.
    #[test]
    fn provider_entries_reached_with_a_site_config_were_never_dropped() {
        static LAYER: LazyLock<Config> =
            LazyLock::new(|| Config::builder().consecutive_failures(3).build().unwrap());
        let r = swept_by_hand();
        call_hosts(&r, 1000, Some(&*LAYER));
        for _ in 0..4 {
            r.evict_idle();
        }
        assert_eq!((r.len(), providers(&r)), (0, 0));
        // A host seen again registers its site anew: its circuits keep the layer's config.
        r.acquire("host-1", "t", Some(&*LAYER)).unwrap().success();
        let c = r.circuit("host-1", "by-name");
        assert_eq!(c.config().consecutive_failures(), Some(3));
        // And a configure of such a provider wins over the site as before.
        r.configure(
            "host-1",
            Config::builder().consecutive_failures(9).build().unwrap(),
        );
        assert_eq!(c.config().consecutive_failures(), Some(9));
    }
}
