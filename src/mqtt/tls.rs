//! TLS to the broker with rustls and the `ring` provider: the broker's certificate must
//! chain to a CA in `ca_file` and name the host of the broker URL; with `client_cert`
//! and `client_key` the gateway proves itself too (mutual TLS). Files are read once at
//! start-up, so a bad file stops the agent with a clear error instead of failing every
//! reconnect.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rumqttc::TlsConfiguration;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no certificate in it could be used as a trust anchor")]
    NoTrustAnchor { path: PathBuf },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let read_err = |e: rustls::pki_types::pem::Error| TlsSetupError::Read {
        path: path.to_path_buf(),
        error: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The client TLS configuration: trust `ca_file`, and present `client` = (certificate,
/// key) when given.
pub fn client_config(ca_file: &Path, client: Option<(&Path, &Path)>) -> Result<TlsConfiguration, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates(ca_file)?);
    if added == 0 {
        return Err(TlsSetupError::NoTrustAnchor {
            path: ca_file.to_path_buf(),
        });
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let chain = certificates(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Read {
                path: key.to_path_buf(),
                error: format!("no usable private key: {e}"),
            })?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = client_config(&missing, None).unwrap_err().to_string();
        assert!(err.contains("cannot read") && err.contains("missing.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(&empty, None).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
