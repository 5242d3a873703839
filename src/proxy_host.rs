//! The engine's [`Host`] over proxy-wasm's host calls. The calls themselves are a trait ([`HostCalls`]): the
//! module makes them through its ABI wrappers, and tests count them natively (tests/host_calls.rs), so what a
//! request costs in host calls is checked where it is decided.
//!
//! A phase's headers are read in one call ([`HeaderBlock`]) and kept in step with the filter's own edits; each
//! edit is one call, made at once. (Writing the whole map in one `proxy_set_header_map_pairs` at the end of the
//! phase was measured and costs Envoy more: docs/performance.md, "The per-rule floor".)

use std::borrow::Cow;

use log::warn;

use crate::engine::Host;
use crate::header_block::HeaderBlock;
use crate::metrics::CounterId;
use crate::ruleset::HeaderMap;

/// A host status other than `Ok` (1 = not found, 2 = bad argument, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostStatus(pub u32);

/// The proxy-wasm host calls the engine needs during a request, each returning the host's status as an error.
pub trait HostCalls {
    /// Every header of `map` in proxy-wasm's pairs encoding; empty when the map is empty or absent.
    fn header_pairs(&mut self, map: HeaderMap) -> Result<Vec<u8>, HostStatus>;
    fn set_header(&mut self, map: HeaderMap, name: &str, value: &str) -> Result<(), HostStatus>;
    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str) -> Result<(), HostStatus>;
    fn remove_header(&mut self, map: HeaderMap, name: &str) -> Result<(), HostStatus>;
    /// A property by its NUL-separated path; `None` when the proxy has none.
    fn property(&mut self, path: &str) -> Result<Option<Vec<u8>>, HostStatus>;
    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostStatus>;
    fn shared_data(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostStatus>;
    fn set_shared_data(&mut self, key: &str, value: &[u8], cas: u32) -> Result<bool, HostStatus>;
    fn now_nanos(&mut self) -> Result<u64, HostStatus>;
    /// The first `size` bytes of `message`'s body (only inside its body callback).
    fn body(&mut self, message: HeaderMap, size: usize) -> Result<Option<Vec<u8>>, HostStatus>;
    /// Replaces the first `replaced` bytes of `message`'s body (only inside its body callback).
    fn set_body(&mut self, message: HeaderMap, replaced: usize, body: &[u8]) -> Result<(), HostStatus>;
    /// A counter of the rule set: kept in the VM, never a host call per request.
    fn count(&mut self, counter: CounterId);
}

/// The headers of one map, read in one call.
struct Held {
    map: HeaderMap,
    block: HeaderBlock,
    /// Whether the block is the proxy's whole map: a map the proxy refused or sent malformed reads as empty,
    /// and says nothing about which headers are absent.
    whole: bool,
}

/// The engine's view of the proxy during one callback.
pub struct ProxyHost<C: HostCalls> {
    calls: C,
    held: Option<Held>,
    /// Bytes of body the proxy holds, when called from a body callback (the only time a body may be read or
    /// replaced: the SDK's own calls panic elsewhere); `None` otherwise.
    body_size: Option<usize>,
}

impl<C: HostCalls> ProxyHost<C> {
    pub fn new(calls: C) -> Self {
        ProxyHost { calls, held: None, body_size: None }
    }

    /// For a body callback: the bytes of body the proxy holds.
    pub fn in_body(calls: C, body_size: Option<usize>) -> Self {
        ProxyHost { calls, held: None, body_size }
    }

    /// The headers of `map`, read in one call at the first use and kept in step with the filter's edits. The
    /// engine reads only its phase's map; asking for the other one reads that instead.
    fn headers(&mut self, map: HeaderMap) -> &mut HeaderBlock {
        if self.held.as_ref().is_some_and(|held| held.map != map) {
            self.held = None;
        }
        let calls = &mut self.calls;
        &mut self.held.get_or_insert_with(|| read_headers(calls, map)).block
    }

    /// Applies an edit the proxy accepted to the headers already read; a map read later includes it.
    fn edited(&mut self, map: HeaderMap, edit: impl FnOnce(&mut HeaderBlock)) {
        if let Some(held) = self.held.as_mut().filter(|held| held.map == map) {
            edit(&mut held.block);
        }
    }
}

