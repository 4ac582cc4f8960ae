//! Configuration: one TOML file (every key optional), every key overridable
//! by a `CALLVAULT_<SECTION>_<KEY>` environment variable (top-level keys:
//! `CALLVAULT_<KEY>`), and command-line flags over both. Every key is
//! documented on its field below; ARCHITECTURE.md "Code map" says which
//! stage reads which section.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named with `--config` could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file (or an environment override) is not valid TOML for our keys.
    #[error("invalid configuration{}: {message}", .origin.as_deref().map(|o| format!(" in {o}")).unwrap_or_default())]
    Invalid {
        origin: Option<String>,
        message: String,
    },
    /// A time zone name that the tz database does not know.
    #[error("unknown time zone {0:?} (use an IANA name such as Asia/Shanghai)")]
    TimeZone(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite archive and the recordings live.
    pub data_dir: PathBuf,
    /// Time zone of devices that do not name their own (IANA name).
    pub timezone: String,
    pub ingest: IngestConfig,
    pub api: ApiConfig,
    pub calls: CallsConfig,
    pub recordings: RecordingsConfig,
    pub queues: QueuesConfig,
    pub store: StoreConfig,
    pub retention: RetentionConfig,
    pub log: LogConfig,
    #[serde(rename = "device")]
    pub devices: Vec<DeviceConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            timezone: "Asia/Shanghai".into(),
            ingest: IngestConfig::default(),
            api: ApiConfig::default(),
            calls: CallsConfig::default(),
            recordings: RecordingsConfig::default(),
            queues: QueuesConfig::default(),
            store: StoreConfig::default(),
            retention: RetentionConfig::default(),
            log: LogConfig::default(),
            devices: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Address of the push listener the devices send to.
    pub listen: String,
    /// Larger bodies are refused with 413 (and their first bytes quarantined).
    pub max_body_bytes: usize,
    /// A body not complete this many seconds after its headers is refused
    /// with 408 (what came is quarantined) and its connection closed.
    pub body_timeout_seconds: u64,
    /// Documents (legs and events, after expanding arrays and `cdrs[]`) one
    /// push may hold; more is refused with 413 and quarantined. Bounds the
    /// memory one push can take whatever its shape.
    pub max_documents: usize,
    /// Derive the pushes of senders that match no `[[device]]` or
    /// registered device, named by their IP (a lab setting). Off: such
    /// pushes are stored raw and held until the sender is registered
    /// (`callvault devices add`).
    pub accept_unknown_devices: bool,
    /// A connection that has not sent complete request headers this many
    /// seconds after it opened, or after its previous reply (an idle
    /// keep-alive connection), is closed. Applies to every source.
    pub header_timeout_seconds: u64,
    /// Open connections at once from one source address that is not a
    /// registered device; more are closed at once (429). 0 = no cap.
    pub max_connections_per_ip: usize,
    /// Open connections at once on the listener. At the cap the oldest idle
    /// connections (no request in progress) of unregistered sources are
    /// closed to make room; a registered device is always admitted. 0 = no cap.
    pub max_connections: usize,
    /// Pushes a minute (and burst) from one unregistered source address;
    /// more are refused with 429 and quarantined. 0 = no limit.
    pub unregistered_pushes_per_minute: u64,
    /// Body bytes a minute (and burst) from one unregistered source address;
    /// more are refused with 429 and quarantined. 0 = no limit.
    pub unregistered_bytes_per_minute: u64,
    /// Bytes of refused bodies kept whole in the quarantine per hour, per
    /// unregistered source address; past it only each body's first 1 KiB
    /// is kept (the row says so). 0 = no limit.
    pub quarantine_bytes_per_hour: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            listen: "0.0.0.0:8989".into(),
            max_body_bytes: 1 << 20,
            body_timeout_seconds: 30,
            max_documents: 1_000,
            accept_unknown_devices: false,
            header_timeout_seconds: 10,
            max_connections_per_ip: 32,
            max_connections: 1024,
            unregistered_pushes_per_minute: 600,
            unregistered_bytes_per_minute: 16 << 20,
            quarantine_bytes_per_hour: 64 << 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of the API and web page listener.
    pub listen: String,
    /// A web page's session (its cookie) ends after this many minutes
    /// without a request; the user signs in again (README "API tokens and
    /// sessions").
    pub session_idle_minutes: u32,
    /// Requests with bad credentials one address may make in a minute
    /// before its next ones are answered 429 for the rest of that minute
    /// (login throttling, README "API tokens and sessions"); 0 turns it
    /// off (behind a reverse proxy every user has the proxy's address).
    pub login_failures_per_minute: u32,
    /// PEM certificate chain and private key: when both are set the API
    /// listener speaks HTTPS itself (README "HTTPS"). Re-read when the
    /// files change, so a renewed certificate needs no restart.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8080".into(),
            session_idle_minutes: 60,
            login_failures_per_minute: 10,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl ApiConfig {
    /// A session that ends as it starts would make signing in impossible.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.session_idle_minutes == 0 {
            return Err(ConfigError::Invalid {
                origin: None,
                message: "[api] session_idle_minutes must be at least 1".into(),
            });
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid {
                origin: None,
                message: "[api] tls_cert and tls_key go together: set both for HTTPS, or neither"
                    .into(),
            });
        }
        Ok(())
    }
}

