//! The architecture rules of issue 17, checked on the source of `breaker-core` and
//! `breaker-redis`: no import cycle between files, no file importing its own `lib.rs`, the
//! concurrent table a leaf, the event list ignorant of the fleet, and no file over 800 lines of
//! code.
//!
//! A file imports another when its code names an item of the other, by a `use` (any visibility,
//! grouped trees included) or by an inline path (`crate::a::b::C`, `super::x::Y`, `child::Z`).
//! A path resolves to the deepest module file that exists for it (`crate::a::b::C` is `a/b.rs` or
//! `a/b/mod.rs`, else `a.rs` or `a/mod.rs`, else `lib.rs`), so inline `mod` blocks belong to their
//! file. Items are not followed through re-exports: `use crate::Item` imports `lib.rs`.
//! Comments (doc comments too), string and char literals, `mod` declarations and whatever exists
//! only in test builds (items under `#[cfg(test)]` or `#[cfg(all(test, ..))]`: unit tests, loom
//! models, and the files of such modules) are not code here, neither for imports nor for counting
//! lines.
//!
//! The parser is a small tokenizer, not a Rust parser: `#[path]` attributes and macros that build
//! paths from pieces are not followed. Its own tests are at the bottom, so that a checker that
//! stops seeing imports cannot pass silently.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// Lines of code (not blank, not comments, not tests) above which a file holds more than one
/// concern.
const MAX_CODE_LINES: usize = 800;

/// The crates whose files are checked, as folders of the workspace.
const CRATES: [&str; 2] = ["breaker-core", "breaker-redis"];

#[test]
fn no_import_cycle_between_files() {
    let found: Vec<String> = CRATES.iter().flat_map(|c| cycles(&load(c))).collect();
    assert!(
        found.is_empty(),
        "import cycles (each file must be imported only by files it does not reach):\n\n{}",
        found.join("\n")
    );
}

#[test]
fn no_file_imports_its_own_lib_rs() {
    let found: Vec<String> = CRATES.iter().flat_map(|c| lib_imports(&load(c))).collect();
    assert!(
        found.is_empty(),
        "imports of lib.rs (import the module that defines the item instead; lib.rs only \
         re-exports):\n\n{}",
        found.join("\n")
    );
}

#[test]
fn the_table_imports_only_sync_and_contain() {
    let found = forbidden_imports(&load("breaker-core"), &["table"], |to| {
        !matches!(
            to.first().map(String::as_str),
            Some("table" | "sync" | "contain")
        )
    });
    assert!(
        found.is_empty(),
        "table/ must be a leaf: it may import sync.rs, contain.rs and its own files only:\n\n{}",
        found.join("\n")
    );
}

#[test]
fn event_does_not_import_fleet() {
    let found = forbidden_imports(&load("breaker-core"), &["event"], |to| {
        to.first().map(String::as_str) == Some("fleet")
    });
    assert!(
        found.is_empty(),
        "event.rs must not import fleet.rs (the fleet subscribes through a listener slot):\n\n{}",
        found.join("\n")
    );
}

