//! The rules document as written by people (YAML) or handed over by Istio (compact JSON).
//!
//! These types mirror the document one to one and only check its *shape*: unknown fields and wrong types are
//! refused here, as [`crate::fields`] reads them. Everything that needs a judgement (regexes, header names, phases, duplicates) is
//! checked in [`crate::compile`], which turns a document into the rule set the filter runs.

use std::collections::BTreeMap;
use std::fmt;

use serde::de;

use crate::body::spec::BodyEditsSpec;
use crate::decode_struct;
use crate::fields::{self, At, Decode, Error};
use crate::json::{Json, Number};
use crate::named::Named;

/// A whole rules document. Its rules are only counted here, and each one is decoded on its own from the
/// document's value ([`RuleList::rules`]): one bad rule then yields its own error, named by index and name,
/// instead of hiding the rules after it.
#[derive(Debug, Default)]
pub struct Document {
    /// Document format version; only `1` exists.
    pub version: Option<u64>,
    /// `dry_run`: every rule only logs and counts what it would do (whatever its own `mode`).
    pub mode: Mode,
    /// The least severe level the filter logs at: `trace`, `debug`, `info`, `warn` or `error`. Without it, the
    /// proxy's own level decides alone.
    pub log_level: Option<String>,
    /// Opt-in debug aid: a response header, of this name, listing the rules that matched the exchange.
    pub debug_header: Option<String>,
    /// Rules run when the request headers arrive, in the order written.
    pub request: RuleList,
    /// Rules run when the response headers arrive, in the order written.
    pub response: RuleList,
}
decode_struct!(Document {
    version: optional with document_version,
    mode: optional,
    log_level: optional,
    debug_header: optional,
    request: optional,
    response: optional,
});

/// One rule: when every condition in `match` holds, its actions run in the order written.
#[derive(Debug, Default)]
pub struct RuleSpec {
    pub name: String,
    pub conditions: MatchSpec,
    pub actions: Vec<ActionSpec>,
    /// Stop evaluating the phase's later rules once this one has matched.
    pub stop: bool,
    /// `dry_run`: when the rule matches, log and count what it would do, and change nothing.
    pub mode: Mode,
    /// The rule reads its phase's body (docs/bodies.md): decided once the body has arrived, after `match`.
    pub body: Option<crate::body::spec::BodySpec>,
}
decode_struct!(RuleSpec {
    name: required,
    conditions as "match": optional,
    actions: optional with action_list,
    stop: optional,
    mode: optional,
    body: optional,
});

/// Whether rules act or only say what they would do.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Rules act.
    #[default]
    Enforce,
    /// Matched rules log (at info) and count each action they would take, and change nothing: no header is
    /// edited, no response is made, `stop` does not stop.
    DryRun,
}

