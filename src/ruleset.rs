//! The compiled, immutable form of a rules document: what every request is evaluated against.
//!
//! Everything a request needs is decided here once: header names are lower-cased, regexes compiled, and every
//! header any rule reads gets a numbered slot, so a request fetches each header from the proxy at most once and
//! only if a rule looks at it.

use crate::error::Phase;
use crate::matcher::CompiledMatch;

/// Which header map a value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMap {
    Request,
    Response,
}

/// A header (or pseudo-header such as `:path`) some rule reads; its index in [`RuleSet::slots`] is its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub map: HeaderMap,
    /// Lower-case name.
    pub name: Box<str>,
}

/// The rules of one document, ready to run.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub(crate) request_rules: Vec<Rule>,
    pub(crate) response_rules: Vec<Rule>,
    pub(crate) slots: Vec<Slot>,
    /// Slots of request headers that response rules read: captured before the request goes upstream, because
    /// the proxy does not offer request headers in the response phase.
    pub(crate) carried_slots: Vec<usize>,
}

impl RuleSet {
    /// True when the document has no rules: the filter then only passes traffic through.
    pub fn is_empty(&self) -> bool {
        self.request_rules.is_empty() && self.response_rules.is_empty()
    }

    /// Number of rules in each phase.
    pub fn rule_count(&self, phase: Phase) -> usize {
        match phase {
            Phase::Request => self.request_rules.len(),
            Phase::Response => self.response_rules.len(),
        }
    }

    /// The headers rules read, each once, in slot order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub name: Box<str>,
    pub conditions: Vec<Condition>,
    pub actions: Vec<Action>,
    pub stop: bool,
    /// A request rule with `response_headers` actions, kept for when the response arrives.
    pub defers_response_edits: bool,
}

/// One condition: a test on the value in a slot.
#[derive(Debug)]
pub(crate) struct Condition {
    pub slot: usize,
    /// Which part of the value is tested.
    pub view: View,
    pub test: Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// The value as it is.
    Whole,
    /// A `:path` without its query string.
    PathOnly,
    /// An `:authority` without its port.
    HostOnly,
}

#[derive(Debug)]
pub(crate) enum Test {
    /// The value is present and matches.
    Matches(CompiledMatch),
    /// The value is present and equal to one of these (methods, status codes).
    OneOf(Vec<Box<str>>),
    /// The header is present (`true`) or absent (`false`).
    Present(bool),
}

#[derive(Debug)]
pub(crate) enum Action {
    RequestHeaders(HeaderEdits),
    ResponseHeaders(HeaderEdits),
    Respond(LocalResponse),
}

/// Header changes, applied set, add, remove; names are lower-case.
#[derive(Debug, Default)]
pub(crate) struct HeaderEdits {
    pub set: Vec<(Box<str>, Box<str>)>,
    pub add: Vec<(Box<str>, Box<str>)>,
    pub remove: Vec<Box<str>>,
}

#[derive(Debug)]
pub(crate) struct LocalResponse {
    pub status: u16,
    pub headers: Vec<(Box<str>, Box<str>)>,
    pub body: Box<str>,
}
