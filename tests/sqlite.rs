//! The embedded SQLite Source/Sink through the CLI and the library.
#![cfg(feature = "sqlite")]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lvbak::sqlite::identity::Identity;
use lvbak::sqlite::SqliteStore;
use lvbak::store::{Sink, Source, StorePath};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn lvbak(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lvbak"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A new database in `tmp/data` holding `fixture`, imported as `u1`
/// through the CLI; returns the data folder and the database file.
fn imported(tmp: &Path, fixture: &Path) -> (PathBuf, PathBuf) {
    let data = tmp.join("data");
    let db = data.join("lumiverse.db");
    ok(&lvbak(&[
        "import",
        s(fixture),
        "--db",
        s(&db),
        "--user",
        "u1",
    ]));
    (data, db)
}

/// Hash of every file under `dir` (path → sha256), for "byte-identical" checks.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let h = Sha256::digest(std::fs::read(&p).unwrap());
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    format!("{h:x}"),
                );
            }
        }
    }
    out
}

fn inspect(p: &Path) -> Value {
    let o = lvbak(&["inspect", s(p), "--json"]);
    ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn every_fixture_imports_into_sqlite_and_exports_back_the_same() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    for name in common::fixture_names(&dir) {
        let exp = common::expected(&dir, &name);
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("account.db");
        let archive = dir.join(format!("{name}.lvbak"));
        let mut args = vec!["import", s(&archive), "--db", s(&db), "--user", "u1"];
        let ticket = dir.join("with-secrets.ticket.json");
        if name == "with-secrets" {
            args.extend(["--ticket", s(&ticket)]);
        }
        let o = lvbak(&args);
        if exp["referenceImport"]["status"] != "complete" {
            assert_eq!(o.status.code(), Some(1), "{name}");
            continue;
        }
        ok(&o);
        let out = tmp.path().join("again.lvbak");
        let ticket_out = tmp.path().join("again.ticket.json");
        let mut args = vec![
            "export",
            "--db",
            s(&db),
            "--user",
            "u1",
            "-o",
            s(&out),
            "--vectors",
        ];
        if name == "legacy-no-ndjson-version" {
            // Its 14 MB row is over the modern cap: refused, then written as legacy.
            let o = lvbak(&args);
            assert_eq!(o.status.code(), Some(1));
            assert!(String::from_utf8_lossy(&o.stderr).contains("--large-rows"));
            args.push("--large-rows");
        }
        if name == "with-secrets" {
            args.extend([
                "--secrets",
                "--ticket-out",
                s(&ticket_out),
                "--envelope",
                "v1",
            ]);
        }
        ok(&lvbak(&args));
        let (a, b) = (inspect(&archive), inspect(&out));
        assert_eq!(a["tables"], b["tables"], "{name}: tables");
        assert_eq!(a["files"], b["files"], "{name}: files");
        assert_eq!(
            a["secrets"]["keys"], b["secrets"]["keys"],
            "{name}: secret keys"
        );
        if name == "with-secrets" {
            let o = lvbak(&["verify", s(&out), "--ticket", s(&ticket_out)]);
            ok(&o);
        }
    }
}

