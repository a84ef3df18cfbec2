//! Modules depend on each other in one direction, at every depth and in every crate of the
//! workspace: no circle between sibling modules (a child using its parent's items is normal
//! Rust and not one), and the features (`proxy`, `tokens`, `telemetry`) never depend on each
//! other, only on the state and the building blocks. Read from the source, so a new `use` that
//! closes a circle fails here. A path through a re-export (`crate::EmulatorState`, from the
//! root's `pub use state::EmulatorState`) counts for the module that defines the item.
//!
//! A section's settings (`tokens/settings.rs`, `upstream/stream_settings.rs`) are the leaf that
//! `config` assembles: they count as a module beside their section (`tokens::settings`), so
//! `config -> tokens::settings` and `tokens -> state -> config` are no circle; settings that
//! use their section's code reach what that code reaches, so a real circle through them shows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path from its crate's root (`["emulator", "store", "audit"]`; the root is `[]`).
type ModPath = Vec<String>;

/// The module a file under `src` defines: `a/b.rs` and `a/b/mod.rs` are `["a", "b"]`.
fn module_of(path: &Path, src: &Path) -> ModPath {
    let rel = path.strip_prefix(src).unwrap().with_extension("");
    let mut m: ModPath = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        m.pop();
    }
    m
}

/// The crate's source files and their modules; test modules (`#[cfg(test)] mod tests`, to the
/// end of the file) and comment lines are left out: tests may use anything.
fn files(src: &Path) -> Vec<(ModPath, String)> {
    let mut todo = vec![src.to_path_buf()];
    let mut out = Vec::new();
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs") {
            let mut text = std::fs::read_to_string(&p).unwrap();
            if let Some(i) = text.find("#[cfg(test)]\nmod tests") {
                text.truncate(i);
            }
            // Comments (doc links included) name modules without depending on them.
            let text: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            out.push((module_of(&p, src), text));
        }
    }
    out
}

/// The paths a file names from `crate::`, `super::` and `self::`, resolved against its module
/// `at`, grouped imports expanded (`crate::{a::b, c}` gives `a::b` and `c`).
fn referenced(text: &str, at: &[String]) -> Vec<ModPath> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        for (i, _) in text.match_indices(start) {
            if i > 0 && (is_ident(bytes[i - 1] as char) || bytes[i - 1] == b':') {
                continue; // `super::super::` counted once, from its first `super`
            }
            let mut base: ModPath = match start {
                "crate::" => Vec::new(),
                "self::" => at.to_vec(),
                _ => at[..at.len().saturating_sub(1)].to_vec(),
            };
            let mut rest = &text[i + start.len()..];
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            expand(rest, base, &mut out);
        }
    }
    out
}

/// Adds the paths `rest` names under `base` (a path, or a `{...}` group of them).
fn expand(rest: &str, base: ModPath, out: &mut Vec<ModPath>) {
    let mut path = base;
    let mut rest = rest;
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' | ',' if depth == 1 => {
                        expand(group[item_start..j].trim(), path.clone(), out);
                        item_start = j + 1;
                        if c == '}' {
                            return;
                        }
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            return;
        }
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() || ident == "self" {
            break;
        }
        path.push(ident.clone());
        match rest[ident.len()..].strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    out.push(path);
}

/// The module a path names: its longest prefix that is a module, through the re-exports on
/// the way (`crate::EmulatorState` names `state` when the root has `pub use
/// state::EmulatorState`).
fn module_named(
    mut path: ModPath,
    modules: &BTreeSet<ModPath>,
    reexports: &BTreeMap<(ModPath, String), ModPath>,
) -> ModPath {
    for _ in 0..8 {
        let mut m = path.clone();
        while !m.is_empty() && !modules.contains(&m) {
            m.pop();
        }
        match path
            .get(m.len())
            .and_then(|name| reexports.get(&(m.clone(), name.clone())))
        {
            Some(target) => {
                let mut next = target.clone();
                next.extend(path[m.len() + 1..].iter().cloned());
                path = next;
            }
            None => return m,
        }
    }
    path
}

