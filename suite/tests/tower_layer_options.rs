//! `CircuitBreakerLayer::registry` takes a `&'static Registry` (the global one, a static, a
//! `LazyLock`) as well as an `Arc<Registry>`, and `CircuitBreakerLayer::config` sets the config of
//! the circuits a layer creates, unless operations configured the provider.
#![cfg(feature = "tower")]

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use breaker::tower::CircuitBreakerLayer;
use breaker::{Config, ManualClock, Registry, State};
use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};

/// The tenant is the request.
type Key = fn(&String) -> (Cow<'_, str>, Cow<'_, str>);

/// A stack whose every call fails.
fn failing_stack(
    layer: CircuitBreakerLayer<Key>,
) -> impl tower::Service<String, Response = (), Error = BoxError, Future: Send> + Clone {
    ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(|_tenant: String| async {
            Err::<(), _>(BoxError::from("refused"))
        }))
}

// `&String` because the request is a `String`: the key takes the request by reference.
#[allow(clippy::ptr_arg)]
fn key(tenant: &String) -> (Cow<'_, str>, Cow<'_, str>) {
    (Cow::Borrowed("options"), Cow::Borrowed(tenant.as_str()))
}

fn one_failure_trips() -> Config {
    Config::builder().consecutive_failures(1).build().unwrap()
}

static LAZY: LazyLock<Registry> = LazyLock::new(|| {
    Registry::builder()
        .default_config(one_failure_trips())
        .build()
});

#[tokio::test]
async fn a_static_registry_and_a_lazy_lock_are_accepted() {
    let layer = CircuitBreakerLayer::new(key as Key).registry(&LAZY);
    let _ = failing_stack(layer).oneshot("lazy".to_owned()).await;
    assert_eq!(LAZY.circuit("options", "lazy").state(), State::Open);

    let global = CircuitBreakerLayer::new(key as Key)
        .registry(Registry::global())
        .config(one_failure_trips());
    let _ = failing_stack(global)
        .oneshot("global-tenant".to_owned())
        .await;
    assert_eq!(
        Registry::global()
            .circuit("options", "global-tenant")
            .state(),
        State::Open
    );
}

#[tokio::test]
async fn the_layers_config_makes_its_circuits_unless_the_provider_is_configured() {
    let registry = Arc::new(Registry::builder().clock(ManualClock::new()).build());
    let layer = CircuitBreakerLayer::new(key as Key)
        .registry(Arc::clone(&registry))
        .config(
            Config::builder()
                .consecutive_failures(2)
                .open_for(Duration::from_secs(7))
                .build()
                .unwrap(),
        );
    let stack = failing_stack(layer);
    for _ in 0..2 {
        let _ = stack.clone().oneshot("acme".to_owned()).await;
    }
    let acme = registry.circuit("options", "acme");
    assert_eq!(
        acme.state(),
        State::Open,
        "tripped after the layer's 2 failures"
    );
    assert_eq!(acme.config().open_for(), Duration::from_secs(7));

    // Operations keep the last word: a configured provider's new circuits ignore the layer's.
    registry.configure("options", one_failure_trips());
    let _ = stack.clone().oneshot("globex".to_owned()).await;
    let globex = registry.circuit("options", "globex");
    assert_eq!(globex.state(), State::Open, "tripped after 1 failure");
    assert_eq!(globex.config().open_for(), Duration::from_secs(30));
}
