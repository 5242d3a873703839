//! The small parts of URL handling rules need: splitting a `:path`, decoding and encoding query parameters.
//!
//! Query parameters are decoded as browsers encode forms (`application/x-www-form-urlencoded`): `%XX` escapes
//! and `+` for a space; an invalid escape is kept as written, bytes that are not UTF-8 become U+FFFD.

use std::borrow::Cow;

/// `/a/b?x=1` → (`/a/b`, `Some("x=1")`).
pub fn split_path(path_and_query: &str) -> (&str, Option<&str>) {
    match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    }
}

/// The first value of query parameter `name` (compared decoded), decoded; `None` if it is not there.
/// A parameter without `=` has the empty value.
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    query.split('&').filter(|pair| !pair.is_empty()).find_map(|pair| {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(raw_name) == name).then(|| decode(raw_value))
    })
}

/// Percent-decodes a query component (`+` is a space).
pub fn decode(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Percent-encodes a query component: everything but RFC 3986 unreserved characters.
pub fn encode(text: &str) -> Cow<'_, str> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if text.bytes().all(unreserved) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

/// A query string as raw `name=value` pairs, editable by decoded name.
pub struct QueryPairs<'q> {
    pairs: Vec<Cow<'q, str>>,
}

impl<'q> QueryPairs<'q> {
    pub fn parse(query: &'q str) -> Self {
        QueryPairs { pairs: query.split('&').filter(|p| !p.is_empty()).map(Cow::Borrowed).collect() }
    }

    fn name_of(pair: &str) -> Cow<'_, str> {
        decode(pair.split_once('=').map_or(pair, |(name, _)| name))
    }

    pub fn remove(&mut self, name: &str) {
        self.pairs.retain(|pair| Self::name_of(pair) != name);
    }

    pub fn add(&mut self, name: &str, value: &str) {
        self.pairs.push(Cow::Owned(format!("{}={}", encode(name), encode(value))));
    }

    /// Replaces every occurrence by one, at the place of the first (or at the end).
    pub fn set(&mut self, name: &str, value: &str) {
        let pair = Cow::Owned(format!("{}={}", encode(name), encode(value)));
        match self.pairs.iter().position(|p| Self::name_of(p) == name) {
            Some(at) => {
                self.remove(name);
                self.pairs.insert(at.min(self.pairs.len()), pair);
            }
            None => self.pairs.push(pair),
        }
    }

    /// `path` with this query appended (no `?` when it is empty).
    pub fn to_path(&self, path: &str) -> String {
        if self.pairs.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", crate::join::join(&self.pairs, "&"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_found_by_decoded_name_first_value_first() {
        let query = "a=1&b=x%20y&a=2&c&d=&e+f=g+h&bad=%zz&utf=%C3%A9";
        assert_eq!(query_param(query, "a").as_deref(), Some("1"));
        assert_eq!(query_param(query, "b").as_deref(), Some("x y"));
        assert_eq!(query_param(query, "c").as_deref(), Some(""));
        assert_eq!(query_param(query, "d").as_deref(), Some(""));
        assert_eq!(query_param(query, "e f").as_deref(), Some("g h"));
        assert_eq!(query_param(query, "bad").as_deref(), Some("%zz"));
        assert_eq!(query_param(query, "utf").as_deref(), Some("é"));
        assert_eq!(query_param(query, "z"), None);
        assert_eq!(decode("%"), "%");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn edits_keep_other_parameters_and_encode_what_they_write() {
        let mut q = QueryPairs::parse("a=1&b=2&a=3");
        q.set("a", "x y&z");
        q.add("new", "é");
        q.remove("b");
        assert_eq!(q.to_path("/p"), "/p?a=x%20y%26z&new=%C3%A9");
        let mut empty = QueryPairs::parse("");
        assert_eq!(empty.to_path("/p"), "/p");
        empty.remove("x");
        assert_eq!(empty.to_path("/p"), "/p");
    }
}
