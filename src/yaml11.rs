//! YAML that means the same to a YAML 1.1 reader (kubectl, PyYAML, go-yaml v2) as to a YAML 1.2 one (serde_yaml,
//! the module's reader).
//!
//! The two disagree on plain scalars: 1.1 reads `on`, `off`, `yes`, `no`, `y`, `n` as booleans, `0777` as
//! octal, `1_000` and `1:30` as integers, `2001-12-14` as a date, `<<` as a merge key. A manifest written with
//! `canary: on` reaches the cluster as `canary: true`, the module refuses the document, and the proxy answers 500.
//! So every string here is written plain only when it starts with a letter, holds nothing but letters, digits,
//! spaces and `-._/`, and is not one of the boolean or null words; every other string is double-quoted. That
//! quotes some strings that did not need it, which is harmless; missing one is an outage.
//!
//! Numbers are written in the one form both versions read as the same number (a float always has a `.` and a
//! signed exponent, which 1.1 requires). Tags cannot be written: `pluginConfig` reaches Envoy as JSON, where a
//! tag has no meaning.

use std::fmt::{self, Write};

use serde_yaml::Value;

/// A value that has no YAML form meaning the same to every reader, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// A mapping or sequence used as a mapping key.
    ComplexKey { path: String },
    /// A tagged value (`!name value`).
    Tagged { path: String, tag: String },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::ComplexKey { path } => {
                write!(f, "{}: a mapping key must be text or a number, not a mapping or a list", shown(path))
            }
            WriteError::Tagged { path, tag } => write!(
                f,
                "{}: the YAML tag {tag} has no JSON form (Istio passes pluginConfig as JSON); remove the tag",
                shown(path)
            ),
        }
    }
}

impl std::error::Error for WriteError {}

fn shown(path: &str) -> &str {
    if path.is_empty() {
        "the document"
    } else {
        path
    }
}

/// `value` as a block-style YAML document, every scalar read alike by YAML 1.1 and 1.2 readers.
pub fn to_string(value: &Value) -> Result<String, WriteError> {
    let mut writer = Writer { out: String::new(), path: Vec::new() };
    match value {
        Value::Mapping(map) if !map.is_empty() => writer.mapping(map, 0, false)?,
        Value::Sequence(items) if !items.is_empty() => writer.sequence(items, 0, false)?,
        _ => {
            writer.inline(value)?;
            writer.out.push('\n');
        }
    }
    Ok(writer.out)
}

/// A string scalar: plain when every reader takes it for this string, double-quoted otherwise.
pub fn string(text: &str) -> String {
    if reads_as_itself(text) {
        text.to_owned()
    } else {
        double_quoted(text)
    }
}

/// Whether `text`, written plain, is the same string to YAML 1.1 and 1.2 readers, in a key or a value.
///
/// A letter first rules out every number, date, sexagesimal, `.inf`/`.nan`, `~`, `<<`, `=` and indicator; the
/// allowed characters rule out comments, `: ` and flow indicators; what remains are the boolean and null words.
pub fn reads_as_itself(text: &str) -> bool {
    let Some(first) = text.chars().next() else { return false };
    first.is_ascii_alphabetic()
        && !text.ends_with(' ')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '.' | '_' | '/'))
        && !is_boolean_or_null_word(text)
}

/// The words YAML 1.1 or 1.2 read as a boolean or null (compared without case: quoting `nULL` costs nothing).
fn is_boolean_or_null_word(text: &str) -> bool {
    const WORDS: [&str; 9] = ["y", "n", "yes", "no", "on", "off", "true", "false", "null"];
    WORDS.iter().any(|word| word.eq_ignore_ascii_case(text))
}

