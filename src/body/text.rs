//! Bodies as text: searching and literal replacement, bounded.

/// Replaces every occurrence of `from` in `body` with `to`, left to right, never re-reading what was
/// written. Returns `None` when nothing was found (the body is left as it is), and stops replacing once the
/// result would pass `max_len` bytes: an edit cannot make a body grow without bound.
pub fn replace_all(body: &[u8], from: &[u8], to: &[u8], max_len: usize) -> Option<Vec<u8>> {
    if from.is_empty() {
        return None;
    }
    let mut out: Option<Vec<u8>> = None;
    let mut rest = body;
    while let Some(at) = find(rest, from) {
        let (before, after) = (rest.get(..at)?, rest.get(at + from.len()..)?);
        let written = out.get_or_insert_with(|| Vec::with_capacity(body.len()));
        if written.len() + before.len() + to.len() + after.len() > max_len {
            break;
        }
        written.extend_from_slice(before);
        written.extend_from_slice(to);
        rest = after;
    }
    let mut out = out?;
    out.extend_from_slice(rest);
    Some(out)
}

/// The first position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// A body as text for `contains` and `regex` tests: invalid UTF-8 becomes U+FFFD, as header values do.
pub fn as_text(body: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_is_replaced_once() {
        let body = b"<a href=\"http://internal/a\">http://internal/b</a>";
        let out = replace_all(body, b"http://internal", b"https://www.example.com", 1024).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<a href=\"https://www.example.com/a\">https://www.example.com/b</a>"
        );
        // The replacement contains the pattern: it is not read again.
        assert_eq!(replace_all(b"aa", b"a", b"aa", 100).unwrap(), b"aaaa");
    }

    #[test]
    fn nothing_found_or_an_empty_pattern_leaves_the_body_alone() {
        assert_eq!(replace_all(b"hello", b"bye", b"x", 100), None);
        assert_eq!(replace_all(b"hello", b"", b"x", 100), None);
    }

    #[test]
    fn replacing_stops_at_the_size_limit() {
        let out = replace_all(b"a-a-a", b"a", b"bbbb", 10).unwrap();
        // The first replacement gives 8 bytes; a second would make 11, so the rest stays as it was.
        assert_eq!(out, b"bbbb-a-a");
    }

    #[test]
    fn bytes_are_found() {
        assert_eq!(find(b"hello", b"ll"), Some(2));
        assert_eq!(find(b"hello", b"x"), None);
        assert_eq!(find(b"", b"x"), None);
        assert_eq!(as_text(b"caf\xc3\xa9 \xff"), "café \u{fffd}");
    }
}
