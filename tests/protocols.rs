//! The filter on every protocol a sidecar carries, through a real Envoy with the module delivered by ECDS as
//! istiod delivers it: HTTP/2 without TLS (h2c), unary gRPC with trailers, and WebSocket upgrades. (Plain
//! HTTP/1.1 is tests/e2e.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::net::SocketAddr;

use support::http2::{self, grpc_frame, H2Response, H2Upstream};
use support::websocket::{self, WebSocketUpstream, BINARY, CLOSE, SAMPLE_ACCEPT, TEXT};
use support::{echo, options, options_for, start, ClientRequest, Echoed, Envoy, HttpResponse, Plugin};

fn plugin(name: &str, rules_yaml: &str) -> Plugin {
    let document: serde_yaml::Value = serde_yaml::from_str(rules_yaml).unwrap();
    Plugin::new(name, Some(support::document_json(&document)))
}

/// An Envoy whose clusters speak the client's protocol, in front of `upstream`: HTTP/2 clients reach an HTTP/2
/// upstream, as through an Istio sidecar.
fn envoy_for(plugin: Plugin, upstream: SocketAddr) -> Envoy {
    start(options_for(plugin, upstream).use_client_protocol(true))
}

const EDITS: &str = r#"
request:
  - name: hello
    match: {path: /hello, method: GET}
    actions:
      - respond: {status: 200, headers: {x-service-name: my-custom-service}, body: "Hello from Wasm!\n"}
  - name: edit-api
    match: {path: {prefix: /api/}, headers: {x-user: {present: true}}}
    actions:
      - request_headers: {set: {x-env: prod, x-user: anonymised}, add: {x-trace: from-filter}, remove: [x-secret]}
      - rewrite: {path_prefix: {from: /api/, to: /v2/}}
      - response_headers: {set: {x-edited: "yes"}}
response:
  - name: tag
    actions:
      - response_headers: {add: {x-via: rulefilter}, remove: [x-upstream]}
"#;

#[derive(Debug, Clone, Copy)]
enum Client {
    Http1,
    H2c,
}

/// One request over the chosen protocol, read back as the HTTP/1.1 client reads it.
fn send(client: Client, envoy: &Envoy, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    match client {
        Client::Http1 => {
            let mut request = ClientRequest::new(method, path);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            request.send(envoy.listener)
        }
        Client::H2c => {
            let response = http2::request(envoy.listener, method, path, headers, b"");
            assert_eq!(response.trailers, None, "{response:?}");
            HttpResponse {
                status: response.status,
                headers: response.headers,
                body: String::from_utf8(response.body).unwrap(),
            }
        }
    }
}

#[test]
fn h2c_clients_get_exactly_the_edits_and_replies_http1_clients_get() {
    // Envoy's default upstream protocol (HTTP/1.1): the same echo upstream serves both clients.
    let upstream = echo();
    let envoy = start(options(plugin("h2c", EDITS), &upstream));
    for client in [Client::Http1, Client::H2c] {
        upstream.clear();
        let edited = send(
            client,
            &envoy,
            "GET",
            "/api/users?id=7",
            &[("x-user", "alice"), ("x-trace", "from-client"), ("x-secret", "hunter2")],
        );
        assert_eq!(edited.status, 200, "{client:?}: {edited:?}");
        assert_eq!(edited.echoed()["path"], "/v2/users?id=7", "{client:?}");
        assert_eq!(edited.upstream_header_values("x-env"), ["prod"], "{client:?}");
        assert_eq!(edited.upstream_header_values("x-user"), ["anonymised"], "{client:?}");
        assert_eq!(edited.upstream_header_values("x-trace"), ["from-client", "from-filter"], "{client:?}");
        assert!(edited.upstream_header_values("x-secret").is_empty(), "{client:?}: {}", edited.body);
        assert_eq!(edited.header_values("x-edited"), ["yes"], "{client:?}: {edited:?}");
        assert_eq!(edited.header_values("x-via"), ["rulefilter"], "{client:?}: {edited:?}");
        assert_eq!(edited.header("x-upstream"), None, "{client:?}: {edited:?}");

        let hello = send(client, &envoy, "GET", "/hello", &[]);
        assert_eq!(hello.status, 200, "{client:?}: {hello:?}");
        assert_eq!(hello.body, "Hello from Wasm!\n", "{client:?}");
        assert_eq!(hello.header_values("x-service-name"), ["my-custom-service"], "{client:?}: {hello:?}");
        assert_eq!(hello.header_values("content-type"), ["text/plain"], "{client:?}: {hello:?}");
        assert_eq!(hello.header("content-length"), Some("17"), "{client:?}: {hello:?}");
        // Response rules do not run on the filter's own replies, on either protocol.
        assert_eq!(hello.header("x-via"), None, "{client:?}: {hello:?}");

        let paths: Vec<String> = upstream.seen_paths();
        assert_eq!(paths, ["/v2/users?id=7"], "{client:?}: the upstream was called for /hello");
    }
}

