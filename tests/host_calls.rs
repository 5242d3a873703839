//! The host calls a request costs (issue 14, goal 4): the module's own `Host` ([`ProxyHost`]) over a native
//! stand-in for Envoy's header maps that counts every call by phase and kind, for passing requests of the
//! bench's mix through `rules/edge.yaml`. A phase reads its map once, the client's address once if a rule
//! wants it, and makes one call per edit that changes the map; the maps must end as Envoy's own calls leave them.
//!
//! `cargo test --test host_calls -- --nocapture` prints the table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap};

use rulefilter::header_block::encode;
use rulefilter::metrics::CounterId;
use rulefilter::proxy_host::{HostCalls, HostStatus, ProxyHost};
use rulefilter::ruleset::HeaderMap;
use rulefilter::{Flow, RuleSet};

type Pairs = Vec<(String, String)>;

/// Envoy's header maps as its proxy-wasm host changes them (`source/extensions/common/wasm/context.cc`):
/// names lower-case, pseudo-headers kept before the others, `replace` = remove the name then add it last.
#[derive(Clone, Default)]
struct Envoy {
    request: Pairs,
    response: Pairs,
    /// The phase whose map the proxy offers now.
    phase: Option<HeaderMap>,
    /// Refuse `proxy_get_header_map_pairs`.
    refuse_reads: bool,
    calls: BTreeMap<(&'static str, &'static str), u32>,
    answered: Option<u16>,
}

impl Envoy {
    fn tally(&mut self, kind: &'static str) {
        let phase = match self.phase {
            Some(HeaderMap::Request) => "request",
            Some(HeaderMap::Response) => "response",
            None => "none",
        };
        *self.calls.entry((phase, kind)).or_default() += 1;
    }

    fn map(&mut self, map: HeaderMap) -> Result<&mut Pairs, HostStatus> {
        if self.phase != Some(map) {
            return Err(HostStatus(2));
        }
        Ok(match map {
            HeaderMap::Request => &mut self.request,
            HeaderMap::Response => &mut self.response,
        })
    }

    fn calls_in(&self, phase: &str) -> u32 {
        self.calls.iter().filter(|((p, _), _)| *p == phase).map(|(_, n)| n).sum()
    }
}

fn add(pairs: &mut Pairs, name: String, value: String) {
    let name = name.to_ascii_lowercase();
    if name.starts_with(':') {
        let at = pairs.iter().take_while(|(n, _)| n.starts_with(':')).count();
        pairs.insert(at, (name, value));
    } else {
        pairs.push((name, value));
    }
}

fn remove(pairs: &mut Pairs, name: &str) {
    pairs.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
}

impl HostCalls for &mut Envoy {
    fn header_pairs(&mut self, map: HeaderMap) -> Result<Vec<u8>, HostStatus> {
        self.tally("get_header_map_pairs");
        if self.refuse_reads {
            return Err(HostStatus(2));
        }
        Ok(encode(self.map(map)?.iter().map(|(n, v)| (n.as_str(), v.as_str()))))
    }
    fn set_header(&mut self, map: HeaderMap, name: &str, value: &str) -> Result<(), HostStatus> {
        self.tally("replace_header_map_value");
        let pairs = self.map(map)?;
        remove(pairs, name);
        add(pairs, name.to_owned(), value.to_owned());
        Ok(())
    }
    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str) -> Result<(), HostStatus> {
        self.tally("add_header_map_value");
        add(self.map(map)?, name.to_owned(), value.to_owned());
        Ok(())
    }
    fn remove_header(&mut self, map: HeaderMap, name: &str) -> Result<(), HostStatus> {
        self.tally("remove_header_map_value");
        remove(self.map(map)?, name);
        Ok(())
    }
    fn property(&mut self, path: &str) -> Result<Option<Vec<u8>>, HostStatus> {
        self.tally("get_property");
        Ok((path == "source\0address").then(|| b"10.1.2.3:50000".to_vec()))
    }
    fn send_response(&mut self, status: u16, _headers: &[(&str, &str)], _body: &[u8]) -> Result<(), HostStatus> {
        self.tally("send_local_response");
        self.answered = Some(status);
        Ok(())
    }
    fn shared_data(&mut self, _key: &str) -> Result<Option<(Vec<u8>, u32)>, HostStatus> {
        self.tally("get_shared_data");
        Ok(None)
    }
    fn set_shared_data(&mut self, _key: &str, _value: &[u8], _cas: u32) -> Result<bool, HostStatus> {
        self.tally("set_shared_data");
        Ok(true)
    }
    fn now_nanos(&mut self) -> Result<u64, HostStatus> {
        self.tally("get_current_time_nanoseconds");
        Ok(1_767_225_600_000_000_000)
    }
    fn body(&mut self, _message: HeaderMap, _size: usize) -> Result<Option<Vec<u8>>, HostStatus> {
        self.tally("get_buffer_bytes");
        Ok(None)
    }
    fn set_body(&mut self, _message: HeaderMap, _replaced: usize, _body: &[u8]) -> Result<(), HostStatus> {
        self.tally("set_buffer_bytes");
        Ok(())
    }
    fn count(&mut self, _counter: CounterId) {}
}

