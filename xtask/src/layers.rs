//! `cargo xtask layers`: checks that every import of the server crate
//! points down its layers.
//!
//! The layers are declared in `app/src/lib.rs` itself: each
//! `// layer: NAME — …` comment opens a layer, and the `mod` lines after it
//! are its modules, bottom layer first. A module may use modules of lower
//! layers, and modules of its own layer as long as they form no cycle;
//! anything else (an import of a higher layer, a cycle, a path through the
//! crate root's re-exports) fails with the file and line of each import.
//! Imports are read from the source text (`crate::…`, `use crate::{…}`,
//! and `super::` paths that climb to the crate root), comments and string
//! literals skipped.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// The layers of a crate, bottom first: each a name and its modules.
#[derive(Debug)]
struct Layers(Vec<(String, Vec<String>)>);

impl Layers {
    /// Reads the `// layer:` comments and `mod` lines of a crate root.
    fn declared_in(root: &str) -> Result<Self, String> {
        let mut layers: Vec<(String, Vec<String>)> = Vec::new();
        for line in root.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("// layer:") {
                let name = rest.split('—').next().unwrap_or_default().trim();
                layers.push((name.to_owned(), Vec::new()));
            } else if let Some(module) = declared_module(line) {
                let Some((_, modules)) = layers.last_mut() else {
                    return Err(format!("`mod {module}` comes before the first `// layer:` comment"));
                };
                modules.push(module.to_owned());
            }
        }
        if layers.is_empty() {
            return Err("no `// layer:` comments: declare the layers beside the `mod` lines".into());
        }
        Ok(Self(layers))
    }

    /// The position of `module`'s layer, bottom 0.
    fn of(&self, module: &str) -> Option<usize> {
        self.0.iter().position(|(_, modules)| modules.iter().any(|m| m == module))
    }

    fn name(&self, layer: usize) -> &str {
        &self.0[layer].0
    }
}

/// The module a `mod x;` / `pub mod x;` / `pub(crate) mod x;` line declares.
fn declared_module(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("pub(crate) ").or_else(|| line.strip_prefix("pub ")).unwrap_or(line);
    rest.strip_prefix("mod ")?.strip_suffix(';').map(str::trim)
}

/// One reference from a file to a top-level item of the crate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    from: String,
    to: String,
    file: PathBuf,
    line: usize,
}

/// Checks the crate whose sources are under `src` (with `src/lib.rs`);
/// every problem found, each on its own line.
pub fn check(src: &Path) -> Result<(), String> {
    let root = read(&src.join("lib.rs"))?;
    let layers = Layers::declared_in(&root)?;
    let mut imports = Vec::new();
    let mut problems = Vec::new();
    for (_, modules) in &layers.0 {
        for module in modules {
            let files = module_files(src, module);
            if files.is_empty() {
                problems.push(format!("module `{module}`: neither {module}.rs nor {module}/mod.rs"));
            }
            for (file, depth) in files {
                let text = read(&file)?;
                for (to, line) in references(&text, depth) {
                    if to != *module {
                        imports.push(Import { from: module.clone(), to, file: file.clone(), line });
                    }
                }
            }
        }
    }
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for import in &imports {
        let shown = |i: &Import| format!("{}:{}", i.file.display(), i.line);
        let (Some(from), to) = (layers.of(&import.from), layers.of(&import.to)) else { continue };
        match to {
            None => problems.push(format!(
                "{}: `{}` uses `crate::{}`, an item of the crate root: import it from the module that defines it",
                shown(import),
                import.from,
                import.to
            )),
            Some(to) if to > from => problems.push(format!(
                "{}: `{}` (layer {}) imports `{}` (layer {}, above it)",
                shown(import),
                import.from,
                layers.name(from),
                import.to,
                layers.name(to)
            )),
            Some(to) if to == from => {
                edges.entry(&import.from).or_default().insert(&import.to);
            }
            Some(_) => {}
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        let through: Vec<String> = cycle
            .windows(2)
            .filter_map(|pair| {
                let i = imports.iter().find(|i| i.from == pair[0] && i.to == pair[1])?;
                Some(format!("{} → {} at {}:{}", i.from, i.to, i.file.display(), i.line))
            })
            .collect();
        problems.push(format!("import cycle {}: {}", cycle.join(" → "), through.join("; ")));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The files of top-level module `module`, each with its depth below the
/// crate root (1 for the module's own file).
fn module_files(src: &Path, module: &str) -> Vec<(PathBuf, usize)> {
    let single = src.join(format!("{module}.rs"));
    if single.is_file() {
        return vec![(single, 1)];
    }
    let mut files = Vec::new();
    let mut pending = vec![(src.join(module), 1)];
    while let Some((dir, depth)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push((path, depth + 1));
            } else if path.extension().is_some_and(|e| e == "rs") {
                let own = path.file_stem().is_some_and(|s| s == "mod");
                files.push((path, if own { depth } else { depth + 1 }));
            }
        }
    }
    files.sort();
    files
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Punct(char),
}

/// The identifiers and punctuation of Rust source, each with its line;
/// comments, strings and character literals left out.
fn tokens(text: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                match (at(i), at(i + 1)) {
                    ('/', '*') => (depth, i) = (depth + 1, i + 2),
                    ('*', '/') => (depth, i) = (depth - 1, i + 2),
                    ('\0', _) => break,
                    (ch, _) => {
                        line += usize::from(ch == '\n');
                        i += 1;
                    }
                }
                if depth == 0 {
                    break;
                }
            }
        } else if c == '"' || (matches!(c, 'r' | 'b') && raw_or_byte_string(&chars, i)) {
            // Raw strings: r"…", r#"…"#, br#"…"#; others end at an unescaped quote.
            let mut j = i;
            while chars[j] != '"' && chars[j] != '#' {
                j += 1;
            }
            let raw = j > i && chars[j - 1] == 'r' || chars[i] == 'r';
            let hashes = chars[j..].iter().take_while(|&&h| h == '#').count();
            j += hashes + 1;
            loop {
                match at(j) {
                    '\0' => break,
                    '\\' if !raw => j += 2,
                    '"' if chars[j + 1..].iter().take(hashes).filter(|&&h| h == '#').count() == hashes => {
                        j += 1 + hashes;
                        break;
                    }
                    ch => {
                        line += usize::from(ch == '\n');
                        j += 1;
                    }
                }
            }
            i = j;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{1F600}'), or a lifetime.
            if at(i + 1) == '\\' {
                i += 2;
                while at(i) != '\'' && at(i) != '\0' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            out.push((Token::Ident(chars[start..i].iter().collect()), line));
        } else {
            if !c.is_whitespace() {
                out.push((Token::Punct(c), line));
            }
            i += 1;
        }
    }
    out
}

