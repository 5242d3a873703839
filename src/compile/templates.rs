//! Compiling `${…}` templates and the references they make.

use super::{header_name, is_header_value, is_token, request_header_name, Compiler, RuleContext, HEADER_VALUE_RULE};
use crate::error::Phase;
use crate::limits::MAX_TEMPLATE_BYTES;
use crate::ruleset::{CaptureBinding, Expr, Group, HeaderMap, Piece, Slot, Template, View};
use crate::template;
use crate::template::Segment;

impl Compiler<'_> {
    /// A template whose result is a header value (checked again at run time).
    pub(super) fn header_template(&mut self, text: &str, field: &str, ctx: &mut RuleContext) -> Option<Template> {
        if !is_header_value(text) {
            ctx.error(field, HEADER_VALUE_RULE);
            return None;
        }
        self.template(text, field, ctx)
    }

    /// A template for a path: must start with `/` unless it starts with a reference.
    pub(super) fn path_template(&mut self, text: &str, field: &str, ctx: &mut RuleContext) -> Option<Template> {
        if !(text.starts_with('/') || text.starts_with("${")) {
            ctx.error(field, "a path starts with `/`");
            return None;
        }
        self.header_template(text, field, ctx)
    }

    pub(super) fn template(&mut self, text: &str, field: &str, ctx: &mut RuleContext) -> Option<Template> {
        self.sized_template(text, MAX_TEMPLATE_BYTES, field, ctx)
    }

    pub(super) fn sized_template(
        &mut self,
        text: &str,
        limit: usize,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<Template> {
        if text.len() > limit {
            ctx.error(field, format!("{} bytes long; at most {limit} are allowed here", text.len()));
            return None;
        }
        let segments = match template::parse(text) {
            Ok(segments) => segments,
            Err(message) => {
                ctx.error(field, message);
                return None;
            }
        };
        let before = ctx.error_count();
        let mut pieces = Vec::with_capacity(segments.len());
        for segment in segments {
            match segment {
                Segment::Text(text) => pieces.push(Piece::Text(text.into())),
                Segment::Reference(reference) => {
                    if let Some(piece) = self.reference(reference, field, ctx) {
                        pieces.push(piece);
                    }
                }
            }
        }
        (ctx.error_count() == before).then_some(Template { pieces })
    }

    /// Resolves one `${…}` reference.
    pub(super) fn reference(&mut self, reference: &str, field: &str, ctx: &mut RuleContext) -> Option<Piece> {
        let (head, arg) = match reference.split_once('.') {
            Some((head, arg)) => (head, Some(arg)),
            None => (reference, None),
        };
        let value = |slot: usize, view: View| Some(Piece::Value { slot, view });
        let response_only = |ctx: &mut RuleContext| {
            if ctx.phase == Phase::Request {
                let message = format!("`${{{reference}}}` is only known in the response phase; request rules render templates when the request arrives");
                ctx.error(field, message);
            }
        };
        match (head, arg) {
            ("method", None) => value(self.request_header(":method", ctx), View::Whole),
            ("scheme", None) => value(self.request_header(":scheme", ctx), View::Whole),
            ("host", None) => value(self.request_header(":authority", ctx), View::HostOnly),
            ("authority", None) => value(self.request_header(":authority", ctx), View::Whole),
            ("path", None) => value(self.request_header(":path", ctx), View::PathOnly),
            ("query", None) => value(self.request_header(":path", ctx), View::QueryString),
            ("query", Some(name)) if !name.is_empty() => {
                value(self.request_header(":path", ctx), View::QueryParam(name.into()))
            }
            ("header", Some(name)) => {
                let name = request_header_name(name, field, ctx)?;
                value(self.request_header(&name, ctx), View::Whole)
            }
            ("cookie", Some(name)) if is_token(name) => {
                value(self.request_header("cookie", ctx), View::Cookie(name.into()))
            }
            ("source", Some("ip")) => value(self.slot(Slot::SourceAddress, ctx), View::Ip),
            ("status", None) => {
                response_only(ctx);
                value(self.slot(Slot::Header(HeaderMap::Response, ":status".into()), ctx), View::Whole)
            }
            ("response_header", Some(name)) => {
                response_only(ctx);
                let name = header_name(name, field, ctx)?;
                value(self.slot(Slot::Header(HeaderMap::Response, name.into()), ctx), View::Whole)
            }
            ("env", Some(name)) => match self.env.var(name) {
                Some(text) => Some(Piece::Text(text.into())),
                None => {
                    ctx.error(
                        field,
                        format!("`${{{reference}}}`: the plugin has no environment variable {name:?} (vmConfig.env)"),
                    );
                    None
                }
            },
            ("capture", Some(group)) => capture(group, reference, field, ctx),
            _ => {
                ctx.error(field, format!("unknown reference `${{{reference}}}`; known: {KNOWN_REFERENCES}"));
                None
            }
        }
    }
}

/// The references templates understand, for error messages and the README.
pub const KNOWN_REFERENCES: &str = "method, scheme, host, authority, path, query, query.NAME, header.NAME, \
cookie.NAME, source.ip, status, response_header.NAME, env.NAME, capture.N, capture.NAME";

/// Resolves `${capture.…}` to a capture cell, binding it to the regex condition that provides the group.
fn capture(group: &str, reference: &str, field: &str, ctx: &mut RuleContext) -> Option<Piece> {
    let wanted = match group.parse::<usize>() {
        Ok(index) => Group::Index(index),
        Err(_) => Group::Name(group.into()),
    };
    let candidates: Vec<usize> = ctx
        .regexes
        .iter()
        .enumerate()
        .filter(|(_, regex)| match &wanted {
            Group::Index(index) => *index >= 1 && *index < regex.group_names.len(),
            Group::Name(name) => regex.group_names.iter().flatten().any(|n| **n == **name),
        })
        .map(|(id, _)| id)
        .collect();
    let id = match candidates.as_slice() {
        [id] => *id,
        [] => {
            ctx.error(field, format!("`${{{reference}}}`: no regex condition of this rule has that group; capture it with `(…)` in a `regex` test"));
            return None;
        }
        _ => {
            ctx.error(field, format!("`${{{reference}}}` is ambiguous: several regex conditions have that group; name it `(?P<name>…)` in one"));
            return None;
        }
    };
    let (under_not, regex_field) = ctx.regexes.get(id).map(|r| (r.under_not, r.field.clone()))?;
    if under_not {
        ctx.error(field, format!("`${{{reference}}}` comes from {regex_field}, under `not`: it never holds a value when the rule matches"));
        return None;
    }
    let bindings = ctx.bindings.get_mut(id)?;
    if let Some(existing) = bindings.iter().find(|b| b.group == wanted) {
        return Some(Piece::Capture(existing.cell));
    }
    let cell = ctx.capture_cells;
    ctx.capture_cells += 1;
    bindings.push(CaptureBinding { group: wanted, cell });
    Some(Piece::Capture(cell))
}

/// Gives each regex condition the capture bindings templates asked for.
pub(super) fn attach_captures(expr: &mut Expr, bindings: &mut [Vec<CaptureBinding>]) {
    match expr {
        Expr::All(exprs) | Expr::Any { exprs, .. } => exprs.iter_mut().for_each(|e| attach_captures(e, bindings)),
        Expr::Not { inner, .. } => attach_captures(inner, bindings),
        Expr::Leaf(condition) => {
            if let Some(found) = condition.regex_id.and_then(|id| bindings.get_mut(id)) {
                condition.captures = std::mem::take(found);
            }
        }
    }
}
