//! Error and report types of the envelope module.
//!
//! No message here ever contains a key, a secret value or a ticket's
//! `keyB64`: only key *names*, archive ids, positions and short
//! descriptions of malformed fields.

use serde_json::Value;

/// Why a ticket was refused, with the Lumiverse server's error codes
/// ([`TicketError::code`]) and HTTP statuses ([`TicketError::http_status`]).
///
/// The variants are listed in the order the checks run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// The ticket bytes are not JSON. The server answers 400 without a
    /// code; lvbak calls it `invalid_json`.
    #[error(
        "the ticket is not valid JSON (line {line}, column {column}); \
         supply the .ticket.json file downloaded with this archive, unmodified"
    )]
    InvalidJson {
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
    },
    /// A required field is missing or has the wrong type or value
    /// (`malformed`, 400).
    #[error(
        "the ticket is malformed: {0}; supply the .ticket.json file \
         downloaded with this archive, unmodified"
    )]
    Malformed(MalformedTicket),
    /// `kind` is not `lumiverse-decryption-ticket` (`wrong_kind`, 400).
    #[error(
        "this is not a Lumiverse decryption ticket (kind is {found}); \
         supply the .ticket.json file downloaded with this archive"
    )]
    WrongKind {
        /// Short description of the `kind` found.
        found: String,
    },
    /// `version` is not one this reader knows (`unsupported_version`, 422).
    #[error(
        "ticket version {found} is not supported (this reader knows versions \
         1 and 2); update lvbak, or use the ticket issued with this archive"
    )]
    UnsupportedVersion {
        /// Short description of the `version` found.
        found: String,
    },
    /// The ticket names another archive (`archive_mismatch`, 409).
    #[error(
        "the ticket belongs to archive {ticket}, not to this archive \
         ({archive}); find the ticket downloaded together with this archive"
    )]
    ArchiveMismatch {
        /// The ticket's `archiveId`.
        ticket: String,
        /// The archive's id (from its manifest).
        archive: String,
    },
    /// The ticket's `secretsHash` does not match the archive's
    /// `secrets/index.json` (`binding_mismatch`, 409).
    #[error(
        "the ticket's secretsHash does not match this archive's list of \
         secrets: the archive or the ticket was altered, or the ticket comes \
         from another export; use the ticket issued with this very download"
    )]
    BindingMismatch,
}

impl TicketError {
    /// The Lumiverse server's code for this refusal: `invalid_json`,
    /// `malformed`, `wrong_kind`, `unsupported_version`, `archive_mismatch`
    /// or `binding_mismatch`.
    pub fn code(&self) -> &'static str {
        match self {
            TicketError::InvalidJson { .. } => "invalid_json",
            TicketError::Malformed(_) => "malformed",
            TicketError::WrongKind { .. } => "wrong_kind",
            TicketError::UnsupportedVersion { .. } => "unsupported_version",
            TicketError::ArchiveMismatch { .. } => "archive_mismatch",
            TicketError::BindingMismatch => "binding_mismatch",
        }
    }

    /// The HTTP status the Lumiverse server answers with: 400 for
    /// `invalid_json`, `malformed` and `wrong_kind`, 422 for
    /// `unsupported_version`, 409 for `archive_mismatch` and
    /// `binding_mismatch`.
    pub fn http_status(&self) -> u16 {
        match self {
            TicketError::InvalidJson { .. }
            | TicketError::Malformed(_)
            | TicketError::WrongKind { .. } => 400,
            TicketError::UnsupportedVersion { .. } => 422,
            TicketError::ArchiveMismatch { .. } | TicketError::BindingMismatch => 409,
        }
    }
}

/// What exactly is malformed in a ticket (all map to code `malformed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedTicket {
    /// The JSON value is not an object.
    #[error("it is not a JSON object")]
    NotAnObject,
    /// `algorithm` is not the one of the ticket's version.
    #[error("its algorithm is {found}, expected \"{expected}\"")]
    Algorithm {
        /// Short description of the `algorithm` found.
        found: String,
        /// The algorithm the ticket's version requires.
        expected: &'static str,
    },
    /// `archiveId` is missing, not a string, or empty.
    #[error("its archiveId is missing, empty or not a string")]
    ArchiveId,
    /// `keyB64` is missing or not a string.
    #[error("its keyB64 is missing or not a string")]
    KeyMissing,
    /// `keyB64` does not decode to 32 bytes.
    #[error("its key decodes to {len} bytes instead of 32")]
    KeyLength {
        /// Decoded length in bytes.
        len: usize,
    },
    /// Version 2 only: `keyB64` is not canonical standard padded base64.
    #[error("its keyB64 is not canonical padded base64 (required by version 2)")]
    KeyEncoding,
    /// Version 2 only: `secretsHash` is missing or not 64 lowercase hex
    /// digits.
    #[error("its secretsHash is missing or not 64 lowercase hex digits (required by version 2)")]
    SecretsHash,
}

