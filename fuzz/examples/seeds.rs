//! Writes small valid seed inputs for every fuzz target into `fuzz/corpus/`.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` from the
//! repository root. The corpus folder is git-ignored; optionally copy the
//! Lumiverse fixtures in as extra `open_verify` seeds (never commit them).

use std::fs;
use std::path::Path;

use lvbak::envelope::{seal_deterministic, EnvelopeVersion, SecretKey, SecretSet};
use lvbak::{ArchiveWriter, Bucket, Manifest, WriteOptions};

const ID: &str = "6f1c2a9e-0000-4000-8000-000000000001";

fn put(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(name), bytes).unwrap();
}

fn archive(secrets: Option<(&[u8], &[u8])>, rows: &[&str], files: bool) -> Vec<u8> {
    let m = Manifest::new(ID, 1_700_000_000);
    let opts = WriteOptions {
        deterministic: true,
        ..WriteOptions::default()
    };
    let mut w = ArchiveWriter::new(Vec::new(), &m, opts).unwrap();
    if !rows.is_empty() {
        let mut t = w.table("chats").unwrap();
        for r in rows {
            t.write_row(r).unwrap();
        }
        t.finish().unwrap();
        let mut v = w.vector_table("chunks").unwrap();
        v.write_row(r#"{"id":"v1","vector":[0.5,1]}"#).unwrap();
        v.finish().unwrap();
    }
    if files {
        w.add_file(Bucket::Avatars, "me.png", &b"\x89PNG"[..])
            .unwrap();
        w.add_file(Bucket::ThemeAssets, "b1/x.css", &b"a{}"[..])
            .unwrap();
        w.add_file(Bucket::NotificationSounds, "completion.mp3", &b"ID3"[..])
            .unwrap();
    }
    if let Some((index, records)) = secrets {
        w.add_secrets(index, records).unwrap();
    }
    w.finish().unwrap().0
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut set = SecretSet::new();
    set.insert("openai", "sk-test");
    set.insert("anthropic", "sk-ant");
    let key = SecretKey::from_bytes([7u8; 32]);
    for (v, tag) in [(EnvelopeVersion::V1, "v1"), (EnvelopeVersion::V2, "v2")] {
        let sealed =
            seal_deterministic(v, ID, &set, 1_700_000_000, &key, &[[1u8; 12], [2u8; 12]]).unwrap();
        let ticket = sealed.ticket.to_json();
        let mut env = Vec::new();
        env.extend_from_slice(&ticket);
        env.push(0xFF);
        env.extend_from_slice(&sealed.index_json);
        env.push(0xFF);
        env.extend_from_slice(&sealed.encrypted_ndjson);
        put(&dir, "envelope", tag, &env);
        put(&dir, "envelope", &format!("{tag}-ticket"), &ticket);
        let a = archive(
            Some((&sealed.index_json, &sealed.encrypted_ndjson)),
            &[r#"{"id":"c1"}"#],
            false,
        );
        put(&dir, "open_verify", &format!("secrets-{tag}"), &a);
    }
    put(&dir, "open_verify", "empty", &archive(None, &[], false));
    put(
        &dir,
        "open_verify",
        "rows-files",
        &archive(
            None,
            &[
                r#"{"id":"c1","name":"Hello"}"#,
                r#"{"id":"c2","n":[1,2,{"x":null}]}"#,
            ],
            true,
        ),
    );
    // A table of three of the writer's 1 MiB segments: deep verify on two
    // threads checks it in parts (`verify_path_split_from`).
    let long: Vec<String> = (0..24_000)
        .map(|i| format!(r#"{{"id":"m{i}","content":"{}"}}"#, "word ".repeat(i % 19)))
        .collect();
    let long: Vec<&str> = long.iter().map(String::as_str).collect();
    put(
        &dir,
        "open_verify",
        "rows-segments",
        &archive(None, &long, false),
    );
    for (i, line) in [
        "{\"id\":\"c1\",\"name\":\"Hello\"}\n{\"a\":[1,2.5e3,true,null]}\n",
        "\n\nnull\n0\n\"\"\n{}\n",
        "{\"s\":\"\\ud800\\u00e9\\n\"}\r\n[1]\n",
        "\x08{\"deep\":[[[[[[{}]]]]]]}\n",
    ]
    .iter()
    .enumerate()
    {
        put(&dir, "ndjson", &format!("seed{i}"), line.as_bytes());
    }
    let m = Manifest::new(ID, 1_700_000_000);
    put(&dir, "manifest", "manifest", &m.to_json());
    put(
        &dir,
        "manifest",
        "trailer",
        br#"{"counts":{"chats":2},"missingFiles":["files/images/a.png"],"lvbak":{"version":1,"sha256":{"manifest.json":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}}}"#,
    );
    // Version-2 and version-3 digests (base64 of two 32-byte digests): the
    // count right, and one too many; and a version no reader knows.
    let two =
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";
    for (name, version, entries) in [
        ("trailer-v2", 2, 2),
        ("trailer-v2-count", 2, 3),
        ("trailer-v3", 3, 2),
        ("trailer-v3-count", 3, 3),
        ("trailer-v4", 4, 2),
    ] {
        let t = format!(
            r#"{{"counts":{{}},"lvbak":{{"version":{version},"entries":{entries},"sha256":"{two}"}}}}"#
        );
        put(&dir, "manifest", name, t.as_bytes());
    }
    for (i, n) in [
        "manifest.json",
        "manifest-stats.json",
        "database/chats.ndjson",
        "lancedb/chunks.ndjson",
        "secrets/index.json",
        "secrets/encrypted.ndjson",
        "files/images/abc.png",
        "files/thumbnails/abc_thumb.webp",
        "files/avatars/me.png",
        "files/databank/doc__a.txt",
        "files/theme-assets/b1/x.css",
        "files/notification-sounds/completion.mp3",
        "files\\avatars\\me.png",
        "files/avatars/../x",
    ]
    .iter()
    .enumerate()
    {
        put(&dir, "entry_name", &format!("seed{i}"), n.as_bytes());
    }
    // write_read: entries are (length / 64, method, bytes). One stored
    // entry "e0" whose bytes end with what looks like an end record whose
    // comment reaches exactly the end of the archive as first written
    // (descriptor 16, central record 48, ZIP64 end 56, locator 20, end
    // record 22), and an empty stored entry before a deflated one.
    let mut forged = vec![1u8, 0];
    forged.extend_from_slice(b"image bytes");
    forged.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    forged.extend_from_slice(&[0; 16]);
    forged.extend_from_slice(&(16u16 + 48 + 56 + 20 + 22).to_le_bytes());
    put(&dir, "write_read", "false-end-record", &forged);
    put(
        &dir,
        "write_read",
        "empty-then-deflated",
        b"\x00\x00\x01\x03deflated deflated deflated",
    );
    println!("seeds written to {}", dir.display());
}
