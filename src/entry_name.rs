//! Entry names: the allowlist of FORMAT.md §2, parsed into a typed value.
//!
//! Past the container layer lvbak never handles a raw entry name: every name
//! is parsed into an [`EntryName`] here, and one that is not on the allowlist
//! is an [`NameError`] that says which rule it broke. The parser works on a
//! `&str` and does no I/O.

use std::fmt;

/// Longest name accepted, in UTF-16 code units (the server's rule).
pub const MAX_NAME_UTF16: usize = 4_096;

/// A file bucket under `files/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// `files/images/`: image files named `{uuid}{.ext}`.
    Images,
    /// `files/thumbnails/`: `{uuid}_thumb_sm_v2.webp` / `{uuid}_thumb_lg_v2.webp`.
    Thumbnails,
    /// `files/avatars/`: bare avatar file names.
    Avatars,
    /// `files/databank/`: `{documentId}__{file_path}`.
    Databank,
    /// `files/theme-assets/`: `{bundle_id}/{file_name}`.
    ThemeAssets,
    /// `files/notification-sounds/`: `completion.{mp3,wav,ogg,aac,m4a}`.
    NotificationSounds,
}

impl Bucket {
    /// Every bucket, in the order the server lists them.
    pub const ALL: [Bucket; 6] = [
        Bucket::Images,
        Bucket::Thumbnails,
        Bucket::Avatars,
        Bucket::Databank,
        Bucket::ThemeAssets,
        Bucket::NotificationSounds,
    ];

    /// The folder name under `files/` (`images`, `theme-assets`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Images => "images",
            Bucket::Thumbnails => "thumbnails",
            Bucket::Avatars => "avatars",
            Bucket::Databank => "databank",
            Bucket::ThemeAssets => "theme-assets",
            Bucket::NotificationSounds => "notification-sounds",
        }
    }

    /// The bucket whose folder name is `s`.
    pub fn from_name(s: &str) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// Checks a file name (the part after `files/{bucket}/`) against this
    /// bucket's rule.
    pub fn check_file_name(self, name: &str) -> Result<(), NameRule> {
        let ok = match self {
            Bucket::Images => is_image_name(name),
            Bucket::Thumbnails => is_thumbnail_name(name),
            Bucket::Avatars | Bucket::Databank => is_plain_name(name),
            Bucket::ThemeAssets => is_theme_asset_name(name),
            Bucket::NotificationSounds => is_sound_name(name),
        };
        if ok {
            Ok(())
        } else {
            Err(NameRule::BucketPattern(self))
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed, allowlisted entry name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryName {
    /// `manifest.json`.
    Manifest,
    /// `manifest-stats.json`, the trailer.
    Trailer,
    /// `database/{table}.ndjson`.
    Table(String),
    /// `lancedb/{table}.ndjson`.
    VectorTable(String),
    /// `secrets/index.json`.
    SecretsIndex,
    /// `secrets/encrypted.ndjson`.
    SecretsEnvelope,
    /// `files/{bucket}/{name}`.
    File {
        /// The bucket.
        bucket: Bucket,
        /// The name inside the bucket (may contain `/` for theme assets).
        name: String,
    },
}

impl EntryName {
    /// Parses a name as found in an archive, with the server's rules: a
    /// backslash reads as `/`, and everything must match the allowlist.
    pub fn parse(raw: &str) -> Result<EntryName, NameError> {
        parse(raw).map_err(|rule| NameError {
            name: raw.to_owned(),
            rule,
        })
    }

    /// A table entry, checking the table name.
    pub fn table(table: &str) -> Result<EntryName, NameError> {
        EntryName::parse(&format!("database/{table}.ndjson"))
    }

    /// A vector-table entry, checking the table name.
    pub fn vector_table(table: &str) -> Result<EntryName, NameError> {
        EntryName::parse(&format!("lancedb/{table}.ndjson"))
    }

    /// A file entry, checking the name against the bucket's rule.
    pub fn file(bucket: Bucket, name: &str) -> Result<EntryName, NameError> {
        EntryName::parse(&format!("files/{}/{name}", bucket.as_str()))
    }

    /// True for entries the writer deflates and the limits count as text:
    /// everything but `files/`.
    pub fn is_text(&self) -> bool {
        !matches!(self, EntryName::File { .. })
    }

    /// True for entries whose body is NDJSON.
    pub fn is_ndjson(&self) -> bool {
        matches!(
            self,
            EntryName::Table(_) | EntryName::VectorTable(_) | EntryName::SecretsEnvelope
        )
    }
}

impl fmt::Display for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryName::Manifest => f.write_str("manifest.json"),
            EntryName::Trailer => f.write_str("manifest-stats.json"),
            EntryName::Table(t) => write!(f, "database/{t}.ndjson"),
            EntryName::VectorTable(t) => write!(f, "lancedb/{t}.ndjson"),
            EntryName::SecretsIndex => f.write_str("secrets/index.json"),
            EntryName::SecretsEnvelope => f.write_str("secrets/encrypted.ndjson"),
            EntryName::File { bucket, name } => write!(f, "files/{}/{name}", bucket.as_str()),
        }
    }
}