#[test]
fn importing_into_a_database_with_rows_keeps_them_and_merges_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("a.db");
    {
        let mut st = SqliteStore::open(&db, tmp.path(), "u1").unwrap();
        st.begin().unwrap();
        let spec = lvbak::domain::table("chats").unwrap();
        st.insert_row(
            spec,
            json!({"id": "c1", "user_id": "u1", "name": "mine, kept"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        st.put_setting("prefs", r#"{"a":1,"list":[{"id":"x"}]}"#, 1)
            .unwrap();
        st.commit().unwrap();
    }
    // An archive with c1 (other name), c2, and a setting to merge.
    let m = lvbak::Manifest::new("33333333-3333-4333-8333-333333333333", 1);
    let mut w = lvbak::ArchiveWriter::new(Vec::new(), &m, lvbak::WriteOptions::default()).unwrap();
    let mut t = w.table("settings").unwrap();
    t.write_row(r#"{"key":"prefs","value":"{\"a\":2,\"b\":3,\"list\":[{\"id\":\"y\"}]}","user_id":"old","updated_at":5}"#).unwrap();
    t.write_row(r#"{"key":"connection_x_api_key","value":"leak","user_id":"old","updated_at":5}"#)
        .unwrap();
    t.finish().unwrap();
    let mut t = w.table("chats").unwrap();
    t.write_row(r#"{"id":"c1","user_id":"old","name":"from archive"}"#)
        .unwrap();
    t.write_row(r#"{"id":"c2","user_id":"old","name":"new"}"#)
        .unwrap();
    t.finish().unwrap();
    let (bytes, _) = w.finish().unwrap();
    let archive = tmp.path().join("x.lvbak");
    std::fs::write(&archive, bytes).unwrap();
    ok(&lvbak(&[
        "import",
        s(&archive),
        "--db",
        s(&db),
        "--user",
        "u1",
    ]));
    let conn = rusqlite_conn(&db);
    let names: Vec<(String, String)> = query2(&conn, "SELECT id, name FROM chats ORDER BY id");
    assert_eq!(
        names,
        vec![
            ("c1".into(), "mine, kept".into()),
            ("c2".into(), "new".into())
        ]
    );
    let prefs: Vec<(String, String)> =
        query2(&conn, "SELECT key, value FROM settings ORDER BY key");
    assert_eq!(
        prefs,
        vec![(
            "prefs".into(),
            r#"{"a":1,"list":[{"id":"x"},{"id":"y"}],"b":3}"#.into()
        )]
    );
}

fn rusqlite_conn(db: &Path) -> lvbak_sqlite_test::Conn {
    lvbak_sqlite_test::Conn::open(db)
}

fn query2(c: &lvbak_sqlite_test::Conn, q: &str) -> Vec<(String, String)> {
    c.query2(q)
}

/// A tiny read-only view over the database through lvbak's own store.
mod lvbak_sqlite_test {
    use std::path::Path;
    pub struct Conn(lvbak::sqlite::SqliteStore);
    impl Conn {
        pub fn open(db: &Path) -> Conn {
            Conn(lvbak::sqlite::SqliteStore::open(db, db.parent().unwrap(), "reader").unwrap())
        }
        pub fn query2(&self, q: &str) -> Vec<(String, String)> {
            let mut st = self.0.connection().prepare(q).unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
    }
}

#[test]
fn a_bad_archive_a_wrong_ticket_or_a_late_failure_leave_everything_byte_identical() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (data, db) = imported(tmp.path(), &dir.join("empty-account.lvbak"));
    let before = tree(&data);
    // 1. An archive the server refuses (line over the cap).
    let o = lvbak(&[
        "import",
        s(&dir.join("modern-oversized-row.lvbak")),
        "--db",
        s(&db),
        "--user",
        "u1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(tree(&data), before);
    // 2. A ticket from another export, with policy cancel.
    let mut t: Value =
        serde_json::from_slice(&std::fs::read(dir.join("with-secrets.ticket.json")).unwrap())
            .unwrap();
    t["archiveId"] = json!("44444444-4444-4444-8444-444444444444");
    let bad = tmp.path().join("bad.ticket.json");
    std::fs::write(&bad, serde_json::to_vec_pretty(&t).unwrap()).unwrap();
    let o = lvbak(&[
        "import",
        s(&dir.join("with-secrets.lvbak")),
        "--db",
        s(&db),
        "--user",
        "u1",
        "--ticket",
        s(&bad),
        "--on-ticket-error",
        "cancel",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("archive_mismatch"));
    assert_eq!(tree(&data), before);
    // 3. A failure after rows and files were written: the last file's bytes are corrupt.
    let mut bytes = std::fs::read(dir.join("basic.lvbak")).unwrap();
    let cd = lvbak::container::CentralDirectory::read(
        &mut std::io::Cursor::new(&bytes),
        &lvbak::Limits::default(),
    )
    .unwrap();
    let last_file = cd
        .entries
        .iter()
        .filter(|e| e.name.starts_with("files/") && e.uncompressed_size > 0)
        .max_by_key(|e| e.local_offset)
        .unwrap();
    let data_at = (last_file.local_offset + 30 + last_file.name.len() as u64) as usize;
    bytes[data_at] ^= 0xff;
    let corrupt = tmp.path().join("corrupt.lvbak");
    std::fs::write(&corrupt, bytes).unwrap();
    let o = lvbak(&["import", s(&corrupt), "--db", s(&db), "--user", "u1"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("CRC"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(tree(&data), before, "a failed import left changes");
    // 4. --dry-run writes nothing.
    let o = lvbak(&[
        "import",
        s(&dir.join("basic.lvbak")),
        "--db",
        s(&db),
        "--user",
        "u1",
        "--dry-run",
    ]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("dry run: would insert"));
    assert_eq!(tree(&data), before);
}

#[test]
fn ticket_reuse_is_recorded() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("a.db");
    let args = |user: &'static str| {
        vec![
            "import".to_owned(),
            s(&dir.join("with-secrets.lvbak")).to_owned(),
            "--db".into(),
            s(&db).to_owned(),
            "--user".into(),
            user.into(),
            "--ticket".into(),
            s(&dir.join("with-secrets.ticket.json")).to_owned(),
            "--json".into(),
        ]
    };
    let run = |user| {
        let a = args(user);
        let o = lvbak(&a.iter().map(String::as_str).collect::<Vec<_>>());
        ok(&o);
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    assert_eq!(run("u1")["secrets"]["ticketUses"], 1);
    let second = run("u2");
    assert_eq!(second["secrets"]["ticketUses"], 2);
    assert!(second["secrets"]["previouslyUsedAt"].is_number());
}

/// A database and data directory laid out as FORMAT.md §13 describes:
/// `_migrations`, the server's tables, `lumiverse.identity`, secrets
/// encrypted at rest.
fn make_instance(dir: &Path, user: &str, secrets: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    let db = dir.join("lumiverse.db");
    {
        let st = SqliteStore::open(&db, dir, "setup").unwrap();
        st.connection()
            .execute_batch(
                "CREATE TABLE _migrations (id INTEGER PRIMARY KEY, name TEXT UNIQUE, applied_at INTEGER);
                 INSERT INTO _migrations (name, applied_at) VALUES ('095_lumihub_link_user_scope.sql', 0);
                 CREATE TABLE user (id TEXT PRIMARY KEY, name TEXT, email TEXT UNIQUE, username TEXT UNIQUE, role TEXT);
                 CREATE TABLE settings (key TEXT NOT NULL, value TEXT NOT NULL, updated_at INTEGER, user_id TEXT, PRIMARY KEY (key, user_id));
                 CREATE TABLE connection_profiles (id TEXT PRIMARY KEY, name TEXT NOT NULL, provider TEXT, api_url TEXT, model TEXT, preset_id TEXT, is_default INTEGER DEFAULT 0, metadata TEXT DEFAULT '{}', created_at INTEGER, updated_at INTEGER, has_api_key INTEGER NOT NULL DEFAULT 0, user_id TEXT);
                 CREATE TABLE presets (id TEXT PRIMARY KEY, name TEXT NOT NULL, user_id TEXT);
                 CREATE TABLE mcp_servers (id TEXT PRIMARY KEY, name TEXT, has_headers INTEGER DEFAULT 0, user_id TEXT);
                 CREATE TABLE secrets (key TEXT NOT NULL, encrypted_value TEXT NOT NULL, iv TEXT NOT NULL, tag TEXT NOT NULL, updated_at INTEGER, user_id TEXT NOT NULL, PRIMARY KEY (key, user_id));",
            )
            .unwrap();
    }
    let id = Identity::generate().unwrap();
    std::fs::write(dir.join("lumiverse.identity"), id.to_bytes().unwrap()).unwrap();
    let st = SqliteStore::open(&db, dir, user).unwrap();
    let c = st.connection();
    c.execute(
        "INSERT INTO user (id, name, role) VALUES (?1, 'Owner', 'owner')",
        [user],
    )
    .unwrap();
    c.execute(
        "INSERT INTO presets (id, name, user_id) VALUES ('p1', 'Preset', ?1)",
        [user],
    )
    .unwrap();
    c.execute("INSERT INTO connection_profiles (id, name, preset_id, has_api_key, user_id) VALUES ('conn1', 'Main', 'p1', 1, ?1)", [user]).unwrap();
    c.execute(
        "INSERT INTO mcp_servers (id, name, has_headers, user_id) VALUES ('m1', 'Tools', 1, ?1)",
        [user],
    )
    .unwrap();
    for (k, v) in secrets {
        let (ev, iv, tag) = id.encrypt(v).unwrap();
        c.execute(
            "INSERT INTO secrets (key, encrypted_value, iv, tag, updated_at, user_id) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
            [*k, &ev, &iv, &tag, user],
        )
        .unwrap();
    }
}

#[test]
fn secrets_travel_between_two_instances_with_their_own_identities() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("instance-a");
    let b = tmp.path().join("instance-b");
    let secrets = [
        ("connection_conn1_api_key", "sk-live-123"),
        ("mcp_server_m1_headers", r#"{"X":"y"}"#),
        ("web_search_api_key", "ws-456"),
    ];
    make_instance(&a, "owner-a", &secrets);
    make_instance(&b, "owner-b", &[]);
    let archive = tmp.path().join("a.lvbak");
    let ticket = tmp.path().join("a.ticket.json");
    ok(&lvbak(&[
        "export",
        "--db",
        s(&a.join("lumiverse.db")),
        "--user",
        "owner-a",
        "-o",
        s(&archive),
        "--secrets",
        "--ticket-out",
        s(&ticket),
    ]));
    let v = inspect(&archive);
    assert_eq!(v["secrets"]["count"], 3);
    assert_eq!(v["tables"]["connection_profiles"], 1);
    let o = lvbak(&[
        "import",
        s(&archive),
        "--db",
        s(&b.join("lumiverse.db")),
        "--user",
        "owner-b",
        "--ticket",
        s(&ticket),
    ]);
    ok(&o);
    // Decrypt every restored secret with instance B's identity.
    let mut st = SqliteStore::open(&b.join("lumiverse.db"), &b, "owner-b").unwrap();
    let restored = Source::secrets(&mut st).unwrap();
    let got: BTreeMap<String, String> = restored
        .iter()
        .map(|s| (s.key.clone(), s.expose_value().to_owned()))
        .collect();
    let want: BTreeMap<String, String> = secrets
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, want);
    // has_api_key / has_headers match what was restored; rows belong to owner-b.
    let c = st.connection();
    let flags: (i64, i64, String) = c
        .query_row("SELECT c.has_api_key, m.has_headers, c.user_id FROM connection_profiles c, mcp_servers m", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    assert_eq!(flags, (1, 1, "owner-b".to_owned()));
    // Instance A's identity cannot read them.
    let id_a = Identity::parse(&std::fs::read(a.join("lumiverse.identity")).unwrap()).unwrap();
    let (ev, iv, tag): (String, String, String) = c
        .query_row(
            "SELECT encrypted_value, iv, tag FROM secrets WHERE key = 'connection_conn1_api_key'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(id_a.decrypt("k", &ev, &iv, &tag).is_err());
    // Tables the live schema lacks are reported, not created.
    let o = lvbak(&[
        "import",
        s(&archive),
        "--db",
        s(&b.join("lumiverse.db")),
        "--user",
        "owner-b",
        "--json",
    ]);
    ok(&o);
    let _ = StorePath::for_entry(lvbak::Bucket::Images, "owner-b", "x.png");
}

#[test]
fn a_live_schema_keeps_its_fts_triggers_working_and_never_gets_a_null_owner() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let inst = tmp.path().join("instance");
    make_instance(&inst, "owner-a", &[]);
    let db = inst.join("lumiverse.db");
    {
        let st = SqliteStore::open(&db, &inst, "setup").unwrap();
        st.connection()
            .execute_batch(
                "CREATE TABLE characters (id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT, avatar_path TEXT, image_id TEXT, user_id TEXT);
                 CREATE VIRTUAL TABLE characters_fts USING fts5(name, description, content='characters', content_rowid='rowid', tokenize='trigram');
                 CREATE TRIGGER characters_ai AFTER INSERT ON characters BEGIN
                   INSERT INTO characters_fts(rowid, name, description) VALUES (new.rowid, new.name, new.description);
                 END;",
            )
            .unwrap();
    }
    let o = lvbak(&[
        "import",
        s(&dir.join("basic.lvbak")),
        "--db",
        s(&db),
        "--user",
        "owner-a",
        "--only",
        "characters",
        "--json",
    ]);
    ok(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["tables"]["characters"]["inserted"], 3);
    // Tables the live schema lacks are reported, not created.
    assert!(
        v["ignoredTables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["table"] == "character_gallery"),
        "{v}"
    );
    let st = SqliteStore::open(&db, &inst, "owner-a").unwrap();
    let c = st.connection();
    let hits: i64 = c
        .query_row(
            "SELECT count(*) FROM characters_fts WHERE characters_fts MATCH 'Character'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hits, 3);
    let nulls: i64 = c
        .query_row(
            "SELECT count(*) FROM characters WHERE user_id IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(nulls, 0);
    let gallery: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'character_gallery'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(gallery, 0);
}

/// An archive with vectors on and chunks marked as vectorised.
fn vectorised_archive() -> Vec<u8> {
    let mut m = lvbak::Manifest::new("66666666-6666-4666-8666-666666666666", 1);
    m.include_vectors = true;
    m.embedding_config.model = Some("some-model".into());
    m.embedding_config.dimension = Some(4);
    m.sync_raw();
    let mut w = lvbak::ArchiveWriter::new(Vec::new(), &m, lvbak::WriteOptions::default()).unwrap();
    for (t, row) in [
        ("world_books", r#"{"id":"wb1","user_id":"x"}"#),
        (
            "world_book_entries",
            r#"{"id":"e1","world_book_id":"wb1","vectorized":1,"vector_index_status":"indexed"}"#,
        ),
        ("chats", r#"{"id":"c1","user_id":"x"}"#),
        (
            "chat_chunks",
            r#"{"id":"k1","chat_id":"c1","vectorized_at":123,"vector_model":"some-model"}"#,
        ),
    ] {
        let mut tw = w.table(t).unwrap();
        tw.write_row(row).unwrap();
        tw.finish().unwrap();
    }
    w.finish().unwrap().0
}

#[test]
fn an_embedding_mismatch_marks_sqlite_chunks_for_revectorisation() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("a.db");
    let archive = tmp.path().join("v.lvbak");
    std::fs::write(&archive, vectorised_archive()).unwrap();
    let o = lvbak(&[
        "import",
        s(&archive),
        "--db",
        s(&db),
        "--user",
        "u1",
        "--json",
    ]);
    ok(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["vectors"]["revectorise"], true);
    let st = SqliteStore::open(&db, tmp.path(), "u1").unwrap();
    let c = st.connection();
    let (vectorised, total): (i64, i64) = c
        .query_row(
            "SELECT count(vectorized_at), count(*) FROM chat_chunks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(total > 0);
    assert_eq!(vectorised, 0);
    let bad: i64 = c
        .query_row("SELECT count(*) FROM world_book_entries WHERE vectorized != 0 OR vector_index_status != 'not_enabled'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(bad, 0);
}

#[test]
fn every_deflate_level_exports_the_same_content() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_, db) = imported(tmp.path(), &dir.join("basic.lvbak"));
    let mut seen: Option<Value> = None;
    let mut sizes = Vec::new();
    for level in ["0", "1", "2", "9"] {
        let out = tmp.path().join(format!("l{level}.lvbak"));
        ok(&lvbak(&[
            "export",
            "--db",
            s(&db),
            "--user",
            "u1",
            "-o",
            s(&out),
            "--level",
            level,
        ]));
        ok(&lvbak(&["verify", "--deep", s(&out)]));
        let v = inspect(&out);
        let content = serde_json::json!([v["tables"], v["files"]]);
        if let Some(prev) = &seen {
            assert_eq!(&content, prev, "level {level}");
        }
        seen = Some(content);
        sizes.push(std::fs::metadata(&out).unwrap().len());
    }
    assert!(sizes[0] > sizes[1], "level 0 stores: {sizes:?}");
    let o = lvbak(&[
        "export",
        "--db",
        s(&db),
        "--user",
        "u1",
        "-o",
        s(&tmp.path().join("x.lvbak")),
        "--level",
        "10",
    ]);
    assert_eq!(o.status.code(), Some(2), "a level over 9 is a usage error");
}
