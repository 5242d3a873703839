//! Bodies as JSON: fields addressed by JSON Pointer (RFC 6901, `/user/role`, `~1` for `/`, `~0` for `~`).
//!
//! Pointers are parsed once, when the document is compiled; a request only walks them.

use serde_json::Value;

/// A parsed JSON Pointer: the reference tokens, unescaped. The empty pointer `""` is the whole document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    tokens: Vec<Box<str>>,
}

impl Pointer {
    /// Parses `/a/b~1c`; the reason when it is not a pointer.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        if text.is_empty() {
            return Ok(Pointer { tokens: Vec::new() });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("a JSON Pointer starts with `/` (`/{text}`)"));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            tokens.push(unescape(raw).ok_or_else(|| {
                format!("`~` in a JSON Pointer must be `~0` (for `~`) or `~1` (for `/`); `{raw}` is neither")
            })?);
        }
        Ok(Pointer { tokens })
    }

    /// The value at this pointer, if there is one.
    pub fn get<'v>(&self, document: &'v Value) -> Option<&'v Value> {
        self.tokens.iter().try_fold(document, |value, token| match value {
            Value::Object(map) => map.get(&**token),
            Value::Array(items) => items.get(array_index(token)?),
            _ => None,
        })
    }

    /// Sets the value at this pointer: replaces a member or element, adds a member to an existing object, or
    /// appends to an array with `-`. Missing objects on the way are created. Returns whether it was set (not
    /// when the way crosses a number, a string, or an array index past its end).
    pub fn set(&self, document: &mut Value, new: Value) -> bool {
        let Some((last, parents)) = self.tokens.split_last() else {
            *document = new;
            return true;
        };
        let mut value = document;
        for token in parents {
            value = match value {
                Value::Object(map) => map.entry(token.to_string()).or_insert_with(|| Value::Object(Default::default())),
                Value::Array(items) => match array_index(token).and_then(|i| items.get_mut(i)) {
                    Some(item) => item,
                    None => return false,
                },
                _ => return false,
            };
        }
        match value {
            Value::Object(map) => {
                map.insert(last.to_string(), new);
                true
            }
            Value::Array(items) if &**last == "-" => {
                items.push(new);
                true
            }
            Value::Array(items) => match array_index(last).and_then(|i| items.get_mut(i)) {
                Some(item) => {
                    *item = new;
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// Removes the member or element at this pointer; returns whether there was one.
    pub fn remove(&self, document: &mut Value) -> bool {
        let Some((last, parents)) = self.tokens.split_last() else { return false };
        let mut value = document;
        for token in parents {
            let next = match value {
                Value::Object(map) => map.get_mut(&**token),
                Value::Array(items) => array_index(token).and_then(|i| items.get_mut(i)),
                _ => None,
            };
            match next {
                Some(next) => value = next,
                None => return false,
            }
        }
        match value {
            Value::Object(map) => map.remove(&**last).is_some(),
            Value::Array(items) => match array_index(last).filter(|&i| i < items.len()) {
                Some(i) => {
                    items.remove(i);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }
}

impl std::fmt::Display for Pointer {
    /// The pointer as written, escapes restored.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for token in &self.tokens {
            write!(f, "/{}", token.replace('~', "~0").replace('/', "~1"))?;
        }
        Ok(())
    }
}

/// A pointer token as an array index: digits without a leading zero (RFC 6901).
fn array_index(token: &str) -> Option<usize> {
    let canonical = token == "0" || (!token.starts_with('0') && token.bytes().all(|b| b.is_ascii_digit()));
    if canonical {
        token.parse().ok()
    } else {
        None
    }
}

fn unescape(raw: &str) -> Option<Box<str>> {
    if !raw.contains('~') {
        return Some(raw.into());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '~' => match chars.next()? {
                '0' => out.push('~'),
                '1' => out.push('/'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out.into())
}

/// A JSON value as the text string conditions compare: a string as itself (unquoted), anything else as compact
/// JSON (`42`, `true`, `null`, `{"a":1}`).
pub fn as_text(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::String(text) => std::borrow::Cow::Borrowed(text),
        // serde_json::to_string, not `Display`: the same compact text, through the writer edited bodies use
        // (Display would add a second writer and a pretty printer to the module).
        other => std::borrow::Cow::Owned(serde_json::to_string(other).unwrap_or_default()),
    }
}

/// Parses a body as JSON; `None` when it is not JSON (the condition is then false, and a trace says why).
///
/// JSON text is UTF-8, as serde_json's byte reader checks too: read as `str`, a body goes through the same
/// instance of serde_json's parser as the configuration (`crate::json`), where the byte reader compiled a second
/// one into the module (14 KB).
pub fn parse(body: &[u8]) -> Option<Value> {
    serde_json::from_str(std::str::from_utf8(body).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointer(text: &str) -> Pointer {
        Pointer::parse(text).unwrap()
    }

    #[test]
    fn pointers_follow_rfc_6901() {
        let doc = json!({"foo": ["bar", "baz"], "": 0, "a/b": 1, "m~n": 8, "user": {"role": "admin"}});
        assert_eq!(pointer("").get(&doc), Some(&doc));
        assert_eq!(pointer("/foo/0").get(&doc), Some(&json!("bar")));
        assert_eq!(pointer("/").get(&doc), Some(&json!(0)));
        assert_eq!(pointer("/a~1b").get(&doc), Some(&json!(1)));
        assert_eq!(pointer("/m~0n").get(&doc), Some(&json!(8)));
        assert_eq!(pointer("/user/role").get(&doc), Some(&json!("admin")));
        assert_eq!(pointer("/foo/01").get(&doc), None);
        assert_eq!(pointer("/foo/2").get(&doc), None);
        assert_eq!(pointer("/user/role/x").get(&doc), None);
    }

    #[test]
    fn malformed_pointers_are_refused_with_the_reason() {
        assert!(Pointer::parse("user/role").unwrap_err().contains("starts with `/`"));
        assert!(Pointer::parse("/a~2").unwrap_err().contains("`~0`"));
        assert!(Pointer::parse("/a~").is_err());
    }

    #[test]
    fn fields_are_set_created_and_appended() {
        let mut doc = json!({"user": {"role": "admin"}, "tags": ["a"]});
        assert!(pointer("/user/role").set(&mut doc, json!("viewer")));
        assert!(pointer("/meta/checked").set(&mut doc, json!(true)));
        assert!(pointer("/tags/-").set(&mut doc, json!("b")));
        assert!(pointer("/tags/0").set(&mut doc, json!("z")));
        assert!(!pointer("/tags/5").set(&mut doc, json!("no")));
        assert!(!pointer("/user/role/deeper").set(&mut doc, json!(1)));
        assert_eq!(doc, json!({"user": {"role": "viewer"}, "meta": {"checked": true}, "tags": ["z", "b"]}));
    }

    #[test]
    fn fields_are_removed_when_present() {
        let mut doc = json!({"user": {"role": "admin", "password": "x"}, "tags": ["a", "b"]});
        assert!(pointer("/user/password").remove(&mut doc));
        assert!(!pointer("/user/password").remove(&mut doc));
        assert!(pointer("/tags/0").remove(&mut doc));
        assert!(!pointer("").remove(&mut doc));
        assert_eq!(doc, json!({"user": {"role": "admin"}, "tags": ["b"]}));
    }

    #[test]
    fn values_compare_as_text() {
        assert_eq!(as_text(&json!("admin")), "admin");
        assert_eq!(as_text(&json!(42)), "42");
        assert_eq!(as_text(&json!(true)), "true");
        assert_eq!(as_text(&json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(parse(b"{\"a\":"), None);
        assert_eq!(parse(b" [1] "), Some(json!([1])));
    }

    /// What serde_json's byte reader takes and refuses, read through `str`.
    #[test]
    fn a_body_is_json_exactly_when_serde_json_reads_its_bytes_as_json() {
        let bodies: [&[u8]; 10] = [
            b"{\"a\": \"\xc3\xa9\"}",
            b"{\"a\": \"\xff\"}",
            b"{\"a\": 1}\xff",
            b"\xef\xbb\xbf{}",
            b"\"\\ud800\"",
            b"[1, 2] ",
            b"",
            b"{\"a\": 1, \"a\": 2}",
            b"1e400",
            b"\"\xed\xa0\x80\"",
        ];
        for body in bodies {
            assert_eq!(parse(body), serde_json::from_slice::<Value>(body).ok(), "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(parse(b"{\"a\": \"\xc3\xa9\"}"), Some(json!({"a": "é"})));
        assert_eq!(parse(b"{\"a\": \"\xff\"}"), None);
    }
}
