//! The domain registry: which tables, file buckets and dependencies make up
//! each part of an account, how rows are owned, which references are
//! scrubbed when dangling, and the settings rules (FORMAT.md §5–§8).
//!
//! Pure data and pure functions: no I/O. The engines consult it; hosts may
//! use it to build their own queries.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::entry_name::Bucket;

/// A part of an account that can be exported and restored on its own
/// (with its dependencies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DomainId {
    /// Settings (merged, not inserted).
    Settings,
    /// Presets, global add-ons and regex scripts.
    Presets,
    /// Connection profiles, image-gen/TTS/STT connections, MCP servers.
    Connections,
    /// Images and their thumbnails.
    Images,
    /// Personas (and their avatars).
    Personas,
    /// Characters, their gallery and avatars.
    Characters,
    /// World books and entries.
    WorldBooks,
    /// Packs (loom items, loom tools, lumia items).
    Packs,
    /// Theme assets and their files.
    ThemeAssets,
    /// Databanks, documents, chunks and their files.
    Databanks,
    /// Chats, messages and chat memory.
    Chats,
    /// Memory cortex: entities, relations, consolidations, vaults.
    MemoryCortex,
    /// Dream Weaver and Weaver sessions.
    DreamWeaver,
    /// User-installed Spindle extensions (rows only).
    Extensions,
    /// The notification sound.
    NotificationSound,
    /// Vector embeddings (optional).
    Vectors,
    /// API keys through the secret envelope (optional).
    Secrets,
}

impl DomainId {
    /// Every domain in restore order.
    pub const ALL: [DomainId; 17] = [
        DomainId::Settings,
        DomainId::Presets,
        DomainId::Connections,
        DomainId::Images,
        DomainId::WorldBooks,
        DomainId::Personas,
        DomainId::Characters,
        DomainId::Packs,
        DomainId::ThemeAssets,
        DomainId::Databanks,
        DomainId::Chats,
        DomainId::MemoryCortex,
        DomainId::DreamWeaver,
        DomainId::Extensions,
        DomainId::NotificationSound,
        DomainId::Vectors,
        DomainId::Secrets,
    ];

    /// The CLI name (`characters`, `world-books`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DomainId::Settings => "settings",
            DomainId::Presets => "presets",
            DomainId::Connections => "connections",
            DomainId::Images => "images",
            DomainId::Personas => "personas",
            DomainId::Characters => "characters",
            DomainId::WorldBooks => "world-books",
            DomainId::Packs => "packs",
            DomainId::ThemeAssets => "theme-assets",
            DomainId::Databanks => "databanks",
            DomainId::Chats => "chats",
            DomainId::MemoryCortex => "memory-cortex",
            DomainId::DreamWeaver => "dream-weaver",
            DomainId::Extensions => "extensions",
            DomainId::NotificationSound => "notification-sound",
            DomainId::Vectors => "vectors",
            DomainId::Secrets => "secrets",
        }
    }

    /// Parses a CLI name.
    pub fn parse(s: &str) -> Option<DomainId> {
        DomainId::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// The registry entry.
    pub fn spec(self) -> &'static Domain {
        // Every DomainId has exactly one entry in DOMAINS (checked by a test).
        DOMAINS.iter().find(|d| d.id == self).unwrap_or(&DOMAINS[0])
    }
}

impl fmt::Display for DomainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a table's rows belong to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The row's `user_id` column.
    User,
    /// Through a parent the user owns: `column` holds the parent's id.
    Via {
        /// The referencing column.
        column: &'static str,
        /// The parent table.
        parent: &'static str,
    },
    /// `installed_by_user_id`, and only rows with `install_scope = 'user'`.
    Installer,
}