/// A double-quoted scalar. Escapes what a reader would not keep as written: quotes, backslashes, control
/// characters, and the characters YAML 1.1 takes for line breaks (U+0085, U+2028, U+2029) or drops (BOM).
pub fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                // (Writing to a String cannot fail.)
                let _ = match u32::from(c) {
                    code @ 0..=0xff => write!(out, "\\x{code:02X}"),
                    code @ 0x100..=0xffff => write!(out, "\\u{code:04X}"),
                    code => write!(out, "\\U{code:08X}"),
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

/// A number as both versions read it. Integers are plain decimal; a float always has a fraction and, when it
/// has an exponent, a signed one (YAML 1.1 reads `1e22` as a string, `1.0e+22` as the number).
pub fn number(number: &serde_yaml::Number) -> String {
    if let Some(integer) = number.as_i64() {
        return integer.to_string();
    }
    if let Some(integer) = number.as_u64() {
        return integer.to_string();
    }
    let float = number.as_f64().unwrap_or(f64::NAN);
    if float.is_nan() {
        return ".nan".into();
    }
    if float.is_infinite() {
        return if float > 0.0 { ".inf".into() } else { "-.inf".into() };
    }
    // Rust's shortest round-trip form: `0.5`, `1.0`, `1e22`, `1.5e-7`.
    let shortest = format!("{float:?}");
    let (mantissa, exponent) = match shortest.split_once('e') {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (shortest.as_str(), None),
    };
    let mut out = mantissa.to_owned();
    if !out.contains('.') {
        out.push_str(".0");
    }
    if let Some(exponent) = exponent {
        out.push('e');
        if !exponent.starts_with('-') {
            out.push('+');
        }
        out.push_str(exponent);
    }
    out
}

/// Writes block-style YAML, tracking the path of the value in hand for errors.
struct Writer {
    out: String,
    path: Vec<String>,
}

impl Writer {
    /// A scalar, or an empty collection (`{}`, `[]`), on the current line.
    fn inline(&mut self, value: &Value) -> Result<(), WriteError> {
        let text = self.scalar(value)?;
        self.out.push_str(&text);
        Ok(())
    }

    /// The text of a scalar or an empty collection.
    fn scalar(&self, value: &Value) -> Result<String, WriteError> {
        Ok(match value {
            Value::Null => "null".to_owned(),
            Value::Bool(flag) => flag.to_string(),
            Value::Number(n) => number(n),
            Value::String(text) => string(text),
            Value::Mapping(_) => "{}".to_owned(),
            Value::Sequence(_) => "[]".to_owned(),
            Value::Tagged(tagged) => {
                return Err(WriteError::Tagged { path: self.path.join("."), tag: tagged.tag.to_string() })
            }
        })
    }

    /// The entries of a non-empty mapping at `indent`; the first on the current line when `continues_line`
    /// (after a sequence's `- `).
    fn mapping(&mut self, map: &serde_yaml::Mapping, indent: usize, continues_line: bool) -> Result<(), WriteError> {
        for (index, (key, value)) in map.iter().enumerate() {
            if index > 0 || !continues_line {
                self.pad(indent);
            }
            if matches!(key, Value::Mapping(_) | Value::Sequence(_)) {
                return Err(WriteError::ComplexKey { path: self.path.join(".") });
            }
            let key_text = self.scalar(key)?;
            self.out.push_str(&key_text);
            self.out.push(':');
            self.path.push(match key {
                Value::String(text) => text.clone(),
                _ => key_text,
            });
            match value {
                Value::Mapping(inner) if !inner.is_empty() => {
                    self.out.push('\n');
                    self.mapping(inner, indent + 2, false)?;
                }
                // Lists under a key start at the key's column, as kubectl writes them.
                Value::Sequence(items) if !items.is_empty() => {
                    self.out.push('\n');
                    self.sequence(items, indent, false)?;
                }
                _ => {
                    self.out.push(' ');
                    self.inline(value)?;
                    self.out.push('\n');
                }
            }
            self.path.pop();
        }
        Ok(())
    }

    /// The items of a non-empty sequence at `indent`, each after `- `.
    fn sequence(&mut self, items: &[Value], indent: usize, continues_line: bool) -> Result<(), WriteError> {
        for (index, item) in items.iter().enumerate() {
            if index > 0 || !continues_line {
                self.pad(indent);
            }
            self.out.push_str("- ");
            self.path.push(index.to_string());
            match item {
                Value::Mapping(inner) if !inner.is_empty() => self.mapping(inner, indent + 2, true)?,
                Value::Sequence(inner) if !inner.is_empty() => self.sequence(inner, indent + 2, true)?,
                _ => {
                    self.inline(item)?;
                    self.out.push('\n');
                }
            }
            self.path.pop();
        }
        Ok(())
    }

    fn pad(&mut self, indent: usize) {
        self.out.extend(std::iter::repeat_n(' ', indent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    /// Every string YAML 1.1 or 1.2 reads as something else when plain; each must come out quoted.
    const CHANGES_MEANING: &[&str] = &[
        "y",
        "Y",
        "yes",
        "Yes",
        "YES",
        "n",
        "N",
        "no",
        "No",
        "NO",
        "true",
        "True",
        "TRUE",
        "false",
        "False",
        "FALSE",
        "on",
        "On",
        "ON",
        "off",
        "Off",
        "OFF",
        "~",
        "null",
        "Null",
        "NULL",
        "",
        "0b1010",
        "0x1F",
        "0o17",
        "0777",
        "1_000",
        "1:30",
        "+1",
        "-0",
        "12",
        ".inf",
        "-.Inf",
        ".NaN",
        "1e3",
        "1_000.5",
        "6.8523015e+5",
        "190:20:30.15",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "<<",
        "=",
        " lead",
        "trail ",
        "a: b",
        "a #b",
        "#c",
        "- x",
        "? x",
        "[x]",
        "{x}",
        "*x",
        "&x",
        "!x",
        "|x",
        ">x",
        "'x",
        "\"x",
        "%x",
        "@x",
        "`x",
        "a,b",
        "x\ny",
        "tab\there",
        "---",
        "...",
    ];

    #[test]
    fn strings_that_change_meaning_are_quoted() {
        for text in CHANGES_MEANING {
            let written = string(text);
            assert!(written.starts_with('"'), "{text:?} was written plain: {written}");
            assert_eq!(serde_yaml::from_str::<String>(&written).unwrap(), *text, "{written}");
        }
    }

    #[test]
    fn ordinary_words_stay_plain() {
        for text in ["canary", "x-route-to", "FAIL_RELOAD", "extensions.istio.io/v1alpha1", "Yesterday", "no way"] {
            assert_eq!(string(text), text);
        }
    }

    #[test]
    fn escapes_what_a_reader_would_not_keep() {
        assert_eq!(double_quoted("a\"b\\c\u{0}\u{85}\u{2028}\u{feff}é"), r#""a\"b\\c\x00\x85\u2028\uFEFFé""#);
        let text = "line\r\n\u{85}\u{2028}\u{2029}\u{7f}\u{1F600}";
        assert_eq!(serde_yaml::from_str::<String>(&double_quoted(text)).unwrap(), text);
    }

    #[test]
    fn floats_have_a_fraction_and_a_signed_exponent() {
        let written = |text: &str| to_string(&yaml(text)).unwrap();
        assert_eq!(written("1e22"), "1.0e+22\n");
        assert_eq!(written("1.5e-7"), "1.5e-7\n");
        assert_eq!(written("2.0"), "2.0\n");
        assert_eq!(written("0.5"), "0.5\n");
        assert_eq!(written("-7"), "-7\n");
        assert_eq!(written(".inf"), ".inf\n");
    }

    #[test]
    fn writes_block_style_and_reads_back_the_same() {
        let value = yaml(
            "a: on\nb: [1, {c: '0777', d: []}, [x, 'y']]\ne: {}\nf: {g: {h: '1:30'}}\n'<<': {}\n2: two\ntrue: ok\n",
        );
        let written = to_string(&value).unwrap();
        assert_eq!(
            written,
            "a: \"on\"\nb:\n- 1\n- c: \"0777\"\n  d: []\n- - x\n  - \"y\"\ne: {}\nf:\n  g:\n    h: \"1:30\"\n\"<<\": {}\n2: two\ntrue: ok\n"
        );
        assert_eq!(yaml(&written), value);
    }

    #[test]
    fn tags_and_complex_keys_are_refused_with_their_place() {
        let tagged = to_string(&yaml("a:\n  - {b: !x 1}\n")).unwrap_err();
        assert_eq!(tagged, WriteError::Tagged { path: "a.0.b".into(), tag: "!x".into() });
        assert!(tagged.to_string().starts_with("a.0.b: the YAML tag !x"), "{tagged}");
        let complex = to_string(&yaml("a: {? [1] : 2}\n")).unwrap_err();
        assert_eq!(complex, WriteError::ComplexKey { path: "a".into() });
    }
}