/// A name that is not on the allowlist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {name:?} is not an allowed .lvbak entry name: {rule}")]
pub struct NameError {
    /// The name as found (lossless for valid UTF-8).
    pub name: String,
    /// The rule it broke.
    pub rule: NameRule,
}

/// Which naming rule a name broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameRule {
    /// The name is empty.
    #[error("the name is empty")]
    Empty,
    /// Longer than [`MAX_NAME_UTF16`] UTF-16 code units.
    #[error("the name is longer than 4096 UTF-16 code units")]
    TooLong,
    /// Holds a character below U+0020.
    #[error("the name holds a control character")]
    ControlCharacter,
    /// Starts with `/`.
    #[error("the name is an absolute path")]
    Absolute,
    /// Starts with a drive letter such as `C:`.
    #[error("the name starts with a drive letter")]
    DriveLetter,
    /// Starts with `\\` (a UNC path).
    #[error("the name is a UNC path")]
    Unc,
    /// Has a `.` or `..` segment.
    #[error("the name has a '.' or '..' segment (path traversal)")]
    DotSegment,
    /// Ends with `/` (a directory entry).
    #[error("directory entries are not allowed")]
    Directory,
    /// Table name not matching `^[a-z_]+$`.
    #[error("table names must match ^[a-z_]+$")]
    TableName,
    /// A file name not matching its bucket's pattern.
    #[error("the file name does not match the pattern of bucket {0}")]
    BucketPattern(Bucket),
    /// Not under any allowed prefix.
    #[error("the name matches no allowed prefix (manifest.json, manifest-stats.json, database/, lancedb/, secrets/, files/)")]
    Unknown,
}

fn parse(raw: &str) -> Result<EntryName, NameRule> {
    let shape = classify(raw)?;
    Ok(shape.name(raw))
}

/// Which kind of entry a name is, without its variable part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Manifest,
    Trailer,
    Table,
    VectorTable,
    SecretsIndex,
    SecretsEnvelope,
    File(Bucket),
}

/// What [`classify`] finds in a name: its kind and where its variable
/// part (table or file name) lies in the name's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) kind: Kind,
    /// Start of the variable part (0 when there is none).
    pub(crate) start: u16,
    /// End of the variable part (0 when there is none).
    pub(crate) end: u16,
}

