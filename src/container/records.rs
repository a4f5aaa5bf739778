//! ZIP records as byte-slice parsers and writers, no I/O.
//!
//! Each `parse_*` function takes the bytes of one record and returns its
//! fields or a [`RecordError`]; each `write_*` function appends a record to
//! a `Vec<u8>`. Offsets and lengths are checked before every read.

/// Local file header signature, `PK\x03\x04`.
pub const LOCAL_SIG: u32 = 0x0403_4b50;
/// Central directory header signature, `PK\x01\x02`.
pub const CENTRAL_SIG: u32 = 0x0201_4b50;
/// End of central directory signature, `PK\x05\x06`.
pub const EOCD_SIG: u32 = 0x0605_4b50;
/// ZIP64 end of central directory record signature, `PK\x06\x06`.
pub const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
/// ZIP64 end of central directory locator signature, `PK\x06\x07`.
pub const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
/// Data descriptor signature, `PK\x07\x08`.
pub const DESCRIPTOR_SIG: u32 = 0x0807_4b50;

/// Fixed part of a local header.
pub const LOCAL_LEN: usize = 30;
/// Fixed part of a central header.
pub const CENTRAL_LEN: usize = 46;
/// Classic end of central directory record without comment.
pub const EOCD_LEN: usize = 22;
/// ZIP64 locator.
pub const LOCATOR_LEN: usize = 20;
/// ZIP64 end of central directory record (record-size field 44).
pub const ZIP64_EOCD_LEN: usize = 56;

/// General purpose flag: the entry is encrypted.
pub const FLAG_ENCRYPTED: u16 = 0x0001;
/// General purpose flag: CRC and sizes follow the data in a descriptor.
pub const FLAG_DESCRIPTOR: u16 = 0x0008;
/// General purpose flag: the name is UTF-8.
pub const FLAG_UTF8: u16 = 0x0800;

/// Method 0.
pub const METHOD_STORED: u16 = 0;
/// Method 8.
pub const METHOD_DEFLATED: u16 = 8;

/// 32-bit sentinel meaning "see the ZIP64 extra".
pub const SENTINEL32: u32 = 0xFFFF_FFFF;
/// 16-bit sentinel meaning "see the ZIP64 record".
pub const SENTINEL16: u16 = 0xFFFF;

/// A record that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than the record needs.
    #[error("{record} is truncated: needs {needed} bytes, has {available}")]
    Truncated {
        /// Which record.
        record: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The signature is not the expected one.
    #[error("{record} has a bad signature {found:#010x}")]
    Signature {
        /// Which record.
        record: &'static str,
        /// What was found.
        found: u32,
    },
    /// A ZIP64 extra field that does not hold the values its sentinels ask for.
    #[error("ZIP64 extra field is missing or too short for the sentinel fields")]
    Zip64Extra,
    /// An extra-field block whose length runs past the extra area.
    #[error("extra field block runs past the end of the extra area")]
    ExtraOverrun,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn need(record: &'static str, b: &[u8], needed: usize) -> Result<(), RecordError> {
    if b.len() < needed {
        Err(RecordError::Truncated {
            record,
            needed,
            available: b.len(),
        })
    } else {
        Ok(())
    }
}

fn sig(record: &'static str, b: &[u8], want: u32) -> Result<(), RecordError> {
    let found = u32_at(b, 0);
    if found != want {
        return Err(RecordError::Signature { record, found });
    }
    Ok(())
}

/// The classic end of central directory record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eocd {
    /// Number of this disk.
    pub disk: u16,
    /// Disk where the central directory starts.
    pub cd_disk: u16,
    /// Entries on this disk.
    pub entries_on_disk: u16,
    /// Entries in total.
    pub entries: u16,
    /// Central directory size.
    pub cd_size: u32,
    /// Central directory offset.
    pub cd_offset: u32,
    /// Comment length.
    pub comment_len: u16,
}

impl Eocd {
    /// True when a field holds its sentinel, so the ZIP64 record is authoritative.
    pub fn wants_zip64(&self) -> bool {
        self.entries == SENTINEL16 || self.cd_size == SENTINEL32 || self.cd_offset == SENTINEL32
    }
}

/// Parses the 22 fixed bytes of an EOCD record.
pub fn parse_eocd(b: &[u8]) -> Result<Eocd, RecordError> {
    need("end of central directory", b, EOCD_LEN)?;
    sig("end of central directory", b, EOCD_SIG)?;
    Ok(Eocd {
        disk: u16_at(b, 4),
        cd_disk: u16_at(b, 6),
        entries_on_disk: u16_at(b, 8),
        entries: u16_at(b, 10),
        cd_size: u32_at(b, 12),
        cd_offset: u32_at(b, 16),
        comment_len: u16_at(b, 20),
    })
}

