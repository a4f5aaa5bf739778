//! Byte encodings used by the envelopes: base64 (strict and Node/Bun
//! lenient), lowercase hex, and the length-prefixed framing of version 2.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::{Zeroize, Zeroizing};

/// Standard, padded base64 (RFC 4648 §4), as `Buffer.toString("base64")`.
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Standard, padded, canonical base64; `None` on any deviation.
pub(crate) fn b64_decode_strict(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok()
}

fn sextet(c: char) -> Option<u32> {
    let v = match c {
        'A'..='Z' => u32::from(c) - u32::from('A'),
        'a'..='z' => u32::from(c) - u32::from('a') + 26,
        '0'..='9' => u32::from(c) - u32::from('0') + 52,
        '+' | '-' => 62,
        '/' | '_' => 63,
        _ => return None,
    };
    Some(v)
}

/// Decodes base64 the way Node's and Bun's `Buffer.from(s, "base64")` do,
/// which is what the Lumiverse server uses for ticket keys and record
/// fields: both the standard and the URL-safe alphabet are accepted, every
/// other character is skipped, decoding stops at the first `=`, padding is
/// optional, unused trailing bits are ignored, and a single leftover
/// character yields no byte. It never fails.
pub(crate) fn b64_decode_lenient(s: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() / 4 * 3 + 3));
    let mut acc: u32 = 0;
    let mut n = 0u8;
    for c in s.chars() {
        if c == '=' {
            break;
        }
        let Some(v) = sextet(c) else { continue };
        acc = (acc << 6) | v;
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    acc.zeroize();
    out
}

/// The lowercase hex digit for the low nibble of `n`.
pub(crate) fn hex_digit(n: u8) -> u8 {
    let n = n & 0x0F;
    if n < 10 {
        b'0' + n
    } else {
        b'a' + n - 10
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(hex_digit(b >> 4)));
        s.push(char::from(hex_digit(b & 0x0F)));
    }
    s
}

/// Parses exactly 64 lowercase hex digits.
pub(crate) fn unhex32(s: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *slot = (nibble(*hi)? << 4) | nibble(*lo)?;
    }
    Some(out)
}

/// Appends the version 2 length-prefixed encoding of `bytes`: its length
/// as an unsigned 64-bit big-endian integer, then the bytes.
pub(crate) fn push_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lenient_hex(s: &str) -> String {
        hex(&b64_decode_lenient(s))
    }

    #[test]
    fn lenient_base64_matches_node_and_bun() {
        // Each expectation was produced by `Buffer.from(s, "base64")` in
        // Node 20 and Bun.
        let cases = [
            ("AAAA", "000000"),
            ("AA", "00"),
            ("A", ""),
            ("AAA", "0000"),
            ("AA==", "00"),
            ("A A A A", "000000"),
            ("AAAA=AAAA", "000000"),
            ("-_-_", "fbffbf"),
            ("+/+/", "fbffbf"),
            ("AA=A", "00"),
            ("AA*AA", "000000"),
            ("AAAAA", "000000"),
            ("=AAAA", ""),
            ("A=AAA", ""),
        ];
        for (input, want) in cases {
            assert_eq!(lenient_hex(input), want, "{input:?}");
        }
    }

    #[test]
    fn strict_base64_rejects_non_canonical() {
        assert_eq!(b64_decode_strict("AAAA"), Some(vec![0, 0, 0]));
        assert_eq!(b64_decode_strict("AA"), None);
        assert_eq!(b64_decode_strict("AB=="), None);
        assert_eq!(b64_decode_strict("-_-_"), None);
    }

    #[test]
    fn hex_round_trip() {
        let bytes: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37)).collect();
        let h = hex(&bytes);
        assert_eq!(unhex32(&h).map(|a| a.to_vec()), Some(bytes));
        assert_eq!(unhex32(&h.to_uppercase()), None);
        assert_eq!(unhex32("00"), None);
    }
}
