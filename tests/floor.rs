//! The per-rule floor (issue 14, goal 4): what a rule that does not match costs a request. It must cost no
//! allocation: the engine's own allocations are counted (a counting global allocator, paused while the test's
//! proxy works, since fetching a value from the real proxy allocates in any case), for rules of every kind of
//! condition that a request does not match, with the indexes on and off. (One exception: a query parameter
//! written percent-encoded is decoded into a new string when a rule reads it.)
//! (For a profiler, `perf engine-loop edge N` and `perf module-loop edge N` run the soak mix through
//! `rules/edge.yaml` in a loop: docs/performance.md.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;

use rulefilter::engine::Host;
use rulefilter::ruleset::HeaderMap;
use rulefilter::{RequestState, RuleSet};

/// Counts allocations made while counting is on, on this thread.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; counting touches only thread-locals
// initialised without allocating.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` with the engine's allocations counted; returns its result and the count.
fn counted<T>(f: impl FnOnce() -> T) -> (T, u64) {
    ALLOCATIONS.with(|count| count.set(0));
    COUNTING.with(|on| on.set(true));
    let result = f();
    COUNTING.with(|on| on.set(false));
    (result, ALLOCATIONS.with(Cell::get))
}

/// Runs `f` without counting: the proxy's own work.
fn uncounted<T>(f: impl FnOnce() -> T) -> T {
    let was = COUNTING.with(|on| on.replace(false));
    let result = f();
    COUNTING.with(|on| on.set(was));
    result
}

/// A proxy holding one exchange's headers, as Envoy's header maps behave.
#[derive(Clone, Default)]
struct Proxy {
    request: Vec<(String, String)>,
    response: Vec<(String, String)>,
    source: Option<String>,
    writes: u32,
}

impl Proxy {
    fn map(&mut self, map: HeaderMap) -> &mut Vec<(String, String)> {
        match map {
            HeaderMap::Request => &mut self.request,
            HeaderMap::Response => &mut self.response,
        }
    }
}

impl Host for Proxy {
    fn header(&mut self, map: HeaderMap, name: &str) -> Option<String> {
        uncounted(|| {
            let values: Vec<&str> =
                self.map(map).iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect();
            (!values.is_empty()).then(|| values.join(","))
        })
    }
    fn header_names(&mut self, map: HeaderMap) -> Vec<String> {
        uncounted(|| self.map(map).iter().map(|(n, _)| n.clone()).collect())
    }
    fn set_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        uncounted(|| {
            self.writes += 1;
            self.map(map).retain(|(n, _)| n != name);
            self.map(map).push((name.to_owned(), value.to_owned()));
        })
    }
    fn add_header(&mut self, map: HeaderMap, name: &str, value: &str) {
        uncounted(|| {
            self.writes += 1;
            self.map(map).push((name.to_owned(), value.to_owned()));
        })
    }
    fn remove_header(&mut self, map: HeaderMap, name: &str) {
        uncounted(|| {
            self.writes += 1;
            self.map(map).retain(|(n, _)| n != name);
        })
    }
    fn source_address(&mut self) -> Option<String> {
        uncounted(|| self.source.clone())
    }
    fn send_response(&mut self, _status: u16, _headers: &[(&str, &str)], _body: &str) -> bool {
        true
    }
}

fn rules(text: &str) -> RuleSet {
    let env = HashMap::from([("MAINTENANCE_RETRY_AFTER".to_owned(), "120".to_owned()), ("REGION".into(), "eu".into())]);
    rulefilter::parse_with_env(text, &env).unwrap_or_else(|e| panic!("{e}"))
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

/// A request that reads a bit of everything: a query, cookies, a forwarded-for chain, an app's user agent.
fn request() -> Proxy {
    Proxy {
        request: headers(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "shop.example.net:8443"),
            // A percent-encoded parameter is decoded into a new string when a rule reads it: the one allocation
            // a rule may make without matching. This query has none.
            (":path", "/api/v3/orders?page=2&q=red"),
            ("user-agent", "ShopApp/4.2.0 (iOS 18)"),
            ("authorization", "Bearer abc"),
            ("cookie", "session=s-1; tenant=acme-eu"),
            ("x-forwarded-for", "203.0.113.9, 10.0.0.1"),
            ("accept", "application/json"),
        ]),
        response: headers(&[(":status", "200"), ("content-type", "application/json"), ("server", "envoy")]),
        source: Some("10.0.0.1:51234".to_owned()),
        writes: 0,
    }
}

