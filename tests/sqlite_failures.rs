//! Imports into the SQLite store that fail, or meet something already in
//! the data folder: nothing that was there is lost, replaced or left
//! changed, and the store is usable afterwards.
#![cfg(feature = "sqlite")]

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use lvbak::engine::{import, CancelToken, ImportOptions, ImportReport};
use lvbak::sqlite::SqliteStore;
use lvbak::store::memory::MemoryStore;
use lvbak::{Archive, ArchiveWriter, Bucket, Limits, Manifest, WriteOptions};

const IMG1: &str = "aaaaaaaa-0000-4000-8000-000000000001.png";
const IMG2: &str = "aaaaaaaa-0000-4000-8000-000000000002.png";
const AVATAR: &str = "bbbbbbbb-0000-4000-8000-000000000000.png";

/// An archive holding one chat row (when `chat` is given) and the files.
fn archive(id: &str, chat: Option<&str>, files: &[(Bucket, &str, &[u8])]) -> Vec<u8> {
    let m = Manifest::new(id, 1);
    let mut w = ArchiveWriter::new(Vec::new(), &m, WriteOptions::default()).unwrap();
    if let Some(row) = chat {
        let mut t = w.table("chats").unwrap();
        t.write_row(row).unwrap();
        t.finish().unwrap();
    }
    for (bucket, name, body) in files {
        w.add_file(*bucket, name, *body).unwrap();
    }
    w.finish().unwrap().0
}

fn images(files: &[(&str, &[u8])]) -> Vec<u8> {
    let files: Vec<_> = files
        .iter()
        .map(|(n, b)| (Bucket::Images, *n, *b))
        .collect();
    archive(
        "11111111-1111-4111-8111-111111111111",
        Some(r#"{"id":"c1","user_id":"x","name":"n"}"#),
        &files,
    )
}

fn open(bytes: &[u8]) -> Archive<Cursor<Vec<u8>>> {
    Archive::open(Cursor::new(bytes.to_vec()), Limits::default()).unwrap()
}

fn store(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("db.sqlite"), &dir.join("data"), "u1").unwrap()
}

fn run(a: &mut Archive<Cursor<Vec<u8>>>, s: &mut SqliteStore) -> Result<ImportReport, String> {
    import(
        a,
        s,
        &ImportOptions::default(),
        &mut |_| {},
        &CancelToken::new(),
    )
    .map_err(|e| e.to_string())
}

fn cancelled(a: &mut Archive<Cursor<Vec<u8>>>, s: &mut SqliteStore) -> bool {
    let cancel = CancelToken::new();
    cancel.cancel();
    import(a, s, &ImportOptions::default(), &mut |_| {}, &cancel).is_err()
}

/// Every file and folder under `dir`, with its length and a hash of its
/// bytes (folders: 0, 0).
fn tree(dir: &Path) -> BTreeMap<String, (usize, u64)> {
    use std::hash::{Hash, Hasher};
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(format!("{rel}/"), (0, 0));
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                out.insert(rel, (bytes.len(), h.finish()));
            }
        }
    }
    out
}

fn tables(s: &SqliteStore) -> Vec<String> {
    let mut st = s
        .connection()
        .prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        .unwrap();
    st.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_folder_named_like_an_old_staging_folder_is_left_alone() {
    // lvbak 0.1 named its staging folder after the process; a folder of
    // that name is not this import's and is never emptied.
    let tmp = tempfile::tempdir().unwrap();
    let mut s = store(tmp.path());
    let theirs = tmp
        .path()
        .join("data")
        .join(format!(".lvbak-staging-{}", std::process::id()));
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("keep.txt"), b"someone else's").unwrap();
    let bytes = images(&[(IMG1, b"img")]);
    assert!(cancelled(&mut open(&bytes), &mut s));
    run(&mut open(&bytes), &mut s).unwrap();
    assert_eq!(
        std::fs::read(theirs.join("keep.txt")).unwrap(),
        b"someone else's"
    );
    // Only that folder, the image and its folder: this import's staging
    // folders are gone.
    let data = tree(&tmp.path().join("data"));
    let staging: Vec<_> = data.keys().filter(|k| k.contains("staging")).collect();
    assert_eq!(staging.len(), 2, "{staging:?}");
}

#[test]
fn a_begin_that_fails_leaves_no_transaction_open() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = store(tmp.path());
    let bytes = images(&[(IMG1, b"img")]);
    // A plain file where the data folder goes: no staging folder can be made.
    let _ = std::fs::remove_dir_all(tmp.path().join("data"));
    std::fs::write(tmp.path().join("data"), b"x").unwrap();
    let e = run(&mut open(&bytes), &mut s).unwrap_err();
    assert!(e.contains("starting the transaction"), "{e}");
    assert!(
        s.connection().is_autocommit(),
        "a transaction was left open"
    );
    // Another writer of the database is not locked out, and the store
    // imports once the folder can be made.
    let mut other =
        SqliteStore::open(&tmp.path().join("db.sqlite"), &tmp.path().join("d2"), "u2").unwrap();
    lvbak::store::Sink::begin(&mut other).unwrap();
    lvbak::store::Sink::rollback(&mut other).unwrap();
    std::fs::remove_file(tmp.path().join("data")).unwrap();
    run(&mut open(&bytes), &mut s).unwrap();
    assert_eq!(
        std::fs::read(tmp.path().join("data/images").join(IMG1)).unwrap(),
        b"img"
    );
}

