//! The ring's message decoder on arbitrary bytes (a buggy or hostile peer process): never
//! panics, and whatever decodes re-encodes to bytes that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = esprit_ring::decode(data) {
        let again = m.encode().expect("a decoded message encodes");
        assert_eq!(esprit_ring::decode(&again).expect("re-decodes"), m);
    }
});