/// One table of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// Table name.
    pub name: &'static str,
    /// Its domain.
    pub domain: DomainId,
    /// Primary key columns.
    pub pk: &'static [&'static str],
    /// Ownership rule.
    pub owner: Owner,
    /// Required references (besides `Via`): the row is meaningless without
    /// the parent; a parent that belongs to another user makes lvbak skip
    /// the row.
    pub refs: &'static [(&'static str, &'static str)],
    /// Nullable references (ON DELETE SET NULL): set to NULL when they
    /// dangle after import, or point at another user's row.
    pub nullable_refs: &'static [(&'static str, &'static str)],
}

impl TableSpec {
    /// The column naming the owner directly, if any.
    pub fn owner_column(&self) -> Option<&'static str> {
        match self.owner {
            Owner::User => Some("user_id"),
            Owner::Installer => Some("installed_by_user_id"),
            Owner::Via { .. } => None,
        }
    }
}

macro_rules! t {
    ($name:literal, $dom:ident, [$($pk:literal),*], $owner:expr, [$(($c:literal, $p:literal)),*], [$(($nc:literal, $np:literal)),*]) => {
        TableSpec {
            name: $name,
            domain: DomainId::$dom,
            pk: &[$($pk),*],
            owner: $owner,
            refs: &[$(($c, $p)),*],
            nullable_refs: &[$(($nc, $np)),*],
        }
    };
}

const U: Owner = Owner::User;
const fn via(column: &'static str, parent: &'static str) -> Owner {
    Owner::Via { column, parent }
}

