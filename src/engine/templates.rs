//! Rendering templates with the request's values and the rule's captures.

use super::writes::{push_capped, unsendable};
use super::{Host, Run};
use crate::limits::{MAX_HEADER_VALUE_BYTES, MAX_RENDERED_BYTES, MAX_TEMPLATE_BYTES};
use crate::ruleset::{Piece, Rule, Template};
use std::borrow::Cow;

// `render_header` lets fixed text through unchecked, which holds only while a template fits in a header value.
const _: () = assert!(MAX_TEMPLATE_BYTES <= MAX_HEADER_VALUE_BYTES);

/// Room for a value a reference brings, when a template's result is estimated.
const VALUE_ESTIMATE: usize = 32;

/// What a template's result likely takes: its text, and a short value for each reference.
fn rendered_estimate(template: &Template) -> usize {
    let bytes: usize = template
        .pieces
        .iter()
        .map(|piece| match piece {
            Piece::Text(text) => text.len(),
            Piece::Value { .. } | Piece::Capture(_) | Piece::Encoded { .. } => VALUE_ESTIMATE,
        })
        .sum();
    bytes.min(MAX_RENDERED_BYTES)
}

/// A template's text when it is fixed (no references): what it renders to whatever the request.
pub(super) fn fixed_text(template: &Template) -> Option<&str> {
    match template.pieces.as_slice() {
        [Piece::Text(text)] => Some(text),
        [] => Some(""),
        _ => None,
    }
}

impl<'r, H: Host> Run<'r, '_, H> {
    pub(super) fn render<'t>(&mut self, template: &'t Template, captures: &[Option<String>]) -> Cow<'t, str> {
        if let [Piece::Text(text)] = template.pieces.as_slice() {
            return Cow::Borrowed(text);
        }
        for piece in &template.pieces {
            if let Piece::Value { slot, view } = piece {
                self.ensure_view(*slot, view);
            }
        }
        // Sized for the usual result at once, rather than grown a piece at a time.
        let mut out = String::with_capacity(rendered_estimate(template));
        for piece in &template.pieces {
            let room = match piece {
                Piece::Text(text) => push_capped(&mut out, text),
                Piece::Value { slot, view } => match self.view(*slot, view) {
                    Some(value) => push_capped(&mut out, &value),
                    None => true,
                },
                Piece::Capture(cell) => match captures.get(*cell) {
                    Some(Some(text)) => push_capped(&mut out, text),
                    _ => true,
                },
                Piece::Encoded { encoding, inner } => {
                    let value = self.render(inner, captures);
                    push_capped(&mut out, &encoding.encode(&value))
                }
            };
            if !room {
                break;
            }
        }
        Cow::Owned(out)
    }

    /// Renders a header value; `None` (logged) when the result could split a header line.
    pub(super) fn render_header<'t>(
        &mut self,
        rule: &Rule,
        name: &str,
        template: &'t Template,
        captures: &[Option<String>],
    ) -> Option<Cow<'t, str>> {
        // Fixed text was checked when the document compiled (no CR, LF or NUL; a template is shorter than a
        // header value may be): most written values are, and need no second look per request.
        if let Some(text) = fixed_text(template) {
            return Some(Cow::Borrowed(text));
        }
        let value = self.render(template, captures);
        match unsendable(&value) {
            None => Some(value),
            Some(reason) => {
                self.refuse(format!("rule {:?}: refused a value for {name:?}: it {reason}", &*rule.name));
                None
            }
        }
    }
}
