//! `cargo run --example quickstart` on a fresh clone builds every crate of `breaker`'s normal,
//! build and dev-dependency graph (examples link all dev-dependencies). It built 145 crates in
//! almost two minutes before the heavy dependencies moved to this package; this keeps it quick.

use std::collections::BTreeSet;
use std::process::Command;

/// The most crates a newcomer's first `cargo run --example quickstart` may compile.
const LIMIT: usize = 30;

#[test]
fn quickstart_builds_at_most_30_crates() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--manifest-path",
            root,
            "-p",
            "breaker",
        ])
        .args([
            "-e",
            "normal,build,dev",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let crates: BTreeSet<&str> = std::str::from_utf8(&output.stdout)
        .expect("utf-8")
        .lines()
        // A crate seen before is printed again with " (*)"; a proc-macro with " (proc-macro)".
        .filter_map(|line| line.split(" (").next())
        .filter(|name| !name.is_empty())
        .collect();
    assert!(
        crates.len() <= LIMIT,
        "the quick start builds {} crates (at most {LIMIT}): {crates:?}",
        crates.len()
    );
}
