//! Body rules through a real Envoy, over HTTP/1.1 and HTTP/2 (h2c): a request refused for a JSON field, an
//! edited request body, a rewritten response body with a length that fits it, bodies past the limit (refused
//! with 413 or passed unmodified, announced or not), and slow clients whose body arrives in pieces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use support::http2;
use support::{echo, options, options_for, start, ClientRequest, EchoUpstream, Envoy, Plugin};

const DOCUMENT: &str = r#"
request:
  - name: strict
    match: {path: {prefix: /strict}}
    body: {content_types: [application/json], max_bytes: 8192, over_limit: reject, json: {/user/role: admin}}
    actions: [{respond: {status: 403, body: "refused\n"}}]
  - name: lenient
    match: {path: {prefix: /lenient}}
    body: {content_types: [application/json], max_bytes: 8192, json: {/user/role: admin}}
    actions: [{respond: {status: 403, body: "refused\n"}}]
  - name: scrub
    match: {path: {prefix: /scrub}}
    body: {content_types: [application/json]}
    actions: [{request_body: {json_remove: [/user/id]}}]
response:
  - name: fixup
    body: {content_types: [text/html], max_bytes: 65536}
    actions: [{response_body: {replace: [{from: "http://internal", to: "https://www.example.com"}]}}]
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Http1,
    H2c,
}

/// What came back, whichever protocol carried it.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_length: Option<String>,
    body: String,
}

