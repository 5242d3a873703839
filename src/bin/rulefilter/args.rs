//! Option values shared by the commands.

/// Splits `KEY<separator>VALUE`, neither part empty; `what` says the expected form in the error.
pub fn pair(text: &str, separator: char, what: &str) -> Result<(String, String), lexopt::Error> {
    match text.split_once(separator) {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_owned(), b.to_owned())),
        _ => Err(format!("{what}, not {text:?}").into()),
    }
}

/// A `--env NAME=VALUE` value. The value may be empty, as a `vmConfig.env` value may.
pub fn env_pair(text: &str) -> Result<(String, String), lexopt::Error> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("--env takes NAME=VALUE, not {text:?}").into()),
    }
}

/// A `Name: value` header; the name is lower-cased, the value trimmed.
pub fn header(text: &str, flag: &str) -> Result<(String, String), lexopt::Error> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        }
        _ => Err(format!("{flag} takes \"NAME: VALUE\", not {text:?}").into()),
    }
}