/// Finds every position in `tail` where an EOCD signature sits whose comment
/// length ends exactly at the end of `tail` (the server's acceptance rule).
/// Positions are returned from the end backwards.
pub fn eocd_candidates(tail: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    if tail.len() < EOCD_LEN {
        return out;
    }
    let mut i = tail.len() - EOCD_LEN;
    loop {
        if u32_at(tail, i) == EOCD_SIG {
            let comment = usize::from(u16_at(tail, i + 20));
            if i + EOCD_LEN + comment == tail.len() {
                out.push(i);
            }
        }
        if i == 0 {
            break;
        }
        i -= 1;
    }
    out
}

/// The ZIP64 end of central directory locator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zip64Locator {
    /// Disk holding the ZIP64 record.
    pub disk: u32,
    /// Offset of the ZIP64 record.
    pub record_offset: u64,
    /// Total number of disks.
    pub total_disks: u32,
}

/// Parses a 20-byte ZIP64 locator.
pub fn parse_zip64_locator(b: &[u8]) -> Result<Zip64Locator, RecordError> {
    need("ZIP64 locator", b, LOCATOR_LEN)?;
    sig("ZIP64 locator", b, ZIP64_LOCATOR_SIG)?;
    Ok(Zip64Locator {
        disk: u32_at(b, 4),
        record_offset: u64_at(b, 8),
        total_disks: u32_at(b, 16),
    })
}

/// The ZIP64 end of central directory record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zip64Eocd {
    /// Size of the remaining record (44 for the fixed part).
    pub record_size: u64,
    /// Entries in total.
    pub entries: u64,
    /// Central directory size.
    pub cd_size: u64,
    /// Central directory offset.
    pub cd_offset: u64,
}

/// Parses the 56 fixed bytes of a ZIP64 EOCD record.
pub fn parse_zip64_eocd(b: &[u8]) -> Result<Zip64Eocd, RecordError> {
    need("ZIP64 end of central directory", b, ZIP64_EOCD_LEN)?;
    sig("ZIP64 end of central directory", b, ZIP64_EOCD_SIG)?;
    Ok(Zip64Eocd {
        record_size: u64_at(b, 4),
        entries: u64_at(b, 32),
        cd_size: u64_at(b, 40),
        cd_offset: u64_at(b, 48),
    })
}

/// The fixed part of a central directory header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CentralFixed {
    /// Version made by.
    pub version_made_by: u16,
    /// Version needed to extract.
    pub version_needed: u16,
    /// General purpose flags.
    pub flags: u16,
    /// Compression method.
    pub method: u16,
    /// DOS time.
    pub time: u16,
    /// DOS date.
    pub date: u16,
    /// CRC-32 of the uncompressed data.
    pub crc32: u32,
    /// Compressed size (32-bit field).
    pub compressed_size: u32,
    /// Uncompressed size (32-bit field).
    pub uncompressed_size: u32,
    /// Name length.
    pub name_len: u16,
    /// Extra length.
    pub extra_len: u16,
    /// Comment length.
    pub comment_len: u16,
    /// Disk where the entry starts.
    pub disk_start: u16,
    /// Internal attributes.
    pub internal_attr: u16,
    /// External attributes.
    pub external_attr: u32,
    /// Local header offset (32-bit field).
    pub local_offset: u32,
}

impl CentralFixed {
    /// Total length of this header with its variable parts.
    pub fn total_len(&self) -> usize {
        CENTRAL_LEN
            + usize::from(self.name_len)
            + usize::from(self.extra_len)
            + usize::from(self.comment_len)
    }
}

/// Parses the 46 fixed bytes of a central directory header.
pub fn parse_central_fixed(b: &[u8]) -> Result<CentralFixed, RecordError> {
    need("central directory header", b, CENTRAL_LEN)?;
    sig("central directory header", b, CENTRAL_SIG)?;
    Ok(CentralFixed {
        version_made_by: u16_at(b, 4),
        version_needed: u16_at(b, 6),
        flags: u16_at(b, 8),
        method: u16_at(b, 10),
        time: u16_at(b, 12),
        date: u16_at(b, 14),
        crc32: u32_at(b, 16),
        compressed_size: u32_at(b, 20),
        uncompressed_size: u32_at(b, 24),
        name_len: u16_at(b, 28),
        extra_len: u16_at(b, 30),
        comment_len: u16_at(b, 32),
        disk_start: u16_at(b, 34),
        internal_attr: u16_at(b, 36),
        external_attr: u32_at(b, 38),
        local_offset: u32_at(b, 42),
    })
}