/// Conditions of a rule; all of them must hold. An empty match matches every request. `all`, `any` and `not`
/// nest further blocks of the same shape.
#[derive(Debug, Default)]
pub struct MatchSpec {
    /// The request path without its query string.
    pub path: Option<StringMatchSpec>,
    /// One method or a list of methods (any of them).
    pub method: Option<OneOrMany<String>>,
    /// `http` or `https` (the `:scheme` Envoy saw), one or a list.
    pub scheme: Option<OneOrMany<String>>,
    /// The request's host (`:authority`), one test or a list (any of them); `*.example.com` is a wildcard.
    pub host: Option<OneOrMany<StringMatchSpec>>,
    /// Request headers by name (case-insensitive).
    pub headers: Named<StringMatchSpec>,
    /// Query parameters by name, compared after percent-decoding.
    pub query: Named<StringMatchSpec>,
    /// Cookies by name (case-sensitive), from the `cookie` header.
    pub cookies: Named<StringMatchSpec>,
    /// The client's address.
    pub source: Option<SourceSpec>,
    /// An API key in a header or query parameter is one of a set (see [`crate::credentials`]).
    pub api_key: Option<crate::credentials::spec::ApiKeySpec>,
    /// The `authorization` header holds Basic credentials of one of a set of users.
    pub basic_auth: Option<crate::credentials::spec::BasicAuthSpec>,
    /// Response status: a code, a class (`5xx`), a range (`500-599`), or a list of them (response phase only).
    pub status: Option<OneOrMany<StatusSpec>>,
    /// Response headers by name (response phase only).
    pub response_headers: Named<StringMatchSpec>,
    /// Envoy attributes by name (`xds.route_name`, `connection.mtls`, `source.namespace`, `node.metadata.KEY`
    /// …; docs/attributes.md lists them).
    pub attributes: Named<ValueTestSpec>,
    /// Claims of the token Envoy's `jwt_authn` verified, by dotted path (`sub`, `aud`, `org.team`); a list
    /// claim holds when any element passes.
    pub claims: Named<ValueTestSpec>,
    /// `true`: the connection asked for a TLS server name (SNI) and the request's host is another one, the
    /// request a gateway answers 421; `false`: the host is the server name.
    pub misdirected: Option<bool>,
    /// Every block must match.
    pub all: Option<Vec<MatchSpec>>,
    /// At least one block must match.
    pub any: Option<Vec<MatchSpec>>,
    /// The block must not match.
    pub not: Option<Box<MatchSpec>>,
    /// Holds for a percentage of requests, by a hash of a key (see [`crate::sampling`]).
    pub sample: Option<SampleSpec>,
}
decode_struct!(MatchSpec {
    path: optional,
    method: optional,
    scheme: optional,
    host: optional,
    headers: optional,
    query: optional,
    cookies: optional,
    source: optional,
    api_key: optional,
    basic_auth: optional,
    status: optional,
    response_headers: optional,
    attributes: optional,
    claims: optional,
    misdirected: optional,
    all: optional,
    any: optional,
    not: optional,
    sample: optional,
});

/// `sample`: the percentage of requests (or of keys) for which the condition holds.
#[derive(Debug, Default)]
pub struct SampleSpec {
    /// 0-100, at most two decimals.
    pub percent: f64,
    /// One template reference whose value decides (`${header.x-user}`): the same value, the same answer.
    /// Default: `${header.x-request-id}`, a fresh draw per request.
    pub key: Option<String>,
    /// Mixed into the hash, so that two samples of the same key pick different slices.
    pub seed: String,
}
decode_struct!(SampleSpec { percent: required, key: optional, seed: optional });

/// The operators of a value condition. Exactly one is given; `present`/`absent` only apply to headers,
/// query parameters and cookies; `segment_prefix` only to the path.
#[derive(Debug, Default, Clone)]
pub struct MatchFields {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    /// Path only: a prefix of whole segments, as Gateway API `PathPrefix` (`/foo` matches `/foo/bar`, not `/foobar`).
    pub segment_prefix: Option<String>,
    pub suffix: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<String>,
    /// `true`: the value must be present; `false`: it must be absent.
    pub present: Option<bool>,
    /// `true`: the value must be absent; `false`: it must be present.
    pub absent: Option<bool>,
    /// Compare without regard to ASCII case.
    pub ignore_case: bool,
    /// The condition holds when the test fails (including when the value is absent).
    pub invert: bool,
}
decode_struct!(MatchFields {
    exact: optional,
    prefix: optional,
    segment_prefix: optional,
    suffix: optional,
    contains: optional,
    regex: optional,
    present: optional,
    absent: optional,
    ignore_case: optional,
    invert: optional,
});

/// A value condition: `"/hello"` is shorthand for `{exact: /hello}`; otherwise a map of [`MatchFields`].
#[derive(Debug, Default, Clone)]
pub struct StringMatchSpec(pub MatchFields);

/// A test of a value that may be a boolean or a number where it comes from (`connection.mtls: true`,
/// `email_verified: true`, `level: 3`): written bare, those mean an exact match of their text; otherwise a
/// [`StringMatchSpec`].
#[derive(Debug, Clone)]
pub struct ValueTestSpec(pub StringMatchSpec);

