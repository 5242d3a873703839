//! The compiled body part of a rule and of a body action, and how each is applied to a complete body.
//!
//! Built once from the document (see `compile`); a request only runs [`BodyRule::check`] and
//! [`BodyEdits::apply`] on the bytes the proxy held. JSON is parsed at most once per body, and only when a
//! rule tests or edits a JSON field.

use crate::regex_engine::Regex;
use serde_json::Value;

use super::json::{self, Pointer};
use super::limit::OverLimit;
use super::media;
use super::text;
use crate::matcher::CompiledMatch;

/// What a rule needs of a body before its actions run.
#[derive(Debug)]
pub struct BodyRule {
    /// Media type patterns (lower-case) the rule reads.
    pub content_types: Vec<Box<str>>,
    /// Most bytes held for this rule.
    pub max_bytes: usize,
    pub over_limit: OverLimit,
    /// All must hold.
    pub tests: Vec<BodyTest>,
}

/// One test on a body.
#[derive(Debug)]
pub struct BodyTest {
    /// Where it is written: `body.contains`, `body.json./user/role`.
    pub field: Box<str>,
    /// The test as written, for traces.
    pub wanted: Box<str>,
    pub kind: BodyTestKind,
}

#[derive(Debug)]
pub enum BodyTestKind {
    Contains(Box<str>),
    /// Searched anywhere in the body.
    Regex(Regex),
    /// A JSON field: present and passing `test` (or, with `present: false`, absent).
    Json {
        pointer: Pointer,
        test: FieldTest,
        invert: bool,
    },
}

/// A test on a JSON field's text.
#[derive(Debug)]
pub enum FieldTest {
    Matches(CompiledMatch),
    Present(bool),
}

/// A whole body, read once from the proxy for every rule that waits for it: its JSON is parsed on first need
/// and again only after an edit.
#[derive(Debug, Default)]
pub struct HeldBody {
    bytes: Vec<u8>,
    json: Option<Option<Value>>,
    /// An edit changed it: the proxy must be given the new body.
    changed: bool,
}

impl HeldBody {
    pub fn new(bytes: Vec<u8>) -> Self {
        HeldBody { bytes, json: None, changed: false }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether an edit changed the body since it was read.
    pub fn changed(&self) -> bool {
        self.changed
    }

    fn json(&mut self) -> Option<&Value> {
        let bytes = &self.bytes;
        self.json.get_or_insert_with(|| json::parse(bytes)).as_ref()
    }

    /// Applies `edits` (see [`BodyEdits::apply`]).
    pub fn edit(&mut self, edits: &BodyEdits, max_len: usize) -> Applied {
        let applied = edits.apply(&mut self.bytes, max_len);
        if applied.changed {
            self.changed = true;
            self.json = None;
        }
        applied
    }
}

impl BodyRule {
    /// Whether the rule reads a message of media type `media` (see [`media::media_type`]).
    pub fn reads_type(&self, media: &str) -> bool {
        self.content_types.iter().any(|pattern| media::type_matches(pattern, media))
    }

    /// `Ok` when every test holds of `body`; otherwise the first that fails, with why (for traces).
    pub fn check(&self, body: &mut HeldBody) -> Result<(), (String, String)> {
        for test in &self.tests {
            if let Err(reason) = test.check(body) {
                return Err((test.field.to_string(), reason));
            }
        }
        Ok(())
    }
}

impl BodyTest {
    fn check(&self, body: &mut HeldBody) -> Result<(), String> {
        let holds = match &self.kind {
            BodyTestKind::Contains(needle) => text::find(body.bytes(), needle.as_bytes()).is_some(),
            BodyTestKind::Regex(regex) => regex.is_match(&text::as_text(body.bytes())),
            BodyTestKind::Json { pointer, test, invert } => {
                let Some(document) = body.json() else {
                    return Err("the body is not JSON".to_owned());
                };
                let field = pointer.get(document);
                let passed = match (test, field) {
                    (FieldTest::Present(want), field) => field.is_some() == *want,
                    (FieldTest::Matches(_), None) => false,
                    (FieldTest::Matches(m), Some(value)) => m.is_match(&json::as_text(value)),
                };
                if passed != *invert {
                    return Ok(());
                }
                let got = field.map_or_else(|| "nothing".to_owned(), |v| crate::trace::quote(&json::as_text(v)));
                return Err(format!("got {got}, wanted {}", self.wanted));
            }
        };
        if holds {
            Ok(())
        } else {
            Err(format!("the body has no {}", self.wanted))
        }
    }
}

/// The changes of one `request_body` / `response_body` action.
#[derive(Debug, Default)]
pub struct BodyEdits {
    pub set: Option<Box<str>>,
    pub replace: Vec<(Box<str>, Box<str>)>,
    pub json_remove: Vec<Pointer>,
    pub json_set: Vec<(Pointer, Value)>,
}

/// What applying edits did, for traces and logs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The body changed.
    pub changed: bool,
    /// Edits that could not be made, one line each (not JSON, a pointer crossing a string…).
    pub skipped: Vec<String>,
}

