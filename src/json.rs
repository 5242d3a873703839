//! The text the module receives, read as JSON: what istiod hands it (the compact JSON of `pluginConfig`) and
//! what `rulefilter manifest --envoy` writes for a plain Envoy.
//!
//! [`parse`] builds a [`Json`] tree with serde_json's parser, which is linear in the text, after a
//! linear scan has refused nesting deeper than the caller allows ([`check_depth`]): serde_json's own limit (128)
//! would do for time, but the scan names the bound and the place. Keys keep their written order, so problems
//! are reported in the order the document was written; a key given twice in one object is refused (see
//! [`parse`]).

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value. Objects keep their keys in the written order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// A JSON number as serde_json reads it: a whole number when it is one, else a double.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl Json {
    /// The value of `key` when this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// How deeply arrays and objects nest (a scalar: 0).
    pub fn depth(&self) -> usize {
        match self {
            Json::Array(items) => 1 + items.iter().map(Json::depth).max().unwrap_or(0),
            Json::Object(entries) => 1 + entries.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }
}

/// Why a text is not one JSON value: serde_json's message, and where (line and column from 1), when it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub position: Option<(usize, usize)>,
}

/// Reads `text` as exactly one JSON value (blanks around it allowed).
///
/// A key written twice in one object is refused, where the second one ends. Nothing that reaches the module
/// from Istio holds one (a protobuf `Struct` is a map; istiod writes each key once), and readers disagree on
/// them (serde_json and Go's encoding/json keep the last, protojson and serde_yaml refuse): a rule silently
/// replaced by a later one of the same key is worse than a clear refusal.
pub fn parse(text: &str) -> Result<Json, SyntaxError> {
    serde_json::from_str(text).map_err(|e: serde_json::Error| {
        let position = (e.line() > 0).then(|| (e.line(), e.column()));
        // serde_json appends " at line L column C": the position is kept apart.
        let mut message = e.to_string();
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        SyntaxError { message, position }
    })
}

/// Where a text first nests deeper than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    pub limit: usize,
    /// Line and column (from 1, in characters) of the bracket that went past the limit.
    pub line: usize,
    pub column: usize,
}

/// Checks that the arrays and objects of a JSON text nest at most `limit` deep, in one pass over its bytes
/// (brackets inside strings do not count). On a text that is not JSON it may count anything; [`parse`] then
/// refuses the text anyway.
pub fn check_depth(text: &str, limit: usize) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (at, byte) in text.bytes().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(too_deep(text, at, limit));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn too_deep(text: &str, at: usize, limit: usize) -> TooDeep {
    let (line, column) = place(text, at);
    TooDeep { limit, line, column }
}

/// Line and column (from 1, in characters) of a byte offset.
pub(crate) fn place(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    (line, before.get(line_start..).unwrap_or_default().chars().count() + 1)
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(Number::Unsigned(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(Number::Signed(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Number(Number::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        // Only objects of more than a few keys pay for the set.
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value()?;
            let repeated = if entries.len() < 8 {
                entries.iter().any(|(k, _): &(String, Json)| *k == key)
            } else {
                if seen.is_empty() {
                    seen.extend(entries.iter().map(|(k, _)| k.clone()));
                }
                !seen.insert(key.clone())
            };
            if repeated {
                return Err(de::Error::custom(format_args!(
                    "the key {key:?} is given twice in one object; give it once (readers disagree on which one counts)"
                )));
            }
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_order_and_numbers_their_kind() {
        let value = parse(r#" {"b": [1, -2, 2.5, 5.0], "a": {"x": null, "y": true}} "#).unwrap();
        let Json::Object(entries) = &value else { panic!("{value:?}") };
        assert_eq!(entries.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(
            value.get("b"),
            Some(&Json::Array(vec![
                Json::Number(Number::Unsigned(1)),
                Json::Number(Number::Signed(-2)),
                Json::Number(Number::Float(2.5)),
                Json::Number(Number::Float(5.0)),
            ]))
        );
        assert_eq!(value.depth(), 2);
    }

    #[test]
    fn a_key_given_twice_is_refused_where_the_second_ends() {
        let error = parse("{\"a\": 1,\n \"a\": 2}").unwrap_err();
        assert!(error.message.starts_with("the key \"a\" is given twice in one object"), "{error:?}");
        assert_eq!(error.position, Some((2, 8)));
        // Past the few keys compared one by one, the set finds it too.
        let many: Vec<String> = (0..20).map(|i| format!("\"k{i}\": {i}")).collect();
        let text = format!("{{{}, \"k3\": 0}}", many.join(", "));
        assert!(parse(&text).unwrap_err().message.contains("\"k3\" is given twice"));
        assert!(parse(&format!("{{{}}}", many.join(", "))).is_ok());
        // The same key in two objects is no repetition.
        assert!(parse(r#"[{"a": 1}, {"a": 2}]"#).is_ok());
    }

    #[test]
    fn c1_controls_and_line_separators_inside_strings_are_text() {
        let text = "{\"m\": \"a\u{85}b\u{9f}c\u{2028}d\"}";
        assert_eq!(parse(text).unwrap().get("m").and_then(Json::as_str), Some("a\u{85}b\u{9f}c\u{2028}d"));
    }

    #[test]
    fn depth_is_counted_outside_strings() {
        assert!(check_depth("[[[]]]", 3).is_ok());
        assert_eq!(check_depth("{\"a\":\n [[[]]]}", 3), Err(TooDeep { limit: 3, line: 2, column: 4 }));
        assert!(check_depth(r#"{"a": "[[[[\"[[[["}"#, 1).is_ok());
        assert!(check_depth(r#"{"a": "\\", "b": [[1]]}"#, 2).is_err());
    }

    #[test]
    fn syntax_errors_say_where() {
        let error = parse("{\"a\": [1,}").unwrap_err();
        assert_eq!(error.position, Some((1, 10)), "{error:?}");
        assert!(!error.message.contains(" at line "), "{error:?}");
        assert!(parse("{} {}").is_err());
        assert!(parse("").is_err());
    }
}