#[test]
fn h2c_reaches_an_http2_upstream_with_the_edits() {
    let upstream = H2Upstream::start();
    let envoy = envoy_for(plugin("h2c-upstream", EDITS), upstream.addr);
    let response = http2::request(
        envoy.listener,
        "POST",
        "/api/orders?id=7",
        &[("x-user", "alice"), ("x-secret", "hunter2"), ("content-type", "application/json")],
        br#"{"qty":1}"#,
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, b"hello over h2\n");
    assert_eq!(response.header_values("x-edited"), ["yes"], "{response:?}");
    assert_eq!(response.header_values("x-via"), ["rulefilter"], "{response:?}");
    assert_eq!(response.header("x-upstream"), None, "{response:?}");
    let request = upstream.received.only();
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/v2/orders?id=7"));
    assert_eq!(request.header("x-env"), Some("prod"));
    assert_eq!(request.header("x-user"), Some("anonymised"));
    assert_eq!(request.header("x-secret"), None);
    assert_eq!(request.body, br#"{"qty":1}"#);
}

const GRPC: &str = r#"
request:
  - name: admins-only
    match: {path: {prefix: /grpc.test.Admin/}}
    actions:
      - respond: {status: 403, headers: {x-denied-by: rulefilter}, body: admins only}
  - name: shed-load
    match: {headers: {x-load: shed}}
    actions:
      - respond: {status: 503, headers: {retry-after: "5"}, body: "busy: 100% full"}
  - name: chosen-status
    match: {path: /grpc.test.Echo/Login}
    actions:
      - respond:
          status: 401
          headers: {grpc-status: "16", content-type: application/json}
          body: '{"error":"who are you"}'
  - name: tag-grpc
    match: {headers: {content-type: {prefix: application/grpc}}}
    actions:
      - request_headers: {set: {x-tenant: acme}, remove: [x-secret]}
      - response_headers: {set: {x-edited: "yes"}}
response:
  - name: maintenance
    match: {path: /grpc.test.Echo/Maintenance}
    actions:
      - respond: {status: 503, body: down for maintenance}
  - name: strip
    actions:
      - response_headers: {add: {x-via: rulefilter}, remove: [x-powered-by]}
"#;

/// A unary gRPC call: HTTP/2 POST of one length-prefixed message.
fn grpc_call(envoy: &Envoy, method: &str, message: &[u8], headers: &[(&str, &str)]) -> H2Response {
    let mut all = vec![("content-type", "application/grpc"), ("te", "trailers")];
    all.extend_from_slice(headers);
    http2::request(envoy.listener, "POST", method, &all, &grpc_frame(message))
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn a_grpc_call_keeps_its_message_and_trailers_while_header_rules_apply() {
    let upstream = H2Upstream::start();
    let envoy = envoy_for(plugin("grpc", GRPC), upstream.addr);
    // A protobuf-shaped message with bytes that are not text.
    let message = [0x0a, 0x05, b'h', b'e', b'l', b'l', b'o', 0x10, 0x00, 0xff, 0x80];
    let response = grpc_call(&envoy, "/grpc.test.Echo/Say", &message, &[("x-secret", "hunter2")]);

    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/grpc"));
    assert_eq!(response.body, grpc_frame(&[b"reply to ".as_slice(), &message].concat()), "{response:?}");
    assert_eq!(response.trailers, Some(pairs(&[("grpc-status", "0"), ("x-upstream-trailer", "kept")])));
    assert_eq!(response.header("grpc-status"), None, "the status is a trailer here: {response:?}");
    assert_eq!(response.header_values("x-edited"), ["yes"], "{response:?}");
    assert_eq!(response.header_values("x-via"), ["rulefilter"], "{response:?}");
    assert_eq!(response.header("x-powered-by"), None, "{response:?}");

    let call = upstream.received.only();
    assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/grpc.test.Echo/Say"));
    assert_eq!(call.header("content-type"), Some("application/grpc"));
    assert_eq!(call.header("te"), Some("trailers"));
    assert_eq!(call.header("x-tenant"), Some("acme"));
    assert_eq!(call.header("x-secret"), None);
    assert_eq!(call.body, grpc_frame(&message), "the request message arrives as sent");
}

/// A gRPC "Trailers-Only" error: HTTP 200, `content-type: application/grpc`, the status and message in the
/// headers, which end the stream.
fn assert_grpc_error(response: &H2Response, status: &str, message: Option<&str>) {
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header_values("content-type"), ["application/grpc"], "{response:?}");
    assert_eq!(response.header_values("grpc-status"), [status], "{response:?}");
    assert_eq!(response.header_values("grpc-message"), Vec::from_iter(message), "{response:?}");
    assert!(response.headers_ended_stream, "not trailers-only: {response:?}");
    assert_eq!((response.body.as_slice(), &response.trailers), (b"".as_slice(), &None), "{response:?}");
    assert_eq!(response.header("content-length"), None, "{response:?}");
}

/// How Envoy maps the HTTP status of a direct response to a gRPC status: gRPC's documented mapping for HTTP
/// errors (doc/http-grpc-status-mapping.md), and 2 UNKNOWN for anything else, even 200: a rule cannot answer
/// a gRPC call with a message.
const GRPC_STATUS_FOR_HTTP_STATUS: [(u16, &str); 11] = [
    (200, "2"),
    (400, "13"),
    (401, "16"),
    (403, "7"),
    (404, "12"),
    (409, "2"),
    (429, "14"),
    (500, "2"),
    (502, "14"),
    (503, "14"),
    (504, "14"),
];

/// The GRPC rules, then one rule per status above answering requests with `x-answer: <status>`.
fn grpc_errors_plugin() -> Plugin {
    let mut document: serde_yaml::Value = serde_yaml::from_str(GRPC).unwrap();
    let request = document["request"].as_sequence_mut().unwrap();
    for (status, _) in GRPC_STATUS_FOR_HTTP_STATUS {
        let rule = format!(
            "name: answer-{status}\n\
             match: {{headers: {{x-answer: '{status}'}}}}\n\
             actions: [respond: {{status: {status}}}]"
        );
        request.push(serde_yaml::from_str(&rule).unwrap());
    }
    Plugin::new("grpc-errors", Some(support::document_json(&document)))
}

#[test]
fn a_direct_response_to_a_grpc_call_is_a_well_formed_grpc_error() {
    let upstream = H2Upstream::start();
    let envoy = envoy_for(grpc_errors_plugin(), upstream.addr);

    // Envoy maps the HTTP status: 403 → 7 PERMISSION_DENIED; the body becomes grpc-message.
    let denied = grpc_call(&envoy, "/grpc.test.Admin/DropTables", b"", &[]);
    assert_grpc_error(&denied, "7", Some("admins only"));
    assert_eq!(denied.header_values("x-denied-by"), ["rulefilter"], "the rule's headers are kept: {denied:?}");
    // Response rules do not run on the filter's own replies.
    assert_eq!(denied.header("x-via"), None, "{denied:?}");

    // 503 → 14 UNAVAILABLE; grpc-message is percent-encoded as the gRPC spec says.
    let shed = grpc_call(&envoy, "/grpc.test.Echo/Say", b"hi", &[("x-load", "shed")]);
    assert_grpc_error(&shed, "14", Some("busy: 100%25 full"));
    assert_eq!(shed.header_values("retry-after"), ["5"], "{shed:?}");

    // A rule can name the gRPC status itself: Envoy keeps it, and puts application/grpc over its content type.
    let login = grpc_call(&envoy, "/grpc.test.Echo/Login", b"", &[]);
    assert_grpc_error(&login, "16", Some(r#"{"error":"who are you"}"#));

    // Without a body there is no grpc-message.
    for (status, grpc_status) in GRPC_STATUS_FOR_HTTP_STATUS {
        let response = grpc_call(&envoy, "/grpc.test.Echo/Say", b"", &[("x-answer", &status.to_string())]);
        assert_grpc_error(&response, grpc_status, None);
    }

    assert!(upstream.received.all().is_empty(), "the upstream was called: {:?}", upstream.received.all());

    // Replacing the upstream's answer in the response phase: the same shape.
    let maintenance = grpc_call(&envoy, "/grpc.test.Echo/Maintenance", b"hi", &[]);
    assert_grpc_error(&maintenance, "14", Some("down for maintenance"));
    assert_eq!(maintenance.header("x-upstream"), None, "{maintenance:?}");
    assert_eq!(upstream.received.all().len(), 1, "the upstream was asked first");

    // The same rule answers a plain HTTP/2 request with a plain HTTP response.
    let plain = http2::request(envoy.listener, "GET", "/grpc.test.Admin/DropTables", &[], b"");
    assert_eq!(plain.status, 403, "{plain:?}");
    assert_eq!(plain.body, b"admins only");
    assert_eq!(plain.header("grpc-status"), None, "{plain:?}");
}

const WEBSOCKET: &str = r#"
request:
  - name: admins-only
    match: {path: {segment_prefix: /ws/admin}}
    actions:
      - respond: {status: 403, body: "admins only\n"}
  - name: tag-upgrades
    match: {headers: {upgrade: {exact: websocket, ignore_case: true}}}
    actions:
      - request_headers: {set: {x-env: prod}, remove: [x-secret]}
      - rewrite: {path_prefix: {from: /ws/, to: /socket/}}
      - response_headers: {set: {x-edited: "yes"}}
response:
  - name: strip
    actions:
      - response_headers: {add: {x-via: rulefilter}, remove: [x-powered-by]}
"#;

#[test]
fn websocket_upgrades_pass_with_the_edits_bytes_flow_both_ways_and_rules_can_refuse_them() {
    let upstream = WebSocketUpstream::start();
    let envoy = envoy_for(plugin("websocket", WEBSOCKET), upstream.addr);

    // A rule answers the upgrade request itself: no 101, no upstream.
    let (refused, no_socket) = websocket::connect(envoy.listener, "/ws/admin", &[]);
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.body, "admins only\n");
    assert!(no_socket.is_none());
    assert!(upstream.received.all().is_empty(), "the upstream was called: {:?}", upstream.received.all());

    let (response, socket) = websocket::connect(envoy.listener, "/ws/chat", &[("x-secret", "hunter2")]);
    assert_eq!(response.status, 101, "{response:?}");
    assert_eq!(response.header("sec-websocket-accept"), Some(SAMPLE_ACCEPT), "{response:?}");
    assert_eq!(response.header("upgrade").map(str::to_ascii_lowercase).as_deref(), Some("websocket"));
    assert_eq!(response.header_values("x-edited"), ["yes"], "{response:?}");
    assert_eq!(response.header_values("x-via"), ["rulefilter"], "{response:?}");
    assert_eq!(response.header("x-powered-by"), None, "{response:?}");

    let upgrade = upstream.received.only();
    assert_eq!(upgrade.path, "/socket/chat");
    assert_eq!(upgrade.header("upgrade").map(str::to_ascii_lowercase).as_deref(), Some("websocket"));
    assert_eq!(upgrade.header("x-env"), Some("prod"));
    assert_eq!(upgrade.header("x-secret"), None);

    let mut socket = socket.unwrap();
    assert_eq!(socket.receive(), (TEXT, b"hello from upstream".to_vec()), "upstream to client");
    socket.send(TEXT, b"ping 1");
    assert_eq!(socket.receive(), (TEXT, b"echo: ping 1".to_vec()));
    // Bytes that are not text, and a frame with a 16-bit length.
    let binary: Vec<u8> = (0..=255u8).cycle().take(300).collect();
    socket.send(BINARY, &binary);
    assert_eq!(socket.receive(), (BINARY, [b"echo: ".as_slice(), &binary].concat()));
    socket.send(CLOSE, &[0x03, 0xe8]);
    assert_eq!(socket.receive(), (CLOSE, vec![0x03, 0xe8]));
}
