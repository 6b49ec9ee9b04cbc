//! One provider's entry in a registry: its tenants' circuits and the policies it hands them.
//!
//! The registry finds providers by name (`registry/providers.rs`); what belongs to one provider
//! lives here, between that map and the circuits it holds: its table of circuits by tenant, the
//! policy new circuits get (the registry default's copy, a call site's, or the last
//! `Registry::configure`'s), and the step of a retuning that links every policy the provider
//! handed out to the new one. Its provider-wide circuit and that circuit's pooled window live
//! in `provider/` (`wide.rs`, `pool.rs`, `settings.rs`).

pub(crate) mod pool;
pub(crate) mod settings;
pub(crate) mod wide;

use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use self::settings::ProviderWide;
use self::wide::{Wide, WideCell, PROVIDER_WIDE_TENANT};
use crate::circuit::{Circuit, Policy, Raw};
use crate::clock::Timebase;
use crate::config::Config;
use crate::table::{Entry, Table};

/// One provider's circuits, keyed by tenant.
pub(crate) type Circuits = Table<Circuit>;

// SAFETY: a circuit handle is its `Shared`: the raw pointer round trip, count and release
// through the epoch are `Shared`'s; the key is the tenant, which never changes.
unsafe impl Entry for Circuit {
    type Raw = Raw;
    #[inline]
    fn into_raw(self) -> *mut Raw {
        Circuit::into_raw(self)
    }
    #[inline]
    unsafe fn from_raw(p: *mut Raw) -> Circuit {
        // SAFETY: the caller's contract.
        unsafe { Circuit::from_raw(p) }
    }
    #[inline(always)]
    fn key(&self) -> &str {
        self.tenant()
    }
}

pub(crate) struct Provider {
    /// Interned: rejections carry it without a reference count.
    pub(crate) name: &'static str,
    /// The provider-wide circuit while it is on, else null: the call path's one extra load
    /// (beside `circuits`, which it reads anyway). Points into `cell`, which never lets it go.
    wide: AtomicPtr<Wide>,
    /// The provider-wide circuit's state word while it is on, else null: what the call path
    /// loads (one load less than through `wide`). Points into the circuit `wide` holds.
    wide_state: AtomicPtr<crate::sync::AtomicU64>,
    /// What every policy this provider hands out points at (its pool hook).
    cell: Arc<WideCell>,
    /// Its circuits by tenant: lock-free lookups, creation under the table's mutex, so two
    /// racing first calls get one circuit (`concurrent_first_use_creates_one_circuit`).
    pub(crate) circuits: Circuits,
    /// The copy of the registry default made with the provider, or the policy of the last
    /// `Registry::configure`, which wins over everything else. Read only when a circuit is
    /// created. Its lock also serializes retunings of the provider's circuits, and is taken
    /// before `sites`'.
    policy: Mutex<Head>,
    /// Policies of `#[circuit_breaker]` call sites, keyed by the address of the site's static
    /// config, so all circuits of one site share one policy. Emptied by the first `configure`,
    /// after which no site's policy is handed out.
    sites: Mutex<Vec<(usize, Arc<Policy>)>>,
}

impl Provider {
    /// A provider without circuits, handing its new circuits `default` (the registry default's
    /// copy) until it is configured or a call site brings its own.
    pub(crate) fn new(name: &'static str, default: Arc<Policy>) -> Self {
        let cell = Arc::new(WideCell::new());
        default.attach_pool(cell.clone());
        Provider {
            name,
            wide: AtomicPtr::new(std::ptr::null_mut()),
            wide_state: AtomicPtr::new(std::ptr::null_mut()),
            cell,
            circuits: Circuits::new(),
            policy: Mutex::new(Head::Default(default)),
            sites: Mutex::new(Vec::new()),
        }
    }

    /// The circuit of `tenant`, if it exists (for a fleet's facts; `fleet.rs`).
    pub(crate) fn find(&self, tenant: &str) -> Option<Circuit> {
        if tenant == PROVIDER_WIDE_TENANT {
            if let Some(wide) = self.cell.on() {
                return Some(wide.circuit.clone());
            }
        }
        let guard = self.circuits.guard();
        self.circuits
            .get(tenant, &guard)
            .map(|c| Circuit::clone(&c))
    }

