//! The lean parse of a trailer: the same result as
//! `Trailer::from_sized_reader`, without ever holding the
//! text of lvbak's in-order digests (4.2 MB of base64 for 96,000 entries).
//!
//! A [`Tap`] sits between serde_json and the buffered entry bytes. serde_json
//! reads through it one byte at a time (`io::Bytes`) and never reads past a
//! map key's closing quote, so when `LvbakVisitor` meets the key `sha256` it
//! arms the tap ([`Lean::arm`]) before asking for the value. Armed, the tap
//! passes whitespace and `:` through; a value that starts with `"` is then
//! captured: the tap reads the string itself, in bulk, decodes it as base64
//! as it goes, and hands serde_json a stand-in that is a valid JSON string
//! exactly when the original is one:
//!
//! - each maximal run of well-formed pieces (printable ASCII, escapes that
//!   JSON accepts, complete UTF-8 characters) becomes one `A`;
//! - a piece that is not well formed is handed over byte for byte, so that
//!   serde_json refuses it as it would have refused the original: an escape
//!   serde_json does not accept or a raw control character (after which the
//!   rest of the string is passed through unchanged, [`Mode::Verbatim`]),
//!   or bytes that are not UTF-8 (which stay invalid next to whatever
//!   follows them: an `A`, a quote, a backslash, or more invalid bytes).
//!
//! `DigestsVisitor::visit_str` then ignores the stand-in and takes the tap's
//! result ([`Lean::take`]). A value that does not start with `"` (version-1
//! digests by name, a number…) disarms the tap and passes through unchanged.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{BufRead, Read};

use super::{Digests, LvbakTrailer, Trailer, TrailerSeed};

/// What a lean parse keeps of version-2/3 in-order digests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeepDigests {
    /// Only their number.
    Count,
    /// Those at positions `from..from + len`, decoded (the number is still
    /// of them all): a reader that needs the digests one stretch at a time
    /// parses the trailer again for each stretch, holding `len` at most.
    Window {
        /// Position of the first digest kept.
        from: usize,
        /// Most digests kept.
        len: usize,
    },
}

impl KeepDigests {
    /// Positions of the digests kept.
    fn range(self) -> std::ops::Range<usize> {
        match self {
            KeepDigests::Count => 0..0,
            KeepDigests::Window { from, len } => from..from.saturating_add(len),
        }
    }
}

/// In-order digests a lean parse decoded from a `sha256` string.
#[derive(Debug)]
pub(super) struct Tapped {
    /// How many whole digests the string holds.
    pub(super) count: usize,
    /// The digests kept ([`KeepDigests`]), in order: all, none, or a
    /// window's.
    pub(super) digests: Vec<[u8; 32]>,
}

/// At most this many digests are reserved ahead (32 MiB); a trailer that
/// holds more (only with raised [`crate::Limits`]) grows its list past it.
const RESERVE_CAP: usize = 1 << 20;

/// Base64 characters decoded at a time (a multiple of 4); the bytes they
/// decode to fit [`OUT`].
const CHUNK: usize = 4096;
const OUT: usize = CHUNK / 4 * 3;

/// What a lean parse's visitors and its tap share.
pub(super) struct Lean {
    keep: KeepDigests,
    /// Most digests the entry's declared size leaves room for.
    bound: usize,
    /// Set by [`Lean::arm`] (with the `entries` read before `sha256`, if
    /// any), taken by the tap at its next read.
    armed: Cell<Option<Option<u64>>>,
    /// The string the tap last captured: `Some(None)` when it is not the
    /// base64 of whole digests.
    result: Cell<Option<Option<Tapped>>>,
    /// The most bytes of one captured string serde_json was handed.
    #[cfg(test)]
    largest_handed: Cell<usize>,
}

