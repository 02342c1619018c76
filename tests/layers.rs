//! The library's modules form layers: a module may use the modules below it, never one above it,
//! so there are no import circles and each layer can be read, tested and replaced on its own.
//!
//! The test reads the library's sources, finds every `crate::` path (and the root re-exports
//! they go through, such as `crate::Status`), and checks each reference against [`LAYERS`].
//! [`KNOWN_UPWARD`] lists references allowed to point up for a while (none today); it only
//! shrinks: a listed reference that is gone fails the test too, so the list is kept true.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The library's top-level modules, lowest first. A module may use those before it in this list
/// (and itself).
const LAYERS: &[&str] = &[
    // Plain values with no dependency on the rest of the crate.
    "context",
    "stored_json",
    "attempts",
    // Per-database constants and the SQL type of the timestamps, which the table needs.
    "backend::dialect",
    "backend::timestamp",
    // The states an operation is in, what a search asks for, the table, the errors that report
    // them, the model.
    "status",
    "filter",
    "schema",
    "error",
    "operation",
    // The storage layer: every statement, per database; the migrations it applies.
    "backend",
    "migrations",
    // Counting finished children into their batches, in the transactions that finish them,
    // after a workflow's finished steps settled their dependents.
    "dependencies",
    "completion",
    // The lifecycle and queries built on the storage layer.
    "lifecycle",
    "query",
    "overview",
    "prune",
    "tracking",
    "bulk",
    // The operators' API, on the queries and the overview.
    "admin",
    // The registry of action groups, then the workers that run them.
    "registry",
    "worker",
    // Batches: built with the registry, awaited with the workers' connections; workflows are
    // batches whose children depend on one another.
    "batch",
    "workflow",
];

/// Modules of `backend/` that are layers of their own, below the rest of `backend` (the storage
/// layer): named `backend::<file>`, here and in `crate::backend::<file>::` paths.
const SPLIT: &[&str] = &["backend::dialect", "backend::timestamp"];

/// References that point up today, as `(from, to)`. Each is to go, not to grow; none is left.
const KNOWN_UPWARD: &[(&str, &str)] = &[];

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read the library's source directory") {
        let path = entry.expect("read a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`backend/storage.rs` -> `backend`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("a file under src/");
    let parts: Vec<String> = relative
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned()
        })
        .collect();
    if parts.len() >= 2 {
        let split = format!("{}::{}", parts[0], parts[1]);
        if SPLIT.contains(&split.as_str()) {
            return split;
        }
    }
    parts[0].clone()
}

/// The code of a file without its comments (docs name modules in prose and examples).
fn code(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every name used right after `crate::` (or `$crate::`), including each first name inside a
/// `crate::{a::x, b}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (index, _) in code.match_indices("crate::") {
        let rest = &code[index + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    names.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            let second = rest[name.len()..]
                .strip_prefix("::")
                .map(ident)
                .unwrap_or_default();
            let split = format!("{name}::{second}");
            if SPLIT.contains(&split.as_str()) {
                names.insert(split);
            } else if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// The root's re-exports (`pub use module::{A, B};` in lib.rs): name -> module.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let code = code(lib);
    for statement in code.split(';') {
        let statement = statement.trim();
        let Some(path) = statement.strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        if !LAYERS.contains(&module) {
            continue;
        }
        // `pub use a::b::{..}` of a split module is not at the root's top level: not mapped.
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.trim().rsplit("::").next().unwrap_or("").trim();
            if !name.is_empty() {
                map.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    map
}

#[test]
fn library_modules_only_use_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../batchframework-diesel/src");
    let lib = fs::read_to_string(src.join("lib.rs")).expect("read lib.rs");
    let reexports = root_reexports(&lib);
    let rank = |module: &str| LAYERS.iter().position(|m| *m == module);

    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for file in &files {
        let from = module_of(&src, file);
        if from == "lib" {
            continue;
        }
        let Some(from_rank) = rank(&from) else {
            unknown.insert(from.clone());
            continue;
        };
        let text = fs::read_to_string(file).expect("read a source file");
        for name in crate_paths(&code(&text)) {
            let to = if rank(&name).is_some() {
                name
            } else if let Some(module) = reexports.get(&name) {
                module.clone()
            } else {
                continue; // a root item of lib.rs itself, such as the macro shims
            };
            if rank(&to).is_some_and(|to_rank| to_rank > from_rank) {
                upward.insert((from.clone(), to));
            }
        }
    }

    assert!(
        unknown.is_empty(),
        "modules missing from LAYERS in tests/layers.rs: {unknown:?}; place each in its layer"
    );
    let known: BTreeSet<(String, String)> = KNOWN_UPWARD
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    let new: Vec<_> = upward.difference(&known).collect();
    assert!(
        new.is_empty(),
        "modules that use a module above them (an import circle in the making): {new:?}. \
         Move the shared item down, or pass it in as a plain value."
    );
    let gone: Vec<_> = known.difference(&upward).collect();
    assert!(
        gone.is_empty(),
        "no longer upward, remove from KNOWN_UPWARD in tests/layers.rs: {gone:?}"
    );
}

#[test]
fn crate_paths_are_read_from_plain_paths_and_groups() {
    let names =
        crate_paths("use crate::{error::Result, query::X};\nlet a = $crate::Status::Running;");
    let expected: BTreeSet<String> = ["error", "query", "Status"].map(String::from).into();
    assert_eq!(names, expected);
}
