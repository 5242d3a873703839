//! The compiled, immutable form of a rules document: what every request is evaluated against.
//!
//! Everything a request needs is decided here once: header names are lower-cased, regexes compiled, templates
//! split, and every value any rule reads (a header, the client address) gets a numbered slot, so a request
//! fetches each from the proxy at most once and only if a rule reaches it.

use crate::regex_engine::Regex;

use crate::attributes::{Property, SpiffePart};
use crate::body::rule::{BodyEdits, BodyRule};
use crate::cidr::Cidr;
use crate::encoding::Encoding;
use crate::error::Phase;
use crate::index::PhaseIndex;
use crate::matcher::CompiledMatch;
use crate::segments::SegmentPrefix;

/// Which header map a value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMap {
    Request,
    Response,
}

impl HeaderMap {
    /// `request` or `response`: how log lines and traces name it, and the first part of Envoy's
    /// `request.headers.<name>` properties.
    pub fn key(self) -> &'static str {
        match self {
            HeaderMap::Request => "request",
            HeaderMap::Response => "response",
        }
    }
}

/// A value some rule reads; its index in [`RuleSet::slots`] is its slot number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// A header or pseudo-header (`:path`), lower-case.
    Header(HeaderMap, Box<str>),
    /// The downstream connection's peer address (`ip:port`).
    SourceAddress,
    /// An Envoy attribute, or the verified token's claims (see [`crate::attributes`]).
    Property(Property),
    /// The name an `api_key` or `basic_auth` condition's credentials belong to (absent when not accepted).
    Credential(Box<crate::credentials::CredentialSlot>),
}

impl Slot {
    /// The phase in which the proxy has this value; request values are carried into the response phase.
    pub fn phase(&self) -> Phase {
        match self {
            Slot::Header(HeaderMap::Response, _) => Phase::Response,
            Slot::Header(HeaderMap::Request, _) | Slot::SourceAddress | Slot::Credential(_) => Phase::Request,
            Slot::Property(property) => property.phase(),
        }
    }
}

