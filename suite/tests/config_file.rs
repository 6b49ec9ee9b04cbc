//! Feature `serde`: configs read from files (the README's TOML example as written), checked by
//! the builder, and applied per provider with `Registry::configure_from`.
#![cfg(feature = "serde")]

use std::collections::BTreeMap;
use std::time::Duration;

use breaker::{Config, ManualClock, Outcome, Registry, Window};

/// The first ```toml block of the README, so the documented example is the tested one.
fn readme_toml() -> String {
    let readme = include_str!("../../README.md");
    let start = readme.find("```toml\n").expect("README has a TOML example") + "```toml\n".len();
    let len = readme[start..].find("```").unwrap();
    readme[start..start + len].to_owned()
}

fn parse(text: &str) -> Result<BTreeMap<String, Config>, toml::de::Error> {
    toml::from_str(text)
}

#[test]
fn the_readme_example_parses_into_the_documented_configs() {
    let configs = parse(&readme_toml()).unwrap();
    let openai = &configs["openai"];
    assert_eq!(openai.failure_rate(), Some(0.5));
    assert_eq!(openai.window(), Window::Calls(100));
    assert_eq!(openai.minimum_calls(), 20);
    assert_eq!(openai.open_for(), Duration::from_secs(30));
    assert_eq!(openai.max_open_for(), Duration::from_secs(300));
    assert_eq!(openai.half_open_probes(), 3);
    assert_eq!(openai.consecutive_failures(), None, "a rate policy alone");

    let anthropic = &configs["anthropic"];
    assert_eq!(anthropic.consecutive_failures(), Some(5));
    assert_eq!(anthropic.slow_calls(), Some((Duration::from_secs(10), 0.8)));
    assert_eq!(anthropic.open_for(), Duration::from_secs(90));
    assert_eq!(anthropic.jitter(), 0.1);
    assert_eq!(anthropic.on_abandoned(), Outcome::Ignored);
}

#[test]
fn configure_from_applies_each_provider() {
    let registry = Registry::builder().clock(ManualClock::new()).build();
    registry.configure_from(parse(&readme_toml()).unwrap());
    let c = registry.circuit("anthropic", "acme");
    assert_eq!(c.config().open_for(), Duration::from_secs(90));
    assert_eq!(
        registry.configured("openai").unwrap().window(),
        Window::Calls(100)
    );
    assert_eq!(
        registry.circuit("other", "acme").config(),
        &Config::default(),
        "providers the file does not name keep the default"
    );
}

#[test]
fn an_empty_table_is_the_default_config() {
    assert_eq!(parse("[p]").unwrap()["p"], Config::default());
}

#[test]
fn a_time_window_and_every_duration_spelling() {
    let c = &parse("[p]\nfailure_rate = 0.2\nwindow = \"1m\"\nopen_for = \"1h1m1s250ms\"").unwrap()
        ["p"];
    assert_eq!(c.window(), Window::Time(Duration::from_secs(60)));
    assert_eq!(c.open_for(), Duration::from_millis(3_661_250));
}

/// The error of parsing `[p]` with `body`, as a string.
fn error(body: &str) -> String {
    parse(&format!("[p]\n{body}")).unwrap_err().to_string()
}

#[test]
fn invalid_values_are_errors_naming_their_key() {
    for (body, expected) in [
        (
            "failure_rate = 1.5",
            "invalid `failure_rate` = 1.5: must be in (0, 1]",
        ),
        (
            "consecutive_failures = 0",
            "invalid `consecutive_failures` = 0: must be at least 1",
        ),
        (
            "open_for = \"0s\"",
            "invalid `open_for` = 0s: must be longer than zero",
        ),
        (
            "open_for = \"30x\"",
            "invalid `open_for` = \"30x\": expected a number followed by a unit",
        ),
        (
            "window = \"1s1s\"",
            "invalid `window` = \"1s1s\": expected a number",
        ),
        ("window = 0", "invalid `window` = 0 calls"),
        (
            "slow_call = \"2s\"\nslow_call_rate = 2.0",
            "invalid `slow_call_rate` = 2: must be in (0, 1]",
        ),
        (
            "slow_call_rate = 0.5",
            "invalid `slow_call_rate` = 0.5: needs `slow_call`",
        ),
        (
            "backoff = 0.5",
            "invalid `backoff` = 0.5: must be a finite number of at least 1",
        ),
        (
            "open_for = \"10m\"\nmax_open_for = \"1m\"",
            "invalid `max_open_for` = 60s",
        ),
        (
            "on_abandoned = \"maybe\"",
            "invalid `on_abandoned` = \"maybe\": must be \"failure\"",
        ),
        (
            "half_open_probes = 70000",
            "invalid `half_open_probes` = 70000: must be at most 65535",
        ),
    ] {
        let err = error(body);
        assert!(err.contains(expected), "{body:?}: {err}");
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_errors() {
    let err = error("open_fro = \"30s\"");
    assert!(err.contains("unknown field `open_fro`"), "{err}");
    let err = error("open_for = 30");
    assert!(err.contains("open_for"), "{err}");
    let err = error("window = true");
    assert!(
        err.contains("a number of calls or a duration string"),
        "{err}"
    );
}
