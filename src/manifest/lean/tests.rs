//! The lean parse against `from_sized_reader`, its reference.

use std::io::Read;

use proptest::prelude::*;
use serde_json::Value;

// The crate's path to it (through the manifest module).
use super::super::{KeepDigests, NotByName, LVBAK_FIELD};
use super::*;

const DEPTH: u32 = 8;

fn digests(n: usize, seed: u8) -> Vec<[u8; 32]> {
    (0..n)
        .map(|i| {
            let mut d = [0u8; 32];
            for (j, b) in d.iter_mut().enumerate() {
                *b = (i as u8)
                    .wrapping_mul(31)
                    .wrapping_add((j as u8).wrapping_mul(7))
                    .wrapping_add(seed);
            }
            d
        })
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
}

/// A reader that hands out its bytes in chunks of the given sizes (in
/// turn), fails with `Interrupted` on every `interrupt`-th call (0: never),
/// and with an error of its own once `fail_at` bytes were read.
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    sizes: &'a [usize],
    calls: usize,
    interrupt: usize,
    fail_at: Option<usize>,
}

impl<'a> Chunked<'a> {
    fn new(data: &'a [u8], sizes: &'a [usize], interrupt: usize, fail_at: Option<usize>) -> Self {
        Chunked {
            data,
            pos: 0,
            sizes,
            calls: 0,
            interrupt,
            fail_at,
        }
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        if self.interrupt > 0 && self.calls % self.interrupt == 0 {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let end = match self.fail_at {
            Some(f) if self.pos >= f => {
                return Err(std::io::Error::other(format!("failed at byte {f}")))
            }
            Some(f) => f.min(self.data.len()),
            None => self.data.len(),
        };
        let size = match self.sizes {
            [] => usize::MAX,
            s => s[self.calls % s.len()],
        };
        let n = size.min(buf.len()).min(end - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Every digest kept.
const ALL: KeepDigests = KeepDigests::Window {
    from: 0,
    len: usize::MAX,
};

/// How the lean parse differs from `from_sized_reader` beyond what its
/// contract allows, if it does.
fn lean_differs(
    text: &[u8],
    sizes: &[usize],
    interrupt: usize,
    fail_at: Option<usize>,
) -> Option<String> {
    let size = text.len() as u64;
    let want =
        Trailer::from_sized_reader(Chunked::new(text, sizes, interrupt, fail_at), DEPTH, size);
    for keep in [
        ALL,
        KeepDigests::Count,
        KeepDigests::Window { from: 0, len: 1 },
        KeepDigests::Window { from: 1, len: 2 },
        KeepDigests::Window {
            from: 2,
            len: usize::MAX,
        },
        KeepDigests::Window { from: 5, len: 0 },
    ] {
        let got = Trailer::from_reader_lean(
            Chunked::new(text, sizes, interrupt, fail_at),
            DEPTH,
            size,
            keep,
        );
        let problem = match (&want, got) {
            (Err(a), Err(b)) => ((a.kind(), a.to_string()) != (b.kind(), b.to_string()))
                .then(|| format!("errors differ: {a} / {b}")),
            (Ok(None), Ok(None)) => None,
            (Ok(Some(w)), Ok(Some(g))) => trailer_differs(w, g, keep),
            (w, g) => Some(format!("{w:?} / {g:?}")),
        };
        if let Some(p) = problem {
            return Some(format!("{keep:?}: {p}"));
        }
    }
    None
}

/// Compares a lean parse with the reference, forgiving only the allowed
/// differences: `null` for a `sha256` string that is not a digest field,
/// and (with `Count` or a window) in-order digests not kept: a window
/// keeps exactly the reference's digests at its positions.
fn trailer_differs(want: &Trailer, mut got: Trailer, keep: KeepDigests) -> Option<String> {
    if got.in_order_count() != want.in_order_count() {
        return Some(format!(
            "in-order count {:?}, want {:?}",
            got.in_order_count(),
            want.in_order_count()
        ));
    }
    if want.in_order_count()
        != want.lvbak.as_ref().and_then(|l| match &l.digests {
            Digests::InOrder(v) => Some(v.len()),
            Digests::ByName(_) => None,
        })
    {
        return Some("the reference's in-order count is not its number of digests".into());
    }
    {
        if let (
            Some(LvbakTrailer {
                version: gv,
                digests: Digests::InOrder(g),
            }),
            Some(
                w @ LvbakTrailer {
                    version: wv,
                    digests: Digests::InOrder(_),
                },
            ),
        ) = (&got.lvbak, &want.lvbak)
        {
            let Digests::InOrder(all) = &w.digests else {
                return Some("unreachable".into());
            };
            let range = keep.range();
            let expect = all
                .get(range.start.min(all.len())..range.end.min(all.len()))
                .unwrap_or_default();
            if g != expect || gv != wv {
                return Some(format!(
                    "kept {} digests with {keep:?}, want {}",
                    g.len(),
                    expect.len()
                ));
            }
            got.lvbak = Some(w.clone());
        }
    }
    let want_sha = want
        .raw
        .get(LVBAK_FIELD)
        .and_then(|l| l.as_object())
        .and_then(|l| l.get("sha256"));
    if let (Some(Value::String(_)), Some(Value::Object(g))) =
        (want_sha, got.raw.get_mut(LVBAK_FIELD))
    {
        if g.get("sha256") == Some(&Value::Null) {
            g.insert("sha256".into(), want_sha.cloned().unwrap_or_default());
        }
    }
    (&got != want).then(|| format!("{got:?}\n  want {want:?}"))
}

#[track_caller]
fn assert_agrees(text: &[u8]) {
    let show = String::from_utf8_lossy(text);
    let show: String = show.chars().take(300).collect();
    for (sizes, interrupt) in [(&[][..], 0), (&[1, 2, 3, 5, 7][..], 0), (&[3][..], 2)] {
        if let Some(p) = lean_differs(text, sizes, interrupt, None) {
            panic!("{show} (chunks {sizes:?}, interrupt {interrupt}): {p}");
        }
    }
}

fn lvbak_doc(fields: &str) -> Vec<u8> {
    format!(r#"{{"counts":{{"chats":2}},"missingFiles":["a"],"lvbak":{{{fields}}}}}"#).into_bytes()
}

#[test]
fn valid_fields_of_any_count_and_key_order_agree() {
    for n in (0..=50).chain([127, 128, 129, 200, 400]) {
        let s = b64(digests(n, 1).as_flattened());
        for version in [2, 3] {
            let v = format!(r#""version":{version}"#);
            let e = format!(r#""entries":{n}"#);
            let d = format!(r#""sha256":"{s}""#);
            for fields in [
                [&v, &e, &d],
                [&v, &d, &e],
                [&d, &v, &e],
                [&d, &e, &v],
                [&e, &d, &v],
                [&e, &v, &d],
            ] {
                let text = lvbak_doc(&fields.map(String::as_str).join(","));
                assert_agrees(&text);
                let t = Trailer::from_reader_lean(&text[..], DEPTH, text.len() as u64, ALL)
                    .unwrap()
                    .unwrap();
                assert_eq!(t.digest_at(0), digests(n, 1).first().copied());
                assert_eq!(t.in_order_count(), Some(n));
                let t = Trailer::from_reader_lean(
                    &text[..],
                    DEPTH,
                    text.len() as u64,
                    KeepDigests::Count,
                )
                .unwrap()
                .unwrap();
                assert_eq!(t.in_order_count(), Some(n));
                assert_eq!(
                    t.lvbak.map(|l| l.digests),
                    Some(Digests::InOrder(Vec::new()))
                );
            }
        }
    }
}

/// The digest string of `n` digests with `edit` applied to its text.
fn field_with(n: usize, entries: usize, edit: impl Fn(&str) -> String) -> Vec<u8> {
    let s = edit(&b64(digests(n, 9).as_flattened()));
    lvbak_doc(&format!(
        r#""version":3,"entries":{entries},"sha256":"{s}""#
    ))
}

#[test]
fn hand_written_cases_agree() {
    let one = b64(&[0xfb; 32]);
    let two = b64(digests(2, 5).as_flattened());
    let mut cases: Vec<Vec<u8>> = vec![
        // Escapes JSON accepts, decoding to base64 characters.
        field_with(3, 3, |s| s.replacen('/', "\\/", 5)),
        field_with(3, 3, |s| s.replacen('A', "\\u0041", 2)),
        field_with(3, 3, |s| {
            s.replacen('/', "\\u002f", 2).replacen('+', "\\u002B", 2)
        }),
        field_with(1, 1, |s| s.replacen('=', "\\u003d", 1)),
        field_with(3, 3, |s| format!("\\u0{}", &s[1..])), // `\u0` + hex: a non-ASCII char
        // Escapes that are not base64, or not JSON.
        field_with(2, 2, |s| format!("{}\\n{}", &s[..8], &s[8..])),
        field_with(2, 2, |s| format!("{}\\\"{}", &s[..8], &s[8..])),
        field_with(2, 2, |s| format!("{}\\\\{}", &s[..8], &s[8..])),
        field_with(2, 2, |s| format!("{}\\x{}", &s[..8], &s[8..])),
        field_with(2, 2, |s| format!("{}\\u00x1{}", &s[..8], &s[8..])),
        field_with(2, 2, |s| format!("{}\\u000x", &s[..8])), // `A` must not complete it
        field_with(2, 2, |s| format!("{}\\u000", &s[..8])),
        field_with(2, 2, |s| format!("{}\\u12", &s[..8])),
        field_with(2, 2, |s| format!("{}\\", &s[..8])),
        field_with(2, 2, |s| format!("{}\\u", &s[..8])),
        // Non-ASCII, surrogates.
        field_with(2, 2, |s| format!("{}é{}", &s[..8], &s[8..])),
        field_with(2, 2, |s| format!("é{s}")),
        field_with(2, 2, |s| format!("{}\\ud83d\\ude00{}", &s[..8], &s[8..])),
        field_with(2, 2, |s| format!("{}\\uD83D\\uDE00", &s[..8])),
        field_with(2, 2, |s| format!("{}\\ud83d{}", &s[..8], &s[8..])),
        field_with(2, 2, |s| format!("{}\\ud83d", &s[..8])),
        field_with(2, 2, |s| format!("{}\\ude00{}", &s[..8], &s[8..])),
        field_with(2, 2, |s| format!("{}\\ud83d\\u0041{}", &s[..8], &s[8..])),
        field_with(2, 2, |s| format!("{}\\ud83d\\ud83d\\ude00", &s[..8])),
        field_with(2, 2, |s| format!("{}\\ud83d\\n", &s[..8])),
        field_with(2, 2, |s| format!("{}\\ud83d\\", &s[..8])),
        field_with(2, 2, |s| format!("{}\\ud83d\\u", &s[..8])),
        field_with(2, 2, |s| format!("{}\\ud83dx", &s[..8])),
        field_with(2, 2, |s| format!("{}\\ud83dxudc00{}", &s[..8], &s[8..])),
        field_with(2, 2, |s| format!("{}\\ud83d\\xdc00{}", &s[..8], &s[8..])),
        // Raw control characters, DEL.
        field_with(2, 2, |s| format!("{}\n{}", &s[..8], &s[8..])),
        field_with(2, 2, |s| format!("{}\u{1}{}", &s[..8], &s[8..])),
        field_with(2, 2, |s| format!("{}\u{7f}{}", &s[..8], &s[8..])),
        // Bad base64.
        field_with(1, 1, |s| format!("{}==", &s[..s.len() - 1])),
        field_with(1, 1, |s| format!("{}AA==", &s[..s.len() - 4])),
        field_with(1, 1, |s| format!("{}B=", &s[..s.len() - 2])), // trailing bits
        field_with(1, 1, |s| s[..s.len() - 1].to_string()),
        field_with(1, 1, |s| format!("{s}A")),
        field_with(1, 1, |s| format!("{s}AAAA")),
        field_with(1, 1, |s| format!("{s}===")),
        field_with(2, 2, |s| format!("{}={}", &s[..40], &s[41..])),
        field_with(2, 2, |s| format!("AA=={}", &s[4..])),
        field_with(2, 2, |s| format!("*{}", &s[1..])),
        field_with(2, 2, |s| format!(" {}", &s[1..])),
        field_with(200, 200, |s| format!("{}=A{}", &s[..4090], &s[4092..])),
        field_with(200, 200, |s| format!("{}==AA{}", &s[..4094], &s[4098..])),
        field_with(200, 200, |s| format!("{}*{}", &s[..5000], &s[5001..])),
        // A padded block at the end of the first chunk decoded, the whole
        // still a number of digests.
        lvbak_doc(&format!(
            r#""version":3,"entries":96,"sha256":"{}""#,
            padded_inside(&[7; 3066], 0, 3)
        )),
        lvbak_doc(&format!(
            r#""version":3,"entries":96,"sha256":"{}""#,
            padded_inside(&[7; 3066], 1, 3)
        )),
        // `\u` escapes of characters beyond ASCII whose low byte is in the
        // alphabet.
        field_with(2, 2, |s| format!("\\u0141{}", &s[1..])),
        field_with(2, 2, |s| format!("{}\\uff2f{}", &s[..8], &s[9..])),
        field_with(2, 3, |s| s.to_string()),
        field_with(2, 1, |s| s.to_string()),
        field_with(0, 0, |s| s.to_string()),
        field_with(0, 1, |s| s.to_string()),
    ];
    // Invalid UTF-8 in the string.
    for bad in [
        &b"\xc3"[..],
        b"\xc3(",
        b"\xe0\x80\x80",
        b"\xe0\xa0",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xf0\x9f\x98",
        b"\xff",
        b"\x80",
        b"\xc0\xaf",
        b"\xe2\x82\\n",
        b"\xe2\x82\\u0041",
    ] {
        for at_end in [false, true] {
            let s = b64(digests(2, 3).as_flattened());
            let mut text = br#"{"lvbak":{"version":3,"entries":2,"sha256":""#.to_vec();
            text.extend_from_slice(&s.as_bytes()[..8]);
            text.extend_from_slice(bad);
            if !at_end {
                text.extend_from_slice(&s.as_bytes()[8..]);
            }
            text.extend_from_slice(br#""}}"#);
            cases.push(text);
        }
    }
    cases.push("{\"lvbak\":{\"version\":3,\"entries\":2,\"sha256\":\"\u{1F600}\"}}".into());
    for doc in [
        // Not a string.
        format!(
            r#"{{"lvbak":{{"version":1,"sha256":{{"manifest.json":"{}"}}}}}}"#,
            "ab".repeat(32)
        ),
        format!(r#"{{"lvbak":{{"version":1,"sha256":{{"sha256":"{one}"}}}}}}"#),
        r#"{"lvbak":{"version":3,"entries":1,"sha256":{"sha256":"x","a":[1]}}}"#.into(),
        r#"{"lvbak":{"version":3,"entries":1,"sha256":12}}"#.into(),
        r#"{"lvbak":{"version":3,"entries":1,"sha256":-1.5e3}}"#.into(),
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"sha256":["{one}"]}}}}"#),
        r#"{"lvbak":{"version":3,"entries":1,"sha256":null}}"#.into(),
        r#"{"lvbak":{"version":3,"entries":1,"sha256":true}}"#.into(),
        // Versions and counts.
        format!(r#"{{"lvbak":{{"version":1,"entries":1,"sha256":"{one}"}}}}"#),
        format!(r#"{{"lvbak":{{"version":4,"entries":1,"sha256":"{one}"}}}}"#),
        format!(r#"{{"lvbak":{{"version":"3","entries":1,"sha256":"{one}"}}}}"#),
        format!(r#"{{"lvbak":{{"version":3,"entries":"1","sha256":"{one}"}}}}"#),
        format!(r#"{{"lvbak":{{"version":3,"sha256":"{one}"}}}}"#),
        format!(r#"{{"lvbak":{{"sha256":"{one}"}}}}"#),
        // Twice, both ways round; the field twice.
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"sha256":"{one}","sha256":"x"}}}}"#),
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"sha256":"x","sha256":"{one}"}}}}"#),
        format!(r#"{{"lvbak":{{"version":3,"entries":2,"sha256":"{one}","sha256":"{two}"}}}}"#),
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"sha256":{{}},"sha256":"{one}"}}}}"#),
        format!(
            r#"{{"lvbak":{{"version":3,"entries":1,"sha256":"{one}"}},"lvbak":{{"version":3,"entries":2,"sha256":"{two}"}}}}"#
        ),
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"sha256":"{one}"}},"lvbak":7}}"#),
        // `sha256` elsewhere.
        format!(
            r#"{{"sha256":"{one}","counts":{{"sha256":"{one}"}},"lvbak":{{"version":3,"entries":1,"sha256":"{one}"}}}}"#
        ),
        format!(r#"{{"counts":{{"sha256":"{one}"}},"missingFiles":[{{"sha256":"{one}"}}]}}"#),
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"x":{{"sha256":"{one}"}}}}}}"#),
        format!(r#"{{"lvbak":[{{"sha256":"{one}"}}]}}"#),
        // The key escaped, whitespace around the colon, no colon.
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"sha\u0032\u00356":"{one}"}}}}"#),
        format!(
            "{{\"lvbak\":{{\"version\":3,\"entries\":1,\"sha256\" \n\t\r: \r\n \"{one}\" }} }}"
        ),
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"sha256" "{one}"}}}}"#),
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"sha256"::"{one}"}}}}"#),
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"sha256":"{one}" "x"}}}}"#),
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"sha256":"{one}",}}}}"#),
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"sha256":"{one}"}}}} x"#),
        // Depth: inside the digests' value and elsewhere.
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"sha256":[[[[[[[[["{one}"]]]]]]]]]}}}}"#),
        format!(
            r#"{{"lvbak":{{"version":3,"entries":1,"sha256":"{one}"}},"x":[[[[[[[[[1]]]]]]]]]}}"#
        ),
        format!(r#"{{"lvbak":{{"version":3,"entries":1,"sha256":"[[[[[[[[[[[[{one}"}}}}"#),
        // Not an object.
        format!(r#""{one}""#),
        format!(r#"["{one}"]"#),
        String::new(),
    ] {
        cases.push(doc.into_bytes());
    }
    for text in &cases {
        assert_agrees(text);
    }
    // Cut short anywhere, a reader failing anywhere.
    let text = lvbak_doc(&format!(
        r#""version":3,"entries":2,"sha256":"{}\/\u0041é""#,
        &two[..40]
    ));
    for cut in 0..text.len() {
        assert_agrees(&text[..cut]);
        for sizes in [&[][..], &[2]] {
            if let Some(p) = lean_differs(&text, sizes, 0, Some(cut)) {
                panic!("failing at {cut}: {p}");
            }
        }
    }
    // Large, failing in the middle of the digests.
    let big = field_with(3000, 3000, |s| s.to_string());
    for at in [50, 1000, 50_000, big.len() - 5, big.len()] {
        assert!(lean_differs(&big, &[], 0, Some(at)).is_none(), "{at}");
        let r = Chunked::new(&big, &[], 0, Some(at));
        let e = Trailer::from_reader_lean(r, DEPTH, 0, ALL).unwrap_err();
        assert_eq!(e.to_string(), format!("failed at byte {at}"));
    }
}

/// The base64 text of a random number of bytes (not always whole digests).
fn base64_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0usize..6, any::<u8>()).prop_map(|(n, s)| b64(digests(n, s).as_flattened())),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(|b| b64(&b)),
        proptest::collection::vec(proptest::sample::select(b"AQgw+/=Bb09".to_vec()), 0..200)
            .prop_map(|b| String::from_utf8(b).unwrap_or_default()),
        // A padded block inside the text, the whole a number of digests.
        (
            proptest::collection::vec(any::<u8>(), 0..40),
            0usize..3,
            any::<u8>()
        )
            .prop_map(|(head, q, seed)| padded_inside(&head, q, seed)),
    ]
}

