//! Sans-IO IKEv2 ([RFC 7296](https://www.rfc-editor.org/rfc/rfc7296)): the messages, the
//! crypto behind a provider, key derivation, authentication, and the state machine of a
//! remote-access responder (and of an initiator, for tests). Time, randomness and crypto are
//! injected; datagrams go in and out as bytes.

#![forbid(unsafe_code)]

pub mod crypto;
pub mod message;
