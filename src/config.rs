//! The rules document as written by people (YAML) or handed over by Istio (compact JSON).
//!
//! These types mirror the document one to one and only check its *shape*: unknown fields and wrong types are
//! refused here, by serde. Everything that needs a judgement (regexes, header names, phases, duplicates) is
//! checked in [`crate::compile`], which turns a document into the rule set the filter runs.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A whole rules document. Rules are kept as raw values here so that each one is decoded on its own: one bad
/// rule then yields its own error, named by index and name, instead of hiding the rules after it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Document format version; only `1` exists.
    #[serde(default, deserialize_with = "optional_integer")]
    pub version: Option<u64>,
    /// Rules run when the request headers arrive, in the order written.
    #[serde(default)]
    pub request: Vec<serde_yaml::Value>,
    /// Rules run when the response headers arrive, in the order written.
    #[serde(default)]
    pub response: Vec<serde_yaml::Value>,
}

/// One rule: when every condition in `match` holds, its actions run in the order written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    #[serde(default, rename = "match")]
    pub conditions: MatchSpec,
    #[serde(default)]
    pub actions: Vec<ActionSpec>,
    /// Stop evaluating the phase's later rules once this one has matched.
    #[serde(default)]
    pub stop: bool,
}

/// Conditions of a rule; all of them must hold. An empty match matches every request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// The request path without its query string.
    pub path: Option<StringMatchSpec>,
    /// One method or a list of methods (any of them).
    pub method: Option<OneOrMany<String>>,
    /// The request's host (`:authority`), without its port unless the pattern has one.
    pub host: Option<StringMatchSpec>,
    /// Request headers by name (case-insensitive).
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatchSpec>,
    /// Response status code, one or a list (response phase only).
    pub status: Option<OneOrMany<Integer>>,
    /// Response headers by name (response phase only).
    #[serde(default)]
    pub response_headers: BTreeMap<String, StringMatchSpec>,
}

/// The operators of a value condition. Exactly one is given; `present`/`absent` only apply to headers.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchFields {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<String>,
    /// Compare without regard to ASCII case.
    #[serde(default)]
    pub ignore_case: bool,
    /// `true`: the header must be present; `false`: it must be absent.
    pub present: Option<bool>,
    /// `true`: the header must be absent; `false`: it must be present.
    pub absent: Option<bool>,
}

/// A value condition: `"/hello"` is shorthand for `{exact: /hello}`; otherwise a map of [`MatchFields`].
#[derive(Debug, Clone)]
pub struct StringMatchSpec(pub MatchFields);

/// One action. Written as a single-key map, e.g. `- response_headers: {set: {x-a: b}}`.
#[derive(Debug)]
pub enum ActionSpec {
    /// Change the headers sent upstream (request phase only).
    RequestHeaders(HeaderEditsSpec),
    /// Change the headers sent downstream; from a request rule they apply when the response arrives.
    ResponseHeaders(HeaderEditsSpec),
    /// Answer from the proxy: the upstream is not called (request phase) or its answer is replaced (response phase).
    Respond(RespondSpec),
}

/// The keys an action item may hold; exactly one is given. (serde_yaml reads enums only from YAML tags, so
/// the single-key map form is decoded through this struct.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionItem {
    request_headers: Option<HeaderEditsSpec>,
    response_headers: Option<HeaderEditsSpec>,
    respond: Option<RespondSpec>,
}

impl<'de> Deserialize<'de> for ActionSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let item = ActionItem::deserialize(deserializer)?;
        let mut given = Vec::with_capacity(1);
        if let Some(edits) = item.request_headers {
            given.push(("request_headers", ActionSpec::RequestHeaders(edits)));
        }
        if let Some(edits) = item.response_headers {
            given.push(("response_headers", ActionSpec::ResponseHeaders(edits)));
        }
        if let Some(respond) = item.respond {
            given.push(("respond", ActionSpec::Respond(respond)));
        }
        let mut given = given.into_iter();
        match (given.next(), given.next()) {
            (Some((_, action)), None) => Ok(action),
            (None, _) => {
                Err(de::Error::custom("an action item needs one of `request_headers`, `response_headers`, `respond`"))
            }
            (Some((first, _)), Some((second, _))) => Err(de::Error::custom(format!(
                "an action item holds one action; found both `{first}` and `{second}` (make them two items)"
            ))),
        }
    }
}

/// Header changes, applied in the order set, add, remove.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderEditsSpec {
    /// Replace (or create) each header with the value.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Append a value, keeping existing ones.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Remove every value of these headers.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A response made by the proxy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondSpec {
    pub status: Integer,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
}

/// An integer that may arrive as a double: Istio passes `pluginConfig` through a protobuf `Struct`, where
/// every number is a double, so `200` can reach us as `200.0`. Fractions and negatives are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Integer(pub u64);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntegerVisitor;
        impl Visitor<'_> for IntegerVisitor {
            type Value = Integer;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative whole number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Integer, E> {
                Ok(Integer(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Integer, E> {
                u64::try_from(v).map(Integer).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Integer, E> {
                // 2^53: beyond it a double no longer holds every whole number exactly.
                if v.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&v) {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    Ok(Integer(v as u64))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
        }
        deserializer.deserialize_any(IntegerVisitor)
    }
}

fn optional_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(Some(Integer::deserialize(deserializer)?.0))
}

/// One value or a list of values: `method: GET` or `method: [GET, HEAD]`.
#[derive(Debug, Clone)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(OneOrMany)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(de::value::StrDeserializer::new(v)).map(|one| OneOrMany(vec![one]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(de::value::U64Deserializer::new(v)).map(|one| OneOrMany(vec![one]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::deserialize(de::value::I64Deserializer::new(v)).map(|one| OneOrMany(vec![one]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                T::deserialize(de::value::F64Deserializer::new(v)).map(|one| OneOrMany(vec![one]))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor(std::marker::PhantomData))
    }
}

/// Deserializes `"text"` as `{exact: text}` and a map as the full set of operator fields.
impl<'de> Deserialize<'de> for StringMatchSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringOrFields;
        impl<'de> Visitor<'de> for StringOrFields {
            type Value = StringMatchSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string (exact match) or a map of match operators")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringMatchSpec, E> {
                Ok(StringMatchSpec(MatchFields { exact: Some(v.to_owned()), ..MatchFields::default() }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StringMatchSpec, A::Error> {
                MatchFields::deserialize(de::value::MapAccessDeserializer::new(map)).map(StringMatchSpec)
            }
        }
        deserializer.deserialize_any(StringOrFields)
    }
}
