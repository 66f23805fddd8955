//! The SIP user agent of a browser session. Raw input is parsed at the boundary into typed
//! values (`account`, `uri`); digest authentication (`digest`) and the registration state
//! machine (`register`) are sans-IO cores driven with explicit time; `client` is the thin
//! driver that puts them on the wire through rsipstack's transactions and transports.

pub mod account;
pub mod call;
pub mod client;
pub mod dialog;
pub mod digest;
pub mod dispatch;
mod grammar;
pub mod in_dialog;
pub mod inbound;
pub mod incoming;
pub mod message;
pub mod register;
pub mod uri;
pub mod wire;

pub use account::{AccountError, Field, RawSipAccount, SipAccount, Transport};
pub use uri::{Host, SipUri, UriError, UserPart};