impl Shape {
    /// The variable part (table or file name) of `raw`, the name this
    /// shape was found in, with `/` for `\`.
    pub(crate) fn part<'a>(&self, raw: &'a str) -> std::borrow::Cow<'a, str> {
        slashed(
            raw.get(usize::from(self.start)..usize::from(self.end))
                .unwrap_or_default(),
        )
    }

    /// The [`EntryName`] of `raw`, the name this shape was found in.
    pub(crate) fn name(&self, raw: &str) -> EntryName {
        let inner = || {
            let part = raw
                .get(usize::from(self.start)..usize::from(self.end))
                .unwrap_or_default();
            slashed(part).into_owned()
        };
        match self.kind {
            Kind::Manifest => EntryName::Manifest,
            Kind::Trailer => EntryName::Trailer,
            Kind::SecretsIndex => EntryName::SecretsIndex,
            Kind::SecretsEnvelope => EntryName::SecretsEnvelope,
            Kind::Table => EntryName::Table(inner()),
            Kind::VectorTable => EntryName::VectorTable(inner()),
            Kind::File(bucket) => EntryName::File {
                bucket,
                name: inner(),
            },
        }
    }
}

impl EntryName {
    /// The kind of this name and its variable part (already with `/`).
    pub(crate) fn kind_and_part(&self) -> (Kind, &str) {
        match self {
            EntryName::Manifest => (Kind::Manifest, ""),
            EntryName::Trailer => (Kind::Trailer, ""),
            EntryName::SecretsIndex => (Kind::SecretsIndex, ""),
            EntryName::SecretsEnvelope => (Kind::SecretsEnvelope, ""),
            EntryName::Table(t) => (Kind::Table, t),
            EntryName::VectorTable(t) => (Kind::VectorTable, t),
            EntryName::File { bucket, name } => (Kind::File(*bucket), name),
        }
    }
}

/// `text` with `/` for every `\`, as names are read (copied only for the
/// rare text that holds a backslash).
pub(crate) fn slashed(text: &str) -> std::borrow::Cow<'_, str> {
    match memchr::memchr(b'\\', text.as_bytes()) {
        Some(_) => text.replace('\\', "/").into(),
        None => text.into(),
    }
}

/// Checks `raw` against the allowlist and says what it names, without
/// copying anything (a backslash reads as `/`; the variable part's
/// position is the same either way, the replacement keeping lengths).
pub(crate) fn classify(raw: &str) -> Result<Shape, NameRule> {
    if raw.is_empty() {
        return Err(NameRule::Empty);
    }
    // Cheap bound first: a UTF-8 string has at least as many bytes as UTF-16 units.
    if raw.len() > MAX_NAME_UTF16 && raw.encode_utf16().count() > MAX_NAME_UTF16 {
        return Err(NameRule::TooLong);
    }
    // Bytes below 0x20 are the control characters: in UTF-8 no byte of
    // a multi-byte character is below 0x80.
    if raw.bytes().any(|c| c < 0x20) {
        return Err(NameRule::ControlCharacter);
    }
    if raw.starts_with('/') {
        return Err(NameRule::Absolute);
    }
    if raw.starts_with("\\\\") {
        return Err(NameRule::Unc);
    }
    let b = raw.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err(NameRule::DriveLetter);
    }
    let name = slashed(raw);
    if name
        .as_bytes()
        .split(|&c| c == b'/')
        .any(|seg| seg == b"." || seg == b"..")
    {
        return Err(NameRule::DotSegment);
    }
    if name.ends_with('/') {
        return Err(NameRule::Directory);
    }
    let fixed = |kind| Shape {
        kind,
        start: 0,
        end: 0,
    };
    match &*name {
        "manifest.json" => return Ok(fixed(Kind::Manifest)),
        "manifest-stats.json" => return Ok(fixed(Kind::Trailer)),
        "secrets/index.json" => return Ok(fixed(Kind::SecretsIndex)),
        "secrets/encrypted.ndjson" => return Ok(fixed(Kind::SecretsEnvelope)),
        _ => {}
    }
    // Names are at most 4,096 UTF-16 units, but a UTF-8 name can hold
    // up to three times as many bytes: positions past u16 are refused.
    let span = |kind, start: usize, len: usize| {
        let start16 = u16::try_from(start).map_err(|_| NameRule::TooLong)?;
        let end16 = u16::try_from(start + len).map_err(|_| NameRule::TooLong)?;
        Ok(Shape {
            kind,
            start: start16,
            end: end16,
        })
    };
    if let Some(rest) = name.strip_prefix("database/") {
        let t = table_part(rest)?;
        return span(Kind::Table, "database/".len(), t.len());
    }
    if let Some(rest) = name.strip_prefix("lancedb/") {
        let t = table_part(rest)?;
        return span(Kind::VectorTable, "lancedb/".len(), t.len());
    }
    if let Some(rest) = name.strip_prefix("files/") {
        let (bucket, file) = rest.split_once('/').ok_or(NameRule::Unknown)?;
        let bucket = Bucket::from_name(bucket).ok_or(NameRule::Unknown)?;
        bucket.check_file_name(file)?;
        return span(Kind::File(bucket), name.len() - file.len(), file.len());
    }
    Err(NameRule::Unknown)
}

