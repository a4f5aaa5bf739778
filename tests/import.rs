//! The engines over the in-memory store: every fixture, dry runs, atomicity,
//! idempotence, selective restore, migration, round trips.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, Cursor};

use lvbak::domain::DomainId;
use lvbak::engine::{
    export, import, CancelToken, EngineError, ExportOptions, ImportOptions, ImportReport,
};
use lvbak::envelope::{EnvelopeVersion, Ticket};
use lvbak::secrets::TicketPolicy;
use lvbak::store::memory::MemoryStore;
use lvbak::{Archive, Limits, WriteOptions};
use serde_json::{json, Value};

const ME: &str = "importer-0000-user";

fn open(dir: &std::path::Path, name: &str) -> Archive<BufReader<File>> {
    Archive::open(
        BufReader::new(File::open(dir.join(format!("{name}.lvbak"))).unwrap()),
        Limits::default(),
    )
    .unwrap()
}

fn run(
    a: &mut Archive<impl std::io::Read + std::io::Seek + Send>,
    s: &mut MemoryStore,
    o: &ImportOptions,
) -> Result<ImportReport, EngineError> {
    import(a, s, o, &mut |_| {}, &CancelToken::new())
}

/// The archive an export of `s` writes, with the default options.
fn exported(s: &mut MemoryStore) -> Vec<u8> {
    let (bytes, _) = export(
        s,
        Vec::new(),
        &ExportOptions::default(),
        &mut |_| {},
        &CancelToken::new(),
    )
    .unwrap();
    bytes
}

fn ticket(dir: &std::path::Path) -> Ticket {
    Ticket::parse(&std::fs::read(dir.join("with-secrets.ticket.json")).unwrap()).unwrap()
}

fn files_by_bucket(r: &ImportReport) -> Value {
    let mut m = serde_json::Map::new();
    for (b, c) in &r.files {
        if c.written > 0 {
            m.insert(b.as_str().to_owned(), json!(c.written));
        }
    }
    Value::Object(m)
}

#[test]
fn every_fixture_imports_like_the_server() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    for name in common::fixture_names(&dir) {
        let exp = common::expected(&dir, &name);
        let reference = &exp["referenceImport"];
        let mut a = open(&dir, &name);
        let mut s = MemoryStore::new(ME);
        let opts = ImportOptions {
            ticket: (name == "with-secrets").then(|| ticket(&dir)),
            ..ImportOptions::default()
        };
        let result = run(&mut a, &mut s, &opts);
        if reference["status"] == "complete" {
            let r = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            let got: Value = serde_json::to_value(r.inserted()).unwrap();
            let want: serde_json::Map<String, Value> = reference["tables"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, v)| v.as_u64() != Some(0))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(got, Value::Object(want), "{name}: tables");
            assert_eq!(files_by_bucket(&r), reference["files"], "{name}: files");
            assert_eq!(
                r.secrets.restored.len() as u64,
                reference["secretsRestored"].as_u64().unwrap(),
                "{name}: secrets"
            );
            assert!(
                r.ignored_tables.is_empty(),
                "{name}: {:?}",
                r.ignored_tables
            );
        } else {
            let e = result.expect_err(&name);
            let msg = reference["error"]["message"].as_str().unwrap();
            assert!(e.to_string().contains(msg), "{name}: {e} vs {msg}");
            assert_eq!(
                s.data,
                MemoryStore::new(ME).data,
                "{name}: a refused import left data behind"
            );
        }
    }
}

