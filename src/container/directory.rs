//! The central directory while it is written: each finished entry's record
//! is encoded at once and kept in a [`SpillLog`] (chunks in memory or, when
//! a folder is given and the directory outgrows its first chunk, in an
//! anonymous temporary file there). [`ZipWriter::finish`] copies it out.
//!
//! [`ZipWriter::finish`]: super::write::ZipWriter::finish

use std::io;
use std::path::PathBuf;

use super::records::*;
use super::write::{method_code, EntryOptions, VERSION_MADE_BY};
use crate::spill::SpillLog;

/// What the central directory says of one finished entry.
pub(crate) struct CentralRecord<'a> {
    pub name: &'a str,
    pub opts: EntryOptions,
    pub flags: u16,
    pub crc32: u32,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub offset: u64,
}

impl CentralRecord<'_> {
    /// Appends the record as it goes in the central directory (the ZIP64
    /// extra only when a size or the offset needs it).
    pub fn encode(&self, cd: &mut Vec<u8>) {
        let large = is_large(self.compressed_size, self.uncompressed_size)
            || self.offset > u64::from(u32::MAX);
        put32(cd, CENTRAL_SIG);
        put16(cd, VERSION_MADE_BY);
        put16(
            cd,
            if large {
                45
            } else if self.flags == 0 {
                10
            } else {
                20
            },
        );
        put16(cd, self.flags);
        put16(cd, method_code(self.opts.method));
        put16(cd, self.opts.dos_time.0);
        put16(cd, self.opts.dos_time.1);
        put32(cd, self.crc32);
        if large {
            put32(cd, SENTINEL32);
            put32(cd, SENTINEL32);
        } else {
            put32(cd, self.compressed_size as u32);
            put32(cd, self.uncompressed_size as u32);
        }
        put16(cd, self.name.len() as u16);
        put16(cd, if large { 28 } else { 0 });
        put16(cd, 0); // comment
        put16(cd, 0); // disk
        put16(cd, 0); // internal attributes
        put32(cd, self.opts.external_attr);
        put32(
            cd,
            if large {
                SENTINEL32
            } else {
                self.offset as u32
            },
        );
        cd.extend_from_slice(self.name.as_bytes());
        if large {
            put16(cd, 0x0001);
            put16(cd, 24);
            put64(cd, self.uncompressed_size);
            put64(cd, self.compressed_size);
            put64(cd, self.offset);
        }
    }
}

/// True when a size needs ZIP64 fields.
pub(crate) fn is_large(compressed: u64, uncompressed: u64) -> bool {
    compressed > u64::from(u32::MAX) || uncompressed > u64::from(u32::MAX)
}

/// The encoded records of the finished entries, in order.
#[derive(Default)]
pub(crate) struct Directory {
    log: SpillLog,
    count: u64,
}

impl Directory {
    /// See [`SpillLog::spill_to`]: the archive is the same either way.
    pub fn spill_to(&mut self, dir: Option<PathBuf>) {
        self.log.spill_to(dir);
    }

    /// Whether records went to a temporary file.
    #[cfg(test)]
    pub fn spilled(&self) -> bool {
        self.log.spilled()
    }

    /// Records written.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Total bytes of the records written: the offset the next one takes.
    pub fn len(&self) -> u64 {
        self.log.len()
    }

    /// Appends a finished entry's record.
    pub fn push(&mut self, rec: &CentralRecord<'_>) -> io::Result<()> {
        self.log
            .append_with(CENTRAL_LEN + rec.name.len() + 28, |b| rec.encode(b))?;
        self.count += 1;
        Ok(())
    }

    /// The name in the record that starts at `offset` (an offset
    /// [`Directory::len`] gave before that record was pushed).
    pub fn name_at(&mut self, offset: u64) -> io::Result<Vec<u8>> {
        let len = self.log.read_at(offset + 28, 2)?;
        let n = usize::from(u16::from_le_bytes([len[0], len[1]]));
        self.log.read_at(offset + CENTRAL_LEN as u64, n)
    }

    /// Writes every record, in order, through `put`.
    pub fn write_to(mut self, put: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        self.log.for_each_chunk(put)
    }
}
