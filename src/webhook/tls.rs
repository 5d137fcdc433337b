//! The webhook's serving certificate, reloaded when its files change.
//!
//! cert-manager rewrites the Secret in place when it renews the certificate,
//! and the kubelet publishes a Secret volume's new contents by swapping the
//! `..data` symlink, so the paths stay the same and the bytes behind them
//! change. Polling the bytes catches both without inotify's pitfalls with
//! symlink swaps. A new pair is used for new handshakes only: connections
//! already open keep the session they negotiated, so nothing is dropped.
//!
//! The certificate and the key are two files and are not replaced atomically
//! together: a pair that does not match (`rustls` compares the key's public
//! half with the certificate's) is refused, the previous pair stays in use,
//! and the next change of either file is tried again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use thiserror::Error;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// Each variant names the file(s) and keeps the cause as its `source`
/// (not in the message, or a printed chain would repeat it).
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no usable PEM {what}")]
    Pem {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{cert} and {key}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// The certificate chain and key currently served, and the file bytes they
/// came from.
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The bytes last read (loaded or refused), so a refused pair is not
    /// retried, and logged, on every poll.
    seen: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl TlsError {
    /// The error and its causes on one line (`file: what: cause`), for the
    /// log, where no `{:#}` walks the chain.
    pub fn chain(&self) -> String {
        let mut line = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            line.push_str(": ");
            line.push_str(&e.to_string());
            cause = e.source();
        }
        line
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

impl CertStore {
    /// Loads the pair; an error here is fatal at start.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<CertStore>, TlsError> {
        // ring, not aws-lc-rs: no C toolchain beyond cc, and a smaller binary.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert = read(cert_path)?;
        let key = read(key_path)?;
        let certified = certified_key(&provider, cert_path, &cert, key_path, &key)?;
        Ok(Arc::new(CertStore {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current: RwLock::new(Arc::new(certified)),
            seen: Mutex::new((cert, key)),
        }))
    }

    /// Reads both files; when their bytes changed since the last call, loads
    /// the new pair. `Ok(true)`: a new pair is in use; `Ok(false)`: nothing
    /// changed; `Err`: the new bytes were refused and the old pair stays.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let cert = read(&self.cert_path)?;
        let key = read(&self.key_path)?;
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.0 == cert && seen.1 == key {
                return Ok(false);
            }
            *seen = (cert.clone(), key.clone());
        }
        let certified =
            certified_key(&self.provider, &self.cert_path, &cert, &self.key_path, &key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
        Ok(true)
    }

    /// A rustls server configuration that asks this store for the
    /// certificate at every handshake. ALPN offers HTTP/1.1 only: the API
    /// server's webhook client then speaks HTTP/1.1 with keep-alive.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, rustls::Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The certificate chain currently served (DER), for tests and logs.
    pub fn current_chain(&self) -> Vec<CertificateDer<'static>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .cert
            .clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn certified_key(
    provider: &rustls::crypto::CryptoProvider,
    cert_path: &Path,
    cert: &[u8],
    key_path: &Path,
    key: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let pem = |path: &Path, what, source| TlsError::Pem {
        path: path.to_owned(),
        what,
        source,
    };
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(cert_path, "certificate", e))?;
    if chain.is_empty() {
        return Err(pem(
            cert_path,
            "certificate",
            rustls::pki_types::pem::Error::NoItemsFound,
        ));
    }
    let key_der =
        PrivateKeyDer::from_pem_slice(key).map_err(|e| pem(key_path, "private key", e))?;
    CertifiedKey::from_der(chain, key_der, provider).map_err(|source| TlsError::Pair {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_keep_the_cause_as_their_source() {
        let err = CertStore::load(
            Path::new("/nonexistent/c.pem"),
            Path::new("/nonexistent/k.pem"),
        )
        .expect_err("no such file");
        assert!(
            matches!(&err, TlsError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
        );
        assert_eq!(err.to_string(), "/nonexistent/c.pem: cannot read");
        assert_eq!(
            err.chain(),
            "/nonexistent/c.pem: cannot read: No such file or directory (os error 2)"
        );

        let dir = std::env::temp_dir().join(format!("podpath-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&cert, "not PEM\n").unwrap();
        std::fs::write(&key, "not PEM\n").unwrap();
        let err = CertStore::load(&cert, &key).expect_err("not PEM");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            matches!(
                err,
                TlsError::Pem {
                    what: "certificate",
                    ..
                }
            ),
            "{err:?}"
        );
        let chain = err.chain();
        let head = format!("{}: no usable PEM certificate: ", cert.display());
        // The cause once, after the file and what was wanted of it.
        assert!(
            chain.starts_with(&head) && chain.len() > head.len(),
            "{chain}"
        );
        assert_eq!(chain.matches(": ").count(), 2, "{chain}");
    }
}
