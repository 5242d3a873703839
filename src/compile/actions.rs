//! Compiling a rule's actions: the list itself, header edits and log lines.

use super::conditions::anchored_regex;
use super::{
    edited_header, header_name, is_header_value, is_token, log_level, request_header_name, Compiler, RuleContext,
    HEADER_VALUE_RULE, TOKEN_SYMBOLS,
};
use crate::config::{ActionSpec, FromTo, HeaderEditsSpec, LogSpec};
use crate::error::Phase;
use crate::reserved::Edit;
use crate::ruleset::{Action, HeaderEdits, HeaderMap, HeaderName, Template};

impl Compiler<'_> {
    pub(super) fn actions(&mut self, specs: &[ActionSpec], ctx: &mut RuleContext) -> Vec<Action> {
        if specs.is_empty() {
            ctx.error("actions", "a rule needs at least one action");
        }
        let mut actions = Vec::with_capacity(specs.len());
        let mut ended_at: Option<(usize, &str)> = None;
        for (i, spec) in specs.iter().enumerate() {
            if let Some((at, name)) = ended_at {
                ctx.error(format!("actions[{i}]"), format!("never runs: `{name}` at actions[{at}] ends the phase"));
            }
            let request_only = |ctx: &mut RuleContext, field: &str, what: &str| {
                if ctx.phase == Phase::Response {
                    ctx.error(field, format!("{what} in the response phase: the request has already gone upstream; move this action to a request rule"));
                }
            };
            let action = match spec {
                ActionSpec::RequestHeaders(edits) => {
                    let field = format!("actions[{i}].request_headers");
                    request_only(ctx, &field, "cannot edit request headers");
                    self.header_edits(edits, HeaderMap::Request, &field, ctx).map(Action::RequestHeaders)
                }
                ActionSpec::ResponseHeaders(edits) => {
                    let field = format!("actions[{i}].response_headers");
                    self.header_edits(edits, HeaderMap::Response, &field, ctx).map(Action::ResponseHeaders)
                }
                ActionSpec::Respond(respond) => {
                    ended_at = Some((i, "respond"));
                    self.local_response(respond, &format!("actions[{i}].respond"), ctx).map(Action::Respond)
                }
                ActionSpec::Redirect(redirect) => {
                    ended_at = Some((i, "redirect"));
                    self.redirect(redirect, &format!("actions[{i}].redirect"), ctx).map(Action::Redirect)
                }
                ActionSpec::Rewrite(rewrite) => {
                    let field = format!("actions[{i}].rewrite");
                    request_only(ctx, &field, "cannot rewrite");
                    self.rewrite(rewrite, &field, ctx).map(Action::Rewrite)
                }
                ActionSpec::Query(edits) => {
                    let field = format!("actions[{i}].query");
                    request_only(ctx, &field, "cannot edit the query");
                    self.query_edits(edits, &field, ctx).map(Action::Query)
                }
                ActionSpec::Log(log) => self.log(log, &format!("actions[{i}].log"), ctx),
                ActionSpec::RateLimit(limit) => {
                    let field = format!("actions[{i}].rate_limit");
                    if let Some(first) =
                        specs.iter().position(|s| matches!(s, ActionSpec::RateLimit(_))).filter(|f| *f < i)
                    {
                        ctx.error(&field, format!("a second rate limit in this rule (the first is actions[{first}]): a rule's buckets are named after it; write another rule for another limit"));
                    }
                    self.rate_limit(limit, &field, ctx)
                }
                ActionSpec::RequestBody(edits) => {
                    let field = format!("actions[{i}].request_body");
                    self.body_edits(edits, HeaderMap::Request, &field, ctx)
                        .map(|edits| Action::Body { map: HeaderMap::Request, edits })
                }
                ActionSpec::ResponseBody(edits) => {
                    let field = format!("actions[{i}].response_body");
                    self.body_edits(edits, HeaderMap::Response, &field, ctx)
                        .map(|edits| Action::Body { map: HeaderMap::Response, edits })
                }
            };
            actions.extend(action);
        }
        actions
    }

    fn header_edits(
        &mut self,
        spec: &HeaderEditsSpec,
        map: HeaderMap,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<HeaderEdits> {
        let before = ctx.error_count();
        let copy = name_pairs(&spec.copy, Move::Copy, map, &format!("{field}.copy"), ctx);
        let rename = name_pairs(&spec.rename, Move::Rename, map, &format!("{field}.rename"), ctx);
        let named = |pairs: Vec<(Box<str>, Template)>| -> Vec<(HeaderName, Template)> {
            pairs.into_iter().map(|(name, template)| (name.into(), template)).collect()
        };
        let set = named(self.templated_headers(&spec.set, map, &format!("{field}.set"), ctx));
        let set_if_absent =
            named(self.templated_headers(&spec.set_if_absent, map, &format!("{field}.set_if_absent"), ctx));
        let add = named(self.templated_headers(&spec.add, map, &format!("{field}.add"), ctx));
        let mut remove: Vec<HeaderName> = Vec::new();
        for (i, name) in spec.remove.iter().enumerate() {
            let at = format!("{field}.remove[{i}]");
            if let Some(name) = edited_header(name, map, Edit::Remove, &at, ctx) {
                let written = set.iter().chain(&set_if_absent).chain(&add).any(|(n, _)| **n == *name);
                if written {
                    ctx.error(
                        at,
                        format!(
                            "{name:?} is also written by this action; removing it undoes that: keep one of the two"
                        ),
                    );
                }
                remove.push(name.into());
            }
        }
        let mut remove_prefix: Vec<Box<str>> = Vec::new();
        for (i, prefix) in spec.remove_prefix.iter().enumerate() {
            let at = format!("{field}.remove_prefix[{i}]");
            if prefix.is_empty() || prefix.starts_with(':') || !is_token(prefix) {
                ctx.error(
                    at,
                    format!(
                        "{prefix:?} is not the start of a header name (letters, digits and {TOKEN_SYMBOLS}; no `:`)"
                    ),
                );
            } else {
                remove_prefix.push(prefix.to_ascii_lowercase().into());
            }
        }
        let mut remove_regex = Vec::new();
        for (i, pattern) in spec.remove_regex.iter().enumerate() {
            match anchored_regex(pattern, true) {
                Ok(regex) => remove_regex.push(regex),
                Err(reason) => ctx.error(format!("{field}.remove_regex[{i}]"), format!("invalid regex: {reason}")),
            }
        }
        let edits = HeaderEdits { copy, rename, set, set_if_absent, add, remove, remove_prefix, remove_regex };
        let empty = edits.copy.is_empty()
            && edits.rename.is_empty()
            && edits.set.is_empty()
            && edits.set_if_absent.is_empty()
            && edits.add.is_empty()
            && edits.remove.is_empty()
            && edits.remove_prefix.is_empty()
            && edits.remove_regex.is_empty();
        if empty && ctx.error_count() == before {
            ctx.error(
                field,
                "give at least one of copy, rename, set, set_if_absent, add, remove, remove_prefix, remove_regex",
            );
        }
        (ctx.error_count() == before).then_some(edits)
    }

    pub(super) fn templated_headers(
        &mut self,
        pairs: &std::collections::BTreeMap<String, String>,
        map: HeaderMap,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Vec<(Box<str>, Template)> {
        let mut out: Vec<(Box<str>, Template)> = Vec::new();
        for (name, value) in pairs {
            let at = format!("{field}.{name}");
            let Some(lower) = edited_header(name, map, Edit::Write, &at, ctx) else { continue };
            if out.iter().any(|(n, _)| **n == *lower) {
                ctx.error(at, "given twice (header names are case-insensitive); keep one");
                continue;
            }
            if !is_header_value(value) {
                ctx.error(at, HEADER_VALUE_RULE);
                continue;
            }
            if let Some(template) = self.template(value, &at, ctx) {
                out.push((lower.into(), template));
            }
        }
        out
    }

    pub(super) fn log(&mut self, spec: &LogSpec, field: &str, ctx: &mut RuleContext) -> Option<Action> {
        let level = match log_level(spec.level.as_deref().unwrap_or("info")) {
            Ok(level) => Some(level),
            Err(message) => {
                ctx.error(format!("{field}.level"), message);
                None
            }
        };
        let message = self.template(&spec.message, &format!("{field}.message"), ctx);
        Some(Action::Log { level: level?, message: message? })
    }
}

pub(super) fn tokens(values: &[String], field: &str, what: &str, ctx: &mut RuleContext) -> Vec<Box<str>> {
    let mut out = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if is_token(value) {
            out.push(value.as_str().into());
        } else {
            let at = if values.len() == 1 { field.to_owned() } else { format!("{field}[{i}]") };
            ctx.error(at, format!("{value:?} is not {what}"));
        }
    }
    out
}

