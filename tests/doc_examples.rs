//! Every example in `breaker`'s documentation compiles as written in an app that depends on
//! `breaker`: the facade re-exports `breaker-core` with `#[doc(inline)]`, so the runtime's examples
//! are rendered in `breaker`'s docs too, and one starting `use breaker_core::..` fails when pasted.
//! Examples may alias the runtime on a hidden line (`# use breaker_core as breaker;`).

use std::path::{Path, PathBuf};

/// The lines of `source`'s doc comments (or of a Markdown file, all of it) inside code blocks
/// that rustdoc shows: hidden lines (`# ...`) are left out. Yields (line number, text).
fn shown_example_lines(source: &str, markdown: bool) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_code = false;
    for (n, line) in source.lines().enumerate() {
        let text = if markdown {
            Some(line)
        } else {
            let t = line.trim_start();
            t.strip_prefix("///").or_else(|| t.strip_prefix("//!"))
        };
        let Some(text) = text else {
            in_code = false;
            continue;
        };
        let text = text.strip_prefix(' ').unwrap_or(text);
        if let Some(lang) = text.trim_start().strip_prefix("```") {
            // A closing fence, or an opening one: only Rust blocks are examples.
            in_code = !in_code && !matches!(lang.trim(), "text" | "toml" | "sh" | "json");
            continue;
        }
        let trimmed = text.trim_start();
        let hidden = trimmed == "#" || trimmed.starts_with("# ");
        if in_code && !hidden {
            out.push((n + 1, text.to_owned()));
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_rendered_example_uses_breaker_core() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("breaker-core/src"), &mut files);
    files.push(root.join("breaker-macros/src/circuit_breaker.md"));
    files.push(root.join("README.md"));
    let mut found = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap();
        let markdown = file.extension().is_some_and(|e| e == "md");
        for (n, line) in shown_example_lines(&source, markdown) {
            if line.contains("breaker_core") {
                found.push(format!("{}:{n}: {line}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "examples that fail in an app depending on `breaker`:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_sees_shown_lines_only() {
    let source = "/// ```\n/// # use breaker_core as breaker;\n/// use breaker_core::State;\n/// ```\n/// breaker_core in prose\n";
    let shown = shown_example_lines(source, false);
    assert_eq!(shown, vec![(3, "use breaker_core::State;".to_owned())]);
}
