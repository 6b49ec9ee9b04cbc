//! The bounds of a registry: the idle sweeps, and the places `max_circuits` reserves.

use std::sync::atomic::Ordering;

use super::Registry;
use crate::circuit::Circuit;
use crate::table::epoch;

impl Registry {
    /// [`evict_idle`](Self::evict_idle) without the collection, for a creation that sweeps
    /// under its own pin and collects after it.
    pub(super) fn sweep(&self) -> usize {
        self.last_sweep_us
            .store(self.time.now_us(), Ordering::Relaxed);
        self.detached_since_sweep.store(0, Ordering::Relaxed);
        let mut evicted = 0;
        let providers = self.pin_providers();
        for p in providers.values() {
            if p.circuits.len() > 0 {
                let n = p.circuits.evict(Circuit::sweep_evictable);
                self.count.fetch_sub(n, Ordering::Relaxed);
                evicted += n;
            }
            self.drop_if_idle(&providers, p);
        }
        evicted
    }

    /// Sweeps (without collecting) if the idle TTL has passed since the last sweep; says
    /// whether it did.
    pub(super) fn sweep_if_due(&self) -> bool {
        let Some(ttl) = self.idle_ttl_us else {
            return false;
        };
        let now = self.time.now_us();
        let last = self.last_sweep_us.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= ttl
            && self
                .last_sweep_us
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep();
            return true;
        }
        false
    }

    /// Reserves a place for a new circuit, under the cap if there is one, sweeping for space
    /// when full; the caller gives it back if it stores nothing. Reserving before storing, by a
    /// compare-and-swap on the count, is what makes the cap exact under concurrency: racing
    /// creators that each saw room could overshoot it. Sweeps for space are spaced out by
    /// creations (one per 1/8 of the cap) so that a full registry of busy circuits does not
    /// sweep on every new tenant. The cap counts circuits in tables, so a sweep makes room as
    /// soon as it unlinks; freeing their memory is left to the caller's collection after its
    /// pin (the second value: whether it swept).
    pub(super) fn reserve(&self) -> (bool, bool) {
        let Some(cap) = self.max_circuits else {
            self.count.fetch_add(1, Ordering::Relaxed);
            return (true, false);
        };
        let take = || {
            self.count
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < cap).then_some(n + 1)
                })
                .is_ok()
        };
        if take() {
            return (true, false);
        }
        let detached = self.detached_since_sweep.fetch_add(1, Ordering::Relaxed);
        if detached % (cap as u64 / 8 + 1) == 0 {
            self.sweep();
            return (take(), true);
        }
        (false, false)
    }
}

/// The collection after a creation, run once the creator's pin is gone (dropped, or turned
/// into a hazard on its circuit): at once and as far as the pins allow when the creation swept,
/// so that what the sweep unlinked is freed now rather than a few registry writes later.
pub(super) fn collect_after(swept: bool) {
    if swept {
        epoch::collect_now();
    } else {
        epoch::collect();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::config::Config;

    /// What the tables hold, read from their own counts: exact for one provider at any moment.
    fn stored(r: &Registry) -> usize {
        let providers = r.providers.pin();
        providers.values().map(|p| p.circuits.len()).sum()
    }

    #[test]
    fn max_circuits_was_overshot_by_racing_new_tenants() {
        for cap in [1, 2, 16, 20] {
            let r = Registry::builder().max_circuits(cap).build();
            // Kept, so `stored` reads one table, whose count is exact at any moment: an entry
            // dropped and made again between two reads of a walk could count twice.
            r.configure("p", Config::default());
            let done = AtomicBool::new(false);
            std::thread::scope(|s| {
                let watcher = s.spawn(|| {
                    let mut seen = 0;
                    while !done.load(Ordering::Relaxed) {
                        let (tables, len) = (stored(&r), r.len());
                        assert!(tables <= cap, "cap {cap}: the table holds {tables}");
                        assert!(len <= cap, "cap {cap}: len() {len}");
                        seen = seen.max(tables);
                    }
                    seen
                });
                let workers: Vec<_> = (0..4)
                    .map(|w| {
                        let r = &r;
                        s.spawn(move || {
                            for i in 0..10_000 {
                                let tenant = format!("{w}-{i}");
                                r.acquire("p", &tenant, None).unwrap().success();
                                // Room comes back by removals and by sweeps for space.
                                if i % 3 == 0 {
                                    r.remove("p", &format!("{w}-{}", i / 2));
                                }
                            }
                        })
                    })
                    .collect();
                let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
                done.store(true, Ordering::Relaxed);
                for r in results {
                    r.unwrap();
                }
                assert!(watcher.join().unwrap() > 0);
            });
            assert!(r.len() <= cap && r.len() == stored(&r), "cap {cap}");
            let mut visited = 0;
            r.for_each(|_| visited += 1);
            assert_eq!(visited, r.len());
        }
    }
}