/// Every table lvbak exports and imports, in the server's import order
/// (FORMAT.md §6), then `weaver_people` (carried by lvbak; see spec).
pub const TABLES: &[TableSpec] = &[
    t!("settings", Settings, ["key", "user_id"], U, [], []),
    t!("global_addons", Presets, ["id"], U, [], []),
    t!("mcp_servers", Connections, ["id"], U, [], []),
    t!(
        "images",
        Images,
        ["id"],
        U,
        [],
        [
            ("owner_character_id", "characters"),
            ("owner_chat_id", "chats")
        ]
    ),
    t!("presets", Presets, ["id"], U, [], []),
    t!(
        "connection_profiles",
        Connections,
        ["id"],
        U,
        [],
        [("preset_id", "presets")]
    ),
    t!("image_gen_connections", Connections, ["id"], U, [], []),
    t!("tts_connections", Connections, ["id"], U, [], []),
    t!("stt_connections", Connections, ["id"], U, [], []),
    t!("world_books", WorldBooks, ["id"], U, [], []),
    t!(
        "world_book_entries",
        WorldBooks,
        ["id"],
        via("world_book_id", "world_books"),
        [],
        []
    ),
    t!(
        "personas",
        Personas,
        ["id"],
        U,
        [],
        [
            ("image_id", "images"),
            ("attached_world_book_id", "world_books")
        ]
    ),
    t!(
        "characters",
        Characters,
        ["id"],
        U,
        [],
        [("image_id", "images")]
    ),
    t!(
        "character_gallery",
        Characters,
        ["id"],
        U,
        [("character_id", "characters"), ("image_id", "images")],
        []
    ),
    t!("packs", Packs, ["id"], U, [], []),
    t!("loom_items", Packs, ["id"], via("pack_id", "packs"), [], []),
    t!("loom_tools", Packs, ["id"], via("pack_id", "packs"), [], []),
    t!(
        "lumia_items",
        Packs,
        ["id"],
        via("pack_id", "packs"),
        [],
        []
    ),
    t!("regex_scripts", Presets, ["id"], U, [], []),
    t!(
        "theme_assets",
        ThemeAssets,
        ["id"],
        U,
        [],
        [("image_id", "images")]
    ),
    t!("databanks", Databanks, ["id"], U, [], []),
    t!(
        "databank_documents",
        Databanks,
        ["id"],
        U,
        [("databank_id", "databanks")],
        []
    ),
    t!(
        "databank_chunks",
        Databanks,
        ["id"],
        U,
        [("document_id", "databank_documents")],
        []
    ),
    t!(
        "chats",
        Chats,
        ["id"],
        U,
        [],
        [("character_id", "characters")]
    ),
    t!(
        "messages",
        Chats,
        ["id"],
        via("chat_id", "chats"),
        [],
        [("parent_message_id", "messages")]
    ),
    t!(
        "message_breakdowns",
        Chats,
        ["message_id"],
        via("chat_id", "chats"),
        [],
        []
    ),
    t!(
        "chat_chunks",
        Chats,
        ["id"],
        via("chat_id", "chats"),
        [],
        []
    ),
    t!(
        "chat_memory_cache",
        Chats,
        ["id"],
        via("chat_id", "chats"),
        [],
        []
    ),
    t!(
        "memory_entities",
        MemoryCortex,
        ["id"],
        via("chat_id", "chats"),
        [],
        []
    ),
    t!(
        "memory_mentions",
        MemoryCortex,
        ["id"],
        via("chat_id", "chats"),
        [("entity_id", "memory_entities")],
        []
    ),
    t!(
        "memory_relations",
        MemoryCortex,
        ["id"],
        via("chat_id", "chats"),
        [],
        []
    ),
    t!(
        "memory_consolidations",
        MemoryCortex,
        ["id"],
        via("chat_id", "chats"),
        [],
        []
    ),
    t!(
        "memory_font_colors",
        MemoryCortex,
        ["id"],
        via("chat_id", "chats"),
        [],
        [("entity_id", "memory_entities")]
    ),
    t!(
        "memory_salience",
        MemoryCortex,
        ["id"],
        via("chat_id", "chats"),
        [],
        []
    ),
    t!(
        "cortex_vaults",
        MemoryCortex,
        ["id"],
        U,
        [],
        [("source_chat_id", "chats")]
    ),
    t!(
        "cortex_vault_entities",
        MemoryCortex,
        ["id"],
        via("vault_id", "cortex_vaults"),
        [],
        []
    ),
    t!(
        "cortex_vault_relations",
        MemoryCortex,
        ["id"],
        via("vault_id", "cortex_vaults"),
        [],
        []
    ),
    t!(
        "cortex_vault_chunks",
        MemoryCortex,
        ["id"],
        via("vault_id", "cortex_vaults"),
        [],
        []
    ),
    t!(
        "cortex_chat_links",
        MemoryCortex,
        ["id"],
        U,
        [("chat_id", "chats"), ("vault_id", "cortex_vaults")],
        []
    ),
    t!(
        "dream_weaver_sessions",
        DreamWeaver,
        ["id"],
        U,
        [],
        [
            ("persona_id", "personas"),
            ("connection_id", "connection_profiles"),
            ("character_id", "characters")
        ]
    ),
    t!(
        "dream_weaver_messages",
        DreamWeaver,
        ["id"],
        via("session_id", "dream_weaver_sessions"),
        [],
        []
    ),
    t!("dream_weaver_saved_prompts", DreamWeaver, ["id"], U, [], []),
    t!(
        "weaver_sessions",
        DreamWeaver,
        ["id"],
        U,
        [],
        [
            ("persona_id", "personas"),
            ("connection_id", "connection_profiles"),
            ("character_id", "characters")
        ]
    ),
    t!(
        "weaver_extraction",
        DreamWeaver,
        ["session_id"],
        U,
        [("session_id", "weaver_sessions")],
        []
    ),
    t!(
        "weaver_interview_turns",
        DreamWeaver,
        ["id"],
        U,
        [("session_id", "weaver_sessions")],
        []
    ),
    t!(
        "weaver_bible",
        DreamWeaver,
        ["session_id"],
        U,
        [("session_id", "weaver_sessions")],
        []
    ),
    t!(
        "weaver_fields",
        DreamWeaver,
        ["id"],
        U,
        [("session_id", "weaver_sessions")],
        []
    ),
    t!("weaver_taste", DreamWeaver, ["user_id"], U, [], []),
    t!("extensions", Extensions, ["id"], Owner::Installer, [], []),
    t!(
        "weaver_people",
        DreamWeaver,
        ["id"],
        U,
        [("session_id", "weaver_sessions")],
        []
    ),
];

