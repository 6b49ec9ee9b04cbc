//! The call path: a permit from the circuit of (provider, tenant), and the creation of a circuit
//! on a tenant's first call.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::cache::ProviderCache;
use super::capacity::collect_after;
use super::Registry;
use crate::circuit::{Circuit, Held, Permit};
use crate::config::Config;
use crate::error::CircuitOpen;
use crate::provider::Provider;
use crate::table::epoch::{self, Guard};
use crate::table::Found;

impl Registry {
    /// Takes a permit from the circuit of (`provider`, `tenant`), creating it on first use with
    /// the call site's `config` unless the provider was [`configure`](Self::configure)d.
    ///
    /// This is what `#[circuit_breaker]` expands to; it is public for hand-written adapters.
    #[inline]
    pub fn acquire(
        &self,
        provider: &str,
        tenant: &str,
        site: Option<&'static Config>,
    ) -> Result<Permit, CircuitOpen> {
        {
            let providers = self.pin_providers();
            if let Some(p) = providers.get(provider) {
                return self.acquire_in(p, tenant, site);
            }
        }
        self.acquire_in(&self.provider(provider), tenant, site)
    }

    /// [`acquire`](Self::acquire) for a call site that always names the same provider: `cache`
    /// remembers where that provider's circuits live in this registry, so later calls skip the
    /// provider lookup and only look the tenant up. `#[circuit_breaker]` keeps one per site.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{ProviderCache, Registry};
    ///
    /// static SITE: ProviderCache = ProviderCache::new();
    /// let registry = Registry::global();
    /// registry.acquire_cached(&SITE, "anthropic", "acme", None)?.success();
    /// # Ok::<(), breaker::CircuitOpen>(())
    /// ```
    #[inline(always)]
    pub fn acquire_cached(
        &self,
        cache: &ProviderCache,
        provider: &str,
        tenant: &str,
        site: Option<&'static Config>,
    ) -> Result<Permit, CircuitOpen> {
        // One call of `acquire_in` for both paths, so that the permit comes back in registers:
        // with a second, out-of-line path returning a whole `Result<Permit, _>`, the two
        // results met in memory, written with narrow stores and read back with a wide load (a
        // store-forwarding stall that cost the annotated call about 8 ns).
        let uncached;
        let p = match cache.slot.get() {
            // SAFETY: the entry was cached from this registry (ids are never reused) and kept
            // open when cached, so this registry never drops it, and `&self` is alive.
            Some(cached) if cached.registry == self.id => unsafe { cached.provider.as_ref() },
            _ => {
                uncached = self.site_provider(cache, provider);
                &*uncached
            }
        };
        self.acquire_in(p, tenant, site)
    }

    /// Inlined whole into the caller (the annotated function's future), so the permit stays
    /// in registers until it is stored where the future keeps it: a `Result<Permit, _>` returned
    /// through memory was reloaded with wider loads than its stores (a store-forwarding stall
    /// per call).
    #[inline(always)]
    fn acquire_in(
        &self,
        p: &Provider,
        tenant: &str,
        site: Option<&'static Config>,
    ) -> Result<Permit, CircuitOpen> {
        let guard = p.circuits.guard();
        let held = match p.circuits.get(tenant, &guard) {
            Some(c) => {
                c.touch();
                // SAFETY: found under `guard`, whose pin becomes the permit's hazard on it.
                unsafe { c.detach().pinned(guard) }
            }
            None => self.create_held(p, tenant, site, guard),
        };
        // One admission for found and new circuits alike, so the permit is built in one place;
        // below the provider-wide circuit, if the provider has one.
        Permit::admit_below(
            p.wide_state(),
            || p.wide().map(|w| (&w.circuit, &*w.pool)),
            held,
        )
    }

    /// A tenant's first call (or its first after eviction): make its circuit, held by the
    /// guard's hazard when stored, by its reference count when not (its only handle). The pin
    /// is gone before collecting, so the epoch can advance: collecting under it could free
    /// nothing that a sweep run by this creation unlinked.
    #[cold]
    #[inline(never)]
    fn create_held(
        &self,
        p: &Provider,
        tenant: &str,
        site: Option<&'static Config>,
        guard: epoch::Guard,
    ) -> Held {
        let (created, swept) = self.create(p, tenant, site, &guard);
        let held = match created {
            // SAFETY: stored in the table (found under `guard`), which retires it to the epoch.
            Created::Mine(c, _) | Created::Theirs(c) => unsafe { c.detach().pinned(guard) },
            Created::Detached(detached) => {
                drop(guard);
                detached.into_held()
            }
            Created::Closed => {
                drop(guard);
                collect_after(swept);
                return self.create_held(&self.provider(p.name), tenant, site, epoch::pin());
            }
        };
        collect_after(swept);
        held
    }

    pub(super) fn circuit_in(
        &self,
        p: &Provider,
        tenant: &str,
        site: Option<&'static Config>,
    ) -> Circuit {
        let guard = p.circuits.guard();
        if let Some(c) = p.circuits.get(tenant, &guard) {
            c.touch();
            return Circuit::clone(&c);
        }
        let (created, swept) = self.create(p, tenant, site, &guard);
        let circuit = match created {
            // Taken under the table's mutex: no sweep evicted it before this first use.
            Created::Mine(_, handle) => handle,
            Created::Theirs(c) => Circuit::clone(&c),
            Created::Detached(c) => c,
            Created::Closed => {
                drop(guard);
                collect_after(swept);
                return self.circuit_in(&self.provider(p.name), tenant, site);
            }
        };
        drop(guard);
        collect_after(swept);
        circuit
    }

