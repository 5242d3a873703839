//! Whether a `host` condition compares the whole `:authority` (`example.com:8443`) or only the host name
//! before its port.
//!
//! The port counts when the pattern itself spells out a `:` that can be matched: in a plain test, a `:` that is
//! not inside an IPv6 address's brackets (`example.com:8443`, but not `[::1]`); in a regex, a `:` written as a
//! character of its own (`api\.example\.com:8443`, `example\.com(:8443)?`). A `:` that a regex can match only
//! through a class of several characters does not make the port count: `[^:]+\.example\.com`,
//! `.*\.example\.com` and `[^/]+` describe host names, and compare the host without its port.

use regex_syntax::hir::{Hir, HirKind};

use crate::config::MatchFields;

/// Whether the test in `fields` (a `host` condition's) compares the port too.
pub fn compares_port(fields: &MatchFields) -> bool {
    let mut literals = [&fields.exact, &fields.prefix, &fields.suffix, &fields.contains].into_iter().flatten();
    literals.any(|text| literal_names_port(text)) || fields.regex.as_deref().is_some_and(regex_names_port)
}

/// A `:` after an IPv6 address's closing `]`, or anywhere when there is no bracket at all.
fn literal_names_port(text: &str) -> bool {
    match text.rfind(']') {
        Some(end) => text.get(end..).is_some_and(|after| after.contains(':')),
        None => !text.starts_with('[') && text.contains(':'),
    }
}

/// Whether the regex can match a `:` it writes as a character of its own. A pattern that does not parse says
/// no: compiling it reports the error.
fn regex_names_port(pattern: &str) -> bool {
    regex_syntax::ParserBuilder::new().build().parse(pattern).is_ok_and(|tree| has_colon(&tree))
}

/// Whether a literal holds a `:` (a one-character class such as `[:]` is a literal too). The parser's nesting
/// limit bounds the recursion.
fn has_colon(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Literal(literal) => literal.0.contains(&b':'),
        HirKind::Empty | HirKind::Class(_) | HirKind::Look(_) => false,
        HirKind::Repetition(repetition) => has_colon(&repetition.sub),
        HirKind::Capture(capture) => has_colon(&capture.sub),
        HirKind::Concat(parts) | HirKind::Alternation(parts) => parts.iter().any(has_colon),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(apply: impl FnOnce(&mut MatchFields, String), text: &str) -> bool {
        let mut fields = MatchFields::default();
        apply(&mut fields, text.to_owned());
        compares_port(&fields)
    }

    fn regex(pattern: &str) -> bool {
        with(|f, t| f.regex = Some(t), pattern)
    }

    #[test]
    fn a_colon_in_a_class_of_several_characters_leaves_the_port_out() {
        for pattern in [r"[^:]+\.example\.com", r".*\.example\.com", r"[^/]+", r"(?i)[a-z0-9.-]+", r"[^:]+(?:\.local)?"]
        {
            assert!(!regex(pattern), "{pattern}");
        }
    }

    #[test]
    fn a_colon_of_its_own_makes_the_port_count() {
        for pattern in
            [r"api\.example\.com:8443", r"example\.com(:8443)?", r"[^:]+:[0-9]+", r"a[:]b", r"a\x3Ab", r"(?i)x|y:1"]
        {
            assert!(regex(pattern), "{pattern}");
        }
    }

    #[test]
    fn plain_tests_count_the_port_after_an_ipv6_address() {
        assert!(with(|f, t| f.exact = Some(t), "example.com:8080"));
        assert!(with(|f, t| f.suffix = Some(t), ":8443"));
        assert!(with(|f, t| f.exact = Some(t), "[::1]:8080"));
        assert!(!with(|f, t| f.exact = Some(t), "[::1]"));
        assert!(!with(|f, t| f.prefix = Some(t), "[2001:db8"));
        assert!(!with(|f, t| f.exact = Some(t), "example.com"));
    }

    #[test]
    fn an_unparsable_regex_is_left_to_compilation() {
        assert!(!regex("(:"));
    }
}
