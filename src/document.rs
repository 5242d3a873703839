//! One verdict for every rules document: the text the module receives becomes rules or the reasons it
//! cannot, by one function, wherever it runs.
//!
//! [`load`] is what `on_configure` runs on its configuration, and what every `rulefilter` command and the
//! admission webhook run on the same bytes, so a document the tools call valid is exactly one the module
//! accepts, with the same messages. It checks, in order, each step bounded in time by the one before:
//!
//! 1. size: at most [`MAX_DOCUMENT_BYTES`];
//! 2. nesting: at most [`MAX_DOCUMENT_DEPTH`] levels, measured in one linear pass before any tree is built
//!    (YAML parsers take time quadratic in depth);
//! 3. blank text: only spaces, tabs and line breaks is an empty document, no rules (the filter passes traffic
//!    through); text that merely looks blank (U+00A0 and other Unicode spaces are text to YAML) is refused;
//! 4. one YAML document (JSON is YAML): a second one after `---` is refused, never silently dropped;
//! 5. parsing and compiling ([`crate::compile::compile`]).

use serde::Deserialize;
use serde_yaml::Value;

use crate::compile::{self, Environment};
use crate::error::{ConfigError, ConfigErrors};
use crate::limits::{MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH};
use crate::nesting;
use crate::RuleSet;

/// The verdict on a rules document's text: the rules the module would run, or every reason it refuses them.
///
/// `env` resolves `${env.NAME}` (inside Envoy: the plugin's `vmConfig.env`). The errors are those the module
/// logs, one line each; a problem with the text as a whole is one error for the document, its line and
/// column in the message.
pub fn load(text: &str, env: &dyn Environment) -> Result<RuleSet, ConfigErrors> {
    let document = read(text).map_err(TextError::into_errors)?;
    compile::compile(document, env)
}

/// [`load`] for bytes as the proxy hands them over: text that is not UTF-8 is refused first.
pub fn load_bytes(bytes: &[u8], env: &dyn Environment) -> Result<RuleSet, ConfigErrors> {
    load(utf8(bytes).map_err(TextError::into_errors)?, env)
}

/// The bytes as text, or where they stop being UTF-8.
pub fn utf8(bytes: &[u8]) -> Result<&str, TextError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let message = format!("not UTF-8 text: invalid byte at offset {}", e.valid_up_to());
        TextError::at(message, None)
    })
}

/// The text is no readable rules document: too large, too deep, blank in a misleading way, several YAML
/// documents, or not YAML at all. Nothing of it was compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextError {
    /// One line, as the module logs it.
    pub message: String,
    /// Where in the text (line and column from 1), when the problem has a place.
    pub position: Option<(usize, usize)>,
}

impl TextError {
    fn at(message: String, position: Option<(usize, usize)>) -> TextError {
        TextError { message, position }
    }

    /// The same problem as [`load`] reports it: one error about the document as a whole.
    pub fn into_errors(self) -> ConfigErrors {
        ConfigErrors(vec![ConfigError::document("", self.message)])
    }
}

/// Steps 1 to 4 of [`load`]: the text as one YAML value, `Null` for an empty document. Tools that place
/// errors in a file use it with [`crate::compile::compile`]; together they are exactly [`load`].
pub fn read(text: &str) -> Result<Value, TextError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        let message = format!("{} bytes; at most {MAX_DOCUMENT_BYTES} are accepted", text.len());
        return Err(TextError::at(message, None));
    }
    if let Err(deep) = nesting::check(text, MAX_DOCUMENT_DEPTH) {
        let message = format!(
            "nested more than {} levels deep (at line {} column {}); no valid rules document nests deeper (blocks nest at most {} deep), so the text is refused before it is parsed",
            deep.limit,
            deep.line,
            deep.column,
            crate::limits::MAX_NESTING,
        );
        return Err(TextError::at(message, Some((deep.line, deep.column))));
    }
    if text.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
        return Ok(Value::Null);
    }
    if text.trim().is_empty() {
        return Err(misleading_blank(text));
    }
    let syntax = |e: serde_yaml::Error| {
        let position = e.location().map(|l| (l.line(), l.column()));
        TextError::at(format!("not valid YAML or JSON: {e}"), position)
    };
    let mut documents = serde_yaml::Deserializer::from_str(text);
    // An empty stream (only comments, say) yields no document at all.
    let Some(first) = documents.next() else { return Ok(Value::Null) };
    let value = Value::deserialize(first).map_err(syntax)?;
    // (After an error the iterator repeats it forever; it is only asked once more, here.)
    if documents.next().is_some() {
        let message = "more than one YAML document (`---` starts another); the module reads exactly one \
                       rules document: give each its own WasmPlugin, or merge their rules"
            .to_owned();
        return Err(TextError::at(message, None));
    }
    Ok(value)
}

/// Text blank to the eye whose "blank" characters are text to YAML (U+00A0 NO-BREAK SPACE, say).
fn misleading_blank(text: &str) -> TextError {
    let mut line = 1;
    let mut column = 1;
    for c in text.chars() {
        match c {
            '\n' => {
                line += 1;
                column = 1;
            }
            ' ' | '\t' | '\r' => column += 1,
            other => {
                let message = format!(
                    "the text is blank but for U+{:04X} at line {line} column {column}, which YAML reads as text, not space; an empty document (no rules) is written as nothing or `{{}}`",
                    u32::from(other)
                );
                return TextError::at(message, Some((line, column)));
            }
        }
    }
    TextError::at("the text is blank but for characters YAML reads as text".to_owned(), None)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn verdict(text: &str) -> Result<usize, String> {
        load(text, &HashMap::new()).map(|rules| rules.rule_count(crate::Phase::Request)).map_err(|e| e.to_string())
    }

    #[test]
    fn blank_text_is_an_empty_document_and_unicode_spaces_are_not_blank() {
        for blank in ["", " ", "\t", " \n\t\r\n", "# only a comment\n", "---\n", "~", "null"] {
            assert_eq!(verdict(blank), Ok(0), "{blank:?}");
        }
        let refused = verdict("\n \u{a0}\n").unwrap_err();
        assert!(refused.contains("U+00A0 at line 2 column 2"), "{refused}");
        assert!(verdict("\u{2003}").unwrap_err().contains("U+2003"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused() {
        let refused = load_bytes(b"request: [\xff]", &HashMap::new()).unwrap_err().to_string();
        assert_eq!(refused, "document: not UTF-8 text: invalid byte at offset 10");
    }

    #[test]
    fn a_second_document_is_refused() {
        let refused = verdict("request: []\n---\nresponse: []\n").unwrap_err();
        assert!(refused.starts_with("document: more than one YAML document"), "{refused}");
        assert!(verdict("---\n---\n").is_err());
        assert_eq!(verdict("---\nrequest: []\n...\n"), Ok(0));
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing_with_the_bound_named() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let refused = verdict(&deep).unwrap_err();
        assert!(refused.contains(&format!("nested more than {MAX_DOCUMENT_DEPTH} levels deep")), "{refused}");
        assert_eq!(read(&deep).unwrap_err().position, Some((1, MAX_DOCUMENT_DEPTH + 1)));
    }

    #[test]
    fn syntax_errors_carry_their_place() {
        let error = read("request:\n  - name: [x\n").unwrap_err();
        assert!(error.message.starts_with("not valid YAML or JSON: "), "{error:?}");
        assert!(error.position.is_some(), "{error:?}");
    }
}