#[cfg(unix)]
#[test]
fn a_link_to_nothing_where_a_file_would_go_is_kept() {
    // Something at the name, even a link whose target is gone (a disk not
    // mounted), is never replaced.
    let tmp = tempfile::tempdir().unwrap();
    let mut s = store(tmp.path());
    let dir = tmp.path().join("data/images");
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join(IMG1);
    std::os::unix::fs::symlink("/nonexistent/lvbak-test/photo.png", &dest).unwrap();
    let bytes = images(&[(IMG1, b"archive bytes"), (IMG2, b"two")]);
    let r = run(&mut open(&bytes), &mut s).unwrap();
    let counts = r.files.get(&Bucket::Images).unwrap();
    assert_eq!((counts.written, counts.existing), (1, 1));
    assert!(std::fs::symlink_metadata(&dest)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(dir.join(IMG2)).unwrap(), b"two");
}

#[test]
fn a_failed_import_leaves_an_existing_database_schema_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = store(tmp.path());
    s.connection()
        .execute_batch("CREATE TABLE notes (id TEXT PRIMARY KEY); INSERT INTO notes VALUES ('n1');")
        .unwrap();
    let before = tables(&s);
    assert!(cancelled(&mut open(&images(&[(IMG1, b"one")])), &mut s));
    assert_eq!(tables(&s), before);
}

#[test]
fn a_commit_that_fails_moving_a_file_leaves_the_data_folder_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = store(tmp.path());
    run(&mut open(&images(&[(IMG1, b"one")])), &mut s).unwrap();
    let second = archive(
        "22222222-2222-4222-8222-222222222222",
        Some(r#"{"id":"c2","user_id":"x","name":"n"}"#),
        &[
            (Bucket::Databank, "cccccccc__doc.txt", b"doc"),
            (Bucket::Images, IMG2, b"two"),
            (Bucket::Avatars, AVATAR, b"av"),
        ],
    );
    // `avatars` is a plain file: the avatar cannot be moved into place
    // after the document (in folders this commit makes) and the image were.
    std::fs::write(tmp.path().join("data/avatars"), b"block").unwrap();
    let before = tree(tmp.path());
    let mut a = open(&second);
    let listed =
        |a: &Archive<Cursor<Vec<u8>>>| a.entries().map(|e| e.to_entry()).collect::<Vec<_>>();
    let entries = listed(&a);
    run(&mut a, &mut s).unwrap_err();
    assert_eq!(listed(&a), entries, "the archive lists its entries again");
    drop(s);
    assert_eq!(tree(tmp.path()), before);
}

#[test]
fn a_commit_refused_by_sqlite_takes_the_files_back() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db.sqlite");
    {
        // A database in rollback-journal mode, so that a reader blocks
        // the commit.
        let s = store(tmp.path());
        s.connection()
            .execute_batch("PRAGMA journal_mode=DELETE; CREATE TABLE _migrations (x);")
            .unwrap();
    }
    let mut s = store(tmp.path());
    run(&mut open(&images(&[(IMG1, b"one")])), &mut s).unwrap();
    let before = tree(tmp.path());
    let reader = SqliteStore::open(&db, &tmp.path().join("data"), "r").unwrap();
    reader
        .connection()
        .execute_batch("BEGIN; SELECT count(*) FROM _migrations;")
        .unwrap();
    let e = run(
        &mut open(&images(&[(IMG1, b"one"), (IMG2, b"two")])),
        &mut s,
    )
    .unwrap_err();
    assert!(e.contains("committing"), "{e}");
    reader.connection().execute_batch("COMMIT").unwrap();
    drop(reader);
    drop(s);
    assert_eq!(tree(tmp.path()), before);
}

#[test]
fn a_dry_run_then_the_same_import_again_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = images(&[(IMG1, b"one"), (IMG2, b"two")]);
    run(&mut open(&bytes), &mut store(tmp.path())).unwrap();
    let before = tree(&tmp.path().join("data"));
    let mut s = store(tmp.path());
    let dry = ImportOptions {
        dry_run: true,
        spill_dir: Some(tmp.path().join("data")),
        ..Default::default()
    };
    let plan = import(
        &mut open(&bytes),
        &mut s,
        &dry,
        &mut |_| {},
        &CancelToken::new(),
    )
    .unwrap();
    let again = run(&mut open(&bytes), &mut s).unwrap();
    assert_eq!(plan.files, again.files);
    assert!(again
        .files
        .values()
        .all(|c| c.written == 0 && c.existing == 2));
    assert_eq!(tree(&tmp.path().join("data")), before);
}

#[test]
fn the_archive_lists_its_entries_again_after_a_failure_at_any_write() {
    let bytes = images(&[(IMG1, b"one"), (IMG2, b"two")]);
    let listed =
        |a: &Archive<Cursor<Vec<u8>>>| a.entries().map(|e| e.to_entry()).collect::<Vec<_>>();
    let opts = ImportOptions {
        spill_dir: Some(std::env::temp_dir()),
        ..Default::default()
    };
    let mut failed = 0;
    for n in 0.. {
        let mut s = MemoryStore::new("u1");
        s.fail_after = Some(n);
        let mut a = open(&bytes);
        let before = listed(&a);
        let r = import(&mut a, &mut s, &opts, &mut |_| {}, &CancelToken::new());
        assert_eq!(listed(&a), before, "after a failure at write {n}");
        if r.is_ok() {
            break;
        }
        failed += 1;
    }
    assert!(failed >= 3, "{failed} writes failed");
}
