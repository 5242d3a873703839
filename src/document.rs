//! One verdict for every rules document: the text the module receives becomes rules or the reasons it
//! cannot, by one function, wherever it runs.
//!
//! [`load`] is what `on_configure` runs on its configuration, and what every `rulefilter` command and the
//! admission webhook run on the same bytes, so a document the tools call valid is exactly one the module
//! accepts, with the same messages. The module only ever receives JSON: istiod hands it the compact JSON of
//! `pluginConfig`, and for a plain Envoy `rulefilter manifest --envoy` writes the same. The tools read YAML
//! and hand this function the JSON istiod would make of it ([`crate::yaml_document`]). It checks, in order,
//! each step bounded in time by the one before:
//!
//! 1. size: at most [`MAX_DOCUMENT_BYTES`];
//! 2. blank text: only spaces, tabs and line breaks is an empty document, no rules (the filter passes traffic
//!    through), as is `null` and `{}`;
//! 3. nesting: at most [`MAX_DOCUMENT_DEPTH`] levels, counted in one linear pass before any tree is built;
//! 4. one JSON value, each key once per object ([`crate::json::parse`]); YAML is refused with the command
//!    that writes JSON from it;
//! 5. reading the fields and compiling ([`crate::compile::compile`]).

use crate::compile::{self, Environment};
use crate::error::{ConfigError, ConfigErrors};
use crate::json::{self, Json};
use crate::limits::{MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH};
use crate::RuleSet;

/// The verdict on a rules document's text: the rules the module would run, or every reason it refuses them.
///
/// `env` resolves `${env.NAME}` (inside Envoy: the plugin's `vmConfig.env`). The errors are those the module
/// logs, one line each; a problem with the text as a whole is one error for the document, its line and
/// column in the message.
pub fn load(text: &str, env: &dyn Environment) -> Result<RuleSet, ConfigErrors> {
    let document = read(text).map_err(TextError::into_errors)?;
    compile::compile(&document, env)
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

/// The text is no readable rules document: too large, too deep, or not one JSON value (YAML, say). Nothing of
/// it was compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextError {
    /// One line, as the module logs it.
    pub message: String,
    /// Where in the text (line and column from 1), when the problem has a place.
    pub position: Option<(usize, usize)>,
}

impl TextError {
    pub(crate) fn at(message: String, position: Option<(usize, usize)>) -> TextError {
        TextError { message, position }
    }

    /// More than [`MAX_DOCUMENT_BYTES`].
    pub(crate) fn too_large(bytes: usize) -> TextError {
        TextError::at(format!("{bytes} bytes; at most {MAX_DOCUMENT_BYTES} are accepted"), None)
    }

    /// Nested deeper than `limit`, first at `line` and `column`.
    pub(crate) fn too_deep(limit: usize, line: usize, column: usize) -> TextError {
        let message = format!(
            "nested more than {limit} levels deep (at line {line} column {column}); no valid rules document nests deeper (blocks nest at most {} deep), so the text is refused before it is parsed",
            crate::limits::MAX_NESTING,
        );
        TextError::at(message, Some((line, column)))
    }

    /// The same problem as [`load`] reports it: one error about the document as a whole.
    pub fn into_errors(self) -> ConfigErrors {
        ConfigErrors(vec![ConfigError::document("", self.message)])
    }
}

/// What to do with YAML, said wherever the module refuses text that is not JSON.
const JSON_ONLY: &str = "the module reads JSON: what istiod makes of a WasmPlugin's pluginConfig, or for a plain \
                         Envoy the configuration `rulefilter manifest --envoy RULES.yaml` writes";