    /// The config of the last `configure`, if any.
    pub(crate) fn configured(&self) -> Option<Config> {
        let head = lock(&self.policy);
        match &*head {
            Head::Configured(policy) => Some(policy.config.clone()),
            Head::Default(_) => None,
        }
    }

    /// The provider's part of `Registry::configure`: unless `config` is the one configured
    /// already, `make`s its policy, links every policy handed out before to it, and retunes the
    /// provider's circuits, under the provider's lock.
    pub(crate) fn configure(&self, config: Config, make: impl FnOnce(Config) -> Arc<Policy>) {
        let mut head = lock(&self.policy);
        if matches!(&*head, Head::Configured(c) if c.config == config) {
            return;
        }
        let policy = make(config);
        self.attach(&policy);
        // Every policy the provider has handed out leads to the new one. After the first
        // retuning they all lead to the last configured one; before it, the default and each
        // site's are linked, and let go: no new circuit gets them any more, and each lives on
        // only in the circuits made from it.
        match &*head {
            Head::Configured(last) => last.supersede(&policy),
            Head::Default(default) => {
                default.supersede(&policy);
                for (_, site) in lock(&self.sites).drain(..) {
                    site.supersede(&policy);
                }
            }
        }
        *head = Head::Configured(policy);
        // Pairs with the fence in the registry's `create`: a circuit stored meanwhile is either
        // visited here or sees the new policy linked and retunes itself.
        std::sync::atomic::fence(Ordering::SeqCst);
        self.circuits.for_each(Circuit::retune);
    }

    /// The policy of a new circuit of this provider, `make`ing the policy of a call site
    /// (`site`) it meets first; `None` when the provider was closed meanwhile.
    pub(crate) fn policy_for(
        &self,
        site: Option<&'static Config>,
        make: impl FnOnce(Config) -> Arc<Policy>,
    ) -> Option<Arc<Policy>> {
        // Held while a site's policy is added, so that a concurrent `configure` links it too.
        let head = lock(&self.policy);
        let default = match &*head {
            Head::Configured(policy) => return Some(policy.clone()),
            Head::Default(default) => default,
        };
        let mut sites = lock(&self.sites);
        let Some(site) = site else {
            // A circuit asked for by name, not through an annotated call: it gets the config of
            // the provider's first `#[circuit_breaker]` site, if one has run, so that looking a
            // circuit up before the first annotated call cannot bypass the attribute's settings.
            return Some(
                sites
                    .first()
                    .map_or_else(|| default.clone(), |(_, policy)| policy.clone()),
            );
        };
        let key = site as *const Config as usize;
        if let Some((_, policy)) = sites.iter().find(|(k, _)| *k == key) {
            return Some(policy.clone());
        }
        // A site's policy does not hold the entry open: a tower layer with a config passes it
        // for every provider (host) its key names, and each entry would stay for good. An entry
        // dropped once its circuits are gone loses its sites; the next call of each site brings
        // its policy back (an annotated call site holds its provider's entry open through its
        // cache, so circuits asked for by name keep its config). A `configure` holds its entry
        // open, and a creator on an entry closed meanwhile retries on its successor.
        let policy = make(site.clone());
        self.attach(&policy);
        sites.push((key, policy.clone()));
        Some(policy)
    }

    /// Points `policy`, one this provider hands out, at its pool.
    fn attach(&self, policy: &Policy) {
        policy.attach_pool(self.cell.clone());
    }

    /// Retunes `circuit`, one of this provider's, under the lock that serializes retunings.
    pub(crate) fn retune(&self, circuit: &Circuit) {
        let _serial = lock(&self.policy);
        circuit.retune();
    }

    /// The provider-wide circuit, if it is on.
    #[inline(always)]
    pub(crate) fn wide(&self) -> Option<&Wide> {
        // SAFETY: null, or a pointer into `self.cell`'s `OnceLock`, which is set once and never
        // emptied, and which `self` keeps alive; published with release after it was set.
        unsafe { self.wide.load(Ordering::Acquire).as_ref() }
    }

