//! HTTPS for the API: with `[http] tls_cert` and `tls_key` each accepted stream is wrapped
//! by rustls (the `ring` provider, as for MQTT) before hyper reads it. The files are read
//! once at start, so a bad file stops the agent with its name instead of failing every
//! connection. The handshake counts towards the time a client has for its request head.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Why the API cannot speak HTTPS with the files given.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("http.tls_cert: cannot read {path}: {error}")]
    Cert { path: PathBuf, error: String },
    #[error("http.tls_cert: {path} holds no PEM certificate")]
    NoCert { path: PathBuf },
    #[error("http.tls_key: cannot read a PEM private key from {path}: {error}")]
    Key { path: PathBuf, error: String },
    #[error("http TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The acceptor presenting `cert` (a PEM chain, leaf first) with `key`.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let cert_err = |e: rustls::pki_types::pem::Error| TlsError::Cert {
        path: cert.to_path_buf(),
        error: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(cert_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_err)?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: cert.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        error: e.to_string(),
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // hyper here speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
