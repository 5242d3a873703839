//! Reading the exchange: values fetched once per request, and the views rules take of them.

use super::{Host, Run};
use crate::error::Phase;
use crate::ruleset::{HeaderMap, HeaderName, Slot, View};
use crate::{attributes, cidr, claims, url};
use std::borrow::Cow;

impl<'r, H: Host> Run<'r, '_, H> {
    /// Fetches a slot's value from the proxy unless it is known. Request values are never fetched in the
    /// response phase (the proxy no longer has them): what was not carried over reads as absent.
    pub(super) fn ensure(&mut self, slot: usize) {
        let Some(spec) = self.rules.slots.get(slot) else { return };
        let fetched = self.state.values.fetched(slot);
        if fetched || (spec.phase() == Phase::Request && self.phase == Phase::Response) {
            return;
        }
        let value = match spec {
            Slot::Header(map, name) => {
                let host = &mut *self.host;
                return self.state.values.fill(slot, |out| host.header_into(*map, name, out));
            }
            Slot::SourceAddress => self.host.source_address(),
            Slot::Property(property) => {
                self.host.property(&property.path).and_then(|bytes| attributes::decode(&bytes, property.encoding))
            }
            Slot::Credential(credential) => self.check_credentials(credential).ok().map(str::to_owned),
        };
        self.state.values.fill(slot, |out| value.map(|value| out.push_str(&value)).is_some());
    }

    pub(super) fn get(&self, slot: usize) -> Option<&str> {
        self.state.values.get(slot)
    }

    pub(super) fn ensure_view(&mut self, slot: usize, view: &View) {
        self.ensure(slot);
        if let View::Client { xff_slot, trusted_hops } = view {
            if *trusted_hops > 0 {
                self.ensure(*xff_slot);
            }
        }
        if let View::Misdirected { authority_slot } = view {
            self.ensure(*authority_slot);
        }
    }

    /// The part of a slot's value a view selects (call `ensure_view` first).
    pub(super) fn view(&self, slot: usize, view: &View) -> Option<Cow<'_, str>> {
        let value = self.get(slot);
        match view {
            View::Whole => value.map(Cow::Borrowed),
            View::PathOnly => value.map(|p| Cow::Borrowed(self.split_path(slot, p).0)),
            View::QueryString => value.map(|p| Cow::Borrowed(self.split_path(slot, p).1.unwrap_or_default())),
            View::QueryParam(name) => {
                value.and_then(|p| self.split_path(slot, p).1).and_then(|q| url::query_param(q, name))
            }
            View::Cookie(name) => value.and_then(|c| cookie(c, name)).map(Cow::Borrowed),
            View::HostOnly => value.map(|a| Cow::Borrowed(strip_port(a))),
            View::Ip => value.and_then(address_text),
            View::Client { xff_slot, trusted_hops } => {
                let forwarded =
                    (*trusted_hops > 0).then(|| self.get(*xff_slot).and_then(|xff| nth_from_right(xff, *trusted_hops)));
                // Fewer entries than trusted proxies: the header cannot be trusted; use the peer address.
                forwarded.flatten().or(value).map(Cow::Borrowed)
            }
            View::Misdirected { authority_slot } => value.map(|server_name| {
                let host = self.get(*authority_slot).map(strip_port).unwrap_or_default();
                Cow::Borrowed(if host.eq_ignore_ascii_case(server_name) { "false" } else { "true" })
            }),
            View::Spiffe(part) => value.and_then(|id| part.of(id)).map(Cow::Borrowed),
            View::Claim(path) => value.and_then(|flat| claims::joined(flat, path)),
        }
    }

    /// `path` (the value in `slot`) split at its `?`, found once per value rather than once per condition: the
    /// place is kept until the engine writes the slot.
    fn split_path<'p>(&self, slot: usize, path: &'p str) -> (&'p str, Option<&'p str>) {
        let query_at = match self.state.path_split.get() {
            Some((split_slot, at)) if split_slot == slot => at,
            _ => {
                let at = path.find('?');
                self.state.path_split.set(Some((slot, at)));
                at
            }
        };
        match query_at.and_then(|at| Some((path.get(..at)?, path.get(at + 1..)?))) {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        }
    }

    /// A header's current value: from the cache when a rule reads it, otherwise from the proxy.
    pub(super) fn current_header(&mut self, map: HeaderMap, name: &HeaderName) -> Option<String> {
        if let Some(slot) = name.slot {
            self.ensure(slot);
            return self.get(slot).map(str::to_owned);
        }
        self.host.header(map, name)
    }

    /// [`Self::current_header`] for a header the engine itself asks for by name (not one an action was
    /// compiled with), its slot looked up now.
    pub(super) fn current_header_by_name(&mut self, map: HeaderMap, name: &str) -> Option<String> {
        match self.header_slot(map, name) {
            Some(slot) => {
                self.ensure(slot);
                self.get(slot).map(str::to_owned)
            }
            None => self.host.header(map, name),
        }
    }
}

