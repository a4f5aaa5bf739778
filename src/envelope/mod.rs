//! Encrypted secrets inside a `.lvbak` archive, and the decryption ticket
//! that opens them.
//!
//! An archive exported "with API keys" carries two entries,
//! [`INDEX_ENTRY`] (`secrets/index.json`, the clear-text list of secret
//! names) and [`RECORDS_ENTRY`] (`secrets/encrypted.ndjson`, one encrypted
//! record per line). The key travels separately in a small JSON
//! [`Ticket`].
//!
//! Two envelope versions exist:
//!
//! * [`EnvelopeVersion::V1`] is what the Lumiverse 1.1 server writes and
//!   reads, reproduced byte for byte: AES-256-GCM under the ticket key, no
//!   associated data, a SHA-256 `secretsHash` over the names. It cannot
//!   detect swapped, renamed, dropped, duplicated or reordered records, so
//!   [`open`] reports anomalies ([`Opened::notes`]) and per-record failures
//!   ([`Opened::failures`]) instead of dropping them silently, and
//!   [`open_strict`] refuses any of them.
//! * [`EnvelopeVersion::V2`] is lvbak's own: HKDF-SHA256 derived keys,
//!   ChaCha20-Poly1305 records whose associated data binds archive,
//!   version, position and name, an HMAC-SHA256 binding over the index and
//!   every record, and a ticket commitment to the whole index. Any
//!   alteration is a typed [`EnvelopeError`].
//!
//! Everything here is pure: functions over byte slices and values, no file
//! or network I/O. `spec/envelope.md` is the normative description, with
//! test vectors.

#![deny(missing_docs)]

pub(crate) mod codec;
mod error;
mod index;
mod js;
mod secret;
mod ticket;
mod v1;
mod v2;

use std::collections::HashSet;
use std::fmt;

pub use error::{
    EnvelopeError, IndexError, MalformedTicket, OpenNote, RecordFailure, RecordProblem, SealError,
    TicketError,
};
pub use index::{read_index, Index, V2_INDEX_ALGORITHM};
pub use js::{js_cmp, js_sort};
pub use secret::{Secret, SecretKey, SecretSet, REDACTED, SECRET_KEY_LEN};
pub use ticket::{
    Ticket, FINGERPRINT_LABEL, TICKET_KIND, V1_ALGORITHM, V1_ISSUER, V2_ALGORITHM, V2_ISSUER,
};
pub use v1::secrets_hash_v1;
pub use v2::{
    V2_INFO_BINDING_KEY, V2_INFO_RECORD_KEY, V2_LABEL_BINDING, V2_LABEL_COMMITMENT,
    V2_LABEL_RECORD_AD,
};

/// Archive entry holding the clear-text index of secret names.
pub const INDEX_ENTRY: &str = "secrets/index.json";
/// Archive entry holding the encrypted records, one JSON object per line.
pub const RECORDS_ENTRY: &str = "secrets/encrypted.ndjson";
/// Length of a record's IV (version 1) or nonce (version 2), in bytes.
pub const NONCE_LEN: usize = 12;
/// Length of an authentication tag (both versions), in bytes.
pub const TAG_LEN: usize = 16;

/// The envelope format of an archive's secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnvelopeVersion {
    /// Lumiverse 1.1's format (AES-256-GCM, no associated data).
    V1,
    /// lvbak's authenticated format (HKDF-SHA256, ChaCha20-Poly1305,
    /// HMAC-SHA256 binding).
    V2,
}

impl EnvelopeVersion {
    /// The number written in tickets and indexes (1 or 2).
    pub fn number(self) -> u32 {
        match self {
            EnvelopeVersion::V1 => 1,
            EnvelopeVersion::V2 => 2,
        }
    }

    /// The version with this number, if any.
    pub fn from_number(n: u32) -> Option<Self> {
        match n {
            1 => Some(EnvelopeVersion::V1),
            2 => Some(EnvelopeVersion::V2),
            _ => None,
        }
    }

    /// The ticket `algorithm` of this version.
    pub fn ticket_algorithm(self) -> &'static str {
        match self {
            EnvelopeVersion::V1 => V1_ALGORITHM,
            EnvelopeVersion::V2 => V2_ALGORITHM,
        }
    }
}

impl fmt::Display for EnvelopeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

/// The output of sealing: the two archive entries and the ticket.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// Bytes of [`INDEX_ENTRY`].
    pub index_json: Vec<u8>,
    /// Bytes of [`RECORDS_ENTRY`].
    pub encrypted_ndjson: Vec<u8>,
    /// The ticket to hand to the user (write it with [`Ticket::to_json`]).
    pub ticket: Ticket,
    /// Number of records, for the manifest's `secretsCount`.
    pub count: usize,
}

/// The result of [`open`].
///
/// For version 1 it holds what the Lumiverse server would restore, plus
/// the records it would skip silently ([`Opened::failures`]) and anomalies
/// it would not notice ([`Opened::notes`]). For version 2 both lists are
/// always empty (any problem is an error instead).
#[derive(Debug, Clone)]
pub struct Opened {
    /// The envelope version that was opened.
    pub version: EnvelopeVersion,
    /// The secrets opened, in record order (version 1: file order, which
    /// may hold a key twice — the later one is what the server keeps;
    /// version 2: index order).
    pub secrets: SecretSet,
    /// Version 1 records that could not be opened.
    pub failures: Vec<RecordFailure>,
    /// Version 1 anomalies.
    pub notes: Vec<OpenNote>,
}