/// Which client addresses match.
#[derive(Debug, Default)]
pub struct SourceSpec {
    /// Addresses or CIDR blocks, IPv4 or IPv6 (any of them).
    pub cidrs: Vec<String>,
    /// 0 (default): the connection's peer address. N > 0: N proxies in front are trusted to append to
    /// `x-forwarded-for`, so the client is the N-th address from its right end.
    pub trusted_hops: Option<Integer>,
    pub invert: bool,
}
decode_struct!(SourceSpec {
    cidrs: required,
    trusted_hops: optional with proxy_count,
    invert: optional,
});

/// A status pattern: `404`, `"5xx"` or `"500-504"`.
#[derive(Debug, Clone)]
pub enum StatusSpec {
    Code(Integer),
    Text(String),
}

impl fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusSpec::Code(code) => write!(f, "{}", code.0),
            StatusSpec::Text(text) => f.write_str(text),
        }
    }
}

/// One action. Written as a single-key map, e.g. `- response_headers: {set: {x-a: b}}`.
#[derive(Debug)]
pub enum ActionSpec {
    /// Change the headers sent upstream (request phase only).
    RequestHeaders(HeaderEditsSpec),
    /// Change the headers sent downstream; from a request rule they apply when the response arrives.
    ResponseHeaders(HeaderEditsSpec),
    /// Answer from the proxy: the upstream is not called (request phase) or its answer is replaced (response phase).
    Respond(RespondSpec),
    /// Answer with a redirect.
    Redirect(RedirectSpec),
    /// Change the path and/or host the request goes upstream with (request phase only).
    Rewrite(RewriteSpec),
    /// Change the query parameters sent upstream (request phase only).
    Query(QueryEditsSpec),
    /// Write a line to the proxy's log.
    Log(LogSpec),
    /// Limit requests per key, in buckets every worker of the proxy shares (request phase only).
    RateLimit(RateLimitSpec),
    /// Change the request body (request phase only; docs/bodies.md).
    RequestBody(BodyEditsSpec),
    /// Change the response body (response phase only).
    ResponseBody(BodyEditsSpec),
}

/// Every action name, in the order the reference lists them.
pub const ACTION_NAMES: [&str; 10] = [
    "request_headers",
    "response_headers",
    "respond",
    "redirect",
    "rewrite",
    "query",
    "log",
    "rate_limit",
    "request_body",
    "response_body",
];

/// An action item is a map of one key, the action's name, to its fields: read as a struct of ten optional
/// actions would be (every key's value decoded in written order, an unknown key named at its own path with
/// every action name, `null` as if not written), of which exactly one must be given.
impl Decode for ActionSpec {
    fn decode(value: &Json, at: &At) -> Result<ActionSpec, Error> {
        // Each action given, with its place in ACTION_NAMES.
        let mut given: Vec<(usize, ActionSpec)> = Vec::new();
        // Names written, `null` ones included, by place in ACTION_NAMES.
        let mut seen = [false; ACTION_NAMES.len()];
        for (name, value) in fields::object_entries(value, at, "struct ActionItem")? {
            let here = &at.key(name);
            if here.is_skipped() {
                continue;
            }
            let Some((index, seen)) = seen
                .iter_mut()
                .zip(ACTION_NAMES)
                .enumerate()
                .find_map(|(index, (seen, known))| (known == name).then_some((index, seen)))
            else {
                return Err(here.unknown("field", name, &ACTION_NAMES));
            };
            // A name given twice is refused before its value is read, as a derived struct refuses it.
            if *seen {
                return Err(at.error(format!("duplicate field `{name}`")));
            }
            *seen = true;
            let action = match index {
                0 => Option::decode(value, here)?.map(ActionSpec::RequestHeaders),
                1 => Option::decode(value, here)?.map(ActionSpec::ResponseHeaders),
                2 => Option::decode(value, here)?.map(ActionSpec::Respond),
                3 => Option::decode(value, here)?.map(ActionSpec::Redirect),
                4 => Option::decode(value, here)?.map(ActionSpec::Rewrite),
                5 => Option::decode(value, here)?.map(ActionSpec::Query),
                6 => Option::decode(value, here)?.map(ActionSpec::Log),
                7 => Option::decode(value, here)?.map(ActionSpec::RateLimit),
                8 => Option::decode(value, here)?.map(ActionSpec::RequestBody),
                _ => Option::decode(value, here)?.map(ActionSpec::ResponseBody),
            };
            given.extend(action.map(|action| (index, action)));
        }
        one_action(given, at)
    }
}

