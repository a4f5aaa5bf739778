//! NDJSON: the line reader with its cap, and a JSON checker over byte
//! slices (FORMAT.md §4).
//!
//! Rows stay the exact bytes of their line: lvbak never re-serialises a row
//! it only passes through, so numbers beyond 2^53, key order and escapes
//! survive a round trip byte for byte. [`check_line`] validates one line
//! without building a value: UTF-8, JSON syntax (lone-surrogate escapes
//! allowed, as JavaScript's `JSON.parse` allows them), nesting depth, and
//! whether the line is an object, a skipped falsy value, or something else.

use std::io::{self, BufRead};

/// What a non-blank line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// A JSON object: a row.
    Object,
    /// A falsy JSON value (`null`, `false`, `0`, `""`): the server skips it.
    Falsy,
}

/// Why a line is not a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Longer than the cap (without its `\n`).
    #[error("NDJSON line exceeds {cap} bytes")]
    TooLong {
        /// The cap in force.
        cap: u64,
    },
    /// Not UTF-8.
    #[error("line is not valid UTF-8 (at byte {at})")]
    NotUtf8 {
        /// Offset of the first bad byte.
        at: usize,
    },
    /// Not JSON.
    #[error("line is not valid JSON: {reason} at byte {at}")]
    Syntax {
        /// What was expected.
        reason: &'static str,
        /// Byte offset.
        at: usize,
    },
    /// Nested deeper than allowed.
    #[error("JSON nesting is deeper than {max}")]
    TooDeep {
        /// The cap.
        max: u32,
    },
    /// A truthy value that is not an object.
    #[error("line is a JSON {found}, not an object")]
    NotAnObject {
        /// What it is.
        found: &'static str,
    },
}

/// Whether `line` (without its `\n`) is blank: spaces, tabs and `\r`
/// only, or empty. Readers skip such lines, as the server's importer
/// does (LUMIVERSE-1.1-FORMAT.md §4).
pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// Reads `\n`-separated lines from a `BufRead`, never holding more than
/// `cap` + 1 bytes of one line, skipping blank lines, counting line numbers
/// (1-based, blank lines included).
pub struct LineReader<R> {
    inner: R,
    cap: u64,
    line_no: u64,
    buf: Vec<u8>,
    done: bool,
}

/// An error from [`LineReader`]: I/O or an over-long line, with its number.
#[derive(Debug, thiserror::Error)]
pub enum ReadLineError {
    /// The underlying reader failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A line over the cap.
    #[error("line {line}: NDJSON line exceeds {cap} bytes")]
    TooLong {
        /// Line number.
        line: u64,
        /// The cap.
        cap: u64,
    },
}

impl<R: BufRead> LineReader<R> {
    /// A reader with a per-line cap in bytes (excluding `\n`).
    pub fn new(inner: R, cap: u64) -> LineReader<R> {
        LineReader {
            inner,
            cap,
            line_no: 0,
            buf: Vec::new(),
            done: false,
        }
    }

