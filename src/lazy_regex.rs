//! Condition regexes: checked when the document is compiled, built the first time a request reaches them.
//!
//! Building a regex (its NFA and one-pass DFA) is most of what compiling a document costs: 1,000
//! regex rules took 0.5–1.1 s per VM inside Envoy, paid in every worker on every configuration. Behind the
//! indexes most of those regexes never run, or run on a few paths. So a document's compilation only parses
//! each pattern (which finds every syntax error) and bounds the size its automaton can reach; the build itself
//! happens once per VM, at the first request that evaluates the condition, and is kept in the immutable rule
//! set. Requests still never compile anything after that: the cost is amortised, not per request.
//!
//! The verdict on a document stays what building every regex would give: a pattern whose automaton might come
//! near the size limit is built right away, so the limit is enforced exactly where it could bite, and the cheap
//! bound ([`automaton_bound`]) is tested to stay above what the NFA compiler measures.

use std::sync::OnceLock;

use regex_syntax::ast::Ast;
use regex_syntax::hir::translate::TranslatorBuilder;
use regex_syntax::hir::{Class, Hir, HirKind};

use crate::index::literal_prefixes;
use crate::limits::REGEX_SIZE_LIMIT;
use crate::regex_engine::{one_line, Regex};

/// A pattern anchored at both ends (`^(?:…)$`), valid and within the size limit, built on first use.
#[derive(Debug, Clone)]
pub struct LazyRegex {
    anchored: Box<str>,
    ignore_case: bool,
    /// The capture groups by index (0 is the whole match) with their names, known from the parse.
    group_names: Box<[Option<Box<str>>]>,
    /// The literal prefixes every match starts with, for the indexes (case-sensitive patterns only).
    prefixes: Option<Box<[Box<[u8]>]>>,
    /// `None` inside: the build failed after all (it cannot for a pattern that passed [`LazyRegex::new`]; a
    /// regex that cannot be built then matches nothing, and says so once).
    built: OnceLock<Option<Regex>>,
}

/// Builds past this many bytes of estimated automaton are made when the document is compiled, not lazily: half
/// the limit leaves the estimate room to be wrong by 2× before a verdict could change.
const LAZY_BELOW: usize = REGEX_SIZE_LIMIT / 2;

impl LazyRegex {
    /// Checks `pattern` (anchored at both ends by this call) as building it would, without building it unless
    /// it could be large. The error is the parser's or the compiler's reason, on one line.
    pub fn new(pattern: &str, ignore_case: bool) -> Result<LazyRegex, String> {
        let anchored = format!("^(?:{pattern})$");
        // Parsed once, for the subset check, the syntax, the groups, the size bound and the index keys.
        let ast = regex_syntax::ast::parse::Parser::new().parse(&anchored).map_err(|e| one_line(&e.to_string()))?;
        if !stays_inside_anchors(&ast, &anchored) {
            return Err("an unbalanced `)` ends the pattern early, so the anchors would hold for part of it only: \
                        balance the parentheses, or write a literal `)` as `\\)`"
                .to_owned());
        }
        crate::regex_subset::check_parsed(&ast, &anchored)?;
        let hir = TranslatorBuilder::new()
            .case_insensitive(ignore_case)
            .build()
            .translate(&anchored, &ast)
            .map_err(|e| one_line(&e.to_string()))?;
        let mut regex = LazyRegex {
            group_names: group_names(&hir),
            prefixes: if ignore_case { None } else { literal_prefixes(&hir).map(Vec::into_boxed_slice) },
            anchored: anchored.into(),
            ignore_case,
            built: OnceLock::new(),
        };
        if automaton_bound(&hir) >= LAZY_BELOW {
            let built = Regex::from_hir(&regex.anchored, &hir)?;
            regex.built = OnceLock::from(Some(built));
        }
        Ok(regex)
    }

    fn build(&self) -> Result<Regex, String> {
        Regex::new(&self.anchored, self.ignore_case)
    }

    /// The regex, built now if this is its first use.
    pub fn get(&self) -> Option<&Regex> {
        self.built
            .get_or_init(|| match self.build() {
                Ok(regex) => Some(regex),
                Err(e) => {
                    log::error!("the regex {:?} cannot be built ({e}); it matches nothing", self.anchored);
                    None
                }
            })
            .as_ref()
    }

