//! Path prefixes of whole segments, as Gateway API's `PathPrefix` match and `ReplacePrefixMatch` modifier use
//! them: `/foo` is a prefix of `/foo`, `/foo/` and `/foo/bar`, never of `/foobar`, and replacing it never
//! leaves a doubled or a missing `/` at the seam (`/strip-prefix/three` with `/strip-prefix` replaced by `/`
//! is `/three`).
//!
//! A trailing `/` means nothing on either side: `/foo/` is the prefix `/foo`, and a replacement `/xyz/` is
//! `/xyz`. What follows the prefix in the path (nothing, or `/` and more) is kept as it is.

/// A path prefix of whole segments, kept without its trailing `/` (so `/` is the empty prefix, which every
/// path starts with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentPrefix(Box<str>);

impl SegmentPrefix {
    /// The prefix as written (`/api`, `/api/`, or `/` for every path).
    pub fn new(prefix: &str) -> Self {
        SegmentPrefix(prefix.trim_end_matches('/').into())
    }

    /// What follows the prefix in `path` (a path without its query string): `""` or text starting with `/`.
    /// `None` when `path` does not start with the prefix at a segment boundary.
    pub fn rest<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(&*self.0)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// `path` with the prefix replaced by `replacement`, segment by segment; `None` when the prefix does not
    /// match. An empty or `/` replacement removes the prefix, and an empty result is `/`.
    pub fn replace(&self, path: &str, replacement: &str) -> Option<String> {
        let rest = self.rest(path)?;
        let head = replacement.trim_end_matches('/');
        let mut out = String::with_capacity(head.len() + rest.len() + 1);
        out.push_str(head);
        out.push_str(rest);
        if out.is_empty() {
            out.push('/');
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table in Gateway API's `HTTPPathModifier.ReplacePrefixMatch` documentation, row by row.
    #[test]
    fn replaces_as_gateway_api_specifies() {
        let rows = [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
        ];
        for (path, prefix, replacement, expected) in rows {
            let replaced = SegmentPrefix::new(prefix).replace(path, replacement);
            assert_eq!(replaced.as_deref(), Some(expected), "{path} with {prefix:?} -> {replacement:?}");
        }
    }

    /// Gateway API's conformance cases (httproute-rewrite-path, httproute-request-redirect).
    #[test]
    fn conformance_cases() {
        let strip = SegmentPrefix::new("/strip-prefix");
        assert_eq!(strip.replace("/strip-prefix/three", "/").as_deref(), Some("/three"));
        assert_eq!(strip.replace("/strip-prefix", "/").as_deref(), Some("/"));
        let one = SegmentPrefix::new("/prefix/one");
        assert_eq!(one.replace("/prefix/one/two", "/one").as_deref(), Some("/one/two"));
        assert_eq!(one.replace("/prefix/one", "/one").as_deref(), Some("/one"));
    }

    #[test]
    fn only_whole_segments_match() {
        let foo = SegmentPrefix::new("/foo");
        assert_eq!(foo.replace("/foobar", "/x"), None);
        assert_eq!(foo.replace("/fo", "/x"), None);
        assert_eq!(foo.replace("/Foo/bar", "/x"), None, "paths are case-sensitive");
        assert_eq!(foo.rest("/foo//bar"), Some("//bar"), "what follows the prefix is kept as sent");
    }

    #[test]
    fn the_root_prefix_matches_every_path() {
        let root = SegmentPrefix::new("/");
        assert_eq!(root.replace("/a/b", "/v2").as_deref(), Some("/v2/a/b"));
        assert_eq!(root.replace("/", "/v2").as_deref(), Some("/v2/"));
        assert_eq!(root.replace("/a", "/").as_deref(), Some("/a"));
    }
}
