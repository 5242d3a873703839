//! Rules documents as people write them, in YAML (or JSON) files: read by the tools only, never by the module.
//!
//! The tools hand the module's verdict ([`crate::document::load`]) the very text the module would receive:
//! a JSON file as it is (a plain Envoy's `configuration` holds it as written), a YAML file as the compact JSON
//! istiod makes of it ([`crate::local::istio::document_json`]: numbers as doubles). Before YAML is parsed, the
//! text is checked as the module checks its own: size, then nesting in one linear pass (YAML parsers take time
//! quadratic in depth), then blank text; and it must be one YAML document.

use std::borrow::Cow;

use serde::Deserialize;
use serde_yaml::Value;

use crate::compile::Environment;
use crate::document::{self, TextError};
use crate::limits::{MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH};
use crate::{nesting, ConfigErrors, RuleSet};

/// The verdict the module gives on what the tools would hand it for the file's `text`.
pub fn load(text: &str, env: &dyn Environment) -> Result<RuleSet, ConfigErrors> {
    document::load(&module_text(text).map_err(TextError::into_errors)?, env)
}

/// The text the module receives for a file's `text`: a JSON text as it is (borrowed), a YAML one rendered as
/// istiod renders `pluginConfig` (owned; empty for an empty document).
pub fn module_text(text: &str) -> Result<Cow<'_, str>, TextError> {
    if is_json(text) {
        return Ok(Cow::Borrowed(text));
    }
    let value = read(text)?;
    if value.is_null() {
        return Ok(Cow::Owned(String::new()));
    }
    crate::local::istio::document_json(&value)
        .map(Cow::Owned)
        .map_err(|e| TextError::at(format!("the document {e}"), None))
}

/// Whether `text` is one JSON value (each key once or not: the module says so if not). JSON is YAML too, but
/// a YAML parser reads some JSON strings otherwise (U+0085 inside quotes is a line break to YAML 1.1).
pub fn is_json(text: &str) -> bool {
    text.len() <= MAX_DOCUMENT_BYTES && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// The file's text as one YAML value, `Null` for an empty document, after the checks above.
pub fn read(text: &str) -> Result<Value, TextError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(TextError::too_large(text.len()));
    }
    if let Err(deep) = nesting::check(text, MAX_DOCUMENT_DEPTH) {
        return Err(TextError::too_deep(deep.limit, deep.line, deep.column));
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
    fn yaml_reaches_the_module_as_istiods_json_and_json_as_written() {
        let yaml = "request:\n  - name: a\n    actions: [{respond: {status: 204}}]\n";
        assert_eq!(module_text(yaml).unwrap(), r#"{"request":[{"actions":[{"respond":{"status":204}}],"name":"a"}]}"#);
        let json = "{\"request\": [], \"version\": 1.0}";
        assert!(matches!(module_text(json).unwrap(), Cow::Borrowed(text) if text == json));
        assert_eq!(verdict(yaml), Ok(1));
    }

    #[test]
    fn blank_text_is_an_empty_document_and_unicode_spaces_are_not_blank() {
        for blank in ["", " ", "\t", " \n\t\r\n", "# only a comment\n", "---\n", "~", "null", "{}"] {
            assert_eq!(verdict(blank), Ok(0), "{blank:?}");
        }
        let refused = verdict("\n \u{a0}\n").unwrap_err();
        assert!(refused.contains("U+00A0 at line 2 column 2"), "{refused}");
        assert!(verdict("\u{2003}").unwrap_err().contains("U+2003"));
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
        let deep = format!("x: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let refused = verdict(&deep).unwrap_err();
        assert!(refused.contains(&format!("nested more than {MAX_DOCUMENT_DEPTH} levels deep")), "{refused}");
    }

    #[test]
    fn syntax_errors_carry_their_place() {
        let error = read("request:\n  - name: [x\n").unwrap_err();
        assert!(error.message.starts_with("not valid YAML or JSON: "), "{error:?}");
        assert!(error.position.is_some(), "{error:?}");
    }

    /// JSON files are read as JSON: a YAML parser would take U+0085 inside a string for a line break.
    #[test]
    fn c1_controls_inside_json_strings_round_trip() {
        let text = "{\"request\": [{\"name\": \"a\", \"actions\": [{\"respond\": {\"status\": 200, \"body\": \"x\u{85}y\u{9f}z\"}}]}]}";
        let rules = load(text, &HashMap::new()).unwrap();
        let request = crate::simulate::Request::get("/");
        let outcome = crate::simulate::run(&rules, &request, &crate::simulate::Response::ok());
        assert_eq!(outcome.response.body, "x\u{85}y\u{9f}z");
    }
}
