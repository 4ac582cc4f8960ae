//! The API listener over HTTPS (`[api] tls_cert`, `tls_key`; README
//! "HTTPS") with a self-signed certificate made here, and login
//! throttling (`[api] login_failures_per_minute`) over a real socket.

use std::time::Duration;

use reqwest::header::SET_COOKIE;

use crate::util::*;

/// A self-signed certificate for 127.0.0.1 and localhost, written to
/// `dir`; returns (cert path, key path, cert PEM).
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    let (cert, key) = (dir.join("api.crt"), dir.join("api.key"));
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    (cert, key, ck.cert.pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_speaks_https_and_its_session_cookie_is_secure() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert, key, pem) = self_signed(certs.path());
    let ts = start_with(|c| {
        c.api.tls_cert = Some(cert.clone());
        c.api.tls_key = Some(key.clone());
    })
    .await;
    let api = ts.running.api_addr;
    let admin = token(&ts, "admin").await;
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("pem"))
        .build()
        .expect("client");

    let r = https
        .get(format!("https://{api}/healthz"))
        .send()
        .await
        .expect("https request");
    assert_eq!(r.status(), 200);
    let r = https
        .get(format!("https://{api}/api/calls"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("https request");
    assert_eq!(r.status(), 200, "a bearer token over HTTPS");
    // The page's headers come over TLS too.
    let r = https.get(format!("https://{api}/")).send().await.unwrap();
    assert!(r.headers().contains_key("content-security-policy"));

    // Signing in over our own TLS: the cookie is Secure without any proxy header.
    let r = https
        .post(format!("https://{api}/api/session"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), 200);
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(set.contains("; Secure"), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let pair = set.split(';').next().unwrap().to_string();
    let r = https
        .get(format!("https://{api}/api/calls"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the session works over HTTPS");

    // Plain HTTP to the TLS port gets no answer at all, so no token is
    // ever read in clear.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let r = plain
        .get(format!("http://{api}/api/calls"))
        .bearer_auth(&admin)
        .send()
        .await;
    assert!(r.is_err(), "plain HTTP must not be served: {r:?}");
    // A client that does not trust the certificate refuses it.
    let r = reqwest::Client::new()
        .get(format!("https://{api}/healthz"))
        .send()
        .await;
    assert!(r.is_err(), "an untrusted self-signed certificate: {r:?}");
    ts.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_on_a_key_that_is_not_the_certificates() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert, _, _) = self_signed(certs.path());
    let other = tempfile::tempdir().expect("tempdir");
    let (_, key, _) = self_signed(other.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(dir.path());
    cfg.api.tls_cert = Some(cert);
    cfg.api.tls_key = Some(key);
    let err = match callvault::server::start(cfg).await {
        Ok(_) => panic!("serve started with a mismatched key"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("tls_cert and tls_key do not go together"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_from_one_address_are_slowed_and_audited() {
    const LIMIT: u32 = 5;
    let ts = start_with(|c| c.api.login_failures_per_minute = LIMIT).await;
    let api = ts.running.api_addr;
    let admin = token(&ts, "admin").await;
    for _ in 0..LIMIT {
        assert_eq!(get(api, "/api/calls", Some("cv_guess")).await.0, 401);
    }
    let (code, body) = get(api, "/api/calls", Some("cv_guess")).await;
    assert_eq!(code, 429, "{}", String::from_utf8_lossy(&body));
    let resp = reqwest::Client::new()
        .get(format!("http://{api}/api/calls"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        429,
        "a slowed address is refused before its token is looked at, even a good one"
    );
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // A sign-in is an attempt too.
    let r = reqwest::Client::new()
        .post(format!("http://{api}/api/session"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "token": admin }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Without credentials the page still loads.
    assert_eq!(get(api, "/", None).await.0, 200);
    assert_eq!(get(api, "/healthz", None).await.0, 200);

    // The refusals are in the audit log: the 401s and the 429s, each
    // collapsed into one row with its count.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = refusals(&ts.running.store).await;
        if rows.contains(&(401, i64::from(LIMIT))) && rows.contains(&(429, 3)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "audit rows (status, count): {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ts.running.stop().await;
}

/// (status, count) of every `auth.refused` audit row.
async fn refusals(store: &callvault::store::Store) -> Vec<(i64, i64)> {
    let filter = callvault::store::audit::Filter {
        action: Some("auth.refused".into()),
        limit: 100,
        ..Default::default()
    };
    store
        .read(move |tx| callvault::store::audit::list(tx, &filter))
        .await
        .expect("audit rows")
        .into_iter()
        .map(|r| (r.entry.status, r.entry.count))
        .collect()
}
