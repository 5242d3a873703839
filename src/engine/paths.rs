//! The path a rewrite or a redirect makes from the request's path (without its query string).

use std::borrow::Cow;

use super::{Host, Run};
use crate::ruleset::PathRewrite;

impl<'r, H: Host> Run<'r, '_, H> {
    /// `path` as `rewrite` changes it; a prefix that does not match leaves it as it is.
    pub(super) fn new_path<'p>(
        &mut self,
        rewrite: &'p PathRewrite,
        path: &'p str,
        captures: &[Option<String>],
    ) -> Cow<'p, str> {
        match rewrite {
            PathRewrite::Full(template) => self.render(template, captures),
            PathRewrite::Prefix { from, to } => match path.strip_prefix(&**from) {
                Some(rest) => Cow::Owned(format!("{}{rest}", self.render(to, captures))),
                None => Cow::Borrowed(path),
            },
            // Rendered only when the prefix matches.
            PathRewrite::SegmentPrefix { from, to } if from.rest(path).is_some() => {
                let to = self.render(to, captures);
                from.replace(path, &to).map_or(Cow::Borrowed(path), Cow::Owned)
            }
            PathRewrite::SegmentPrefix { .. } => Cow::Borrowed(path),
            PathRewrite::Regex { regex, substitution } => regex.replace_all(path, substitution),
        }
    }
}
