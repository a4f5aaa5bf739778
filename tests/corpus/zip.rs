//! A raw ZIP builder for hostile cases: every field of every record can be
//! set to a lie. Nothing here checks anything; that is the point.

use flate2::write::DeflateEncoder;
use flate2::Compression;
use std::io::Write;

pub const LOCAL_SIG: u32 = 0x0403_4b50;
pub const CENTRAL_SIG: u32 = 0x0201_4b50;
pub const EOCD_SIG: u32 = 0x0605_4b50;
pub const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
pub const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
pub const DESCRIPTOR_SIG: u32 = 0x0807_4b50;

pub fn put16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_le_bytes());
}
pub fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}
pub fn put64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}
pub fn set16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn set32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn set64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

pub fn crc(data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(data);
    h.finalize()
}

pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::new(3));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// One entry. Central values are the fields below; `local_*` override the
/// local header; `None` means "same as central".
#[derive(Clone, Debug)]
pub struct Ent {
    pub name: Vec<u8>,
    pub method: u16,
    pub flags: u16,
    pub crc: u32,
    pub csize: u64,
    pub usize: u64,
    /// The bytes stored after the local header (compressed data).
    pub body: Vec<u8>,
    pub local_name: Option<Vec<u8>>,
    pub local_method: Option<u16>,
    pub local_flags: Option<u16>,
    pub local_crc: Option<u32>,
    pub local_csize: Option<u32>,
    pub local_usize: Option<u32>,
    pub local_extra: Vec<u8>,
    /// Central extra written verbatim (after the ZIP64 extra, if any).
    pub central_extra: Vec<u8>,
    /// Put the sizes and offset in a ZIP64 extra with sentinels in the
    /// central record.
    pub zip64: bool,
    /// Bytes written after the data (the data descriptor).
    pub descriptor: Vec<u8>,
    /// Central local-header offset to write instead of the real one.
    pub offset: Option<u64>,
    /// Don't write a local header and body (the central record points elsewhere).
    pub no_local: bool,
}

impl Ent {
    /// A stored entry without a descriptor (flags 0).
    pub fn stored(name: &str, data: &[u8]) -> Ent {
        Ent {
            name: name.as_bytes().to_vec(),
            method: 0,
            flags: 0,
            crc: crc(data),
            csize: data.len() as u64,
            usize: data.len() as u64,
            body: data.to_vec(),
            local_name: None,
            local_method: None,
            local_flags: None,
            local_crc: None,
            local_csize: None,
            local_usize: None,
            local_extra: Vec::new(),
            central_extra: Vec::new(),
            zip64: false,
            descriptor: Vec::new(),
            offset: None,
            no_local: false,
        }
    }

    /// A deflated entry without a descriptor.
    pub fn deflated(name: &str, data: &[u8]) -> Ent {
        let body = deflate(data);
        Ent {
            method: 8,
            csize: body.len() as u64,
            body,
            ..Ent::stored(name, data)
        }
    }

    /// Turns on the server's layout: flag bit 3, zeroed local CRC and
    /// sizes, a signed 16-byte descriptor after the data.
    pub fn with_descriptor(mut self) -> Ent {
        self.flags |= 0x0008;
        self.local_crc = Some(0);
        self.local_csize = Some(0);
        self.local_usize = Some(0);
        let mut d = Vec::new();
        put32(&mut d, DESCRIPTOR_SIG);
        put32(&mut d, self.crc);
        put32(&mut d, self.csize as u32);
        put32(&mut d, self.usize as u32);
        self.descriptor = d;
        self
    }
}

/// Where the records landed, for patching.
#[derive(Clone, Debug, Default)]
pub struct Built {
    pub bytes: Vec<u8>,
    pub local: Vec<usize>,
    pub central: Vec<usize>,
    pub cd_offset: usize,
    pub cd_size: usize,
    pub zip64_eocd: Option<usize>,
    pub locator: Option<usize>,
    pub eocd: usize,
}

/// End-record options.
#[derive(Clone, Debug, Default)]
pub struct End {
    /// Write ZIP64 end records with sentinels in the classic EOCD (the
    /// Lumiverse 1.1 layout).
    pub zip64: bool,
    /// Override the declared entry count (ZIP64 record if `zip64`, else classic).
    pub entries: Option<u64>,
    /// Override the declared directory size.
    pub cd_size: Option<u64>,
    /// Override the declared directory offset.
    pub cd_offset: Option<u64>,
    /// The classic EOCD comment.
    pub comment: Vec<u8>,
    /// Override the comment length field.
    pub comment_len: Option<u16>,
}

