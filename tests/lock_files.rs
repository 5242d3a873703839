//! Every committed Cargo.lock matches its Cargo.toml. The builds run with `--locked`, so a stale lock file fails
//! them; this says which one and how to fix it, before CI finds it (cargo-fuzz cannot pass `--locked`, so the
//! fuzz workspace's lock file would otherwise be rewritten by CI in the clone).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The folders under `dir` holding a Cargo.lock beside a Cargo.toml, outside build outputs.
fn workspaces(dir: &Path, found: &mut Vec<PathBuf>) {
    if dir.join("Cargo.lock").is_file() && dir.join("Cargo.toml").is_file() {
        found.push(dir.to_owned());
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && !name.starts_with('.') && !["target", "build", "corpus", "artifacts"].contains(&&*name) {
            workspaces(&path, found);
        }
    }
}

#[test]
fn every_lock_file_matches_its_manifest() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    workspaces(&root, &mut found);
    let names: Vec<String> =
        found.iter().map(|dir| dir.strip_prefix(&root).unwrap().join("Cargo.lock").display().to_string()).collect();
    for expected in ["Cargo.lock", "fuzz/Cargo.lock", "tests/fixtures/crasher/Cargo.lock"] {
        assert!(names.iter().any(|name| name == expected), "{expected} not found among {names:?}");
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for (dir, lock) in found.iter().zip(&names) {
        // Resolving with --locked fails if the lock file would change; nothing is written.
        let output = Command::new(&cargo)
            .args(["metadata", "--locked", "--format-version", "1", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .output()
            .unwrap();
        let manifest = lock.replace("Cargo.lock", "Cargo.toml");
        assert!(
            output.status.success(),
            "{lock} is stale: it does not match {manifest}; update it with `cargo metadata --format-version 1 \
             --manifest-path {manifest} >/dev/null` and commit it. Cargo said:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
