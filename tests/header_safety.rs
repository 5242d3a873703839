//! A valid document never breaks ordinary traffic: every header edit Envoy 1.40 cannot survive is refused, by
//! `rulefilter validate` and by the module (Envoy NACKs the ECDS update and keeps the old rules serving), and
//! the edits left allowed on the same headers are shown harmless to ordinary requests over HTTP/1.1 and HTTP/2,
//! towards an HTTP/1.1 and an HTTP/2 upstream.
//!
//! What the refused edits did when they were allowed (measured with this suite's requests, Envoy 1.40): renaming
//! `:method` → 503 on every request, `:path` → 404, `:status` → 502; setting `content-length` → requests hang
//! or lose their body, responses are cut or hang and HTTP/2 clients get a protocol error; a request
//! `transfer-encoding` → GETs hang; `connection`, `keep-alive`, `proxy-connection`, `upgrade` or `te: gzip` on
//! a request → 502 from an HTTP/2 upstream; `add: {host: …}` → the upstream gets `host: a,b`; a 204 with a
//! body → Envoy sends the body, which an HTTP/1.1 client reads as the next response.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use support::http2::{self, H2Upstream};
use support::{
    echo, options, options_for, project_dir, start, EchoUpstream, Echoed, Envoy, HttpResponse, Plugin, Reload,
};

/// The body ordinary POSTs carry.
const BODY: &str = "hello";

/// One Envoy in front of the HTTP/1.1 echo upstream and one whose clusters speak HTTP/2 to an HTTP/2 upstream
/// (as Istio's sidecars do between pods), both serving the same documents.
struct Proxies {
    _echo: EchoUpstream,
    h2_upstream: H2Upstream,
    to_h1: Envoy,
    to_h2: Envoy,
}

impl Proxies {
    fn start() -> Proxies {
        let echo = echo();
        let h2_upstream = H2Upstream::start();
        let to_h1 = start(options(Plugin::new("headers-h1", Some("{}".into())), &echo));
        let to_h2 = start(
            options_for(Plugin::new("headers-h2", Some("{}".into())), h2_upstream.addr).use_client_protocol(true),
        );
        Proxies { _echo: echo, h2_upstream, to_h1, to_h2 }
    }

    /// Pushes a document to both by ECDS; what each did with it.
    fn push(&mut self, document: &str) -> (Reload, Reload) {
        (
            self.to_h1.push_config(Some(document.to_owned())).unwrap(),
            self.to_h2.push_config(Some(document.to_owned())).unwrap(),
        )
    }

    /// Ordinary requests, each of which must be answered 200 with its body delivered upstream: GET and POST
    /// (content-length and chunked) over HTTP/1.1, GET and POST over HTTP/2, to both upstreams. Returns the
    /// HTTP/1.1 GET's response for further checks.
    #[track_caller]
    fn ordinary_requests_pass(&self, case: &str) -> HttpResponse {
        let addr = self.to_h1.listener;
        let get = http1(addr, "GET", "", "");
        assert_eq!((get.status, get.echoed()["body"].as_str()), (200, Some("")), "{case}: HTTP/1.1 GET: {get:?}");
        let post = http1(addr, "POST", &format!("content-length: {}\r\n", BODY.len()), BODY);
        assert_eq!((post.status, post.echoed()["body"].as_str()), (200, Some(BODY)), "{case}: POST: {post:?}");
        let chunked = http1(addr, "POST", "transfer-encoding: chunked\r\n", &format!("5\r\n{BODY}\r\n0\r\n\r\n"));
        assert_eq!((chunked.status, chunked.echoed()["body"].as_str()), (200, Some(BODY)), "{case}: {chunked:?}");
        for (method, body) in [("GET", ""), ("POST", BODY)] {
            let response = http2::request(addr, method, "/ordinary", &[], body.as_bytes());
            let echoed: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
            assert_eq!((response.status, echoed["body"].as_str()), (200, Some(body)), "{case}: h2c {method}");
            let response = http2::request(self.to_h2.listener, method, "/ordinary", &[], body.as_bytes());
            assert_eq!(response.status, 200, "{case}: h2c {method} to an HTTP/2 upstream: {response:?}");
            assert_eq!(response.body, b"hello over h2\n", "{case}: h2c {method} to an HTTP/2 upstream");
            let received = self.h2_upstream.received.all().pop().unwrap();
            assert_eq!(received.body, body.as_bytes(), "{case}: h2c {method}: the HTTP/2 upstream got {received:?}");
        }
        get
    }
}