/// The one action of an item, or why there is not exactly one; two are named in the order of ACTION_NAMES,
/// whatever the written one.
fn one_action(mut given: Vec<(usize, ActionSpec)>, at: &At) -> Result<ActionSpec, Error> {
    let name = |index: usize| ACTION_NAMES.get(index).copied().unwrap_or_default();
    let mut indexes: Vec<usize> = given.iter().map(|(index, _)| *index).collect();
    indexes.sort_unstable();
    // `given` holds what `indexes` counts: one index, one action.
    match (indexes.as_slice(), given.pop()) {
        ([_], Some((_, action))) => Ok(action),
        ([first, second, ..], _) => Err(at.error(format!(
            "an action item holds one action; found both `{}` and `{}` (make them two items)",
            name(*first),
            name(*second)
        ))),
        _ => Err(at.error(format!(
            "an action item needs one of {}",
            crate::join::join(&ACTION_NAMES.map(|n| format!("`{n}`")), ", ")
        ))),
    }
}

/// A local rate limit: `requests` per `per` for each value of `key`, at most `burst` at once, counted in
/// buckets every worker of the proxy shares (see [`crate::ratelimit`]).
#[derive(Debug, Default)]
pub struct RateLimitSpec {
    /// A template: each distinct value has its own bucket. Default `${source.ip}`.
    pub key: Option<String>,
    pub requests: Integer,
    /// `second`, `minute` or `hour`.
    pub per: String,
    /// Requests allowed at once after a quiet spell; default `requests`.
    pub burst: Option<Integer>,
    /// Buckets the rule keeps (distinct active keys); past it, keys share one overflow bucket.
    pub max_keys: Option<Integer>,
    /// When the shared buckets cannot decide: `open` (default) lets the request go on, `closed` answers 503.
    pub fail: Option<String>,
}
decode_struct!(RateLimitSpec {
    key: optional,
    requests: required,
    per: required,
    burst: optional,
    max_keys: optional,
    fail: optional,
});

/// Header changes, applied in the order copy, rename, set, set_if_absent, add, remove, remove_prefix,
/// remove_regex. Values are templates.
#[derive(Debug, Default)]
pub struct HeaderEditsSpec {
    /// Copy a header's value to another name (replacing it).
    pub copy: Vec<FromTo>,
    /// Move a header to another name.
    pub rename: Vec<FromTo>,
    /// Replace (or create) each header with the value.
    pub set: BTreeMap<String, String>,
    /// Create each header only where it is missing.
    pub set_if_absent: BTreeMap<String, String>,
    /// Append a value, keeping existing ones.
    pub add: BTreeMap<String, String>,
    /// Remove every value of these headers.
    pub remove: Vec<String>,
    /// Remove every header whose name starts with one of these.
    pub remove_prefix: Vec<String>,
    /// Remove every header whose whole name matches one of these regexes.
    pub remove_regex: Vec<String>,
}
decode_struct!(HeaderEditsSpec {
    copy: optional,
    rename: optional,
    set: optional,
    set_if_absent: optional,
    add: optional,
    remove: optional,
    remove_prefix: optional,
    remove_regex: optional,
});

