//! Security headers on every response of the API/web listener: the page,
//! its assets, the daily report shown in the page's frame, the API, and
//! refusals.

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let ts = start().await;
    let tok = token(&ts, "admin").await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", ts.api());
    for (path, auth, status) in [
        ("/", false, 200),
        ("/assets/app.js", false, 200),
        ("/assets/style.css", false, 200),
        ("/reports/daily?date=2024-01-08&format=html", true, 200),
        ("/api/calls?from=2024-01-08&to=2024-01-08", true, 200),
        ("/api/calls?from=2024-01-08&to=2024-01-08", false, 401),
        ("/healthz", false, 200),
        ("/no/such/page", false, 404),
    ] {
        let mut rb = http.get(format!("{base}{path}"));
        if auth {
            rb = rb.bearer_auth(&tok);
        }
        let r = rb.send().await.expect("request");
        assert_eq!(r.status().as_u16(), status, "{path}");
        let h = r.headers();
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{path}: no Content-Security-Policy"));
        let script = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"))
            .unwrap_or_else(|| panic!("{path}: no script-src in {csp}"));
        assert_eq!(script, "script-src 'self'", "{path}: no inline script");
        assert!(csp.contains("frame-ancestors 'self'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
}
