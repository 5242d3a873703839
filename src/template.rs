//! Templated values: `${…}` references inside header values, bodies, locations and rewrite targets.
//!
//! A template is split once, at compile time, into literal text and references; the compiler resolves each
//! reference to a value the engine can fetch (see [`crate::compile`]). `$$` writes a literal `$`; a `$` not
//! followed by `{` or `$` is literal too.

/// One piece of a template as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'t> {
    Text(String),
    /// The text between `${` and `}`.
    Reference(&'t str),
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
            let reference = reference.trim();
            if reference.is_empty() {
                return Err(format!("empty `${{}}` in {text:?}"));
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

    #[test]
    fn references_and_escapes() {
        assert_eq!(
            parse("a ${header.x-user} b${ path }").unwrap(),
            vec![
                Segment::Text("a ".into()),
                Segment::Reference("header.x-user"),
                Segment::Text(" b".into()),
                Segment::Reference("path")
            ]
        );
        assert_eq!(parse("cost: $$5 or $6").unwrap(), vec![Segment::Text("cost: $5 or $6".into())]);
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("x$").unwrap(), vec![Segment::Text("x$".into())]);
    }

    #[test]
    fn malformed_references_are_errors() {
        assert_eq!(parse("a ${path").unwrap_err(), r#"unterminated `${` in "a ${path""#);
        assert_eq!(parse("${ }").unwrap_err(), r#"empty `${}` in "${ }""#);
    }
}
