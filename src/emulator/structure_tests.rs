//! The emulator's modules depend on each other in one direction: at every depth, no circle
//! between sibling modules (a child using its parent's items is not one). Read from the
//! source (`super::` and crate paths, grouped imports included), so a new `use` that closes
//! a circle fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The emulator's source folder: the folder of this file, found from the package's folder
/// or one above it (the path `file!()` gives is relative to the workspace).
fn source_dir() -> PathBuf {
    let here = Path::new(file!());
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join(here))
        .find(|p| p.exists())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .expect("this file is found from the package's folder")
}

/// How the crate names the emulator's root: `crate::emulator::` (or `crate::` when it is
/// the crate).
fn root_prefix() -> String {
    let path: Vec<&str> = module_path!().split("::").collect();
    let inner = &path[1..path.len() - 1];
    inner
        .iter()
        .fold("crate::".to_owned(), |p, m| format!("{p}{m}::"))
}

/// The module a file is, as segments below the emulator's root (`store/mod.rs`: `store`).
fn module_of(file: &Path, root: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut m: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if m.last().is_some_and(|l| l == "mod") {
        m.pop();
    }
    m
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The paths a `use` or an expression names after a prefix: `a::b`, or each item of
/// `{a::b, c}`, as leading segments.
fn paths_after(text: &str) -> Vec<Vec<String>> {
    if let Some(group) = text.strip_prefix('{') {
        let mut out = Vec::new();
        let (mut depth, mut start) = (0, 0);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.extend(paths_after(group[start..i].trim()));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.extend(paths_after(group[start..i].trim()));
                    start = i + 1;
                }
                _ => {}
            }
        }
        return out;
    }
    let name = ident(text);
    if name.is_empty() || name == "self" {
        return Vec::new();
    }
    let rest = &text[name.len()..];
    match rest.strip_prefix("::") {
        Some(more) => {
            let tails = paths_after(more);
            if tails.is_empty() {
                return vec![vec![name.to_owned()]];
            }
            tails
                .into_iter()
                .map(|t| std::iter::once(name.to_owned()).chain(t).collect())
                .collect()
        }
        None => vec![vec![name.to_owned()]],
    }
}

/// The modules (as full paths below the root) a file's code names; its tests aside.
fn referenced(me: &[String], text: &str, root_prefix: &str) -> Vec<Vec<String>> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let code: String = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let (base, skip) = if rest.starts_with(root_prefix) {
            (Vec::new(), root_prefix.len())
        } else if rest.starts_with("super::") && !code[..at].ends_with("::") {
            let mut n = 0;
            while rest[n * 7..].starts_with("super::") {
                n += 1;
            }
            (me[..me.len().saturating_sub(n)].to_vec(), n * 7)
        } else {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        for p in paths_after(&rest[skip..]) {
            out.push(base.iter().cloned().chain(p).collect());
        }
        at += skip;
    }
    out
}

/// Edges between siblings: under each parent module, which child uses which.
fn graph() -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    let root = source_dir();
    let prefix = root_prefix();
    let mut files = vec![root.clone()];
    let mut sources = Vec::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs") {
            sources.push((module_of(&p, &root), std::fs::read_to_string(&p).unwrap()));
        }
    }
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|(m, _)| m.clone()).collect();
    let mut g: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (me, text) in &sources {
        for r in referenced(me, text, &prefix) {
            let common = me.iter().zip(&r).take_while(|(a, b)| a == b).count();
            if common >= me.len() || common >= r.len() {
                continue; // a module using itself, its children or its parent's items
            }
            let sibling = r[..=common].to_vec();
            if modules.contains(&sibling) {
                g.entry(me[..common].to_vec())
                    .or_default()
                    .entry(me[common].clone())
                    .or_default()
                    .insert(r[common].clone());
            }
        }
    }
    g
}

/// A circle through `start` among siblings, if there is one.
fn circle(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in edges.get(last).into_iter().flatten() {
            if next == start {
                return Some(path.iter().cloned().chain([next.clone()]).collect());
            }
            if seen.insert(next.clone()) {
                stack.push(path.iter().cloned().chain([next.clone()]).collect());
            }
        }
    }
    None
}

#[test]
fn no_two_sibling_modules_of_the_emulator_use_each_other_at_any_depth() {
    let g = graph();
    let circles: Vec<String> = g
        .iter()
        .flat_map(|(parent, edges)| {
            edges
                .keys()
                .filter_map(|m| circle(edges, m))
                .map(move |c| format!("under {:?}: {}", parent, c.join(" -> ")))
        })
        .collect();

    assert!(
        g.get(&Vec::new()).is_some_and(|e| e.contains_key("feeds")),
        "the graph is read"
    );
    assert!(circles.is_empty(), "circles: {circles:#?}");
}

#[test]
fn grouped_and_nested_paths_are_all_read() {
    let me = ["store".to_owned(), "users".to_owned()];
    let text = "use super::{objects::user_json, now_string};\n\
                use super::super::{state::EmulatorState, reply};\n\
                // use super::ignored;\n\
                let x = crate::emulator::call::param(u);";

    let got = referenced(&me, text, "crate::emulator::");

    let names: Vec<String> = got.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        names,
        [
            "store::objects::user_json",
            "store::now_string",
            "state::EmulatorState",
            "reply",
            "call::param"
        ]
    );
}
