//! Reads the configuration types of [`crate::config`] from a [`Json`] value, with the path of every field that
//! is wrong and every problem rather than the first.
//!
//! Each type says how it is read by implementing [`Decode`]; a struct does it with a table of its fields
//! ([`decode_struct!`]: key, required or not, and a reader when the type's own will not do), read by one
//! non-generic loop ([`object`]) that also refuses unknown keys and reports missing fields: a new field is one
//! line of its struct's table. The messages are serde's words, as when these types were read with serde's
//! derive, which compiled a visitor and its glue for every type and field into the module (docs/performance.md,
//! "Generic code").
//!
//! A read stops at its first problem, which carries its place (`actions[0].respond.status`). To go on past it,
//! the value is read again with that place skipped (a skipped key is as if not written, a skipped item as if
//! not in its list) until it reads or too many problems were found. A problem that only follows from an
//! earlier skip (the field named `statsu` was skipped, so `status` is missing) is not reported. Each pass is
//! linear in the value and there are at most [`MAX_PROBLEMS`] + 1 of them: a valid value takes one.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Unexpected;

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
pub fn decode<T: Decode>(value: &Json) -> (Option<T>, Vec<Problem>) {
    let mut skipped: Vec<Vec<Segment>> = Vec::new();
    let mut problems = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        let at = At { path: Path::Root, skipped: &skipped };
        let Located { at, message } = match T::decode(value, &at) {
            Ok(decoded) => return (Some(decoded), problems),
            Err(error) => *error.0,
        };
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

/// A type read from a [`Json`] value.
pub trait Decode: Sized {
    /// Reads `value`, which sits at `at`; the first problem ends the read, as an error placed where it is.
    fn decode(value: &Json, at: &At) -> Result<Self, Error>;
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
}

/// Where a value is being read: its path, and the places this pass skips.
pub struct At<'p> {
    path: Path<'p>,
    skipped: &'p [Vec<Segment>],
}

impl At<'_> {
    /// The place of an object's value.
    pub fn key<'q>(&'q self, key: &'q str) -> At<'q> {
        At { path: Path::Key(&self.path, key), skipped: self.skipped }
    }

    /// The place of a list's item.
    pub fn index(&self, index: usize) -> At<'_> {
        At { path: Path::Index(&self.path, index), skipped: self.skipped }
    }

    /// Whether this pass skips the value here (an earlier pass found a problem with it).
    pub fn is_skipped(&self) -> bool {
        !self.skipped.is_empty() && self.skipped.iter().any(|skip| self.path.is(skip))
    }

    /// A problem of the value here.
    #[inline(never)]
    pub fn error(&self, message: String) -> Error {
        Error(Box::new(Located { at: self.path.segments(), message }))
    }

    /// The value here is of a kind the reader does not take (serde's words).
    #[inline(never)]
    pub fn refused(&self, value: &Json, expected: &str) -> Error {
        let unexpected = match value {
            Json::Null => Unexpected::Unit,
            Json::Bool(b) => Unexpected::Bool(*b),
            Json::Number(Number::Unsigned(n)) => Unexpected::Unsigned(*n),
            Json::Number(Number::Signed(n)) => Unexpected::Signed(*n),
            Json::Number(Number::Float(n)) => Unexpected::Float(*n),
            Json::String(text) => Unexpected::Str(text),
            Json::Array(_) => Unexpected::Seq,
            Json::Object(_) => Unexpected::Map,
        };
        self.error(format!("invalid type: {unexpected}, expected {expected}"))
    }

    /// The value here is of the right kind but out of bounds (serde's words).
    #[inline(never)]
    pub fn invalid_value(&self, unexpected: Unexpected, expected: &str) -> Error {
        self.error(format!("invalid value: {unexpected}, expected {expected}"))
    }

    /// A name that is none of `expected` (`what`: `field` or `variant`), in serde's words.
    #[inline(never)]
    pub fn unknown(&self, what: &str, name: &str, expected: &[&str]) -> Error {
        let quoted = |names: &[&str]| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>();
        let message = match expected {
            [] => format!("unknown {what} `{name}`, there are no {what}s"),
            [one] => format!("unknown {what} `{name}`, expected `{one}`"),
            [first, second] => format!("unknown {what} `{name}`, expected `{first}` or `{second}`"),
            _ => format!("unknown {what} `{name}`, expected one of {}", crate::join::join(&quoted(expected), ", ")),
        };
        self.error(message)
    }
}