    /// Number of the line last returned.
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The line last returned by [`LineReader::next_line`].
    pub fn last_line(&self) -> &[u8] {
        &self.buf
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next non-blank line (without `\n`), or `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, ReadLineError> {
        loop {
            if self.done {
                return Ok(None);
            }
            self.buf.clear();
            let mut saw_any = false;
            loop {
                let chunk = match self.inner.fill_buf() {
                    Ok(c) => c,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.done = true;
                        return Err(e.into());
                    }
                };
                if chunk.is_empty() {
                    self.done = true;
                    break;
                }
                saw_any = true;
                let (take, found_nl) = match memchr(chunk) {
                    Some(i) => (i, true),
                    None => (chunk.len(), false),
                };
                if (self.buf.len() + take) as u64 > self.cap {
                    self.line_no += 1;
                    self.done = true;
                    return Err(ReadLineError::TooLong {
                        line: self.line_no,
                        cap: self.cap,
                    });
                }
                self.buf.extend_from_slice(&chunk[..take]);
                self.inner.consume(take + usize::from(found_nl));
                if found_nl {
                    break;
                }
            }
            if !saw_any {
                return Ok(None);
            }
            self.line_no += 1;
            // A blank line (a line feed ends every line, so the stream's
            // final `\n` never yields one: `saw_any` was false then).
            if is_blank(&self.buf) {
                continue;
            }
            return Ok(Some(&self.buf));
        }
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

/// Appends `row` as one compact JSON object, byte for byte what
/// `serde_json::to_writer` writes (and so what JavaScript's
/// `JSON.stringify` writes for strings and integers), scanning strings
/// eight bytes at a time for the few bytes that need escaping.
pub(crate) fn write_object(out: &mut Vec<u8>, row: &serde_json::Map<String, serde_json::Value>) {
    out.push(b'{');
    for (i, (k, v)) in row.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_string(out, k);
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
}

/// Appends a compact JSON array of `items`, each written by `one`.
pub(crate) fn write_array<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    mut one: impl FnMut(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (i, x) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        one(out, x);
    }
    out.push(b']');
}

fn write_value(out: &mut Vec<u8>, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => write_json_string(out, s),
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Object(m) => write_object(out, m),
        Value::Array(a) => write_array(out, a, write_value),
        // Numbers as serde_json formats them (itoa, ryu).
        Value::Number(n) => {
            let _ = serde_json::to_writer(&mut *out, n);
        }
    }
}

/// Appends `s` as a JSON string literal exactly as JavaScript's
/// `JSON.stringify` writes it for a well-formed string (and as serde_json
/// does): `"` and `\` are backslash-escaped, U+0008/0009/000A/000C/000D
/// use their short escapes, every other control character below U+0020
/// becomes `\u00xx` with lowercase hex, and everything else (including
/// U+007F, U+2028 and U+2029) is written as raw UTF-8. Runs of plain
/// bytes are found with [`plain_end`] and copied whole.
pub(crate) fn write_json_string(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut clean = 0; // start of the bytes not yet copied
    let mut i = 0;
    loop {
        i = plain_end(b, i);
        let Some(&c) = b.get(i) else { break };
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0C => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1F => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&b[clean..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(crate::envelope::codec::hex_digit(c >> 4));
            out.push(crate::envelope::codec::hex_digit(c));
        } else {
            out.extend_from_slice(esc);
        }
        i += 1;
        clean = i;
    }
    out.extend_from_slice(&b[clean..]);
    out.push(b'"');
}

/// The first position from `i` on holding a `"`, a `\\` or a control
/// character (below 0x20), or `b.len()` when there is none: the end of the
/// plain run a JSON string scanner can pass over. `memchr2` finds the next
/// quote or backslash a window at a time and the window's bytes before it
/// are checked for control characters in one vectorisable pass, so each
/// byte is looked at a bounded number of times even when control
/// characters are many (each call scans at most one window past its stop).
fn plain_end(b: &[u8], mut i: usize) -> usize {
    const WINDOW: usize = 256;
    while let Some(rest) = b.get(i..).filter(|r| !r.is_empty()) {
        let w = rest.get(..WINDOW).unwrap_or(rest);
        let stop = memchr::memchr2(b'"', b'\\', w).unwrap_or(w.len());
        let span = w.get(..stop).unwrap_or(w);
        if span.iter().fold(0u8, |a, &c| a | u8::from(c < 0x20)) != 0 {
            return i + span.iter().position(|&c| c < 0x20).unwrap_or(stop);
        }
        i += stop;
        if stop < w.len() {
            return i;
        }
    }
    b.len().min(i)
}

/// Checks one line: UTF-8, JSON syntax, depth; reports whether it is an
/// object or a falsy value. Leading and trailing JSON whitespace is allowed.
pub fn check_line(line: &[u8], max_depth: u32) -> Result<LineKind, LineError> {
    if let Err(e) = std::str::from_utf8(line) {
        return Err(LineError::NotUtf8 {
            at: e.valid_up_to(),
        });
    }
    let mut p = Parser {
        b: line,
        i: 0,
        max_depth,
    };
    p.ws();
    let start = p.i;
    let first = p.peek();
    p.value(0)?;
    let end = p.i;
    p.ws();
    if p.i != line.len() {
        return Err(LineError::Syntax {
            reason: "end of line after the value",
            at: p.i,
        });
    }
    let text = &line[start..end];
    match first {
        Some(b'{') => Ok(LineKind::Object),
        Some(b'n') => Ok(LineKind::Falsy),
        Some(b'f') => Ok(LineKind::Falsy),
        Some(b't') => Err(LineError::NotAnObject { found: "boolean" }),
        Some(b'"') if text == b"\"\"" => Ok(LineKind::Falsy),
        Some(b'"') => Err(LineError::NotAnObject { found: "string" }),
        Some(b'[') => Err(LineError::NotAnObject { found: "array" }),
        _ if number_is_zero(text) => Ok(LineKind::Falsy),
        _ => Err(LineError::NotAnObject { found: "number" }),
    }
}

/// True for a JSON number whose value is zero (`0`, `-0`, `0.000`, `0e7`).
fn number_is_zero(text: &[u8]) -> bool {
    let mantissa = text
        .split(|&c| c == b'e' || c == b'E')
        .next()
        .unwrap_or(text);
    mantissa.iter().all(|&c| matches!(c, b'0' | b'-' | b'.'))
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    max_depth: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn err(&self, reason: &'static str) -> LineError {
        LineError::Syntax { reason, at: self.i }
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn lit(&mut self, word: &'static [u8]) -> Result<(), LineError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err("a JSON value"))
        }
    }
    fn value(&mut self, depth: u32) -> Result<(), LineError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string(),
            Some(b't') => self.lit(b"true"),
            Some(b'f') => self.lit(b"false"),
            Some(b'n') => self.lit(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err("a JSON value")),
        }
    }
    fn enter(&self, depth: u32) -> Result<(), LineError> {
        if depth > self.max_depth {
            Err(LineError::TooDeep {
                max: self.max_depth,
            })
        } else {
            Ok(())
        }
    }
    fn object(&mut self, depth: u32) -> Result<(), LineError> {
        self.enter(depth)?;
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("a string key"));
            }
            self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("':'"));
            }
            self.i += 1;
            self.ws();
            self.value(depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("',' or '}'")),
            }
        }
    }
    fn array(&mut self, depth: u32) -> Result<(), LineError> {
        self.enter(depth)?;
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            self.value(depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("',' or ']'")),
            }
        }
    }
    fn string(&mut self) -> Result<(), LineError> {
        self.i += 1;
        loop {
            // Eight plain bytes at a time; anything else takes the
            // byte-wise path below.
            self.i = plain_end(self.b, self.i);
            match self.peek() {
                None => return Err(self.err("closing '\"'")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            self.i += 1;
                            for _ in 0..4 {
                                if !self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                                    return Err(self.err("four hex digits after \\u"));
                                }
                                self.i += 1;
                            }
                        }
                        _ => return Err(self.err("a valid escape")),
                    }
                }
                Some(c) if c < 0x20 => return Err(self.err("no raw control character in a string")),
                Some(_) => self.i += 1,
            }
        }
    }
    fn digits(&mut self) -> usize {
        let s = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - s
    }
    fn number(&mut self) -> Result<(), LineError> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("a digit")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.err("a digit after '.'"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("a digit in the exponent"));
            }
        }
        Ok(())
    }
}

