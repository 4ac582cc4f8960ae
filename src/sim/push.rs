//! Sending a plan's pushes the way the OM device does: one new TCP
//! connection per message, HTTP/1.0, `Content-Length`, no `Host`, then
//! close (manual §1.2). We do read the status line, so the simulator can
//! report what the collector answered.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Push;

/// A push target the simulator cannot use.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("the OM device pushes plain HTTP; use an http:// target")]
    Https,
    #[error("no host in target {0:?}")]
    NoHost(String),
}

/// Where and how to push.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` of the collector.
    pub addr: String,
    /// Request path (the device's configured URL), e.g. `/omapi`.
    pub path: String,
    /// POST instead of GET (API_METHOD=1).
    pub post: bool,
}

impl Target {
    /// Parses `http://host:port/path` (or `host:port`).
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        if url.starts_with("https://") {
            return Err(TargetError::Https);
        }
        let (addr, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if addr.is_empty() {
            return Err(TargetError::NoHost(url.to_string()));
        }
        Ok(Target {
            addr: addr.to_string(),
            path: path.to_string(),
            post: false,
        })
    }
}

/// Sends one push; returns the HTTP status the collector answered.
pub async fn send(t: &Target, body: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(&t.addr).await?;
    let method = if t.post { "POST" } else { "GET" };
    let req = format!(
        "{method} {} HTTP/1.0\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        t.path,
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply within 30 s"))??;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad reply {head:?}"),
            )
        })
}

/// How pushes are paced.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// At most this many pushes per second (0 = as fast as possible).
    Rate(f64),
    /// Follow the plan's own timing, compressed by this factor (1 = real time).
    Timeline(f64),
}

/// Totals of a run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    pub ok: u64,
    pub refused: u64,
    pub failed: u64,
}

/// Pushes every message in order at the given pace; `on_push` sees each result.
pub async fn run(
    t: &Target,
    pushes: &[Push],
    pace: Pace,
    mut on_push: impl FnMut(usize, &Result<u16, std::io::Error>),
) -> Sent {
    let started = Instant::now();
    let first_at = pushes.first().map(|p| p.at);
    let mut sent = Sent::default();
    for (i, p) in pushes.iter().enumerate() {
        let due = match pace {
            Pace::Rate(r) if r > 0.0 => Some(Duration::from_secs_f64(i as f64 / r)),
            Pace::Rate(_) => None,
            Pace::Timeline(f) => first_at.map(|a| {
                let secs = (p.at - a).num_milliseconds().max(0) as f64 / 1000.0;
                Duration::from_secs_f64(secs / f.max(1e-6))
            }),
        };
        if let Some(d) = due {
            let elapsed = started.elapsed();
            if d > elapsed {
                tokio::time::sleep(d - elapsed).await;
            }
        }
        let res = send(t, &p.body).await;
        match &res {
            Ok(200) => sent.ok += 1,
            Ok(_) => sent.refused += 1,
            Err(_) => sent.failed += 1,
        }
        on_push(i, &res);
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parse_url_and_bare_addr() {
        let t = Target::parse("http://127.0.0.1:8989/omapi/report").unwrap();
        assert_eq!(
            (t.addr.as_str(), t.path.as_str()),
            ("127.0.0.1:8989", "/omapi/report")
        );
        let t = Target::parse("localhost:1").unwrap();
        assert_eq!(t.path, "/");
        assert!(Target::parse("https://x").is_err());
        assert!(Target::parse("http:///x").is_err());
    }
}
