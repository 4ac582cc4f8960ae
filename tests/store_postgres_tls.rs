//! TLS to a real PostgreSQL server through `store::postgres::pool`, with
//! libpq's `sslmode` (src/store/postgres/tls.rs): whether a connection is
//! encrypted is read back from the server (`pg_stat_ssl`), and the
//! certificate checks are made against the server's own certificate.
//!
//! The server comes from `CALLVAULT_TEST_PG`; the tests use its database
//! as is (they only connect). They need `ssl = on` on that server (Debian's
//! PostgreSQL has it, with the "snakeoil" self-signed certificate for
//! `localhost`); without it, or without the variable, they say they were
//! skipped. They never change the server's configuration.

use std::path::PathBuf;

use callvault::store::postgres::{self, PgError};
use tokio_postgres::NoTls;

/// What a password in the test URLs is: the test server trusts local
/// connections and never asks for it, so it only shows that errors do not
/// print it.
const PASSWORD: &str = "s3cret-never-shown";

/// The test server, when it has TLS on.
struct TlsServer {
    user: String,
    port: u16,
    dbname: String,
    /// The server's certificate file, when this process can read it.
    cert: Option<PathBuf>,
}

impl TlsServer {
    fn url(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://{}:{PASSWORD}@{host}:{}/{}?{query}",
            self.user, self.port, self.dbname
        )
    }
}

async fn tls_server(test: &str) -> Option<TlsServer> {
    let Ok(base) = std::env::var("CALLVAULT_TEST_PG") else {
        eprintln!("skipped {test}: set CALLVAULT_TEST_PG to a PostgreSQL URL to run it");
        return None;
    };
    let cfg: tokio_postgres::Config = base.parse().expect("CALLVAULT_TEST_PG is a URL");
    let (client, conn) = tokio_postgres::connect(&base, NoTls)
        .await
        .unwrap_or_else(|e| panic!("CALLVAULT_TEST_PG={base} does not answer: {e}"));
    tokio::spawn(conn);
    let show = |name: &'static str| {
        let client = &client;
        async move {
            let row = client
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .expect("SHOW");
            row.get::<_, String>(0)
        }
    };
    if show("ssl").await != "on" {
        eprintln!(
            "skipped {test}: the test server has ssl = off (postgresql.conf), so there is no \
             TLS to test"
        );
        return None;
    }
    let cert = PathBuf::from(show("ssl_cert_file").await);
    let cert = std::fs::metadata(&cert).is_ok().then_some(cert);
    Some(TlsServer {
        user: cfg.get_user().unwrap_or("postgres").to_string(),
        port: cfg.get_ports().first().copied().unwrap_or(5432),
        dbname: cfg.get_dbname().unwrap_or("postgres").to_string(),
        cert,
    })
}

/// Whether the pooled connection `url` gives is encrypted, as the server
/// sees it.
async fn encrypted(url: &str) -> Result<bool, PgError> {
    let pool = postgres::pool(url)?;
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// The error `url` must give, with the password checked absent.
async fn refused(url: &str) -> String {
    let e = encrypted(url)
        .await
        .expect_err(&format!("{url} must be refused"))
        .to_string();
    assert!(!e.contains(PASSWORD), "the password leaked: {e}");
    e
}

#[tokio::test]
async fn tls_require_and_prefer_encrypt_and_disable_does_not() {
    let Some(server) = tls_server("tls_require_and_prefer_encrypt…").await else {
        return;
    };
    for (query, want) in [
        ("sslmode=require", true),
        ("sslmode=prefer", true),
        ("", true), // libpq's default is prefer
        ("sslmode=disable", false),
    ] {
        let url = server.url("127.0.0.1", query);
        let got = encrypted(&url)
            .await
            .unwrap_or_else(|e| panic!("{query:?}: {e}"));
        assert_eq!(got, want, "{query:?}: encrypted as the server sees it");
    }
}

#[tokio::test]
async fn tls_verify_full_connects_by_the_certificates_name_and_refuses_another() {
    let Some(server) = tls_server("tls_verify_full_connects…").await else {
        return;
    };
    let Some(cert) = &server.cert else {
        eprintln!(
            "skipped tls_verify_full_connects…: the server's certificate file is not readable here"
        );
        return;
    };
    // The server's certificate is self-signed, so it is its own root. Its
    // name is `localhost` (Debian's snakeoil: CN and SAN DNS:localhost).
    let root = format!("sslrootcert={}", cert.display());
    let full = server.url("localhost", &format!("sslmode=verify-full&{root}"));
    assert!(encrypted(&full).await.unwrap_or_else(|e| panic!("{e}")));

    // By address the chain is still good, which is all verify-ca asks…
    let ca = server.url("127.0.0.1", &format!("sslmode=verify-ca&{root}"));
    assert!(encrypted(&ca).await.unwrap_or_else(|e| panic!("{e}")));
    // …but the certificate does not name 127.0.0.1.
    let e = refused(&server.url("127.0.0.1", &format!("sslmode=verify-full&{root}"))).await;
    assert!(
        e.contains("verify-full") && e.contains("does not name the host \"127.0.0.1\""),
        "{e}"
    );
}

#[tokio::test]
async fn tls_verify_full_refuses_a_certificate_no_given_root_signed() {
    let Some(server) = tls_server("tls_verify_full_refuses…").await else {
        return;
    };
    // Public CAs only (Debian's bundle): none of them signed the server's
    // self-signed certificate.
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    if std::fs::metadata(bundle).is_err() {
        eprintln!("skipped tls_verify_full_refuses…: no CA bundle at {bundle}");
        return;
    }
    let e = refused(&server.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={bundle}"),
    ))
    .await;
    assert!(
        e.contains("sslmode=verify-full") && e.contains("unknown issuer") && e.contains(bundle),
        "{e}"
    );
    // As in libpq, require checks the chain too when it is given roots.
    let e = refused(&server.url(
        "localhost",
        &format!("sslmode=require&sslrootcert={bundle}"),
    ))
    .await;
    assert!(
        e.contains("sslmode=require") && e.contains("unknown issuer"),
        "{e}"
    );
}

/// Set in the child process of the test below.
const CHILD: &str = "CALLVAULT_TLS_TEST_CHILD";

#[tokio::test]
async fn tls_verify_full_without_sslrootcert_checks_the_system_roots() {
    let Some(server) = tls_server("tls_verify_full_without_sslrootcert…").await else {
        return;
    };
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    if std::env::var_os(CHILD).is_some() {
        // Here the system's roots are the public CAs of the bundle only.
        let e = refused(&server.url("localhost", "sslmode=verify-full")).await;
        assert!(
            e.contains("unknown issuer") && e.contains("the system's root certificates"),
            "{e}"
        );
        return;
    }
    if std::fs::metadata(bundle).is_err() {
        eprintln!("skipped tls_verify_full_without_sslrootcert…: no CA bundle at {bundle}");
        return;
    }
    // Debian links the snakeoil certificate into /etc/ssl/certs, so with
    // that directory among the system roots (SSL_CERT_DIR, or the
    // platform's default) this host trusts its own self-signed
    // certificate. The check runs again in a child process whose system
    // roots are the public CA bundle alone (SSL_CERT_FILE, no
    // SSL_CERT_DIR), which is what a collector on another machine sees.
    let name = "store_postgres_tls::tls_verify_full_without_sslrootcert_checks_the_system_roots";
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("SSL_CERT_FILE", bundle)
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("run the child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child: {text}"
    );
}
