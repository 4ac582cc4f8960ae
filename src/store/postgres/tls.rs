//! TLS to PostgreSQL through rustls, with libpq's meaning of `sslmode`
//! and `sslrootcert` (PostgreSQL manual, libpq "SSL Support", table
//! "SSL Mode Descriptions"; docs/scaling.md "Connecting to PostgreSQL").
//!
//! tokio-postgres parses only `disable`, `prefer` and `require`, and knows
//! no `sslrootcert`: [`split_url`] takes both out of the URL, hands
//! tokio-postgres what it understands, and [`connector`] builds the rustls
//! configuration that gives each mode its libpq meaning:
//!
//! | sslmode       | encrypted               | certificate checked                      |
//! |---------------|-------------------------|------------------------------------------|
//! | `disable`     | no                      | —                                        |
//! | `prefer`      | if the server offers it | chain, only when `sslrootcert` is given  |
//! | `require`     | yes                     | chain, only when `sslrootcert` is given  |
//! | `verify-ca`   | yes                     | chain                                    |
//! | `verify-full` | yes                     | chain and host name                      |
//!
//! The chain is checked against the PEM file `sslrootcert` names, or the
//! system's roots when it is not given (or is `system`, as in libpq 16).
//! The crypto provider is ring, the one the rest of the tree (reqwest)
//! already uses.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgError;

/// libpq's `sslmode` values (all but `allow`, which tries plain first and
/// has no use against a server that may offer TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    fn parse(value: &str) -> Result<TlsMode, PgError> {
        Ok(match value {
            "disable" => TlsMode::Disable,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => {
                return Err(PgError::Url(format!(
                    "sslmode={other:?}: use disable, prefer, require, verify-ca or verify-full"
                )))
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the roots that check the server's certificate come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// `sslrootcert` not given or `system`: the system's trust store
    /// (`SSL_CERT_FILE` / `SSL_CERT_DIR`, else the platform's).
    System,
    /// `sslrootcert=<path>`: a PEM file of one or more certificates.
    File(PathBuf),
}

/// The TLS part of `[store] url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: TlsMode,
    pub roots: Roots,
}

/// Splits `url` into the configuration tokio-postgres parses and the TLS
/// settings it cannot: `sslmode` and `sslrootcert` are taken out of the
/// query, the other parameters are left as they were written. libpq's
/// default is `prefer`.
pub fn split_url(url: &str) -> Result<(tokio_postgres::Config, TlsSettings), PgError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut mode = TlsMode::Prefer;
    let mut root_cert: Option<String> = None;
    let mut kept = Vec::new();
    for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = form_urlencoded::parse(part.as_bytes())
            .next()
            .unwrap_or_default();
        match &*key {
            "sslmode" => mode = TlsMode::parse(&value)?,
            "sslrootcert" => root_cert = Some(value.into_owned()),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(PgError::Url(format!(
                    "{key}: client certificates and CRLs are not supported; use a password \
                     (SCRAM) over sslmode=verify-full"
                )))
            }
            _ => kept.push(part),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    // tokio-postgres' errors name the offending option, never the URL, so
    // the password cannot leak through them.
    let mut cfg: tokio_postgres::Config = rest
        .parse()
        .map_err(|e: tokio_postgres::Error| PgError::Url(super::with_causes(&e)))?;
    cfg.ssl_mode(match mode {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
    });
    let roots = match root_cert.as_deref() {
        None | Some("system") => Roots::System,
        Some("") => {
            return Err(PgError::Url(
                "sslrootcert is empty: name a PEM file, or leave it out for the system's roots"
                    .into(),
            ))
        }
        Some(path) => Roots::File(PathBuf::from(path)),
    };
    Ok((cfg, TlsSettings { mode, roots }))
}

/// The rustls connector for `tls`, or `None` for `sslmode=disable`.
///
/// As in libpq, `prefer` and `require` check the certificate's chain when
/// `sslrootcert` names a file (and accept any certificate otherwise);
/// `verify-ca` and `verify-full` always check it.
pub fn connector(tls: &TlsSettings) -> Result<Option<MakeRustlsConnect>, PgError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let check = match (tls.mode, &tls.roots) {
        (TlsMode::Disable, _) => return Ok(None),
        (TlsMode::Prefer | TlsMode::Require, Roots::System) => None,
        (TlsMode::Prefer | TlsMode::Require, Roots::File(_)) => Some(false),
        (TlsMode::VerifyCa, _) => Some(false),
        (TlsMode::VerifyFull, _) => Some(true),
    };
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        None => Arc::new(AcceptAnyServerCert(provider.clone())),
        Some(check_host) => {
            let (store, shown) = load_roots(&tls.roots)?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()
                    .map_err(|e| PgError::Url(format!("sslrootcert: {e}")))?;
            Arc::new(CheckedServerCert {
                webpki,
                check_host,
                mode: tls.mode,
                roots: shown,
            })
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Url(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// The roots of `roots`, and how to name them in an error.
fn load_roots(roots: &Roots) -> Result<(RootCertStore, String), PgError> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let shown = format!("sslrootcert={}", path.display());
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| PgError::Url(format!("{shown}: {e}")))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| PgError::Url(format!("{shown}: {e}")))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(PgError::Url(format!(
                    "{shown}: no usable PEM certificate in the file"
                )));
            }
            Ok((store, shown))
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(PgError::Url(format!(
                    "no system root certificates could be loaded ({}): name the server's CA \
                     with sslrootcert=<PEM file>",
                    why.join("; ")
                )));
            }
            Ok((store, "the system's root certificates".into()))
        }
    }
}

