//! Reads the configuration types of [`crate::config`] (plain `#[derive(Deserialize)]` types) from a [`Json`]
//! value, with the path of every field that is wrong and every problem rather than the first.
//!
//! serde stops at the first error, and says where only with help: [`decode`] gives the types a deserializer of
//! its own that knows the path of each value it hands out, so an error leaves with its place
//! (`actions[0].respond.status`). To go on past it, the value is decoded again with that place skipped (a
//! skipped key is as if not written, a skipped item as if not in its list) until it decodes or too many
//! problems were found. A problem that only follows from an earlier skip (the field named `statsu` was
//! skipped, so `status` is missing) is not reported. Each pass is linear in the value and there are at most
//! [`MAX_PROBLEMS`] + 1 of them: a valid value takes one.
//!
//! A new field needs no code here: whatever serde can derive gets paths and every-problem reporting.

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::json::{Json, Number};

/// Most problems reported for one decoded value (a rule, the document's own fields); past them, the passes
/// stop. Each pass reads the value once, so this also bounds the time an invalid rule takes.
pub const MAX_PROBLEMS: usize = 16;

/// One problem: where (a dotted path from the decoded value, `""` for the value itself) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

/// Decodes `value` as a `T`. The value is `None` only when no skipping made it decodable (the value itself is
/// of the wrong kind, or a field it cannot do without is wrong); the problems are empty only when nothing was
/// skipped.
pub fn decode<'a, T: Deserialize<'a>>(value: &'a Json) -> (Option<T>, Vec<Problem>) {
    let mut skipped: Vec<Vec<Segment>> = Vec::new();
    let mut problems = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        let node = Node { value, path: Path::Root, skipped: &skipped };
        let error = match T::deserialize(node) {
            Ok(decoded) => return (Some(decoded), problems),
            Err(error) => error,
        };
        let at = error.at.unwrap_or_default();
        if !follows_from_a_skip(&at, &skipped) {
            problems.push(Problem { field: render(&at), message: error.message });
        }
        if at.is_empty() {
            break;
        }
        skipped.push(at);
    }
    (None, problems)
}

/// Whether an error at `at` may only be there because a part of that value was skipped: a field missing where
/// a misspelt key was skipped (`statsu`), a check across fields one of which was skipped.
fn follows_from_a_skip(at: &[Segment], skipped: &[Vec<Segment>]) -> bool {
    skipped.iter().any(|skip| skip.len() > at.len() && skip.starts_with(at))
}

/// One step of a path: a key of an object or an index into a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// `request_headers.set.x-a`, `actions[0].respond`: as [`crate::locate`] reads paths.
fn render(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// The path of the value being decoded, kept on the stack (no allocation until an error needs it).
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl Path<'_> {
    fn segments(&self) -> Vec<Segment> {
        match self {
            Path::Root => Vec::new(),
            Path::Key(parent, key) => {
                let mut segments = parent.segments();
                segments.push(Segment::Key((*key).to_owned()));
                segments
            }
            Path::Index(parent, index) => {
                let mut segments = parent.segments();
                segments.push(Segment::Index(*index));
                segments
            }
        }
    }

    fn is(&self, segments: &[Segment]) -> bool {
        match (self, segments.split_last()) {
            (Path::Root, None) => true,
            (Path::Key(parent, key), Some((Segment::Key(k), rest))) => k == key && parent.is(rest),
            (Path::Index(parent, index), Some((Segment::Index(i), rest))) => i == index && parent.is(rest),
            _ => false,
        }
    }

    fn is_skipped(&self, skipped: &[Vec<Segment>]) -> bool {
        skipped.iter().any(|skip| self.is(skip))
    }
}

/// A decoding error: serde's message, and the place once a value of the path has seen it pass.
#[derive(Debug)]
pub struct Error {
    at: Option<Vec<Segment>>,
    message: String,
}

