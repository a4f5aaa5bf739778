//! Ticket::parse + read_index + open over a ticket, an index and records
//! split from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvbak::envelope::{open, read_index, Ticket};

/// Splits at the first two 0xFF bytes (never valid UTF-8, so rare in JSON).
fn split3(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let mut parts = data.splitn(3, |&b| b == 0xFF);
    let a = parts.next().unwrap_or(&[]);
    let b = parts.next().unwrap_or(&[]);
    let c = parts.next().unwrap_or(&[]);
    (a, b, c)
}

fuzz_target!(|data: &[u8]| {
    let (ticket, index, records) = split3(data);
    let _ = read_index(index);
    let _ = read_index(records);
    let Ok(t) = Ticket::parse(ticket) else {
        return;
    };
    let _ = t.to_json();
    let id = t.archive_id().to_owned();
    let index_opt = if index.is_empty() { None } else { Some(index) };
    let _ = open(&t, &id, index_opt, records);
    let _ = open(&t, "other-archive", index_opt, records);
    if let Ok(opened) = open(&t, &id, index_opt, records) {
        let _ = opened.into_strict();
    }
});