fn read_headers(calls: &mut impl HostCalls, map: HeaderMap) -> Held {
    let (block, whole) = match calls.header_pairs(map) {
        Ok(bytes) => match HeaderBlock::decode(bytes) {
            Some(block) => (block, true),
            None => {
                warn!("the proxy sent the {} headers malformed; treating them as absent", map.key());
                (HeaderBlock::default(), false)
            }
        },
        Err(status) => {
            warn!("cannot read the {} headers (status {}); treating them as absent", map.key(), status.0);
            (HeaderBlock::default(), false)
        }
    };
    Held { map, block, whole }
}

/// A header value as text. Values may be any bytes; rules compare text, so odd bytes become U+FFFD. The strict
/// check first: it is much faster than the lossy conversion's on valid text, which nearly every value is.
#[inline]
fn text(value: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(value) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(value),
    }
}

impl<C: HostCalls> Host for ProxyHost<C> {
    fn header(&mut self, map: HeaderMap, name: &str) -> Option<String> {
        let mut value = String::new();
        self.header_into(map, name, &mut value).then_some(value)
    }

    fn header_into(&mut self, map: HeaderMap, name: &str, out: &mut String) -> bool {
        // Converted a value at a time: joining bytes that are not UTF-8 with `,` replaces the same bytes as
        // converting the joined value would.
        let mut present = false;
        for value in self.headers(map).values(name) {
            if present {
                out.push(',');
            }
            out.push_str(&text(value));
            present = true;
        }
        present
    }

    fn header_values(&mut self, map: HeaderMap, name: &str) -> Vec<String> {
        self.headers(map).values(name).map(|value| text(value).into_owned()).collect()
    }

    fn header_names(&mut self, map: HeaderMap) -> Vec<String> {
        self.header_names_where(map, &|_| true)
    }

    fn header_names_where(&mut self, map: HeaderMap, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
        let names = self.headers(map).names().map(String::from_utf8_lossy);
        names.filter(|name| keep(name)).map(std::borrow::Cow::into_owned).collect()
    }

    fn source_address(&mut self) -> Option<String> {
        match self.calls.property("source\0address") {
            Ok(value) => value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
            Err(status) => {
                warn!("cannot read source.address (status {}); treating it as absent", status.0);
                None
            }
        }
    }