impl Lean {
    fn new(keep: KeepDigests, size: u64) -> Lean {
        Lean {
            keep,
            bound: usize::try_from(size / 4 * 3 / 32).unwrap_or(usize::MAX),
            armed: Cell::new(None),
            result: Cell::new(None),
            #[cfg(test)]
            largest_handed: Cell::new(0),
        }
    }

    /// The parser has just read the key `sha256` of lvbak's field (and
    /// nothing after it): the tap looks at its value. `entries`: that field
    /// read so far, to size the digest list.
    pub(super) fn arm(&self, entries: Option<u64>) {
        self.result.set(None);
        self.armed.set(Some(entries));
    }

    /// What the tap made of the string value it captured last (taken once).
    pub(super) fn take(&self) -> Option<Option<Tapped>> {
        self.result.take()
    }

    /// Digests to reserve for a string kept whole, from `entries` when
    /// known; never more than the entry's size can hold, nor more than
    /// [`RESERVE_CAP`].
    fn reserve(&self, entries: Option<u64>) -> usize {
        let want = entries.map_or(self.bound, |e| {
            usize::try_from(e).unwrap_or(usize::MAX).min(self.bound)
        });
        let kept = self.keep.range();
        let window = want.saturating_sub(kept.start).min(kept.len());
        window.min(RESERVE_CAP)
    }
}

impl Trailer {
    /// Like `from_sized_reader`, parsed as the bytes stream (never read
    /// whole), and without ever holding the text of lvbak's in-order
    /// digests: the `sha256` string is decoded as it is read, and the
    /// digests a [`KeepDigests::Window`] keeps are the only allocation in
    /// proportion to it, reserved once: for the window's part of `entries`
    /// digests when that field comes before `sha256` (as lvbak writes it),
    /// else of as many as `size` bytes can hold; never for more than
    /// `size` bytes can hold (`size`: the entry's declared size, as for
    /// `from_sized_reader`).
    ///
    /// Gives what `from_sized_reader` gives (the same `Ok(None)` and `Err`
    /// cases, an equal trailer), except:
    /// - when `lvbak.sha256` is a JSON string that is not a digest field
    ///   (not the base64 of whole digests, or their number or `version` not
    ///   right), `raw` holds `null` in its place rather than the string
    ///   (its text was never kept);
    /// - in-order digests are `Digests::InOrder` of those kept only
    ///   (none with [`KeepDigests::Count`], a window's with
    ///   [`KeepDigests::Window`]); [`Trailer::in_order_count`] gives their
    ///   number.
    pub(crate) fn from_reader_lean<R: Read>(
        r: R,
        max_depth: u32,
        size: u64,
        keep: KeepDigests,
    ) -> std::io::Result<Option<Trailer>> {
        let lean = Lean::new(keep, size);
        Trailer::lean_parse(r, max_depth, &lean)
    }

    fn lean_parse<R: Read>(r: R, max_depth: u32, lean: &Lean) -> std::io::Result<Option<Trailer>> {
        Trailer::guarded(r, max_depth, |text| {
            let mut de = serde_json::Deserializer::from_reader(Tap::new(text, lean));
            serde::de::DeserializeSeed::deserialize(TrailerSeed { lean: Some(lean) }, &mut de)
                .and_then(|t| de.end().map(|()| t))
        })
    }

    /// Number of in-order digests the trailer's lvbak field records (`Some`
    /// for the version-2/3 in-order layout), whether or not they were kept.
    pub(crate) fn in_order_count(&self) -> Option<usize> {
        match &self.lvbak {
            Some(LvbakTrailer {
                digests: Digests::InOrder(_),
                ..
            }) => self.in_order,
            _ => None,
        }
    }
}

/// Where the tap is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Bytes pass through.
    Idle,
    /// After the key `sha256`: whitespace and `:` pass through, a `"` starts
    /// a capture, anything else disarms.
    Armed(Option<u64>),
    /// Inside the captured string.
    Capture,
    /// Inside the captured string after a piece serde_json refuses: the rest
    /// of the string passes through unchanged (`esc`: the last byte handed
    /// over began an escape).
    Verbatim { esc: bool },
}

