//! Compiling `sample` conditions: the percentage, and the key a template reference names.

use super::{Compiler, RuleContext};
use crate::config::SampleSpec;
use crate::ruleset::{Condition, Expr, Piece, Test};
use crate::sampling::{buckets_for, DEFAULT_KEY};

impl Compiler<'_> {
    pub(super) fn sample_condition(&mut self, spec: &SampleSpec, field: &str, ctx: &mut RuleContext) -> Option<Expr> {
        let buckets = buckets_for(spec.percent).map_err(|message| ctx.error(format!("{field}.percent"), message)).ok();
        let key_text = spec.key.as_deref().unwrap_or(DEFAULT_KEY);
        let at = format!("{field}.key");
        let template = self.template(key_text, &at, ctx)?;
        let (slot, view) = match template.pieces.as_slice() {
            [Piece::Value { slot, view }] => (*slot, view.clone()),
            _ => {
                let message = format!(
                    "{key_text:?}: the key is one reference to a request value, such as `${{header.x-user}}` or \
                     `${{cookie.uid}}` (without an encoding)"
                );
                ctx.error(at, message);
                return None;
            }
        };
        let mut wanted = format!("in the {}% sample by {key_text}", spec.percent);
        if !spec.seed.is_empty() {
            wanted.push_str(&format!(" (seed {:?})", spec.seed));
        }
        Some(Expr::Leaf(Condition {
            field: field.into(),
            wanted: wanted.into(),
            slot,
            view,
            test: Test::Sample { buckets: buckets?, seed: spec.seed.as_str().into() },
            invert: false,
            regex_id: None,
            captures: Vec::new(),
        }))
    }
}
