//! The hostile corpus: every case is built in memory from code (no binary
//! blobs), with the verdict lvbak must reach and, where the format document
//! says, what the Lumiverse 1.1 server does with the same bytes.
//!
//! Used by `tests/corpus.rs` (runs every case under time and heap guards)
//! and by `examples/conformance.rs` (writes the conformance kit).
//!
//! A verdict is `accept` or `reject` with a code: lvbak's
//! [`ArchiveError::code`] refined by the variant (and field) of the inner
//! error, e.g. `bad_name.DotSegment`, `container.LocalMismatch.name`,
//! `ticket.binding_mismatch`. See `spec/conformance/README.md`.
#![allow(dead_code)]

pub mod bomb;
pub mod zip;

use std::io::Cursor;

use lvbak::archive::{verify, Depth};
use lvbak::container::{check_descriptor, check_local, ContainerError};
use lvbak::envelope::{self, EnvelopeError, EnvelopeVersion, SecretKey, SecretSet, Ticket};
use lvbak::ndjson::LineError;
use lvbak::{Archive, ArchiveError, EntryName, Limits};
use serde_json::{json, Value};

use zip::{build, put32, set16, set32, set64, Built, End, Ent};

/// The archive id of every generated archive.
pub const ID: &str = "0c0ffee0-1111-4222-8333-444455556666";

/// What lvbak must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Accept,
    Reject(&'static str),
}

impl Expect {
    pub fn outcome(&self) -> &'static str {
        match self {
            Expect::Accept => "accept",
            Expect::Reject(_) => "reject",
        }
    }
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Expect::Accept => None,
            Expect::Reject(c) => Some(c),
        }
    }
}

/// One hostile (or deliberately valid) input.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub family: &'static str,
    pub description: String,
    pub archive: Vec<u8>,
    /// A decryption ticket to present with the archive.
    pub ticket: Option<Vec<u8>>,
    pub expect: Expect,
    /// What the Lumiverse 1.1 server does, from LUMIVERSE-1.1-FORMAT.md
    /// (`accept`, `reject`, `reject:<code>`, or `unknown`), with a note.
    pub server: &'static str,
    /// Too big for the committed kit (materialised on demand only).
    pub large: bool,
    /// Listed in the conformance kit. Cases whose bytes depend on lvbak's
    /// writer (which may change between versions) stay test-only, so the
    /// kit's pinned digests change only when the generator does.
    pub in_kit: bool,
}

// ---------------------------------------------------------------- codes --

fn ident(debug: &str) -> &str {
    let end = debug
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(debug.len());
    &debug[..end]
}