/// The rules of one document, ready to run.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub(crate) request_rules: Vec<Rule>,
    pub(crate) response_rules: Vec<Rule>,
    pub(crate) slots: Vec<Slot>,
    /// Request-phase slots that response rules read: fetched before the request goes upstream, because the
    /// proxy no longer offers request headers in the response phase.
    pub(crate) carried_slots: Vec<usize>,
    /// The document's `log_level`: lines less severe are not written. `None`: the proxy's level decides.
    pub(crate) log_level: Option<log::Level>,
    /// The document's `debug_header`: every response gets it, listing the rules that matched.
    pub(crate) debug_header: Option<Box<str>>,
    /// Which rules of each phase a request can match, looked up from its values (see [`crate::index`]).
    pub(crate) request_index: PhaseIndex,
    pub(crate) response_index: PhaseIndex,
    /// Whether a response rule can answer (`respond`, `redirect`): only then does the response phase note
    /// which headers its edits wrote, for the answer to carry (see `engine/carry.rs`).
    pub(crate) carries: bool,
    /// The response header names edits write by name, by their [`HeaderName::carry`] id; empty unless
    /// `carries`.
    pub(crate) carried_names: Vec<Box<str>>,
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

    /// Whether the document lets the filter write a line at `level` (the proxy may still drop it).
    pub fn logs(&self, level: log::Level) -> bool {
        self.log_level.is_none_or(|least| level <= least)
    }

    /// The same rules evaluated one by one, without indexes: what the differential tests and the fuzz targets
    /// compare the indexed evaluation with.
    #[must_use]
    pub fn without_indexes(mut self) -> Self {
        self.request_index = PhaseIndex::default();
        self.response_index = PhaseIndex::default();
        self
    }

    /// How many rules of `phase` are filed in an index rather than evaluated for every request.
    pub fn indexed_rules(&self, phase: Phase) -> usize {
        match phase {
            Phase::Request => self.request_index.indexed_rules(self.request_rules.len()),
            Phase::Response => self.response_index.indexed_rules(self.response_rules.len()),
        }
    }

    /// Puts `namespace` in front of every rate-limit bucket's key in shared data. The module calls it with the
    /// plugin's name before serving the rules, so that plugins on one proxy never share buckets.
    pub fn set_shared_data_namespace(&mut self, namespace: &str) {
        for rule in &mut self.request_rules {
            for action in &mut rule.actions {
                if let Action::RateLimit(limit) = action {
                    limit.buckets.set_namespace(namespace);
                }
            }
        }
    }

    /// Resolves the slot of every header an action edits by name: slots are only all known once every rule
    /// is compiled (a later rule may read what an earlier one writes). Part of compiling a document. Where a
    /// response rule can answer, it also gives every response header an edit names a carry id, so the response
    /// phase notes what its edits write for the answer to carry; a request pays nothing for that otherwise.
    pub(crate) fn resolve_write_slots(&mut self) {
        let answers = |rule: &Rule| rule.actions.iter().any(|a| matches!(a, Action::Respond(_) | Action::Redirect(_)));
        self.carries = self.response_rules.iter().any(answers);
        let mut carried = self.carries.then(Vec::new);
        let rules = self.request_rules.iter_mut().chain(&mut self.response_rules);
        for action in rules.flat_map(|rule| rule.actions.iter_mut()) {
            match action {
                Action::RequestHeaders(edits) => edits.resolve_slots(HeaderMap::Request, &self.slots, None),
                Action::ResponseHeaders(edits) => {
                    edits.resolve_slots(HeaderMap::Response, &self.slots, carried.as_mut());
                }
                _ => {}
            }
        }
        self.carried_names = carried.unwrap_or_default();
    }

    /// The values rules read, each once, in slot order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub name: Box<str>,
    /// `None`: the rule matches everything.
    pub when: Option<Expr>,
    pub actions: Vec<Action>,
    pub stop: bool,
    /// Only log what the rule would do (its own `mode`, or the document's).
    pub dry_run: bool,
    /// Number of regex captures the rule's templates use; the matcher fills that many cells.
    pub capture_cells: usize,
    /// The id of the rule's first counter (see [`crate::metrics`]).
    pub counter_base: u32,
    /// For a rule that reads or writes its phase's body: what it needs of the body. `None` for every other
    /// rule, which then costs nothing more per request.
    pub body: Option<Box<BodyRule>>,
}

/// A tree of conditions. `Any`, `Not` and leaves keep the field path they were written at (`match.any`,
/// `match.headers.x-env`), so a trace can say which condition failed.
#[derive(Debug)]
pub(crate) enum Expr {
    All(Vec<Expr>),
    Any { field: Box<str>, exprs: Vec<Expr> },
    Not { field: Box<str>, inner: Box<Expr> },
    Leaf(Condition),
}

/// One condition: a test on (a view of) the value in a slot.
#[derive(Debug)]
pub(crate) struct Condition {
    /// Where the condition is written, e.g. `match.any[1].path`.
    pub field: Box<str>,
    /// The test as written, for traces: `prefix "/admin"`, `one of GET, HEAD`, `not in 10.0.0.0/8`.
    pub wanted: Box<str>,
    pub slot: usize,
    pub view: View,
    pub test: Test,
    /// Holds when the test fails.
    pub invert: bool,
    /// For a regex test: its number among the rule's regexes (compile time bookkeeping for captures).
    pub regex_id: Option<usize>,
    /// Regex groups to keep for templates, and the capture cell each goes to.
    pub captures: Vec<CaptureBinding>,
}

