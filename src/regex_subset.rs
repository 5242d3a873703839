//! The regex syntax the rules language supports: Rust's `regex` without Unicode property classes (`\p{…}`,
//! `\P{…}`, `\pL`). Their tables were a fifth of the module, so the module is built without them; this check
//! refuses them by name, with a reason, whichever regex features a build happens to have (the CLI, the module
//! and the tests must give one verdict on a document).

use regex_syntax::ast::{self, Ast, ClassSetItem, ClassUnicode, Visitor};

/// `Err(reason)` if `pattern` uses a class the rules language leaves out. A pattern that does not parse passes
/// here: the regex crate then reports its own syntax error.
pub fn check(pattern: &str) -> Result<(), String> {
    match ast::parse::Parser::new().parse(pattern) {
        Ok(tree) => check_parsed(&tree, pattern),
        Err(_) => Ok(()),
    }
}

/// [`check`] on a pattern already parsed (`tree` from `pattern`), so that a caller parses it once.
pub fn check_parsed(tree: &Ast, pattern: &str) -> Result<(), String> {
    ast::visit(tree, RefuseUnicodeClasses).map_err(|class| {
        let written = pattern.get(class.span.start.offset..class.span.end.offset).unwrap_or("\\p{…}");
        format!(
            "{written}: Unicode property classes (\\p{{…}}, \\P{{…}}) are not supported; list the characters \
             or ranges in a class such as [a-zà-ÿ], or use \\w, \\d or \\s (which are Unicode-aware)"
        )
    })
}

/// Stops at the first Unicode property class, inside a bracketed class or not.
struct RefuseUnicodeClasses;

impl Visitor for RefuseUnicodeClasses {
    type Output = ();
    type Err = ClassUnicode;

    fn finish(self) -> Result<(), ClassUnicode> {
        Ok(())
    }

    fn visit_pre(&mut self, ast: &Ast) -> Result<(), ClassUnicode> {
        match ast {
            Ast::ClassUnicode(class) => Err((**class).clone()),
            _ => Ok(()),
        }
    }

    fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), ClassUnicode> {
        match item {
            ClassSetItem::Unicode(class) => Err(class.clone()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_classes_are_refused_wherever_they_stand() {
        for pattern in ["\\p{Greek}+", "x\\P{L}", "\\pN", "[a\\p{Lu}]", "(?i)[[a-z]&&\\p{Latin}]", "a|(b\\p{Han})"] {
            let reason = check(pattern).expect_err(pattern);
            assert!(reason.contains("Unicode property classes"), "{pattern}: {reason}");
        }
        assert!(check("\\p{Greek}+").unwrap_err().starts_with("\\p{Greek}: "));
        assert!(check("[a\\pL]").unwrap_err().starts_with("\\pL: "));
    }

    #[test]
    fn the_documented_syntax_passes() {
        for pattern in [
            "/v[0-9]+",
            "\\d+\\w*\\s?\\b",
            "(?i)straße",
            "(?P<id>[^/]+)",
            "[[:alpha:]]+",
            "(?-u:\\w)",
            "\\\\p\\{x\\}",
            "[\\\\p]",
        ] {
            assert_eq!(check(pattern), Ok(()), "{pattern}");
        }
        // Syntax errors are the regex crate's to report.
        assert_eq!(check("(unclosed"), Ok(()));
    }
}
