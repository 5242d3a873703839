//! Message bodies, bounded: the plain-Rust algorithms behind body rules, with no proxy in sight.
//!
//! A rule that reads or writes a body (its `body` block, or a `request_body`/`response_body` action) makes the
//! filter hold that message until it is complete or past the rule's byte limit. What to hold is decided in the
//! headers phase ([`media`]: content type, streaming protocols, announced length); how much is held is
//! [`limit`]'s job; once whole, the body is searched or edited as text ([`text`]) or as JSON by pointer
//! ([`json`]). Everything here is native-testable and allocation is proportional to the body held.

pub mod json;
pub mod limit;
pub mod media;
pub mod rule;
pub mod spec;
pub mod text;

pub use limit::{Fill, OverLimit};
