//! Attributes, JWT claims and caller identity through a real Envoy 1.40: a `jwt_authn` filter as Istio's
//! RequestAuthentication configures it in front of the module, with a key and tokens made in the test; a TLS
//! listener with two server names that requires client certificates carrying SPIFFE ids (made in the test
//! with `openssl`). Also pins how Envoy encodes the attributes the module reads (docs/attributes.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use rulefilter::local::envoy::ListenerTls;
use rulefilter::local::istio;
use serde_json::json;
use support::pki::{https_get, Pki};
use support::{document_json, echo, options, start, ClientRequest, Echoed, Plugin};

const ISSUER: &str = "https://issuer.example.com";

fn plugin(name: &str, yaml: &str) -> Plugin {
    Plugin::new(name, Some(document_json(&serde_yaml::from_str(yaml).unwrap())))
}

const CLAIM_RULES: &str = r#"
request:
  - name: admins-only
    match:
      path: {segment_prefix: /admin}
      not: {claims: {groups: admin}}
    actions: [{respond: {status: 403, body: "admins only"}}]
  - name: who
    match: {claims: {sub: {present: true}, aud: api}}
    actions:
      - request_headers: {set: {x-user: "${claim.sub}", x-audience: "${claim.aud}", x-team: "${claim.org.team}", x-level: "${claim.org.level}"}}
"#;

#[test]
fn claims_come_from_the_token_jwt_authn_verified() {
    let pki = Pki::new("jwt");
    let jwks = pki.jwt_key();
    let upstream = echo();
    let envoy = start(options(plugin("jwt", CLAIM_RULES), &upstream).filter_before(istio::jwt_authn(ISSUER, &jwks)));
    let claims = json!({"iss": ISSUER, "sub": "alice", "aud": ["api", "web"], "groups": ["dev", "admin"],
        "org": {"team": "payments", "level": 3}, "exp": 4_102_444_800u64});
    let token = pki.token(&claims);
    let bearer = format!("Bearer {token}");
    let get = |path: &str, authorization: Option<&str>| {
        let mut request = ClientRequest::new("GET", path);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send(envoy.listener)
    };

    let alice = get("/admin/users", Some(&bearer));
    assert_eq!(alice.status, 200, "{alice:?}");
    assert_eq!(alice.upstream_header_values("x-user"), ["alice"]);
    assert_eq!(alice.upstream_header_values("x-audience"), ["api,web"], "a list claim renders joined with `,`");
    assert_eq!(alice.upstream_header_values("x-team"), ["payments"]);
    assert_eq!(alice.upstream_header_values("x-level"), ["3"], "a whole number renders without a fraction");
    assert!(alice.upstream_header_values("authorization").is_empty(), "the token is not forwarded");

    let bob = pki.token(&json!({"iss": ISSUER, "sub": "bob", "aud": "api", "groups": ["dev"]}));
    let refused = get("/admin/users", Some(&format!("Bearer {bob}")));
    assert_eq!((refused.status, refused.body.as_str()), (403, "admins only"));
    let bob_elsewhere = get("/orders", Some(&format!("Bearer {bob}")));
    assert_eq!(bob_elsewhere.upstream_header_values("x-user"), ["bob"]);

    let anonymous = get("/orders", None);
    assert_eq!(anonymous.status, 200);
    assert!(anonymous.upstream_header_values("x-user").is_empty(), "no token, no claims");
    assert_eq!(get("/admin", None).status, 403, "without a token no claim holds");

    let mut forged = token.clone();
    forged.truncate(token.len() - 4);
    forged.push_str("AAAA");
    assert_eq!(get("/orders", Some(&format!("Bearer {forged}"))).status, 401, "jwt_authn refuses a bad signature");
    let other = pki.token(&json!({"iss": "https://elsewhere.example.com", "sub": "mallory"}));
    assert_eq!(get("/orders", Some(&format!("Bearer {other}"))).status, 401, "and another issuer's token");
    assert_eq!(upstream.received().iter().filter(|r| r.path == "/orders").count(), 2, "refused tokens never reach it");
}

const TLS_RULES: &str = r#"
request:
  - name: misdirected
    match: {misdirected: true}
    actions: [{respond: {status: 421, body: "this connection is for ${connection.requested_server_name}, not ${host}"}}]
  - name: only-prod
    match:
      path: {segment_prefix: /payments}
      not: {attributes: {source.namespace: prod}}
    actions: [{respond: {status: 403, body: "namespace ${source.namespace} may not"}}]
  - name: identity
    actions:
      - request_headers:
          set:
            x-caller: "${source.principal}"
            x-caller-namespace: "${source.namespace}"
            x-caller-account: "${source.service_account}"
            x-mtls: "${connection.mtls}"
            x-sni: "${connection.requested_server_name}"
            x-route: "${xds.virtual_host_name}/${xds.route_name}/${xds.cluster_name}"
            x-node-namespace: "${node.metadata.NAMESPACE}"
            x-app: "${node.metadata.LABELS.app}"
            x-plugin: "${plugin_name}"
            x-protocol: "${request.protocol}"
            x-source-port: "${source.port}"
            x-request-id: "${request.id}"
            x-tls: "${connection.tls_version}"