impl Error {
    /// The innermost place an error passes through is where it is.
    fn at(mut self, path: &Path) -> Error {
        if self.at.is_none() {
            self.at = Some(path.segments());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Error {
        Error { at: None, message: message.to_string() }
    }
}

/// A value being decoded, and where it is.
struct Node<'a, 'p> {
    value: &'a Json,
    path: Path<'p>,
    skipped: &'p [Vec<Segment>],
}

impl<'de> Deserializer<'de> for Node<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let Node { value, path, skipped } = self;
        let result = match value {
            Json::Null => visitor.visit_unit(),
            Json::Bool(b) => visitor.visit_bool(*b),
            Json::Number(Number::Unsigned(n)) => visitor.visit_u64(*n),
            Json::Number(Number::Signed(n)) => visitor.visit_i64(*n),
            Json::Number(Number::Float(n)) => visitor.visit_f64(*n),
            Json::String(text) => visitor.visit_borrowed_str(text),
            Json::Array(items) => visitor.visit_seq(Items { items: items.iter().enumerate(), path, skipped }),
            Json::Object(entries) => {
                visitor.visit_map(Entries { entries: entries.iter(), pending: None, path, skipped })
            }
        };
        result.map_err(|e| e.at(&path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Json::Null => visitor.visit_none().map_err(|e: Error| e.at(&self.path)),
            _ => {
                let path = self.path;
                visitor.visit_some(self).map_err(|e| e.at(&path))
            }
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            // Unit variants, written as their names (`mode: dry_run`).
            Json::String(text) => {
                visitor.visit_enum(BorrowedStrDeserializer::<Error>::new(text)).map_err(|e| e.at(&self.path))
            }
            // No other kind of value is a variant: refused here, so a type's other visits are never compiled
            // (they would only refuse it the same way).
            other => Err(refused(other, &visitor).at(&self.path)),
        }
    }

    /// A struct is written as an object; serde would also take a list of its fields in order, which no
    /// document means.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let Node { value, path, skipped } = self;
        match value {
            Json::Object(entries) => visitor
                .visit_map(Entries { entries: entries.iter(), pending: None, path, skipped })
                .map_err(|e| e.at(&path)),
            // Refused here rather than through the visitor's own visits: the same message, and the derived
            // visitors' other visits (a struct as a list of its fields) are never compiled into the module.
            other => Err(refused(other, &visitor).at(&path)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        let path = self.path;
        visitor.visit_newtype_struct(self).map_err(|e| e.at(&path))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct seq
        tuple tuple_struct map identifier
    }
}

/// The error serde's default visits give a value of a kind the visitor does not take.
fn refused<'de, V: Visitor<'de>>(value: &Json, visitor: &V) -> Error {
    let unexpected = match value {
        Json::Null => de::Unexpected::Unit,
        Json::Bool(b) => de::Unexpected::Bool(*b),
        Json::Number(Number::Unsigned(n)) => de::Unexpected::Unsigned(*n),
        Json::Number(Number::Signed(n)) => de::Unexpected::Signed(*n),
        Json::Number(Number::Float(n)) => de::Unexpected::Float(*n),
        Json::String(text) => de::Unexpected::Str(text),
        Json::Array(_) => de::Unexpected::Seq,
        Json::Object(_) => de::Unexpected::Map,
    };
    <Error as de::Error>::invalid_type(unexpected, visitor)
}

/// A list's items, with their indexes, less the skipped ones.
struct Items<'de, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'de, Json>>,
    path: Path<'p>,
    skipped: &'p [Vec<Segment>],
}

impl<'de> SeqAccess<'de> for Items<'de, '_> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Error> {
        for (index, value) in self.items.by_ref() {
            let path = Path::Index(&self.path, index);
            if !self.skipped.is_empty() && path.is_skipped(self.skipped) {
                continue;
            }
            // (An error a type raises after its fields were read, about them together, is at the item.)
            return seed.deserialize(Node { value, path, skipped: self.skipped }).map(Some).map_err(|e| e.at(&path));
        }
        Ok(None)
    }
}