/// Tables that must never travel, in either direction (FORMAT.md §5, §13.6):
/// an archive that carries one has it reported and ignored.
pub const NEVER: &[&str] = &[
    "user",
    "account",
    "session",
    "verification",
    "secrets",
    "push_subscriptions",
    "_migrations",
    "tokenizer_configs",
    "tokenizer_model_patterns",
    "lumihub_link",
    "extension_grants",
    "query_vector_cache",
    "embedding_cache",
    "sso_providers",
    "multiplayer_rooms",
    "multiplayer_participants",
    "multiplayer_bans",
    "import_consumed_tickets",
    "audio_files",
];

/// The vector tables and the domain each `source_type` belongs to.
pub const VECTOR_TABLES: [&str; 2] = ["embeddings", "embeddings_world_books"];

/// A column value the re-vectorisation reset writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A text value.
    Text(&'static str),
}

impl Reset {
    /// As a JSON value.
    pub fn to_value(self) -> Value {
        match self {
            Reset::Null => Value::Null,
            Reset::Int(i) => Value::from(i),
            Reset::Text(t) => Value::from(t),
        }
    }
}

/// What "mark for re-vectorisation" resets in the user's rows when the
/// embedding configuration differs (FORMAT.md §9).
pub const REVECTORISE: &[(&str, &[(&str, Reset)])] = &[
    (
        "chat_chunks",
        &[
            ("vectorized_at", Reset::Null),
            ("vector_model", Reset::Null),
        ],
    ),
    (
        "databank_chunks",
        &[
            ("vectorized_at", Reset::Null),
            ("vector_model", Reset::Null),
        ],
    ),
    (
        "memory_consolidations",
        &[
            ("vectorized_at", Reset::Null),
            ("vector_model", Reset::Null),
        ],
    ),
    (
        "world_book_entries",
        &[
            ("vectorized", Reset::Int(0)),
            ("vector_index_status", Reset::Text("not_enabled")),
        ],
    ),
];

/// The spec of a table, if lvbak carries it.
pub fn table(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}

/// One domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domain {
    /// Its id.
    pub id: DomainId,
    /// Readable name.
    pub title: &'static str,
    /// File buckets it owns.
    pub buckets: &'static [Bucket],
    /// Domains it cannot be restored without.
    pub depends_on: &'static [DomainId],
    /// Version of this domain's codec.
    pub version: u32,
}

impl Domain {
    /// Its tables, in import order.
    pub fn tables(&self) -> impl Iterator<Item = &'static TableSpec> + '_ {
        TABLES.iter().filter(move |t| t.domain == self.id)
    }
}

