//! The registry's side of provider-wide circuits: setting them up, turning them off, and
//! handing them out. What they are and do lives in `provider/` (`wide.rs`, `pool.rs`).

use super::Registry;
use crate::circuit::Circuit;
use crate::provider::settings::{ProviderConfig, ProviderWide};

impl Registry {
    /// Puts a provider-wide circuit above `provider`'s tenant circuits (see [`ProviderWide`]),
    /// or retunes the one it has: its state is kept (a running open period keeps its deadline,
    /// the backoff level and the probes in flight are kept; the new open-period settings apply
    /// from its next decision, the thresholds from the next failure), and its pooled window too
    /// unless the window's kind or size changes. Existing tenant circuits pool their outcomes
    /// from their next call on. Retuning to equal settings does nothing.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{ProviderWide, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.configure_provider_wide("openai", ProviderWide::builder().distinct_tenants(5).build()?);
    /// assert_eq!(registry.provider_wide("openai").unwrap().distinct_tenants(), 5);
    /// assert!(registry.remove_provider_wide("openai"));
    /// assert!(registry.provider_circuit("openai").is_none());
    /// # Ok::<(), breaker::ConfigError>(())
    /// ```
    pub fn configure_provider_wide(&self, provider: &str, settings: ProviderWide) {
        let p = loop {
            let p = self.provider(provider);
            // Kept even without circuits, as a configured provider is.
            if p.circuits.hold_open() {
                break p;
            }
        };
        p.configure_wide(settings, &self.time, |config| self.policy(config, p.name));
        if let (Some(hub), Some(circuit)) = (&self.fleet, p.wide_circuit()) {
            // Like a tenant's circuit: the fleet finds it (tenant `PROVIDER_WIDE_TENANT`), and
            // what other replicas shared of it before is applied now.
            hub.created(p.clone(), &circuit);
        }
    }

    /// Turns `provider`'s provider-wide circuit off: its tenants are admitted by their own
    /// circuits only (an open provider circuit no longer rejects anyone) and their outcomes are no
    /// longer pooled; its pooled window is emptied. The provider circuit keeps its state, without
    /// an event (a reset would reach the other replicas of a fleet): turned on again, an open one
    /// still rejects until its period ends. Returns whether it was on.
    pub fn remove_provider_wide(&self, provider: &str) -> bool {
        let providers = self.pin_providers();
        providers.get(provider).is_some_and(|p| p.remove_wide())
    }

    /// The settings of `provider`'s provider-wide circuit, if it has one.
    pub fn provider_wide(&self, provider: &str) -> Option<ProviderWide> {
        let providers = self.pin_providers();
        providers.get(provider)?.wide_settings()
    }

    /// `provider`'s provider-wide circuit, if it has one: a handle like any circuit's
    /// ([`state`](Circuit::state), [`metrics`](Circuit::metrics),
    /// [`force_open`](Circuit::force_open), [`reset`](Circuit::reset) work on it). Its tenant is
    /// [`PROVIDER_WIDE_TENANT`](crate::PROVIDER_WIDE_TENANT). Its metrics' window counts are
    /// empty: the pooled window is its tenants' (see
    /// [`provider_wide_totals`](Self::provider_wide_totals)).
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{ProviderWide, Registry, State};
    ///
    /// let registry = Registry::builder().provider_wide("openai", ProviderWide::default()).build();
    /// let wide = registry.provider_circuit("openai").unwrap();
    /// wide.force_open();
    /// assert!(registry.acquire("openai", "acme", None).unwrap_err().is_provider_wide());
    /// wide.reset();
    /// assert_eq!(wide.state(), State::Closed);
    /// registry.acquire("openai", "acme", None)?.success();
    /// # Ok::<(), breaker::CircuitOpen>(())
    /// ```
    pub fn provider_circuit(&self, provider: &str) -> Option<Circuit> {
        let providers = self.pin_providers();
        providers.get(provider)?.wide_circuit()
    }

    /// The names of the providers that have a provider-wide circuit on, sorted: those too that
    /// hold no tenant circuit yet (which [`for_each`](Self::for_each) never visits), for a page
    /// or an admin endpoint that lists providers. One pass over the providers, not their circuits.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{ProviderWide, Registry};
    ///
    /// let registry = Registry::builder().provider_wide("openai", ProviderWide::default()).build();
    /// registry.configure_provider_wide("anthropic", ProviderWide::default());
    /// registry.circuit("mistral", "acme");
    /// assert_eq!(registry.provider_wide_providers(), ["anthropic", "openai"]);
    /// ```
    pub fn provider_wide_providers(&self) -> Vec<String> {
        let providers = self.pin_providers();
        let mut names: Vec<String> = providers
            .values()
            .filter(|p| p.wide().is_some())
            .map(|p| p.name.to_owned())
            .collect();
        drop(providers);
        names.sort_unstable();
        names
    }

    /// What `provider`'s pooled window holds now: (calls, failures, distinct failing tenants),
    /// if it has a provider-wide circuit.
    pub fn provider_wide_totals(&self, provider: &str) -> Option<(u32, u32, u32)> {
        let providers = self.pin_providers();
        let totals = providers.get(provider)?.wide_totals()?;
        Some((totals.calls, totals.failures, totals.failing_tenants))
    }

    /// Applies what a config file says about `provider`: [`configure`](Self::configure)s its
    /// circuits and sets its provider-wide circuit (or turns it off when the section is absent),
    /// keeping the state of what did not change.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use breaker::{Config, ProviderConfig, ProviderWide, Registry};
    ///
    /// let registry = Registry::default();
    /// registry.configure_provider("openai", ProviderConfig::new(Config::default(), Some(ProviderWide::default())));
    /// assert!(registry.provider_circuit("openai").is_some());
    /// registry.configure_provider("openai", Config::default().into());
    /// assert!(registry.provider_circuit("openai").is_none());
    /// ```
    pub fn configure_provider(&self, provider: &str, config: ProviderConfig) {
        self.configure(provider, config.config);
        match config.provider_wide {
            Some(wide) => self.configure_provider_wide(provider, wide),
            None => {
                self.remove_provider_wide(provider);
            }
        }
    }

    /// [`configure_provider`](Self::configure_provider) for every provider of `configs`, for
    /// example a map read from a config file whose provider tables may have a `provider_wide`
    /// section (feature `serde`; see the README). Providers the map does not name are left alone.
    ///
    /// ```
    /// # use breaker_core as breaker;
    /// use std::collections::BTreeMap;
    /// use breaker::{Config, ProviderConfig, ProviderWide, Registry};
    ///
    /// let mut configs = BTreeMap::new();
    /// configs.insert("openai", ProviderConfig::new(Config::default(), Some(ProviderWide::default())));
    /// configs.insert("anthropic", Config::default().into());
    /// let registry = Registry::default();
    /// registry.configure_providers_from(configs);
    /// assert!(registry.provider_circuit("openai").is_some());
    /// assert!(registry.provider_circuit("anthropic").is_none());
    /// ```
    pub fn configure_providers_from<K: AsRef<str>>(
        &self,
        configs: impl IntoIterator<Item = (K, ProviderConfig)>,
    ) {
        for (provider, config) in configs {
            self.configure_provider(provider.as_ref(), config);
        }
    }
}