/// Rules of every kind of condition, none of which [`request`] matches. Some pass their first conditions and
/// fail a later one; some hold captures; the response rules read request values carried over.
const NOT_MATCHING: &str = r#"
request:
  - name: exact-path
    match: {path: /robots.txt}
    actions: [respond: {status: 200}]
  - name: prefix-then-method
    match: {path: {prefix: /api/}, method: [POST, PUT]}
    actions: [respond: {status: 405}]
  - name: segment-prefix
    match: {path: {segment_prefix: /admin}}
    actions: [respond: {status: 403}]
  - name: suffix
    match: {path: {suffix: .php}}
    actions: [respond: {status: 404}]
  - name: contains-ignoring-case
    match: {headers: {user-agent: {contains: BOT, ignore_case: true}}}
    actions: [respond: {status: 429}]
  - name: regex-with-captures
    match: {path: {regex: '/api/v(?P<v>[0-9]+)/payments(/.*)?'}}
    actions: [request_headers: {set: {x-v: "${capture.v}"}}]
  - name: regex-with-captures-then-header
    match:
      headers: {user-agent: {regex: 'ShopApp/(?P<major>[0-9]+)\..*'}, x-beta: "on"}
    actions: [request_headers: {set: {x-app: "${capture.major}"}}]
  - name: regex-ignoring-case
    match: {headers: {user-agent: {regex: '.*(sqlmap|nikto).*', ignore_case: true}}}
    actions: [respond: {status: 403}]
  - name: header-absent
    match: {headers: {authorization: {absent: true}}}
    actions: [respond: {status: 401}]
  - name: header-inverted
    match: {headers: {authorization: {prefix: "Bearer ", invert: true}}}
    actions: [respond: {status: 401}]
  - name: cookie
    match: {cookies: {canary: always}}
    actions: [request_headers: {set: {x-route-to: canary}}]
  - name: query
    match: {query: {canary: "on"}}
    actions: [query: {remove: [canary]}]
  - name: query-decoded
    match: {query: {q: blue shoes}}
    actions: [query: {remove: [q]}]
  - name: hosts
    match: {host: [shop.example.com, "*.shop.example.org"]}
    actions: [redirect: {scheme: https, status: 308}]
  - name: host-regex
    match: {host: {regex: 'www\.(?P<apex>.+)'}}
    actions: [redirect: {host: "${capture.apex}", status: 301}]
  - name: scheme
    match: {scheme: http}
    actions: [redirect: {scheme: https, status: 308}]
  - name: networks
    match: {source: {cidrs: [192.0.2.0/24, "2001:db8::/32"], trusted_hops: 1}}
    actions: [respond: {status: 403}]
  - name: networks-inverted
    match: {path: {prefix: /api/}, source: {cidrs: [10.0.0.0/8], invert: true}}
    actions: [respond: {status: 403}]
  - name: any-of
    match:
      any:
        - query: {utm_source: {present: true}}
        - cookies: {debug: {present: true}}
    actions: [query: {remove: [utm_source]}]
  - name: attribute
    match: {attributes: {xds.route_name: admin}}
    actions: [respond: {status: 403}]
  - name: claim
    match: {claims: {groups: admin}}
    actions: [request_headers: {set: {x-admin: "${claim.sub}"}}]
  - name: sampled
    match: {sample: {percent: 0.01, key: "${header.user-agent}"}}
    actions: [request_headers: {set: {x-sampled: "1"}}]
  - name: not-block
    match:
      path: {prefix: /api/}
      not:
        headers: {accept: {prefix: application/}}
    actions: [respond: {status: 406}]
response:
  - name: status
    match: {status: 5xx}
    actions: [response_headers: {set: {cache-control: no-store}}]
  - name: response-header
    match: {response_headers: {content-type: {prefix: text/html}}}
    actions: [response_headers: {set: {x-html: "1"}}]
  - name: request-value-carried
    match: {headers: {x-beta: {present: true}}}
    actions: [response_headers: {set: {x-beta: seen}}]
"#;