/// Parses one NDJSON line into `row`, exactly as
/// `serde_json::from_str::<Map<String, Value>>` would, reusing `row`'s
/// allocations when the line has the same keys in the same order as the
/// row it overwrites (the rows of a table usually do): each string value
/// is copied into the string already there instead of a fresh key and
/// value being allocated. Any other line (other keys, escaped keys, `\u`
/// escapes, nested values, anything unusual) is parsed by serde_json.
pub fn parse_row_into(
    line: &str,
    row: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<(), serde_json::Error> {
    if row.is_empty() || overwrite_same_shape(line, row).is_none() {
        *row = serde_json::from_str(line)?;
    }
    Ok(())
}

/// The in-place path of [`parse_row_into`]: `None` as soon as the line
/// is not a flat object with `row`'s keys in order and scalar values it
/// can take exactly (`row` may then be partly overwritten). Tokens are
/// found by the line checker's [`Parser`].
fn overwrite_same_shape(
    line: &str,
    row: &mut serde_json::Map<String, serde_json::Value>,
) -> Option<()> {
    use serde_json::Value;
    let mut p = Parser {
        b: line.as_bytes(),
        i: 0,
        max_depth: 0,
    };
    p.ws();
    if p.peek() != Some(b'{') {
        return None;
    }
    p.i += 1;
    let mut slots = row.iter_mut();
    loop {
        // A key: plain (no escape) and the next key of the row (`{}` has
        // none, and nothing to reuse).
        p.ws();
        if p.peek() != Some(b'"') {
            return None;
        }
        let (key, escaped) = string_token(&mut p, line)?;
        let (held, value) = slots.next()?;
        if escaped || key != held {
            return None;
        }
        p.ws();
        if p.peek() != Some(b':') {
            return None;
        }
        p.i += 1;
        p.ws();
        match p.peek()? {
            b'"' => {
                let (raw, escaped) = string_token(&mut p, line)?;
                // A string is reused unless it is much larger than what it
                // takes now (one long row must not pin its size in a slot).
                let fits = |s: &String| s.capacity() <= (raw.len() * 2).max(16 * 1024);
                if !matches!(value, Value::String(s) if fits(s)) {
                    *value = Value::String(String::with_capacity(raw.len()));
                }
                let Value::String(s) = value else {
                    return None;
                };
                s.clear();
                // Exactly: a slot grows to the longest string it took, not
                // to the next power of two.
                s.reserve_exact(raw.len());
                if escaped {
                    unescape_simple(raw, s)?;
                } else {
                    s.push_str(raw);
                }
            }
            b't' => {
                p.lit(b"true").ok()?;
                *value = Value::Bool(true);
            }
            b'f' => {
                p.lit(b"false").ok()?;
                *value = Value::Bool(false);
            }
            b'n' => {
                p.lit(b"null").ok()?;
                *value = Value::Null;
            }
            b'-' | b'0'..=b'9' => {
                let start = p.i;
                p.number().ok()?;
                *value = Value::Number(serde_json::from_str(line.get(start..p.i)?).ok()?);
            }
            _ => return None, // nested value or invalid: serde_json decides
        }
        p.ws();
        match p.peek()? {
            b',' => p.i += 1,
            b'}' => {
                p.i += 1;
                break;
            }
            _ => return None,
        }
    }
    p.ws();
    (p.i == line.len() && slots.next().is_none()).then_some(())
}

/// The body of the (checked) string token at the parser's position, its
/// quotes left out, and whether it holds an escape; the parser moves past
/// it. `None` for an invalid string.
fn string_token<'a>(p: &mut Parser<'_>, line: &'a str) -> Option<(&'a str, bool)> {
    let start = p.i + 1;
    p.string().ok()?;
    let raw = line.get(start..p.i - 1)?;
    Some((raw, raw.contains('\\')))
}