/// The values a ZIP64 extra supplies, each present only when its 32-bit
/// field held the sentinel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Zip64Values {
    /// Uncompressed size.
    pub uncompressed: Option<u64>,
    /// Compressed size.
    pub compressed: Option<u64>,
    /// Local header offset.
    pub offset: Option<u64>,
}

/// Reads the ZIP64 extra (tag 0x0001) from an extra area for the fields
/// whose 32-bit values are sentinels. Every block length is checked; a
/// missing or short ZIP64 block when a sentinel needs it is an error.
pub fn parse_zip64_extra(
    extra: &[u8],
    want_uncompressed: bool,
    want_compressed: bool,
    want_offset: bool,
) -> Result<Zip64Values, RecordError> {
    let wanted = [want_uncompressed, want_compressed, want_offset];
    if !wanted.iter().any(|w| *w) {
        return Ok(Zip64Values::default());
    }
    let mut at = 0usize;
    while at + 4 <= extra.len() {
        let tag = u16_at(extra, at);
        let len = usize::from(u16_at(extra, at + 2));
        let body_start = at + 4;
        let body_end = body_start + len;
        if body_end > extra.len() {
            return Err(RecordError::ExtraOverrun);
        }
        if tag == 0x0001 {
            let body = &extra[body_start..body_end];
            let mut vals = [None; 3];
            let mut pos = 0usize;
            for (slot, want) in vals.iter_mut().zip(wanted) {
                if want {
                    if pos + 8 > body.len() {
                        return Err(RecordError::Zip64Extra);
                    }
                    *slot = Some(u64_at(body, pos));
                    pos += 8;
                }
            }
            return Ok(Zip64Values {
                uncompressed: vals[0],
                compressed: vals[1],
                offset: vals[2],
            });
        }
        at = body_end;
    }
    Err(RecordError::Zip64Extra)
}

/// The fixed part of a local file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalFixed {
    /// Version needed.
    pub version_needed: u16,
    /// General purpose flags.
    pub flags: u16,
    /// Compression method.
    pub method: u16,
    /// DOS time.
    pub time: u16,
    /// DOS date.
    pub date: u16,
    /// CRC-32 (zero when a descriptor follows).
    pub crc32: u32,
    /// Compressed size (32-bit field).
    pub compressed_size: u32,
    /// Uncompressed size (32-bit field).
    pub uncompressed_size: u32,
    /// Name length.
    pub name_len: u16,
    /// Extra length.
    pub extra_len: u16,
}

/// Parses the 30 fixed bytes of a local header.
pub fn parse_local_fixed(b: &[u8]) -> Result<LocalFixed, RecordError> {
    need("local file header", b, LOCAL_LEN)?;
    sig("local file header", b, LOCAL_SIG)?;
    Ok(LocalFixed {
        version_needed: u16_at(b, 4),
        flags: u16_at(b, 6),
        method: u16_at(b, 8),
        time: u16_at(b, 10),
        date: u16_at(b, 12),
        crc32: u32_at(b, 14),
        compressed_size: u32_at(b, 18),
        uncompressed_size: u32_at(b, 22),
        name_len: u16_at(b, 26),
        extra_len: u16_at(b, 28),
    })
}

/// A parsed data descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// CRC-32.
    pub crc32: u32,
    /// Compressed size.
    pub compressed_size: u64,
    /// Uncompressed size.
    pub uncompressed_size: u64,
}

/// Parses a data descriptor that starts at `b[0]`, with 8-byte sizes when
/// `zip64`. The signature is optional in the ZIP specification; lvbak
/// accepts both forms.
pub fn parse_descriptor(b: &[u8], zip64: bool) -> Result<Descriptor, RecordError> {
    let has_sig = b.len() >= 4 && u32_at(b, 0) == DESCRIPTOR_SIG;
    let at = if has_sig { 4 } else { 0 };
    let size_len = if zip64 { 8 } else { 4 };
    need("data descriptor", b, at + 4 + 2 * size_len)?;
    let crc32 = u32_at(b, at);
    let (c, u) = if zip64 {
        (u64_at(b, at + 4), u64_at(b, at + 12))
    } else {
        (u64::from(u32_at(b, at + 4)), u64::from(u32_at(b, at + 8)))
    };
    Ok(Descriptor {
        crc32,
        compressed_size: c,
        uncompressed_size: u,
    })
}

