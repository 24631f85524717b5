//! The IKEv2 message decoder on arbitrary datagrams (anyone can send one to UDP 500) and on
//! arbitrary decrypted chains (a peer with keys): never panics, and whatever decodes
//! re-encodes to bytes that decode to the same value.
//!
//! The input is decoded as a datagram, and its tail as a payload chain whose first type is
//! the input's first byte.
#![no_main]

use esprit_ikev2::message::{self, Payload, PayloadType};
use libfuzzer_sys::fuzz_target;

/// Transforms with attributes the codec does not know are decoded as a flag: their
/// attributes are gone, so such a payload cannot be re-encoded (and must not be).
fn has_unknown_attributes(payloads: &[Payload]) -> bool {
    payloads.iter().any(|p| match p {
        Payload::Sa(proposals) => proposals.iter().flat_map(|p| &p.transforms).any(|t| t.unknown_attributes),
        _ => false,
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = message::decode(data) {
        match d.encrypted {
            None => match message::encode(&d.header, &d.payloads) {
                Ok(again) => {
                    let d2 = message::decode(&again).expect("a re-encoded message decodes");
                    assert_eq!(d2.header, d.header);
                    assert_eq!(d2.payloads, d.payloads);
                }
                Err(e) => assert!(has_unknown_attributes(&d.payloads), "decoded payloads do not encode: {e}"),
            },
            Some(e) => match message::encode_encrypted_prefix(&d.header, e.inner_first, e.fragment, e.body.len()) {
                Ok(prefix) => {
                    let again = [prefix.as_slice(), e.body].concat();
                    let d2 = message::decode(&again).expect("a re-encoded encrypted message decodes");
                    let e2 = d2.encrypted.expect("still encrypted");
                    assert_eq!((e2.inner_first, e2.fragment, e2.body), (e.inner_first, e.fragment, e.body));
                    assert_eq!(e2.authenticated_header, prefix.as_slice());
                    if d.payloads.is_empty() {
                        assert_eq!(d2.header, d.header);
                    }
                }
                // The decoder takes a later fragment that names an inner payload; the encoder
                // writes NONE there (RFC 7383 §2.5) and refuses anything else.
                Err(_) => assert!(e.fragment.is_some_and(|(n, _)| n > 1) && e.inner_first != PayloadType::NONE),
            },
        }
    }
    if let Some((&first, chain)) = data.split_first() {
        if let Ok(payloads) = message::decode_chain(PayloadType(first), chain) {
            match message::encode_chain(&payloads) {
                Ok((first2, again)) => {
                    assert_eq!(message::decode_chain(first2, &again).expect("a re-encoded chain decodes"), payloads);
                }
                Err(e) => assert!(has_unknown_attributes(&payloads), "decoded chain does not encode: {e}"),
            }
        }
    }
});
