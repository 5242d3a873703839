//! HTTPS for the e2e suite: a throw-away certificate for Envoy's TLS listener (made with the `openssl` tool,
//! which `.ci/run` installs) and an HTTP/1.1 client that sends a [`ClientRequest`] over TLS (rustls), so a
//! request reaches the filter with `:scheme` `https`, as on a gateway's HTTPS listener.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use rulefilter::local::envoy::ListenerTls;
use rulefilter::local::http::HttpResponse;

use super::ClientRequest;

/// A self-signed certificate for 127.0.0.1 (an end-entity one: `CA:FALSE`), written into `dir`. The client
/// trusts exactly this certificate.
pub fn self_signed(dir: &Path) -> ListenerTls {
    let (certificate, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let output = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=rulefilter e2e", "-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&certificate)
        .output()
        .expect("openssl is needed to make the HTTPS listener's certificate (Debian: openssl)");
    assert!(output.status.success(), "openssl req: {}", String::from_utf8_lossy(&output.stderr));
    ListenerTls { certificate_chain: certificate, private_key: key, client_ca: None, require_client_certificate: false }
}

/// A TLS client configuration that trusts the certificates in the PEM file `roots` (a CA, or a self-signed
/// server certificate), and nothing else.
pub fn client_config(roots: &Path) -> Arc<rustls::ClientConfig> {
    client_config_as(roots, None)
}

/// [`client_config`] presenting a client certificate: its chain and private key (PEM files), for mTLS.
pub fn client_config_as(roots: &Path, client: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut store = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(roots).unwrap() {
        store.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store);
    let config = match client {
        Some((chain, key)) => {
            let chain = CertificateDer::pem_file_iter(chain).unwrap().map(Result::unwrap).collect();
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Sends `request` over TLS to `addr`, verifying the server against `files.certificate_chain`.
pub fn send(request: &ClientRequest, addr: SocketAddr, files: &ListenerTls) -> HttpResponse {
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let connection = rustls::ClientConnection::new(client_config(&files.certificate_chain), name).unwrap();
    let stream = rustls::StreamOwned::new(connection, request.connect(addr));
    request.exchange(stream, addr)
}
