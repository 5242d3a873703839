//! Fixed documents (every one in rules/ and tests/cases/, and fuzz/documents/nasty.yaml) compiled once, then
//! run against an arbitrary exchange: odd bytes anywhere, huge values, a header repeated many times, odd
//! paths, queries, cookies, addresses and statuses. Each exchange is checked by `check_exchange`.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use rulefilter::ruleset::Slot;
use rulefilter::simulate::{Request, Response};
use rulefilter_fuzz::{check_exchange, env, init_logging, Compiled};

const DOCUMENTS: &[(&str, &str)] = &[
    ("rules/api-keys.yaml", include_str!("../../rules/api-keys.yaml")),
    ("rules/api-versions.yaml", include_str!("../../rules/api-versions.yaml")),
    ("rules/basic-auth.yaml", include_str!("../../rules/basic-auth.yaml")),
    ("rules/canary.yaml", include_str!("../../rules/canary.yaml")),
    ("rules/cors.yaml", include_str!("../../rules/cors.yaml")),
    ("rules/edge.yaml", include_str!("../../rules/edge.yaml")),
    ("rules/errors.yaml", include_str!("../../rules/errors.yaml")),
    ("rules/gateway-routes.yaml", include_str!("../../rules/gateway-routes.yaml")),
    ("rules/header-hygiene.yaml", include_str!("../../rules/header-hygiene.yaml")),
    ("rules/hello.yaml", include_str!("../../rules/hello.yaml")),
    ("rules/html-fixup.yaml", include_str!("../../rules/html-fixup.yaml")),
    ("rules/json-guard.yaml", include_str!("../../rules/json-guard.yaml")),
    ("rules/jwt-claims.yaml", include_str!("../../rules/jwt-claims.yaml")),
    ("rules/legacy-redirects.yaml", include_str!("../../rules/legacy-redirects.yaml")),
    ("rules/maintenance.yaml", include_str!("../../rules/maintenance.yaml")),
    ("rules/per-route.yaml", include_str!("../../rules/per-route.yaml")),
    ("rules/rate-limits.yaml", include_str!("../../rules/rate-limits.yaml")),
    ("rules/rollout.yaml", include_str!("../../rules/rollout.yaml")),
    ("rules/security-headers.yaml", include_str!("../../rules/security-headers.yaml")),
    ("tests/cases/vocabulary.yaml", include_str!("../../tests/cases/vocabulary.yaml")),
    ("tests/cases/dry-run.yaml", include_str!("../../tests/cases/dry-run.yaml")),
    ("tests/cases/dry-run-document.yaml", include_str!("../../tests/cases/dry-run-document.yaml")),
    ("tests/cases/templates.yaml", include_str!("../../tests/cases/templates.yaml")),
    ("tests/cases/test-format.yaml", include_str!("../../tests/cases/test-format.yaml")),
    ("fuzz/documents/nasty.yaml", include_str!("../documents/nasty.yaml")),
    ("fuzz/documents/indexed.yaml", include_str!("../documents/indexed.yaml")),
    ("fuzz/documents/bodies.yaml", include_str!("../documents/bodies.yaml")),
];

/// Headers the rules write, copy or remove without reading them as conditions.
#[rustfmt::skip]
const EXTRA_NAMES: &[&str] = &[
    "x-forwarded-for", "cookie", "set-cookie", "location", "server", "x-powered-by", "etag", "x-backend",
    "x-internal", "x-trace-1", "x-strip-me", "x-case-a", "x-debug-id", "api-secret", "x-upstream-a", "content-type",
    "cache-control", "user-agent", "x-envoy-internal", "x-request-id", "host", "authorization", "x-route-to",
];