/// The registry.
pub const DOMAINS: &[Domain] = &[
    Domain {
        id: DomainId::Settings,
        title: "Settings",
        buckets: &[],
        depends_on: &[],
        version: 1,
    },
    Domain {
        id: DomainId::Presets,
        title: "Presets",
        buckets: &[],
        depends_on: &[],
        version: 1,
    },
    Domain {
        id: DomainId::Connections,
        title: "Connections",
        buckets: &[],
        depends_on: &[],
        version: 1,
    },
    Domain {
        id: DomainId::Images,
        title: "Images",
        buckets: &[Bucket::Images, Bucket::Thumbnails],
        depends_on: &[],
        version: 1,
    },
    Domain {
        id: DomainId::WorldBooks,
        title: "World Books",
        buckets: &[],
        depends_on: &[],
        version: 1,
    },
    Domain {
        id: DomainId::Personas,
        title: "Personas",
        buckets: &[Bucket::Avatars],
        depends_on: &[],
        version: 1,
    },
    Domain {
        id: DomainId::Characters,
        title: "Characters",
        buckets: &[Bucket::Avatars],
        depends_on: &[DomainId::Images],
        version: 1,
    },
    Domain {
        id: DomainId::Packs,
        title: "Packs",
        buckets: &[],
        depends_on: &[],
        version: 1,
    },
    Domain {
        id: DomainId::ThemeAssets,
        title: "Theme Assets",
        buckets: &[Bucket::ThemeAssets],
        depends_on: &[],
        version: 1,
    },
    Domain {
        id: DomainId::Databanks,
        title: "Databanks",
        buckets: &[Bucket::Databank],
        depends_on: &[],
        version: 1,
    },
    Domain {
        id: DomainId::Chats,
        title: "Chats",
        buckets: &[],
        depends_on: &[DomainId::Characters],
        version: 1,
    },
    Domain {
        id: DomainId::MemoryCortex,
        title: "Memory Cortex",
        buckets: &[],
        depends_on: &[DomainId::Chats],
        version: 1,
    },
    Domain {
        id: DomainId::DreamWeaver,
        title: "Dream Weaver",
        buckets: &[],
        depends_on: &[],
        version: 1,
    },
    Domain {
        id: DomainId::Extensions,
        title: "Spindle Extensions",
        buckets: &[],
        depends_on: &[],
        version: 1,
    },
    Domain {
        id: DomainId::NotificationSound,
        title: "Notification Sound",
        buckets: &[Bucket::NotificationSounds],
        depends_on: &[],
        version: 1,
    },
    Domain {
        id: DomainId::Vectors,
        title: "Vector embeddings",
        buckets: &[],
        depends_on: &[DomainId::Chats, DomainId::WorldBooks, DomainId::Databanks],
        version: 1,
    },
    Domain {
        id: DomainId::Secrets,
        title: "API keys (secrets)",
        buckets: &[],
        depends_on: &[DomainId::Connections],
        version: 1,
    },
];

/// The domains a bucket belongs to (avatars: personas and characters).
pub fn bucket_domains(b: Bucket) -> Vec<DomainId> {
    DOMAINS
        .iter()
        .filter(|d| d.buckets.contains(&b))
        .map(|d| d.id)
        .collect()
}

/// A selection plus everything it depends on (transitively), and what was added.
pub fn closure(selected: &BTreeSet<DomainId>) -> (BTreeSet<DomainId>, BTreeSet<DomainId>) {
    let mut all = selected.clone();
    let mut stack: Vec<DomainId> = selected.iter().copied().collect();
    while let Some(d) = stack.pop() {
        for dep in d.spec().depends_on {
            if all.insert(*dep) {
                stack.push(*dep);
            }
        }
    }
    let added = all.difference(selected).copied().collect();
    (all, added)
}

/// Setting keys that never travel (secret-looking, FORMAT.md §7).
pub fn is_secret_setting(key: &str) -> bool {
    let pat = |prefix: &str| {
        key.strip_prefix(prefix)
            .is_some_and(|r| r.len() > "_api_key".len() && r.ends_with("_api_key"))
    };
    pat("connection_")
        || pat("image_gen_connection_")
        || pat("tts_connection_")
        || pat("stt_connection_")
        || key.starts_with("embedding_api_key_")
        || key == "web_search_api_key"
}

/// The result of merging one setting (FORMAT.md §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingMerge {
    /// The key is new: insert this value.
    Insert(String),
    /// The key exists: write this merged value.
    Update(String),
    /// The key exists and nothing changes.
    Keep,
}

