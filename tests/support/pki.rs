//! Keys, certificates and tokens made in the test with `openssl` (installed by .ci/run): a CA, server
//! certificates for several names, client certificates carrying SPIFFE ids as URI SANs, an RS256 key with its
//! JWKS, and tokens signed with it; plus an HTTPS client (rustls) that sends a chosen SNI and client
//! certificate.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rulefilter::local::http::HttpResponse;

use super::ClientRequest;

/// A folder of test keys and certificates, under target/e2e.
pub struct Pki {
    pub dir: PathBuf,
}

/// A certificate and its key.
#[derive(Clone, Debug)]
pub struct Identity {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is needed (Debian: openssl; .ci/run installs it)");
    child.stdin.take().unwrap().write_all(input.unwrap_or_default()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// Unpadded base64url, as JWTs and JWKS write bytes.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

impl Pki {
    /// A fresh folder with a CA (`ca.crt`).
    pub fn new(label: &str) -> Pki {
        let dir = super::fresh_dir(label);
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=rulefilter test CA"]);
        ca.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        openssl(&dir, &ca, None);
        Pki { dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A certificate signed by the CA, with these subjectAltName entries (`DNS:a.example.com`,
    /// `URI:spiffe://…`) and extended key usage (`serverAuth` or `clientAuth`).
    pub fn certificate(&self, name: &str, sans: &[&str], usage: &str) -> Identity {
        let (key, csr, crt, ext) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.cnf"));
        let mut request = vec!["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        request.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=rulefilter test"]);
        openssl(&self.dir, &request, None);
        let extensions = format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n",
            sans.join(",")
        );
        std::fs::write(self.dir.join(&ext), extensions).unwrap();
        let sign = ["x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"];
        openssl(&self.dir, &[&sign[..], &["-out", &crt, "-days", "2", "-extfile", &ext]].concat(), None);
        Identity { certificate: self.dir.join(crt), key: self.dir.join(key) }
    }

    /// An RS256 signing key (`jwt.key`) and the JWKS that verifies it, key id `test`.
    pub fn jwt_key(&self) -> String {
        openssl(&self.dir, &["genrsa", "-out", "jwt.key", "2048"], None);
        let modulus =
            String::from_utf8(openssl(&self.dir, &["rsa", "-in", "jwt.key", "-noout", "-modulus"], None)).unwrap();
        let hex = modulus.trim().trim_start_matches("Modulus=");
        let n: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        serde_json::json!({"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "test", "n": base64url(&n), "e": "AQAB"}]})
            .to_string()
    }

    /// A token with these claims, signed with `jwt.key` (RS256).
    pub fn token(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "test"});
        let signing_input =
            format!("{}.{}", base64url(header.to_string().as_bytes()), base64url(claims.to_string().as_bytes()));
        let signature = openssl(&self.dir, &["dgst", "-sha256", "-sign", "jwt.key"], Some(signing_input.as_bytes()));
        format!("{signing_input}.{}", base64url(&signature))
    }
}

/// Sends `GET path` with `headers` over TLS to `addr`, asking for server name `sni`, presenting `client` if
/// given, verifying the server against `ca`.
pub fn https_get(
    addr: SocketAddr,
    ca: &Path,
    sni: &str,
    client: Option<&Identity>,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let client = client.map(|identity| (identity.certificate.as_path(), identity.key.as_path()));
    let config = super::tls::client_config_as(ca, client);
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let tls = rustls::ClientConnection::new(config, name).unwrap();
    // The Host is the server name unless a header says otherwise.
    let mut request = ClientRequest::new("GET", path).host(sni);
    for (name, value) in headers {
        request = if name.eq_ignore_ascii_case("host") { request.host(value) } else { request.header(name, value) };
    }
    request.exchange(rustls::StreamOwned::new(tls, tcp), addr)
}