fn table_part(rest: &str) -> Result<&str, NameRule> {
    let t = rest.strip_suffix(".ndjson").ok_or(NameRule::TableName)?;
    if is_table_name(t) {
        Ok(t)
    } else {
        Err(NameRule::TableName)
    }
}

/// True when `t` matches `^[a-z_]+$`.
pub fn is_table_name(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|c| c.is_ascii_lowercase() || c == b'_')
}

fn is_hex_lower(s: &[u8]) -> bool {
    s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Length of a lowercase UUID at the start of `s` (36) or `None`.
fn uuid_prefix(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if b.len() < 36 {
        return None;
    }
    let groups = [(0, 8), (9, 13), (14, 18), (19, 23), (24, 36)];
    for &(start, end) in &groups {
        if !is_hex_lower(&b[start..end]) {
            return None;
        }
    }
    if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    s.get(36..)
}

fn is_image_name(s: &str) -> bool {
    match uuid_prefix(s) {
        Some("") => true,
        Some(rest) => match rest.strip_prefix('.') {
            Some(ext) => {
                (1..=8).contains(&ext.len()) && ext.bytes().all(|c| c.is_ascii_alphanumeric())
            }
            None => false,
        },
        None => false,
    }
}

fn is_thumbnail_name(s: &str) -> bool {
    matches!(
        uuid_prefix(s),
        Some("_thumb_sm_v2.webp") | Some("_thumb_lg_v2.webp")
    )
}

fn plain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-')
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(plain_char)
}

fn is_theme_asset_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((bundle, rest)) => {
            is_plain_name(bundle)
                && !rest.is_empty()
                && rest.bytes().all(|c| plain_char(c) || c == b'/')
        }
        None => false,
    }
}

