//! TLS for `augur serve`: the certificate and key are loaded at start, and any problem stops
//! the server. Never a silent fall-back to plaintext.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;

use crate::error::{AugurError, Result};

pub type Acceptor = TlsAcceptor;

fn bad(path: &Path, what: &str) -> AugurError {
    AugurError::Usage(format!(
        "TLS: {} {what}; give a PEM file (e.g. made with `openssl req -x509 -newkey rsa:2048 \
         -nodes -keyout key.pem -out cert.pem -days 365 -subj /CN=localhost`)",
        path.display()
    ))
}

pub fn load(cert_path: &Path, key_path: &Path) -> Result<Acceptor> {
    let open = |path: &Path| {
        File::open(path)
            .map(BufReader::new)
            .map_err(|e| bad(path, &format!("cannot be read ({e})")))
    };
    let certs = rustls_pemfile::certs(&mut open(cert_path)?)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(cert_path, &format!("is not a PEM certificate ({e})")))?;
    if certs.is_empty() {
        return Err(bad(cert_path, "holds no certificate"));
    }
    let key = rustls_pemfile::private_key(&mut open(key_path)?)
        .map_err(|e| bad(key_path, &format!("is not a PEM private key ({e})")))?
        .ok_or_else(|| bad(key_path, "holds no private key"))?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| AugurError::Usage(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            AugurError::Usage(format!(
                "TLS: the certificate {} and the key {} do not make a usable pair: {e}",
                cert_path.display(),
                key_path.display()
            ))
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