/// An object's entries in written order, less the skipped ones.
struct Entries<'de, 'p> {
    entries: std::slice::Iter<'de, (String, Json)>,
    /// The entry whose key was handed out and whose value comes next.
    pending: Option<&'de (String, Json)>,
    path: Path<'p>,
    skipped: &'p [Vec<Segment>],
}

impl<'de> MapAccess<'de> for Entries<'de, '_> {
    type Error = Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Error> {
        for entry in self.entries.by_ref() {
            let path = Path::Key(&self.path, &entry.0);
            if !self.skipped.is_empty() && path.is_skipped(self.skipped) {
                continue;
            }
            self.pending = Some(entry);
            // An unknown or misspelt key is a problem at the key's own path.
            return seed.deserialize(BorrowedStrDeserializer::new(&entry.0)).map(Some).map_err(|e: Error| e.at(&path));
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        let path = Path::Key(&self.path, key);
        seed.deserialize(Node { value, path, skipped: self.skipped }).map_err(|e| e.at(&path))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::json::parse;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        #[serde(default)]
        items: Vec<Inner>,
        #[serde(default)]
        map: BTreeMap<String, Inner>,
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        status: u16,
        #[serde(default)]
        note: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        DryRun,
    }

    fn problems(text: &str) -> Vec<String> {
        let json = parse(text).unwrap();
        decode::<Outer>(&json).1.into_iter().map(|p| format!("{}: {}", p.field, p.message)).collect()
    }

    #[test]
    fn a_valid_value_decodes_in_one_pass() {
        let json =
            parse(r#"{"name": "a", "items": [{"status": 200}], "map": {"x": {"status": 1}}, "mode": "dry_run"}"#)
                .unwrap();
        let (decoded, problems) = decode::<Outer>(&json);
        assert!(problems.is_empty(), "{problems:?}");
        let decoded = decoded.unwrap();
        assert_eq!((decoded.items.len(), decoded.map.len(), decoded.mode), (1, 1, Some(Mode::DryRun)));
    }

    #[test]
    fn every_problem_is_reported_with_its_path_in_written_order() {
        let found = problems(
            r#"{"name": "a", "nmae": 1, "items": [{"status": "x"}, {"status": 2, "nite": ""}],
                "map": {"k.1": {"status": 3, "note": 4}}, "mode": "dryrun"}"#,
        );
        assert_eq!(
            found,
            [
                "nmae: unknown field `nmae`, expected one of `name`, `items`, `map`, `mode`",
                "items[0].status: invalid type: string \"x\", expected u16",
                "items[1].nite: unknown field `nite`, expected `status` or `note`",
                "map.k.1.note: invalid type: integer `4`, expected a string",
                "mode: unknown variant `dryrun`, expected `dry_run`",
            ]
        );
    }

    #[test]
    fn what_only_follows_from_a_skip_is_not_reported() {
        // `statsu` skipped: that `status` is then missing is the same problem.
        assert_eq!(
            problems(r#"{"name": "a", "items": [{"statsu": 200}]}"#),
            ["items[0].statsu: unknown field `statsu`, expected `status` or `note`"]
        );
        // A field truly missing is reported, and the items after it still checked.
        assert_eq!(
            problems(r#"{"name": "a", "items": [{"note": 5}, {}]}"#),
            ["items[0].note: invalid type: integer `5`, expected a string", "items[1]: missing field `status`",]
        );
    }

    #[test]
    fn the_value_itself_of_the_wrong_kind_is_one_problem_at_the_root() {
        assert_eq!(problems("[1, 2]"), [": invalid type: sequence, expected struct Outer"]);
        assert_eq!(problems("{}"), [": missing field `name`"]);
    }

    #[test]
    fn problems_are_bounded() {
        let many: Vec<String> = (0..40).map(|i| format!("\"x{i}\": 1")).collect();
        let found = problems(&format!("{{\"name\": \"a\", {}}}", many.join(", ")));
        assert_eq!(found.len(), MAX_PROBLEMS);
    }
}