/// Whether a name pair keeps the header it reads from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Move {
    Copy,
    Rename,
}

fn name_pairs(
    pairs: &[FromTo],
    kind: Move,
    map: HeaderMap,
    field: &str,
    ctx: &mut RuleContext,
) -> Vec<(HeaderName, HeaderName)> {
    let mut out = Vec::new();
    for (i, pair) in pairs.iter().enumerate() {
        let at = format!("{field}[{i}].from");
        let from = match kind {
            Move::Rename => edited_header(&pair.from, map, Edit::Remove, &at, ctx),
            Move::Copy if pair.from.starts_with(':') => {
                let message = format!(
                    "{:?} is a pseudo-header; copy reads plain headers only: give its value with a template, \
                     e.g. `set: {{x-original-path: \"${{path}}\"}}`",
                    pair.from
                );
                ctx.error(at, message);
                None
            }
            Move::Copy if map == HeaderMap::Request => request_header_name(&pair.from, &at, ctx),
            Move::Copy => header_name(&pair.from, &at, ctx),
        };
        let to = edited_header(&pair.to, map, Edit::Write, &format!("{field}[{i}].to"), ctx);
        if let (Some(from), Some(to)) = (from, to) {
            if from == to {
                ctx.error(format!("{field}[{i}]"), "from and to are the same header; give `to` another name");
            } else {
                out.push((from.into(), to.into()));
            }
        }
    }
    out
}
