//! The performance workload (deterministic seed): a Lumiverse-like SQLite
//! database and data directory. At scale 1 (1000 permille): 300,000
//! messages of ~1 KB prose in 300 chats (each with its one swipe, as the
//! server stores it), 2,000 images of 50 KiB random bytes each with a
//! 4 KiB and a 16 KiB random thumbnail, and a few rows in other tables;
//! rows carry every column the Lumiverse 1.1 server exports for them.
//! Shared by `examples/gen_workload.rs` and the benches.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use lvbak::store::{Sink, StorePath};
use serde_json::json;

/// The user the workload belongs to.
pub const USER: &str = "bench-user";

/// The generator's seed.
const SEED: u64 = 0x5eed_1234_abcd_0001;

/// A UUID-shaped id, like the server's: kind and number.
fn uid(kind: u32, n: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

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

/// About 1 KB of prose, as every message carries.
fn prose(rng: &mut Rng, content: &mut String) {
    content.clear();
    while content.len() < 1000 {
        content.push_str(WORDS[(rng.next() % 32) as usize]);
        content.push(' ');
    }
}

/// Message `m` of chat `c` (id `chat`), as the generator stores it.
fn message(
    chat: &str,
    c: usize,
    m: usize,
    t0: i64,
    content: &str,
) -> Result<serde_json::Value, serde_json::Error> {
    let at = t0 + m as i64;
    // One swipe, as the server stores a message without alternatives:
    // `swipes` holds the content once more.
    let swipes = serde_json::to_string(&[content])?;
    Ok(
        json!({"id": uid(9, c * 1000 + m), "chat_id": chat, "index_in_chat": m, "is_user": m % 2, "name": "Archivist", "content": content, "send_date": at, "swipe_id": 0, "swipes": swipes, "extra": "{}", "parent_message_id": if m == 0 { serde_json::Value::Null } else { uid(9, c * 1000 + m - 1).into() }, "branch_id": null, "created_at": at, "swipe_dates": format!("[{at}]")}),
    )
}

/// At least `len` bytes of the messages table's NDJSON (whole lines), the
/// messages the generator makes, in its order.
pub fn messages_ndjson(len: usize) -> Vec<u8> {
    let mut rng = Rng(SEED);
    let mut content = String::with_capacity(1200);
    let mut out = Vec::with_capacity(len + 4096);
    let t0: i64 = 1_767_225_600;
    'chats: for c in 0.. {
        let chat = uid(8, c);
        for m in 0..1000 {
            prose(&mut rng, &mut content);
            let row = message(&chat, c, m, t0, &content).unwrap_or_default();
            serde_json::to_writer(&mut out, &row).unwrap_or_default();
            out.push(b'\n');
            if out.len() >= len {
                break 'chats;
            }
        }
    }
    out
}

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
    // Laid out like the server's database: SQLite's default 4 KiB pages.
    st.set_new_database_page_size(None);
    let mut rng = Rng(SEED);
    st.begin()?;
    let t = |n: &str| lvbak::domain::table(n).ok_or("no table");
    let ins = |st: &mut lvbak::sqlite::SqliteStore,
               table: &str,
               v: serde_json::Value|
     -> Result<(), Box<dyn std::error::Error>> {
        st.insert_row(t(table)?, v.as_object().ok_or("not an object")?)?;
        Ok(())
    };
    // Rows carry every column the Lumiverse 1.1 server's export writes for
    // these tables (column sets as in the server-made fixtures), so that the
    // server itself imports the workload (it skips a row missing a NOT NULL
    // column). Ids are UUID-shaped like the server's.
    let t0: i64 = 1_767_225_600;
    st.put_setting("theme", r#"{"mode":"dark"}"#, 1)?;
    let (preset, conn, wb, persona) = (uid(1, 1), uid(2, 1), uid(3, 1), uid(4, 1));
    ins(
        &mut st,
        "presets",
        json!({"id": preset, "name": "Default", "provider": "openai", "parameters": "{}", "prompt_order": "[]", "metadata": "{}", "created_at": t0, "updated_at": t0, "prompts": "{}", "user_id": user, "engine": "classic", "cache_revision": 0}),
    )?;
    ins(
        &mut st,
        "connection_profiles",
        json!({"id": conn, "name": "Main", "provider": "openai", "api_url": "https://api.example.invalid/v1", "model": "bench-model", "preset_id": preset, "is_default": 1, "metadata": "{}", "created_at": t0, "updated_at": t0, "has_api_key": 0, "user_id": user}),
    )?;
    ins(
        &mut st,
        "world_books",
        json!({"id": wb, "name": "Lore", "description": "", "metadata": "{}", "created_at": t0, "updated_at": t0, "user_id": user, "folder": ""}),
    )?;
    ins(
        &mut st,
        "world_book_entries",
        json!({"id": uid(5, 1), "world_book_id": wb, "uid": "0", "key": "[\"lore\"]", "keysecondary": "[]", "content": "x", "comment": "", "position": 0, "depth": 4, "role": null, "order_value": 100, "selective": 0, "constant": 0, "disabled": 0, "group_name": "", "group_override": 0, "group_weight": 100, "probability": 100, "scan_depth": null, "case_sensitive": 0, "match_whole_words": 0, "automation_id": null, "extensions": "{}", "created_at": t0, "updated_at": t0, "use_regex": 0, "prevent_recursion": 0, "exclude_recursion": 0, "delay_until_recursion": 0, "priority": 10, "sticky": 0, "cooldown": 0, "delay": 0, "selective_logic": 0, "use_probability": 1, "vectorized": 0, "vector_index_status": "not_enabled", "vector_indexed_at": null, "vector_index_error": null}),
    )?;
    ins(
        &mut st,
        "personas",
        json!({"id": persona, "name": "Me", "description": "", "avatar_path": null, "is_default": 1, "metadata": "{}", "created_at": t0, "updated_at": t0, "attached_world_book_id": null, "image_id": null, "user_id": user, "title": "", "folder": "", "subjective_pronoun": "", "objective_pronoun": "", "possessive_pronoun": "", "is_narrator": 0}),
    )?;
    ins(
        &mut st,
        "packs",
        json!({"id": uid(6, 1), "user_id": user, "name": "Pack", "author": "Bench", "cover_url": null, "version": "1.0.0", "is_custom": 1, "source_url": null, "extras": "{}", "created_at": t0, "updated_at": t0}),
    )?;
    let characters = (10 * permille / 1000).max(1);
    for c in 0..characters {
        ins(
            &mut st,
            "characters",
            json!({"id": uid(7, c), "name": format!("Character {c}"), "avatar_path": null, "description": "A character.", "personality": "", "scenario": "", "first_mes": "Hello.", "mes_example": "", "creator": "", "creator_notes": "", "system_prompt": "", "post_history_instructions": "", "tags": "[]", "alternate_greetings": "[]", "extensions": "{}", "created_at": t0, "updated_at": t0, "image_id": null, "user_id": user, "deleting": 0}),
        )?;
    }
    let chats = (300 * permille / 1000).max(1);
    let mut content = String::with_capacity(1200);
    for c in 0..chats {
        let chat = uid(8, c);
        ins(
            &mut st,
            "chats",
            json!({"id": chat, "character_id": uid(7, c % characters), "name": format!("Chat {c}"), "metadata": "{}", "created_at": t0, "updated_at": t0 + 1000, "user_id": user}),
        )?;
        for m in 0..1000 {
            prose(&mut rng, &mut content);
            ins(&mut st, "messages", message(&chat, c, m, t0, &content)?)?;
        }
    }
    for i in 0..(2000 * permille / 1000).max(1) {
        let id = format!("{:08x}-0000-4000-8000-{:012x}", i, i);
        ins(
            &mut st,
            "images",
            json!({"id": id, "filename": format!("{id}.png"), "original_filename": format!("image-{i}.png"), "mime_type": "image/png", "byte_size": 50 * 1024, "width": 512, "height": 512, "has_thumbnail": 1, "created_at": t0, "user_id": user, "owner_extension_identifier": null, "owner_character_id": null, "owner_chat_id": null}),
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
