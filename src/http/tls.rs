//! The API listener's certificate (`[api] tls_cert`, `tls_key`; README
//! "HTTPS"): PEM files read at start — a bad file stops `serve` with a
//! message naming it — and read again when they change, so a renewed
//! certificate (certbot, an ACME client, the operator) is served without
//! a restart; a renewal that cannot be read is logged and the certificate
//! in use is kept. rustls with the ring provider, as the rest of the tree.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// Put on every request that came over the listener's TLS.
#[derive(Debug, Clone, Copy)]
pub struct ServedOverTls;

/// How often a handshake may look at the files' modification times.
const CHECK_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[api] tls_cert {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("[api] tls_key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("[api] tls_cert and tls_key do not go together: {0}")]
    Mismatch(String),
    #[error("TLS set-up: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The acceptor for the API listener, from the two PEM files.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = Reloading::new(cert, key, provider.clone())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// When and how big each file was when it was last read.
type Stamp = [(Option<SystemTime>, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Stamp {
    [cert, key].map(|p| match std::fs::metadata(p) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    })
}

/// The certificate in use, read again when its files change.
#[derive(Debug)]
pub struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<Current>,
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    stamp: Stamp,
    checked: Instant,
}

impl Reloading {
    fn new(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let stamp = stamp(cert, key);
        let loaded = load(cert, key, &provider)?;
        Ok(Reloading {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: Mutex::new(Current {
                key: loaded,
                stamp,
                checked: Instant::now(),
            }),
        })
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl Reloading {
    /// The certificate to serve: the files' if they changed and can be used.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.checked.elapsed() >= CHECK_EVERY {
            cur.checked = Instant::now();
            let now = stamp(&self.cert, &self.key);
            if now != cur.stamp {
                // Mark it seen either way: a broken renewal is logged once,
                // not at every handshake.
                cur.stamp = now;
                match load(&self.cert, &self.key, &self.provider) {
                    Ok(k) => {
                        tracing::info!(cert = %self.cert.display(), "API certificate re-read");
                        cur.key = k;
                    }
                    Err(e) => tracing::error!(error = %e,
                        "the API certificate changed but cannot be used; still serving the previous one"),
                }
            }
        }
        cur.key.clone()
    }
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no CERTIFICATE block in the file".into()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::from_der(chain, der, provider)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, ck.cert.pem()).unwrap();
        std::fs::write(&k, ck.signing_key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn a_missing_or_mismatched_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = pair(dir.path(), "a.example");
        let (_, k2) = pair(dir.path(), "b.example");
        assert!(acceptor(&c, &k).is_ok());
        let err = |r: Result<TlsAcceptor, TlsError>| match r {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        };
        let e = err(acceptor(&dir.path().join("none.crt"), &k));
        assert!(e.contains("tls_cert") && e.contains("none.crt"), "{e}");
        let e = err(acceptor(&c, &c));
        assert!(e.contains("tls_key"), "{e}");
        let e = err(acceptor(&c, &k2));
        assert!(e.contains("do not go together"), "{e}");
    }

    #[test]
    fn a_renewed_certificate_is_served_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = pair(dir.path(), "a.example");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let r = Reloading::new(&c, &k, provider).unwrap();
        let first = r.current().cert[0].clone();
        let age = |r: &Reloading| r.current.lock().unwrap().checked -= CHECK_EVERY;

        let (c2, k2) = pair(dir.path(), "b.example-longer-name");
        std::fs::copy(&c2, &c).unwrap();
        std::fs::copy(&k2, &k).unwrap();
        assert_eq!(
            r.current().cert[0],
            first,
            "not looked at before CHECK_EVERY"
        );
        age(&r);
        let renewed = r.current().cert[0].clone();
        assert_ne!(renewed, first, "the renewed certificate is served");

        std::fs::write(&c, "not a certificate, and longer than before").unwrap();
        age(&r);
        assert_eq!(
            r.current().cert[0],
            renewed,
            "a broken renewal keeps the one in use"
        );
    }
}
