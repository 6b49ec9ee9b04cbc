//! A circuit's policy: its validated config with the clock, provider and listeners it runs on,
//! and the chain that retunings append to.

use std::sync::Arc;

use crate::classify::Outcome;
use crate::clock::Timebase;
use crate::config::{Config, Window};
use crate::event::Listeners;
use crate::provider::pool::Pool;
use crate::sync::{AtomicPtr, Ordering};
use crate::window::Trips;

/// A validated config with the clock its circuits read. Shared by every circuit built from it, so
/// a circuit carries one pointer for both.
///
/// Retuning (`Registry::configure`) never changes a policy: it links a new one after it
/// ([`supersede`](Self::supersede)), and circuits read the config of the last policy of their
/// chain ([`current`](Self::current)). A circuit keeps the head of its chain, which keeps every
/// later policy alive, so a `&Config` read from any of them stays valid as long as the circuit.
/// The registry holds only a provider's last policy (its chain's tail), so a policy that a
/// retuning replaced costs its few hundred bytes only while a circuit made before that retuning
/// lives.
#[derive(Debug)]
pub(crate) struct Policy {
    pub(crate) config: Config,
    pub(crate) time: Arc<Timebase>,
    /// The provider of every circuit on this policy: kept here, once, rather than per circuit.
    pub(crate) provider: &'static str,
    /// The registry's listeners; `None` for standalone circuits and registries without any, so
    /// the cold paths that raise events test one `Option` and build nothing.
    pub(crate) events: Option<Arc<Listeners>>,
    pub(super) slow_us: Option<u64>,
    pub(super) consecutive: u32,
    pub(super) probe_timeout_us: u64,
    /// What the window's records need of `config` to tell when a check may trip it, made
    /// once: the record path passes a pointer to it.
    pub(super) trips: Trips,
    /// The provider-wide circuit's pooled window of the provider (registry circuits only): what
    /// a circuit with the `POOLED` flag also tells its outcomes (`circuit/above.rs`).
    /// Set once, by the provider that made the policy.
    pub(crate) pool: std::sync::OnceLock<PoolLink>,
    /// The window of `pool`'s link once it exists, else null: what the call path loads (one
    /// load and a test, not two `OnceLock`s). A std atomic: written once, never by a loom model.
    pooled: std::sync::atomic::AtomicPtr<Pool>,
    /// The policy that replaced this one, if any.
    next: std::sync::OnceLock<Arc<Policy>>,
    /// A later policy of the chain (the last one when it was linked), or null: a shortcut so
    /// that reaching the current policy does not walk every retuning since this one. Only ever
    /// points at a policy reachable from this one through `next`.
    latest: AtomicPtr<Policy>,
}

