//! Bad input at the container and archive layers: each a typed error,
//! never a panic.

use std::io::{Cursor, Read};

use lvbak::archive::{verify_digest_window, verify_holding_directory, Depth, Report};
use lvbak::container::write::{EntryOptions, Method, ZipWriter, DEFAULT_EXTERNAL_ATTR};
use lvbak::container::{CentralDirectory, ContainerError};
use lvbak::entry_name::NameRule;
use lvbak::{Archive, ArchiveError, Bucket, Limits, Manifest, WriteOptions};
use proptest::prelude::*;

const ID: &str = "11111111-2222-4333-8444-555555555555";

fn good(digests: bool) -> Vec<u8> {
    let m = Manifest::new(ID, 1_700_000_000);
    let opts = WriteOptions {
        digests,
        deterministic: true,
        ..WriteOptions::default()
    };
    let mut w = lvbak::ArchiveWriter::new(Vec::new(), &m, opts).unwrap();
    let mut t = w.table("chats").unwrap();
    t.write_row(r#"{"id":"c1","name":"one"}"#).unwrap();
    t.write_row(r#"{"id":"c2","name":"two"}"#).unwrap();
    t.finish().unwrap();
    w.add_file(Bucket::Avatars, "a.png", &b"AAAAAAAA"[..])
        .unwrap();
    w.add_file(Bucket::Avatars, "b.png", &b"BBBBBBBB"[..])
        .unwrap();
    w.finish().unwrap().0
}

/// lvbak's verify, checked against the reader that holds the whole
/// directory: each report a test here looks at is also a differential
/// test of the streamed checks.
fn verify<B: AsRef<[u8]>>(r: Cursor<B>, limits: Limits, depth: Depth) -> Report {
    let b = r.get_ref().as_ref();
    let streamed = lvbak::archive::verify(Cursor::new(b), limits.clone(), depth);
    let held = verify_holding_directory(Cursor::new(b), limits.clone(), depth);
    assert_eq!(streamed, held, "the streamed and the held verify disagree");
    // Digests held one or two at a time: the trailer is parsed again for
    // each window, and the report must not change.
    for window in [1, 2] {
        let w = verify_digest_window(Cursor::new(b), limits.clone(), depth, window);
        assert_eq!(w, held, "a window of {window} digests changes the report");
    }
    streamed
}

fn open(b: &[u8]) -> Result<Archive<Cursor<&[u8]>>, ArchiveError> {
    Archive::open(Cursor::new(b), Limits::default())
}

/// Reads everything; returns the first error.
fn read_all(b: &[u8]) -> Result<(), ArchiveError> {
    let mut a = open(b)?;
    lvbak::inspect::inspect(&mut a)?;
    for i in 0..a.entries().len() {
        let mut v = Vec::new();
        a.entry_reader(i)?
            .read_to_end(&mut v)
            .map_err(ContainerError::from_io)?;
    }
    Ok(())
}

struct Layout {
    cd_offset: usize,
    /// (name, local offset, central record offset)
    entries: Vec<(String, usize, usize)>,
}

fn layout(b: &[u8]) -> Layout {
    let cd = CentralDirectory::read(&mut Cursor::new(b), &Limits::default()).unwrap();
    let mut pos = cd.cd_offset as usize;
    let mut entries = Vec::new();
    for e in &cd.entries {
        entries.push((e.name.clone(), e.local_offset as usize, pos));
        let nl = u16::from_le_bytes([b[pos + 28], b[pos + 29]]) as usize;
        let el = u16::from_le_bytes([b[pos + 30], b[pos + 31]]) as usize;
        let cl = u16::from_le_bytes([b[pos + 32], b[pos + 33]]) as usize;
        pos += 46 + nl + el + cl;
    }
    Layout {
        cd_offset: cd.cd_offset as usize,
        entries,
    }
}

/// The stored bytes of entry `name` of archive `b` (its data as it lies
/// in the archive, compressed for a deflated entry; no ZIP64 sizes).
fn stored_bytes(b: &[u8], name: &str) -> Vec<u8> {
    let (_, local, central) = find(&layout(b), name).clone();
    let size = u32::from_le_bytes(b[central + 20..central + 24].try_into().unwrap()) as usize;
    let extra = u16::from_le_bytes([b[local + 28], b[local + 29]]) as usize;
    let start = local + 30 + name.len() + extra;
    b[start..start + size].to_vec()
}

fn find<'a>(l: &'a Layout, name: &str) -> &'a (String, usize, usize) {
    l.entries.iter().find(|e| e.0 == name).unwrap()
}

fn container(e: ArchiveError) -> ContainerError {
    match e {
        ArchiveError::Container(c) => c,
        other => panic!("expected a container error, got {other:?}"),
    }
}