/// `[log]`: how log lines are written (to stderr; README "Running it for months").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for a log shipper (journald, Loki, ELK).
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallsConfig {
    /// A call is settled once no leg joined it for this many seconds of receive time.
    pub settle_seconds: i64,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            settle_seconds: 120,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingsConfig {
    /// Wait this long after a CDR arrives before fetching its recording.
    pub fetch_delay_seconds: u64,
    /// Give up (status `failed` or `missing`) after this many attempts.
    pub max_attempts: u32,
    /// Concurrent downloads per device (the device is a small box).
    pub per_device_concurrency: usize,
    /// `mono` (saturating sum) or `stereo` (left send, right recv) for merged G.729 calls.
    pub layout: String,
    /// First retry delay in milliseconds; doubles per attempt (with jitter) up to `retry_max_ms`.
    pub retry_base_ms: u64,
    /// Longest delay between two attempts, in milliseconds.
    pub retry_max_ms: u64,
    /// Names of the G.729 halves tried in order, as `[send, recv]` pairs; `{stem}` is the
    /// `<Recording>` file name without `.wav`. The day directory listing is the last resort.
    pub g729_templates: Vec<[String; 2]>,
    /// Overall deadline of one download (every GET: a WAV, each G.729 half, a day
    /// listing), in seconds; past it the attempt fails and its partial file is removed.
    /// 600 s lets a 1 h G.711 WAV (~58 MB) come over a 1 Mbit/s link (~470 s); a
    /// recorder still sending after that is stalled or hostile, and holds a fetch slot.
    pub download_timeout_seconds: u64,
    /// Largest file taken from a device, in bytes (checked against Content-Length up
    /// front and against the bytes streamed), and largest merged G.729 WAV written.
    /// 200 MB is ~3.5 h of G.711 audio; a longer answer is cut off as failed.
    pub max_bytes: u64,
    /// Fetching pauses (jobs stay pending) while the file system holding the recordings
    /// has less free space than this, in bytes, and resumes by itself; 0 = never pause.
    /// Ingest is not affected. Keep it above `max_concurrent × max_bytes`.
    pub min_free_bytes: u64,
    /// Downloads running at once over all devices (each device also within
    /// `per_device_concurrency`); jobs are taken from the devices in turn.
    pub max_concurrent: usize,
    /// PostgreSQL: how long a collector's claim on a fetch job holds without
    /// being renewed, in seconds. A live collector renews its claims at every
    /// claim round (about every 250 ms); the jobs of a collector that died go
    /// back to the queue once this has passed. Shorter retries a dead
    /// collector's downloads sooner, but should stay above three downloads of
    /// `download_timeout_seconds` (what a one-off `recordings fetch` may run
    /// without renewing) or such an attempt may be made twice (still recorded
    /// once). Unused on SQLite (one collector).
    pub claim_lease_seconds: u64,
    /// Where archived recordings are kept: `file:` (files under
    /// `<data_dir>/recordings`, the default) or `s3://bucket/prefix` (an
    /// S3-compatible object store set up in `[recordings.s3]`; the fetch
    /// still downloads and merges under `<data_dir>/recordings` first).
    pub store: String,
    /// The object store of an `s3://` `store`.
    pub s3: S3Config,
}

/// `[recordings.s3]`: how to reach an S3-compatible object store.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Base URL of the service (`https://s3.example.net`, `http://127.0.0.1:9000`);
    /// absent: AWS S3 of `region`.
    pub endpoint: Option<String>,
    /// Signing region (`us-east-1` for most self-hosted servers).
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), what self-hosted servers
    /// expect; `false` for virtual-hosted style (`bucket.endpoint/key`).
    pub path_style: bool,
    /// Allow a plain `http://` endpoint (a server on the same host or LAN).
    pub allow_http: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: None,
            secret_access_key: None,
            path_style: true,
            allow_http: false,
        }
    }
}

