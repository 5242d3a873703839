//! Which messages a body rule may hold, judged from headers alone.
//!
//! Streams are never held, whatever a rule says: gRPC (`application/grpc…`), server-sent events
//! (`text/event-stream`) and protocol upgrades (WebSocket) have no end to wait for, and holding them would
//! break them. Everything else is held only when its media type is one the rule names.

/// The media types a body rule reads when it names none: text and JSON, the bodies rules can make sense of.
pub const DEFAULT_TYPES: [&str; 6] = [
    "text/*",
    "application/json",
    "application/*+json",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/javascript",
];

/// The media type of a `content-type` value, lower-case, without parameters: `Text/HTML; charset=utf-8` →
/// `text/html`.
pub fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Whether `media` (lower-case, as [`media_type`] gives it) is one `pattern` names: an exact type, `text/*`,
/// or a structured-syntax suffix `application/*+json`.
pub fn type_matches(pattern: &str, media: &str) -> bool {
    let Some((pattern_top, pattern_sub)) = pattern.split_once('/') else { return false };
    let Some((top, sub)) = media.split_once('/') else { return false };
    if pattern_top != "*" && pattern_top != top {
        return false;
    }
    match pattern_sub.strip_prefix('*') {
        None => pattern_sub == sub,
        // `*` alone, or `*+json`: the subtype's suffix.
        Some(suffix) => sub.len() > suffix.len() && sub.ends_with(suffix) || suffix.is_empty(),
    }
}

/// Whether a written pattern is a media type or a wildcard [`type_matches`] understands; the reason if not.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let valid_part =
        |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b));
    match pattern.split_once('/') {
        Some((top, sub)) if valid_part(top) && valid_part(sub) && pattern == pattern.to_ascii_lowercase() => {
            let star_ok = |part: &str| {
                part == "*"
                    || !part.contains('*')
                    || part.strip_prefix("*+").is_some_and(|rest| !rest.is_empty() && !rest.contains('*'))
            };
            if star_ok(top) && star_ok(sub) && !(top == "*" && sub != "*") {
                Ok(())
            } else {
                Err("a `*` may only be a whole part (`text/*`) or start a suffix (`application/*+json`)".into())
            }
        }
        _ => Err("a lower-case media type such as `application/json` or `text/*`".into()),
    }
}

/// Why a message is a stream the filter never holds, from its media type and the request's `upgrade` header;
/// `None` for an ordinary message.
pub fn stream_kind(media: &str, upgrade: Option<&str>) -> Option<&'static str> {
    if upgrade.is_some_and(|u| !u.trim().is_empty()) {
        Some("a protocol upgrade (WebSocket)")
    } else if media.starts_with("application/grpc") {
        Some("gRPC")
    } else if media == "text/event-stream" {
        Some("server-sent events")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_lose_parameters_and_case() {
        assert_eq!(media_type("Text/HTML; charset=utf-8"), "text/html");
        assert_eq!(media_type(" application/json "), "application/json");
        assert_eq!(media_type(""), "");
    }

    #[test]
    fn patterns_match_exactly_by_top_level_type_or_by_suffix() {
        assert!(type_matches("application/json", "application/json"));
        assert!(!type_matches("application/json", "application/jsonx"));
        assert!(type_matches("text/*", "text/html"));
        assert!(!type_matches("text/*", "application/html"));
        assert!(type_matches("application/*+json", "application/problem+json"));
        assert!(!type_matches("application/*+json", "application/json"));
        assert!(type_matches("*/*", "image/png"));
        assert!(!type_matches("text/html", ""));
    }

    #[test]
    fn patterns_are_checked_when_the_document_is_read() {
        assert!(check_pattern("application/json").is_ok());
        assert!(check_pattern("text/*").is_ok());
        assert!(check_pattern("application/*+json").is_ok());
        assert!(check_pattern("*/*").is_ok());
        assert!(check_pattern("Application/JSON").is_err());
        assert!(check_pattern("json").is_err());
        assert!(check_pattern("text/ht*ml").is_err());
        assert!(check_pattern("*/json").is_err());
    }

    #[test]
    fn streams_are_recognised() {
        assert_eq!(stream_kind("application/grpc+proto", None), Some("gRPC"));
        assert_eq!(stream_kind("text/event-stream", None), Some("server-sent events"));
        assert_eq!(stream_kind("", Some("websocket")), Some("a protocol upgrade (WebSocket)"));
        assert_eq!(stream_kind("application/json", None), None);
        assert_eq!(stream_kind("application/json", Some("")), None);
    }
}
