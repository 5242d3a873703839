//! The claims of the token Envoy's `jwt_authn` filter verified, read from the request's dynamic metadata.
//!
//! Istio's `RequestAuthentication` verifies tokens in `jwt_authn`, which runs before the Wasm filter and, with
//! `payload_in_metadata`, leaves the token's payload under the metadata namespace `envoy.filters.http.jwt_authn`
//! (Istio keys it by the issuer). Envoy hands the whole dynamic metadata over as a serialized
//! `envoy.config.core.v3.Metadata`; this module reads the few protobuf messages involved (Metadata, Struct,
//! Value, ListValue) without a protobuf library, once per request, into a flat text of `path NUL value NUL`
//! pairs that conditions and templates then scan without allocating. Nested objects give dotted paths
//! (`org.team`); a list gives one pair per element under the same path (`aud`); numbers are written as JSON
//! writes them (`3`, `1.5`); `null` and values holding a NUL byte are left out.

use std::borrow::Cow;

/// The metadata namespace `jwt_authn` writes.
pub const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";

/// How deep objects and lists may nest before the rest is left out: a token is small, and the walk must stay
/// bounded whatever Envoy hands over.
const MAX_DEPTH: usize = 16;

/// The flattened claims of the first payload under [`JWT_AUTHN_NAMESPACE`]; `None` when there is none (no
/// token, or a filter without `payload_in_metadata`) or the bytes are no Metadata.
pub fn from_metadata(bytes: &[u8]) -> Option<String> {
    // Metadata { map<string, Struct> filter_metadata = 1; … }
    let namespace = map_entries(bytes, 1).find(|(key, _)| *key == JWT_AUTHN_NAMESPACE)?.1;
    // The namespace's Struct holds one field per provider that verified a token: its payload, a Struct.
    let payload = map_entries(namespace, 1).find_map(|(_, value)| struct_of(value))?;
    let mut flat = String::new();
    flatten_struct(payload, "", 0, &mut flat);
    Some(flat)
}

/// The values at `path`, in order (one per list element).
pub fn values<'f, 'p>(flat: &'f str, path: &'p str) -> impl Iterator<Item = &'f str> + use<'f, 'p> {
    let mut parts = flat.split('\0');
    std::iter::from_fn(move || loop {
        let key = parts.next()?;
        let value = parts.next()?;
        if key == path {
            return Some(value);
        }
    })
}

/// The value at `path` as templates render it: list elements joined with `,`; `None` when absent.
pub fn joined<'f>(flat: &'f str, path: &str) -> Option<Cow<'f, str>> {
    let mut found = values(flat, path);
    let first = found.next()?;
    match found.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut all = format!("{first},{second}");
            for more in found {
                all.push(',');
                all.push_str(more);
            }
            Some(Cow::Owned(all))
        }
    }
}

// ----- reading protobuf -----

/// One field of a message: its number and its payload.
enum Field<'b> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'b [u8]),
}

/// The fields of a message, in order; stops at the first malformed byte.
fn fields(mut bytes: &[u8]) -> impl Iterator<Item = (u64, Field<'_>)> {
    std::iter::from_fn(move || {
        let key = varint(&mut bytes)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(&mut bytes)?),
            1 => {
                let (head, rest) = bytes.split_first_chunk::<8>()?;
                bytes = rest;
                Field::Fixed64(*head)
            }
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                let (head, rest) = (bytes.get(..len)?, bytes.get(len..)?);
                bytes = rest;
                Field::Bytes(head)
            }
            5 => {
                bytes = bytes.get(4..)?;
                Field::Varint(0)
            }
            _ => return None,
        };
        Some((key >> 3, field))
    })
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The length-delimited fields numbered `number`.
fn messages(bytes: &[u8], number: u64) -> impl Iterator<Item = &[u8]> {
    fields(bytes).filter_map(move |(n, field)| match field {
        Field::Bytes(b) if n == number => Some(b),
        _ => None,
    })
}

/// The entries of map field `number` (each entry: key = 1, a string; value = 2, a message).
fn map_entries(bytes: &[u8], number: u64) -> impl Iterator<Item = (&str, &[u8])> {
    messages(bytes, number).filter_map(|entry| {
        let key = messages(entry, 1).next().unwrap_or_default();
        let value = messages(entry, 2).next().unwrap_or_default();
        Some((std::str::from_utf8(key).ok()?, value))
    })
}