#[test]
fn no_file_over_800_lines_of_code() {
    let mut found = Vec::new();
    for name in CRATES {
        for (file, info) in &load(name).files {
            if info.code_lines > MAX_CODE_LINES {
                found.push(format!(
                    "{name}/src/{file}: {} lines of code (at most {MAX_CODE_LINES})",
                    info.code_lines
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "files with more than one concern (blank lines, comments and test modules not \
         counted):\n\n{}",
        found.join("\n")
    );
}

// ----------------------------------------------------------------------------------------------
// Loading and the import graph
// ----------------------------------------------------------------------------------------------

/// One crate's files, by path below `src/` (`table/epoch.rs`).
struct Crate {
    name: String,
    files: BTreeMap<String, FileInfo>,
}

#[derive(Default)]
struct FileInfo {
    code_lines: usize,
    /// The other files of the crate this one imports, each with the lines that import it
    /// (`event.rs:16: use crate::fleet::{Change, Fleet};`), by line number.
    imports: BTreeMap<String, BTreeSet<(usize, String)>>,
}

/// Reads every `.rs` file below `<workspace>/<name>/src`.
fn load(name: &str) -> Crate {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(name).join("src");
    let mut sources = BTreeMap::new();
    walk(&src, &src, &mut sources);
    assert!(
        sources.contains_key("lib.rs"),
        "no lib.rs in {}",
        src.display()
    );
    analyze(name, &sources)
}

/// Builds the file-level import graph of a crate from its sources (path below `src/` → text).
fn analyze(name: &str, sources: &BTreeMap<String, String>) -> Crate {
    let scans: BTreeMap<&String, Scan> = sources
        .iter()
        .map(|(file, text)| (file, scan(text, &module_of(file))))
        .collect();
    // Files of test modules (`#[cfg(test)] mod tests;`) are tests, not architecture.
    let tests: Vec<&Vec<String>> = scans.values().flat_map(|s| &s.test_modules).collect();
    let mut files = BTreeMap::new();
    let is_test = |file: &str| tests.iter().any(|m| module_of(file).starts_with(m));
    for (file, scan) in &scans {
        if is_test(file) {
            continue;
        }
        let text = &sources[*file];
        let lines: Vec<&str> = text.lines().collect();
        let mut info = FileInfo {
            code_lines: scan.code_lines,
            ..FileInfo::default()
        };
        for import in &scan.imports {
            let target = file_of(&import.path, sources);
            if target != **file && !is_test(&target) {
                let text = lines[import.first - 1..import.last]
                    .iter()
                    .map(|l| l.trim());
                let text = text.collect::<Vec<_>>().join(" ");
                let line = format!("{file}:{}: {text}", import.first);
                info.imports
                    .entry(target)
                    .or_default()
                    .insert((import.first, line));
            }
        }
        files.insert(file.to_string(), info);
    }
    Crate {
        name: name.to_string(),
        files,
    }
}

/// The module path of a file: `lib.rs` → `[]`, `a/b.rs` and `a/b/mod.rs` → `[a, b]`.
fn module_of(file: &str) -> Vec<String> {
    let mut path: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
        path.pop();
    }
    path
}

/// The file that holds the item at an absolute module path: the deepest prefix of the path
/// that has a file of its own (`a/b.rs` or `a/b/mod.rs`), else `lib.rs`.
fn file_of(path: &[String], sources: &BTreeMap<String, String>) -> String {
    for len in (1..=path.len()).rev() {
        let stem = path[..len].join("/");
        for file in [format!("{stem}.rs"), format!("{stem}/mod.rs")] {
            if sources.contains_key(&file) {
                return file;
            }
        }
    }
    "lib.rs".to_string()
}

// ----------------------------------------------------------------------------------------------
// The rules
// ----------------------------------------------------------------------------------------------

/// Every import of `lib.rs` by another file of the crate.
fn lib_imports(krate: &Crate) -> Vec<String> {
    let mut found = Vec::new();
    for (file, info) in &krate.files {
        if let Some(lines) = info.imports.get("lib.rs") {
            found.push(format!(
                "{}/src/{file} imports lib.rs:\n{}",
                krate.name,
                indent(lines)
            ));
        }
    }
    found
}

/// The imports of files in the modules `from` (a module path prefix: `["table"]` is `table.rs`,
/// `table/mod.rs` and everything below `table/`) that `forbidden` refuses, given the imported
/// file's module path.
fn forbidden_imports(
    krate: &Crate,
    from: &[&str],
    forbidden: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let from: Vec<String> = from.iter().map(|s| s.to_string()).collect();
    let mut found = Vec::new();
    for (file, info) in &krate.files {
        if !module_of(file).starts_with(&from) {
            continue;
        }
        for (to, lines) in &info.imports {
            if forbidden(&module_of(to)) {
                found.push(format!(
                    "{}/src/{file} -> {to}:\n{}",
                    krate.name,
                    indent(lines)
                ));
            }
        }
    }
    found
}

/// Every cycle of imports between files, one message per set of files that import each other
/// (a strongly connected component): the files, a cycle through each import among them as a
/// chain of files, and the lines that make each import. Imports of `lib.rs` are left out: they
/// are cycles too (lib.rs re-exports everything), reported on their own by `lib_imports`.
fn cycles(krate: &Crate) -> Vec<String> {
    let edges: BTreeMap<&str, Vec<&str>> = krate
        .files
        .iter()
        .map(|(f, info)| {
            let to = info
                .imports
                .keys()
                .map(String::as_str)
                .filter(|t| *t != "lib.rs");
            (f.as_str(), to.collect())
        })
        .collect();
    let mut found = Vec::new();
    for component in strongly_connected(&edges) {
        if component.len() < 2 {
            continue;
        }
        // The shortest cycle through each import of the component: together they show every
        // import that has to go.
        let mut chains = BTreeSet::new();
        let mut used = BTreeSet::new();
        for &from in &component {
            for &to in edges[from].iter().filter(|t| component.contains(*t)) {
                let mut chain = vec![from];
                chain.extend(shortest_path(&edges, &component, to, from));
                for pair in chain.windows(2) {
                    used.insert((pair[0], pair[1]));
                }
                // Rotate so the same cycle found from another import reads the same.
                let start = (0..chain.len() - 1).min_by_key(|&i| chain[i]).unwrap();
                let mut rotated: Vec<&str> = chain[start..chain.len() - 1].to_vec();
                rotated.extend(&chain[..=start]);
                chains.insert(rotated.join(" -> "));
            }
        }
        let mut message = format!(
            "{}: an import cycle among {} files ({}):\n",
            krate.name,
            component.len(),
            component.iter().copied().collect::<Vec<_>>().join(", ")
        );
        for chain in &chains {
            message += &format!("  {chain}\n");
        }
        message += "  made by:\n";
        for (from, to) in used {
            message += &format!(
                "  {from} -> {to}\n{}",
                indent(&krate.files[from].imports[to])
            );
        }
        found.push(message);
    }
    found
}

/// Tarjan's algorithm: the strongly connected components of the graph.
fn strongly_connected<'a>(edges: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<BTreeSet<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        components: Vec<BTreeSet<&'a str>>,
    }
    fn visit<'a>(v: &'a str, edges: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for &w in &edges[v] {
            if !s.index.contains_key(w) {
                visit(w, edges, s);
                s.low.insert(v, s.low[v].min(s.low[w]));
            } else if s.stack.contains(&w) {
                s.low.insert(v, s.low[v].min(s.index[w]));
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                component.insert(w);
                if w == v {
                    break;
                }
            }
            s.components.push(component);
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        components: Vec::new(),
    };
    for &v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(v, edges, &mut s);
        }
    }
    s.components
}