response:
  - name: details
    actions: [{response_headers: {set: {x-details: "${response.code_details}", x-upstream: "${upstream.address}", x-was-mtls: "${connection.mtls}"}}}]
"#;

#[test]
fn caller_identity_server_names_and_attributes_over_mtls() {
    let pki = Pki::new("mtls");
    let server = pki.certificate("server", &["DNS:a.example.com", "DNS:b.example.com"], "serverAuth");
    let prod = pki.certificate("prod", &["URI:spiffe://cluster.local/ns/prod/sa/web"], "clientAuth");
    let dev = pki.certificate("dev", &["URI:spiffe://cluster.local/ns/dev/sa/job"], "clientAuth");
    let upstream = echo();
    let tls = ListenerTls {
        certificate_chain: server.certificate.clone(),
        private_key: server.key.clone(),
        client_ca: Some(pki.ca()),
        require_client_certificate: true,
    };
    let envoy = start(options(plugin("mtls", TLS_RULES), &upstream).tls(tls));
    let ca = pki.ca();

    let ok = https_get(envoy.listener, &ca, "a.example.com", Some(&prod), "/payments/1", &[]);
    assert_eq!(ok.status, 200, "{ok:?}");
    let seen = |name: &str| ok.upstream_header_values(name).join("|");
    assert_eq!(seen("x-caller"), "spiffe://cluster.local/ns/prod/sa/web");
    assert_eq!(seen("x-caller-namespace"), "prod");
    assert_eq!(seen("x-caller-account"), "web");
    assert_eq!(seen("x-mtls"), "true", "a bool attribute renders as true/false");
    assert_eq!(seen("x-sni"), "a.example.com");
    assert_eq!(seen("x-route"), "all/default/upstream");
    assert_eq!(seen("x-node-namespace"), "default");
    assert_eq!(seen("x-app"), "rulefilter-e2e");
    assert_eq!(seen("x-plugin"), "default.mtls~istio-translated-wasmplugin");
    assert_eq!(seen("x-protocol"), "HTTP/1.1");
    assert!(seen("x-source-port").parse::<u16>().is_ok_and(|p| p > 0), "an int attribute renders in decimal");
    assert_eq!(seen("x-request-id").len(), 36, "Envoy's request id is a UUID: {}", seen("x-request-id"));
    assert_eq!(seen("x-tls"), "TLSv1.3");
    let header = |name: &str| ok.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(header("x-details"), Some("via_upstream"));
    assert_eq!(header("x-upstream"), Some(upstream.addr.to_string().as_str()));
    assert_eq!(header("x-was-mtls"), Some("true"), "request attributes are kept for response rules");

    let other_name = https_get(envoy.listener, &ca, "b.example.com", Some(&prod), "/", &[]);
    assert_eq!(other_name.status, 200);
    assert_eq!(other_name.upstream_header_values("x-sni"), ["b.example.com"]);

    let misdirected = https_get(envoy.listener, &ca, "b.example.com", Some(&prod), "/", &[("host", "a.example.com")]);
    assert_eq!(misdirected.status, 421);
    assert_eq!(misdirected.body, "this connection is for b.example.com, not a.example.com");
    let with_port = https_get(envoy.listener, &ca, "a.example.com", Some(&prod), "/", &[("host", "A.example.com:443")]);
    assert_eq!(with_port.status, 200, "the port and the case of the host do not make it another name");

    let job = https_get(envoy.listener, &ca, "a.example.com", Some(&dev), "/payments/1", &[]);
    assert_eq!((job.status, job.body.as_str()), (403, "namespace dev may not"));
    let job_elsewhere = https_get(envoy.listener, &ca, "a.example.com", Some(&dev), "/reports", &[]);
    assert_eq!(job_elsewhere.upstream_header_values("x-caller-namespace"), ["dev"]);
}

#[test]
fn without_client_certificates_there_is_no_principal() {
    let pki = Pki::new("tls");
    let server = pki.certificate("server", &["DNS:a.example.com"], "serverAuth");
    let upstream = echo();
    let tls = ListenerTls {
        certificate_chain: server.certificate,
        private_key: server.key,
        client_ca: None,
        require_client_certificate: false,
    };
    let envoy = start(options(plugin("tls", TLS_RULES), &upstream).tls(tls));
    let response = https_get(envoy.listener, &pki.ca(), "a.example.com", None, "/reports", &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.upstream_header_values("x-mtls"), ["false"]);
    let caller = response.upstream_header_values("x-caller");
    assert!(caller.is_empty(), "an absent principal renders empty, so the header is left out: {caller:?}");
    assert_eq!(response.upstream_header_values("x-sni"), ["a.example.com"]);
    let payments = https_get(envoy.listener, &pki.ca(), "a.example.com", None, "/payments", &[]);
    assert_eq!((payments.status, payments.body.as_str()), (403, "namespace  may not"), "no namespace, no access");
}