/// Runs one exchange; the engine's allocations in its two phases. The exchange runs once before, uncounted:
/// a regex is built at its first use, once per rule set (see `src/lazy_regex.rs`), not per request.
fn allocations(rules: &RuleSet, proxy: &mut Proxy) -> u64 {
    let exchange = |state: &mut RequestState, proxy: &mut Proxy| {
        rules.on_request_headers(state, proxy);
        rules.on_response_headers(state, proxy);
    };
    exchange(&mut rules.new_request(), &mut proxy.clone());
    // The state is made when the exchange starts, once; what is counted is the rules' evaluation.
    let mut state = rules.new_request();
    let ((), count) = counted(|| exchange(&mut state, proxy));
    count
}

#[test]
fn rules_that_do_not_match_allocate_nothing() {
    let indexed = rules(NOT_MATCHING);
    let mut proxy = request();
    assert_eq!(allocations(&indexed, &mut proxy), 0, "with the indexes");
    assert_eq!(proxy.writes, 0, "a rule matched: the document no longer tests what it says");
    let plain = rules(NOT_MATCHING).without_indexes();
    assert_eq!(allocations(&plain, &mut request()), 0, "every rule evaluated");
}

/// Rules that match and write fixed values allocate nothing either: the values are applied as compiled (no
/// list of rendered values per action), and a write to a header that later rules read is kept in the
/// exchange's one buffer of values (no `String` per value).
const MATCHING_FIXED_WRITES: &str = r#"
request:
  - name: tag
    actions:
      - request_headers:
          set: {x-tier: gold, x-region: eu}
          set_if_absent: {x-trace: "off"}
          add: {x-seen: edge}
          remove: [x-debug]
  - name: reads-what-tag-wrote
    match: {headers: {x-tier: gold, x-region: eu, x-seen: edge}}
    actions:
      - request_headers: {set: {x-tier: platinum}}
  - name: sees-the-second-write
    match: {headers: {x-tier: platinum}}
    actions:
      - request_headers: {set: {x-tier-seen: "yes"}}
response:
  - name: security
    actions:
      - response_headers:
          set: {x-content-type-options: nosniff, x-frame-options: DENY}
          remove: [server]
"#;

#[test]
fn rules_that_write_fixed_values_allocate_nothing() {
    let rules = rules(MATCHING_FIXED_WRITES);
    let mut proxy = request();
    assert_eq!(allocations(&rules, &mut proxy), 0);
    assert!(proxy.request.iter().any(|(n, _)| n == "x-tier-seen"), "the third rule did not see the second's write");
    let response: Vec<&str> = proxy.response.iter().map(|(n, _)| n.as_str()).collect();
    assert!(response.contains(&"x-frame-options") && !response.contains(&"server"), "{response:?}");
}

/// The floor holds in a real document too: `rules/edge.yaml`'s rules that a request does not match add no
/// allocation to what the ones it matches make. Each passing request is run through the whole document and
/// through the document less every rule that did not match it.
#[test]
fn edge_rules_that_do_not_match_add_no_allocation() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/edge.yaml")).unwrap();
    let edge = rules(&text);
    let exchanges = [
        ("GET", "/shop/shoes?page=2", vec![("cookie", "session=s-7f3a; theme=dark")]),
        ("GET", "/api/v3/orders", vec![("authorization", "Bearer t"), ("cookie", "tenant=acme-eu")]),
        ("GET", "/api/v3/catalog/items/7", vec![("origin", "https://app.example.com")]),
    ];
    for (method, path, extra) in exchanges {
        let mut proxy = request();
        proxy.request.retain(|(n, _)| !matches!(n.as_str(), ":method" | ":path" | "cookie" | "authorization"));
        proxy.request.extend(headers(&[(":method", method), (":path", path)]));
        proxy.request.extend(headers(&extra));
        let mut traced = edge.new_traced_request();
        edge.on_request_headers(&mut traced, &mut proxy.clone());
        edge.on_response_headers(&mut traced, &mut proxy.clone());
        let matched = matched_rules(traced.trace());
        let only_matching = rules(&keep_rules(&text, &matched));
        let whole = allocations(&edge, &mut proxy.clone());
        let without = allocations(&only_matching, &mut proxy.clone());
        assert_eq!(whole, without, "{method} {path}: matched {matched:?}");
    }
}