/// A header name pair for copy and rename.
#[derive(Debug, Default)]
pub struct FromTo {
    pub from: String,
    pub to: String,
}
decode_struct!(FromTo { from: required, to: required });

/// A response made by the proxy.
#[derive(Debug, Default)]
pub struct RespondSpec {
    pub status: Integer,
    /// Header values are templates.
    pub headers: BTreeMap<String, String>,
    /// Shorthand for a `content-type` header.
    pub content_type: Option<String>,
    /// A template.
    pub body: String,
}
decode_struct!(RespondSpec {
    status: required with final_status,
    headers: optional,
    content_type: optional,
    body: optional,
});

/// A redirect: either a full `location`, or the parts of the request's URL to change.
#[derive(Debug, Default)]
pub struct RedirectSpec {
    /// 301, 302 (default), 303, 307 or 308.
    pub status: Option<Integer>,
    /// The whole target URL (a template).
    pub location: Option<String>,
    /// `http` or `https`.
    pub scheme: Option<String>,
    /// A template.
    pub host: Option<String>,
    pub port: Option<Integer>,
    /// A template; the new path.
    pub path: Option<String>,
    /// The request's path with a prefix of whole segments replaced (Gateway API `ReplacePrefixMatch`).
    pub path_segment_prefix: Option<PrefixRewriteSpec>,
    /// A template; the new query string (without `?`). Replaces the request's.
    pub query: Option<String>,
    /// Keep the request's query string when the target has none of its own (default true).
    pub keep_query: Option<bool>,
}
decode_struct!(RedirectSpec {
    status: optional with redirect_status,
    location: optional,
    scheme: optional,
    host: optional,
    port: optional with port_number,
    path: optional,
    path_segment_prefix: optional,
    query: optional,
    keep_query: optional,
});

/// Path and host rewrites. At most one of `path`, `path_prefix`, `path_segment_prefix`, `path_regex`.
#[derive(Debug, Default)]
pub struct RewriteSpec {
    /// The whole new path (a template); the query string is kept.
    pub path: Option<String>,
    /// Replace a leading part of the path.
    pub path_prefix: Option<PrefixRewriteSpec>,
    /// Replace a prefix of whole segments (Gateway API `ReplacePrefixMatch`): `/strip/x` with `/strip` -> `/`
    /// becomes `/x`.
    pub path_segment_prefix: Option<PrefixRewriteSpec>,
    /// Regex substitution on the path, `\1` for groups (as in Envoy's `regex_rewrite`).
    pub path_regex: Option<RegexRewriteSpec>,
    /// The new host/authority (a template).
    pub host: Option<String>,
}
decode_struct!(RewriteSpec {
    path: optional,
    path_prefix: optional,
    path_segment_prefix: optional,
    path_regex: optional,
    host: optional,
});

#[derive(Debug, Default)]
pub struct PrefixRewriteSpec {
    pub from: String,
    /// A template.
    pub to: String,
}
decode_struct!(PrefixRewriteSpec { from: required, to: required });

#[derive(Debug, Default)]
pub struct RegexRewriteSpec {
    pub pattern: String,
    pub substitution: String,
}
decode_struct!(RegexRewriteSpec { pattern: required, substitution: required });

/// Query parameter changes, applied set, add, remove. Values are templates, percent-encoded when written.
#[derive(Debug, Default)]
pub struct QueryEditsSpec {
    pub set: BTreeMap<String, String>,
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}
decode_struct!(QueryEditsSpec { set: optional, add: optional, remove: optional });

/// A log line.
#[derive(Debug, Default)]
pub struct LogSpec {
    /// `trace`, `debug`, `info` (default), `warn` or `error`.
    pub level: Option<String>,
    /// A template.
    pub message: String,
}
decode_struct!(LogSpec { level: optional, message: required });

/// An integer that may arrive as a double: Istio passes `pluginConfig` through a protobuf `Struct`, where
/// every number is a double, so `200` can reach us as `200.0`. Fractions and negatives are refused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Integer(pub u64);

