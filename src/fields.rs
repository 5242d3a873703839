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
        let Located { at, message } = *error.0;
        let at = at.unwrap_or_default();
        if !follows_from_a_skip(&at, &skipped) {
            problems.push(Problem { field: render(&at), message });
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
///
/// Boxed, as serde_json's is: every generic visit moves `Result`s of it, and one pointer moves (and fits beside
/// a `String`'s niche) where the six words of [`Located`] would be copied at each step.
#[derive(Debug)]
pub struct Error(Box<Located>);

#[derive(Debug)]
struct Located {
    at: Option<Vec<Segment>>,
    message: String,
}

impl Error {
    /// The innermost place an error passes through is where it is. Not inlined: every generic visit calls it,
    /// and only on the error path.
    #[inline(never)]
    fn at(mut self, path: &Path) -> Error {
        if self.0.at.is_none() {
            self.0.at = Some(path.segments());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Error {}

/// serde's own messages, word for word, but called rather than built inline at each field of each derived
/// visitor (where `missing_field` and `duplicate_field` are written out for every field).
impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Error {
        Error(Box::new(Located { at: None, message: message.to_string() }))
    }

    #[inline(never)]
    fn invalid_type(unexpected: de::Unexpected, expected: &dyn de::Expected) -> Error {
        Error::custom(format_args!("invalid type: {unexpected}, expected {expected}"))
    }

    #[inline(never)]
    fn invalid_value(unexpected: de::Unexpected, expected: &dyn de::Expected) -> Error {
        Error::custom(format_args!("invalid value: {unexpected}, expected {expected}"))
    }

    #[inline(never)]
    fn invalid_length(len: usize, expected: &dyn de::Expected) -> Error {
        Error::custom(format_args!("invalid length {len}, expected {expected}"))
    }

    #[inline(never)]
    fn missing_field(field: &'static str) -> Error {
        Error::custom(format_args!("missing field `{field}`"))
    }

    #[inline(never)]
    fn duplicate_field(field: &'static str) -> Error {
        Error::custom(format_args!("duplicate field `{field}`"))
    }
}

/// A value being decoded, and where it is.
///
/// A node does not put its path on the errors of its visits: the list item or object entry that made it (or
/// [`decode`], for the root) does, as the same path, once for every kind of value. That also places an error a
/// type raises after its fields were read (about them together) at the item.
struct Node<'a, 'p> {
    value: &'a Json,
    path: Path<'p>,
    skipped: &'p [Vec<Segment>],
}

impl<'de, 'p> Node<'de, 'p> {
    /// A list's items for a visitor, or `None` when the value is not a list.
    fn items(&self) -> Option<Items<'de, 'p>> {
        match self.value {
            Json::Array(items) => {
                Some(Items { items: items.iter().enumerate(), path: self.path, skipped: self.skipped })
            }
            _ => None,
        }
    }

    /// An object's entries for a visitor, or `None` when the value is not an object.
    fn entries(&self) -> Option<Entries<'de, 'p>> {
        match self.value {
            Json::Object(entries) => Some(Entries::new(entries, self.path, self.skipped)),
            _ => None,
        }
    }
}

/// Deserializer methods that read a number as `deserialize_f64` does.
macro_rules! number_visits {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.deserialize_f64(visitor)
            }
        )*
    };
}