/// The `Read` between serde_json and the buffered entry bytes.
struct Tap<'a, R> {
    inner: R,
    lean: &'a Lean,
    mode: Mode,
    cap: Capture,
    /// Bytes owed to serde_json (a few at most: `A` and a refused piece).
    out: VecDeque<u8>,
    /// Bytes of the current string handed to serde_json.
    #[cfg(test)]
    handed: usize,
}

impl<'a, R: BufRead> Tap<'a, R> {
    fn new(inner: R, lean: &'a Lean) -> Tap<'a, R> {
        Tap {
            inner,
            lean,
            mode: Mode::Idle,
            cap: Capture::new(CHUNK, 0..0, 0),
            out: VecDeque::with_capacity(16),
            #[cfg(test)]
            handed: 0,
        }
    }

    #[cfg(test)]
    fn count_handed(&mut self) {
        self.handed += 1;
        let most = self.lean.largest_handed.get().max(self.handed);
        self.lean.largest_handed.set(most);
    }

    /// Reads the captured string until there is something to hand over, the
    /// string ends, or the input does.
    fn capture(&mut self) -> std::io::Result<()> {
        loop {
            let avail = self.inner.fill_buf()?;
            if avail.is_empty() {
                // Unterminated: serde_json reports the end of input.
                self.cap.flush_run(&mut self.out);
                self.mode = Mode::Idle;
                return Ok(());
            }
            let (used, step) = self.cap.feed(avail, &mut self.out);
            self.inner.consume(used);
            match step {
                Step::More => {}
                Step::End(result) => {
                    self.lean.result.set(Some(result));
                    self.mode = Mode::Idle;
                }
                Step::Refused { esc } => self.mode = Mode::Verbatim { esc },
            }
            if !self.out.is_empty() || self.mode != Mode::Capture {
                return Ok(());
            }
        }
    }

    /// The next input byte, consumed; `None` at the end.
    fn next_byte(&mut self) -> std::io::Result<Option<u8>> {
        let b = self.inner.fill_buf()?.first().copied();
        if b.is_some() {
            self.inner.consume(1);
        }
        Ok(b)
    }
}

impl<R: BufRead> Read for Tap<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // One byte at a time (serde_json asks for no more), so that nothing
        // past what it has parsed is ever handed over before the tap arms.
        let Some(slot) = buf.first_mut() else {
            return Ok(0);
        };
        loop {
            if let Some(b) = self.out.pop_front() {
                #[cfg(test)]
                self.count_handed();
                *slot = b;
                return Ok(1);
            }
            match self.mode {
                Mode::Idle => {
                    if let Some(entries) = self.lean.armed.take() {
                        self.mode = Mode::Armed(entries);
                        continue;
                    }
                    let Some(b) = self.next_byte()? else {
                        return Ok(0);
                    };
                    *slot = b;
                    return Ok(1);
                }
                Mode::Armed(entries) => {
                    let Some(b) = self.next_byte()? else {
                        self.mode = Mode::Idle;
                        return Ok(0);
                    };
                    match b {
                        b' ' | b'\t' | b'\n' | b'\r' | b':' => {}
                        b'"' => {
                            let keep = self.lean.keep.range();
                            self.cap = Capture::new(CHUNK, keep, self.lean.reserve(entries));
                            self.mode = Mode::Capture;
                            #[cfg(test)]
                            {
                                self.handed = 0;
                            }
                        }
                        _ => self.mode = Mode::Idle,
                    }
                    *slot = b;
                    return Ok(1);
                }
                Mode::Capture => {
                    self.capture()?;
                    if self.out.is_empty() && self.mode == Mode::Idle {
                        return Ok(0); // the input ended inside the string
                    }
                }
                Mode::Verbatim { esc } => {
                    let Some(b) = self.next_byte()? else {
                        self.mode = Mode::Idle;
                        return Ok(0);
                    };
                    #[cfg(test)]
                    self.count_handed();
                    self.mode = if esc {
                        Mode::Verbatim { esc: false }
                    } else if b == b'\\' {
                        Mode::Verbatim { esc: true }
                    } else if b == b'"' {
                        // Only if serde_json took what the tap refused.
                        self.lean.result.set(Some(None));
                        Mode::Idle
                    } else {
                        Mode::Verbatim { esc: false }
                    };
                    *slot = b;
                    return Ok(1);
                }
            }
        }
    }
}