/// The files from `from` to `to` (both included) on a shortest path inside `within`.
fn shortest_path<'a>(
    edges: &BTreeMap<&'a str, Vec<&'a str>>,
    within: &BTreeSet<&'a str>,
    from: &'a str,
    to: &'a str,
) -> Vec<&'a str> {
    let mut came_from = BTreeMap::from([(from, from)]);
    let mut queue = VecDeque::from([from]);
    while let Some(v) = queue.pop_front() {
        if v == to {
            break;
        }
        for &w in edges[v].iter().filter(|w| within.contains(*w)) {
            if !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    let mut path = vec![to];
    while *path.last().unwrap() != from {
        path.push(came_from[path.last().unwrap()]);
    }
    path.reverse();
    path
}

fn indent(lines: &BTreeSet<(usize, String)>) -> String {
    lines.iter().map(|(_, l)| format!("      {l}\n")).collect()
}

// ----------------------------------------------------------------------------------------------
// The tokenizer
// ----------------------------------------------------------------------------------------------

/// What the rules need of Rust's tokens: names, `::` and single punctuation. Literals (strings,
/// chars, numbers) and lifetimes keep only their place; comments are dropped.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
    Literal,
}

/// A token and the lines (1-based) it spans: several for a multi-line string.
struct Token {
    tok: Tok,
    first: usize,
    last: usize,
}

