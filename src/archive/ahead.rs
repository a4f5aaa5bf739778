//! The trailer read ahead: while one thread scans the central directory,
//! another reads the trailer, guessing that its record is the directory's
//! last (lvbak and the Lumiverse server write it last). The guess is used
//! only when the scan finds exactly that record, so the report is the same
//! either way; a wrong guess costs the second thread's work and nothing
//! else.

use std::io::{Read, Seek, SeekFrom};

use super::reader::read_trailer_lean;
use super::ArchiveError;
use crate::container::records::{CENTRAL_LEN, CENTRAL_SIG};
use crate::container::{locate_directory, CentralEntry, Records};
use crate::entry_name::EntryName;
use crate::manifest::{KeepDigests, Trailer};
use crate::Limits;

/// A trailer read from the record guessed to be it.
pub(crate) struct Ahead {
    /// The record guessed (with the index and space end the scan gives
    /// the directory's last record).
    pub(crate) record: CentralEntry,
    /// What reading it gave.
    pub(crate) trailer: Result<Option<Trailer>, ArchiveError>,
}

/// Bytes of the directory's end searched for the trailer's record: its
/// fixed part, its name and up to 512 bytes of extra field and comment.
const TAIL: usize = 1024;

/// The trailer of the archive `r` reads, from the directory's last record
/// when that record is named `manifest-stats.json`; `None` when it is not
/// (or the directory cannot be located, or read there).
pub(crate) fn read_ahead<R: Read + Seek>(
    r: &mut R,
    limits: &Limits,
    keep: KeepDigests,
) -> Option<Ahead> {
    let at = locate_directory(r, limits).ok()?;
    let len = usize::try_from(at.cd_size).ok()?.min(TAIL);
    let start = at.cd_offset.checked_add(at.cd_size)? - len as u64;
    r.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = vec![0u8; len];
    r.read_exact(&mut tail).ok()?;
    let last = last_record_named(&tail, EntryName::Trailer.to_string().as_bytes())?;
    let consumed = at.cd_size - (len - last) as u64;
    let index = at.entries.checked_sub(1)?;
    let mut recs = Records::resume(r, at, (index, consumed), 4096).ok()?;
    let (fields, raw) = recs.next_record().ok()??;
    let record = fields.with_name(raw.to_owned(), at.cd_offset);
    drop(recs);
    let trailer = read_trailer_lean(r, &record, limits, keep);
    Some(Ahead { record, trailer })
}

/// Where in `tail` (the end of a directory) the record named `name` starts
/// that ends exactly where `tail` does, if one does.
fn last_record_named(tail: &[u8], name: &[u8]) -> Option<usize> {
    let sig = CENTRAL_SIG.to_le_bytes();
    let u16_at = |b: &[u8], i: usize| -> Option<usize> {
        Some(usize::from(u16::from_le_bytes([
            *b.get(i)?,
            *b.get(i + 1)?,
        ])))
    };
    (0..tail.len().saturating_sub(CENTRAL_LEN))
        .rev()
        .find(|&p| {
            let Some(rec) = tail.get(p..) else {
                return false;
            };
            let sizes = (u16_at(rec, 28), u16_at(rec, 30), u16_at(rec, 32));
            let (Some(n), Some(x), Some(c)) = sizes else {
                return false;
            };
            rec.starts_with(&sig)
                && n == name.len()
                && CENTRAL_LEN + n + x + c == rec.len()
                && rec.get(CENTRAL_LEN..CENTRAL_LEN + n) == Some(name)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A central record's bytes with only the fields the search reads set.
    fn record(name: &[u8], extra: usize, comment: usize) -> Vec<u8> {
        let mut r = vec![0u8; CENTRAL_LEN];
        r[..4].copy_from_slice(&CENTRAL_SIG.to_le_bytes());
        r[28..30].copy_from_slice(&(name.len() as u16).to_le_bytes());
        r[30..32].copy_from_slice(&(extra as u16).to_le_bytes());
        r[32..34].copy_from_slice(&(comment as u16).to_le_bytes());
        r.extend_from_slice(name);
        r.extend(std::iter::repeat_n(7u8, extra + comment));
        r
    }

    #[test]
    fn an_lvbak_archive_s_trailer_is_read_ahead() {
        let m = crate::Manifest::new("11111111-2222-4333-8444-555555555555", 1_700_000_000);
        let mut w =
            crate::ArchiveWriter::new(Vec::new(), &m, crate::WriteOptions::default()).unwrap();
        for i in 0..5 {
            w.add_file(crate::Bucket::Avatars, &format!("{i}.png"), &b"data"[..])
                .unwrap();
        }
        let (bytes, _) = w.finish().unwrap();
        let mut r = std::io::Cursor::new(&bytes[..]);
        let ahead = read_ahead(&mut r, &Limits::default(), KeepDigests::Count).unwrap();
        assert_eq!(ahead.record.name, "manifest-stats.json");
        assert_eq!(ahead.record.index, 6); // manifest, 5 files, trailer
        let trailer = ahead.trailer.unwrap().unwrap();
        assert_eq!(trailer.in_order_count(), Some(6));
    }

    #[test]
    fn the_last_record_is_found_only_when_it_ends_the_tail_and_has_the_name() {
        let name = b"manifest-stats.json";
        let mut tail = record(b"files/images/a.png", 0, 0);
        let at = tail.len();
        tail.extend(record(name, 20, 3));
        assert_eq!(last_record_named(&tail, name), Some(at));
        // Another name last, or the record not ending the tail.
        let mut other = tail.clone();
        other.extend(record(b"database/chats.ndjson", 0, 0));
        assert_eq!(last_record_named(&other, name), None);
        let mut longer = tail.clone();
        longer.push(0);
        assert_eq!(last_record_named(&longer, name), None);
        // A tail too short for a record, or cut inside one.
        assert_eq!(last_record_named(&tail[..10], name), None);
        assert_eq!(last_record_named(&tail[at + 5..], name), None);
        assert_eq!(last_record_named(&[], name), None);
    }
}