/// Why `secrets/index.json` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// Not JSON (or not UTF-8).
    #[error(
        "secrets/index.json is not valid JSON (line {line}, column {column}); \
         the archive is damaged: export it again"
    )]
    NotJson {
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
    },
    /// The JSON value is not an object.
    #[error("secrets/index.json is not a JSON object; the archive is damaged: export it again")]
    NotAnObject,
    /// A field is missing or has the wrong type.
    #[error(
        "secrets/index.json has no valid `{0}` field; the archive is damaged: export it again"
    )]
    Field(&'static str),
    /// `version` is neither 1 nor 2.
    #[error(
        "secrets/index.json has version {found}, which this reader does not know; update lvbak"
    )]
    UnsupportedVersion {
        /// Short description of the `version` found.
        found: String,
    },
    /// Version 2: a field the format does not define.
    #[error("secrets/index.json (version 2) has an unknown field `{0}`; it was altered or written by a newer lvbak")]
    UnknownField(String),
    /// Version 2: `algorithm` is not `ChaCha20-Poly1305`.
    #[error(
        "secrets/index.json (version 2) names algorithm {found}, expected \"ChaCha20-Poly1305\""
    )]
    Algorithm {
        /// Short description of the `algorithm` found.
        found: String,
    },
    /// Version 2: a key name occurs twice.
    #[error("secrets/index.json (version 2) lists key `{key}` twice; the archive was altered")]
    DuplicateKey {
        /// The repeated key name.
        key: String,
    },
    /// Version 2: the keys are not in JavaScript sort order.
    #[error("secrets/index.json (version 2) keys are out of order at position {position}; the archive was altered")]
    NotSorted {
        /// 0-based position of the first key out of order.
        position: usize,
    },
}

/// Why a secret could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The archive id is empty (the server refuses such tickets).
    #[error("the archive id is empty; pass the archive's manifest archiveId")]
    EmptyArchiveId,
    /// Two secrets have the same key name.
    #[error("secret `{key}` occurs twice; a secrets table has unique keys, drop the duplicate")]
    DuplicateKey {
        /// The repeated key name.
        key: String,
    },
    /// The deterministic sealer got the wrong number of nonces.
    #[error("{found} nonces were given for {expected} secrets; pass one nonce per secret")]
    NonceCount {
        /// Number of secrets.
        expected: usize,
        /// Number of nonces passed.
        found: usize,
    },
    /// The operating system's random source failed.
    #[error("the operating system's random number generator failed ({0}); retry, or check the system's entropy source")]
    Rng(String),
    /// The cipher refused the input (a value too large to encrypt).
    #[error("the cipher refused to encrypt a secret (value too large?)")]
    Crypto,
}