/// Whether a `r` or `b` at `i` starts a raw or byte string (not an identifier).
fn raw_or_byte_string(chars: &[char], i: usize) -> bool {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return false;
    }
    let rest: String = chars[i..chars.len().min(i + 4)].iter().collect();
    ["r\"", "r#\"", "r##", "b\"", "br\"", "br#"].iter().any(|p| rest.starts_with(p))
}

/// The top-level items of the crate that `text` (a file `depth` modules
/// below the root) refers to, each with its line.
fn references(text: &str, depth: usize) -> Vec<(String, usize)> {
    let tokens = tokens(text);
    let ident = |i: usize| match tokens.get(i) {
        Some((Token::Ident(name), _)) => Some(name.as_str()),
        _ => None,
    };
    let punct = |i: usize, c: char| matches!(tokens.get(i), Some((Token::Punct(p), _)) if *p == c);
    let path_sep = |i: usize| punct(i, ':') && punct(i + 1, ':');
    // Whether the token at `i` continues a path (`a::super`), not starts one.
    let continues = |i: usize| i >= 2 && path_sep(i - 2);
    let mut found = Vec::new();
    // Inline modules (`mod tests { … }`) add a level for `super::`.
    let mut inline_modules: Vec<usize> = Vec::new();
    let mut braces = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let line = tokens[i].1;
        if punct(i, '{') {
            braces += 1;
        } else if punct(i, '}') {
            braces = braces.saturating_sub(1);
            if inline_modules.last() == Some(&braces) {
                inline_modules.pop();
            }
        } else if ident(i) == Some("mod") && ident(i + 1).is_some() && punct(i + 2, '{') {
            inline_modules.push(braces);
        }
        let after_root = if ident(i) == Some("crate") && path_sep(i + 1) && !continues(i) {
            Some(i + 3)
        } else if ident(i) == Some("super") && !continues(i) {
            let mut supers = 0;
            let mut j = i;
            while ident(j) == Some("super") && path_sep(j + 1) {
                supers += 1;
                j += 3;
            }
            (supers >= depth + inline_modules.len()).then_some(j)
        } else {
            None
        };
        if let Some(start) = after_root {
            if let Some(name) = ident(start) {
                found.push((name.to_owned(), line));
            } else if punct(start, '{') {
                // `{a, b::c, d::{e}}`: the first name of each item at depth 1.
                let (mut j, mut level, mut expect_name) = (start + 1, 1, true);
                while j < tokens.len() && level > 0 {
                    match &tokens[j].0 {
                        Token::Punct('{') => level += 1,
                        Token::Punct('}') => level -= 1,
                        Token::Punct(',') if level == 1 => expect_name = true,
                        Token::Ident(name) if level == 1 && expect_name => {
                            if name != "self" {
                                found.push((name.clone(), tokens[j].1));
                            }
                            expect_name = false;
                        }
                        _ => {}
                    }
                    j += 1;
                }
            }
        }
        i += 1;
    }
    found
}

