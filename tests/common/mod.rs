//! Shared test helpers: where the conformance fixtures are.
#![allow(dead_code)]

use std::path::PathBuf;

/// The fixtures folder (`$LVBAK_FIXTURES`, else `../shared/fixtures`),
/// with `lumiverse-1.1/` inside. Under `CI=true` a missing folder fails the
/// test; elsewhere the test is skipped with a note.
pub fn fixtures() -> Option<PathBuf> {
    let base = std::env::var_os("LVBAK_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    let dir = base.join("lumiverse-1.1");
    if dir.join("INDEX.json").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!(
            "conformance fixtures not found at {} (set LVBAK_FIXTURES)",
            dir.display()
        );
    }
    eprintln!("note: fixtures not found at {}; skipping", dir.display());
    None
}

/// Every public fixture's stem (from INDEX.json).
pub fn fixture_names(dir: &std::path::Path) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("INDEX.json")).unwrap()).unwrap();
    let mut out: Vec<String> = index["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            f["name"]
                .as_str()?
                .strip_suffix(".lvbak")
                .map(str::to_owned)
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 6,
        "expected at least 6 fixtures, found {out:?}"
    );
    out
}

pub fn expected(dir: &std::path::Path, name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.expected.json"))).unwrap())
        .unwrap()
}
