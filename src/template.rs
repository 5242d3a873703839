//! Templated values: `${…}` references inside header values, bodies, locations and rewrite targets.
//!
//! A template is split once, at compile time, into literal text and references; the compiler resolves each
//! reference to a value the engine can fetch (see [`crate::compile`]). `$$` writes a literal `$`; a `$` not
//! followed by `{` or `$` is literal too. A reference may name an encoding after `|` (`${query.q|url}`), which
//! applies to whatever value the reference stands for.

/// One piece of a template as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'t> {
    Text(String),
    /// The text between `${` and `}`.
    Reference(Reference<'t>),
}

/// A `${…}` reference: what it names, and the encoding asked for after `|`, if any (checked by the compiler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference<'t> {
    pub name: &'t str,
    pub encoding: Option<&'t str>,
}

impl std::fmt::Display for Reference<'_> {
    /// As written between `${` and `}`: `query.q` or `query.q|url`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)?;
        match self.encoding {
            Some(encoding) => write!(f, "|{encoding}"),
            None => Ok(()),
        }
    }
}

/// Splits `text` into literal text and references; the error says what is malformed.
pub fn parse(text: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let (before, from_dollar) = rest.split_at(at);
        literal.push_str(before);
        if let Some(after) = from_dollar.strip_prefix("$$") {
            literal.push('$');
            rest = after;
        } else if let Some(after) = from_dollar.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| format!("unterminated `${{` in {text:?}"))?;
            let (reference, after_brace) = after.split_at(end);
            let reference = match reference.split_once('|') {
                Some((name, encoding)) => Reference { name: name.trim(), encoding: Some(encoding.trim()) },
                None => Reference { name: reference.trim(), encoding: None },
            };
            if reference.name.is_empty() {
                return Err(format!("empty `${{}}` in {text:?}"));
            }
            if reference.encoding.is_some_and(str::is_empty) {
                return Err(format!("`|` without an encoding in {text:?}; write e.g. `${{{}|url}}`", reference.name));
            }
            if !literal.is_empty() {
                segments.push(Segment::Text(std::mem::take(&mut literal)));
            }
            segments.push(Segment::Reference(reference));
            rest = after_brace.get(1..).unwrap_or_default();
        } else {
            literal.push('$');
            rest = from_dollar.get(1..).unwrap_or_default();
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        segments.push(Segment::Text(literal));
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(name: &str) -> Segment<'_> {
        Segment::Reference(Reference { name, encoding: None })
    }

    #[test]
    fn references_and_escapes() {
        assert_eq!(
            parse("a ${header.x-user} b${ path }").unwrap(),
            vec![Segment::Text("a ".into()), plain("header.x-user"), Segment::Text(" b".into()), plain("path")]
        );
        assert_eq!(parse("cost: $$5 or $6").unwrap(), vec![Segment::Text("cost: $5 or $6".into())]);
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("x$").unwrap(), vec![Segment::Text("x$".into())]);
    }

    #[test]
    fn an_encoding_follows_a_bar() {
        assert_eq!(
            parse("/search?q=${query.q|url}&${ path | json }").unwrap(),
            vec![
                Segment::Text("/search?q=".into()),
                Segment::Reference(Reference { name: "query.q", encoding: Some("url") }),
                Segment::Text("&".into()),
                Segment::Reference(Reference { name: "path", encoding: Some("json") }),
            ]
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        assert_eq!(parse("a ${path").unwrap_err(), r#"unterminated `${` in "a ${path""#);
        assert_eq!(parse("${ }").unwrap_err(), r#"empty `${}` in "${ }""#);
        assert_eq!(parse("${|url}").unwrap_err(), r#"empty `${}` in "${|url}""#);
        assert_eq!(
            parse("${path| }").unwrap_err(),
            r#"`|` without an encoding in "${path| }"; write e.g. `${path|url}`"#
        );
    }
}