/// Each module's `pub use` and `pub(crate) use` lines: (module, name) -> the path it names.
fn reexports(
    files: &[(ModPath, String)],
    modules: &BTreeSet<ModPath>,
) -> BTreeMap<(ModPath, String), ModPath> {
    let mut out = BTreeMap::new();
    for (at, text) in files {
        for line in text.lines().map(str::trim) {
            let Some(rest) = line
                .strip_prefix("pub use ")
                .or_else(|| line.strip_prefix("pub(crate) use "))
            else {
                continue;
            };
            let rest = rest.trim_end_matches(';');
            // `crate::`/`super::`/`self::` paths resolve as everywhere; a bare path starts at a
            // child module (`pub use state::X` in the parent of `state`).
            let mut paths = referenced(rest, at);
            if paths.is_empty() {
                let mut child = at.clone();
                child.push(rest.split("::").next().unwrap_or("").to_owned());
                if modules.contains(&child) {
                    expand(rest, at.clone(), &mut paths);
                }
            }
            for p in paths {
                let name = p.last().cloned().unwrap_or_default();
                let name = rest
                    .split(" as ")
                    .nth(1)
                    .filter(|_| !rest.contains('{'))
                    .map(|alias| alias.trim().to_owned())
                    .unwrap_or(name);
                if p.len() > 1 {
                    out.insert((at.clone(), name), p);
                }
            }
        }
    }
    out
}

/// For every module with children, the edges between its children: `a -> b` when something in
/// `a` (or below it) names something in its sibling `b` (or below it).
fn sibling_edges(src: &Path) -> BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> {
    let files = files(src);
    let modules: BTreeSet<ModPath> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut edges: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let reexports = reexports(&files, &modules);
    for (from, text) in &files {
        let lifted = lift_settings(from.clone());
        for to in referenced(text, from) {
            let to = module_named(to, &modules, &reexports);
            // A module using its descendants' items: a parent using its child.
            if to.starts_with(from) {
                continue;
            }
            let lifted_to = lift_settings(to.clone());
            // An ancestor's items: a child using its parent, but for a section's settings,
            // which sit beside their section (`config` assembles them), so settings that use
            // their section's code make an edge to it.
            if from.starts_with(&to) && lifted.starts_with(&lifted_to) {
                continue;
            }
            let (from, to) = (&lifted, lifted_to);
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == to.len() || common == from.len() {
                continue;
            }
            edges
                .entry(from[..common].to_vec())
                .or_default()
                .entry(from[common].clone())
                .or_default()
                .insert(to[common].clone());
        }
    }
    // Settings that use their section's code reach what that code reaches (config through
    // them, for one); settings and their section using each other is a child and its parent.
    for to in edges.values_mut() {
        let lifted: Vec<(String, String)> = to
            .keys()
            .filter_map(|n| {
                let (parent, _) = n.rsplit_once("::")?;
                Some((n.clone(), parent.to_owned()))
            })
            .collect();
        for (settings, parent) in lifted {
            if to.get_mut(&settings).is_some_and(|s| s.remove(&parent)) {
                let reached: Vec<String> = to
                    .get(&parent)
                    .into_iter()
                    .flatten()
                    .filter(|n| **n != settings)
                    .cloned()
                    .collect();
                to.get_mut(&settings).unwrap().extend(reached);
            }
        }
    }
    edges
}

/// A section's settings module as a module beside its parent: `["tokens", "settings"]` is
/// `["tokens::settings"]`.
fn lift_settings(mut m: ModPath) -> ModPath {
    if let Some(i) = (1..m.len()).find(|&i| m[i].ends_with("settings")) {
        let settings = m.remove(i);
        m[i - 1] = format!("{}::{settings}", m[i - 1]);
    }
    m
}

/// A circle through the last module of `path`, if there is one.
fn circle_from(
    g: &BTreeMap<String, BTreeSet<String>>,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    let last = path.last().unwrap().clone();
    for next in g.get(&last).into_iter().flatten() {
        if let Some(i) = path.iter().position(|m| m == next) {
            let mut c = path[i..].to_vec();
            c.push(next.clone());
            return Some(c);
        }
        path.push(next.clone());
        if let Some(c) = circle_from(g, path) {
            return Some(c);
        }
        path.pop();
    }
    None
}

