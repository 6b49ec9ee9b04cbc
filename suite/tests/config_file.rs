//! Feature `serde`: configs read from files (the README's TOML example as written), checked by
//! the builder, and applied per provider with `Registry::configure_from`.
#![cfg(feature = "serde")]

use std::collections::BTreeMap;
use std::time::Duration;

use breaker::{Config, ManualClock, Outcome, Registry, Window};

/// The README's `breaker.toml` example, so the documented example is the tested one.
fn readme_toml() -> String {
    let readme = include_str!("../../README.md");
    let fence = "```toml\n# breaker.toml";
    let start = readme
        .find(fence)
        .expect("README has a breaker.toml example")
        + "```toml\n".len();
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
    assert_eq!(anthropic.probe_timeout(), Duration::from_secs(120));
    assert_eq!(
        openai.probe_timeout(),
        Duration::from_secs(60),
        "the default"
    );
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
fn a_deadline_and_what_a_caller_leaving_counts_as() {
    let c = &parse("[p]\ntimeout = \"2s\"\non_cancel = \"failure\"").unwrap()["p"];
    assert_eq!(c.timeout(), Some(std::time::Duration::from_secs(2)));
    assert_eq!(c.on_cancel(), breaker::Outcome::Failure);
    assert_eq!(parse("[p]").unwrap()["p"].timeout(), None);
}

#[test]
fn a_bulkhead() {
    assert_eq!(
        parse("[p]\nmax_in_flight = 64").unwrap()["p"].max_in_flight(),
        Some(64)
    );
    assert!(error("max_in_flight = 0").contains("invalid `max_in_flight` = 0: must be at least 1"));
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
            "probe_timeout = \"0s\"",
            "invalid `probe_timeout` = 0s: must be longer than zero",
        ),
        (
            "on_abandoned = \"maybe\"",
            "invalid `on_abandoned` = \"maybe\": must be \"failure\"",
        ),
        (
            "timeout = \"0s\"",
            "invalid `timeout` = 0s: must be longer than zero",
        ),
        (
            "on_cancel = \"left\"",
            "invalid `on_cancel` = \"left\": must be \"failure\"",
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

/// The line (1-based) where toml puts `text`'s error.
fn error_line(text: &str) -> usize {
    let err = parse(text).unwrap_err();
    let span = err.span().expect("toml knows where the error is");
    text[..span.start].matches('\n').count() + 1
}

/// A bad value is reported at its key's line, not at the table's header: each value is checked as
/// it is read (it used to be checked with the whole table).
#[test]
fn a_bad_value_is_reported_at_its_keys_line() {
    let text = "[p]\nfailure_rate = 0.5\nopen_for = \"30x\"\n";
    assert_eq!(error_line(text), 3, "{}", parse(text).unwrap_err());
    for (body, key) in [
        ("jitter = 1.5", "jitter"),
        ("backoff = 0.5", "backoff"),
        ("failure_rate = 2.0", "failure_rate"),
        ("window = 0", "window"),
        ("window = \"1x\"", "window"),
        ("half_open_probes = 0", "half_open_probes"),
        ("on_abandoned = \"maybe\"", "on_abandoned"),
        ("slow_call = \"0s\"", "slow_call"),
        ("max_open_for = \"0s\"", "max_open_for"),
    ] {
        let text = format!("[p]\nminimum_calls = 5\n\n{body}\n");
        assert_eq!(
            error_line(&text),
            4,
            "{body}: {}",
            parse(&text).unwrap_err()
        );
        assert!(
            parse(&text)
                .unwrap_err()
                .to_string()
                .contains(&format!("invalid `{key}`")),
            "{body}: {}",
            parse(&text).unwrap_err()
        );
    }
}

/// Values checked alone are judged beside the most permissive partners: these combinations are
/// valid, and a combination that is not is still an error (of the whole table).
#[test]
fn values_valid_together_are_not_rejected_alone() {
    let c = &parse("[p]\nopen_for = \"5s\"\nmax_open_for = \"10s\"\nhalf_open_probes = 3\nhalf_open_successes = 3\nfailure_rate = 0.5\nwindow = \"1m\"\nminimum_calls = 500").unwrap()["p"];
    assert_eq!(c.max_open_for(), Duration::from_secs(10));
    assert_eq!(c.half_open_successes(), 3);
    assert_eq!(c.minimum_calls(), 500);
    let err = error("open_for = \"10m\"\nmax_open_for = \"1m\"");
    assert!(err.contains("invalid `max_open_for` = 60s"), "{err}");
}

/// A provider's table with a `provider_wide` section (issue 19), read as `ProviderConfig`s and
/// applied with `configure_providers_from`; a plain `Config` refuses the section.
#[test]
fn a_provider_wide_section_configures_the_provider_circuit() {
    use breaker::ProviderConfig;

    let text = r#"
[openai]
consecutive_failures = 5

[openai.provider_wide]
failure_rate = 0.5
window = 50
minimum_calls = 20
distinct_tenants = 3
open_for = "30s"
max_open_for = "5m"
backoff = 2.0

[anthropic]
consecutive_failures = 3
"#;
    let configs: BTreeMap<String, ProviderConfig> = toml::from_str(text).unwrap();
    let wide = configs["openai"].provider_wide.clone().unwrap();
    assert_eq!(wide.window(), Window::Calls(50));
    assert_eq!(wide.distinct_tenants(), 3);
    assert_eq!(
        wide.circuit_config().max_open_for(),
        Duration::from_secs(300)
    );
    assert!(configs["anthropic"].provider_wide.is_none());

    let registry = Registry::builder().clock(ManualClock::new()).build();
    registry.configure_providers_from(configs);
    assert_eq!(registry.provider_wide("openai"), Some(wide));
    assert!(registry.provider_circuit("anthropic").is_none());
    assert_eq!(
        registry
            .configured("anthropic")
            .unwrap()
            .consecutive_failures(),
        Some(3)
    );

    let err = toml::from_str::<BTreeMap<String, ProviderConfig>>(
        "[openai.provider_wide]\ndistinct_tenants = 0\n",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid `provider_wide.distinct_tenants` = 0"),
        "{err}"
    );
    let err = toml::from_str::<BTreeMap<String, ProviderConfig>>(
        "[openai.provider_wide]\ndistinct = 3\n",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `distinct`"),
        "{err}"
    );
    let err = parse(text).unwrap_err();
    assert!(err.to_string().contains("ProviderConfig"), "{err}");
}

/// The README's `providers.toml` example (provider-wide circuits) parses as documented.
#[test]
fn the_readme_provider_wide_example_parses() {
    let readme = include_str!("../../README.md");
    let fence = "```toml\n# providers.toml";
    let start = readme
        .find(fence)
        .expect("README has a providers.toml example")
        + "```toml\n".len();
    let len = readme[start..].find("```").unwrap();
    let configs: BTreeMap<String, breaker::ProviderConfig> =
        toml::from_str(&readme[start..start + len]).unwrap();
    let wide = configs["openai"].provider_wide.clone().unwrap();
    assert_eq!(
        wide,
        breaker::ProviderWide::default(),
        "the README shows the defaults"
    );
    assert_eq!(configs["openai"].config.consecutive_failures(), Some(5));
}