    /// The circuit of `tenant` after a lookup missed: stored now (or by a racing creator), or
    /// not stored because the registry is at its cap with nothing evictable (fail open rather
    /// than refuse traffic; documented on the cap). Also says whether a sweep ran: it unlinks
    /// under the caller's pin, which keeps what it unlinked from being freed, so the caller
    /// collects once its pin is gone (see [`collect_after`]).
    #[cold]
    fn create<'g>(
        &self,
        p: &'g Provider,
        tenant: &str,
        site: Option<&'static Config>,
        guard: &'g Guard,
    ) -> (Created<'g>, bool) {
        let (created, swept) = self.create_unseen(p, tenant, site, guard);
        if let Some(hub) = &self.fleet {
            // After the insertion, so a fact the fleet notes meanwhile reaches this circuit
            // either here or through the table (`Hub::note`). A racing creator's circuit is
            // that creator's to report.
            let circuit = match &created {
                Created::Mine(_, handle) => Some(handle),
                Created::Detached(circuit) => Some(circuit),
                Created::Theirs(_) | Created::Closed => None,
            };
            let entry = self.pin_providers().get(p.name).cloned();
            if let (Some(circuit), Some(entry)) = (circuit, entry) {
                // Only the entry the circuit lives in: one a sweep closed is gone for good.
                if std::ptr::eq(Arc::as_ptr(&entry), p) {
                    hub.created(entry, circuit);
                } else {
                    hub.created_unstored(circuit);
                }
            }
        }
        (created, swept)
    }

    /// [`create`](Self::create) without telling the fleet.
    fn create_unseen<'g>(
        &self,
        p: &'g Provider,
        tenant: &str,
        site: Option<&'static Config>,
        guard: &'g Guard,
    ) -> (Created<'g>, bool) {
        let Some(policy) = p.policy_for(site, |config| self.policy(config, p.name)) else {
            return (Created::Closed, false);
        };
        let swept = self.sweep_if_due();
        let (reserved, swept_for_space) = self.reserve();
        let swept = swept || swept_for_space;
        if !reserved {
            // A racing creator may have stored it since the caller's lookup.
            let created = match p.circuits.get(tenant, guard) {
                Some(c) => Created::Theirs(c),
                // An entry closed meanwhile: its successor may have been configured since.
                None if p.circuits.is_closed() => Created::Closed,
                None => Created::Detached(Circuit::from_policy(policy, tenant)),
            };
            return (created, swept);
        }
        let mut mine = None;
        let found = p.circuits.get_or_insert(
            tenant,
            || {
                let c = Circuit::from_policy(policy.clone(), tenant);
                mine = Some(c.clone());
                c
            },
            guard,
        );
        let created = match (found, mine) {
            (Some(c), Some(handle)) => Created::Mine(c, handle),
            (found, None) => {
                // A racing creator's circuit, or the table closed: give the place back.
                self.count.fetch_sub(1, Ordering::Relaxed);
                match found {
                    Some(c) => Created::Theirs(c),
                    None => return (Created::Closed, swept),
                }
            }
            (None, Some(_)) => unreachable!("a closed table makes nothing"),
        };
        // Pairs with the fence in `Provider::configure`: a retuning that linked a new policy
        // after this circuit was made either visits it or is seen here.
        std::sync::atomic::fence(Ordering::SeqCst);
        if policy.current_is_newer() {
            if let Created::Mine(c, _) | Created::Theirs(c) = &created {
                p.retune(c);
            }
        }
        // The same for a provider-wide circuit turned on or off meanwhile (`Provider::repool_all`).
        if let Created::Mine(c, _) | Created::Theirs(c) = &created {
            if c.pool_flag_is_stale() {
                c.repool();
            }
        }
        (created, swept)
    }
}

/// What [`Registry::create`] made of a lookup's miss.
enum Created<'g> {
    /// Stored by this call, with a handle taken before the table's mutex was let go: no sweep
    /// can evict a circuit between its creation and its creator's first use of it.
    Mine(Found<'g, Circuit>, Circuit),
    /// Stored by a racing creator.
    Theirs(Found<'g, Circuit>),
    /// Not stored: the registry is at its cap with nothing evictable.
    Detached(Circuit),
    /// The provider entry was closed by a sweep meanwhile: look it up again.
    Closed,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::super::tests::providers;
    use super::*;

    #[test]
    fn creators_racing_the_sweep_that_drops_their_provider_lose_no_circuit() {
        let r = Registry::builder().build();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let sweeper = s.spawn(|| {
                let mut sweeps = 0;
                while !done.load(Ordering::Relaxed) {
                    r.evict_idle();
                    sweeps += 1;
                }
                sweeps
            });
            let workers: Vec<_> = (0..2)
                .map(|w| {
                    let r = &r;
                    s.spawn(move || {
                        for i in 0..5_000 {
                            let provider = format!("p{}", i % 7);
                            let tenant = format!("{w}-{i}");
                            let c = r.circuit(&provider, &tenant);
                            c.force_open();
                            // Stored in the entry the registry keeps, not in one it dropped:
                            // the forced-open circuit is never evicted, so it must still be there.
                            assert!(
                                Circuit::ptr_eq(&c, &r.get(&provider, &tenant).unwrap()),
                                "{provider}/{tenant} lost"
                            );
                            assert!(r.remove(&provider, &tenant));
                        }
                    })
                })
                .collect();
            let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
            done.store(true, Ordering::Relaxed);
            for r in results {
                r.unwrap();
            }
            assert!(sweeper.join().unwrap() > 0);
        });
        r.evict_idle();
        r.evict_idle();
        assert_eq!((r.len(), providers(&r)), (0, 0));
    }
}