fn tokenize(text: &str) -> Vec<Token> {
    let c: Vec<char> = text.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let is_ident = |ch: char| ch == '_' || ch.is_alphanumeric();
    let mut tokens = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let (start, first) = (i, line);
        let tok = if at(i) == '/' && at(i + 1) == '/' {
            // Line comment, doc comments (`///`, `//!`) included.
            while i < c.len() && at(i) != '\n' {
                i += 1;
            }
            None
        } else if at(i) == '/' && at(i + 1) == '*' {
            // Block comment; they nest.
            let mut depth = 0;
            while i < c.len() {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            None
        } else if let Some(end) = string_end(&c, i) {
            i = end;
            Some(Tok::Literal)
        } else if at(i) == '\'' || (at(i) == 'b' && at(i + 1) == '\'') {
            // A char (`'x'`, `'\n'`, `b'x'`) or a lifetime (`'a`, `'static`).
            i += if at(i) == 'b' { 2 } else { 1 };
            if at(i) == '\\' {
                i += 2;
                while i < c.len() && at(i) != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 1) == '\'' {
                i += 2;
            } else {
                while is_ident(at(i)) {
                    i += 1;
                }
            }
            Some(Tok::Literal)
        } else if at(i).is_ascii_digit() {
            while is_ident(at(i)) {
                i += 1;
            }
            Some(Tok::Literal)
        } else if is_ident(at(i)) {
            if at(i) == 'r' && at(i + 1) == '#' {
                i += 2; // raw identifier: `r#type` is `type`
            }
            let from = i;
            while is_ident(at(i)) {
                i += 1;
            }
            Some(Tok::Ident(c[from..i].iter().collect()))
        } else if at(i) == ':' && at(i + 1) == ':' {
            i += 2;
            Some(Tok::PathSep)
        } else {
            i += 1;
            (!at(start).is_whitespace()).then_some(Tok::Punct(at(start)))
        };
        line += c[start..i].iter().filter(|&&ch| ch == '\n').count();
        if let Some(tok) = tok {
            let last = if at(i - 1) == '\n' { line - 1 } else { line };
            tokens.push(Token { tok, first, last });
        }
    }
    tokens
}

/// The end of a string literal starting at `i` (`"…"`, `b"…"`, `c"…"`, raw `r#"…"#`, `br"…"`),
/// or `None` if none starts there.
fn string_end(c: &[char], mut i: usize) -> Option<usize> {
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    if matches!(at(i), 'b' | 'c') {
        i += 1;
    }
    let raw = at(i) == 'r';
    if raw {
        i += 1;
    }
    let hashes = (i..).take_while(|&j| at(j) == '#').count();
    i += hashes;
    if at(i) != '"' || (!raw && hashes > 0) {
        return None;
    }
    i += 1;
    while i < c.len() {
        if at(i) == '"' && (i + 1..=i + hashes).all(|j| at(j) == '#') {
            return Some(i + 1 + hashes);
        }
        // Escapes exist only in plain strings: `r"\"` is a backslash.
        i += if at(i) == '\\' && !raw { 2 } else { 1 };
    }
    Some(c.len())
}

// ----------------------------------------------------------------------------------------------
// The scanner: imports and lines of code of one file
// ----------------------------------------------------------------------------------------------

/// An absolute module path the file's code names, and the lines of the statement that names it.
struct Import {
    path: Vec<String>,
    first: usize,
    last: usize,
}

struct Scan {
    imports: Vec<Import>,
    code_lines: usize,
    /// Modules in files of their own that exist only in tests (`#[cfg(test)] mod tests;`).
    test_modules: Vec<Vec<String>>,
}

