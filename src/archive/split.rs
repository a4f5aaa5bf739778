//! Deep verify of one large deflated NDJSON entry in parts, each inflated
//! on its own thread.
//!
//! Inflating is the one step of a deep verify that cannot be shared out
//! entry by entry: an account's message table is most of the archive. A
//! deflate stream can be inflated from the middle only at a point where a
//! block starts on a byte boundary and nothing after it refers back before
//! it. lvbak's writer makes such points: it compresses each 1 MiB segment
//! with a fresh compressor and ends it with a full flush, an empty stored
//! block whose last four bytes are `00 00 ff ff`. Other writers (the
//! server) may make none, and those four bytes can also occur anywhere by
//! chance, so a point found by its bytes is used only once proved:
//!
//! - The part after the point is inflated alone, with no earlier output:
//!   a back-reference to before the point is an error there ("distance too
//!   far back"). So its output is what inflating the whole stream gives
//!   after the point, provided that inflater is waiting for a block header
//!   on that byte boundary.
//! - The part before the point proves that: its inflater, which started at
//!   the stream's start, is given after the point a probe, a non-final
//!   stored block of 32 random bytes followed by an empty final block. An
//!   inflater waiting for a block header on the boundary outputs exactly
//!   those bytes and ends exactly at the probe's end. One inside a stored
//!   block copies the probe's header too, and one with bits left over in
//!   the byte before the point (which is `ff`) reads a final block and ends
//!   early. One inside a Huffman block or its header would have to decode
//!   32 bytes drawn after the stream was made to exactly themselves.
//!
//! Any failure at all (a point not proved, a problem in the data, a line
//! that is not JSON) makes the caller check the entry again in one pass,
//! so every problem is reported exactly as the one-pass check reports it;
//! only an entry found sound is taken from here.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, Ordering};

use flate2::{Decompress, FlushDecompress, Status};
use sha2::{Digest, Sha256};

use crate::container::end_checks;
use crate::ndjson::{check_line, is_blank};

/// The bytes a full flush ends with: an empty stored block's length and
/// its complement.
const MARKER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// How far past each part's ideal start a point is looked for. lvbak's
/// writer makes one every 1 MiB of input, which compresses to much less.
const SEARCH: u64 = 4 << 20;

/// Bytes read (and inflated into) at a time by each part.
const BUF: usize = 256 * 1024;

/// Random bytes in the probe's stored block.
const PROBE_LEN: usize = 32;

/// The most each part keeps of a partial line at either end (the line cap
/// when lower): a longer line across a part's ends makes the entry be
/// checked in one pass, so that parts never hold much more than the
/// one-pass check's single line (the cap can be unlimited).
const KEEP: u64 = 1 << 20;

/// What is known of the entry before it is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Offset of its first stored byte.
    pub data_start: u64,
    /// Offset one past its last stored byte.
    pub data_end: u64,
    /// The declared uncompressed size.
    pub size: u64,
    /// The declared CRC-32.
    pub crc: u32,
    /// The SHA-256 of the stored bytes to check, if any.
    pub stored_sha256: Option<[u8; 32]>,
    /// The longest line allowed (without its `\n`).
    pub line_cap: u64,
    /// The deepest JSON nesting allowed.
    pub max_depth: u32,
}