/// The secret stays out of logs and error messages.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl RecordingsConfig {
    /// `store = "s3://bucket/some/prefix/"` → (`bucket`, `some/prefix`);
    /// None for `file:` or a URL without a bucket.
    pub fn s3_location(&self) -> Option<(String, String)> {
        let rest = self.store.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        (!bucket.is_empty()).then(|| (bucket.to_string(), prefix.trim_matches('/').to_string()))
    }
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        RecordingsConfig {
            fetch_delay_seconds: 15,
            max_attempts: 8,
            per_device_concurrency: 2,
            layout: "mono".into(),
            retry_base_ms: 5_000,
            retry_max_ms: 600_000,
            g729_templates: [
                ["{stem}_send.dat", "{stem}_recv.dat"],
                ["{stem}.send.dat", "{stem}.recv.dat"],
                ["{stem}-send.dat", "{stem}-recv.dat"],
            ]
            .iter()
            .map(|[s, r]| [s.to_string(), r.to_string()])
            .collect(),
            download_timeout_seconds: 600,
            max_bytes: 200_000_000,
            min_free_bytes: 1 << 30,
            max_concurrent: 8,
            claim_lease_seconds: 1800,
            store: "file:".into(),
            s3: S3Config::default(),
        }
    }
}

impl RecordingsConfig {
    /// Limits of 0 would fail every download or stop all fetching: refused.
    fn validate(&self) -> Result<(), ConfigError> {
        let zero = [
            (
                "download_timeout_seconds",
                self.download_timeout_seconds == 0,
            ),
            ("max_bytes", self.max_bytes == 0),
            ("max_concurrent", self.max_concurrent == 0),
            // A lease shorter than a claim round would lapse under a live
            // collector and hand its downloads to another.
            ("claim_lease_seconds", self.claim_lease_seconds == 0),
        ];
        if let Some((key, _)) = zero.iter().find(|(_, z)| *z) {
            return Err(ConfigError::Invalid {
                origin: None,
                message: format!("[recordings] {key} must be at least 1"),
            });
        }
        if self.store != "file:" && self.s3_location().is_none() {
            return Err(ConfigError::Invalid {
                origin: None,
                message: format!(
                    "[recordings] store {:?}: expected \"file:\" or \"s3://bucket/prefix\"",
                    self.store
                ),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueuesConfig {
    /// "Answered within" threshold of the service level.
    pub sla_seconds: i64,
    /// A queue visit with no exit after this long is closed as `unknown`.
    pub visit_timeout_seconds: i64,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        QueuesConfig {
            sla_seconds: 20,
            visit_timeout_seconds: 3600,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    /// Name used in the archive and the API.
    pub name: String,
    /// The `<MAC>` the device puts into its messages (API_MAC=yes).
    pub mac: Option<String>,
    /// Host (and optional port) of the device's web server.
    pub addr: Option<String>,
    /// Source IPs allowed to push for this device; empty = the host of `addr`, or anyone.
    pub push_from: Vec<String>,
    /// API_SERVER_PASSWORD: when set, unsigned or wrongly signed pushes are refused.
    pub server_password: Option<String>,
    /// Validity of a signature in seconds (API_TIMEOUT); 0 = forever.
    /// Absent: [`DEFAULT_AUTH_TIMEOUT`] when a server password is set.
    pub auth_timeout: Option<u64>,
    /// Accept each signed (nonce, timestamp) once within the validity
    /// window; a replay gets 401. Off by default: the manual does not say
    /// whether the device makes a fresh nonce per message.
    pub auth_nonce_single_use: bool,
    /// Base URL of the recorder; default `http://{addr}/mcc/Recorder/`.
    pub recorder_url: Option<String>,
    pub recorder_user: Option<String>,
    pub recorder_password: Option<String>,
    /// IANA time zone of the device clock; default the top-level `timezone`.
    pub timezone: Option<String>,
    /// Whose voice the G.729 `send` half holds (docs/recordings.md
    /// "Conversation figures").
    pub send_side: SendSide,
}

/// Whose voice a recording's `send` half (a stereo WAV's left channel) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendSide {
    /// The recorded extension (OM manual §4.9): the agent.
    #[default]
    Extension,
    /// The other end: the device labels the halves the other way round.
    Remote,
}

/// Validity of a signature when `auth_timeout` is absent: five minutes,
/// so a sniffed Auth block does not sign forged pushes for ever.
pub const DEFAULT_AUTH_TIMEOUT: u64 = 300;

impl DeviceConfig {
    /// The signature validity in seconds (0 = never expires).
    pub fn auth_window(&self) -> u64 {
        self.auth_timeout.unwrap_or(DEFAULT_AUTH_TIMEOUT)
    }

    /// The IPs this device may push from (explicit list, else `addr`'s host).
    pub fn allowed_sources(&self) -> Vec<String> {
        if !self.push_from.is_empty() {
            return self.push_from.clone();
        }
        self.addr
            .as_deref()
            .map(|a| vec![host_of(a).to_string()])
            .unwrap_or_default()
    }

    pub fn recorder_base(&self) -> Option<String> {
        if let Some(u) = &self.recorder_url {
            let mut u = u.clone();
            if !u.ends_with('/') {
                u.push('/');
            }
            return Some(u);
        }
        self.addr
            .as_deref()
            .map(|a| format!("http://{a}/mcc/Recorder/"))
    }
}

/// `192.168.1.150:80` → `192.168.1.150`; `[::1]:80` → `::1`.
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => addr,
    }
}

/// `[retention]`: how long records are kept (docs/operations.md
/// "Retention"). Days; 0 keeps for ever. Signed so that a negative value is
/// refused by [`RetentionConfig::validate`] with the key's name rather than
/// by the TOML reader.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Recording files of calls that started longer ago are removed from
    /// storage; the row stays, status `purged`.
    pub recordings_days: i64,
    /// Calls that started longer ago go with their legs, events, queue
    /// visits and recordings.
    pub calls_days: i64,
    /// Raw push bodies received longer ago go; what was derived stays.
    pub raw_days: i64,
    /// Quarantined pushes (refused, with a reason) received longer ago go.
    pub quarantine_days: i64,
    /// Days an audit log row is kept (default two years); older rows are
    /// purged (`store::audit::purge_older_than`). 0 keeps them for ever.
    pub audit_days: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            recordings_days: 0,
            calls_days: 0,
            raw_days: 0,
            quarantine_days: 90,
            audit_days: 730,
        }
    }
}