    /// The provider-wide circuit's state word, if it is on: the call path's check.
    #[inline(always)]
    pub(crate) fn wide_state(&self) -> Option<&crate::sync::AtomicU64> {
        // SAFETY: null, or a pointer to the state word of the circuit of the `Wide` in
        // `self.cell`'s `OnceLock`, which is set once and never emptied (so the circuit it
        // holds lives as long as `self`); published with release after it was set.
        unsafe { self.wide_state.load(Ordering::Acquire).as_ref() }
    }

    /// The provider-wide circuit's settings, if it is on.
    pub(crate) fn wide_settings(&self) -> Option<ProviderWide> {
        self.cell.on().map(Wide::settings)
    }

    /// What the provider-wide circuit's pooled window holds, if it is on.
    pub(crate) fn wide_totals(&self) -> Option<self::pool::Totals> {
        self.cell.on().map(Wide::totals)
    }

    /// Calls `f` with every circuit of the provider, its provider-wide circuit last (if on).
    pub(crate) fn for_each_with_wide(&self, mut f: impl FnMut(&Circuit)) {
        self.circuits.for_each(&mut f);
        if let Some(wide) = self.cell.on() {
            f(&wide.circuit);
        }
    }

    /// The provider-wide circuit, if it is on.
    pub(crate) fn wide_circuit(&self) -> Option<Circuit> {
        self.cell.on().map(|w| w.circuit.clone())
    }

    /// Turns the provider-wide circuit on with `settings`, or retunes it (its state kept); the
    /// provider circuit's policies are `make`'s (without the pool hook: it pools nothing).
    pub(crate) fn configure_wide(
        &self,
        settings: ProviderWide,
        time: &Arc<Timebase>,
        make: impl Fn(Config) -> Arc<Policy>,
    ) {
        let _serial = lock(&self.policy);
        let wide = self.cell.configure(settings, time, make);
        self.wide
            .store(std::ptr::from_ref(wide).cast_mut(), Ordering::Release);
        self.wide_state.store(
            std::ptr::from_ref(wide.circuit.state_atom()).cast_mut(),
            Ordering::Release,
        );
        self.repool_all();
    }

    /// Turns the provider-wide circuit off; returns whether it was on.
    pub(crate) fn remove_wide(&self) -> bool {
        let _serial = lock(&self.policy);
        self.wide_state
            .store(std::ptr::null_mut(), Ordering::Release);
        self.wide.store(std::ptr::null_mut(), Ordering::Release);
        let was = self.cell.turn_off();
        self.repool_all();
        was
    }

    /// Brings every circuit's pooled flag in line with the cell. Pairs with the fence in the
    /// registry's `create`: a circuit stored meanwhile is either visited here or sees the cell's
    /// new state and fixes its flag itself.
    fn repool_all(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        self.circuits.for_each(Circuit::repool);
    }
}

/// What a provider hands its new circuits. The provider keeps only this head: every policy it
/// handed out before leads to it (through the chain a retuning appends to), and an older one
/// lives only as long as a circuit made from it.
enum Head {
    /// The registry default's copy, until the first `configure`.
    Default(Arc<Policy>),
    /// The last `configure`'s policy: the tail of every chain of the provider's circuits.
    Configured(Arc<Policy>),
}

/// The provider's mutexes guard plain values that a panic cannot leave half-written.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Provider>();
};

/// For the registry's tests of retunings: what the provider holds of its policies.
#[cfg(all(test, not(loom)))]
impl Provider {
    /// The policy the provider hands its new circuits, not kept alive.
    pub(crate) fn head(&self) -> std::sync::Weak<Policy> {
        match &*lock(&self.policy) {
            Head::Default(p) | Head::Configured(p) => Arc::downgrade(p),
        }
    }

    /// Whether the provider holds no call site's policy.
    pub(crate) fn has_no_sites(&self) -> bool {
        lock(&self.sites).is_empty()
    }
}
