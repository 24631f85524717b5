//! Sans-IO IKEv2 ([RFC 7296](https://www.rfc-editor.org/rfc/rfc7296)): the messages, the
//! crypto behind a provider, key derivation, authentication, and the state machine of a
//! remote-access responder (and of an initiator, for tests). Time, randomness and crypto are
//! injected; datagrams go in and out as bytes.

#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod cookie;
pub mod crypto;
pub mod endpoint;
mod exchange;
pub mod identity;
pub mod keys;
pub mod message;
pub mod nat;
pub mod persist;
pub mod pki;
pub mod pool;
pub mod proposal;
pub mod sa;
pub mod sk;
pub mod ts;

pub use endpoint::{ChildInfo, Endpoint, EndpointError, IkeSaInfo, Restored};
pub use exchange::auth::InitiatorOptions;
pub use exchange::ChildEvent;
pub use sa::{ChildInstall, ChildKeys, CloseReason, Datagram, Event, IkeSaKeys, Output, Stats, TraceScope};
