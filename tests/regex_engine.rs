//! The module's regex engine (src/regex_engine.rs: regex-automata's lazy DFA and PikeVM) against the `regex`
//! crate, which the rules language documents: the same verdict on each pattern, and on every value the same
//! answer to "does it match", the same groups and the same rewrite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use rulefilter::matcher::{CompiledMatch, REGEX_SIZE_LIMIT};
use rulefilter::regex_engine::Regex;

/// Patterns of every kind the language allows: the shipped documents', Unicode classes and case folding, word
/// boundaries (which make the lazy DFA give up on non-ASCII text), empty matches, alternations and repetitions.
const PATTERNS: &[&str] = &[
    "/(healthz|readyz|livez)",
    ".*(sqlmap|nikto|masscan|zgrab|nuclei).*",
    ".*/(wp-admin|wp-login\\.php|xmlrpc\\.php|\\.env|\\.git)(/.*)?",
    "www\\.(?P<apex>.+)",
    "/blog/(?P<year>[0-9]{4})/(?P<slug>[a-z0-9-]+)\\.html",
    "/help(?P<rest>/.*)?",
    "/api/v(?P<version>0|[4-9]|[1-9][0-9]+)(/.*)?",
    "https://([a-z0-9-]+\\.)*example\\.com",
    "\\b\\w+\\b",
    "\\w+\\s\\w+",
    ".*\\bstraße\\b.*",
    "(?i)straße",
    "(?i)ǅ|σ+",
    "\\d+",
    "(?-u:\\w)+",
    "(?-u:\\b)x(?-u:\\b)",
    "[^/]*",
    "",
    "a*",
    "(a|ab)(c|bcd)(d*)",
    "(?:(a)|b)+",
    "(?s).{2,4}",
    "é?",
    "(?m)^x$",
    "[[:alpha:]]+[[:digit:]]?",
    "\\B.\\B",
];

/// Values mixing ASCII, Latin, Greek, combining marks and emoji, with word boundaries in odd places.
const VALUES: &[&str] = &[
    "",
    "/healthz",
    "/blog/2019/old-post.html",
    "/api/v12/users",
    "www.example.org",
    "https://a.b.example.com",
    "Mozilla/5.0 nikto",
    "straße",
    "STRASSE",
    "Straße 12",
    "ΣΑΣ σας",
    "ǆ ǅ",
    "a ab abcd",
    "x\ny",
    "é",
    "e\u{301}",
    "日本語 text",
    "🦀a🦀",
    "٣٤٥",
    "/help",
    "/help/faq",
    "abcd",
    "b a b",
];

/// A few thousand more values, drawn from pieces of the ones above (deterministic).
fn more_values() -> Vec<String> {
    let pieces = ["a", "b", "/", "é", "ß", " ", "x", "1", "σ", "🦀", "\u{301}", "ab", "cd", "www.", ".com", "-"];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..800)
        .map(|_| {
            let mut value = String::new();
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            for _ in 0..(state >> 60) {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                value.push_str(pieces[(state >> 59) as usize % pieces.len()]);
            }
            value
        })
        .collect()
}

fn groups_of(theirs: &regex::Captures<'_>) -> Vec<Option<String>> {
    theirs.iter().map(|m| m.map(|m| m.as_str().to_owned())).collect()
}

#[test]
fn matches_groups_and_rewrites_are_the_regex_crates() {
    let mut values: Vec<String> = VALUES.iter().map(|v| (*v).to_owned()).collect();
    values.extend(more_values());
    for pattern in PATTERNS {
        for ignore_case in [false, true] {
            let ours = Regex::new(pattern, ignore_case).unwrap();
            let theirs = regex::RegexBuilder::new(pattern).case_insensitive(ignore_case).build().unwrap();
            let anchored = format!("^(?:{pattern})$");
            let ours_anchored = Regex::new(&anchored, ignore_case).unwrap();
            let theirs_anchored = regex::RegexBuilder::new(&anchored).case_insensitive(ignore_case).build().unwrap();
            assert_eq!(ours.captures_len(), theirs.captures_len(), "{pattern}");
            for value in &values {
                let what = format!("{pattern:?} (ignore_case {ignore_case}) on {value:?}");
                assert_eq!(ours.is_match(value), theirs.is_match(value), "{what}");
                assert_eq!(ours_anchored.is_match(value), theirs_anchored.is_match(value), "anchored {what}");
                let our_groups = ours
                    .captures(value)
                    .map(|c| (0..ours.captures_len()).map(|i| c.get(i).map(str::to_owned)).collect::<Vec<_>>());
                assert_eq!(our_groups, theirs.captures(value).as_ref().map(groups_of), "{what}");
                for replacement in ["<$0>", "${1}-", "$$", "x"] {
                    assert_eq!(ours.replace_all(value, replacement), theirs.replace_all(value, replacement), "{what}");
                }
            }
        }
    }
}

#[test]
fn named_groups_are_found_by_name() {
    let ours = Regex::new("/blog/(?P<year>[0-9]{4})/(?P<slug>[a-z0-9-]+)", false).unwrap();
    let found = ours.captures("/blog/2019/old-post").unwrap();
    assert_eq!((found.name("year"), found.name("slug"), found.name("nope")), (Some("2019"), Some("old-post"), None));
    let either = Regex::new("(?P<a>x)|(?P<b>y)", false).unwrap();
    assert_eq!(either.captures("y").map(|c| (c.name("a"), c.name("b"))), Some((None, Some("y"))));
}

/// A condition regex is refused exactly when the regex crate refuses it: syntax errors with the same reason,
/// and the size limit, on patterns on both sides of it.
#[test]
fn the_same_patterns_are_refused_for_the_same_reasons() {
    for pattern in ["(abc", "a{2,1}", "[z-a]", "\\", "(?P<n>a)(?P<n>b)", "(?z)", "+a"] {
        let Err(ours) = CompiledMatch::regex(pattern, false).map(|_| ()) else { panic!("{pattern} was accepted") };
        let theirs = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap_err().to_string();
        assert!(theirs.contains(&ours), "{pattern}: ours {ours:?}, theirs {theirs}");
    }
    for pattern in
        ["\\w{1,8}", "\\w{1,20}", "(?:[a-z]{1,100}){1,100}", "\\w{1000}", "(?i)\\w{100}", "[^a]{200}", ".{3000}"]
    {
        let ours = CompiledMatch::regex(pattern, false).map(|m| m.as_regex().map(|_| ()));
        let theirs = regex::RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(REGEX_SIZE_LIMIT).build();
        assert_eq!(ours.is_ok(), theirs.is_ok(), "{pattern}: ours {ours:?}, theirs {:?}", theirs.err());
        if let Err(reason) = ours {
            assert!(reason.starts_with("compiles to more than"), "{pattern}: {reason}");
        }
    }
}

/// A `\b` next to non-ASCII text makes the lazy DFA give up; the PikeVM must answer then.
#[test]
fn word_boundaries_hold_on_non_ascii_text() {
    let word = Regex::new("^(?:.*\\bstraße\\b.*)$", false).unwrap();
    assert!(word.is_match("die straße hier"));
    assert!(!word.is_match("diestraße"));
    let greek = Regex::new("\\bσας\\b", false).unwrap();
    assert!(greek.is_match("ΣΑΣ σας") && !greek.is_match("ΣΑΣσας"));
}
