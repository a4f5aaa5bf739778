//! The performance workload (deterministic seed): a Lumiverse-like SQLite
//! database and data directory. At scale 1 (1000 permille): 300,000
//! messages of ~1 KB prose in 300 chats, 2,000 images of 50 KiB random
//! bytes each with a 4 KiB and a 16 KiB random thumbnail, and a few rows in
//! other tables. Shared by `examples/gen_workload.rs` and the benches.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use lvbak::store::{Sink, StorePath};
use serde_json::json;

/// The user the workload belongs to.
pub const USER: &str = "bench-user";

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

const WORDS: [&str; 32] = [
    "lantern", "river", "archive", "letter", "copied", "hand", "mistake", "new", "the", "of",
    "and", "every", "small", "carried", "quiet", "moon", "whisper", "silver", "garden", "tower",
    "ember", "shadow", "market", "morning", "forest", "journey", "promise", "window", "softly",
    "beneath", "velvet", "stone",
];

fn ensure_parent(p: PathBuf) -> std::io::Result<PathBuf> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    Ok(p)
}

/// Writes `dir/lumiverse.db` and its files at `permille`/1000 of scale 1
/// (chats and images scale; each chat keeps 1,000 messages).
pub fn generate(dir: &Path, permille: usize) -> Result<PathBuf, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let db = dir.join("lumiverse.db");
    if db.exists() {
        return Err(format!("{} exists", db.display()).into());
    }
    let user = USER;
    let mut st = lvbak::sqlite::SqliteStore::open(&db, dir, user)?;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    st.begin()?;
    let t = |n: &str| lvbak::domain::table(n).ok_or("no table");
    let ins = |st: &mut lvbak::sqlite::SqliteStore,
               table: &str,
               v: serde_json::Value|
     -> Result<(), Box<dyn std::error::Error>> {
        st.insert_row(t(table)?, v.as_object().ok_or("not an object")?)?;
        Ok(())
    };
    st.put_setting("theme", r#"{"mode":"dark"}"#, 1)?;
    ins(
        &mut st,
        "presets",
        json!({"id": "preset-1", "name": "Default", "parameters": "{}", "user_id": user}),
    )?;
    ins(
        &mut st,
        "connection_profiles",
        json!({"id": "conn-1", "name": "Main", "preset_id": "preset-1", "has_api_key": 0, "user_id": user}),
    )?;
    ins(
        &mut st,
        "world_books",
        json!({"id": "wb-1", "name": "Lore", "user_id": user}),
    )?;
    ins(
        &mut st,
        "world_book_entries",
        json!({"id": "wbe-1", "world_book_id": "wb-1", "content": "x"}),
    )?;
    ins(
        &mut st,
        "personas",
        json!({"id": "persona-1", "name": "Me", "user_id": user}),
    )?;
    ins(
        &mut st,
        "packs",
        json!({"id": "pack-1", "name": "Pack", "user_id": user}),
    )?;
    let characters = (10 * permille / 1000).max(1);
    for c in 0..characters {
        ins(
            &mut st,
            "characters",
            json!({"id": format!("char-{c}"), "name": format!("Character {c}"), "description": "A character.", "user_id": user}),
        )?;
    }
    let chats = (300 * permille / 1000).max(1);
    let mut content = String::with_capacity(1200);
    for c in 0..chats {
        ins(
            &mut st,
            "chats",
            json!({"id": format!("chat-{c}"), "character_id": format!("char-{}", c % characters), "name": format!("Chat {c}"), "metadata": "{}", "user_id": user}),
        )?;
        for m in 0..1000 {
            content.clear();
            while content.len() < 1000 {
                content.push_str(WORDS[(rng.next() % 32) as usize]);
                content.push(' ');
            }
            ins(
                &mut st,
                "messages",
                json!({"id": format!("msg-{c}-{m}"), "chat_id": format!("chat-{c}"), "index_in_chat": m, "is_user": m % 2, "name": "Archivist", "content": content, "send_date": 1767225707 + m, "swipe_id": 0, "swipes": "[]", "extra": "{}", "parent_message_id": null, "created_at": 1767225707 + m}),
            )?;
        }
    }
    for i in 0..(2000 * permille / 1000).max(1) {
        let id = format!("{:08x}-0000-4000-8000-{:012x}", i, i);
        ins(
            &mut st,
            "images",
            json!({"id": id, "filename": format!("{id}.png"), "mime_type": "image/png", "user_id": user}),
        )?;
        for (name, size) in [
            (format!("{id}.png"), 50 * 1024),
            (format!("{id}_thumb_sm_v2.webp"), 4 * 1024),
            (format!("{id}_thumb_lg_v2.webp"), 16 * 1024),
        ] {
            let path = StorePath::for_entry(lvbak::Bucket::Images, user, &name).ok_or("path")?;
            let mut f = std::fs::File::create(ensure_parent(dir.join(path.as_str()))?)?;
            f.write_all(&rng.bytes(size))?;
        }
    }
    st.commit()?;
    Ok(db)
}