fn pairs(list: &[(&str, &str)]) -> Pairs {
    list.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

/// What Envoy's HTTP/1 codec and router hand the filter for a request through the bench's listener.
fn request(method: &str, path: &str, host: &str, headers: &[(&str, &str)]) -> Pairs {
    let mut map = pairs(&[(":authority", host), (":path", path), (":method", method), (":scheme", "http")]);
    map.extend(pairs(headers));
    map.extend(pairs(&[("x-forwarded-proto", "http"), ("x-request-id", "5b3c0e4e-8a4f-4a55-9a8c-2f0d3b1c7e21")]));
    map
}

/// The echo upstream's answer as the response filter sees it.
fn response() -> Pairs {
    pairs(&[
        (":status", "200"),
        ("content-type", "application/json"),
        ("content-length", "512"),
        ("date", "Tue, 01 Dec 2026 19:00:00 GMT"),
        ("server", "envoy"),
        ("set-cookie", "a=1; Path=/"),
        ("set-cookie", "b=2; Path=/"),
        ("x-envoy-upstream-service-time", "1"),
    ])
}

const APP: (&str, &str) = ("user-agent", "ShopApp/5.2.0 (iOS 18.1)");
const BROWSER: (&str, &str) = ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0");
const TOKEN: (&str, &str) = ("authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl");
const ORIGIN: (&str, &str) = ("origin", "https://app.example.com");

/// Passing requests of the soak mix (examples/perf/mix.rs), the heaviest in edits first.
fn passing() -> Vec<(&'static str, Pairs)> {
    vec![
        (
            "signed-in API call",
            request("GET", "/api/v3/orders", "example.com", &[APP, TOKEN, ("cookie", "tenant=acme-eu"), ORIGIN]),
        ),
        ("catalogue", request("GET", "/api/v3/catalog/items/7", "example.com", &[APP, ORIGIN])),
        ("search", request("GET", "/api/v2/search?q=shoes&fbclid=x1", "example.com", &[APP])),
        (
            "shop page",
            request("GET", "/shop/shoes?page=2", "example.com", &[BROWSER, ("cookie", "session=s-7f3a; theme=dark")]),
        ),
        ("static asset", request("GET", "/static/app.3f9a.css", "example.com", &[BROWSER])),
        ("canary opt-in", request("GET", "/shop?canary=on", "example.com", &[BROWSER])),
    ]
}

fn edge() -> RuleSet {
    let env = HashMap::from([("MAINTENANCE_RETRY_AFTER".to_owned(), "120".to_owned()), ("REGION".into(), "eu".into())]);
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/edge.yaml")).unwrap();
    rulefilter::parse_with_env(&text, &env).unwrap_or_else(|e| panic!("{e}"))
}

/// One exchange through the module's host: the request phase, then the response phase.
fn exchange(rules: &RuleSet, request: Pairs) -> Envoy {
    let mut envoy = Envoy { request, response: response(), ..Envoy::default() };
    let mut state = rules.new_request();
    envoy.phase = Some(HeaderMap::Request);
    let mut host = ProxyHost::new(&mut envoy);
    let flow = rules.on_request_headers(&mut state, &mut host);
    assert_eq!(flow, Flow::Continue, "a passing request was answered: {:?}", envoy.answered);
    envoy.phase = Some(HeaderMap::Response);
    let mut host = ProxyHost::new(&mut envoy);
    rules.on_response_headers(&mut state, &mut host);
    envoy.phase = None;
    envoy
}

/// The calls of one kind in one phase.
fn calls(envoy: &Envoy, phase: &'static str, kind: &'static str) -> u32 {
    envoy.calls.get(&(phase, kind)).copied().unwrap_or(0)
}

/// The header edits of a phase: every call but reading the map and the client's address.
fn edits_of(envoy: &Envoy, phase: &'static str) -> u32 {
    envoy.calls_in(phase) - calls(envoy, phase, "get_header_map_pairs") - calls(envoy, phase, "get_property")
}

#[test]
fn a_passing_request_reads_each_map_once_and_makes_one_call_per_edit() {
    let rules = edge();
    println!("{:<20} {:<8} {:<28} {:>5}", "request", "phase", "host call", "calls");
    for (what, request) in passing() {
        let envoy = exchange(&rules, request);
        for ((phase, kind), count) in &envoy.calls {
            println!("{what:<20} {phase:<8} {kind:<28} {count:>5}");
        }
        for phase in ["request", "response"] {
            assert_eq!(calls(&envoy, phase, "get_header_map_pairs"), 1, "{what}: {:?}", envoy.calls);
        }
        // Only `${source.ip}` asks the proxy for anything but headers; the read is kept for the exchange.
        assert_eq!(calls(&envoy, "request", "get_property"), 1, "{what}: {:?}", envoy.calls);
        assert_eq!(calls(&envoy, "response", "get_property"), 0, "{what}: {:?}", envoy.calls);
        // Removing an absent header costs no call: none of these requests carries the spoofable headers.
        assert_eq!(calls(&envoy, "request", "remove_header_map_value"), 0, "{what}: {:?}", envoy.calls);
        assert!(edits_of(&envoy, "response") >= 8, "{what}: {:?}", envoy.calls);
    }
    // The signed-in API call: seven request edits (facts, app version, tenant, path, API version) and the
    // response's security, CORS, cache and region headers.
    let api = exchange(&rules, passing().remove(0).1);
    assert_eq!((edits_of(&api, "request"), edits_of(&api, "response")), (7, 15), "{:?}", api.calls);
    // A header the map lacks is set by an add, which spares Envoy looking for old values; the path, which it
    // holds, by a replace, as are the response's content-type and cache-control (set twice).
    assert_eq!(calls(&api, "request", "add_header_map_value"), 6, "{:?}", api.calls);
    assert_eq!(calls(&api, "request", "replace_header_map_value"), 1, "{:?}", api.calls);
    assert_eq!(calls(&api, "response", "replace_header_map_value"), 2, "{:?}", api.calls);
    assert!(api.request.iter().any(|(n, v)| n == ":path" && v == "/orders"), "{:?}", api.request);
    assert!(api.request.iter().any(|(n, v)| n == "x-client-ip" && v == "10.1.2.3"), "{:?}", api.request);
    assert_eq!(api.response.iter().filter(|(n, _)| n == "set-cookie").count(), 2, "{:?}", api.response);
}

/// A phase that only writes costs one call per edit and no read (hello.yaml tags every response).
#[test]
fn a_phase_that_only_writes_does_not_read_the_map() {
    let rules =
        rulefilter::parse("response:\n  - name: tag\n    actions: [response_headers: {set: {x-service-name: svc}}]\n")
            .unwrap();
    let envoy = exchange(&rules, request("GET", "/", "example.com", &[]));
    assert_eq!(envoy.calls_in("response"), 1, "{:?}", envoy.calls);
    assert_eq!(envoy.calls_in("request"), 0, "{:?}", envoy.calls);
    assert!(envoy.response.contains(&("x-service-name".to_owned(), "svc".to_owned())));
}

/// Edits made before a local reply reached the proxy before it.
#[test]
fn edits_reach_the_proxy_before_a_local_reply() {
    let rules = edge();
    let blocked = request("GET", "/shop", "example.com", &[BROWSER, ("x-forwarded-for", "192.0.2.7")]);
    let mut envoy = Envoy { request: blocked, phase: Some(HeaderMap::Request), ..Envoy::default() };
    let mut state = rules.new_request();
    let mut host = ProxyHost::new(&mut envoy);
    assert_eq!(rules.on_request_headers(&mut state, &mut host), Flow::Responded);
    assert_eq!(envoy.answered, Some(403));
    assert!(envoy.request.iter().any(|(n, v)| n == "x-client-ip" && v == "10.1.2.3"), "{:?}", envoy.request);
    assert!(envoy.request.iter().any(|(n, _)| n == "x-original-url"), "{:?}", envoy.request);
}

/// A header set twice is added once, then replaced. A map not read, or one the proxy would not hand over, says
/// nothing about which headers are absent: every set is then a replace.
#[test]
fn only_a_header_known_absent_is_set_by_an_add() {
    let document = |condition: &str| {
        let actions = "request_headers: {set: {x-a: \"1\"}}}, {request_headers: {set: {x-a: \"2\", user-agent: x}}";
        rulefilter::parse(&format!("request:\n  - name: twice\n    {condition}\n    actions: [{{{actions}}}]\n"))
            .unwrap()
    };
    let reads = document("match: {headers: {x-absent: {absent: true}}}");
    let writes_only = document("stop: false");
    for (what, rules, refuse_reads, adds) in
        [("read", &reads, false, 1), ("not read", &writes_only, false, 0), ("refused", &reads, true, 0)]
    {
        let read = request("GET", "/", "example.com", &[BROWSER]);
        let mut envoy = Envoy { request: read, phase: Some(HeaderMap::Request), refuse_reads, ..Envoy::default() };
        rules.on_request_headers(&mut rules.new_request(), &mut ProxyHost::new(&mut envoy));
        assert_eq!(calls(&envoy, "request", "add_header_map_value"), adds, "{what}: {:?}", envoy.calls);
        assert_eq!(calls(&envoy, "request", "replace_header_map_value"), 3 - adds, "{what}: {:?}", envoy.calls);
        let mut values: Vec<&(String, String)> =
            envoy.request.iter().filter(|(n, _)| n == "x-a" || n == "user-agent").collect();
        values.sort();
        assert_eq!(values, [&("user-agent".to_owned(), "x".to_owned()), &("x-a".to_owned(), "2".to_owned())], "{what}");
    }
}