/// Checks the entry `plan` describes in up to `parts` parts: part 0 on
/// this thread through `first`, the others on threads of their own, each
/// reading through a handle from `open`. True only when every check the
/// one-pass deep check makes passed (size, CRC-32, stored SHA-256, every
/// line); false when the entry could not be split or anything failed.
pub(crate) fn check_in_parts<R: Read + Seek + Send>(
    first: &mut R,
    open: &(dyn Fn() -> io::Result<R> + Sync),
    plan: &Plan,
    parts: usize,
) -> bool {
    let Ok(points) = find_points(first, plan, parts) else {
        return false;
    };
    if points.is_empty() {
        return false;
    }
    let mut payload = [0u8; PROBE_LEN];
    if getrandom::getrandom(&mut payload).is_err() {
        return false;
    }
    let probe = probe(&payload);
    // Part i covers bounds[i]..bounds[i + 1].
    let mut bounds = Vec::with_capacity(points.len() + 2);
    bounds.push(plan.data_start);
    bounds.extend_from_slice(&points);
    bounds.push(plan.data_end);
    let stop = AtomicBool::new(false);
    let results: Vec<Option<PartOut>> = std::thread::scope(|sc| {
        let (stop, probe, payload, bounds) = (&stop, &probe, &payload, &bounds);
        // (A thread the system cannot start is a part that failed.)
        let others: Vec<_> = (1..bounds.len() - 1)
            .map(|i| {
                let spawned = std::thread::Builder::new()
                    .name("lvbak-verify-part".into())
                    .spawn_scoped(sc, move || {
                        let mut r = open().ok()?;
                        let last = i == bounds.len() - 2;
                        let end = (!last).then_some((&probe[..], &payload[..]));
                        let out =
                            inflate_part(&mut r, bounds[i], bounds[i + 1], false, end, plan, stop);
                        if out.is_none() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        out
                    });
                if spawned.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                spawned.ok()
            })
            .collect();
        let end = Some((&probe[..], &payload[..]));
        let mut part0 = inflate_part(first, bounds[0], bounds[1], true, end, plan, stop);
        // The stored bytes' digest covers the whole entry, in order: part
        // 0 hashed its own as it read them, and reads the rest again
        // (compared in `parts_agree`).
        if let Some(h) = part0.as_mut().and_then(|p| p.sha.as_mut()) {
            if hash_range(first, bounds[1], plan.data_end, h, stop).is_err() {
                part0 = None;
            }
        }
        if part0.is_none() {
            stop.store(true, Ordering::Relaxed);
        }
        let mut all = vec![part0];
        all.extend(
            others
                .into_iter()
                .map(|h| h.and_then(|h| h.join().ok().flatten())),
        );
        all
    });
    let Some(parts) = results.into_iter().collect::<Option<Vec<_>>>() else {
        return false;
    };
    parts_agree(&parts, plan)
}

/// The points (offsets just past a [`MARKER`]) where parts 1.. start: for
/// each, the first one at or after its share of the stored bytes, within
/// [`SEARCH`]; points not found are left out.
fn find_points<R: Read + Seek>(r: &mut R, plan: &Plan, parts: usize) -> io::Result<Vec<u64>> {
    let len = plan.data_end.saturating_sub(plan.data_start);
    let mut points: Vec<u64> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for i in 1..parts as u64 {
        let ideal = plan.data_start + len / parts as u64 * i;
        let from = points.last().map_or(ideal, |p| ideal.max(*p));
        let until = from.saturating_add(SEARCH).min(plan.data_end);
        if let Some(p) = find_marker(r, from, until, &mut buf)? {
            // A point at the very end leaves nothing to inflate after it.
            if p < plan.data_end && points.last() != Some(&p) {
                points.push(p);
            }
        }
    }
    Ok(points)
}

/// The offset just past the first [`MARKER`] that lies wholly in
/// `from..until`.
fn find_marker<R: Read + Seek>(
    r: &mut R,
    from: u64,
    until: u64,
    buf: &mut [u8],
) -> io::Result<Option<u64>> {
    r.seek(SeekFrom::Start(from))?;
    let mut at = from;
    // The last bytes of the previous read, so a marker across two reads is seen.
    let mut carry = 0usize;
    while at < until {
        let want = ((until - at) as usize).min(buf.len() - carry);
        let n = r.read(&mut buf[carry..carry + want])?;
        if n == 0 {
            return Ok(None);
        }
        let seen = &buf[..carry + n];
        if let Some(i) = marker_end(seen) {
            return Ok(Some(at - carry as u64 + i as u64));
        }
        at += n as u64;
        carry = seen.len().min(MARKER.len() - 1);
        let keep = seen.len() - carry;
        buf.copy_within(keep..keep + carry, 0);
    }
    Ok(None)
}

