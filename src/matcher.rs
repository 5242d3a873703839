//! Compiled string tests. Built once from the document (regexes at their first use); matching allocates
//! nothing.

use crate::lazy_regex::LazyRegex;
pub use crate::limits::REGEX_SIZE_LIMIT;
use crate::regex_engine::Regex;

/// A compiled string test.
#[derive(Debug, Clone)]
pub enum StringMatcher {
    Exact(Box<str>),
    Prefix(Box<str>),
    /// A prefix of whole path segments, kept without a trailing `/` (empty: every path).
    SegmentPrefix(Box<str>),
    Suffix(Box<str>),
    Contains(Box<str>),
    /// Anchored at both ends: the whole value must match, as in Envoy's and Istio's `regex`. Built at its first
    /// use (see [`crate::lazy_regex`]).
    Regex(LazyRegex),
}

/// A string test plus whether ASCII case matters.
#[derive(Debug, Clone)]
pub struct CompiledMatch {
    matcher: StringMatcher,
    ignore_case: bool,
}

impl CompiledMatch {
    pub fn exact(value: &str, ignore_case: bool) -> Self {
        CompiledMatch { matcher: StringMatcher::Exact(value.into()), ignore_case }
    }
    pub fn prefix(value: &str, ignore_case: bool) -> Self {
        CompiledMatch { matcher: StringMatcher::Prefix(value.into()), ignore_case }
    }
    /// Gateway API `PathPrefix`: `/foo` and `/foo/` match `/foo`, `/foo/` and `/foo/bar`, not `/foobar`.
    pub fn segment_prefix(value: &str, ignore_case: bool) -> Self {
        CompiledMatch { matcher: StringMatcher::SegmentPrefix(value.trim_end_matches('/').into()), ignore_case }
    }
    pub fn suffix(value: &str, ignore_case: bool) -> Self {
        CompiledMatch { matcher: StringMatcher::Suffix(value.into()), ignore_case }
    }
    pub fn contains(value: &str, ignore_case: bool) -> Self {
        // Lower-cased once here so matching only has to lower-case the value.
        let needle = if ignore_case { value.to_ascii_lowercase() } else { value.to_owned() };
        CompiledMatch { matcher: StringMatcher::Contains(needle.into()), ignore_case }
    }

    /// Checks `pattern` as a whole-value match, to be built at its first use. The error is the reason, on one
    /// line.
    pub fn regex(pattern: &str, ignore_case: bool) -> Result<Self, String> {
        let regex = LazyRegex::new(pattern, ignore_case)?;
        Ok(CompiledMatch { matcher: StringMatcher::Regex(regex), ignore_case })
    }

    /// Compiles `pattern` to search anywhere in a value (for rewrites), with the same size limit.
    pub fn search_regex(pattern: &str) -> Result<Regex, String> {
        crate::regex_subset::check(pattern)?;
        Regex::new(pattern, false)
    }

    pub fn is_match(&self, value: &str) -> bool {
        let ic = self.ignore_case;
        match &self.matcher {
            StringMatcher::Exact(want) if ic => value.eq_ignore_ascii_case(want),
            StringMatcher::Exact(want) => value == &**want,
            StringMatcher::Prefix(want) if ic => {
                value.get(..want.len()).is_some_and(|head| head.eq_ignore_ascii_case(want))
            }
            StringMatcher::Prefix(want) => value.starts_with(&**want),
            StringMatcher::SegmentPrefix(want) => {
                let head_matches = value.get(..want.len()).is_some_and(|head| {
                    if ic {
                        head.eq_ignore_ascii_case(want)
                    } else {
                        head == &**want
                    }
                });
                // The prefix must end at a segment boundary.
                head_matches && matches!(value.as_bytes().get(want.len()), None | Some(b'/'))
            }
            StringMatcher::Suffix(want) if ic => value
                .len()
                .checked_sub(want.len())
                .and_then(|start| value.get(start..))
                .is_some_and(|tail| tail.eq_ignore_ascii_case(want)),
            StringMatcher::Suffix(want) => value.ends_with(&**want),
            StringMatcher::Contains(want) if ic => contains_ignoring_case(value, want),
            StringMatcher::Contains(want) => value.contains(&**want),
            StringMatcher::Regex(regex) => regex.is_match(value),
        }
    }
}

impl CompiledMatch {
    /// The test itself (what an index files a rule under).
    pub fn matcher(&self) -> &StringMatcher {
        &self.matcher
    }

    /// Whether ASCII case is ignored.
    pub fn ignore_case(&self) -> bool {
        self.ignore_case
    }

