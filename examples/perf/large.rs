//! Documents of 1,000 rules: 998 of each common shape, then `rules/hello.yaml`'s two: large rule sets as teams
//! write them (legacy redirects, tenants, block lists), none of whose rules the bench's requests match, so that
//! every request runs all of them. Generated, deterministic: the same text on every run.

use std::fmt::Write as _;

use rulefilter::limits::MAX_RULES;

use crate::{project_dir, Document};

/// Generated rules per document: as many as a document may hold ([`MAX_RULES`], 1,000) less hello's two, so
/// that each document is the largest the filter accepts.
pub const RULES: usize = MAX_RULES - HELLO_RULES;
const HELLO_RULES: usize = 2;

/// One shape of rule: a label for the table, a file name, and the YAML of rule `i` (a list item).
pub struct Shape {
    pub label: &'static str,
    pub name: &'static str,
    rule: fn(usize) -> String,
}

pub const SHAPES: &[Shape] = &[
    Shape { label: "exact-path redirects", name: "exact-paths", rule: exact_path },
    Shape { label: "path prefix + header", name: "prefix-header", rule: prefix_and_header },
    Shape { label: "host lists", name: "host-lists", rule: host_list },
    Shape { label: "regex paths", name: "regex-paths", rule: regex_path },
    Shape { label: "CIDR lists", name: "cidr-lists", rule: cidr_list },
];

/// A moved page: `/catalog/item-N.html` answered with a redirect to its new place.
fn exact_path(i: usize) -> String {
    format!(
        "  - name: moved-{i}\n    match: {{path: /catalog/item-{i}.html}}\n    \
         actions: [redirect: {{path: /shop/items/{i}, status: 301}}]\n"
    )
}

/// A tenant's API under its own prefix, recognised by a header.
fn prefix_and_header(i: usize) -> String {
    format!(
        "  - name: tenant-{i}\n    match: {{path: {{prefix: /tenants/t{i}/}}, headers: {{x-tenant: t{i}}}}}\n    \
         actions: [request_headers: {{set: {{x-tenant-route: t{i}}}}}]\n"
    )
}

/// A customer's domains: its own host and any subdomain of a second one.
fn host_list(i: usize) -> String {
    format!(
        "  - name: domain-{i}\n    match: {{host: [shop-{i}.example.net, \"*.customer-{i}.example.org\"]}}\n    \
         actions: [request_headers: {{set: {{x-customer: c{i}}}}}]\n"
    )
}

/// An old archive layout, rewritten from captures.
fn regex_path(i: usize) -> String {
    format!(
        "  - name: archive-{i}\n    match: {{path: {{regex: '/archive/{i}/(?P<year>[0-9]{{4}})/(?P<slug>[a-z0-9-]+)'}}}}\n    \
         actions: [redirect: {{path: \"/posts/${{capture.year}}/${{capture.slug}}\", status: 301}}]\n"
    )
}

/// A block list: three networks a rule, none of them loopback.
fn cidr_list(i: usize) -> String {
    let (high, low) = (i / 256, i % 256);
    format!(
        "  - name: blocked-{i}\n    \
         match: {{source: {{cidrs: [10.{high}.{low}.0/24, 172.{}.{low}.0/24, \"2001:db8:{i:x}::/48\"]}}}}\n    \
         actions: [respond: {{status: 403}}]\n",
        16 + high
    )
}

