//! [`Named`]: a document's map of tests by name (headers, query parameters, cookies, attributes, claims, JSON
//! pointers), read as a `BTreeMap` reads it and handed out in the same order.
//!
//! Why not a `BTreeMap`: these maps are read once, walked once when the document compiles, and dropped. A
//! `BTreeMap` of each value type compiles its own insert, split, walk and drop into the module (about 9 KB for
//! two types); here the generic part is a `Vec` push and a walk, and the ordering is one non-generic sort of
//! indexes.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

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

/// Read as serde reads a `BTreeMap<String, T>`: the same visits in the same order, so the same messages.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamedVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for NamedVisitor<T> {
            type Value = Named<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named<T>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Named::new(entries))
            }
        }

        deserializer.deserialize_map(NamedVisitor(PhantomData))
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
        let read = |text: &str| serde_json::from_str::<Named<u8>>(text).map(|n| format!("{n:?}"));
        let btree = |text: &str| serde_json::from_str::<BTreeMap<String, u8>>(text).map(|m| format!("{m:?}"));
        for text in [r#"{"b": 1, "a": 2}"#, "{}", "[]", r#"{"a": 300}"#, r#"{"a": "x"}"#, "null", "3"] {
            assert_eq!(read(text).map_err(|e| e.to_string()), btree(text).map_err(|e| e.to_string()), "{text}");
        }
    }
}
