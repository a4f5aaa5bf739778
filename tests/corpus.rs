//! Runs the hostile corpus (`tests/corpus/`): every case must reach its
//! expected verdict without panicking, within a time guard and a heap
//! bound; and the conformance kit's `cases.json` must match the generator.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[path = "corpus/mod.rs"]
mod corpus;

#[path = "support/counting.rs"]
mod counting;
use counting::{CURRENT, PEAK};

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// Tests in this file run one at a time so the heap peak is one case's.
static SERIAL: Mutex<()> = Mutex::new(());

const HEAP_LIMIT: usize = 64 << 20;
const TIME_LIMIT: Duration = Duration::from_secs(1);

#[test]
fn every_case_reaches_its_verdict_in_bounded_time_and_heap() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cases = corpus::cases();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut failures = Vec::new();
    for case in &cases {
        let base = CURRENT.load(Relaxed);
        PEAK.store(base, Relaxed);
        let start = Instant::now();
        let got = std::panic::catch_unwind(|| corpus::verdict(case));
        let took = start.elapsed();
        let heap = PEAK.load(Relaxed).saturating_sub(base);
        let got = match got {
            Ok(v) => v,
            Err(_) => {
                failures.push(format!("{}: PANIC", case.name));
                continue;
            }
        };
        let got_code = got.as_ref().err().cloned();
        let want = case.expect.code().map(str::to_owned);
        eprintln!(
            "{:<40} {:<45} {:>6} ms {:>6} KiB",
            case.name,
            got_code.as_deref().unwrap_or("accept"),
            took.as_millis(),
            heap / 1024
        );
        if got_code != want {
            failures.push(format!(
                "{}: expected {}, got {}",
                case.name,
                want.as_deref().unwrap_or("accept"),
                got_code.as_deref().unwrap_or("accept")
            ));
        }
        if took > TIME_LIMIT {
            failures.push(format!("{}: took {took:?}", case.name));
        }
        if heap > HEAP_LIMIT {
            failures.push(format!("{}: peak heap {} KiB", case.name, heap / 1024));
        }
        // Deep verification agrees: a problem exactly when the read path
        // found one, with the same coarse code among its problems.
        let report = lvbak::archive::verify(
            std::io::Cursor::new(&case.archive[..]),
            lvbak::Limits::default(),
            lvbak::archive::Depth::Deep,
        );
        // The reader that holds the directory reports the same.
        for depth in [lvbak::archive::Depth::Fast, lvbak::archive::Depth::Deep] {
            let streamed = lvbak::archive::verify(
                std::io::Cursor::new(&case.archive[..]),
                lvbak::Limits::default(),
                depth,
            );
            let held = lvbak::archive::verify_holding_directory(
                std::io::Cursor::new(&case.archive[..]),
                lvbak::Limits::default(),
                depth,
            );
            let windowed = lvbak::archive::verify_digest_window(
                std::io::Cursor::new(&case.archive[..]),
                lvbak::Limits::default(),
                depth,
                1,
            );
            // On a file with two threads: the trailer read ahead while the
            // directory is scanned, and deep checks on both threads.
            let path = dir.path().join(format!("{}.lvbak", case.name));
            std::fs::write(&path, &case.archive).expect("write a case to a temporary file");
            let on_file = lvbak::archive::verify_path(
                &path,
                lvbak::Limits::default(),
                depth,
                2,
                &mut |_, _, _| {},
            );
            // And with every deflated NDJSON entry checked in parts where
            // it can be split.
            let in_parts = lvbak::archive::verify_path_split_from(
                &path,
                lvbak::Limits::default(),
                depth,
                2,
                0,
                &mut |_, _, _| {},
            );
            for (how, report) in [
                ("streamed", streamed),
                ("with a window of one digest", windowed),
                ("verify_path on two threads", on_file),
                ("verify_path in parts", in_parts),
            ] {
                if report != held {
                    failures.push(format!(
                        "{}: {depth:?} verify {how} {:?}, held {:?}",
                        case.name, report.problems, held.problems
                    ));
                }
            }
        }
        let read = corpus::read_path(&case.archive, None);
        match (&read, report.is_ok()) {
            (Ok(()), _) => {}
            (Err(code), true) => failures.push(format!(
                "{}: read path {code} but verify is clean",
                case.name
            )),
            (Err(code), false) => {
                let coarse = coarse(code);
                if !report.problems.iter().any(|p| p.code == coarse) {
                    failures.push(format!(
                        "{}: read path {code}, verify found {:?}",
                        case.name,
                        report.problems.iter().map(|p| p.code).collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases.len() >= 100, "only {} cases", cases.len());
}

/// `ArchiveError::code()` from a refined code.
fn coarse(code: &str) -> &str {
    let head = code.split('.').next().unwrap_or(code);
    match head {
        "limit" | "bad_name" | "bad_manifest" | "bad_line" | "container" => head,
        other => other,
    }
}

#[test]
fn the_bomb_stream_inflates_to_zeros() {
    use std::io::Read;
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = corpus::bomb::zeros_stream(1000);
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(&s[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out.len(), 1 + 258 * 1000);
    assert!(out.iter().all(|&b| b == 0));
    // The big one: 1 GiB from about 1 MiB; check its first 8 MiB.
    let big = corpus::bomb::zeros_stream(4_161_790);
    assert!(big.len() < (1 << 20) + 1024, "{}", big.len());
    let mut head = vec![0u8; 8 << 20];
    flate2::read::DeflateDecoder::new(&big[..])
        .read_exact(&mut head)
        .unwrap();
    assert!(head.iter().all(|&b| b == 0));
}

#[test]
fn cases_are_deterministic_and_named_uniquely() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let a = corpus::cases();
    let b = corpus::cases();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.name, y.name);
        assert!(x.archive == y.archive, "{} is not deterministic", x.name);
        assert!(
            x.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{}",
            x.name
        );
        if !x.large {
            assert!(
                x.archive.len() <= 100 * 1024,
                "{} is {} bytes",
                x.name,
                x.archive.len()
            );
        }
    }
}

#[test]
fn conformance_manifest_is_in_sync_with_the_generator() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/conformance/cases.json");
    let want = corpus::cases_json(&corpus::cases());
    if std::env::var_os("LVBAK_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "spec/conformance/cases.json is out of date: run `LVBAK_BLESS=1 cargo test --test corpus conformance` or `cargo run --example conformance`"
    );
}

/// Every path under `dir`, relative.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                out.push(
                    p.strip_prefix(dir)
                        .map(|r| r.display().to_string())
                        .unwrap_or_default(),
                );
                if p.is_dir() {
                    stack.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// Imports every case (those the archive layer opens) into a SQLite store
/// in a target folder inside a fresh root, then checks the root holds
/// nothing but that folder, every file inside it is at a path the store
/// layout allows, and a refused import left the target as it was.
#[test]
fn importing_any_case_writes_nothing_outside_its_folder() {
    use lvbak::engine::{import, CancelToken, ImportOptions};
    use lvbak::secrets::TicketPolicy;
    let allowed = [
        "lumiverse.db",
        "lumiverse.db-wal",
        "lumiverse.db-shm",
        "lumiverse.identity",
        "images",
        "avatars",
        "databank",
        "theme-assets",
        "notification-sounds",
    ];
    for case in corpus::cases().into_iter().filter(|c| !c.large) {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("target");
        let Ok(mut a) = lvbak::Archive::open(
            std::io::Cursor::new(case.archive.clone()),
            lvbak::Limits::default(),
        ) else {
            continue;
        };
        let mut sink =
            lvbak::sqlite::SqliteStore::open(&target.join("lumiverse.db"), &target, "importer")
                .unwrap();
        let before = walk(&target);
        let ticket = case
            .ticket
            .as_deref()
            .and_then(|t| lvbak::envelope::Ticket::parse(t).ok());
        let opts = ImportOptions {
            ticket,
            ticket_policy: TicketPolicy::Skip,
            ..ImportOptions::default()
        };
        let result = import(&mut a, &mut sink, &opts, &mut |_| {}, &CancelToken::new());
        drop(sink);
        assert_eq!(
            walk(root.path())
                .iter()
                .filter(|p| !p.starts_with("target"))
                .count(),
            0,
            "{}: wrote outside its folder",
            case.name
        );
        let after = walk(&target);
        for p in &after {
            let top = p.split('/').next().unwrap_or_default();
            assert!(allowed.contains(&top), "{}: unexpected path {p}", case.name);
        }
        if result.is_err() {
            let strip = |v: &[String]| {
                v.iter()
                    .filter(|p| !p.starts_with("lumiverse.db"))
                    .cloned()
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                strip(&before),
                strip(&after),
                "{}: a refused import left files",
                case.name
            );
        }
    }
}