    fn set_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        // Setting a header the map does not hold is adding it, and an add spares Envoy looking for old values
        // (and the block the search for old values to drop).
        let absent = self.held.as_ref().is_some_and(|h| h.map == map && h.whole && !h.block.contains(name));
        let result =
            if absent { self.calls.add_header(map, name, value) } else { self.calls.set_header(map, name, value) };
        match result {
            Ok(()) if absent => self.edited(map, |headers| headers.add(name, value)),
            Ok(()) => self.edited(map, |headers| headers.set(name, value)),
            Err(status) => warn!("cannot set header {name:?} (status {})", status.0),
        }
    }

    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        match self.calls.add_header(map, name, value) {
            Ok(()) => self.edited(map, |headers| headers.add(name, value)),
            Err(status) => warn!("cannot add header {name:?} (status {})", status.0),
        }
    }

    fn remove_header(&mut self, map: HeaderMap, name: &str) {
        // Rules often remove headers that are rarely there (spoofable or internal ones); knowing the map
        // saves a host call for each that is not.
        if !self.headers(map).contains(name) {
            return;
        }
        match self.calls.remove_header(map, name) {
            Ok(()) => self.edited(map, |headers| headers.remove(name)),
            Err(status) => warn!("cannot remove header {name:?} (status {})", status.0),
        }
    }

    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str) -> bool {
        match self.calls.send_response(status, headers, body.as_bytes()) {
            Ok(()) => true,
            Err(host_status) => {
                warn!("cannot send the {status} response (status {})", host_status.0);
                false
            }
        }
    }

    fn count(&mut self, counter: CounterId) {
        self.calls.count(counter);
    }

    fn shared_data(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        self.calls.shared_data(key).map_err(|s| format!("shared data refused (status {})", s.0))
    }

    fn set_shared_data(&mut self, key: &str, value: &[u8], cas: u32) -> Result<bool, String> {
        self.calls.set_shared_data(key, value, cas).map_err(|s| format!("shared data refused (status {})", s.0))
    }

    fn now_nanos(&mut self) -> Option<u64> {
        self.calls.now_nanos().ok()
    }

    fn property(&mut self, path: &str) -> Option<Vec<u8>> {
        match self.calls.property(path) {
            Ok(value) => value,
            Err(status) => {
                warn!("cannot read {} (status {}); treating it as absent", path.replace('\0', "."), status.0);
                None
            }
        }
    }

    fn body(&mut self, message: HeaderMap) -> Vec<u8> {
        let Some(size) = self.body_size.filter(|&size| size > 0) else { return Vec::new() };
        match self.calls.body(message, size) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                warn!("cannot read the {} body (status {}); treating it as empty", message.key(), status.0);
                Vec::new()
            }
        }
    }

    fn set_body(&mut self, message: HeaderMap, body: &[u8]) -> bool {
        // A message that ended with its headers has no body to replace.
        let Some(size) = self.body_size else { return false };
        match self.calls.set_body(message, size, body) {
            Ok(()) => true,
            Err(status) => {
                warn!("cannot replace the {} body (status {})", message.key(), status.0);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_block::encode;

    /// Hands over one request map, whose bytes a test may make anything; refuses the rest.
    struct Map(Vec<u8>);

    impl HostCalls for Map {
        fn header_pairs(&mut self, _: HeaderMap) -> Result<Vec<u8>, HostStatus> {
            Ok(self.0.clone())
        }
        fn set_header(&mut self, _: HeaderMap, _: &str, _: &str) -> Result<(), HostStatus> {
            Err(HostStatus(2))
        }
        fn add_header(&mut self, _: HeaderMap, _: &str, _: &str) -> Result<(), HostStatus> {
            Err(HostStatus(2))
        }
        fn remove_header(&mut self, _: HeaderMap, _: &str) -> Result<(), HostStatus> {
            Err(HostStatus(2))
        }
        fn property(&mut self, _: &str) -> Result<Option<Vec<u8>>, HostStatus> {
            Err(HostStatus(2))
        }
        fn send_response(&mut self, _: u16, _: &[(&str, &str)], _: &[u8]) -> Result<(), HostStatus> {
            Err(HostStatus(2))
        }
        fn shared_data(&mut self, _: &str) -> Result<Option<(Vec<u8>, u32)>, HostStatus> {
            Err(HostStatus(2))
        }
        fn set_shared_data(&mut self, _: &str, _: &[u8], _: u32) -> Result<bool, HostStatus> {
            Err(HostStatus(2))
        }
        fn now_nanos(&mut self) -> Result<u64, HostStatus> {
            Err(HostStatus(2))
        }
        fn body(&mut self, _: HeaderMap, _: usize) -> Result<Option<Vec<u8>>, HostStatus> {
            Err(HostStatus(2))
        }
        fn set_body(&mut self, _: HeaderMap, _: usize, _: &[u8]) -> Result<(), HostStatus> {
            Err(HostStatus(2))
        }
        fn count(&mut self, _: CounterId) {}
    }

    #[test]
    fn a_value_appended_reads_as_the_value_returned() {
        let mut bytes = encode([("x-bin", "za"), ("x-bin", "b"), ("x-text", "plain")]);
        // The first value's "z" becomes a byte that is not UTF-8; lengths are unchanged.
        let at = bytes.iter().position(|&b| b == b'z').unwrap();
        bytes[at] = 0xff;
        let mut host = ProxyHost::new(Map(bytes));
        for (name, expected) in [("x-bin", Some("\u{fffd}a,b")), ("x-text", Some("plain")), ("x-none", None)] {
            let mut out = "kept|".to_owned();
            let present = host.header_into(HeaderMap::Request, name, &mut out);
            assert_eq!(present, expected.is_some(), "{name}");
            assert_eq!(out, format!("kept|{}", expected.unwrap_or_default()), "{name}");
            assert_eq!(host.header(HeaderMap::Request, name).as_deref(), expected, "{name}");
        }
    }
}
