//! The headless-Chromium harness of the browser tests (`web_chromium`,
//! `live_chromium`): chromedriver spoken to as W3C WebDriver over plain
//! HTTP with reqwest (no extra crates), and whether the browser is here.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Driver {
    child: Child,
    http: reqwest::Client,
    base: String,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut rb = self.http.request(method, url);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let bytes = rb
            .send()
            .await
            .expect("webdriver request")
            .bytes()
            .await
            .expect("body");
        let v: Value = serde_json::from_slice(&bytes).expect("webdriver json");
        assert!(v["value"].get("error").is_none(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    /// Opens `url` afresh (as a link pasted into a new tab): from a blank
    /// page, so that the page script starts from nothing.
    pub async fn open_fresh(&self, url: String) {
        for u in ["about:blank".to_string(), url] {
            self.call(reqwest::Method::POST, "/url", Some(json!({ "url": u })))
                .await;
        }
    }

    pub async fn js(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().expect("element id").to_string()
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Polls a JS expression until it is truthy (10 s deadline).
    pub async fn wait(&self, expr: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.js(&format!("return ({expr});")).await;
            if v.as_bool() != Some(false) && !v.is_null() && v != json!(0) && v != json!("") {
                return v;
            }
            if Instant::now() > deadline {
                let page = self.js("return document.body.innerText;").await;
                panic!("timed out waiting for {expr}\npage:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The browser console's messages about the Content-Security-Policy
    /// since the last call: what the page did that the CSP refused.
    pub async fn csp_violations(&self) -> Vec<Value> {
        let console = self
            .call(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await;
        console
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| {
                        e["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("Content Security Policy"))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn screenshot(&self, name: &str) {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap_or_default();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(name), png);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

pub async fn start_driver(profile: &Path, downloads: &Path) -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/status")).send().await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        "--autoplay-policy=no-user-gesture-required",
        "--lang=en-US",
    ];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        // The console is read at the end: no Content-Security-Policy violation.
        "goog:loggingPrefs": {"browser": "ALL"},
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": args,
            "prefs": {"download.default_directory": downloads.display().to_string(), "download.prompt_for_download": false},
        }
    }}});
    let resp = http
        .post(format!("{base}/session"))
        .header("content-type", "application/json")
        .body(caps.to_string())
        .send()
        .await
        .expect("new session");
    let v: Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("json");
    let session = v["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {v}"))
        .to_string();
    Driver {
        child,
        http,
        base,
        session,
    }
}

/// Whether Chromium and chromedriver are here; says why not.
pub fn have_chromium(test: &str) -> bool {
    let which = |b: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {b}"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !Path::new(CHROMIUM).exists() || !which("chromedriver") {
        eprintln!("SKIP {test}: needs {CHROMIUM} and chromedriver (apt-get install -y chromium chromium-driver)");
        return false;
    }
    true
}