/// A cycle in `edges` (first node repeated at the end), if there is one.
fn find_cycle<'a>(edges: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Option<Vec<&'a str>> {
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(start) = path.iter().position(|n| *n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node);
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

/// Checks the server crate (`app/src`) and that xtask stays off it.
pub fn run() -> Result<(), String> {
    check(Path::new("app/src"))?;
    let manifest = read(Path::new("xtask/Cargo.toml"))?;
    let dependencies = manifest.split("[dependencies]").nth(1).unwrap_or_default();
    let dependencies = dependencies.split("\n[").next().unwrap_or_default();
    if dependencies.lines().any(|l| l.trim_start().starts_with("session-backend")) {
        return Err("xtask/Cargo.toml: xtask must not depend on the server crate; call the binary".into());
    }
    eprintln!("layers: every import of app/src points down");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crate with two layers, written to a temporary directory.
    fn crate_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    const ROOT: &str = "// layer: low — below\nmod low;\nmod base;\n// layer: high\npub mod high;\n";

    #[test]
    fn imports_pointing_down_pass() {
        let dir = crate_with(&[
            ("lib.rs", ROOT),
            ("base.rs", "pub fn f() {}"),
            ("low.rs", "use crate::base::f; // crate::high in a comment\nconst S: &str = \"crate::high\";"),
            ("high/mod.rs", "mod inner;\nuse crate::{base, low::{self}};"),
            ("high/inner.rs", "use super::super::low; fn g<'a>(x: &'a str) -> char { 'x' }"),
        ]);
        check(dir.path()).expect("layered");
    }

    #[test]
    fn an_import_of_a_higher_layer_is_named_with_its_line() {
        let dir = crate_with(&[
            ("lib.rs", ROOT),
            ("base.rs", ""),
            ("low.rs", "use std::fmt;\n\nuse crate::{base, high::Thing};\n"),
            ("high/mod.rs", "pub struct Thing;"),
        ]);
        let err = check(dir.path()).expect_err("upward import");
        assert!(err.contains("low.rs:3: `low` (layer low) imports `high` (layer high, above it)"), "{err}");
    }

    #[test]
    fn super_paths_that_climb_to_the_root_count() {
        let dir = crate_with(&[
            ("lib.rs", ROOT),
            ("base.rs", "mod tests { use super::*; }"),
            ("low.rs", ""),
            ("high/mod.rs", "mod a;"),
            ("high/a.rs", ""),
        ]);
        check(dir.path()).expect("super inside a module stays inside");
        std::fs::write(dir.path().join("low.rs"), "mod t {\n fn f() { super::super::high::x(); } }")
            .expect("write");
        let err = check(dir.path()).expect_err("climbs to high");
        assert!(err.contains("low.rs:2"), "{err}");
    }

    #[test]
    fn a_cycle_within_a_layer_fails() {
        let dir = crate_with(&[
            ("lib.rs", ROOT),
            ("low.rs", "use crate::base::B;"),
            ("base.rs", "pub struct B; fn f() { crate::low::g(); }"),
            ("high/mod.rs", ""),
        ]);
        let err = check(dir.path()).expect_err("cycle");
        assert!(err.contains("import cycle"), "{err}");
        assert!(err.contains("base → low at") && err.contains("low → base at"), "{err}");
    }

    #[test]
    fn the_crate_roots_reexports_are_not_a_way_around() {
        let dir = crate_with(&[
            ("lib.rs", &format!("{ROOT}pub use crate::high::Thing;\n")),
            ("base.rs", ""),
            ("low.rs", "fn f(_: crate::Thing) {}"),
            ("high/mod.rs", "pub struct Thing;"),
        ]);
        let err = check(dir.path()).expect_err("root item");
        assert!(err.contains("`crate::Thing`, an item of the crate root"), "{err}");
    }

    #[test]
    fn the_server_crate_holds_its_layers() {
        let root = crate::run::workspace_root();
        check(&root.join("app/src")).unwrap_or_else(|problems| panic!("{problems}"));
    }
}