/// A decoding error: why, and where.
///
/// Boxed, as serde_json's is: every read returns `Result`s of it, and one pointer moves where the six words of
/// [`Located`] would be copied at each step.
#[derive(Debug)]
pub struct Error(Box<Located>);

#[derive(Debug)]
struct Located {
    at: Vec<Segment>,
    message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Error {}

/// Where a field's value goes once read: any [`Decode`] type, or a reader of its own ([`With`]).
pub trait Slot {
    fn read(&mut self, value: &Json, at: &At) -> Result<(), Error>;
}

impl<T: Decode> Slot for T {
    fn read(&mut self, value: &Json, at: &At) -> Result<(), Error> {
        *self = T::decode(value, at)?;
        Ok(())
    }
}

/// A field read by a function of its own rather than its type's [`Decode`] (a number that says what range it
/// takes, a list that says how one is written).
pub struct With<'a, T>(pub &'a mut T, pub fn(&Json, &At) -> Result<T, Error>);

impl<T> Slot for With<'_, T> {
    fn read(&mut self, value: &Json, at: &At) -> Result<(), Error> {
        *self.0 = (self.1)(value, at)?;
        Ok(())
    }
}

/// One line of a struct's table: the key, whether the struct needs it, and where its value goes.
pub struct Field<'s> {
    key: &'static str,
    required: bool,
    slot: &'s mut dyn Slot,
}

impl<'s> Field<'s> {
    /// A field that must be written.
    pub fn required(key: &'static str, slot: &'s mut dyn Slot) -> Field<'s> {
        Field { key, required: true, slot }
    }

    /// A field that keeps its default when not written.
    pub fn optional(key: &'static str, slot: &'s mut dyn Slot) -> Field<'s> {
        Field { key, required: false, slot }
    }
}

/// Reads an object into the slots of `fields`, entries in written order: an unknown key is refused at the
/// key, a field written twice or a required one not written at the object (`expected`, `struct RuleSpec`,
/// names it when the value is no object). The one loop of every struct, as serde's derive reads them.
pub fn object(value: &Json, at: &At, expected: &str, fields: &mut [Field]) -> Result<(), Error> {
    let mut seen = vec![false; fields.len()];
    for (key, value) in object_entries(value, at, expected)? {
        let here = at.key(key);
        if here.is_skipped() {
            continue;
        }
        let Some((field, seen)) = fields.iter_mut().zip(seen.iter_mut()).find(|(field, _)| field.key == key) else {
            let names: Vec<&str> = fields.iter().map(|field| field.key).collect();
            return Err(here.unknown("field", key, &names));
        };
        if *seen {
            return Err(at.error(format!("duplicate field `{key}`")));
        }
        *seen = true;
        field.slot.read(value, &here)?;
    }
    match fields.iter().zip(&seen).find(|(field, seen)| field.required && !**seen) {
        Some((missing, _)) => Err(at.error(format!("missing field `{}`", missing.key))),
        None => Ok(()),
    }
}

/// The items of a list; `expected` names what is wanted when the value is no list. (Each item's place is
/// `at.index(i)`; a skipped one is as if not in the list.)
pub fn list_items<'a>(value: &'a Json, at: &At, expected: &str) -> Result<&'a [Json], Error> {
    match value {
        Json::Array(items) => Ok(items),
        other => Err(at.refused(other, expected)),
    }
}