/// `head` encoded, then a padded block (of 1 or 2 bytes, zero trailing
/// bits), then bytes enough to make whole digests: not base64 (padding
/// inside), unless the block is the last.
fn padded_inside(head: &[u8], q: usize, seed: u8) -> String {
    let head = &head[..head.len() / 3 * 3];
    let (block, bytes) = [("AA==", 1), ("AAA=", 2), ("Qg==", 1)][q % 3];
    let tail = (64 - (head.len() + bytes) % 32) % 32;
    let tail: Vec<u8> = (0..tail).map(|i| (i as u8).wrapping_mul(seed)).collect();
    format!("{}{block}{}", b64(head), b64(&tail))
}

/// An edit of the text: `(where, what)`.
fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4)
}

fn edit(text: &str, edits: &[(usize, u8)]) -> String {
    let mut t: Vec<char> = text.chars().collect();
    for &(at, what) in edits {
        let at = at % (t.len() + 1);
        let c = b"AQgw+/=Bb09*-_ \x7f"[usize::from(what) % 16] as char;
        match what % 3 {
            0 if at < t.len() => t[at] = c,
            1 => t.insert(at, c),
            _ if at < t.len() => {
                t.remove(at);
            }
            _ => {}
        }
    }
    t.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The piecewise decoder accepts and refuses what `NotByName::from_str`
    /// does, however the text is cut and whatever its chunk size.
    #[test]
    fn decoder_matches_from_str(
        text in base64_text(),
        edits in edits(),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        chunk in proptest::sample::select(vec![8usize, 12, 16, 44, CHUNK]),
        from in 0usize..6,
        len in proptest::sample::select(vec![0usize, 1, 2, 5, usize::MAX]),
    ) {
        let text = edit(&text, &edits);
        let keep = from..from.saturating_add(len);
        let want = match NotByName::from_str(&text) {
            NotByName::Base64(d) => {
                let kept = d.get(keep.start.min(d.len())..keep.end.min(d.len()));
                Some((d.len(), kept.unwrap_or_default().to_vec()))
            }
            _ => None,
        };
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (text.len() + 1)).collect();
        cuts.sort_unstable();
        let mut dec = Decoder::new(chunk, keep, 0);
        let mut from = 0;
        for c in cuts.into_iter().chain([text.len()]) {
            dec.push(&text.as_bytes()[from..c]);
            from = c;
        }
        let got = dec.finish().map(|t| (t.count, t.digests));
        prop_assert_eq!(got, want, "{}", text);
    }
}