/// The value of cookie `name` in a `cookie` header (`a=1; b=2`). Several `cookie` headers reach us joined with
/// `,`, which RFC 6265 does not allow inside a cookie, so it separates pairs too.
fn cookie<'c>(header: &'c str, name: &str) -> Option<&'c str> {
    // Split on the two ASCII bytes rather than by a set of chars: this runs for every cookie test.
    header
        .as_bytes()
        .split(|&b| b == b';' || b == b',')
        .scan(0, |start, pair| {
            let at = *start;
            *start += pair.len() + 1;
            Some(header.get(at..at + pair.len()))
        })
        .flatten()
        .find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key.trim() == name).then(|| value.trim())
        })
}

/// The address of an `ip:port` (or a bare address) as text: a dotted IPv4 address is borrowed as written (the
/// standard parser takes only its canonical form), any other is parsed and formatted.
fn address_text(text: &str) -> Option<Cow<'_, str>> {
    let trimmed = text.trim();
    let dotted = [Some(trimmed), trimmed.rsplit_once(':').map(|(ip, _)| ip)];
    if let Some(ip) = dotted.into_iter().flatten().find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok()) {
        return Some(Cow::Borrowed(ip));
    }
    cidr::parse_address(text).map(|ip| Cow::Owned(ip.to_string()))
}

/// The `n`-th address from the right of an `x-forwarded-for` list (1 = rightmost).
fn nth_from_right(xff: &str, n: usize) -> Option<&str> {
    xff.rsplit(',').nth(n.checked_sub(1)?).map(str::trim).filter(|a| !a.is_empty())
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`; a bare IPv6 address is left whole.
pub(super) fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').and_then(|end| authority.get(..=end)).unwrap_or(authority);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

pub(super) fn authority_port(authority: &str) -> Option<u16> {
    let host = strip_port(authority);
    authority.get(host.len()..)?.strip_prefix(':')?.parse().ok()
}

pub(super) fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_only_from_host_port_forms() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:10000"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("example.com:x"), "example.com:x");
        assert_eq!(authority_port("example.com:8080"), Some(8080));
        assert_eq!(authority_port("[::1]:443"), Some(443));
        assert_eq!(authority_port("example.com"), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = "theme=dark; session=abc=def;  canary = yes";
        assert_eq!(cookie(header, "session"), Some("abc=def"));
        assert_eq!(cookie(header, "canary"), Some("yes"));
        assert_eq!(cookie(header, "Theme"), None);
        assert_eq!(cookie(header, "missing"), None);
        // Two cookie headers, as the proxy joins them.
        assert_eq!(cookie("a=1,b=2", "b"), Some("2"));
    }

    #[test]
    fn addresses_read_as_the_parser_formats_them() {
        for text in
            ["10.0.0.1:51234", " 10.0.0.1 ", "[2001:db8::1]:443", "2001:DB8:0::1", "[::ffff:10.1.2.3]:80", "x:1"]
        {
            let formatted = cidr::parse_address(text).map(|ip| ip.to_string());
            assert_eq!(address_text(text).map(Cow::into_owned), formatted, "{text}");
        }
        assert!(matches!(address_text("10.0.0.1:80"), Some(Cow::Borrowed("10.0.0.1"))));
    }

    #[test]
    fn forwarded_for_is_read_from_the_right() {
        let xff = "203.0.113.7, 10.0.0.1 ,10.0.0.2";
        assert_eq!(nth_from_right(xff, 1), Some("10.0.0.2"));
        assert_eq!(nth_from_right(xff, 2), Some("10.0.0.1"));
        assert_eq!(nth_from_right(xff, 3), Some("203.0.113.7"));
        assert_eq!(nth_from_right(xff, 4), None);
        assert_eq!(nth_from_right(xff, 0), None);
    }
}