/// The entries of an object; `expected` names what is wanted when the value is no object. (Each value's place
/// is `at.key(k)`; a skipped one is as if not written.)
pub fn object_entries<'a>(value: &'a Json, at: &At, expected: &str) -> Result<&'a [(String, Json)], Error> {
    match value {
        Json::Object(entries) => Ok(entries),
        other => Err(at.refused(other, expected)),
    }
}

/// Implements [`Decode`] for a struct that is `Default`, from a table of its fields, one line each:
/// `field: required`, `field: optional` (absent keeps the default), `field as "key": …` where the key is not the
/// field's name, `… with reader` where a function reads it instead of its type (named unlike every field of
/// the struct: the fields are local names where the table is read). Every field must be in the table (the
/// struct is taken apart to fill it); the table's order is the order missing fields are looked for.
#[macro_export]
macro_rules! decode_struct {
    ($type:ident { $($field:ident $(as $key:literal)? : $how:ident $(with $reader:path)?),* $(,)? }) => {
        impl $crate::fields::Decode for $type {
            fn decode(
                value: &$crate::json::Json,
                at: &$crate::fields::At,
            ) -> Result<Self, $crate::fields::Error> {
                let mut decoded = Self::default();
                let $type { $($field),* } = &mut decoded;
                $crate::fields::object(value, at, concat!("struct ", stringify!($type)), &mut [
                    $($crate::fields::Field::$how(
                        $crate::decode_struct!(@key $field $($key)?),
                        $crate::decode_struct!(@slot $field $($reader)?),
                    )),*
                ])?;
                Ok(decoded)
            }
        }
    };
    (@key $field:ident) => { stringify!($field) };
    (@key $field:ident $key:literal) => { $key };
    (@slot $field:ident) => { $field };
    (@slot $field:ident $reader:path) => { &mut $crate::fields::With($field, $reader) };
}

impl Decode for String {
    fn decode(value: &Json, at: &At) -> Result<String, Error> {
        match value {
            Json::String(text) => Ok(text.clone()),
            other => Err(at.refused(other, "a string")),
        }
    }
}

impl Decode for bool {
    fn decode(value: &Json, at: &At) -> Result<bool, Error> {
        match value {
            Json::Bool(b) => Ok(*b),
            other => Err(at.refused(other, "a boolean")),
        }
    }
}

/// Any number, as serde reads one into an `f64`.
impl Decode for f64 {
    #[allow(clippy::cast_precision_loss)]
    fn decode(value: &Json, at: &At) -> Result<f64, Error> {
        match value {
            Json::Number(Number::Unsigned(n)) => Ok(*n as f64),
            Json::Number(Number::Signed(n)) => Ok(*n as f64),
            Json::Number(Number::Float(n)) => Ok(*n),
            other => Err(at.refused(other, "f64")),
        }
    }
}

/// `null` is as if not written.
impl<T: Decode> Decode for Option<T> {
    fn decode(value: &Json, at: &At) -> Result<Option<T>, Error> {
        match value {
            Json::Null => Ok(None),
            _ => T::decode(value, at).map(Some),
        }
    }
}