/// Pieces of values the rules compare against, and bytes that often break parsers.
#[rustfmt::skip]
const VALUES: &[&str] = &[
    "/", "/api/", "/api/v2/users", "/api/v9", "/hello", "/deep", "/old/", "/v2/", "/healthz", "/shop", "/blog/",
    "/docs/", "/u/bob", "/form", "/secure-area", "/app", "/login", "GET", "POST", "HEAD", "OPTIONS", "PATCH",
    "DELETE", "http", "https", "example.com", "www.example.com", "shop.example.com", "app.example.com",
    "https://app.example.com", ":8443", ":80", "[::1]", "127.0.0.1", "203.0.113.7", "10.0.0.1", "192.0.2.1",
    "2001:db8::1", "::ffff:10.0.0.1", ",", ", ", ";", "=", "&", "?", "#", "%", "%2F", "%0d%0a", "%00", "+", "$", "${",
    "\r\n", "\0", "\u{e9}", "\u{fffd}", "session=", "canary=", "always", "on", "off", "yes", "dry", "END",
    "application/vnd.example.v2+json", "application/json", "text/html", "OldClient/1.0", "Googlebot", "utm_source=x",
    "api-version=2", "x@y", "admin", "z", "deep=1", "?q=", "c=", "/API/V2/users", "/v2/", "/SHOP", "/old/",
    "shop.example.com:8443", "app.example.org", "Canary", "dbg-", "s-", "session=s-", "/form", "/Admin/x", "z=admin",
    "Bearer ", "eyJ", ".", "second.internal", "/second/", "orders-api", "spiffe://cluster.local/ns/prod/sa/web",
    "spiffe://", "/ns/", "/sa/",
    "/ops", "/hooks/payments", "key=", "Basic ", "basic ", "Bearer ", "YWxpY2U6b3BlbiBzZXNhbWU=", "YWxpY2U6",
    "acme-live-7Qm2vX9pL4", "whsec-9fK3mQ7zLx2B", "initech-live-Tn5cR2wY8e", "authorization", "x-api-key",
    "/api/users", "{\"user\":{\"role\":\"admin\",\"id\":1}}", "{", "}", "[", "]", "\"", ":", "\\u0000", "1e999",
    "<body>", "http://internal.example.local", "text/event-stream", "application/grpc", "websocket", "~1", "/-",
    "application/problem+json; charset=utf-8",
];

#[derive(Arbitrary, Debug)]
enum Part {
    Known(u8),
    Bytes(Vec<u8>),
    /// Bytes repeated up to 255 times: long values from small inputs.
    Repeat(Vec<u8>, u8),
}

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Source {
    V4([u8; 4], u16),
    V6([u8; 16], u16),
    Text(Vec<Part>),
}

#[derive(Arbitrary, Debug)]
struct Exchange {
    document: u8,
    /// Whether CR, LF and NUL are dropped, as Envoy's codecs refuse them: then no header that leaves may hold
    /// one. Otherwise they reach the engine (its other checks still apply).
    codec: bool,
    method: Vec<Part>,
    path: Vec<Part>,
    authority: Vec<Part>,
    scheme: Vec<Part>,
    source: Source,
    headers: Vec<(Name, Vec<Part>)>,
    /// One header sent up to 255 times.
    repeated: Option<(Name, Vec<Part>, u8)>,
    huge: Rarely,
    status: u16,
    response_headers: Vec<(Name, Vec<Part>)>,
    /// The TLS connection's server name (SNI) and client certificate URI SAN, if any.
    server_name: Option<Vec<Part>>,
    principal: Option<Vec<Part>>,
    /// A jwt_authn filter in front, reading bearer tokens of the issuer the documents' cases use.
    jwt_authn: bool,
    request_body: Vec<Part>,
    response_body: Vec<Part>,
}

/// Sizes spread over orders of magnitude: a size is a power of two.
#[derive(Arbitrary, Debug)]
enum Huge {
    /// `fragment` over and over, 2^(log2 % 17) bytes of it, in one place: up to 64 KiB, past Envoy's default
    /// limit for all request headers together (60 KiB), and enough to show any cost worse than linear.
    Value { place: u8, fragment: Vec<u8>, log2: u8 },
    /// A header sent 2^(log2 % 14) times (up to 8192).
    Repeated { name: Name, value: Vec<u8>, log2: u8 },
}

/// A huge part in one exchange in eight: each such run takes milliseconds, and most paths need none.
#[derive(Debug)]
struct Rarely(Option<Huge>);

impl<'a> Arbitrary<'a> for Rarely {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Rarely(if u.ratio(1u8, 8)? { Some(u.arbitrary()?) } else { None }))
    }
}

/// Most bytes one exchange may hold; larger values and more headers get cut.
const BUDGET: usize = 256 << 10;

struct Builder<'a> {
    names: &'a [String],
    left: usize,
    codec: bool,
}

