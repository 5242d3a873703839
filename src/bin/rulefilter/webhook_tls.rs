//! The webhook's certificate: PEM files read at start-up, and read again when they change, because
//! cert-manager (or whoever owns the Secret) rotates them under a running pod.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// What identifies one version of the files: a Secret volume swaps them by a symlink, which gives the new
/// files a new modification time.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// The current TLS configuration, reloaded when the certificate or key file changes.
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Loaded>,
}

struct Loaded {
    stamps: (Stamp, Stamp),
    config: Arc<ServerConfig>,
}

impl Certificates {
    /// Reads both files; an error names the file and what is wrong with it.
    pub fn load(cert: &Path, key: &Path) -> Result<Certificates, String> {
        let stamps = (stamp(cert), stamp(key));
        let config = Arc::new(server_config(cert, key)?);
        Ok(Certificates { cert: cert.to_owned(), key: key.to_owned(), current: Mutex::new(Loaded { stamps, config }) })
    }

    /// The configuration for the next connection. When the files changed they are read again; if they do not
    /// make a valid pair (yet: a rotation may write the certificate before the key), the previous pair keeps
    /// serving and the problem is logged once per change.
    pub fn current(&self) -> Arc<ServerConfig> {
        let mut loaded = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let stamps = (stamp(&self.cert), stamp(&self.key));
        if stamps != loaded.stamps {
            loaded.stamps = stamps;
            match server_config(&self.cert, &self.key) {
                Ok(config) => {
                    loaded.config = Arc::new(config);
                    eprintln!("rulefilter webhook: certificate reloaded from {}", self.cert.display());
                }
                Err(message) => {
                    eprintln!("rulefilter webhook: keeping the previous certificate: {message}");
                }
            }
        }
        Arc::clone(&loaded.config)
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("--tls-cert {}: {}", cert.display(), pem_error(&e)))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {}: holds no PEM CERTIFICATE block", cert.display()));
    }
    let private_key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key {}: {}", key.display(), pem_error(&e)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, private_key))
        .map_err(|e| {
            format!("--tls-cert {} with --tls-key {}: not a usable pair: {e}", cert.display(), key.display())
        })?;
    // The API server offers h2 and http/1.1; this server speaks only the latter.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn pem_error(error: &rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(e) => format!("cannot read it: {e}"),
        rustls::pki_types::pem::Error::NoItemsFound => "holds no PEM block of the expected kind".to_owned(),
        other => format!("not valid PEM: {other}"),
    }
}
