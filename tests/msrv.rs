//! The workspace's `rust-version` is a promise: every crate a build of the workspace compiles
//! (any member, all features, every target platform) must build with that compiler. A dependency
//! update that quietly raises the floor (a new release with a newer `rust-version`) fails here,
//! naming the crates, instead of on a user's machine.
//!
//! The crates are the ones `cargo tree` resolves with features, not every package of
//! `Cargo.lock`: the lockfile also lists crates that only an optional feature of a dependency
//! would bring in (a weak `dep?/feature`), which no build of this workspace compiles.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// `1.86`, `1.86.0` -> `[1, 86, 0]`, so that versions compare numerically (`1.9 < 1.86`) and a
/// missing patch number counts as 0.
fn numeric(version: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = version
        .split('.')
        .map(|part| {
            // Tolerate a pre-release tail such as `1.90.0-nightly`: only the leading digits count.
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap_or(0)
        })
        .collect();
    parts.resize(3, 0);
    parts
}

#[test]
fn no_dependency_needs_a_newer_rust_than_the_workspace() {
    // This crate inherits `[workspace.package] rust-version`: that is the workspace's promise.
    let workspace_version = env!("CARGO_PKG_RUST_VERSION");
    assert!(
        !workspace_version.is_empty(),
        "the workspace declares no rust-version in [workspace.package]"
    );
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");

    // `--locked`: the graph that is checked is the committed lockfile's, never a fresh resolve.
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata --locked failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let built = built_packages(&manifest);

    let mut too_new: Vec<String> = metadata["packages"]
        .as_array()
        .expect("cargo metadata lists packages")
        .iter()
        .filter(|package| {
            let name = package["name"].as_str().unwrap_or_default();
            let version = package["version"].as_str().unwrap_or_default();
            built.contains(&format!("{name} v{version}"))
        })
        .filter_map(|package| {
            let needs = package["rust_version"].as_str()?;
            (numeric(needs) > numeric(workspace_version)).then(|| {
                format!(
                    "  {} {} needs Rust {needs}",
                    package["name"].as_str().unwrap_or("?"),
                    package["version"].as_str().unwrap_or("?"),
                )
            })
        })
        .collect();
    too_new.sort();
    assert!(
        too_new.is_empty(),
        "the workspace promises Rust {workspace_version} (rust-version in Cargo.toml), but \
         its builds compile {} crate(s) that need a newer compiler:\n{}\n\
         Pin them to older releases (cargo update -p <crate> --precise <version>; with \
         resolver = \"3\", a plain cargo update picks releases that fit) or raise rust-version.",
        too_new.len(),
        too_new.join("\n")
    );
}

#[test]
fn versions_compare_numerically() {
    assert!(numeric("1.86") == numeric("1.86.0"));
    assert!(numeric("1.9") < numeric("1.86"));
    assert!(numeric("1.86.1") > numeric("1.86"));
    assert!(numeric("2.0") > numeric("1.99.9"));
    assert!(numeric("1.90.0-nightly") > numeric("1.86"));
}

/// `name vX.Y.Z` of every package a build of the workspace at `manifest` compiles, as
/// `cargo tree` resolves it from the committed lockfile: every member, all features, every
/// target platform, normal, build and dev dependencies.
fn built_packages(manifest: &Path) -> std::collections::HashSet<String> {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--workspace",
            "--all-features",
            "--target",
            "all",
            "--edges",
            "normal,build,dev",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree --locked failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let packages: std::collections::HashSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        // `name v1.2.3`, then ` (path)` for local crates or ` (*)` for one shown before.
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some(format!("{} {}", words.next()?, words.next()?))
        })
        .collect();
    assert!(
        packages
            .iter()
            .any(|package| package.starts_with("diesel v")),
        "cargo tree lists the crates built (diesel among them)"
    );
    packages
}
