//! The crate's modules depend on each other in one direction: no cycle between top-level
//! modules, and the features (`proxy`, `tokens`, `telemetry`) never depend on each other, only
//! on the state and the building blocks. Read from the source, so a new `use` that closes a
//! cycle fails here. A section's settings (`tokens/settings.rs`, `upstream/stream_settings.rs`)
//! count as a module of their own: `config` assembles them, their section's code reads them,
//! and they read neither.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level module a file under `src/` belongs to (`tokens::settings` for a section's
/// settings).
fn module_of(path: &Path, src: &Path) -> String {
    let rel = path.strip_prefix(src).unwrap();
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
    let first = parts.next().unwrap().trim_end_matches(".rs").to_owned();
    match parts.next().map(|p| p.trim_end_matches(".rs").to_owned()) {
        Some(second) if second.ends_with("settings") => format!("{first}::{second}"),
        _ => first,
    }
}

/// The module a path after `crate::` names: its first segment, or a section's settings.
fn node(path: &str) -> String {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let first = ident(path);
    let second = path[first.len()..]
        .strip_prefix("::")
        .map(ident)
        .unwrap_or_default();
    if second.ends_with("settings") {
        format!("{first}::{second}")
    } else {
        first
    }
}

/// The top-level modules a file names through `crate::`, grouped imports included.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        out.insert(node(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 1 {
                    item.push(c);
                }
            }
            out.insert(node(item.trim()));
        } else {
            out.insert(node(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs")
            && p.file_name() != Some("lib.rs".as_ref())
        {
            let from = module_of(&p, &src);
            let text = std::fs::read_to_string(&p).unwrap();
            let to = edges.entry(from.clone()).or_default();
            to.extend(referenced(&text).into_iter().filter(|m| *m != from));
        }
    }
    edges
}

/// A cycle through `start`, if there is one.
fn cycle_from(
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
        if let Some(c) = cycle_from(g, path) {
            return Some(c);
        }
        path.pop();
    }
    None
}

#[test]
fn no_module_cycle_and_features_depend_only_on_the_state() {
    let g = graph();
    assert!(g.contains_key("proxy") && g.contains_key("state"), "{g:?}");
    for start in g.keys() {
        if let Some(c) = cycle_from(&g, &mut vec![start.clone()]) {
            panic!("module cycle: {}", c.join(" -> "));
        }
    }
    let features = ["proxy", "tokens", "telemetry"];
    for f in features {
        for other in features.iter().filter(|o| **o != f) {
            assert!(
                !g[f].contains(*other),
                "the {f} feature depends on the {other} feature"
            );
        }
    }
}

#[test]
fn the_reader_sees_grouped_imports_and_paths() {
    let text = "use crate::{config::Config, stream::{a, b}};\nlet x = crate::error::ApiError::X;\n\
                use crate::tokens::settings::TokensConfig;";
    let got: Vec<String> = referenced(text).into_iter().collect();
    assert_eq!(got, ["config", "error", "stream", "tokens::settings"]);
}