/// The index just past the first [`MARKER`] in `bytes`.
fn marker_end(bytes: &[u8]) -> Option<usize> {
    memchr::memmem::find(bytes, &MARKER).map(|i| i + MARKER.len())
}

/// The probe given to a part's inflater after its last byte: a non-final
/// stored block holding `payload`, then an empty final block (fixed codes:
/// the header and the end-of-block code).
fn probe(payload: &[u8; PROBE_LEN]) -> Vec<u8> {
    let n = PROBE_LEN as u16;
    let mut p = vec![0x00];
    p.extend_from_slice(&n.to_le_bytes());
    p.extend_from_slice(&(!n).to_le_bytes());
    p.extend_from_slice(payload);
    p.extend_from_slice(&[0x03, 0x00]);
    p
}

/// What one part found, for [`parts_agree`].
#[derive(Debug)]
struct PartOut {
    crc: crc32fast::Hasher,
    len: u64,
    lines: PartLines,
    /// The first part's SHA-256 of its stored bytes (of the whole entry's
    /// once [`check_in_parts`] has read the rest), when the entry's digest
    /// is checked.
    sha: Option<Sha256>,
}

/// Inflates the stored bytes `from..to` with a fresh inflater, checking
/// each whole line and keeping the partial ones at either end. `first`:
/// the part starts the entry (so its first bytes start a line); `end`:
/// the probe and its payload to prove that the part ends on a block
/// boundary (`None` for the last part, which must end the deflate stream
/// exactly at `to`). `None` on any failure, or when `stop` was set.
fn inflate_part<R: Read + Seek>(
    r: &mut R,
    from: u64,
    to: u64,
    first: bool,
    end: Option<(&[u8], &[u8])>,
    plan: &Plan,
    stop: &AtomicBool,
) -> Option<PartOut> {
    r.seek(SeekFrom::Start(from)).ok()?;
    let mut input = vec![0u8; BUF];
    let mut out = vec![0u8; BUF];
    let mut d = Decompress::new(false);
    let mut lines = PartLines::new(first, plan.line_cap, plan.max_depth);
    let mut crc = crc32fast::Hasher::new();
    let mut sha = (first && plan.stored_sha256.is_some()).then(Sha256::new);
    let mut len = 0u64;
    let mut left = to - from;
    let mut ended = false;
    while left > 0 && !ended {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let want = (left as usize).min(BUF);
        r.read_exact(&mut input[..want]).ok()?;
        left -= want as u64;
        if let Some(h) = &mut sha {
            h.update(&input[..want]);
        }
        let mut pos = 0usize;
        // Inflate this read's bytes: until they are used up and the
        // output buffer is no longer filled.
        loop {
            let (in0, out0) = (d.total_in(), d.total_out());
            let status = d
                .decompress(&input[pos..want], &mut out, FlushDecompress::None)
                .ok()?;
            pos += (d.total_in() - in0) as usize;
            let produced = (d.total_out() - out0) as usize;
            let chunk = &out[..produced];
            len += produced as u64;
            if len > plan.size {
                return None;
            }
            crc.update(chunk);
            if !lines.feed(chunk) {
                return None;
            }
            if status == Status::StreamEnd {
                ended = true;
                break;
            }
            if pos == want && produced < out.len() {
                break;
            }
            if produced == 0 && d.total_in() == in0 {
                return None; // no progress: cannot happen with input left
            }
        }
        // Bytes left after the stream's end mean a lying compressed size
        // (or, before the last part, a final block inside the entry).
        if ended && (pos < want || left > 0) {
            return None;
        }
    }
    match end {
        // The last part: the stream must end exactly at the entry's end.
        None => ended.then_some(())?,
        Some((probe, payload)) => {
            if ended || !proves_boundary(&mut d, probe, payload) {
                return None;
            }
        }
    }
    Some(PartOut {
        crc,
        len,
        lines,
        sha,
    })
}

