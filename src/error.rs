//! Configuration errors as data: each one knows the rule and the field it is about, so tools can show it
//! beside the source and the module can log it as one self-contained line.

use std::fmt;

/// The two moments at which rules run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// When the request headers arrive, before anything goes upstream.
    Request,
    /// When the response headers arrive, before anything goes downstream.
    Response,
}

impl Phase {
    /// The document key that holds this phase's rules.
    pub fn key(self) -> &'static str {
        match self {
            Phase::Request => "request",
            Phase::Response => "response",
        }
    }
}

/// Which rule an error is about: its place in the document and, when it could be read, its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLocation {
    pub phase: Phase,
    pub index: usize,
    pub name: Option<String>,
}

/// One problem in a rules document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The rule, or `None` for the document as a whole.
    pub rule: Option<RuleLocation>,
    /// Dotted path of the offending field inside the rule (or the document), e.g. `match.headers.x-user.regex`;
    /// empty when the error is about the rule or document itself.
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn document(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { rule: None, field: field.into(), message: message.into() }
    }

    /// The field's path from the document's root, as [`crate::locate`] writes paths:
    /// `request[0].match.path.regex`.
    pub fn path(&self) -> String {
        match &self.rule {
            Some(rule) if self.field.is_empty() => format!("{}[{}]", rule.phase.key(), rule.index),
            Some(rule) => format!("{}[{}].{}", rule.phase.key(), rule.index, self.field),
            None => self.field.clone(),
        }
    }

    /// A suggestion: for a misspelt name, the nearest of the names the message says are allowed; for a missing
    /// environment variable, where it comes from.
    pub fn hint(&self) -> Option<String> {
        if self.message.contains("the plugin has no environment variable") {
            return Some("set it in the WasmPlugin's spec.vmConfig.env (rulefilter: --env NAME=VALUE)".to_owned());
        }
        if self.message.contains("expected one of `name`, `sha256`, `env`") {
            return Some("an API key is never written in clear: give its `sha256` (`printf %s \"$KEY\" | sha256sum`) or the vmConfig.env variable holding it (`env`)".to_owned());
        }
        let (wrong, choices) = misspelling(&self.message)?;
        let wrong = wrong.to_ascii_lowercase();
        let nearest = choices
            .iter()
            .filter_map(|choice| {
                let lower = choice.to_ascii_lowercase();
                let distance = edit_distance(&wrong, &lower);
                // A few typos for the length, or a word cut short or run on (`warning` for `warn`).
                let (short, long) = if wrong.len() < lower.len() { (&wrong, &lower) } else { (&lower, &wrong) };
                let close =
                    distance <= (long.len() / 3).max(1) || (short.len() >= 3 && long.starts_with(short.as_str()));
                close.then_some((distance, choice))
            })
            .min_by_key(|(distance, _)| *distance)?;
        Some(format!("did you mean `{}`?", nearest.1))
    }
}

/// A serde message, with what would be right where serde cannot know it: a boolean or a number where text is
/// expected is, almost always, an unquoted scalar that a YAML 1.1 reader (kubectl, which stores the
/// `pluginConfig` Istio hands the module) turned into one.
pub(crate) fn explain_shape(message: String) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else { return message };
    let expects_number = ["number", "status", "port"].iter().any(|word| rest.contains(word));
    let hint = if rest.starts_with("boolean") {
        "kubectl reads YAML 1.1, where unquoted on/off, yes/no, y/n and true/false are booleans: quote the value"
    } else if (rest.starts_with("integer") || rest.starts_with("floating point")) && !expects_number {
        "kubectl reads YAML 1.1, where unquoted 1_000, 0777, 1:30 and 1e3 are numbers: quote the value"
    } else {
        return message;
    };
    format!("{message} ({hint})")
}

