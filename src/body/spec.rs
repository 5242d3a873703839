//! The body parts of a rules document as written: a rule's `body` block and the `request_body` /
//! `response_body` actions. Shapes only; [`crate::compile`] judges the values.

use std::collections::BTreeMap;

use crate::decode_struct;

use crate::config::{Integer, StringMatchSpec};
use crate::named::Named;

/// A rule's `body` block: which bodies the rule reads, how much of one it holds, and what must hold of it.
/// Every condition given must hold; the rule's `match` is decided first, from the headers.
#[derive(Debug, Default)]
pub struct BodySpec {
    /// Media types the rule reads (`application/json`, `text/*`, `application/*+json`); a message of another
    /// type is not held and the rule does not match. Default: text and JSON types.
    pub content_types: Option<Vec<String>>,
    /// Most bytes of body the rule holds (default 8 KiB). A longer body is not read: the rule does not match.
    pub max_bytes: Option<Integer>,
    /// Past `max_bytes`: `pass` (default: the message goes on unmodified) or `reject` (requests: answer 413).
    pub over_limit: Option<String>,
    /// The body (as text) contains this.
    pub contains: Option<String>,
    /// The body (as text) has a match of this regex somewhere (not anchored, unlike header regexes).
    pub regex: Option<String>,
    /// JSON fields by JSON Pointer (`/user/role`): each must be there and pass its test. A string is compared
    /// as is; a number, boolean, null, object or array as compact JSON (`42`, `true`).
    pub json: Named<StringMatchSpec>,
}
decode_struct!(BodySpec {
    content_types: optional,
    max_bytes: optional,
    over_limit: optional,
    contains: optional,
    regex: optional,
    json: optional,
});

/// A `request_body` or `response_body` action: changes to the body, applied in the order `set`, `replace`,
/// `json_remove`, `json_set`. `content-length` follows the new length.
#[derive(Debug, Default)]
pub struct BodyEditsSpec {
    /// The whole new body (literal text).
    pub set: Option<String>,
    /// Literal text replacements, each of every occurrence, in the order written.
    pub replace: Vec<ReplaceSpec>,
    /// JSON fields to remove, by JSON Pointer.
    pub json_remove: Vec<String>,
    /// JSON fields to set (created if missing), by JSON Pointer: any JSON value.
    pub json_set: BTreeMap<String, serde_json::Value>,
}
decode_struct!(BodyEditsSpec { set: optional, replace: optional, json_remove: optional, json_set: optional });

/// One text replacement.
#[derive(Debug, Default)]
pub struct ReplaceSpec {
    pub from: String,
    pub to: String,
}
decode_struct!(ReplaceSpec { from: required, to: required });