/// What a number that is no count of anything in particular may be.
const WHOLE_NUMBER: &str = "a non-negative whole number";

impl Decode for Integer {
    fn decode(value: &Json, at: &At) -> Result<Integer, Error> {
        integer(value, at, WHOLE_NUMBER)
    }
}

/// Reads an [`Integer`]; a wrong value is refused saying what `expecting` allows (a status range, a port…).
fn integer(value: &Json, at: &At, expecting: &str) -> Result<Integer, Error> {
    match value {
        Json::Number(Number::Unsigned(n)) => Ok(Integer(*n)),
        Json::Number(Number::Signed(n)) => {
            u64::try_from(*n).map(Integer).map_err(|_| at.invalid_value(de::Unexpected::Signed(*n), expecting))
        }
        // 2^53: beyond it a double no longer holds every whole number exactly.
        Json::Number(Number::Float(v)) if v.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(v) =>
        {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(Integer(*v as u64))
        }
        Json::Number(Number::Float(v)) => Err(at.invalid_value(de::Unexpected::Float(*v), expecting)),
        other => Err(at.refused(other, expecting)),
    }
}

/// What a local response's status may be; compile checks the range and says the same.
pub const FINAL_STATUS: &str = "an HTTP status code, 200-599";
/// What a redirect's status may be; compile checks it and says the same.
pub const REDIRECT_STATUS: &str = "a redirect status: 301, 302, 303, 307 or 308";
/// What a redirect's port may be.
pub const PORT: &str = "a port, 1-65535";

// The numbers below say what they take, and, once written, are numbers: `null` is refused, not taken for
// "not written".
fn final_status(value: &Json, at: &At) -> Result<Integer, Error> {
    integer(value, at, FINAL_STATUS)
}

fn redirect_status(value: &Json, at: &At) -> Result<Option<Integer>, Error> {
    integer(value, at, REDIRECT_STATUS).map(Some)
}

fn port_number(value: &Json, at: &At) -> Result<Option<Integer>, Error> {
    integer(value, at, PORT).map(Some)
}

fn proxy_count(value: &Json, at: &At) -> Result<Option<Integer>, Error> {
    integer(value, at, "a number of proxies, 0-16").map(Some)
}

fn document_version(value: &Json, at: &At) -> Result<Option<u64>, Error> {
    integer(value, at, WHOLE_NUMBER).map(|n| Some(n.0))
}

/// A list's items; a list written as a map is the commonest shape mistake (`actions: {respond: …}`), so it is
/// told how a list is written (`expecting`).
fn list<'a>(value: &'a Json, at: &At, expecting: &str) -> Result<&'a [Json], Error> {
    match value {
        Json::Array(items) => Ok(items),
        Json::Object(_) => Err(at.error(format!("a map where a list is expected; this is {expecting}"))),
        other => Err(at.refused(other, expecting)),
    }
}

/// A phase's rules: a list of any values (each rule is decoded later, on its own), counted. Not copied:
/// [`RuleList::rules`] hands out the document's own values.
#[derive(Debug, Default)]
pub struct RuleList {
    /// `None` when not written.
    count: Option<usize>,
}

impl RuleList {
    pub fn len(&self) -> usize {
        self.count.unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rules in `document` (the value this list was read from) under `key`.
    pub fn rules<'a>(&self, document: &'a Json, key: &str) -> &'a [Json] {
        match (self.count, document.get(key)) {
            (Some(_), Some(Json::Array(rules))) => rules,
            _ => &[],
        }
    }
}

impl Decode for RuleList {
    fn decode(value: &Json, at: &At) -> Result<RuleList, Error> {
        let rules = list(value, at, "a list of rules: start each with `- name: …`")?;
        Ok(RuleList { count: Some(rules.len()) })
    }
}