/// What [`Capture::feed`] came to.
#[derive(Debug)]
enum Step {
    /// Still inside the string.
    More,
    /// The closing quote (queued): the string's digests, if it is them.
    End(Option<Tapped>),
    /// A piece serde_json refuses was queued; the rest passes through.
    Refused { esc: bool },
}

/// The piece of the string being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    /// Between pieces.
    None,
    /// After `\`.
    Escape,
    /// After `\u` and `k` hex digits of value `v`.
    Hex { k: u8, v: u16 },
    /// After a leading surrogate `\uD800`–`\uDBFF`: a `\` must follow.
    Lead,
    /// After a leading surrogate and `\`: a `u` must follow.
    LeadEscape,
    /// After a leading surrogate and `\u` and `k` hex digits of value `v`.
    Trail { k: u8, v: u16 },
    /// Inside a UTF-8 character, `need` continuation bytes to go.
    Utf8 { need: u8 },
}

/// Printable ASCII but `"` and `\`: taken as is inside a JSON string.
fn plain(b: u8) -> bool {
    (0x20..=0x7f).contains(&b) && b != b'"' && b != b'\\'
}

fn hex_digit(b: u8) -> Option<u16> {
    (b as char).to_digit(16).and_then(|d| u16::try_from(d).ok())
}

/// The captured string: what is withheld from serde_json, and its decoding.
struct Capture {
    piece: Piece,
    /// The bytes of the current piece (at most `\uD83D\uDE00`).
    bytes: [u8; 12],
    len: usize,
    /// Pieces withheld since the last byte queued: one `A` is owed.
    run: bool,
    dec: Decoder,
}

impl Capture {
    fn new(chunk: usize, keep: std::ops::Range<usize>, reserve: usize) -> Capture {
        Capture {
            piece: Piece::None,
            bytes: [0; 12],
            len: 0,
            run: false,
            dec: Decoder::new(chunk, keep, reserve),
        }
    }

    fn flush_run(&mut self, out: &mut VecDeque<u8>) {
        if self.run {
            out.push_back(b'A');
            self.run = false;
        }
    }

