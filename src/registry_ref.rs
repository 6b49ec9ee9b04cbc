//! How the integrations that serve a registry (the tower layer, the dashboard) hold it.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, LazyLock};

use breaker_core::Registry;

/// The registry a layer takes its circuits from (`CircuitBreakerLayer::registry`, feature
/// `tower`) or a dashboard shows (`breaker::dashboard::router`, feature `dashboard`): a
/// `&'static Registry` ([`Registry::global()`], a `static` one, a `&'static LazyLock<Registry>`)
/// or an `Arc<Registry>`.
///
/// ```
/// use std::sync::{Arc, LazyLock};
/// # #[cfg(feature = "tower")]
/// use breaker::tower::RegistryRef;
/// # #[cfg(not(feature = "tower"))]
/// # use breaker::dashboard::RegistryRef;
/// use breaker::Registry;
///
/// static GATEWAY: LazyLock<Registry> = LazyLock::new(Registry::default);
/// let _: [RegistryRef; 3] = [
///     Registry::global().into(),
///     (&GATEWAY).into(),
///     Arc::new(Registry::default()).into(),
/// ];
/// ```
#[derive(Clone)]
pub struct RegistryRef(Held);

#[derive(Clone)]
enum Held {
    Static(&'static Registry),
    Shared(Arc<Registry>),
}

impl From<&'static Registry> for RegistryRef {
    fn from(registry: &'static Registry) -> Self {
        RegistryRef(Held::Static(registry))
    }
}

impl From<&'static LazyLock<Registry>> for RegistryRef {
    fn from(registry: &'static LazyLock<Registry>) -> Self {
        RegistryRef(Held::Static(registry))
    }
}

impl From<Arc<Registry>> for RegistryRef {
    fn from(registry: Arc<Registry>) -> Self {
        RegistryRef(Held::Shared(registry))
    }
}

impl fmt::Debug for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RegistryRef").field(&**self).finish()
    }
}

impl Deref for RegistryRef {
    type Target = Registry;

    fn deref(&self) -> &Registry {
        match &self.0 {
            Held::Static(r) => r,
            Held::Shared(r) => r,
        }
    }
}
