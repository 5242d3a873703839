//! [`Named`]: a document's map of tests by name (headers, query parameters, cookies, attributes, claims, JSON
//! pointers), read as a `BTreeMap` reads it and handed out in the same order.
//!
//! Why not a `BTreeMap`: these maps are read once, walked once when the document compiles, and dropped. A
//! `BTreeMap` of each value type compiles its own insert, split, walk and drop into the module (about 9 KB for
//! two types); here the generic part is a `Vec` push and a walk, and the ordering is one non-generic sort of
//! indexes.

use std::fmt;

use crate::fields::{object_entries, At, Decode, Error};
use crate::json::Json;

/// Values by name, handed out in the order of their names (as a `BTreeMap` would); of a name written twice,
/// the last value counts (as a `BTreeMap` insert would; a JSON document cannot hold one: see
/// [`crate::json::parse`]).
pub struct Named<T> {
    /// As written.
    entries: Vec<(String, T)>,
    /// Indexes into `entries`, in the order of their names, one for each distinct name.
    order: Vec<usize>,
}

impl<T> Named<T> {
    fn new(entries: Vec<(String, T)>) -> Named<T> {
        let names: Vec<&str> = entries.iter().map(|(name, _)| name.as_str()).collect();
        let order = name_order(&names);
        Named { entries, order }
    }

    /// The names and values, in the order of the names.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { order: self.order.iter(), entries: &self.entries }
    }

    /// The value of `name`, if written.
    pub fn get(&self, name: &str) -> Option<&T> {
        let at = self.order.binary_search_by(|&i| self.name(i).cmp(name)).ok()?;
        let index = self.order.get(at)?;
        self.entries.get(*index).map(|(_, value)| value)
    }

    /// How many distinct names.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn name(&self, index: usize) -> &str {
        self.entries.get(index).map_or("", |(name, _)| name)
    }
}

/// The order of `names` (indexes, sorted by name), keeping of equal names only the last written. Not generic,
/// so one sort serves every value type; a merge sort of our own, as the standard library's sorts compile to
/// about 7 KB for each comparison they are given.
fn name_order(names: &[&str]) -> Vec<usize> {
    let name = |index: usize| names.get(index).copied().unwrap_or_default();
    let mut order: Vec<usize> = (0..names.len()).collect();
    let mut width = 1;
    while width < order.len() {
        let mut merged = Vec::with_capacity(order.len());
        for run in order.chunks(2 * width) {
            let (left, right) = run.split_at(width.min(run.len()));
            let (mut left, mut right) = (left.iter().copied().peekable(), right.iter().copied().peekable());
            // Stable: of equal names, the earlier written comes first.
            while let Some(next) = match (left.peek(), right.peek()) {
                (Some(&a), Some(&b)) if name(b) < name(a) => right.next(),
                (Some(_), _) => left.next(),
                (None, _) => right.next(),
            } {
                merged.push(next);
            }
        }
        order = merged;
        width *= 2;
    }
    let mut sorted = order.into_iter().peekable();
    let mut kept = Vec::with_capacity(sorted.len());
    while let Some(index) = sorted.next() {
        if sorted.peek().is_none_or(|&later| name(later) != name(index)) {
            kept.push(index);
        }
    }
    kept
}

impl<T> Default for Named<T> {
    fn default() -> Named<T> {
        Named { entries: Vec::new(), order: Vec::new() }
    }
}

impl<T: fmt::Debug> fmt::Debug for Named<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The values of a [`Named`], in the order of their names.
pub struct Iter<'a, T> {
    order: std::slice::Iter<'a, usize>,
    entries: &'a [(String, T)],
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = (&'a String, &'a T);

    fn next(&mut self) -> Option<(&'a String, &'a T)> {
        let index = *self.order.next()?;
        self.entries.get(index).map(|(name, value)| (name, value))
    }
}

impl<'a, T> IntoIterator for &'a Named<T> {
    type Item = (&'a String, &'a T);
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// Read as a `BTreeMap<String, T>` is read: the same messages.
impl<T: Decode> Decode for Named<T> {
    fn decode(value: &Json, at: &At) -> Result<Named<T>, Error> {
        let mut written = Vec::new();
        for (name, value) in object_entries(value, at, "a map")? {
            let here = at.key(name);
            if !here.is_skipped() {
                written.push((name.clone(), T::decode(value, &here)?));
            }
        }
        Ok(Named::new(written))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn named(pairs: &[(&str, u8)]) -> Named<u8> {
        Named::new(pairs.iter().map(|&(name, value)| (name.to_owned(), value)).collect())
    }

    #[test]
    fn names_come_out_as_a_btree_map_gives_them() {
        let pairs = [("x-b", 1), ("X-A", 2), ("x-a", 3), ("", 4), ("x-b", 5), ("é", 6), ("x-a", 7)];
        let map: BTreeMap<String, u8> = pairs.iter().map(|&(name, value)| (name.to_owned(), value)).collect();
        let written = named(&pairs);
        let ours: Vec<(&String, &u8)> = written.iter().collect();
        assert_eq!(ours, map.iter().collect::<Vec<_>>());
        assert_eq!(written.len(), map.len());
        for name in ["x-a", "x-b", "X-A", "", "é", "x-c", "x"] {
            assert_eq!(written.get(name), map.get(name), "{name:?}");
        }
        assert!(named(&[]).is_empty());
        assert_eq!(named(&[]).get("x"), None);
    }

    #[test]
    fn many_names_in_any_order_come_out_as_a_btree_map_gives_them() {
        // Names from a small alphabet, so that many repeat: every length up to 70 takes several merge passes.
        let mut state = 14u32;
        for len in 0..70 {
            let pairs: Vec<(String, u8)> = (0..len)
                .map(|i| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let letters = ["a", "b", "ab", "ba", "", "B"];
                    let letter = letters.get((state >> 16) as usize % letters.len()).copied().unwrap_or_default();
                    (letter.repeat(1 + (state >> 24) as usize % 2), i)
                })
                .collect();
            let map: BTreeMap<String, u8> = pairs.iter().cloned().collect();
            let written = Named::new(pairs);
            assert_eq!(written.iter().collect::<Vec<_>>(), map.iter().collect::<Vec<_>>(), "{len}");
        }
    }

    #[test]
    fn reads_what_a_btree_map_reads_and_refuses_what_it_refuses() {
        let problems = |problems: Vec<crate::fields::Problem>| -> Vec<String> {
            problems.into_iter().map(|p| format!("{}: {}", p.field, p.message)).collect()
        };
        for text in [r#"{"b": "1", "a": "2"}"#, "{}", "[]", r#"{"a": 300}"#, r#"{"a": "x", "c": true}"#, "null", "3"] {
            let json = crate::json::parse(text).unwrap();
            let (named, named_problems) = crate::fields::decode::<Named<String>>(&json);
            let (map, map_problems) = crate::fields::decode::<BTreeMap<String, String>>(&json);
            assert_eq!(named.map(|n| format!("{n:?}")), map.map(|m| format!("{m:?}")), "{text}");
            assert_eq!(problems(named_problems), problems(map_problems), "{text}");
        }
        // In serde's words.
        let json = crate::json::parse("[]").unwrap();
        assert_eq!(
            problems(crate::fields::decode::<Named<String>>(&json).1),
            [": invalid type: sequence, expected a map"]
        );
    }
}