impl Policy {
    pub(crate) fn new(
        config: Config,
        time: Arc<Timebase>,
        provider: &'static str,
        events: Option<Arc<Listeners>>,
    ) -> Self {
        let slow_us = config
            .slow_call
            .map(|(d, _)| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let consecutive = config.consecutive_failures.unwrap_or(0);
        let probe_timeout_us = u64::try_from(config.probe_timeout.as_micros()).unwrap_or(u64::MAX);
        let trips = Trips {
            minimum_calls: config.minimum_calls,
            failure_rate: config.failure_rate,
        };
        Policy {
            config,
            time,
            provider,
            events,
            slow_us,
            consecutive,
            probe_timeout_us,
            trips,
            pool: std::sync::OnceLock::new(),
            pooled: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
            next: std::sync::OnceLock::new(),
            latest: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Makes `hook` where circuits of this policy pool their outcomes (see [`PoolHook`]); a
    /// provider attaches its own to every policy it hands out, before any circuit is made from
    /// it.
    pub(crate) fn attach_pool(&self, hook: Arc<dyn PoolHook>) {
        let _ = self.pool.set(PoolLink {
            hook,
            pool: std::sync::OnceLock::new(),
        });
    }

    /// The pooled window, once [`cache_pool`](Self::cache_pool) found it: the call path's way
    /// to it.
    #[inline(always)]
    pub(crate) fn pooled(&self) -> Option<&Pool> {
        // SAFETY: null, or the address of the pool in the `Arc` that `self.pool`'s link holds
        // (`PoolLink::pool`, set once, before this pointer was stored with release, and never
        // taken back): it lives as long as `self`.
        unsafe {
            self.pooled
                .load(std::sync::atomic::Ordering::Acquire)
                .as_ref()
        }
    }

    /// Points [`pooled`](Self::pooled) at the link's window, once it exists (the slow path of a
    /// pooled success).
    pub(crate) fn cache_pool(&self) {
        if let Some(pool) = self.pool.get().and_then(PoolLink::pool) {
            self.pooled.store(
                std::ptr::from_ref(pool).cast_mut(),
                std::sync::atomic::Ordering::Release,
            );
        }
    }

    /// The policy circuits made from this one run on now: this one unless it was superseded.
    #[inline]
    pub(crate) fn current(&self) -> &Policy {
        if self.next.get().is_none() {
            return self;
        }
        self.current_slow()
    }

    #[cold]
    #[inline(never)]
    fn current_slow(&self) -> &Policy {
        let latest = self.latest.load(Ordering::Acquire);
        // SAFETY: `latest` is null or points at a policy reachable from `self` through `next`
        // (stored only after that link was made), and links are never undone: `self` keeps it
        // alive as long as `&self` lives.
        let mut p = unsafe { latest.as_ref() }.unwrap_or(self);
        let start: *const Policy = p;
        while let Some(next) = p.next.get() {
            p = next;
        }
        if !std::ptr::eq(start, p) {
            // The registry links a retuning at the tail only (it no longer holds the chain's
            // earlier policies to update their shortcut): the first decision after it updates
            // this one, so later ones take one step again. Reachable from `self`, as required.
            self.latest
                .store(std::ptr::from_ref(p).cast_mut(), Ordering::Release);
        }
        p
    }

    /// Links `new` at the end of this policy's chain (unless it is there already), so that
    /// circuits made from any policy of the chain run on `new` from their next decision. The
    /// caller serializes retunings of one chain (the registry holds its provider's lock).
    pub(crate) fn supersede(&self, new: &Arc<Policy>) {
        let mut tail: &Policy = self;
        loop {
            if std::ptr::eq(tail, &**new) {
                break;
            }
            match tail.next.get() {
                Some(next) => tail = next,
                None => match tail.next.set(new.clone()) {
                    Ok(()) => break,
                    // Linked meanwhile by someone else: go on from there.
                    Err(_) => continue,
                },
            }
        }
        let target = Arc::as_ptr(new).cast_mut();
        let mut p: &Policy = self;
        while !std::ptr::eq(p, &**new) {
            p.latest.store(target, Ordering::Release);
            match p.next.get() {
                Some(next) => p = next,
                None => break,
            }
        }
    }

    /// Whether this policy was superseded.
    pub(crate) fn current_is_newer(&self) -> bool {
        self.next.get().is_some()
    }

    /// Whether a circuit on this policy keeps its calls in flight (see `flight.rs`): for a
    /// bulkhead, or to find calls slower than the slow-call threshold while they hang.
    pub(super) fn keeps_flight(&self) -> bool {
        self.config.max_in_flight.is_some() || self.slow_us.is_some()
    }

    /// The window a circuit on this policy keeps, if any.
    pub(super) fn window_spec(&self) -> Option<Window> {
        self.config.has_window().then_some(self.config.window)
    }
}

/// Where a tenant circuit's outcomes also go when its provider has a provider-wide circuit: the
/// extension point through which the provider (`provider/wide.rs`) sees them, so that the
/// circuit knows nothing of providers.
pub(crate) trait PoolHook: Send + Sync + std::fmt::Debug {
    /// Whether outcomes are pooled now (a circuit's `POOLED` flag follows it).
    fn is_on(&self) -> bool;
    /// Pools `outcome` of `tenant`'s circuit; `false` when the tenant circuit must not record it
    /// (the provider-wide circuit is not closed: the provider's outage is its business).
    fn record(&self, tenant: &str, outcome: Outcome) -> bool;
    /// The pooled window, once made (it never changes after).
    fn pool(&self) -> Option<Arc<Pool>>;
}

/// What a policy's circuits pool into: the provider's hook, for everything that decides, and its
/// window, where the call path counts a success itself while the hook's circuit is closed
/// ([`Pool::success`]: a load and a store to the thread's stripe, no call). The window is the
/// hook's, cached here by the first success that takes the slow path after it was made, so that
/// the call path reaches it without a call through the hook.
#[derive(Debug)]
pub(crate) struct PoolLink {
    pub(crate) hook: Arc<dyn PoolHook>,
    pub(crate) pool: std::sync::OnceLock<Arc<Pool>>,
}

impl PoolLink {
    /// The hook's window, cached on first use.
    pub(crate) fn pool(&self) -> Option<&Pool> {
        if let Some(pool) = self.pool.get() {
            return Some(pool);
        }
        let pool = self.hook.pool()?;
        Some(self.pool.get_or_init(|| pool))
    }
}

impl Drop for Policy {
    /// Unlinks the chain one policy at a time: a long chain dropped recursively could overflow
    /// the stack.
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(policy) = next {
            next = match Arc::try_unwrap(policy) {
                Ok(mut policy) => policy.next.take(),
                Err(_) => None,
            };
        }
    }
}
