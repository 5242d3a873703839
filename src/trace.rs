//! What happened while rules ran: each rule's verdict and, for a rule that did not match, the first condition
//! that failed and why; then every change the matched rules made. This is what `rulefilter trace` prints.
//!
//! Tracing is off unless a state is made with [`crate::RuleSet::new_traced_request`]; the module never turns
//! it on, and then it costs one branch per rule.

use std::fmt;

use crate::error::Phase;
use crate::ruleset::HeaderMap;

/// One step of an exchange, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A phase's rules start.
    Phase(Phase),
    /// A rule was evaluated: `miss` is `None` when it matched.
    Rule { index: usize, name: String, miss: Option<Miss> },
    /// A rule was not evaluated because an earlier one answered or stopped the phase.
    Skipped { index: usize, name: String, by: String, reason: SkipReason },
    /// A header was changed by a header edit (or by the debug header).
    Header { map: HeaderMap, name: String, edit: Edit },
    /// A `rewrite` or `query` action changed the request's path or host. Named by its action, not as a write to
    /// `:path` or `:authority`: rules cannot edit pseudo-headers, and a trace should not suggest they can.
    Url { change: UrlChange, value: String },
    /// A request rule's `response_headers` edits, rendered now, wait for the response.
    Deferred,
    /// The edits a request rule deferred are applied now.
    ApplyDeferred { rule: String },
    /// A rule answered the client.
    Responded { status: u16, headers: Vec<(String, String)>, body: String },
    /// The answer, made in the response phase, carries the response headers the edits wrote before it:
    /// `kept` with the values they left, `removed` taken away (see docs/reference.md, Order). Its headers in
    /// [`Event::Responded`] include them.
    Carried { kept: Vec<String>, removed: Vec<String> },
    /// A rule's `log` action wrote a line.
    Logged { level: log::Level, message: String },
    /// A dry-run rule would have done this (a header edit, a response, stopping the phase); nothing changed.
    WouldDo(String),
    /// A `rate_limit` action decided: `key` is the key as written (the rendered key may be a credential),
    /// `verdict` what the bucket said (`allowed: 4 more now …`, `limited: …`, `undecided: …`).
    RateLimit { key: String, verdict: String },
    /// A value was refused (it could split a header line, or was no valid path or host) and nothing was written.
    Refused(String),
    /// An `api_key` or `basic_auth` condition's credentials were checked (once per exchange): whose they are,
    /// or why they were refused. Never the key or password.
    Credentials(String),
    /// A header whose template rendered empty was left out (see `docs/reference.md`, Templated values).
    LeftOut(String),
    /// A body rule's `match` held and the message is one it reads: it waits for the body, held up to
    /// `max_bytes`.
    AwaitsBody { map: HeaderMap, max_bytes: usize },
    /// A body that rules waited for: whole, of `bytes` bytes, or `None` when it went past their limit and was
    /// not read. The waiting rules are decided next.
    BodyArrived { map: HeaderMap, bytes: Option<usize> },
    /// Body edits were made: the proxy sends this many bytes on instead.
    BodyEdited { map: HeaderMap, bytes: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The rule named `by` answered the request.
    Answered,
    /// The rule named `by` matched and has `stop: true`.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Set(String),
    Add(String),
    Remove,
}

/// What a `rewrite` or `query` action changed in the request's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlChange {
    RewritePath,
    RewriteHost,
    Query,
}

impl UrlChange {
    /// The pseudo-header the proxy is given the new value in.
    pub fn pseudo_header(self) -> &'static str {
        match self {
            UrlChange::RewritePath | UrlChange::Query => ":path",
            UrlChange::RewriteHost => ":authority",
        }
    }
}

impl fmt::Display for UrlChange {
    /// The words before the new value, in a trace line and in a dry run's "would …":
    /// `rewrite the path to "/v2/users"`, `edit the query, the path becomes "/shop?page=2"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlChange::RewritePath => "rewrite the path to",
            UrlChange::RewriteHost => "rewrite the host to",
            UrlChange::Query => "edit the query, the path becomes",
        })
    }
}

/// Why a condition (or a block of them) did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    /// Where the condition is written, e.g. `match.headers.x-env`.
    pub field: String,
    pub reason: String,
    /// For `any`: why each alternative failed.
    pub alternatives: Vec<Miss>,
}

impl fmt::Display for Miss {
    /// `match.path: got "/x", wanted prefix "/api"`; alternatives follow on their own lines, indented.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)?;
        for alternative in &self.alternatives {
            let nested = alternative.to_string().replace('\n', "\n  ");
            write!(f, "\n  - {nested}")?;
        }
        Ok(())
    }
}

/// A value as a trace shows it: in quotes, cut after 100 characters. Quotes and control characters are
/// escaped; backslashes are not, so a regex reads as it was written.
pub fn quote(value: &str) -> String {
    const MAX: usize = 100;
    let (shown, cut) = match value.char_indices().nth(MAX) {
        Some((end, _)) => (value.get(..end).unwrap_or_default(), true),
        None => (value, false),
    };
    let mut out = String::with_capacity(shown.len() + 2);
    out.push('"');
    for c in shown.chars() {
        match c {
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.extend(c.escape_debug()),
            c => out.push(c),
        }
    }
    out.push('"');
    if cut {
        out.push_str(&format!("… ({} bytes)", value.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        assert_eq!(quote("a\nb"), r#""a\nb""#);
        assert_eq!(quote(r#"www\.(a|"b")"#), r#""www\.(a|\"b\")""#);
        let long = "é".repeat(150);
        let quoted = quote(&long);
        assert!(quoted.starts_with(&format!("\"{}\"…", "é".repeat(100))), "{quoted}");
        assert!(quoted.ends_with("(300 bytes)"), "{quoted}");
    }

    #[test]
    fn alternatives_are_listed_under_their_block() {
        let leaf = |field: &str| Miss { field: field.into(), reason: "got nothing".into(), alternatives: vec![] };
        let miss = Miss {
            field: "match.any".into(),
            reason: "none of 2 blocks matched".into(),
            alternatives: vec![leaf("match.any[0].path"), leaf("match.any[1].method")],
        };
        assert_eq!(
            miss.to_string(),
            "match.any: none of 2 blocks matched\n  - match.any[0].path: got nothing\n  - match.any[1].method: got nothing"
        );
    }
}