/// The archive row's `value` as stored text: a string as is, anything else
/// re-serialised compactly.
pub fn setting_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_lenient(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn id_items(v: &Value) -> Option<&Vec<Value>> {
    let a = v.as_array()?;
    a.iter()
        .all(|x| x.get("id").is_some_and(Value::is_string))
        .then_some(a)
}

/// Merges an archive setting into the target's current value, with the
/// server's rules: key absent → insert; both plain objects → one level
/// deep, per archive field: target missing or null → archive value; both
/// arrays of `{id: string, …}` objects (archive non-empty) → union by id,
/// target first; otherwise the target wins. Written only if it changes.
pub fn merge_setting(target: Option<&str>, archive: &Value) -> SettingMerge {
    let archive_text = setting_text(archive);
    let Some(target_text) = target else {
        return SettingMerge::Insert(archive_text);
    };
    let (Value::Object(mut t), Value::Object(a)) =
        (parse_lenient(target_text), parse_lenient(&archive_text))
    else {
        return SettingMerge::Keep;
    };
    for (k, av) in a {
        match t.get(&k) {
            None | Some(Value::Null) => {
                t.insert(k, av);
            }
            Some(tv) => {
                let merged = match (id_items(tv), id_items(&av)) {
                    (Some(ti), Some(ai)) if !ai.is_empty() => Some(union_by_id(ti, ai)),
                    _ => None,
                };
                if let Some(m) = merged {
                    t.insert(k, Value::Array(m));
                }
            }
        }
    }
    let out = Value::Object(t).to_string();
    if out == target_text {
        SettingMerge::Keep
    } else {
        SettingMerge::Update(out)
    }
}

fn union_by_id(target: &[Value], archive: &[Value]) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for item in target.iter().chain(archive) {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if seen.insert(id) {
            out.push(item.clone());
        }
    }
    out
}

/// A settings row from the archive, as the importer reads it: `None` when
/// it has no non-empty string `key` or the key is secret-looking.
pub fn setting_key(row: &Map<String, Value>) -> Option<&str> {
    match row.get("key") {
        Some(Value::String(k)) if !k.is_empty() && !is_secret_setting(k) => Some(k),
        _ => None,
    }
}