/// A problem with one record of `secrets/encrypted.ndjson`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordProblem {
    /// The line is not JSON.
    NotJson,
    /// The line is JSON but not an object.
    NotAnObject,
    /// A required field is missing or not a string.
    MissingField(&'static str),
    /// Version 2: a field the format does not define.
    UnknownField(String),
    /// Version 2: an empty line where a record was expected.
    EmptyLine,
    /// Version 2: a field is not canonical standard padded base64.
    BadBase64(&'static str),
    /// Version 1: the IV is not 12 bytes. The server (WebCrypto) would try
    /// any non-empty length; lvbak supports only the 12 bytes every
    /// Lumiverse export uses.
    UnsupportedIvLength(usize),
    /// Version 2: the nonce is not 12 bytes.
    BadNonceLength(usize),
    /// Ciphertext plus tag is shorter than the 16-byte tag.
    TooShort(usize),
    /// The authentication tag does not verify: wrong key, or the record
    /// (or, in version 2, its key name or position) was altered.
    Authentication,
    /// Version 2: the decrypted value is not UTF-8.
    InvalidUtf8,
    /// Version 2: the record's key is not the one the index lists at this
    /// position.
    KeyMismatch {
        /// The key name the index lists at this position.
        expected: String,
    },
}

impl std::fmt::Display for RecordProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordProblem::NotJson => f.write_str("the line is not JSON"),
            RecordProblem::NotAnObject => f.write_str("the line is not a JSON object"),
            RecordProblem::MissingField(name) => {
                write!(f, "field `{name}` is missing or not a string")
            }
            RecordProblem::UnknownField(name) => write!(f, "unknown field `{name}`"),
            RecordProblem::EmptyLine => f.write_str("the line is empty"),
            RecordProblem::BadBase64(name) => {
                write!(f, "field `{name}` is not canonical padded base64")
            }
            RecordProblem::UnsupportedIvLength(n) => {
                write!(f, "the IV is {n} bytes; only 12-byte IVs are supported")
            }
            RecordProblem::BadNonceLength(n) => write!(f, "the nonce is {n} bytes, not 12"),
            RecordProblem::TooShort(n) => {
                write!(
                    f,
                    "ciphertext and tag are {n} bytes, shorter than the 16-byte tag"
                )
            }
            RecordProblem::Authentication => {
                f.write_str("authentication failed (wrong ticket key, or the record was altered)")
            }
            RecordProblem::InvalidUtf8 => f.write_str("the decrypted value is not UTF-8"),
            RecordProblem::KeyMismatch { expected } => {
                write!(f, "the index lists `{expected}` at this position")
            }
        }
    }
}

/// A version 1 record that could not be opened (the server skips it
/// silently; lvbak reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    /// 1-based line number in `secrets/encrypted.ndjson`.
    pub line: usize,
    /// The record's `key`, when it has one.
    pub key: Option<String>,
    /// What went wrong.
    pub problem: RecordProblem,
}

impl std::fmt::Display for RecordFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "secret `{key}` (line {}): {}", self.line, self.problem),
            None => write!(f, "line {}: {}", self.line, self.problem),
        }
    }
}

/// A non-fatal anomaly found while opening a version 1 envelope. The
/// server would not notice any of these; a strict open refuses them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenNote {
    /// The ticket has no string `secretsHash`, so (like the server) the
    /// index binding was not checked.
    BindingCheckSkipped,
    /// `secrets/index.json` is absent.
    IndexMissing,
    /// `secrets/index.json` could not be read (treated as listing no keys).
    IndexUnreadable,
    /// `secrets/index.json` is a version 2 index (the archive was sealed
    /// with version 2 but opened with a version 1 ticket).
    IndexVersionMismatch {
        /// The index's version number.
        index: u32,
    },
    /// `secrets/index.json` names another archive id.
    IndexArchiveMismatch {
        /// The index's `archiveId`.
        index_archive_id: String,
    },
    /// The index lists a key that no record carries (the server exports
    /// the key list at prepare time, so a secret deleted before the
    /// download leaves this; it is also what dropping a record looks like).
    MissingRecord {
        /// The key name.
        key: String,
    },
    /// A record carries a key the index does not list (for example a
    /// renamed record).
    UnlistedRecord {
        /// The key name.
        key: String,
        /// 1-based line number.
        line: usize,
    },
    /// A second record with the same key; the server applies both, so the
    /// later one wins.
    DuplicateRecord {
        /// The key name.
        key: String,
        /// 1-based line number of the repeat.
        line: usize,
    },
    /// The value was not UTF-8; invalid sequences became U+FFFD, as the
    /// server's `TextDecoder` does.
    InvalidUtf8Replaced {
        /// The key name.
        key: String,
        /// 1-based line number.
        line: usize,
    },
    /// The value began with a byte order mark, which the server's
    /// `TextDecoder` strips; lvbak strips it too.
    LeadingBomStripped {
        /// The key name.
        key: String,
        /// 1-based line number.
        line: usize,
    },
}