/// Pieces a digest string may be cut into, for the tap: escapes JSON takes,
/// that it refuses, non-ASCII, bytes that are not UTF-8, quotes.
const PIECES: &[&[u8]] = &[
    b"\\/",
    b"\\u0041",
    b"\\u002f",
    b"\\u002B",
    b"\\u003d",
    b"\\u00e9",
    b"\\n",
    b"\\\"",
    b"\\\\",
    b"\\x",
    b"\\u00",
    b"\\u000",
    b"\\u12",
    b"\\",
    "é".as_bytes(),
    b"\\ud83d\\ude00",
    b"\\uD83D",
    b"\\udc00",
    b"\\ud83d\\u0041",
    b"\\ud83dx",
    b"\\ud83dxudc00",
    b"\\ud83d\\xdc00",
    b"\\uD83D\\",
    b"\x01",
    b"\n",
    b"\x7f",
    b"\xc3",
    b"\xe2\x82",
    b"\xf0\x9f\x98\x80",
    b"\x80",
    b"\xed\xa0\x80",
    b"\xff",
    b"=",
    b"A",
    b"*",
    b" ",
    b"\"",
    b"{",
    b"[",
];

/// A trailer around a digest string, with its text cut into pieces.
#[derive(Debug, Clone)]
struct Doc {
    n: usize,
    version: u8,
    entries: i8,
    order: usize,
    value: u8,
    inserts: Vec<(usize, usize)>,
    escapes: Vec<(usize, u8)>,
    twice: u8,
    bytes: Option<(usize, u8, u8)>,
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        prop_oneof![4 => 0usize..50, 1 => 120usize..260],
        prop_oneof![3 => 2u8..4, 1 => 0u8..5],
        prop_oneof![3 => Just(0i8), 1 => -1i8..=1],
        0usize..6,
        0u8..10,
        prop_oneof![
            Just(Vec::new()),
            proptest::collection::vec((any::<usize>(), any::<usize>()), 1..3)
        ],
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        0u8..8,
        proptest::option::weighted(0.2, (any::<usize>(), any::<u8>(), any::<u8>())),
    )
        .prop_map(
            |(n, version, entries, order, value, inserts, escapes, twice, bytes)| Doc {
                n,
                version,
                entries,
                order,
                value,
                inserts,
                escapes,
                twice,
                bytes,
            },
        )
}