#[derive(Debug)]
pub(crate) struct CaptureBinding {
    pub group: Group,
    pub cell: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Group {
    Index(usize),
    Name(Box<str>),
}

/// Which part of a slot's value is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum View {
    /// The value as it is.
    Whole,
    /// A `:path` without its query string.
    PathOnly,
    /// A `:path`'s query string, without `?`.
    QueryString,
    /// One decoded query parameter of a `:path`.
    QueryParam(Box<str>),
    /// One cookie of a `cookie` header.
    Cookie(Box<str>),
    /// An `:authority` without its port.
    HostOnly,
    /// An `ip:port` address without the port.
    Ip,
    /// The client address: the source address, or with `trusted_hops` > 0 the address that many entries from
    /// the right of `x-forwarded-for` (in slot `xff_slot`).
    Client { xff_slot: usize, trusted_hops: usize },
    /// A part of a SPIFFE id (`source.namespace`).
    Spiffe(SpiffePart),
    /// Of the TLS server name in the slot: `true` when the request's host (in `authority_slot`, without its
    /// port) is another name, `false` when it is the same; absent without SNI.
    Misdirected { authority_slot: usize },
    /// One claim of the verified token, by dotted path, from the flattened claims (see [`crate::claims`]).
    /// Conditions test each element of a list claim; templates render them joined with `,`.
    Claim(Box<str>),
}

#[derive(Debug)]
pub(crate) enum Test {
    /// The value is present and matches.
    Matches(CompiledMatch),
    /// The value is present and equal to one of these (methods, schemes).
    OneOf { values: Vec<Box<str>>, ignore_case: bool },
    /// The value is present (`true`) or absent (`false`).
    Present(bool),
    /// A status code in one of these inclusive ranges.
    Status(Vec<(u16, u16)>),
    /// An address in one of these blocks.
    Cidrs(Vec<Cidr>),
    /// The value's bucket (see [`crate::sampling`]) is below `buckets`; an absent value holds only at 100 %.
    Sample { buckets: u32, seed: Box<str> },
}

/// A value with `${…}` references, split at compile time.
#[derive(Debug, Default)]
pub(crate) struct Template {
    pub pieces: Vec<Piece>,
}

#[derive(Debug)]
pub(crate) enum Piece {
    Text(Box<str>),
    /// A value from a slot (absent renders as nothing).
    Value {
        slot: usize,
        view: View,
    },
    /// A regex capture of the rule's conditions (unmatched renders as nothing).
    Capture(usize),
    /// A reference with an encoding (`${query.q|url}`): `inner` holds the reference's one piece.
    Encoded {
        encoding: Encoding,
        inner: Box<Template>,
    },
}

impl Template {
    /// Whether the template is fixed text (or empty): it renders the same whatever the request.
    pub fn is_literal(&self) -> bool {
        self.pieces.iter().all(|piece| matches!(piece, Piece::Text(_)))
    }
}

#[derive(Debug)]
pub(crate) enum Action {
    RequestHeaders(HeaderEdits),
    ResponseHeaders(HeaderEdits),
    Respond(LocalResponse),
    Redirect(Redirect),
    Rewrite(Rewrite),
    Query(QueryEdits),
    Log {
        level: log::Level,
        message: Template,
    },
    RateLimit(RateLimit),
    /// `request_body` / `response_body`: only in a rule with a [`Rule::body`], applied when the body is whole.
    Body {
        map: HeaderMap,
        edits: BodyEdits,
    },
}

/// A `rate_limit` action: which bucket a request counts against, and the rule's table of buckets.
#[derive(Debug)]
pub(crate) struct RateLimit {
    pub key: Template,
    /// The key as written, for traces: the rendered key may be a credential and is never shown.
    pub key_written: Box<str>,
    pub buckets: crate::ratelimit::Buckets,
    /// `fail: closed`: answer 503 when the shared buckets cannot decide, rather than let the request go on.
    pub fail_closed: bool,
}

/// Header changes; names are lower-case. Applied in field order.
#[derive(Debug, Default)]
pub(crate) struct HeaderEdits {
    pub copy: Vec<(HeaderName, HeaderName)>,
    pub rename: Vec<(HeaderName, HeaderName)>,
    pub set: Vec<(HeaderName, Template)>,
    pub set_if_absent: Vec<(HeaderName, Template)>,
    pub add: Vec<(HeaderName, Template)>,
    pub remove: Vec<HeaderName>,
    pub remove_prefix: Vec<Box<str>>,
    pub remove_regex: Vec<Regex>,
}