/// Steps 1 to 4 of [`load`]: the text as one JSON value, `Null` for an empty document. Tools that place
/// errors in a file use it with [`crate::compile::compile`]; together they are exactly [`load`].
pub fn read(text: &str) -> Result<Json, TextError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(TextError::too_large(text.len()));
    }
    let Some(start) = text.find(|c| !matches!(c, ' ' | '\t' | '\r' | '\n')) else { return Ok(Json::Null) };
    if let Err(deep) = json::check_depth(text, MAX_DOCUMENT_DEPTH) {
        return Err(TextError::too_deep(deep.limit, deep.line, deep.column));
    }
    json::parse(text).map_err(|error| {
        let first = text.get(start..).and_then(|rest| rest.chars().next()).unwrap_or_default();
        // What no JSON text starts with: YAML (`request:`, `# comment`, `- name`), or a stray character.
        if !matches!(first, '{' | '[' | '"' | '-' | '0'..='9' | 't' | 'f' | 'n') || starts_like_yaml(text, start) {
            let (line, column) = json::place(text, start);
            let shown =
                if first.is_ascii_graphic() { format!("`{first}`") } else { format!("U+{:04X}", u32::from(first)) };
            let message = format!("not JSON (line {line} column {column} starts with {shown}; YAML?): {JSON_ONLY}");
            TextError::at(message, Some((line, column)))
        } else {
            let place = error.position.map(|(l, c)| format!(" at line {l} column {c}")).unwrap_or_default();
            TextError::at(format!("not valid JSON: {}{place}; {JSON_ONLY}", error.message), error.position)
        }
    })
}

/// `- item`, `null: x`, `true: x`, `no: x`… at the start: YAML that happens to start like JSON.
fn starts_like_yaml(text: &str, start: usize) -> bool {
    let rest = text.get(start..).unwrap_or_default();
    let word: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    rest.starts_with("- ")
        || rest.starts_with("-\n")
        || rest.starts_with("---")
        || rest.get(word.len()..).is_some_and(|after| !word.is_empty() && after.starts_with(':'))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn verdict(text: &str) -> Result<usize, String> {
        load(text, &HashMap::new()).map(|rules| rules.rule_count(crate::Phase::Request)).map_err(|e| e.to_string())
    }

    #[test]
    fn blank_text_null_and_an_empty_object_are_an_empty_document() {
        for blank in ["", " ", "\t", " \n\t\r\n", "null", "{}", " {} \n"] {
            assert_eq!(verdict(blank), Ok(0), "{blank:?}");
        }
        let refused = verdict("\n \u{a0}\n").unwrap_err();
        assert!(refused.contains("line 2 column 2 starts with U+00A0"), "{refused}");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused() {
        let refused = load_bytes(b"{\"request\": [\xff]}", &HashMap::new()).unwrap_err().to_string();
        assert_eq!(refused, "document: not UTF-8 text: invalid byte at offset 13");
    }

    #[test]
    fn yaml_is_refused_in_one_line_that_says_how_to_write_json() {
        for yaml in ["request: []\n", "# rules\nrequest: []\n", "- name: a\n", "---\nrequest: []\n", "null: 1\n"] {
            let refused = verdict(yaml).unwrap_err();
            assert!(refused.starts_with("document: not JSON (line "), "{yaml:?}: {refused}");
            assert!(refused.contains("rulefilter manifest --envoy"), "{refused}");
            assert!(!refused.contains('\n'), "{refused}");
        }
        // YAML's flow style is no JSON either: the parser's place, and the same advice.
        let refused = verdict("{request: []}").unwrap_err();
        assert!(refused.starts_with("document: not valid JSON: key must be a string at line 1 column 2;"), "{refused}");
        assert!(refused.contains("rulefilter manifest --envoy"), "{refused}");
    }

    #[test]
    fn a_second_value_is_refused() {
        let refused = verdict("{\"request\": []} {\"response\": []}").unwrap_err();
        assert!(refused.starts_with("document: not valid JSON: trailing characters at line 1 column 17"), "{refused}");
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
        let error = read("{\"request\":\n  [{\"name\": [\"x\"\n").unwrap_err();
        assert!(error.message.starts_with("not valid JSON: "), "{error:?}");
        assert!(error.position.is_some(), "{error:?}");
    }
}
