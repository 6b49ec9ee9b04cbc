//! Compile-time behaviour of `#[circuit_breaker]`: every supported function shape compiles
//! (`ui/pass`), and every misuse is one clear error at the offending tokens (`ui/fail`).
//!
//! Regenerate the `.stderr` snapshots with
//! `TRYBUILD=overwrite cargo test -p breaker-suite --test ui`, then read the diff: a snapshot is a
//! promise about what the user sees. They depend on the compiler version (made with stable 1.95).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
    // Misuse that only fails without one of breaker's features (`timeout` needs `tokio`); under
    // `--all-features` these compile.
    if cfg!(not(feature = "tokio")) {
        t.compile_fail("tests/ui/fail_no_tokio/*.rs");
    }
}