#[test]
fn dry_run_writes_nothing_and_predicts_the_apply() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let mut s = MemoryStore::new(ME);
    let before = s.data.clone();
    let plan = run(
        &mut open(&dir, "with-secrets"),
        &mut s,
        &ImportOptions {
            dry_run: true,
            ticket: Some(ticket(&dir)),
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(s.data, before);
    assert!(plan.dry_run);
    let done = run(
        &mut open(&dir, "with-secrets"),
        &mut s,
        &ImportOptions {
            ticket: Some(ticket(&dir)),
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(plan.tables, done.tables);
    assert_eq!(plan.files, done.files);
    assert_eq!(plan.secrets.restored, done.secrets.restored);
    // A plan against the filled store predicts that nothing is new.
    let again = run(
        &mut open(&dir, "with-secrets"),
        &mut s,
        &ImportOptions {
            dry_run: true,
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert!(
        again
            .tables
            .iter()
            .all(|t| t.inserted == 0 && t.merged == 0),
        "{:?}",
        again.tables
    );
    assert!(again.files.values().all(|c| c.written == 0));
}

#[test]
fn a_failure_at_any_write_leaves_the_store_unchanged() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    // A store that already holds another account, so rollback has something to keep.
    let mut s = MemoryStore::new("someone-else");
    run(
        &mut open(&dir, "empty-account"),
        &mut s,
        &ImportOptions::default(),
    )
    .unwrap();
    s.set_user(ME);
    let before = s.data.clone();
    let opts = ImportOptions {
        ticket: Some(ticket(&dir)),
        ..ImportOptions::default()
    };
    let mut n = 0;
    loop {
        s.fail_after = Some(n);
        match run(&mut open(&dir, "with-secrets"), &mut s, &opts) {
            Err(e) => {
                assert!(e.to_string().contains("injected failure"), "{e}");
                assert_eq!(s.data, before, "failure at write {n} left changes");
            }
            Ok(_) => break,
        }
        n += 1;
    }
    assert!(n >= 90, "only {n} writes?");
    // Cancellation also rolls back.
    s.fail_after = None;
    s.data = before.clone();
    let cancel = CancelToken::new();
    cancel.cancel();
    let e = import(
        &mut open(&dir, "basic"),
        &mut s,
        &ImportOptions::default(),
        &mut |_| {},
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(e, EngineError::Cancelled));
    assert_eq!(s.data, before);
}

#[test]
fn a_second_import_changes_nothing() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let mut s = MemoryStore::new(ME);
    let opts = ImportOptions {
        ticket: Some(ticket(&dir)),
        ..ImportOptions::default()
    };
    run(&mut open(&dir, "with-secrets"), &mut s, &opts).unwrap();
    let mut before = s.data.clone();
    let r = run(&mut open(&dir, "with-secrets"), &mut s, &opts).unwrap();
    assert!(r.tables.iter().all(|t| t.inserted == 0 && t.merged == 0));
    assert_eq!(r.secrets.ticket_uses, Some(2));
    assert!(r.secrets.previously_used_at.is_some());
    // Only the ticket-use record differs.
    before.consumed_tickets = s.data.consumed_tickets.clone();
    assert_eq!(s.data, before);
}

#[test]
fn restored_keys_set_their_flags_and_databank_files_land_where_rows_point() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let mut s = MemoryStore::new(ME);
    let r = run(
        &mut open(&dir, "with-secrets"),
        &mut s,
        &ImportOptions {
            ticket: Some(ticket(&dir)),
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.secrets.restored.len(), 4);
    assert_eq!(r.secrets.flags_set, 4);
    let flag = |t: &str, id: &str, c: &str| {
        s.rows(t)
            .into_iter()
            .find(|r| r["id"] == id)
            .map(|r| r[c].clone())
    };
    assert_eq!(
        flag(
            "connection_profiles",
            "b524b702-1de0-4e7a-a2c6-c2497c153af3",
            "has_api_key"
        ),
        Some(json!(1))
    );
    assert_eq!(
        flag(
            "mcp_servers",
            "8e44d02f-4576-427e-ac86-eae1515e51ca",
            "has_headers"
        ),
        Some(json!(1))
    );
    assert_eq!(s.data.secrets.len(), 4);
    for doc in s.rows("databank_documents") {
        let fp = doc["file_path"].as_str().unwrap();
        assert!(
            s.data.files.contains_key(&format!("databank/{ME}/{fp}")),
            "{fp} not restored where its row points"
        );
    }
    // Every row now belongs to the importing user.
    for (t, rows) in &s.data.tables {
        for row in rows.values() {
            if let Some(u) = row.get("user_id") {
                assert_eq!(u, ME, "{t}");
            }
        }
    }
}

#[test]
fn ticket_policy_cancel_and_skip() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let mut forged: Value =
        serde_json::from_slice(&std::fs::read(dir.join("with-secrets.ticket.json")).unwrap())
            .unwrap();
    forged["archiveId"] = json!("00000000-0000-4000-8000-000000000000");
    let bad = Ticket::parse(&serde_json::to_vec(&forged).unwrap()).unwrap();
    let mut s = MemoryStore::new(ME);
    let e = run(
        &mut open(&dir, "with-secrets"),
        &mut s,
        &ImportOptions {
            ticket: Some(bad.clone()),
            ..ImportOptions::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("archive"), "{e}");
    assert_eq!(s.data, MemoryStore::new(ME).data);
    let r = run(
        &mut open(&dir, "with-secrets"),
        &mut s,
        &ImportOptions {
            ticket: Some(bad),
            ticket_policy: TicketPolicy::Skip,
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert!(r.secrets.skipped.is_some());
    assert!(r.secrets.restored.is_empty());
    assert!(s.data.secrets.is_empty());
    assert!(r.inserted().values().sum::<u64>() > 50);
}

#[test]
fn selective_restore_of_each_domain_reports_its_closure() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    for d in DomainId::ALL {
        let mut s = MemoryStore::new(ME);
        let sel: BTreeSet<DomainId> = [d].into();
        let r = run(
            &mut open(&dir, "basic"),
            &mut s,
            &ImportOptions {
                domains: Some(sel.clone()),
                ..ImportOptions::default()
            },
        )
        .unwrap();
        let (closure, added) = lvbak::domain::closure(&sel);
        assert_eq!(r.domains, closure, "{d}");
        assert_eq!(r.closure_added, added, "{d}");
        for t in &r.tables {
            let spec = lvbak::domain::table(&t.table).unwrap();
            assert!(closure.contains(&spec.domain), "{d}: imported {}", t.table);
        }
        for table in s.data.tables.keys() {
            let spec = lvbak::domain::table(table).unwrap();
            assert!(closure.contains(&spec.domain), "{d}: wrote {table}");
        }
        if !added.is_empty() {
            let e = run(
                &mut open(&dir, "basic"),
                &mut MemoryStore::new(ME),
                &ImportOptions {
                    domains: Some(sel),
                    pull_dependencies: false,
                    ..ImportOptions::default()
                },
            )
            .unwrap_err();
            assert!(
                matches!(e, EngineError::MissingDependencies { .. }),
                "{d}: {e}"
            );
        }
    }
    // Chats alone pull characters and images in.
    let mut s = MemoryStore::new(ME);
    let r = run(
        &mut open(&dir, "basic"),
        &mut s,
        &ImportOptions {
            domains: Some([DomainId::Chats].into()),
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        r.closure_added,
        [DomainId::Characters, DomainId::Images].into()
    );
    assert!(!s.rows("characters").is_empty() && s.rows("presets").is_empty());
}

#[test]
fn rows_never_hang_under_another_users_data() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let mut s = MemoryStore::new("victim");
    run(&mut open(&dir, "basic"), &mut s, &ImportOptions::default()).unwrap();
    let chat_id = s.rows("chats")[0]["id"].clone();
    // An archive from someone else with a new message in the victim's chat.
    let m = lvbak::Manifest::new("11111111-1111-4111-8111-111111111111", 1);
    let mut w = lvbak::ArchiveWriter::new(Vec::new(), &m, WriteOptions::default()).unwrap();
    let mut t = w.table("messages").unwrap();
    t.write_object(
        json!({"id": "intruder-msg", "chat_id": chat_id, "content": "hi"})
            .as_object()
            .unwrap(),
    )
    .unwrap();
    t.finish().unwrap();
    let mut t = w.table("chats").unwrap();
    t.write_object(
        json!({"id": chat_id, "user_id": "attacker", "name": "x"})
            .as_object()
            .unwrap(),
    )
    .unwrap();
    t.finish().unwrap();
    let (bytes, _) = w.finish().unwrap();
    s.set_user("attacker");
    let before = s.data.clone();
    let r = run(
        &mut Archive::open(Cursor::new(bytes), Limits::default()).unwrap(),
        &mut s,
        &ImportOptions::default(),
    )
    .unwrap();
    let msgs = r.tables.iter().find(|t| t.table == "messages").unwrap();
    assert_eq!(msgs.skipped_foreign, 1);
    let chats = r.tables.iter().find(|t| t.table == "chats").unwrap();
    assert_eq!(chats.skipped_existing, 1);
    assert_eq!(s.data.tables, before.tables, "the victim's data changed");
}

#[test]
fn migration_to_another_account_and_export_round_trip() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let mut s = MemoryStore::new("new-owner");
    run(
        &mut open(&dir, "with-secrets"),
        &mut s,
        &ImportOptions {
            ticket: Some(ticket(&dir)),
            // Settings take the import time: fixed, so that two imports
            // a second apart compare equal.
            now: Some(1_796_000_000),
            ..ImportOptions::default()
        },
    )
    .unwrap();
    let opts = ExportOptions {
        archive_id: Some("22222222-2222-4222-8222-222222222222".into()),
        exported_at: Some(1_795_000_000),
        secrets: Some(EnvelopeVersion::V2),
        include_vectors: true,
        write: WriteOptions {
            deterministic: true,
            ..WriteOptions::default()
        },
        ..ExportOptions::default()
    };
    let (a1, res) = export(&mut s, Vec::new(), &opts, &mut |_| {}, &CancelToken::new()).unwrap();
    let t1 = res.ticket.unwrap();
    // Import the export into a fresh store, export again: same rows and files.
    let mut s2 = MemoryStore::new("new-owner");
    run(
        &mut Archive::open(Cursor::new(a1.clone()), Limits::default()).unwrap(),
        &mut s2,
        &ImportOptions {
            ticket: Some(t1),
            now: Some(1_796_000_000),
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(s2.data.tables, s.data.tables);
    assert_eq!(s2.data.files, s.data.files);
    assert_eq!(s2.data.secrets, s.data.secrets);
    let mut no_secrets = opts.clone();
    no_secrets.secrets = None;
    let (b1, _) = export(
        &mut s,
        Vec::new(),
        &no_secrets,
        &mut |_| {},
        &CancelToken::new(),
    )
    .unwrap();
    let (b2, _) = export(
        &mut s2,
        Vec::new(),
        &no_secrets,
        &mut |_| {},
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(b1, b2, "deterministic exports of equal stores differ");
    // The exported archive carries the fixture's rows (owner rewritten).
    let mut fixture = open(&dir, "with-secrets");
    let mut ours = Archive::open(Cursor::new(b1), Limits::default()).unwrap();
    for t in fixture.tables() {
        let n1 = fixture.rows(&t).unwrap().count();
        let n2 = ours.rows(&t).map(|r| r.count()).unwrap_or(0);
        assert_eq!(n1, n2, "{t}");
    }
    assert_eq!(
        lvbak::inspect::inspect(&mut ours).unwrap()["files"],
        common::expected(&dir, "with-secrets")["files"]
    );
}

#[test]
fn rows_inserted_by_the_import_are_not_looked_up_again() {
    // A chat of 2,000 messages, each naming the one before as its parent
    // (as the server's messages do; ids sort in chat order, so each parent
    // is imported before its child), and one naming another user's message.
    let mut s = MemoryStore::new("u-1");
    s.put(
        "chats",
        json!({"id": "chat-1", "user_id": "u-1", "name": "long"}),
    );
    for m in 0..2000 {
        let parent = if m == 0 {
            Value::Null
        } else {
            format!("msg-{:04}", m - 1).into()
        };
        s.put(
            "messages",
            json!({"id": format!("msg-{m:04}"), "chat_id": "chat-1", "content": "…", "parent_message_id": parent}),
        );
    }
    s.put(
        "messages",
        json!({"id": "msg-x", "chat_id": "chat-1", "content": "…", "parent_message_id": "their-msg"}),
    );
    let bytes = exported(&mut s);
    let mut t = MemoryStore::new(ME);
    t.set_user("u-2");
    t.put(
        "chats",
        json!({"id": "their-chat", "user_id": "u-2", "name": "theirs"}),
    );
    t.put(
        "messages",
        json!({"id": "their-msg", "chat_id": "their-chat", "content": "theirs"}),
    );
    t.set_user(ME);
    let r = run(
        &mut Archive::open(Cursor::new(bytes), Limits::default()).unwrap(),
        &mut t,
        &ImportOptions {
            now: Some(1),
            ..ImportOptions::default()
        },
    )
    .unwrap();
    assert_eq!(t.rows("messages").len(), 2002);
    assert_eq!(r.foreign_refs_cleared, 1);
    for row in t.rows("messages") {
        match row["id"].as_str().unwrap() {
            "their-msg" => assert_eq!(row["chat_id"], "their-chat"),
            "msg-x" | "msg-0000" => assert!(row["parent_message_id"].is_null(), "{row:?}"),
            id => {
                let m: u32 = id["msg-".len()..].parse().unwrap();
                assert_eq!(row["parent_message_id"], format!("msg-{:04}", m - 1));
            }
        }
    }
    // The other user's message and its chat are looked up; the chat and the
    // messages this import inserted are not.
    assert!(t.row_lookups <= 2, "{} look-ups", t.row_lookups);
}

#[test]
fn one_open_archive_serves_a_dry_run_then_the_import_and_import_owned_matches() {
    // The import sets the file entries aside while it writes rows; the
    // caller's archive lists them all again afterwards.
    let mut s = MemoryStore::new("u-1");
    s.put(
        "chats",
        json!({"id": "chat-1", "user_id": "u-1", "name": "c"}),
    );
    for i in 0..40u32 {
        let id = format!("{i:08x}-0000-4000-8000-000000000000");
        s.put(
            "images",
            json!({"id": id, "user_id": "u-1", "filename": format!("{id}.png")}),
        );
        s.data
            .files
            .insert(format!("images/{id}.png"), vec![i as u8; 100]);
    }
    let bytes = exported(&mut s);
    let mut a = Archive::open(Cursor::new(bytes.clone()), Limits::default()).unwrap();
    let listed =
        |a: &Archive<Cursor<Vec<u8>>>| a.entries().map(|e| e.to_entry()).collect::<Vec<_>>();
    let before = listed(&a);
    let mut t = MemoryStore::new("u-9");
    let dry = ImportOptions {
        dry_run: true,
        now: Some(1),
        ..ImportOptions::default()
    };
    let plan = run(&mut a, &mut t, &dry).unwrap();
    assert_eq!(listed(&a), before);
    let dir = tempfile::tempdir().unwrap();
    let apply = ImportOptions {
        now: Some(1),
        spill_dir: Some(dir.path().to_path_buf()),
        ..ImportOptions::default()
    };
    let done = run(&mut a, &mut t, &apply).unwrap();
    assert_eq!(listed(&a), before);
    assert_eq!(plan.files, done.files);
    assert_eq!(done.files[&lvbak::Bucket::Images].written, 40);
    for i in 0..40u32 {
        let key = format!("images/{i:08x}-0000-4000-8000-000000000000.png");
        assert_eq!(t.data.files.get(&key), Some(&vec![i as u8; 100]), "{key}");
    }
    // Handing the archive over gives the same import.
    let mut u = MemoryStore::new("u-9");
    let owned = lvbak::engine::import_owned(
        Archive::open(Cursor::new(bytes), Limits::default()).unwrap(),
        &mut u,
        &apply,
        &mut |_| {},
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(owned.tables, done.tables);
    assert_eq!(owned.files, done.files);
    assert_eq!(u.data, t.data);
}

mod generated {
    use super::*;
    use proptest::prelude::*;

    /// (chats as id/name, image bytes, settings as key/value).
    type Account = (Vec<(String, String)>, Vec<Vec<u8>>, Vec<(String, String)>);

    fn account() -> impl Strategy<Value = Account> {
        (
            proptest::collection::vec(("[a-z0-9-]{1,12}", "\\PC{0,40}"), 0..12),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..5000), 0..4),
            proptest::collection::vec(("[a-z]{1,10}", "\\PC{0,20}"), 0..5),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn export_then_import_restores_generated_accounts((chats, images, settings) in account()) {
            let mut s = MemoryStore::new("u-1");
            for (i, (id, name)) in chats.iter().enumerate() {
                let id = format!("{i}-{id}");
                s.put("chats", json!({"id": format!("chat-{id}"), "user_id": "u-1", "name": name, "metadata": "{\"k\":\"ü\"}", "n": 9007199254740993u64}));
                s.put("messages", json!({"id": format!("msg-{id}"), "chat_id": format!("chat-{id}"), "content": name}));
            }
            for (i, bytes) in images.iter().enumerate() {
                let id = format!("{i:08x}-0000-4000-8000-000000000000");
                s.put("images", json!({"id": id, "user_id": "u-1", "filename": format!("{id}.png")}));
                s.data.files.insert(format!("images/{id}.png"), bytes.clone());
            }
            for (k, v) in &settings {
                s.put("settings", json!({"key": k, "value": v, "user_id": "u-1", "updated_at": 1}));
            }
            // Another user's rows never travel.
            s.put("chats", json!({"id": "other-chat", "user_id": "u-2", "name": "not mine"}));
            let (bytes, res) = export(&mut s, Vec::new(), &ExportOptions::default(), &mut |_| {}, &CancelToken::new()).unwrap();
            prop_assert_eq!(res.missing_files.len(), images.len() * 2); // thumbnails absent
            let mut t = MemoryStore::new("u-9");
            let r = run(&mut Archive::open(Cursor::new(bytes), Limits::default()).unwrap(), &mut t, &ImportOptions { now: Some(1), ..ImportOptions::default() }).unwrap();
            prop_assert_eq!(t.rows("chats").len(), chats.len());
            prop_assert_eq!(t.rows("messages").len(), chats.len());
            for (i, bytes) in images.iter().enumerate() {
                let key = format!("images/{i:08x}-0000-4000-8000-000000000000.png");
                prop_assert_eq!(t.data.files.get(&key), Some(bytes));
            }
            for row in t.rows("chats") {
                prop_assert_eq!(&row["user_id"], "u-9");
                let src = s.rows("chats").into_iter().find(|r| r["id"] == row["id"]).unwrap();
                prop_assert_eq!(&row["name"], &src["name"]);
                prop_assert_eq!(&row["n"], &src["n"]);
            }
            let distinct: BTreeSet<&String> = settings.iter().map(|(k, _)| k).collect();
            prop_assert_eq!(t.rows("settings").len(), distinct.len());
            prop_assert!(r.ignored_tables.is_empty());
        }
    }
}

mod hostile_rows {
    use super::*;

    fn archive(tables: &[(&str, &[&str])]) -> Vec<u8> {
        let m = lvbak::Manifest::new("55555555-5555-4555-8555-555555555555", 1);
        let mut w = lvbak::ArchiveWriter::new(Vec::new(), &m, WriteOptions::default()).unwrap();
        for (t, rows) in tables {
            let mut tw = w.table(t).unwrap();
            for r in *rows {
                tw.write_row(r).unwrap();
            }
            tw.finish().unwrap();
        }
        w.finish().unwrap().0
    }

    fn import_bytes(bytes: Vec<u8>, s: &mut MemoryStore) -> Result<ImportReport, EngineError> {
        run(
            &mut Archive::open(Cursor::new(bytes), Limits::default()).unwrap(),
            s,
            &ImportOptions::default(),
        )
    }

    #[test]
    fn lying_counts_do_not_matter_rows_are_counted_as_read() {
        // The manifest claims 1,000,000 chats; the table has one.
        let mut m = lvbak::Manifest::new("55555555-5555-4555-8555-555555555555", 1);
        m.counts = vec![("chats".into(), 1_000_000)];
        m.sync_raw();
        let mut w = lvbak::ArchiveWriter::new(
            Vec::new(),
            &m,
            WriteOptions {
                digests: false,
                ..WriteOptions::default()
            },
        )
        .unwrap();
        let mut t = w.table("chats").unwrap();
        t.write_row(r#"{"id":"c1","user_id":"x"}"#).unwrap();
        t.finish().unwrap();
        let (bytes, _) = w.finish().unwrap();
        let mut s = MemoryStore::new(ME);
        let r = import_bytes(bytes, &mut s).unwrap();
        assert_eq!(r.tables[0].rows, 1);
        assert_eq!(s.rows("chats").len(), 1);
    }

    #[test]
    fn rows_with_wrong_types_are_refused_and_nothing_is_written() {
        let bytes = archive(&[(
            "chats",
            &[
                r#"{"id":"c1","user_id":"x"}"#,
                r#"{"id":"c2","user_id":"x","metadata":{"not":"text"}}"#,
            ],
        )]);
        let mut s = MemoryStore::new(ME);
        let e = import_bytes(bytes, &mut s).unwrap_err();
        assert!(
            matches!(&e, EngineError::Row { table, line: 2, .. } if table == "chats"),
            "{e}"
        );
        assert_eq!(s.data, MemoryStore::new(ME).data);
    }

    #[test]
    fn huge_strings_are_carried_intact() {
        let big = "é".repeat(1_500_000); // 3 MB of UTF-8, under the 4 MiB line cap
        let row = format!(r#"{{"id":"m1","chat_id":"c1","content":"{big}"}}"#);
        let bytes = archive(&[
            ("chats", &[r#"{"id":"c1","user_id":"x"}"#]),
            ("messages", &[row.as_str()]),
        ]);
        let mut s = MemoryStore::new(ME);
        import_bytes(bytes, &mut s).unwrap();
        assert_eq!(
            s.rows("messages")[0]["content"].as_str().map(str::len),
            Some(big.len())
        );
    }

    #[test]
    fn dangling_references_are_cleared_and_other_users_ids_rewritten() {
        let bytes = archive(&[
            ("presets", &[r#"{"id":"p1","user_id":"victim"}"#]),
            (
                "connection_profiles",
                &[
                    r#"{"id":"k1","preset_id":"missing-preset","user_id":"victim"}"#,
                    r#"{"id":"k2","preset_id":"p1","user_id":"victim"}"#,
                ],
            ),
        ]);
        let mut s = MemoryStore::new(ME);
        let r = import_bytes(bytes, &mut s).unwrap();
        assert_eq!(r.dangling_cleared, 1);
        let by = |id: &str| {
            s.rows("connection_profiles")
                .into_iter()
                .find(|r| r["id"] == id)
                .unwrap()
                .clone()
        };
        assert_eq!(by("k1")["preset_id"], Value::Null);
        assert_eq!(by("k2")["preset_id"], "p1");
        for t in ["presets", "connection_profiles"] {
            assert!(s.rows(t).iter().all(|r| r["user_id"] == ME), "{t}");
        }
    }

    #[test]
    fn tables_outside_the_domains_are_reported_not_imported() {
        let bytes = archive(&[
            ("sso_providers", &[r#"{"id":"x","client_secret":"s"}"#]),
            ("user", &[r#"{"id":"admin","role":"owner"}"#]),
            ("made_up", &[r#"{"id":1}"#]),
        ]);
        let mut s = MemoryStore::new(ME);
        let r = import_bytes(bytes, &mut s).unwrap();
        let names: Vec<&str> = r.ignored_tables.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names, vec!["made_up", "sso_providers", "user"]);
        assert!(s.data.tables.is_empty());
    }
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
fn an_embedding_mismatch_marks_chunks_for_revectorisation() {
    let mut s = MemoryStore::new(ME);
    let r = run(
        &mut Archive::open(Cursor::new(vectorised_archive()), Limits::default()).unwrap(),
        &mut s,
        &ImportOptions::default(),
    )
    .unwrap();
    assert!(r.vectors.revectorise && !r.vectors.restored);
    let chunks = s.rows("chat_chunks");
    assert!(!chunks.is_empty());
    assert!(chunks
        .iter()
        .all(|c| c["vectorized_at"].is_null() && c["vector_model"].is_null()));
    let entries = s.rows("world_book_entries");
    assert!(
        entries
            .iter()
            .all(|e| e["vectorized"] == 0 && e["vector_index_status"] == "not_enabled"),
        "{entries:?}"
    );
}

mod file_references {
    use super::*;

    /// An account whose rows reference thousands of files (enough for the
    /// list of files to copy to outgrow its first chunk), some twice, some
    /// missing, one with a name no archive may hold.
    fn account() -> (MemoryStore, usize) {
        let mut s = MemoryStore::new("u-1");
        let n = 12_000;
        for i in 0..n {
            let id = format!("{i:08x}-0000-4000-8000-000000000000");
            s.put(
                "images",
                json!({"id": id, "user_id": "u-1", "filename": format!("{id}.png")}),
            );
            s.data
                .files
                .insert(format!("images/{id}.png"), vec![i as u8]);
            if i % 2 == 0 {
                for size in ["sm", "lg"] {
                    s.data
                        .files
                        .insert(format!("images/{id}_thumb_{size}_v2.webp"), vec![1]);
                }
            }
        }
        // A second image row pointing at image 0's file: its file is not
        // copied again; its own thumbnails are missing.
        s.put(
            "images",
            json!({"id": "ffffffff-0000-4000-8000-000000000000", "user_id": "u-1",
                   "filename": "00000000-0000-4000-8000-000000000000.png"}),
        );
        // Two characters share an avatar that is present, two share one
        // that is missing.
        for (id, avatar) in [
            ("c1", "shared.png"),
            ("c2", "shared.png"),
            ("c3", "gone.png"),
            ("c4", "gone.png"),
        ] {
            s.put(
                "characters",
                json!({"id": id, "user_id": "u-1", "name": id, "avatar_path": avatar}),
            );
        }
        s.data
            .files
            .insert("avatars/shared.png".into(), b"a".to_vec());
        // Twice a theme asset whose name no archive may hold.
        for id in ["t1", "t2"] {
            s.put(
                "theme_assets",
                json!({"id": id, "user_id": "u-1", "bundle_id": "..", "file_name": "x.css",
                       "storage_type": "file"}),
            );
        }
        (s, n)
    }

    #[test]
    fn each_file_is_copied_once_and_each_missing_one_listed_once() {
        let mut archives = Vec::new();
        for spill in [false, true] {
            let (mut s, n) = account();
            let dir = tempfile::tempdir().unwrap();
            let opts = ExportOptions {
                archive_id: Some("66666666-6666-4666-8666-666666666666".into()),
                exported_at: Some(1),
                write: WriteOptions {
                    deterministic: true,
                    spill_dir: spill.then(|| dir.path().to_path_buf()),
                    ..WriteOptions::default()
                },
                ..ExportOptions::default()
            };
            let (bytes, res) =
                export(&mut s, Vec::new(), &opts, &mut |_| {}, &CancelToken::new()).unwrap();
            // Nothing is left in the folder.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            let a = Archive::open(Cursor::new(&bytes), Limits::default()).unwrap();
            let files: Vec<String> = a
                .entries()
                .map(|e| e.path().into_owned())
                .filter(|n| n.starts_with("files/"))
                .collect();
            // Every image, the even ones' thumbnails, the shared avatar.
            assert_eq!(files.len(), n + n + 1, "spill {spill}");
            assert!(files.contains(&"files/avatars/shared.png".to_string()));
            let listed: BTreeSet<&String> = res.missing_files.iter().collect();
            assert_eq!(listed.len(), res.missing_files.len(), "listed twice");
            assert_eq!(
                res.missing_files.len(),
                n + 2 + 1 + 1,
                "{:?}",
                &res.missing_files[..4]
            );
            assert!(res.missing_files.contains(&"avatars/gone.png".to_string()));
            assert!(res
                .missing_files
                .iter()
                .any(|m| m.ends_with("(name not allowed in an archive)")));
            archives.push(bytes);
        }
        assert!(archives[0] == archives[1]);
    }
}
