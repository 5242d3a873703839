//! Compiling the paths a redirect or a rewrite makes from the request's: Gateway API's `ReplacePrefixMatch`
//! (`path_segment_prefix`), and a redirect's choice between a whole new path and a replaced prefix.

use super::{Compiler, RuleContext};
use crate::config::{PrefixRewriteSpec, RedirectSpec};
use crate::ruleset::PathRewrite;
use crate::segments::SegmentPrefix;

impl Compiler<'_> {
    /// `path_segment_prefix: {from, to}`: `from` a path prefix, `to` a path, empty, or a template.
    pub(super) fn segment_prefix(
        &mut self,
        spec: &PrefixRewriteSpec,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<PathRewrite> {
        let from_is_path = spec.from.starts_with('/');
        if !from_is_path {
            ctx.error(format!("{field}.from"), "a path prefix starts with `/`");
        }
        let to_field = format!("{field}.to");
        if !(spec.to.is_empty() || spec.to.starts_with('/') || spec.to.starts_with("${")) {
            ctx.error(to_field, "a path starts with `/`; write `/` or nothing to remove the prefix");
            return None;
        }
        let to = self.header_template(&spec.to, &to_field, ctx)?;
        from_is_path.then(|| PathRewrite::SegmentPrefix { from: SegmentPrefix::new(&spec.from), to })
    }

    /// A redirect's new path: `path` (whole) or `path_segment_prefix`, or `None` to keep the request's.
    pub(super) fn redirect_path(
        &mut self,
        spec: &RedirectSpec,
        field: &str,
        ctx: &mut RuleContext,
    ) -> Option<PathRewrite> {
        match (&spec.path, &spec.path_segment_prefix) {
            (Some(_), Some(_)) => {
                ctx.error(field, "give only one of path, path_segment_prefix");
                None
            }
            (Some(path), None) => self.path_template(path, &format!("{field}.path"), ctx).map(PathRewrite::Full),
            (None, Some(segments)) => self.segment_prefix(segments, &format!("{field}.path_segment_prefix"), ctx),
            (None, None) => None,
        }
    }
}