impl RetentionConfig {
    /// Each key with its value, as the purge and its messages name them.
    pub fn keys(&self) -> [(&'static str, i64); 5] {
        [
            ("recordings_days", self.recordings_days),
            ("calls_days", self.calls_days),
            ("raw_days", self.raw_days),
            ("quarantine_days", self.quarantine_days),
            ("audit_days", self.audit_days),
        ]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        // Past 1000 years the cutoff would leave chrono's range.
        for (key, days) in self.keys() {
            if !(0..=365_000).contains(&days) {
                return Err(ConfigError::Invalid {
                    origin: None,
                    message: format!(
                        "[retention] {key} must be a number of days from 0 (keep for ever) to 365000, not {days}"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// `[store]`: where the archive lives (ARCHITECTURE.md "src/store/").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite:` (the archive file in `data_dir`, the default) or
    /// `postgres://user:pass@host:port/db` (env `CALLVAULT_STORE_URL`).
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite:".into(),
        }
    }
}

/// Which backend `[store] url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite,
    Postgres(String),
}

impl StoreConfig {
    pub fn backend(&self) -> Result<StoreUrl, ConfigError> {
        let url = self.url.trim();
        if url.is_empty() || url == "sqlite:" || url == "sqlite" {
            Ok(StoreUrl::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(StoreUrl::Postgres(url.to_string()))
        } else {
            Err(ConfigError::Invalid {
                origin: None,
                message: format!(
                    "[store] url must be sqlite: or postgres://user:pass@host:port/db, not {:?}",
                    redact_url(url)
                ),
            })
        }
    }
}

/// A URL with its password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let cred = &url[s + 3..at];
            match cred.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Config {
    /// Reads `path` (if any), then applies `CALLVAULT_*` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Invalid {
                        origin: Some(p.display().to_string()),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        for (k, v) in env {
            if let Some(rest) = k.strip_prefix("CALLVAULT_") {
                apply_env(&mut table, &rest.to_ascii_lowercase(), &v);
            }
        }
        let cfg: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid {
                origin: None,
                message: e.message().to_string(),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        parse_tz(&self.timezone)?;
        self.store.backend()?;
        if self.ingest.header_timeout_seconds == 0 {
            // Without it an idle socket is held for ever.
            return Err(ConfigError::Invalid {
                origin: None,
                message: "[ingest] header_timeout_seconds must be at least 1".into(),
            });
        }
        self.recordings.validate()?;
        self.api.validate()?;
        self.retention.validate()?;
        for d in &self.devices {
            if d.name.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    origin: None,
                    message: "every [[device]] needs a name".into(),
                });
            }
            if let Some(tz) = &d.timezone {
                parse_tz(tz)?;
            }
        }
        Ok(())
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("callvault.sqlite")
    }

    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }

    pub fn device(&self, name: &str) -> Option<&DeviceConfig> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// Whose voice `device`'s `send` half is (the default for a device not configured).
    pub fn send_side(&self, device: &str) -> SendSide {
        self.device(device).map(|d| d.send_side).unwrap_or_default()
    }

    /// The time zone of a device (its own, else the default).
    pub fn device_tz(&self, name: &str) -> chrono_tz::Tz {
        let tz = self
            .device(name)
            .and_then(|d| d.timezone.as_deref())
            .unwrap_or(&self.timezone);
        parse_tz(tz).unwrap_or(chrono_tz::Asia::Shanghai)
    }

    pub fn default_tz(&self) -> chrono_tz::Tz {
        parse_tz(&self.timezone).unwrap_or(chrono_tz::Asia::Shanghai)
    }
}

pub fn parse_tz(name: &str) -> Result<chrono_tz::Tz, ConfigError> {
    name.parse::<chrono_tz::Tz>()
        .map_err(|_| ConfigError::TimeZone(name.to_string()))
}

/// `ingest_max_body_bytes=5` sets `[ingest] max_body_bytes = 5`; a top-level
/// key (`data_dir`) wins over a section split, and a nested section's name
/// (`recordings_s3_endpoint` → `[recordings.s3] endpoint`) over a key of its
/// parent. Values are read as TOML scalars when they parse as one (numbers,
/// booleans), else as strings.
fn apply_env(table: &mut toml::Table, key: &str, value: &str) {
    let parsed = parse_scalar(value);
    if TOP_LEVEL_KEYS.contains(&key) {
        table.insert(key.to_string(), parsed);
        return;
    }
    let Some((section, k)) = key.split_once('_') else {
        return;
    };
    if !SECTIONS.contains(&section) {
        return;
    }
    let mut t = sub_table(table, section);
    let mut k = k;
    for (parent, child) in NESTED_SECTIONS {
        if *parent == section {
            if let Some(rest) = k.strip_prefix(child).and_then(|r| r.strip_prefix('_')) {
                t = sub_table(t, child);
                k = rest;
            }
        }
    }
    t.insert(k.to_string(), parsed);
}

/// `table[name]` as a table (created, or replacing a non-table value).
fn sub_table<'a>(table: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    let entry = table
        .entry(name.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !entry.is_table() {
        *entry = toml::Value::Table(toml::Table::new());
    }
    match entry {
        toml::Value::Table(t) => t,
        _ => unreachable!("made a table above"),
    }
}

const TOP_LEVEL_KEYS: &[&str] = &["data_dir", "timezone"];
const SECTIONS: &[&str] = &[
    "ingest",
    "api",
    "calls",
    "recordings",
    "queues",
    "store",
    "retention",
    "log",
];
/// Sections inside sections: (parent, child), e.g. `[recordings.s3]`.
const NESTED_SECTIONS: &[(&str, &str)] = &[("recordings", "s3")];

fn parse_scalar(v: &str) -> toml::Value {
    if let Ok(i) = v.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(b) = v.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    toml::Value::String(v.to_string())
}

#[cfg(test)]
mod tests;