/// The document of `shape`: its [`RULES`] rules, then `rules/hello.yaml`'s, in that order.
pub fn document(shape: &Shape) -> Result<Document, String> {
    let hello_path = project_dir().join("rules/hello.yaml");
    let hello =
        std::fs::read_to_string(&hello_path).map_err(|e| format!("cannot read {}: {e}", hello_path.display()))?;
    let mut generated = String::new();
    for i in 0..RULES {
        generated.push_str(&(shape.rule)(i));
    }
    let mut text = String::new();
    let _ = writeln!(text, "# {RULES} {} (examples/perf/large.rs), then rules/hello.yaml.", shape.label);
    let spliced = hello.replacen("\nrequest:\n", &format!("\nrequest:\n{generated}"), 1);
    if spliced == hello {
        return Err(format!("{}: no top-level `request:` to put the generated rules in", hello_path.display()));
    }
    text.push_str(&spliced);
    let name = format!("{RULES}-{}", shape.name);
    let document = Document::from_text(&name, &text, Vec::new()).map_err(|e| format!("{name}: {e}"))?;
    // Written out so that a person can read what was measured.
    let dir = crate::scratch_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(document)
}

#[cfg(test)]
mod tests {
    use rulefilter::simulate::{self, Outcome, Request, Response};
    use rulefilter::Phase;

    use super::*;

    fn tagged(outcome: &Outcome) -> bool {
        outcome.response.header("x-service-name") == Some("my-custom-service")
    }

    /// A request that rule `i` of `shape` is written to catch.
    fn caught_by(shape: &Shape, i: usize) -> Request {
        match shape.name {
            "exact-paths" => Request::get(&format!("/catalog/item-{i}.html")),
            "prefix-header" => Request::get(&format!("/tenants/t{i}/orders")).header("x-tenant", &format!("t{i}")),
            "host-lists" => Request::get("/").authority(&format!("www.customer-{i}.example.org")),
            "regex-paths" => Request::get(&format!("/archive/{i}/2019/old-post")),
            "cidr-lists" => Request::get("/").from(&simulate::client_address(&format!("10.{}.{}.7", i / 256, i % 256))),
            other => panic!("no request for shape {other}"),
        }
    }

    /// Each document is as large as the filter takes; the bench's requests run through all its rules (none
    /// matches them: the passing request reaches the service untouched, hello.yaml still answers /hello); and
    /// the rules are live: a request written for one of them is caught.
    #[test]
    fn the_bench_requests_match_none_of_the_generated_rules() {
        let service = Response::ok();
        for shape in SHAPES {
            let document = document(shape).unwrap();
            let rules = &document.rules;
            assert_eq!(
                rules.rule_count(Phase::Request) + rules.rule_count(Phase::Response),
                MAX_RULES,
                "{}",
                shape.name
            );
            // Every generated rule is served by an index (docs/performance.md, "Indexes"): the bench then measures
            // the indexed path, and a shape that falls out of the indexes shows here rather than as a slow leg.
            // Hello's own request rule is evaluated directly where it would be alone in its index.
            let indexed = rules.indexed_rules(Phase::Request);
            assert!(indexed + 1 >= rules.rule_count(Phase::Request), "{}: {indexed} indexed", shape.name);

            let passing = Request::get("/api/v3/orders");
            let outcome = simulate::run(rules, &passing, &service);
            assert!(!outcome.responded_locally, "{}: answered {:?}", shape.name, outcome.response);
            let upstream = outcome.upstream_request.as_ref().unwrap();
            let added: Vec<_> = upstream.iter().filter(|(name, _)| name.starts_with("x-")).collect();
            assert!(added.is_empty(), "{}: the passing request was changed: {added:?}", shape.name);
            assert!(tagged(&outcome), "{}", shape.name);

            let hello = simulate::run(rules, &Request::get("/hello"), &service);
            assert!(hello.responded_locally && hello.response.status == 200, "{}: {:?}", shape.name, hello.response);
            assert_eq!(hello.response.body, "Hello from Wasm!\n", "{}", shape.name);

            let caught = simulate::run(rules, &caught_by(shape, RULES / 2), &service);
            let changed = caught.responded_locally
                || caught.upstream_request.as_ref().unwrap().iter().any(|(name, _)| name.starts_with("x-"));
            assert!(changed, "{}: rule {} did not catch its request", shape.name, RULES / 2);
        }
    }
}