/// The names of the rules that matched, from a trace.
fn matched_rules(events: &[rulefilter::trace::Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            rulefilter::trace::Event::Rule { name, miss: None, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// `text` with only the rules named in `keep` (a rule is a `  - name:` line and what follows it); a phase left
/// without rules becomes an empty list.
fn keep_rules(text: &str, keep: &[String]) -> String {
    let mut out = String::new();
    let mut keeping = true;
    let mut phase_emptied = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("  - name: ") {
            keeping = keep.iter().any(|k| k == name.trim());
            if keeping {
                phase_emptied = None;
            }
        } else if !line.starts_with(' ') && !line.starts_with('#') && !line.is_empty() {
            close_phase(&mut out, phase_emptied.take());
            keeping = true;
            if line.ends_with(':') {
                phase_emptied = Some(out.len());
            }
        }
        if keeping {
            out.push_str(line);
            out.push('\n');
        }
    }
    close_phase(&mut out, phase_emptied);
    out
}

/// Turns the `phase:` line that ends at `at` into `phase: []` when none of its rules was kept.
fn close_phase(out: &mut String, emptied: Option<usize>) {
    if let Some(at) = emptied {
        let end = out[at..].find('\n').map_or(out.len(), |n| at + n);
        out.insert_str(end, " []");
    }
}

/// A header an action writes is resolved to the slot rules read it from when the document is compiled; later
/// rules see every kind of write, in both phases, over what earlier rules read before it.
#[test]
fn later_rules_see_what_earlier_ones_wrote() {
    use rulefilter::simulate::{self, Request, Response};
    let document = r#"
request:
  - name: read-before
    match:
      any:
        - headers: {x-set: "0"}
        - headers: {x-added: "0"}
        - headers: {x-copied: "0"}
        - headers: {x-renamed: "0"}
        - headers: {x-old: "0"}
        - headers: {x-gone: "0"}
    actions: [respond: {status: 500}]
  - name: write
    actions:
      - request_headers:
          set: {x-set: "1"}
          add: {x-added: "2"}
          copy: [{from: x-in, to: x-copied}]
          rename: [{from: x-old, to: x-renamed}]
          remove: [x-gone]
  - name: read
    match:
      headers:
        x-set: "1"
        x-added: "2"
        x-copied: in
        x-renamed: old
        x-old: {absent: true}
        x-gone: {absent: true}
    actions: [respond: {status: 418}]
response:
  - name: read-response-before
    match: {any: [{response_headers: {x-out: "0"}}, {response_headers: {server: "0"}}]}
    actions: [respond: {status: 500}]
  - name: write-response
    actions: [response_headers: {set: {x-out: "3"}, remove: [server]}]
  - name: read-response
    match: {response_headers: {x-out: "3", server: {absent: true}}}
    actions: [response_headers: {set: {x-seen: "yes"}}]
"#;
    let rules = rules(document);
    let request = Request::get("/").header("x-in", "in").header("x-old", "old").header("x-gone", "x");
    assert_eq!(simulate::run(&rules, &request, &Response::ok()).response.status, 418);
    let passing = Request::get("/");
    let mut response = Response::ok();
    response.headers.push(("server".to_owned(), "upstream".to_owned()));
    let outcome = simulate::run(&rules, &passing, &response);
    assert_eq!(outcome.response.header("x-seen"), Some("yes"), "{:?}", outcome.response);
}

/// The path is split at its `?` once per value: a rule that rewrites it or edits its query makes later rules
/// split the new one.
#[test]
fn later_rules_split_the_path_as_rewritten() {
    use rulefilter::simulate::{self, Request, Response};
    let document = r#"
request:
  - name: move
    match: {path: {prefix: /old/}, query: {keep: "1"}}
    actions: [rewrite: {path: "/new/place?moved=yes"}]
  - name: tag
    match: {path: /new/place, query: {moved: "yes"}}
    actions: [query: {set: {tagged: "1"}}]
  - name: seen
    match: {path: /new/place, query: {tagged: "1", moved: "yes"}}
    actions: [respond: {status: 418}]
"#;
    let outcome = simulate::run(&rules(document), &Request::get("/old/x?keep=1"), &Response::ok());
    assert_eq!(outcome.response.status, 418, "{outcome:?}");
}