/// The Struct inside a `google.protobuf.Value`, if it holds one (`struct_value` = 5).
fn struct_of(value: &[u8]) -> Option<&[u8]> {
    messages(value, 5).next()
}

/// Writes the pairs of a Struct (`fields` = 1) under `prefix`.
fn flatten_struct(bytes: &[u8], prefix: &str, depth: usize, flat: &mut String) {
    if depth > MAX_DEPTH {
        return;
    }
    for (key, value) in map_entries(bytes, 1) {
        let path = if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
        flatten_value(value, &path, depth + 1, flat);
    }
}

/// Writes a `google.protobuf.Value`: null = 1, number = 2, string = 3, bool = 4, struct = 5, list = 6.
fn flatten_value(bytes: &[u8], path: &str, depth: usize, flat: &mut String) {
    if depth > MAX_DEPTH || path.contains('\0') {
        return;
    }
    for (number, field) in fields(bytes) {
        match (number, field) {
            (2, Field::Fixed64(raw)) => push(flat, path, &number_text(f64::from_le_bytes(raw))),
            (3, Field::Bytes(text)) => {
                if let Ok(text) = std::str::from_utf8(text) {
                    push(flat, path, text);
                }
            }
            (4, Field::Varint(b)) => push(flat, path, if b != 0 { "true" } else { "false" }),
            (5, Field::Bytes(inner)) => flatten_struct(inner, path, depth, flat),
            (6, Field::Bytes(list)) => {
                for element in messages(list, 1) {
                    flatten_value(element, path, depth + 1, flat);
                }
            }
            _ => {}
        }
    }
}

fn push(flat: &mut String, path: &str, value: &str) {
    if value.contains('\0') {
        return;
    }
    flat.push_str(path);
    flat.push('\0');
    flat.push_str(value);
    flat.push('\0');
}

/// A JSON number as JSON writes it: whole numbers without a fraction (`exp` reads `4102444800`).
pub(crate) fn number_text(n: f64) -> String {
    // 2^53: beyond it a double no longer holds every whole number exactly.
    if n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_992.0 {
        #[allow(clippy::cast_possible_truncation)]
        let whole = n as i64;
        whole.to_string()
    } else {
        n.to_string()
    }
}

// ----- writing protobuf (the simulated proxy's jwt_authn) -----

/// The serialized dynamic metadata `jwt_authn` leaves for a verified token with these claims, keyed by
/// `provider` (Istio: the issuer): what Envoy hands the module for the property `metadata`.
#[cfg(not(target_arch = "wasm32"))]
pub fn metadata_for(provider: &str, claims: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    let payload = encode_struct(claims);
    let mut namespace = Vec::new();
    put_bytes(&mut namespace, 1, &map_entry(provider, &put_value_struct(&payload)));
    let mut metadata = Vec::new();
    put_bytes(&mut metadata, 1, &map_entry(JWT_AUTHN_NAMESPACE, &namespace));
    metadata
}

#[cfg(not(target_arch = "wasm32"))]
fn put_value_struct(inner: &[u8]) -> Vec<u8> {
    let mut value = Vec::new();
    put_bytes(&mut value, 5, inner);
    value
}

#[cfg(not(target_arch = "wasm32"))]
fn encode_struct(object: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in object {
        put_bytes(&mut out, 1, &map_entry(key, &encode_value(value)));
    }
    out
}

#[cfg(not(target_arch = "wasm32"))]
fn encode_value(value: &serde_json::Value) -> Vec<u8> {
    use serde_json::Value;
    let mut out = Vec::new();
    match value {
        Value::Null => {
            put_varint(&mut out, 1 << 3);
            put_varint(&mut out, 0);
        }
        Value::Number(n) => {
            put_varint(&mut out, (2 << 3) | 1);
            out.extend_from_slice(&n.as_f64().unwrap_or_default().to_le_bytes());
        }
        Value::String(s) => put_bytes(&mut out, 3, s.as_bytes()),
        Value::Bool(b) => {
            put_varint(&mut out, 4 << 3);
            put_varint(&mut out, u64::from(*b));
        }
        Value::Object(object) => put_bytes(&mut out, 5, &encode_struct(object)),
        Value::Array(items) => {
            let mut list = Vec::new();
            for item in items {
                put_bytes(&mut list, 1, &encode_value(item));
            }
            put_bytes(&mut out, 6, &list);
        }
    }
    out
}