impl<T: Decode> Decode for Box<T> {
    fn decode(value: &Json, at: &At) -> Result<Box<T>, Error> {
        T::decode(value, at).map(Box::new)
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(value: &Json, at: &At) -> Result<Vec<T>, Error> {
        let mut decoded = Vec::new();
        for (index, item) in list_items(value, at, "a sequence")?.iter().enumerate() {
            let here = at.index(index);
            if !here.is_skipped() {
                decoded.push(T::decode(item, &here)?);
            }
        }
        Ok(decoded)
    }
}

impl<T: Decode> Decode for BTreeMap<String, T> {
    fn decode(value: &Json, at: &At) -> Result<BTreeMap<String, T>, Error> {
        let mut decoded = BTreeMap::new();
        for (key, value) in object_entries(value, at, "a map")? {
            let here = at.key(key);
            if !here.is_skipped() {
                decoded.insert(key.clone(), T::decode(value, &here)?);
            }
        }
        Ok(decoded)
    }
}

/// Any JSON value (a body's `json_set`), as serde_json reads one.
impl Decode for serde_json::Value {
    fn decode(value: &Json, _at: &At) -> Result<serde_json::Value, Error> {
        Ok(to_value(value))
    }
}

fn to_value(value: &Json) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(Number::Unsigned(n)) => Value::Number((*n).into()),
        Json::Number(Number::Signed(n)) => Value::Number((*n).into()),
        Json::Number(Number::Float(n)) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Json::String(text) => Value::String(text.clone()),
        Json::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        Json::Object(entries) => {
            // Inserted one by one: collecting would compile a sort of its own for the map's keys.
            let mut object = serde_json::Map::new();
            for (key, value) in entries {
                object.insert(key.clone(), to_value(value));
            }
            Value::Object(object)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    #[derive(Debug, Default)]
    struct Outer {
        name: String,
        items: Vec<Inner>,
        map: BTreeMap<String, Inner>,
        mode: Option<Mode>,
    }
    decode_struct!(Outer { name: required, items: optional, map: optional, mode: optional });

    #[derive(Debug, Default)]
    #[allow(dead_code)]
    struct Inner {
        status: u16,
        note: String,
    }
    decode_struct!(Inner { status: required, note: optional });

    /// A `u16` as serde reads one, for the tests' structs.
    impl Decode for u16 {
        fn decode(value: &Json, at: &At) -> Result<u16, Error> {
            match value {
                Json::Number(Number::Unsigned(n)) => {
                    u16::try_from(*n).map_err(|_| at.invalid_value(Unexpected::Unsigned(*n), "u16"))
                }
                Json::Number(Number::Signed(n)) => {
                    u16::try_from(*n).map_err(|_| at.invalid_value(Unexpected::Signed(*n), "u16"))
                }
                other => Err(at.refused(other, "u16")),
            }
        }
    }

    #[derive(Debug, PartialEq)]
    enum Mode {
        DryRun,
    }

    impl Decode for Mode {
        fn decode(value: &Json, at: &At) -> Result<Mode, Error> {
            match value {
                Json::String(text) if text == "dry_run" => Ok(Mode::DryRun),
                Json::String(text) => Err(at.unknown("variant", text, &["dry_run"])),
                other => Err(at.refused(other, "enum Mode")),
            }
        }
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

    /// Each kind of value a field does not take is refused in serde's own words, whichever reader refuses it.
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

    /// A body's `json_set` value is what serde_json reads from the same text.
    #[test]
    fn any_value_reads_as_serde_json_reads_it() {
        let text = r#"{"b": [1, -2, 2.5, 5.0, 18446744073709551615, "x", null, true], "a": {"z": {}, "y": []}}"#;
        let (decoded, problems) = decode::<serde_json::Value>(&parse(text).unwrap());
        assert!(problems.is_empty());
        assert_eq!(decoded, Some(serde_json::from_str::<serde_json::Value>(text).unwrap()));
    }

    /// The names serde lists for an unknown one, for every count of them.
    #[test]
    fn unknown_names_are_listed_as_serde_lists_them() {
        let at = At { path: Path::Root, skipped: &[] };
        let message = |names: &[&str]| at.unknown("field", "x", names).to_string();
        assert_eq!(message(&[]), "unknown field `x`, there are no fields");
        assert_eq!(message(&["a"]), "unknown field `x`, expected `a`");
        assert_eq!(message(&["a", "b"]), "unknown field `x`, expected `a` or `b`");
        assert_eq!(message(&["a", "b", "c"]), "unknown field `x`, expected one of `a`, `b`, `c`");
    }
}