impl HeaderEdits {
    /// Whether applying the edits needs the names of every header (to remove by prefix or regex).
    pub fn needs_names(&self) -> bool {
        !self.remove_prefix.is_empty() || !self.remove_regex.is_empty()
    }

    /// Gives every header the edits name the slot rules read it from, if any; `map` is the map they edit. With
    /// `carried`, also its carry id: its index there, added if new.
    pub fn resolve_slots(&mut self, map: HeaderMap, slots: &[Slot], mut carried: Option<&mut Vec<Box<str>>>) {
        let pairs = self.copy.iter_mut().chain(&mut self.rename).flat_map(|(from, to)| [from, to]);
        let templated = self.set.iter_mut().chain(&mut self.set_if_absent).chain(&mut self.add).map(|(name, _)| name);
        for name in pairs.chain(templated).chain(&mut self.remove) {
            name.slot = slots.iter().position(|s| matches!(s, Slot::Header(m, n) if *m == map && *n == name.name));
            if let Some(names) = carried.as_deref_mut() {
                let id = names.iter().position(|known| *known == name.name).unwrap_or(names.len());
                if id == names.len() {
                    names.push(name.name.clone());
                }
                name.carry = u16::try_from(id).ok();
            }
        }
    }
}

/// A header an action reads or writes by name, with the slot rules read it from (resolved once the whole
/// document is compiled, see [`RuleSet::resolve_write_slots`]): a write then keeps later rules' view of it
/// current without looking the name up per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderName {
    pub name: Box<str>,
    /// `None`: no rule reads this header.
    pub slot: Option<usize>,
    /// For a response header: its index in [`RuleSet::carried_names`], when the document can answer in the
    /// response phase (the answer then carries what the edits wrote).
    pub carry: Option<u16>,
}

impl std::ops::Deref for HeaderName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl From<String> for HeaderName {
    fn from(name: String) -> Self {
        HeaderName { name: name.into(), slot: None, carry: None }
    }
}

impl From<Box<str>> for HeaderName {
    fn from(name: Box<str>) -> Self {
        HeaderName { name, slot: None, carry: None }
    }
}

#[derive(Debug)]
pub(crate) struct LocalResponse {
    pub status: u16,
    pub headers: Vec<(Box<str>, Template)>,
    pub body: Template,
}

/// The request values a redirect or rewrite builds on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UrlSlots {
    pub scheme: usize,
    pub authority: usize,
    pub path: usize,
}

#[derive(Debug)]
pub(crate) struct Redirect {
    pub status: u16,
    pub target: RedirectTarget,
    pub keep_query: bool,
    pub url: UrlSlots,
}

#[derive(Debug)]
pub(crate) enum RedirectTarget {
    Location(Template),
    Parts {
        scheme: Option<Box<str>>,
        host: Option<Template>,
        port: Option<u16>,
        /// `Full` or `SegmentPrefix`; `None` keeps the request's path.
        path: Option<PathRewrite>,
        query: Option<Template>,
    },
}

#[derive(Debug)]
pub(crate) struct Rewrite {
    pub path: Option<PathRewrite>,
    pub host: Option<Template>,
    pub url: UrlSlots,
}

#[derive(Debug)]
pub(crate) enum PathRewrite {
    Full(Template),
    Prefix {
        from: Box<str>,
        to: Template,
    },
    /// Gateway API's `ReplacePrefixMatch`: whole segments, no doubled or missing `/` at the seam.
    SegmentPrefix {
        from: SegmentPrefix,
        to: Template,
    },
    /// `substitution` is in the regex crate's syntax (`${1}`), translated from Envoy's `\1`.
    Regex {
        regex: Regex,
        substitution: Box<str>,
    },
}

#[derive(Debug)]
pub(crate) struct QueryEdits {
    pub set: Vec<(Box<str>, Template)>,
    pub add: Vec<(Box<str>, Template)>,
    pub remove: Vec<Box<str>>,
    pub path_slot: usize,
}
