//! Headers a rule may read but not edit, because Envoy needs them as they are: an edit that passed validation
//! would otherwise break ordinary traffic once the document is live. Each refusal was measured against Envoy
//! 1.40 (tests/header_safety.rs) and says what to write instead.

use crate::ruleset::HeaderMap;

/// What an edit does to the header it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Gives it a value: `set`, `set_if_absent`, `add`, `copy`/`rename` `to`, a local response's headers.
    Write,
    /// Takes it away: `remove`, `rename` `from`.
    Remove,
}

/// Connection-specific (hop-by-hop) headers, RFC 9110 §7.6.1 and RFC 9113 §8.2.2: Envoy writes them for each
/// connection itself. Written by a request rule, an HTTP/2 upstream refuses the request (Envoy answers 502);
/// a request `transfer-encoding` makes Envoy wait for a body that never comes; in responses Envoy drops or
/// overrides them, so the edit would only pretend to work.
const HOP_BY_HOP: [&str; 6] = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"];

/// Why `name` (lower-cased) may not be edited this way in `map`, with what to do instead; `None` if it may.
pub(crate) fn refusal(name: &str, map: HeaderMap, edit: Edit) -> Option<String> {
    if name.starts_with(':') {
        return Some(format!("{name:?} is a pseudo-header Envoy needs unchanged; {}", pseudo_hint(name)));
    }
    if map == HeaderMap::Request && name == "host" {
        return Some(
            "\"host\" is the request's :authority inside Envoy: removing it sends the request without a host and \
             `add` gives it two; use `rewrite: {host: …}`"
                .to_owned(),
        );
    }
    if edit == Edit::Remove {
        return None;
    }
    if name == "content-length" {
        return Some(
            "\"content-length\" frames the body: Envoy sends the value as written, and one the body does not have \
             hangs or cuts the message; it can only be removed (Envoy then frames the body itself)"
                .to_owned(),
        );
    }
    if name == "te" {
        return Some(
            "\"te\" is connection-specific: Envoy passes on a client's `te: trailers` (gRPC's), and any other value \
             makes an HTTP/2 upstream refuse the request (Envoy answers 502); it can only be removed"
                .to_owned(),
        );
    }
    if HOP_BY_HOP.contains(&name) {
        return Some(format!(
            "{name:?} is connection-specific: Envoy sets it for each connection, and HTTP/2 forbids it (an HTTP/2 \
             upstream answers 502); it can only be removed"
        ));
    }
    None
}

/// Why `name` (lower-cased) cannot be read from `map`; `None` if it can. Envoy turns an HTTP/1.1 `host` into
/// `:authority`, so a request never has a `host` header for a rule to read: a test of it would never match.
pub(crate) fn unreadable(name: &str, map: HeaderMap) -> Option<&'static str> {
    (map == HeaderMap::Request && name == "host").then_some(
        "a request has no \"host\" header inside Envoy (it becomes :authority); read the host with `match.host` \
         or `${host}`",
    )
}

/// What to write instead of editing a pseudo-header.
fn pseudo_hint(name: &str) -> &'static str {
    match name {
        ":path" => "change the path with `rewrite` and the query with `query`",
        ":authority" => "change the host with `rewrite: {host: …}`",
        ":status" => "answer with another status through `respond`",
        ":method" | ":scheme" | ":protocol" => "rules cannot change it; read it with a condition or a template",
        _ => "rules can only read pseudo-headers",
    }
}

/// Whether a response of this status has no body (RFC 9110 §6.4.1, §15.3.6): a body Envoy would still send
/// with it is read by HTTP/1.1 clients as the start of the next response on the connection.
pub(crate) fn bodiless_status(status: u16) -> bool {
    matches!(status, 204 | 205 | 304)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_headers_are_refused_in_both_maps_for_every_edit() {
        for map in [HeaderMap::Request, HeaderMap::Response] {
            for edit in [Edit::Write, Edit::Remove] {
                for name in [":method", ":path", ":authority", ":scheme", ":status", ":protocol", ":x"] {
                    assert!(refusal(name, map, edit).is_some(), "{name} {map:?} {edit:?}");
                }
            }
        }
    }

    #[test]
    fn framing_and_connection_headers_may_be_removed_but_not_written() {
        for map in [HeaderMap::Request, HeaderMap::Response] {
            for name in ["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te"] {
                assert!(refusal(name, map, Edit::Write).is_some(), "{name} {map:?}");
                assert_eq!(refusal(name, map, Edit::Remove), None, "{name} {map:?}");
            }
        }
    }

    #[test]
    fn host_is_only_reserved_in_requests() {
        assert!(refusal("host", HeaderMap::Request, Edit::Write).is_some());
        assert!(refusal("host", HeaderMap::Request, Edit::Remove).is_some());
        assert_eq!(refusal("host", HeaderMap::Response, Edit::Write), None);
        assert_eq!(refusal("x-host", HeaderMap::Request, Edit::Write), None);
        assert_eq!(refusal("expect", HeaderMap::Request, Edit::Write), None);
        assert!(unreadable("host", HeaderMap::Request).is_some());
        assert_eq!(unreadable("host", HeaderMap::Response), None);
    }
}
