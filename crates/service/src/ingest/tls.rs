//! TLS for the TCP telemetry listener: the server's certificate chain and key, and, when a client CA is set, the
//! verifier that makes every client present a certificate that CA signed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};

/// Why the listener's TLS could not be set up; each names the file and the setting it came from.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {setting} {}: {cause}", path.display())]
    Read {
        setting: &'static str,
        path: PathBuf,
        cause: String,
    },
    #[error("{setting} {} holds no {what}", path.display())]
    Empty {
        setting: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error("the TLS settings are not usable: {0}")]
    Config(String),
}

/// The files the listener's TLS is built from.
#[derive(Clone, Debug)]
pub struct TlsFiles<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub client_ca: Option<&'a Path>,
}

fn certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |cause: String| TlsError::Read {
        setting,
        path: path.into(),
        cause,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            setting,
            path: path.into(),
            what: "PEM certificate",
        });
    }
    Ok(certs)
}

/// Builds the acceptor. TLS 1.2 and 1.3 with rustls' safe defaults, on the ring provider.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let chain = certificates("ingest_tls_cert", files.cert)?;
    let key = PrivateKeyDer::from_pem_file(files.key).map_err(|e| TlsError::Read {
        setting: "ingest_tls_key",
        path: files.key.into(),
        cause: e.to_string(),
    })?;
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("ingest_tls_client_ca", ca)? {
                roots.add(cert).map_err(|e| TlsError::Read {
                    setting: "ingest_tls_client_ca",
                    path: ca.into(),
                    cause: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("ingest_tls_cert and ingest_tls_key: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
