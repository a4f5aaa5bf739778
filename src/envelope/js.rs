//! JavaScript-compatible helpers: the default `Array.prototype.sort` order,
//! `JSON.stringify` string quoting, and the `Number()` coercion the
//! Lumiverse server applies to a ticket's `version`.
//!
//! The Lumiverse server is written in TypeScript; every byte it writes or
//! compares goes through these JavaScript semantics, so lvbak reproduces
//! them exactly instead of relying on Rust's (different) defaults.

use std::cmp::Ordering;

use serde_json::Value;

/// Compares two strings the way JavaScript's default `Array.prototype.sort`
/// does: lexicographically by UTF-16 code units.
///
/// This equals Rust's `str` order (UTF-8 bytes, i.e. code points) except
/// when a character above U+FFFF (a surrogate pair, code units
/// 0xD800..=0xDFFF) is compared with one in U+E000..=U+FFFF: JavaScript puts
/// the astral character first, Rust puts it last.
pub fn js_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Sorts strings in place in JavaScript's default `Array.prototype.sort`
/// order (UTF-16 code units, see [`js_cmp`]). The sort is stable, like
/// every current JavaScript engine's.
pub fn js_sort<S: AsRef<str>>(items: &mut [S]) {
    items.sort_by(|a, b| js_cmp(a.as_ref(), b.as_ref()));
}

/// Appends `s` as a JSON string literal exactly as JavaScript's
/// `JSON.stringify` writes it (one implementation, shared with the NDJSON
/// row writer: [`crate::ndjson::write_json_string`]).
pub(crate) use crate::ndjson::write_json_string as push_json_string;

/// `Number(value)` as JavaScript computes it for a value produced by
/// `JSON.parse`; `None` stands for `undefined` (a missing field).
pub(crate) fn js_number(value: Option<&Value>) -> f64 {
    match value {
        None => f64::NAN,
        Some(Value::Null) => 0.0,
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(s)) => js_string_to_number(s),
        Some(Value::Array(items)) => js_array_to_number(items),
        Some(Value::Object(_)) => f64::NAN,
    }
}

/// `Number(array)`: the array is first converted with `String(array)`,
/// i.e. `array.join(",")` with `null` elements written as empty strings.
/// Two or more elements always produce a comma, which is never numeric.
fn js_array_to_number(items: &[Value]) -> f64 {
    match items {
        [] => 0.0,
        [only] => match only {
            Value::Null => 0.0,
            // String(true) is "true", which is not numeric.
            Value::Bool(_) | Value::Object(_) => f64::NAN,
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            Value::String(s) => js_string_to_number(s),
            Value::Array(inner) => js_array_to_number(inner),
        },
        _ => f64::NAN,
    }
}

/// JavaScript's whitespace and line terminators, which `Number(string)`
/// trims from both ends.
fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\u{0009}'
            | '\u{000A}'
            | '\u{000B}'
            | '\u{000C}'
            | '\u{000D}'
            | '\u{0020}'
            | '\u{00A0}'
            | '\u{1680}'
            | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// `Number(string)`: the StringToNumber algorithm of ECMAScript.
pub(crate) fn js_string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_space);
    if t.is_empty() {
        return 0.0;
    }
    for (prefixes, radix) in [(["0x", "0X"], 16u32), (["0o", "0O"], 8), (["0b", "0B"], 2)] {
        for prefix in prefixes {
            if let Some(digits) = t.strip_prefix(prefix) {
                return radix_to_number(digits, radix);
            }
        }
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    if is_decimal_literal(t) {
        t.parse::<f64>().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

fn radix_to_number(digits: &str, radix: u32) -> f64 {
    if digits.is_empty() {
        return f64::NAN;
    }
    let mut value = 0.0f64;
    for c in digits.chars() {
        match c.to_digit(radix) {
            Some(d) => value = value * f64::from(radix) + f64::from(d),
            None => return f64::NAN,
        }
    }
    value
}

/// `[+-]? (digits ('.' digits?)? | '.' digits) ([eE] [+-]? digits)?`
fn is_decimal_literal(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        frac_digits = i - frac_start;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sort_differs_from_rust_order_above_u_ffff() {
        let mut v = vec![
            "\u{FF21}".to_owned(),
            "\u{1F600}".to_owned(),
            "a".to_owned(),
        ];
        js_sort(&mut v);
        assert_eq!(v, ["a", "\u{1F600}", "\u{FF21}"]);
        let mut r = v.clone();
        r.sort();
        assert_eq!(r, ["a", "\u{FF21}", "\u{1F600}"]);
    }

    #[test]
    fn quoting_matches_serde_json_compact() {
        for s in [
            "",
            "plain",
            "q\"b\\s",
            "\u{0}\u{1}\u{7}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}",
            "\u{2028}\u{2029}é😀\u{FFFF}",
        ] {
            let mut out = Vec::new();
            push_json_string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap_or_default(), "{s:?}");
        }
    }

    #[test]
    fn number_coercion_matches_javascript() {
        // Each pair was checked against Node 20 and Bun: `Number(v) === 1`.
        let ones = [
            json!(1),
            json!(1.0),
            json!("1"),
            json!(" 1 "),
            json!("1.0"),
            json!("0x1"),
            json!("0X1"),
            json!("0b1"),
            json!("0o1"),
            json!("1e0"),
            json!("+1"),
            json!("01"),
            json!("1."),
            json!(".1e1"),
            json!("\u{a0}1\u{feff}"),
            json!(true),
            json!([1]),
            json!(["1"]),
            json!([[1]]),
        ];
        for v in &ones {
            assert_eq!(js_number(Some(v)), 1.0, "{v}");
        }
        let not_ones = [
            json!(null),
            json!(false),
            json!(""),
            json!([]),
            json!([null]),
            json!([true]),
            json!([1, 2]),
            json!({}),
            json!("-0x1"),
            json!("+0x1"),
            json!("1_0"),
            json!("1n"),
            json!("Infinity"),
            json!("one"),
            json!(2),
            json!("."),
            json!("1e"),
        ];
        for v in &not_ones {
            assert_ne!(js_number(Some(v)), 1.0, "{v}");
        }
        assert!(js_number(None).is_nan());
        assert_eq!(js_number(Some(&json!([null]))), 0.0);
        assert_eq!(js_number(Some(&json!("2"))), 2.0);
    }
}