fn is_sound_name(s: &str) -> bool {
    matches!(
        s,
        "completion.mp3"
            | "completion.wav"
            | "completion.ogg"
            | "completion.aac"
            | "completion.m4a"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_accepts_every_kind() {
        assert_eq!(EntryName::parse("manifest.json"), Ok(EntryName::Manifest));
        assert_eq!(
            EntryName::parse("manifest-stats.json"),
            Ok(EntryName::Trailer)
        );
        assert_eq!(
            EntryName::parse("database/world_book_entries.ndjson"),
            Ok(EntryName::Table("world_book_entries".into()))
        );
        assert_eq!(
            EntryName::parse("lancedb/embeddings.ndjson"),
            Ok(EntryName::VectorTable("embeddings".into()))
        );
        let id = "0123abcd-0000-4000-8000-00000000beef";
        for (raw, bucket) in [
            (format!("files/images/{id}.png"), Bucket::Images),
            (format!("files/images/{id}"), Bucket::Images),
            (
                format!("files/thumbnails/{id}_thumb_sm_v2.webp"),
                Bucket::Thumbnails,
            ),
            ("files/avatars/a-b_c.9.png".to_owned(), Bucket::Avatars),
            (format!("files/databank/{id}__x.txt"), Bucket::Databank),
            (
                "files/theme-assets/bundle/a/b.css".to_owned(),
                Bucket::ThemeAssets,
            ),
            (
                "files/notification-sounds/completion.ogg".to_owned(),
                Bucket::NotificationSounds,
            ),
        ] {
            match EntryName::parse(&raw) {
                Ok(EntryName::File { bucket: b, .. }) => assert_eq!(b, bucket, "{raw}"),
                other => panic!("{raw}: {other:?}"),
            }
        }
    }

    #[test]
    fn display_round_trips() {
        for raw in [
            "manifest.json",
            "database/chats.ndjson",
            "lancedb/embeddings_world_books.ndjson",
            "secrets/index.json",
            "secrets/encrypted.ndjson",
            "files/theme-assets/b/x.png",
        ] {
            assert_eq!(
                EntryName::parse(raw).map(|n| n.to_string()).as_deref(),
                Ok(raw)
            );
        }
    }

    fn rule(raw: &str) -> NameRule {
        match EntryName::parse(raw) {
            Err(e) => e.rule,
            Ok(n) => panic!("{raw:?} accepted as {n:?}"),
        }
    }

    #[test]
    fn zip_slip_family_is_refused() {
        assert_eq!(rule(""), NameRule::Empty);
        assert_eq!(rule("/etc/passwd"), NameRule::Absolute);
        assert_eq!(rule("C:/x"), NameRule::DriveLetter);
        assert_eq!(rule("c:files/avatars/x"), NameRule::DriveLetter);
        assert_eq!(rule("\\\\server\\share"), NameRule::Unc);
        assert_eq!(rule("files/avatars/../../etc"), NameRule::DotSegment);
        assert_eq!(rule("files\\theme-assets\\b\\..\\x"), NameRule::DotSegment);
        assert_eq!(rule("files/theme-assets/b/./x"), NameRule::DotSegment);
        assert_eq!(rule("files/avatars/a\u{0}b"), NameRule::ControlCharacter);
        assert_eq!(rule("files/avatars/a\nb"), NameRule::ControlCharacter);
        assert_eq!(rule("database/"), NameRule::Directory);
        assert_eq!(rule("\\files/avatars/x"), NameRule::Unknown);
        assert_eq!(rule("database/Chats.ndjson"), NameRule::TableName);
        assert_eq!(rule("database/chats.json"), NameRule::TableName);
        assert_eq!(
            rule("files/images/not-a-uuid.png"),
            NameRule::BucketPattern(Bucket::Images)
        );
        assert_eq!(
            rule("files/avatars/é.png"),
            NameRule::BucketPattern(Bucket::Avatars)
        );
        assert_eq!(
            rule("files/notification-sounds/completion.exe"),
            NameRule::BucketPattern(Bucket::NotificationSounds)
        );
        assert_eq!(rule("files/unknown/x"), NameRule::Unknown);
        assert_eq!(rule("evil.sh"), NameRule::Unknown);
        assert_eq!(rule(&"a".repeat(4097)), NameRule::TooLong);
    }

    #[test]
    fn backslashes_read_as_slashes() {
        assert_eq!(
            EntryName::parse("files\\avatars\\x.png")
                .map(|n| n.to_string())
                .as_deref(),
            Ok("files/avatars/x.png")
        );
    }

    #[test]
    fn theme_assets_allow_empty_segments_like_the_server() {
        assert!(EntryName::parse("files/theme-assets/b//x").is_ok());
        assert!(EntryName::parse("files/theme-assets/b/x/").is_err());
        assert!(EntryName::parse("files/theme-assets/b").is_err());
    }
}

/// Tests added from mutation testing (cargo-mutants): each pins a rule
/// whose mutation no other test noticed.
#[cfg(test)]
mod mutation_tests {
    use super::*;

    fn rule(raw: &str) -> NameRule {
        EntryName::parse(raw).unwrap_err().rule
    }

    #[test]
    fn bucket_display_is_its_folder_name() {
        for b in Bucket::ALL {
            assert_eq!(b.to_string(), b.as_str());
        }
        let e = EntryName::parse("files/avatars/a b.png").unwrap_err();
        assert!(e.to_string().contains("bucket avatars"), "{e}");
    }

    #[test]
    fn length_is_counted_in_utf16_units_not_bytes() {
        // 4,096 UTF-16 units but 8,178 bytes: not too long (it fails the
        // bucket pattern instead).
        let at_cap = format!("files/avatars/{}", "é".repeat(4096 - 14));
        assert_eq!(at_cap.encode_utf16().count(), 4096);
        assert_eq!(rule(&at_cap), NameRule::BucketPattern(Bucket::Avatars));
        let over = format!("{at_cap}é");
        assert_eq!(rule(&over), NameRule::TooLong);
        // Astral characters count two units each.
        let astral = format!("files/avatars/{}", "😀".repeat(2041));
        assert_eq!(astral.encode_utf16().count(), 4096);
        assert_eq!(rule(&astral), NameRule::BucketPattern(Bucket::Avatars));
        assert_eq!(rule(&format!("{astral}😀")), NameRule::TooLong);
        // ASCII at exactly the cap is fine.
        let ascii = format!("files/avatars/{}", "a".repeat(4096 - 14));
        assert!(EntryName::parse(&ascii).is_ok());
    }

    #[test]
    fn space_is_not_a_control_character() {
        assert_eq!(
            rule("files/avatars/a b.png"),
            NameRule::BucketPattern(Bucket::Avatars)
        );
        assert_eq!(
            rule("files/avatars/a\u{1f}.png"),
            NameRule::ControlCharacter
        );
        assert_eq!(
            rule("files/avatars/a\u{7f}.png"),
            NameRule::BucketPattern(Bucket::Avatars)
        );
    }

    #[test]
    fn image_extensions_are_one_to_eight_alphanumerics() {
        let id = "0123abcd-0000-4000-8000-00000000beef";
        for ok in ["a", "png", "ABCDEFG8"] {
            assert!(EntryName::parse(&format!("files/images/{id}.{ok}")).is_ok());
        }
        for bad in ["", "abcdefghi", "p-g", "a.b", "pn_"] {
            assert_eq!(
                rule(&format!("files/images/{id}.{bad}")),
                NameRule::BucketPattern(Bucket::Images),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn theme_assets_check_bundle_and_path() {
        assert!(EntryName::parse("files/theme-assets/b1/x.css").is_ok());
        for bad in ["b@d/x.css", "b1/x@.css", "b d/x.css", "b1/x .css"] {
            assert_eq!(
                rule(&format!("files/theme-assets/{bad}")),
                NameRule::BucketPattern(Bucket::ThemeAssets),
                "{bad}"
            );
        }
        assert!(!is_theme_asset_name("b1/"));
        assert!(!is_theme_asset_name("/x.css"));
    }

    #[test]
    fn image_uuids_are_lowercase_hex() {
        let good = "0123abcd-0000-4000-8000-00000000beef";
        assert!(EntryName::parse(&format!("files/images/{good}.png")).is_ok());
        for bad in [
            "0123ABCD-0000-4000-8000-00000000beef",
            "0123abcd-0000-4000-8000-00000000BEEF",
            "g123abcd-0000-4000-8000-00000000beef",
            "0123abcd-000z-4000-8000-00000000beef",
            "0123abcd-0000-4000-8000-00000000bee ",
        ] {
            assert_eq!(
                rule(&format!("files/images/{bad}.png")),
                NameRule::BucketPattern(Bucket::Images),
                "{bad}"
            );
            assert_eq!(
                rule(&format!("files/thumbnails/{bad}_thumb_sm_v2.webp")),
                NameRule::BucketPattern(Bucket::Thumbnails),
                "{bad}"
            );
        }
    }
}
