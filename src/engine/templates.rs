//! Rendering templates with the request's values and the rule's captures.

use super::writes::{push_capped, unsendable};
use super::{Host, Run};
use crate::limits::MAX_RENDERED_BYTES;
use crate::ruleset::{Piece, Rule, Template};
use std::borrow::Cow;

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
