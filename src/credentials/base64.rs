//! Base64 (RFC 4648): the standard alphabet (§4, `+/`) of `Authorization: Basic` (RFC 7617) and of the salts and
//! hashes `rulefilter hash-password` writes, and the URL alphabet (§5, `-_`) of JWTs, which the simulated
//! `jwt_authn` reads. A few lines of our own rather than a crate: the module only ever decodes short values.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The two characters after `0-9`: `+/` (standard) or `-_` (URL and file-name safe).
#[derive(Clone, Copy)]
struct Last2(u8, u8);

const STANDARD: Last2 = Last2(b'+', b'/');
const URL: Last2 = Last2(b'-', b'_');

/// The 6-bit value of one base64 character.
fn sextet(c: u8, last: Last2) -> Option<u32> {
    let value = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        _ if c == last.0 => 62,
        _ if c == last.1 => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// Decodes `text`; `=` padding is optional but, when present, must be right. `None` for anything else
/// (a character outside the alphabet, a length no encoding has, padding in the middle).
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let unpadded = match bytes.len() % 4 {
        0 if bytes.ends_with(b"==") => bytes.get(..bytes.len() - 2)?,
        0 if bytes.ends_with(b"=") => bytes.get(..bytes.len() - 1)?,
        _ => bytes,
    };
    decode_unpadded(unpadded, STANDARD)
}

/// Decodes unpadded base64url (RFC 4648 §5), as the parts of a JWT are written (RFC 7515: never padded).
pub fn decode_url(text: &str) -> Option<Vec<u8>> {
    decode_unpadded(text.as_bytes(), URL)
}

fn decode_unpadded(unpadded: &[u8], last: Last2) -> Option<Vec<u8>> {
    if unpadded.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(unpadded.len() * 3 / 4);
    for chunk in unpadded.chunks(4) {
        let mut bits = 0u32;
        for &c in chunk {
            bits = (bits << 6) | sextet(c, last)?;
        }
        // A chunk of n characters carries n*6 bits, of which (n-1) whole bytes; the rest must be zero.
        let spare = chunk.len() * 6 % 8;
        if bits & ((1 << spare) - 1) != 0 {
            return None;
        }
        bits >>= spare;
        let whole = chunk.len() - 1;
        for i in (0..whole).rev() {
            out.push((bits >> (8 * i)) as u8);
        }
    }
    Some(out)
}

/// Encodes `bytes` without padding (the PHC string form `hash-password` writes).
pub fn encode_unpadded(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut bits = 0u32;
        for &b in chunk {
            bits = (bits << 8) | u32::from(b);
        }
        let chars = chunk.len() + 1;
        bits <<= chars * 6 - chunk.len() * 8;
        for i in (0..chars).rev() {
            let index = ((bits >> (6 * i)) & 63) as usize;
            out.push(char::from(ALPHABET.get(index).copied().unwrap_or(b'A')));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4648_vectors_both_ways() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(decode(encoded).as_deref(), Some(plain.as_bytes()), "{encoded}");
            assert_eq!(decode(encoded.trim_end_matches('=')).as_deref(), Some(plain.as_bytes()), "{encoded}");
            assert_eq!(encode_unpadded(plain.as_bytes()), encoded.trim_end_matches('='));
        }
        // RFC 7617's example.
        assert_eq!(decode("QWxhZGRpbjpvcGVuIHNlc2FtZQ==").as_deref(), Some(&b"Aladdin:open sesame"[..]));
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode_unpadded(&all)), Some(all));
    }

    #[test]
    fn malformed_input_is_refused() {
        for bad in ["Z", "Zm9v=", "Zm=9", "Zm9v Yg==", "Zm9vYg===", "Zh==", "Zm9=", "@@@@", "é", "Zg=", "="] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_url_alphabet_is_read_unpadded() {
        assert_eq!(decode_url("eyJhIjoxfQ").unwrap(), br#"{"a":1}"#);
        assert_eq!(decode_url("-_8").unwrap(), [0xfb, 0xff]);
        for bad in ["a=b", "Zg==", "+/8", "Z"] {
            assert_eq!(decode_url(bad), None, "{bad:?}");
        }
        assert_eq!(decode("-_8"), None, "the standard alphabet has no - or _");
    }
}