/// The misspelt word and the allowed ones, from the messages that list them: serde's `unknown field `x`,
/// expected one of `a`, `b``, `unknown reference `${x}`; known: a, b` and `"x" is not one of a, b`.
fn misspelling(message: &str) -> Option<(String, Vec<String>)> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (wrong, rest) = rest.split_once('`')?;
        let expected = rest.split_once("expected")?.1;
        let choices = expected.split('`').skip(1).step_by(2).map(str::to_owned).collect();
        return Some((wrong.to_owned(), choices));
    }
    if let Some(rest) = message.strip_prefix("unknown reference `${") {
        let (wrong, rest) = rest.split_once("}`")?;
        let known = rest.split_once("known: ")?.1;
        // Compare the part before the dot: `${heder.x-user}` → `header`.
        let head = |reference: &str| reference.split('.').next().unwrap_or_default().trim().to_owned();
        let mut choices: Vec<String> = known.split(',').map(head).collect();
        choices.dedup();
        return Some((head(wrong), choices));
    }
    let (wrong, rest) = message.strip_prefix('"')?.split_once("\" is not one of ")?;
    let choices = rest.split([',', ' ']).filter(|w| !w.is_empty() && *w != "or").map(str::to_owned).collect();
    Some((wrong.to_owned(), choices))
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous.get(j).map_or(usize::MAX, |d| d + usize::from(ca != *cb));
            let delete = previous.get(j + 1).map_or(usize::MAX, |d| d + 1);
            let insert = current.get(j).map_or(usize::MAX, |d| d + 1);
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or_default()
}

impl fmt::Display for ConfigError {
    /// One line: `request[0] "hello": match.path.regex: invalid regex: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(rule) => {
                write!(f, "{}[{}]", rule.phase.key(), rule.index)?;
                if let Some(name) = &rule.name {
                    write!(f, " {name:?}")?;
                }
                if !self.field.is_empty() {
                    write!(f, ": {}", one_line(&self.field))?;
                }
            }
            None if self.field.is_empty() => f.write_str("document")?,
            None => f.write_str(&one_line(&self.field))?,
        }
        // Messages from serde or regex can span lines; a log line must not.
        write!(f, ": ")?;
        let mut lines = self.message.lines().map(str::trim).filter(|l| !l.is_empty());
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        for line in lines {
            write!(f, " {line}")?;
        }
        Ok(())
    }
}

/// A field path as written, with control characters escaped: a header name in a path may hold a line break.
fn one_line(field: &str) -> std::borrow::Cow<'_, str> {
    if field.chars().any(char::is_control) {
        field.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
    } else {
        std::borrow::Cow::Borrowed(field)
    }
}

/// Every problem found in a document, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(message: &str) -> ConfigError {
        let rule = RuleLocation { phase: Phase::Request, index: 2, name: Some("r".into()) };
        ConfigError { rule: Some(rule), field: "match.pathh".into(), message: message.into() }
    }

    #[test]
    fn paths_start_at_the_document_root() {
        assert_eq!(error("x").path(), "request[2].match.pathh");
        assert_eq!(ConfigError { field: String::new(), ..error("x") }.path(), "request[2]");
        assert_eq!(ConfigError::document("version", "x").path(), "version");
    }

    #[test]
    fn misspelt_names_get_the_nearest_real_one() {
        let hint = |message: &str| error(message).hint();
        assert_eq!(
            hint("unknown field `pathh`, expected one of `path`, `method`, `scheme`").as_deref(),
            Some("did you mean `path`?")
        );
        assert_eq!(
            hint("unknown field `Headers`, expected `headers` or `query`").as_deref(),
            Some("did you mean `headers`?")
        );
        assert_eq!(
            hint("unknown reference `${heder.x-user}`; known: method, header.NAME, cookie.NAME").as_deref(),
            Some("did you mean `header`?")
        );
        assert_eq!(
            hint("\"warning\" is not one of trace, debug, info, warn, error").as_deref(),
            Some("did you mean `warn`?")
        );
        // Nothing close: no guess.
        assert_eq!(hint("unknown field `colour`, expected one of `path`, `method`"), None);
        assert_eq!(hint("invalid regex: unclosed group"), None);
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("pathh", "path"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