impl Opened {
    /// Whether every record opened and nothing was anomalous.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty() && self.notes.is_empty()
    }

    /// The secrets if the open was complete, else
    /// [`EnvelopeError::Incomplete`] with every failure and note.
    pub fn into_strict(self) -> Result<SecretSet, EnvelopeError> {
        if self.is_complete() {
            Ok(self.secrets)
        } else {
            Err(EnvelopeError::Incomplete {
                failures: self.failures,
                notes: self.notes,
            })
        }
    }
}

fn validate(archive_id: &str, secrets: &SecretSet) -> Result<(), SealError> {
    if archive_id.is_empty() {
        return Err(SealError::EmptyArchiveId);
    }
    let mut seen = HashSet::with_capacity(secrets.len());
    for key in secrets.keys() {
        if !seen.insert(key) {
            return Err(SealError::DuplicateKey {
                key: key.to_owned(),
            });
        }
    }
    Ok(())
}

fn seal_core(
    version: EnvelopeVersion,
    archive_id: &str,
    secrets: &SecretSet,
    issued_at: i64,
    key: &SecretKey,
    next_nonce: &mut dyn FnMut() -> Result<[u8; NONCE_LEN], SealError>,
) -> Result<Sealed, SealError> {
    validate(archive_id, secrets)?;
    match version {
        EnvelopeVersion::V1 => v1::seal(archive_id, secrets, issued_at, key, next_nonce),
        EnvelopeVersion::V2 => v2::seal(archive_id, secrets, issued_at, key, next_nonce),
    }
}

/// Seals `secrets` for the archive `archive_id`, drawing randomness from
/// `rng` (which must fill its argument with cryptographically secure random
/// bytes): first the 32-byte ticket key, then one 12-byte nonce per record
/// in record order (version 1: UTF-8 byte order of the key names, as the
/// server's database returns them; version 2: JavaScript sort order).
///
/// Fails on an empty archive id or a repeated key name.
pub fn seal(
    version: EnvelopeVersion,
    archive_id: &str,
    secrets: &SecretSet,
    issued_at: i64,
    rng: &mut impl FnMut(&mut [u8]),
) -> Result<Sealed, SealError> {
    validate(archive_id, secrets)?;
    let key = SecretKey::generate(rng);
    seal_core(version, archive_id, secrets, issued_at, &key, &mut || {
        let mut nonce = [0u8; NONCE_LEN];
        rng(&mut nonce);
        Ok(nonce)
    })
}

/// Fills `buf` from the operating system's random source (`getrandom`).
pub fn os_random(buf: &mut [u8]) -> Result<(), SealError> {
    getrandom::getrandom(buf).map_err(|e| SealError::Rng(e.to_string()))
}

/// [`seal`] with the operating system's random source: the default way to
/// seal.
pub fn seal_with_os_rng(
    version: EnvelopeVersion,
    archive_id: &str,
    secrets: &SecretSet,
    issued_at: i64,
) -> Result<Sealed, SealError> {
    validate(archive_id, secrets)?;
    let mut failure = None;
    let key = SecretKey::generate(&mut |buf: &mut [u8]| {
        if let Err(e) = os_random(buf) {
            failure = Some(e);
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    seal_core(version, archive_id, secrets, issued_at, &key, &mut || {
        let mut nonce = [0u8; NONCE_LEN];
        os_random(&mut nonce)?;
        Ok(nonce)
    })
}

/// Seals with a given key and given nonces, one per record in record order
/// (see [`seal`]). This exists for test vectors and reproducible fixtures:
/// never reuse a key or a nonce for real secrets.
pub fn seal_deterministic(
    version: EnvelopeVersion,
    archive_id: &str,
    secrets: &SecretSet,
    issued_at: i64,
    key: &SecretKey,
    nonces: &[[u8; NONCE_LEN]],
) -> Result<Sealed, SealError> {
    if nonces.len() != secrets.len() {
        return Err(SealError::NonceCount {
            expected: secrets.len(),
            found: nonces.len(),
        });
    }
    let mut next = nonces.iter();
    seal_core(version, archive_id, secrets, issued_at, key, &mut || {
        next.next().copied().ok_or(SealError::NonceCount {
            expected: secrets.len(),
            found: nonces.len(),
        })
    })
}

/// Opens an archive's secrets with its ticket.
///
/// `archive_id` is the archive manifest's `archiveId`; `index_json` and
/// `encrypted_ndjson` are the bytes of [`INDEX_ENTRY`] (`None` when the
/// entry is absent) and [`RECORDS_ENTRY`] (empty when absent).
///
/// First [`Ticket::check_archive`] runs (errors carry the server's codes).
/// Then version 1 opens every record it can, exactly like the server, and
/// reports the rest; version 2 opens all records or fails with an
/// [`EnvelopeError`] naming the record.
pub fn open(
    ticket: &Ticket,
    archive_id: &str,
    index_json: Option<&[u8]>,
    encrypted_ndjson: &[u8],
) -> Result<Opened, EnvelopeError> {
    let key = ticket.checked_key(archive_id, index_json)?;
    match ticket.version() {
        EnvelopeVersion::V1 => Ok(v1::open(
            ticket,
            key,
            archive_id,
            index_json,
            encrypted_ndjson,
        )),
        EnvelopeVersion::V2 => {
            v2::open(key, archive_id, index_json, encrypted_ndjson).map(|secrets| Opened {
                version: EnvelopeVersion::V2,
                secrets,
                failures: Vec::new(),
                notes: Vec::new(),
            })
        }
    }
}

/// [`open`], refusing any version 1 record failure or anomaly
/// ([`EnvelopeError::Incomplete`]).
pub fn open_strict(
    ticket: &Ticket,
    archive_id: &str,
    index_json: Option<&[u8]>,
    encrypted_ndjson: &[u8],
) -> Result<SecretSet, EnvelopeError> {
    open(ticket, archive_id, index_json, encrypted_ndjson)?.into_strict()
}