#[cfg(not(target_arch = "wasm32"))]
fn map_entry(key: &str, value: &[u8]) -> Vec<u8> {
    let mut entry = Vec::new();
    put_bytes(&mut entry, 1, key.as_bytes());
    put_bytes(&mut entry, 2, value);
    entry
}

#[cfg(not(target_arch = "wasm32"))]
fn put_bytes(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    put_varint(out, (number << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(not(target_arch = "wasm32"))]
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Envoy 1.40 handed a probe module for `metadata` after jwt_authn verified a token with
    /// `{"groups":["admin","dev"],"b":true,"iss":…,"sub":"alice","org":{"level":3,"team":"payments"},
    /// "https://example.com/roles":"x","n":5,"aud":["api","web"],"f":1.5,"exp":4102444800}`.
    const FROM_ENVOY: &str = "0ac2020a1c656e766f792e66696c746572732e687474702e6a77745f617574686e12a1020a9e020a1a68747470733a2f2f6973737565722e6578616d706c652e636f6d12ff012afc010a1c0a0667726f757073121232100a071a0561646d696e0a051a036465760a070a0162120220010a230a03697373121c1a1a68747470733a2f2f6973737565722e6578616d706c652e636f6d0a0e0a0373756212071a05616c6963650a310a036f7267122a2a280a120a056c6576656c12091100000000000008400a120a047465616d120a1a087061796d656e74730a200a1968747470733a2f2f6578616d706c652e636f6d2f726f6c657312031a01780a0e0a016e12091100000000000014400a170a036175641210320e0a051a036170690a051a037765620a0e0a0166120911000000000000f83f0a100a03657870120911000000e0ca90ee41";

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn reads_what_envoy_hands_over() {
        let flat = from_metadata(&hex(FROM_ENVOY)).unwrap();
        assert_eq!(joined(&flat, "sub").as_deref(), Some("alice"));
        assert_eq!(joined(&flat, "iss").as_deref(), Some("https://issuer.example.com"));
        assert_eq!(values(&flat, "aud").collect::<Vec<_>>(), ["api", "web"]);
        assert_eq!(joined(&flat, "aud").as_deref(), Some("api,web"));
        assert_eq!(joined(&flat, "org.team").as_deref(), Some("payments"));
        assert_eq!(joined(&flat, "org.level").as_deref(), Some("3"));
        assert_eq!(joined(&flat, "https://example.com/roles").as_deref(), Some("x"));
        assert_eq!(joined(&flat, "exp").as_deref(), Some("4102444800"));
        assert_eq!(joined(&flat, "f").as_deref(), Some("1.5"));
        assert_eq!(joined(&flat, "b").as_deref(), Some("true"));
        assert_eq!(joined(&flat, "org"), None);
        assert_eq!(joined(&flat, "missing"), None);
    }

    #[test]
    fn what_the_simulated_proxy_writes_reads_back() {
        let claims = serde_json::json!({"sub": "bob", "aud": "api", "org": {"team": "x", "tags": [1, 2.5]}, "n": null});
        let bytes = metadata_for("https://issuer", claims.as_object().unwrap());
        let flat = from_metadata(&bytes).unwrap();
        assert_eq!(joined(&flat, "sub").as_deref(), Some("bob"));
        assert_eq!(joined(&flat, "aud").as_deref(), Some("api"));
        assert_eq!(joined(&flat, "org.tags").as_deref(), Some("1,2.5"));
        assert_eq!(joined(&flat, "n"), None);
    }

    #[test]
    fn no_token_or_garbage_reads_as_absent() {
        assert_eq!(from_metadata(&[]), None);
        assert_eq!(from_metadata(&[0xff, 0xff, 0xff]), None);
        // Metadata of another filter only.
        let mut other = Vec::new();
        put_bytes(&mut other, 1, &map_entry("istio_authn", &[]));
        assert_eq!(from_metadata(&other), None);
        for cut in 0..hex(FROM_ENVOY).len() {
            let _ = from_metadata(&hex(FROM_ENVOY)[..cut]);
        }
    }
}
