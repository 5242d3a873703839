//! Encodings a template reference can ask for (`${query.q|url}`), so that a value lands in a URL, a JSON
//! string or an HTML page as data, never as syntax. Chosen at compile time; a reference without one is
//! rendered as it is, at no cost.

use std::fmt;

/// How a reference's value is written into its template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A URL component (a query parameter's name or value, one path segment): every byte but the unreserved
    /// `A-Z a-z 0-9 - . _ ~` percent-encoded, so `/ ? & = # + %` and spaces are data (RFC 3986).
    Url,
    /// A path of several segments: as `url`, but `/` is kept.
    Path,
    /// The inside of a JSON string: `"` `\` and control characters escaped.
    Json,
    /// HTML text or a quoted attribute value: `& < > " '` as character references.
    Html,
}

/// The encodings by name, as a message lists them.
pub const KNOWN_ENCODINGS: &str = "url, path, json, html";

impl Encoding {
    /// The encoding named `name`; the error lists the known ones.
    pub fn parse(name: &str) -> Result<Encoding, String> {
        match name {
            "url" => Ok(Encoding::Url),
            "path" => Ok(Encoding::Path),
            "json" => Ok(Encoding::Json),
            "html" => Ok(Encoding::Html),
            _ => Err(format!("unknown encoding `|{name}`; known: {KNOWN_ENCODINGS}")),
        }
    }

    /// Appends `text`, encoded, to `out`.
    pub fn encode_into(self, text: &str, out: &mut String) {
        match self {
            Encoding::Url => percent_encode(text, |_| false, out),
            Encoding::Path => percent_encode(text, |b| b == b'/', out),
            Encoding::Json => {
                for c in text.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                        c => out.push(c),
                    }
                }
            }
            Encoding::Html => {
                for c in text.chars() {
                    match c {
                        '&' => out.push_str("&amp;"),
                        '<' => out.push_str("&lt;"),
                        '>' => out.push_str("&gt;"),
                        '"' => out.push_str("&quot;"),
                        '\'' => out.push_str("&#39;"),
                        c => out.push(c),
                    }
                }
            }
        }
    }

    /// `text`, encoded.
    pub fn encode(self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        self.encode_into(text, &mut out);
        out
    }

    /// Whether the encoded text is percent-encoded, as a query edit writes its values anyway.
    pub fn percent_encodes(self) -> bool {
        matches!(self, Encoding::Url | Encoding::Path)
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Url => "url",
            Encoding::Path => "path",
            Encoding::Json => "json",
            Encoding::Html => "html",
        })
    }
}

/// Percent-encodes every byte of `text` but the unreserved ones and those `keep` accepts.
fn percent_encode(text: &str, keep: impl Fn(u8) -> bool, out: &mut String) {
    let hex = |nibble: u8| char::from_digit(u32::from(nibble), 16).map_or('0', |c| c.to_ascii_uppercase());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') || keep(byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(hex(byte >> 4));
            out.push(hex(byte & 0x0f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_components_keep_only_unreserved_bytes() {
        assert_eq!(Encoding::Url.encode("a b&c=d/e?f#g+h%i~j"), "a%20b%26c%3Dd%2Fe%3Ff%23g%2Bh%25i~j");
        assert_eq!(Encoding::Url.encode("é"), "%C3%A9");
        assert_eq!(Encoding::Path.encode("docs/a b/ü"), "docs/a%20b/%C3%BC");
        assert_eq!(Encoding::Url.encode(""), "");
    }

    #[test]
    fn json_and_html_escape_what_would_end_the_string_or_start_markup() {
        assert_eq!(Encoding::Json.encode("say \"hi\"\\\n\u{1}é"), "say \\\"hi\\\"\\\\\\n\\u0001é");
        assert_eq!(
            Encoding::Html.encode("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn names_are_checked_with_the_list_in_the_error() {
        assert_eq!(Encoding::parse("url"), Ok(Encoding::Url));
        assert_eq!(Encoding::parse("URL").unwrap_err(), "unknown encoding `|URL`; known: url, path, json, html");
        for name in KNOWN_ENCODINGS.split(", ") {
            assert_eq!(Encoding::parse(name).map(|e| e.to_string()).as_deref(), Ok(name));
        }
    }
}