    pub fn is_match(&self, value: &str) -> bool {
        self.get().is_some_and(|regex| regex.is_match(value))
    }

    /// The pattern as compiled, anchors included.
    pub fn as_str(&self) -> &str {
        &self.anchored
    }

    /// The literal prefixes every match starts with (see [`literal_prefixes`]); `None` for a case-insensitive
    /// pattern or one without a bounded set of them.
    pub fn literal_prefixes(&self) -> Option<&[Box<[u8]>]> {
        self.prefixes.as_deref()
    }

    pub fn group_names(&self) -> Vec<Option<String>> {
        self.group_names.iter().map(|name| name.as_deref().map(str::to_owned)).collect()
    }

    /// Whether the regex was built (tests and the bench check that compiling a document leaves it unbuilt).
    pub fn is_built(&self) -> bool {
        self.built.get().is_some()
    }
}

fn group_names(hir: &Hir) -> Box<[Option<Box<str>>]> {
    fn visit(hir: &Hir, names: &mut Vec<Option<Box<str>>>) {
        match hir.kind() {
            HirKind::Capture(capture) => {
                let index = capture.index as usize;
                if names.len() <= index {
                    names.resize(index + 1, None);
                }
                if let Some(slot) = names.get_mut(index) {
                    slot.clone_from(&capture.name);
                }
                visit(&capture.sub, names);
            }
            HirKind::Repetition(repetition) => visit(&repetition.sub, names),
            HirKind::Concat(subs) | HirKind::Alternation(subs) => subs.iter().for_each(|sub| visit(sub, names)),
            HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => {}
        }
    }
    // Group 0, the whole match, has no name.
    let mut names = vec![None];
    visit(hir, &mut names);
    names.into()
}

/// A generous bound on the bytes the NFA for `hir` takes (regex-automata's compiler checks the size limit as it
/// builds it). Every byte range of a UTF-8 sequence is a transition; every
/// node and every repeated copy adds states. Each is charged [`BYTES_PER_UNIT`], several times what a state or a
/// transition takes, so the bound stays above the real figure (the tests below check this against the
/// compiler on patterns of every kind).
pub fn automaton_bound(hir: &Hir) -> usize {
    units(hir).saturating_mul(BYTES_PER_UNIT).saturating_add(BYTES_FIXED)
}

const BYTES_PER_UNIT: usize = 64;
const BYTES_FIXED: usize = 4096;

fn units(hir: &Hir) -> usize {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 1,
        HirKind::Literal(literal) => literal.0.len() + 1,
        HirKind::Class(Class::Bytes(class)) => class.ranges().len() + 1,
        HirKind::Class(Class::Unicode(class)) => {
            let transitions: usize = class
                .ranges()
                .iter()
                .map(|range| {
                    regex_syntax::utf8::Utf8Sequences::new(range.start(), range.end())
                        .map(|seq| seq.len())
                        .sum::<usize>()
                })
                .sum();
            transitions + 1
        }
        HirKind::Capture(capture) => units(&capture.sub).saturating_add(2),
        HirKind::Repetition(repetition) => {
            let copies = repetition.max.unwrap_or(repetition.min).max(repetition.min).max(1) as usize + 1;
            copies.saturating_mul(units(&repetition.sub).saturating_add(2))
        }
        HirKind::Concat(subs) | HirKind::Alternation(subs) => {
            subs.iter().fold(subs.len(), |sum, sub| sum.saturating_add(units(sub)))
        }
    }
}