/// `verify-ca` / `verify-full` (and `prefer` / `require` with
/// `sslrootcert`): rustls' WebPKI verifier, with the host name check
/// dropped for `verify-ca`, and its errors told in libpq's terms.
#[derive(Debug)]
struct CheckedServerCert {
    webpki: Arc<WebPkiServerVerifier>,
    /// `verify-full`: the certificate must name the host of the URL.
    check_host: bool,
    mode: TlsMode,
    /// How the roots were given, for errors.
    roots: String,
}

/// A certificate refused, in words that say which check failed.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl ServerCertVerifier for CheckedServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let e = match result {
            Ok(ok) => return Ok(ok),
            Err(e) => e,
        };
        let host = server_name.to_str();
        let message = match &e {
            // WebPKI checks the name last, after the chain: a name error
            // means the chain was good, which is all verify-ca asks.
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) if !self.check_host => return Ok(ServerCertVerified::assertion()),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!(
                "sslmode=verify-full: the server's certificate does not name the host {host:?} \
                 ({e}); connect by a name the certificate holds, or use sslmode=verify-ca"
            ),
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "sslmode={}: the server's certificate (for {host:?}) is not signed by any of \
                 {} (unknown issuer; a self-signed server certificate must itself be in \
                 sslrootcert)",
                self.mode.name(),
                self.roots
            ),
            _ => format!(
                "sslmode={}: the server's certificate (for {host:?}) was refused: {e}",
                self.mode.name()
            ),
        };
        // rustls shows an `InvalidCertificate(Other(..))` by its Debug
        // form; `Error::Other` shows the message as written.
        Err(rustls::Error::Other(OtherError(Arc::new(Refused(message)))))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `sslmode=require` (and `prefer`) without `sslrootcert`: libpq encrypts
/// but accepts ANY server certificate, so this verifier does no
/// certificate check at all. It protects against eavesdropping, not
/// against a man in the middle; `verify-ca` / `verify-full` do. The
/// handshake signature is still checked, so the server must hold the key
/// of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> (tokio_postgres::Config, TlsSettings) {
        split_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn sslmode_defaults_to_prefer_with_system_roots() {
        let (cfg, tls) = settings("postgres://u:p@db.example:5433/cdr");
        assert_eq!(tls.mode, TlsMode::Prefer);
        assert_eq!(tls.roots, Roots::System);
        assert_eq!(cfg.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(cfg.get_dbname(), Some("cdr"));
        assert_eq!(cfg.get_ports(), [5433]);
    }

    #[test]
    fn verify_modes_and_rootcert_are_taken_out_and_other_options_kept() {
        let (cfg, tls) = settings(
            "postgres://u:p@db.example/cdr?application_name=cv&sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fpg%20ca.pem&connect_timeout=7",
        );
        assert_eq!(tls.mode, TlsMode::VerifyFull);
        assert_eq!(tls.roots, Roots::File("/etc/pg ca.pem".into()));
        assert_eq!(cfg.get_ssl_mode(), SslMode::Require);
        assert_eq!(cfg.get_application_name(), Some("cv"));
        assert_eq!(
            cfg.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(7))
        );

        let (cfg, tls) = settings("postgres://db/cdr?sslmode=verify-ca&sslrootcert=system");
        assert_eq!(tls.mode, TlsMode::VerifyCa);
        assert_eq!(tls.roots, Roots::System);
        assert_eq!(cfg.get_ssl_mode(), SslMode::Require);

        let (cfg, tls) = settings("postgres://db/cdr?sslmode=disable");
        assert_eq!(tls.mode, TlsMode::Disable);
        assert_eq!(cfg.get_ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn bad_tls_options_are_refused_without_the_password() {
        for (url, says) in [
            (
                "postgres://u:hunter2@db/cdr?sslmode=verify",
                "sslmode=\"verify\"",
            ),
            (
                "postgres://u:hunter2@db/cdr?sslrootcert=",
                "sslrootcert is empty",
            ),
            ("postgres://u:hunter2@db/cdr?sslcert=/c.pem", "sslcert"),
            (
                "postgres://u:hunter2@db/cdr?nosuch=1",
                "unknown option `nosuch`",
            ),
        ] {
            let e = split_url(url).expect_err(url).to_string();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
    }

    #[test]
    fn a_missing_or_empty_root_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        for path in [dir.path().join("absent.pem"), empty] {
            let tls = TlsSettings {
                mode: TlsMode::VerifyFull,
                roots: Roots::File(path.clone()),
            };
            let e = connector(&tls).err().expect("refused").to_string();
            assert!(e.contains(&*path.to_string_lossy()), "{e}");
        }
        let plain = TlsSettings {
            mode: TlsMode::Disable,
            roots: Roots::File(dir.path().join("absent.pem")),
        };
        assert!(connector(&plain).expect("disable").is_none());
    }
}