fn slug(field: &str) -> String {
    field
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The refined code of a container error.
pub fn container_code(c: &ContainerError) -> String {
    match c {
        ContainerError::SizeMismatch { .. } => "size_mismatch".into(),
        ContainerError::CrcMismatch { .. } => "crc_mismatch".into(),
        ContainerError::DigestMismatch { .. } => "digest_mismatch".into(),
        ContainerError::LocalMismatch { field, .. } => {
            format!("container.LocalMismatch.{}", slug(field))
        }
        ContainerError::DescriptorMismatch { field, .. } => {
            format!("container.DescriptorMismatch.{}", slug(field))
        }
        ContainerError::Zip64Mismatch { field, .. } => {
            format!("container.Zip64Mismatch.{}", slug(field))
        }
        ContainerError::Record { source, .. } => {
            format!("container.Record.{}", ident(&format!("{source:?}")))
        }
        other => format!("container.{}", ident(&format!("{other:?}"))),
    }
}

/// The refined code of an archive error.
pub fn archive_code(e: &ArchiveError) -> String {
    match e {
        ArchiveError::Container(c) => container_code(c),
        ArchiveError::Name(n) => format!("bad_name.{}", ident(&format!("{:?}", n.rule))),
        ArchiveError::Manifest(m) => format!("bad_manifest.{}", ident(&format!("{m:?}"))),
        ArchiveError::EntryTooLarge { .. }
        | ArchiveError::TooManyTextEntries { .. }
        | ArchiveError::TotalTooLarge { .. } => format!("limit.{}", ident(&format!("{e:?}"))),
        ArchiveError::Line {
            source: LineError::TooLong { .. },
            ..
        } => "line_too_long".into(),
        ArchiveError::Line { source, .. } => {
            format!("bad_line.{}", ident(&format!("{source:?}")))
        }
        other => other.code().into(),
    }
}

fn envelope_code(e: &EnvelopeError) -> String {
    match e {
        EnvelopeError::Ticket(t) => format!("ticket.{}", t.code()),
        other => format!("envelope.{}", ident(&format!("{other:?}"))),
    }
}

// ------------------------------------------------------------- verdicts --

/// The first problem lvbak finds reading everything: open, inspect, every
/// entry's bytes, every data descriptor, then the ticket (if any).
pub fn read_path(archive: &[u8], ticket: Option<&[u8]>) -> Result<(), String> {
    let ac = |e: ArchiveError| archive_code(&e);
    let mut a = Archive::open(Cursor::new(archive), Limits::default()).map_err(ac)?;
    lvbak::inspect::inspect(&mut a).map_err(ac)?;
    lvbak::inspect::secrets_summary(&mut a).map_err(ac)?;
    let ndjson: Vec<EntryName> = a
        .entries()
        .filter(|e| e.is_ndjson())
        .map(|e| e.name())
        .collect();
    for name in ndjson {
        let mut rows = a.ndjson(name).map_err(ac)?;
        while rows.next_line().map_err(ac)?.is_some() {}
    }
    for i in 0..a.entries().len() {
        a.entry_reader(i)
            .map_err(ac)?
            .drain()
            .map_err(|e| container_code(&e))?;
    }
    let secrets = if let Some(t) = ticket {
        let cap = a.limits().max_secrets_index_bytes;
        let index = a.read_small(&EntryName::SecretsIndex, cap).map_err(ac)?;
        let records = a
            .read_small(&EntryName::SecretsEnvelope, cap)
            .map_err(ac)?
            .unwrap_or_default();
        Some((t, index, records, a.manifest().archive_id.clone()))
    } else {
        None
    };
    let centrals: Vec<_> = a.entries().map(|e| e.central()).collect();
    let mut r = a.into_inner();
    for c in &centrals {
        let info = check_local(&mut r, c).map_err(|e| container_code(&e))?;
        check_descriptor(&mut r, c, info).map_err(|e| container_code(&e))?;
    }
    if let Some((t, index, records, id)) = secrets {
        let t = Ticket::parse(t).map_err(|e| format!("ticket.{}", e.code()))?;
        let opened =
            envelope::open(&t, &id, index.as_deref(), &records).map_err(|e| envelope_code(&e))?;
        opened.into_strict().map_err(|e| envelope_code(&e))?;
    }
    Ok(())
}

/// lvbak's verdict on a case: the read path's first problem, else deep
/// verification's first problem (its coarse code), else accept.
pub fn verdict(case: &Case) -> Result<(), String> {
    read_path(&case.archive, case.ticket.as_deref())?;
    let report = verify(
        Cursor::new(&case.archive[..]),
        Limits::default(),
        Depth::Deep,
    );
    match report.problems.first() {
        Some(p) => Err(p.code.to_string()),
        None => Ok(()),
    }
}

// ------------------------------------------------------------- builders --

fn manifest_json(extra: &[(&str, Value)]) -> Vec<u8> {
    let mut m = lvbak::Manifest::new(ID, 1_795_522_458);
    for (k, v) in extra {
        m.raw.insert((*k).to_owned(), v.clone());
    }
    lvbak::manifest::to_js_pretty(&Value::Object(m.raw))
}

const ROWS: &str = "{\"id\":\"c1\",\"name\":\"one\"}\n{\"id\":\"c2\",\"name\":\"two\"}\n";

/// manifest, one table, two avatar files: flags 0, no descriptors.
fn plain_entries() -> Vec<Ent> {
    vec![
        Ent::deflated("manifest.json", &manifest_json(&[])),
        Ent::deflated("database/chats.ndjson", ROWS.as_bytes()),
        Ent::stored("files/avatars/a.png", b"AAAAAAAA"),
        Ent::stored("files/avatars/b.png", b"BBBBBBBB"),
    ]
}

/// The same entries in the Lumiverse 1.1 layout (descriptors everywhere).
fn server_entries() -> Vec<Ent> {
    plain_entries()
        .into_iter()
        .map(Ent::with_descriptor)
        .collect()
}

fn plain() -> Built {
    build(&plain_entries(), &End::default())
}

fn server_end() -> End {
    End {
        zip64: true,
        ..End::default()
    }
}

fn server() -> Built {
    build(&server_entries(), &server_end())
}

/// `plain_entries` with entry `i` replaced.
fn with_entry(i: usize, e: Ent) -> Vec<u8> {
    let mut v = plain_entries();
    v[i] = e;
    build(&v, &End::default()).bytes
}

/// `plain_entries` plus extra entries.
fn plus(extra: Vec<Ent>) -> Vec<u8> {
    let mut v = plain_entries();
    v.extend(extra);
    build(&v, &End::default()).bytes
}

fn manifest_case(body: &[u8]) -> Vec<u8> {
    with_entry(0, Ent::deflated("manifest.json", body))
}

fn table_case(body: &[u8], manifest: Option<Vec<u8>>) -> Vec<u8> {
    let mut v = plain_entries();
    if let Some(m) = manifest {
        v[0] = Ent::deflated("manifest.json", &m);
    }
    v[1] = Ent::deflated("database/chats.ndjson", body);
    build(&v, &End::default()).bytes
}

fn sealed_v1() -> envelope::Sealed {
    let mut set = SecretSet::new();
    set.insert("openai", "sk-test-1");
    set.insert("anthropic", "sk-ant-2");
    envelope::seal_deterministic(
        EnvelopeVersion::V1,
        ID,
        &set,
        1_795_522_459,
        &SecretKey::from_bytes([7u8; 32]),
        &[[1u8; 12], [2u8; 12]],
    )
    .unwrap()
}

fn secrets_archive(index: &[u8], records: &[u8]) -> Vec<u8> {
    plus(vec![
        Ent::deflated("secrets/index.json", index),
        Ent::deflated("secrets/encrypted.ndjson", records),
    ])
}

fn ticket_value(s: &envelope::Sealed) -> serde_json::Map<String, Value> {
    match serde_json::from_slice::<Value>(&s.ticket.to_json()).unwrap() {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn ticket_bytes(m: serde_json::Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec_pretty(&Value::Object(m)).unwrap()
}

/// Nested arrays `depth` deep around `inner`.
fn nested(depth: usize, inner: &str) -> String {
    let mut s = String::with_capacity(depth * 2 + inner.len());
    s.extend(std::iter::repeat_n('[', depth));
    s.push_str(inner);
    s.extend(std::iter::repeat_n(']', depth));
    s
}

/// A deflated table whose single row is `len` bytes long.
fn long_row(len: usize) -> Vec<u8> {
    let head = "{\"id\":\"x\",\"s\":\"";
    let tail = "\"}";
    let mut row = Vec::with_capacity(len + 1);
    row.extend_from_slice(head.as_bytes());
    row.resize(len - tail.len(), b'a');
    row.extend_from_slice(tail.as_bytes());
    row.push(b'\n');
    row
}

// ---------------------------------------------------------------- cases --

struct Cases(Vec<Case>);

impl Cases {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        family: &'static str,
        name: &str,
        description: &str,
        archive: Vec<u8>,
        expect: Expect,
        server: &'static str,
    ) {
        assert!(
            !self.0.iter().any(|c| c.name == name),
            "duplicate case name {name}"
        );
        self.0.push(Case {
            name: name.to_owned(),
            family,
            description: description.to_owned(),
            archive,
            ticket: None,
            expect,
            server,
            large: false,
            in_kit: true,
        });
    }
    fn last(&mut self) -> &mut Case {
        self.0.last_mut().unwrap()
    }
}

use Expect::{Accept, Reject};

/// Every case, in a stable order.
pub fn cases() -> Vec<Case> {
    let mut c = Cases(Vec::new());
    valid(&mut c);
    names(&mut c);
    overlap(&mut c);
    bombs(&mut c);
    mismatch(&mut c);
    duplicates(&mut c);
    zip64(&mut c);
    eocd(&mut c);
    truncation(&mut c);
    integrity(&mut c);
    manifests(&mut c);
    ndjson(&mut c);
    tickets(&mut c);
    c.0
}

fn valid(c: &mut Cases) {
    c.add(
        "valid",
        "valid-plain",
        "Manifest, one table, two stored files; no descriptors, classic end record.",
        plain().bytes,
        Accept,
        "accept",
    );
    c.add(
        "valid",
        "valid-server-layout",
        "The Lumiverse 1.1 layout: data descriptors on every entry, zeroed local CRC and sizes, ZIP64 end records with sentinels in the classic EOCD.",
        server().bytes,
        Accept,
        "accept",
    );
    let m = lvbak::Manifest::new(ID, 1_795_522_458);
    let opts = lvbak::WriteOptions {
        deterministic: true,
        ..lvbak::WriteOptions::default()
    };
    let mut w = lvbak::ArchiveWriter::new(Vec::new(), &m, opts).unwrap();
    let mut t = w.table("chats").unwrap();
    t.write_row(r#"{"id":"c1","name":"one"}"#).unwrap();
    t.finish().unwrap();
    w.add_file(lvbak::Bucket::Avatars, "a.png", &b"AAAA"[..])
        .unwrap();
    c.add(
        "valid",
        "valid-lvbak-writer",
        "Written by lvbak's own ArchiveWriter (trailer with SHA-256 digests).",
        w.finish().unwrap().0,
        Accept,
        "accept",
    );
    c.last().in_kit = false;
    let mut unsigned = server_entries();
    for e in &mut unsigned {
        e.descriptor.drain(..4);
    }
    c.add(
        "valid",
        "valid-unsigned-descriptors",
        "Data descriptors without the optional PK\\x07\\x08 signature (APPNOTE 4.3.9.3).",
        build(&unsigned, &server_end()).bytes,
        Accept,
        "accept",
    );
    let mut b = plain();
    let n = b.bytes.len();
    // Comment holding a decoy EOCD signature whose comment length does not reach EOF.
    let mut comment = Vec::new();
    put32(&mut comment, zip::EOCD_SIG);
    comment.extend_from_slice(&[0u8; 16]);
    comment.extend_from_slice(&500u16.to_le_bytes());
    comment.extend_from_slice(b"decoy");
    set16(&mut b.bytes, n - 2, comment.len() as u16);
    b.bytes.extend_from_slice(&comment);
    c.add(
        "valid",
        "valid-decoy-eocd-in-comment",
        "The archive comment holds an EOCD signature whose own comment length does not land at end of file: only one candidate fits, so it is unambiguous.",
        b.bytes,
        Accept,
        "accept",
    );
}

fn names(c: &mut Cases) {
    let cases: [(&str, &str, &str, &'static str); 16] = [
        (
            "slip-dotdot",
            "files/avatars/../../../etc/passwd",
            "A '..' segment under files/.",
            "bad_name.DotSegment",
        ),
        (
            "slip-dotdot-table",
            "database/../../x.ndjson",
            "A '..' segment under database/.",
            "bad_name.DotSegment",
        ),
        (
            "slip-dotdot-backslash",
            "files\\avatars\\..\\..\\x.png",
            "'..' segments written with backslashes.",
            "bad_name.DotSegment",
        ),
        (
            "slip-dotdot-theme",
            "files/theme-assets/b1/../../../../x.css",
            "'..' inside a theme-asset path, whose pattern allows '/' and '.'.",
            "bad_name.DotSegment",
        ),
        (
            "slip-dot-segment",
            "files/theme-assets/b1/./x.css",
            "A '.' segment.",
            "bad_name.DotSegment",
        ),
        (
            "slip-absolute",
            "/etc/cron.d/x",
            "An absolute path.",
            "bad_name.Absolute",
        ),
        (
            "slip-absolute-allowed-prefix",
            "/files/avatars/a.png",
            "An absolute path that is otherwise an allowed name.",
            "bad_name.Absolute",
        ),
        (
            "slip-leading-backslash",
            "\\files\\avatars\\x.png",
            "A lone leading backslash: reads as '/files/...' and fails the allowlist.",
            "bad_name.Unknown",
        ),
        (
            "slip-drive-letter",
            "C:/Windows/x.png",
            "A drive letter.",
            "bad_name.DriveLetter",
        ),
        (
            "slip-drive-letter-relative",
            "c:files/avatars/x.png",
            "A drive-relative path.",
            "bad_name.DriveLetter",
        ),
        (
            "slip-unc",
            "\\\\server\\share\\files\\avatars\\x.png",
            "A UNC path.",
            "bad_name.Unc",
        ),
        (
            "slip-control-nul",
            "files/avatars/x.png\u{0}.sh",
            "A NUL byte in the name (C string truncation).",
            "bad_name.ControlCharacter",
        ),
        (
            "slip-control-newline",
            "files/avatars/x\n.png",
            "A line feed in the name.",
            "bad_name.ControlCharacter",
        ),
        (
            "slip-directory",
            "files/avatars/",
            "A directory entry.",
            "bad_name.Directory",
        ),
        (
            "slip-unknown-prefix",
            ".ssh/authorized_keys",
            "A name outside every allowed prefix.",
            "bad_name.Unknown",
        ),
        (
            "slip-table-name",
            "database/Chats.ndjson",
            "A table name outside ^[a-z_]+$.",
            "bad_name.TableName",
        ),
    ];
    for (name, entry, desc, code) in cases {
        c.add(
            "zip-slip",
            name,
            &format!("{desc} Entry name {entry:?}."),
            plus(vec![Ent::stored(entry, b"x")]),
            Reject(code),
            "reject",
        );
    }
    let long = format!("files/avatars/{}.png", "a".repeat(4090));
    c.add(
        "zip-slip",
        "slip-name-too-long",
        "A 4,104-byte name (over 4,096 UTF-16 code units).",
        plus(vec![Ent::stored(&long, b"x")]),
        Reject("bad_name.TooLong"),
        "reject",
    );
    let mut e = Ent::stored("files/avatars/x.png", b"x");
    e.name = b"files/avatars/\xff\xfe.png".to_vec();
    c.add(
        "zip-slip",
        "slip-name-not-utf8",
        "A name with bytes that are not UTF-8 (0xFF 0xFE).",
        plus(vec![e]),
        Reject("container.NameNotUtf8"),
        "reject: decoded as UTF-8 with U+FFFD, which fails the allowlist",
    );
    c.add(
        "zip-slip",
        "slip-backslash-accepted",
        "'files\\avatars\\c.png' reads as files/avatars/c.png and is accepted, as the server does.",
        plus(vec![Ent::stored("files\\avatars\\c.png", b"C")]),
        Accept,
        "accept",
    );
}

fn overlap(c: &mut Cases) {
    // 2,000 central records, different valid names, one local header and body.
    let body = vec![b'Z'; 4096];
    let mut v = plain_entries();
    let first = Ent::stored("files/avatars/z0000.png", &body);
    v.push(first.clone());
    for i in 1..1000 {
        let mut e = first.clone();
        e.name = format!("files/avatars/z{i:04}.png").into_bytes();
        e.no_local = true;
        v.push(e);
    }
    // Offsets are only known after the first pass.
    let pass = build(&v, &End::default());
    let shared = pass.local[4] as u64;
    for e in v.iter_mut().skip(5) {
        e.offset = Some(shared);
    }
    c.add(
        "overlap",
        "overlap-shared-body",
        "1,000 central records with distinct names (all of one length) pointing at one local header and 4 KiB body: 4 MiB of output from 4 KiB.",
        build(&v, &End::default()).bytes,
        Reject("container.Overlap"),
        "reject: the local name differs from all but one central record",
    );
    let mut v = plain_entries();
    let first = Ent::stored("files/avatars/z.png", &body);
    v.push(first.clone());
    for _ in 1..1000 {
        let mut e = first.clone();
        e.no_local = true;
        e.offset = Some(shared);
        v.push(e);
    }
    c.add(
        "overlap",
        "overlap-shared-body-same-name",
        "1,000 central records with the same name sharing one local header and body.",
        build(&v, &End::default()).bytes,
        Reject("duplicate_name"),
        "accept: duplicates are not rejected (first file copy wins, but every record is read)",
    );
    // Entry 3's central offset points inside entry 2's data (a second local header hidden there).
    let mut v = plain_entries();
    let mut inner = Vec::new();
    let hidden = Ent::stored("files/avatars/h.png", b"HIDDEN");
    let hb = build(std::slice::from_ref(&hidden), &End::default());
    inner.extend_from_slice(&hb.bytes[..hb.cd_offset]);
    v[3] = Ent::stored("files/avatars/b.png", &inner);
    let pass = build(&v, &End::default());
    let mut h = hidden.clone();
    h.no_local = true;
    h.offset = Some((pass.local[3] + 30 + "files/avatars/b.png".len()) as u64);
    v.push(h);
    c.add(
        "overlap",
        "overlap-nested-local-header",
        "A valid entry hidden inside another entry's stored data, listed in the central directory.",
        build(&v, &End::default()).bytes,
        Reject("container.Overlap"),
        "accept: the server has no overlap check",
    );
}

fn bombs(c: &mut Cases) {
    // 1 GiB of zeros in ~1 MiB.
    let matches = 4_161_790usize;
    let stream = bomb::zeros_stream(matches);
    let real = 1 + 258 * matches as u64;
    let name = "files/images/0c0ffee0-1111-4222-8333-444455556666.png";
    let mut e = Ent::stored(name, b"");
    e.method = 8;
    e.body = stream.clone();
    e.csize = stream.len() as u64;
    e.usize = 4096;
    e.crc = 0;
    c.add(
        "bomb",
        "bomb-ratio-lying-size",
        &format!("A deflate stream of {} bytes that inflates to {real} zero bytes, declared as 4,096 bytes: reading stops after 4,097.", stream.len()),
        plus(vec![e.clone()]),
        Reject("size_mismatch"),
        "reject: decompressed byte count differs (after inflating it all)",
    );
    c.last().large = true;
    let mut m = Ent::deflated("manifest.json", b"");
    m.body = stream.clone();
    m.csize = stream.len() as u64;
    m.usize = real;
    m.crc = 0;
    c.add(
        "bomb",
        "bomb-ratio-manifest",
        "manifest.json declares and holds 1 GiB of zeros (from ~1 MiB): refused from its declared size before any inflation.",
        with_entry(0, m),
        Reject("limit.EntryTooLarge"),
        "reject: manifest over 16 MiB",
    );
    c.last().large = true;
    // Small, committed variant: 64 KiB of deflate -> 16 MiB of zeros, declared 100 bytes.
    let small = bomb::zeros_stream(65_000 * 4);
    let mut e2 = e.clone();
    e2.body = small.clone();
    e2.csize = small.len() as u64;
    e2.usize = 100;
    c.add(
        "bomb",
        "bomb-ratio-small",
        &format!(
            "{} bytes of deflate inflating to {} zeros, declared as 100 bytes.",
            small.len(),
            1 + 258 * 260_000u64
        ),
        plus(vec![e2]),
        Reject("size_mismatch"),
        "reject",
    );
    let mut t = Ent::deflated("database/chats.ndjson", b"");
    t.body = small.clone();
    t.csize = small.len() as u64;
    t.usize = 1 + 258 * 260_000;
    t.crc = 0;
    c.add(
        "bomb",
        "bomb-ratio-table-zeros",
        "A table whose honest declared size is 64 MiB of NUL bytes: the first line is over the 4 MiB cap, found without holding more than the cap.",
        with_entry(1, t),
        Reject("line_too_long"),
        "reject: line over 4 MiB",
    );
    // Declared totals over the limits.
    let mut big = Ent::stored("files/avatars/big.png", b"x");
    big.zip64 = true;
    big.usize = 21 << 30;
    big.csize = 1;
    c.add(
        "bomb",
        "bomb-declared-total",
        "A ZIP64 extra declaring a 21 GiB file (over the 20 GiB total cap).",
        plus(vec![big]),
        Reject("limit.TotalTooLarge"),
        "reject: declared total over 20 GiB",
    );
    let mut v = plain_entries();
    for i in 0..1100 {
        v.push(Ent::deflated(
            &format!(
                "lancedb/t{}.ndjson",
                "abcdefghijklmnopqrstuvwxyz"
                    .chars()
                    .nth(i % 26)
                    .unwrap()
                    .to_string()
                    .repeat(i / 26 + 1)
            ),
            b"",
        ));
    }
    c.add(
        "bomb",
        "bomb-text-entries",
        "1,100 lancedb/ entries: over the cap of 1,024 text entries.",
        build(&v, &End::default()).bytes,
        Reject("limit.TooManyTextEntries"),
        "reject",
    );
    c.last().large = true;
}

fn mismatch(c: &mut Cases) {
    let p = plain_entries;
    let mut e = p()[2].clone();
    e.local_name = Some(b"files/avatars/q.png".to_vec());
    c.add(
        "mismatch",
        "mismatch-name",
        "The local header names another file (same length).",
        with_entry(2, e),
        Reject("container.LocalMismatch.name"),
        "reject",
    );
    let mut e = p()[1].clone();
    e.local_method = Some(0);
    c.add(
        "mismatch",
        "mismatch-method",
        "Local method 0, central method 8.",
        with_entry(1, e),
        Reject("container.LocalMismatch.method"),
        "reject",
    );
    let mut e = p()[2].clone();
    e.local_flags = Some(0x0800);
    c.add(
        "mismatch",
        "mismatch-flags-utf8",
        "Local flags set bit 11 (UTF-8), central does not.",
        with_entry(2, e),
        Reject("container.LocalMismatch.flags"),
        "accept: only bit 0 is compared",
    );
    let mut e = p()[2].clone();
    e.local_flags = Some(0x0001);
    c.add(
        "mismatch",
        "mismatch-flags-encrypted",
        "Local flags set bit 0 (encrypted), central does not.",
        with_entry(2, e),
        Reject("container.LocalMismatch.flags"),
        "reject",
    );
    let mut e = p()[2].clone();
    e.local_crc = Some(0xDEAD_BEEF);
    c.add(
        "mismatch",
        "mismatch-crc",
        "No descriptor; the local CRC-32 differs from the central one.",
        with_entry(2, e),
        Reject("container.LocalMismatch.crc_32"),
        "accept: CRCs are never checked",
    );
    let mut e = p()[2].clone();
    e.local_csize = Some(4);
    c.add(
        "mismatch",
        "mismatch-compressed-size",
        "No descriptor; the local compressed size differs.",
        with_entry(2, e),
        Reject("container.LocalMismatch.compressed_size"),
        "accept: sizes come from the central directory",
    );
    let mut e = p()[2].clone();
    e.local_usize = Some(9);
    c.add(
        "mismatch",
        "mismatch-uncompressed-size",
        "No descriptor; the local uncompressed size differs.",
        with_entry(2, e),
        Reject("container.LocalMismatch.uncompressed_size"),
        "accept: sizes come from the central directory",
    );
    let mut e = p()[2].clone().with_descriptor();
    e.local_crc = Some(0x1234_5678);
    e.local_csize = Some(77);
    c.add(
        "mismatch",
        "mismatch-zeroed-fields-with-descriptor",
        "With a descriptor, the local CRC and sizes are not compared (they may hold anything).",
        with_entry(2, e),
        Accept,
        "accept",
    );
    let mut e = p()[2].clone();
    e.local_extra = vec![0x99, 0x99, 200, 0];
    c.add("mismatch", "mismatch-local-extra-overrun", "A local extra area of 4 bytes whose one block claims 200 bytes: like the server, lvbak skips the local extra by its declared area length and does not parse its blocks unless a sentinel needs the ZIP64 one.", with_entry(2, e), Accept, "accept: local extras are skipped by length");
}

fn duplicates(c: &mut Cases) {
    c.add(
        "duplicate",
        "dup-exact",
        "files/avatars/a.png twice.",
        plus(vec![Ent::stored("files/avatars/a.png", b"EVIL")]),
        Reject("duplicate_name"),
        "accept: the first file copy wins",
    );
    c.add(
        "duplicate",
        "dup-backslash-twin",
        "files/avatars/a.png and files\\avatars\\a.png.",
        plus(vec![Ent::stored("files\\avatars\\a.png", b"EVIL")]),
        Reject("duplicate_name"),
        "accept: the first file copy wins",
    );
    c.add("duplicate", "dup-case-twin", "files/avatars/a.png and files/avatars/A.png: distinct names on case-sensitive disks, one file on case-insensitive ones; lvbak refuses them (Limits::allow_case_twins reads them).", plus(vec![Ent::stored("files/avatars/A.png", b"EVIL")]), Reject("case_twin"), "accept: exclusive create keeps the first copy on a case-insensitive disk");
    c.add(
        "duplicate",
        "dup-manifest",
        "Two manifest.json entries (the second says producer \"evil\").",
        plus(vec![Ent::deflated(
            "manifest.json",
            br#"{"schemaVersion":1,"producer":"evil"}"#,
        )]),
        Reject("duplicate_name"),
        "accept: the first manifest.json wins",
    );
    c.add(
        "duplicate",
        "dup-table",
        "database/chats.ndjson twice.",
        plus(vec![Ent::deflated(
            "database/chats.ndjson",
            b"{\"id\":\"evil\"}\n",
        )]),
        Reject("duplicate_name"),
        "accept: the last table entry wins",
    );
}

fn zip64(c: &mut Cases) {
    let s = server();
    let z = s.zip64_eocd.unwrap();
    let n = s.central.len() as u64;
    let patch = |at: usize, v: u64| {
        let mut b = s.bytes.clone();
        set64(&mut b, at, v);
        b
    };
    c.add(
        "zip64",
        "zip64-count-plus-one",
        "The ZIP64 record declares one entry more than the directory holds.",
        patch(z + 32, n + 1),
        Reject("container.CentralDirectoryMismatch"),
        "reject",
    );
    c.add(
        "zip64",
        "zip64-count-minus-one",
        "The ZIP64 record declares one entry less: bytes are left over in the directory.",
        patch(z + 32, n - 1),
        Reject("container.CentralDirectoryMismatch"),
        "unknown: the walk stops after the declared count",
    );
    c.add(
        "zip64",
        "zip64-count-huge",
        "The ZIP64 record declares 2^40 entries.",
        patch(z + 32, 1 << 40),
        Reject("container.TooManyEntries"),
        "reject: over 500,000 entries",
    );
    c.add(
        "zip64",
        "zip64-size-huge",
        "The ZIP64 record declares a 2^62-byte directory.",
        patch(z + 40, 1 << 62),
        Reject("container.CentralDirectoryTooLarge"),
        "reject",
    );
    c.add(
        "zip64",
        "zip64-size-plus-8",
        "The directory size is 8 bytes too large (runs into the end records).",
        patch(z + 40, s.cd_size as u64 + 8),
        Reject("container.CentralDirectoryOutOfBounds"),
        "unknown",
    );
    c.add(
        "zip64",
        "zip64-offset-past-end",
        "The directory offset points past end of file.",
        patch(z + 48, 1 << 33),
        Reject("container.CentralDirectoryOutOfBounds"),
        "reject",
    );
    c.add(
        "zip64",
        "zip64-offset-overflow",
        "Offset + size overflows 64 bits.",
        patch(z + 48, u64::MAX - 4),
        Reject("container.CentralDirectoryOutOfBounds"),
        "unknown",
    );
    c.add(
        "zip64",
        "zip64-offset-into-data",
        "The directory offset points at the first local header.",
        patch(z + 48, 0),
        Reject("container.Record.Signature"),
        "reject",
    );
    let loc = s.locator.unwrap();
    c.add(
        "zip64",
        "zip64-locator-outside",
        "The locator points to a ZIP64 record past end of file.",
        patch(loc + 8, 1 << 40),
        Reject("container.Record.Truncated"),
        "reject",
    );
    c.add(
        "zip64",
        "zip64-locator-wrapping",
        "The locator offset is 2^64-8 (offset + 56 overflows).",
        patch(loc + 8, u64::MAX - 7),
        Reject("container.Record.Truncated"),
        "unknown",
    );
    let mut b = s.bytes.clone();
    set32(&mut b, loc, 0x1234_5678);
    c.add(
        "zip64",
        "zip64-locator-bad-signature",
        "Sentinels in the EOCD but no locator signature before it.",
        b,
        Reject("container.Record.Signature"),
        "reject",
    );
    let mut b = s.bytes.clone();
    set16(&mut b, s.eocd + 10, (n + 3) as u16);
    c.add("zip64", "zip64-classic-disagrees", "The classic EOCD's total entry count is not the sentinel and differs from the ZIP64 record's.", b, Reject("container.Zip64Mismatch.entry_count"), "accept: the ZIP64 record is used whenever any field holds a sentinel");
    // Extras.
    let mut e = plain_entries()[2].clone().with_descriptor();
    e.zip64 = true;
    e.usize = 1 << 34;
    c.add(
        "zip64",
        "zip64-extra-size-lie",
        "A ZIP64 extra declaring 16 GiB for an 8-byte stored file (with a descriptor, so the local header's zeroed sizes are not compared).",
        with_entry(2, e),
        Reject("size_mismatch"),
        "reject: decompressed byte count differs",
    );
    let mut e = plain_entries()[2].clone();
    e.zip64 = true;
    e.offset = Some(1 << 36);
    c.add(
        "zip64",
        "zip64-extra-offset-lie",
        "A ZIP64 extra whose local-header offset is 64 GiB.",
        with_entry(2, e),
        Reject("container.OutOfBounds"),
        "reject: data past end of file",
    );
    let b = {
        let p = plain();
        let mut b = p.bytes.clone();
        set32(&mut b, p.central[2] + 20, u32::MAX);
        b
    };
    c.add(
        "zip64",
        "zip64-extra-missing",
        "A 32-bit size holds the sentinel but the entry has no extra field.",
        b,
        Reject("container.Record.Zip64Extra"),
        "accept: reads the size as 4,294,967,295 (then fails the byte count)",
    );
    let mut e = plain_entries()[2].clone();
    e.central_extra = vec![1, 0, 4, 0, 8, 0, 0, 0];
    let b = {
        let p = build(
            &{
                let mut v = plain_entries();
                v[2] = e;
                v
            },
            &End::default(),
        );
        let mut b = p.bytes.clone();
        set32(&mut b, p.central[2] + 24, u32::MAX);
        b
    };
    c.add(
        "zip64",
        "zip64-extra-short",
        "The uncompressed size is the sentinel but the ZIP64 extra holds only 4 bytes.",
        b,
        Reject("container.Record.Zip64Extra"),
        "unknown",
    );
    let mut e = plain_entries()[2].clone();
    e.central_extra = vec![1, 0, 200, 0, 8, 0, 0, 0, 0, 0, 0, 0];
    let b = {
        let p = build(
            &{
                let mut v = plain_entries();
                v[2] = e;
                v
            },
            &End::default(),
        );
        let mut b = p.bytes.clone();
        set32(&mut b, p.central[2] + 24, u32::MAX);
        b
    };
    c.add(
        "zip64",
        "zip64-extra-overrun",
        "A ZIP64 extra block whose length (200) runs past the extra area.",
        b,
        Reject("container.Record.ExtraOverrun"),
        "unknown",
    );
}

fn eocd(c: &mut Cases) {
    let p = plain();
    let n = p.bytes.len();
    let mut b = p.bytes.clone();
    let fake = b[n - 22..].to_vec();
    set16(&mut b, n - 2, 22);
    b.extend_from_slice(&fake);
    c.add("eocd", "eocd-hidden-in-comment", "The real EOCD's 22-byte comment is itself an EOCD with an empty comment: two records fit the end of the file.", b, Reject("container.AmbiguousEocd"), "accept: takes the last signature found scanning back (the one in the comment)");
    // Two complete archives: a second, different directory in the comment.
    let other = build(
        &{
            let mut v = plain_entries();
            v.truncate(1);
            v
        },
        &End::default(),
    );
    let mut b = p.bytes.clone();
    let mut second_eocd = other.bytes[other.eocd..].to_vec();
    set32(&mut second_eocd, 16, p.cd_offset as u32);
    set16(&mut second_eocd, 8, 4);
    set16(&mut second_eocd, 10, 4);
    set32(&mut second_eocd, 12, p.cd_size as u32);
    set16(&mut b, n - 2, second_eocd.len() as u16);
    b.extend_from_slice(&second_eocd);
    c.add(
        "eocd",
        "eocd-two-records",
        "Two EOCD records both fit the end of the file and both describe a valid directory.",
        b,
        Reject("container.AmbiguousEocd"),
        "accept: uses the one in the comment",
    );
    c.add(
        "eocd",
        "eocd-missing",
        "The end record is cut off.",
        p.bytes[..n - 22].to_vec(),
        Reject("container.NoEocd"),
        "reject",
    );
    let mut b = p.bytes.clone();
    set16(&mut b, n - 2, 100);
    b.extend_from_slice(b"short");
    c.add(
        "eocd",
        "eocd-comment-length-lie",
        "The comment length says 100 but 5 bytes follow.",
        b,
        Reject("container.NoEocd"),
        "reject",
    );
    let mut b = p.bytes.clone();
    b.extend_from_slice(b"trailing junk");
    c.add(
        "eocd",
        "eocd-trailing-junk",
        "Bytes after the end record that are not its comment.",
        b,
        Reject("container.NoEocd"),
        "reject",
    );
    let mut b = b"MZ\x90\x00 self-extractor stub".to_vec();
    b.extend_from_slice(&p.bytes);
    c.add(
        "eocd",
        "eocd-prepended-stub",
        "An executable stub before the first local header (offsets not adjusted).",
        b,
        Reject("container.NotZip"),
        "reject: first four bytes are not PK\\x03\\x04",
    );
    c.add(
        "eocd",
        "not-zip",
        "Plain text.",
        b"hello, this is not an archive".to_vec(),
        Reject("container.NotZip"),
        "reject",
    );
    let mut b = p.bytes.clone();
    set16(&mut b, p.eocd + 10, 5);
    set16(&mut b, p.eocd + 8, 5);
    c.add(
        "eocd",
        "eocd-count-lie",
        "The classic EOCD declares 5 entries; the directory holds 4.",
        b,
        Reject("container.CentralDirectoryMismatch"),
        "reject",
    );
    let mut b = p.bytes.clone();
    set32(&mut b, p.eocd + 12, (p.cd_size + 46) as u32);
    c.add(
        "eocd",
        "eocd-size-lie",
        "The classic EOCD declares a directory 46 bytes larger than it is.",
        b,
        Reject("container.CentralDirectoryOutOfBounds"),
        "unknown",
    );
}

fn truncation(c: &mut Cases) {
    let s = server();
    let b = &s.bytes;
    let points: Vec<(&str, usize, &'static str)> = vec![
        ("empty", 0, "container.NotZip"),
        ("inside-first-signature", 3, "container.NotZip"),
        ("after-first-signature", 4, "container.NoEocd"),
        (
            "after-first-local-header",
            s.local[0] + 30,
            "container.NoEocd",
        ),
        ("inside-first-data", s.local[0] + 50, "container.NoEocd"),
        ("at-second-local-header", s.local[1], "container.NoEocd"),
        ("at-central-directory", s.cd_offset, "container.NoEocd"),
        (
            "inside-central-directory",
            s.central[1] + 10,
            "container.NoEocd",
        ),
        ("at-zip64-record", s.zip64_eocd.unwrap(), "container.NoEocd"),
        ("at-zip64-locator", s.locator.unwrap(), "container.NoEocd"),
        ("at-eocd", s.eocd, "container.NoEocd"),
        ("inside-eocd", b.len() - 1, "container.NoEocd"),
    ];
    for (name, at, code) in points {
        c.add(
            "truncation",
            &format!("trunc-{name}"),
            &format!("The server-layout archive cut to its first {at} bytes."),
            b[..at].to_vec(),
            Reject(code),
            "reject",
        );
    }
    // Bytes removed from the middle with the end records kept.
    let mut cut = b[..s.local[2] + 30].to_vec();
    cut.extend_from_slice(&b[s.local[2] + 40..]);
    c.add("truncation", "trunc-middle-end-kept", "10 bytes removed inside a local header; the end records are intact but every offset after the cut is off by 10 (the locator now points 10 bytes past the ZIP64 record).", cut, Reject("container.Record.Truncated"), "reject");
    // A stored entry cut short, directory rebuilt around it.
    let mut v = plain_entries();
    v[3].body.truncate(3);
    c.add(
        "truncation",
        "trunc-stored-data",
        "A stored entry's data is 3 bytes but the directory says 8.",
        build(&v, &End::default()).bytes,
        Reject("container.OutOfBounds"),
        "reject: data runs past its space",
    );
    let mut v = plain_entries();
    let l = v[1].body.len();
    v[1].body.truncate(l - 4);
    v[1].csize = (l - 4) as u64;
    c.add(
        "truncation",
        "trunc-deflate-stream",
        "A deflate stream missing its last 4 bytes, with matching compressed size.",
        build(&v, &End::default()).bytes,
        Reject("container.Deflate"),
        "reject",
    );
}

fn integrity(c: &mut Cases) {
    let mut e = plain_entries()[2].clone();
    e.crc ^= 1;
    c.add(
        "integrity",
        "crc-mismatch-stored",
        "A stored file whose central and local CRC-32 are both wrong.",
        with_entry(2, e),
        Reject("crc_mismatch"),
        "accept: CRCs are never checked",
    );
    let mut e = plain_entries()[1].clone().with_descriptor();
    e.crc ^= 1;
    set32(&mut e.descriptor, 4, e.crc);
    c.add(
        "integrity",
        "crc-mismatch-deflated-descriptor",
        "A deflated table whose central CRC (and descriptor) are wrong.",
        with_entry(1, e),
        Reject("crc_mismatch"),
        "accept: CRCs are never checked",
    );
    let mut e = plain_entries()[2].clone();
    e.flags |= 1;
    c.add(
        "integrity",
        "encrypted-flag",
        "The encrypted flag (bit 0) in both headers.",
        with_entry(2, e),
        Reject("container.Encrypted"),
        "reject",
    );
    let mut e = plain_entries()[2].clone();
    e.flags |= 0x0040;
    c.add("integrity", "strong-encryption-flag", "Bit 6 (strong encryption) without bit 0: not treated as encrypted, data is read as stored.", with_entry(2, e), Accept, "accept");
    for (m, what, server) in [
        (12u16, "bzip2", "reject"),
        (14, "LZMA", "reject"),
        (9, "deflate64", "reject"),
        (99, "AE-x (WinZip AES)", "reject"),
        (1, "shrink", "reject"),
    ] {
        let mut e = plain_entries()[2].clone();
        e.method = m;
        c.add(
            "integrity",
            &format!("method-{m}"),
            &format!("Compression method {m} ({what})."),
            with_entry(2, e),
            Reject("container.UnsupportedMethod"),
            server,
        );
    }
    let lie = |f: &dyn Fn(&mut Ent)| {
        let mut e = plain_entries()[1].clone().with_descriptor();
        f(&mut e);
        with_entry(1, e)
    };
    c.add(
        "descriptor",
        "descriptor-crc-lie",
        "The data descriptor's CRC-32 differs from the central one (the data matches the central).",
        lie(&|e| set32(&mut e.descriptor, 4, !e.crc)),
        Reject("container.DescriptorMismatch.crc_32"),
        "accept: descriptors are never read",
    );
    c.add(
        "descriptor",
        "descriptor-compressed-size-lie",
        "The data descriptor's compressed size is off by one.",
        lie(&|e| set32(&mut e.descriptor, 8, e.csize as u32 + 1)),
        Reject("container.DescriptorMismatch.compressed_size"),
        "accept: descriptors are never read",
    );
    c.add(
        "descriptor",
        "descriptor-uncompressed-size-lie",
        "The data descriptor's uncompressed size is 0.",
        lie(&|e| set32(&mut e.descriptor, 12, 0)),
        Reject("container.DescriptorMismatch.uncompressed_size"),
        "accept: descriptors are never read",
    );
    c.add(
        "descriptor",
        "descriptor-missing",
        "Flag bit 3 set but no descriptor after the data: the next local header starts where the descriptor should be.",
        lie(&|e| e.descriptor.clear()),
        Reject("container.Record.Truncated"),
        "accept: descriptors are never read",
    );
    let mut v = plain_entries();
    let mut e = v[3].clone().with_descriptor();
    e.descriptor.truncate(6);
    v[3] = e;
    c.add(
        "descriptor",
        "descriptor-truncated",
        "The last entry's descriptor is 6 bytes long, cut by the central directory.",
        build(&v, &End::default()).bytes,
        Reject("container.Record.Truncated"),
        "accept: descriptors are never read",
    );
    // Central sizes that lie.
    let mut e = plain_entries()[2].clone();
    e.usize = 7;
    e.local_usize = Some(7);
    c.add(
        "integrity",
        "size-central-smaller",
        "A stored file of 8 bytes declared (in both headers) as 7 uncompressed, 8 compressed.",
        with_entry(2, e),
        Reject("size_mismatch"),
        "reject: decompressed byte count differs",
    );
    let mut e = plain_entries()[1].clone();
    e.usize += 1;
    e.local_usize = Some(e.usize as u32);
    c.add(
        "integrity",
        "size-central-larger",
        "A table declared one byte larger than it inflates to.",
        with_entry(1, e),
        Reject("size_mismatch"),
        "reject: decompressed byte count differs",
    );
    let mut e = plain_entries()[1].clone();
    e.body.extend_from_slice(b"GARBAGE");
    e.csize += 7;
    c.add(
        "integrity",
        "deflate-trailing-garbage",
        "7 bytes after the end of the deflate stream, inside the declared compressed size.",
        with_entry(1, e),
        Reject("container.Deflate"),
        "accept: bytes after the stream end are ignored",
    );
    let mut e = plain_entries()[1].clone();
    e.body = vec![0xFF; 32];
    e.csize = 32;
    c.add(
        "integrity",
        "deflate-garbage",
        "A deflate body of 32 0xFF bytes (invalid block type).",
        with_entry(1, e),
        Reject("container.Deflate"),
        "reject",
    );
}

fn manifests(c: &mut Cases) {
    c.add(
        "manifest",
        "manifest-missing",
        "No manifest.json at all.",
        build(&plain_entries()[1..], &End::default()).bytes,
        Reject("no_manifest"),
        "reject",
    );
    c.add(
        "manifest",
        "manifest-deep-nesting",
        "A manifest field nested 100,000 arrays deep.",
        manifest_case(
            format!(
                "{{\"schemaVersion\":1,\"producer\":\"lumiverse\",\"x\":{}}}",
                nested(100_000, "0")
            )
            .as_bytes(),
        ),
        Reject("bad_manifest.TooDeep"),
        "reject: stack overflow in the JSON parser, answered as an error",
    );
    c.add("manifest", "manifest-depth-100", "A manifest field nested 100 deep (under the cap).", manifest_case(format!("{{\"schemaVersion\":1,\"producer\":\"lumiverse\",\"archiveId\":\"{ID}\",\"x\":{}}}", nested(100, "0")).as_bytes()), Accept, "accept");
    c.add(
        "manifest",
        "manifest-huge-exponent",
        "schemaVersion 1e999999 (JavaScript: Infinity).",
        manifest_case(br#"{"schemaVersion":1e999999,"producer":"lumiverse"}"#),
        Reject("bad_manifest.NotJson"),
        "reject: Infinity is not finite",
    );
    c.add("manifest", "manifest-huge-integers", "exportedAt and secretsCount with 40 digits; counts with 2^64.", manifest_case(format!(r#"{{"schemaVersion":1,"producer":"lumiverse","archiveId":"{ID}","exportedAt":1234567890123456789012345678901234567890,"secretsCount":99999999999999999999999999999999999999,"counts":{{"chats":18446744073709551616}}}}"#).as_bytes()), Accept, "accept");
    c.add(
        "manifest",
        "manifest-huge-string",
        "A 4 MiB string field in the manifest (under 16 MiB).",
        manifest_case(
            format!(
                r#"{{"schemaVersion":1,"producer":"lumiverse","archiveId":"{ID}","x":"{}"}}"#,
                "m".repeat(4 << 20)
            )
            .as_bytes(),
        ),
        Accept,
        "accept",
    );
    c.add("manifest", "manifest-duplicate-keys-last-wins", "producer given twice, \"evil\" then \"lumiverse\": the last wins, as in JavaScript.", manifest_case(format!(r#"{{"schemaVersion":1,"producer":"evil","producer":"lumiverse","archiveId":"{ID}"}}"#).as_bytes()), Accept, "accept");
    c.add(
        "manifest",
        "manifest-duplicate-keys-evil-last",
        "producer given twice, \"lumiverse\" then \"evil\".",
        manifest_case(br#"{"schemaVersion":1,"producer":"lumiverse","producer":"evil"}"#),
        Reject("bad_manifest.WrongProducer"),
        "reject",
    );
    c.add(
        "manifest",
        "manifest-not-object",
        "The manifest is a JSON array.",
        manifest_case(b"[]"),
        Reject("bad_manifest.NotObject"),
        "reject",
    );
    c.add(
        "manifest",
        "manifest-not-json",
        "The manifest is not JSON.",
        manifest_case(b"{schemaVersion: 1}"),
        Reject("bad_manifest.NotJson"),
        "reject",
    );
    c.add(
        "manifest",
        "manifest-schema-2",
        "schemaVersion 2.",
        manifest_case(br#"{"schemaVersion":2,"producer":"lumiverse"}"#),
        Reject("bad_manifest.UnsupportedSchema"),
        "reject",
    );
    c.add(
        "manifest",
        "manifest-schema-string",
        "schemaVersion \"1\" (JavaScript coerces it to 1).",
        manifest_case(
            format!(r#"{{"schemaVersion":"1","producer":"lumiverse","archiveId":"{ID}"}}"#)
                .as_bytes(),
        ),
        Accept,
        "accept",
    );
    c.add(
        "manifest",
        "manifest-wrong-producer",
        "producer \"zip\".",
        manifest_case(br#"{"schemaVersion":1,"producer":"zip"}"#),
        Reject("bad_manifest.WrongProducer"),
        "reject",
    );
    let mut m = Ent::deflated("manifest.json", &manifest_json(&[]));
    m.usize = (16 << 20) + 1;
    m.local_usize = Some(m.usize as u32);
    c.add(
        "manifest",
        "manifest-declared-over-cap",
        "manifest.json declares 16 MiB + 1 byte: refused before inflating.",
        with_entry(0, m),
        Reject("limit.EntryTooLarge"),
        "reject",
    );
    c.add(
        "manifest",
        "trailer-not-object",
        "manifest-stats.json is a JSON array: the server ignores it; lvbak's verify reports it.",
        plus(vec![Ent::deflated("manifest-stats.json", b"[1,2]")]),
        Reject("bad_json"),
        "accept: a trailer that fails to parse is ignored",
    );
    c.add(
        "manifest",
        "trailer-deep-nesting",
        "manifest-stats.json nested 100,000 deep.",
        plus(vec![Ent::deflated(
            "manifest-stats.json",
            nested(100_000, "").as_bytes(),
        )]),
        Reject("bad_json"),
        "accept: ignored",
    );
}

fn ndjson(c: &mut Cases) {
    const CAP: usize = 4 * 1024 * 1024;
    c.add(
        "ndjson",
        "line-over-cap",
        "One row of 4,194,305 bytes (cap + 1) with ndjsonFormatVersion 1.",
        table_case(&long_row(CAP + 1), None),
        Reject("line_too_long"),
        "reject: line over 4 MiB",
    );
    c.add(
        "ndjson",
        "line-at-cap",
        "One row of exactly 4,194,304 bytes.",
        table_case(&long_row(CAP), None),
        Accept,
        "accept",
    );
    let mut legacy = lvbak::Manifest::new(ID, 1_795_522_458);
    legacy.raw.remove("ndjsonFormatVersion");
    let legacy = lvbak::manifest::to_js_pretty(&Value::Object(legacy.raw));
    c.add(
        "ndjson",
        "line-legacy-5mib",
        "A legacy archive (no ndjsonFormatVersion) with a 5 MiB row: under the legacy 64 MiB cap.",
        table_case(&long_row(5 << 20), Some(legacy)),
        Accept,
        "accept",
    );
    let rows: [(&str, &[u8], Expect, &'static str); 14] = [
        (
            "line-invalid-utf8",
            b"{\"s\":\"\xff\"}\n",
            Reject("bad_line.NotUtf8"),
            "accept: invalid UTF-8 becomes U+FFFD",
        ),
        (
            "line-overlong-utf8",
            b"{\"s\":\"\xc0\xaf\"}\n",
            Reject("bad_line.NotUtf8"),
            "accept: invalid UTF-8 becomes U+FFFD",
        ),
        (
            "line-lone-surrogate",
            b"{\"s\":\"\\ud800\",\"t\":\"\\udfff\\ud800\"}\n",
            Accept,
            "accept",
        ),
        (
            "line-array",
            b"[1,2]\n",
            Reject("bad_line.NotAnObject"),
            "reject",
        ),
        (
            "line-true",
            b"true\n",
            Reject("bad_line.NotAnObject"),
            "reject",
        ),
        (
            "line-number",
            b"42\n",
            Reject("bad_line.NotAnObject"),
            "reject",
        ),
        (
            "line-string",
            b"\"row\"\n",
            Reject("bad_line.NotAnObject"),
            "reject",
        ),
        (
            "line-falsy-skipped",
            b"null\n0\n-0.0e5\n\"\"\nfalse\n\n   \n{\"id\":\"c1\"}\n",
            Accept,
            "accept: falsy values and blank lines are skipped",
        ),
        (
            "line-trailing-comma",
            b"{\"a\":1,}\n",
            Reject("bad_line.Syntax"),
            "reject",
        ),
        (
            "line-raw-control",
            b"{\"a\":\"x\x01y\"}\n",
            Reject("bad_line.Syntax"),
            "reject",
        ),
        (
            "line-two-values",
            b"{\"a\":1}{\"b\":2}\n",
            Reject("bad_line.Syntax"),
            "reject",
        ),
        (
            "line-crlf",
            b"{\"a\":1}\r\n{\"b\":2}\r\n",
            Accept,
            "accept: \\r is JSON whitespace",
        ),
        ("line-no-final-newline", b"{\"a\":1}", Accept, "accept"),
        (
            "line-nan",
            b"{\"a\":NaN}\n",
            Reject("bad_line.Syntax"),
            "reject",
        ),
    ];
    for (name, body, expect, server) in rows {
        c.add(
            "ndjson",
            name,
            &format!("Table body {:?}.", String::from_utf8_lossy(body)),
            table_case(body, None),
            expect,
            server,
        );
    }
    c.add(
        "ndjson",
        "line-deep-nesting",
        "A row nested 10,000 arrays deep.",
        table_case(
            format!("{{\"a\":{}}}\n", nested(10_000, "1")).as_bytes(),
            None,
        ),
        Reject("bad_line.TooDeep"),
        "reject: stack overflow in the JSON parser, answered as an error",
    );
    c.add(
        "ndjson",
        "line-depth-128",
        "A row nested exactly 128 deep (the cap).",
        table_case(format!("{{\"a\":{}}}\n", nested(127, "1")).as_bytes(), None),
        Accept,
        "accept",
    );
    c.add(
        "ndjson",
        "line-depth-129",
        "A row nested 129 deep (one over the cap).",
        table_case(format!("{{\"a\":{}}}\n", nested(128, "1")).as_bytes(), None),
        Reject("bad_line.TooDeep"),
        "accept: no depth cap",
    );
    let s = sealed_v1();
    let mut rec = s.encrypted_ndjson.clone();
    rec.extend_from_slice(b"[\"not a record\"]\n");
    c.add(
        "ndjson",
        "secrets-records-not-object",
        "secrets/encrypted.ndjson has a line that is an array.",
        secrets_archive(&s.index_json, &rec),
        Reject("bad_line.NotAnObject"),
        "reject",
    );
}

fn tickets(c: &mut Cases) {
    let s = sealed_v1();
    let archive = secrets_archive(&s.index_json, &s.encrypted_ndjson);
    let base = ticket_value(&s);
    let add = |c: &mut Cases,
               name: &str,
               desc: &str,
               archive: Vec<u8>,
               ticket: Vec<u8>,
               expect: Expect,
               server: &'static str| {
        c.add("ticket", name, desc, archive, expect, server);
        c.last().ticket = Some(ticket);
    };
    add(
        c,
        "ticket-valid-v1",
        "A version 1 archive with its own ticket.",
        archive.clone(),
        ticket_bytes(base.clone()),
        Accept,
        "accept",
    );
    add(
        c,
        "ticket-not-json",
        "The ticket is not JSON.",
        archive.clone(),
        b"kind=lumiverse".to_vec(),
        Reject("ticket.invalid_json"),
        "reject: 400",
    );
    add(
        c,
        "ticket-not-object",
        "The ticket is the JSON number 42.",
        archive.clone(),
        b"42".to_vec(),
        Reject("ticket.malformed"),
        "reject:malformed",
    );
    let edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut m = base.clone();
        f(&mut m);
        ticket_bytes(m)
    };
    add(
        c,
        "ticket-wrong-kind",
        "kind is \"lumiverse-ticket\".",
        archive.clone(),
        edit(&|m| {
            m.insert("kind".into(), json!("lumiverse-ticket"));
        }),
        Reject("ticket.wrong_kind"),
        "reject:wrong_kind",
    );
    add(
        c,
        "ticket-version-3",
        "version 3.",
        archive.clone(),
        edit(&|m| {
            m.insert("version".into(), json!(3));
        }),
        Reject("ticket.unsupported_version"),
        "reject:unsupported_version",
    );
    add(
        c,
        "ticket-version-string",
        "version \"1\" (JavaScript coerces it to 1).",
        archive.clone(),
        edit(&|m| {
            m.insert("version".into(), json!("1"));
        }),
        Accept,
        "accept",
    );
    add(
        c,
        "ticket-wrong-algorithm",
        "algorithm \"AES-128-GCM\".",
        archive.clone(),
        edit(&|m| {
            m.insert("algorithm".into(), json!("AES-128-GCM"));
        }),
        Reject("ticket.malformed"),
        "reject:malformed",
    );
    add(
        c,
        "ticket-empty-archive-id",
        "archiveId \"\".",
        archive.clone(),
        edit(&|m| {
            m.insert("archiveId".into(), json!(""));
        }),
        Reject("ticket.malformed"),
        "reject:malformed",
    );
    add(
        c,
        "ticket-other-archive",
        "A ticket forged for another archive id.",
        archive.clone(),
        edit(&|m| {
            m.insert(
                "archiveId".into(),
                json!("ffffffff-1111-4222-8333-444455556666"),
            );
        }),
        Reject("ticket.archive_mismatch"),
        "reject:archive_mismatch",
    );
    add(
        c,
        "ticket-short-key",
        "keyB64 decodes to 16 bytes.",
        archive.clone(),
        edit(&|m| {
            m.insert("keyB64".into(), json!("AAAAAAAAAAAAAAAAAAAAAA=="));
        }),
        Reject("ticket.malformed"),
        "reject:malformed",
    );
    add(
        c,
        "ticket-key-not-string",
        "keyB64 is a number.",
        archive.clone(),
        edit(&|m| {
            m.insert("keyB64".into(), json!(7));
        }),
        Reject("ticket.malformed"),
        "reject:malformed",
    );
    add(
        c,
        "ticket-forged-hash",
        "secretsHash replaced by the hash over another key list.",
        archive.clone(),
        edit(&|m| {
            m.insert(
                "secretsHash".into(),
                json!(lvbak::envelope::secrets_hash_v1(ID, &["openai", "evil"])),
            );
        }),
        Reject("ticket.binding_mismatch"),
        "reject:binding_mismatch",
    );
    add(
        c,
        "ticket-hash-removed",
        "secretsHash deleted: the one binding check is disabled. Every record opens, but lvbak's strict open refuses the anomaly (a plain open reports it as a note).",
        archive.clone(),
        edit(&|m| {
            m.remove("secretsHash");
        }),
        Reject("envelope.Incomplete"),
        "accept: the check is skipped when secretsHash is absent",
    );
    add(
        c,
        "ticket-forged-key",
        "A well-formed ticket with another 32-byte key: every record fails its tag.",
        archive.clone(),
        edit(&|m| {
            m.insert(
                "keyB64".into(),
                json!("CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg="),
            );
        }),
        Reject("envelope.Incomplete"),
        "accept: records failing the tag are skipped silently",
    );
    // Records swapped between keys (v1 has no associated data).
    let lines: Vec<&[u8]> = s
        .encrypted_ndjson
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut a: Value = serde_json::from_slice(lines[0]).unwrap();
    let mut b: Value = serde_json::from_slice(lines[1]).unwrap();
    let ka = a["key"].clone();
    a["key"] = b["key"].clone();
    b["key"] = ka;
    let mut swapped = serde_json::to_vec(&a).unwrap();
    swapped.push(b'\n');
    swapped.extend_from_slice(&serde_json::to_vec(&b).unwrap());
    swapped.push(b'\n');
    add(
        c,
        "ticket-records-swapped",
        "Two records' key names swapped: both decrypt, to each other's values.",
        secrets_archive(&s.index_json, &swapped),
        ticket_bytes(base.clone()),
        Accept,
        "accept: undetectable in version 1",
    );
    let mut dup = s.encrypted_ndjson.clone();
    dup.extend_from_slice(lines[0]);
    dup.push(b'\n');
    add(
        c,
        "ticket-record-duplicated",
        "A record appended twice: lvbak's strict open reports the anomaly.",
        secrets_archive(&s.index_json, &dup),
        ticket_bytes(base.clone()),
        Reject("envelope.Incomplete"),
        "accept: the later copy overwrites",
    );
    let one = {
        let mut v = lines[0].to_vec();
        v.push(b'\n');
        v
    };
    add(
        c,
        "ticket-record-dropped",
        "One of two records removed.",
        secrets_archive(&s.index_json, &one),
        ticket_bytes(base.clone()),
        Reject("envelope.Incomplete"),
        "accept: undetectable in version 1",
    );
    add(c, "ticket-index-missing", "secrets/index.json removed; the ticket's secretsHash no longer matches (no index counts as no keys).", plus(vec![Ent::deflated("secrets/encrypted.ndjson", &s.encrypted_ndjson)]), ticket_bytes(base.clone()), Reject("ticket.binding_mismatch"), "reject:binding_mismatch");
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(&ticket_bytes(base.clone()));
    add(
        c,
        "ticket-bom",
        "The ticket starts with a UTF-8 byte order mark.",
        archive.clone(),
        bom,
        Accept,
        "accept",
    );
    add(
        c,
        "ticket-deep-nesting",
        "A ticket nested 20,000 deep.",
        archive.clone(),
        nested(20_000, "").into_bytes(),
        Reject("ticket.invalid_json"),
        "reject: 400",
    );
}

// ------------------------------------------------------------ kit output --

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The SHA-256 of a case's archive, lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// `spec/conformance/cases.json`, exactly as committed.
pub fn cases_json(cases: &[Case]) -> String {
    let list: Vec<Value> = cases
        .iter()
        .filter(|c| c.in_kit)
        .map(|c| {
            let mut o = serde_json::Map::new();
            o.insert("name".into(), json!(c.name));
            o.insert("family".into(), json!(c.family));
            o.insert("description".into(), json!(c.description));
            o.insert("file".into(), json!(format!("{}.lvbak", c.name)));
            if c.ticket.is_some() {
                o.insert("ticket".into(), json!(format!("{}.ticket.json", c.name)));
            }
            o.insert("bytes".into(), json!(c.archive.len()));
            o.insert("sha256".into(), json!(sha256(&c.archive)));
            o.insert("large".into(), json!(c.large));
            o.insert("expect".into(), json!(c.expect.outcome()));
            if let Some(code) = c.expect.code() {
                o.insert("code".into(), json!(code));
            }
            o.insert("server".into(), json!(c.server));
            Value::Object(o)
        })
        .collect();
    let doc = json!({
        "kit": "lvbak-conformance",
        "version": 1,
        "archiveId": ID,
        "generator": "tests/corpus/mod.rs (materialise with: cargo run --example conformance)",
        "cases": list,
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap();
    s.push('\n');
    s
}