/// Finds the imports and counts the lines of code of a file whose module path is `module`.
fn scan(text: &str, module: &[String]) -> Scan {
    let tokens = tokenize(text);
    let t: Vec<&Tok> = tokens.iter().map(|t| &t.tok).collect();
    let ident = |i: usize| match t.get(i) {
        Some(Tok::Ident(s)) => Some(s.as_str()),
        _ => None,
    };
    let blank: Vec<bool> = text.lines().map(|l| l.trim().is_empty()).collect();
    let mut code = BTreeSet::new();
    let mut imports = Vec::new();
    let mut test_modules = Vec::new();
    // The inline modules we are in (`mod barrier { .. }`), with the brace depth inside each.
    let mut scopes: Vec<(Vec<String>, usize)> = vec![(module.to_vec(), 0)];
    let mut depth: usize = 0;
    let mut i = 0;
    while i < t.len() {
        let here = scopes.last().unwrap().0.clone();
        // Attributes: `#[cfg(test)]` (or `all(test, ..)`) removes what follows from the build
        // that ships; `#![cfg(test)]` the whole file.
        if *t[i] == Tok::Punct('#') {
            let inner = t.get(i + 1) == Some(&&Tok::Punct('!'));
            let end = attribute_end(&t, i);
            if is_test_cfg(&t[i..end]) {
                if inner {
                    break;
                }
                let item_end = skip_item(&t, end);
                if let [.., Tok::Ident(m), Tok::Ident(name), Tok::Punct(';')] = &t[end..item_end] {
                    if m == "mod" {
                        test_modules.push([here.as_slice(), std::slice::from_ref(name)].concat());
                    }
                }
                i = item_end;
                continue;
            }
            mark(&mut code, &tokens[i..end], &blank);
            i = end;
            continue;
        }
        mark(&mut code, &tokens[i..=i], &blank);
        match t[i] {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if scopes.len() > 1 && depth < scopes.last().unwrap().1 {
                    scopes.pop();
                }
            }
            // `mod name { .. }`: what follows belongs to the module `name` of this file.
            // (`mod name;` is a declaration, not an import.)
            Tok::Ident(s) if s == "mod" && t.get(i + 2) == Some(&&Tok::Punct('{')) => {
                let mut inner = here.clone();
                inner.push(ident(i + 1).unwrap_or_default().to_string());
                scopes.push((inner, depth + 1));
            }
            // A `use` item (not `impl Trait + use<'a>`): every path of its tree.
            Tok::Ident(s) if s == "use" && t.get(i + 1) != Some(&&Tok::Punct('<')) => {
                let end = (i..t.len())
                    .find(|&j| *t[j] == Tok::Punct(';'))
                    .unwrap_or(t.len());
                let mut paths = Vec::new();
                use_tree(&t[..end], &mut (i + 1), &[], &mut paths);
                for path in paths {
                    if let Some(path) = absolute(&here, &path) {
                        let (first, last) = (tokens[i].first, tokens[end.min(t.len() - 1)].last);
                        imports.push(Import { path, first, last });
                    }
                }
                mark(&mut code, &tokens[i..end.min(t.len())], &blank);
                i = end;
                continue;
            }
            // An inline path `a::b::C`, from its first segment (not `x::a::b` from `a`), and
            // not the `crate` of `pub(in crate::a)`.
            Tok::Ident(_)
                if t.get(i + 1) == Some(&&Tok::PathSep)
                    && i.checked_sub(1).map(|j| t[j]) != Some(&Tok::PathSep)
                    && !(ident(i.wrapping_sub(1)) == Some("in")
                        && i >= 2
                        && *t[i - 2] == Tok::Punct('(')) =>
            {
                let mut path = vec![ident(i).unwrap().to_string()];
                let mut j = i + 1;
                while t.get(j) == Some(&&Tok::PathSep) && ident(j + 1).is_some() {
                    path.push(ident(j + 1).unwrap().to_string());
                    j += 2;
                }
                if let Some(path) = absolute(&here, &path) {
                    let first = tokens[i].first;
                    imports.push(Import {
                        path,
                        first,
                        last: first,
                    });
                }
                mark(&mut code, &tokens[i..j], &blank);
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Scan {
        imports,
        code_lines: code.len(),
        test_modules,
    }
}

/// Counts the non-blank lines the tokens span as code.
fn mark(code: &mut BTreeSet<usize>, tokens: &[Token], blank: &[bool]) {
    for token in tokens {
        code.extend((token.first..=token.last).filter(|&l| !blank.get(l - 1).unwrap_or(&true)));
    }
}

/// The index after the attribute `#[..]` or `#![..]` that starts at `i`.
fn attribute_end(t: &[&Tok], i: usize) -> usize {
    let mut depth = 0;
    for (j, tok) in t.iter().enumerate().skip(i) {
        match tok {
            Tok::Punct('[') => depth += 1,
            Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    t.len()
}

/// Whether the attribute is `cfg(test)`, `cfg(all(test, ..))` (any nesting of `all` around a
/// `test`): code that exists only in test builds. `cfg(any(test, ..))` and `cfg(not(test))` exist
/// in the shipped build too.
fn is_test_cfg(attr: &[&Tok]) -> bool {
    fn requires_test(t: &[&Tok], i: &mut usize) -> bool {
        let Some(Tok::Ident(name)) = t.get(*i) else {
            *i += 1;
            return false;
        };
        *i += 1;
        match t.get(*i) {
            Some(Tok::Punct('(')) => {
                *i += 1;
                let mut any = false;
                while !matches!(t.get(*i), Some(Tok::Punct(')')) | None) {
                    if *t[*i] == Tok::Punct(',') {
                        *i += 1;
                    } else {
                        any |= requires_test(t, i);
                    }
                }
                *i += 1;
                name == "all" && any
            }
            Some(Tok::Punct('=')) => {
                *i += 2; // `feature = ".."`
                false
            }
            _ => name == "test",
        }
    }
    let start = if attr.get(1) == Some(&&Tok::Punct('!')) {
        3
    } else {
        2
    };
    let is_cfg = attr.get(start) == Some(&&Tok::Ident("cfg".into()));
    is_cfg
        && attr.get(start + 1) == Some(&&Tok::Punct('('))
        && requires_test(attr, &mut (start + 2))
}

/// The index after the item (or statement) that starts at `i`, its other attributes included:
/// after its `;`, after the `}` of its body, or at a closing bracket of what holds it.
fn skip_item(t: &[&Tok], mut i: usize) -> usize {
    while t.get(i) == Some(&&Tok::Punct('#')) {
        i = attribute_end(t, i);
    }
    let mut depth = 0;
    while i < t.len() {
        match t[i] {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct(close @ ('}' | ')' | ']')) => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
                if depth == 0 && *close == '}' {
                    return i + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Expands the use tree at `t[*i..]` below `prefix` into full paths:
/// `crate::a::{b::C, d::{self, E as F}, g::*}` → `crate::a::b::C`, `crate::a::d`,
/// `crate::a::d::E`, `crate::a::g`.
fn use_tree(t: &[&Tok], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    loop {
        match t.get(*i) {
            Some(Tok::PathSep) if path.is_empty() => {
                path.push("::".into()); // `use ::name`: an extern crate
                *i += 1;
            }
            Some(Tok::PathSep | Tok::Punct('*')) => *i += 1,
            Some(Tok::Ident(s)) if s == "as" => *i += 2, // a rename: the path is unchanged
            Some(Tok::Ident(s)) if s == "self" && !path.is_empty() => *i += 1, // `a::{self}` is `a`
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                *i += 1;
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                while !matches!(t.get(*i), Some(Tok::Punct('}')) | None) {
                    if *t[*i] == Tok::Punct(',') {
                        *i += 1;
                    } else {
                        use_tree(t, i, &path, out);
                    }
                }
                *i += 1;
                return;
            }
            _ => break, // `,` or `}` of an enclosing group, or the end
        }
    }
    out.push(path);
}

/// The absolute module path of `path` as written in module `here` (`crate::`, `self::`,
/// `super::`, or relative: a child module of `here`, else a name that resolves into this file,
/// which costs nothing), or `None` for an extern crate named with a leading `::`.
fn absolute(here: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut out = here.to_vec();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("::") => return None,
        Some("crate") => {
            out.clear();
            rest = &path[1..];
        }
        Some("self") => rest = &path[1..],
        _ => {}
    }
    while rest.first().map(String::as_str) == Some("super") {
        out.pop();
        rest = &rest[1..];
    }
    out.extend(rest.iter().cloned());
    Some(out)
}

// ----------------------------------------------------------------------------------------------
// The checker's own tests, on made-up crates
// ----------------------------------------------------------------------------------------------

mod checker {
    use super::*;

    fn krate(files: &[(&str, &str)]) -> Crate {
        let sources = files
            .iter()
            .map(|(f, s)| (f.to_string(), s.to_string()))
            .collect();
        analyze("demo", &sources)
    }

    /// The files each file imports.
    fn graph(k: &Crate) -> Vec<(String, Vec<String>)> {
        let imports = |i: &FileInfo| i.imports.keys().cloned().collect();
        k.files
            .iter()
            .map(|(f, i)| (f.clone(), imports(i)))
            .collect()
    }

    fn imports_of(k: &Crate, file: &str) -> Vec<String> {
        k.files[file].imports.keys().cloned().collect()
    }

    #[test]
    fn a_cycle_is_found_and_shown_as_a_chain_with_its_lines() {
        let k = krate(&[
            ("lib.rs", "mod a; mod b; mod c; mod d;\npub use a::A;"),
            ("a.rs", "use crate::b::B;\npub struct A;"),
            ("b.rs", "pub struct B(crate::c::C);"),
            ("c.rs", "pub fn c() -> super::a::A { todo!() }"),
            ("d.rs", "use crate::a::A;"),
        ]);
        let found = cycles(&k);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("among 3 files (a.rs, b.rs, c.rs)"),
            "{}",
            found[0]
        );
        assert!(
            found[0].contains("a.rs -> b.rs -> c.rs -> a.rs"),
            "{}",
            found[0]
        );
        assert!(
            found[0].contains("a.rs:1: use crate::b::B;"),
            "{}",
            found[0]
        );
        assert!(
            found[0].contains("c.rs:1: pub fn c() -> super::a::A"),
            "{}",
            found[0]
        );
        assert!(!found[0].contains("d.rs"), "{}", found[0]);
    }

    #[test]
    fn two_cycles_through_one_file_are_one_component_with_both_chains() {
        let k = krate(&[
            ("lib.rs", "mod a; mod b; mod c;"),
            ("a.rs", "use crate::{b::B, c::C};"),
            ("b.rs", "use crate::a::A;"),
            ("c.rs", "use crate::a::A;"),
        ]);
        let found = cycles(&k);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("a.rs -> b.rs -> a.rs"), "{}", found[0]);
        assert!(found[0].contains("a.rs -> c.rs -> a.rs"), "{}", found[0]);
    }

    #[test]
    fn no_cycle_no_finding() {
        let k = krate(&[
            ("lib.rs", "mod a; mod b; pub use a::A; pub use b::B;"),
            ("a.rs", "use crate::b::B;"),
            ("b.rs", "pub struct B;"),
        ]);
        assert!(cycles(&k).is_empty());
        assert!(lib_imports(&k).is_empty());
    }

    #[test]
    fn grouped_use_trees_over_several_lines() {
        let k = krate(&[
            ("lib.rs", "mod a; mod b; mod c; mod d; mod e;"),
            (
                "a.rs",
                "pub(crate) use crate::{\n    b::{self, B as Bee},\n    c::{inner::X, *},\n};\n\
                 pub use self::super::d::D;",
            ),
            ("b.rs", ""),
            ("c.rs", ""),
            ("d.rs", ""),
            ("e.rs", ""),
        ]);
        assert_eq!(imports_of(&k, "a.rs"), ["b.rs", "c.rs", "d.rs"]);
        let lines = indent(&k.files["a.rs"].imports["b.rs"]);
        let text = "a.rs:1: pub(crate) use crate::{ b::{self, B as Bee}, c::{inner::X, *}, };";
        assert_eq!(lines.trim(), text);
    }

    #[test]
    fn inline_paths_count_and_visibility_does_not() {
        let k = krate(&[
            ("lib.rs", "mod a; mod b; mod c;"),
            (
                "a.rs",
                "pub(crate) fn f() { crate::b::g(); }\npub(in crate::c) struct S;\n\
                 fn h() -> std::crate_like::X { Self::new() }",
            ),
            ("b.rs", ""),
            ("c.rs", ""),
        ]);
        assert_eq!(imports_of(&k, "a.rs"), ["b.rs"]);
    }

    #[test]
    fn comments_strings_and_chars_are_not_code() {
        let source = r####"
            // use crate::b::B;
            /// [`crate::b::B`]
            //! crate::b
            /* crate::b::B /* nested */ crate::b::B */
            const S: &str = "crate::b::B \" crate::b::B";
            const R: &str = r#"crate::b::B " crate::b::B"#;
            const Q: &[u8] = br##"crate::b::"#B"##;
            const C: char = '"'; const E: char = '\''; fn f<'a>(x: &'a str) {}
            const L: &str = "
                crate::b::B
            ";
            use crate::c::C;
        "####;
        let k = krate(&[
            ("lib.rs", "mod a; mod b; mod c;"),
            ("a.rs", source),
            ("b.rs", ""),
            ("c.rs", ""),
        ]);
        assert_eq!(imports_of(&k, "a.rs"), ["c.rs"]);
    }

    #[test]
    fn test_modules_are_not_architecture() {
        let source = "
            #[cfg(test)]
            mod tests { use crate::b::B; }
            #[cfg(all(test, loom))]
            pub(crate) mod loom_models { fn f() { crate::b::g(); } }
            #[cfg(all(feature = \"x\", all(not(loom), test)))]
            mod more { use crate::b::B; }
            #[cfg(not(test))]
            use crate::c::C;
            #[cfg(any(test, feature = \"d\"))]
            use crate::d::D;
            #[cfg(test)]
            mod helpers;
        ";
        let k = krate(&[
            ("lib.rs", "mod a; mod b; mod c; mod d;"),
            ("a.rs", source),
            ("b.rs", ""),
            ("c.rs", ""),
            ("d.rs", ""),
            ("a/helpers.rs", "use crate::b::B;"),
        ]);
        assert_eq!(imports_of(&k, "a.rs"), ["c.rs", "d.rs"]);
        assert_eq!(k.files["a.rs"].code_lines, 4);
        assert!(!k.files.contains_key("a/helpers.rs"));
    }

    #[test]
    fn paths_resolve_to_the_deepest_module_file_in_both_layouts() {
        let k = krate(&[
            ("lib.rs", "mod a; mod t; mod x;"),
            // `a.rs` beside `a/`, with an inline module whose `super` is `a`, not the root.
            (
                "a.rs",
                "mod b; mod inline { use super::*; use super::super::x::X; }\nuse b::B;",
            ),
            (
                "a/b.rs",
                "use super::A; use crate::t::u::deep::Item; use crate::a::inline::I;",
            ),
            ("t/mod.rs", "mod u; use self::u::U;"),
            ("t/u.rs", "use crate::t::T; use crate::Root;"),
            ("x.rs", ""),
        ]);
        assert_eq!(
            graph(&k),
            [
                ("a.rs".into(), vec!["a/b.rs".into(), "x.rs".into()]),
                ("a/b.rs".into(), vec!["a.rs".into(), "t/u.rs".into()]),
                ("lib.rs".into(), vec![]),
                ("t/mod.rs".into(), vec!["t/u.rs".into()]),
                ("t/u.rs".into(), vec!["lib.rs".into(), "t/mod.rs".into()]),
                ("x.rs".into(), vec![]),
            ]
        );
        let found = lib_imports(&k);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("demo/src/t/u.rs imports lib.rs"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn leaf_rule_and_lines_of_code() {
        let k = krate(&[
            ("lib.rs", "mod table; mod sync; mod circuit;"),
            (
                "table.rs",
                "mod epoch;\nuse crate::sync::X;\n\n// a comment\nuse epoch::G;",
            ),
            ("table/epoch.rs", "use crate::circuit::Circuit;"),
            ("sync.rs", ""),
            ("circuit.rs", ""),
        ]);
        let found = forbidden_imports(&k, &["table"], |to| {
            !matches!(to.first().map(String::as_str), Some("table" | "sync"))
        });
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("demo/src/table/epoch.rs -> circuit.rs"),
            "{}",
            found[0]
        );
        assert_eq!(k.files["table.rs"].code_lines, 3);
    }
}