/// Feeds `probe` to `d`, which has inflated everything before a candidate
/// point: true when it outputs exactly `payload` and ends the stream
/// exactly at the probe's end (see the module's documentation).
fn proves_boundary(d: &mut Decompress, probe: &[u8], payload: &[u8]) -> bool {
    let mut got = Vec::with_capacity(payload.len());
    let mut out = [0u8; 2 * PROBE_LEN];
    let mut pos = 0usize;
    loop {
        let (in0, out0) = (d.total_in(), d.total_out());
        let Ok(status) = d.decompress(&probe[pos..], &mut out, FlushDecompress::None) else {
            return false;
        };
        pos += (d.total_in() - in0) as usize;
        let produced = (d.total_out() - out0) as usize;
        got.extend_from_slice(&out[..produced]);
        if got.len() > payload.len() {
            return false;
        }
        if status == Status::StreamEnd {
            return pos == probe.len() && got == payload;
        }
        if produced == 0 && d.total_in() == in0 {
            return false;
        }
    }
}

/// Adds the stored bytes `from..to` read from `r` to `h`.
fn hash_range<R: Read + Seek>(
    r: &mut R,
    from: u64,
    to: u64,
    h: &mut Sha256,
    stop: &AtomicBool,
) -> io::Result<()> {
    r.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; BUF];
    let mut left = to.saturating_sub(from);
    while left > 0 {
        if stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("stopped"));
        }
        let want = (left as usize).min(BUF);
        r.read_exact(&mut buf[..want])?;
        h.update(&buf[..want]);
        left -= want as u64;
    }
    Ok(())
}

/// The lines of one part's output: whole lines are checked as they come;
/// the bytes before the part's first `\n` (unless the part starts the
/// entry) and after its last one are kept, to be joined with the
/// neighbouring parts' ([`parts_agree`]).
#[derive(Debug)]
struct PartLines {
    cap: u64,
    /// The most kept at either end: the cap, or [`KEEP`] if lower.
    keep: u64,
    depth: u32,
    /// The bytes before the first `\n` while it is still to come (`None`
    /// for the first part, whose first line starts at its first byte).
    head: Option<Vec<u8>>,
    /// Whether a `\n` was seen.
    newline: bool,
    /// The bytes after the last `\n` (or since the part's start, for the
    /// first part, until a `\n` comes).
    tail: Vec<u8>,
}

impl PartLines {
    fn new(first: bool, cap: u64, depth: u32) -> PartLines {
        PartLines {
            cap,
            keep: cap.min(KEEP),
            depth,
            head: (!first).then(Vec::new),
            newline: false,
            tail: Vec::new(),
        }
    }

    /// Takes the next output bytes; false at a line that fails.
    fn feed(&mut self, mut bytes: &[u8]) -> bool {
        if !self.newline {
            if let Some(head) = &mut self.head {
                let Some(i) = memchr::memchr(b'\n', bytes) else {
                    head.extend_from_slice(bytes);
                    return head.len() as u64 <= self.keep;
                };
                head.extend_from_slice(&bytes[..i]);
                self.newline = true;
                if head.len() as u64 > self.keep {
                    return false;
                }
                bytes = &bytes[i + 1..];
            }
        }
        let mut start = 0usize;
        for i in memchr::memchr_iter(b'\n', bytes) {
            self.newline = true;
            let ok = if self.tail.is_empty() {
                line_ok(&bytes[start..i], self.cap, self.depth)
            } else {
                self.tail.extend_from_slice(&bytes[start..i]);
                let ok = line_ok(&self.tail, self.cap, self.depth);
                self.tail.clear();
                ok
            };
            if !ok {
                return false;
            }
            start = i + 1;
        }
        // (A tail over the cap is a line over the cap; one over `keep`
        // sends the entry to the one-pass check.)
        self.tail.extend_from_slice(&bytes[start..]);
        self.tail.len() as u64 <= self.keep
    }
}

