//! Rendering templates with the request's values and the rule's captures.

use super::writes::{push_capped, unsendable};
use super::{Host, Run};
use crate::ruleset::{Piece, Rule, Template};
use std::borrow::Cow;

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
        let mut out = String::new();
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