/// The visits below hand a visitor only the kinds of value it can take, and refuse the others themselves
/// ([`refused`]): with the same message serde's default visits give, and without compiling every visit of
/// every visitor into the module.
impl<'de> Deserializer<'de> for Node<'de, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Json::Null => visitor.visit_unit(),
            Json::Bool(b) => visitor.visit_bool(*b),
            Json::Number(number) => visit_number(*number, visitor),
            Json::String(text) => visitor.visit_borrowed_str(text),
            Json::Array(items) => visitor.visit_seq(Items::new(items, self.path, self.skipped)),
            Json::Object(entries) => visitor.visit_map(Entries::new(entries, self.path, self.skipped)),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Json::Bool(b) => visitor.visit_bool(*b),
            other => Err(refused(other, &visitor)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Json::String(text) => visitor.visit_borrowed_str(text),
            other => Err(refused(other, &visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.items() {
            Some(items) => visitor.visit_seq(items),
            None => Err(refused(self.value, &visitor)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.entries() {
            Some(entries) => visitor.visit_map(entries),
            None => Err(refused(self.value, &visitor)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Json::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
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
            Json::String(text) => visitor.visit_enum(BorrowedStrDeserializer::<Error>::new(text)),
            // No other kind of value is a variant: refused here, so a type's other visits are never compiled
            // (they would only refuse it the same way).
            other => Err(refused(other, &visitor)),
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
        self.deserialize_map(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    /// Numbers of every kind go to the visitor, which takes the ones it can hold (a `u16` takes `200` and
    /// refuses `70000` and `2.5` in its own words).
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Json::Number(number) => visit_number(*number, visitor),
            other => Err(refused(other, &visitor)),
        }
    }

    number_visits! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128 deserialize_u8
        deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128 deserialize_f32
    }

    serde::forward_to_deserialize_any! {
        char bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

/// A number to the visit of its kind.
fn visit_number<'de, V: Visitor<'de>>(number: Number, visitor: V) -> Result<V::Value, Error> {
    match number {
        Number::Unsigned(n) => visitor.visit_u64(n),
        Number::Signed(n) => visitor.visit_i64(n),
        Number::Float(n) => visitor.visit_f64(n),
    }
}

/// The error serde's default visits give a value of a kind the visitor does not take. One function for every
/// visitor (`&dyn`): it only runs on the error path.
#[inline(never)]
fn refused(value: &Json, expected: &dyn de::Expected) -> Error {
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
    <Error as de::Error>::invalid_type(unexpected, expected)
}

/// A list's items, with their indexes, less the skipped ones.
struct Items<'de, 'p> {
    items: std::iter::Enumerate<std::slice::Iter<'de, Json>>,
    path: Path<'p>,
    skipped: &'p [Vec<Segment>],
}

impl<'de, 'p> Items<'de, 'p> {
    fn new(items: &'de [Json], path: Path<'p>, skipped: &'p [Vec<Segment>]) -> Items<'de, 'p> {
        Items { items: items.iter().enumerate(), path, skipped }
    }

    /// The next item that is not skipped, and its index. (Apart from the generic visit: it is the same for
    /// every type of item.)
    fn next_item(&mut self) -> Option<(usize, &'de Json)> {
        let skipped = self.skipped;
        let path = &self.path;
        self.items.by_ref().find(|&(index, _)| skipped.is_empty() || !Path::Index(path, index).is_skipped(skipped))
    }
}

impl<'de> SeqAccess<'de> for Items<'de, '_> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Error> {
        let Some((index, value)) = self.next_item() else {
            return Ok(None);
        };
        let path = Path::Index(&self.path, index);
        match seed.deserialize(Node { value, path, skipped: self.skipped }) {
            Ok(item) => Ok(Some(item)),
            Err(error) => Err(error.at(&path)),
        }
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

impl<'de, 'p> Entries<'de, 'p> {
    fn new(entries: &'de [(String, Json)], path: Path<'p>, skipped: &'p [Vec<Segment>]) -> Entries<'de, 'p> {
        Entries { entries: entries.iter(), pending: None, path, skipped }
    }

    /// The next entry that is not skipped, now pending. (Apart from the generic visit, as `next_item`.)
    fn next_entry(&mut self) -> Option<&'de (String, Json)> {
        let skipped = self.skipped;
        let path = &self.path;
        self.pending =
            self.entries.by_ref().find(|(key, _)| skipped.is_empty() || !Path::Key(path, key).is_skipped(skipped));
        self.pending
    }
}

impl<'de> MapAccess<'de> for Entries<'de, '_> {
    type Error = Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Error> {
        let Some((key, _)) = self.next_entry() else {
            return Ok(None);
        };
        // An unknown or misspelt key is a problem at the key's own path.
        match seed.deserialize(BorrowedStrDeserializer::new(key)) {
            Ok(key) => Ok(Some(key)),
            Err(error) => Err(Error::at(error, &Path::Key(&self.path, key))),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        let path = Path::Key(&self.path, key);
        seed.deserialize(Node { value, path, skipped: self.skipped }).map_err(|error| error.at(&path))
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

    /// Each kind of value a field does not take is refused in serde's own words, whichever visit refuses it.
    #[test]
    fn every_kind_of_wrong_value_is_refused_as_serde_words_it() {
        let found = problems(
            r#"{"name": true, "items": [{"status": 70000}, {"status": 2.5}, {"status": -1}, {"status": null},
                {"status": [1]}, {"status": {}}, {"status": 1, "note": [2]}], "map": [], "mode": 3}"#,
        );
        assert_eq!(
            found,
            [
                "name: invalid type: boolean `true`, expected a string",
                "items[0].status: invalid value: integer `70000`, expected u16",
                "items[1].status: invalid type: floating point `2.5`, expected u16",
                "items[2].status: invalid value: integer `-1`, expected u16",
                "items[3].status: invalid type: unit value, expected u16",
                "items[4].status: invalid type: sequence, expected u16",
                "items[5].status: invalid type: map, expected u16",
                "items[6].note: invalid type: sequence, expected a string",
                "map: invalid type: sequence, expected a map",
                "mode: invalid type: integer `3`, expected enum Mode",
            ]
        );
        assert_eq!(
            problems(r#"{"name": "a", "items": {"status": 1}}"#),
            ["items: invalid type: map, expected a sequence"]
        );
        assert_eq!(
            problems(r#"{"name": "a", "items": ["x"]}"#),
            ["items[0]: invalid type: string \"x\", expected struct Inner"]
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
