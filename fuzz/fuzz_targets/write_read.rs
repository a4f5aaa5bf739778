//! The ZIP writer against the reader: whatever entries are written (any
//! bytes, stored or deflated, including bytes that look like ZIP records),
//! the archive reads back with the same names, sizes and CRCs, and every
//! entry's bytes come back.
#![no_main]

use std::io::{Cursor, Read};

use libfuzzer_sys::fuzz_target;
use lvbak::container::write::{EntryOptions, Method, ZipWriter, DEFAULT_EXTERNAL_ATTR};
use lvbak::container::{CentralDirectory, EntryReader};
use lvbak::Limits;

fuzz_target!(|data: &[u8]| {
    // Entries: a length byte, a method byte, then that many bytes (the
    // last entry takes what is left).
    let mut rest = data;
    let mut entries: Vec<(String, Method, &[u8])> = Vec::new();
    while let [len, method, tail @ ..] = rest {
        let n = (usize::from(*len) * 64).min(tail.len());
        let (body, next) = tail.split_at(n);
        let method = if method % 2 == 0 {
            Method::Stored
        } else {
            Method::Deflated(u32::from(method % 10))
        };
        entries.push((format!("e{}", entries.len()), method, body));
        rest = next;
        if entries.len() == 16 {
            break;
        }
    }
    if entries.is_empty() {
        return;
    }
    if let Some(last) = entries.last_mut() {
        if !rest.is_empty() {
            last.2 = rest;
        }
    }
    let mut z = ZipWriter::new(Vec::new());
    z.set_threads(1);
    for (name, method, body) in &entries {
        let opts = EntryOptions {
            method: *method,
            dos_time: (0, 33),
            external_attr: DEFAULT_EXTERNAL_ATTR,
        };
        z.add_entry(name, opts, body).expect("writing to memory");
    }
    let (bytes, _) = z.finish().expect("finishing");
    let mut cursor = Cursor::new(&bytes);
    let cd = CentralDirectory::read(&mut cursor, &Limits::default())
        .unwrap_or_else(|e| panic!("the writer's archive does not read back: {e}"));
    assert_eq!(cd.entries.len(), entries.len());
    for (e, (name, _, body)) in cd.entries.iter().zip(&entries) {
        assert_eq!(&e.name, name);
        assert_eq!(e.uncompressed_size, body.len() as u64);
        let mut got = Vec::new();
        EntryReader::new(&mut cursor, e)
            .and_then(|mut r| r.read_to_end(&mut got).map_err(Into::into))
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(&got[..], *body, "{name}");
    }
});
