//! EntryName::parse, with the round-trip property on accepted names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvbak::EntryName;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(name) = EntryName::parse(raw) else {
        return;
    };
    let shown = name.to_string();
    assert!(!shown.starts_with('/'), "leading slash in {shown:?}");
    assert!(
        !shown.split('/').any(|s| s == ".." || s == "."),
        "dot segment in {shown:?}"
    );
    assert!(!shown.contains('\\'), "backslash in {shown:?}");
    assert!(!shown.contains('\0'), "NUL in {shown:?}");
    let again = EntryName::parse(&shown).expect("Display output must re-parse");
    assert_eq!(again, name, "{raw:?} -> {shown:?}");
    assert_eq!(again.to_string(), shown);
});