fn action_list(value: &Json, at: &At) -> Result<Vec<ActionSpec>, Error> {
    list(value, at, "a list of actions: write each as an item, `- respond: …` (`[{respond: …}]` in JSON)")?;
    Vec::decode(value, at)
}

impl Decode for Mode {
    fn decode(value: &Json, at: &At) -> Result<Mode, Error> {
        match value {
            Json::String(text) if text == "enforce" => Ok(Mode::Enforce),
            Json::String(text) if text == "dry_run" => Ok(Mode::DryRun),
            Json::String(text) => Err(at.unknown("variant", text, &["enforce", "dry_run"])),
            other => Err(at.refused(other, "enum Mode")),
        }
    }
}

/// One value or a list of values: `method: GET` or `method: [GET, HEAD]`.
#[derive(Debug, Clone)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T: Decode> Decode for OneOrMany<T> {
    fn decode(value: &Json, at: &At) -> Result<OneOrMany<T>, Error> {
        match value {
            Json::Array(_) => Vec::decode(value, at).map(OneOrMany),
            Json::String(_) | Json::Object(_) | Json::Number(_) => T::decode(value, at).map(|one| OneOrMany(vec![one])),
            other => Err(at.refused(other, "a value or a list of values")),
        }
    }
}

/// `"text"` is `{exact: text}`; a map is the full set of operator fields.
impl Decode for StringMatchSpec {
    fn decode(value: &Json, at: &At) -> Result<StringMatchSpec, Error> {
        match value {
            Json::String(text) => Ok(StringMatchSpec::exact(text.clone())),
            Json::Object(_) => MatchFields::decode(value, at).map(StringMatchSpec),
            other => Err(at.refused(other, "a string (exact match) or a map of match operators")),
        }
    }
}

impl StringMatchSpec {
    fn exact(text: String) -> StringMatchSpec {
        StringMatchSpec(MatchFields { exact: Some(text), ..MatchFields::default() })
    }
}

impl Decode for StatusSpec {
    fn decode(value: &Json, at: &At) -> Result<StatusSpec, Error> {
        match value {
            Json::String(text) => Ok(StatusSpec::Text(text.clone())),
            Json::Number(_) => integer(value, at, WHOLE_NUMBER).map(StatusSpec::Code),
            other => Err(at.refused(other, "a status code, a class such as \"5xx\" or a range such as \"500-599\"")),
        }
    }
}

impl Decode for ValueTestSpec {
    fn decode(value: &Json, at: &At) -> Result<ValueTestSpec, Error> {
        let exact = |text: String| Ok(ValueTestSpec(StringMatchSpec::exact(text)));
        match value {
            Json::Bool(b) => exact(b.to_string()),
            Json::Number(Number::Unsigned(n)) => exact(n.to_string()),
            Json::Number(Number::Signed(n)) => exact(n.to_string()),
            // Istio hands `3` over as `3.0`: compare it as the whole number Envoy's claims read as.
            Json::Number(Number::Float(n)) => exact(crate::claims::number_text(*n)),
            Json::String(text) => {
                // Bare, these are booleans to kubectl (YAML 1.1) and text to us: the document would test one
                // thing in `rulefilter test` and another once applied.
                const YAML11_BOOLEANS: [&str; 8] = ["yes", "no", "on", "off", "y", "n", "true", "false"];
                let v = text.as_str();
                if YAML11_BOOLEANS.iter().any(|word| word.eq_ignore_ascii_case(v)) && v != "true" && v != "false" {
                    return Err(at.error(format!(
                        "{v:?} is a boolean to kubectl (YAML 1.1) but text here: write true or false for a boolean, or {{exact: {v:?}}} for the text"
                    )));
                }
                exact(text.clone())
            }
            Json::Object(_) => MatchFields::decode(value, at).map(|fields| ValueTestSpec(StringMatchSpec(fields))),
            other => Err(at.refused(other, "a string, boolean or number (exact match) or a map of match operators")),
        }
    }
}