    fn add(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn piece_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&self.bytes)
    }

    /// A well-formed piece ends: withheld, its character decoded.
    fn withheld(&mut self, c: Option<u8>) {
        match c {
            Some(c) => self.dec.push(&[c]),
            None => self.dec.fail(), // not ASCII: not base64
        }
        self.piece = Piece::None;
        self.len = 0;
        self.run = true;
    }

    /// Hands the current piece over as it is (after the `A` owed).
    fn hand_over(&mut self, out: &mut VecDeque<u8>) {
        self.flush_run(out);
        out.extend(self.piece_bytes());
        self.dec.fail();
        self.piece = Piece::None;
        self.len = 0;
    }

    /// A piece serde_json refuses: handed over, and so is the rest.
    fn refuse(&mut self, out: &mut VecDeque<u8>) -> Step {
        let mut esc = false;
        for &b in self.piece_bytes() {
            esc = !esc && b == b'\\';
        }
        self.hand_over(out);
        Step::Refused { esc }
    }

    /// Reads `avail` until something is queued or the string ends; returns
    /// how many bytes were consumed.
    fn feed(&mut self, avail: &[u8], out: &mut VecDeque<u8>) -> (usize, Step) {
        let mut i = 0;
        while let Some(&b) = avail.get(i) {
            if !out.is_empty() {
                break;
            }
            match self.piece {
                Piece::None => {
                    if plain(b) {
                        let rest = avail.get(i..).unwrap_or_default();
                        let n = rest.iter().position(|&c| !plain(c)).unwrap_or(rest.len());
                        self.dec.push(rest.get(..n).unwrap_or_default());
                        self.run = true;
                        i += n;
                        continue;
                    }
                    i += 1;
                    match b {
                        b'"' => {
                            self.flush_run(out);
                            out.push_back(b'"');
                            return (i, Step::End(self.dec.finish()));
                        }
                        b'\\' => {
                            self.add(b);
                            self.piece = Piece::Escape;
                        }
                        0xc2..=0xdf => self.utf8(b, 1),
                        0xe0..=0xef => self.utf8(b, 2),
                        0xf0..=0xf4 => self.utf8(b, 3),
                        // A control character: serde_json stops there.
                        0x00..=0x1f => {
                            self.add(b);
                            return (i, self.refuse(out));
                        }
                        // Never valid in UTF-8.
                        _ => {
                            self.add(b);
                            self.hand_over(out);
                        }
                    }
                }
                Piece::Escape => {
                    let c = match b {
                        b'"' | b'\\' | b'/' => b,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            i += 1;
                            self.add(b);
                            self.piece = Piece::Hex { k: 0, v: 0 };
                            continue;
                        }
                        _ => return (i, self.refuse(out)),
                    };
                    i += 1;
                    self.withheld(Some(c));
                }
                Piece::Hex { k, v } | Piece::Trail { k, v } => {
                    let Some(d) = hex_digit(b) else {
                        return (i, self.refuse(out));
                    };
                    i += 1;
                    self.add(b);
                    let v = (v << 4) | d;
                    let trail = matches!(self.piece, Piece::Trail { .. });
                    if k < 3 {
                        self.piece = if trail {
                            Piece::Trail { k: k + 1, v }
                        } else {
                            Piece::Hex { k: k + 1, v }
                        };
                        continue;
                    }
                    match (trail, v) {
                        (true, 0xdc00..=0xdfff) => self.withheld(None),
                        // A trailing surrogate alone, or a leading one not
                        // followed by a trailing one.
                        (true, _) | (false, 0xdc00..=0xdfff) => return (i, self.refuse(out)),
                        (false, 0xd800..=0xdbff) => self.piece = Piece::Lead,
                        (false, _) => self.withheld(u8::try_from(v).ok().filter(u8::is_ascii)),
                    }
                }
                Piece::Lead | Piece::LeadEscape => {
                    let (want, next) = match self.piece {
                        Piece::Lead => (b'\\', Piece::LeadEscape),
                        _ => (b'u', Piece::Trail { k: 0, v: 0 }),
                    };
                    if b != want {
                        return (i, self.refuse(out));
                    }
                    i += 1;
                    self.add(b);
                    self.piece = next;
                }
                Piece::Utf8 { need } => {
                    if !(0x80..=0xbf).contains(&b) {
                        // Cut short: invalid whatever follows (not a
                        // continuation byte). `b` starts the next piece.
                        self.hand_over(out);
                        continue;
                    }
                    i += 1;
                    self.add(b);
                    if need > 1 {
                        self.piece = Piece::Utf8 { need: need - 1 };
                    } else if std::str::from_utf8(self.piece_bytes()).is_ok() {
                        self.withheld(None);
                    } else {
                        // Overlong, a surrogate, or past U+10FFFF: its
                        // first two bytes are never valid together.
                        self.hand_over(out);
                    }
                }
            }
        }
        (i, Step::More)
    }

    fn utf8(&mut self, lead: u8, need: u8) {
        self.dec.fail(); // not ASCII: not base64
        self.add(lead);
        self.piece = Piece::Utf8 { need };
    }
}