/// Every crate's `src`: the gateway's and those under `crates/`.
fn crate_sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![root.join("src")];
    for e in std::fs::read_dir(root.join("crates")).unwrap() {
        out.push(e.unwrap().path().join("src"));
    }
    out
}

fn circles(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (parent, g) in sibling_edges(src) {
        for start in g.keys() {
            if let Some(c) = circle_from(&g, &mut vec![start.clone()]) {
                found.push(format!(
                    "in crate::{}: {}",
                    parent.join("::"),
                    c.join(" -> ")
                ));
                break;
            }
        }
    }
    found
}

#[test]
fn no_circle_between_sibling_modules_at_any_depth_in_any_crate() {
    let sources = crate_sources();
    assert_eq!(sources.len(), 3, "{sources:?}");
    let mut found = Vec::new();
    for src in &sources {
        found.extend(
            circles(src)
                .into_iter()
                .map(|c| format!("{}: {c}", src.display())),
        );
    }
    assert!(found.is_empty(), "module circles:\n{}", found.join("\n"));
}

#[test]
fn the_features_depend_only_on_the_state_and_the_building_blocks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = sibling_edges(&root).remove(&Vec::new()).unwrap();
    assert!(g.contains_key("proxy") && g.contains_key("tokens"), "{g:?}");
    let features = ["proxy", "tokens", "telemetry"];
    for f in features {
        for other in features.iter().filter(|o| **o != f) {
            assert!(
                !g.get(f).is_some_and(|to| to.contains(*other)),
                "the {f} feature depends on the {other} feature"
            );
        }
    }
}

#[test]
fn a_circle_between_nested_siblings_is_found_and_a_child_using_its_parent_is_not_one() {
    let dir = std::env::temp_dir().join(format!("arch-{}", std::process::id()));
    let write = |p: &str, text: &str| {
        let p = dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "mod emu;");
    write("emu/mod.rs", "mod admin; mod state; pub struct Top;");
    write("emu/admin.rs", "use super::state::State; use super::Top;");
    write("emu/state.rs", "use crate::emu::{admin::Fault, Top};");
    let found = circles(&dir);
    assert_eq!(found, ["in crate::emu: admin -> state -> admin"]);
    write("emu/state.rs", "use super::Top; use crate::emu;");
    assert!(circles(&dir).is_empty());
    // config assembles tokens' settings, and tokens reads the state that holds the config.
    write("lib.rs", "mod config; mod state; mod tokens;");
    write("config.rs", "use crate::tokens::settings::TokensConfig;");
    write("state.rs", "use crate::config::Config;");
    write("tokens/mod.rs", "mod settings; use crate::state::State;");
    write("tokens/settings.rs", "pub struct TokensConfig;");
    assert!(circles(&dir).is_empty(), "{:?}", circles(&dir));
    // Settings that use their section's code (which uses the state): config, through them,
    // depends on the section.
    write("tokens/settings.rs", "use super::Handler;");
    assert_eq!(
        circles(&dir),
        ["in crate::: config -> tokens::settings -> state -> config"]
    );
    write("tokens/settings.rs", "pub struct TokensConfig;");
    // A re-export at the root hides no circle: `crate::State` is `state`'s.
    write(
        "lib.rs",
        "mod config;\nmod state;\nmod tokens;\npub use state::State;",
    );
    write(
        "config.rs",
        "use crate::tokens::settings::TokensConfig; use crate::tokens::Handler;",
    );
    write("state.rs", "use crate::config::Config;");
    write("tokens/mod.rs", "mod settings; use crate::State;");
    assert_eq!(
        circles(&dir),
        ["in crate::: config -> tokens -> state -> config"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_reader_resolves_grouped_imports_and_super_paths() {
    let at: ModPath = vec!["emu".into(), "store".into(), "audit".into()];
    let text = "use crate::{config::Config, stream::{a, b::C}};\nuse super::super::state::X;\nself::inner::f();";
    let got: Vec<String> = referenced(text, &at).iter().map(|p| p.join("::")).collect();
    assert_eq!(
        got,
        [
            "config::Config",
            "stream::a",
            "stream::b::C",
            "emu::state::X",
            "emu::store::audit::inner::f"
        ]
    );
}