/// The case files' numbers and headers (`repeat: 3`, `vary: [origin, accept]`), read by serde in the native
/// tools (case files are YAML, read by serde_yaml); the module reads documents with [`Decode`].
#[cfg(not(target_arch = "wasm32"))]
mod case_files {
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    use super::{Integer, OneOrMany};

    impl<'de> Deserialize<'de> for Integer {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(IntegerVisitor { expecting: "a non-negative whole number" })
        }
    }

    /// Reads an [`Integer`]; a wrong value is refused saying what `expecting` allows (a status range, a port…).
    struct IntegerVisitor {
        expecting: &'static str,
    }

    impl Visitor<'_> for IntegerVisitor {
        type Value = Integer;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Integer, E> {
            Ok(Integer(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Integer, E> {
            u64::try_from(v).map(Integer).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Integer, E> {
            // 2^53: beyond it a double no longer holds every whole number exactly.
            if v.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&v) {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(Integer(v as u64))
            } else {
                Err(E::invalid_value(de::Unexpected::Float(v), &self))
            }
        }
    }

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct OneOrManyVisitor<T>(std::marker::PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
                type Value = OneOrMany<T>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a value or a list of values")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                    Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(OneOrMany)
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                    T::deserialize(de::value::StrDeserializer::new(v)).map(|one| OneOrMany(vec![one]))
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                    T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|one| OneOrMany(vec![one]))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                    T::deserialize(de::value::U64Deserializer::new(v)).map(|one| OneOrMany(vec![one]))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                    T::deserialize(de::value::I64Deserializer::new(v)).map(|one| OneOrMany(vec![one]))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                    T::deserialize(de::value::F64Deserializer::new(v)).map(|one| OneOrMany(vec![one]))
                }
            }
            deserializer.deserialize_any(OneOrManyVisitor(std::marker::PhantomData))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::decode;
    use crate::json::parse;

    /// What an action item's problems are, as `field: message`.
    fn action_problems(text: &str) -> Vec<String> {
        let json = parse(text).unwrap_or(Json::Null);
        decode::<ActionSpec>(&json).1.into_iter().map(|p| format!("{}: {}", p.field, p.message)).collect()
    }

    #[test]
    fn an_action_item_reads_as_a_struct_of_optional_actions() {
        let needs = "an action item needs one of `request_headers`, `response_headers`, `respond`, `redirect`, \
                     `rewrite`, `query`, `log`, `rate_limit`, `request_body`, `response_body`";
        assert_eq!(action_problems("{}"), [format!(": {needs}")]);
        // `null` is as if not written.
        assert_eq!(action_problems(r#"{"respond": null}"#), [format!(": {needs}")]);
        assert!(action_problems(r#"{"respond": null, "log": {"message": "m"}}"#).is_empty());
        // Named in the order of ACTION_NAMES, whatever the written one.
        assert_eq!(
            action_problems(r#"{"log": {"message": "m"}, "respond": {"status": 200}}"#),
            [": an action item holds one action; found both `respond` and `log` (make them two items)"]
        );
        // Each value's own problems first; one skipped, the other action is the item's one.
        assert_eq!(
            action_problems(r#"{"log": {"message": 1}, "respond": {"status": 200}}"#),
            ["log.message: invalid type: integer `1`, expected a string"]
        );
        assert_eq!(
            action_problems(r#"{"respnd": {}}"#),
            ["respnd: unknown field `respnd`, expected one of `request_headers`, `response_headers`, `respond`, \
                 `redirect`, `rewrite`, `query`, `log`, `rate_limit`, `request_body`, `response_body`"]
        );
        assert_eq!(action_problems("[]"), [": invalid type: sequence, expected struct ActionItem"]);
        assert!(matches!(
            decode::<ActionSpec>(&parse(r#"{"rewrite": {"host": "h"}}"#).unwrap_or(Json::Null)).0,
            Some(ActionSpec::Rewrite(_))
        ));
    }
}