#[test]
fn the_good_archive_reads() {
    read_all(&good(true)).unwrap();
    read_all(&good(false)).unwrap();
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    let b = good(true);
    for n in 0..b.len() {
        let cut = &b[..n];
        assert!(open(cut).is_err(), "truncated to {n} bytes opened");
        assert!(
            !verify(Cursor::new(cut), Limits::default(), Depth::Deep).is_ok(),
            "truncated to {n}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn corrupting_bytes_never_panics(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut b = good(true);
        for (i, v) in &flips {
            let at = i.index(b.len());
            b[at] = *v;
        }
        let _ = read_all(&b);
        let _ = verify(Cursor::new(&b[..]), Limits::default(), Depth::Deep);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut b = b"PK\x03\x04".to_vec();
        b.extend_from_slice(&data);
        prop_assert!(read_all(&b).is_err());
        let _ = verify(Cursor::new(&b[..]), Limits::default(), Depth::Deep);
    }
}

#[test]
fn not_a_zip() {
    assert!(matches!(
        container(open(b"hello world, not a zip").unwrap_err()),
        ContainerError::NotZip
    ));
    assert!(matches!(
        container(open(b"PK\x03\x04 but no end record").unwrap_err()),
        ContainerError::NoEocd
    ));
}

#[test]
fn eocd_hidden_in_a_comment_is_ambiguous() {
    let mut b = good(true);
    let n = b.len();
    // Give the real EOCD a 22-byte comment that is itself an EOCD with an empty comment.
    let fake = b[n - 22..].to_vec();
    b[n - 2..].copy_from_slice(&22u16.to_le_bytes());
    b.extend_from_slice(&fake);
    assert!(matches!(
        container(open(&b).unwrap_err()),
        ContainerError::AmbiguousEocd { count: 2 }
    ));
}

#[test]
fn local_header_disagreeing_with_central_is_refused() {
    let b0 = good(true);
    let l = layout(&b0);
    let (_, local, _) = find(&l, "files/avatars/a.png");
    // method
    let mut b = b0.clone();
    b[local + 8] = 8;
    let e = container(read_all(&b).unwrap_err());
    assert!(
        matches!(
            e,
            ContainerError::LocalMismatch {
                field: "method",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.entry(), Some("files/avatars/a.png"));
    // flags
    let mut b = b0.clone();
    b[local + 6] = 0;
    assert!(matches!(
        container(read_all(&b).unwrap_err()),
        ContainerError::LocalMismatch { field: "flags", .. }
    ));
    // name
    let mut b = b0.clone();
    b[local + 30 + 14] = b'z';
    assert!(matches!(
        container(read_all(&b).unwrap_err()),
        ContainerError::LocalMismatch { field: "name", .. }
    ));
}

#[test]
fn duplicate_names_are_refused() {
    let mut b = good(true);
    let l = layout(&b);
    let (_, local, central) = find(&l, "files/avatars/b.png").clone();
    b[local + 30 + 14] = b'a';
    b[central + 46 + 14] = b'a';
    match open(&b).unwrap_err() {
        ArchiveError::DuplicateName { entry } => assert_eq!(entry, "files/avatars/a.png"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn overlapping_entries_are_refused() {
    let mut b = good(true);
    let l = layout(&b);
    let (_, a_local, _) = find(&l, "files/avatars/a.png").clone();
    let (_, _, b_central) = find(&l, "files/avatars/b.png").clone();
    b[b_central + 42..b_central + 46].copy_from_slice(&(a_local as u32).to_le_bytes());
    assert!(matches!(
        container(open(&b).unwrap_err()),
        ContainerError::Overlap { .. }
    ));
}

#[test]
fn lying_zip64_fields_are_refused() {
    let b0 = good(true);
    let n = b0.len();
    let z = n - 22 - 20 - 56; // ZIP64 end record
                              // Entry count too high.
    let mut b = b0.clone();
    b[z + 32..z + 40].copy_from_slice(&1000u64.to_le_bytes());
    assert!(matches!(
        container(open(&b).unwrap_err()),
        ContainerError::CentralDirectoryMismatch { .. }
    ));
    // Directory offset beyond the file.
    let mut b = b0.clone();
    b[z + 48..z + 56].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        container(open(&b).unwrap_err()),
        ContainerError::CentralDirectoryOutOfBounds { .. }
    ));
    // Locator pointing past the end.
    let mut b = b0.clone();
    let loc = n - 22 - 20;
    b[loc + 8..loc + 16].copy_from_slice(&(n as u64).to_le_bytes());
    assert!(matches!(
        container(open(&b).unwrap_err()),
        ContainerError::Record { .. }
    ));
    // Entry count over the limit.
    let mut b = b0.clone();
    b[z + 32..z + 40].copy_from_slice(&10_000_000u64.to_le_bytes());
    assert!(matches!(
        container(open(&b).unwrap_err()),
        ContainerError::TooManyEntries { .. }
    ));
    // A classic field that disagrees with the ZIP64 record.
    let mut b = b0.clone();
    b[n - 12..n - 10].copy_from_slice(&3u16.to_le_bytes());
    assert!(matches!(
        container(open(&b).unwrap_err()),
        ContainerError::Zip64Mismatch { .. }
    ));
    // A sentinel size in a central record with no ZIP64 extra.
    let mut b = b0.clone();
    let l = layout(&b0);
    let (_, _, central) = find(&l, "files/avatars/a.png").clone();
    b[central + 24..central + 28].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        container(open(&b).unwrap_err()),
        ContainerError::Record { .. }
    ));
}

#[test]
fn unknown_method_and_encrypted_flag_are_refused() {
    let b0 = good(true);
    let l = layout(&b0);
    let (_, local, central) = find(&l, "files/avatars/a.png").clone();
    let mut b = b0.clone();
    b[central + 10] = 12;
    b[local + 8] = 12;
    assert!(matches!(
        container(open(&b).unwrap_err()),
        ContainerError::UnsupportedMethod { method: 12, .. }
    ));
    let mut b = b0.clone();
    b[central + 8] |= 1;
    b[local + 6] |= 1;
    assert!(matches!(
        container(open(&b).unwrap_err()),
        ContainerError::Encrypted { .. }
    ));
}

#[test]
fn crc_size_and_digest_mismatches_are_refused() {
    let b0 = good(false);
    let l = layout(&b0);
    let (_, local, central) = find(&l, "files/avatars/a.png").clone();
    let data = local + 30 + "files/avatars/a.png".len();
    let mut b = b0.clone();
    b[data] = b'Z';
    assert!(matches!(
        container(read_all(&b).unwrap_err()),
        ContainerError::CrcMismatch { .. }
    ));
    // With digests, the CRC is checked first, then the digest; forge the CRC too.
    let b1 = good(true);
    let l = layout(&b1);
    let (_, local, central1) = find(&l, "files/avatars/a.png").clone();
    let data = local + 30 + "files/avatars/a.png".len();
    let mut b = b1.clone();
    b[data] = b'Z';
    let mut forged = b1[data..data + 8].to_vec();
    forged[0] = b'Z';
    let crc = crc32fast::hash(&forged);
    b[central1 + 16..central1 + 20].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        container(read_all(&b).unwrap_err()),
        ContainerError::DigestMismatch { .. }
    ));
    // Declared size smaller than the data: a lie about size.
    let mut b = b0.clone();
    b[central + 24..central + 28].copy_from_slice(&4u32.to_le_bytes());
    assert!(matches!(
        container(read_all(&b).unwrap_err()),
        ContainerError::SizeMismatch { .. }
    ));
}

#[test]
fn deep_verify_lists_every_problem_and_checks_descriptors() {
    let b0 = good(false);
    let l = layout(&b0);
    let mut b = b0.clone();
    for name in ["files/avatars/a.png", "files/avatars/b.png"] {
        let (_, local, _) = find(&l, name).clone();
        b[local + 30 + name.len()] ^= 0xff;
    }
    let r = verify(Cursor::new(&b[..]), Limits::default(), Depth::Deep);
    let crc: Vec<_> = r
        .problems
        .iter()
        .filter(|p| p.code == "crc_mismatch")
        .collect();
    assert_eq!(crc.len(), 2, "{:?}", r.problems);
    // A data descriptor that lies (the server never reads them).
    let mut b = b0.clone();
    let (_, local, _) = find(&l, "files/avatars/a.png").clone();
    let desc = local + 30 + "files/avatars/a.png".len() + 8;
    b[desc + 4] ^= 1; // CRC in the descriptor
    let r = verify(Cursor::new(&b[..]), Limits::default(), Depth::Deep);
    assert!(
        r.problems
            .iter()
            .any(|p| p.message.contains("data descriptor")),
        "{:?}",
        r.problems
    );
    // Fast verify does not read entry bodies.
    assert!(verify(Cursor::new(&b[..]), Limits::default(), Depth::Fast).is_ok());
}