pub fn build(entries: &[Ent], end: &End) -> Built {
    let mut b = Vec::new();
    let mut out = Built::default();
    for e in entries {
        if e.no_local {
            out.local.push(usize::MAX);
            continue;
        }
        out.local.push(b.len());
        let lname = e.local_name.clone().unwrap_or_else(|| e.name.clone());
        put32(&mut b, LOCAL_SIG);
        put16(&mut b, if e.zip64 { 45 } else { 20 });
        put16(&mut b, e.local_flags.unwrap_or(e.flags));
        put16(&mut b, e.local_method.unwrap_or(e.method));
        put16(&mut b, 0x6000); // time
        put16(&mut b, 0x5b21); // date
        put32(&mut b, e.local_crc.unwrap_or(e.crc));
        put32(&mut b, e.local_csize.unwrap_or(e.csize as u32));
        put32(&mut b, e.local_usize.unwrap_or(e.usize as u32));
        put16(&mut b, lname.len() as u16);
        put16(&mut b, e.local_extra.len() as u16);
        b.extend_from_slice(&lname);
        b.extend_from_slice(&e.local_extra);
        b.extend_from_slice(&e.body);
        b.extend_from_slice(&e.descriptor);
    }
    let cd_start = b.len();
    out.cd_offset = cd_start;
    for (i, e) in entries.iter().enumerate() {
        out.central.push(b.len());
        let offset = e.offset.unwrap_or(out.local[i] as u64);
        let mut extra = Vec::new();
        if e.zip64 {
            put16(&mut extra, 1);
            put16(&mut extra, 24);
            put64(&mut extra, e.usize);
            put64(&mut extra, e.csize);
            put64(&mut extra, offset);
        }
        extra.extend_from_slice(&e.central_extra);
        let (c32, u32_, o32) = if e.zip64 {
            (u32::MAX, u32::MAX, u32::MAX)
        } else {
            (e.csize as u32, e.usize as u32, offset as u32)
        };
        put32(&mut b, CENTRAL_SIG);
        put16(&mut b, 0x032D);
        put16(&mut b, if e.zip64 { 45 } else { 20 });
        put16(&mut b, e.flags);
        put16(&mut b, e.method);
        put16(&mut b, 0x6000);
        put16(&mut b, 0x5b21);
        put32(&mut b, e.crc);
        put32(&mut b, c32);
        put32(&mut b, u32_);
        put16(&mut b, e.name.len() as u16);
        put16(&mut b, extra.len() as u16);
        put16(&mut b, 0); // comment
        put16(&mut b, 0); // disk
        put16(&mut b, 0); // internal attr
        put32(&mut b, (0o100644 << 16) | 0x20);
        put32(&mut b, o32);
        b.extend_from_slice(&e.name);
        b.extend_from_slice(&extra);
    }
    out.cd_size = b.len() - cd_start;
    let n = end.entries.unwrap_or(entries.len() as u64);
    let size = end.cd_size.unwrap_or(out.cd_size as u64);
    let off = end.cd_offset.unwrap_or(cd_start as u64);
    if end.zip64 {
        let z = b.len();
        out.zip64_eocd = Some(z);
        put32(&mut b, ZIP64_EOCD_SIG);
        put64(&mut b, 44);
        put16(&mut b, 45);
        put16(&mut b, 45);
        put32(&mut b, 0);
        put32(&mut b, 0);
        put64(&mut b, n);
        put64(&mut b, n);
        put64(&mut b, size);
        put64(&mut b, off);
        out.locator = Some(b.len());
        put32(&mut b, ZIP64_LOCATOR_SIG);
        put32(&mut b, 0);
        put64(&mut b, z as u64);
        put32(&mut b, 1);
    }
    out.eocd = b.len();
    put32(&mut b, EOCD_SIG);
    put16(&mut b, 0);
    put16(&mut b, 0);
    if end.zip64 {
        put16(&mut b, 0xFFFF);
        put16(&mut b, 0xFFFF);
        put32(&mut b, u32::MAX);
        put32(&mut b, u32::MAX);
    } else {
        put16(&mut b, n as u16);
        put16(&mut b, n as u16);
        put32(&mut b, size as u32);
        put32(&mut b, off as u32);
    }
    put16(&mut b, end.comment_len.unwrap_or(end.comment.len() as u16));
    b.extend_from_slice(&end.comment);
    out.bytes = b;
    out
}
