//! The server's modules import each other without a cycle: each one can be read, and
//! tested, with only the modules below it.
//!
//! Reads every file under `src/` and collects, per top-level module (`hub.rs`,
//! `handlers/…`), which other top-level modules its code names as `crate::…`; test code
//! (`mod tests`, `tests.rs`, `fixture.rs`) is left out, as tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The production code of a file: without comments and without its `mod tests { … }`.
fn production_code(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    code.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The first path segment of each `crate::` path in `code`, grouped imports included.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut item) = (0, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.insert(first_segment(&item));
        } else {
            found.insert(first_segment(rest));
        }
    }
    found.remove("");
    found
}

fn first_segment(path: &str) -> String {
    path.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// The names lib.rs re-exports (`pub use config::Config;`), with the module each is from.
fn re_exports(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for line in lib.lines() {
        let Some(path) = line.strip_prefix("pub use ").and_then(|rest| rest.strip_suffix(';')) else {
            continue;
        };
        let Some((module, items)) = path.split_once("::") else { continue };
        for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
            names.insert(item.trim().to_owned(), module.to_owned());
        }
    }
    names
}

/// Which top-level modules each top-level module's production code names.
fn module_graph(src: &Path) -> Graph {
    let re_exported = re_exports(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let modules: BTreeSet<String> = fs::read_dir(src)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| path.file_stem().map(|stem| stem.to_string_lossy().into_owned()))
        .filter(|name| !matches!(name.as_str(), "lib" | "main" | "fixture"))
        .collect();
    let mut graph = Graph::new();
    for file in sources(src) {
        let relative = file.strip_prefix(src).unwrap();
        let top = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let top = top.trim_end_matches(".rs").to_owned();
        let test_only =
            relative.ends_with("tests.rs") || relative.components().any(|c| c.as_os_str() == "tests");
        if !modules.contains(&top) || test_only {
            continue;
        }
        let uses = crate_paths(&production_code(&fs::read_to_string(&file).unwrap()))
            .into_iter()
            .map(|name| re_exported.get(&name).cloned().unwrap_or(name));
        let entry = graph.entry(top.clone()).or_default();
        entry.extend(uses.filter(|name| modules.contains(name) && *name != top));
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn server_modules_import_each_other_without_a_cycle() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    for (module, uses) in &graph {
        eprintln!("{module} -> {}", uses.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    // The layers the README describes, so that a parse that finds nothing fails too.
    let layers = [
        ("session", "handlers"),
        ("handlers", "store"),
        ("handlers", "config"),
        ("tcp", "session"),
        ("server", "tcp"),
    ];
    for (module, uses) in layers {
        assert!(graph[module].contains(uses), "{module} should use {uses}: {graph:?}");
    }
    assert_eq!(cycle(&graph), None, "an import cycle among the server's modules");
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_owned(), BTreeSet::from([to.to_owned()])))
        .collect();
    assert_eq!(cycle(&graph).map(|c| c.join(" -> ")), Some("a -> b -> c -> a".to_owned()));
    let grouped =
        crate_paths("use crate::{frames, handlers::{self, Identity}, Config};\nuse crate::hub::Hub;");
    assert_eq!(grouped, BTreeSet::from(["frames", "handlers", "Config", "hub"].map(String::from)));
    let names = re_exports("pub use config::Config;\npub use server::{run, ServerError};");
    assert_eq!(names["Config"], "config");
    assert_eq!(names["ServerError"], "server");
}
