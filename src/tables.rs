//! Table names as the Lumiverse 1.1 exporter writes them (FORMAT.md §5.1).

/// The 49 tables in the 1.1.0 export order.
pub const EXPORT_ORDER: [&str; 49] = [
    "settings",
    "global_addons",
    "mcp_servers",
    "images",
    "connection_profiles",
    "image_gen_connections",
    "tts_connections",
    "stt_connections",
    "presets",
    "personas",
    "characters",
    "character_gallery",
    "world_books",
    "packs",
    "loom_items",
    "loom_tools",
    "lumia_items",
    "regex_scripts",
    "theme_assets",
    "databanks",
    "databank_documents",
    "databank_chunks",
    "chats",
    "dream_weaver_sessions",
    "dream_weaver_messages",
    "dream_weaver_saved_prompts",
    "weaver_sessions",
    "weaver_extraction",
    "weaver_interview_turns",
    "weaver_bible",
    "weaver_fields",
    "weaver_taste",
    "extensions",
    "world_book_entries",
    "messages",
    "message_breakdowns",
    "chat_chunks",
    "chat_memory_cache",
    "memory_entities",
    "memory_relations",
    "memory_consolidations",
    "memory_font_colors",
    "memory_salience",
    "memory_mentions",
    "cortex_vaults",
    "cortex_chat_links",
    "cortex_vault_entities",
    "cortex_vault_relations",
    "cortex_vault_chunks",
];

/// The vector tables (`lancedb/T.ndjson`) the exporter may write.
pub const VECTOR_TABLES: [&str; 2] = ["embeddings", "embeddings_world_books"];

#[cfg(test)]
mod tests {
    #[test]
    fn every_name_is_a_valid_table_name() {
        for t in super::EXPORT_ORDER
            .iter()
            .chain(super::VECTOR_TABLES.iter())
        {
            assert!(crate::entry_name::is_table_name(t), "{t}");
        }
        let mut v = super::EXPORT_ORDER.to_vec();
        v.sort();
        v.dedup();
        assert_eq!(v.len(), 49);
    }
}