/// Builds an archive entry by entry with the raw ZIP writer.
fn raw(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut z = ZipWriter::new(Vec::new());
    for (name, data) in entries {
        let method = if name.starts_with("files/") {
            Method::Stored
        } else {
            Method::Deflated(3)
        };
        let opts = EntryOptions {
            method,
            dos_time: (0, 33),
            external_attr: DEFAULT_EXTERNAL_ATTR,
        };
        z.add_entry(name, opts, data).unwrap();
    }
    z.finish().unwrap().0
}

const MANIFEST: &[u8] =
    br#"{"schemaVersion":1,"producer":"lumiverse","archiveId":"x","ndjsonFormatVersion":1}"#;

#[test]
fn names_outside_the_allowlist_are_refused() {
    for (bad, rule) in [
        ("evil.sh", NameRule::Unknown),
        ("../evil", NameRule::DotSegment),
        ("files/avatars/../../x", NameRule::DotSegment),
        ("/etc/passwd", NameRule::Absolute),
        ("C:/Windows/x", NameRule::DriveLetter),
        ("\\\\host\\share", NameRule::Unc),
        ("files\\avatars\\..\\..\\x", NameRule::DotSegment),
        ("files/avatars/a\u{1}b", NameRule::ControlCharacter),
        ("database/", NameRule::Directory),
    ] {
        let b = raw(&[("manifest.json", MANIFEST), (bad, b"x")]);
        match open(&b).unwrap_err() {
            ArchiveError::Name(e) => {
                assert_eq!(e.rule, rule, "{bad}");
                assert_eq!(e.name, bad);
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn bad_manifests_are_refused() {
    let cases: [(&[u8], &str); 5] = [
        (b"not json", "NotJson"),
        (br#"{"schemaVersion":1,"producer":"someone-else"}"#, "WrongProducer"),
        (br#"{"schemaVersion":2,"producer":"lumiverse"}"#, "UnsupportedSchema"),
        (b"[1,2]", "NotObject"),
        (b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]", "TooDeep"),
    ];
    for (m, want) in cases {
        let b = raw(&[("manifest.json", m)]);
        match open(&b).unwrap_err() {
            ArchiveError::Manifest(e) => assert!(format!("{e:?}").starts_with(want), "{e:?}"),
            other => panic!("{want}: {other:?}"),
        }
    }
    let b = raw(&[("database/chats.ndjson", b"")]);
    assert!(matches!(open(&b).unwrap_err(), ArchiveError::NoManifest));
    let e = open(&raw(&[(
        "manifest.json",
        br#"{"schemaVersion":9,"producer":"lumiverse"}"#,
    )]))
    .unwrap_err();
    assert!(
        e.to_string().contains("reads schema versions 1 to 1"),
        "{e}"
    );
}

#[test]
fn bad_ndjson_is_a_typed_error_naming_table_and_line() {
    let long = format!("{{\"a\":\"{}\"}}\n", "x".repeat(4 * 1024 * 1024));
    let cases: Vec<(Vec<u8>, u64, &str)> = vec![
        (format!("{{}}\n{long}").into_bytes(), 2, "exceeds"),
        (b"{}\n\n{\"a\":\"\xff\"}\n".to_vec(), 3, "UTF-8"),
        (b"{\"a\":1}\n[1]\n".to_vec(), 2, "not an object"),
        (b"{\"a\":\n".to_vec(), 1, "not valid JSON"),
    ];
    for (body, line, msg) in cases {
        let b = raw(&[
            ("manifest.json", MANIFEST),
            ("database/chats.ndjson", &body),
        ]);
        let mut a = open(&b).unwrap();
        let err = a.rows("chats").unwrap().find_map(Result::err).unwrap();
        match &err {
            ArchiveError::Line { entry, line: l, .. } => {
                assert_eq!(entry, "database/chats.ndjson");
                assert_eq!(*l, line, "{err}");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains(msg), "{err}");
    }
    // Blank lines and falsy values are skipped like the server does.
    let b = raw(&[
        ("manifest.json", MANIFEST),
        ("database/chats.ndjson", b"{}\n\nnull\n0\n{\"b\":2}\n"),
    ]);
    assert_eq!(open(&b).unwrap().rows("chats").unwrap().count(), 2);
}

#[test]
fn oversized_text_entries_hit_their_limits() {
    let l = Limits {
        max_manifest_bytes: 10,
        ..Limits::default()
    };
    let b = raw(&[("manifest.json", MANIFEST)]);
    assert!(matches!(
        Archive::open(Cursor::new(&b[..]), l).unwrap_err(),
        ArchiveError::EntryTooLarge { .. }
    ));
    let l = Limits {
        max_text_entries: 1,
        ..Limits::default()
    };
    let b = raw(&[("manifest.json", MANIFEST), ("database/a.ndjson", b"")]);
    assert!(matches!(
        Archive::open(Cursor::new(&b[..]), l).unwrap_err(),
        ArchiveError::TooManyTextEntries { .. }
    ));
}

#[test]
fn a_high_ratio_bomb_stops_at_the_declared_size() {
    // 64 MiB of zeros deflate to ~64 KiB; declare 1 KiB.
    let zeros = vec![0u8; 64 << 20];
    let b0 = raw(&[
        ("manifest.json", MANIFEST),
        ("database/chats.ndjson", &zeros),
    ]);
    let l = layout(&b0);
    let (_, _, central) = find(&l, "database/chats.ndjson").clone();
    let mut b = b0.clone();
    b[central + 24..central + 28].copy_from_slice(&1024u32.to_le_bytes());
    let mut a = open(&b).unwrap();
    let i = a.find(&lvbak::EntryName::Table("chats".into())).unwrap();
    let mut r = a.entry_reader(i).unwrap();
    let mut sink = Vec::new();
    let e = r.read_to_end(&mut sink).unwrap_err();
    assert!(matches!(
        ContainerError::from_io(e),
        ContainerError::SizeMismatch { .. }
    ));
    assert!(
        sink.len() <= 1024,
        "inflated {} bytes past the declared size",
        sink.len()
    );
    let _ = l.cd_offset;
}

#[test]
fn parallel_deep_verify_reports_what_the_sequential_one_does() {
    let b0 = good(true);
    let l = layout(&b0);
    let mut b = b0.clone();
    for name in ["files/avatars/a.png", "files/avatars/b.png"] {
        let (_, local, _) = find(&l, name).clone();
        b[local + 30 + name.len()] ^= 0xff;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (i, bytes) in [b0, b].iter().enumerate() {
        let p = tmp.path().join(format!("{i}.lvbak"));
        std::fs::write(&p, bytes).unwrap();
        let seq = verify(Cursor::new(&bytes[..]), Limits::default(), Depth::Deep);
        assert_parallel_matches(&p, &seq, &[1, 2, 3], "");
        assert_eq!(seq.is_ok(), i == 0);
    }
}

#[test]
fn case_twins_among_files_are_refused_unless_allowed() {
    let b = raw(&[
        ("manifest.json", MANIFEST),
        ("files/avatars/a.png", b"1"),
        ("files/avatars/A.png", b"2"),
    ]);
    match open(&b).unwrap_err() {
        ArchiveError::CaseTwin { entry, other } => {
            assert_eq!(entry, "files/avatars/A.png");
            assert_eq!(other, "files/avatars/a.png");
        }
        e => panic!("{e:?}"),
    }
    let allow = Limits {
        allow_case_twins: true,
        ..Limits::default()
    };
    assert!(Archive::open(Cursor::new(&b[..]), allow).is_ok());
    // Same letters in different buckets are not twins.
    let b = raw(&[
        ("manifest.json", MANIFEST),
        ("files/avatars/a.png", b"1"),
        ("files/databank/A.png", b"2"),
    ]);
    assert!(open(&b).is_ok());
}

/// Large NDJSON entries are checked on two threads (inflate, CRC and a
/// digest of the stored bytes on one; lines, JSON and a digest of the
/// uncompressed bytes on the other): the first problem must be the one
/// reading the rows in order meets.
#[test]
fn pipelined_deep_verify_of_large_tables_reports_what_reading_the_rows_meets() {
    use sha2::{Digest, Sha256};
    let rows = |bad_at: Option<usize>| message_rows(60_000, bad_at);
    let trailer = |table: &[u8], forge: bool| {
        let mut d: [u8; 32] = Sha256::digest(table).into();
        if forge {
            d[0] ^= 1;
        }
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{{\"counts\":{{}},\"missingFiles\":[],\"lvbak\":{{\"version\":1,\"sha256\":{{\"database/messages.ndjson\":\"{hex}\"}}}}}}"
        )
        .into_bytes()
    };
    // Version 3: the digests of the stored bytes of the manifest and the
    // table (the entries before the trailer do not depend on it).
    let trailer_v3 = |table: &[u8], forge: bool| {
        use base64::Engine as _;
        let first = raw(&[
            ("manifest.json", MANIFEST),
            ("database/messages.ndjson", table),
            ("manifest-stats.json", b"{}"),
        ]);
        let mut ds = Vec::new();
        for name in ["manifest.json", "database/messages.ndjson"] {
            ds.extend_from_slice(&Sha256::digest(stored_bytes(&first, name)));
        }
        if forge {
            ds[40] ^= 1;
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(ds);
        format!(
            "{{\"counts\":{{}},\"missingFiles\":[],\"lvbak\":{{\"version\":3,\"entries\":2,\"sha256\":\"{b64}\"}}}}"
        )
        .into_bytes()
    };
    let good_rows = rows(None);
    assert!(
        good_rows.len() > 5 << 20,
        "large enough to take the pipeline"
    );
    let bad_rows = rows(Some(31_000));
    // A last line cut short: the entry ends before its line does, so the
    // checks made at the end of the entry come first.
    let mut cut_rows = good_rows.clone();
    cut_rows.extend_from_slice(b"{\"id\":\"cut\",\"content\":\"no end");
    let build = |table: &[u8], tr: &[u8]| {
        raw(&[
            ("manifest.json", MANIFEST),
            ("database/messages.ndjson", table),
            ("manifest-stats.json", tr),
        ])
    };
    // A central (and local) CRC that lies: found at the end of the entry.
    let lie_crc = |mut b: Vec<u8>| {
        let l = layout(&b);
        let (_, local, central) = find(&l, "database/messages.ndjson").clone();
        b[local + 14] ^= 0x5a;
        b[central + 16] ^= 0x5a;
        b
    };
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("good", build(&good_rows, &trailer(&good_rows, false)), None),
        (
            "bad line",
            build(&bad_rows, &trailer(&bad_rows, false)),
            Some("line"),
        ),
        (
            "digest",
            build(&good_rows, &trailer(&good_rows, true)),
            Some("digest"),
        ),
        (
            "good, stored digest",
            build(&good_rows, &trailer_v3(&good_rows, false)),
            None,
        ),
        (
            "stored digest",
            build(&good_rows, &trailer_v3(&good_rows, true)),
            Some("digest"),
        ),
        (
            "bad line and stored digest",
            build(&bad_rows, &trailer_v3(&bad_rows, true)),
            Some("line"),
        ),
        (
            "crc",
            lie_crc(build(&good_rows, &trailer(&good_rows, false))),
            Some("crc"),
        ),
        (
            "bad line and crc",
            lie_crc(build(&bad_rows, &trailer(&bad_rows, false))),
            Some("line"),
        ),
        (
            "cut line",
            build(&cut_rows, &trailer(&cut_rows, false)),
            Some("bad_line"),
        ),
        (
            "cut line and crc",
            lie_crc(build(&cut_rows, &trailer(&cut_rows, false))),
            Some("crc"),
        ),
        (
            "cut line and digest",
            build(&cut_rows, &trailer(&cut_rows, true)),
            Some("digest"),
        ),
        (
            "cut line and stored digest",
            build(&cut_rows, &trailer_v3(&cut_rows, true)),
            Some("digest"),
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (what, bytes, want) in cases {
        // The reference: the rows read in order, stopping at the first problem.
        let reference = first_row_problem(&bytes, "messages");
        match (&reference, want) {
            (None, None) => {}
            (Some(p), Some(w)) => assert!(p.code.contains(w), "{what}: {p:?}"),
            other => panic!("{what}: unexpected reference {other:?}"),
        }
        let p = tmp.path().join("t.lvbak");
        std::fs::write(&p, &bytes).unwrap();
        let seq = verify(Cursor::new(&bytes[..]), Limits::default(), Depth::Deep);
        let table_problems = |r: &lvbak::archive::Report| -> Vec<lvbak::archive::Problem> {
            r.problems
                .iter()
                .filter(|q| q.entry.as_deref() == Some("database/messages.ndjson"))
                .cloned()
                .collect()
        };
        // The first problem about the entry (a lying CRC also makes the
        // data descriptor disagree: listed after it).
        assert_eq!(table_problems(&seq).first(), reference.as_ref(), "{what}");
        assert_parallel_matches(&p, &seq, &[1, 2], what);
    }
}

/// Deep verification of the file at `p` on each thread count reports what
/// the sequential `seq` did.
fn assert_parallel_matches(
    p: &std::path::Path,
    seq: &lvbak::archive::Report,
    threads: &[usize],
    what: &str,
) {
    for &threads in threads {
        let par = lvbak::archive::verify_path(
            p,
            Limits::default(),
            Depth::Deep,
            threads,
            &mut |_, _, _| {},
        );
        assert_eq!(par.problems, seq.problems, "{what} threads {threads}");
        assert_eq!(
            par.bytes_checked, seq.bytes_checked,
            "{what} threads {threads}"
        );
    }
}

/// Name problems come in central-directory order, each naming the entry it
/// is about (twins against the one before them; duplicates after the first).
#[test]
fn name_problems_are_listed_in_directory_order() {
    let mut b = raw(&[
        ("manifest.json", MANIFEST),
        ("files/avatars/B.png", b"1"),
        ("files/avatars/a.png", b"2"),
        ("files/databank/a.png", b"3"),
        ("files/avatars/b.png", b"4"),
        ("database/chats.ndjson", b""),
        ("files/avatars/A.png", b"5"),
        ("files/avatars/Q.png", b"6"),
        ("files/avatars/A.PNG", b"7"),
        ("database/chatQ.ndjson", b""),
    ]);
    // The writer refuses duplicates: rename in place (local and central).
    for (from, to) in [
        (&b"files/avatars/Q.png"[..], &b"files/avatars/a.png"[..]),
        (b"database/chatQ.ndjson", b"database/chats.ndjson"),
    ] {
        let mut at = 0;
        while let Some(i) = b[at..].windows(from.len()).position(|w| w == from) {
            b[at + i..at + i + to.len()].copy_from_slice(to);
            at += i + 1;
        }
    }
    let r = verify(Cursor::new(&b[..]), Limits::default(), Depth::Fast);
    let got: Vec<(&str, &str)> = r
        .problems
        .iter()
        .filter(|p| p.code != "no_trailer")
        .map(|p| (p.code, p.entry.as_deref().unwrap_or("")))
        .collect();
    let twin = lvbak::ArchiveError::CaseTwin {
        entry: String::new(),
        other: String::new(),
    }
    .code();
    let dup = lvbak::ArchiveError::DuplicateName {
        entry: String::new(),
    }
    .code();
    assert_eq!(
        got,
        vec![
            (twin, "files/avatars/b.png"),
            (twin, "files/avatars/A.png"),
            (dup, "files/avatars/a.png"),
            (twin, "files/avatars/A.PNG"),
            (dup, "database/chats.ndjson"),
        ],
        "{:?}",
        r.problems
    );
    // The first problem is what opening reports.
    assert!(matches!(
        open(&b).unwrap_err(),
        ArchiveError::CaseTwin { ref entry, ref other }
            if entry == "files/avatars/b.png" && other == "files/avatars/B.png"
    ));
    let twins: Vec<&str> = r
        .problems
        .iter()
        .filter(|p| p.code == twin)
        .map(|p| p.message.as_str())
        .collect();
    assert!(twins[1].contains("files/avatars/a.png"), "{twins:?}");
    assert!(twins[2].contains("files/avatars/A.png"), "{twins:?}");
}

/// Deep verify lists entries without a digest and digests without an
/// entry, for both layouts of the trailer's lvbak field.
#[test]
fn digest_coverage_problems_for_both_field_versions() {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let t1: &[u8] = b"{\"id\":\"a\"}\n";
    let t2: &[u8] = b"{\"id\":\"b\"}\n";
    let sha = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
    let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let v2 = |ds: &[[u8; 32]]| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(ds.concat());
        format!(
            "{{\"counts\":{{}},\"missingFiles\":[],\"lvbak\":{{\"version\":2,\"entries\":{},\"sha256\":\"{b64}\"}}}}",
            ds.len()
        )
    };
    let v1 = |ds: &[(&str, [u8; 32])]| {
        let m: Vec<String> = ds
            .iter()
            .map(|(k, d)| format!("\"{k}\":\"{}\"", hex(*d)))
            .collect();
        format!(
            "{{\"counts\":{{}},\"missingFiles\":[],\"lvbak\":{{\"version\":1,\"sha256\":{{{}}}}}}}",
            m.join(",")
        )
    };
    let (m, a, b) = (sha(MANIFEST), sha(t1), sha(t2));
    let cases = [
        // Version 2: one digest short, then one too many.
        (
            v2(&[m, a]),
            vec![("digest_missing", Some("database/b.ndjson"))],
        ),
        (v2(&[m, a, b, b]), vec![("entry_missing", None)]),
        (v2(&[m, a, b]), vec![]),
        // Version 1: by name.
        (
            v1(&[("manifest.json", m), ("database/a.ndjson", a)]),
            vec![("digest_missing", Some("database/b.ndjson"))],
        ),
        (
            v1(&[
                ("manifest.json", m),
                ("database/a.ndjson", a),
                ("database/b.ndjson", b),
                ("database/gone.ndjson", b),
            ]),
            vec![("entry_missing", Some("database/gone.ndjson"))],
        ),
    ];
    for (trailer, want) in cases {
        let bytes = raw(&[
            ("manifest.json", MANIFEST),
            ("database/a.ndjson", t1),
            ("database/b.ndjson", t2),
            ("manifest-stats.json", trailer.as_bytes()),
        ]);
        let r = verify(Cursor::new(&bytes[..]), Limits::default(), Depth::Deep);
        let got: Vec<(&str, Option<&str>)> = r
            .problems
            .iter()
            .filter(|p| p.code == "digest_missing" || p.code == "entry_missing")
            .map(|p| (p.code, p.entry.as_deref()))
            .collect();
        assert_eq!(got, want, "{trailer}: {:?}", r.problems);
        assert_eq!(r.problems.len(), want.len(), "{trailer}: {:?}", r.problems);
    }
}

/// Version 3 of the lvbak field records the SHA-256 of each entry's stored
/// bytes (compressed, for a deflated entry); versions 1 and 2 that of its
/// uncompressed bytes. Each is checked against its own bytes only.
#[test]
fn version_3_digests_cover_the_stored_bytes_and_version_2_the_content() {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let sha = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
    let t1: &[u8] = b"{\"id\":\"a\",\"text\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}\n";
    let png: &[u8] = b"not really a png";
    let with_trailer = |trailer: &str| {
        raw(&[
            ("manifest.json", MANIFEST),
            ("database/a.ndjson", t1),
            ("files/avatars/x.png", png),
            ("manifest-stats.json", trailer.as_bytes()),
        ])
    };
    let field = |version: u32, ds: &[[u8; 32]]| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(ds.concat());
        format!(
            "{{\"counts\":{{}},\"missingFiles\":[],\"lvbak\":{{\"version\":{version},\"entries\":{},\"sha256\":\"{b64}\"}}}}",
            ds.len()
        )
    };
    // The entries before the trailer do not depend on it: their stored
    // bytes are read from a first build.
    let first = with_trailer("{}");
    let names = ["manifest.json", "database/a.ndjson", "files/avatars/x.png"];
    let of_stored: Vec<[u8; 32]> = names
        .iter()
        .map(|n| sha(&stored_bytes(&first, n)))
        .collect();
    let of_content = [sha(MANIFEST), sha(t1), sha(png)];
    // The deflated entries' stored bytes differ from their content; the
    // stored file's do not.
    assert_ne!(of_stored[1], of_content[1]);
    assert_eq!(of_stored[2], of_content[2]);
    let mismatched = |b: &[u8]| -> Vec<String> {
        let r = verify(Cursor::new(b), Limits::default(), Depth::Deep);
        assert!(
            r.problems.iter().all(|p| p.code == "digest_mismatch"),
            "{:?}",
            r.problems
        );
        r.problems.into_iter().filter_map(|p| p.entry).collect()
    };
    let deflated = vec!["manifest.json".to_owned(), "database/a.ndjson".to_owned()];
    for (version, digests, want) in [
        (3, &of_stored[..], vec![]),
        (3, &of_content[..], deflated.clone()),
        (2, &of_content[..], vec![]),
        (2, &of_stored[..], deflated.clone()),
    ] {
        let b = with_trailer(&field(version, digests));
        assert_eq!(mismatched(&b), want, "version {version}");
        let a = open(&b).unwrap();
        let covers = if version == 3 {
            lvbak::manifest::DigestOf::Stored
        } else {
            lvbak::manifest::DigestOf::Content
        };
        assert_eq!(a.digests_cover(), covers);
        assert_eq!(read_all(&b).is_ok(), want.is_empty(), "version {version}");
    }
    // A version this reader does not know is kept and checks nothing.
    let b = with_trailer(&field(4, &of_content));
    assert_eq!(mismatched(&b), Vec::<String>::new());
    assert!(open(&b).unwrap().trailer().unwrap().lvbak.is_none());
}

/// Replaces every occurrence of `from` (local and central names) by `to`,
/// of the same length: the writer refuses duplicates.
fn rename_all(b: &mut [u8], from: &[u8], to: &[u8]) {
    let mut at = 0;
    while let Some(i) = b[at..].windows(from.len()).position(|w| w == from) {
        b[at + i..at + i + to.len()].copy_from_slice(to);
        at += i + 1;
    }
}

/// A large directory has its names parsed on two threads and is indexed
/// while the trailer is read: the same problems, in the same order, as a
/// small one; of two trailers, the first is the one read.
#[test]
fn a_large_directory_is_checked_like_a_small_one() {
    let pad: Vec<String> = (0..6000)
        .map(|i| format!("files/avatars/p{i:05}.png"))
        .collect();
    for padded in [false, true] {
        for first_is_json in [true, false] {
            let (one, two): (&[u8], &[u8]) = match first_is_json {
                true => (br#"{"counts":{"chats":1}}"#, b"not json"),
                false => (b"not json", br#"{"counts":{"chats":1}}"#),
            };
            let mut list: Vec<(&str, &[u8])> = vec![
                ("manifest.json", MANIFEST),
                ("files/avatars/B.png", b"1"),
                ("../evil", b"x"),
                ("files/avatars/b.png", b"2"),
            ];
            if padded {
                // Spread over both halves of the directory.
                list.extend(pad[..3000].iter().map(|n| (n.as_str(), &b"p"[..])));
            }
            list.extend([
                ("manifest-stats.json", one),
                ("files/avatars/Q.png", b"3"),
                ("files/avatars/a.png", b"4"),
            ]);
            if padded {
                list.extend(pad[3000..].iter().map(|n| (n.as_str(), &b"p"[..])));
            }
            list.extend([("manifest-statQ.json", two), ("files/bogus/x", b"5")]);
            let mut b = raw(&list);
            rename_all(&mut b, b"files/avatars/Q.png", b"files/avatars/a.png");
            rename_all(&mut b, b"manifest-statQ.json", b"manifest-stats.json");
            let r = verify(Cursor::new(&b[..]), Limits::default(), Depth::Fast);
            let got: Vec<(&str, &str)> = r
                .problems
                .iter()
                .map(|p| (p.code, p.entry.as_deref().unwrap_or("")))
                .collect();
            let mut want = vec![
                ("bad_name", "../evil"),
                ("case_twin", "files/avatars/b.png"),
                ("duplicate_name", "files/avatars/a.png"),
                ("duplicate_name", "manifest-stats.json"),
                ("bad_name", "files/bogus/x"),
            ];
            if !first_is_json {
                want.push(("bad_json", "manifest-stats.json"));
            }
            assert_eq!(
                got, want,
                "padded {padded} first_is_json {first_is_json}: {:?}",
                r.problems
            );
            assert_eq!(r.entries, list.len() as u64);
        }
        // Without problems, the large archive opens with its trailer.
        let mut list: Vec<(&str, &[u8])> = vec![("manifest.json", MANIFEST)];
        if padded {
            list.extend(pad.iter().map(|n| (n.as_str(), &b"p"[..])));
        }
        list.push(("manifest-stats.json", br#"{"counts":{"chats":7}}"#));
        let b = raw(&list);
        let a = open(&b).unwrap();
        assert_eq!(a.entries().len(), list.len());
        assert_eq!(
            a.trailer().map(|t| t.counts.clone()),
            Some(vec![("chats".to_string(), 7)])
        );
    }
}

/// The first problem reading the rows of `table` meets.
fn first_row_problem(bytes: &[u8], table: &str) -> Option<lvbak::archive::Problem> {
    let mut a = open(bytes).unwrap();
    let mut rows = a.rows(table).unwrap();
    loop {
        match rows.next_line() {
            Ok(Some(_)) => {}
            Ok(None) => break None,
            Err(e) => break Some(lvbak::archive::Problem::from(&e)),
        }
    }
}

/// The first problem deep verify reports about `entry`.
fn first_verify_problem(bytes: &[u8], entry: &str) -> Option<lvbak::archive::Problem> {
    verify(Cursor::new(bytes), Limits::default(), Depth::Deep)
        .problems
        .into_iter()
        .find(|q| q.entry.as_deref() == Some(entry))
}

/// `n` message rows (over 4 MiB from 55,000: the pipeline), one of them
/// unterminated JSON when `bad_at` says which.
fn message_rows(n: usize, bad_at: Option<usize>) -> Vec<u8> {
    let mut t = String::new();
    for i in 0..n {
        if Some(i) == bad_at {
            t.push_str("{\"id\":\"m\",\"content\":\"unterminated}\n");
        } else {
            t.push_str(&format!(
                "{{\"id\":\"m{i}\",\"content\":\"{}\"}}\n",
                "word ".repeat(i % 40)
            ));
        }
    }
    t.into_bytes()
}

/// A table whose central directory declares fewer uncompressed bytes than
/// it holds, with a bad line shortly before the declared end: whatever the
/// readers' buffer sizes, reading the rows and deep verify meet the same
/// first problem (found by a review: a read crossing the declared size
/// withheld the good bytes before it, as many as the caller's buffer held).
#[test]
fn pipelined_verify_meets_what_the_rows_meet_when_the_declared_size_is_short() {
    let table = message_rows(60_000, Some(57_000));
    let bad_offset = table
        .windows(12)
        .position(|w| w == b"unterminated")
        .unwrap();
    let base = raw(&[
        ("manifest.json", MANIFEST),
        ("database/messages.ndjson", &table),
        ("manifest-stats.json", b"{}"),
    ]);
    let (_, _, central) = find(&layout(&base), "database/messages.ndjson").clone();
    let mut diffs = Vec::new();
    for after in (1..40).map(|k| k * 8 * 1024) {
        let declared = (bad_offset + 100 + after) as u32;
        assert!(
            declared as usize > 4 << 20,
            "large enough to take the pipeline"
        );
        let mut b = base.clone();
        b[central + 24..central + 28].copy_from_slice(&declared.to_le_bytes());
        let reference = first_row_problem(&b, "messages");
        let got = first_verify_problem(&b, "database/messages.ndjson");
        if reference != got {
            diffs.push((after, reference.map(|p| p.code), got.map(|p| p.code)));
        }
    }
    assert!(diffs.is_empty(), "{diffs:?}");
}

/// A table whose deflate stream breaks (a block of the reserved type) some
/// way after a bad line: reading the rows and deep verify meet the same
/// first problem, wherever the reads fall.
#[test]
fn pipelined_verify_meets_what_the_rows_meet_before_a_corrupt_deflate_block() {
    use std::io::Write as _;
    let mut diffs = Vec::new();
    for after in (1..40).map(|k| k * 8 * 1024) {
        let mut part = message_rows(52_000, Some(51_000));
        let mut i = 0;
        let mut tail = Vec::new();
        while tail.len() < after {
            tail.extend_from_slice(format!("{{\"id\":\"t{i}\"}}\n").as_bytes());
            i += 1;
        }
        part.extend_from_slice(&tail);
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(3));
        enc.write_all(&part).unwrap();
        enc.flush().unwrap(); // sync flush: the next block starts on a byte
        let mut stored = enc.get_ref().clone();
        stored.extend_from_slice(&[0x07, 0, 0, 0, 0, 0, 0, 0]); // BFINAL=1, BTYPE=11
        let declared = (part.len() + 1000) as u32;
        // Written stored, then marked deflated.
        let mut b = {
            let mut z = ZipWriter::new(Vec::new());
            let o = |method| EntryOptions {
                method,
                dos_time: (0, 33),
                external_attr: DEFAULT_EXTERNAL_ATTR,
            };
            z.add_entry("manifest.json", o(Method::Deflated(3)), MANIFEST)
                .unwrap();
            z.add_entry("database/messages.ndjson", o(Method::Stored), &stored)
                .unwrap();
            z.add_entry("manifest-stats.json", o(Method::Deflated(3)), b"{}")
                .unwrap();
            z.finish().unwrap().0
        };
        let (_, local, central) = find(&layout(&b), "database/messages.ndjson").clone();
        b[local + 8] = 8;
        b[central + 10] = 8;
        b[central + 24..central + 28].copy_from_slice(&declared.to_le_bytes());
        let reference = first_row_problem(&b, "messages");
        let got = first_verify_problem(&b, "database/messages.ndjson");
        if reference != got {
            diffs.push((after, reference.map(|p| p.code), got.map(|p| p.code)));
        }
    }
    assert!(diffs.is_empty(), "{diffs:?}");
}

/// A by-name digest field (the version-1 layout) is a digest field only
/// below version 3: version 3 by name, or a version this reader does not
/// know, checks nothing (found by a review: both were checked against the
/// uncompressed bytes).
#[test]
fn by_name_digests_count_only_below_version_3() {
    use sha2::{Digest, Sha256};
    let t1: &[u8] = b"{\"id\":\"a\",\"text\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}\n";
    let build = |trailer: &str| {
        raw(&[
            ("manifest.json", MANIFEST),
            ("database/a.ndjson", t1),
            ("manifest-stats.json", trailer.as_bytes()),
        ])
    };
    let first = build("{}");
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let by_name = |version: u32, digests: [Vec<u8>; 2]| {
        format!(
            "{{\"counts\":{{}},\"missingFiles\":[],\"lvbak\":{{\"version\":{version},\"sha256\":{{\"manifest.json\":\"{}\",\"database/a.ndjson\":\"{}\"}}}}}}",
            hex(&digests[0]),
            hex(&digests[1]),
        )
    };
    let stored = [
        Sha256::digest(stored_bytes(&first, "manifest.json")).to_vec(),
        Sha256::digest(stored_bytes(&first, "database/a.ndjson")).to_vec(),
    ];
    let content = [
        Sha256::digest(MANIFEST).to_vec(),
        Sha256::digest(t1).to_vec(),
    ];
    let wrong = [vec![0u8; 32], vec![0u8; 32]];
    let problems = |b: &[u8]| -> Vec<String> {
        verify(Cursor::new(b), Limits::default(), Depth::Deep)
            .problems
            .into_iter()
            .map(|p| format!("{} {:?}", p.code, p.entry))
            .collect()
    };
    for (version, digests, mismatches) in [
        (3, stored.clone(), 0),
        (4, wrong.clone(), 0),
        (1, content.clone(), 0),
        (2, content, 0),
        (1, wrong, 2),
        (2, stored, 2),
    ] {
        let b = build(&by_name(version, digests));
        let p = problems(&b);
        assert_eq!(p.len(), mismatches, "version {version}: {p:?}");
        assert!(p.iter().all(|p| p.starts_with("digest_mismatch")), "{p:?}");
        assert_eq!(
            open(&b).unwrap().trailer().unwrap().lvbak.is_some(),
            version < 3,
            "version {version}"
        );
    }
}

/// `verify_path` on two threads reads the trailer ahead, guessing that it
/// is the directory's last record: when the last record is a second
/// `manifest-stats.json` (a duplicate the scan drops) or not the trailer
/// at all, the report is still the one of the first trailer record.
#[test]
fn the_trailer_read_ahead_is_used_only_when_it_is_the_scanned_one() {
    let object = br#"{"totalEntries":2,"totalBytes":1}"#;
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // Two trailer records: the first is a JSON object, the last is not.
        ("duplicate trailer last", {
            let mut b = raw(&[
                ("manifest.json", MANIFEST),
                ("manifest-stats.json", object),
                ("database/chats.ndjson", b"{\"id\":\"c1\"}\n"),
                ("manifest-stats.jsoQ", b"[1,2,3]"),
            ]);
            let (from, to) = (&b"manifest-stats.jsoQ"[..], &b"manifest-stats.json"[..]);
            let mut at = 0;
            while let Some(i) = b[at..].windows(from.len()).position(|w| w == from) {
                b[at + i..at + i + to.len()].copy_from_slice(to);
                at += i + 1;
            }
            b
        }),
        // The trailer not last.
        (
            "trailer first",
            raw(&[
                ("manifest-stats.json", b"[not an object]"),
                ("manifest.json", MANIFEST),
                ("database/chats.ndjson", b"{\"id\":\"c1\"}\n"),
            ]),
        ),
        // The trailer last and not an object.
        (
            "bad trailer last",
            raw(&[
                ("manifest.json", MANIFEST),
                ("database/chats.ndjson", b"{\"id\":\"c1\"}\n"),
                ("manifest-stats.json", b"[not an object]"),
            ]),
        ),
        ("an lvbak archive", good(true)),
    ];
    for (what, bytes) in cases {
        let p = tmp.path().join("t.lvbak");
        std::fs::write(&p, &bytes).unwrap();
        for depth in [Depth::Fast, Depth::Deep] {
            let held = verify_holding_directory(Cursor::new(&bytes[..]), Limits::default(), depth);
            let par =
                lvbak::archive::verify_path(&p, Limits::default(), depth, 2, &mut |_, _, _| {});
            assert_eq!(par, held, "{what} {depth:?}");
            if what == "duplicate trailer last" {
                assert!(
                    held.problems.iter().all(|q| q.code != "bad_json"),
                    "the first trailer record is the trailer: {:?}",
                    held.problems
                );
            }
        }
    }
}

/// In-order digests skip the trailer's own position (FORMAT.md §5.1): an
/// entry after the trailer has the digest one before its position.
#[test]
fn an_entry_after_the_trailer_has_the_digest_before_its_position() {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let sha = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
    let t1: &[u8] = b"{\"id\":\"a\"}\n";
    let png: &[u8] = b"not really a png";
    // Version 2: digests of the content, so they do not depend on how
    // the entries were compressed.
    let with_digests = |ds: &[[u8; 32]]| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(ds.concat());
        let trailer = format!(
            "{{\"counts\":{{}},\"missingFiles\":[],\"lvbak\":{{\"version\":2,\"entries\":{},\"sha256\":\"{b64}\"}}}}",
            ds.len()
        );
        raw(&[
            ("manifest.json", MANIFEST),
            ("database/a.ndjson", t1),
            ("manifest-stats.json", trailer.as_bytes()),
            ("files/avatars/x.png", png),
        ])
    };
    let right = with_digests(&[sha(MANIFEST), sha(t1), sha(png)]);
    let r = verify(Cursor::new(&right[..]), Limits::default(), Depth::Deep);
    assert!(r.is_ok(), "{:?}", r.problems);
    // The last two digests swapped: both entries are reported.
    let swapped = with_digests(&[sha(MANIFEST), sha(png), sha(t1)]);
    let r = verify(Cursor::new(&swapped[..]), Limits::default(), Depth::Deep);
    let mismatched: Vec<_> = r
        .problems
        .iter()
        .filter(|p| p.code == "digest_mismatch")
        .filter_map(|p| p.entry.clone())
        .collect();
    assert_eq!(
        mismatched,
        ["database/a.ndjson", "files/avatars/x.png"],
        "{:?}",
        r.problems
    );
}

/// A table of several of the writer's 1 MiB segments, deep-checked in
/// parts on two and three threads (`verify_path_split_from` with a
/// threshold of 0), reports exactly as the reader that holds the
/// directory checking it in one pass: sound, and with bytes changed
/// anywhere in its stored data, the bytes of its flush points included.
#[test]
fn a_table_checked_in_parts_reports_as_one_pass_does() {
    // Without digests, only the CRC-32 tells a changed byte that still
    // inflates.
    for digests in [true, false] {
        table_in_parts(digests);
    }
}

fn table_in_parts(digests: bool) {
    let m = Manifest::new(ID, 1_700_000_000);
    let opts = WriteOptions {
        deterministic: true,
        digests,
        ..WriteOptions::default()
    };
    let mut w = lvbak::ArchiveWriter::new(Vec::new(), &m, opts).unwrap();
    let mut t = w.table("messages").unwrap();
    for i in 0..30_000 {
        let text = "words of a message ".repeat(i % 17);
        t.write_row(&format!(
            r#"{{"id":"m{i}","chat_id":"c{}","content":"{text}"}}"#,
            i % 50
        ))
        .unwrap();
    }
    t.finish().unwrap();
    w.add_file(Bucket::Avatars, "a.png", &b"AAAAAAAA"[..])
        .unwrap();
    let good = w.finish().unwrap().0;
    // The table's stored data: after its local header's name and extra field.
    let name = b"database/messages.ndjson";
    let at = good.windows(name.len()).position(|w| w == name).unwrap();
    let extra = u16::from_le_bytes([good[at - 2], good[at - 1]]) as usize;
    let start = at + name.len() + extra;
    let end = start
        + good[start..]
            .windows(4)
            .position(|w| w == b"PK\x07\x08" || w == b"PK\x03\x04")
            .unwrap();
    let flushes: Vec<usize> = (start..end - 4)
        .filter(|&i| good[i..i + 4] == [0, 0, 0xff, 0xff])
        .collect();
    assert!(flushes.len() >= 3, "the table spans several segments");
    let mut changed: Vec<usize> = (0..40).map(|k| start + (end - start) * k / 40).collect();
    for f in &flushes {
        changed.extend([*f, f + 3, f + 4]);
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("t.lvbak");
    let mut cases = vec![("sound".to_owned(), good.clone())];
    // The table's central and local records marked encrypted.
    let mut encrypted = good.clone();
    let central = at
        + name.len()
        + good[at + name.len()..]
            .windows(name.len())
            .position(|w| w == name)
            .unwrap();
    encrypted[central - 46 + 8] |= 1;
    encrypted[at - 30 + 6] |= 1;
    cases.push(("encrypted".to_owned(), encrypted));
    for i in changed {
        let mut b = good.clone();
        b[i] ^= 0x20;
        cases.push((format!("byte {} of {} changed", i - start, end - start), b));
    }
    for (what, bytes) in cases {
        std::fs::write(&p, &bytes).unwrap();
        let held =
            verify_holding_directory(Cursor::new(&bytes[..]), Limits::default(), Depth::Deep);
        if what == "sound" {
            assert!(held.is_ok(), "{:?}", held.problems);
        }
        for threads in [2, 3] {
            let split = lvbak::archive::verify_path_split_from(
                &p,
                Limits::default(),
                Depth::Deep,
                threads,
                0,
                &mut |_, _, _| {},
            );
            assert_eq!(split, held, "{what}, {threads} threads, digests {digests}");
        }
    }
}
