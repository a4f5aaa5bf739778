//! Secrets in an archive: opening the envelope of an [`Archive`] with a
//! ticket, applying the host's ticket policy, and sealing new secrets for
//! the writer. The cryptography is in [`crate::envelope`]; this module only
//! moves bytes between it and the archive.

use std::io::{Read, Seek};

use serde_json::{json, Map, Value};

use crate::archive::{Archive, ArchiveError};
use crate::entry_name::EntryName;
use crate::envelope::{
    self, EnvelopeError, EnvelopeVersion, Opened, Sealed, SecretSet, Ticket, TicketError,
};

/// What to do when the ticket does not fit the archive (the server's choice
/// offered to the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TicketPolicy {
    /// Abort the whole import.
    #[default]
    Cancel,
    /// Import everything but the secrets.
    Skip,
}

/// Errors opening an archive's secrets.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Reading the archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The ticket was refused (`code()` gives the server's code).
    #[error(transparent)]
    Ticket(#[from] TicketError),
    /// The envelope could not be opened.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The archive carries no secrets envelope.
    #[error("the archive carries no secrets (no secrets/encrypted.ndjson)")]
    NoSecrets,
}

impl SecretsError {
    /// The server's ticket error code when the ticket was refused.
    pub fn ticket_code(&self) -> Option<&'static str> {
        match self {
            SecretsError::Ticket(t) => Some(t.code()),
            SecretsError::Envelope(EnvelopeError::Ticket(t)) => Some(t.code()),
            _ => None,
        }
    }
}

/// What a host learns about an archive's secrets before deciding anything:
/// enough to record ticket consumption (archive id, ticket fingerprint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsInfo {
    /// The manifest's archive id (what the ticket binds).
    pub archive_id: String,
    /// Envelope version from `secrets/index.json`, if readable.
    pub envelope: Option<EnvelopeVersion>,
    /// Key names listed in the index (readable without the ticket).
    pub keys: Vec<String>,
}

/// Reads `secrets/index.json` (no ticket needed). `None` when the archive
/// has no secrets.
pub fn info<R: Read + Seek>(archive: &mut Archive<R>) -> Result<Option<SecretsInfo>, ArchiveError> {
    let cap = archive.limits().max_secrets_index_bytes;
    let Some(bytes) = archive.read_small(&EntryName::SecretsIndex, cap)? else {
        return Ok(None);
    };
    let idx = envelope::read_index(&bytes).map_err(|e| ArchiveError::Json {
        entry: EntryName::SecretsIndex.to_string(),
        message: e.to_string(),
    })?;
    Ok(Some(SecretsInfo {
        archive_id: archive.manifest().archive_id.clone(),
        envelope: Some(idx.version),
        keys: idx.keys.clone(),
    }))
}

/// Opens the archive's secrets with `ticket`, like the server: the ticket
/// is checked against the manifest's archive id and the index, then every
/// record is opened. Version 1 records that fail are listed in
/// [`Opened::failures`] by key name; version 2 fails on any tampering.
pub fn open<R: Read + Seek>(
    archive: &mut Archive<R>,
    ticket: &Ticket,
) -> Result<Opened, SecretsError> {
    let cap = archive.limits().max_secrets_index_bytes;
    let index = archive.read_small(&EntryName::SecretsIndex, cap)?;
    let records_cap = archive.limits().max_total_uncompressed_bytes;
    let Some(records) = archive.read_small(&EntryName::SecretsEnvelope, records_cap)? else {
        return Err(SecretsError::NoSecrets);
    };
    let id = archive.manifest().archive_id.clone();
    Ok(envelope::open(ticket, &id, index.as_deref(), &records)?)
}

/// The outcome of applying a [`TicketPolicy`].
#[derive(Debug)]
pub enum SecretsOutcome {
    /// The archive has no secrets.
    None,
    /// Opened (possibly with v1 record failures listed).
    Opened(Opened),
    /// Skipped by policy; the reason (a ticket error, or no ticket given).
    Skipped(String),
}

/// Opens secrets if a ticket is given; on a ticket or envelope error,
/// `Cancel` returns the error and `Skip` reports it and goes on.
pub fn open_with_policy<R: Read + Seek>(
    archive: &mut Archive<R>,
    ticket: Option<&Ticket>,
    policy: TicketPolicy,
) -> Result<SecretsOutcome, SecretsError> {
    if archive.find(&EntryName::SecretsEnvelope).is_none() {
        return Ok(SecretsOutcome::None);
    }
    let Some(ticket) = ticket else {
        return Ok(SecretsOutcome::Skipped("no ticket given".into()));
    };
    match open(archive, ticket) {
        Ok(o) => Ok(SecretsOutcome::Opened(o)),
        Err(SecretsError::Archive(e)) => Err(SecretsError::Archive(e)),
        Err(e) if policy == TicketPolicy::Skip => Ok(SecretsOutcome::Skipped(e.to_string())),
        Err(e) => Err(e),
    }
}

/// The manifest fields lvbak sets for an archive carrying `sealed`:
/// `hasEncryptedSecrets`, `secretsCount`, and `lvbak.envelope` (`"v1"` or
/// `"v2"`) saying which envelope it carries.
pub fn manifest_fields(sealed: &Sealed, version: EnvelopeVersion) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("hasEncryptedSecrets".into(), json!(true));
    m.insert("secretsCount".into(), json!(sealed.count));
    m.insert("lvbak".into(), json!({"envelope": version.to_string()}));
    m
}

/// Seals `secrets` for `archive_id` with fresh randomness from the OS.
pub fn seal(
    version: EnvelopeVersion,
    archive_id: &str,
    secrets: &SecretSet,
    issued_at: i64,
) -> Result<Sealed, envelope::SealError> {
    envelope::seal_with_os_rng(version, archive_id, secrets, issued_at)
}