impl std::fmt::Display for OpenNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenNote::BindingCheckSkipped => {
                f.write_str("the ticket has no secretsHash, so the list of secrets was not checked")
            }
            OpenNote::IndexMissing => f.write_str("secrets/index.json is missing"),
            OpenNote::IndexUnreadable => f.write_str("secrets/index.json is unreadable"),
            OpenNote::IndexVersionMismatch { index } => write!(
                f,
                "secrets/index.json is envelope version {index}, but the ticket is version 1"
            ),
            OpenNote::IndexArchiveMismatch { index_archive_id } => write!(
                f,
                "secrets/index.json names archive {index_archive_id}, not this one"
            ),
            OpenNote::MissingRecord { key } => {
                write!(f, "the index lists `{key}` but no record carries it")
            }
            OpenNote::UnlistedRecord { key, line } => {
                write!(f, "record `{key}` (line {line}) is not in the index")
            }
            OpenNote::DuplicateRecord { key, line } => {
                write!(f, "record `{key}` (line {line}) repeats an earlier record")
            }
            OpenNote::InvalidUtf8Replaced { key, line } => write!(
                f,
                "secret `{key}` (line {line}) is not UTF-8; invalid bytes became U+FFFD"
            ),
            OpenNote::LeadingBomStripped { key, line } => write!(
                f,
                "secret `{key}` (line {line}) began with a byte order mark, which was removed"
            ),
        }
    }
}

/// Why an envelope could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The ticket was refused (see [`TicketError::code`]).
    #[error(transparent)]
    Ticket(#[from] TicketError),
    /// Version 2: `secrets/index.json` is missing.
    #[error("secrets/index.json is missing; the archive is incomplete: export it again")]
    MissingIndex,
    /// Version 2: `secrets/index.json` could not be read.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Version 2: the index and the ticket disagree on the envelope version.
    #[error("secrets/index.json is envelope version {index}, but the ticket is version {ticket}; use the ticket issued with this archive")]
    VersionMismatch {
        /// The ticket's version number.
        ticket: u32,
        /// The index's version number.
        index: u32,
    },
    /// Version 2: `secrets/encrypted.ndjson` does not end with a line feed.
    #[error("secrets/encrypted.ndjson is truncated (no final line feed); the archive is damaged: export it again")]
    Truncated,
    /// Version 2: the number of records differs from the index.
    #[error("secrets/encrypted.ndjson holds {found} records but the index lists {expected}; records were dropped or added")]
    RecordCount {
        /// Number of keys in the index.
        expected: usize,
        /// Number of records found.
        found: usize,
    },
    /// Version 2: one record is bad.
    #[error("{}", record_message(*.position, .key.as_deref(), .problem))]
    Record {
        /// 0-based position of the record (its line number minus one).
        position: usize,
        /// The record's key, when it could be read.
        key: Option<String>,
        /// What went wrong.
        problem: RecordProblem,
    },
    /// Version 2: the binding MAC over index and records does not verify.
    #[error("the secrets binding does not verify: the wrong ticket key was used, or the index or the records were altered; use the ticket issued with this archive")]
    BindingMac,
    /// Version 1, strict open: some records failed or anomalies were found.
    #[error("{}", incomplete_message(.failures, .notes))]
    Incomplete {
        /// Records that could not be opened.
        failures: Vec<RecordFailure>,
        /// Anomalies found.
        notes: Vec<OpenNote>,
    },
    /// Key derivation failed (never expected).
    #[error("key derivation failed unexpectedly")]
    Crypto,
}

fn record_message(position: usize, key: Option<&str>, problem: &RecordProblem) -> String {
    let who = match key {
        Some(k) => format!("secret `{k}` (record {position}, line {})", position + 1),
        None => format!("record {position} (line {})", position + 1),
    };
    format!("{who} cannot be opened: {problem}; the archive or the ticket was altered")
}

fn incomplete_message(failures: &[RecordFailure], notes: &[OpenNote]) -> String {
    let first = failures
        .first()
        .map(ToString::to_string)
        .or_else(|| notes.first().map(ToString::to_string))
        .unwrap_or_default();
    format!(
        "{} secret record(s) failed and {} anomaly(ies) were found (first: {first}); \
         open leniently to restore what can be restored, or export the archive again",
        failures.len(),
        notes.len()
    )
}

/// A short, non-secret description of a JSON value for error messages:
/// strings are quoted and cut to 64 characters, containers are named.
pub(crate) fn describe(value: Option<&Value>) -> String {
    match value {
        None => "missing".to_owned(),
        Some(Value::String(s)) => {
            let mut cut: String = s.chars().take(64).collect();
            if cut.len() < s.len() {
                cut.push('…');
            }
            format!("{cut:?}")
        }
        Some(Value::Array(_)) => "an array".to_owned(),
        Some(Value::Object(_)) => "an object".to_owned(),
        Some(other) => other.to_string(),
    }
}