/// Appends a little-endian u16.
pub fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
/// Appends a little-endian u32.
pub fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
/// Appends a little-endian u64.
pub fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parser_refuses_short_input_without_panicking() {
        for n in 0..64 {
            let b = vec![0x50u8; n];
            let _ = parse_eocd(&b);
            let _ = parse_zip64_locator(&b);
            let _ = parse_zip64_eocd(&b);
            let _ = parse_central_fixed(&b);
            let _ = parse_local_fixed(&b);
            let _ = parse_descriptor(&b, n % 2 == 0);
            let _ = parse_zip64_extra(&b, true, true, true);
            let _ = eocd_candidates(&b);
        }
        assert!(matches!(
            parse_eocd(&[0; 10]),
            Err(RecordError::Truncated { .. })
        ));
    }

    #[test]
    fn zip64_extra_reads_only_sentinel_fields() {
        let mut extra = Vec::new();
        put16(&mut extra, 0x5455); // another block first
        put16(&mut extra, 1);
        extra.push(0);
        put16(&mut extra, 0x0001);
        put16(&mut extra, 16);
        put64(&mut extra, 7);
        put64(&mut extra, 9);
        let v = parse_zip64_extra(&extra, false, true, true).unwrap();
        assert_eq!(
            v,
            Zip64Values {
                uncompressed: None,
                compressed: Some(7),
                offset: Some(9)
            }
        );
        assert_eq!(
            parse_zip64_extra(&extra, true, true, true),
            Err(RecordError::Zip64Extra)
        );
        assert_eq!(
            parse_zip64_extra(&[], true, false, false),
            Err(RecordError::Zip64Extra)
        );
        assert_eq!(
            parse_zip64_extra(&[1, 0, 9, 0], true, false, false),
            Err(RecordError::ExtraOverrun)
        );
    }

    #[test]
    fn descriptors_of_exact_length_parse_with_or_without_signature() {
        let mut with = Vec::new();
        put32(&mut with, DESCRIPTOR_SIG);
        put32(&mut with, 7);
        put32(&mut with, 5);
        put32(&mut with, 9);
        let d = Descriptor {
            crc32: 7,
            compressed_size: 5,
            uncompressed_size: 9,
        };
        assert_eq!(parse_descriptor(&with, false), Ok(d));
        assert_eq!(parse_descriptor(&with[4..], false), Ok(d));
        assert!(parse_descriptor(&with[..15], false).is_err());
        assert!(parse_descriptor(&with[4..15], false).is_err());
        let mut wide = Vec::new();
        put32(&mut wide, DESCRIPTOR_SIG);
        put32(&mut wide, 7);
        put64(&mut wide, 5);
        put64(&mut wide, 9);
        assert_eq!(parse_descriptor(&wide, true), Ok(d));
        assert!(parse_descriptor(&wide[..23], true).is_err());
    }

    #[test]
    fn any_single_sentinel_asks_for_zip64() {
        let base = Eocd {
            disk: 0,
            cd_disk: 0,
            entries_on_disk: 1,
            entries: 1,
            cd_size: 46,
            cd_offset: 100,
            comment_len: 0,
        };
        assert!(!base.wants_zip64());
        assert!(Eocd {
            entries: SENTINEL16,
            ..base
        }
        .wants_zip64());
        assert!(Eocd {
            cd_size: SENTINEL32,
            ..base
        }
        .wants_zip64());
        assert!(Eocd {
            cd_offset: SENTINEL32,
            ..base
        }
        .wants_zip64());
    }

    #[test]
    fn an_eocd_filling_the_whole_tail_is_found() {
        let mut tail = Vec::new();
        put32(&mut tail, EOCD_SIG);
        tail.extend_from_slice(&[0; 16]);
        put16(&mut tail, 0);
        assert_eq!(tail.len(), EOCD_LEN);
        assert_eq!(eocd_candidates(&tail), vec![0]);
        assert!(eocd_candidates(&tail[..EOCD_LEN - 1]).is_empty());
    }

    #[test]
    fn eocd_candidates_follow_the_comment_rule() {
        let mut tail = vec![0u8; 5];
        let start = tail.len();
        put32(&mut tail, EOCD_SIG);
        tail.extend_from_slice(&[0; 16]);
        put16(&mut tail, 3);
        tail.extend_from_slice(b"abc");
        assert_eq!(eocd_candidates(&tail), vec![start]);
        tail.push(0);
        assert!(eocd_candidates(&tail).is_empty());
    }
}
