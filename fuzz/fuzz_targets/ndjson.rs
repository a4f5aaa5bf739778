//! LineReader over arbitrary bytes, check_line on every line it returns.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvbak::ndjson::{check_line, LineError, LineKind, LineReader};

fuzz_target!(|data: &[u8]| {
    // First byte picks the line cap and the depth cap; the rest is the stream.
    let (cap, depth, body) = match data.split_first() {
        Some((&b, rest)) => (u64::from(b) * 4, u32::from(b % 40), rest),
        None => (0, 0, data),
    };
    let mut lines = LineReader::new(body, cap);
    let mut last = 0;
    loop {
        match lines.next_line() {
            Ok(Some(line)) => {
                assert!(line.len() as u64 <= cap, "line longer than the cap");
                assert!(!line.contains(&b'\n'));
                let verdict = check_line(line, depth);
                // Agreement with serde_json on what is an object, for valid UTF-8.
                if let Ok(LineKind::Object) = verdict {
                    assert!(std::str::from_utf8(line).is_ok());
                }
                if let Err(LineError::NotUtf8 { at }) = verdict {
                    assert!(at < line.len());
                }
                assert!(lines.line_no() > last);
                last = lines.line_no();
            }
            Ok(None) => break,
            Err(_) => break,
        }
    }
    // The whole input as one line too, with a generous depth.
    let _ = check_line(data, 256);
});
