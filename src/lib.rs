//! # lvbak
//!
//! The reference implementation of Lumiverse's `.lvbak` account archive:
//! a streaming, bounded-memory reader ([`Archive`]) and one-pass writer
//! ([`ArchiveWriter`]) for the ZIP profile the Lumiverse 1.1 server writes,
//! with typed entry names ([`EntryName`]), a versioned [`Manifest`], NDJSON
//! rows kept byte-exact, per-entry SHA-256 digests, and verification.
//!
//! Layers, each knowing only the one below it:
//!
//! - [`container`]: the ZIP profile (EOCD/ZIP64, central directory, local
//!   headers, data descriptors, deflate/store) with strict checks;
//! - [`entry_name`], [`manifest`], [`ndjson`]: slice parsers, no I/O;
//! - [`archive`]: [`Archive`], [`ArchiveWriter`], [`verify`](archive::verify).
//!
//! The normative format is in the repository's `spec/` folder.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod archive;
pub mod container;
pub mod domain;
pub mod engine;
pub mod entry_name;
pub mod envelope;
pub mod inspect;
pub mod limits;
pub mod manifest;
pub mod ndjson;
pub mod repack;
pub mod secrets;
mod spill;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
pub mod tables;

pub use archive::{Archive, ArchiveError, ArchiveWriter, Row, WriteOptions};
pub use entry_name::{Bucket, EntryName};
pub use limits::Limits;
pub use manifest::{Manifest, Trailer};

/// The README's Rust examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