/// One HTTP/1.1 request to `/ordinary` with `headers` (CRLF-terminated lines) and a body as written on the wire.
fn http1(addr: SocketAddr, method: &str, headers: &str, wire_body: &str) -> HttpResponse {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let text =
        format!("{method} /ordinary HTTP/1.1\r\nhost: example.com\r\nconnection: close\r\n{headers}\r\n{wire_body}");
    (&stream).write_all(text.as_bytes()).unwrap();
    HttpResponse::read(&mut BufReader::new(&stream), false).unwrap_or_else(|| panic!("no response to {method}"))
}

/// A document of one rule named `edit`, in `phase`, with one action (compact JSON, as Istio delivers it).
fn document(phase: &str, action: &str) -> String {
    format!(r#"{{"{phase}":[{{"name":"edit","actions":[{action}]}}]}}"#)
}

/// `rulefilter validate` on `document`: whether it accepted it, and what it printed.
fn validate(document: &str) -> (bool, String) {
    let dir = project_dir().join("target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    // Tests run in parallel: a file of their own for each call.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = dir.join(format!("header-safety-{}-{call}.json", std::process::id()));
    std::fs::write(&file, document).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rulefilter")).arg("validate").arg(&file).output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), printed)
}

/// Edits the documents may not make: (phase, action, words the refusal must contain).
const REFUSED: &[(&str, &str, &str)] = &[
    ("request", r#"{"request_headers":{"rename":[{"from":":method","to":"x-m"}]}}"#, "pseudo-header"),
    ("request", r#"{"request_headers":{"rename":[{"from":":path","to":"x-p"}]}}"#, "pseudo-header"),
    ("request", r#"{"request_headers":{"rename":[{"from":":authority","to":"x-a"}]}}"#, "pseudo-header"),
    ("request", r#"{"request_headers":{"copy":[{"from":":path","to":"x-p"}]}}"#, "pseudo-header"),
    ("response", r#"{"response_headers":{"rename":[{"from":":status","to":"x-s"}]}}"#, "pseudo-header"),
    ("request", r#"{"request_headers":{"remove":["host"]}}"#, ":authority"),
    // Measured: copying `host` copied nothing (Envoy has made it `:authority`); a test of it could never match.
    ("request", r#"{"request_headers":{"copy":[{"from":"host","to":"x-original-host"}]}}"#, ":authority"),
    ("request", r#"{"request_headers":{"set":{"x-original-host":"${header.host}"}}}"#, ":authority"),
    ("request", r#"{"request_headers":{"add":{"host":"other.example"}}}"#, ":authority"),
    ("request", r#"{"request_headers":{"set":{"content-length":"3"}}}"#, "frames the body"),
    ("request", r#"{"response_headers":{"set":{"content-length":"3"}}}"#, "frames the body"),
    ("response", r#"{"response_headers":{"add":{"content-length":"3"}}}"#, "frames the body"),
    ("request", r#"{"request_headers":{"set":{"transfer-encoding":"chunked"}}}"#, "connection-specific"),
    ("request", r#"{"request_headers":{"set":{"connection":"close"}}}"#, "connection-specific"),
    ("request", r#"{"request_headers":{"set":{"keep-alive":"timeout=5"}}}"#, "connection-specific"),
    ("request", r#"{"request_headers":{"set":{"proxy-connection":"close"}}}"#, "connection-specific"),
    ("request", r#"{"request_headers":{"set":{"upgrade":"websocket"}}}"#, "connection-specific"),
    ("request", r#"{"request_headers":{"set":{"te":"gzip"}}}"#, "connection-specific"),
    ("response", r#"{"response_headers":{"set":{"transfer-encoding":"chunked"}}}"#, "connection-specific"),
    ("request", r#"{"respond":{"status":204,"body":"gone"}}"#, "has no body"),
];

#[test]
fn edits_envoy_cannot_survive_are_refused_by_the_validator_and_the_module() {
    let mut proxies = Proxies::start();
    // A known good document first: a refused one must leave it serving.
    let good = document("response", r#"{"response_headers":{"set":{"x-rules":"good"}}}"#);
    assert_eq!(proxies.push(&good), (Reload::Applied, Reload::Applied));
    for (phase, action, why) in REFUSED {
        let bad = document(phase, action);
        let (valid, printed) = validate(&bad);
        assert!(!valid && printed.contains(why), "rulefilter validate should refuse {bad} ({why}): {printed}");
        let errors = rulefilter::parse(&bad).expect_err(&bad).to_string();
        assert!(errors.contains(why) && !errors.contains('\n'), "{bad}: {errors}");
        assert_eq!(proxies.push(&bad), (Reload::Refused, Reload::Refused), "Envoy should NACK {bad}");
        let response = proxies.ordinary_requests_pass(action);
        assert_eq!(response.header("x-rules"), Some("good"), "the previous rules keep serving: {response:?}");
    }
}

/// Edits of the same headers that stay allowed, and what Envoy makes of them: (phase, action).
const ALLOWED: &[(&str, &str)] = &[
    // Envoy frames the body itself (an HTTP/1.1 upstream gets it chunked).
    ("request", r#"{"request_headers":{"remove":["content-length"]}}"#),
    ("request", r#"{"request_headers":{"rename":[{"from":"content-length","to":"x-was-content-length"}]}}"#),
    ("request", r#"{"request_headers":{"remove":["transfer-encoding"]}}"#),
    // Hop-by-hop headers never reach the filter from a client; removing them is a no-op.
    ("request", r#"{"request_headers":{"remove":["connection","keep-alive","proxy-connection","upgrade","te"]}}"#),
    // Reaches an HTTP/1.1 upstream as written; Envoy answers an upstream's 100 Continue itself.
    ("request", r#"{"request_headers":{"set":{"expect":"100-continue"}}}"#),
    ("request", r#"{"request_headers":{"copy":[{"from":"x-forwarded-proto","to":"x-original-proto"}]}}"#),
    ("request", r#"{"request_headers":{"set":{"x-original-path":"${path}","x-original-method":"${method}"}}}"#),
    ("request", r#"{"request_headers":{"remove":["content-type"]}}"#),
    // An HTTP/1.1 client then gets the body chunked.
    ("response", r#"{"response_headers":{"remove":["content-length"]}}"#),
    ("response", r#"{"response_headers":{"remove":["transfer-encoding","connection","keep-alive","upgrade","te"]}}"#),
    ("response", r#"{"response_headers":{"copy":[{"from":"content-length","to":"x-length"}]}}"#),
    ("response", r#"{"response_headers":{"set":{"host":"not-special-in-responses"}}}"#),
    ("response", r#"{"response_headers":{"remove":["content-type"]}}"#),
];

#[test]
fn edits_left_allowed_on_those_headers_keep_ordinary_requests_working() {
    let mut proxies = Proxies::start();
    for (phase, action) in ALLOWED {
        let edit = document(phase, action);
        assert!(validate(&edit).0, "rulefilter validate should accept {edit}");
        assert_eq!(proxies.push(&edit), (Reload::Applied, Reload::Applied), "Envoy should apply {edit}");
        let get = proxies.ordinary_requests_pass(action);
        if action.contains("x-original-proto") {
            assert_eq!(get.upstream_header_values("x-original-proto"), ["http"], "{get:?}");
        }
        if action.contains("x-original-path") {
            assert_eq!(get.upstream_header_values("x-original-path"), ["/ordinary"], "{get:?}");
        }
        if action.contains(r#""expect""#) {
            assert_eq!(get.upstream_header_values("expect"), ["100-continue"], "{get:?}");
        }
        if *phase == "response" && action.contains(r#""remove":["content-length"]"#) {
            assert_eq!(get.header("content-length"), None, "{get:?}");
            assert_eq!(get.header("transfer-encoding"), Some("chunked"), "{get:?}");
        }
    }
}

#[test]
fn the_schema_refuses_the_same_edits_where_a_schema_can_tell() {
    let text = std::fs::read_to_string(project_dir().join("schema/rulefilter.schema.json")).unwrap();
    let schema = jsonschema::draft202012::new(&serde_json::from_str(&text).unwrap()).unwrap();
    // `host` is refused in requests only, and `${header.host}` is inside a template: beyond a schema.
    let beyond_a_schema = [r#"["host"]"#, r#"{"host":"#, r#""from":"host""#, "${header.host}"];
    for (phase, action, _) in REFUSED {
        let edit = document(phase, action);
        let refused = !schema.is_valid(&serde_json::from_str(&edit).unwrap());
        let expected = !beyond_a_schema.iter().any(|part| action.contains(part));
        assert_eq!(refused, expected, "the schema on {edit}");
    }
    for (phase, action) in ALLOWED {
        let edit = document(phase, action);
        assert!(schema.is_valid(&serde_json::from_str(&edit).unwrap()), "the schema should accept {edit}");
    }
}