/// Which connection table a secret key restores, with the row id:
/// `connection_{id}_api_key` → (`connection_profiles`, id), and so on.
pub fn secret_flag_target(key: &str) -> Option<(&'static str, &'static str, &str)> {
    const MAP: [(&str, &str, &str, &str); 5] = [
        (
            "image_gen_connection_",
            "_api_key",
            "image_gen_connections",
            "has_api_key",
        ),
        (
            "tts_connection_",
            "_api_key",
            "tts_connections",
            "has_api_key",
        ),
        (
            "stt_connection_",
            "_api_key",
            "stt_connections",
            "has_api_key",
        ),
        (
            "connection_",
            "_api_key",
            "connection_profiles",
            "has_api_key",
        ),
        ("mcp_server_", "_headers", "mcp_servers", "has_headers"),
    ];
    for (prefix, suffix, table, column) in MAP {
        if let Some(id) = key
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
        {
            if !id.is_empty() {
                return Some((table, column, id));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registry_is_consistent() {
        for d in DomainId::ALL {
            assert_eq!(d.spec().id, d);
            assert_eq!(DomainId::parse(d.as_str()), Some(d));
        }
        for t in crate::tables::EXPORT_ORDER {
            assert!(table(t).is_some(), "{t} has no spec");
        }
        for t in TABLES {
            assert!(!NEVER.contains(&t.name));
            if let Owner::Via { parent, .. } = t.owner {
                assert!(table(parent).is_some());
            }
            for (_, p) in t.refs.iter().chain(t.nullable_refs) {
                assert!(table(p).is_some(), "{} -> {p}", t.name);
            }
        }
    }

    #[test]
    fn closure_pulls_dependencies() {
        let (all, added) = closure(&[DomainId::MemoryCortex].into());
        assert_eq!(
            added,
            [DomainId::Chats, DomainId::Characters, DomainId::Images].into()
        );
        assert!(all.contains(&DomainId::MemoryCortex));
    }

    #[test]
    fn secret_settings() {
        for k in [
            "connection_x_api_key",
            "image_gen_connection_1_api_key",
            "tts_connection_a_api_key",
            "stt_connection_b_api_key",
            "embedding_api_key_openai",
            "web_search_api_key",
        ] {
            assert!(is_secret_setting(k), "{k}");
        }
        for k in [
            "connection__api_key",
            "theme",
            "web_search_api_key_x",
            "embedding_api_key",
            "connection_x_api_keys",
        ] {
            assert!(!is_secret_setting(k), "{k}");
        }
        assert_eq!(
            setting_key(&json!({"key": "theme"}).as_object().unwrap().clone()),
            Some("theme")
        );
        assert_eq!(setting_key(json!({"key": ""}).as_object().unwrap()), None);
        assert_eq!(setting_key(json!({"key": 5}).as_object().unwrap()), None);
        assert_eq!(
            setting_key(json!({"key": "web_search_api_key"}).as_object().unwrap()),
            None
        );
    }

    #[test]
    fn merge_key_absent_inserts() {
        assert_eq!(
            merge_setting(None, &json!("\"dark\"")),
            SettingMerge::Insert("\"dark\"".into())
        );
        assert_eq!(
            merge_setting(None, &json!({"a": 1})),
            SettingMerge::Insert("{\"a\":1}".into())
        );
    }

    #[test]
    fn merge_non_objects_target_wins() {
        assert_eq!(
            merge_setting(Some("\"light\""), &json!("\"dark\"")),
            SettingMerge::Keep
        );
        assert_eq!(
            merge_setting(Some("not json"), &json!("{\"a\":1}")),
            SettingMerge::Keep
        );
        assert_eq!(
            merge_setting(Some("{\"a\":1}"), &json!("[1]")),
            SettingMerge::Keep
        );
    }

    #[test]
    fn merge_fills_missing_and_null_fields_only() {
        let m = merge_setting(
            Some(r#"{"a":1,"b":null}"#),
            &json!(r#"{"a":2,"b":3,"c":4}"#),
        );
        assert_eq!(m, SettingMerge::Update(r#"{"a":1,"b":3,"c":4}"#.into()));
        assert_eq!(
            merge_setting(Some(r#"{"a":1}"#), &json!(r#"{"a":2}"#)),
            SettingMerge::Keep
        );
    }

    #[test]
    fn merge_unions_id_arrays() {
        let t = r#"{"list":[{"id":"a","v":1},{"id":"b"},{"id":"a","v":9}]}"#;
        let a = json!(r#"{"list":[{"id":"b","v":2},{"id":"c"},{"id":"c","v":3}]}"#);
        assert_eq!(
            merge_setting(Some(t), &a),
            SettingMerge::Update(r#"{"list":[{"id":"a","v":1},{"id":"b"},{"id":"c"}]}"#.into())
        );
        // Empty archive array or non-id items: target wins.
        assert_eq!(
            merge_setting(Some(r#"{"l":[{"id":"a"}]}"#), &json!(r#"{"l":[]}"#)),
            SettingMerge::Keep
        );
        assert_eq!(
            merge_setting(Some(r#"{"l":[{"id":"a"}]}"#), &json!(r#"{"l":[1]}"#)),
            SettingMerge::Keep
        );
        // Target empty array of such objects: union.
        assert_eq!(
            merge_setting(Some(r#"{"l":[]}"#), &json!(r#"{"l":[{"id":"x"}]}"#)),
            SettingMerge::Update(r#"{"l":[{"id":"x"}]}"#.into())
        );
        // Archive value given as a JSON object rather than a string is re-serialised.
        assert_eq!(
            merge_setting(Some(r#"{"l":[]}"#), &json!({"l":[{"id":"x"}]})),
            SettingMerge::Update(r#"{"l":[{"id":"x"}]}"#.into())
        );
    }

    #[test]
    fn secret_flags() {
        assert_eq!(
            secret_flag_target("connection_abc_api_key"),
            Some(("connection_profiles", "has_api_key", "abc"))
        );
        assert_eq!(
            secret_flag_target("image_gen_connection_abc_api_key"),
            Some(("image_gen_connections", "has_api_key", "abc"))
        );
        assert_eq!(
            secret_flag_target("mcp_server_m1_headers"),
            Some(("mcp_servers", "has_headers", "m1"))
        );
        assert_eq!(secret_flag_target("mcp_server_m1_env"), None);
        assert_eq!(secret_flag_target("web_search_api_key"), None);
    }
}
