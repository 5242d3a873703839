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
                    write!(f, ": {}", self.field)?;
                }
            }
            None if self.field.is_empty() => f.write_str("document")?,
            None => f.write_str(&self.field)?,
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