/// A request with a body, in `pieces` (`pause` apart) over HTTP/1.1 (with a content-length) or HTTP/2
/// (with one when `announce`; without, the proxy learns the length from the bytes).
fn send(
    client: Client,
    envoy: &Envoy,
    path: &str,
    headers: &[(&str, &str)],
    pieces: &[&[u8]],
    announce: bool,
) -> Answer {
    let body: Vec<u8> = pieces.concat();
    let pause = Duration::from_millis(150);
    let length = body.len().to_string();
    match client {
        Client::Http1 => {
            let mut request = ClientRequest::new("POST", path);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let piece = pieces.iter().map(|p| p.len()).max().unwrap_or(1);
            let response = request.body(&body).send_in_pieces(envoy.listener, piece, pause);
            let content_length = response.header("content-length").map(str::to_owned);
            Answer { status: response.status, content_length, body: response.body }
        }
        Client::H2c => {
            let mut all: Vec<(&str, &str)> = headers.to_vec();
            if announce {
                all.push(("content-length", &length));
            }
            let response = http2::request_in_pieces(envoy.listener, "POST", path, &all, pieces, pause);
            let content_length = response.header("content-length").map(str::to_owned);
            Answer {
                status: response.status,
                content_length,
                body: String::from_utf8_lossy(&response.body).into_owned(),
            }
        }
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

/// The bodies of the requests to `path` the upstream received whole.
fn received(upstream: &EchoUpstream, path: &str) -> Vec<String> {
    upstream.received().into_iter().filter(|r| r.path == path).map(|r| r.body).collect()
}

#[test]
fn bodies_are_judged_edited_and_bounded_over_http1_and_http2() {
    let upstream = echo();
    let document: serde_yaml::Value = serde_yaml::from_str(DOCUMENT).unwrap();
    let envoy = start(options(Plugin::new("bodies", Some(support::document_json(&document))), &upstream));
    let admin = br#"{"user":{"id":7,"role":"admin"}}"#.as_slice();
    let viewer = br#"{"user":{"id":7,"role":"viewer"}}"#.as_slice();
    let padding = format!(r#"{{"user":{{"role":"admin"}},"pad":"{}"}}"#, "x".repeat(20_000));
    for client in [Client::Http1, Client::H2c] {
        let at = |what: &str| format!("{client:?}: {what}");
        upstream.clear();

        // A JSON field decides; the refused request's body never reaches the upstream.
        let refused = send(client, &envoy, "/strict/a", &[JSON], &[admin], true);
        assert_eq!((refused.status, refused.body.as_str()), (403, "refused\n"), "{}", at("admin refused"));
        let passed = send(client, &envoy, "/strict/b", &[JSON], &[viewer], true);
        assert_eq!(passed.status, 200, "{}", at("viewer passed"));
        assert_eq!(received(&upstream, "/strict/b"), [String::from_utf8_lossy(viewer)], "{}", at("viewer's body"));

        // A slow client: the body arrives in pieces, and is judged whole.
        let (head, tail) = admin.split_at(12);
        let slow = send(client, &envoy, "/strict/c", &[JSON], &[head, tail], true);
        assert_eq!(slow.status, 403, "{}", at("slow admin refused"));
        assert!(received(&upstream, "/strict/a").is_empty() && received(&upstream, "/strict/c").is_empty());

        // Past the limit: refused with 413 when the rule says so, announced or not...
        let announced = send(client, &envoy, "/strict/d", &[JSON], &[padding.as_bytes()], true);
        assert_eq!(announced.status, 413, "{}", at("announced past the limit"));
        let pieces: Vec<&[u8]> = padding.as_bytes().chunks(4096).collect();
        let unannounced = send(client, &envoy, "/strict/e", &[JSON], &pieces, false);
        assert_eq!(unannounced.status, 413, "{}", at("past the limit, learnt from the bytes"));
        // ...otherwise passed on whole and unmodified, even though it holds an admin role.
        let lenient = send(client, &envoy, "/lenient/f", &[JSON], &pieces, true);
        assert_eq!(lenient.status, 200, "{}", at("lenient past the limit"));
        assert_eq!(received(&upstream, "/lenient/f"), std::slice::from_ref(&padding), "{}", at("lenient body"));

        // An edited request body reaches the upstream whole, framed anew.
        let scrubbed = send(client, &envoy, "/scrub/g", &[JSON], &[head, tail], true);
        assert_eq!(scrubbed.status, 200, "{}", at("scrub"));
        assert_eq!(received(&upstream, "/scrub/g"), [r#"{"user":{"role":"admin"}}"#], "{}", at("scrubbed body"));

        // A response body rewritten: the client gets all of it, with no stale length.
        let html = ("x-echo-header", "content-type: text/html");
        let page = send(client, &envoy, "/page", &[html], &[b"see http://internal/a and http://internal/b"], true);
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("see https://www.example.com/a and https://www.example.com/b"),
            "{}",
            at(&page.body)
        );
        assert!(!page.body.contains("http://internal"), "{}", at(&page.body));
        if let Some(length) = &page.content_length {
            assert_eq!(length.parse::<usize>().unwrap(), page.body.len(), "{}", at("content-length"));
        }
        // A page past the limit goes on unmodified, all of it, with its own length.
        let big = format!("http://internal/{}", "y".repeat(70_000));
        let pieces: Vec<&[u8]> = big.as_bytes().chunks(8192).collect();
        let unedited = send(client, &envoy, "/big", &[html], &pieces, true);
        assert_eq!(unedited.status, 200);
        assert!(unedited.body.contains(&big), "{}", at("big page unmodified"));
        if let Some(length) = &unedited.content_length {
            assert_eq!(length.parse::<usize>().unwrap(), unedited.body.len(), "{}", at("big content-length"));
        }
    }
}

/// Body rules that would read and edit anything (`*/*`) leave a gRPC call alone: its messages and trailers
/// pass untouched, never held.
#[test]
fn a_grpc_call_passes_untouched_through_body_rules() {
    let document = r#"
request:
  - name: any-request-body
    body: {content_types: ["*/*"]}
    actions: [{request_body: {set: "replaced"}}]
response:
  - name: any-response-body
    body: {content_types: ["*/*"]}
    actions: [{response_body: {set: "replaced"}}]
"#;
    let upstream = http2::H2Upstream::start();
    let document: serde_yaml::Value = serde_yaml::from_str(document).unwrap();
    let plugin = Plugin::new("grpc-bodies", Some(support::document_json(&document)));
    let envoy = start(options_for(plugin, upstream.addr).use_client_protocol(true));
    let message = [0x0a, 0x03, b'a', b'b', b'c', 0xff];
    let headers = [("content-type", "application/grpc"), ("te", "trailers")];
    let response =
        http2::request(envoy.listener, "POST", "/grpc.test.Echo/Say", &headers, &http2::grpc_frame(&message));
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, http2::grpc_frame(&[b"reply to ".as_slice(), &message].concat()), "{response:?}");
    assert!(response.trailers.as_ref().is_some_and(|t| t.iter().any(|(n, v)| n == "grpc-status" && v == "0")));
    assert_eq!(upstream.received.only().body, http2::grpc_frame(&message), "the request message arrives as sent");
    // The same rules do edit an ordinary body over the same proxy.
    let plain = http2::request(envoy.listener, "POST", "/x", &[("content-type", "text/plain")], b"original");
    assert_eq!(plain.body, b"replaced", "{plain:?}");
}