impl Builder<'_> {
    fn text(&mut self, parts: &[Part]) -> String {
        let mut bytes = Vec::new();
        for part in parts {
            match part {
                Part::Known(i) => bytes.extend_from_slice(VALUES[usize::from(*i) % VALUES.len()].as_bytes()),
                Part::Bytes(b) => bytes.extend_from_slice(b),
                Part::Repeat(b, n) => bytes.extend(repeat(b, usize::from(*n) * b.len())),
            }
            bytes.truncate(self.left);
        }
        self.left -= bytes.len();
        self.decode(bytes)
    }

    /// `fragment` over and over, `len` bytes of it (as many as the budget allows).
    fn long(&mut self, fragment: &[u8], len: usize) -> String {
        let bytes: Vec<u8> = repeat(fragment, len.min(self.left)).collect();
        self.left -= bytes.len();
        self.decode(bytes)
    }

    /// Bytes as the module reads them: invalid UTF-8 as U+FFFD; without CR, LF and NUL where a codec is.
    fn decode(&self, mut bytes: Vec<u8>) -> String {
        if self.codec {
            bytes.retain(|b| !matches!(b, b'\r' | b'\n' | 0));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A header name as Envoy hands it over: lower-case, never empty, never a pseudo-header (those are the
    /// request line's, and codecs refuse duplicates).
    fn name(&mut self, name: &Name) -> Option<String> {
        let text = match name {
            Name::Known(i) => self.names[usize::from(*i) % self.names.len()].clone(),
            Name::Raw(bytes) => self.decode(bytes.clone()).to_ascii_lowercase(),
        };
        (!text.is_empty() && !text.starts_with(':')).then_some(text)
    }

    fn headers(&mut self, headers: &[(Name, Vec<Part>)]) -> Vec<(String, String)> {
        headers.iter().filter_map(|(name, value)| Some((self.name(name)?, self.text(value)))).collect()
    }
}

fn repeat(fragment: &[u8], len: usize) -> impl Iterator<Item = u8> + '_ {
    fragment.iter().copied().cycle().take(if fragment.is_empty() { 0 } else { len })
}

struct Setup {
    documents: Vec<Compiled>,
    /// Every header name some document reads, and the extra ones.
    names: Vec<String>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        init_logging();
        let mut names: Vec<String> = EXTRA_NAMES.iter().map(|n| (*n).to_owned()).collect();
        let documents = DOCUMENTS
            .iter()
            .map(|(path, text)| {
                let rules = rulefilter::parse_with_env(text, env())
                    .unwrap_or_else(|errors| panic!("{path} does not compile:\n{errors}"));
                names.extend(rules.slots().iter().filter_map(|slot| match slot {
                    Slot::Header(_, name) if !name.starts_with(':') => Some(name.to_string()),
                    _ => None,
                }));
                Compiled::new(text, rules)
            })
            .collect();
        names.sort();
        names.dedup();
        Setup { documents, names }
    })
}

fuzz_target!(|exchange: Exchange| {
    let setup = setup();
    let compiled = &setup.documents[usize::from(exchange.document) % setup.documents.len()];
    let mut build = Builder { names: &setup.names, left: BUDGET, codec: exchange.codec };
    let mut headers = build.headers(&exchange.headers);
    if let Some((name, value, times)) = &exchange.repeated {
        if let Some(name) = build.name(name) {
            let value = build.text(value);
            headers.extend(std::iter::repeat_n((name, value), usize::from(*times)));
        }
    }
    let source = match &exchange.source {
        Source::V4(ip, port) => std::net::SocketAddr::from((*ip, *port)).to_string(),
        Source::V6(ip, port) => std::net::SocketAddr::from((*ip, *port)).to_string(),
        Source::Text(parts) => build.text(parts),
    };
    let mut request = Request {
        method: build.text(&exchange.method),
        path: build.text(&exchange.path),
        authority: build.text(&exchange.authority),
        scheme: build.text(&exchange.scheme),
        headers,
        source,
        attributes: Vec::new(),
        jwt_issuer: exchange.jwt_authn.then(|| "https://auth.example.com".to_owned()),
        body: build.text(&exchange.request_body),
    };
    if let Some(name) = &exchange.server_name {
        request.attributes.push(("connection.requested_server_name".into(), build.text(name)));
    }
    if let Some(principal) = &exchange.principal {
        request.attributes.push(("connection.mtls".into(), "true".into()));
        request.attributes.push(("source.principal".into(), build.text(principal)));
    }
    let response_headers = build.headers(&exchange.response_headers);
    let mut upstream =
        Response { status: exchange.status, headers: response_headers, body: build.text(&exchange.response_body) };
    match &exchange.huge.0 {
        Some(Huge::Value { place, fragment, log2 }) => {
            let value = build.long(fragment, 1 << (log2 % 17));
            match place % 8 {
                0 => request.path.push_str(&value),
                1 => request.authority.push_str(&value),
                2 => request.headers.push(("cookie".into(), value)),
                3 => request.headers.push(("x-forwarded-for".into(), value)),
                4 => match request.headers.first_mut() {
                    Some((_, first)) => first.push_str(&value),
                    None => request.headers.push(("x-huge".into(), value)),
                },
                5 => upstream.headers.push(("location".into(), value)),
                6 => request.body.push_str(&value),
                _ => upstream.body.push_str(&value),
            }
        }
        Some(Huge::Repeated { name, value, log2 }) => {
            if let Some(name) = build.name(name) {
                let value = build.text(&[Part::Bytes(value.clone())]);
                // Each copy counts against the budget, as Envoy's header size limit counts it.
                let times = (1 << (log2 % 14)).min(build.left / (name.len() + value.len() + 1));
                request.headers.extend(std::iter::repeat_n((name, value), times));
            }
        }
        None => {}
    }
    check_exchange(compiled, &request, &upstream);
});