    /// The regex, for a regex test: built now if this is its first use; `None` if it cannot be (see
    /// [`LazyRegex::get`]).
    pub fn as_regex(&self) -> Option<&Regex> {
        match &self.matcher {
            StringMatcher::Regex(regex) => regex.get(),
            _ => None,
        }
    }

    /// The regex, built now (for regexes that every use needs at once, such as header-name removals).
    pub fn into_regex(self) -> Option<Regex> {
        match self.matcher {
            StringMatcher::Regex(regex) => regex.get().cloned(),
            _ => None,
        }
    }

    /// For a regex test, its groups by index (0 is the whole match) with their names; otherwise empty.
    pub fn group_names(&self) -> Vec<Option<String>> {
        match &self.matcher {
            StringMatcher::Regex(regex) => regex.group_names(),
            _ => Vec::new(),
        }
    }
}

/// Whether `haystack` contains `needle` (already lower-case) regardless of ASCII case, without lower-casing a
/// copy of the haystack.
fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    let needle = needle.as_bytes();
    let Some((&first, _)) = needle.split_first() else { return true };
    haystack.as_bytes().windows(needle.len()).any(|window| {
        window.first().is_some_and(|b| b.to_ascii_lowercase() == first) && window.eq_ignore_ascii_case(needle)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_compare_the_whole_value_or_its_ends() {
        assert!(CompiledMatch::exact("/hello", false).is_match("/hello"));
        assert!(!CompiledMatch::exact("/hello", false).is_match("/hello/"));
        assert!(CompiledMatch::prefix("/api/", false).is_match("/api/v1"));
        assert!(!CompiledMatch::prefix("/api/", false).is_match("/ap"));
        assert!(CompiledMatch::suffix(".json", false).is_match("/a.json"));
        assert!(!CompiledMatch::suffix(".json", false).is_match("json"));
        assert!(CompiledMatch::contains("admin", false).is_match("/x/admin/y"));
        assert!(!CompiledMatch::contains("admin", false).is_match("/x/ADMIN/y"));
    }

    #[test]
    fn segment_prefix_matches_whole_segments_only() {
        let foo = CompiledMatch::segment_prefix("/foo", false);
        for path in ["/foo", "/foo/", "/foo/bar"] {
            assert!(foo.is_match(path), "{path}");
        }
        for path in ["/foobar", "/fo", "/"] {
            assert!(!foo.is_match(path), "{path}");
        }
        // A trailing slash in the pattern changes nothing; "/" matches everything.
        assert!(CompiledMatch::segment_prefix("/foo/", false).is_match("/foo"));
        assert!(CompiledMatch::segment_prefix("/", false).is_match("/anything"));
        assert!(CompiledMatch::segment_prefix("/FOO", true).is_match("/foo/x"));
    }

    #[test]
    fn ignore_case_applies_to_every_operator() {
        assert!(CompiledMatch::exact("GET", true).is_match("get"));
        assert!(CompiledMatch::prefix("/API", true).is_match("/api/v1"));
        assert!(CompiledMatch::suffix(".JSON", true).is_match("/a.json"));
        assert!(CompiledMatch::contains("Admin", true).is_match("/x/ADMIN/y"));
        assert!(CompiledMatch::regex("/v[0-9]+", true).unwrap().is_match("/V2"));
    }

    #[test]
    fn non_ascii_values_never_split_a_character() {
        // "é" is two bytes: a byte-based prefix/suffix slice must not panic or match half of it.
        assert!(!CompiledMatch::prefix("a", true).is_match("é"));
        assert!(!CompiledMatch::suffix("a", true).is_match("é"));
        assert!(CompiledMatch::suffix("É", false).is_match("xÉ"));
    }

    #[test]
    fn regex_matches_the_whole_value() {
        let m = CompiledMatch::regex("/v[0-9]+", false).unwrap();
        assert!(m.is_match("/v12"));
        assert!(!m.is_match("/v12/users"));
        assert!(!m.is_match("x/v1"));
        // An alternation must not escape the anchors.
        let alt = CompiledMatch::regex("a|b", false).unwrap();
        assert!(!alt.is_match("ab"));
    }

    #[test]
    fn regex_errors_are_one_line_reasons() {
        assert_eq!(CompiledMatch::regex("(abc", false).unwrap_err(), "unclosed group");
        let huge = CompiledMatch::regex("(?:[a-z]{1,100}){1,100}\\w{1000}", false).unwrap_err();
        assert!(huge.starts_with("compiles to more than"), "{huge}");
    }
}
