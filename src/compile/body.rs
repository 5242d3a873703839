//! Compiling the body vocabulary: a rule's `body` block and the `request_body` / `response_body` actions.
//!
//! A rule that reads or writes a body is decided in two steps: its `match` with the headers, then its `body`
//! tests once the body is whole; its actions all run then. So only actions that still make sense after the
//! body has arrived are allowed with it.

use super::conditions::uncaptured_value_test;
use super::{Compiler, RuleContext};
use crate::body::json::Pointer;
use crate::body::limit::OverLimit;
use crate::body::media;
use crate::body::rule::{BodyEdits, BodyRule, BodyTest, BodyTestKind, FieldTest};
use crate::body::spec::{BodyEditsSpec, BodySpec};
use crate::config::{ActionSpec, RuleSpec};
use crate::error::Phase;
use crate::limits::{DEFAULT_BODY_BYTES, MAX_BODY_BYTES, MAX_BODY_HOLD_BYTES};
use crate::matcher::CompiledMatch;
use crate::ruleset::{HeaderMap, Test};

impl Compiler<'_> {
    /// The rule's body needs: from its `body` block, or the defaults when only a body action asks for the body.
    /// `None` for a rule that does neither (nothing is checked then, nothing costs).
    pub(super) fn rule_body(&mut self, spec: &RuleSpec, ctx: &mut RuleContext) -> Option<Box<BodyRule>> {
        let edits_body =
            spec.actions.iter().any(|a| matches!(a, ActionSpec::RequestBody(_) | ActionSpec::ResponseBody(_)));
        if spec.body.is_none() && !edits_body {
            return None;
        }
        let default = BodySpec::default();
        let body = spec.body.as_ref().unwrap_or(&default);
        for (i, action) in spec.actions.iter().enumerate() {
            let name = match action {
                ActionSpec::RequestHeaders(_) => "request_headers",
                ActionSpec::ResponseHeaders(_) => "response_headers",
                ActionSpec::Rewrite(_) => "rewrite",
                ActionSpec::Query(_) => "query",
                ActionSpec::Respond(_)
                | ActionSpec::Redirect(_)
                | ActionSpec::Log(_)
                | ActionSpec::RateLimit(_)
                | ActionSpec::RequestBody(_)
                | ActionSpec::ResponseBody(_) => continue,
            };
            ctx.error(
                format!("actions[{i}].{name}"),
                format!(
                    "`{name}` cannot run in a rule that reads or edits the body: its actions run once the body has arrived, when the headers are settled; put `{name}` in a rule of its own without `body`"
                ),
            );
        }
        if ctx.phase == Phase::Response {
            for (i, action) in spec.actions.iter().enumerate() {
                let name = match action {
                    ActionSpec::Respond(_) => "respond",
                    ActionSpec::Redirect(_) => "redirect",
                    _ => continue,
                };
                ctx.error(
                    format!("actions[{i}].{name}"),
                    format!("`{name}` cannot answer once a response body has arrived: the response's status and headers have gone to the client by then; answer from a rule without `body`"),
                );
            }
        }
        if spec.stop {
            ctx.error(
                "stop",
                "a rule that reads or edits the body is decided after the other rules of its phase ran, so it cannot stop them; remove `stop`",
            );
        }
        self.body_rule(body, ctx).map(Box::new)
    }

    fn body_rule(&mut self, spec: &BodySpec, ctx: &mut RuleContext) -> Option<BodyRule> {
        let before = ctx.error_count();
        let content_types: Vec<Box<str>> = match &spec.content_types {
            None => media::DEFAULT_TYPES.iter().map(|t| (*t).into()).collect(),
            Some(types) if types.is_empty() => {
                ctx.error(
                    "body.content_types",
                    "an empty list matches no message; leave it out for text and JSON types",
                );
                Vec::new()
            }
            Some(types) => types
                .iter()
                .enumerate()
                .filter_map(|(i, pattern)| match media::check_pattern(pattern) {
                    Ok(()) => Some(pattern.as_str().into()),
                    Err(wanted) => {
                        ctx.error(format!("body.content_types[{i}]"), format!("{pattern:?} is not {wanted}"));
                        None
                    }
                })
                .collect(),
        };
        let max_bytes = match spec.max_bytes {
            None => DEFAULT_BODY_BYTES,
            Some(n) if n.0 >= 1 && n.0 <= MAX_BODY_HOLD_BYTES as u64 => {
                usize::try_from(n.0).unwrap_or(MAX_BODY_HOLD_BYTES)
            }
            Some(n) => {
                ctx.error(
                    "body.max_bytes",
                    format!(
                        "{} bytes; a rule holds 1 to {MAX_BODY_HOLD_BYTES} bytes of body (1 MiB, Envoy's default buffer limit)",
                        n.0
                    ),
                );
                DEFAULT_BODY_BYTES
            }
        };
        let over_limit = match spec.over_limit.as_deref() {
            None | Some("pass") => OverLimit::Pass,
            Some("reject") if ctx.phase == Phase::Request => OverLimit::Reject,
            Some("reject") => {
                ctx.error(
                    "body.over_limit",
                    "`reject` answers 413 to a request; a response's status is already on its way: use `pass`",
                );
                OverLimit::Pass
            }
            Some(other) => {
                ctx.error("body.over_limit", format!("{other:?} is not `pass` or `reject`"));
                OverLimit::Pass
            }
        };
        let mut tests = Vec::new();
        if let Some(needle) = &spec.contains {
            if needle.is_empty() {
                ctx.error("body.contains", "an empty text is in every body; give the text to look for");
            }
            let wanted = crate::trace::quote(needle);
            tests.push(BodyTest {
                field: "body.contains".into(),
                wanted: wanted.into(),
                kind: BodyTestKind::Contains(needle.as_str().into()),
            });
        }
        if let Some(pattern) = &spec.regex {
            match CompiledMatch::search_regex(pattern) {
                Ok(regex) => tests.push(BodyTest {
                    field: "body.regex".into(),
                    wanted: format!("a match of regex {}", crate::trace::quote(pattern)).into(),
                    kind: BodyTestKind::Regex(regex),
                }),
                Err(reason) => ctx.error("body.regex", format!("invalid regex: {reason}")),
            }
        }
        for (pointer_text, test) in &spec.json {
            let field = format!("body.json.{pointer_text}");
            let pointer = match Pointer::parse(pointer_text) {
                Ok(pointer) => pointer,
                Err(reason) => {
                    ctx.error(&field, reason);
                    continue;
                }
            };
            let Some((test, wanted)) = uncaptured_value_test(&test.0, &field, ctx) else { continue };
            let test = match test {
                Test::Matches(m) => FieldTest::Matches(m),
                Test::Present(want) => FieldTest::Present(want),
                Test::OneOf { .. } | Test::Status(_) | Test::Cidrs(_) | Test::Sample { .. } => continue,
            };
            let invert = spec.json.get(pointer_text).is_some_and(|t| t.0.invert);
            tests.push(BodyTest {
                field: field.into(),
                wanted: wanted.into(),
                kind: BodyTestKind::Json { pointer, test, invert },
            });
        }
        (ctx.error_count() == before).then_some(BodyRule { content_types, max_bytes, over_limit, tests })
    }

    /// A `request_body` / `response_body` action of a rule in phase `ctx.phase`.
    pub(super) fn body_edits(
        &mut self,
        spec: &BodyEditsSpec,
        map: HeaderMap,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<BodyEdits> {
        let before = ctx.error_count();
        let own = match ctx.phase {
            Phase::Request => HeaderMap::Request,
            Phase::Response => HeaderMap::Response,
        };
        if map != own {
            ctx.error(
                field,
                format!(
                    "a {} rule reads and edits the {} body only; move this action to a {} rule",
                    ctx.phase.key(),
                    own.key(),
                    map.key()
                ),
            );
        }
        if let Some(set) = &spec.set {
            if set.len() > MAX_BODY_BYTES {
                ctx.error(
                    format!("{field}.set"),
                    format!("{} bytes; a body set here has at most {MAX_BODY_BYTES}", set.len()),
                );
            }
        }
        let mut replace = Vec::with_capacity(spec.replace.len());
        for (i, pair) in spec.replace.iter().enumerate() {
            if pair.from.is_empty() {
                ctx.error(
                    format!("{field}.replace[{i}].from"),
                    "an empty text cannot be replaced; give the text to find",
                );
            }
            replace.push((pair.from.as_str().into(), pair.to.as_str().into()));
        }
        let mut json_remove = Vec::with_capacity(spec.json_remove.len());
        for (i, text) in spec.json_remove.iter().enumerate() {
            match Pointer::parse(text) {
                Ok(pointer) if text.is_empty() => {
                    let _ = pointer;
                    ctx.error(
                        format!("{field}.json_remove[{i}]"),
                        "the empty pointer is the whole body; use `set` to replace it",
                    );
                }
                Ok(pointer) => json_remove.push(pointer),
                Err(reason) => ctx.error(format!("{field}.json_remove[{i}]"), reason),
            }
        }
        let mut json_set = Vec::with_capacity(spec.json_set.len());
        for (text, value) in &spec.json_set {
            match Pointer::parse(text) {
                Ok(pointer) => json_set.push((pointer, value.clone())),
                Err(reason) => ctx.error(format!("{field}.json_set.{text}"), reason),
            }
        }
        let edits = BodyEdits { set: spec.set.as_deref().map(Into::into), replace, json_remove, json_set };
        if edits.set.is_none() && edits.replace.is_empty() && !edits.edits_json() {
            ctx.error(field, "changes nothing: give set, replace, json_remove or json_set");
        }
        (ctx.error_count() == before).then_some(edits)
    }
}
