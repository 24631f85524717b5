//! The configuration parser on arbitrary text: errors, never panics, and every error has a
//! position inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Err(errs) = esprit_engine::config::parse("f.toml", s) {
        for e in errs.0 {
            assert!(e.line >= 1 && e.line <= s.lines().count().max(1) + 1, "{e}");
            assert!(!e.message.is_empty());
        }
    }
});