/// Decodes base64 text fed in pieces, as `NotByName::from_str` decodes it
/// whole: standard alphabet, canonical padding, no trailing bits, a length
/// that is a multiple of 4, whole digests. The text is decoded in chunks of
/// whole 4-character blocks with the same engine; the last block seen is
/// held back until more text comes (then it was not the last, and must not
/// be padded) or the string ends (then it is decoded with its padding).
struct Decoder {
    ok: bool,
    text: [u8; CHUNK],
    /// Characters held (of `chunk` at most, a multiple of 4, ≥ 8).
    len: usize,
    chunk: usize,
    acc: Digests32,
}

/// Decoded bytes gathered into digests.
struct Digests32 {
    part: [u8; 32],
    fill: usize,
    count: usize,
    /// Positions of the digests kept.
    keep: std::ops::Range<usize>,
    digests: Vec<[u8; 32]>,
}

impl Digests32 {
    fn take(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = (32 - self.fill).min(bytes.len());
            let (now, rest) = bytes.split_at(n);
            if let Some(dst) = self.part.get_mut(self.fill..self.fill + n) {
                dst.copy_from_slice(now);
            }
            self.fill += n;
            bytes = rest;
            if self.fill == 32 {
                self.fill = 0;
                if self.keep.contains(&self.count) {
                    self.digests.push(self.part);
                }
                self.count += 1;
            }
        }
    }
}

impl Decoder {
    fn new(chunk: usize, keep: std::ops::Range<usize>, reserve: usize) -> Decoder {
        Decoder {
            ok: true,
            text: [0; CHUNK],
            len: 0,
            chunk: chunk.clamp(8, CHUNK) / 4 * 4,
            acc: Digests32 {
                part: [0; 32],
                fill: 0,
                count: 0,
                digests: if keep.is_empty() {
                    Vec::new()
                } else {
                    Vec::with_capacity(reserve)
                },
                keep,
            },
        }
    }

    /// Not base64 of digests: nothing more is decoded or kept.
    fn fail(&mut self) {
        self.ok = false;
        self.acc.digests = Vec::new();
    }

    /// Decodes `n` held characters (whole blocks); `last`: they end the
    /// text (padding allowed), else they must decode to 3 bytes a block.
    fn decode(&mut self, n: usize, last: bool) -> bool {
        let mut out = [0u8; OUT];
        let Some(text) = self.text.get(..n) else {
            return false;
        };
        match base64::Engine::decode_slice(
            &base64::engine::general_purpose::STANDARD,
            text,
            &mut out,
        ) {
            Ok(k) if last || k == n / 4 * 3 => {
                self.acc.take(out.get(..k).unwrap_or_default());
                true
            }
            _ => false,
        }
    }

    fn push(&mut self, mut s: &[u8]) {
        while self.ok && !s.is_empty() {
            if self.len == self.chunk {
                // More text follows: all but the last block are not last.
                let keep_from = self.chunk - 4;
                if !self.decode(keep_from, false) {
                    self.fail();
                    return;
                }
                self.text.copy_within(keep_from..self.chunk, 0);
                self.len = 4;
            }
            let n = (self.chunk - self.len).min(s.len());
            let (now, rest) = s.split_at(n);
            if let Some(dst) = self.text.get_mut(self.len..self.len + n) {
                dst.copy_from_slice(now);
            }
            self.len += n;
            s = rest;
        }
    }

    /// The digests, if the whole text was the base64 of whole digests.
    fn finish(&mut self) -> Option<Tapped> {
        let whole = self.ok && self.len % 4 == 0 && self.decode(self.len, true);
        self.ok = false;
        let digests = std::mem::take(&mut self.acc.digests);
        (whole && self.acc.fill == 0).then_some(Tapped {
            count: self.acc.count,
            digests,
        })
    }
}

#[cfg(test)]
mod tests;