/// Whether one line (without its `\n`) passes the one-pass check: within
/// the cap, and blank (spaces, tabs and `\r` only) or a JSON value within
/// the depth limit.
fn line_ok(line: &[u8], cap: u64, depth: u32) -> bool {
    line.len() as u64 <= cap && (is_blank(line) || check_line(line, depth).is_ok())
}

/// Whether the parts together pass: sizes and CRC-32 add up to the
/// declared ones, the lines that cross from one part to the next (and the
/// entry's last line) pass, and the stored bytes' SHA-256 (in the first
/// part) is the recorded one.
fn parts_agree(parts: &[PartOut], plan: &Plan) -> bool {
    let sha = match (
        parts.first().and_then(|p| p.sha.clone()),
        plan.stored_sha256,
    ) {
        (_, None) => None,
        (Some(h), Some(want)) => Some((h, want)),
        (None, Some(_)) => return false,
    };
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    // The line begun in earlier parts and not yet ended.
    let mut open: Vec<u8> = Vec::new();
    for p in parts {
        crc.combine(&p.crc);
        len += p.len;
        // (The first part has no head: its first line starts the entry.)
        if let Some(head) = &p.lines.head {
            open.extend_from_slice(head);
            if !p.lines.newline {
                if open.len() as u64 > plan.line_cap {
                    return false;
                }
                continue; // the whole part is inside one line
            }
            if !line_ok(&open, plan.line_cap, plan.max_depth) {
                return false;
            }
            open.clear();
        }
        open.extend_from_slice(&p.lines.tail);
    }
    // The CRC-32 and the digest compared as the entry reader compares them
    // (its error, which names the entry, is not needed here).
    len == plan.size
        && (open.is_empty() || line_ok(&open, plan.line_cap, plan.max_depth))
        && end_checks("", Some((crc, plan.crc)), sha).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::write::deflate_segment;
    use flate2::{Compress, Compression, FlushCompress};
    use proptest::prelude::*;
    use std::io::Cursor;

    /// Rows of NDJSON, about `n` bytes.
    fn rows(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0u64;
        while out.len() < n {
            // Varied enough not to compress to nothing, repeated enough to
            // make back-references.
            let line = format!(
                "{{\"id\":\"m{i}\",\"chat\":\"c{}\",\"content\":\"{}\",\"n\":{}}}\n",
                i % 7,
                "lorem ipsum dolor ".repeat((i % 13) as usize),
                i.wrapping_mul(2_654_435_761) % 100_003
            );
            out.extend_from_slice(line.as_bytes());
            i += 1;
        }
        out
    }

    /// `data` compressed as lvbak's writer does, in segments of `seg` bytes.
    fn segmented(data: &[u8], seg: usize) -> Vec<u8> {
        let pieces: Vec<&[u8]> = data.chunks(seg).collect();
        let mut out = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            out.extend(deflate_segment(2, p, i + 1 == pieces.len()));
        }
        out
    }

    /// `data` compressed in one stream with `flush` after every `seg`
    /// bytes: a sync flush keeps the window, so later pieces refer back.
    fn flushed(data: &[u8], seg: usize, flush: FlushCompress) -> Vec<u8> {
        let mut c = Compress::new(Compression::new(6), false);
        let mut out = Vec::with_capacity(data.len() + 1024);
        let pieces: Vec<&[u8]> = data.chunks(seg).collect();
        for (i, p) in pieces.iter().enumerate() {
            let f = if i + 1 == pieces.len() {
                FlushCompress::Finish
            } else {
                flush
            };
            let mut input = *p;
            loop {
                out.reserve(64 * 1024);
                let before = c.total_in();
                let status = c.compress_vec(input, &mut out, f).unwrap();
                input = &input[(c.total_in() - before) as usize..];
                if status == Status::StreamEnd || (input.is_empty() && out.len() < out.capacity()) {
                    break;
                }
            }
        }
        out
    }

    fn plan_for(data: &[u8], stored: &[u8]) -> Plan {
        Plan {
            data_start: 0,
            data_end: stored.len() as u64,
            size: data.len() as u64,
            crc: crc32fast::hash(data),
            stored_sha256: Some(Sha256::digest(stored).into()),
            line_cap: 1 << 20,
            max_depth: 64,
        }
    }

    fn check(stored: &[u8], plan: &Plan, parts: usize) -> bool {
        let open = || Ok(Cursor::new(stored));
        check_in_parts(&mut Cursor::new(stored), &open, plan, parts)
    }

    #[test]
    fn segments_written_by_lvbak_are_checked_in_parts() {
        let data = rows(600_000);
        let stored = segmented(&data, 64 * 1024);
        let plan = plan_for(&data, &stored);
        let mut r = Cursor::new(&stored[..]);
        for parts in 2..=4 {
            let points = find_points(&mut r, &plan, parts).unwrap();
            assert_eq!(points.len(), parts - 1, "a point for every part");
            assert!(check(&stored, &plan, parts), "{parts} parts");
        }
        // Without a digest to check too.
        let plan = Plan {
            stored_sha256: None,
            ..plan
        };
        assert!(check(&stored, &plan, 2));
    }

    #[test]
    fn any_wrong_declaration_fails() {
        let data = rows(300_000);
        let stored = segmented(&data, 32 * 1024);
        let plan = plan_for(&data, &stored);
        assert!(check(&stored, &plan, 2));
        let wrong = [
            Plan {
                crc: plan.crc ^ 1,
                ..plan
            },
            Plan {
                size: plan.size + 1,
                ..plan
            },
            Plan {
                size: plan.size - 1,
                ..plan
            },
            Plan {
                stored_sha256: Some([7; 32]),
                ..plan
            },
            // The entry's stored bytes end before the stream does.
            Plan {
                data_end: plan.data_end - 1,
                ..plan
            },
        ];
        for (i, p) in wrong.iter().enumerate() {
            assert!(!check(&stored, p, 2), "wrong declaration {i} passed");
        }
        // Bytes after the stream's end (a lying compressed size).
        let mut longer = stored.clone();
        longer.push(0);
        let p = Plan {
            data_end: longer.len() as u64,
            stored_sha256: None,
            ..plan
        };
        assert!(!check(&longer, &p, 2));
    }

    #[test]
    fn a_line_that_fails_fails_wherever_it_lies() {
        let data = rows(200_000);
        // A bad line at the start, the middle, the end, and with no
        // final line feed.
        for at in [0, data.len() / 2, data.len()] {
            let mut bad = data.clone();
            let at = bad[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bad.len(), |i| at + i + 1);
            bad.splice(at..at, b"{\"id\": oops}\n".iter().copied());
            let stored = segmented(&bad, 16 * 1024);
            assert!(
                !check(&stored, &plan_for(&bad, &stored), 3),
                "bad line at {at}"
            );
        }
        let mut tail = data.clone();
        tail.extend_from_slice(b"{\"unclosed\":1");
        let stored = segmented(&tail, 16 * 1024);
        assert!(!check(&stored, &plan_for(&tail, &stored), 2));
        tail.push(b'}');
        let stored = segmented(&tail, 16 * 1024);
        assert!(check(&stored, &plan_for(&tail, &stored), 2));
    }

    #[test]
    fn a_stream_that_refers_back_across_the_point_is_not_split() {
        let data = rows(300_000);
        // A sync flush ends with the same four bytes as a full flush but
        // keeps the window: the part after it refers back before it.
        let stored = flushed(&data, 64 * 1024, FlushCompress::Sync);
        let plan = plan_for(&data, &stored);
        let points = find_points(&mut Cursor::new(&stored[..]), &plan, 2).unwrap();
        assert_eq!(points.len(), 1, "the sync flush's bytes are found");
        assert!(!check(&stored, &plan, 2));
        // The same points after a full flush, which forgets the window.
        let stored = flushed(&data, 64 * 1024, FlushCompress::Full);
        assert!(check(&stored, &plan_for(&data, &stored), 2));
    }

    /// Inflates `stored[..point]` and gives the inflater the probe.
    fn probe_at(stored: &[u8], point: usize) -> bool {
        let mut d = Decompress::new(false);
        let mut out = vec![0u8; 1 << 20];
        let mut pos = 0;
        while pos < point {
            let before = d.total_in();
            let status = d
                .decompress(&stored[pos..point], &mut out, FlushDecompress::None)
                .unwrap();
            pos += (d.total_in() - before) as usize;
            assert_ne!(status, Status::StreamEnd);
        }
        let payload = [0x5a; PROBE_LEN];
        proves_boundary(&mut d, &probe(&payload), &payload)
    }

    #[test]
    fn the_probe_tells_a_block_boundary_from_the_same_bytes_inside_a_block() {
        // The four bytes inside a stored block's data.
        let mut data = b"some text ".repeat(100);
        data.extend_from_slice(&MARKER);
        data.extend(b"more text ".repeat(100));
        let mut c = Compress::new(Compression::new(0), false);
        let mut stored = Vec::with_capacity(4096);
        c.compress_vec(&data, &mut stored, FlushCompress::Finish)
            .unwrap();
        let point = marker_end(&stored).unwrap();
        assert!(!probe_at(&stored, point));
        // A full flush's point passes (two segments of the same bytes).
        let stored = segmented(&data, 500);
        let point = marker_end(&stored).unwrap();
        assert!(probe_at(&stored, point));
        // One byte either side does not.
        assert!(!probe_at(&stored, point - 1));
        assert!(!probe_at(&stored, point + 1));
    }

    /// A raw deflate stream written bit by bit (least significant first;
    /// Huffman codes most significant bit first).
    #[derive(Default)]
    struct Bits {
        out: Vec<u8>,
        n: usize,
    }

    impl Bits {
        fn bit(&mut self, b: u32) {
            if self.n % 8 == 0 {
                self.out.push(0);
            }
            if b & 1 == 1 {
                *self.out.last_mut().unwrap() |= 1 << (self.n % 8);
            }
            self.n += 1;
        }
        fn number(&mut self, v: u32, len: u32) {
            (0..len).for_each(|i| self.bit(v >> i));
        }
        fn code(&mut self, c: u32, len: u32) {
            (0..len).rev().for_each(|i| self.bit(c >> i));
        }
    }

    /// A fixed-code block of five 9-bit literals, its end code, and one
    /// bit of the next block's header (`next_final`): seven bytes that
    /// leave the inflater at a block boundary with that bit left over.
    fn one_bit_left(next_final: u32) -> Vec<u8> {
        let mut b = Bits::default();
        b.number(0, 1); // not final
        b.number(1, 2); // fixed codes
        for _ in 0..5 {
            b.code(0b1_1001_0000 + (0xe9 - 0x90), 9);
        }
        b.code(0, 7); // end of block
        b.number(next_final, 1);
        assert_eq!(b.n, 56);
        b.out
    }

    #[test]
    fn the_probe_refuses_a_boundary_with_a_final_bit_left_over() {
        // The bit left over makes the probe's stored block final: it
        // outputs the payload but ends before the probe does.
        assert!(!probe_at(&one_bit_left(1), 7));
        // A non-final bit left over would pass the probe: that is why a
        // point must follow a marker, whose last byte (ff) leaves only
        // ones. Found points always do.
        assert!(probe_at(&one_bit_left(0), 7));
        let data = rows(100_000);
        let stored = segmented(&data, 8 * 1024);
        let plan = plan_for(&data, &stored);
        let points = find_points(&mut Cursor::new(&stored[..]), &plan, 4).unwrap();
        assert_eq!(points.len(), 3);
        for p in points {
            assert_eq!(stored[p as usize - 4..p as usize], MARKER);
        }
    }

    #[test]
    fn a_head_longer_than_the_cap_stops_at_once() {
        let mut lines = PartLines::new(false, 10, 64);
        assert!(lines.feed(b"0123456789"));
        assert!(!lines.feed(b"x"), "eleven bytes without a line feed");
        let mut lines = PartLines::new(false, 10, 64);
        assert!(!lines.feed(b"0123456789x\n{}"));
        // The first part has no head: its first line is checked whole.
        let mut lines = PartLines::new(true, 10, 64);
        assert!(!lines.feed(b"0123456789x"));
        // With no cap, a part keeps at most KEEP bytes at either end.
        let long = vec![b' '; KEEP as usize];
        for first in [false, true] {
            let mut lines = PartLines::new(first, u64::MAX, 64);
            assert!(lines.feed(&long));
            assert!(!lines.feed(b" "), "first part: {first}");
        }
        // A whole line within one read is checked where it lies.
        let mut lines = PartLines::new(true, u64::MAX, 64);
        let mut whole = long.clone();
        whole.extend_from_slice(b"  \n");
        assert!(lines.feed(&whole));
    }

    #[test]
    fn a_marker_across_two_reads_is_found() {
        let mut bytes = [1u8; 100];
        bytes[61..65].copy_from_slice(&MARKER);
        for buf_len in [4, 5, 7, 8, 16, 62, 64, 200] {
            let mut buf = vec![0u8; buf_len];
            let got = find_marker(&mut Cursor::new(&bytes[..]), 0, 100, &mut buf).unwrap();
            assert_eq!(got, Some(65), "buffer of {buf_len}");
            let from_past = find_marker(&mut Cursor::new(&bytes[..]), 62, 100, &mut buf).unwrap();
            assert_eq!(from_past, None, "buffer of {buf_len}");
            let cut = find_marker(&mut Cursor::new(&bytes[..]), 0, 64, &mut buf).unwrap();
            assert_eq!(cut, None, "a marker past the limit, buffer of {buf_len}");
        }
    }

    /// The one-pass check of NDJSON text: every line within the cap and
    /// blank or JSON.
    fn one_pass(text: &[u8], cap: u64) -> bool {
        let mut lines = crate::ndjson::LineReader::new(text, cap);
        loop {
            match crate::archive::reader::next_checked_line(&mut lines, "t", 64) {
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    fn line_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(r#"{"a":1}"#.to_owned()),
            Just(r#"{"b":"a longer value here"}"#.to_owned()),
            Just(String::new()),
            Just(" \t\r".to_owned()),
            Just("null".to_owned()),
            Just("{".to_owned()),
            Just(r#"{"x":"#.to_owned()),
            "[a-z{}\":, ]{0,12}",
        ]
    }

    proptest! {
        /// Cut anywhere into parts, the lines are judged as one pass
        /// judges them.
        #[test]
        fn parts_judge_lines_as_one_pass_does(
            lines in proptest::collection::vec(line_strategy(), 0..12),
            final_newline in any::<bool>(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
            feed in 1usize..9,
            cap in 0u64..40,
        ) {
            let mut text = lines.join("\n").into_bytes();
            if final_newline {
                text.push(b'\n');
            }
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(text.len() + 1)).collect();
            at.sort_unstable();
            at.dedup();
            let mut bounds = vec![0];
            bounds.extend(at.into_iter().filter(|&c| c > 0 && c < text.len()));
            bounds.push(text.len());
            let mut parts = Vec::new();
            let mut fed_ok = true;
            for (i, w) in bounds.windows(2).enumerate() {
                let bytes = &text[w[0]..w[1]];
                let mut lines = PartLines::new(i == 0, cap, 64);
                for piece in bytes.chunks(feed) {
                    fed_ok &= lines.feed(piece);
                }
                let mut crc = crc32fast::Hasher::new();
                crc.update(bytes);
                parts.push(PartOut { crc, len: bytes.len() as u64, lines, sha: None });
            }
            let plan = Plan {
                data_start: 0,
                data_end: 0,
                size: text.len() as u64,
                crc: crc32fast::hash(&text),
                stored_sha256: None,
                line_cap: cap,
                max_depth: 64,
            };
            let split = fed_ok && parts_agree(&parts, &plan);
            prop_assert_eq!(split, one_pass(&text, cap));
        }
    }
}
