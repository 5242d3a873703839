//! Arbitrary bytes as a rules document, read as the module reads its configuration and as `rulefilter
//! validate` reads a file. Refusing is fine; panicking is not. A document that compiles is then run against a
//! few requests, with the invariants of `check_exchange`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rulefilter::input::{self, Item};
use rulefilter::locate::SourceMap;
use rulefilter::simulate::{Request, Response};
use rulefilter_fuzz::{check_exchange, env, init_logging, Compiled};

fuzz_target!(|data: &[u8]| {
    init_logging();
    // As `on_configure` (src/wasm/filter.rs): UTF-8 only, blank is no rules, anything else is compiled.
    let Ok(text) = std::str::from_utf8(data) else { return };
    if !text.trim().is_empty() {
        match rulefilter::parse_with_env(text, env()) {
            Ok(rules) => run_requests(&Compiled::new(text, rules)),
            // The module logs one line per problem.
            Err(errors) => errors.0.iter().for_each(|e| drop(e.to_string())),
        }
    }
    validate(text);
});

/// What `rulefilter validate` does with a file: every YAML document, manifests' `pluginConfig`, case files,
/// and each problem placed in the text with its hint.
fn validate(text: &str) {
    let Ok(items) = input::read(text) else { return };
    let mut map = None;
    for item in items {
        match item {
            Item::Rules(source) => {
                if let Err(errors) = source.compile(env()) {
                    let map = map.get_or_insert_with(|| SourceMap::new(text));
                    for error in errors.0 {
                        let _ = map.find(source.index, &source.path(&error.path()));
                        let _ = (error.to_string(), error.hint());
                    }
                }
            }
            Item::Cases { .. } => drop(rulefilter::cases::CaseFile::parse(text, Path::new("fuzz.test.yaml"))),
            Item::Other { .. } => {}
        }
    }
}

/// A few exchanges that reach most kinds of condition: the rules decide what happens, not the request.
fn run_requests(compiled: &Compiled) {
    let busy = Request::get("/api/v2/users/42?q=a%20b&canary=on&utm_source=x")
        .authority("API.example.com:8443")
        .from("10.1.2.3:5555")
        .header("cookie", "session=abc; canary=always")
        .header("cookie", "theme=dark")
        .header("x-forwarded-for", "203.0.113.7, 192.0.2.1")
        .header("origin", "https://app.example.com")
        .header("accept", "application/vnd.example.v2+json")
        .header("user-agent", "OldClient/1.0")
        .header("x-role", "user")
        .header("x-role", "admin");
    let mut odd =
        Request::get("/%zz/\u{e9}?%FF=&&=x&a+b=%0d%0a").method("OPTIONS").authority("[::1]").from("[2001:db8::1]:443");
    odd.scheme = "https".into();
    let failing = Response {
        status: 503,
        headers: vec![
            ("server".into(), "upstream/1".into()),
            ("location".into(), "http://example.com/x".into()),
            ("set-cookie".into(), "a=1".into()),
            ("x-backend".into(), "b1".into()),
        ],
        body: "oops".into(),
    };
    check_exchange(compiled, &busy, &failing);
    check_exchange(compiled, &odd, &Response::ok());
    check_exchange(compiled, &Request::get("/"), &Response { status: 404, ..Response::ok() });
}