impl BodyEdits {
    /// Applies the edits to `body` in order; no result of a step may pass `max_len` bytes (that step is then
    /// skipped and said so).
    pub fn apply(&self, body: &mut Vec<u8>, max_len: usize) -> Applied {
        let mut applied = Applied::default();
        if let Some(new) = &self.set {
            if new.len() <= max_len {
                *body = new.as_bytes().to_vec();
                applied.changed = true;
            } else {
                applied.skipped.push(format!("set: the new body is over {max_len} bytes"));
            }
        }
        for (from, to) in &self.replace {
            if let Some(new) = text::replace_all(body, from.as_bytes(), to.as_bytes(), max_len) {
                *body = new;
                applied.changed = true;
            }
        }
        if self.json_remove.is_empty() && self.json_set.is_empty() {
            return applied;
        }
        let Some(mut document) = json::parse(body) else {
            applied.skipped.push("json_remove/json_set: the body is not JSON".to_owned());
            return applied;
        };
        let mut edited = false;
        for pointer in &self.json_remove {
            edited |= pointer.remove(&mut document);
        }
        for (pointer, value) in &self.json_set {
            if pointer.set(&mut document, value.clone()) {
                edited = true;
            } else {
                applied.skipped.push(format!("json_set: no place for {pointer} in the body"));
            }
        }
        if edited {
            match serde_json::to_vec(&document) {
                Ok(bytes) if bytes.len() <= max_len => {
                    *body = bytes;
                    applied.changed = true;
                }
                _ => applied.skipped.push(format!("json edits: the edited body is over {max_len} bytes")),
            }
        }
        applied
    }

    /// Whether the edits need the body as JSON.
    pub fn edits_json(&self) -> bool {
        !self.json_remove.is_empty() || !self.json_set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn held(bytes: &[u8]) -> HeldBody {
        HeldBody::new(bytes.to_vec())
    }

    fn rule(tests: Vec<BodyTest>) -> BodyRule {
        BodyRule { content_types: vec!["application/json".into()], max_bytes: 100, over_limit: OverLimit::Pass, tests }
    }

    fn json_test(pointer: &str, test: FieldTest, invert: bool) -> BodyTest {
        BodyTest {
            field: format!("body.json.{pointer}").into(),
            wanted: "exact \"admin\"".into(),
            kind: BodyTestKind::Json { pointer: Pointer::parse(pointer).unwrap(), test, invert },
        }
    }

    #[test]
    fn json_fields_are_tested_by_pointer() {
        let admin =
            rule(vec![json_test("/user/role", FieldTest::Matches(CompiledMatch::exact("admin", false)), false)]);
        assert_eq!(admin.check(&mut held(br#"{"user":{"role":"admin"}}"#)), Ok(()));
        let (field, reason) = admin.check(&mut held(br#"{"user":{"role":"viewer"}}"#)).unwrap_err();
        assert_eq!(
            (field.as_str(), reason.as_str()),
            ("body.json./user/role", r#"got "viewer", wanted exact "admin""#)
        );
        let (_, reason) = admin.check(&mut held(b"role=admin")).unwrap_err();
        assert_eq!(reason, "the body is not JSON");
        let absent = rule(vec![json_test("/debug", FieldTest::Present(false), false)]);
        assert_eq!(absent.check(&mut held(br#"{"a":1}"#)), Ok(()));
        assert!(absent.check(&mut held(br#"{"debug":false}"#)).is_err());
    }

    #[test]
    fn text_tests_search_the_whole_body() {
        let contains = BodyTest {
            field: "body.contains".into(),
            wanted: "\"DROP\"".into(),
            kind: BodyTestKind::Contains("DROP".into()),
        };
        let regex = BodyTest {
            field: "body.regex".into(),
            wanted: "regex".into(),
            kind: BodyTestKind::Regex(Regex::new("[0-9]{4}-[0-9]{4}", false).unwrap()),
        };
        let both = rule(vec![contains, regex]);
        assert_eq!(both.check(&mut held(b"x DROP card 1234-5678 y")), Ok(()));
        assert_eq!(both.check(&mut held(b"x card 1234-5678")).unwrap_err().0, "body.contains");
        assert_eq!(both.check(&mut held(b"DROP card")).unwrap_err().0, "body.regex");
    }

    #[test]
    fn edits_apply_in_order_and_within_the_limit() {
        let edits = BodyEdits {
            replace: vec![("secret".into(), "[hidden]".into())],
            json_remove: vec![Pointer::parse("/password").unwrap()],
            json_set: vec![(Pointer::parse("/checked").unwrap(), json!(true))],
            ..BodyEdits::default()
        };
        let mut body = br#"{"note":"secret","password":"x"}"#.to_vec();
        let applied = edits.apply(&mut body, 1000);
        assert!(applied.changed && applied.skipped.is_empty(), "{applied:?}");
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({"note": "[hidden]", "checked": true}));

        let mut text_body = b"plain".to_vec();
        let applied = edits.apply(&mut text_body, 1000);
        assert_eq!(applied.skipped, vec!["json_remove/json_set: the body is not JSON".to_owned()]);
        assert_eq!(text_body, b"plain");

        let whole = BodyEdits { set: Some("a longer body".into()), ..BodyEdits::default() };
        let mut small = b"x".to_vec();
        assert!(!whole.apply(&mut small, 5).changed);
        assert_eq!(small, b"x");
    }
}
