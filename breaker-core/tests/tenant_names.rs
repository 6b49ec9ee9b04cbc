//! Tenant names are arbitrary strings from requests: empty, huge, non-ASCII, control characters.
//! Each must get its own circuit, be found again by `get`, and be reported verbatim.

use breaker_core::{Config, ManualClock, Registry, State};

fn names() -> Vec<String> {
    vec![
        String::new(),
        " ".into(),
        "\0".into(),
        "a\0b".into(),
        "tenant\nwith\r\nnewlines\t".into(),
        "ünïcödé".into(),
        "租户".into(),
        "テナント".into(),
        "🦀🔥".into(),
        "עברית".into(),
        "e\u{301}".into(), // "é" as e + combining accent: distinct from the precomposed one
        "é".into(),
        "\u{feff}bom".into(),
        "x".repeat(1 << 20), // 1 MiB
        "é".repeat(1 << 19), // 1 MiB of two-byte characters
        format!("{}!", "x".repeat(1 << 20)),
    ]
}

#[test]
fn odd_tenant_names_get_their_own_circuits() {
    let registry = Registry::builder()
        .default_config(Config::builder().consecutive_failures(1).build().unwrap())
        .clock(ManualClock::new())
        .build();
    let names = names();
    // Trip every other tenant; the rest must stay closed.
    for (i, name) in names.iter().enumerate() {
        let c = registry.circuit("provider", name);
        assert_eq!(c.tenant(), name.as_str());
        if i % 2 == 0 {
            c.try_acquire().unwrap().failure();
        } else {
            c.try_acquire().unwrap().success();
        }
    }
    assert_eq!(registry.len(), names.len());
    for (i, name) in names.iter().enumerate() {
        let c = registry.get("provider", name).expect("found again");
        let expected = if i % 2 == 0 {
            State::Open
        } else {
            State::Closed
        };
        assert_eq!(c.state(), expected, "tenant #{i}");
        // The same name as a provider is a different circuit.
        assert!(registry.get(name, "provider").is_none());
    }
    let snapshot = registry.snapshot();
    assert_eq!(snapshot.len(), names.len());
    for s in &snapshot {
        let i = names.iter().position(|n| *n == s.tenant).expect("verbatim");
        assert_eq!(s.provider, "provider");
        assert_eq!(s.state == State::Open, i % 2 == 0);
    }
}

#[test]
fn odd_provider_names_work_too() {
    let registry = Registry::builder().clock(ManualClock::new()).build();
    for name in names() {
        let c = registry.circuit(&name, &name);
        assert_eq!((c.provider(), c.tenant()), (name.as_str(), name.as_str()));
        let open = c.try_acquire().map(|p| p.success());
        assert!(open.is_ok());
        let err = {
            c.force_open();
            c.try_acquire().unwrap_err()
        };
        assert_eq!(err.tenant(), name.as_str());
        // Display of a huge or odd name must not panic (it may be long).
        assert!(!err.to_string().is_empty());
    }
}

/// A rejection copies its tenant name (inline up to 23 bytes, shared by reference count beyond):
/// it must stay readable after its circuit and registry are gone, and in clones sent to other
/// threads.
#[test]
fn rejections_keep_their_tenant_names_after_the_circuit_is_gone() {
    let mut names = names();
    names.extend(["x".repeat(22), "x".repeat(23), "x".repeat(24)]);
    let errors: Vec<_> = {
        let registry = Registry::builder().clock(ManualClock::new()).build();
        names
            .iter()
            .map(|name| {
                let c = registry.circuit("provider", name);
                c.force_open();
                c.try_acquire().unwrap_err()
            })
            .collect()
    };
    let clones = errors.clone();
    drop(errors);
    std::thread::scope(|s| {
        for (err, name) in clones.into_iter().zip(&names) {
            s.spawn(move || {
                let copy = err.clone();
                drop(err);
                assert_eq!(copy.tenant(), name.as_str());
                assert_eq!(copy.provider(), "provider");
                assert_eq!(copy.state(), State::ForcedOpen);
            });
        }
    });
}