impl Doc {
    fn text(&self) -> Vec<u8> {
        let s = b64(digests(self.n, 7).as_flattened());
        // The string as pieces of JSON text: characters, some escaped.
        let mut pieces: Vec<Vec<u8>> = s.bytes().map(|c| vec![c]).collect();
        for &(at, style) in &self.escapes {
            if pieces.is_empty() {
                break;
            }
            let at = at % pieces.len();
            let [c] = pieces[at][..] else { continue };
            pieces[at] = match style % 4 {
                0 if c == b'/' => b"\\/".to_vec(),
                1 => format!("\\u{:04X}", c).into_bytes(),
                // Not ASCII, but its low byte is.
                2 => format!("\\u{:04x}", 0x100 | u16::from(c)).into_bytes(),
                _ => format!("\\u{:04x}", c).into_bytes(),
            };
        }
        for &(at, which) in &self.inserts {
            let at = at % (pieces.len() + 1);
            pieces.insert(at, PIECES[which % PIECES.len()].to_vec());
        }
        let mut string = b"\"".to_vec();
        string.extend(pieces.concat());
        string.push(b'"');
        let sha: Vec<u8> = match self.value {
            0 => format!(r#"{{"a.json":"{}"}}"#, "0f".repeat(32)).into_bytes(),
            1 => b"[1,\"x\"]".to_vec(),
            2 => b"null".to_vec(),
            _ => string,
        };
        let entries = self.n as i64 + i64::from(self.entries);
        let version = match self.version {
            4 => "\"3\"".to_string(),
            v => v.to_string(),
        };
        let mut fields: Vec<Vec<u8>> = vec![
            format!(r#""version":{version}"#).into_bytes(),
            format!(r#""entries":{entries}"#).into_bytes(),
            [&b"\"sha256\":"[..], &sha].concat(),
        ];
        fields.rotate_left(self.order % 3);
        if self.order >= 3 {
            fields.swap(0, 1);
        }
        match self.twice {
            1 => fields.push(br#""sha256":"x""#.to_vec()),
            2 => fields.insert(0, br#""sha256":"AAAA""#.to_vec()),
            _ => {}
        }
        let lvbak = [&b"{"[..], &fields.join(&b","[..]), b"}"].concat();
        let mut text =
            br#"{"counts":{"chats":2,"sha256":"QUFB"},"missingFiles":["x"],"lvbak":"#.to_vec();
        text.extend(&lvbak);
        match self.twice {
            3 => text.extend(br#","lvbak":{"version":1,"sha256":{}}"#),
            4 => text.extend(br#","sha256":"AAAA""#),
            _ => {}
        }
        text.push(b'}');
        if let Some((at, what, b)) = self.bytes {
            let at = at % (text.len() + 1);
            match what % 3 {
                0 => text.truncate(at),
                1 => text.insert(at, b),
                _ if at < text.len() => {
                    text.remove(at);
                }
                _ => {}
            }
        }
        text
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// The lean parse gives what `from_sized_reader` gives, on any trailer
    /// around any digest string, read in any chunks, interrupted, failing.
    #[test]
    fn lean_parse_matches_the_reference(
        doc in doc(),
        sizes in proptest::collection::vec(1usize..9, 0..4),
        interrupt in prop_oneof![3 => Just(0usize), 1 => 2usize..5],
        fail in proptest::option::weighted(0.1, any::<usize>()),
    ) {
        let text = doc.text();
        let fail_at = fail.map(|f| f % (text.len() + 1));
        let problem = lean_differs(&text, &sizes, interrupt, fail_at);
        prop_assert!(problem.is_none(), "{}: {}", String::from_utf8_lossy(&text), problem.unwrap_or_default());
    }
}

/// A lean parse, and the most bytes of one digest string serde_json was
/// handed.
fn lean_with_handed(text: &[u8], keep: KeepDigests) -> (Option<Trailer>, usize) {
    let lean = Lean::new(keep, text.len() as u64);
    let t = Trailer::lean_parse(text, DEPTH, &lean).expect("no I/O error");
    (t, lean.largest_handed.get())
}

#[test]
fn the_digest_text_is_never_held() {
    // What is measured: every byte of the `sha256` string serde_json sees
    // passes through the tap, which counts them (serde_json's scratch
    // buffer for the string is at most that), and the digest list's
    // capacity (reserved once, never doubled). The rest of the tap is
    // fixed: a 4 KiB decoding buffer and a few bytes owed to serde_json.
    let n = 100_000;
    let d = digests(n, 3);
    let s = b64(d.as_flattened());
    assert!(s.len() > 4_000_000);
    for (order, exact) in [
        ("version,entries,sha256", true),
        ("sha256,version,entries", false),
    ] {
        let fields: Vec<String> = order
            .split(',')
            .map(|k| match k {
                "version" => r#""version":3"#.to_string(),
                "entries" => format!(r#""entries":{n}"#),
                _ => format!(r#""sha256":"{s}""#),
            })
            .collect();
        let text = lvbak_doc(&fields.join(","));
        let (t, handed) = lean_with_handed(&text, ALL);
        let t = t.expect("parses");
        // The closing quote and one `A` for the whole string.
        assert_eq!(handed, 2, "{order}");
        assert_eq!(t.in_order_count(), Some(n));
        let Some(LvbakTrailer {
            digests: Digests::InOrder(kept),
            ..
        }) = &t.lvbak
        else {
            panic!("no digests");
        };
        assert!(kept == &d, "{order}");
        if exact {
            // `entries` came first: reserved for exactly that many.
            assert_eq!(kept.capacity(), n, "{order}");
        } else {
            // Reserved from the entry's size: a little more, not twice.
            assert!(
                kept.capacity() >= n && kept.capacity() < n + n / 50,
                "{}",
                kept.capacity()
            );
        }
        assert_eq!(
            Some(t),
            Trailer::from_sized_reader(&text[..], DEPTH, text.len() as u64).unwrap()
        );
        let (t, handed) = lean_with_handed(&text, KeepDigests::Count);
        assert_eq!(handed, 2);
        let t = t.expect("parses");
        assert_eq!(t.in_order_count(), Some(n));
        let Some(Digests::InOrder(none)) = t.lvbak.map(|l| l.digests) else {
            panic!("no digests");
        };
        assert_eq!((none.len(), none.capacity()), (0, 0));
    }
    // Strings no digests are made of are not held either: non-ASCII,
    // escapes, and what follows bytes that are not UTF-8 (serde_json
    // refuses the string only at its end).
    for (what, body, most) in [
        ("non-ASCII", "é".repeat(500_000).into_bytes(), 2),
        (
            "ASCII not base64",
            "* -\u{7f}".repeat(250_000).into_bytes(),
            2,
        ),
        (
            "escapes",
            "\\/\\u0041\\n\\ud83d\\ude00".repeat(100_000).into_bytes(),
            2,
        ),
        (
            "not UTF-8",
            [&b"AAAA\xc3"[..], &b"AAAA".repeat(500_000)].concat(),
            4,
        ),
    ] {
        let mut text = br#"{"lvbak":{"version":3,"entries":1,"sha256":""#.to_vec();
        text.extend(&body);
        text.extend(br#""}}"#);
        let (_, handed) = lean_with_handed(&text, ALL);
        assert_eq!(handed, most, "{what}");
        assert!(lean_differs(&text, &[], 0, None).is_none(), "{what}");
    }
}

#[test]
fn normal_parses_count_their_in_order_digests() {
    let t = Trailer::new(vec![], vec![], Some(LvbakTrailer::in_order(digests(5, 0))));
    assert_eq!(t.in_order_count(), Some(5));
    let back = Trailer::parse(&t.to_json(), DEPTH).unwrap();
    assert_eq!(back.in_order_count(), Some(5));
    let mut text = Vec::new();
    t.write_json(&mut text).unwrap();
    let back = Trailer::from_sized_reader(&text[..], DEPTH, text.len() as u64)
        .unwrap()
        .unwrap();
    assert_eq!(back.in_order_count(), Some(5));
    let streamed = Trailer::from_reader_within(&text[..], DEPTH, 0, text.len() as u64)
        .unwrap()
        .unwrap();
    assert_eq!(streamed.in_order_count(), Some(5));
    let v1 = Trailer::new(
        vec![],
        vec![],
        Some(LvbakTrailer {
            version: 1,
            digests: Digests::ByName(vec![("a".into(), [1; 32])]),
        }),
    );
    assert_eq!(v1.in_order_count(), None);
    assert_eq!(
        Trailer::parse(&v1.to_json(), DEPTH)
            .unwrap()
            .in_order_count(),
        None
    );
    assert_eq!(Trailer::new(vec![], vec![], None).in_order_count(), None);
}