/// Whether the parse of `^(?:pattern)$` is those three parts, the group spanning the whole pattern. A pattern
/// with an unbalanced `)`, such as `a)|(b`, parses too, as `^(?:a)` or `(b)$`, and would match values that
/// merely start with `a`.
fn stays_inside_anchors(ast: &Ast, anchored: &str) -> bool {
    let Ast::Concat(concat) = ast else { return false };
    match concat.asts.as_slice() {
        [Ast::Assertion(_), Ast::Group(group), Ast::Assertion(_)] => {
            group.span.start.offset == 1 && group.span.end.offset + 1 == anchored.len()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the check, `a)|(b` compiles as `^(?:a)|(b)$` and matches anything that starts with `a`.
    #[test]
    fn a_pattern_cannot_close_the_anchoring_group() {
        for pattern in ["a)|(b", "a)(b", ")(", "x)|.*(y"] {
            let refused = LazyRegex::new(pattern, false).map(|_| ()).unwrap_err();
            assert!(refused.contains("unbalanced `)`"), "{pattern:?}: {refused}");
        }
        for pattern in ["a|b", "(a)|(b)", r"a\)", "[)]", "", "(?:a)(b)"] {
            assert!(LazyRegex::new(pattern, false).is_ok(), "{pattern:?}");
        }
        let either = LazyRegex::new("(a)|(b)", false).unwrap();
        assert!(either.is_match("a") && !either.is_match("abc"));
    }

    fn hir(anchored: &str) -> Hir {
        regex_syntax::ParserBuilder::new().build().parse(anchored).unwrap()
    }

    /// The bound is what makes a lazy build safe: were it below what the compiler counts, a pattern over the
    /// limit could pass compilation and fail at its first use. Patterns of every kind, small and near the limit.
    #[test]
    fn the_bound_stays_above_what_the_compiler_builds() {
        let patterns = [
            "/archive/7/(?P<year>[0-9]{4})/(?P<slug>[a-z0-9-]+)",
            "/api/v[2-3]/(checkout|payments)(/.*)?",
            ".*(sqlmap|nikto|masscan|zgrab|nuclei).*",
            "(?i).*(sqlmap|nikto|masscan).*",
            "https://([a-z0-9-]+\\.)*example\\.com",
            "\\w+",
            "\\w{1,20}@\\w{1,20}",
            "(?i)straße\\s+\\d{2,5}",
            "[^/]+/[^/]+",
            "(?s).{0,40}",
            "\\b\\w+\\b",
            "(?:[a-z]{1,100}){1,10}",
            "(?:\\w{1,10}){1,10}",
            "(a|b|c|d){50}",
            "[\\x{80}-\\x{10FFFF}]{3,9}",
            "(?i)[a-zà-ÿ]{1,30}",
            "(?-u:\\w){1,100}",
            "x*y+z?",
            "",
        ];
        for pattern in patterns {
            let anchored = format!("^(?:{pattern})$");
            let bound = automaton_bound(&hir(&anchored));
            let built = crate::regex_engine::nfa(&hir(&anchored), bound);
            assert!(built.is_ok(), "{pattern}: bound {bound} bytes, but {:?}", built.err());
        }
    }

    #[test]
    fn small_patterns_wait_for_their_first_use_and_large_ones_are_built_at_once() {
        let lazy = LazyRegex::new("/archive/7/(?P<year>[0-9]{4})/(?P<slug>[a-z0-9-]+)", false).unwrap();
        assert!(!lazy.is_built());
        assert_eq!(lazy.group_names(), [None, Some("year".to_owned()), Some("slug".to_owned())]);
        assert!(lazy.is_match("/archive/7/2019/old-post"));
        assert!(lazy.is_built());
        assert!(!lazy.is_match("/archive/7/2019/old-post/x"));
        // Near the limit: built (and refused or not) when the document is compiled, as before.
        let near = LazyRegex::new("\\w{1,8}", false).unwrap();
        assert!(near.is_built());
        assert!(LazyRegex::new("(?:[a-z]{1,100}){1,100}\\w{1000}", false).unwrap_err().starts_with("compiles to more"));
    }

    #[test]
    fn groups_are_named_as_the_regex_crate_names_them() {
        for pattern in ["(a)(?P<x>b)?(?:c)(d(?P<y>e))", "(?i)(?P<a>x)|(?P<b>y)", "no groups", "((((a))))"] {
            let lazy = LazyRegex::new(pattern, false).unwrap();
            let names: Vec<Option<String>> = lazy.group_names();
            let built: Vec<Option<String>> =
                regex::Regex::new(lazy.as_str()).unwrap().capture_names().map(|n| n.map(str::to_owned)).collect();
            assert_eq!(names, built, "{pattern}");
        }
    }

    #[test]
    fn syntax_errors_are_found_without_building() {
        assert_eq!(LazyRegex::new("(abc", false).unwrap_err(), "unclosed group");
        assert_eq!(
            LazyRegex::new("a{2,1}", false).unwrap_err(),
            "invalid repetition count range, the start must be <= the end"
        );
    }
}