/// Appends the JSON string body `raw` with its escapes resolved; `None`
/// for a `\u` escape (left to serde_json, which also checks surrogates)
/// or an invalid one.
fn unescape_simple(raw: &str, out: &mut String) -> Option<()> {
    let mut rest = raw;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let c = match rest.as_bytes().get(at + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => return None,
        };
        out.push(c);
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    Some(())
}

#[cfg(test)]
mod row_tests {
    use super::parse_row_into;
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    /// Parses `lines` one after another into one reused row and checks
    /// each result against serde_json's parse of the line alone: the same
    /// keys, values and order, or an error both times.
    fn same_as_serde(lines: &[String]) {
        let mut row = Map::new();
        for line in lines {
            let want = serde_json::from_str::<Map<String, Value>>(line);
            let got = parse_row_into(line, &mut row);
            match (want, got) {
                (Ok(w), Ok(())) => {
                    let w: Vec<_> = w.iter().collect();
                    let g: Vec<_> = row.iter().collect();
                    assert_eq!(g, w, "{line}");
                }
                (Err(_), Err(_)) => row = Map::new(),
                (w, g) => panic!("{line}: serde_json {w:?}, in place {g:?}"),
            }
        }
    }

    #[test]
    fn numbers_read_as_javascript_reads_them() {
        // JSON.parse (bun, this session) gives 4e+92 for 93 nines;
        // serde_json's default float parsing gave 3.9999999999999996e92,
        // and a value read that way changed when written and read again.
        let nines = "9".repeat(92);
        let line = format!(r#"{{"a":3{nines},"b":1.5}}"#);
        let mut row = serde_json::Map::new();
        for _ in 0..2 {
            // Once parsed whole, once in place over the first.
            parse_row_into(&line, &mut row).unwrap();
            assert_eq!(row["a"].as_f64(), Some(4e92));
        }
        let text = serde_json::to_string(&row).unwrap();
        // As JSON.stringify writes it.
        assert_eq!(text, r#"{"a":4e+92,"b":1.5}"#);
    }

    #[test]
    fn rows_parse_in_place_as_serde_json_parses_them() {
        let lines: Vec<String> = [
            r#"{"id":"a","n":1,"s":"x","b":true,"z":null}"#,
            r#"{"id":"b","n":-0,"s":"line\nnext \"q\" \\ \/ \t\b\f\r","b":false,"z":1.5e3}"#,
            r#" { "id" : "c" , "n" : 9007199254740993 , "s" : "é😀" , "b" : null , "z" : "now a string" } "#,
            r#"{"id":"d","n":1e400,"s":"","b":true,"z":null}"#,
            r#"{"id":"e","n":01,"s":"","b":true,"z":null}"#,
            r#"{"id":"f","n":2,"s":"\u0041\ud83d\ude00","b":true,"z":null}"#,
            r#"{"id":"g","n":2,"s":"\ud800","b":true,"z":null}"#,
            r#"{"id":"h","n":2,"s":"bad \x escape","b":true,"z":null}"#,
            "{\"id\":\"i\",\"n\":2,\"s\":\"raw \u{1} control\",\"b\":true,\"z\":null}",
            r#"{"id":"j","n":2,"s":"x","b":true,"z":[1,{"k":"v"}]}"#,
            r#"{"id":"k","n":3,"s":"x","b":true,"z":{}}"#,
            r#"{"id":"l","n":3,"s":"x","b":true}"#,
            r#"{"id":"m","n":3,"s":"x","b":true,"z":null,"extra":1}"#,
            r#"{"id":"n","n":3,"s":"x","b":true,"id":"again"}"#,
            r#"{"n":3,"id":"o","s":"x","b":true,"z":null}"#,
            r#"{"i\u0064":"p","n":3,"s":"x","b":true,"z":null}"#,
            r#"{"id":"q","n":3,"s":"x","b":true,"z":null} x"#,
            r#"{"id":"r","n":3,"s":"x","b":true,"z":nul}"#,
            r#"{"id":"s","n":3,"s":"x","b":true,"z":null"#,
            r#"{"id":"t","n":-,"s":"x","b":true,"z":null}"#,
            r#"{"id":"u","n":1-2,"s":"x","b":true,"z":null}"#,
            r#"{"id":"v","n":3,"s":"x","b":true,"z":null,}"#,
            r#"{"id":"w" "n":3,"s":"x","b":true,"z":null}"#,
            r#"{}"#,
            r#"{"id":"x","n":3,"s":"x","b":true,"z":null}"#,
            r#"[1]"#,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        same_as_serde(&lines);
        // Every prefix of every line, after a good row of the same shape.
        for l in &lines {
            for cut in (0..l.len()).filter(|&c| l.is_char_boundary(c)) {
                same_as_serde(&[lines[0].clone(), l[..cut].to_string()]);
            }
        }
    }

    #[test]
    fn a_long_string_does_not_stay_pinned_in_its_slot() {
        let mut row = Map::new();
        let long = format!(r#"{{"id":"a","s":"{}"}}"#, "x".repeat(1 << 20));
        parse_row_into(&long, &mut row).unwrap();
        parse_row_into(r#"{"id":"b","s":"short"}"#, &mut row).unwrap();
        let Some(Value::String(s)) = row.get("s") else {
            panic!("{row:?}");
        };
        assert_eq!(s, "short");
        assert!(s.capacity() <= 16 * 1024, "{}", s.capacity());
    }

    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap_or_default()),
            "[-0-9.eE+]{1,8}",
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
            "\"([a-z\\\\\"/]|\\\\[nrtbf\"/u]|\\\\u00[0-9a-f]{2}){0,12}\"",
            Just("[1,2]".to_string()),
            Just("{\"k\":1}".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn generated_rows_parse_in_place_as_serde_json_parses_them(
            rows in proptest::collection::vec(
                proptest::collection::vec(
                    (proptest::sample::select(vec!["id", "n", "s", "a\\\"b", "é"]), scalar(), "[ ]{0,1}"),
                    0..6,
                ),
                1..8,
            )
        ) {
            let lines: Vec<String> = rows
                .iter()
                .map(|fields| {
                    let body: Vec<String> = fields
                        .iter()
                        .map(|(k, v, sp)| format!("{sp}\"{k}\"{sp}:{sp}{v}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                })
                .collect();
            same_as_serde(&lines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(row: &serde_json::Map<String, serde_json::Value>) -> String {
        let mut out = Vec::new();
        write_object(&mut out, row);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn write_object_escapes_every_byte_at_every_word_position_as_serde_json_does() {
        let specials = (0u32..0x80).chain([0xE9, 0x7FF, 0x2028, 0xFFFD, 0x1F600]);
        for c in specials.filter_map(char::from_u32) {
            for pos in 0..17 {
                let mut s = "a".repeat(pos);
                s.push(c);
                s.push_str("tail-bytes");
                let row: serde_json::Map<String, serde_json::Value> =
                    [(s.clone(), serde_json::Value::String(s))]
                        .into_iter()
                        .collect();
                assert_eq!(
                    ours(&row),
                    serde_json::to_string(&row).unwrap(),
                    "{c:?} at {pos}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn write_object_matches_serde_json(
            row in proptest::collection::vec((proptest::prelude::any::<String>(), json_value()), 0..8)
        ) {
            let row: serde_json::Map<String, serde_json::Value> = row.into_iter().collect();
            proptest::prop_assert_eq!(ours(&row), serde_json::to_string(&row).unwrap());
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from), // non-finite: null
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((any::<String>(), inner), 0..4)
                    .prop_map(|v| Value::Object(v.into_iter().collect())),
            ]
        })
    }

    fn lines(input: &[u8], cap: u64) -> Result<Vec<(u64, Vec<u8>)>, ReadLineError> {
        let mut r = LineReader::new(input, cap);
        let mut out = Vec::new();
        while let Some(l) = r.next_line()? {
            let l = l.to_vec();
            out.push((r.line_no(), l));
        }
        Ok(out)
    }

    #[test]
    fn blank_lines_are_skipped_and_numbered() {
        let got = lines(b"{\"a\":1}\n\n{\"b\":2}\n", 100).unwrap();
        assert_eq!(
            got,
            vec![(1, b"{\"a\":1}".to_vec()), (3, b"{\"b\":2}".to_vec())]
        );
        let got = lines(b"{}", 100).unwrap();
        assert_eq!(got, vec![(1, b"{}".to_vec())]);
        assert!(lines(b"", 100).unwrap().is_empty());
    }

    #[test]
    fn the_cap_excludes_the_newline() {
        assert!(lines(b"12345\n", 5).is_ok());
        match lines(b"{}\n123456\n", 5) {
            Err(ReadLineError::TooLong { line: 2, cap: 5 }) => {}
            other => panic!("{other:?}"),
        }
        // A one-byte buffer still enforces the cap.
        let mut r = LineReader::new(io::BufReader::with_capacity(1, &b"1234567"[..]), 5);
        assert!(matches!(r.next_line(), Err(ReadLineError::TooLong { .. })));
    }

    #[test]
    fn plain_end_finds_every_special_byte_in_every_position() {
        // Positions around and across the scanning window's edges, and
        // a second special byte after the first (the first one wins).
        for pos in (0..40).chain(250..262).chain(505..520) {
            for special in (0u8..0x20).chain([b'"', b'\\']) {
                let mut b = vec![b'a'; 600];
                b[pos] = special;
                b[pos + 3] = b'"';
                assert_eq!(plain_end(&b, 0), pos, "{special:#x} at {pos}");
                assert_eq!(plain_end(&b, pos), pos, "{special:#x} at {pos}");
            }
        }
        for plain in (0x20u8..=0xff).filter(|c| *c != b'"' && *c != b'\\') {
            assert_eq!(plain_end(&[plain; 700], 0), 700, "{plain:#x}");
            assert_eq!(plain_end(&[plain; 700], 699), 700, "{plain:#x}");
        }
        assert_eq!(plain_end(b"ab", 2), 2);
        assert_eq!(plain_end(b"ab", 5), 2);
        // Long strings through the fast path keep exact error positions.
        let mut line = format!("{{\"a\":\"{}", "x".repeat(37)).into_bytes();
        line.push(0x01);
        line.extend_from_slice(b"\"}");
        assert_eq!(
            check_line(&line, 8),
            Err(LineError::Syntax {
                reason: "no raw control character in a string",
                at: 43
            })
        );
    }

    #[test]
    fn check_line_classifies() {
        assert_eq!(
            check_line(br#"{"a":[1,{"b":null}],"c":"\u00e9\ud800"}"#, 8),
            Ok(LineKind::Object)
        );
        for falsy in [&b"null"[..], b"false", b"0", b"-0.0", b"0e5", b"\"\""] {
            assert_eq!(
                check_line(falsy, 8),
                Ok(LineKind::Falsy),
                "{:?}",
                std::str::from_utf8(falsy)
            );
        }
        assert_eq!(
            check_line(b"[1]", 8),
            Err(LineError::NotAnObject { found: "array" })
        );
        assert_eq!(
            check_line(b"\"x\"", 8),
            Err(LineError::NotAnObject { found: "string" })
        );
        assert_eq!(
            check_line(b"1", 8),
            Err(LineError::NotAnObject { found: "number" })
        );
        assert_eq!(
            check_line(b"true", 8),
            Err(LineError::NotAnObject { found: "boolean" })
        );
        assert!(matches!(
            check_line(b"{\"a\":01}", 8),
            Err(LineError::Syntax { .. })
        ));
        assert!(matches!(
            check_line(b"{\"a\":1,}", 8),
            Err(LineError::Syntax { .. })
        ));
        assert!(matches!(
            check_line(b"{\"a\":\"\x01\"}", 8),
            Err(LineError::Syntax { .. })
        ));
        assert!(matches!(
            check_line(b"{} {}", 8),
            Err(LineError::Syntax { .. })
        ));
        assert_eq!(
            check_line(b"{\"a\":\"\xff\"}", 8),
            Err(LineError::NotUtf8 { at: 6 })
        );
        let deep = format!("{}{}", "[".repeat(10), "]".repeat(10));
        assert_eq!(
            check_line(format!("{{\"a\":{deep}}}").as_bytes(), 8),
            Err(LineError::TooDeep { max: 8 })
        );
    }
}

/// Tests added from mutation testing (cargo-mutants): each pins a
/// behaviour whose mutation no other test noticed.
#[cfg(test)]
mod mutation_tests {
    use super::*;
    use std::io::{BufReader, Read};

    /// A reader that fails with `Interrupted` before every real read.
    struct Flaky<'a> {
        data: &'a [u8],
        interrupt: bool,
    }

    impl Read for Flaky<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::Error::from(io::ErrorKind::Interrupted));
            }
            let n = buf.len().min(self.data.len()).min(3);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn json_syntax_edges() {
        let ok = [
            &br#"{"a":"\"\\\/\b\f\n\r\t"}"#[..],
            br#"{"u":"\u00e9\uD83D\uDE00x"}"#,
            br#"{"n":[1e+5,-2.5E-3,0.5,10,-0,1E7]}"#,
            br#"{"s":"","t":"a\"b"}"#,
        ];
        for line in ok {
            assert_eq!(
                check_line(line, 8),
                Ok(LineKind::Object),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let bad = [
            &br#"{"a":"\x"}"#[..],
            br#"{"a":"\u00zz"}"#,
            br#"{"a":"\u12"}"#,
            br#"{"a":1.}"#,
            br#"{"a":1e}"#,
            br#"{"a":1e+}"#,
            br#"{"a":.5}"#,
            br#"{"a":-}"#,
            br#"{"a":"unterminated}"#,
        ];
        for line in bad {
            assert!(
                matches!(check_line(line, 8), Err(LineError::Syntax { .. })),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn empty_arrays_and_objects_inside_a_row() {
        assert_eq!(
            check_line(br#"{"a":[],"b":[[],{}],"c":{},"d":[ ]}"#, 8),
            Ok(LineKind::Object)
        );
        assert!(check_line(br#"{"a":[]}x"#, 8).is_err());
    }

    #[test]
    fn last_line_is_the_line_just_returned() {
        let mut lines = LineReader::new(&b"{\"a\":1}\n\n{}\n"[..], 64);
        let first = lines.next_line().unwrap().map(<[u8]>::to_vec);
        assert_eq!(first.as_deref(), Some(lines.last_line()));
        assert_eq!(lines.last_line(), b"{\"a\":1}");
        lines.next_line().unwrap();
        assert_eq!(lines.last_line(), b"{}");
    }

    #[test]
    fn interrupted_reads_are_retried() {
        let data = b"{\"a\":1}\n\n{\"b\":2}\n";
        let flaky = Flaky {
            data,
            interrupt: false,
        };
        let mut lines = LineReader::new(BufReader::with_capacity(4, flaky), 64);
        assert_eq!(lines.next_line().unwrap(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(lines.next_line().unwrap(), Some(&b"{\"b\":2}"[..]));
        assert_eq!(lines.line_no(), 3);
        assert_eq!(lines.next_line().unwrap(), None);
    }

    #[test]
    fn the_final_line_feed_is_not_a_line() {
        let mut lines = LineReader::new(&b"{}\n"[..], 64);
        assert!(lines.next_line().unwrap().is_some());
        assert_eq!(lines.next_line().unwrap(), None);
        assert_eq!(lines.line_no(), 1);
        // Without the final line feed, the same count.
        let mut lines = LineReader::new(&b"{}\n{}"[..], 64);
        while lines.next_line().unwrap().is_some() {}
        assert_eq!(lines.line_no(), 2);
        // A trailing blank line (two line feeds) is counted like the server's split.
        let mut lines = LineReader::new(&b"{}\n\n"[..], 64);
        while lines.next_line().unwrap().is_some() {}
        assert_eq!(lines.line_no(), 2);
    }
}
